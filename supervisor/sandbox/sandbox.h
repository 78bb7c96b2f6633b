#pragma once
/* The child side of a run: everything between clone() and execve().
 *
 * The supervisor decides everything first (profile, uid, BPF, tmpfs fds) and
 * fills an aidp_sandbox_spec; the child only turns it into syscalls. There is
 * no recovery in the child: a failure is reported over err_fd as an
 * aidp_sandbox_report and the child exits. */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "profiles/profile.h"
#include "supervisor/sandbox/seccomp_load.h"

#define AIDP_SANDBOX_MAX_MOUNTS 8

enum aidp_sandbox_stage {
        AIDP_STAGE_SYNC,
        AIDP_STAGE_NAMESPACES,
        AIDP_STAGE_NETWORK,
        AIDP_STAGE_MOUNTS,
        AIDP_STAGE_PIVOT,
        AIDP_STAGE_CREDENTIALS,
        AIDP_STAGE_RLIMITS,
        AIDP_STAGE_SECCOMP,
        AIDP_STAGE_EXEC,
        AIDP_STAGE_INIT,
        AIDP_STAGE_CGROUP,
        AIDP_STAGE_CWD, /* entering the working directory, just before the exec */
        AIDP_STAGE_MAX
};

/* Written by the child over err_fd when a step fails. */
struct aidp_sandbox_report {
        int32_t stage; /* enum aidp_sandbox_stage */
        int32_t errnum;
        char what[240]; /* the path or item that failed */
};

/* A detached tmpfs to place inside the sandbox. */
struct aidp_sandbox_mount {
        int fd;             /* the supervisor's mount fd; the child clones it */
        const char *target; /* "/tmp", "/data", ... */
        bool readonly;
};

#define AIDP_SANDBOX_MAX_GROUPS 256

struct aidp_sandbox_spec {
        char *const *argv;
        char *const *envp;
        const char *cwd; /* working directory inside; bound RO if bind_cwd */
        bool bind_cwd;
        uid_t uid;
        gid_t gid;
        gid_t groups[AIDP_SANDBOX_MAX_GROUPS]; /* supplementary groups (the job user's) */
        size_t n_groups;
        const char *hostname;
        const struct aidp_profile *profile; /* binds, masks, devices, rlimits */
        uint64_t caps; /* capabilities kept, by number (bit n: capability n; creds.h) */
        const struct aidp_bpf *bpf; /* loaded last, right before execve */
        /* Detached trees (open_tree clones made by the supervisor from fds
         * its caller opened, ascaller.c) to bind instead of resolving a path
         * as root: one per profile bind (-1: the path, a library profile's
         * own), and the working directory when has_cwd_tree. */
        const int *bind_tree_fds;
        int cwd_tree_fd;
        bool has_cwd_tree;
        struct aidp_sandbox_mount mounts[AIDP_SANDBOX_MAX_MOUNTS];
        size_t n_mounts;
        /* SOCK_SEQPACKET: the host's pathname unix sockets, to cover where
         * the view shows them (hostsock.h), then the go (one byte) carrying
         * the v1 "tasks" fds */
        int sync_fd;
        int err_fd;               /* write end, O_CLOEXEC: closed by a successful execve */
        int lifeline_fd;          /* read end; EOF = the supervisor died (see init_loop) */
        int stdin_fd;             /* > 2: the job's stdin (/dev/null), else fd 0 is kept */
        int stdout_fd, stderr_fd; /* > 2: the job's stdout/stderr (the output relay), else kept */
        int status_fd;            /* write end: pid 1 writes the job's status (int32) here */
        unsigned seccomp_flags;   /* extra SECCOMP_FILTER_FLAG_* (learn mode) */
        int notify_fd_out;        /* learn mode: socket to send the listener fd over, or -1 */
        int resolv_tree_fd;       /* egress: a detached file mount for /etc/resolv.conf, or -1 */
};

/* Runs in the cloned child (pid 1 of the new pid namespace). Never returns.
 * It may be cloned while other supervisor threads run (START's fsync): it uses
 * no glibc call that involves other threads or their locks (no fork, no
 * setuid wrappers; see drop_credentials). */
__attribute__((noreturn)) void aidp_sandbox_child(const struct aidp_sandbox_spec *s);
const char *aidp_sandbox_stage_name(enum aidp_sandbox_stage st);

/* Sent by the supervisor to pid 1: kill every other process of the sandbox
 * (timeout, second stop request). pid 1 stays, holding the tmpfs mounts until
 * they are shredded. */
#define AIDP_SIG_KILL_JOB (SIGRTMIN + 2)

/* The masked paths every run gets, NULL-terminated (for docs and tests). */
extern const char *const aidp_sandbox_masked_paths[];

/* In pid 1, before anything else: close every fd the spec does not name
 * (sandbox_fds.c). Async-signal-safe: no allocation, no locks. */
void aidp_sandbox_close_unlisted(const struct aidp_sandbox_spec *s);
