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

/* Into the job's identity with nothing kept but the profile's capabilities:
 * the bounding set first (dropping needs CAP_SETPCAP, so while still root),
 * then groups, gid, uid; effective, permitted and inheritable set to the kept
 * ones, ambient to exactly those; the ids and groups checked; no_new_privs.
 * 0, or -errno with *what naming the step (or the capability not known). */
int aidp_sandbox_drop_credentials(const struct aidp_sandbox_spec *s, const char **what);
