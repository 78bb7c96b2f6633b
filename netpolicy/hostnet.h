#pragma once
/* The host's network configuration for egress runs (/etc/aidp/network.yaml,
 * docs/egress.md) and the address plan of one lease. Pure.
 *
 *   apiVersion: aidp/v1
 *   kind: Network
 *   pools: {ipv4: 10.213.0.0/16, ipv6: fd00:a1d9::/64}   # ipv6 optional
 *   uplink: eth0                                         # optional
 *   resolvers: [10.0.0.53, 10.0.1.53]                    # the DNS proxy's, in order
 *
 * A pool is cut into blocks of four addresses (/30, /126): lease N is block N,
 * its first usable address the host end of the run's veth, the second the
 * sandbox end. One lease index serves both families. */
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define AIDP_HOSTNET_PATH      "/etc/aidp/network.yaml"
#define AIDP_HOSTNET_MAX_SLOTS 65536u
/* The DNS proxy asks them in order, the next on timeout or SERVFAIL. */
#define AIDP_HOSTNET_MAX_RESOLVERS 8u

struct aidp_hostnet {
        char *pool4, *pool6; /* CIDRs; pool6 may be NULL */
        char *uplink;        /* may be NULL: masquerade out of any other link */
        char **resolvers;    /* addresses */
        size_t n_resolvers;
        char *source; /* file it came from */
};

/* The addresses of one lease, as text. */
struct aidp_hostnet_lease {
        unsigned index;
        char host4[16], sandbox4[16]; /* /30 */
        char host6[46], sandbox6[46]; /* /126; empty without an ipv6 pool */
};

int aidp_hostnet_parse(const char *file, const char *buf, size_t len, struct aidp_hostnet *ret,
                       aidp_error *err);
void aidp_hostnet_free(struct aidp_hostnet *h);
/* How many leases the pools hold (the smaller of the two, at most MAX_SLOTS). */
unsigned aidp_hostnet_slots(const struct aidp_hostnet *h);
int aidp_hostnet_lease_addrs(const struct aidp_hostnet *h, unsigned index,
                             struct aidp_hostnet_lease *ret, aidp_error *err);
