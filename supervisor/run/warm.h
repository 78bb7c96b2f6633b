#pragma once
/* Warm start for a process that serves many runs (aidp-supervisor serve,
 * docs/protocol.md, "Warm start"): work every run would repeat, done once in
 * the server before it forks its workers, which inherit the result. Today the
 * compiled seccomp program of every installed library profile, keyed by the
 * profile's digest (SHA-256 of the effective profile): a profile changed
 * since has another digest and its run compiles its own, so the cache is
 * never stale, only cold. */
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "profiles/profile.h"
#include "profiles/seccomp_compile.h"
#include "supervisor/run/policy_load.h"

/* Compile the filter of every library profile that loads. Returns how many
 * are cached; a profile that does not load is skipped (its runs will say
 * why). */
size_t aidp_run_warm_seccomp(void);
/* A copy of the cached program for this digest into out (the caller frees it
 * with aidp_bpf_free): true, or false when none is cached. */
bool aidp_run_warm_bpf(const unsigned char digest[32], struct aidp_bpf *out);

/* The same file as far as a signature can tell: inode, mode, owner, size,
 * modification and change times (warm_policy.c, warm_profile.c). */
bool aidp_run_warm_stat_same(const struct stat *a, const struct stat *b);
/* Library profiles, loaded once in the server as a user's run loads them
 * (every file of the extends/import chain a root-owned library file): the
 * cached profile for name, loaded now if it is not cached yet, or NULL when
 * it does not load or cannot be cached (it expands devices, whose presence
 * may change). The cache keeps, for every file the load asked for (found or
 * not), its lstat and its directory's stat. */
const struct aidp_profile *aidp_run_warm_profile(const char *name);
/* In the server, before each worker is forked: a cached profile whose files
 * changed is loaded again (or dropped when it no longer loads). */
void aidp_run_warm_profiles_refresh(void);
/* The run's profile from the cache: true when name is cached and none of its
 * files changed since it was loaded (checked now: any difference in inode,
 * size, mode, owner or times, or a file that came or went, is a change), and
 * *ret takes it over (one run per worker); false when the run must load it
 * itself. */
bool aidp_run_warm_profile_take(const char *name, struct aidp_profile *ret);

/* The rest of the host's state a run reads, loaded in the server once:
 *   - the name service modules (getpwuid, getgrouplist): dlopen'd here, not
 *     in every run;
 *   - libcgroup's start-up, and the shared cgroup parents kept between runs
 *     (aidp_cgroup_warm);
 *   - the lineage host key in one locked page (aidp_lineage_key_preload);
 *   - OpenSSL's provider tables (HMAC, SHA-256);
 *   - the access, residency and host policy set (aidp_run_warm_refresh).
 * Every check of a cold run still happens in each run: the key file and the
 * policy files are stat'ed per run and a file that changed is loaded again,
 * with every trust check, by the run itself (a changed file that fails a
 * check fails the run: closed). Returns what failed to warm, as a message
 * for the log, or NULL. */
const char *aidp_run_warm_host(void);
/* In the server, once per request before it forks the worker: the policy set
 * loaded again when one of its files (or their directory) changed since. A
 * set that no longer loads is dropped (the runs load it cold, and fail with
 * its error). */
void aidp_run_warm_refresh(void);
/* The run's policy set from the warm cache: true when one is cached for dir
 * and none of its files changed since it was loaded (checked now), and *ret
 * takes it over (the cache is empty afterwards: one run per worker); false
 * when the run must load it itself. */
bool aidp_run_warm_policy_take(const char *dir, struct aidp_policy_set *ret);
/* In a daemon's idle worker, at the scheduling its run will have (the thread
 * takes it): the thread that will write the run's START, made now and handed
 * the run by step 2 or 4 instead of a thread made then (startup.c). */
void aidp_run_warm_start_thread(void);
/* The cached library profile `name`, not taken, or NULL; the cache keeps it
 * (read-only; no freshness check: for work ahead that the run checks again). */
const struct aidp_profile *aidp_run_warm_profile_peek(const char *name);
/* In a daemon's idle worker: the tmpfs mounts prepare would make for the
 * default profile, made ahead where they do not depend on the run
 * (aidp_tmpfs_ahead; warm_tmpfs.c, apart so that the `aidp` tool, which
 * links the profile cache, links no mount code). */
void aidp_run_warm_tmpfs_ahead(void);
