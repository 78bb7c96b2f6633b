/* The DNS proxy's message handling without sockets (netpolicy/dns.c): queries
 * checked, names matched, upstream answers filtered (CNAME chains, AAAA,
 * special-purpose addresses, TTL cap, truncation, answers to another
 * question). Test messages are built with ldns, as the proxy's are. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "netpolicy/dns.h"

static struct aidp_netpolicy *plan(void)
{
        static struct aidp_egress_rule rules[] = {
                {.fqdn = "web.allowed.example", .port_min = 443, .port_max = 443},
                {.fqdn = "*.wild.example"},
                {.cidr = "10.7.0.0/16", .port_min = 22, .port_max = 22},
        };
        struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = rules, .n_rules = 3};
        struct aidp_netpolicy *np = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_netpolicy_compile(&net, &np, &err), 0, "%s", err.msg);
        return np;
}

static void wire(ldns_pkt *p, uint8_t **buf, size_t *len)
{
        cr_assert_eq(ldns_pkt2wire(buf, p, len), LDNS_STATUS_OK);
        ldns_pkt_free(p);
}

static ldns_pkt *query(const char *name, ldns_rr_type t, uint16_t id)
{
        ldns_pkt *p =
                ldns_pkt_query_new(ldns_dname_new_frm_str(name), t, LDNS_RR_CLASS_IN, LDNS_RD);
        ldns_pkt_set_id(p, id);
        return p;
}

/* An upstream answer to name/type with id, holding the given records. */
static void answer(const char *name, ldns_rr_type t, uint16_t id, const char *const rrs[], bool tc,
                   uint8_t **buf, size_t *len)
{
        ldns_pkt *p = query(name, t, id);
        ldns_pkt_set_qr(p, true);
        ldns_pkt_set_ra(p, true);
        ldns_pkt_set_tc(p, tc);
        for (size_t i = 0; rrs && rrs[i]; i++) {
                ldns_rr *rr = NULL;
                cr_assert_eq(ldns_rr_new_frm_str(&rr, rrs[i], 0, NULL, NULL), LDNS_STATUS_OK, "%s",
                             rrs[i]);
                ldns_pkt_push_rr(
                        p, strstr(rrs[i], " SOA ") ? LDNS_SECTION_AUTHORITY : LDNS_SECTION_ANSWER,
                        rr);
        }
        wire(p, buf, len);
}

static struct aidp_dns_query parsed(const char *name, ldns_rr_type t, uint16_t id)
{
        uint8_t *buf;
        size_t len;
        wire(query(name, t, id), &buf, &len);
        struct aidp_dns_query q;
        cr_assert_eq(aidp_dns_parse_query(buf, len, &q), 0);
        free(buf);
        return q;
}

Test(dns, queries_are_parsed_and_names_matched)
{
        struct aidp_dns_query q = parsed("Web.Allowed.Example.", LDNS_RR_TYPE_AAAA, 0x1234);
        cr_expect_str_eq(q.name, "web.allowed.example");
        cr_expect_eq(q.qtype, AIDP_DNS_TYPE_AAAA);
        cr_expect_eq(q.id, 0x1234);
        cr_expect_eq(q.udp_max, 512);
        struct aidp_netpolicy *np = plan();
        cr_expect_eq(aidp_netpolicy_fqdn_match(np, "web.allowed.example"), 1);
        cr_expect_eq(aidp_netpolicy_fqdn_match(np, "WEB.allowed.example"), 1);
        cr_expect_eq(aidp_netpolicy_fqdn_match(np, "a.web.allowed.example"), 0);
        cr_expect_eq(aidp_netpolicy_fqdn_match(np, "a.b.wild.example"), 2);
        cr_expect_eq(aidp_netpolicy_fqdn_match(np, "wild.example"), 0, "*.x is below x only");
        cr_expect_eq(aidp_netpolicy_fqdn_match(np, "xwild.example"), 0);
        cr_expect_eq(aidp_netpolicy_fqdn_match(np, ""), 0);
        aidp_netpolicy_free(np);
}

