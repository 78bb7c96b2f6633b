#pragma once
/* Output relay: the job's stdout/stderr go through a pipe the supervisor owns
 * whenever the supervisor's own stdout/stderr is a pipe or a socket.
 *
 * Why: splice(2) and sendfile(2) into a pipe do not copy, they hand the pipe
 * references to the page-cache pages of the source file. A job that does
 * `cat /scratch/result` (busybox cat uses sendfile) leaves pages of its tmpfs
 * in the caller's pipe; shred then overwrites those very pages, and whoever
 * reads the pipe after the run gets zeros. The supervisor therefore reads the
 * job's output with read(2), which copies, and has drained everything before
 * shred starts. Terminals and regular files copy on write and are passed to
 * the job directly. */
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
/* Relay `to` if it is a pipe or socket: *child_end is then the write end the
 * sandbox uses as that fd (O_CLOEXEC in the supervisor), else -1. */
int aidp_relay_setup(struct aidp_relay *r, int to, int *child_end);
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
