#pragma once
/* Loading a profile: YAML text -> the effective struct aidp_profile.
 *
 * profiles/ is pure: it never opens a file, stats a device or reads the
 * clock. Everything that needs the host comes in through struct
 * aidp_profile_env, which supervisor/run/profile_env.c fills for real use and
 * tests fill with in-memory fakes. docs/profiles.md documents the language.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "profiles/profile.h"

/* Largest profile or seccomp JSON file a reader should hand over. */
#define AIDP_PROFILE_MAX_BYTES (4u << 20)

struct aidp_profile_env {
        /* Read a whole file. Return 0 and a malloc'd buffer (NUL-terminated,
         * *len excludes the NUL), -ENOENT when it does not exist (the loader
         * then tries the next library directory), or another negative errno
         * with *err filled. Required. */
        int (*read_file)(void *ctx, const char *path, char **buf, size_t *len, aidp_error *err);
        /* Expand a device path or glob to the character devices that exist on
         * this host. Return the number found (>= 0) with a malloc'd array of
         * malloc'd paths, or < 0 with *err filled. NULL: devices are kept as
         * written and not checked (explain/diff of a profile for another host). */
        int (*expand_devices)(void *ctx, const char *pattern, char ***paths, aidp_error *err);
        void *ctx;
        /* Library directories searched for a profile given by name, in order. */
        const char *const *search_path;
        size_t n_search_path;
        /* Architecture the seccomp policy is for (SCMP_ARCH_*); 0 = native. */
        uint32_t arch;
        /* Running kernel, for Docker `minKernel` conditions; 0.0 = assume new enough. */
        unsigned kernel_major, kernel_minor;
        /* NULL: a load stops at its first error. Else (profile check) it goes
         * on where it can (the next key, section, rule, name or list item) and
         * gathers up to AIDP_PROFILE_ERRORS_MAX errors here; it still fails,
         * with the first of them in *err. */
        struct aidp_profile_errors *errors;
};

#define AIDP_PROFILE_ERRORS_MAX 20

struct aidp_profile_errors {
        aidp_error items[AIDP_PROFILE_ERRORS_MAX];
        size_t n;
        bool more; /* the cap was reached: the load stopped there */
};

enum aidp_lint_level {
        AIDP_LINT_NOTE,    /* worth knowing, never fails a check */
        AIDP_LINT_WARNING, /* fails `aidp profile check --strict` */
        AIDP_LINT_LEVEL_MAX
};

struct aidp_lint {
        enum aidp_lint_level level;
        char code[32];   /* stable identifier, e.g. "capability-granted" */
        char where[320]; /* "file:line:col" of the item when known, else "" */
        char msg[512];
};

struct aidp_lint_list {
        struct aidp_lint *items;
        size_t n;
};

void aidp_lint_list_free(struct aidp_lint_list *l);
const char *aidp_lint_level_name(enum aidp_lint_level l);

/* Load NAME_OR_PATH with its parents into *out (initialised here; free it
 * with aidp_profile_free). A value containing '/' or ending in ".yaml"/".yml"
 * is a path; anything else is a library name looked up as NAME.yaml in
 * env->search_path. Lints (may be NULL) receive the warnings about the
 * effective profile. On error *out is left empty and err names
 * file:line:col, the key path, what was found and what was expected; the
 * status is AIDP_EXIT_CONFIG. */
int aidp_profile_load(const char *name_or_path, const struct aidp_profile_env *env,
                      struct aidp_profile *out, struct aidp_lint_list *lints, aidp_error *err);

/* Same, from a buffer already in memory; `file` names it in errors and is the
 * base for relative `extends`/`import` paths. Parents still go through env. */
int aidp_profile_load_buffer(const char *file, const char *buf, size_t len,
                             const struct aidp_profile_env *env, struct aidp_profile *out,
                             struct aidp_lint_list *lints, aidp_error *err);

/* Is ref a path (contains '/', ends in .yaml/.yml) rather than a library
 * name? Users may name library profiles only (docs/security.md). */
bool aidp_profile_ref_is_path(const char *ref);
/* A path the sandbox builds itself or aidp's own state ("/", /proc, /dev,
 * /sys, /run/aidp and below): refused as a bind target, and as the source of
 * a command-line bind. */
bool aidp_profile_bind_path_reserved(const char *path);

/* Lint an effective profile (load does this already when lints != NULL). */
int aidp_profile_lint(const struct aidp_profile *p, const struct aidp_profile_env *env,
                      struct aidp_lint_list *lints, aidp_error *err);

/* The effective profile in readable form (malloc'd). */
int aidp_profile_explain(const struct aidp_profile *p, const struct aidp_profile_env *env,
                         char **text, aidp_error *err);

/* A canonical, order-independent text of what is enforced (no name, source
 * or description); profile->digest is its SHA-256. */
int aidp_profile_canonical(const struct aidp_profile *p, char **text, aidp_error *err);

/* What changes from A to B, one line per item:
 *   "loosen|tighten|change <key>: <A> -> <B>"
 * *n_loosen counts the loosening lines. Empty text = no difference. */
int aidp_profile_diff(const struct aidp_profile *a, const struct aidp_profile *b,
                      const struct aidp_profile_env *env, char **text, size_t *n_loosen,
                      aidp_error *err);

/* Write an allowlist profile (YAML, malloc'd) named `name` that extends
 * `base` (may be NULL) and allows exactly the given syscall numbers of the
 * native/env architecture; used by `aidp profile learn`. */
int aidp_profile_write_allowlist(const char *name, const char *base, const int *nrs, size_t n,
                                 const struct aidp_profile_env *env, char **yaml, aidp_error *err);
