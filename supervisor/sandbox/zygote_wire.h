#pragma once
/* The wire between a worker and its zygote (zygote.h): a socketpair
 * (SOCK_STREAM). Worker to zygote: a hello (magic, the plan's length) with
 * the plan's fds (SCM_RIGHTS, in the order of the plan's fds[]), then the
 * plan's bytes (codec/plan.h). Zygote to worker: a reply with pid 1's pidfd. */
#include <stddef.h>
#include <stdint.h>

#define AIDP_ZYGOTE_HELLO 0x4f4c4548u /* "HELO" */

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

/* len bytes with n fds (the fds go with the first byte). 0 or -errno;
 * never SIGPIPE. */
int aidp_zygote_send(int sock, const void *buf, size_t len, const int *fds, size_t n);
/* Exactly len bytes, and the fds that came with them (close-on-exec; at most
 * max, else -EMSGSIZE with every fd closed). 1, 0 at end of stream before
 * the first byte, or -errno (-EPIPE: cut short). */
int aidp_zygote_recv(int sock, void *buf, size_t len, int *fds, size_t max, size_t *n);
