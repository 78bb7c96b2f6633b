/* The DNS proxy's message handling with ldns (dns.h). Pure. */
#include "netpolicy/dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(ldns_pkt *, ldns_pkt_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(ldns_rdf *, ldns_rdf_deep_free)

static bool name_text(const ldns_rdf *owner, char *out, size_t n)
{
        char *s = ldns_rdf2str(owner);
        if (!s)
                return false;
        size_t len = strlen(s);
        if (len && s[len - 1] == '.')
                s[--len] = '\0';
        bool ok = len < n;
        if (ok) {
                for (size_t i = 0; i <= len; i++)
                        out[i] = (char)tolower((unsigned char)s[i]);
        }
        free(s);
        return ok;
}

int aidp_dns_parse_query(const uint8_t *buf, size_t len, struct aidp_dns_query *q)
{
        memset(q, 0, sizeof *q);
        if (len < LDNS_HEADER_SIZE || LDNS_QR_WIRE(buf))
                return -EBADMSG;
        q->id = LDNS_ID_WIRE(buf);
        q->udp_max = AIDP_DNS_UDP_MIN;
        _cleanup_(ldns_pkt_freep) ldns_pkt *p = NULL;
        if (ldns_wire2pkt(&p, buf, len) != LDNS_STATUS_OK)
                return -EPROTO;
        q->rd = ldns_pkt_rd(p);
        if (ldns_pkt_edns(p) && ldns_pkt_edns_udp_size(p) > AIDP_DNS_UDP_MIN)
                q->udp_max = ldns_pkt_edns_udp_size(p);
        const ldns_rr_list *qs = ldns_pkt_question(p);
        if (ldns_pkt_get_opcode(p) != LDNS_PACKET_QUERY || ldns_pkt_qdcount(p) != 1 || !qs ||
            ldns_rr_list_rr_count(qs) != 1)
                return -EPROTO;
        const ldns_rr *rr = ldns_rr_list_rr(qs, 0);
        if (!name_text(ldns_rr_owner(rr), q->name, sizeof q->name))
                return -EPROTO;
        q->qtype = (uint16_t)ldns_rr_get_type(rr);
        q->has_question = ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN;
        return q->has_question ? 0 : -EPROTO;
}

static ldns_rdf *qname_rdf(const struct aidp_dns_query *q)
{
        return ldns_dname_new_frm_str(q->name[0] ? q->name : ".");
}

/* A response shell: header from q, its question, the given rcode. */
static ldns_pkt *reply_shell(const struct aidp_dns_query *q, int rcode)
{
        ldns_pkt *p = ldns_pkt_new();
        if (!p)
                return NULL;
        ldns_pkt_set_id(p, q->id);
        ldns_pkt_set_qr(p, true);
        ldns_pkt_set_opcode(p, LDNS_PACKET_QUERY);
        ldns_pkt_set_rd(p, q->rd);
        ldns_pkt_set_ra(p, true);
        ldns_pkt_set_rcode(p, (uint8_t)rcode);
        if (!q->has_question)
                return p;
        ldns_rr *rr = ldns_rr_new();
        ldns_rdf *owner = qname_rdf(q);
        if (!rr || !owner) {
                ldns_rr_free(rr);
                ldns_rdf_deep_free(owner);
                ldns_pkt_free(p);
                return NULL;
        }
        ldns_rr_set_owner(rr, owner);
        ldns_rr_set_type(rr, (ldns_rr_type)q->qtype);
        ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
        ldns_rr_set_question(rr, true);
        ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, rr);
        return p;
}

static int to_wire(const ldns_pkt *p, uint8_t **out, size_t *outlen)
{
        if (!p)
                return -ENOMEM;
        *out = NULL;
        if (ldns_pkt2wire(out, p, outlen) != LDNS_STATUS_OK || !*out)
                return -ENOMEM;
        return 0;
}

int aidp_dns_reply_rcode(const struct aidp_dns_query *q, int rcode, bool tc, uint8_t **out,
                         size_t *outlen)
{
        _cleanup_(ldns_pkt_freep) ldns_pkt *p = reply_shell(q, rcode);
        if (p)
                ldns_pkt_set_tc(p, tc);
        return to_wire(p, out, outlen);
}

int aidp_dns_make_query(const struct aidp_dns_query *q, uint16_t id, uint8_t **out, size_t *outlen)
{
        ldns_rdf *owner = qname_rdf(q);
        if (!owner)
                return -ENOMEM;
        _cleanup_(ldns_pkt_freep) ldns_pkt *p =
                ldns_pkt_query_new(owner, (ldns_rr_type)q->qtype, LDNS_RR_CLASS_IN, LDNS_RD);
        if (!p)
                return -ENOMEM;
        ldns_pkt_set_id(p, id);
        /* Room for large answers without TCP, below common path MTUs. */
        ldns_pkt_set_edns_udp_size(p, 1232);
        return to_wire(p, out, outlen);
}

