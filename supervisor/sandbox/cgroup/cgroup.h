#pragma once
/* The run's cgroup, behind one interface with two backends (an ops table as
 * in crun's cgroup manager; cgroup_internal.h):
 *   v1  controllers on separate hierarchies, driven through libcgroup; on a
 *       hybrid host a tracking cgroup in the cgroup2 mount adds cgroup.kill
 *       (cgroup_v1.c).
 *   v2  a unified hierarchy, driven through cgroupfs directly (Debian 12's
 *       libcgroup 2.0.2 only partly supports v2: no cgroup.kill, memory.events)
 *       (cgroup_v2.c).
 * The version is detected when a run's cgroup begins, from the filesystem at
 * /sys/fs/cgroup, and the backend is fixed for that cgroup from then on. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

enum aidp_cgroup_version { AIDP_CGROUP_V1, AIDP_CGROUP_V2, AIDP_CGROUP_VERSION_MAX };

struct aidp_cgroup_limits {
        uint64_t memory_bytes; /* 0 = none; swap is limited to the same (no swap use) */
        uint64_t cpu_millis;   /* 0 = none; 1000 = one cpu */
        uint64_t pids;         /* 0 = none */
        const char *const *
                devices_allow; /* v1 devices.allow lines, NULL-terminated; NULL = no device policy */
};

/* Which values of aidp_cgroup_stats the kernel told: a value not read is
 * unknown, never 0. */
enum {
        AIDP_CGROUP_STAT_MEMORY_PEAK = 1 << 0,
        AIDP_CGROUP_STAT_CPU = 1 << 1,
        AIDP_CGROUP_STAT_OOM = 1 << 2,  /* oom_kills and memory_limit_hit */
        AIDP_CGROUP_STAT_SWAP = 1 << 3, /* swap_off */
};

struct aidp_cgroup_stats {
        unsigned known; /* AIDP_CGROUP_STAT_* */
        uint64_t memory_peak_bytes;
        uint64_t cpu_usec;
        uint64_t oom_kills;    /* processes killed by the memory limit */
        bool memory_limit_hit; /* v1 failcnt or v2 memory.events max > 0 */
        /* The kernel gives the run's processes no swap, as its files say now:
         * v2 memory.swap.max 0; v1 memory.memsw.limit_in_bytes equal to a
         * memory limit. False where it accounts no swap (no such file). */
        bool swap_off;
};

struct aidp_cgroup;

enum aidp_cgroup_version aidp_cgroup_detect(void);
const char *aidp_cgroup_version_name(enum aidp_cgroup_version v);

/* Create <parent>/<name> with the limits. parent NULL = the default: v1: the
 * supervisor's own cgroup in each hierarchy + "/aidp" (so the host's own
 * accounting of the supervisor still covers the job); v2: "/aidp" under the
 * hierarchy root. Nothing is left behind on failure. Same as begin + finish. */
int aidp_cgroup_create(const char *parent, const char *name, const struct aidp_cgroup_limits *lim,
                       struct aidp_cgroup **out, aidp_error *err);
/* The same in two steps, so that a run can clone its sandbox straight into the
 * cgroup while the slow part still runs (aidp_cgroup_finish_start):
 *   begin   only the cgroup2 directory clone3(CLONE_INTO_CGROUP) needs, a few
 *           cheap mkdirs: v2 the run's cgroup, no limits yet; v1 the tracking
 *           group on a hybrid host (nothing on a pure v1 host);
 *   finish  the limits (v2), or the run's directory in each v1 hierarchy with
 *           its limits through libcgroup (about a millisecond).
 * Nothing of the job may run before finish succeeded. finish is all or
 * nothing: on failure it has removed every directory it made (they stay
 * listed by aidp_cgroup_paths, for the record of what was removed), and
 * aidp_cgroup_destroy() removes what begin made. intent_fd: begin and finish
 * append each run directory's path to it, one line, before making it (the
 * run journal's cgroups.log, for gc); a directory whose line cannot be
 * written is not made. -1 only for a caller without a journal (tests,
 * benchmarks): a run opens its log first and fails without it. */
