#define _GNU_SOURCE
/* The run's DNS proxy (netpolicy/apply/dnsproxy*.c) with several resolvers
 * and several TCP clients, through the apply layer, never on the machine's
 * own network: the test moves into a namespace standing in for the host; a
 * DNS host runs Debian's dnsmasq on 198.51.100.53 (started and ended by pid);
 * a "bad resolvers" host answers SERVFAIL on 203.0.113.10, holds 203.0.113.11
 * without ever answering, and holds 203.0.113.12 with nothing listening.
 * From inside the sandbox (tests/helpers/dns_probe): with the first resolver
 * down, silent or failing, the next one answers, over UDP and TCP, and the
 * address lands in the run's set; with none left the job gets SERVFAIL; TCP
 * clients that send nothing do not hold up other clients. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netns_util.h"
#include "netpolicy/apply/apply.h"
#include "priv.h"
#include "runner.h"

#define DNS_PROBE AIDP_BINARY_DIR "/tests/helpers/dns_probe"

static struct aidp_test_ns dns, bad;
static char dir[] = "/tmp/aidp-test-dnsproxy-XXXXXX";

static void run_dnsmasq(void *arg)
{
        (void)arg;
        static const char *const records[] = {"--host-record=web.allowed.example,192.0.2.2", NULL};
        aidp_test_exec_dnsmasq("198.51.100.53", records);
}

static int bound(int type, const char *addr)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
        inet_pton(AF_INET, addr, &sa.sin_addr);
        int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            (type == SOCK_STREAM && listen(fd, 16) < 0))
                _exit(3);
        return fd;
}

/* The question back as a SERVFAIL answer. */
static void servfail(uint8_t *m, size_t n)
{
        if (n >= 12) {
                m[2] |= 0x80;
                m[3] = (uint8_t)((m[3] & 0xf0) | 2);
        }
}

/* 203.0.113.10: SERVFAIL over UDP and TCP; .11: bound, never answers; .12:
 * nothing listens. */
static void run_bad(void *arg)
{
        (void)arg;
        int u = bound(SOCK_DGRAM, "203.0.113.10"), t = bound(SOCK_STREAM, "203.0.113.10");
        int silent_u = bound(SOCK_DGRAM, "203.0.113.11");
        int silent_t = bound(SOCK_STREAM, "203.0.113.11");
        (void)silent_u;
        (void)silent_t;
        for (;;) {
                struct pollfd pf[2] = {{.fd = u, .events = POLLIN}, {.fd = t, .events = POLLIN}};
                if (poll(pf, 2, -1) < 0)
                        continue;
                uint8_t m[4096];
                if (pf[0].revents & POLLIN) {
                        struct sockaddr_in from;
                        socklen_t fl = sizeof from;
                        ssize_t n = recvfrom(u, m, sizeof m, 0, (struct sockaddr *)&from, &fl);
                        if (n > 0) {
                                servfail(m, (size_t)n);
                                sendto(u, m, (size_t)n, 0, (struct sockaddr *)&from, fl);
                        }
                }
                if (pf[1].revents & POLLIN) {
                        int c = accept(t, NULL, NULL);
                        struct timeval tv = {1, 0};
                        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                        uint8_t l[2];
                        if (c >= 0 && recv(c, l, 2, MSG_WAITALL) == 2) {
                                size_t n = (size_t)(l[0] << 8 | l[1]);
                                if (n <= sizeof m && recv(c, m, n, MSG_WAITALL) == (ssize_t)n) {
                                        servfail(m, n);
                                        if (send(c, l, 2, 0) == 2)
                                                send(c, m, n, 0);
                                }
                        }
                        if (c >= 0)
                                close(c);
                }
        }
}

