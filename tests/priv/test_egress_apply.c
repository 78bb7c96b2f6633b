#define _GNU_SOURCE
/* The egress apply layer against the kernel, never on the machine's own
 * network: each test moves itself into a namespace that stands in for the
 * host, with a peer host namespace (echo servers on 192.0.2.2, 192.0.2.3,
 * fd00:2::2) and sandbox namespaces. Asserted from inside the sandbox: allowed
 * address:port exchanges data; another port, host or IPv6 is refused within
 * a second; the host table holds when the sandbox's own rules are gone;
 * denials are counted by destination; after teardown, and after gc of a
 * SIGKILLed applier, no link, table or lease is left. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netns_util.h"
#include "netpolicy/apply/apply.h"
#include "priv.h"
#include "runner.h"
#include "supervisor/run/run.h"
#include "supervisor/run/run_net.h"

static struct aidp_test_ns peer;
static struct aidp_test_servers servers = {.tcp = {8080, 8081}, .udp = {5353, 5354}};
static char lease_dir[] = "/tmp/aidp-test-leases-XXXXXX";
static bool lease_dir_made; /* mkdtemp's suffix may end in 'X' too */
static struct aidp_hostnet hostnet = {.pool4 = "10.213.0.0/28", .pool6 = "fd00:a1d9::/120"};

static void setup(void)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(aidp_test_fake_host(), 0, "cannot make the stand-in host namespace");
        cr_assert_eq(aidp_test_ns_start(&peer, aidp_test_serve, &servers), 0);
        static const char *const host[] = {"192.0.2.1/24", "fd00:2::1/64", NULL};
        static const char *const far[] = {"192.0.2.2/24", "192.0.2.3/24", "fd00:2::2/64", NULL};
        cr_assert_eq(aidp_test_peer_link(&peer, host, far), 0);
        aidp_test_ns_go(&peer);
        cr_assert_not_null(aidp_test_mkdtemp(lease_dir)); /* removed when the worker exits */
        lease_dir_made = true;
}

static void teardown_all(void)
{
        aidp_test_ns_stop(&peer);
        if (lease_dir_made)
                aidp_test_rm_tree(lease_dir);
}

TestSuite(egress_apply, .init = setup, .fini = teardown_all, .timeout = 60);

static struct aidp_egress_rule R(const char *cidr, uint16_t port, int proto) {
        return (struct aidp_egress_rule){
                .cidr = (char *)cidr, .port_min = port, .port_max = port, .protocol = proto};
}

static struct aidp_np_run *
apply(struct aidp_test_ns *sb, const char *run_id, struct aidp_egress_rule *rules, size_t n)
{
        struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = rules, .n_rules = n};
        struct aidp_netpolicy *np = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_netpolicy_compile(&net, &np, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_test_ns_start(sb, NULL, NULL), 0);
        int fd = aidp_test_ns_fd(sb);
        struct aidp_np_run *r = NULL;
        cr_assert_eq(aidp_netpolicy_apply(np, &hostnet, lease_dir, run_id, fd, &r, &err), 0, "%s",
                     err.msg);
        close(fd);
        aidp_netpolicy_free(np);
        aidp_test_ns_go(sb);
        return r;
}

static void expect_probe(struct aidp_test_ns *sb, bool tcp, const char *addr, uint16_t port,
                         enum aidp_test_probe want)
{
        double ms = 0;
        enum aidp_test_probe got = aidp_test_probe(sb, tcp, addr, port, 3000, &ms);
        cr_expect_eq(got, want, "%s %s:%u: got %d, want %d (%.0f ms)", tcp ? "tcp" : "udp", addr,
                     port, got, want, ms);
        if (want == AIDP_PROBE_REFUSED)
                cr_expect_lt(ms, 1000.0, "%s:%u refused only after %.0f ms", addr, port, ms);
}

static bool has_denial(const struct aidp_np_denials *d, const char *what)
{
        char s[96];
        for (size_t i = 0; i < d->n_keys; i++) {
                aidp_netpolicy_denial_str(&d->keys[i], s, sizeof s);
                if (!strcmp(s, what))
                        return true;
        }
        return false;
}

/* What aidp left in the stand-in host: links and tables named aidp*, leases. */
static void expect_nothing_left(void)
{
        cr_expect_neq(system("ip -o link show | grep -q ': aidp'"), 0, "an aidp link remains");
        cr_expect_neq(system("nft list tables | grep -q aidp"), 0, "an aidp table remains");
        DIR *d = opendir(lease_dir);
        cr_assert_not_null(d);
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        cr_expect_eq(n, 0, "%d lease(s) remain in %s", n, lease_dir);
}