int aidp_cgroup_begin(const char *parent, const char *name, int intent_fd, struct aidp_cgroup **out,
                      aidp_error *err);
int aidp_cgroup_finish(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim,
                       aidp_error *err);
/* A ready-made cgroup, for a process that serves one run it does not know
 * yet (an idle worker of aidp-supervisor serve): begin and the rest of
 * finish's directories, under parent as in aidp_cgroup_begin (NULL: the
 * default), named `name` (the run id the run will get), with no limits and
 * no process in it. intent_fd: each
 * directory is logged there before it is made (the ready record, for gc).
 * devices_base (NULL-terminated, kept by the caller; or NULL): the device
 * lines every run's policy starts with, written now where the backend adds
 * them one by one (v1: deny all, then each allow line); a run whose lines
 * start with them writes only the rest. mark (or NULL): set on every
 * directory as soon as they all exist (a trusted xattr, which only root can
 * set), naming the maker, for aidp_cgroup_sweep_marked. Nothing is left on
 * failure. The run takes it over with aidp_cgroup_adopt, else
 * aidp_cgroup_destroy removes it unused. */
int aidp_cgroup_prepare(const char *parent, const char *name, int intent_fd,
                        const char *const *devices_base, const char *mark, struct aidp_cgroup **out,
                        aidp_error *err);
/* gc of marked cgroups that nothing else names any more: every mounted
 * hierarchy is searched for "aidp" parents (down to a bounded depth); each
 * child directory owned by root that carries a mark for which orphan(mark)
 * says its maker is gone is removed with rmdir alone (never a kill: the
 * kernel refuses to remove a cgroup that holds a process), then its parent
 * when that became empty. removed (or NULL) is told each path removed.
 * Returns how many were. A walk of the whole tree: for a daemon's start and
 * an explicit gc, not a run's path. */
int aidp_cgroup_sweep_marked(bool (*orphan)(const char *mark, void *arg),
                             void (*removed)(const char *path, void *arg), void *arg);
/* No process in it: a ready cgroup is adopted only while it is. */
bool aidp_cgroup_is_empty(const struct aidp_cgroup *cg);
/* A run takes a ready cgroup over: each directory is logged to intent_fd
 * (the run's journal; -1 is refused, as a log that cannot be written: a
 * crash would leave gc a cgroup it cannot name) and the run's limits are
 * written, which is then all that is left of finish (finish_wait has nothing
 * to collect). On failure the caller destroys it. */
int aidp_cgroup_adopt(struct aidp_cgroup *cg, int intent_fd, const struct aidp_cgroup_limits *lim,
                      aidp_error *err);
/* Free cg in this process only: its directories stay (a ready cgroup found
 * in use, left to gc). */
void aidp_cgroup_forget(struct aidp_cgroup *cg);
/* finish in the background: on v1 in a helper process (fork), so that the
 * caller may clone its sandbox meanwhile (libcgroup uses stdio, so a thread
 * would not do: sandbox.h), on v2 on the spot (a few writes). _wait collects
 * the outcome, after which cg lists the directories made; it is a no-op
 * without a helper. The caller's other threads must not be inside libcgroup
 * when _start forks. aidp_cgroup_destroy() kills and reaps a helper not
 * collected. */
int aidp_cgroup_finish_start(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim,
                             aidp_error *err);
int aidp_cgroup_finish_wait(struct aidp_cgroup *cg, aidp_error *err);
/* An O_DIRECTORY fd for clone3(CLONE_INTO_CGROUP), which places the child at
 * fork and skips a migration: the run's cgroup on v2; on v1 its cgroup2
 * tracking group when the host has one; else -1. */
int aidp_cgroup_open_fd(const struct aidp_cgroup *cg);
/* v1: O_WRONLY|O_CLOEXEC fds of the run's "tasks" file in each v1 hierarchy
 * (0 on v2), for the sandbox's pid 1 to move itself in with
 * aidp_cgroup_join_self() before it starts the job. A thread that moves itself
 * ("0") skips the kernel's global threadgroup lock (Linux >= 5.17), whose
 * write side waits for an RCU grace period: milliseconds per run when the
 * supervisor migrates the child by pid. Returns the count or -errno (then
 * nothing is left open). A ready cgroup's were opened when it was made: the
 * first call hands those over. */