Test(dns, bad_queries_get_formerr_or_nothing)
{
        struct aidp_dns_query q;
        uint8_t shortmsg[5] = {1, 2, 3, 4, 5};
        cr_expect_eq(aidp_dns_parse_query(shortmsg, sizeof shortmsg, &q), -EBADMSG);
        uint8_t *buf;
        size_t len;
        answer("web.allowed.example", LDNS_RR_TYPE_A, 7, NULL, false, &buf, &len);
        cr_expect_eq(aidp_dns_parse_query(buf, len, &q), -EBADMSG, "a response is no query");
        free(buf);
        /* header only, says one question: cut short */
        uint8_t hdr[12] = {0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
        cr_expect_eq(aidp_dns_parse_query(hdr, sizeof hdr, &q), -EPROTO);
        cr_expect_eq(q.id, 0xabcd);
        uint8_t *out;
        size_t olen;
        cr_assert_eq(aidp_dns_reply_rcode(&q, AIDP_DNS_FORMERR, false, &out, &olen), 0);
        ldns_pkt *p = NULL;
        cr_assert_eq(ldns_wire2pkt(&p, out, olen), LDNS_STATUS_OK);
        cr_expect_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_FORMERR);
        cr_expect_eq(ldns_pkt_id(p), 0xabcd);
        cr_expect(ldns_pkt_qr(p));
        ldns_pkt_free(p);
        free(out);
}

static ldns_pkt *filter(struct aidp_netpolicy *np, const char *name, ldns_rr_type t,
                        const char *const rrs[], struct aidp_dns_result *res)
{
        struct aidp_dns_query q = parsed(name, t, 0x4242);
        uint8_t *buf, *out = NULL;
        size_t len, olen = 0;
        answer(name, t, 0x9999, rrs, false, &buf, &len);
        cr_assert_eq(aidp_dns_filter_answer(np, &q, 0x9999, buf, len, res, &out, &olen), 0);
        free(buf);
        ldns_pkt *p = NULL;
        cr_assert_eq(ldns_wire2pkt(&p, out, olen), LDNS_STATUS_OK);
        free(out);
        cr_expect_eq(ldns_pkt_id(p), 0x4242, "the job's own id");
        return p;
}

Test(dns, cname_chains_are_followed_and_stray_records_dropped)
{
        struct aidp_netpolicy *np = plan();
        const char *rrs[] = {"web.allowed.example. 300 IN CNAME cdn.other.example.",
                             "cdn.other.example. 60 IN CNAME edge.cdn.example.",
                             "edge.cdn.example. 20 IN A 192.0.2.7",
                             "edge.cdn.example. 999999 IN A 192.0.2.8",
                             "stray.example. 30 IN A 192.0.2.66", /* not on the chain */
                             NULL};
        struct aidp_dns_result res;
        ldns_pkt *p = filter(np, "web.allowed.example", LDNS_RR_TYPE_A, rrs, &res);
        cr_expect_eq(ldns_pkt_ancount(p), 4, "two CNAMEs and two addresses");
        cr_assert_eq(res.n_addrs, 2);
        cr_expect_eq(res.addrs[0].family, AIDP_NP_V4);
        cr_expect_eq(memcmp(res.addrs[0].a, (uint8_t[]){192, 0, 2, 7}, 4), 0);
        cr_expect_eq(res.addrs[0].ttl, 20);
        cr_expect_eq(res.addrs[1].ttl, AIDP_DNS_TTL_CAP, "TTLs are capped");
        for (size_t i = 0; i < ldns_pkt_ancount(p); i++)
                cr_expect_leq(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), i)), AIDP_DNS_TTL_CAP,
                              "the job never caches longer than the set");
        ldns_pkt_free(p);
        aidp_netpolicy_free(np);
}

