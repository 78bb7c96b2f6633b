/* RFC 5424 formatter and a best-effort datagram sender. */
#include "supervisor/lineage/seclog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/lineage/lineage.h"

struct out {
        char *buf;
        size_t size, len;
        bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
        if (o->len + n >= o->size) {
                o->overflow = true;
                return;
        }
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        o->buf[o->len] = '\0';
}

__attribute__((format(printf, 2, 3))) static void putf(struct out *o, const char *fmt, ...)
{
        char tmp[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof tmp) {
                o->overflow = true;
                return;
        }
        put(o, tmp, (size_t)n);
}

/* Header fields are PRINTUSASCII (33-126) with a length limit; anything else, or an
 * empty value, becomes the NILVALUE "-" rather than a malformed header. */
static void put_header_field(struct out *o, const char *s, size_t max)
{
        size_t n = s ? strlen(s) : 0;
        bool ok = n > 0 && n <= max;
        for (size_t i = 0; ok && i < n; i++)
                ok = (unsigned char)s[i] >= 33 && (unsigned char)s[i] <= 126;
        if (ok)
                put(o, s, n);
        else
                put(o, "-", 1);
}

static bool valid_sd_name(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > 32)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c < 33 || c > 126 || c == '=' || c == ']' || c == '"')
                        return false;
        }
        return true;
}

int aidp_seclog_format(char *buf, size_t size, const struct aidp_seclog_msg *m)
{
        if (!buf || size == 0 || m->severity < 0 || m->severity > 7)
                return -EINVAL;
        struct out o = {.buf = buf, .size = size};
        buf[0] = '\0';
        char ts[32];
        aidp_lineage_format_time(ts, m->time_ns);
        putf(&o, "<%d>1 %s ", AIDP_SECLOG_FACILITY * 8 + m->severity, ts);
        put_header_field(&o, m->hostname, 255);
        put(&o, " ", 1);
        put_header_field(&o, m->app_name ? m->app_name : "aidp", 48);
        put(&o, " ", 1);
        if (m->procid > 0)
                putf(&o, "%ld", m->procid);
        else
                put(&o, "-", 1);
        put(&o, " ", 1);
        put_header_field(&o, m->msgid, 32);
        put(&o, " ", 1);
        if (m->nparams == 0) {
                put(&o, "-", 1);
        } else {
                put(&o, "[" AIDP_SECLOG_SDID, strlen("[" AIDP_SECLOG_SDID));
                for (size_t i = 0; i < m->nparams; i++) {
                        const struct aidp_seclog_param *p = &m->params[i];
                        if (!valid_sd_name(p->name))
                                return -EINVAL;
                        putf(&o, " %s=\"", p->name);
                        /* PARAM-VALUE: '"', '\' and ']' must be escaped (RFC 5424 6.3.3). */
                        for (const char *c = p->value ? p->value : ""; *c; c++) {
                                if (*c == '"' || *c == '\\' || *c == ']')
                                        put(&o, "\\", 1);
                                put(&o, c, 1);
                        }
                        put(&o, "\"", 1);
                }
                put(&o, "]", 1);
        }
        if (m->text && m->text[0]) {
                put(&o, " ", 1);
                /* One datagram, one line: a newline would split it in most collectors. */
                for (const char *c = m->text; *c; c++)
                        put(&o, *c == '\n' || *c == '\r' ? " " : c, 1);
        }
        if (o.overflow)
                return -ENOSPC;
        return (int)o.len;
}

int aidp_seclog_send(const char *socket_path, const struct aidp_seclog_msg *m)
{
        const char *path = socket_path;
        if (!path)
                path = getenv(AIDP_SECLOG_ENV_SOCKET);
        if (!path || !path[0])
                path = AIDP_SECLOG_DEFAULT_SOCKET;
        struct aidp_seclog_msg full = *m;
        char host[256] = "";
        if (!full.hostname) {
                if (gethostname(host, sizeof host - 1) == 0)
                        full.hostname = host;
        }
        if (full.time_ns == 0) {
                struct timespec t;
                clock_gettime(CLOCK_REALTIME, &t);
                full.time_ns = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
        }
        if (full.procid <= 0)
                full.procid = (long)getpid();
        _cleanup_free_ char *buf = malloc(AIDP_SECLOG_MAX);
        if (!buf)
                return -ENOMEM;
        int n = aidp_seclog_format(buf, AIDP_SECLOG_MAX, &full);
        if (n < 0)
                return n;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* Non-blocking: a stalled syslog daemon must never hold up a run's teardown. */
        if (sendto(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa,
                   sizeof sa) < 0)
                return -errno;
        return 0;
}
