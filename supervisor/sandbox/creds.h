#pragma once
/* pid 1's privilege drop, just before the job's vfork (docs/run-core.md,
 * "Inside the sandbox"). */
#include "common/error.h"
#include "supervisor/sandbox/sandbox.h"

/* The running kernel's last capability number (/proc/sys/kernel/cap_last_cap),
 * or -errno. */
int aidp_creds_kernel_last_cap(void);

/* In the supervisor, before the clone: every capability profile `name` keeps
 * is one the kernel has (number <= last_cap). A newer libcap-ng than the
 * kernel knows names the kernel lacks, which pid 1's capset would refuse
 * with a bare EPERM. 0, or AIDP_EXIT_CONFIG naming the profile, the
 * capability and the kernel's last one. */
int aidp_creds_check_profile(const struct aidp_profile *pr, const char *name, int last_cap,
                             aidp_error *err);

/* In the supervisor, before the clone: the capabilities profile pr keeps as
 * a set of numbers (bit n: capability n) in *caps, for the spec's caps (pid 1
 * takes no names: aidp-init links no libcap-ng). 0, or -EINVAL with *bad
 * naming a capability not known (aidp_creds_check_profile refuses those
 * earlier). */
int aidp_creds_profile_caps(const struct aidp_profile *pr, uint64_t *caps, const char **bad);

/* How pid 1 stops at a failed step: report errnum and the step (or the
 * capability not known) and exit. Not declared noreturn on purpose: the
 * compiler then keeps the _exit that follows each call (creds.c, fail). */
typedef void (*aidp_creds_stop_fn)(int errnum, const char *what);

/* The bounding set down to the spec's capabilities (needs CAP_SETPCAP: while
 * still root). It only limits what an execve may gain, never what pid 1 holds
 * now, so pid 1 does it while it waits for the go (its mounts and the go's
 * cgroup, session and rlimit steps use its effective set), off the path from
 * the go to the job (docs/run-core.md, "pid 1, faster"). A failure goes to
 * stop, as below. */
void aidp_sandbox_drop_bounding(const struct aidp_sandbox_spec *s, aidp_creds_stop_fn stop);

/* Into the job's identity with nothing kept but the spec's capabilities:
 * the bounding set first (unless aidp_sandbox_drop_bounding did it already),
 * then groups, gid, uid; effective, permitted and inheritable set to the kept
 * ones, ambient to exactly those; the ids and groups checked; no_new_privs.
 * Returns only when all of it was done: any failure after the drop began
 * goes to stop, and should stop return, pid 1 exits (125) right there, so no
 * path reaches the job's exec with part of root's privileges left. */
void aidp_sandbox_drop_credentials(const struct aidp_sandbox_spec *s, aidp_creds_stop_fn stop);
