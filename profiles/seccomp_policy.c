#include "profiles/seccomp_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

/* The one list of dangerous syscalls: those that let a job leave or reshape
 * its sandbox, reach into other processes or the kernel, or change
 * host-global state. The built-in baseline denies every one of them, and
 * `profile lint` warns when a profile permits one, so what the linter calls
 * dangerous and what the default refuses cannot drift apart. With every
 * capability dropped most of these fail anyway; the filter makes the refusal
 * independent of capability bugs and shrinks the kernel attack surface (bpf,
 * perf_event_open, userfaultfd, io_uring are classic exploit vectors). */
const struct aidp_sc_dangerous aidp_sc_dangerous[] = {
        {"mount", AIDP_SC_DANGER_ESCAPE},
        {"umount2", AIDP_SC_DANGER_ESCAPE},
        {"pivot_root", AIDP_SC_DANGER_ESCAPE},
        {"chroot", AIDP_SC_DANGER_ESCAPE},
        {"unshare", AIDP_SC_DANGER_ESCAPE},
        {"setns", AIDP_SC_DANGER_ESCAPE},
        {"fsopen", AIDP_SC_DANGER_ESCAPE},
        {"fsconfig", AIDP_SC_DANGER_ESCAPE},
        {"fsmount", AIDP_SC_DANGER_ESCAPE},
        {"fspick", AIDP_SC_DANGER_ESCAPE},
        {"move_mount", AIDP_SC_DANGER_ESCAPE},
        {"open_tree", AIDP_SC_DANGER_ESCAPE},
        {"mount_setattr", AIDP_SC_DANGER_ESCAPE},
        {"ptrace", AIDP_SC_DANGER_PTRACE},
        {"process_vm_readv", AIDP_SC_DANGER_PTRACE},
        {"process_vm_writev", AIDP_SC_DANGER_PTRACE},
        {"kcmp", AIDP_SC_DANGER_PTRACE},
        {"pidfd_getfd", AIDP_SC_DANGER_PTRACE},
        {"process_madvise", AIDP_SC_DANGER_PTRACE},
        {"kexec_load", AIDP_SC_DANGER_ESCAPE},
        {"kexec_file_load", AIDP_SC_DANGER_ESCAPE},
        {"init_module", AIDP_SC_DANGER_ESCAPE},
        {"finit_module", AIDP_SC_DANGER_ESCAPE},
        {"delete_module", AIDP_SC_DANGER_ESCAPE},
        {"bpf", AIDP_SC_DANGER_ESCAPE},
        {"perf_event_open", AIDP_SC_DANGER_ESCAPE},
        {"userfaultfd", AIDP_SC_DANGER_ESCAPE},
        {"keyctl", AIDP_SC_DANGER_ESCAPE},
        {"add_key", AIDP_SC_DANGER_ESCAPE},
        {"request_key", AIDP_SC_DANGER_ESCAPE},
        {"open_by_handle_at", AIDP_SC_DANGER_ESCAPE},
        {"name_to_handle_at", AIDP_SC_DANGER_ESCAPE},
        {"reboot", AIDP_SC_DANGER_ESCAPE},
        {"swapon", AIDP_SC_DANGER_ESCAPE},
        {"swapoff", AIDP_SC_DANGER_ESCAPE},
        {"acct", AIDP_SC_DANGER_ESCAPE},
        {"settimeofday", AIDP_SC_DANGER_ESCAPE},
        {"clock_settime", AIDP_SC_DANGER_ESCAPE},
        {"clock_adjtime", AIDP_SC_DANGER_ESCAPE},
        {"adjtimex", AIDP_SC_DANGER_ESCAPE},
        {"quotactl", AIDP_SC_DANGER_ESCAPE},
        {"quotactl_fd", AIDP_SC_DANGER_ESCAPE},
        {"lookup_dcookie", AIDP_SC_DANGER_ESCAPE},
        {"nfsservctl", AIDP_SC_DANGER_ESCAPE},
        {"iopl", AIDP_SC_DANGER_ESCAPE},
        {"ioperm", AIDP_SC_DANGER_ESCAPE},
        {"syslog", AIDP_SC_DANGER_ESCAPE},
        {"vhangup", AIDP_SC_DANGER_ESCAPE},
        {"uselib", AIDP_SC_DANGER_ESCAPE},
        {"personality", AIDP_SC_DANGER_ESCAPE},
        {"io_uring_setup", AIDP_SC_DANGER_ESCAPE},
        {"io_uring_enter", AIDP_SC_DANGER_ESCAPE},
        {"io_uring_register", AIDP_SC_DANGER_ESCAPE},
        {"fanotify_init", AIDP_SC_DANGER_ESCAPE},
        {"sethostname", AIDP_SC_DANGER_ESCAPE},
        {"setdomainname", AIDP_SC_DANGER_ESCAPE},
};
const size_t aidp_sc_n_dangerous = ARRAY_SIZE(aidp_sc_dangerous);

const char *aidp_sc_action_name(enum aidp_sc_action a)
{
        switch (a) {
        case AIDP_SC_ALLOW: return "allow";
        case AIDP_SC_ERRNO: return "errno";
        case AIDP_SC_KILL_PROCESS: return "kill-process";
        case AIDP_SC_KILL_THREAD: return "kill-thread";
        case AIDP_SC_TRAP: return "trap";
        case AIDP_SC_LOG: return "log";
        case AIDP_SC_NOTIFY: return "notify";
        case AIDP_SC_ACTION_MAX: break;
        }
        return "?";
}