Test(dns, special_addresses_are_dropped_unless_a_cidr_rule_covers_them)
{
        struct aidp_netpolicy *np = plan();
        const char *rrs[] = {"web.allowed.example. 5 IN A 10.1.2.3",
                             "web.allowed.example. 5 IN A 127.0.0.1",
                             "web.allowed.example. 5 IN A 169.254.169.254",
                             "web.allowed.example. 5 IN A 10.7.0.9", /* 10.7.0.0/16 rule */
                             "web.allowed.example. 5 IN A 203.0.113.9",
                             NULL};
        struct aidp_dns_result res;
        ldns_pkt *p = filter(np, "web.allowed.example", LDNS_RR_TYPE_A, rrs, &res);
        cr_expect_eq(res.n_special, 3);
        cr_expect_str_eq(res.special_example, "10.1.2.3");
        cr_expect_eq(res.n_addrs, 2);
        cr_expect_eq(ldns_pkt_ancount(p), 2);
        ldns_pkt_free(p);
        const char *v6[] = {"web.allowed.example. 5 IN AAAA fd00::1",
                            "web.allowed.example. 5 IN AAAA ::ffff:10.0.0.1",
                            "web.allowed.example. 5 IN AAAA fe80::1",
                            "web.allowed.example. 5 IN AAAA 2001:db8::5", NULL};
        p = filter(np, "web.allowed.example", LDNS_RR_TYPE_AAAA, v6, &res);
        cr_expect_eq(res.n_special, 3);
        cr_assert_eq(res.n_addrs, 1);
        cr_expect_eq(res.addrs[0].family, AIDP_NP_V6);
        ldns_pkt_free(p);
        aidp_netpolicy_free(np);
}

Test(dns, negative_and_truncated_answers)
{
        struct aidp_netpolicy *np = plan();
        const char *soa[] = {"allowed.example. 60 IN SOA ns.allowed.example. h.allowed.example. "
                             "1 3600 600 86400 60",
                             NULL};
        struct aidp_dns_result res;
        ldns_pkt *p = filter(np, "web.allowed.example", LDNS_RR_TYPE_AAAA, soa, &res);
        cr_expect_eq(res.n_addrs, 0);
        cr_expect_eq(ldns_pkt_nscount(p), 1, "the SOA stays for negative caching");
        ldns_pkt_free(p);
        /* TC from upstream: the proxy asks again over TCP */
        struct aidp_dns_query q = parsed("web.allowed.example", LDNS_RR_TYPE_A, 1);
        uint8_t *buf, *out = NULL;
        size_t len, olen;
        answer("web.allowed.example", LDNS_RR_TYPE_A, 2, NULL, true, &buf, &len);
        cr_expect_eq(aidp_dns_filter_answer(np, &q, 2, buf, len, &res, &out, &olen), 0);
        cr_expect(res.truncated);
        free(out);
        out = NULL;
        /* another id or another question is not the answer */
        cr_expect_eq(aidp_dns_filter_answer(np, &q, 3, buf, len, &res, &out, &olen), -EBADMSG);
        free(buf);
        answer("evil.example", LDNS_RR_TYPE_A, 2, NULL, false, &buf, &len);
        cr_expect_eq(aidp_dns_filter_answer(np, &q, 2, buf, len, &res, &out, &olen), -EBADMSG);
        free(buf);
        answer("web.allowed.example", LDNS_RR_TYPE_AAAA, 2, NULL, false, &buf, &len);
        cr_expect_eq(aidp_dns_filter_answer(np, &q, 2, buf, len, &res, &out, &olen), -EBADMSG);
        free(buf);
        aidp_netpolicy_free(np);
}

Test(dns, upstream_query_asks_the_same_question)
{
        struct aidp_dns_query q = parsed("x.wild.example", LDNS_RR_TYPE_AAAA, 77);
        uint8_t *out;
        size_t olen;
        cr_assert_eq(aidp_dns_make_query(&q, 0x5151, &out, &olen), 0);
        ldns_pkt *p = NULL;
        cr_assert_eq(ldns_wire2pkt(&p, out, olen), LDNS_STATUS_OK);
        cr_expect_eq(ldns_pkt_id(p), 0x5151);
        cr_expect(ldns_pkt_rd(p));
        cr_expect_eq(ldns_pkt_edns_udp_size(p), 1232);
        const ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_question(p), 0);
        cr_expect_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_AAAA);
        char *s = ldns_rdf2str(ldns_rr_owner(rr));
        cr_expect_str_eq(s, "x.wild.example.");
        free(s);
        ldns_pkt_free(p);
        free(out);
}
