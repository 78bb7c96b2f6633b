#define _GNU_SOURCE
/* pid 1's privilege drop (creds.h): straight system calls, where libcap-ng
 * read /proc/self/status through stdio three times (capng_clear and each
 * capng_apply) on the path to the job; libcap-ng only for capability names
 * (docs/security.md, "pid 1's privilege drop without libcap-ng"). And, in
 * the supervisor before the clone, a profile's capabilities checked against
 * the running kernel. */
#include "supervisor/sandbox/creds.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <stdint.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"

/* A failed step ends pid 1 (stop, which reports it and exits); the
 * _exit after it makes sure no path goes on towards the job's exec with
 * half of root's privileges, whatever stop does. */
#define TRY(expr, step)                                                                            \
        do {                                                                                       \
                if ((expr) < 0)                                                                    \
                        fail(stop, errno, (step));                                                 \
        } while (0)

__attribute__((noreturn)) static void fail(aidp_creds_stop_fn stop, int errnum, const char *what)
{
        stop(errnum, what);
        _exit(125);
}

/* A capability's number by libcap-ng's table, or -1: profiles store
 * "CAP_NET_RAW"; the table wants "net_raw". */
static int cap_number(const char *cn)
{
        return capng_name_to_capability(strncasecmp(cn, "CAP_", 4) ? cn : cn + 4);
}

int aidp_creds_kernel_last_cap(void)
{
        /* Test builds only (AIDP_FAULT_CAP_LAST_CAP=N; supervisor/cli/env.c:
         * the production binary refuses a run that sets it): a kernel older
         * than libcap-ng's table (tests/priv/test_profiles.c). */
        const char *fake = getenv("AIDP_FAULT_CAP_LAST_CAP");
        if (fake)
                return atoi(fake);
        _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
        char buf[16];
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return -(n < 0 ? errno : EIO);
        buf[n] = '\0';
        char *end;
        long v = strtol(buf, &end, 10);
        return end == buf || v < 0 || v > 63 ? -EIO : (int)v;
}

int aidp_creds_check_profile(const struct aidp_profile *pr, const char *name, int last_cap,
                             aidp_error *err)
{
        for (size_t i = 0; pr && i < pr->n_capabilities; i++) {
                const char *cn = pr->capabilities[i];
                int cap = cap_number(cn);
                if (cap < 0 || cap > last_cap)
                        return aidp_error_set(
                                err, AIDP_EXIT_CONFIG, EINVAL,
                                "profile %s: capabilities: %s (number %d) is not known to this "
                                "kernel, whose last capability is number %d "
                                "(/proc/sys/kernel/cap_last_cap); leave it out of the profile or "
                                "run on a newer kernel",
                                name, cn, cap, last_cap);
        }
        return 0;
}

/* The profile's capabilities as a set of capability numbers (checked
 * against the kernel before the clone: aidp_creds_check_profile). */
static uint64_t kept_caps(const struct aidp_profile *pr, aidp_creds_stop_fn stop)
{
        uint64_t keep = 0;
        for (size_t i = 0; pr && i < pr->n_capabilities; i++) {
                const char *cn = pr->capabilities[i];
                int cap = cap_number(cn);
                if (cap < 0 || cap > 63)
                        fail(stop, EINVAL, cn);
                keep |= 1ULL << cap;
        }
        return keep;
}

/* Effective, permitted and inheritable set to exactly `keep` (capset(2),
 * version 3: two 32-bit words per set). */
static int set_caps(uint64_t keep)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
        struct __user_cap_data_struct d[2];
        for (int i = 0; i < 2; i++) {
                uint32_t w = (uint32_t)(keep >> (32 * i));
                d[i] = (struct __user_cap_data_struct){
                        .effective = w, .permitted = w, .inheritable = w};
        }
        return (int)syscall(SYS_capset, &h, d);
}

/* Every capability the kernel knows (EINVAL past its last one) out of the
 * bounding set, but the kept ones. Needs CAP_SETPCAP: while still root. */
static void drop_bounding(uint64_t keep, aidp_creds_stop_fn stop)
{
        for (unsigned long cap = 0;; cap++) {
                if (cap < 64 && (keep >> cap & 1))
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
                        continue;
                if (errno == EINVAL && cap > 0)
                        return;
                fail(stop, errno, "bounding set");
        }
}

/* Exactly the groups asked for (the kernel sorts them), and nothing of
 * root's left. */
static bool is_job_identity(const struct aidp_sandbox_spec *s)
{
        gid_t g[AIDP_SANDBOX_MAX_GROUPS + 1];
        int ng = getgroups(ARRAY_SIZE(g), g);
        bool same = ng >= 0 && (size_t)ng == s->n_groups;
        for (int i = 0; same && i < ng; i++) {
                same = false;
                for (size_t j = 0; !same && j < s->n_groups; j++)
                        same = g[i] == s->groups[j];
        }
        return same && getuid() == s->uid && getgid() == s->gid;
}

void aidp_sandbox_drop_credentials(const struct aidp_sandbox_spec *s, aidp_creds_stop_fn stop)
{
        uint64_t keep = kept_caps(s->profile, stop);
        drop_bounding(keep, stop);
        if (keep)
                TRY(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "keepcaps");
        /* Groups, gid, uid through the raw system calls, not glibc's wrappers
         * (nor capng_change_id, which uses them): those make every thread glibc
         * knows of take the change too, and this process is a clone3 copy of a
         * supervisor whose other threads (START's fsync) do not exist here, so
         * the wrapper would wait for them forever. The kernel changes the
         * calling thread, which is all of pid 1. */
        /* The job user's supplementary groups (group-shared data), as a
         * login would give them; the supervisor looked them up before the
         * clone, since pid 1 must not call into NSS. */
        TRY(syscall(SYS_setgroups, s->n_groups, s->groups), "setgroups");
        TRY(syscall(SYS_setresgid, s->gid, s->gid, s->gid), "setresgid");
        TRY(syscall(SYS_setresuid, s->uid, s->uid, s->uid), "setresuid");
        if (keep)
                TRY(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "keepcaps");
        /* Effective, permitted and inheritable: the profile's, else none. */
        TRY(set_caps(keep), "capset");
        /* Ambient: exactly the kept ones, so that they survive the job's
         * execve as a non-root user. */
        TRY(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient");
        for (unsigned long cap = 0; cap < 64; cap++)
                if (keep >> cap & 1)
                        TRY(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "ambient");
        if (!is_job_identity(s))
                fail(stop, EPERM, "identity check");
        TRY(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
}
