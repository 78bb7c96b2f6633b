#pragma once
/* Private to supervisor/run/: the state of one run, shared by the files of its
 * phases. The step numbers are those of docs/run-core.md ("Lifecycle"), which
 * are also the names AIDP_TIMING=1 prints:
 *   run.c       the phase list and its orchestration (aidp_run_execute)
 *   resolve.c   1 resolve
 *   startup.c   2 start-rec (lineage store, journal, cgroup), START (right
 *               after spawn's clone; on a daemon's zygote path from the end
 *               of start-rec) and 5 start-sync: every thread and helper
 *               process that overlaps start-up
 *   prepare.c   3 prepare (tmpfs mounts) and 6 inject
 *   spawn.c     4 spawn (pid 1)
 *   monitor.c   7 job (the go, signals, wall time)
 *   teardown.c  8 teardown (collect, kill, shred; after the status pid 1, cgroups), 10 finish
 *   run.c       9 end-rec */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "profiles/profile.h"
#include "profiles/seccomp_compile.h"
#include "supervisor/run/run_trust.h"
#include "supervisor/run/caller.h"
#include "supervisor/run/journal.h"
#include "supervisor/run/run.h"
#include "supervisor/run/run_lineage.h"
#include "supervisor/run/run_net.h"
#include "supervisor/run/run_policy.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "supervisor/sandbox/nspin.h"
#include "supervisor/sandbox/relay.h"
#include "supervisor/sandbox/sandbox.h"
#include "supervisor/sandbox/tmpfs.h"
#include "supervisor/sandbox/zygote.h"
#include "supervisor/sealed/inject.h"

/* Signals the supervisor takes over from the end of resolve until the run is
 * over; all but SIGCHLD are forwarded to the sandbox's pid 1, which passes them
 * to the job's process group. */
#define AIDP_RUN_N_HANDLED 8
extern const int aidp_run_handled[AIDP_RUN_N_HANDLED];

struct run {
        const struct aidp_run_opts *o;
        /* the key /out is sealed under: the policy's decision (docs/policy.md,
         * "Output key"), or --output-key-id when no input names one */
        char output_key[128];
        struct aidp_run_result *res;
        struct aidp_profile profile;
        bool profile_loaded;
        /* who asked (resolved once, for the job's identity, the policy and
         * lineage); caller_rc < 0: not resolvable, caller_err says why */
        struct aidp_caller_identity caller;
        int caller_rc;
        aidp_error caller_err;
        uid_t uid;
        gid_t gid;
        char cwd[4096];
        struct aidp_bpf bpf;
        struct aidp_cgroup *cg;
        struct aidp_tmpfs tmpfs[AIDP_SANDBOX_MAX_MOUNTS];
        size_t n_tmpfs;
        struct aidp_journal journal;
        bool journal_open;
        pid_t pid1;
        char nspin[4200]; /* the pin of pid 1's mount namespace, "" if none */
        bool unpinning;   /* a thread drops the pin (unpin_tid; teardown.c) */
        pthread_t unpin_tid;
        int pidfd;
        int learn_sv[2];     /* learn mode: the child sends the listener fd over [1] */
        char *dev_rules[64]; /* device cgroup allow lines of the profile's devices */
        const char *devices_allow[8 + 64 + 1]; /* the minimal /dev's lines, then dev_rules */
        struct aidp_cgroup_limits cg_limits;
        bool warm_thread; /* the warm-up thread runs (warm_tid) */
        pthread_t warm_tid;
        bool warm_busy;                    /* fault point busy-at-clone (startup.c) */
        atomic_bool warm_stop;             /* ... and its end */
        atomic_ulong warm_spins;           /* its rounds so far */
        unsigned long warm_spins_at_clone; /* ... when pid 1 was about to be cloned */
        size_t n_cg_journaled;             /* cgroup directories already in the journal */
        bool start_thread;                 /* START is written on start_tid (startup.c) */
        bool start_begun;                  /* START's thread was started (or START written) */
        pthread_t start_tid;
        int start_rc; /* ... its result, and why it failed (kept once joined) */
        aidp_error start_err;
        /* The worker's zygote, taken at the end of start-rec, and the run's
         * cgroup2 fd opened then for its clone (-1: none): with both, START
         * is begun before the plan (startup.c, aidp_run_start_early). */
        struct aidp_zygote zyg;
        int cgfd;
        char **env;
        size_t n_env;
        struct timespec t0;
        struct timespec job_end; /* when pid 1 reported the job's end (0: not yet) */
        struct aidp_run_lineage rl;
        struct aidp_inject inject;
        struct aidp_run_caller_paths cp; /* a user caller's paths, opened as the caller */
        struct aidp_run_policy policy;
        /* resolve refused the run for its sealed inputs themselves (117: a
         * header or manifest that does not authenticate, another key, a
         * truncated file): recorded in lineage as a refusal (run.c) */
        bool inputs_refused;
        aidp_error collect_err;
        bool collect_failed;
        int sync_w, err_r, status_r, life_w; /* the supervisor's ends of the sandbox pipes */
        struct aidp_relay relay[2];          /* the job's stdout and stderr (sandbox/relay.h) */
        char **host_sockets; /* the host's pathname unix sockets (sandbox/hostsock.h) */
        size_t n_host_sockets;
        int host_sockets_listed; /* 1 listed, < 0 -errno of the listing, 0 not yet */
        struct aidp_run_net net; /* egress (docs/egress.md) */
};

