#pragma once
/* Bytes with open fds over a unix socket (SCM_RIGHTS): the run's go to the
 * sandbox's pid 1 (with the v1 "tasks" fds), learn mode's seccomp listener
 * from the job to the supervisor, and pid 1's plan to the zygote with the fds
 * pid 1 holds (zygote.h). Only system calls on the stack: usable between
 * vfork and execve. */
#include <stdbool.h>
#include <stddef.h>

#define AIDP_FDPASS_MAX 8
/* The most one message carries (the kernel's SCM_MAX_FD). */
#define AIDP_FDPASS_MAX_MANY 253

/* Send `byte` with n (<= AIDP_FDPASS_MAX) fds. 0 or -errno. */
int aidp_fdpass_send(int sock, char byte, const int *fds, size_t n);
/* Receive one byte and the fds sent with it (close-on-exec), up to max into
 * fds (more are closed); *n says how many. 1 when a byte came, 0 at end of
 * stream, -errno. */
int aidp_fdpass_recv(int sock, char *byte, int *fds, size_t max, size_t *n);

/* len bytes, n (<= AIDP_FDPASS_MAX_MANY) fds going with the first of them.
 * 0 or -errno; never SIGPIPE. */
int aidp_fdpass_sendv(int sock, const void *buf, size_t len, const int *fds, size_t n);
/* Exactly len bytes (a stream socket may give them in parts), and the fds
 * that came with them (close-on-exec), up to max into fds. strict: more fds
 * than max (or a control message cut short) is -EMSGSIZE with every fd
 * closed; else the extra ones are closed. 1, 0 at end of stream before the
 * first byte, or -errno (-EPIPE: the stream ended part way, fds closed). */
int aidp_fdpass_recvv(int sock, void *buf, size_t len, int *fds, size_t max, size_t *n,
                      bool strict);