static void rule_free(struct aidp_sc_rule *r)
{
        for (size_t i = 0; i < r->n_names; i++)
                free(r->names[i]);
        free(r->names);
        free(r->args);
        memset(r, 0, sizeof *r);
}

void aidp_sc_policy_free(struct aidp_sc_policy *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_rules; i++)
                rule_free(&p->rules[i]);
        free(p->rules);
        memset(p, 0, sizeof *p);
}

static int rule_copy(struct aidp_sc_rule *dst, const struct aidp_sc_rule *src)
{
        memset(dst, 0, sizeof *dst);
        dst->action = src->action;
        dst->errno_ret = src->errno_ret;
        if (src->n_names) {
                dst->names = calloc(src->n_names, sizeof(char *));
                if (!dst->names)
                        return -ENOMEM;
                for (size_t i = 0; i < src->n_names; i++) {
                        dst->names[i] = strdup(src->names[i]);
                        if (!dst->names[i]) {
                                dst->n_names = i;
                                rule_free(dst);
                                return -ENOMEM;
                        }
                }
                dst->n_names = src->n_names;
        }
        if (src->n_args) {
                dst->args = calloc(src->n_args, sizeof(struct aidp_sc_arg));
                if (!dst->args) {
                        rule_free(dst);
                        return -ENOMEM;
                }
                memcpy(dst->args, src->args, src->n_args * sizeof(struct aidp_sc_arg));
                dst->n_args = src->n_args;
        }
        return 0;
}

int aidp_sc_policy_add(struct aidp_sc_policy *p, const struct aidp_sc_rule *r)
{
        struct aidp_sc_rule *n = realloc(p->rules, (p->n_rules + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        p->rules = n;
        int rc = rule_copy(&p->rules[p->n_rules], r);
        if (rc < 0)
                return rc;
        p->n_rules++;
        return 0;
}

int aidp_sc_policy_copy(struct aidp_sc_policy *dst, const struct aidp_sc_policy *src)
{
        memset(dst, 0, sizeof *dst);
        dst->default_action = src->default_action;
        dst->default_errno = src->default_errno;
        for (size_t i = 0; i < src->n_rules; i++) {
                int rc = aidp_sc_policy_add(dst, &src->rules[i]);
                if (rc < 0) {
                        aidp_sc_policy_free(dst);
                        return rc;
                }
        }
        return 0;
}

int aidp_sc_policy_baseline(struct aidp_sc_policy *out)
{
        memset(out, 0, sizeof *out);
        out->default_action = AIDP_SC_ALLOW;
        char *names[ARRAY_SIZE(aidp_sc_dangerous)];
        for (size_t i = 0; i < ARRAY_SIZE(aidp_sc_dangerous); i++)
                names[i] = (char *)aidp_sc_dangerous[i].name;
        struct aidp_sc_rule r = {
                .names = names,
                .n_names = ARRAY_SIZE(names),
                .action = AIDP_SC_ERRNO,
                .errno_ret = EPERM,
        };
        int rc = aidp_sc_policy_add(out, &r);
        if (rc < 0)
                return rc;
        /* clone/clone3 with namespace flags would let the job build a new
         * sandbox of its own; plain fork/thread creation stays allowed.
         * clone3 passes flags in memory the filter cannot see, so it gets
         * ENOSYS and libc falls back to clone. */
        static const char *const clone3_name[] = {"clone3"};
        struct aidp_sc_rule c3 = {
                .names = (char **)clone3_name,
                .n_names = 1,
                .action = AIDP_SC_ERRNO,
                .errno_ret = ENOSYS,
        };
        rc = aidp_sc_policy_add(out, &c3);
        if (rc < 0)
                return rc;
        /* clone with any namespace flag: EPERM. Expressed per flag because
         * libseccomp's masked-eq compares (arg & mask) == datum; one rule per
         * flag with datum == flag catches any combination. */
        static const uint64_t ns_flags[] = {
                0x00020000ULL, /* CLONE_NEWNS */
                0x02000000ULL, /* CLONE_NEWCGROUP */
                0x04000000ULL, /* CLONE_NEWUTS */
                0x08000000ULL, /* CLONE_NEWIPC */
                0x10000000ULL, /* CLONE_NEWUSER */
                0x20000000ULL, /* CLONE_NEWPID */
                0x40000000ULL, /* CLONE_NEWNET */
        };
        static const char *const clone_name[] = {"clone"};
        for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++) {
                struct aidp_sc_arg a = {.index = 0,
                                        .op = AIDP_SC_OP_MASKED_EQ,
                                        .value = ns_flags[i],
                                        .value2 = ns_flags[i]};
                struct aidp_sc_rule cr = {
                        .names = (char **)clone_name,
                        .n_names = 1,
                        .action = AIDP_SC_ERRNO,
                        .errno_ret = EPERM,
                        .args = &a,
                        .n_args = 1,
                };
                rc = aidp_sc_policy_add(out, &cr);
                if (rc < 0)
                        return rc;
        }
        return 0;
}
