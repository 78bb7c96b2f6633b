/* Runs inside the sandbox (tests/priv/test_egress_run.c).
 * usage: net_probe [tcp|udp ADDR PORT]... [admin]
 * For each destination prints "ADDR:PORT ok|refused|timeout|error MS"
 * (connect or send, then "ping" echoed back, 2 s at most); "admin" tries to
 * take eth0 down and prints "admin refused" or "admin FAIL". */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static const char *verdict(int e)
{
        if (e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EPERM ||
            e == EACCES || e == ECONNRESET)
                return "refused";
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS || e == ETIMEDOUT)
                return "timeout";
        return "error";
}

static const char *probe(int tcp, const char *addr, int port)
{
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        socklen_t len;
        if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons((unsigned short)port);
                len = sizeof *a4;
        } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons((unsigned short)port);
                len = sizeof *a6;
        } else {
                return "error";
        }
        int fd = socket(ss.ss_family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
        if (fd < 0)
                return "error";
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        const char *v = "ok";
        char buf[8] = "";
        if (connect(fd, (struct sockaddr *)&ss, len) < 0 || send(fd, "ping", 4, 0) != 4)
                v = verdict(errno);
        else if (recv(fd, buf, sizeof buf, 0) != 4 || memcmp(buf, "ping", 4))
                v = verdict(errno);
        close(fd);
        return v;
}

int main(int argc, char **argv)
{
        int i = 1;
        while (i < argc) {
                if (!strcmp(argv[i], "admin")) {
                        int fd = socket(AF_INET, SOCK_DGRAM, 0);
                        struct ifreq ifr = {0};
                        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "eth0");
                        int rc = fd < 0 ? -1 : ioctl(fd, SIOCSIFFLAGS, &ifr);
                        printf("admin %s\n",
                               rc < 0 && (errno == EPERM || errno == EACCES) ? "refused" : "FAIL");
                        i++;
                        continue;
                }
                if (i + 2 >= argc)
                        break;
                int tcp = !strcmp(argv[i], "tcp");
                double t0 = now_ms();
                const char *v = probe(tcp, argv[i + 1], atoi(argv[i + 2]));
                printf("%s %s:%s %s %.0f\n", argv[i], argv[i + 1], argv[i + 2], v, now_ms() - t0);
                fflush(stdout);
                i += 3;
        }
        return 0;
}
