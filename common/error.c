#include "common/error.h"

/* Messages are cut short when they overflow the fixed buffer: they are text for
 * people, and the errno/status carry the meaning. All formatting goes through
 * aidp_text_printf, which says so; nothing else in aidp may truncate. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

bool aidp_text_vprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
        if (size == 0)
                return true;
        int n = vsnprintf(buf, size, fmt, ap);
        if (n < 0) {
                buf[0] = '\0';
                return true;
        }
        return (size_t)n >= size;
}

bool aidp_text_printf(char *buf, size_t size, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        bool cut = aidp_text_vprintf(buf, size, fmt, ap);
        va_end(ap);
        return cut;
}

static int finish(aidp_error *err, int status, int errnum)
{
        if (err) {
                err->status = status;
                err->errnum = errnum;
        }
        return errnum > 0 ? -errnum : -EINVAL;
}

int aidp_error_set(aidp_error *err, int status, int errnum, const char *fmt, ...)
{
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                aidp_text_vprintf(err->msg, sizeof err->msg, fmt, ap);
                va_end(ap);
                err->file[0] = '\0';
                err->line = err->column = 0;
        }
        return finish(err, status, errnum);
}

int aidp_error_set_at(aidp_error *err, int status, const char *file, unsigned line, unsigned column,
                      const char *fmt, ...)
{
        if (err) {
                char tmp[AIDP_ERROR_MSG_MAX];
                va_list ap;
                va_start(ap, fmt);
                aidp_text_vprintf(tmp, sizeof tmp, fmt, ap);
                va_end(ap);
                aidp_text_printf(err->file, sizeof err->file, "%s", file ? file : "<input>");
                err->line = line;
                err->column = column;
                aidp_text_printf(err->msg, sizeof err->msg, "%s:%u:%u: %s", err->file, line, column,
                                 tmp);
        }
        return finish(err, status, EINVAL);
}

int aidp_error_errno(aidp_error *err, int status, int errnum, const char *fmt, ...)
{
        if (err) {
                char tmp[AIDP_ERROR_MSG_MAX];
                va_list ap;
                va_start(ap, fmt);
                aidp_text_vprintf(tmp, sizeof tmp, fmt, ap);
                va_end(ap);
                aidp_text_printf(err->msg, sizeof err->msg, "%s: %s", tmp, strerror(errnum));
                err->file[0] = '\0';
                err->line = err->column = 0;
        }
        return finish(err, status, errnum);
}

int aidp_error_wrap(aidp_error *err, const char *fmt, ...)
{
        if (!err)
                return -EINVAL;
        char ctx[AIDP_ERROR_MSG_MAX], tmp[AIDP_ERROR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        aidp_text_vprintf(ctx, sizeof ctx, fmt, ap);
        va_end(ap);
        aidp_text_printf(tmp, sizeof tmp, "%s: %s", ctx, err->msg);
        memcpy(err->msg, tmp, sizeof err->msg);
        return err->errnum > 0 ? -err->errnum : -EINVAL;
}

void aidp_error_clear(aidp_error *err)
{
        if (err)
                memset(err, 0, sizeof *err);
}
