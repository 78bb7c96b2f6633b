#pragma once
/* Apply half of seccomp: load a program compiled by profiles/seccomp_compile.h. */
#include "profiles/seccomp_compile.h"

/* Load into the calling thread. Requires no_new_privs (or CAP_SYS_ADMIN).
 * Returns 0 (or the notify fd with SECCOMP_FILTER_FLAG_NEW_LISTENER) or -errno; async-signal-safe, for use between clone and execve. */
int aidp_seccomp_load(const struct aidp_bpf *b, unsigned flags);
