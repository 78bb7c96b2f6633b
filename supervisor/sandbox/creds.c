#define _GNU_SOURCE
/* pid 1's privilege drop (creds.h): straight system calls, where libcap-ng
 * read /proc/self/status through stdio three times (capng_clear and each
 * capng_apply) on the path to the job (docs/security.md, "pid 1's privilege
 * drop without libcap-ng"). The capabilities come as numbers: the names are
 * the supervisor's (creds_names.c), and aidp-init links no libcap-ng. */
#include "supervisor/sandbox/creds.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdint.h>
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

/* Whether this process's bounding set is down to these kept capabilities
 * already (pid 1 is single-threaded). */
static bool g_bounding_dropped;
static uint64_t g_bounding_kept;

/* Every capability the kernel knows (EINVAL past its last one) out of the
 * bounding set, but the kept ones. Needs CAP_SETPCAP: while still root. */
static void drop_bounding(uint64_t keep, aidp_creds_stop_fn stop)
{
        if (g_bounding_dropped && g_bounding_kept == keep)
                return;
        for (unsigned long cap = 0;; cap++) {
                if (cap < 64 && (keep >> cap & 1))
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
                        continue;
                if (errno == EINVAL && cap > 0) {
                        g_bounding_dropped = true;
                        g_bounding_kept = keep;
                        return;
                }
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

void aidp_sandbox_drop_bounding(const struct aidp_sandbox_spec *s, aidp_creds_stop_fn stop)
{
        drop_bounding(s->caps, stop);
}

void aidp_sandbox_drop_credentials(const struct aidp_sandbox_spec *s, aidp_creds_stop_fn stop)
{
        uint64_t keep = s->caps;
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