Test(egress_apply, allowlist_is_enforced_from_inside_and_denials_are_counted)
{
        struct aidp_egress_rule rules[] = {R("192.0.2.2/32", 8080, IPPROTO_TCP),
                                           R("192.0.2.2/32", 5353, IPPROTO_UDP)};
        struct aidp_test_ns sb;
        struct aidp_np_run *r = apply(&sb, "egress-test-1", rules, 2);
        expect_probe(&sb, true, "192.0.2.2", 8080, AIDP_PROBE_OK);
        expect_probe(&sb, false, "192.0.2.2", 5353, AIDP_PROBE_OK);
        expect_probe(&sb, true, "192.0.2.2", 8081, AIDP_PROBE_REFUSED);
        expect_probe(&sb, true, "192.0.2.3", 8080, AIDP_PROBE_REFUSED);
        expect_probe(&sb, false, "192.0.2.2", 5354, AIDP_PROBE_REFUSED);
        expect_probe(&sb, true, "fd00:2::2", 8080, AIDP_PROBE_REFUSED);
        /* the host end itself is no way out either */
        expect_probe(&sb, true, aidp_netpolicy_run_lease(r)->host4, 22, AIDP_PROBE_REFUSED);
        cr_assert_eq(aidp_netpolicy_drain(r), 0);
        const struct aidp_np_denials *d = aidp_netpolicy_denials(r);
        cr_expect(has_denial(d, "tcp 192.0.2.2:8081"));
        cr_expect(has_denial(d, "tcp 192.0.2.3:8080"));
        cr_expect(has_denial(d, "udp 192.0.2.2:5354"));
        cr_expect(has_denial(d, "tcp [fd00:2::2]:8080"));
        cr_expect(!has_denial(d, "tcp 192.0.2.2:8080"));
        cr_expect_geq(d->total, 5);
        aidp_test_ns_stop(&sb);
        aidp_error err = {0};
        cr_expect_eq(aidp_netpolicy_teardown(r, &err), 0, "%s", err.msg);
        expect_nothing_left();
}

Test(egress_apply, ipv6_only_where_allowed)
{
        struct aidp_egress_rule rules[] = {R("fd00:2::2/128", 8080, IPPROTO_TCP)};
        struct aidp_test_ns sb;
        struct aidp_np_run *r = apply(&sb, "egress-test-6", rules, 1);
        expect_probe(&sb, true, "fd00:2::2", 8080, AIDP_PROBE_OK);
        expect_probe(&sb, true, "fd00:2::2", 8081, AIDP_PROBE_REFUSED);
        expect_probe(&sb, true, "192.0.2.2", 8080, AIDP_PROBE_REFUSED);
        aidp_test_ns_stop(&sb);
        cr_expect_eq(aidp_netpolicy_teardown(r, NULL), 0);
        expect_nothing_left();
}

Test(egress_apply, host_table_holds_when_the_job_removes_its_own_rules)
{
        struct aidp_egress_rule rules[] = {R("192.0.2.2/32", 8080, IPPROTO_TCP)};
        struct aidp_test_ns sb;
        struct aidp_np_run *r = apply(&sb, "egress-test-priv", rules, 1);
        /* a job that somehow became root in its namespace drops the sandbox table */
        cr_assert_eq(aidp_test_ns_sh(&sb, "nft delete table inet aidp"), 0);
        expect_probe(&sb, true, "192.0.2.2", 8080, AIDP_PROBE_OK);
        expect_probe(&sb, true, "192.0.2.2", 8081, AIDP_PROBE_REFUSED);
        expect_probe(&sb, true, "192.0.2.3", 8080, AIDP_PROBE_REFUSED);
        aidp_test_ns_stop(&sb);
        cr_expect_eq(aidp_netpolicy_teardown(r, NULL), 0);
        expect_nothing_left();
}

Test(egress_apply, concurrent_runs_get_distinct_addresses_and_cannot_reach_each_other)
{
        struct aidp_egress_rule rules[] = {R("192.0.2.2/32", 8080, IPPROTO_TCP)};
        struct aidp_test_ns a, b;
        struct aidp_np_run *ra = apply(&a, "egress-test-a", rules, 1);
        struct aidp_np_run *rb = apply(&b, "egress-test-b", rules, 1);
        const struct aidp_hostnet_lease *la = aidp_netpolicy_run_lease(ra);
        const struct aidp_hostnet_lease *lb = aidp_netpolicy_run_lease(rb);
        cr_expect_neq(la->index, lb->index);
        cr_expect_str_neq(la->sandbox4, lb->sandbox4);
        cr_expect_str_neq(aidp_netpolicy_run_host_if(ra), aidp_netpolicy_run_host_if(rb));
        expect_probe(&a, true, "192.0.2.2", 8080, AIDP_PROBE_OK);
        expect_probe(&b, true, "192.0.2.2", 8080, AIDP_PROBE_OK);
        expect_probe(&a, true, lb->sandbox4, 8080, AIDP_PROBE_REFUSED);
        aidp_test_ns_stop(&a);
        aidp_test_ns_stop(&b);
        cr_expect_eq(aidp_netpolicy_teardown(ra, NULL), 0);
        cr_expect_eq(aidp_netpolicy_teardown(rb, NULL), 0);
        expect_nothing_left();
}

