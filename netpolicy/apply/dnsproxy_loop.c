/* The DNS proxy process's loop (dnsproxy.h, docs/egress.md). Every answer the
 * job gets for an allowed name is built by netpolicy/dns.c from upstream's,
 * and its addresses are in the run's fqdn sets before it is sent. */
#define _GNU_SOURCE
#include "netpolicy/apply/dnsproxy_internal.h"

#include "common/cleanup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ldns/wire2host.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PENDING_MS 3000 /* upstream gets this long, then the job gets SERVFAIL */
#define TCP_MS     2000 /* one TCP exchange, either side */

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint16_t fresh_id(const struct proxy *P)
{
        for (;;) {
                uint16_t id = 0;
                if (getrandom(&id, sizeof id, 0) != sizeof id)
                        id = (uint16_t)(now_ms() * 2654435761u);
                bool used = false;
                for (size_t i = 0; i < PENDING_MAX && !used; i++)
                        used = P->pending[i].used && P->pending[i].up_id == id;
                if (!used)
                        return id;
        }
}

/* The set entry for (rule, family, address), or a free or expired slot. */
static struct known *known_slot(struct proxy *P, unsigned rule, enum aidp_np_family f,
                                const uint8_t *a, uint64_t now, bool *found)
{
        struct known *free_k = NULL, *oldest = &P->known[0];
        for (size_t i = 0; i < KNOWN_MAX; i++) {
                struct known *k = &P->known[i];
                if (k->expiry > now && k->rule == rule && k->family == f && !memcmp(k->a, a, 16)) {
                        *found = true;
                        return k;
                }
                if (!free_k && k->expiry <= now)
                        free_k = k;
                if (k->expiry < oldest->expiry)
                        oldest = k;
        }
        *found = false;
        return free_k ? free_k : oldest;
}

/* Put the answer's addresses into both tables' sets for every rule that
 * allowed the name, before the answer is sent. */
static int fill_sets(struct proxy *P, uint64_t match, const struct aidp_dns_result *res)
{
        struct aidp_np_set_op ops[2 * AIDP_DNS_MAX_ADDRS];
        char names[AIDP_DNS_MAX_ADDRS][24];
        struct known *touched[AIDP_DNS_MAX_ADDRS];
        size_t n = 0, nt = 0;
        uint64_t now = now_ms();
        for (unsigned rule = 0; rule < 64; rule++) {
                if (!(match & (UINT64_C(1) << rule)))
                        continue;
                for (size_t i = 0; i < res->n_addrs && nt < AIDP_DNS_MAX_ADDRS; i++) {
                        const struct aidp_dns_addr *a = &res->addrs[i];
                        bool found;
                        struct known *k = known_slot(P, rule, a->family, a->a, now, &found);
                        /* Already there for at least as long as the job may
                         * cache the answer. */
                        if (found && k->expiry >= now + (uint64_t)a->ttl * 1000u + 1000u)
                                continue;
                        uint64_t tmo = ((uint64_t)a->ttl + AIDP_DNS_TTL_GRACE) * 1000u;
                        snprintf(names[nt], sizeof names[nt], AIDP_NP_FQDN_SET_FMT,
                                 a->family == AIDP_NP_V4 ? 4 : 6, (size_t)rule);
                        struct aidp_np_set_op op = {.set = names[nt],
                                                    .alen = a->family == AIDP_NP_V4 ? 4 : 16,
                                                    .timeout_ms = tmo,
                                                    .live = found};
                        memcpy(op.addr, a->a, 16);
                        ops[n] = op;
                        ops[n++].table = "aidp";
                        ops[n] = op;
                        ops[n++].table = P->host_table;
                        k->rule = rule;
                        k->family = a->family;
                        memcpy(k->a, a->a, 16);
                        /* Taken now, so that no other address of this
                         * answer lands in the same slot. */
                        k->expiry = now + tmo;
                        touched[nt++] = k;
                }
        }
        if (n == 0)
                return 0;
        struct aidp_np_set_op host_ops[2 * AIDP_DNS_MAX_ADDRS], sb_ops[2 * AIDP_DNS_MAX_ADDRS];
        size_t nh = 0, ns = 0;
        for (size_t i = 0; i < n; i++) {
                if (!strcmp(ops[i].table, "aidp"))
                        sb_ops[ns++] = ops[i];
                else
                        host_ops[nh++] = ops[i];
        }
        /* The host table first: it alone holds if the job took root inside. */
        int rc = aidp_np_set_add(P->host, host_ops, nh);
        if (rc == 0)
                rc = aidp_np_set_add(P->sandbox, sb_ops, ns);
        for (size_t i = 0; rc < 0 && i < nt; i++)
                touched[i]->expiry = 0; /* unknown: written again next time */
        return rc;
}

static void deny(struct proxy *P, const char *name, const char *why)
{
        aidp_netpolicy_dns_denial_add(&P->denials, name[0] ? name : ".", why);
}

