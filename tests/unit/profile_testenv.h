#pragma once
/* An in-memory profile environment for the pure profile tests: files are
 * (path, text) pairs, devices a list of paths that "exist". */
#include <errno.h>
#include <fnmatch.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/profile_load.h"

struct memfile {
        const char *path;
        const char *text;
};

struct memfs {
        const struct memfile *files;
        size_t n_files;
        const char *const *devices; /* NULL-terminated */
        const char *real_dir;       /* if set, other paths are read from disk */
};

static inline int memfs_read(void *ctx, const char *path, char **buf, size_t *len, aidp_error *err)
{
        const struct memfs *fs = ctx;
        (void)err;
        for (size_t i = 0; i < fs->n_files; i++)
                if (!strcmp(fs->files[i].path, path)) {
                        *buf = strdup(fs->files[i].text);
                        *len = strlen(fs->files[i].text);
                        return *buf ? 0 : -ENOMEM;
                }
        if (fs->real_dir) {
                FILE *f = fopen(path, "rb");
                if (!f)
                        return -ENOENT;
                char *b = malloc(AIDP_PROFILE_MAX_BYTES + 1);
                size_t n = b ? fread(b, 1, AIDP_PROFILE_MAX_BYTES, f) : 0;
                fclose(f);
                if (!b)
                        return -ENOMEM;
                b[n] = '\0';
                *buf = b;
                *len = n;
                return 0;
        }
        return -ENOENT;
}

static inline int memfs_devices(void *ctx, const char *pattern, char ***paths, aidp_error *err)
{
        const struct memfs *fs = ctx;
        (void)err;
        size_t n = 0;
        for (const char *const *d = fs->devices; d && *d; d++)
                n++;
        char **out = calloc(n + 1, sizeof *out);
        int k = 0;
        for (const char *const *d = fs->devices; d && *d; d++)
                if (fnmatch(pattern, *d, FNM_PATHNAME) == 0)
                        out[k++] = strdup(*d);
        *paths = out;
        return k;
}

static inline struct aidp_profile_env memfs_env(struct memfs *fs, const char *const *search,
                                                size_t n_search)
{
        struct aidp_profile_env env = {
                .read_file = memfs_read,
                .expand_devices = fs->devices ? memfs_devices : NULL,
                .ctx = fs,
                .search_path = search,
                .n_search_path = n_search,
                .arch = SCMP_ARCH_X86_64,
                .kernel_major = 6,
                .kernel_minor = 1,
        };
        return env;
}

/* Load one YAML text as "p.yaml" with extra files around it. */
static inline int load_text(const char *yaml, const struct memfile *files, size_t n_files,
                            struct aidp_profile *out, struct aidp_lint_list *lints, aidp_error *err)
{
        struct memfs fs = {.files = files, .n_files = n_files};
        static const char *const search[] = {"lib"};
        struct aidp_profile_env env = memfs_env(&fs, search, 1);
        return aidp_profile_load_buffer("p.yaml", yaml, strlen(yaml), &env, out, lints, err);
}

static inline const struct aidp_lint *find_lint(const struct aidp_lint_list *l, const char *code)
{
        for (size_t i = 0; i < l->n; i++)
                if (!strcmp(l->items[i].code, code))
                        return &l->items[i];
        return NULL;
}