static void setup(void)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(system("command -v dnsmasq >/dev/null"), 0, "dnsmasq is not installed");
        cr_assert_eq(aidp_test_fake_host(), 0, "cannot make the stand-in host namespace");
        cr_assert_eq(aidp_test_ns_start(&dns, run_dnsmasq, NULL), 0);
        cr_assert_eq(aidp_test_ns_start(&bad, run_bad, NULL), 0);
        static const char *const h0[] = {"198.51.100.1/24", NULL};
        static const char *const p0[] = {"198.51.100.53/24", NULL};
        static const char *const h1[] = {"203.0.113.1/24", NULL};
        static const char *const p1[] = {"203.0.113.10/24", "203.0.113.11/24", "203.0.113.12/24",
                                         NULL};
        cr_assert_eq(aidp_test_peer_link_n(&dns, 0, h0, p0), 0);
        cr_assert_eq(aidp_test_peer_link_n(&bad, 1, h1, p1), 0);
        aidp_test_ns_go(&dns);
        aidp_test_ns_go(&bad);
        cr_assert_not_null(aidp_test_mkdtemp(dir)); /* removed when the worker exits */
        usleep(300 * 1000);                         /* dnsmasq binds */
}

static void fini(void)
{
        aidp_test_ns_stop(&dns);
        aidp_test_ns_stop(&bad);
}

TestSuite(egress_dnsproxy, .init = setup, .fini = fini, .timeout = 120);

struct run {
        struct aidp_test_ns sb;
        struct aidp_np_run *r;
        struct aidp_netpolicy *np;
        char id[32];
};

static void start(struct run *R, const char *id, char *resolvers[], size_t n)
{
        struct aidp_egress_rule rule = {.fqdn = (char *)"web.allowed.example",
                                        .port_min = 443,
                                        .port_max = 443,
                                        .protocol = IPPROTO_TCP};
        struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = &rule, .n_rules = 1};
        struct aidp_hostnet hn = {
                .pool4 = (char *)"10.213.7.0/28", .resolvers = resolvers, .n_resolvers = n};
        aidp_error err = {0};
        snprintf(R->id, sizeof R->id, "%s", id);
        cr_assert_eq(aidp_netpolicy_compile(&net, &R->np, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_test_ns_start(&R->sb, NULL, NULL), 0);
        int fd = aidp_test_ns_fd(&R->sb);
        cr_assert_eq(aidp_netpolicy_apply(R->np, &hn, dir, id, fd, &R->r, &err), 0, "%s", err.msg);
        close(fd);
        cr_assert_not_null(aidp_netpolicy_run_resolver(R->r));
        aidp_test_ns_go(&R->sb);
}

static void stop(struct run *R)
{
        aidp_test_ns_stop(&R->sb);
        aidp_error err = {0};
        cr_expect_eq(aidp_netpolicy_teardown(R->r, &err), 0, "%s", err.msg);
        aidp_netpolicy_free(R->np);
}

