#define _GNU_SOURCE
/* Egress by DNS name (docs/egress.md), end to end through aidp-supervisor, never
 * on the machine's own network: the test moves into a namespace that stands in
 * for the host (the supervisor and its DNS proxy run there), with two peer
 * hosts: a web host (TCP echo on 443, 8443 and 853 at 192.0.2.2/.3/.5/.6 and
 * 2001:db8:2::2) and a DNS host running Debian's dnsmasq with static records
 * on 198.51.100.53 (the proxy's upstream) and 198.51.100.54 (another
 * resolver), started and ended by pid. Asserted from inside the sandbox by
 * tests/helpers/dns_probe: allowed names resolve (through a CNAME chain, over
 * UDP and TCP, IPv6 where allowed, large answers over TCP) and connect; other
 * names get REFUSED and their addresses stay unreachable even dialled
 * directly; a name resolving to a private address gets no address; DNS to the
 * upstream or another resolver, over UDP or TCP, and TCP 853 are refused;
 * the denials reach the summary and the lineage. No packet goes anywhere but
 * these namespaces. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lineage_util.h"
#include "netns_util.h"
#include "priv.h"
#include "runner.h"

#define DNS_PROBE AIDP_BINARY_DIR "/tests/helpers/dns_probe"

static struct aidp_test_ns web, dns;
static struct aidp_test_servers servers = {.tcp = {443, 8443, 853}};
static char dir[] = "/var/tmp/aidp-test-dns-XXXXXX";
static bool dir_made; /* mkdtemp's suffix may end in 'X' too */
static char rundir[PATH_MAX], lineage[PATH_MAX], summary[PATH_MAX], profile[PATH_MAX];

/* dnsmasq in the DNS host's namespace, in the foreground, as root (so that the
 * parent-death signal stays), with no configuration but these records. */
static void run_dnsmasq(void *arg)
{
        (void)arg;
        static const char *extra[120];
        static char big[100][64];
        static const char *const fixed[] = {"--host-record=web.allowed.example,192.0.2.2",
                                            "--host-record=pypi.internal.example,192.0.2.2",
                                            "--host-record=evil.example,192.0.2.3",
                                            "--host-record=web2.other.example,192.0.2.5",
                                            "--cname=alias.allowed.example,web2.other.example",
                                            "--host-record=private.allowed.example,10.99.0.1",
                                            "--host-record=short.allowed.example,192.0.2.6,1",
                                            "--host-record=v6.allowed.example,2001:db8:2::2",
                                            "--host-record=x.wild.example,192.0.2.2",
                                            NULL};
        int n = 0;
        for (; fixed[n]; n++)
                extra[n] = fixed[n];
        /* 100 addresses: more than fits a 1232-byte UDP answer */
        for (int i = 0; i < 100; i++) {
                snprintf(big[i], sizeof big[i], "--host-record=big.allowed.example,192.0.2.%d",
                         100 + i);
                extra[n++] = big[i];
        }
        extra[n] = NULL;
        aidp_test_exec_dnsmasq("198.51.100.53,198.51.100.54", extra);
}

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
        cr_assert_eq(system("command -v dnsmasq >/dev/null"), 0, "dnsmasq is not installed");
        cr_assert_eq(aidp_test_fake_host(), 0, "cannot make the stand-in host namespace");
        cr_assert_eq(aidp_test_ns_start(&web, aidp_test_serve, &servers), 0);
        cr_assert_eq(aidp_test_ns_start(&dns, run_dnsmasq, NULL), 0);
        static const char *const h0[] = {"192.0.2.1/24", "2001:db8:2::1/64", NULL};
        static const char *const p0[] = {"192.0.2.2/24", "192.0.2.3/24",     "192.0.2.5/24",
                                         "192.0.2.6/24", "2001:db8:2::2/64", NULL};
        static const char *const h1[] = {"198.51.100.1/24", NULL};
        static const char *const p1[] = {"198.51.100.53/24", "198.51.100.54/24", NULL};
        cr_assert_eq(aidp_test_peer_link_n(&web, 0, h0, p0), 0);
        cr_assert_eq(aidp_test_peer_link_n(&dns, 1, h1, p1), 0);
        aidp_test_ns_go(&web);
        aidp_test_ns_go(&dns);
        cr_assert_not_null(mkdtemp(dir));
        dir_made = true;
        put("network.yaml", "apiVersion: aidp/v1\nkind: Network\n"
                            "pools: {ipv4: 10.213.9.0/28, ipv6: 'fd00:a1d9:9::/120'}\n"
                            "resolvers: [198.51.100.53]\n");
        put("egress-dns-test.yaml",
            "apiVersion: aidp/v1\nkind: Profile\n"
            "metadata: {name: egress-dns-test, description: names for the DNS proxy test}\n"
            "extends: egress-example\n"
            "network:\n  mode: egress\n  egress:\n"
            "    - {fqdn: web.allowed.example, ports: [443], protocol: tcp}\n"
            "    - {fqdn: alias.allowed.example, ports: [443], protocol: tcp}\n"
            "    - {fqdn: private.allowed.example, ports: [443], protocol: tcp}\n"
            "    - {fqdn: short.allowed.example, ports: [443], protocol: tcp}\n"
            "    - {fqdn: big.allowed.example, ports: [443], protocol: tcp}\n"
            "    - {fqdn: v6.allowed.example, ports: [443], protocol: tcp}\n"
            "    - {fqdn: '*.wild.example', ports: [443], protocol: tcp}\n");
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
        snprintf(profile, sizeof profile, "%s/egress-dns-test.yaml", dir);
}

