#define _GNU_SOURCE
#include "supervisor/sandbox/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Back-pressure: past this much unwritten output the job's pipe is no longer
 * read, so a slow reader slows the job instead of growing our memory. */
#define RELAY_HIGH (1U << 20)

void aidp_relay_init(struct aidp_relay *r)
{
        memset(r, 0, sizeof *r);
        r->from = -1;
        r->to = -1;
}

int aidp_relay_setup(struct aidp_relay *r, int to, int *child_end)
{
        aidp_relay_init(r);
        *child_end = -1;
        /* A terminal is the one thing passed through (the caller's own, for
         * an interactive job). Everything else is relayed: a file the
         * supervisor's output goes to (root's log) must never reach the job
         * as a writable fd it could truncate or seek. */
        struct stat st;
        if (fstat(to, &st) < 0 || isatty(to))
                return 0;
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
                int e = errno;
                close(p[0]);
                close(p[1]);
                return -e;
        }
        r->from = p[0];
        r->to = to;
        *child_end = p[1];
        return 0;
}

int aidp_relay_stdin_for_job(void)
{
        /* The caller's stdin is passed on when it cannot be written through:
         * a terminal, or an fd open read-only that is not a socket (a pipe,
         * the caller's `< file`). Anything else (a socket, a file open for
         * writing) would let the job write where the supervisor's caller
         * reads or logs: the job reads /dev/null instead. */
        struct stat st;
        int fl = fcntl(STDIN_FILENO, F_GETFL);
        if (fl < 0 || fstat(STDIN_FILENO, &st) < 0)
                return -1; /* not open: the job has no stdin either */
        /* Never a directory or an O_PATH fd (`< /` opens one): through it
         * the job would reach the host's tree its namespace hides. */
        if (isatty(STDIN_FILENO) || ((fl & O_ACCMODE) == O_RDONLY && !(fl & O_PATH) &&
                                     !S_ISSOCK(st.st_mode) && !S_ISDIR(st.st_mode)))
                return -1;
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

short aidp_relay_want_in(const struct aidp_relay *r)
{
        return r->from >= 0 && !r->eof && r->len < RELAY_HIGH ? POLLIN : 0;
}

short aidp_relay_want_out(const struct aidp_relay *r)
{
        return r->from >= 0 && r->len > 0 ? POLLOUT : 0;
}

static bool read_some(struct aidp_relay *r, size_t limit)
{
        if (r->cap - r->len < 65536) {
                size_t nc = r->cap ? r->cap * 2 : 65536;
                char *n = realloc(r->buf, nc);
                if (!n)
                        return false;
                r->buf = n;
                r->cap = nc;
        }
        size_t want = r->cap - r->len;
        if (limit && want > limit)
                want = limit;
        ssize_t n = read(r->from, r->buf + r->len, want);
        if (n > 0) {
                r->len += (size_t)n;
                return true;
        }
        if (n == 0)
                r->eof = true;
        return false;
}

/* Bytes already read (into the caller's buffer) join the relay's. */
static bool read_some_from(struct aidp_relay *r, const char *b, size_t n)
{
        if (r->cap - r->len < n) {
                size_t nc = r->cap ? r->cap * 2 : 65536;
                while (nc - r->len < n)
                        nc *= 2;
                char *nb = realloc(r->buf, nc);
                if (!nb)
                        return false;
                r->buf = nb;
                r->cap = nc;
        }
        memcpy(r->buf + r->len, b, n);
        r->len += n;
        return true;
}

void aidp_relay_on_readable(struct aidp_relay *r)
{
        if (r->from >= 0)
                read_some(r, 65536);
}

void aidp_relay_on_writable(struct aidp_relay *r)
{
        if (!r->len)
                return;
        /* POLLOUT on a pipe guarantees room for PIPE_BUF bytes: a write that
         * size never blocks the supervisor's event loop. */
        size_t n = r->len < PIPE_BUF ? r->len : PIPE_BUF;
        ssize_t w = write(r->to, r->buf, n);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (w <= 0) {
                r->len = 0; /* the reader is gone (EPIPE): drop, keep draining */
                return;
        }
        memmove(r->buf, r->buf + w, r->len - (size_t)w);
        r->len -= (size_t)w;
}

void aidp_relay_drain(struct aidp_relay *r)
{
        if (r->from < 0)
                return;
        /* Nothing read yet (a job that wrote nothing, the usual case at a
         * run's end): a small read first, so that an empty pipe costs no
         * 64 KiB buffer (a malloc and, in a daemon worker, its page faults). */
        if (!r->buf) {
                char small[4096];
                ssize_t n = read(r->from, small, sizeof small);
                if (n <= 0) {
                        if (n == 0)
                                r->eof = true;
                        return;
                }
                if (!read_some_from(r, small, (size_t)n))
                        return;
        }
        while (read_some(r, 0))
                ;
}

void aidp_relay_finish(struct aidp_relay *r, int stall_ms)
{
        if (r->from < 0)
                return;
        size_t off = 0;
        while (off < r->len) {
                /* PIPE_BUF bytes after POLLOUT never block, so stall_ms
                 * bounds the wait for a reader that does not read. */
                struct pollfd p = {.fd = r->to, .events = POLLOUT};
                int pr = poll(&p, 1, stall_ms);
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr <= 0 || !(p.revents & POLLOUT))
                        break;
                size_t n = r->len - off < PIPE_BUF ? r->len - off : PIPE_BUF;
                ssize_t w = write(r->to, r->buf + off, n);
                if (w < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (w <= 0)
                        break;
                off += (size_t)w;
        }
        close(r->from);
        free(r->buf);
        aidp_relay_init(r);
}
