/* One run's network, all or nothing (apply.h). */
#include "netpolicy/apply/apply.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "netpolicy/apply/dnsproxy.h"
#include "netpolicy/apply/link.h"
#include "netpolicy/apply/nflog.h"
#include "netpolicy/apply/nftbatch.h"

#include <netlink/socket.h>

struct aidp_np_run {
        char run_id[201];
        char lease_dir[4096];
        struct aidp_hostnet_lease lease;
        bool leased, host_table;
        char host_if[16];
        struct nl_sock *nflog;
        struct aidp_np_denials denials;
        struct aidp_np_dnsproxy *dns;
        bool with_dns; /* resolvers configured: the run gets a DNS proxy */
};

/* The host end's name: the lease index and a hash of the run id, so that a
 * veth still being freed with an earlier run's namespace never has the name
 * a new run needs. */
static void host_if_of(unsigned index, const char *run_id, char out[16])
{
        unsigned h = 2166136261u;
        for (const char *p = run_id; *p; p++)
                h = (h ^ (unsigned char)*p) * 16777619u;
        snprintf(out, 16, "aidp%04x%07x", index & 0xffffu, h & 0xfffffffu);
}

static int read_flag(const char *path)
{
        char c = 0;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        return fd >= 0 && read(fd, &c, 1) == 1 ? c == '1' : -1;
}

/* Forwarding is the host's decision, not aidp's: a run never changes a host
 * sysctl; it refuses to start when the host does not forward. */
static int check_forwarding(const struct aidp_hostnet *hn, aidp_error *err)
{
        if (read_flag("/proc/sys/net/ipv4/ip_forward") != 1)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EHOSTUNREACH,
                                      "egress needs IPv4 forwarding on this host "
                                      "(net.ipv4.ip_forward=1, docs/egress.md)");
        if (hn->pool6 && read_flag("/proc/sys/net/ipv6/conf/all/forwarding") != 1)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EHOSTUNREACH,
                                      "%s has an IPv6 pool but this host does not forward IPv6 "
                                      "(net.ipv6.conf.all.forwarding=1, docs/egress.md)",
                                      hn->source ? hn->source : "the network configuration");
        return 0;
}

struct inside {
        struct aidp_np_run *r;
        const struct aidp_np_batch *rules;
};

static int configure_inside(void *p, aidp_error *err)
{
        struct inside *in = p;
        /* The ruleset first: the link comes up already filtered. */
        int rc = aidp_np_batch_send(in->rules, err);
        if (rc < 0)
                return aidp_error_wrap(err, "sandbox namespace");
        if ((rc = aidp_np_link_setup(AIDP_NP_SANDBOX_IF, &in->r->lease, true, err)) < 0)
                return rc;
        in->r->nflog = aidp_np_nflog_open(AIDP_NP_NFLOG_GROUP, &in->r->denials, err);
        return in->r->nflog ? 0 : -EIO;
}

static void rollback(struct aidp_np_run *r)
{
        if (r->dns)
                aidp_np_dnsproxy_stop(r->dns, &r->denials);
        if (r->nflog)
                aidp_np_nflog_close(r->nflog);
        if (r->host_table)
                aidp_np_nft_delete_host(r->run_id, NULL);
        /* The namespace may outlive a failed start: remove our end explicitly. */
        if (r->host_if[0])
                aidp_np_link_delete(r->host_if);
        if (r->leased)
                aidp_np_lease_release(r->lease_dir, r->run_id, r->lease.index);
        free(r);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct aidp_np_batch *, aidp_np_batch_free)

/* Both tables as netlink batches (nftbatch.h), before anything is made. */
static int batches(const struct aidp_netpolicy *np, const struct aidp_hostnet *hn,
                   struct aidp_np_run *r, struct aidp_np_batch **sb, struct aidp_np_batch **host,
                   aidp_error *err)
{
        struct aidp_np_names n = {
                .run_id = r->run_id,
                .host_if = r->host_if,
                .uplink = hn->uplink,
                .sandbox_v4 = r->lease.sandbox4,
                .sandbox_v6 = r->lease.sandbox6[0] ? r->lease.sandbox6 : NULL,
                .nflog_group = AIDP_NP_NFLOG_GROUP,
                .proxy_v4 = r->with_dns ? r->lease.host4 : NULL,
        };
        int rc = aidp_np_batch_sandbox(np, &n, sb, err);
        return rc < 0 ? rc : aidp_np_batch_host(np, &n, host, err);
}

