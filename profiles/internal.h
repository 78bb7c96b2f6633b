#pragma once
/* Helpers shared by the files of profiles/ only. Not part of its API. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "common/error.h"
#include "common/suggest.h"
#include "common/yaml.h"
#include "profiles/profile.h"
#include "profiles/profile_load.h"

/* ---- growable string (text output without stdio) ---- */
struct aidp_sb {
        char *s;
        size_t len, cap;
        bool oom;
};
void aidp_profiles_sb_printf(struct aidp_sb *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Returns the text (caller frees) or NULL on allocation failure. */
char *aidp_profiles_sb_take(struct aidp_sb *b);
void aidp_profiles_sb_free(struct aidp_sb *b);

/* ---- units ---- */
/* "8Gi", "512Mi", "1G", "4096" -> bytes. */
int aidp_profiles_parse_size(const char *s, uint64_t *out);
/* "500m", "2", "1.5" -> millicpus. */
int aidp_profiles_parse_cpu(const char *s, uint64_t *out);
/* "2h", "90s", "1h30m", "1d", "3600" -> seconds. */
int aidp_profiles_parse_duration(const char *s, uint64_t *out);
/* Plain non-negative integer (decimal, or 0x hex when hex_ok). */
int aidp_profiles_parse_uint(const char *s, bool hex_ok, uint64_t *out);
/* Human renderings used by explain/diff: "8 GiB", "1500m", "2h". */

/* ---- names ---- */
/* errno name or number ("EPERM", "1") -> number; -1 if unknown. */
int aidp_profiles_errno_parse(const char *s);
/* "EPERM" or "errno 200" */
const char *aidp_profiles_errno_name(int e, char *buf, size_t n);
/* "errno(EPERM)", "kill-process", ... */
const char *aidp_profiles_action_str(enum aidp_sc_action a, int errno_ret, char *buf, size_t n);
/* Parse "allow", "log", "kill-process", "kill-thread", "trap", "errno(EPERM)", "errno(1)". */
int aidp_profiles_action_parse(const char *s, enum aidp_sc_action *a, int *errno_ret);
/* Capability name ("CAP_SYS_ADMIN", "sys_admin", case-insensitive) -> canonical
 * "CAP_SYS_ADMIN" in buf; -1 if unknown. */
int aidp_profiles_cap_canon(const char *s, char *buf, size_t n);
/* " (did you mean 'CAP_X'?)" for a misspelt capability (libcap-ng's names), or
 * "" when nothing is close; into buf, returned. */
const char *aidp_profiles_cap_suggest(const char *s, char *buf, size_t n);
/* rlimit name ("nofile", "RLIMIT_NOFILE") -> RLIMIT_* index; -1 if unknown. */
int aidp_profiles_rlimit_parse(const char *s);
const char *aidp_profiles_rlimit_name(int r);
/* Arch token of env (native when 0) and its name ("x86_64"). */
uint32_t aidp_profiles_arch(const struct aidp_profile_env *env);
const char *aidp_profiles_arch_name(uint32_t arch);
/* Docker/Go name of an arch ("amd64", "arm64"); NULL if unknown. */
const char *aidp_profiles_arch_docker(uint32_t arch);
/* Syscall lookup: >= 0 the number; -1 unknown anywhere; -2 exists, but not on this arch. */
int aidp_profiles_syscall_nr(uint32_t arch, const char *name);
/* " (did you mean 'X'?)" for a misspelt syscall (libseccomp's table for arch),
 * or "" when nothing is close; into buf, returned. */
const char *aidp_profiles_syscall_suggest(uint32_t arch, const char *name, char *buf, size_t n);

/* ---- seccomp JSON (OCI/Docker) ---- */
/* Parse and resolve `includes`/`excludes` for arch, the kept capabilities and
 * the kernel. Names that do not exist on arch are skipped (*n_skipped). */
int aidp_profiles_seccomp_json(const char *file, const char *buf, size_t len,
                               const struct aidp_profile_env *env, char *const *caps, size_t n_caps,
                               struct aidp_sc_policy *out, size_t *n_skipped, aidp_error *err);

/* ---- seccomp policy helpers ---- */
/* Per-syscall view of a policy, for lint/explain/diff. */
enum aidp_sc_effect {
        AIDP_SC_EFFECT_DEFAULT,       /* no rule: the default action */
        AIDP_SC_EFFECT_UNCONDITIONAL, /* one rule without argument conditions */
        AIDP_SC_EFFECT_CONDITIONAL,   /* only rules with argument conditions */
        AIDP_SC_EFFECT_MAX
};
/* Which rules name `name`; returns the effect and, when unconditional, the rule. */
enum aidp_sc_effect aidp_profiles_sc_effect(const struct aidp_sc_policy *p, const char *name,
                                            const struct aidp_sc_rule **rule);
/* Is the action one that lets the call run (allow, log)? */
bool aidp_profiles_sc_permits(enum aidp_sc_action a);
/* Remove `name` from every rule (rules left without names are dropped). */
void aidp_profiles_sc_forget(struct aidp_sc_policy *p, const char *name);
/* Drop rules whose action equals the default (no effect), merge duplicate
 * unconditional names. */
void aidp_profiles_sc_normalize(struct aidp_sc_policy *p);
/* Two rules for one syscall that cannot both hold: an unconditional rule next
 * to another rule, or identical conditions with different actions. Returns
 * the syscall name or NULL. */
const char *aidp_profiles_sc_contradiction(const struct aidp_sc_policy *p);
/* Text of an argument condition: "arg0 & 0x7e020000 == 0", "arg1 == 3". */
void aidp_profiles_sc_arg_str(const struct aidp_sc_arg *a, char *buf, size_t n);
