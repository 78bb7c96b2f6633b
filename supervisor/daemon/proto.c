/* Frames of JSON with fds over a unix stream socket (proto.h, docs/protocol.md). */
#define _GNU_SOURCE
#include "supervisor/daemon/proto.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"

int aidp_proto_send(int sock, json_object *msg, const int *fds, size_t n_fds)
{
        size_t len = 0;
        const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
        if (!s)
                return -ENOMEM;
        if (len == 0 || len > AIDP_PROTO_MAX_FRAME || n_fds > AIDP_PROTO_MAX_FDS)
                return -EMSGSIZE;
        unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                                (unsigned char)(len >> 8), (unsigned char)len};
        struct iovec iov[2] = {{hdr, 4}, {(void *)s, len}};
        union {
                char buf[CMSG_SPACE(sizeof(int) * AIDP_PROTO_MAX_FDS)];
                struct cmsghdr align;
        } u;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        if (n_fds) {
                memset(&u, 0, sizeof u);
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        size_t total = 4 + len, sent = 0;
        while (sent < total) {
                /* MSG_NOSIGNAL: a client that went away is an EPIPE here,
                 * never a signal that ends the daemon's worker. */
                ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                sent += (size_t)w;
                /* the fds went with the first byte; the rest is plain data */
                mh.msg_control = NULL;
                mh.msg_controllen = 0;
                while (mh.msg_iovlen && (size_t)w >= mh.msg_iov[0].iov_len) {
                        w -= (ssize_t)mh.msg_iov[0].iov_len;
                        mh.msg_iov++;
                        mh.msg_iovlen--;
                }
                if (mh.msg_iovlen) {
                        mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + w;
                        mh.msg_iov[0].iov_len -= (size_t)w;
                }
        }
        return 0;
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct rx {
        int sock;
        int64_t deadline; /* < 0: none */
        int *fds;
        size_t max_fds, n_fds;
        bool overflow; /* more fds than max, or a truncated control message */
};

static void rx_take_fds(struct rx *x, struct msghdr *mh)
{
        if (mh->msg_flags & MSG_CTRUNC)
                x->overflow = true;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *in = (int *)CMSG_DATA(c);
                for (size_t i = 0; i < n; i++) {
                        if (x->n_fds < x->max_fds)
                                x->fds[x->n_fds++] = in[i];
                        else {
                                close(in[i]);
                                x->overflow = true;
                        }
                }
        }
}

/* Read exactly len bytes; 1, 0 at end of stream before any byte, < 0. */
static int rx_read(struct rx *x, void *buf, size_t len)
{
        size_t got = 0;
        while (got < len) {
                int wait = -1;
                if (x->deadline >= 0) {
                        int64_t left = x->deadline - now_ms();
                        if (left <= 0)
                                return -ETIMEDOUT;
                        wait = left > INT32_MAX ? INT32_MAX : (int)left;
                }
                struct pollfd p = {.fd = x->sock, .events = POLLIN};
                int pr = poll(&p, 1, wait);
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr < 0)
                        return -errno;
                if (pr == 0)
                        return -ETIMEDOUT;
                union {
                        char buf[CMSG_SPACE(sizeof(int) * AIDP_PROTO_MAX_FDS)];
                        struct cmsghdr align;
                } u;
                struct iovec iov = {(char *)buf + got, len - got};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = u.buf,
                                    .msg_controllen = sizeof u.buf};
                ssize_t r = recvmsg(x->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (r < 0)
                        return -errno;
                rx_take_fds(x, &mh);
                if (r == 0)
                        return got == 0 ? 0 : -EBADMSG;
                got += (size_t)r;
        }
        return 1;
}

static int rx_fail(struct rx *x, int r, aidp_error *err)
{
        for (size_t i = 0; i < x->n_fds; i++)
                close(x->fds[i]);
        x->n_fds = 0;
        const char *what = r == -ETIMEDOUT  ? "the request did not arrive in time"
                           : r == -EMSGSIZE ? "the frame is too large or carries too many fds"
                           : r == -EBADMSG  ? "the frame is cut short or not one JSON object"
                           : r == -EPROTO   ? "unsupported protocol version (this daemon speaks 1)"
                                            : NULL;
        if (what)
                return aidp_error_set(err, AIDP_EXIT_USAGE, -r, "%s", what);
        return aidp_error_errno(err, AIDP_EXIT_USAGE, -r, "reading the request");
}

/* One tokener per thread, reset for each frame, freed with its thread. A new
 * one per frame was two callocs, its 1 KiB parse stack a large-bin request
 * that consolidates malloc's fastbins first: in the daemon's server, whose
 * heap every fork of a worker shares again (its next writes are copy-on-write
 * faults), 0.3 ms of CPU per run for the three or four frames of its workers'
 * lines (docs/run-core.md, "Where a run's CPU goes"). */
static pthread_key_t rx_key;
static bool rx_key_made;
static pthread_once_t rx_once = PTHREAD_ONCE_INIT;

static void rx_key_free(void *tok)
{
        json_tokener_free(tok);
}

static void rx_key_make(void)
{
        rx_key_made = pthread_key_create(&rx_key, rx_key_free) == 0;
}

