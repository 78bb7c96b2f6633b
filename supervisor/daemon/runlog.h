#pragma once
/* The output of detached runs (docs/protocol.md, "Detached runs").
 *
 * DIR (RUN_DIR/.logs, root's, 0700) holds, per detached run, RUN.log: the
 * job's stdout and stderr (and the run's own messages), created by the
 * daemon, root's and 0600, its caller's uid in the trusted.aidp.owner
 * attribute (only root reads or sets trusted.*): nobody but root reaches or
 * opens it; `aidp logs` gets it as a read-only descriptor from the daemon,
 * which checks that attribute first. Not owned by the caller: an owner could
 * reopen that descriptor for writing through /proc/self/fd and grow the log
 * past every cap. When the run ends, RUN.status
 * ({"status": N, "ended": T}) is written beside it. Both are shredded
 * (overwritten, then removed) once they are older than the retention the
 * daemon was given; a log whose run never recorded its end (a daemon that
 * crashed) is shredded once the log itself is that old, and `aidp logs --rm`
 * shreds a finished run's log at once.
 *
 * A log is capped and keeps the newest output: the job writes into a pipe,
 * which the run's worker drains into the log (aidp_runlog_relay), so the job
 * never blocks on the log. The log's offsets are those of the run's output;
 * once it would hold more than the cap, its oldest bytes are overwritten and
 * freed (FALLOC_FL_PUNCH_HOLE: a hole before the bytes it keeps), and a
 * marker line over the first bytes kept says how many were dropped. Readers
 * skip the hole (SEEK_DATA). Where the file system cannot punch holes, the
 * newest output is dropped instead, after a marker line. The count of dropped
 * bytes goes into RUN.status. A user's logs together are
 * capped too: a detached run is refused when the logs its user holds (those
 * of runs still going at their full cap) and a full log of the new run would
 * exceed that cap (aidp_runlog_usage). */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/* Make DIR (or check it): a root-owned 0700 directory. 0 or < 0 with err. */
int aidp_runlog_init(const char *dir, aidp_error *err);
/* A new, empty RUN.log of uid's (root's, 0600, uid in its owner attribute),
 * open for writing. Returns the fd or < 0 with err. */
int aidp_runlog_create(const char *dir, const char *run_id, uid_t uid, aidp_error *err);
/* A run that never started: its (empty) log removed. */
void aidp_runlog_discard(const char *dir, const char *run_id);
/* RUN.log for reading, when it exists and its owner attribute names caller
 * (root: any).
 * Returns the fd, or -ENOENT for "none of yours" (another user's log is
 * reported as none, as `stop` reports their runs), or another -errno. */
int aidp_runlog_open(const char *dir, const char *run_id, uid_t caller);
/* The run ended with status, its output over the cap dropped: RUN.status
 * written. 0 or -errno. */
int aidp_runlog_ended(const char *dir, const char *run_id, int status, uint64_t dropped);
/* 1 with *status (and *dropped, when not NULL) when RUN.status is there, 0
 * when not (yet). */
int aidp_runlog_status(const char *dir, const char *run_id, int *status, uint64_t *dropped);
/* Bytes the logs of uid (their owner attribute) take in dir, a log whose run has not ended
 * (no RUN.status yet) counted as at least `reserve`: what it may still grow
 * to. */
uint64_t aidp_runlog_usage(const char *dir, uid_t uid, uint64_t reserve);
/* Copy what comes from rfd into log until rfd's end, at the offsets of the
 * output (the log is a ring of at most max bytes held, max >= 64K: the oldest
 * freed, a marker line at the head); what was dropped is counted in *dropped.
 * With stop set (atomic, by another thread), it gives up once rfd stayed
 * silent for a while. */
void aidp_runlog_relay(int rfd, int log, uint64_t max, uint64_t *dropped, const volatile int *stop);
/* RUN.log and RUN.status shredded now (`aidp logs --rm`). */
void aidp_runlog_remove(const char *dir, const char *run_id);
/* Shred what is older than retention_s seconds, but never the log of a run
 * still in the registry of state_dir. */
void aidp_runlog_sweep(const char *dir, const char *state_dir, unsigned retention_s);
/* A run id the daemon could have made (lowercase hex and dashes, 36). */
bool aidp_runlog_id_valid(const char *run_id);
