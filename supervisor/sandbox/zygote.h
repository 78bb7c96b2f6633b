#pragma once
/* A pid 1 that shares no page with the worker (docs/run-core.md, "The
 * zygote"). A daemon's idle worker starts aidp-init, a small static program,
 * while it waits for its connection (aidp_zygote_make); at spawn the run
 * hands it the plan of pid 1 (codec/plan.h) and the fds pid 1 holds, and the
 * zygote clones pid 1 with CLONE_PARENT: pid 1 is the worker's child as
 * before (its SIGCHLD, wait4, the lifeline), but its page tables are copied
 * from a process of a few dozen pages instead of from the worker, and
 * nothing either side writes afterwards is a copy-on-write fault. pid 1 then
 * runs the same code (sandbox.c) in the same order. A worker without a
 * zygote (a direct `aidp-supervisor run`, no aidp-init beside the daemon's
 * binary, a zygote that died) clones pid 1 itself, as before. Like a set of
 * namespaces made ahead (nsready.h), a zygote serves one pid 1 at most.
 * A zygote of another build (AIDP_BUILD_ID, CMakeLists.txt: pid 1 runs
 * aidp-init's copy of this code) is never used: the worker clones pid 1. */
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "supervisor/sandbox/sandbox.h"

/* The program's name, looked for beside the daemon's own binary. */
#define AIDP_ZYGOTE_PROGRAM "aidp-init"

/* How long the worker waits on a zygote, for each of: the plan handed over,
 * the answer, its exit after the answer. A zygote clones in well under a
 * millisecond; one that has not answered by then is stopped or stalled, and
 * is killed (SIGKILL, by its pid: the worker's own unreaped child). A stop
 * request (SIGINT, SIGTERM, SIGHUP, held pending by the run) ends every one
 * of these waits too. */
#define AIDP_ZYGOTE_DEADLINE_MS 3000

/* At the daemon's start: opens aidp-init beside /proc/self/exe once (O_PATH),
 * so that a file replaced on disk later is never what root runs, and only if
 * it is root's and writable by root alone. 0, or -errno (no zygotes then). */
int aidp_zygote_open_program(void);

/* In an idle worker: start a zygote (a zygote made before is dropped
 * first). 0, or -errno (the run then clones pid 1 itself). */
int aidp_zygote_make(void);

struct aidp_zygote {
        pid_t pid; /* -1: none */
        int sock;
};

/* Take the zygote made ahead, if any (false: none). */
bool aidp_zygote_take(struct aidp_zygote *z);
/* Kill and reap a zygote taken but not used (harmless when there is none). */
void aidp_zygote_drop(struct aidp_zygote *z);

/* What the clone enters and where it goes, beside pid 1's spec. */
struct aidp_zygote_clone {
        int cgroup_fd;        /* CLONE_INTO_CGROUP, or -1 */
        int net, ipc, uts;    /* namespaces made ahead (nsready.h), or -1 each */
        const sigset_t *mask; /* pid 1's signal mask */
        /* Called once the zygote has the whole plan, while it clones and
         * pid 1 builds its mounts, before its answer is waited for (the
         * caller's own work that needs no pid 1 yet), or NULL. */
        void (*while_cloning)(void *arg);
        void *arg;
};

/* Clone pid 1 through z, from spec. Returns pid 1's pid with *pidfd set; 0
 * when nothing was cloned and the zygote is gone (it died before taking the
 * plan, refused it, or did not take it whole before the deadline or a stop
 * request: then err says why, and the caller clones pid 1 itself); -1 with
 * err set when pid 1's clone failed or the zygote ended or stopped answering
 * after taking the plan (a pid 1 may then exist, in the run's cgroup, whose
 * kill at teardown takes it). The caller must therefore use a zygote only
 * with c->cgroup_fd >= 0: CLONE_INTO_CGROUP is what puts such a pid 1 where
 * teardown's kill and gc find it; without it, pid 1 is cloned by the worker
 * itself. The zygote is killed and reaped, but after a clone: it exits once
 * it has answered, and aidp_zygote_reap reaps it. */
pid_t aidp_zygote_clone_pid1(struct aidp_zygote *z, const struct aidp_sandbox_spec *spec,
                             const struct aidp_zygote_clone *c, int *pidfd, aidp_error *err);
/* Reap the zygote that cloned pid 1 (harmless when there is none); killed
 * first if it has not exited by the deadline or a stop request. */
void aidp_zygote_reap(struct aidp_zygote *z);

/* aidp-init's main: serve one plan on sock (fd 3), then exit. */
int aidp_zygote_main(int sock);
