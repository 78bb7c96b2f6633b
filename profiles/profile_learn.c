/* The profile `aidp profile learn` writes: a minimal seccomp allowlist of the
 * syscalls a workload was seen to make, on top of a base profile that keeps
 * supplying everything else (limits, mounts, network). */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "profiles/internal.h"

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int aidp_profile_write_allowlist(const char *name, const char *base, const int *nrs, size_t n,
                                 const struct aidp_profile_env *env, char **yaml, aidp_error *err)
{
        uint32_t arch = aidp_profiles_arch(env);
        char **names = calloc(n ? n : 1, sizeof *names);
        if (!names)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        size_t k = 0;
        bool clone = false, clone3 = false;
        int rc = 0;
        for (size_t i = 0; i < n; i++) {
                char *s = seccomp_syscall_resolve_num_arch(arch, nrs[i]);
                if (!s) {
                        rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                            "syscall number %d is unknown on %s", nrs[i],
                                            aidp_profiles_arch_name(arch));
                        break;
                }
                /* clone gets the namespace guard below, clone3 the ENOSYS answer
                 * that makes libc fall back to clone: neither may be allowed
                 * unconditionally even though the workload used them. */
                if (!strcmp(s, "clone") || !strcmp(s, "clone3")) {
                        clone = clone || !strcmp(s, "clone");
                        clone3 = clone3 || !strcmp(s, "clone3");
                        free(s);
                        continue;
                }
                bool dup = false;
                for (size_t j = 0; j < k && !dup; j++)
                        dup = !strcmp(names[j], s);
                if (dup)
                        free(s);
                else
                        names[k++] = s;
        }
        struct aidp_sb sb = {0}, *b = &sb;
        if (rc == 0) {
                qsort(names, k, sizeof *names, cmp_str);
                aidp_profiles_sb_printf(b,
                                        "# Written by `aidp profile learn`: the %zu syscalls the "
                                        "workload made on %s.\n"
                                        "# Review before use; anything else fails with EPERM.\n",
                                        k + clone + clone3, aidp_profiles_arch_name(arch));
                /* the count above is what ran; clone may be added below */
                aidp_profiles_sb_printf(
                        b, "apiVersion: aidp/v1\nkind: Profile\nmetadata:\n  name: %s\n", name);
                aidp_profiles_sb_printf(b, "  description: learned seccomp allowlist\n");
                if (base)
                        aidp_profiles_sb_printf(b, "extends: %s\n", base);
                aidp_profiles_sb_printf(b, "seccomp:\n  reset: true\n  style: allowlist\n  "
                                           "default: errno(EPERM)\n  syscalls:\n");
                if (k) {
                        aidp_profiles_sb_printf(b, "    - action: allow\n      names:\n");
                        for (size_t i = 0; i < k; i++)
                                aidp_profiles_sb_printf(b, "        - %s\n", names[i]);
                }
                /* clone3 answered ENOSYS makes libc use clone: allow it then too. */
                if (clone || clone3)
                        aidp_profiles_sb_printf(b, "    - action: allow            # threads and "
                                                   "fork, never new namespaces\n"
                                                   "      names: [clone]\n"
                                                   "      args: [{index: 0, op: masked-eq, mask: "
                                                   "0x7e020000, value: 0}]\n");
                /* and clone3 is always answered ENOSYS: EPERM (the default)
                 * would make libc give up instead of falling back to clone */
                if (clone || clone3)
                        aidp_profiles_sb_printf(
                                b, "    - action: errno(ENOSYS)    # libc falls back to clone\n"
                                   "      names: [clone3]\n");
                if (!k && !clone && !clone3)
                        aidp_profiles_sb_printf(b, "    []\n");
        }
        for (size_t i = 0; i < k; i++)
                free(names[i]);
        free(names);
        if (rc < 0) {
                aidp_profiles_sb_free(b);
                return rc;
        }
        char *t = aidp_profiles_sb_take(b);
        if (!t)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        *yaml = t;
        return 0;
}