/* This thread's tokener, reset; NULL when none can be had (out of memory). */
static json_tokener *rx_tokener(void)
{
        pthread_once(&rx_once, rx_key_make);
        if (!rx_key_made)
                return NULL;
        json_tokener *tok = pthread_getspecific(rx_key);
        if (tok) {
                json_tokener_reset(tok);
                return tok;
        }
        tok = json_tokener_new();
        if (tok && pthread_setspecific(rx_key, tok) != 0) {
                json_tokener_free(tok);
                return NULL;
        }
        return tok;
}

int aidp_proto_recv(int sock, int timeout_ms, json_object **ret, int *fds, size_t max_fds,
                    size_t *n_fds, aidp_error *err)
{
        struct rx x = {.sock = sock,
                       .deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms,
                       .fds = fds,
                       .max_fds = max_fds};
        *ret = NULL;
        *n_fds = 0;
        unsigned char hdr[4];
        int r = rx_read(&x, hdr, 4);
        if (r <= 0 && x.n_fds == 0)
                return r == 0 ? 0 : rx_fail(&x, r, err);
        if (r <= 0)
                return rx_fail(&x, r == 0 ? -EBADMSG : r, err);
        uint32_t len =
                (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
        if (len == 0 || len > AIDP_PROTO_MAX_FRAME || x.overflow)
                return rx_fail(&x, -EMSGSIZE, err);
        _cleanup_free_ char *body = malloc(len + 1);
        if (!body)
                return rx_fail(&x, -ENOMEM, err);
        r = rx_read(&x, body, len);
        if (r <= 0)
                return rx_fail(&x, r == 0 ? -EBADMSG : r, err);
        if (x.overflow)
                return rx_fail(&x, -EMSGSIZE, err);
        body[len] = '\0';
        json_tokener *tok = rx_tokener();
        json_object *o = tok ? json_tokener_parse_ex(tok, body, (int)len) : NULL;
        bool whole = tok && json_tokener_get_error(tok) == json_tokener_success &&
                     (size_t)json_tokener_get_parse_end(tok) == len;
        if (tok)
                json_tokener_reset(tok); /* no object of this frame held by it */
        if (!o || !whole || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return rx_fail(&x, -EBADMSG, err);
        }
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, "v", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) != AIDP_PROTO_VERSION) {
                json_object_put(o);
                return rx_fail(&x, -EPROTO, err);
        }
        *ret = o;
        *n_fds = x.n_fds;
        return 1;
}

int aidp_proto_recv_msg(int sock, int timeout_ms, json_object **ret, aidp_error *err)
{
        int fds[4];
        size_t n = 0;
        int r = aidp_proto_recv(sock, timeout_ms, ret, fds, ARRAY_SIZE(fds), &n, err);
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        return r;
}

json_object *aidp_proto_msg(const char *type)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "v", json_object_new_int(AIDP_PROTO_VERSION));
        json_object_object_add(o, "type", json_object_new_string(type));
        return o;
}

void aidp_proto_send_error(int sock, int status, const char *msg)
{
        json_object *o = aidp_proto_msg("error");
        json_object_object_add(o, "status", json_object_new_int(status));
        json_object_object_add(o, "message", json_object_new_string(msg));
        (void)aidp_proto_send(sock, o, NULL, 0);
        json_object_put(o);
}

int aidp_proto_get_str(json_object *o, const char *key, bool required, const char **ret,
                       aidp_error *err)
{
        json_object *v = NULL;
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (!required)
                        return 0;
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "request: \"%s\" missing", key);
        }
        if (!json_object_is_type(v, json_type_string))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "request: \"%s\" must be a string", key);
        *ret = json_object_get_string(v);
        return 0;
}

int aidp_proto_get_int(json_object *o, const char *key, bool required, int64_t min, int64_t max,
                       int64_t *ret, aidp_error *err)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (!required)
                        return 0;
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "request: \"%s\" missing", key);
        }
        int64_t i = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || i < min || i > max)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "request: \"%s\" must be an integer from %lld to %lld", key,
                                      (long long)min, (long long)max);
        *ret = i;
        return 0;
}

void aidp_proto_strv_free(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

int aidp_proto_get_strv(json_object *o, const char *key, size_t max, char ***ret, size_t *n,
                        aidp_error *err)
{
        json_object *a = NULL;
        *ret = NULL;
        *n = 0;
        if (!json_object_object_get_ex(o, key, &a))
                a = NULL;
        if (a && !json_object_is_type(a, json_type_array))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "request: \"%s\" must be an array of strings", key);
        size_t len = a ? json_object_array_length(a) : 0;
        if (len > max)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG,
                                      "request: \"%s\" has %zu entries (at most %zu)", key, len,
                                      max);
        char **v = calloc(len + 1, sizeof *v);
        if (!v)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t i = 0; i < len; i++) {
                json_object *s = json_object_array_get_idx(a, i);
                if (!json_object_is_type(s, json_type_string)) {
                        aidp_proto_strv_free(v);
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "request: \"%s\"[%zu] must be a string", key, i);
                }
                const char *str = json_object_get_string(s);
                if (strlen(str) != (size_t)json_object_get_string_len(s) || !(v[i] = strdup(str))) {
                        aidp_proto_strv_free(v);
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "request: \"%s\"[%zu]: NUL byte or out of memory",
                                              key, i);
                }
        }
        *ret = v;
        *n = len;
        return 0;
}
