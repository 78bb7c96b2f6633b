#pragma once
/* The seccomp policy model: what a profile says, independent of libseccomp.
 * profiles/ builds it (YAML, Docker/OCI JSON import, the built-in baseline);
 * profiles/seccomp_compile.c turns it into BPF; supervisor/sandbox/seccomp_load.c loads it. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum aidp_sc_action {
        AIDP_SC_ALLOW,
        AIDP_SC_ERRNO, /* fail with .errno_ret */
        AIDP_SC_KILL_PROCESS,
        AIDP_SC_KILL_THREAD,
        AIDP_SC_TRAP,
        AIDP_SC_LOG,    /* allow and log (learn mode, audit) */
        AIDP_SC_NOTIFY, /* user notification (learn mode) */
        AIDP_SC_ACTION_MAX
};

enum aidp_sc_op {
        AIDP_SC_OP_EQ,
        AIDP_SC_OP_NE,
        AIDP_SC_OP_LT,
        AIDP_SC_OP_LE,
        AIDP_SC_OP_GT,
        AIDP_SC_OP_GE,
        AIDP_SC_OP_MASKED_EQ, /* (arg & value) == value2 */
        AIDP_SC_OP_MAX
};

struct aidp_sc_arg {
        unsigned index; /* 0..5 */
        enum aidp_sc_op op;
        uint64_t value;
        uint64_t value2;
};

struct aidp_sc_rule {
        char **names; /* syscall names, resolved for the native arch */
        size_t n_names;
        enum aidp_sc_action action;
        int errno_ret; /* for AIDP_SC_ERRNO */
        struct aidp_sc_arg *args;
        size_t n_args;
};

struct aidp_sc_policy {
        enum aidp_sc_action default_action;
        int default_errno; /* for AIDP_SC_ERRNO */
        struct aidp_sc_rule *rules;
        size_t n_rules;
        /* Non-native architectures (x32, i386 on x86_64) are always killed/denied,
         * whatever the policy says; there is no switch for it on purpose. */
};

/* The built-in baseline (denylist, default allow) that every run gets when no
 * profile says otherwise. Returns < 0 only on allocation failure. */
/* Dangerous syscalls (seccomp_policy.c): the baseline denies them all, lint
 * warns when a profile permits one. */
enum aidp_sc_danger {
        AIDP_SC_DANGER_ESCAPE, /* leave or reshape the sandbox, attack the kernel */
        AIDP_SC_DANGER_PTRACE, /* read or steer other processes' memory */
        AIDP_SC_DANGER_MAX
};
struct aidp_sc_dangerous {
        const char *name;
        enum aidp_sc_danger kind;
};
extern const struct aidp_sc_dangerous aidp_sc_dangerous[];
extern const size_t aidp_sc_n_dangerous;

int aidp_sc_policy_baseline(struct aidp_sc_policy *out);
void aidp_sc_policy_free(struct aidp_sc_policy *p);
/* Deep copy; returns < 0 on allocation failure. */
int aidp_sc_policy_copy(struct aidp_sc_policy *dst, const struct aidp_sc_policy *src);
/* Append a rule (deep copies names and args). */
int aidp_sc_policy_add(struct aidp_sc_policy *p, const struct aidp_sc_rule *r);
const char *aidp_sc_action_name(enum aidp_sc_action a);
/* Learn mode (aidp profile learn): every syscall the policy lets run notifies
 * (SCMP_ACT_NOTIFY) instead, its denials still hold, and the one sendmsg on
 * `sock` that hands the listener over is allowed, whatever the policy says about
 * sendmsg. Returns < 0 on allocation failure. */
int aidp_sc_policy_learn(struct aidp_sc_policy *p, int sock);
