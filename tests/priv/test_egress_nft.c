#define _GNU_SOURCE
/* The two ways a plan becomes nftables rules agree: the text netpolicy/render.c
 * prints (the goldens in tests/data/netpolicy/, loaded with `nft -f`) and the
 * libnftnl batch the apply layer sends (nftrules.c). Each is loaded into its
 * own throwaway network namespace and the kernel's listings (`nft list
 * table`) must be identical, for plans with every kind of rule and for 10,000
 * CIDR rules. Nothing touches the machine's own network namespace. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "netpolicy/apply/nftbatch.h"
#include "priv.h"
#include "runner.h"

TestSuite(egress_nft, .timeout = 120);

static char dir[] = "/tmp/aidp-test-nft-XXXXXX";
static bool dir_made; /* mkdtemp's suffix may end in 'X' too */

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        char *buf = NULL;
        size_t cap = 0;
        ssize_t n = getdelim(&buf, &cap, '\0', f);
        fclose(f);
        cr_assert_geq(n, 0, "%s", path);
        return buf;
}

/* Load text (nft -f) or a batch into a fresh namespace; its table's listing. */
static char *listing(const char *table, const char *text, const struct aidp_np_batch *b)
{
        char nft[300], out[300];
        snprintf(nft, sizeof nft, "%s/rules.nft", dir);
        snprintf(out, sizeof out, "%s/listing", dir);
        unlink(out);
        if (text) {
                FILE *f = fopen(nft, "w");
                cr_assert_not_null(f);
                fputs(text, f);
                fclose(f);
        }
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                /* The child alone moves: its namespace dies with it. */
                if (unshare(CLONE_NEWNET) < 0)
                        _exit(10);
                char cmd[700];
                if (text) {
                        snprintf(cmd, sizeof cmd, "nft -f %s", nft);
                        if (system(cmd) != 0)
                                _exit(11);
                } else {
                        aidp_error err = {0};
                        if (aidp_np_batch_send(b, &err) < 0) {
                                fprintf(stderr, "batch: %s\n", err.msg);
                                _exit(12);
                        }
                }
                snprintf(cmd, sizeof cmd, "nft list table inet %s > %s", table, out);
                _exit(system(cmd) == 0 ? 0 : 13);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "loading %s by %s: status %d", table,
                  text ? "nft -f" : "batch", WEXITSTATUS(st));
        return slurp(out);
}

static void expect_same(const struct aidp_netpolicy *np, const struct aidp_np_names *n)
{
        /* One directory per test worker, removed when it exits. */
        if (!dir_made) {
                cr_assert_not_null(aidp_test_mkdtemp(dir));
                dir_made = true;
        }
        aidp_error err = {0};
        char *text = NULL;
        struct aidp_np_batch *b = NULL;
        char table[220];
        for (int host = 0; host < 2; host++) {
                if (host) {
                        cr_assert_eq(aidp_netpolicy_render_host(np, n, &text, &err), 0, "%s",
                                     err.msg);
                        cr_assert_eq(aidp_np_batch_host(np, n, &b, &err), 0, "%s", err.msg);
                        snprintf(table, sizeof table, "aidp-%s", n->run_id);
                } else {
                        cr_assert_eq(aidp_netpolicy_render_sandbox(np, n, &text, &err), 0, "%s",
                                     err.msg);
                        cr_assert_eq(aidp_np_batch_sandbox(np, n, &b, &err), 0, "%s", err.msg);
                        snprintf(table, sizeof table, "aidp");
                }
                char *want = listing(table, text, NULL), *got = listing(table, NULL, b);
                cr_expect_str_eq(got, want, "table %s: the batch lists differently", table);
                cr_expect_gt(strlen(got), 100);
                free(want);
                free(got);
                free(text);
                aidp_np_batch_free(b);
        }
}

static struct aidp_netpolicy *compile(struct aidp_egress_rule *r, size_t n)
{
        struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = r, .n_rules = n};
        struct aidp_netpolicy *np = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_netpolicy_compile(&net, &np, &err), 0, "%s", err.msg);
        return np;
}

#define CIDR(c, lo, hi, p)                                                                         \
        {                                                                                          \
                .cidr = (char *)(c), .port_min = lo, .port_max = hi, .protocol = p                 \
        }
#define FQDN(c, lo, hi, p)                                                                         \
        {                                                                                          \
                .fqdn = (char *)(c), .port_min = lo, .port_max = hi, .protocol = p                 \
        }

