/* The egress compiler without the kernel: merged plans checked element by
 * element, and golden rulesets (tests/data/netpolicy/; AIDP_UPDATE_GOLDEN=1
 * rewrites them). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "netpolicy/netpolicy.h"
#include "profile_testenv.h"

#define GOLD AIDP_SOURCE_DIR "/tests/data/netpolicy"

static struct aidp_egress_rule R(const char *cidr, uint16_t lo, uint16_t hi, int proto) {
        return (struct aidp_egress_rule){
                .cidr = (char *)cidr, .port_min = lo, .port_max = hi, .protocol = proto};
}

static struct aidp_netpolicy *
compile(struct aidp_egress_rule *rules, size_t n)
{
        struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = rules, .n_rules = n};
        struct aidp_netpolicy *np = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_netpolicy_compile(&net, &np, &err), 0, "%s", err.msg);
        return np;
}

static void expect_range(const struct aidp_np_range *r, int af, const char *lo, const char *hi,
                         const char *ports)
{
        char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN], p[256] = "";
        inet_ntop(af, r->lo, a, sizeof a);
        inet_ntop(af, r->hi, b, sizeof b);
        cr_expect_str_eq(a, lo);
        cr_expect_str_eq(b, hi);
        for (size_t i = 0; i < r->n_ports; i++) {
                size_t n = strlen(p);
                snprintf(p + n, sizeof p - n, "%s%u-%u", i ? "," : "", r->ports[i].lo,
                         r->ports[i].hi);
        }
        cr_expect_str_eq(p, ports, "%s-%s", a, b);
}

static void expect_golden(const char *text, const char *name)
{
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", GOLD, name);
        if (getenv("AIDP_UPDATE_GOLDEN")) {
                FILE *w = fopen(path, "w");
                cr_assert_not_null(w, "%s", path);
                fputs(text, w);
                fclose(w);
        }
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s (AIDP_UPDATE_GOLDEN=1 writes it)", path);
        char *want = calloc(1, 1 << 20);
        size_t n = fread(want, 1, (1 << 20) - 1, f);
        want[n] = '\0';
        fclose(f);
        cr_assert_str_eq(text, want, "ruleset differs from %s:\n%s", name, text);
        free(want);
}

Test(netpolicy, nested_and_overlapping_cidrs_and_ports_merge_to_disjoint_ranges)
{
        struct aidp_egress_rule r[] = {
                R("10.0.0.0/8", 443, 443, IPPROTO_TCP),  R("10.1.0.0/16", 80, 90, IPPROTO_TCP),
                R("10.1.0.0/16", 85, 100, IPPROTO_TCP),  /* overlaps the one above */
                R("10.1.2.0/24", 444, 444, IPPROTO_TCP), /* adjacent to 443 */
                R("10.0.0.0/8", 443, 443, IPPROTO_TCP),  /* duplicate */
        };
        struct aidp_netpolicy *np = compile(r, ARRAY_SIZE(r));
        const struct aidp_np_set *s = &np->sets[AIDP_NP_V4][AIDP_NP_TCP];
        cr_assert_eq(s->n_ranges, 5);
        expect_range(&s->ranges[0], AF_INET, "10.0.0.0", "10.0.255.255", "443-443");
        expect_range(&s->ranges[1], AF_INET, "10.1.0.0", "10.1.1.255", "80-100,443-443");
        expect_range(&s->ranges[2], AF_INET, "10.1.2.0", "10.1.2.255", "80-100,443-444");
        expect_range(&s->ranges[3], AF_INET, "10.1.3.0", "10.1.255.255", "80-100,443-443");
        expect_range(&s->ranges[4], AF_INET, "10.2.0.0", "10.255.255.255", "443-443");
        cr_expect_eq(np->sets[AIDP_NP_V4][AIDP_NP_UDP].n_ranges, 0);
        cr_expect_eq(np->n_elements, 1 + 2 + 2 + 2 + 1);
        aidp_netpolicy_free(np);
}

