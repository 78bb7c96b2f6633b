#pragma once
/* The run journal, /run/aidp/<run-id>/journal.json: what this run created,
 * rewritten atomically after every step, so that `aidp-supervisor gc` can
 * finish the cleanup of a run whose supervisor died. */
#include <json-c/json.h>
#include <limits.h>
#include <sys/types.h>

#include "common/error.h"

#define AIDP_RUN_DIR_DEFAULT "/run/aidp"

struct aidp_journal {
        char dir[PATH_MAX];
        json_object *obj;
        int lifeline_w; /* kept open until teardown is complete (see sandbox init) */
        int cgroup_log; /* <dir>/cgroups.log, O_APPEND, or -1 */
};

/* Beside journal.json: cgroups.log, each run cgroup directory's path on a line
 * of its own, appended before the directory is made (supervisor/sandbox/cgroup/cgroup.h,
 * intent_fd), so that gc knows every cgroup even when the supervisor died
 * before journal.json listed it. */
#define AIDP_JOURNAL_CGROUP_LOG "cgroups.log"

/* run_dir NULL = $AIDP_RUN_DIR or /run/aidp. Fails if the run id is in use.
 * The first version on disk already names the run's lineage log (where gc
 * records an ABORT) and job (NULL: none). */
int aidp_journal_create(const char *run_dir, const char *run_id, const char *lineage,
                        const char *job, struct aidp_journal *j, aidp_error *err);
void aidp_journal_add(struct aidp_journal *j, const char *kind, const char *value);
/* The cgroups.log fd (opened on first use), or -errno: then the run must
 * make and take no cgroup (a crash would leave gc one it cannot name). Test
 * builds: AIDP_FAULT_FAIL_AT=cgroups-log-open fails it with ENOSPC. */
int aidp_journal_cgroup_log(struct aidp_journal *j);
/* gc: call fn for every path in dir's cgroups.log. */
void aidp_journal_cgroup_log_each(const char *dir, void (*fn)(const char *path, void *arg),
                                  void *arg);
/* A tmpfs of the run: pid 1's fd for it, and where it is mounted in the
 * sandbox (for gc through the pinned namespace, AIDP_JOURNAL_NSPIN). */
void aidp_journal_add_fd(struct aidp_journal *j, const char *label, const char *target, int fd);
/* Beside journal.json: the sandbox's mount namespace, pinned (sandbox/nspin.h). */
#define AIDP_JOURNAL_NSPIN "mnt.ns"
void aidp_journal_set_pid1(struct aidp_journal *j, pid_t pid);
/* The run's end record is in lineage: gc finishes what teardown left but
 * records no ABORT after it (a run never gets two end records). */
void aidp_journal_set_ended(struct aidp_journal *j, const char *event);
int aidp_journal_sync(struct aidp_journal *j, aidp_error *err);
/* Done: delete the journal and its directory. */
void aidp_journal_remove(struct aidp_journal *j);
/* Keep the files (gc finishes), free memory. */
void aidp_journal_close(struct aidp_journal *j);
const char *aidp_journal_run_dir(const char *run_dir);
/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/<pid>/stat), 0 if it does not exist or is a zombie: a pid plus its start time
 * names one process even after pid reuse. */
unsigned long long aidp_proc_starttime(pid_t pid);
