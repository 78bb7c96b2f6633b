#pragma once
/* The egress compiler (docs/egress.md): effective egress rules in, an
 * immutable plan and nftables rulesets as nft text out (the apply layer loads
 * the same rules as libnftnl batches). Pure: no syscalls, no printing, no
 * globals.
 *
 * The plan holds, for each family (IPv4, IPv6) and transport (TCP, UDP), a
 * list of disjoint address ranges, each with the merged, disjoint port ranges
 * it allows. Overlapping and nested CIDRs and overlapping port ranges are
 * merged here, because a concatenated nftables interval set refuses
 * overlapping elements. fqdn rules are kept aside for the DNS proxy; they
 * allow nothing by themselves. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "profiles/profile.h"

enum aidp_np_family { AIDP_NP_V4, AIDP_NP_V6, AIDP_NP_FAMILY_MAX };
enum aidp_np_proto { AIDP_NP_TCP, AIDP_NP_UDP, AIDP_NP_PROTO_MAX };

/* More set elements than this is refused: the ruleset is loaded on every run. */
#define AIDP_NP_MAX_ELEMENTS 200000u
/* fqdn rules: each gets its own pair of address sets (IPv4, IPv6) filled by
 * the run's DNS proxy (netpolicy/dns.h). */
#define AIDP_NP_MAX_FQDNS 64u
/* "fqdn4_<rule>" / "fqdn6_<rule>": type ipv4_addr / ipv6_addr, flags timeout. */
#define AIDP_NP_FQDN_SET_FMT "fqdn%d_%zu"

struct aidp_np_ports {
        uint16_t lo, hi;
};

/* Addresses are big-endian byte strings; IPv4 uses the first 4 bytes. */
struct aidp_np_range {
        uint8_t lo[16], hi[16];
        struct aidp_np_ports *ports; /* sorted, disjoint, non-adjacent */
        size_t n_ports;
};

struct aidp_np_set {
        struct aidp_np_range *ranges; /* sorted, disjoint */
        size_t n_ranges;
};

struct aidp_np_fqdn {
        char *name;
        struct aidp_np_ports ports; /* 0-65535 for any */
        bool proto[AIDP_NP_PROTO_MAX];
};

struct aidp_netpolicy {
        struct aidp_np_set sets[AIDP_NP_FAMILY_MAX][AIDP_NP_PROTO_MAX];
        struct aidp_np_fqdn *fqdns;
        size_t n_fqdns;
        size_t n_elements; /* set elements over all sets */
};

/* What the rulesets name: the run's table and links. */
struct aidp_np_names {
        const char *run_id;  /* host table "aidp-<run_id>" */
        const char *host_if; /* host end of the run's veth */
        const char *uplink;  /* masquerade out of this link; NULL: any but host_if */
        const char *sandbox_v4, *sandbox_v6; /* the sandbox end's addresses (NULL: none) */
        unsigned nflog_group;                /* NFLOG group for denials (sandbox namespace) */
        const char *proxy_v4; /* the run's DNS proxy (host end of the link); NULL: none */
};

/* Compile the effective rules (after extends and the residency decision). */
int aidp_netpolicy_compile(const struct aidp_network *net, struct aidp_netpolicy **ret,
                           aidp_error *err);
void aidp_netpolicy_free(struct aidp_netpolicy *np);

/* The ruleset for the sandbox's own namespace: table inet aidp, output hook,
 * default drop, NFLOG then TCP reset / ICMP admin-prohibited for denials. */
int aidp_netpolicy_render_sandbox(const struct aidp_netpolicy *np, const struct aidp_np_names *n,
                                  char **ret, aidp_error *err);
/* The host-side table aidp-<run_id>: the same allowlist on forward and input
 * for packets from host_if only, inbound connections to host_if dropped,
 * masquerade of the run's traffic. Every rule matches host_if. */
int aidp_netpolicy_render_host(const struct aidp_netpolicy *np, const struct aidp_np_names *n,
                               char **ret, aidp_error *err);
/* The names a host table is built from: run id, links, addresses. */
int aidp_netpolicy_names_check(const struct aidp_np_names *n, aidp_error *err);
/* "delete table inet aidp-<run_id>", for teardown and gc. */
int aidp_netpolicy_render_host_delete(const char *run_id, char **ret, aidp_error *err);

/* Names usable in a ruleset: run ids and link names are quoted into nft text. */
bool aidp_netpolicy_name_ok(const char *s, size_t max);

/* Denied packets, counted per destination, port and protocol (the NFLOG
 * payload starts at the network header). */
#define AIDP_NP_DENIAL_KEYS     64 /* distinct destinations kept; the rest is "other" */
#define AIDP_NP_DENIAL_EXAMPLES 5

struct aidp_np_denial {
        char dst[46];  /* address as text */
        uint16_t port; /* 0 for protocols without ports */
        uint8_t proto; /* IPPROTO_* */
        uint64_t count;
};

/* Names the run's DNS proxy refused, and answers it cut short because a name
 * resolved to a special-purpose address the plan does not cover. */
#define AIDP_NP_DNS_KEYS 16
struct aidp_np_dns_denial {
        char name[96]; /* as asked, cut at 95 bytes */
        char why[72];  /* "not allowed", "special address 10.0.0.5" */
        uint64_t count;
};

struct aidp_np_denials {
        uint64_t dns_total, dns_other; /* DNS denials; beyond the kept names */
        struct aidp_np_dns_denial dns[AIDP_NP_DNS_KEYS];
        size_t n_dns;
        uint64_t total, other; /* other: beyond the kept keys, or unreadable */
        struct aidp_np_denial keys[AIDP_NP_DENIAL_KEYS];
        size_t n_keys;
        char examples[AIDP_NP_DENIAL_EXAMPLES][96]; /* first few, "tcp 10.0.0.5:8080 len 60" */
        size_t n_examples;
};

/* Count one denied packet given from its IPv4 or IPv6 header on. */
void aidp_netpolicy_denial_add(struct aidp_np_denials *d, const uint8_t *pkt, size_t len);
/* Count one DNS denial (name as asked, why in a few words). */
void aidp_netpolicy_dns_denial_add(struct aidp_np_denials *d, const char *name, const char *why);
/* "proto dst:port" for a key, e.g. "tcp 10.0.0.5:8080", "udp [fd00::1]:53". */
void aidp_netpolicy_denial_str(const struct aidp_np_denial *k, char *buf, size_t len);