Test(netpolicy, adjacent_blocks_with_equal_ports_join)
{
        struct aidp_egress_rule r[] = {
                R("192.168.2.0/24", 53, 53, 0),
                R("192.168.3.0/24", 53, 53, 0),
                R("192.168.4.0/23", 53, 53, IPPROTO_UDP),
        };
        struct aidp_netpolicy *np = compile(r, ARRAY_SIZE(r));
        const struct aidp_np_set *t = &np->sets[AIDP_NP_V4][AIDP_NP_TCP];
        const struct aidp_np_set *u = &np->sets[AIDP_NP_V4][AIDP_NP_UDP];
        cr_assert_eq(t->n_ranges, 1);
        expect_range(&t->ranges[0], AF_INET, "192.168.2.0", "192.168.3.255", "53-53");
        cr_assert_eq(u->n_ranges, 1);
        expect_range(&u->ranges[0], AF_INET, "192.168.2.0", "192.168.5.255", "53-53");
        aidp_netpolicy_free(np);
}

Test(netpolicy, whole_address_spaces_and_any_port)
{
        struct aidp_egress_rule r[] = {
                R("0.0.0.0/0", 0, 0, IPPROTO_UDP),
                R("::/0", 1000, 2000, IPPROTO_TCP),
                R("ffff::/16", 0, 0, IPPROTO_TCP),
                R("2001:db8::1/128", 22, 22, IPPROTO_TCP),
        };
        struct aidp_netpolicy *np = compile(r, ARRAY_SIZE(r));
        const struct aidp_np_set *u4 = &np->sets[AIDP_NP_V4][AIDP_NP_UDP];
        cr_assert_eq(u4->n_ranges, 1);
        expect_range(&u4->ranges[0], AF_INET, "0.0.0.0", "255.255.255.255", "0-65535");
        const struct aidp_np_set *t6 = &np->sets[AIDP_NP_V6][AIDP_NP_TCP];
        cr_assert_eq(t6->n_ranges, 4);
        expect_range(&t6->ranges[0], AF_INET6, "::", "2001:db8::", "1000-2000");
        expect_range(&t6->ranges[1], AF_INET6, "2001:db8::1", "2001:db8::1", "22-22,1000-2000");
        expect_range(&t6->ranges[2], AF_INET6, "2001:db8::2",
                     "fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1000-2000");
        expect_range(&t6->ranges[3], AF_INET6, "ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                     "0-65535");
        aidp_netpolicy_free(np);
}

Test(netpolicy, fqdn_rules_allow_nothing_by_themselves)
{
        struct aidp_egress_rule r[] = {
                {.fqdn = "pypi.internal.example",
                 .port_min = 443,
                 .port_max = 443,
                 .protocol = IPPROTO_TCP},
        };
        struct aidp_netpolicy *np = compile(r, 1);
        cr_assert_eq(np->n_elements, 0);
        cr_assert_eq(np->n_fqdns, 1);
        cr_expect_str_eq(np->fqdns[0].name, "pypi.internal.example");
        cr_expect(np->fqdns[0].proto[AIDP_NP_TCP] && !np->fqdns[0].proto[AIDP_NP_UDP]);
        aidp_netpolicy_free(np);
}

Test(netpolicy, ten_thousand_rules_compile_and_too_many_are_refused)
{
        size_t n = 10000;
        struct aidp_egress_rule *r = calloc(n, sizeof *r);
        char(*cidr)[32] = calloc(n, sizeof *cidr);
        for (size_t i = 0; i < n; i++) {
                /* every other /32, so that no two join */
                snprintf(cidr[i], sizeof cidr[i], "10.%zu.%zu.%zu/32", i / 65536 % 256,
                         i / 128 % 256, i % 128 * 2);
                r[i] = R(cidr[i], 443, 443, IPPROTO_TCP);
        }
        struct aidp_netpolicy *np = compile(r, n);
        cr_expect_eq(np->sets[AIDP_NP_V4][AIDP_NP_TCP].n_ranges, n);
        cr_expect_eq(np->n_elements, n);
        aidp_netpolicy_free(np);

        /* 200,001 elements: one address with 200,001 separate ports is impossible
         * (65,536 ports), so take many addresses each with a few ports. */
        size_t m = 70000;
        struct aidp_egress_rule *big = calloc(m * 3, sizeof *big);
        char(*c2)[32] = calloc(m, sizeof *c2);
        for (size_t i = 0; i < m; i++) {
                snprintf(c2[i], sizeof c2[i], "10.%zu.%zu.%zu/32", i / 32768 % 256, i / 128 % 256,
                         i % 128 * 2);
                for (int k = 0; k < 3; k++)
                        big[i * 3 + k] = R(c2[i], (uint16_t)(100 + 2 * k), (uint16_t)(100 + 2 * k),
                                           IPPROTO_TCP);
        }
        struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = big, .n_rules = m * 3};
        struct aidp_netpolicy *np2 = NULL;
        aidp_error err = {0};
        cr_assert_lt(aidp_netpolicy_compile(&net, &np2, &err), 0);
        cr_expect_eq(err.status, AIDP_EXIT_CONFIG);
        cr_expect(strstr(err.msg, "210000 set elements"), "%s", err.msg);
        free(big);
        free(c2);
        free(r);
        free(cidr);
}