static void fini(void)
{
        aidp_test_ns_stop(&web);
        aidp_test_ns_stop(&dns);
        if (dir_made) {
                aidp_test_gc(rundir);
                char cmd[PATH_MAX + 16];
                snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
                cr_expect_eq(system(cmd), 0);
        }
}

TestSuite(egress_dns, .init = setup, .fini = fini, .timeout = 120);

/* The probe's line starting with `what ` must end in want. */
static void expect(const char *out, const char *what, const char *want)
{
        char key[256];
        snprintf(key, sizeof key, "\n%s ", what);
        const char *l = strstr(out, key);
        cr_assert_not_null(l, "no line '%s' in:\n%s", what, out);
        l += strlen(key);
        size_t n = strcspn(l, "\n");
        cr_expect(n == strlen(want) && !strncmp(l, want, n), "%s: got '%.*s', want '%s'", what,
                  (int)n, l, want);
}

static void run_probe(const char *prof, char *const probe_args[], struct aidp_proc *P)
{
        char *argv[192] = {AIDP_SUPERVISOR, "run",        "--user",    "65534", "--no-cwd",
                           "--profile",     (char *)prof, "--run-dir", rundir,  "--lineage",
                           lineage,         "--summary",  summary,     "--",    DNS_PROBE};
        int n = 15;
        for (int i = 0; probe_args[i]; i++)
                argv[n++] = probe_args[i];
        argv[n] = NULL;
        int st = aidp_test_run(P, argv);
        cr_assert_eq(st, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", st, P->out, P->err);
}

Test(egress_dns, names_are_the_only_way_out)
{
        char *args[] = {/* before any lookup, the allowed name's address is closed */
                        "tcp",
                        "192.0.2.5",
                        "443",
                        "resolve",
                        "web.allowed.example",
                        "443",
                        "resolve",
                        "alias.allowed.example",
                        "443",
                        "tcp",
                        "192.0.2.5",
                        "8443",
                        "resolve",
                        "x.wild.example",
                        "443",
                        "resolve",
                        "evil.example",
                        "443",
                        "tcp",
                        "192.0.2.3",
                        "443",
                        "resolve",
                        "private.allowed.example",
                        "443",
                        "query",
                        "udp",
                        "proxy",
                        "53",
                        "evil.example",
                        "A",
                        "query",
                        "tcp",
                        "proxy",
                        "53",
                        "web.allowed.example",
                        "A",
                        "query",
                        "udp",
                        "proxy",
                        "53",
                        "big.allowed.example",
                        "A",
                        "query",
                        "tcp",
                        "proxy",
                        "53",
                        "big.allowed.example",
                        "A",
                        "query",
                        "udp",
                        "198.51.100.53",
                        "53",
                        "web.allowed.example",
                        "A",
                        "query",
                        "tcp",
                        "198.51.100.53",
                        "53",
                        "web.allowed.example",
                        "A",
                        "query",
                        "udp",
                        "198.51.100.54",
                        "53",
                        "web.allowed.example",
                        "A",
                        "query",
                        "tcp",
                        "198.51.100.54",
                        "53",
                        "web.allowed.example",
                        "A",
                        "tcp",
                        "192.0.2.2",
                        "853",
                        "tcp",
                        "198.51.100.53",
                        "853",
                        "resolve6",
                        "v6.allowed.example",
                        "443",
                        "tcp",
                        "2001:db8:2::2",
                        "8443",
                        "resolve",
                        "short.allowed.example",
                        "443",
                        "sleep",
                        "2",
                        "tcp",
                        "192.0.2.6",
                        "443",
                        NULL};
        struct aidp_proc P;
        run_probe(profile, args, &P);
        /* the printed lines, each after a newline */
        char *out = NULL;
        cr_assert(asprintf(&out, "\n%s", P.out) > 0);
        /* the job's resolver: the host end of its link, in the pool */
        char ns[32] = "", key[128];
        const char *l = strstr(out, "\nnameserver ");
        cr_assert(l && sscanf(l, "\nnameserver %31s", ns) == 1, "%s", out);
        cr_expect(!strncmp(ns, "10.213.9.", 9), "nameserver %s", ns);
        expect(out, "tcp 192.0.2.5:443", "refused");
        expect(out, "resolve web.allowed.example", "192.0.2.2");
        expect(out, "connect web.allowed.example", "ok");
        expect(out, "resolve alias.allowed.example", "192.0.2.5");
        expect(out, "connect alias.allowed.example", "ok");
        expect(out, "tcp 192.0.2.5:8443", "refused");
        expect(out, "resolve x.wild.example", "192.0.2.2");
        expect(out, "resolve evil.example", "none");
        expect(out, "tcp 192.0.2.3:443", "refused");
        expect(out, "resolve private.allowed.example", "none");
        snprintf(key, sizeof key, "query udp %s:53 evil.example", ns);
        expect(out, key, "rcode=5 answers=0");
        snprintf(key, sizeof key, "query tcp %s:53 web.allowed.example", ns);
        expect(out, key, "rcode=0 answers=1");
        snprintf(key, sizeof key, "query udp %s:53 big.allowed.example", ns);
        expect(out, key, "rcode=0 answers=0");
        snprintf(key, sizeof key, "query tcp %s:53 big.allowed.example", ns);
        expect(out, key, "rcode=0 answers=100");
        expect(out, "query udp 198.51.100.53:53 web.allowed.example", "refused");
        expect(out, "query tcp 198.51.100.53:53 web.allowed.example", "refused");
        expect(out, "query udp 198.51.100.54:53 web.allowed.example", "refused");
        expect(out, "query tcp 198.51.100.54:53 web.allowed.example", "refused");
        expect(out, "tcp 192.0.2.2:853", "refused");
        expect(out, "tcp 198.51.100.53:853", "refused");
        expect(out, "resolve v6.allowed.example", "2001:db8:2::2");
        expect(out, "connect v6.allowed.example", "ok");
        expect(out, "tcp 2001:db8:2::2:8443", "refused");
        expect(out, "connect short.allowed.example", "ok");
        /* TTL 1 s: the address stays open for the grace period after it */
        expect(out, "tcp 192.0.2.6:443", "ok");
        free(out);
        cr_expect(strstr(P.err, "name lookup(s) denied"), "%s", P.err);
        size_t len = 0;
        char *s = aidp_test_slurp(summary, &len);
        cr_assert_not_null(s);
        cr_expect(strstr(s, "evil.example"), "%s", s);
        cr_expect(strstr(s, "special address 10.99.0.1"), "%s", s);
        cr_expect(strstr(s, "198.51.100.54:53"), "%s", s);
        free(s);
        char *lg = aidp_test_slurp(lineage, &len);
        cr_assert_not_null(lg);
        const char *net = strstr(lg, "\"dnsDenials\"");
        cr_expect(net && strstr(net, "evil.example") && strstr(net, "not allowed"), "%s", lg);
        free(lg);
        cr_expect_neq(system("nft list tables | grep -q aidp"), 0, "an aidp table remains");
}

Test(egress_dns, shipped_egress_example_reaches_its_name)
{
        char *args[] = {"resolve", "pypi.internal.example", "443", "tcp", "192.0.2.2", "8443",
                        "resolve", "web.allowed.example",   "443", NULL};
        struct aidp_proc P;
        run_probe("egress-example", args, &P);
        char *out = NULL;
        cr_assert(asprintf(&out, "\n%s", P.out) > 0);
        expect(out, "resolve pypi.internal.example", "192.0.2.2");
        expect(out, "connect pypi.internal.example", "ok");
        expect(out, "tcp 192.0.2.2:8443", "refused");
        /* a name of the other test profile: not this one's */
        expect(out, "resolve web.allowed.example", "none");
        free(out);
}

Test(egress_dns, names_without_a_resolver_are_a_configuration_error)
{
        put("no-resolvers.yaml",
            "apiVersion: aidp/v1\nkind: Network\npools: {ipv4: 10.213.9.0/28}\n");
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/no-resolvers.yaml", dir);
        setenv("AIDP_NETWORK_CONFIG", p, 1);
        char *argv[] = {AIDP_SUPERVISOR,  "run",       "--user", "65534", "--no-cwd",  "--profile",
                        "egress-example", "--run-dir", rundir,   "--",    "/bin/true", NULL};
        struct aidp_proc P;
        int st = aidp_test_run(&P, argv);
        cr_expect_eq(st, 119, "exit %d\n%s", st, P.err);
        cr_expect(strstr(P.err, "pypi.internal.example") && strstr(P.err, "no resolvers"), "%s",
                  P.err);
        cr_expect_neq(system("nft list tables | grep -q aidp"), 0, "an aidp table remains");
}
