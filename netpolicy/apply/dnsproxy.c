/* Starting and stopping a run's DNS proxy (dnsproxy.h). */
#define _GNU_SOURCE
#include "netpolicy/apply/dnsproxy_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "netpolicy/apply/apply.h"

struct aidp_np_dnsproxy {
        pid_t pid;
        int stop_w, result_r;
};

static int bound(int type, const struct sockaddr_in *sa, aidp_error *err)
{
        int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "DNS proxy socket");
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 ||
            (type == SOCK_STREAM && listen(fd, 16) < 0)) {
                int e = errno;
                close(fd);
                char a[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &sa->sin_addr, a, sizeof a);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "DNS proxy on %s:53", a);
        }
        return fd;
}

static int upstream(struct upstream *u, const char *addr, aidp_error *err)
{
        struct sockaddr_in *s4 = (struct sockaddr_in *)&u->addr;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&u->addr;
        memset(&u->addr, 0, sizeof u->addr);
        if (addr && inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
                s4->sin_family = AF_INET;
                s4->sin_port = htons(53);
                u->len = sizeof *s4;
        } else if (addr && inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons(53);
                u->len = sizeof *s6;
        } else {
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "egress: resolver '%s' of the DNS proxy is not an address",
                                      addr ? addr : "");
        }
        /* Connected: only that resolver's answers arrive here, and an ICMP
         * unreachable from it comes back as ECONNREFUSED (next resolver). */
        int fd = socket(u->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&u->addr, u->len) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "DNS upstream %s", addr);
        }
        u->fd = fd;
        return 0;
}

static int open_sandbox_conn(void *p, aidp_error *err)
{
        struct proxy *P = p;
        /* The socket stays bound to the run's namespace after we leave it. */
        P->sandbox = aidp_np_setconn_open();
        return P->sandbox ? 0
                          : aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                             "netfilter socket in the run's namespace");
}

static int open_all(struct proxy *P, const struct aidp_np_dnsproxy_conf *c, aidp_error *err)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
        if (inet_pton(AF_INET, c->listen4, &sa.sin_addr) != 1 ||
            inet_pton(AF_INET, c->client4, &P->client) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "DNS proxy address");
        snprintf(P->host_table, sizeof P->host_table, "%s", c->host_table);
        if (c->n_upstreams == 0 || c->n_upstreams > AIDP_HOSTNET_MAX_RESOLVERS)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "egress: the DNS proxy needs 1 to %u resolvers, not %zu",
                                      AIDP_HOSTNET_MAX_RESOLVERS, c->n_upstreams);
        if ((P->udp = bound(SOCK_DGRAM, &sa, err)) < 0 ||
            (P->tcp = bound(SOCK_STREAM, &sa, err)) < 0)
                return -EIO;
        for (; P->n_up < c->n_upstreams; P->n_up++)
                if (upstream(&P->up[P->n_up], c->upstreams[P->n_up], err) < 0)
                        return -EIO;
        /* One resolver gets the whole 3 s; with more, each gets its share
         * but never less than a second, so the job's own retry (5 s in
         * glibc) finds the proxy done with the last one. */
        P->try_ms = c->n_upstreams == 1 ? 3000 : 3000 / c->n_upstreams;
        if (P->try_ms < 1000)
                P->try_ms = 1000;
        if (!(P->host = aidp_np_setconn_open()))
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "netfilter socket");
        return aidp_np_in_netns(c->netns_fd, open_sandbox_conn, P, err);
}

static void close_all(struct proxy *P)
{
        int *fds[] = {&P->udp, &P->tcp, &P->stop};
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                if (*fds[i] >= 0)
                        close(*fds[i]);
        for (size_t i = 0; i < P->n_up; i++)
                close(P->up[i].fd);
        aidp_np_setconn_close(P->host);
        aidp_np_setconn_close(P->sandbox);
        free(P);
}

static int cmp_int(const void *a, const void *b)
{
        return *(const int *)a - *(const int *)b;
}