Test(netpolicy, bad_names_and_addresses_are_refused_before_any_text)
{
        struct aidp_netpolicy *np = compile(NULL, 0);
        char *out = NULL;
        aidp_error err = {0};
        struct aidp_np_names n = {.run_id = "r1", .host_if = "aidph0"};
        const char *bad_ids[] = {"", "a b", "x\";flush ruleset", "a/b"};
        for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++) {
                n.run_id = bad_ids[i];
                cr_expect_lt(aidp_netpolicy_render_host(np, &n, &out, &err), 0, "%s", bad_ids[i]);
                cr_expect_lt(aidp_netpolicy_render_host_delete(bad_ids[i], &out, &err), 0);
        }
        n.run_id = "r1";
        n.host_if = "a-very-long-link-name";
        cr_expect_lt(aidp_netpolicy_render_host(np, &n, &out, &err), 0);
        n.host_if = "aidph0";
        n.sandbox_v4 = "10.0.0.1; flush ruleset";
        cr_expect_lt(aidp_netpolicy_render_host(np, &n, &out, &err), 0);
        cr_expect_null(out);
        aidp_netpolicy_free(np);
}

Test(netpolicy, mode_none_allows_only_loopback)
{
        struct aidp_egress_rule r[] = {R("10.0.0.0/8", 0, 0, 0)};
        struct aidp_network net = {.mode = AIDP_NET_NONE, .rules = r, .n_rules = 1};
        struct aidp_netpolicy *np = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_netpolicy_compile(&net, &np, &err), 0);
        cr_expect_eq(np->n_elements, 0);
        char *text = NULL;
        struct aidp_np_names n = {.run_id = "r1", .host_if = "aidph0", .nflog_group = 7};
        cr_assert_eq(aidp_netpolicy_render_sandbox(np, &n, &text, &err), 0);
        cr_expect_null(strstr(text, "@allow"), "%s", text);
        cr_expect(strstr(text, "policy drop;"), "%s", text);
        free(text);
        aidp_netpolicy_free(np);
}

