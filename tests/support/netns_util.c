#define _GNU_SOURCE
/* Throwaway network namespaces for the egress tests (netns_util.h). */
#include "netns_util.h"

#include "common/cleanup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int write_file(const char *path, const char *s)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, s, strlen(s));
        int e = errno;
        close(fd);
        return n < 0 ? -e : 0;
}

int aidp_test_fake_host(void)
{
        if (unshare(CLONE_NEWNET) < 0)
                return -errno;
        /* From here on every command and socket of this process acts on the
         * stand-in host only. */
        if (system("ip link set lo up") != 0)
                return -EIO;
        int rc = write_file("/proc/sys/net/ipv4/ip_forward", "1");
        if (rc == 0)
                rc = write_file("/proc/sys/net/ipv6/conf/all/forwarding", "1");
        return rc;
}

int aidp_test_ns_start(struct aidp_test_ns *ns, void (*body)(void *arg), void *arg)
{
        int ready[2], go[2];
        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(ready[0]);
                close(go[1]);
                char c = unshare(CLONE_NEWNET) == 0 && system("ip link set lo up") == 0;
                if (write(ready[1], &c, 1) != 1 || !c)
                        _exit(1);
                if (read(go[0], &c, 1) != 1)
                        _exit(0);
                if (body)
                        body(arg);
                for (;;)
                        pause();
        }
        close(ready[1]);
        close(go[0]);
        char c = 0;
        ssize_t n = read(ready[0], &c, 1);
        close(ready[0]);
        ns->pid = pid;
        ns->go_fd = go[1];
        return n == 1 && c ? 0 : -EIO;
}

void aidp_test_ns_go(struct aidp_test_ns *ns)
{
        char c = 1;
        if (write(ns->go_fd, &c, 1) != 1)
                perror("ns go");
}

void aidp_test_ns_stop(struct aidp_test_ns *ns)
{
        if (ns->pid > 0) {
                kill(ns->pid, SIGKILL);
                waitpid(ns->pid, NULL, 0);
        }
        if (ns->go_fd >= 0)
                close(ns->go_fd);
        ns->pid = -1;
        ns->go_fd = -1;
}

int aidp_test_ns_fd(const struct aidp_test_ns *ns)
{
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/ns/net", (int)ns->pid);
        return open(p, O_RDONLY | O_CLOEXEC);
}

int aidp_test_ns_sh(const struct aidp_test_ns *ns, const char *fmt, ...)
{
        char cmd[2048], full[2200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        snprintf(full, sizeof full, "nsenter --net=/proc/%d/ns/net sh -c '%s'", (int)ns->pid, cmd);
        int st = system(full);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/* " && ip addr add A dev IF [nodad]" for each address; IPv6 without DAD so
 * that it is usable at once. */
static void addr_cmds(char *buf, size_t len, const char *const addrs[], const char *ifname)
{
        size_t n = strlen(buf);
        for (size_t i = 0; addrs[i]; i++) {
                snprintf(buf + n, len - n, " && ip addr add %s dev %s%s", addrs[i], ifname,
                         strchr(addrs[i], ':') ? " nodad" : "");
                n = strlen(buf);
        }
}

int aidp_test_peer_link_n(const struct aidp_test_ns *peer, int n, const char *const host_addrs[],
                          const char *const peer_addrs[])
{
        char cmd[1024], hp[16], pp[16];
        snprintf(hp, sizeof hp, "hp%d", n);
        snprintf(pp, sizeof pp, "pp%d", n);
        snprintf(cmd, sizeof cmd, "ip link add %s type veth peer name %s netns %d", hp, pp,
                 (int)peer->pid);
        addr_cmds(cmd, sizeof cmd, host_addrs, hp);
        snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " && ip link set %s up", hp);
        int st = system(cmd);
        if (st != 0)
                return st;
        snprintf(cmd, sizeof cmd, "true");
        addr_cmds(cmd, sizeof cmd, peer_addrs, pp);
        snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " && ip link set %s up", pp);
        return aidp_test_ns_sh(peer, "%s", cmd);
}

int aidp_test_peer_link(const struct aidp_test_ns *peer, const char *const host_addrs[],
                        const char *const peer_addrs[])
{
        return aidp_test_peer_link_n(peer, 0, host_addrs, peer_addrs);
}

static int listen_on(int type, uint16_t port)
{
        int fd = socket(AF_INET6, type | SOCK_CLOEXEC, 0), zero = 0, one = 1;
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
            (type == SOCK_STREAM && listen(fd, 16) < 0))
                _exit(3);
        return fd;
}

