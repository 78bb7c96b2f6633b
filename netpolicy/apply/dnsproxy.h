#pragma once
/* A run's DNS proxy (docs/egress.md, "Egress by DNS name"): a process the
 * supervisor forks, outside the sandbox, listening on UDP and TCP port 53 of
 * the host end of the run's link. It answers only names the plan's fqdn rules
 * allow, asks the configured upstreams in order, and adds the answered addresses to the
 * run's fqdn sets (sandbox table and host table) before the answer leaves;
 * every other name gets REFUSED and is counted as a denial. */
#include <sys/types.h>

#include "common/error.h"
#include "netpolicy/netpolicy.h"

struct aidp_np_dnsproxy;

struct aidp_np_dnsproxy_conf {
        const struct aidp_netpolicy *np;
        const char *listen4; /* host end of the run's link */
        const char *client4; /* the sandbox end: the only client answered */
        /* IPv4 or IPv6 addresses of the resolvers, port 53, asked in order:
         * the next one when one times out, fails or answers SERVFAIL. */
        char *const *upstreams;
        size_t n_upstreams;     /* 1 to AIDP_HOSTNET_MAX_RESOLVERS */
        const char *host_table; /* "aidp-<run id>" in this namespace */
        int netns_fd;           /* the run's namespace, holding table "aidp" */
};

/* Bind the sockets, open the set connections, fork the proxy. */
int aidp_np_dnsproxy_start(const struct aidp_np_dnsproxy_conf *conf, struct aidp_np_dnsproxy **ret,
                           aidp_error *err);
pid_t aidp_np_dnsproxy_pid(const struct aidp_np_dnsproxy *p);
/* Stop it, add its denials to d, reap it, free p. */
void aidp_np_dnsproxy_stop(struct aidp_np_dnsproxy *p, struct aidp_np_denials *d);