/* Is buf the answer to the question asked with id? */
static bool answers(const ldns_pkt *p, const struct aidp_dns_query *q, uint16_t id,
                    const ldns_rdf *qname)
{
        const ldns_rr_list *qs = ldns_pkt_question(p);
        if (!ldns_pkt_qr(p) || ldns_pkt_id(p) != id ||
            ldns_pkt_get_opcode(p) != LDNS_PACKET_QUERY || !qs || ldns_rr_list_rr_count(qs) != 1)
                return false;
        const ldns_rr *rr = ldns_rr_list_rr(qs, 0);
        return ldns_dname_compare(ldns_rr_owner(rr), qname) == 0 &&
               (uint16_t)ldns_rr_get_type(rr) == q->qtype &&
               ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN;
}

static ldns_rr *find_rr(const ldns_rr_list *l, const ldns_rdf *owner, ldns_rr_type t, size_t *at)
{
        for (size_t i = at ? *at : 0; l && i < ldns_rr_list_rr_count(l); i++) {
                ldns_rr *rr = ldns_rr_list_rr(l, i);
                if (ldns_rr_get_type(rr) == t && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
                    ldns_dname_compare(ldns_rr_owner(rr), owner) == 0) {
                        if (at)
                                *at = i + 1;
                        return rr;
                }
        }
        return NULL;
}

static int push_capped(ldns_pkt *out, ldns_pkt_section s, const ldns_rr *rr)
{
        ldns_rr *c = ldns_rr_clone(rr);
        if (!c)
                return -ENOMEM;
        if (ldns_rr_ttl(c) > AIDP_DNS_TTL_CAP)
                ldns_rr_set_ttl(c, AIDP_DNS_TTL_CAP);
        if (!ldns_pkt_push_rr(out, s, c)) {
                ldns_rr_free(c);
                return -ENOMEM;
        }
        return 0;
}

/* One A/AAAA record at the end of the chain: kept, or dropped as special. */
static int take_addr(const struct aidp_netpolicy *np, const ldns_rr *rr, ldns_pkt *out,
                     struct aidp_dns_result *res)
{
        const ldns_rdf *d = ldns_rr_rdf(rr, 0);
        bool v4 = ldns_rr_get_type(rr) == LDNS_RR_TYPE_A;
        size_t alen = v4 ? 4 : 16;
        if (!d || ldns_rdf_size(d) != alen || res->n_addrs == AIDP_DNS_MAX_ADDRS)
                return 0;
        struct aidp_dns_addr *a = &res->addrs[res->n_addrs];
        memset(a, 0, sizeof *a);
        a->family = v4 ? AIDP_NP_V4 : AIDP_NP_V6;
        memcpy(a->a, ldns_rdf_data(d), alen);
        if (aidp_netpolicy_special_addr(a->family, a->a) &&
            !aidp_netpolicy_covers(np, a->family, a->a)) {
                if (res->n_special++ == 0)
                        inet_ntop(v4 ? AF_INET : AF_INET6, a->a, res->special_example,
                                  sizeof res->special_example);
                return 0;
        }
        a->ttl = ldns_rr_ttl(rr) > AIDP_DNS_TTL_CAP ? AIDP_DNS_TTL_CAP : ldns_rr_ttl(rr);
        res->n_addrs++;
        return push_capped(out, LDNS_SECTION_ANSWER, rr);
}

/* The CNAME chain from the question, then the addresses of its last name. */
static int keep_chain(const struct aidp_netpolicy *np, const struct aidp_dns_query *q,
                      const ldns_pkt *in, const ldns_rdf *qname, ldns_pkt *out,
                      struct aidp_dns_result *res)
{
        const ldns_rr_list *ans = ldns_pkt_answer(in);
        const ldns_rdf *cur = qname;
        int rc = 0;
        for (int hop = 0; rc == 0 && hop < AIDP_DNS_CHAIN_MAX; hop++) {
                const ldns_rr *c = find_rr(ans, cur, LDNS_RR_TYPE_CNAME, NULL);
                if (!c || !ldns_rr_rdf(c, 0) ||
                    ldns_rdf_get_type(ldns_rr_rdf(c, 0)) != LDNS_RDF_TYPE_DNAME)
                        break;
                rc = push_capped(out, LDNS_SECTION_ANSWER, c);
                cur = ldns_rr_rdf(c, 0);
        }
        if (q->qtype != AIDP_DNS_TYPE_A && q->qtype != AIDP_DNS_TYPE_AAAA)
                return rc;
        size_t at = 0;
        const ldns_rr *rr;
        while (rc == 0 && (rr = find_rr(ans, cur, (ldns_rr_type)q->qtype, &at)))
                rc = take_addr(np, rr, out, res);
        /* Negative answers keep their SOA: the job caches the denial as long
         * as upstream says. */
        const ldns_rr_list *auth = ldns_pkt_authority(in);
        for (size_t i = 0; rc == 0 && res->n_addrs == 0 && auth && i < ldns_rr_list_rr_count(auth);
             i++)
                if (ldns_rr_get_type(ldns_rr_list_rr(auth, i)) == LDNS_RR_TYPE_SOA)
                        rc = push_capped(out, LDNS_SECTION_AUTHORITY, ldns_rr_list_rr(auth, i));
        return rc;
}

