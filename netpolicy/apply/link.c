/* The run's veth pair, its addresses and the sandbox's default routes, through
 * libnl-route (rtnetlink). */
#include <errno.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "netpolicy/apply/link.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_sock *, nl_socket_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_link *, rtnl_link_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_addr *, rtnl_addr_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_route *, rtnl_route_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_addr *, nl_addr_put)

static int nl_fail(aidp_error *err, int nlerr, const char *what, const char *name)
{
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "%s %s: %s", what, name,
                              nl_geterror(nlerr));
}

static struct nl_sock *route_sock(aidp_error *err)
{
        struct nl_sock *sk = nl_socket_alloc();
        if (!sk) {
                aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "libnl socket");
                return NULL;
        }
        int rc = nl_connect(sk, NETLINK_ROUTE);
        if (rc < 0) {
                nl_fail(err, rc, "connecting to", "rtnetlink");
                nl_socket_free(sk);
                return NULL;
        }
        return sk;
}

int aidp_np_link_create(const char *host_if, const char *sandbox_if, int netns_fd, aidp_error *err)
{
        _cleanup_(nl_socket_freep) struct nl_sock *sk = route_sock(err);
        if (!sk)
                return -EIO;
        _cleanup_(rtnl_link_putp) struct rtnl_link *veth = rtnl_link_veth_alloc();
        if (!veth)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "veth");
        _cleanup_(rtnl_link_putp) struct rtnl_link *peer = rtnl_link_veth_get_peer(veth);
        rtnl_link_set_name(veth, host_if);
        rtnl_link_set_name(peer, sandbox_if);
        /* The peer is born in the run's namespace: it is never visible on the
         * host under a name another run could be given. */
        rtnl_link_set_ns_fd(peer, netns_fd);
        int rc = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
        if (rc < 0)
                return nl_fail(err, rc, "creating veth", host_if);
        return 0;
}

int aidp_np_link_delete(const char *host_if)
{
        _cleanup_(nl_socket_freep) struct nl_sock *sk = route_sock(NULL);
        if (!sk)
                return -EIO;
        _cleanup_(rtnl_link_putp) struct rtnl_link *l = rtnl_link_alloc();
        if (!l)
                return -ENOMEM;
        rtnl_link_set_name(l, host_if);
        int rc = rtnl_link_delete(sk, l);
        return rc < 0 && rc != -NLE_NODEV && rc != -NLE_OBJ_NOTFOUND ? -EIO : 0;
}

static int add_addr(struct nl_sock *sk, int ifindex, const char *cidr, const char *ifname,
                    aidp_error *err)
{
        _cleanup_(rtnl_addr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
        if (!a)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "address");
        int rc = nl_addr_parse(cidr, AF_UNSPEC, &local);
        if (rc < 0)
                return nl_fail(err, rc, "parsing address", cidr);
        rtnl_addr_set_ifindex(a, ifindex);
        rtnl_addr_set_local(a, local);
        /* No duplicate address detection: the link has exactly two ends and
         * both addresses come from one lease; DAD would only delay IPv6. */
        if (nl_addr_get_family(local) == AF_INET6)
                rtnl_addr_set_flags(a, IFA_F_NODAD);
        if ((rc = rtnl_addr_add(sk, a, 0)) < 0)
                return nl_fail(err, rc, "adding address to", ifname);
        return 0;
}

static int set_up(struct nl_sock *sk, const char *ifname, int *ifindex, aidp_error *err)
{
        _cleanup_(rtnl_link_putp) struct rtnl_link *cur = NULL;
        _cleanup_(rtnl_link_putp) struct rtnl_link *chg = rtnl_link_alloc();
        int rc = rtnl_link_get_kernel(sk, 0, ifname, &cur);
        if (rc < 0)
                return nl_fail(err, rc, "finding link", ifname);
        if (!chg)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "link");
        rtnl_link_set_flags(chg, IFF_UP);
        if ((rc = rtnl_link_change(sk, cur, chg, 0)) < 0)
                return nl_fail(err, rc, "bringing up", ifname);
        *ifindex = rtnl_link_get_ifindex(cur);
        return 0;
}

static int default_route(struct nl_sock *sk, int ifindex, int family, const char *gw,
                         aidp_error *err)
{
        _cleanup_(rtnl_route_putp) struct rtnl_route *r = rtnl_route_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *dst = NULL;
        _cleanup_(nl_addr_putp) struct nl_addr *via = NULL;
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
        int rc;
        if (!r || !nh) {
                rtnl_route_nh_free(nh);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "route");
        }
        if ((rc = nl_addr_parse("default", family, &dst)) < 0 ||
            (rc = nl_addr_parse(gw, family, &via)) < 0) {
                rtnl_route_nh_free(nh);
                return nl_fail(err, rc, "parsing gateway", gw);
        }
        rtnl_route_set_family(r, (uint8_t)family);
        rtnl_route_set_dst(r, dst);
        rtnl_route_nh_set_ifindex(nh, ifindex);
        rtnl_route_nh_set_gateway(nh, via);
        rtnl_route_add_nexthop(r, nh); /* r owns nh from here */
        if ((rc = rtnl_route_add(sk, r, NLM_F_CREATE | NLM_F_EXCL)) < 0)
                return nl_fail(err, rc, "adding the default route via", gw);
        return 0;
}

int aidp_np_link_setup(const char *ifname, const struct aidp_hostnet_lease *l, bool sandbox_end,
                       aidp_error *err)
{
        _cleanup_(nl_socket_freep) struct nl_sock *sk = route_sock(err);
        if (!sk)
                return -EIO;
        int ifindex = 0, rc;
        char cidr[64];
        snprintf(cidr, sizeof cidr, "%s/30", sandbox_end ? l->sandbox4 : l->host4);
        if ((rc = set_up(sk, ifname, &ifindex, err)) < 0 ||
            (rc = add_addr(sk, ifindex, cidr, ifname, err)) < 0)
                return rc;
        if (l->host6[0]) {
                snprintf(cidr, sizeof cidr, "%s/126", sandbox_end ? l->sandbox6 : l->host6);
                if ((rc = add_addr(sk, ifindex, cidr, ifname, err)) < 0)
                        return rc;
        }
        if (!sandbox_end)
                return 0;
        if ((rc = default_route(sk, ifindex, AF_INET, l->host4, err)) < 0)
                return rc;
        if (l->host6[0])
                rc = default_route(sk, ifindex, AF_INET6, l->host6, err);
        return rc;
}

int aidp_np_link_gone(const char *host_if, int timeout_ms)
{
        _cleanup_(nl_socket_freep) struct nl_sock *sk = route_sock(NULL);
        if (!sk)
                return -EIO;
        /* The kernel frees a namespace, and the veth with it, shortly after
         * its last process: wait for that rather than pay for a delete. */
        for (int waited = 0; waited < timeout_ms; waited++) {
                struct rtnl_link *l = NULL;
                int rc = rtnl_link_get_kernel(sk, 0, host_if, &l);
                if (rc == -NLE_NODEV || rc == -NLE_OBJ_NOTFOUND)
                        return 0;
                if (l)
                        rtnl_link_put(l);
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
        }
        return aidp_np_link_delete(host_if);
}
