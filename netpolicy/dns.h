#pragma once
/* The DNS proxy's message handling (docs/egress.md, "Egress by DNS name").
 * Pure: DNS messages are parsed and built with ldns, never by hand; no
 * sockets here (netpolicy/apply/dnsproxy.c moves the bytes).
 *
 * A query from the job is checked (one question, class IN, opcode QUERY) and
 * its name matched against the plan's fqdn rules. An allowed A/AAAA query is
 * re-asked upstream with a fresh id; the upstream answer is checked against
 * the question, and only the CNAME chain from the asked name and the A/AAAA
 * records at its end are kept. Addresses in special-purpose ranges (private,
 * loopback, link-local, ...) that no CIDR rule of the plan covers are dropped
 * and counted. TTLs are capped, so the job never caches an address longer
 * than the proxy keeps it in the run's nft sets. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netpolicy/netpolicy.h"

#define AIDP_DNS_MAX_ADDRS 256    /* addresses kept from one answer */
#define AIDP_DNS_TTL_CAP   86400u /* seconds: no address lives longer in a set */
#define AIDP_DNS_TTL_GRACE 10u    /* seconds added to the TTL in the set */
#define AIDP_DNS_UDP_MIN   512u   /* a UDP answer without EDNS */
#define AIDP_DNS_MAX_MSG   65535u /* a TCP message */
#define AIDP_DNS_CHAIN_MAX 16     /* CNAME links followed */

/* RCODEs used here. */
enum {
        AIDP_DNS_NOERROR = 0,
        AIDP_DNS_FORMERR = 1,
        AIDP_DNS_SERVFAIL = 2,
        AIDP_DNS_NXDOMAIN = 3,
        AIDP_DNS_REFUSED = 5
};
enum { AIDP_DNS_TYPE_A = 1, AIDP_DNS_TYPE_CNAME = 5, AIDP_DNS_TYPE_AAAA = 28 };

struct aidp_dns_query {
        uint16_t id;
        uint16_t qtype;
        bool has_question;
        char name[256];   /* lower case, without the final dot ("" for the root) */
        uint16_t udp_max; /* the largest UDP answer the job takes */
        bool rd;
};

/* A query from the job. 0: a query (q filled); -EPROTO: answerable with
 * FORMERR (q->id set, q->has_question maybe); -EBADMSG: not worth an answer
 * (no header, or a response). */
int aidp_dns_parse_query(const uint8_t *buf, size_t len, struct aidp_dns_query *q);

/* An answer carrying only the question and rcode (tc: truncated). Allocated. */
int aidp_dns_reply_rcode(const struct aidp_dns_query *q, int rcode, bool tc, uint8_t **out,
                         size_t *outlen);

/* The question re-asked upstream with id (recursion desired, EDNS 1232). */
int aidp_dns_make_query(const struct aidp_dns_query *q, uint16_t id, uint8_t **out, size_t *outlen);

struct aidp_dns_addr {
        enum aidp_np_family family;
        uint8_t a[16];
        uint32_t ttl; /* capped */
};

struct aidp_dns_result {
        int rcode;      /* upstream's */
        bool truncated; /* upstream set TC: ask again over TCP */
        struct aidp_dns_addr addrs[AIDP_DNS_MAX_ADDRS];
        size_t n_addrs;
        size_t n_special;         /* addresses dropped as special-purpose */
        char special_example[46]; /* the first one, as text */
};

/* Check upstream's answer (sent with id) against q and build the job's answer
 * (with q->id) from what is kept. 0, or -EBADMSG when buf is not the answer
 * to that question (drop it and keep waiting). *out is allocated. */
int aidp_dns_filter_answer(const struct aidp_netpolicy *np, const struct aidp_dns_query *q,
                           uint16_t id, const uint8_t *buf, size_t len, struct aidp_dns_result *res,
                           uint8_t **out, size_t *outlen);

/* Which fqdn rules allow name (exact, or "*.suffix" for names strictly below
 * suffix; case-insensitive): bit i for rule i. The plan has at most
 * AIDP_NP_MAX_FQDNS rules. */
uint64_t aidp_netpolicy_fqdn_match(const struct aidp_netpolicy *np, const char *name);

/* Special-purpose addresses a public name should not resolve to (private,
 * loopback, link-local, shared, multicast, unspecified, ULA, v4-mapped). */
bool aidp_netpolicy_special_addr(enum aidp_np_family f, const uint8_t a[16]);
/* Whether a CIDR rule of the plan covers the address (any port, protocol). */
bool aidp_netpolicy_covers(const struct aidp_netpolicy *np, enum aidp_np_family f,
                           const uint8_t a[16]);
