#pragma once
/* One byte with open fds over a unix socket (SCM_RIGHTS): the run's go to the
 * sandbox's pid 1 (with the v1 "tasks" fds), and learn mode's seccomp listener
 * from the job to the supervisor. */
#include <stddef.h>

#define AIDP_FDPASS_MAX 8

/* Send `byte` with n (<= AIDP_FDPASS_MAX) fds. 0 or -errno. Only system calls on
 * the stack: usable between vfork and execve. */
int aidp_fdpass_send(int sock, char byte, const int *fds, size_t n);
/* Receive one byte and the fds sent with it (close-on-exec), up to max into
 * fds; *n says how many. 1 when a byte came, 0 at end of stream, -errno. */
int aidp_fdpass_recv(int sock, char *byte, int *fds, size_t max, size_t *n);
