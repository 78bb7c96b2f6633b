#pragma once
/* One error type for every module (crun's libcrun_error_t, minus the heap).
 *
 * A fallible function returns < 0 (a negative errno) and fills *err. Callers
 * prepend context on the way up with aidp_error_wrap(), so the message reads
 * outermost first:
 *   "loading profile gpu-train: seccomp.syscalls[3].names[0]: unknown syscall 'mmap3'"
 * The CLI prints the message once and exits with err->status.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/exitcodes.h"

#define AIDP_ERROR_MSG_MAX 2048

typedef struct aidp_error {
        int errnum; /* positive errno-style cause, 0 if none */
        int status; /* documented exit status, AIDP_EXIT_* */
        /* Parse errors: where. file is empty and line 0 when not a parse error. */
        char file[256];
        unsigned line, column;
        char msg[AIDP_ERROR_MSG_MAX];
} aidp_error;

/* Fill err (if non-NULL) and return -errnum (or -EINVAL when errnum is 0). */
int aidp_error_set(aidp_error *err, int status, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Same, with a source position; the message becomes "file:line:col: ...". */
int aidp_error_set_at(aidp_error *err, int status, const char *file, unsigned line, unsigned column,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Prepend "context: " to the message; keeps status/errnum; returns -errnum. */
int aidp_error_wrap(aidp_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* errno-style helper: set with strerror(errnum) appended. */
int aidp_error_errno(aidp_error *err, int status, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
void aidp_error_clear(aidp_error *err);

/* snprintf for human-readable text only (error messages, reasons, summaries):
 * text that does not fit is cut short, which is harmless for a message and the
 * one place aidp accepts truncation. Never use it for a path or anything a
 * program parses (paths go through aidp_path_join, which refuses instead).
 * Returns true when the text was cut. */
bool aidp_text_printf(char *buf, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
bool aidp_text_vprintf(char *buf, size_t size, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
