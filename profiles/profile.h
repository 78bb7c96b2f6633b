#pragma once
/* The effective sandbox profile: what the supervisor enforces for one run.
 *
 * profiles/ fills it (defaults, YAML with `extends`, CLI overrides); the
 * supervisor only reads it. Every field has a safe default set by
 * aidp_profile_init_defaults(). Sizes are bytes, times are seconds, cpu is in
 * millicpus (1000 = one full cpu), 0 means "no limit" only where noted. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "profiles/seccomp_policy.h"

#define AIDP_RLIMIT_SLOTS 16 /* indexes are RLIMIT_* values (< RLIM_NLIMITS) */

struct aidp_rlimit {
        bool set;
        uint64_t soft, hard; /* UINT64_MAX = unlimited */
};

struct aidp_limits {
        uint64_t memory_bytes;       /* cgroup memory limit; 0 = none (lint warns) */
        uint64_t cpu_millis;         /* cpu quota; 0 = none */
        uint64_t pids;               /* pids limit; 0 = none */
        uint64_t wall_seconds;       /* 0 = none */
        uint64_t kill_after_seconds; /* a stop's grace: SIGTERM, then SIGKILL after this */
        uint64_t tmp_bytes;          /* /tmp tmpfs size; also /dev/shm's unless shm_bytes */
        uint64_t shm_bytes;          /* /dev/shm tmpfs size; 0 = as /tmp */
        uint64_t scratch_bytes;      /* /scratch tmpfs size */
        uint64_t out_bytes;          /* /out tmpfs size */
        uint64_t data_bytes;         /* /data tmpfs size; 0 = sized from the inputs */
        struct aidp_rlimit rlimits[AIDP_RLIMIT_SLOTS];
};

struct aidp_bind {
        char *source; /* host path */
        char *target; /* path inside the sandbox; defaults to source */
        bool writable;
};

struct aidp_device {
        char *path;    /* e.g. /dev/nvidia0; may be a glob in YAML, expanded */
        bool optional; /* missing on this host: dropped, not an error */
};

enum aidp_user_mode {
        AIDP_USER_CALLER, /* --user, else SUDO_UID/GID, else the scheduler's, else default */
        AIDP_USER_FIXED,  /* uid/gid below */
        AIDP_USER_MODE_MAX
};

struct aidp_user_policy {
        enum aidp_user_mode mode;
        uid_t uid;
        gid_t gid;
        uid_t default_uid; /* unprivileged fallback (65534 nobody) */
        gid_t default_gid;
        bool allow_root; /* never by default; uid 0 inside is refused */
};

enum aidp_net_mode {
        AIDP_NET_NONE,   /* loopback only */
        AIDP_NET_EGRESS, /* veth + egress allowlist */
        AIDP_NET_MODE_MAX
};

struct aidp_egress_rule {
        char *cidr;                  /* "10.0.0.0/8", "2001:db8::/32"; NULL if fqdn */
        char *fqdn;                  /* "pypi.internal.example"; NULL if cidr */
        char *region;                /* region tag the destination lies in; may be NULL */
        uint16_t port_min, port_max; /* 0,0 = any port */
        int protocol;                /* IPPROTO_TCP, IPPROTO_UDP, 0 = both */
};

struct aidp_network {
        enum aidp_net_mode mode;
        struct aidp_egress_rule *rules;
        size_t n_rules;
};

struct aidp_data_paths {
        char *data;    /* default /data */
        char *scratch; /* default /scratch */
        char *out;     /* default /out */
};

struct aidp_profile {
        char *name;               /* metadata.name, "default" for the built-in */
        char *source;             /* file it came from, NULL for the built-in */
        unsigned char digest[32]; /* SHA-256 over the effective profile (for lineage) */
        struct aidp_limits limits;
        struct aidp_bind *binds;
        size_t n_binds;
        char **masked; /* extra masked paths */
        size_t n_masked;
        struct aidp_device *devices;
        size_t n_devices;
        struct aidp_user_policy user;
        char **capabilities; /* capability names to keep; empty by default */
        size_t n_capabilities;
        struct aidp_sc_policy seccomp;
        struct aidp_network network;
        struct aidp_data_paths paths;
        bool bind_cwd; /* bind the caller's cwd read-only at the same path */
        /* Provenance, for explain and lineage; not enforced. */
        char *description; /* metadata.description, may be NULL */
        char **layers;     /* every profile merged, parents first, the loaded one last */
        size_t n_layers;
        char *seccomp_import; /* OCI/Docker seccomp JSON the policy came from, or NULL */
};

/* The safe defaults: 4 GiB memory, 2 cpus, 1024 pids, no wall limit, /tmp
 * 256 MiB, /scratch 1 GiB, /out 1 GiB, core 0, uid policy CALLER with
 * nobody as the fallback, no capabilities, the baseline seccomp filter,
 * network none, cwd bound read-only. Returns < 0 only on allocation failure. */
int aidp_profile_init_defaults(struct aidp_profile *p);
void aidp_profile_free(struct aidp_profile *p);
/* The size of /dev/shm: its own, else /tmp's. */
static inline uint64_t aidp_profile_shm_bytes(const struct aidp_profile *p)
{
        return p->limits.shm_bytes ? p->limits.shm_bytes : p->limits.tmp_bytes;
}
