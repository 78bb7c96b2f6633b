#pragma once
/* The wire between a worker and its zygote (zygote.h): a socketpair
 * (SOCK_STREAM). Worker to zygote: a hello (magic, the plan's length) with
 * the plan's fds (SCM_RIGHTS, in the order of the plan's fds[]), then the
 * plan's bytes (codec/plan.h). Zygote to worker: first, as soon as it runs,
 * a greeting with its build id (the worker uses only a zygote of its own
 * build); then a reply with pid 1's pidfd.
 * Both through fdpass.h (aidp_fdpass_sendv, aidp_fdpass_recvv, strict). */
#include <stddef.h>
#include <stdint.h>

#define AIDP_ZYGOTE_HELLO    0x4f4c4548u /* "HELO" */
#define AIDP_ZYGOTE_GREETING 0x54455247u /* "GRET" */

/* build: AIDP_BUILD_ID (CMakeLists.txt), 64 hex digits, no NUL. */
struct aidp_zygote_greeting {
        uint32_t magic;
        char build[64];
};

struct aidp_zygote_hello {
        uint32_t magic;
        uint32_t len; /* the plan's bytes that follow */
};

/* pid > 0: pid 1, its pidfd sent with the reply. pid <= 0: nothing was
 * cloned; errnum and what say why. */
struct aidp_zygote_reply {
        int32_t pid;
        int32_t errnum;
        char what[120];
};