static double now_ms(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* One query from inside the sandbox to the run's proxy; dns_probe's line. */
static void query(struct run *R, const char *proto, char *line, size_t len, double *ms)
{
        char out[300];
        snprintf(out, sizeof out, "%s/probe-%s.out", dir, proto);
        double t0 = now_ms();
        int rc = aidp_test_ns_sh(&R->sb,
                                 "DNS_PROBE_TIMEOUT=5 %s query %s %s 53 web.allowed.example A > %s",
                                 DNS_PROBE, proto, aidp_netpolicy_run_resolver(R->r), out);
        if (ms)
                *ms = now_ms() - t0;
        cr_assert_eq(rc, 0);
        FILE *f = fopen(out, "r");
        cr_assert_not_null(f);
        line[0] = '\0';
        while (fgets(line, (int)len, f) && strncmp(line, "query", 5) != 0)
                ;
        fclose(f);
        line[strcspn(line, "\n")] = '\0';
}

static void expect_answered(struct run *R, const char *proto, double max_ms)
{
        char line[300];
        double ms;
        query(R, proto, line, sizeof line, &ms);
        cr_expect(strstr(line, "rcode=0 answers=1"), "%s: %s", proto, line);
        cr_expect_lt(ms, max_ms, "%s answered after %.0f ms", proto, ms);
        char cmd[200];
        snprintf(cmd, sizeof cmd, "nft list set inet aidp-%s fqdn4_0 | grep -q 192.0.2.2", R->id);
        cr_expect_eq(system(cmd), 0, "the answered address is not in the host table's set");
}

Test(egress_dnsproxy, the_next_resolver_answers_when_the_first_is_down)
{
        char *res[] = {(char *)"203.0.113.12", (char *)"198.51.100.53"};
        struct run R;
        start(&R, "dns-down", res, 2);
        /* Nothing listens there: the port-unreachable moves on at once. */
        expect_answered(&R, "udp", 900);
        expect_answered(&R, "tcp", 900);
        stop(&R);
}

Test(egress_dnsproxy, the_next_resolver_answers_when_the_first_says_servfail)
{
        char *res[] = {(char *)"203.0.113.10", (char *)"198.51.100.53"};
        struct run R;
        start(&R, "dns-servfail", res, 2);
        expect_answered(&R, "udp", 900);
        expect_answered(&R, "tcp", 900);
        stop(&R);
}

Test(egress_dnsproxy, the_next_resolver_answers_when_the_first_is_silent)
{
        char *res[] = {(char *)"203.0.113.11", (char *)"198.51.100.53"};
        struct run R;
        start(&R, "dns-silent", res, 2);
        char line[300];
        double ms;
        /* 1.5 s for the silent one (3 s shared by two), then the next. */
        query(&R, "udp", line, sizeof line, &ms);
        cr_expect(strstr(line, "rcode=0 answers=1"), "udp: %s", line);
        cr_expect_gt(ms, 1400, "answered after %.0f ms: the silent one was not asked first", ms);
        /* TCP: it accepts and never answers; the step times out the same. */
        expect_answered(&R, "tcp", 5000);
        stop(&R);
}

Test(egress_dnsproxy, servfail_when_every_resolver_fails)
{
        char *res[] = {(char *)"203.0.113.12", (char *)"203.0.113.10"};
        struct run R;
        start(&R, "dns-none", res, 2);
        char line[300];
        query(&R, "udp", line, sizeof line, NULL);
        cr_expect(strstr(line, "rcode=2 answers=0"), "udp: %s", line);
        query(&R, "tcp", line, sizeof line, NULL);
        cr_expect(strstr(line, "rcode=2 answers=0"), "tcp: %s", line);
        stop(&R);
}

/* Five TCP clients that connect, send one byte of a length and wait. */
static pid_t slow_clients(struct run *R)
{
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                int ns = aidp_test_ns_fd(&R->sb);
                if (ns < 0 || setns(ns, CLONE_NEWNET) < 0)
                        _exit(1);
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
                inet_pton(AF_INET, aidp_netpolicy_run_resolver(R->r), &sa.sin_addr);
                for (int i = 0; i < 5; i++) {
                        int fd = socket(AF_INET, SOCK_STREAM, 0);
                        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
                            send(fd, "\0", 1, 0) != 1)
                                _exit(2);
                }
                sleep(30);
                _exit(0);
        }
        return pid;
}

Test(egress_dnsproxy, a_slow_tcp_client_does_not_hold_up_others)
{
        char *res[] = {(char *)"198.51.100.53"};
        struct run R;
        start(&R, "dns-slow", res, 1);
        pid_t slow = slow_clients(&R);
        cr_assert_gt(slow, 0);
        usleep(300 * 1000); /* the proxy has accepted them */
        /* One at a time, five clients of 2 s each would hold everyone for
         * 10 s; served at once, the others are answered at once. */
        expect_answered(&R, "tcp", 1500);
        expect_answered(&R, "udp", 1500);
        int st = 0;
        cr_expect_eq(waitpid(slow, &st, WNOHANG), 0, "the slow clients failed: %d", st);
        kill(slow, SIGKILL); /* by pid: our own child */
        waitpid(slow, NULL, 0);
        stop(&R);
}
