#define _GNU_SOURCE
/* aidp-supervisor run with the shipped egress-example profile, end to end,
 * never on the machine's own network: the test moves into a namespace that
 * stands in for the host (the supervisor runs there), with a peer host
 * namespace holding 10.20.0.5 (inside the profile's 10.20.0.0/16) and
 * 192.0.2.2 (outside it), echo servers on TCP 4317 and 8081 and UDP 53.
 * Asserted from inside the sandbox by tests/helpers/net_probe: the allowed
 * address:port exchanges data, another port, host or UDP is refused within a
 * second, the job cannot take its link down; the denials are in the summary
 * and the lineage end record; nothing is left after the run, nor after
 * SIGKILL of the supervisor and gc. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netns_util.h"
#include "priv.h"
#include "runner.h"

#define NET_PROBE AIDP_BINARY_DIR "/tests/helpers/net_probe"

static struct aidp_test_ns peer;
static struct aidp_test_servers servers = {.tcp = {4317, 8081}, .udp = {53}};
static char dir[] = "/var/tmp/aidp-test-egress-XXXXXX";
static bool dir_made;
static char rundir[PATH_MAX], lineage[PATH_MAX], summary[PATH_MAX];

static void put(const char *name, const char *text)
{
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f, "%s", p);
        fputs(text, f);
        fclose(f);
}

static void setup(void)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(aidp_test_fake_host(), 0, "cannot make the stand-in host namespace");
        cr_assert_eq(aidp_test_ns_start(&peer, aidp_test_serve, &servers), 0);
        static const char *const host[] = {"10.20.0.1/16", "192.0.2.1/24", NULL};
        static const char *const far[] = {"10.20.0.5/16", "192.0.2.2/24", NULL};
        cr_assert_eq(aidp_test_peer_link(&peer, host, far), 0);
        aidp_test_ns_go(&peer);
        cr_assert_not_null(mkdtemp(dir));
        dir_made = true;
        put("network.yaml", "apiVersion: aidp/v1\nkind: Network\npools: {ipv4: 10.213.7.0/28}\n"
                            "resolvers: [192.0.2.53]\n");
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/policy", dir);
        cr_assert_eq(mkdir(p, 0700), 0);
        setenv("AIDP_POLICY_DIR", p, 1);
        snprintf(p, sizeof p, "%s/network.yaml", dir);
        setenv("AIDP_NETWORK_CONFIG", p, 1);
        snprintf(p, sizeof p, "%s/lineage.key", dir);
        setenv("AIDP_LINEAGE_KEY", p, 1);
        snprintf(rundir, sizeof rundir, "%s/run", dir);
        snprintf(lineage, sizeof lineage, "%s/lineage.jsonl", dir);
        snprintf(summary, sizeof summary, "%s/summary.json", dir);
}

static void fini(void)
{
        aidp_test_ns_stop(&peer);
        /* Whether mkdtemp made it: its random suffix may end in 'X' too. */
        if (dir_made) {
                aidp_test_gc(rundir);
                char cmd[PATH_MAX + 16];
                snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
                cr_expect_eq(system(cmd), 0);
        }
}

TestSuite(egress_run, .init = setup, .fini = fini, .timeout = 120);

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return NULL;
        char *buf = calloc(1, 1 << 20);
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static void expect_nothing_left(void)
{
        cr_expect_neq(system("ip -o link show | grep -q ': aidp'"), 0, "an aidp link remains");
        cr_expect_neq(system("nft list tables | grep -q aidp"), 0, "an aidp table remains");
        char p[PATH_MAX + 16];
        snprintf(p, sizeof p, "%s/.leases", rundir);
        DIR *d = opendir(p);
        int n = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
                n += e->d_name[0] != '.';
        if (d)
                closedir(d);
        cr_expect_eq(n, 0, "%d lease(s) remain in %s", n, p);
}