void aidp_test_serve(void *p)
{
        const struct aidp_test_servers *s = p;
        struct pollfd fds[16];
        bool tcp[16];
        int n = 0;
        for (int i = 0; i < 8 && s->tcp[i]; i++) {
                tcp[n] = true;
                fds[n++] = (struct pollfd){listen_on(SOCK_STREAM, s->tcp[i]), POLLIN, 0};
        }
        for (int i = 0; i < 8 && s->udp[i]; i++) {
                tcp[n] = false;
                fds[n++] = (struct pollfd){listen_on(SOCK_DGRAM, s->udp[i]), POLLIN, 0};
        }
        char buf[512];
        for (;;) {
                if (poll(fds, (nfds_t)n, -1) < 0)
                        continue;
                for (int i = 0; i < n; i++) {
                        if (!(fds[i].revents & POLLIN))
                                continue;
                        if (tcp[i]) {
                                int c = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
                                struct timeval tv = {1, 0};
                                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                                ssize_t r = c >= 0 ? read(c, buf, sizeof buf) : -1;
                                if (r > 0 && write(c, buf, (size_t)r) < 0)
                                        r = -1;
                                if (c >= 0)
                                        close(c);
                        } else {
                                struct sockaddr_storage from;
                                socklen_t fl = sizeof from;
                                ssize_t r = recvfrom(fds[i].fd, buf, sizeof buf, 0,
                                                     (struct sockaddr *)&from, &fl);
                                if (r > 0)
                                        sendto(fds[i].fd, buf, (size_t)r, 0,
                                               (struct sockaddr *)&from, fl);
                        }
                }
        }
}

static int refused(int e)
{
        return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EPERM ||
               e == EACCES || e == ECONNRESET;
}

static int probe_here(bool tcp, const char *addr, uint16_t port, int timeout_ms)
{
        struct sockaddr_storage ss = {0};
        socklen_t len;
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons(port);
                len = sizeof *a4;
        } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons(port);
                len = sizeof *a6;
        } else {
                return AIDP_PROBE_ERROR;
        }
        int fd = socket(ss.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&ss, len) < 0)
                return refused(errno)         ? AIDP_PROBE_REFUSED
                       : errno == EINPROGRESS ? AIDP_PROBE_TIMEOUT
                                              : AIDP_PROBE_ERROR;
        if (send(fd, "ping", 4, 0) != 4)
                return refused(errno) ? AIDP_PROBE_REFUSED : AIDP_PROBE_ERROR;
        char buf[8] = "";
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 4 && !memcmp(buf, "ping", 4))
                return AIDP_PROBE_OK;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return AIDP_PROBE_TIMEOUT;
        return n < 0 && refused(errno) ? AIDP_PROBE_REFUSED : AIDP_PROBE_ERROR;
}

enum aidp_test_probe aidp_test_probe(const struct aidp_test_ns *ns, bool tcp, const char *addr,
                                     uint16_t port, int timeout_ms, double *elapsed_ms)
{
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pid_t pid = fork();
        if (pid == 0) {
                int fd = aidp_test_ns_fd(ns);
                if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
                        _exit(AIDP_PROBE_ERROR);
                _exit(probe_here(tcp, addr, port, timeout_ms));
        }
        int st = 0;
        waitpid(pid, &st, 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (elapsed_ms)
                *elapsed_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                              (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        return WIFEXITED(st) ? (enum aidp_test_probe)WEXITSTATUS(st) : AIDP_PROBE_ERROR;
}

void aidp_test_exec_dnsmasq(const char *listen, const char *const extra[])
{
        static const char *const head[] = {"dnsmasq",
                                           "-k",
                                           "-C",
                                           "/dev/null",
                                           "--user=root",
                                           "--pid-file",
                                           "--no-resolv",
                                           "--no-hosts",
                                           "--bind-interfaces",
                                           "--log-facility=/dev/null"};
        static char *argv[ARRAY_SIZE(head) + 202];
        static char listen_arg[256];
        size_t n = 0;
        for (; n < ARRAY_SIZE(head); n++)
                argv[n] = (char *)head[n];
        snprintf(listen_arg, sizeof listen_arg, "--listen-address=%s", listen);
        argv[n++] = listen_arg;
        for (size_t i = 0; extra && extra[i] && i < 200; i++)
                argv[n++] = (char *)extra[i];
        argv[n] = NULL;
        execvp(argv[0], argv);
        _exit(127);
}
