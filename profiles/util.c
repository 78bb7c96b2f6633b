/* Small pure helpers of profiles/: names of errnos, actions, capabilities,
 * architectures and syscalls (units: units.c, the growable string: strbuf.c). */
#define _GNU_SOURCE
#include <cap-ng.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "profiles/internal.h"

/* ---- names ---- */

int aidp_profiles_errno_parse(const char *s)
{
        uint64_t v;
        if (aidp_profiles_parse_uint(s, false, &v) == 0)
                return v >= 1 && v <= 4095 ? (int)v : -1;
        /* glibc names every errno it knows; 4095 is the kernel's MAX_ERRNO. */
        for (int e = 1; e < 4096; e++) {
                const char *n = strerrorname_np(e);
                if (n && !strcmp(n, s))
                        return e;
        }
        return -1;
}

const char *aidp_profiles_errno_name(int e, char *buf, size_t n)
{
        const char *name = strerrorname_np(e);
        if (name)
                snprintf(buf, n, "%s", name);
        else
                snprintf(buf, n, "%d", e);
        return buf;
}

const char *aidp_profiles_action_str(enum aidp_sc_action a, int errno_ret, char *buf, size_t n)
{
        if (a == AIDP_SC_ERRNO) {
                char e[32];
                snprintf(buf, n, "errno(%s)", aidp_profiles_errno_name(errno_ret, e, sizeof e));
        } else {
                snprintf(buf, n, "%s", aidp_sc_action_name(a));
        }
        return buf;
}

int aidp_profiles_action_parse(const char *s, enum aidp_sc_action *a, int *errno_ret)
{
        static const struct {
                const char *name;
                enum aidp_sc_action a;
        } plain[] = {
                {"allow", AIDP_SC_ALLOW},
                {"log", AIDP_SC_LOG},
                {"kill-process", AIDP_SC_KILL_PROCESS},
                {"kill", AIDP_SC_KILL_PROCESS},
                {"kill-thread", AIDP_SC_KILL_THREAD},
                {"trap", AIDP_SC_TRAP},
        };
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
                if (!strcmp(s, plain[i].name)) {
                        *a = plain[i].a;
                        *errno_ret = 0;
                        return 0;
                }
        size_t len = strlen(s);
        if (len > 7 && !strncmp(s, "errno(", 6) && s[len - 1] == ')') {
                char inner[64];
                if (len - 7 >= sizeof inner)
                        return -EINVAL;
                memcpy(inner, s + 6, len - 7);
                inner[len - 7] = '\0';
                int e = aidp_profiles_errno_parse(inner);
                if (e < 0)
                        return -EINVAL;
                *a = AIDP_SC_ERRNO;
                *errno_ret = e;
                return 0;
        }
        return -EINVAL;
}

int aidp_profiles_cap_canon(const char *s, char *buf, size_t n)
{
        if (!strncasecmp(s, "CAP_", 4))
                s += 4;
        if (!*s)
                return -1;
        int c = capng_name_to_capability(s);
        if (c < 0)
                return -1;
        const char *name = capng_capability_to_name((unsigned)c);
        if (!name)
                return -1;
        snprintf(buf, n, "CAP_%s", name);
        for (char *p = buf; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        return c;
}

const char *aidp_profiles_cap_suggest(const char *s, char *buf, size_t n)
{
        struct aidp_suggest sg;
        aidp_suggest_init(&sg, strncasecmp(s, "CAP_", 4) ? s : s + 4);
        for (unsigned c = 0; c < 64; c++)
                aidp_suggest_add(&sg, capng_capability_to_name(c));
        const char *r = aidp_suggest_result(&sg);
        char up[AIDP_SUGGEST_MAX];
        snprintf(up, sizeof up, "%s", r ? r : "");
        for (char *p = up; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        if (!r || snprintf(buf, n, " (did you mean 'CAP_%s'?)", up) >= (int)n)
                buf[0] = '\0';
        return buf;
}

uint32_t aidp_profiles_arch(const struct aidp_profile_env *env)
{
        return env && env->arch ? env->arch : seccomp_arch_native();
}

static const struct {
        uint32_t token;
        const char *name, *docker;
} arches[] = {
        {SCMP_ARCH_X86_64, "x86_64", "amd64"},
        {SCMP_ARCH_X86, "x86", "x86"},
        {SCMP_ARCH_X32, "x32", "x32"},
        {SCMP_ARCH_AARCH64, "aarch64", "arm64"},
        {SCMP_ARCH_ARM, "arm", "arm"},
        {SCMP_ARCH_PPC64LE, "ppc64le", "ppc64le"},
        {SCMP_ARCH_S390X, "s390x", "s390x"},
        {SCMP_ARCH_S390, "s390", "s390"},
        {SCMP_ARCH_RISCV64, "riscv64", "riscv64"},
};

const char *aidp_profiles_arch_name(uint32_t arch)
{
        for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
                if (arches[i].token == arch)
                        return arches[i].name;
        return "unknown-arch";
}

const char *aidp_profiles_arch_docker(uint32_t arch)
{
        for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
                if (arches[i].token == arch)
                        return arches[i].docker;
        return NULL;
}

int aidp_profiles_syscall_nr(uint32_t arch, const char *name)
{
        int nr = seccomp_syscall_resolve_name_arch(arch, name);
        if (nr == __NR_SCMP_ERROR)
                return -1;
        /* libseccomp knows every arch's names and gives names absent from
         * this arch a negative pseudo number. */
        if (nr < 0)
                return -2;
        return nr;
}

const char *aidp_profiles_syscall_suggest(uint32_t arch, const char *name, char *buf, size_t n)
{
        struct aidp_suggest sg;
        aidp_suggest_init(&sg, name);
        /* libseccomp's own table for the architecture, by number. */
        for (int nr = 0; nr < 1024; nr++) {
                char *cand = seccomp_syscall_resolve_num_arch(arch ? arch : SCMP_ARCH_NATIVE, nr);
                aidp_suggest_add(&sg, cand);
                free(cand);
        }
        return aidp_suggest_text(&sg, buf, n);
}