/* "tcp 10.20.0.5:8081 refused 3" -> its verdict and time */
static void expect_line(const char *out, const char *dest, const char *want)
{
        const char *l = strstr(out, dest);
        cr_assert_not_null(l, "no probe line for %s in:\n%s", dest, out);
        char verdict[16] = "";
        double ms = -1;
        cr_assert_eq(sscanf(l + strlen(dest), " %15s %lf", verdict, &ms), 2, "%s", l);
        cr_expect_str_eq(verdict, want, "%s: %s (%.0f ms)", dest, verdict, ms);
        if (!strcmp(want, "refused"))
                cr_expect_lt(ms, 1000.0, "%s refused only after %.0f ms", dest, ms);
}

Test(egress_run, shipped_egress_example_profile_is_enforced)
{
        struct aidp_proc P;
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "65534",
                        "--no-cwd",
                        "--profile",
                        "egress-example",
                        "--run-dir",
                        rundir,
                        "--lineage",
                        lineage,
                        "--summary",
                        summary,
                        "--",
                        NET_PROBE,
                        "tcp",
                        "10.20.0.5",
                        "4317",
                        "tcp",
                        "10.20.0.5",
                        "8081",
                        "tcp",
                        "192.0.2.2",
                        "4317",
                        "udp",
                        "10.20.0.5",
                        "53",
                        "admin",
                        NULL};
        int st = aidp_test_run(&P, argv);
        cr_assert_eq(st, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", st, P.out, P.err);
        expect_line(P.out, "tcp 10.20.0.5:4317", "ok");
        expect_line(P.out, "tcp 10.20.0.5:8081", "refused");
        expect_line(P.out, "tcp 192.0.2.2:4317", "refused");
        expect_line(P.out, "udp 10.20.0.5:53", "refused");
        cr_expect(strstr(P.out, "admin refused"), "the job changed its link:\n%s", P.out);
        cr_expect(strstr(P.err, "packet(s) denied"), "%s", P.err);
        char *s = slurp(summary);
        cr_assert_not_null(s);
        cr_expect(strstr(s, "\"flow\":\"tcp 10.20.0.5:8081\"") ||
                          strstr(s, "\"flow\": \"tcp 10.20.0.5:8081\""),
                  "%s", s);
        cr_expect(strstr(s, "192.0.2.2:4317"), "%s", s);
        cr_expect(strstr(s, "udp 10.20.0.5:53"), "%s", s);
        cr_expect(strstr(s, "10.213.7."), "the sandbox address is not in the summary:\n%s", s);
        free(s);
        char *lg = slurp(lineage);
        cr_assert_not_null(lg);
        const char *net = strstr(lg, "\"aidp_network\"");
        cr_expect_not_null(net, "no aidp_network facet in the lineage:\n%s", lg);
        cr_expect(net && strstr(net, "10.20.0.5") && strstr(net, "8081"), "%s", lg);
        /* START names the allowlist the run was given, with its digest */
        const char *al = strstr(lg, "\"aidp_egress\"");
        cr_expect_not_null(al, "no aidp_egress facet in START:\n%s", lg);
        cr_expect(al && strstr(al, "10.20.0.0/16 tcp 4317-4317") && strstr(al, "sha256:"), "%s",
                  lg);
        free(lg);
        expect_nothing_left();
}

static bool host_table_appears(int timeout_ms)
{
        for (int i = 0; i < timeout_ms / 20; i++) {
                if (system("nft list tables | grep -q 'inet aidp-'") == 0)
                        return true;
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        return false;
}

Test(egress_run, nothing_left_after_sigkill_of_the_supervisor_and_gc)
{
        struct aidp_proc P;
        char *argv[] = {
                AIDP_SUPERVISOR,  "run",       "--user", "65534",     "--no-cwd", "--profile",
                "egress-example", "--run-dir", rundir,   "--lineage", lineage,    "--",
                "/bin/sleep",     "60",        NULL};
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        cr_assert(host_table_appears(10000), "the run's host table never appeared");
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        cr_expect_eq(system("nft list tables | grep -q 'inet aidp-'"), 0);
        aidp_test_gc(rundir);
        expect_nothing_left();
}
