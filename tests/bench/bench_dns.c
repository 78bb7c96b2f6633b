#define _GNU_SOURCE
/* scripts/bench-egress, DNS and throughput part, never on the machine's own
 * network: a namespace stands in for the host, a DNS test host runs dnsmasq
 * (198.51.100.53) and a web test host a TCP sink (192.0.2.2:5001).
 *   bench_dns QUERIES MEGABYTES
 * prints
 *   dns direct MEDIAN_MS proxy MEDIAN_MS added MS
 *       (UDP A queries for an allowed name: from the stand-in host straight to
 *       dnsmasq, and from a sandbox through the run's DNS proxy, in turns)
 *   tcp rules MBPS bare MBPS ratio R
 *       (a TCP stream from a sandbox to the web host: through aidp's veth and
 *       rules, and through a veth made by `ip` with no rules at all) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/netns_util.h"
#include "netpolicy/apply/apply.h"

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

static void run_dnsmasq(void *arg)
{
        (void)arg;
        static const char *const extra[] = {"--local-ttl=300",
                                            "--host-record=bench.allowed.example,192.0.2.2", NULL};
        aidp_test_exec_dnsmasq("198.51.100.53", extra);
}

/* A sink: reads each connection to its end, then closes it. */
static void run_sink(void *arg)
{
        (void)arg;
        int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5001)};
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0)
                _exit(3);
        static char buf[1 << 16];
        for (;;) {
                int c = accept(l, NULL, NULL);
                while (c >= 0 && read(c, buf, sizeof buf) > 0)
                        ;
                if (c >= 0)
                        close(c);
        }
}

/* Median round trip of n UDP queries to server, in the namespace of nsfd (-1: here). */
static double query_median(int nsfd, const char *server, int n)
{
        int pfd[2];
        if (pipe(pfd) < 0)
                return -1;
        pid_t pid = fork();
        if (pid == 0) {
                double med = -1;
                if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) == 0) {
                        ldns_pkt *p =
                                ldns_pkt_query_new(ldns_dname_new_frm_str("bench.allowed.example"),
                                                   LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD);
                        uint8_t *q = NULL;
                        size_t qlen = 0;
                        ldns_pkt2wire(&q, p, &qlen);
                        int fd = socket(AF_INET, SOCK_DGRAM, 0);
                        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
                        inet_pton(AF_INET, server, &a.sin_addr);
                        struct timeval tv = {1, 0};
                        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                        double *t = calloc((size_t)n, sizeof *t);
                        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
                        uint8_t buf[4096];
                        for (int i = 0; ok && i < n; i++) {
                                q[0] = (uint8_t)(i >> 8);
                                q[1] = (uint8_t)i;
                                double t0 = now_ms();
                                ok = send(fd, q, qlen, 0) == (ssize_t)qlen &&
                                     recv(fd, buf, sizeof buf, 0) > 12;
                                t[i] = now_ms() - t0;
                        }
                        if (ok) {
                                qsort(t, (size_t)n, sizeof *t, cmp_d);
                                med = t[n / 2];
                        }
                }
                _exit(write(pfd[1], &med, sizeof med) == sizeof med ? 0 : 1);
        }
        close(pfd[1]);
        double med = -1;
        if (read(pfd[0], &med, sizeof med) != sizeof med)
                med = -1;
        close(pfd[0]);
        waitpid(pid, NULL, 0);
        return med;
}

/* MB/s of a mb-megabyte TCP stream to the sink, from the namespace of nsfd. */
static double stream(int nsfd, int mb)
{
        int pfd[2];
        if (pipe(pfd) < 0)
                return -1;
        pid_t pid = fork();
        if (pid == 0) {
                double r = -1;
                if (setns(nsfd, CLONE_NEWNET) == 0) {
                        int fd = socket(AF_INET, SOCK_STREAM, 0);
                        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5001)};
                        inet_pton(AF_INET, "192.0.2.2", &a.sin_addr);
                        static char buf[1 << 16];
                        double t0 = now_ms();
                        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
                        for (long left = (long)mb << 20; ok && left > 0; left -= (long)sizeof buf)
                                ok = write(fd, buf, sizeof buf) == (ssize_t)sizeof buf;
                        shutdown(fd, SHUT_WR);
                        char c;
                        ok = ok && read(fd, &c, 1) == 0; /* the sink read it all */
                        if (ok)
                                r = mb / ((now_ms() - t0) / 1e3);
                }
                _exit(write(pfd[1], &r, sizeof r) == sizeof r ? 0 : 1);
        }
        close(pfd[1]);
        double r = -1;
        if (read(pfd[0], &r, sizeof r) != sizeof r)
                r = -1;
        close(pfd[0]);
        waitpid(pid, NULL, 0);
        return r;
}