/* The proxy keeps only its own fds: none of the run's mounts, pipes or keys. */
static void close_others(int *keep, size_t n)
{
        qsort(keep, n, sizeof *keep, cmp_int);
        unsigned from = 3;
        for (size_t i = 0; i < n; i++) {
                if (keep[i] < (int)from)
                        continue;
                if ((unsigned)keep[i] > from)
                        close_range(from, (unsigned)keep[i] - 1, 0);
                from = (unsigned)keep[i] + 1;
        }
        close_range(from, ~0U, 0);
}

__attribute__((noreturn)) static void child(struct proxy *P, int result_w, pid_t parent)
{
        /* Dies with the supervisor: the sockets and sets are the run's. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(0);
        prctl(PR_SET_NAME, "aidp-dns");
        signal(SIGPIPE, SIG_IGN);
        int keep[6 + AIDP_HOSTNET_MAX_RESOLVERS] = {P->udp,
                                                    P->tcp,
                                                    P->stop,
                                                    result_w,
                                                    aidp_np_setconn_fd(P->host),
                                                    aidp_np_setconn_fd(P->sandbox)};
        size_t nk = 6;
        for (size_t i = 0; i < P->n_up; i++)
                keep[nk++] = P->up[i].fd;
        close_others(keep, nk);
        aidp_np_dnsproxy_loop(P);
        /* TCP client threads may still run: the counts are read whole, and
         * _exit ends the threads. */
        pthread_mutex_lock(&P->lock);
        ssize_t w = write(result_w, &P->denials, sizeof P->denials);
        _exit(w == (ssize_t)sizeof P->denials ? 0 : 1);
}

int aidp_np_dnsproxy_start(const struct aidp_np_dnsproxy_conf *c, struct aidp_np_dnsproxy **ret,
                           aidp_error *err)
{
        struct proxy *P = calloc(1, sizeof *P);
        struct aidp_np_dnsproxy *d = calloc(1, sizeof *d);
        if (!P || !d) {
                free(P);
                free(d);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "DNS proxy");
        }
        P->np = c->np;
        P->udp = P->tcp = P->stop = -1;
        pthread_mutex_init(&P->lock, NULL);
        int stop[2] = {-1, -1}, res[2] = {-1, -1};
        int rc = open_all(P, c, err);
        if (rc == 0 && (pipe2(stop, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0))
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
        pid_t parent = getpid();
        pid_t pid = rc == 0 ? fork() : -1;
        if (pid == 0) {
                close(stop[1]);
                close(res[0]);
                P->stop = stop[0];
                child(P, res[1], parent);
        }
        if (rc == 0 && pid < 0)
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "fork (DNS proxy)");
        int *ours[] = {&stop[0], &res[1]};
        for (size_t i = 0; i < ARRAY_SIZE(ours); i++)
                if (*ours[i] >= 0)
                        close(*ours[i]);
        close_all(P); /* the proxy's now, or nothing's */
        if (rc < 0) {
                if (stop[1] >= 0)
                        close(stop[1]);
                if (res[0] >= 0)
                        close(res[0]);
                free(d);
                return rc;
        }
        *d = (struct aidp_np_dnsproxy){pid, stop[1], res[0]};
        *ret = d;
        return 0;
}

pid_t aidp_np_dnsproxy_pid(const struct aidp_np_dnsproxy *p)
{
        return p->pid;
}

void aidp_np_dnsproxy_stop(struct aidp_np_dnsproxy *p, struct aidp_np_denials *d)
{
        if (!p)
                return;
        close(p->stop_w);
        struct aidp_np_denials got;
        struct pollfd pf = {.fd = p->result_r, .events = POLLIN};
        size_t n = 0;
        while (n < sizeof got && poll(&pf, 1, 2000) > 0) {
                ssize_t k = read(p->result_r, (char *)&got + n, sizeof got - n);
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        if (n == sizeof got && got.n_dns <= AIDP_NP_DNS_KEYS) {
                /* Only the proxy counts names: its numbers replace ours. */
                d->dns_total = got.dns_total;
                d->dns_other = got.dns_other;
                d->n_dns = got.n_dns;
                memcpy(d->dns, got.dns, sizeof d->dns);
        } else {
                kill(p->pid, SIGKILL); /* by its pid: our own child */
        }
        close(p->result_r);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        free(p);
}
