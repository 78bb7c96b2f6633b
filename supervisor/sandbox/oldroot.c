#define _GNU_SOURCE
/* The old root's lazy unmount off pid 1's path (oldroot.h). */
#include "supervisor/sandbox/oldroot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/sandbox/clone_vm.h"
#include "supervisor/sandbox/mask_tree.h"

#ifndef SYS_statmount
#define SYS_statmount 457 /* Linux 6.8, newer than Debian 12's headers */
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define OLDROOT_STATMOUNT_MNT_BASIC 0x00000002U

/* The helper's stack: it makes one system call. Static, as pid 1 may not
 * allocate (hostsock.h); aligned for the call's frame. */
static char helper_stack[16384] __attribute__((aligned(16)));

/* In the helper, cloned while pid 1 starts building its view: it sleeps until
 * pid 1's pivot_root sets go (a woken task runs at once where a new one would
 * queue behind the machine's other tasks: measured, a helper cloned at the
 * pivot waited up to 16 ms for its first turn at load 2). It shares pid 1's
 * working directory (CLONE_FS): the new root, with the old root mounted on
 * top of it (pivot_root(".", ".")). Its exit status is the unmount's errno, 0
 * for done or for nothing to do (go < 0: pid 1 unmounts itself). errno is
 * shared with pid 1 (one TLS block): written by a futex wait only once go
 * changed, and by an unmount that fails, which fails the run. */
static int helper(void *arg)
{
        struct aidp_old_root *o = arg;
        while (__atomic_load_n(&o->go, __ATOMIC_ACQUIRE) == 0)
                syscall(SYS_futex, &o->go, FUTEX_WAIT, 0, NULL, NULL, 0);
        if (__atomic_load_n(&o->go, __ATOMIC_ACQUIRE) < 0)
                return 0;
        if (o->slow_ms) {
                struct timespec d = {o->slow_ms / 1000, (long)(o->slow_ms % 1000) * 1000000};
                nanosleep(&d, NULL);
        }
        if (o->fail)
                return EIO; /* as an unmount that failed: nothing unmounted */
        return umount2(".", MNT_DETACH) < 0 ? (errno > 0 && errno < 256 ? errno : EIO) : 0;
}

