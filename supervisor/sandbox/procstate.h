#pragma once
/* The process state a root supervisor must not inherit from its caller
 * (docs/security.md): a caller's `ulimit -f` killed the supervisor with
 * SIGXFSZ mid-teardown, a blocked or ignored signal would silence its
 * shutdown, a umask would change the modes of what it creates. */

#include <stddef.h>

/* Reset every rlimit (root may raise them: sane fixed values, core dumps
 * off), unblock every signal and restore every disposition, ignore SIGPIPE
 * and SIGXFSZ (a failed write returns EPIPE/EFBIG and is handled), umask
 * 022, nice 0. Call first in main. Returns -1 (why filled) when a limit the
 * supervisor cannot work under (RLIMIT_FSIZE, RLIMIT_CPU, RLIMIT_NOFILE)
 * stays too low because root here lacks CAP_SYS_RESOURCE: a run must then
 * be refused, or shred and the lineage records could fail half-way. */
int aidp_procstate_reset(char *why, size_t why_len);

/* In the sandbox child before execve: SIGPIPE and SIGXFSZ back to default,
 * as a job expects (ignored dispositions survive execve). */
void aidp_procstate_for_job(void);