/* The supervisor's hold on the signals it handles, from the moment anything of a
 * run may exist (its cgroup) until the run is over (monitor.c). */
struct aidp_run_signal_hold {
        sigset_t set, old;
        struct sigaction saved[AIDP_RUN_N_HANDLED], saved_pipe;
};

/* The pipes between the supervisor and pid 1 (spawn.c, monitor.c). */
struct aidp_run_fds {
        int sync[2], err[2], status[2], life[2];
};

/* Close *fd if open and mark it closed. */
static inline void aidp_run_close(int *fd)
{
        if (*fd >= 0) {
                close(*fd);
                *fd = -1;
        }
}

/* run.c */
void aidp_run_phase(struct run *r, const char *name);
void aidp_run_fault_point(const char *where);
/* A stop request (SIGINT, SIGTERM, SIGHUP) pending: the run ends before the job. */
int aidp_run_check_interrupted(aidp_error *err);
bool aidp_run_fault_fail(const char *where);

/* resolve.c: 1 */
int aidp_run_resolve(struct run *r, aidp_error *err);

/* startup.c: 2 and 5 */
void aidp_run_warm_begin(struct run *r);
void aidp_run_warm_end(struct run *r);
void aidp_run_warm_stop(struct run *r);
int aidp_run_startup_begin(struct run *r, aidp_error *err);
void aidp_run_start_early(struct run *r);
void aidp_run_start_fault_planned(struct run *r);
int aidp_run_start_before_clone(struct run *r, aidp_error *err);
int aidp_run_start_record(struct run *r, aidp_error *err);
void aidp_run_start_late(struct run *r, aidp_error *err);
int aidp_run_startup_commit(struct run *r, aidp_error *err);
void aidp_run_startup_abort(struct run *r, aidp_error *err);
int aidp_run_cgroup_end(struct run *r, aidp_error *err);
void aidp_run_journal_cgroups(struct run *r);

/* prepare.c: 3 and 6 */
int aidp_run_prepare(struct run *r, aidp_error *err);
/* Refuse (before anything is decrypted) inputs that cannot fit the run's memory. */
int aidp_run_check_data_fits(struct run *r, aidp_error *err);
/* Where a tmpfs of the run is mounted in the sandbox ("/scratch", "/dev/shm"). */
const char *aidp_run_tmpfs_target(const struct run *r, const struct aidp_tmpfs *t);
int aidp_run_inject(struct run *r, aidp_error *err);

/* spawn.c: 4 */
int aidp_run_spawn(struct run *r, const sigset_t *oldmask, aidp_error *err);
int aidp_run_child_failure(const struct aidp_sandbox_report *rep, aidp_error *err);

/* monitor.c: 7 */
int aidp_run_start_and_monitor(struct run *r, aidp_error *err);
/* A stop request that came with the job's death is the run's stop: before the
 * end record, waits out what is left of AIDP_RUN_STOP_WINDOW_MS after the job
 * died of a signal (or pid 1 died) for the supervisor's own SIGTERM, SIGINT,
 * SIGHUP or SIGQUIT, and takes one still pending in any case (monitor.c). */
#define AIDP_RUN_STOP_WINDOW_MS 1000
void aidp_run_late_stop(struct run *r);
void aidp_run_signals_take(struct aidp_run_signal_hold *h);
void aidp_run_signals_release(struct aidp_run_signal_hold *h);

/* hidden.c: paths the sandbox hides, named with the bind that shows them
 * (lexical; nothing the caller names is opened) */
bool aidp_run_hidden_path(const struct run *r, const char *path, bool is_dir, char *hint,
                          size_t size);
/* A user's bind (profile.binds from first_cli_bind on) whose target, or the
 * working directory bound at its own path, is at or below a path the profile
 * masks: the mask would hide it from the job, silently. 0, or -1 with err
 * (usage, 120) naming both. The profile's own binds are the admin's. */
int aidp_run_check_masked_binds(const struct run *r, size_t first_cli_bind, aidp_error *err);
bool aidp_run_hidden_scan(const struct run *r, bool words, char *hint, size_t size);

/* teardown.c: 8 and 10 */
int aidp_run_teardown(struct run *r, aidp_error *err);
int aidp_run_teardown_release(struct run *r, aidp_error *err);
void aidp_run_journal_finish(struct run *r, bool done);
size_t aidp_run_removed_list(struct run *r, char **out, size_t max);