Test(egress_nft, every_kind_of_rule_lists_the_same_as_the_text)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_egress_rule r[] = {
                CIDR("10.0.0.0/8", 443, 443, IPPROTO_TCP),
                CIDR("10.1.0.0/16", 80, 90, IPPROTO_TCP),
                CIDR("10.1.0.0/16", 85, 100, 0),
                CIDR("198.51.100.0/28", 0, 0, IPPROTO_UDP),
                CIDR("192.0.2.7", 0, 0, 0),
                CIDR("2001:db8::/33", 443, 443, IPPROTO_TCP),
                CIDR("2001:db8:8000::/33", 1000, 2000, IPPROTO_UDP),
                FQDN("pypi.example", 443, 443, IPPROTO_TCP),
                FQDN("*.cdn.example", 0, 0, 0),
                FQDN("ntp.example", 100, 200, IPPROTO_UDP),
        };
        struct aidp_netpolicy *np = compile(r, ARRAY_SIZE(r));
        struct aidp_np_names n = {.run_id = "0b8f3a6e-5c1d-4e2f",
                                  .host_if = "aidp0003abcdef1",
                                  .sandbox_v4 = "10.213.0.14",
                                  .sandbox_v6 = "fd00:a1d9::e",
                                  .nflog_group = 1,
                                  .proxy_v4 = "10.213.0.13"};
        expect_same(np, &n);
        /* With an uplink, without IPv6, without a proxy. */
        n.uplink = "eth7";
        n.sandbox_v6 = NULL;
        n.proxy_v4 = NULL;
        n.nflog_group = 9;
        expect_same(np, &n);
        aidp_netpolicy_free(np);
}

Test(egress_nft, an_empty_plan_lists_the_same_as_the_text)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_netpolicy *np = compile(NULL, 0);
        struct aidp_np_names n = {.run_id = "r1", .host_if = "aidph0", .nflog_group = 1};
        expect_same(np, &n);
        aidp_netpolicy_free(np);
}

Test(egress_nft, ten_thousand_rules_list_the_same_as_the_text)
{
        AIDP_REQUIRE_ROOT();
        enum { N = 10000 };
        struct aidp_egress_rule *r = calloc(N, sizeof *r);
        char(*cidr)[48] = calloc(N, sizeof *cidr);
        cr_assert(r && cidr);
        for (int i = 0; i < N; i++) {
                /* Every other /32 (nothing merges), every 7th a v6 /64, ports vary. */
                if (i % 7 == 0)
                        snprintf(cidr[i], sizeof cidr[i], "2001:db8:%x:%x::/64", i / 65536,
                                 i % 65536);
                else
                        snprintf(cidr[i], sizeof cidr[i], "10.%d.%d.%d", 100 + i / 32768,
                                 i / 128 % 256, i % 128 * 2);
                uint16_t p = (uint16_t)(443 + i % 3);
                r[i] = (struct aidp_egress_rule){.cidr = cidr[i],
                                                 .port_min = p,
                                                 .port_max = (uint16_t)(p + i % 2 * 10),
                                                 .protocol = i % 5 ? IPPROTO_TCP : 0};
        }
        struct aidp_netpolicy *np = compile(r, N);
        cr_expect_geq(np->n_elements, N);
        struct aidp_np_names n = {.run_id = "big", .host_if = "aidph1", .nflog_group = 1};
        expect_same(np, &n);
        aidp_netpolicy_free(np);
        free(r);
        free(cidr);
}

Test(egress_nft, a_refused_batch_names_the_object_and_leaves_nothing)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_egress_rule r[] = {CIDR("10.0.0.0/8", 443, 443, IPPROTO_TCP)};
        struct aidp_netpolicy *np = compile(r, 1);
        struct aidp_np_names n = {.run_id = "twice", .host_if = "aidph2", .nflog_group = 1};
        struct aidp_np_batch *b = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_np_batch_host(np, &n, &b, &err), 0, "%s", err.msg);
        pid_t pid = fork();
        if (pid == 0) {
                aidp_error e = {0};
                if (unshare(CLONE_NEWNET) < 0 || aidp_np_batch_send(b, &e) < 0)
                        _exit(10);
                /* The same table again: refused whole, the first one stays. */
                int rc = aidp_np_batch_send(b, &e);
                bool named = strstr(e.msg, "table aidp-twice") != NULL;
                bool one = system("test \"$(nft list tables | grep -c aidp-twice)\" = 1") == 0;
                if (rc < 0 && named && one && aidp_np_nft_delete_host("twice", &e) == 0 &&
                    aidp_np_nft_delete_host("twice", &e) == 0 &&
                    system("nft list tables | grep -q aidp-twice") != 0)
                        _exit(0);
                fprintf(stderr, "rc %d named %d one %d: %s\n", rc, named, one, e.msg);
                _exit(11);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", WEXITSTATUS(st));
        aidp_np_batch_free(b);
        aidp_netpolicy_free(np);
}