static int setup_hosts(struct aidp_test_ns *web, struct aidp_test_ns *dns)
{
        static const char *const h0[] = {"192.0.2.1/24", NULL}, *const p0[] = {"192.0.2.2/24",
                                                                               NULL};
        static const char *const h1[] = {"198.51.100.1/24", NULL}, *const p1[] = {
                                                                           "198.51.100.53/24",
                                                                           NULL};
        if (aidp_test_fake_host() < 0 || aidp_test_ns_start(web, run_sink, NULL) < 0 ||
            aidp_test_ns_start(dns, run_dnsmasq, NULL) < 0 ||
            aidp_test_peer_link_n(web, 0, h0, p0) != 0 ||
            aidp_test_peer_link_n(dns, 1, h1, p1) != 0 ||
            /* the bare sandbox is not masqueraded: the web host routes back */
            aidp_test_ns_sh(web, "ip route add 10.213.0.0/16 via 192.0.2.1") != 0)
                return -1;
        aidp_test_ns_go(web);
        aidp_test_ns_go(dns);
        usleep(300 * 1000); /* dnsmasq binds */
        return 0;
}

static int bare_sandbox(struct aidp_test_ns *sb)
{
        if (aidp_test_ns_start(sb, NULL, NULL) < 0)
                return -1;
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "ip link add bare0 type veth peer name eth0 netns %d && "
                 "ip addr add 10.213.1.1/30 dev bare0 && ip link set bare0 up && "
                 "nsenter --net=/proc/%d/ns/net sh -c 'ip addr add 10.213.1.2/30 dev eth0 && "
                 "ip link set eth0 up && ip route add default via 10.213.1.1'",
                 (int)sb->pid, (int)sb->pid);
        int rc = system(cmd);
        aidp_test_ns_go(sb);
        return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
        int nq = argc > 1 ? atoi(argv[1]) : 2000, mb = argc > 2 ? atoi(argv[2]) : 512;
        struct aidp_test_ns web, dns, sb, bare;
        if (setup_hosts(&web, &dns) < 0) {
                fprintf(stderr, "bench-dns: cannot make the test namespaces (root? dnsmasq?)\n");
                return 1;
        }
        static struct aidp_egress_rule rules[] = {
                {.fqdn = "bench.allowed.example",
                 .port_min = 5001,
                 .port_max = 5001,
                 .protocol = 6},
                {.cidr = "192.0.2.2/32", .port_min = 5001, .port_max = 5001, .protocol = 6},
        };
        static char *resolvers[] = {"198.51.100.53"};
        struct aidp_hostnet hn = {
                .pool4 = "10.213.0.0/24", .resolvers = resolvers, .n_resolvers = 1};
        struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = rules, .n_rules = 2};
        struct aidp_netpolicy *np = NULL;
        struct aidp_np_run *r = NULL;
        aidp_error err = {0};
        if (aidp_netpolicy_compile(&net, &np, &err) < 0 || aidp_test_ns_start(&sb, NULL, NULL) < 0)
                return 1;
        int sbfd = aidp_test_ns_fd(&sb);
        if (aidp_netpolicy_apply(np, &hn, "/run/aidp-bench-leases", "bench-dns", sbfd, &r, &err) <
            0) {
                fprintf(stderr, "apply: %s\n", err.msg);
                return 1;
        }
        aidp_test_ns_go(&sb);
        const char *proxy = aidp_netpolicy_run_resolver(r);
        /* in turns, so that both see the same load of the shared machine */
        double d[10], p[10];
        int rounds = 10;
        for (int i = 0; i < rounds; i++) {
                d[i] = query_median(-1, "198.51.100.53", nq / rounds);
                p[i] = query_median(sbfd, proxy, nq / rounds);
        }
        qsort(d, (size_t)rounds, sizeof *d, cmp_d);
        qsort(p, (size_t)rounds, sizeof *p, cmp_d);
        printf("dns direct %.3f proxy %.3f added %.3f\n", d[rounds / 2], p[rounds / 2],
               p[rounds / 2] - d[rounds / 2]);
        if (bare_sandbox(&bare) < 0)
                return 1;
        int barefd = aidp_test_ns_fd(&bare);
        double ru[5], ba[5];
        for (int i = 0; i < 5; i++) {
                ru[i] = stream(sbfd, mb / 5);
                ba[i] = stream(barefd, mb / 5);
        }
        qsort(ru, 5, sizeof *ru, cmp_d);
        qsort(ba, 5, sizeof *ba, cmp_d);
        printf("tcp rules %.0f bare %.0f ratio %.2f\n", ru[2], ba[2], ru[2] / ba[2]);
        aidp_test_ns_stop(&sb);
        aidp_test_ns_stop(&bare);
        aidp_netpolicy_teardown(r, NULL);
        aidp_netpolicy_free(np);
        aidp_test_ns_stop(&web);
        aidp_test_ns_stop(&dns);
        return 0;
}