/* The shipped egress-example profile, loaded from the source tree. */
Test(netpolicy, shipped_example_profile_golden_rulesets)
{
        struct memfs fs = {.real_dir = AIDP_SOURCE_DIR};
        struct aidp_profile_env env = memfs_env(&fs, NULL, 0);
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(aidp_profile_load(AIDP_SOURCE_DIR "/profiles/egress-example.yaml", &env, &p,
                                       NULL, &err),
                     0, "%s", err.msg);
        struct aidp_netpolicy *np = NULL;
        cr_assert_eq(aidp_netpolicy_compile(&p.network, &np, &err), 0, "%s", err.msg);
        struct aidp_np_names n = {.run_id = "0b8f3a6e-5c1d-4e2f-9a7b-1c2d3e4f5a6b",
                                  .host_if = "aidph3",
                                  .uplink = "eth0",
                                  .sandbox_v4 = "10.213.0.14",
                                  .sandbox_v6 = "fd00:a1d9::e",
                                  .nflog_group = 1};
        char *sb = NULL, *host = NULL, *del = NULL;
        cr_assert_eq(aidp_netpolicy_render_sandbox(np, &n, &sb, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_netpolicy_render_host(np, &n, &host, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_netpolicy_render_host_delete(n.run_id, &del, &err), 0);
        expect_golden(sb, "egress-example.sandbox.nft");
        expect_golden(host, "egress-example.host.nft");
        cr_expect_str_eq(del, "delete table inet aidp-0b8f3a6e-5c1d-4e2f-9a7b-1c2d3e4f5a6b\n");
        free(sb);
        free(host);
        free(del);
        aidp_netpolicy_free(np);
        aidp_profile_free(&p);
}

Test(netpolicy, merged_plan_golden_ruleset)
{
        struct aidp_egress_rule r[] = {
                R("10.0.0.0/8", 443, 443, IPPROTO_TCP),
                R("10.1.0.0/16", 80, 90, IPPROTO_TCP),
                R("10.1.0.0/16", 85, 100, 0),
                R("198.51.100.7/32", 53, 53, IPPROTO_UDP),
                R("198.51.100.0/28", 0, 0, IPPROTO_UDP),
                R("2001:db8::/33", 443, 443, IPPROTO_TCP),
                R("2001:db8:8000::/33", 443, 443, IPPROTO_TCP),
        };
        struct aidp_netpolicy *np = compile(r, ARRAY_SIZE(r));
        struct aidp_np_names n = {.run_id = "r1", .host_if = "aidph0", .nflog_group = 3};
        char *sb = NULL, *host = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_netpolicy_render_sandbox(np, &n, &sb, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_netpolicy_render_host(np, &n, &host, &err), 0, "%s", err.msg);
        expect_golden(sb, "merged.sandbox.nft");
        expect_golden(host, "merged.host.nft");
        free(sb);
        free(host);
        aidp_netpolicy_free(np);
}

Test(netpolicy, denials_are_counted_per_destination_port_and_protocol)
{
        struct aidp_np_denials d = {0};
        uint8_t v4[40] = {0x45, 0, 0,  40, 0, 0, 0x40, 0, 64, IPPROTO_TCP,
                          0,    0, 10, 0,  0, 2, 10,   9, 8,  7};
        v4[22] = 0x1f; /* dport 8080 */
        v4[23] = 0x90;
        uint8_t v6[48] = {0x60};
        v6[6] = IPPROTO_UDP;
        v6[24] = 0xfd;
        v6[39] = 1;
        v6[42] = 0;
        v6[43] = 53;
        uint8_t frag[40];
        memcpy(frag, v4, sizeof frag);
        frag[7] = 1; /* a later fragment: no port */
        aidp_netpolicy_denial_add(&d, v4, sizeof v4);
        aidp_netpolicy_denial_add(&d, v4, sizeof v4);
        aidp_netpolicy_denial_add(&d, v6, sizeof v6);
        aidp_netpolicy_denial_add(&d, frag, sizeof frag);
        aidp_netpolicy_denial_add(&d, v4, 10); /* truncated */
        cr_assert_eq(d.total, 5);
        cr_assert_eq(d.other, 1);
        cr_assert_eq(d.n_keys, 3);
        char s[96];
        aidp_netpolicy_denial_str(&d.keys[0], s, sizeof s);
        cr_expect_str_eq(s, "tcp 10.9.8.7:8080");
        cr_expect_eq(d.keys[0].count, 2);
        aidp_netpolicy_denial_str(&d.keys[1], s, sizeof s);
        cr_expect_str_eq(s, "udp [fd00::1]:53");
        cr_expect_eq(d.keys[2].port, 0);
        cr_expect_str_eq(d.examples[0], "tcp 10.9.8.7:8080 len 40");
        cr_expect_eq(d.n_examples, 4);
        for (int i = 0; i < 100; i++) {
                v4[19] = (uint8_t)i;
                aidp_netpolicy_denial_add(&d, v4, sizeof v4);
        }
        cr_expect_eq(d.n_keys, AIDP_NP_DENIAL_KEYS);
        cr_expect_eq(d.total, 105);
}
