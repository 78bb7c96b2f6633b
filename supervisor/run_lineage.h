#pragma once
/* The run lifecycle's lineage records (DESIGN.md, steps 2, 7 and 8):
 *   START  before anything of the run is created; a run whose START is not durable
 *          does not start;
 *   COMPLETE / FAIL / ABORT after shred, with the exit status, resource usage and
 *          the shred report, before the run journal is deleted (so a crash between
 *          the two leaves gc a journal to record the ABORT from);
 *   ABORT  from gc for a run whose supervisor died, with gc's cleanup report. */
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "profiles/profile.h"
#include "supervisor/run.h"
#include "supervisor/shred.h"

struct aidp_lineage;

struct aidp_run_lineage {
        struct aidp_lineage *lg;
        char job[128];       /* job.name: the command's base name */
};

/* Open the store (creating the host key on first use) and append START. */
int aidp_run_lineage_start(struct aidp_run_lineage *rl, const struct aidp_run_opts *o,
                           const char *run_id, const struct aidp_profile *profile, uid_t job_uid,
                           gid_t job_gid, aidp_error *err);

/* Append the end record. rc/run_err: the run's outcome (rc < 0: it failed with
 * run_err); removed: what teardown released ("tmpfs out", "cgroup /sys/..."). */
int aidp_run_lineage_end(struct aidp_run_lineage *rl, const char *run_id,
                         const struct aidp_run_result *res, int rc, const aidp_error *run_err,
                         const char *const *removed, size_t nremoved, aidp_error *err);

void aidp_run_lineage_close(struct aidp_run_lineage *rl);
/* The log this run writes to (for the journal, so gc writes to the same one). */
const char *aidp_run_lineage_path(const struct aidp_run_lineage *rl);

/* gc: ABORT for a run whose supervisor died, written to lineage_path. */
int aidp_run_lineage_abort(const char *lineage_path, const char *run_id, const char *job,
                           const struct aidp_shred_report *shred, bool shredded, const char *what,
                           aidp_error *err);
