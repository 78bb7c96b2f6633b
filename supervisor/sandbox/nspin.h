#pragma once
/* The sandbox's mount namespace, pinned by a bind mount of its nsfs file in
 * the run's journal directory (root-only): the namespace, and with it every
 * tmpfs mount attached in it, lives on after both the supervisor and the
 * sandbox's pid 1 are dead, so that gc can still overwrite the plaintext
 * before the kernel frees the pages. Without the pin, killing the supervisor
 * mid-teardown and then pid 1 would free them unshredded.
 *
 * The pin is two mounts on the host: the file bound onto itself and made
 * private (an nsfs mount may not propagate: the kernel refuses it on a
 * shared mount), then the namespace bound on top. Nothing else of the
 * sandbox is visible on the host. */
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* Pin the mount namespace of pid (a child of the caller, so its pid cannot
 * be reused) at path, a file that does not exist yet: 0. 1 when the kernel
 * refuses the pin only because the caller's own mount namespace has the
 * higher id (a supervisor started inside another namespace, such as Slurm's
 * job_container/tmpfs, on Linux 6.18's per-CPU namespace ids): the run goes
 * on unpinned. On failure (or 1) nothing is left. */
int aidp_nspin_create(const char *path, pid_t pid, aidp_error *err);
/* Writable clones of the mounts at targets[i] (paths inside the pinned
 * namespace) into fds[i] (-1 where there is none), opened from a helper
 * process that enters the namespace (setns needs a single thread). Returns
 * how many were opened, or -errno. */
int aidp_nspin_open_mounts(const char *path, const char *const *targets, size_t n, int *fds);
/* Drop the pin (both mounts) and remove the file. Harmless when there is none. */
void aidp_nspin_release(const char *path);
