#pragma once
/* Inside the cgroup layer: the run's cgroup object, the backend table and the
 * cgroupfs helpers both backends share. Not for other layers (cgroup.h is).
 *
 * The front (cgroup.c) picks one backend when a run's cgroup begins and from
 * then on calls only through cg->ops: no version branches outside the
 * backends. The model is crun's cgroup manager table (one struct of function
 * pointers, one file per backend):
 *   cgroup_v1.c  v1 hierarchies through libcgroup, plus the tracking group in a
 *                hybrid host's controller-less cgroup2 mount (for cgroup.kill and
 *                clone3 CLONE_INTO_CGROUP);
 *   cgroup_v2.c  the unified hierarchy, through cgroupfs directly. */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "supervisor/sandbox/cgroup/cgroup.h"

#define CG_ROOT     "/sys/fs/cgroup"
#define CG_MAX_DIRS 8
#define CG_V1_MAX   5 /* v1 controllers the run uses (cgroup_v1.c) */

struct cg_dir {
        char path[PATH_MAX];   /* absolute cgroupfs directory of the run */
        char parent[PATH_MAX]; /* its "aidp" parent, removed when it becomes empty */
        char controller[16];   /* v1 controller, "unified" or "" for v2 */
        bool gone;             /* removed again by a rollback; still listed (lineage) */
};

struct aidp_cgroup;

/* One backend. Every step is all or nothing on its own: on failure it returns
 * < 0 with err filled, and the front rolls back what the step added to
 * cg->dirs (rollback in cgroup.c), so a step never has to undo its own partial work. */
struct aidp_cgroup_ops {
        enum aidp_cgroup_version version;
        /* create is slow (libcgroup start-up): worth a helper process */
        bool create_in_helper;
        /* device lines add up one write at a time, so that those every run
         * has can be written ahead (aidp_cgroup_prepare) */
        bool devices_ahead;
        /* the cgroup2 directory clone3(CLONE_INTO_CGROUP) needs, if any */
        int (*begin)(struct aidp_cgroup *cg, aidp_error *err);
        /* the rest of the run's directories */
        int (*create)(struct aidp_cgroup *cg, aidp_error *err);
        /* memory, cpu, pids and device limits on what create made */
        int (*limit)(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim, aidp_error *err);
        int (*attach)(struct aidp_cgroup *cg, pid_t pid, bool cloned_into, aidp_error *err);
        int (*task_fds)(const struct aidp_cgroup *cg, int *fds, size_t max);
        int (*stats)(const struct aidp_cgroup *cg, struct aidp_cgroup_stats *st, aidp_error *err);
        /* the directory of the calling process in the hierarchy that holds
         * the memory controller (where aidp_cgroup_charge_end goes back to) */
        int (*memory_home)(char *out, size_t len);
        /* every process but keep (0: all), waiting (bounded) until it is so */
        int (*kill)(struct aidp_cgroup *cg, pid_t keep);
        /* release what the backend holds (handles); the front removes dirs */
        void (*release)(struct aidp_cgroup *cg);
};

extern const struct aidp_cgroup_ops aidp_cgroup_v1_ops;
/* libcgroup's start-up, once (aidp_cgroup_warm). 0 or -EIO. */
int cgv1_warm(void);
/* The default shared parents removed where they are empty (aidp_cgroup_unwarm). */
void cgv1_unwarm(void);
/* aidp_cgroup_warm was called: the shared parents stay when a run ends, and
 * finish_start finishes on the spot (libcgroup is started already: a fork of
 * the caller would cost more than the work). */
extern bool cgfs_warm;
extern const struct aidp_cgroup_ops aidp_cgroup_v2_ops;

struct cgroup; /* libcgroup's handle, only cgroup_v1.c looks inside */

struct aidp_cgroup {
        const struct aidp_cgroup_ops *ops;
        struct cg_dir dirs[CG_MAX_DIRS];
        size_t n_dirs;
        int kill_dir;            /* index of a dir with cgroup.kill, or -1 */
        int procs_dir;           /* index of the dir whose cgroup.procs lists the run's pids */
        int memory_dir, cpu_dir; /* indexes for stats, or -1 */
        struct cgroup *lcg[CG_V1_MAX]; /* libcgroup handles (v1) */
        char parent[PATH_MAX];         /* as given to aidp_cgroup_begin ("" = the default) */
        char name[256];
        pid_t helper; /* aidp_cgroup_finish_start's process, or 0 */
        /* The helper ended without its result: dirs lacks what it made
         * (cgroups.log has them), so destroy must not report clean. */
        bool helper_lost;
        int helper_fd;    /* its result pipe (read end) */
        int intent_fd;    /* where each directory is logged before it is made, or -1 */
        int intent_errno; /* why the last line could not be logged (cgfs_intent_lost) */
        /* device lines already written (deny all, then these), or NULL */
        const char *const *dev_ahead;
        /* task_fds opened ahead (a ready cgroup), handed out once */
        int task_fds[CG_MAX_DIRS];
        int n_task_fds;
};

