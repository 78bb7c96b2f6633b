#pragma once
/* Ready-made cgroups (aidp-supervisor serve): an idle worker makes the
 * cgroup of the run it will serve while it waits for its connection, so that
 * the run only writes its limits (docs/run-core.md, "Start-up time").
 *
 * The cgroup is named after a fresh run id, which the run then takes (unless
 * it was given one): gc and the journal find a run's cgroups by that name.
 * Until a run takes it over, a record in <run dir>/.ready/<id>/ (cgroups.log,
 * each directory logged before it is made) names it, locked (flock) by the
 * process that holds the cgroup. A record nobody holds is gc's: its cgroups
 * are removed where they are empty (a ready cgroup never held a process; one
 * that a run took over is its journal's). Every ready cgroup is used at most
 * once: a run never gets a cgroup another run used. */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct aidp_cgroup;

/* In an idle worker: make this process's ready cgroup, recorded under
 * run_dir (NULL: the default run directory), and first remove those of
 * records nobody holds any more. Best effort: without one, the run makes its
 * cgroup as usual. */
void aidp_run_cgready_make(const char *run_dir);
/* The run id the ready cgroup is named after (false: none held). */
bool aidp_run_cgready_id(char *out, size_t len);
/* The ready cgroup for the run run_id under parent (NULL or "": the
 * default), taken out of the holder; NULL when there is none that fits (an
 * unfit one is removed). The caller adopts it (aidp_cgroup_adopt), logging
 * it in its journal, and calls aidp_run_cgready_release once its run is over
 * (the record, held until then, and the journal both name the cgroup meanwhile). */
struct aidp_cgroup *aidp_run_cgready_take(const char *run_id, const char *parent);
/* The ready record goes: the run's journal names the cgroup now. */
void aidp_run_cgready_release(void);
/* A ready cgroup no run took: removed, with its record. */
void aidp_run_cgready_drop(void);
/* gc: the cgroups of records nobody holds, removed where they are empty, and
 * the records of those that are gone. Waits up to wait_ms for records still
 * held by idle workers (0: none are waited for; a held record whose cgroup
 * holds a process is a live run's, never waited for). Returns how many
 * records were removed. */
int aidp_run_cgready_gc(const char *run_dir, int wait_ms);
/* Ready cgroups that nothing names any more (their record went with a run
 * directory deleted after its daemon was killed): each carries its maker's
 * pid, start time and pid namespace and its run directory (path, dev:ino) on
 * itself (a trusted xattr, cgroup.h); those of run_dir (NULL: the default),
 * or of a run directory that no longer exists (or is another inode now),
 * whose maker is gone are removed where they are empty, in every hierarchy,
 * wherever their parent is. Another instance's (its run directory there), a
 * live worker's (its maker alive), a live run's (a process in it; a run's
 * own cgroup loses its mark when it adopts it) and anyone else's (unmarked)
 * are left; directories not owned by root (delegated subtrees) are not
 * entered. A walk of the cgroup tree: at a daemon's start and an explicit
 * gc. report (or NULL) is told each path removed. Returns how many were. */
int aidp_run_cgready_sweep(const char *run_dir, void (*report)(const char *path, void *arg),
                           void *arg);
/* The mark naming pid (alive, in this pid namespace) as a ready cgroup's
 * maker, for run_dir (NULL: the default; it must exist, by an absolute
 * path): "PID STARTTIME PIDNS DEV:INO RUNDIR". 0, or -1 when pid's start
 * time or the run directory cannot be read. */
#define AIDP_CGREADY_MARK_MAX (PATH_MAX + 96)
int aidp_run_cgready_mark(pid_t pid, const char *run_dir, char *out, size_t len);
