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
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* Namespace ids come from per-CPU batches of 4096 (Linux 6.18): a namespace
 * made now on one CPU may get a lower id than one made earlier on another,
 * and the kernel refuses to pin a mount namespace whose id is not above the
 * pinning side's (mnt_ns_loop). Called right before the clone of pid 1: binds
 * the calling thread to the CPU it runs on and makes throwaway UTS namespaces
 * of its own until that CPU hands out ids above the caller's own mount
 * namespace's; the namespaces the clone makes next (on the same CPU) then have
 * higher ids, and the pin cannot be refused for their order. Its UTS
 * namespace is restored. 0, or -errno (then nothing is ensured and the pin
 * may be refused: the caller goes on as before). Before 6.18 ids are global
 * and ordered: nothing to do. */
struct aidp_nspin_order {
        cpu_set_t old; /* the thread's CPUs before */
        bool bound;    /* it was bound to one CPU: restore with _end */
        unsigned made; /* throwaway namespaces made (for tests and docs) */
};
int aidp_nspin_order_begin(struct aidp_nspin_order *o);
/* Give the thread its CPUs back (in the supervisor after the clone, and in
 * pid 1 before it builds the sandbox, since the clone inherited the binding). */
void aidp_nspin_order_end(struct aidp_nspin_order *o);
/* Pin the mount namespace of pid (a child of the caller, so its pid cannot
 * be reused) at path, a file that does not exist yet: 0. 1 when the kernel
 * refuses the pin only because the caller's own mount namespace has the
 * higher id (what aidp_nspin_order_begin prevents; a kernel that batches ids
 * some other way): the run goes on unpinned. 2 when pid has already exited
 * (its namespace is gone, nothing to pin: a pid 1 that failed early, whose
 * own error the caller reads next). On failure (or 1, 2) nothing is left. */
int aidp_nspin_create(const char *path, pid_t pid, aidp_error *err);
/* Writable clones of the mounts at targets[i] (paths inside the pinned
 * namespace) into fds[i] (-1 where there is none), opened from a helper
 * process that enters the namespace (setns needs a single thread). Returns
 * how many were opened, or -errno. */
int aidp_nspin_open_mounts(const char *path, const char *const *targets, size_t n, int *fds);
/* Drop the pin (both mounts) and remove the file. Harmless when there is none. */
void aidp_nspin_release(const char *path);
