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

#include "profiles/seccomp_compile.h"

/* Compile the filter of every library profile that loads. Returns how many
 * are cached; a profile that does not load is skipped (its runs will say
 * why). */
size_t aidp_run_warm_seccomp(void);
/* A copy of the cached program for this digest into out (the caller frees it
 * with aidp_bpf_free): true, or false when none is cached. */
bool aidp_run_warm_bpf(const unsigned char digest[32], struct aidp_bpf *out);
