#pragma once
/* pid 1's privilege drop, just before the job's vfork (docs/run-core.md,
 * "Inside the sandbox"). */
#include "supervisor/sandbox/sandbox.h"

/* Into the job's identity with nothing kept but the profile's capabilities:
 * the bounding set first (dropping needs CAP_SETPCAP, so while still root),
 * then groups, gid, uid; effective, permitted and inheritable set to the kept
 * ones, ambient to exactly those; the ids and groups checked; no_new_privs.
 * 0, or -errno with *what naming the step (or the capability not known). */
int aidp_sandbox_drop_credentials(const struct aidp_sandbox_spec *s, const char **what);
