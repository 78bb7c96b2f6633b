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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TCP_MS  2000 /* one TCP exchange, either side */
#define TICK_MS 100  /* how often the UDP tries' deadlines are checked */

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint16_t random_id(void)
{
        uint16_t id = 0;
        if (getrandom(&id, sizeof id, 0) != sizeof id)
                id = (uint16_t)(now_ms() * 2654435761u);
        return id;
}

/* An id no UDP query waiting upstream has (main loop only). */
static uint16_t fresh_id(const struct proxy *P)
{
        for (;;) {
                uint16_t id = random_id();
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
 * allowed the name, before the answer is sent. Under P->lock. */
static int fill_sets_locked(struct proxy *P, uint64_t match, const struct aidp_dns_result *res)
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

static int fill_sets(struct proxy *P, uint64_t match, const struct aidp_dns_result *res)
{
        pthread_mutex_lock(&P->lock);
        int rc = fill_sets_locked(P, match, res);
        pthread_mutex_unlock(&P->lock);
        return rc;
}

static void deny(struct proxy *P, const char *name, const char *why)
{
        pthread_mutex_lock(&P->lock);
        aidp_netpolicy_dns_denial_add(&P->denials, name[0] ? name : ".", why);
        pthread_mutex_unlock(&P->lock);
}

/* Upstream's answer to our id says SERVFAIL: the next resolver is asked. */
static bool is_servfail(const uint8_t *buf, size_t len, uint16_t id)
{
        return len >= LDNS_HEADER_SIZE && LDNS_ID_WIRE(buf) == id && LDNS_QR_WIRE(buf) &&
               LDNS_RCODE_WIRE(buf) == LDNS_RCODE_SERVFAIL;
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

static void timeouts(int fd, uint64_t ms)
{
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Ask one upstream over TCP, waiting at most TCP_MS per step: 0 and the
 * job's answer, 1 when this upstream failed or said SERVFAIL, < 0 to give up. */
static int ask_tcp_one(struct proxy *P, const struct upstream *u, const struct aidp_dns_query *q,
                       uint64_t match, bool udp, uint8_t **out, size_t *outlen)
{
        uint16_t id = random_id();
        _cleanup_free_ uint8_t *msg = NULL;
        size_t len;
        int rc = aidp_dns_make_query(q, id, &msg, &len);
        if (rc < 0)
                return rc;
        _cleanup_close_ int fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* With several resolvers, a silent one gets its share, as over UDP. */
        timeouts(fd, P->try_ms < TCP_MS ? P->try_ms : TCP_MS);
        if (connect(fd, (const struct sockaddr *)&u->addr, u->len) < 0 || !tcp_send(fd, msg, len))
                return 1;
        size_t rlen;
        _cleanup_free_ uint8_t *resp = tcp_recv(fd, &rlen);
        if (!resp || is_servfail(resp, rlen, id))
                return 1;
        rc = finish(P, q, match, id, resp, rlen, udp, out, outlen);
        if (rc == -EBADMSG)
                return 1;           /* not an answer to the question */
        return rc == 1 ? -EIO : rc; /* truncated over TCP: give up */
}

/* Ask over TCP (large answers, TCP clients), from upstream `first` on, each
 * in order until one answers. */
static int ask_tcp(struct proxy *P, const struct aidp_dns_query *q, uint64_t match, bool udp,
                   size_t first, uint8_t **out, size_t *outlen)
{
        for (size_t i = first; i < P->n_up; i++) {
                int rc = ask_tcp_one(P, &P->up[i], q, match, udp, out, outlen);
                if (rc != 1)
                        return rc;
        }
        return -EIO;
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

static void reply_servfail(struct proxy *P, struct pending *p)
{
        _cleanup_free_ uint8_t *out = NULL;
        size_t outlen;
        if (aidp_dns_reply_rcode(&p->q, AIDP_DNS_SERVFAIL, false, &out, &outlen) == 0)
                sendto(P->udp, out, outlen, 0, (struct sockaddr *)&p->client, sizeof p->client);
        p->used = false;
}

/* Ask upstream p->up, or the ones after it if sending fails; when none is
 * left, the job gets SERVFAIL. */
static void ask_udp(struct proxy *P, struct pending *p)
{
        for (; p->up < P->n_up; p->up++) {
                _cleanup_free_ uint8_t *msg = NULL;
                size_t len;
                if (aidp_dns_make_query(&p->q, fresh_id(P), &msg, &len) < 0)
                        break;
                p->up_id = (uint16_t)LDNS_ID_WIRE(msg);
                p->deadline = now_ms() + P->try_ms;
                if (send(P->up[p->up].fd, msg, len, 0) == (ssize_t)len)
                        return;
        }
        reply_servfail(P, p);
}

static void next_upstream(struct proxy *P, struct pending *p)
{
        p->up++;
        ask_udp(P, p);
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
                if (p) {
                        *p = (struct pending){.used = true, .q = q, .match = match, .client = from};
                        ask_udp(P, p);
                        return;
                }
                rc = aidp_dns_reply_rcode(&q, AIDP_DNS_SERVFAIL, false, &out, &outlen);
        }
        if (rc == 0)
                sendto(P->udp, out, outlen, 0, (struct sockaddr *)&from, sizeof from);
}

static void on_upstream(struct proxy *P, unsigned up)
{
        uint8_t buf[AIDP_DNS_MAX_MSG];
        ssize_t n = recv(P->up[up].fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)) {
                /* An ICMP error says the resolver cannot be reached or nothing
                 * listens there: every query waiting for it goes to the next
                 * one now. */
                for (size_t i = 0; i < PENDING_MAX; i++)
                        if (P->pending[i].used && P->pending[i].up == up)
                                next_upstream(P, &P->pending[i]);
                return;
        }
        if (n < LDNS_HEADER_SIZE)
                return;
        uint16_t id = (uint16_t)LDNS_ID_WIRE(buf);
        for (size_t i = 0; i < PENDING_MAX; i++) {
                struct pending *p = &P->pending[i];
                if (!p->used || p->up != up || p->up_id != id)
                        continue;
                if (is_servfail(buf, (size_t)n, id)) {
                        next_upstream(P, p);
                        return;
                }
                _cleanup_free_ uint8_t *out = NULL;
                size_t outlen = 0;
                int rc = finish(P, &p->q, p->match, id, buf, (size_t)n, true, &out, &outlen);
                if (rc == -EBADMSG)
                        return; /* not the answer: keep waiting */
                /* Upstream truncated its answer: ask again over TCP. */
                if (rc == 1)
                        rc = ask_tcp(P, &p->q, p->match, true, up, &out, &outlen);
                if (rc < 0)
                        rc = aidp_dns_reply_rcode(&p->q, AIDP_DNS_SERVFAIL, false, &out, &outlen);
                if (rc == 0)
                        sendto(P->udp, out, outlen, 0, (struct sockaddr *)&p->client,
                               sizeof p->client);
                p->used = false;
                return;
        }
}

struct tcp_client {
        struct proxy *P;
        int fd;
};

/* A TCP client on its own thread: its queries one after another, each asked
 * upstream over TCP. A slow client holds up only itself. */
static void *tcp_client(void *arg)
{
        struct tcp_client *c = arg;
        struct proxy *P = c->P;
        _cleanup_close_ int fd = c->fd;
        free(c);
        timeouts(fd, TCP_MS);
        for (int k = 0; k < 32; k++) {
                size_t len;
                _cleanup_free_ uint8_t *msg = tcp_recv(fd, &len);
                if (!msg)
                        break;
                struct aidp_dns_query q;
                uint64_t match = 0;
                _cleanup_free_ uint8_t *out = NULL;
                size_t outlen = 0;
                int rc = decide(P, msg, len, &q, &match, &out, &outlen);
                if (rc == 1 && (rc = ask_tcp(P, &q, match, false, 0, &out, &outlen)) < 0)
                        rc = aidp_dns_reply_rcode(&q, AIDP_DNS_SERVFAIL, false, &out, &outlen);
                if (rc < 0 || !tcp_send(fd, out, outlen))
                        break;
        }
        atomic_fetch_sub(&P->tcp_active, 1);
        return NULL;
}

static void on_tcp(struct proxy *P)
{
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        _cleanup_close_ int fd = accept4(P->tcp, (struct sockaddr *)&from, &fl, SOCK_CLOEXEC);
        if (fd < 0 || fl != sizeof from || from.sin_addr.s_addr != P->client.s_addr)
                return;
        struct tcp_client *c = malloc(sizeof *c);
        if (!c)
                return;
        *c = (struct tcp_client){P, fd};
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        atomic_fetch_add(&P->tcp_active, 1);
        if (pthread_create(&t, &a, tcp_client, c) == 0) {
                fd = -1; /* the thread's now */
        } else {
                atomic_fetch_sub(&P->tcp_active, 1);
                free(c);
        }
        pthread_attr_destroy(&a);
}

static void expire(struct proxy *P)
{
        uint64_t now = now_ms();
        for (size_t i = 0; i < PENDING_MAX; i++) {
                struct pending *p = &P->pending[i];
                if (p->used && p->deadline <= now)
                        next_upstream(P, p); /* this one is silent: the next, or SERVFAIL */
        }
}

void aidp_np_dnsproxy_loop(struct proxy *P)
{
        for (;;) {
                /* At TCP_CLIENTS_MAX, new clients wait in the listen queue. */
                bool room = atomic_load(&P->tcp_active) < TCP_CLIENTS_MAX;
                struct pollfd pf[3 + AIDP_HOSTNET_MAX_RESOLVERS] = {
                        {.fd = P->stop, .events = POLLIN},
                        {.fd = P->udp, .events = POLLIN},
                        {.fd = room ? P->tcp : -1, .events = POLLIN}};
                for (size_t i = 0; i < P->n_up; i++)
                        pf[3 + i] = (struct pollfd){.fd = P->up[i].fd, .events = POLLIN};
                int n = poll(pf, (nfds_t)(3 + P->n_up), TICK_MS);
                if (n < 0 && errno != EINTR)
                        break;
                if (pf[0].revents)
                        break; /* the supervisor closed its end: stop */
                if (pf[1].revents & POLLIN)
                        on_udp(P);
                for (size_t i = 0; i < P->n_up; i++)
                        if (pf[3 + i].revents & (POLLIN | POLLERR))
                                on_upstream(P, (unsigned)i);
                if (pf[2].revents & POLLIN)
                        on_tcp(P);
                expire(P);
        }
}