static int build(const struct aidp_netpolicy *np, const struct aidp_hostnet *hn,
                 struct aidp_np_run *r, int netns_fd, aidp_error *err)
{
        unsigned index;
        int rc =
                aidp_np_lease_acquire(r->lease_dir, r->run_id, aidp_hostnet_slots(hn), &index, err);
        if (rc < 0)
                return rc;
        r->leased = true;
        r->lease.index = index;
        if ((rc = aidp_hostnet_lease_addrs(hn, index, &r->lease, err)) < 0)
                return rc;
        char if_name[16];
        host_if_of(index, r->run_id, if_name);
        _cleanup_(aidp_np_batch_freep) struct aidp_np_batch *sb = NULL, *host = NULL;
        snprintf(r->host_if, sizeof r->host_if, "%s", if_name);
        if ((rc = batches(np, hn, r, &sb, &host, err)) < 0)
                return rc;
        r->host_if[0] = '\0';
        /* The host table before the link exists: nothing of the run's ever
         * passes the host unfiltered. */
        if ((rc = aidp_np_batch_send(host, err)) < 0)
                return aidp_error_wrap(err, "host table aidp-%s", r->run_id);
        r->host_table = true;
        if ((rc = aidp_np_link_create(if_name, AIDP_NP_SANDBOX_IF, netns_fd, err)) < 0)
                return rc;
        memcpy(r->host_if, if_name, sizeof if_name);
        if ((rc = aidp_np_link_setup(r->host_if, &r->lease, false, err)) < 0)
                return rc;
        struct inside in = {r, sb};
        if ((rc = aidp_np_in_netns(netns_fd, configure_inside, &in, err)) < 0 || !r->with_dns)
                return rc;
        char table[220];
        snprintf(table, sizeof table, "aidp-%s", r->run_id);
        struct aidp_np_dnsproxy_conf dc = {
                .np = np,
                .listen4 = r->lease.host4,
                .client4 = r->lease.sandbox4,
                .upstreams = hn->resolvers,
                .n_upstreams = hn->n_resolvers,
                .host_table = table,
                .netns_fd = netns_fd,
        };
        return aidp_np_dnsproxy_start(&dc, &r->dns, err);
}

int aidp_netpolicy_apply(const struct aidp_netpolicy *np, const struct aidp_hostnet *hn,
                         const char *lease_dir, const char *run_id, int netns_fd,
                         struct aidp_np_run **ret, aidp_error *err)
{
        if (!aidp_netpolicy_name_ok(run_id, sizeof((struct aidp_np_run *)0)->run_id - 1))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "bad run id '%s'",
                                      run_id ? run_id : "");
        int rc = check_forwarding(hn, err);
        if (rc < 0)
                return rc;
        if (np->n_fqdns && hn->n_resolvers == 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "egress: fqdn rules need the DNS proxy, and %s names no "
                                      "resolvers (docs/egress.md)",
                                      hn->source ? hn->source : "the network configuration");
        struct aidp_np_run *r = calloc(1, sizeof *r);
        if (!r)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "egress");
        snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
        snprintf(r->lease_dir, sizeof r->lease_dir, "%s", lease_dir);
        r->with_dns = hn->n_resolvers > 0;
        if ((rc = build(np, hn, r, netns_fd, err)) < 0) {
                rollback(r);
                return aidp_error_wrap(err, "egress network");
        }
        *ret = r;
        return 0;
}

const struct aidp_hostnet_lease *aidp_netpolicy_run_lease(const struct aidp_np_run *r)
{
        return &r->lease;
}

const char *aidp_netpolicy_run_host_if(const struct aidp_np_run *r)
{
        return r->host_if;
}

const char *aidp_netpolicy_run_resolver(const struct aidp_np_run *r)
{
        return r->dns ? r->lease.host4 : NULL;
}

int aidp_netpolicy_nflog_fd(const struct aidp_np_run *r)
{
        return r->nflog ? nl_socket_get_fd(r->nflog) : -1;
}

int aidp_netpolicy_drain(struct aidp_np_run *r)
{
        return r->nflog ? aidp_np_nflog_drain(r->nflog) : 0;
}

const struct aidp_np_denials *aidp_netpolicy_denials(const struct aidp_np_run *r)
{
        return &r->denials;
}

void aidp_netpolicy_dns_stop(struct aidp_np_run *r)
{
        /* No set is filled after this; the proxy's counts join the denials. */
        aidp_np_dnsproxy_stop(r->dns, &r->denials);
        r->dns = NULL;
}

int aidp_netpolicy_teardown(struct aidp_np_run *r, aidp_error *err)
{
        if (!r)
                return 0;
        aidp_netpolicy_dns_stop(r);
        aidp_netpolicy_drain(r);
        aidp_np_nflog_close(r->nflog);
        r->nflog = NULL;
        int rc = aidp_np_nft_delete_host(r->run_id, err);
        /* The lease goes only once its link is gone, or a new run could put
         * the same addresses on a second link. */
        if (aidp_np_link_gone(r->host_if, 500) < 0 && rc == 0)
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EBUSY, "link %s remains", r->host_if);
        else if (aidp_np_lease_release(r->lease_dir, r->run_id, r->lease.index) < 0 && rc == 0)
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "releasing lease %u",
                                    r->lease.index);
        free(r);
        return rc;
}

static void gc_link(unsigned index, const char *run_id)
{
        char name[16];
        host_if_of(index, run_id, name);
        aidp_np_link_gone(name, 200);
}

int aidp_netpolicy_gc(const char *lease_dir, const char *run_id, aidp_error *err)
{
        if (!aidp_netpolicy_name_ok(run_id, sizeof((struct aidp_np_run *)0)->run_id - 1))
                return 0; /* no table or lease can carry such a name */
        int rc = aidp_np_nft_delete_host(run_id, err);
        int rc2 = aidp_np_lease_release_run(lease_dir, run_id, gc_link, rc < 0 ? NULL : err);
        return rc < 0 ? rc : rc2;
}
