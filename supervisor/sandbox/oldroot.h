#pragma once
/* The old root's lazy unmount after pid 1's pivot_root, off pid 1's path
 * (docs/run-core.md, "The old root's unmount off the path").
 *
 * umount2(MNT_DETACH) takes the old root and every host mount below it out of
 * the namespace at once, then waits for an RCU grace period
 * (synchronize_rcu_expedited) before it returns, only to free them: 0.1 ms
 * on a quiet machine, a median of 6.5 ms at load 6 on this VM, pid 1's
 * longest wait before the job. Here a helper sharing pid 1's memory and fd
 * table makes the call and sits out the grace period; pid 1 goes on, and
 * before the job may start it waits until the old root is no longer in its
 * mount namespace (statmount of its mount id finds none), which is true from
 * the moment the helper's unmount has taken it out, grace period or not.
 * Where that cannot be checked (no statmount or unique mount ids before
 * Linux 6.8, no aidp_clone3_on_stack off x86-64) pid 1 unmounts itself, as
 * before. Called by pid 1 only (single-threaded, no allocation). */
#include <stdbool.h>
#include <stdint.h>

struct aidp_old_root {
        uint64_t id;     /* the old root's unique mount id; 0: no helper */
        int go;          /* the helper's futex: 0 wait, 1 unmount, -1 nothing to do */
        int events_fd;   /* pid 1's mountinfo: POLLPRI at every change of its mounts */
        int pidfd;       /* the helper, or -1: pid 1 unmounted itself */
        bool unmounted;  /* known gone */
        unsigned slow_ms; /* test builds: the helper's delay (AIDP_FAULT_OLDROOT_SLOW_MS) */
        bool fail;        /* test builds: the helper fails (AIDP_FAULT_OLDROOT_FAIL) */
};

/* First in pid 1's mount work (on the host's root, before anything is
 * mounted): the helper cloned, asleep until the pivot. Never fails: a kernel
 * without what the check needs, or a clone refused, leaves the unmount to
 * pid 1 itself. */
void aidp_old_root_start(struct aidp_old_root *o);

/* Before pivot_root, with the new root's /proc mounted at proc (the sandbox's
 * pid namespace: its self is pid 1): the namespace's events opened. */
void aidp_old_root_prepare(struct aidp_old_root *o, const char *proc);

/* After pivot_root(".", ".") with the old root on top of the new one at the
 * working directory: its unmount begun by the helper, or done by pid 1.
 * 0 or -errno (pid 1's own unmount failed, or the helper's clone did and then
 * pid 1's unmount). */
int aidp_old_root_detach(struct aidp_old_root *o);

/* Before the go (nothing of the job runs before it): returns once the old root is out of the
 * namespace; the helper's fds closed. 0, or -errno: the helper's unmount
 * failed (its errno) or the check did. */
int aidp_old_root_wait(struct aidp_old_root *o);