Test(egress_apply, gc_after_sigkill_of_the_applier_leaves_nothing)
{
        struct aidp_test_ns sb;
        cr_assert_eq(aidp_test_ns_start(&sb, NULL, NULL), 0);
        int ready[2];
        cr_assert_eq(pipe(ready), 0);
        pid_t sup = fork();
        if (sup == 0) {
                struct aidp_egress_rule rules[] = {R("192.0.2.2/32", 8080, IPPROTO_TCP)};
                struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = rules, .n_rules = 1};
                struct aidp_netpolicy *np = NULL;
                struct aidp_np_run *r = NULL;
                int fd = aidp_test_ns_fd(&sb);
                char ok = aidp_netpolicy_compile(&net, &np, NULL) == 0 &&
                          aidp_netpolicy_apply(np, &hostnet, lease_dir, "egress-test-gc", fd, &r,
                                               NULL) == 0;
                if (write(ready[1], &ok, 1) != 1)
                        _exit(1);
                for (;;)
                        pause();
        }
        char ok = 0;
        cr_assert_eq(read(ready[0], &ok, 1), 1);
        cr_assert(ok, "apply failed in the stand-in supervisor");
        aidp_test_ns_go(&sb);
        expect_probe(&sb, true, "192.0.2.2", 8080, AIDP_PROBE_OK);
        kill(sup, SIGKILL);
        waitpid(sup, NULL, 0);
        cr_expect_eq(system("nft list tables | grep -q aidp-egress-test-gc"), 0);
        /* gc kills what is left of the run, then releases its network */
        aidp_test_ns_stop(&sb);
        aidp_error err = {0};
        cr_expect_eq(aidp_netpolicy_gc(lease_dir, "egress-test-gc", &err), 0, "%s", err.msg);
        expect_nothing_left();
        /* gc of a run it already cleaned, or of one that never had a network */
        cr_expect_eq(aidp_netpolicy_gc(lease_dir, "egress-test-gc", &err), 0, "%s", err.msg);
}

static void count_report(const char *run_id, const char *what, void *arg)
{
        snprintf(arg, 512, "%s: %s", run_id, what);
}

Test(egress_apply, run_gc_releases_the_network_a_dead_runs_journal_names)
{
        char base[] = "/tmp/aidp-test-runs-XXXXXX";
        cr_assert_not_null(aidp_test_mkdtemp(base));
        char leases[PATH_MAX], jdir[PATH_MAX], jpath[PATH_MAX + 16];
        snprintf(leases, sizeof leases, "%s/" AIDP_RUN_LEASE_DIR, base);
        snprintf(jdir, sizeof jdir, "%s/egress-test-rungc", base);
        snprintf(jpath, sizeof jpath, "%s/journal.json", jdir);
        cr_assert_eq(mkdir(jdir, 0700), 0);
        FILE *f = fopen(jpath, "w");
        cr_assert_not_null(f);
        fputs("{\"run_id\": \"egress-test-rungc\", \"networks\": [\"egress\"]}\n", f);
        fclose(f);
        struct aidp_egress_rule rules[] = {R("192.0.2.2/32", 8080, IPPROTO_TCP)};
        struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = rules, .n_rules = 1};
        struct aidp_netpolicy *np = NULL;
        struct aidp_np_run *r = NULL;
        struct aidp_test_ns sb;
        aidp_error err = {0};
        cr_assert_eq(aidp_netpolicy_compile(&net, &np, &err), 0);
        cr_assert_eq(aidp_test_ns_start(&sb, NULL, NULL), 0);
        int fd = aidp_test_ns_fd(&sb);
        cr_assert_eq(aidp_netpolicy_apply(np, &hostnet, leases, "egress-test-rungc", fd, &r, &err),
                     0, "%s", err.msg);
        close(fd);
        aidp_netpolicy_free(np);
        /* the supervisor "dies": its handle is forgotten, the sandbox killed */
        aidp_test_ns_stop(&sb);
        cr_expect_eq(system("nft list tables | grep -q aidp-egress-test-rungc"), 0);
        char what[512] = "";
        cr_assert_eq(aidp_run_gc(base, count_report, what, &err), 1, "%s / %s", what, err.msg);
        cr_expect(strstr(what, "released its network"), "%s", what);
        cr_expect_neq(system("ip -o link show | grep -q ': aidp'"), 0, "an aidp link remains");
        cr_expect_neq(system("nft list tables | grep -q aidp"), 0, "an aidp table remains");
        cr_expect_neq(access(jdir, F_OK), 0, "the journal remains");
        DIR *d = opendir(leases);
        int n = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
                n += e->d_name[0] != '.';
        if (d)
                closedir(d);
        cr_expect_eq(n, 0, "%d lease(s) remain", n);
        rmdir(leases);
        cr_expect_eq(rmdir(base), 0);
}