/* ---- cgroup_fs.c: cgroupfs helpers of both backends ---- */

/* snprintf that reports truncation: 0 or -ENAMETOOLONG. */
int cgfs_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int cgfs_write(const char *dir, const char *file, const char *val);
int cgfs_read(const char *dir, const char *file, char *buf, size_t len);
int cgfs_read_u64(const char *dir, const char *file, uint64_t *v);
/* "key value" line in a flat-keyed file (memory.events, cpu.stat, oom_control). */
int cgfs_read_key(const char *dir, const char *file, const char *key, uint64_t *v);
/* The supervisor's own cgroup path in a v1 hierarchy ("memory") or the cgroup2
 * one (""), "" for the root. */
int cgfs_self(const char *controller, char *out, size_t len);
/* Log a directory before making it (the run journal's cgroups.log): 0, or
 * -errno (kept in cg->intent_errno) when the line could not be written (the
 * directory must not be made then: a crash would leave gc a cgroup it does
 * not know of). 0 without a log (intent_fd -1: aidp_cgroup_create's, no
 * journal). Test builds: AIDP_FAULT_FAIL_AT=cgroups-log fails it with
 * ENOSPC (and cgroups-log-adopt only cgfs_intent_all's). */
int cgfs_intent(struct aidp_cgroup *cg, const char *path);
/* Log every directory of the run at once (a ready cgroup's, adopted; the
 * caller checked intent_fd): 0 or -errno, as cgfs_intent. */
int cgfs_intent_all(const struct aidp_cgroup *cg);
/* cgfs_mkdir's result when the directory's line could not be logged (it was
 * not made; why is in cg->intent_errno). */
#define CGFS_INTENT_LOST (-4096)
/* The run's error for a directory not made because its line could not be
 * logged, with the write's errno (cg->intent_errno): -1 with err set. */
int cgfs_intent_lost(aidp_error *err, const struct aidp_cgroup *cg, const char *dir);
/* Record a directory of the run (before it is made, so that a failure half
 * way through still removes it). Returns its index or -E2BIG. */
int cgfs_add_dir(struct aidp_cgroup *cg, const char *path, const char *parent, const char *ctrl);
/* Log, record and make one directory of the run: its index, or -errno (then
 * it is forgotten again). */
int cgfs_mkdir(struct aidp_cgroup *cg, const char *dir, const char *parent, const char *ctrl);
/* A directory recorded but never made (its mkdir failed: it may be another
 * run's): no longer the run's, never listed. */
void cgfs_forget_dir(struct aidp_cgroup *cg, int idx);
/* Remove the directories from index `from` on, newest first; they stay listed. */
void cgfs_remove_dirs_from(struct aidp_cgroup *cg, size_t from);
int cgfs_rmdir_retry(const char *path);
/* Remove every directory not gone yet (newest first; the parents as in
 * cgfs_remove_dirs_from) without marking them in cg, which its caller frees
 * next (a write to each directory's record was a page fault each in a daemon
 * worker, whose pages pid 1's clone had shared). Returns how many are left. */
int cgfs_remove_all(const struct aidp_cgroup *cg);
void cgfs_backoff(int attempt);
/* Kill the run's processes through its listing directory: cgroup.kill when
 * the run has one, else SIGKILL by pid until it stays empty (but keep). */
int cgfs_kill_run(struct aidp_cgroup *cg, pid_t keep);
/* No process in the run's listing directories (false when one cannot be read). */
bool cgfs_run_empty(const struct aidp_cgroup *cg);
int cgfs_kill_path(const char *path, pid_t keep);
/* Set a ready cgroup's mark on each of its directories (cgroup_mark.c);
 * best effort: an unmarked one is still found through its record. */
void cgfs_mark_dirs(const struct aidp_cgroup *cg, const char *mark);
/* The mark removed (a run adopted the cgroup). */
void cgfs_unmark_dirs(const struct aidp_cgroup *cg);

/* Test-only fault point: a test sets this to make a creation step fail as if
 * the kernel had refused it (`step` is "v1:<controller>" after that hierarchy
 * was made, "v2:limit" before the limits are written). aidp itself never sets
 * it, nor reads anything from its environment for it. */
extern int (*aidp_cgroup_fault_hook)(const char *step);
int cgfs_fault(const char *step);
/* Test builds: AIDP_FAULT_FAIL_AT names this fault point (the production
 * binary does not honour AIDP_FAULT_ variables: supervisor/cli/env.c). */
bool cgfs_fault_at(const char *name);
