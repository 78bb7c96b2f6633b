#pragma once
/* The plan a daemon's worker hands its zygote (docs/run-core.md, "A pid 1
 * that shares no page with the worker"): everything the sandbox's pid 1
 * needs, as bytes, so that pid 1 can be cloned from a small exec'd process
 * (aidp-init) instead of from the worker. Pure: no system calls; the fds
 * themselves travel beside the bytes (SCM_RIGHTS), in the order of fds[],
 * and the zygote places each at the number fds[] names (the worker's own:
 * the journal names the tmpfs fds by number for gc).
 *
 * Every count and length is bounded, every fd field must name an entry of
 * fds[] (or be -1), and the decoder refuses anything else with an error
 * naming the field. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "profiles/profile.h"
#include "profiles/seccomp_compile.h"

#define AIDP_PLAN_MAGIC       0x4e4c5041u /* "APLN" */
#define AIDP_PLAN_VERSION     1u
#define AIDP_PLAN_MAX_BYTES   (32u << 20) /* argv and envp are most of it */
#define AIDP_PLAN_MAX_STRINGS 65536u      /* argv, envp each */
#define AIDP_PLAN_MAX_STRING  (1u << 20)  /* one argument or variable */
#define AIDP_PLAN_MAX_PATH    4096u       /* paths, hostname: PATH_MAX */
#define AIDP_PLAN_MAX_GROUPS  256u        /* AIDP_SANDBOX_MAX_GROUPS */
#define AIDP_PLAN_MAX_ITEMS   1024u       /* binds, masks, devices each */
#define AIDP_PLAN_MAX_INSNS   4096u       /* BPF_MAXINSNS */
#define AIDP_PLAN_MAX_MOUNTS  8u          /* AIDP_SANDBOX_MAX_MOUNTS */
#define AIDP_PLAN_MAX_FDS     200u        /* below SCM_MAX_FD (253) */
#define AIDP_PLAN_MAX_FD      65535       /* a placed fd's highest number */

struct aidp_plan_mount {
        int32_t fd;
        char *target;
        bool readonly;
};

struct aidp_plan {
        /* the job */
        char **argv; /* argc entries and a NULL */
        size_t argc;
        char **envp; /* envc entries and a NULL */
        size_t envc;
        char *cwd; /* NULL: none */
        bool bind_cwd;
        uint32_t uid, gid;
        uint32_t groups[AIDP_PLAN_MAX_GROUPS];
        size_t n_groups;
        char *hostname;   /* NULL: none */
        uint64_t caps;    /* capability numbers kept (bit n: capability n) */
        uint64_t sigmask; /* signals 1..64 blocked when pid 1 starts (bit n-1) */
        /* the profile's part pid 1 reads: binds, masked, devices, rlimits */
        bool has_profile;
        struct aidp_profile profile;
        struct aidp_bpf bpf;
        uint32_t seccomp_flags;
        struct aidp_plan_mount mounts[AIDP_PLAN_MAX_MOUNTS];
        size_t n_mounts;
        /* pid 1's fds, by number (-1: none) */
        int32_t sync_fd, err_fd, lifeline_fd, status_fd;
        int32_t stdin_fd, stdout_fd, stderr_fd;
        int32_t notify_fd_out, resolv_tree_fd, cwd_tree_fd;
        bool has_cwd_tree;
        int32_t *bind_tree_fds; /* profile.n_binds entries, or NULL */
        /* the zygote's: the clone and what it enters first */
        uint64_t clone_flags; /* CLONE_NEW* the clone itself makes */
        int32_t cgroup_fd, net_fd, ipc_fd, uts_fd;
        /* the fds sent beside the bytes, in order: each placed at fds[i] */
        int32_t fds[AIDP_PLAN_MAX_FDS];
        size_t n_fds;
        /* decoded plans own their memory (aidp_plan_free) */
        void *own;
};

/* The bytes of p in *out (malloc'ed, *len long). 0, or -1 with err naming
 * the field that is out of bounds (the worker then clones pid 1 itself). */
int aidp_plan_encode(const struct aidp_plan *p, uint8_t **out, size_t *len, aidp_error *err);
/* A plan from len bytes: 0 with *p filled (aidp_plan_free it), or -1 with err
 * naming the field and *p holding nothing. */
int aidp_plan_decode(const uint8_t *buf, size_t len, struct aidp_plan *p, aidp_error *err);
void aidp_plan_free(struct aidp_plan *p);