/* go set to v (1: unmount, -1: nothing to do) and the helper woken. */
static void release(struct aidp_old_root *o, int v)
{
        __atomic_store_n(&o->go, v, __ATOMIC_RELEASE);
        syscall(SYS_futex, &o->go, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* 1 while mount id is in this process's mount namespace, 0 once it is not,
 * -errno. statmount looks the id up in the caller's namespace only. */
static int present(uint64_t id)
{
        struct {
                uint32_t size, spare;
                uint64_t mnt_id, param;
        } req = {.size = sizeof req, .mnt_id = id, .param = OLDROOT_STATMOUNT_MNT_BASIC};
        uint64_t buf[128];
        if (syscall(SYS_statmount, &req, buf, sizeof buf, 0) == 0)
                return 1;
        return errno == ENOENT ? 0 : -errno;
}

/* Test builds only (AIDP_FAULT_OLDROOT_SLOW_MS=N, AIDP_FAULT_OLDROOT_FAIL=1;
 * supervisor/cli/env.c: the production binary refuses a run that sets them):
 * the helper waits N ms (at most 5 s) before its unmount, as one the
 * scheduler does not run at once would, and pid 1 must wait for it all the
 * same; or it ends with EIO without unmounting, and the run must end there
 * (tests/priv/test_oldroot.c). Read with getenv: a zygote's pid 1 has no
 * environment, so direct runs only. */
static unsigned fault_slow_ms(void)
{
        const char *v = getenv("AIDP_FAULT_OLDROOT_SLOW_MS");
        unsigned long ms = v ? strtoul(v, NULL, 10) : 0;
        return ms > 5000 ? 5000 : (unsigned)ms;
}

void aidp_old_root_start(struct aidp_old_root *o)
{
        *o = (struct aidp_old_root){.events_fd = -1,
                                    .pidfd = -1,
                                    .slow_ms = fault_slow_ms(),
                                    .fail = getenv("AIDP_FAULT_OLDROOT_FAIL") != NULL};
        struct statx sx;
        if (statx(AT_FDCWD, "/", 0, AIDP_MASK_STATX_MNT_ID_UNIQUE, &sx) < 0 ||
            !(sx.stx_mask & AIDP_MASK_STATX_MNT_ID_UNIQUE) || present(sx.stx_mnt_id) != 1)
                return; /* before 6.8: pid 1 unmounts itself */
        /* Blocked from here on (the init loop blocks it too, and the job
         * unblocks every signal): a helper that ends before the init loop
         * leaves its SIGCHLD pending for it, not ignored, and is reaped then,
         * not left a zombie the job could see. */
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigprocmask(SIG_BLOCK, &chld, NULL);
        /* Its own fd table would hold a copy of every fd pid 1 has (err_fd's
         * close-on-exec is how the supervisor learns that the job started):
         * it shares pid 1's, and pid 1's root and working directory. Its own
         * signal handlers and credentials; SIGCHLD to pid 1, whose init loop
         * reaps it like any orphan if it is still there then. */
        struct clone_args ca = {
                .flags = CLONE_VM | CLONE_FILES | CLONE_FS | CLONE_PIDFD,
                .pidfd = (uint64_t)(uintptr_t)&o->pidfd,
                .exit_signal = SIGCHLD,
                .stack = (uint64_t)(uintptr_t)helper_stack,
                .stack_size = sizeof helper_stack,
        };
        if (aidp_clone3_on_stack(&ca, helper, o) > 0)
                o->id = sx.stx_mnt_id;
        else
                o->pidfd = -1;
}

void aidp_old_root_prepare(struct aidp_old_root *o, const char *proc)
{
        if (!o->id)
                return;
        char p[PATH_MAX];
        /* The namespace of the task named, fixed at open: pid 1's own. */
        if (snprintf(p, sizeof p, "%s/self/mountinfo", proc) < (int)sizeof p)
                o->events_fd = open(p, O_RDONLY | O_CLOEXEC);
        if (o->events_fd < 0) {
                release(o, -1); /* pid 1 unmounts itself */
                o->id = 0;
        }
}

static void close_fds(struct aidp_old_root *o)
{
        if (o->events_fd >= 0)
                close(o->events_fd);
        if (o->pidfd >= 0)
                close(o->pidfd);
        o->events_fd = o->pidfd = -1;
}

int aidp_old_root_detach(struct aidp_old_root *o)
{
        if (o->id) {
                release(o, 1);
                return 0;
        }
        o->unmounted = true;
        return umount2(".", MNT_DETACH) < 0 ? -errno : 0;
}

int aidp_old_root_wait(struct aidp_old_root *o)
{
        int rc = 0;
        while (!o->unmounted) {
                rc = present(o->id);
                if (rc <= 0)
                        break;
                /* A change of pid 1's mounts (the helper's unmount taking the
                 * old root out), or the helper's end. */
                struct pollfd pf[2] = {{.fd = o->events_fd, .events = POLLPRI},
                                       {.fd = o->pidfd, .events = POLLIN}};
                if (poll(pf, 2, -1) < 0 && errno != EINTR) {
                        rc = -errno;
                        break;
                }
                if (!pf[1].revents)
                        continue;
                siginfo_t si = {0};
                if (waitid((idtype_t)P_PIDFD, (id_t)o->pidfd, &si, WEXITED) < 0) {
                        rc = -errno;
                        break;
                }
                if (si.si_code != CLD_EXITED || si.si_status != 0) {
                        rc = si.si_code == CLD_EXITED ? -si.si_status : -EINTR;
                        break;
                }
                o->unmounted = true; /* its umount2 returned 0 */
        }
        close_fds(o);
        return rc;
}
