#pragma once
/* The run lifecycle's lineage records (docs/run-core.md, steps 2, 5 and 9):
 *   START  written right after pid 1's clone, while pid 1 builds its mounts (the
 *          store is opened before the journal exists), durable before the go
 *          (step 5); a run whose START is not durable does not start, and has no
 *          end record;
 *   COMPLETE / FAIL / ABORT after shred, with the exit status, resource usage and
 *          the shred report, before the run journal is deleted (so a crash between
 *          the two leaves gc a journal to record the ABORT from);
 *   ABORT  from gc for a run whose supervisor died, with gc's cleanup report. */
#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "profiles/profile.h"
#include "supervisor/run/caller.h"
#include "supervisor/run/run.h"
#include "supervisor/sandbox/shred.h"

struct aidp_lineage;
struct aidp_lineage_pending;
struct aidp_decision;

struct aidp_run_lineage {
        struct aidp_lineage *lg;
        struct aidp_lineage_pending *start; /* START written, its fsync in flight */
        bool start_written;                 /* START's line is in the log */
        bool start_failed;                  /* START could not be written or made durable */
        char job[128];                      /* job.name: the command's base name */
        const struct aidp_run_opts *o;      /* for the scheduler ids of every record */
};

/* Open the store (creating the host key on first use): before anything of the
 * run exists, so that a store that cannot be used refuses the run at once. */
int aidp_run_lineage_open(struct aidp_run_lineage *rl, const struct aidp_run_opts *o,
                          aidp_error *err);
/* Write START to the open store; its fsync and anchor update run in the
 * background until aidp_run_lineage_start_commit(), which the run calls before
 * the go (background false: durable on return, and the commit is a no-op). Other
 * runs may append meanwhile (group commit). On failure start_failed is set: the
 * run ends without an end record.
 * res: the run id and the authenticated inputs (from resolve). profile and cwd:
 * what the sandbox is (the aidp_binds facet lists its binds). caller: who asked
 * (NULL when it could not be resolved: the supervisor's own uid is recorded). annotate (may be
 * NULL) adds facets before the event is written: the access and residency
 * decision (supervisor/run/run_policy.c). */
/* job.name: the command's base name ("job" without one). */
void aidp_run_lineage_job_name(const struct aidp_run_opts *o, char *out, size_t size);
int aidp_run_lineage_start(struct aidp_run_lineage *rl, const struct aidp_run_result *res,
                           const struct aidp_profile *profile, const char *cwd,
                           const struct aidp_caller_identity *caller, uid_t job_uid, gid_t job_gid,
                           void (*annotate)(const void *arg, json_object *ev),
                           const void *annotate_arg, bool background, aidp_error *err);

/* The START event itself, written nowhere: what aidp_run_lineage_start
 * records, and what --dry-run shows as the run's plan. NULL: out of memory. */
json_object *aidp_run_lineage_start_event(const struct aidp_run_opts *o,
                                          const struct aidp_run_result *res,
                                          const struct aidp_profile *profile, const char *cwd,
                                          const struct aidp_caller_identity *caller, uid_t job_uid,
                                          gid_t job_gid,
                                          void (*annotate)(const void *arg, json_object *ev),
                                          const void *annotate_arg);

/* Wait for START to be durable (and anchored). On failure START is cut back
 * and the run must not start. A no-op when already committed. */
int aidp_run_lineage_start_commit(struct aidp_run_lineage *rl, const char *run_id, aidp_error *err);
/* A denied run: an OTHER record with the inputs and, through annotate, the
 * decision and its reasons (and, through the store, a DENIED syslog event).
 * The run does not start either way. */
int aidp_run_lineage_denied(const struct aidp_run_opts *o, const struct aidp_run_result *res,
                            const struct aidp_caller_identity *caller,
                            void (*annotate)(const void *arg, json_object *ev),
                            const void *annotate_arg, aidp_error *err);

/* A run refused for its sealed inputs before START (status 117: a header or
 * manifest that does not authenticate, another key, a truncated file), which
 * the policy may have allowed: an OTHER record with the aidp_refusal facet
 * (the reason and, per --data, whether its header authenticated), the first
 * n_authenticated inputs of res (their headers authenticated) as for a
 * denial, and refusal's status and message as the exit. Nothing of a header
 * that did not authenticate is recorded but what the message says of it. */
int aidp_run_lineage_refused(const struct aidp_run_opts *o, const struct aidp_run_result *res,
                             size_t n_authenticated, const struct aidp_caller_identity *caller,
                             void (*annotate)(const void *arg, json_object *ev),
                             const void *annotate_arg, const aidp_error *refusal, aidp_error *err);

/* Append the end record (committing START first if it is still pending).
 * rc/run_err: the run's outcome (rc < 0: it failed with
 * run_err); removed: what teardown released ("tmpfs out", "cgroup /sys/..."). */
/* The output leak scan's result (counts, hits per label, examples; never a
 * value): lineage END's aidp_leakscan facet (camel) and the summary's
 * leak_scan, which for a user's run (res->leak_private) says only whether
 * /out was quarantined. */
json_object *aidp_run_leak_json(const struct aidp_run_result *res, bool camel);
int aidp_run_lineage_end(struct aidp_run_lineage *rl, const char *run_id,
                         const struct aidp_run_result *res, int rc, const aidp_error *run_err,
                         const char *const *removed, size_t nremoved, aidp_error *err);

void aidp_run_lineage_close(struct aidp_run_lineage *rl);
/* The log this run writes to (for the journal, so gc writes to the same one). */
const char *aidp_run_lineage_path(const struct aidp_run_lineage *rl);

/* gc: ABORT for a run whose supervisor died, written to lineage_path. */
int aidp_run_lineage_abort(const char *lineage_path, const char *run_id, const char *job,
                           const struct aidp_shred_report *shred, bool shredded, const char *by,
                           const char *what, json_object *mounts, aidp_error *err);
