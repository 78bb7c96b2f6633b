#define _GNU_SOURCE
/* scripts/bench-egress: time from nothing (no sandbox namespace) to the first
 * allowed connect, with N CIDR rules, done by aidp's apply layer and by the
 * same steps through `ip` and `nft -f` (the same ruleset text), in turns.
 * Each side makes the sandbox namespace and brings its loopback up its own
 * way: aidp as its sandbox does (unshare, ioctl), the tools with `ip`.
 * Runs inside a namespace standing in for the host, with a peer host serving
 * TCP on 192.0.2.2:8080; nothing touches the machine's own network.
 *   bench_egress RULES RUNS   -> "aidp MEDIAN_MS cli MEDIAN_MS" */
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../support/netns_util.h"
#include "netpolicy/apply/apply.h"

static struct aidp_hostnet hn = {.pool4 = "10.213.0.0/24"};

static double now_ms(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
        char cmd[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        return system(cmd);
}

/* The sandbox namespace as aidp-supervisor makes it: a child unshares and
 * brings lo up with an ioctl (supervisor/sandbox/sandbox.c), no `ip`. */
static int aidp_style_ns(struct aidp_test_ns *ns)
{
        int ready[2], go[2];
        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
                return -1;
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                struct ifreq ifr = {0};
                snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
                int fd = unshare(CLONE_NEWNET) == 0 ? socket(AF_INET, SOCK_DGRAM, 0) : -1;
                char c = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
                ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
                c = c && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
                if (write(ready[1], &c, 1) != 1 || !c)
                        _exit(1);
                for (;;)
                        pause();
        }
        close(ready[1]);
        close(go[0]);
        char c = 0;
        ssize_t n = pid > 0 ? read(ready[0], &c, 1) : -1;
        close(ready[0]);
        ns->pid = pid;
        ns->go_fd = go[1];
        return n == 1 && c ? 0 : -1;
}

static double one_aidp(const struct aidp_network *net, int i)
{
        char id[32];
        snprintf(id, sizeof id, "bench-%d", i);
        double t0 = now_ms();
        struct aidp_test_ns sb;
        struct aidp_netpolicy *np = NULL;
        struct aidp_np_run *r = NULL;
        aidp_error err = {0};
        if (aidp_style_ns(&sb) < 0 || aidp_netpolicy_compile(net, &np, &err) < 0)
                return -1;
        int fd = aidp_test_ns_fd(&sb);
        if (aidp_netpolicy_apply(np, &hn, "/run/aidp-bench-leases", id, fd, &r, &err) < 0) {
                fprintf(stderr, "apply: %s\n", err.msg);
                return -1;
        }
        close(fd);
        int ok = aidp_test_probe(&sb, true, "192.0.2.2", 8080, 2000, NULL) == AIDP_PROBE_OK;
        double t = now_ms() - t0;
        aidp_test_ns_stop(&sb);
        aidp_netpolicy_teardown(r, NULL);
        aidp_netpolicy_free(np);
        return ok ? t : -1;
}

/* The same steps by the command-line tools, on the same ruleset text. */
static double one_cli(const struct aidp_network *net, int i)
{
        char id[32];
        snprintf(id, sizeof id, "clibench-%d", i);
        double t0 = now_ms();
        struct aidp_test_ns sb;
        struct aidp_netpolicy *np = NULL;
        char *sbt = NULL, *host = NULL;
        struct aidp_np_names n = {
                .run_id = id, .host_if = "clih0", .sandbox_v4 = "10.213.1.2", .nflog_group = 1};
        if (aidp_test_ns_start(&sb, NULL, NULL) < 0 || aidp_netpolicy_compile(net, &np, NULL) < 0 ||
            aidp_netpolicy_render_sandbox(np, &n, &sbt, NULL) < 0 ||
            aidp_netpolicy_render_host(np, &n, &host, NULL) < 0)
                return -1;
        FILE *f = fopen("/tmp/aidp-bench-sb.nft", "w");
        fputs(sbt, f);
        fclose(f);
        f = fopen("/tmp/aidp-bench-host.nft", "w");
        fputs(host, f);
        fclose(f);
        int pid = (int)sb.pid;
        int rc = sh("nft -f /tmp/aidp-bench-host.nft && "
                    "ip link add clih0 type veth peer name eth0 netns %d && "
                    "ip addr add 10.213.1.1/30 dev clih0 && ip link set clih0 up && "
                    "nsenter --net=/proc/%d/ns/net sh -c 'nft -f /tmp/aidp-bench-sb.nft && "
                    "ip addr add 10.213.1.2/30 dev eth0 && ip link set eth0 up && "
                    "ip route add default via 10.213.1.1'",
                    pid, pid);
        aidp_test_ns_go(&sb);
        int ok = rc == 0 &&
                 aidp_test_probe(&sb, true, "192.0.2.2", 8080, 2000, NULL) == AIDP_PROBE_OK;
        double t = now_ms() - t0;
        aidp_test_ns_stop(&sb);
        sh("nft delete table inet aidp-%s; ip link del clih0 2>/dev/null; true", id);
        free(sbt);
        free(host);
        aidp_netpolicy_free(np);
        return ok ? t : -1;
}

int main(int argc, char **argv)
{
        int nrules = argc > 1 ? atoi(argv[1]) : 10, runs = argc > 2 ? atoi(argv[2]) : 20;
        static struct aidp_test_servers srv = {.tcp = {8080}};
        struct aidp_test_ns peer;
        if (aidp_test_fake_host() < 0 || aidp_test_ns_start(&peer, aidp_test_serve, &srv) < 0) {
                fprintf(stderr, "bench-egress: cannot make the test namespaces (root?)\n");
                return 1;
        }
        static const char *const host[] = {"192.0.2.1/24", NULL};
        static const char *const far[] = {"192.0.2.2/24", NULL};
        if (aidp_test_peer_link(&peer, host, far) != 0)
                return 1;
        aidp_test_ns_go(&peer);
        struct aidp_egress_rule *rules = calloc((size_t)nrules, sizeof *rules);
        char(*cidr)[32] = calloc((size_t)nrules, sizeof *cidr);
        for (int i = 0; i < nrules; i++) {
                snprintf(cidr[i], sizeof cidr[i], "10.%d.%d.%d/32", 100 + i / 65536 % 100,
                         i / 128 % 256, i % 128 * 2);
                rules[i] = (struct aidp_egress_rule){
                        .cidr = cidr[i], .port_min = 443, .port_max = 443, .protocol = 6};
        }
        snprintf(cidr[0], sizeof cidr[0], "192.0.2.2/32");
        rules[0].port_min = rules[0].port_max = 8080;
        struct aidp_network net = {
                .mode = AIDP_NET_EGRESS, .rules = rules, .n_rules = (size_t)nrules};
        double *a = calloc((size_t)runs, sizeof *a), *c = calloc((size_t)runs, sizeof *c);
        for (int i = 0; i < runs; i++) {
                a[i] = one_aidp(&net, i);
                c[i] = one_cli(&net, i);
                if (a[i] < 0 || c[i] < 0) {
                        fprintf(stderr, "bench-egress: run %d failed (aidp %.1f, cli %.1f)\n", i,
                                a[i], c[i]);
                        return 1;
                }
        }
        qsort(a, (size_t)runs, sizeof *a, cmp_d);
        qsort(c, (size_t)runs, sizeof *c, cmp_d);
        printf("aidp %.2f cli %.2f\n", a[runs / 2], c[runs / 2]);
        aidp_test_ns_stop(&peer);
        return 0;
}