int aidp_cgroup_task_fds(struct aidp_cgroup *cg, int *fds, size_t max);
/* In the child: write "0" to each fd and close it. 0 or -errno. */
int aidp_cgroup_join_self(const int *fds, size_t n);
/* Move pid into the cgroup (every hierarchy) by pid. With cloned_into true
 * the child was created in it by CLONE_INTO_CGROUP and only v1 hierarchies
 * (none on v2) still need a migration. The run itself uses
 * aidp_cgroup_task_fds() instead. */
int aidp_cgroup_attach(struct aidp_cgroup *cg, pid_t pid, bool cloned_into, aidp_error *err);
/* Charge what the calling process allocates from now on (the tmpfs pages it
 * writes: decrypted data) to the run: it moves, all its threads, into the
 * run's memory cgroup (v1: the memory hierarchy; v2: the run's cgroup). Pages
 * stay charged to the run after it leaves. *back_fd is the way back, for
 * _end, which moves it to where it was. Between the two the process counts
 * against the run's memory limit (check the data fits before). */
int aidp_cgroup_charge_begin(struct aidp_cgroup *cg, int *back_fd, aidp_error *err);
int aidp_cgroup_charge_end(int *back_fd);
/* What the run used. Fills what it can read and marks it in st->known;
 * returns 0 when every value was read, else < 0 with err naming the first
 * file that could not be (the other values are still filled). */
int aidp_cgroup_stats(struct aidp_cgroup *cg, struct aidp_cgroup_stats *st, aidp_error *err);
/* Kill every process in the cgroup and wait (bounded) until it is empty.
 * Returns 0 or -errno. */
int aidp_cgroup_kill(struct aidp_cgroup *cg);
/* Kill every process in the cgroup but `keep` (the sandbox's pid 1) and wait
 * (bounded) until only it is left. Returns 0 or -errno. */
int aidp_cgroup_kill_except(struct aidp_cgroup *cg, pid_t keep);
/* Kill, then remove the run's cgroups (and the parent if it became empty).
 * Frees cg. Returns 0 or -errno (cg is freed either way); -EIO too when the
 * v1 helper ended without its result: what it made is known only to the
 * intent log (cgroups.log), so the caller must leave that to gc. */
int aidp_cgroup_destroy(struct aidp_cgroup *cg, aidp_error *err);
/* Paths of the run's cgroup directories, for the run journal (gc) and the
 * end record: every directory the run made, those a failed finish already
 * removed included. */
size_t aidp_cgroup_paths(const struct aidp_cgroup *cg, const char **paths, size_t max);
enum aidp_cgroup_version aidp_cgroup_version_of(const struct aidp_cgroup *cg);
/* For a process that serves many runs (aidp-supervisor serve), before it
 * forks its workers: libcgroup's start-up done once (v1; each run's helper
 * inherits it), and the shared parents ("aidp") kept when a run ends instead
 * of removed and made again by the next run. From then on
 * aidp_cgroup_finish_start finishes on the spot, without a helper process:
 * with libcgroup started, the work is cheaper than forking the caller. 0 or
 * -errno. */
int aidp_cgroup_warm(void);
/* When such a process stops: the default shared parents it kept are removed
 * where they are empty (runs still going keep theirs; gc removes a parent it
 * empties). */
void aidp_cgroup_unwarm(void);
/* gc: kill every process of a cgroup directory but `keep`, waiting (bounded). */
int aidp_cgroup_path_kill_except(const char *path, pid_t keep);
/* gc: kill and remove a cgroup directory left by a dead supervisor. */
int aidp_cgroup_remove_path(const char *path);
/* gc: whether a missing path is really gone: its nearest existing ancestor is
 * on a cgroup filesystem. False when the hierarchy is not mounted where gc
 * runs (another mount namespace): the path may still exist there. */
bool aidp_cgroup_path_gone(const char *path);
