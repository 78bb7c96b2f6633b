#pragma once
/* The output of detached runs (docs/protocol.md, "Detached runs").
 *
 * DIR (RUN_DIR/.logs, root's, 0700) holds, per detached run, RUN.log: the
 * job's stdout and stderr (and the run's own messages), created by the
 * daemon, owned by the caller and 0600, so the caller's is the only uid
 * besides root's that can read it; the directory keeps everyone else from
 * even reaching it, the caller too: `aidp logs` gets it as a descriptor from
 * the daemon, which checks the owner first. When the run ends, RUN.status
 * ({"status": N, "ended": T}) is written beside it. Both are shredded
 * (overwritten, then removed) once they are older than the retention the
 * daemon was given; a log whose run never recorded its end (a daemon that
 * crashed) is shredded once the log itself is that old. */
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"

/* Make DIR (or check it): a root-owned 0700 directory. 0 or < 0 with err. */
int aidp_runlog_init(const char *dir, aidp_error *err);
/* A new, empty RUN.log owned by uid:gid, mode 0600, open for appending.
 * Returns the fd or < 0 with err. */
int aidp_runlog_create(const char *dir, const char *run_id, uid_t uid, gid_t gid, aidp_error *err);
/* A run that never started: its (empty) log removed. */
void aidp_runlog_discard(const char *dir, const char *run_id);
/* RUN.log for reading, when it exists and belongs to caller (root: any).
 * Returns the fd, or -ENOENT for "none of yours" (another user's log is
 * reported as none, as `stop` reports their runs), or another -errno. */
int aidp_runlog_open(const char *dir, const char *run_id, uid_t caller);
/* The run ended with status: RUN.status written. 0 or -errno. */
int aidp_runlog_ended(const char *dir, const char *run_id, int status);
/* 1 with *status when RUN.status is there, 0 when not (yet). */
int aidp_runlog_status(const char *dir, const char *run_id, int *status);
/* Shred what is older than retention_s seconds, but never the log of a run
 * still in the registry of state_dir. */
void aidp_runlog_sweep(const char *dir, const char *state_dir, unsigned retention_s);
/* A run id the daemon could have made (lowercase hex and dashes, 36). */
bool aidp_runlog_id_valid(const char *run_id);