/* Upstream's answer (raw) -> the job's answer, sets filled first; 1 when
 * upstream truncated it (ask again over TCP). */
static int finish(struct proxy *P, const struct aidp_dns_query *q, uint64_t match, uint16_t up_id,
                  const uint8_t *buf, size_t len, bool udp, uint8_t **out, size_t *outlen)
{
        struct aidp_dns_result res;
        int rc = aidp_dns_filter_answer(P->np, q, up_id, buf, len, &res, out, outlen);
        if (rc < 0)
                return rc;
        if (res.truncated) {
                free(*out);
                *out = NULL;
                return 1;
        }
        if (res.n_special) {
                char why[sizeof res.special_example + 20];
                snprintf(why, sizeof why, "special address %s", res.special_example);
                deny(P, q->name, why);
        }
        if (res.n_addrs && fill_sets(P, match, &res) < 0) {
                free(*out);
                *out = NULL;
                return aidp_dns_reply_rcode(q, AIDP_DNS_SERVFAIL, false, out, outlen);
        }
        if (udp && *outlen > q->udp_max) {
                free(*out);
                *out = NULL;
                return aidp_dns_reply_rcode(q, AIDP_DNS_NOERROR, true, out, outlen);
        }
        return 0;
}

static bool io_full(int fd, void *buf, size_t n, bool wr)
{
        for (size_t done = 0; done < n;) {
                ssize_t k = wr ? write(fd, (char *)buf + done, n - done)
                               : read(fd, (char *)buf + done, n - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                done += (size_t)k;
        }
        return true;
}

static bool tcp_send(int fd, const uint8_t *msg, size_t len)
{
        uint8_t l[2] = {(uint8_t)(len >> 8), (uint8_t)len};
        return len <= AIDP_DNS_MAX_MSG && io_full(fd, l, 2, true) &&
               io_full(fd, (void *)msg, len, true);
}

/* One length-prefixed message; NULL on EOF, error or timeout. */
static uint8_t *tcp_recv(int fd, size_t *len)
{
        uint8_t l[2];
        if (!io_full(fd, l, 2, false))
                return NULL;
        *len = (size_t)l[0] << 8 | l[1];
        uint8_t *m = malloc(*len ? *len : 1);
        if (m && !io_full(fd, m, *len, false)) {
                free(m);
                return NULL;
        }
        return m;
}

static void timeouts(int fd)
{
        struct timeval tv = {TCP_MS / 1000, (TCP_MS % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Ask upstream over TCP (large answers), waiting at most TCP_MS per step. */
static int ask_tcp(struct proxy *P, const struct aidp_dns_query *q, uint64_t match, bool udp,
                   uint8_t **out, size_t *outlen)
{
        uint16_t id = fresh_id(P);
        _cleanup_free_ uint8_t *msg = NULL;
        size_t len;
        int rc = aidp_dns_make_query(q, id, &msg, &len);
        if (rc < 0)
                return rc;
        _cleanup_close_ int fd = socket(P->up_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        timeouts(fd);
        if (connect(fd, (struct sockaddr *)&P->up_addr, P->up_len) < 0 || !tcp_send(fd, msg, len))
                return -EIO;
        size_t rlen;
        _cleanup_free_ uint8_t *resp = tcp_recv(fd, &rlen);
        if (!resp)
                return -EIO;
        rc = finish(P, q, match, id, resp, rlen, udp, out, outlen);
        return rc == 1 ? -EIO : rc; /* truncated over TCP: give up */
}

/* What the job asked: refused, answered at once, or 1 = ask upstream. */
static int decide(struct proxy *P, const uint8_t *buf, size_t len, struct aidp_dns_query *q,
                  uint64_t *match, uint8_t **out, size_t *outlen)
{
        int rc = aidp_dns_parse_query(buf, len, q);
        if (rc == -EBADMSG)
                return rc;
        if (rc < 0)
                return aidp_dns_reply_rcode(q, AIDP_DNS_FORMERR, false, out, outlen);
        *match = aidp_netpolicy_fqdn_match(P->np, q->name);
        if (!*match) {
                deny(P, q->name, "not allowed");
                return aidp_dns_reply_rcode(q, AIDP_DNS_REFUSED, false, out, outlen);
        }
        /* Only addresses open anything: other types of allowed names get an
         * empty answer (no MX, TXT or SRV data leaves through the proxy). */
        if (q->qtype != AIDP_DNS_TYPE_A && q->qtype != AIDP_DNS_TYPE_AAAA)
                return aidp_dns_reply_rcode(q, AIDP_DNS_NOERROR, false, out, outlen);
        return 1;
}

static void on_udp(struct proxy *P)
{
        uint8_t buf[AIDP_DNS_MAX_MSG];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(P->udp, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        /* Only the run's own sandbox address is answered. */
        if (n <= 0 || fl != sizeof from || from.sin_addr.s_addr != P->client.s_addr)
                return;
        struct aidp_dns_query q;
        uint64_t match = 0;
        _cleanup_free_ uint8_t *out = NULL;
        size_t outlen = 0;
        int rc = decide(P, buf, (size_t)n, &q, &match, &out, &outlen);
        if (rc == 1) {
                struct pending *p = NULL;
                for (size_t i = 0; i < PENDING_MAX && !p; i++)
                        if (!P->pending[i].used)
                                p = &P->pending[i];
                _cleanup_free_ uint8_t *msg = NULL;
                size_t len;
                if (p && aidp_dns_make_query(&q, fresh_id(P), &msg, &len) == 0) {
                        *p = (struct pending){.used = true,
                                              .q = q,
                                              .match = match,
                                              .client = from,
                                              .deadline = now_ms() + PENDING_MS};
                        p->up_id = (uint16_t)LDNS_ID_WIRE(msg);
                        if (send(P->up, msg, len, 0) == (ssize_t)len)
                                return;
                        p->used = false;
                }
                rc = aidp_dns_reply_rcode(&q, AIDP_DNS_SERVFAIL, false, &out, &outlen);
        }
        if (rc == 0)
                sendto(P->udp, out, outlen, 0, (struct sockaddr *)&from, sizeof from);
}

static void on_upstream(struct proxy *P)
{
        uint8_t buf[AIDP_DNS_MAX_MSG];
        ssize_t n = recv(P->up, buf, sizeof buf, MSG_DONTWAIT);
        if (n < LDNS_HEADER_SIZE)
                return;
        uint16_t id = (uint16_t)LDNS_ID_WIRE(buf);
        for (size_t i = 0; i < PENDING_MAX; i++) {
                struct pending *p = &P->pending[i];
                if (!p->used || p->up_id != id)
                        continue;
                _cleanup_free_ uint8_t *out = NULL;
                size_t outlen = 0;
                int rc = finish(P, &p->q, p->match, id, buf, (size_t)n, true, &out, &outlen);
                if (rc == -EBADMSG)
                        return; /* not the answer: keep waiting */
                /* Upstream truncated its answer: ask again over TCP. */
                if (rc == 1)
                        rc = ask_tcp(P, &p->q, p->match, true, &out, &outlen);
                if (rc < 0)
                        rc = aidp_dns_reply_rcode(&p->q, AIDP_DNS_SERVFAIL, false, &out, &outlen);
                if (rc == 0)
                        sendto(P->udp, out, outlen, 0, (struct sockaddr *)&p->client,
                               sizeof p->client);
                p->used = false;
                return;
        }
}

/* A TCP client: its queries one after another, each asked upstream over TCP. */
static void on_tcp(struct proxy *P)
{
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        _cleanup_close_ int fd = accept4(P->tcp, (struct sockaddr *)&from, &fl, SOCK_CLOEXEC);
        if (fd < 0 || fl != sizeof from || from.sin_addr.s_addr != P->client.s_addr)
                return;
        timeouts(fd);
        for (int k = 0; k < 32; k++) {
                size_t len;
                _cleanup_free_ uint8_t *msg = tcp_recv(fd, &len);
                if (!msg)
                        return;
                struct aidp_dns_query q;
                uint64_t match = 0;
                _cleanup_free_ uint8_t *out = NULL;
                size_t outlen = 0;
                int rc = decide(P, msg, len, &q, &match, &out, &outlen);
                if (rc == 1 && (rc = ask_tcp(P, &q, match, false, &out, &outlen)) < 0)
                        rc = aidp_dns_reply_rcode(&q, AIDP_DNS_SERVFAIL, false, &out, &outlen);
                if (rc < 0)
                        return;
                if (!tcp_send(fd, out, outlen))
                        return;
        }
}

static void expire(struct proxy *P)
{
        uint64_t now = now_ms();
        for (size_t i = 0; i < PENDING_MAX; i++) {
                struct pending *p = &P->pending[i];
                if (!p->used || p->deadline > now)
                        continue;
                _cleanup_free_ uint8_t *out = NULL;
                size_t outlen;
                if (aidp_dns_reply_rcode(&p->q, AIDP_DNS_SERVFAIL, false, &out, &outlen) == 0)
                        sendto(P->udp, out, outlen, 0, (struct sockaddr *)&p->client,
                               sizeof p->client);
                p->used = false;
        }
}

void aidp_np_dnsproxy_loop(struct proxy *P)
{
        for (;;) {
                struct pollfd pf[4] = {{.fd = P->udp, .events = POLLIN},
                                       {.fd = P->up, .events = POLLIN},
                                       {.fd = P->tcp, .events = POLLIN},
                                       {.fd = P->stop, .events = POLLIN}};
                int n = poll(pf, 4, 500);
                if (n < 0 && errno != EINTR)
                        break;
                if (pf[3].revents)
                        break; /* the supervisor closed its end: stop */
                if (pf[0].revents & POLLIN)
                        on_udp(P);
                if (pf[1].revents & POLLIN)
                        on_upstream(P);
                if (pf[2].revents & POLLIN)
                        on_tcp(P);
                expire(P);
        }
}
