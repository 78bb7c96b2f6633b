#pragma once
/* Output relay: the job's stdout/stderr go through a pipe the supervisor owns
 * unless the supervisor's own stdout/stderr is a terminal.
 *
 * Why: a file the supervisor writes to (root's log, `>> /var/log/x`) would
 * otherwise be the job's stdout: a writable fd on which the job can truncate,
 * seek over or rewrite earlier content. And splice(2) and sendfile(2) into a
 * pipe do not copy, they hand the pipe references to the page-cache pages of
 * the source file: a job that does `cat /scratch/result` (busybox cat uses
 * sendfile) would leave pages of its tmpfs in the caller's pipe, which shred
 * then overwrites. The supervisor reads the job's output with read(2), which
 * copies, and has drained everything before shred starts. Terminals copy on
 * write and are passed to the job directly (the job is in its own session,
 * without a controlling terminal: sandbox.c). */
#include <stdbool.h>
#include <stddef.h>

struct aidp_relay {
        int from;  /* read end of the private pipe (non-blocking), -1 when inactive */
        int to;    /* the supervisor's own fd the bytes go to */
        char *buf; /* read but not yet written */
        size_t len, cap;
        bool eof;
};

void aidp_relay_init(struct aidp_relay *r);
/* Relay `to` unless it is a terminal (or not open): *child_end is then the write end the
 * sandbox uses as that fd (O_CLOEXEC in the supervisor), else -1. */
int aidp_relay_setup(struct aidp_relay *r, int to, int *child_end);
/* The job's stdin: -1 to keep the supervisor's fd 0, else an fd (O_CLOEXEC)
 * of /dev/null to use instead, or -errno. */
int aidp_relay_stdin_for_job(void);
/* poll(2) events to ask for on r->from and r->to (0: none). */
short aidp_relay_want_in(const struct aidp_relay *r);
short aidp_relay_want_out(const struct aidp_relay *r);
void aidp_relay_on_readable(struct aidp_relay *r);
void aidp_relay_on_writable(struct aidp_relay *r);
/* After the job's processes are dead: read everything still in the pipe. */
void aidp_relay_drain(struct aidp_relay *r);
/* Write out what is buffered (blocking; a vanished reader drops it, and so
 * does one that leaves no room for stall_ms; -1: wait as long as it takes),
 * release. */
void aidp_relay_finish(struct aidp_relay *r, int stall_ms);
