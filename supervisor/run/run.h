#pragma once
/* One run, start to end (docs/run-core.md, "Lifecycle"): 1 resolve, 2 start-rec,
 * 3 prepare, 4 spawn, 5 start-sync, 6 inject, 7 job, 8 teardown (collect, shred),
 * 9 end-rec, 10 finish. Once START is written every exit goes through teardown. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "netpolicy/netpolicy.h"
#include "profiles/profile.h"
#include "supervisor/sealed/inject.h"
#include "supervisor/sandbox/shred.h"

struct json_object;

struct aidp_run_bind {
        const char *source; /* host path */
        const char *target; /* path inside; NULL = source */
        bool writable;
};

/* A request through the daemon (supervisor/daemon, docs/protocol.md): the
 * caller as the kernel identified it and the files it opened itself, as fds.
 * With it the run never opens a path the caller names: the paths in
 * data/binds/cwd/output_dir are labels (lineage, messages, bind targets). The
 * fds stay the caller's; the run takes its own copies. */
/* What a daemon's root client is told to run instead (README: root runs a
 * job for a user with the supervisor itself; the daemon judges root as any
 * user who connects). */
#define AIDP_RUN_AS_ROOT_HINT "aidp-supervisor run --user USER directly, not aidp-run"

struct aidp_run_peer {
        uid_t uid; /* SO_PEERCRED */
        gid_t gid;
        const gid_t *groups; /* supplementary, from /proc (peer.h) */
        size_t n_groups;
        char *const *env;    /* the client's environment, filtered as root's would be */
        const int *data_fds; /* one per --data */
        const int *bind_fds; /* one per --ro-bind/--bind */
        int cwd_fd;          /* the working directory (--cwd), or -1 */
        int output_dir_fd;   /* --output-dir, or -1 */
        /* How the client's user named what the run's messages name, where
         * the client spells it otherwise than run (docs/protocol.md,
         * "labels"): aidp-run's "--out" for --output-dir, "the working
         * directory" for the --cwd it added itself. NULL: run's own. */
        const char *output_dir_label, *cwd_label;
};

struct aidp_run_result;
struct aidp_run_opts;

/* --output-dir and the working directory as the caller named them, for
 * messages (aidp_run_peer's labels; run's own otherwise). */
const char *aidp_run_output_dir_label(const struct aidp_run_opts *o);
const char *aidp_run_cwd_label(const struct aidp_run_opts *o);

struct aidp_run_opts {
        const char *profile;               /* name or path; NULL = built-in defaults */
        const char *job_name;              /* lineage's job.name; NULL = the profile's name */
        const char *user;                  /* --user NAME|UID[:GID] */
        char **argv;                       /* the job */
        const char *cwd;                   /* NULL = the caller's */
        const struct aidp_run_bind *binds; /* --ro-bind / --bind, after the profile's */
        size_t n_binds;
        bool no_cwd; /* do not bind the working directory */
        /* CLI overrides of the profile (0 = keep the profile's) */
        uint64_t memory_bytes, cpu_millis, pids, timeout_seconds, tmp_bytes;
        uint64_t scratch_bytes, out_bytes, shm_bytes;  /* tmpfs sizes (docs/profiles.md) */
        struct aidp_rlimit rlimits[AIDP_RLIMIT_SLOTS]; /* --rlimit overrides (.set) */
        unsigned kill_after; /* seconds between SIGTERM and SIGKILL; 0 = the profile's */
        const char *cgroup_parent;
        const char *run_dir;      /* journals; NULL = $AIDP_RUN_DIR or /run/aidp */
        const char *run_id;       /* NULL = scheduler's or a new UUID */
        const char *summary_path; /* --summary FILE: machine-readable result */
        /* Exec-hook mode (docs/exec-hook.md): the scheduler that started this run
         * and its job and step ids, recorded in lineage as the `parent` facet. */
        const char *scheduler, *scheduler_job, *scheduler_step;
        char **env_extra; /* --env NAME[=VALUE] */
        size_t n_env_extra;
        bool keep_env;
        bool quiet;
        const char *const *data; /* --data FILE.sealed (sealed-data layer) */
        size_t n_data;
        const char *output_dir;    /* --output-dir DIR: /out is sealed there */
        const char *output_key_id; /* key for the sealed /out; NULL = first input's */
        const char *keys_config;   /* key provider config; NULL = default/env */
        const char *key_dir;       /* file provider key directory override */
        const char *lineage_path;  /* NULL = default */
        /* The caller is a user (sudo), not an admin (docs/security.md): its
         * profile must be a library one, its limits may only go down, and
         * every path it names is opened with its own credentials. */
        bool as_user;
        /* Exec-hook mode (docs/exec-hook.md): root acts for --user, so the
         * working directory is opened with --user's credentials too. */
        bool exec_hook;
        const struct aidp_run_peer *peer; /* a daemon request (implies as_user) */
        /* --dry-run: resolve only (nothing is created or recorded) and return
         * here the START record the run would write, with the policy decision
         * and its reasons, also when the decision is a denial (the caller puts
         * it; NULL when resolve failed before a decision). */
        struct json_object **plan;
        /* and with it the policy decision for people (run_plan.h; NULL when
         * no policy decided the run) */
        char **plan_policy;
        /* learn mode (profiles): load the filter with this flag and report
         * every syscall through the callback */
        unsigned seccomp_flags;
        int (*on_notify_fd)(int fd, void *arg);
        void *notify_arg;
        /* Called once the run is over and on record (its end record durable,
         * its journal gone), with the run's outcome (rc < 0: err), before
         * what is left of the process's own clean-up: the daemon tells its
         * client here. May be NULL; not called for a run refused before its
         * START record. */
        void (*on_ended)(const struct aidp_run_result *res, int rc, const aidp_error *err,
                         void *arg);
        void *ended_arg;
};