int aidp_dns_filter_answer(const struct aidp_netpolicy *np, const struct aidp_dns_query *q,
                           uint16_t id, const uint8_t *buf, size_t len, struct aidp_dns_result *res,
                           uint8_t **out, size_t *outlen)
{
        memset(res, 0, sizeof *res);
        _cleanup_(ldns_pkt_freep) ldns_pkt *in = NULL;
        if (ldns_wire2pkt(&in, buf, len) != LDNS_STATUS_OK)
                return -EBADMSG;
        _cleanup_(ldns_rdf_deep_freep) ldns_rdf *qname = qname_rdf(q);
        if (!qname)
                return -ENOMEM;
        if (!answers(in, q, id, qname))
                return -EBADMSG;
        res->rcode = ldns_pkt_get_rcode(in);
        res->truncated = ldns_pkt_tc(in);
        int rcode = res->rcode;
        if (rcode != AIDP_DNS_NOERROR && rcode != AIDP_DNS_NXDOMAIN)
                rcode = AIDP_DNS_SERVFAIL;
        _cleanup_(ldns_pkt_freep) ldns_pkt *p = reply_shell(q, rcode);
        if (!p)
                return -ENOMEM;
        ldns_pkt_set_ra(p, ldns_pkt_ra(in));
        int rc = res->truncated ? 0 : keep_chain(np, q, in, qname, p, res);
        return rc < 0 ? rc : to_wire(p, out, outlen);
}

uint64_t aidp_netpolicy_fqdn_match(const struct aidp_netpolicy *np, const char *name)
{
        uint64_t m = 0;
        size_t n = strlen(name);
        for (size_t i = 0; i < np->n_fqdns && i < 64; i++) {
                const char *pat = np->fqdns[i].name;
                if (!strncmp(pat, "*.", 2)) {
                        size_t s = strlen(pat + 1); /* ".suffix" */
                        if (n > s && !strcasecmp(name + n - s, pat + 1))
                                m |= UINT64_C(1) << i;
                } else if (!strcasecmp(name, pat)) {
                        m |= UINT64_C(1) << i;
                }
        }
        return m;
}

struct special {
        uint8_t a[16];
        unsigned plen;
};

static bool in_prefix(const uint8_t *a, const struct special *s)
{
        for (unsigned b = 0; b < s->plen; b++) {
                uint8_t m = (uint8_t)(0x80u >> (b % 8));
                if ((a[b / 8] & m) != (s->a[b / 8] & m))
                        return false;
        }
        return true;
}

bool aidp_netpolicy_special_addr(enum aidp_np_family f, const uint8_t a[16])
{
        static const struct special v4[] = {
                {{0}, 8},         {{10}, 8},       {{100, 64}, 10},   {{127}, 8},
                {{169, 254}, 16}, {{172, 16}, 12}, {{192, 0, 0}, 24}, {{192, 168}, 16},
                {{198, 18}, 15},  {{224}, 4},      {{240}, 4},
        };
        static const struct special v6[] = {
                {{0}, 127}, /* :: and ::1 */
                {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96},
                {{0xfc}, 7},
                {{0xfe, 0x80}, 10},
                {{0xff}, 8},
        };
        const struct special *t = f == AIDP_NP_V4 ? v4 : v6;
        size_t n = f == AIDP_NP_V4 ? sizeof v4 / sizeof *v4 : sizeof v6 / sizeof *v6;
        for (size_t i = 0; i < n; i++)
                if (in_prefix(a, &t[i]))
                        return true;
        return false;
}

bool aidp_netpolicy_covers(const struct aidp_netpolicy *np, enum aidp_np_family f,
                           const uint8_t a[16])
{
        size_t len = f == AIDP_NP_V4 ? 4 : 16;
        for (int p = 0; p < AIDP_NP_PROTO_MAX; p++) {
                const struct aidp_np_set *s = &np->sets[f][p];
                for (size_t i = 0; i < s->n_ranges; i++)
                        if (memcmp(s->ranges[i].lo, a, len) <= 0 &&
                            memcmp(a, s->ranges[i].hi, len) <= 0)
                                return true;
        }
        return false;
}
