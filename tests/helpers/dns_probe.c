/* Runs inside the sandbox (tests/priv/test_egress_dns.c). One line per step:
 *   resolve NAME PORT      -> "resolve NAME ADDR|none" through the job's resolver
 *                             (getaddrinfo, IPv4), then "connect NAME ok|refused|timeout|error"
 *   resolve6 NAME PORT     -> the same over IPv6 (AAAA)
 *   query udp|tcp SERVER PORT NAME TYPE
 *                          -> "query PROTO SERVER:PORT NAME rcode=N answers=K"
 *                             or "query PROTO SERVER:PORT NAME refused|timeout|error"
 *   tcp ADDR PORT          -> "tcp ADDR:PORT ok|refused|timeout|error" (connect only)
 *   sleep SECONDS
 * SERVER "proxy" is the nameserver of /etc/resolv.conf (printed first as
 * "nameserver ADDR").
 * DNS messages are built and read with ldns. */
#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *verdict(int e)
{
        if (e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EPERM ||
            e == EACCES || e == ECONNRESET)
                return "refused";
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS || e == ETIMEDOUT)
                return "timeout";
        return "error";
}

static int sock_to(const char *addr, int port, int type, struct sockaddr_storage *ss,
                   socklen_t *len)
{
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        memset(ss, 0, sizeof *ss);
        if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons((unsigned short)port);
                *len = sizeof *a4;
        } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons((unsigned short)port);
                *len = sizeof *a6;
        } else {
                return -1;
        }
        int fd = socket(ss->ss_family, type, 0);
        /* DNS_PROBE_TIMEOUT=S waits like a stub resolver would (glibc: 5 s). */
        const char *t = getenv("DNS_PROBE_TIMEOUT");
        struct timeval tv = {t ? atoi(t) : 2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        return fd;
}

static const char *tcp_connect(const char *addr, int port)
{
        struct sockaddr_storage ss;
        socklen_t len;
        int fd = sock_to(addr, port, SOCK_STREAM, &ss, &len);
        if (fd < 0)
                return "error";
        const char *v = connect(fd, (struct sockaddr *)&ss, len) == 0 ? "ok" : verdict(errno);
        close(fd);
        return v;
}

static void resolve(const char *name, int port, int family)
{
        struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM}, *res = NULL;
        char addr[INET6_ADDRSTRLEN] = "none";
        int rc = getaddrinfo(name, NULL, &hints, &res);
        if (rc == 0 && res) {
                const void *a =
                        family == AF_INET
                                ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
                                : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
                inet_ntop(family, a, addr, sizeof addr);
        }
        if (res)
                freeaddrinfo(res);
        printf("resolve %s %s\n", name, addr);
        printf("connect %s %s\n", name, strcmp(addr, "none") ? tcp_connect(addr, port) : "none");
}

static bool io_all(int fd, void *b, size_t n, bool wr)
{
        for (size_t d = 0; d < n;) {
                ssize_t k = wr ? write(fd, (char *)b + d, n - d) : read(fd, (char *)b + d, n - d);
                if (k <= 0)
                        return false;
                d += (size_t)k;
        }
        return true;
}

/* One query; the answer's bytes in *ans (malloc) or a verdict. */
static const char *exchange(bool tcp, const char *server, int port, const uint8_t *q, size_t qlen,
                            uint8_t **ans, size_t *alen)
{
        struct sockaddr_storage ss;
        socklen_t len;
        int fd = sock_to(server, port, tcp ? SOCK_STREAM : SOCK_DGRAM, &ss, &len);
        if (fd < 0)
                return "error";
        const char *v = NULL;
        uint8_t *buf = malloc(65536);
        if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
                v = verdict(errno);
        } else if (tcp) {
                uint8_t l[2] = {(uint8_t)(qlen >> 8), (uint8_t)qlen};
                if (!io_all(fd, l, 2, true) || !io_all(fd, (void *)q, qlen, true) ||
                    !io_all(fd, l, 2, false))
                        v = verdict(errno);
                else if (!io_all(fd, buf, *alen = (size_t)l[0] << 8 | l[1], false))
                        v = verdict(errno);
        } else {
                ssize_t n = send(fd, q, qlen, 0) == (ssize_t)qlen ? recv(fd, buf, 65536, 0) : -1;
                if (n < 0)
                        v = verdict(errno);
                else
                        *alen = (size_t)n;
        }
        close(fd);
        if (v)
                free(buf);
        else
                *ans = buf;
        return v;
}

static void query(const char *proto, const char *server, int port, const char *name,
                  const char *type)
{
        ldns_rr_type t = ldns_get_rr_type_by_name(type);
        ldns_pkt *p =
                ldns_pkt_query_new(ldns_dname_new_frm_str(name), t, LDNS_RR_CLASS_IN, LDNS_RD);
        ldns_pkt_set_id(p, (uint16_t)getpid());
        uint8_t *q = NULL, *ans = NULL;
        size_t qlen = 0, alen = 0;
        ldns_pkt2wire(&q, p, &qlen);
        ldns_pkt_free(p);
        const char *v = exchange(!strcmp(proto, "tcp"), server, port, q, qlen, &ans, &alen);
        free(q);
        ldns_pkt *a = NULL;
        if (!v && ldns_wire2pkt(&a, ans, alen) != LDNS_STATUS_OK)
                v = "error";
        if (v)
                printf("query %s %s:%d %s %s\n", proto, server, port, name, v);
        else
                printf("query %s %s:%d %s rcode=%d answers=%u\n", proto, server, port, name,
                       (int)ldns_pkt_get_rcode(a), (unsigned)ldns_pkt_ancount(a));
        ldns_pkt_free(a);
        free(ans);
}

static char proxy[INET6_ADDRSTRLEN] = "none";

static void read_resolv(void)
{
        FILE *f = fopen("/etc/resolv.conf", "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "nameserver %45s", proxy) == 1)
                        break;
        if (f)
                fclose(f);
        printf("nameserver %s\n", proxy);
}

int main(int argc, char **argv)
{
        read_resolv();
        for (int i = 1; i < argc;) {
                if (!strcmp(argv[i], "resolve") && i + 2 < argc) {
                        resolve(argv[i + 1], atoi(argv[i + 2]), AF_INET);
                        i += 3;
                } else if (!strcmp(argv[i], "resolve6") && i + 2 < argc) {
                        resolve(argv[i + 1], atoi(argv[i + 2]), AF_INET6);
                        i += 3;
                } else if (!strcmp(argv[i], "query") && i + 5 < argc) {
                        query(argv[i + 1], strcmp(argv[i + 2], "proxy") ? argv[i + 2] : proxy,
                              atoi(argv[i + 3]), argv[i + 4], argv[i + 5]);
                        i += 6;
                } else if (!strcmp(argv[i], "tcp") && i + 2 < argc) {
                        printf("tcp %s:%s %s\n", argv[i + 1], argv[i + 2],
                               tcp_connect(argv[i + 1], atoi(argv[i + 2])));
                        i += 3;
                } else if (!strcmp(argv[i], "sleep") && i + 1 < argc) {
                        sleep((unsigned)atoi(argv[i + 1]));
                        i += 2;
                } else {
                        fprintf(stderr, "dns_probe: bad argument '%s'\n", argv[i]);
                        return 2;
                }
                fflush(stdout);
        }
        return 0;
}