/* One tmpfs of the run, as shred found and left it. */
#define AIDP_RUN_MAX_MOUNTS 8
struct aidp_run_mount {
        char target[128];    /* where the job saw it: "/scratch", "/dev/shm" */
        char label[16];      /* "tmp", "scratch", "out", "shm", "data" */
        uint64_t size_bytes; /* its limit */
        uint64_t used_bytes; /* what it held when the job was over */
        uint64_t files, bytes;
        bool verified, noswap;
        bool full; /* no block or inode left: a write will have failed (ENOSPC) */
};

struct aidp_run_result {
        char run_id[64];
        int exit_status; /* what aidp-supervisor exits with */
        int job_status;  /* the job's own status (128+N), -1 if it never ran */
        bool timed_out, oom_killed, started;
        /* the access policy's last time window closed while the job ran: it was
         * stopped (docs/policy.md, "Time windows") */
        bool access_expired;
        char access_rule[128]; /* the role whose window closed */
        /* enforcement: audit: what the policy decided and was not enforced ("" none) */
        char policy_audit[768];
        int stop_signal; /* SIGTERM/SIGINT/SIGHUP/SIGQUIT the supervisor was stopped with
                          * while the job ran (scancel, Ctrl-C); 0 if none */
        /* why the job was killed instead of left to end: "kill-after" (the
         * grace after a stop or the wall time ran out), "second stop request";
         * NULL when it was not */
        const char *killed_why;
        uint64_t kill_after_seconds; /* that grace */
        uint64_t oom_kills;          /* processes the memory limit killed (the job's or a child) */
        /* no --output-dir: what /out held when the run ended, shredded unkept */
        bool out_discarded;
        uint64_t out_discarded_bytes, out_discarded_files;
        uint64_t memory_peak_bytes, cpu_usec;
        /* false: the cgroup could not tell (resources_error says why); the
         * value is then reported unknown, never as 0 */
        bool memory_peak_known, cpu_known;
        char resources_error[256];
        double wall_seconds;
        struct aidp_shred_report shred;
        struct aidp_run_mount mounts[AIDP_RUN_MAX_MOUNTS]; /* per tmpfs, in shred's order */
        size_t n_mounts;
        const char *shredded_by; /* who overwrote the tmpfs: "supervisor" */
        /* the run's memory in parts (its cgroup pays for all of them): the
         * decrypted inputs in /data, the writable tmpfs mounts, and the
         * processes' peak (the cgroup's peak less the tmpfs pages) */
        uint64_t data_memory_bytes, tmpfs_memory_bytes, process_memory_peak_bytes;
        bool noswap; /* tmpfs noswap was available */
        /* Whether the job's own memory (its heap, its copies of /data) could
         * reach swap: "off" (its cgroup allows none), "no-device" (it could,
         * but the host had no swap active at the end), "possible"; NULL:
         * unknown (the cgroup's files could not be read). */
        const char *job_swap;
        char cgroup_version[4];
        /* egress (docs/egress.md): the run's network and what it refused */
        bool egress;
        char egress_addr[16]; /* the sandbox end's IPv4 address */
        struct aidp_np_denials denials;
        /* sealed data: authenticated inputs (headers, digests) and the sealed /out */
        struct aidp_run_dataset inputs[AIDP_RUN_MAX_DATA];
        size_t n_inputs;
        struct aidp_run_dataset output;
        bool has_output;
        /* The output leak scan of /out before it was sealed (docs/sealed-data.md,
         * "Output leak scan"): done when the inputs' views hid values; a hit
         * under a quarantine policy sealed /out under the admin-only key and
         * the run failed (leak_reason says "output leak scan: N hits"). */
        bool leak_scanned, leak_quarantined;
        const char *leak_action; /* "report" | "quarantine" */
        struct aidp_leak_report leak;
        uint64_t leak_values, leak_dropped;
        char leak_key[AIDP_SEALED_KEY_ID_MAX + 1]; /* the quarantine key */
        char leak_reason[64];
        /* The job is not root's own (a user caller, or --user): where a hit
         * was, and how many, is for lineage alone. Offsets, files, columns
         * and counts in what the user reads would tell which of the values
         * the job wrote is one its view hides: an oracle for them
         * (docs/sealed-data.md, "What the user is told"). */
        bool leak_private;
};

/* The library profile of a run without --profile (profiles/baseline.yaml). */
#define AIDP_DEFAULT_PROFILE "baseline"

/* A run id's rule (checked before anything happens, and again by resolve):
 * 1-63 of A-Z a-z 0-9 - _ ., a letter or digit first (the sealed output's
 * name "<id>-out" must be valid). */
#define AIDP_RUN_ID_RULE "expected 1-63 of A-Z a-z 0-9 - _ ., starting with a letter or digit"
bool aidp_run_id_valid(const char *id);
int aidp_run_execute(const struct aidp_run_opts *o, struct aidp_run_result *res, aidp_error *err);

/* Clean up runs whose supervisor is gone. Returns the number of runs cleaned
 * (>= 0) or < 0. Reports go to the callback (may be NULL). */
int aidp_run_gc(const char *run_dir,
                void (*report)(const char *run_id, const char *what, void *arg), void *arg,
                aidp_error *err);
