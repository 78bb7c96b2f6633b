#include "common/error.h"

/* Messages are truncated on purpose when they overflow the fixed buffer
 * (-Wformat-truncation is off project-wide). */

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
                vsnprintf(err->msg, sizeof err->msg, fmt, ap);
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
                vsnprintf(tmp, sizeof tmp, fmt, ap);
                va_end(ap);
                snprintf(err->file, sizeof err->file, "%s", file ? file : "<input>");
                err->line = line;
                err->column = column;
                snprintf(err->msg, sizeof err->msg, "%s:%u:%u: %s", err->file, line, column, tmp);
        }
        return finish(err, status, EINVAL);
}

int aidp_error_errno(aidp_error *err, int status, int errnum, const char *fmt, ...)
{
        if (err) {
                char tmp[AIDP_ERROR_MSG_MAX];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(tmp, sizeof tmp, fmt, ap);
                va_end(ap);
                snprintf(err->msg, sizeof err->msg, "%s: %s", tmp, strerror(errnum));
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
        vsnprintf(ctx, sizeof ctx, fmt, ap);
        va_end(ap);
        snprintf(tmp, sizeof tmp, "%s: %s", ctx, err->msg);
        memcpy(err->msg, tmp, sizeof err->msg);
        return err->errnum > 0 ? -err->errnum : -EINVAL;
}

void aidp_error_clear(aidp_error *err)
{
        if (err)
                memset(err, 0, sizeof *err);
}
