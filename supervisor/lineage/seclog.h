#pragma once
/* Security events for a SIEM: RFC 5424 syslog messages with structured data, sent to
 * the local syslog socket. Denials, tamper found by `lineage verify`, aborted runs.
 *
 *   <84>1 2024-05-01T12:00:00.123Z node1 aidp 4242 DENIED [aidp@32473 runId="…" …] text
 *
 * Facility authpriv (10): these are security records. The SD-ID uses enterprise
 * number 32473, which RFC 5612 reserves for documentation; a site with its own
 * private enterprise number can change AIDP_SECLOG_SDID. */
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#define AIDP_SECLOG_SDID           "aidp@32473"
#define AIDP_SECLOG_FACILITY       10 /* authpriv */
#define AIDP_SECLOG_ENV_SOCKET     "AIDP_SYSLOG_SOCKET"
#define AIDP_SECLOG_DEFAULT_SOCKET "/dev/log"
#define AIDP_SECLOG_MAX            8192

struct aidp_seclog_param {
        const char *name;  /* 1-32 printable ASCII, no '=', ' ', ']', '"' */
        const char *value; /* any UTF-8; '"', '\\' and ']' are escaped */
};

struct aidp_seclog_msg {
        int severity;         /* LOG_CRIT, LOG_WARNING, ... (0-7) */
        int64_t time_ns;      /* realtime, ns since the epoch */
        const char *hostname; /* NULL or "": NILVALUE */
        const char *app_name; /* NULL: "aidp" */
        long procid;          /* <= 0: NILVALUE */
        const char *msgid;    /* "DENIED", "TAMPER", "ABORT", ... */
        const struct aidp_seclog_param *params;
        size_t nparams;
        const char *text; /* free-form message, may be NULL */
};

/* Format m into buf. Returns the length (no NUL counted) or a negative errno:
 * -EINVAL for an invalid param name or severity, -ENOSPC when buf is too small.
 * Pure. */
int aidp_seclog_format(char *buf, size_t size, const struct aidp_seclog_msg *m);

/* Fill time, hostname and pid when unset, format, and send as one datagram to
 * socket_path (NULL: $AIDP_SYSLOG_SOCKET, else /dev/log). Best effort and never
 * blocking: returns a negative errno when nothing listens, which callers ignore. */
int aidp_seclog_send(const char *socket_path, const struct aidp_seclog_msg *m);
