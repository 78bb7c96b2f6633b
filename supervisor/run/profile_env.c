#include "supervisor/run/profile_env.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/cleanup.h"

#ifndef AIDP_SHARE_PROFILES
#define AIDP_SHARE_PROFILES "/usr/local/share/aidp/profiles"
#endif

static int read_fd(int fd, const char *path, char **buf, size_t *len, aidp_error *err);

static int host_read(void *ctx, const char *path, char **buf, size_t *len, aidp_error *err)
{
        (void)ctx;
        /* O_NONBLOCK: a FIFO named as a profile must not hang root. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return -ENOENT;
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "cannot open %s", path);
        }
        return read_fd(fd, path, buf, len, err);
}

/* A user's profile comes only from the installed library: every file of the
 * extends/import chain root-owned, written by nobody else, readable by
 * everyone (so no error quoting it can reveal what the caller could not
 * read), in a directory root alone can write. */
static int library_read(void *ctx, const char *path, char **buf, size_t *len, aidp_error *err)
{
        (void)ctx;
        const char *slash = strrchr(path, '/');
        if (!slash || !slash[1])
                return -ENOENT;
        _cleanup_free_ char *dir =
                slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
        if (!dir)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -ENOENT;
        _cleanup_close_ int fd =
                openat(dfd, slash + 1, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
        if (fd < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return -ENOENT;
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "cannot open %s", path);
        }
        struct stat ds, st;
        if (fstat(dfd, &ds) < 0 || fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "cannot stat %s", path);
        if (ds.st_uid != 0 || (ds.st_mode & (S_IWGRP | S_IWOTH)) || st.st_uid != 0 ||
            (st.st_mode & (S_IWGRP | S_IWOTH)) || !(st.st_mode & S_IROTH) || !S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EPERM,
                                      "%s: not an installed library profile (a user's profile "
                                      "must be a root-owned, world-readable file that only root "
                                      "can write, in a directory only root can write)",
                                      path);
        return read_fd(fd, path, buf, len, err);
}

static int read_fd(int fd, const char *path, char **buf, size_t *len, aidp_error *err)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "cannot stat %s", path);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(
                        err, AIDP_EXIT_CONFIG, EINVAL,
                        "%s: found something other than a regular file, expected a profile file",
                        path);
        if ((uint64_t)st.st_size > AIDP_PROFILE_MAX_BYTES)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG,
                                      "%s: %lld bytes, expected at most %u", path,
                                      (long long)st.st_size, AIDP_PROFILE_MAX_BYTES);
        if (fcntl(fd, F_SETFL, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "cannot read %s", path);
        size_t cap = (size_t)st.st_size + 1, n = 0;
        _cleanup_free_ char *b = malloc(cap);
        if (!b)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (;;) {
                ssize_t r = read(fd, b + n, cap - 1 - n);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "cannot read %s",
                                                path);
                }
                if (r == 0)
                        break;
                n += (size_t)r;
                if (n == cap - 1)
                        break; /* the file grew: keep what fstat promised */
        }
        b[n] = '\0';
        *buf = TAKE_PTR(b);
        *len = n;
        return 0;
}

static int host_devices(void *ctx, const char *pattern, char ***paths, aidp_error *err)
{
        (void)ctx;
        glob_t g;
        int rc = glob(pattern, 0, NULL, &g);
        if (rc == GLOB_NOMATCH) {
                *paths = NULL;
                return 0;
        }
        if (rc != 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EIO, "cannot expand %s", pattern);
        char **out = calloc(g.gl_pathc + 1, sizeof *out);
        int n = 0;
        if (!out) {
                globfree(&g);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
                struct stat st;
                if (stat(g.gl_pathv[i], &st) < 0)
                        continue;
                if (!S_ISCHR(st.st_mode)) {
                        /* /dev/nvidia-caps is a directory: a glob may brush past it. */
                        if (!strpbrk(pattern, "*?["))
                                rc = aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                                    "%s: found something other than a character "
                                                    "device, expected a character device",
                                                    g.gl_pathv[i]);
                        continue;
                }
                if (!(out[n] = strdup(g.gl_pathv[i]))) {
                        rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                        break;
                }
                n++;
        }
        globfree(&g);
        if (rc != 0) {
                for (int i = 0; i < n; i++)
                        free(out[i]);
                free(out);
                return rc < 0 ? rc : -EINVAL;
        }
        *paths = out;
        return n;
}

#ifdef AIDP_SOURCE_PROFILES
/* The source tree's profiles/ is searched only by a binary running from the
 * build tree it was built in (developers, the test suite). The same binary
 * installed with `cmake --install` or from the .deb finds the installed
 * library only and never reads the tree it was built from. */
static bool in_build_tree(void)
{
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
                return false;
        exe[n] = '\0';
        size_t bl = strlen(AIDP_BUILD_DIR);
        return !strncmp(exe, AIDP_BUILD_DIR, bl) && exe[bl] == '/';
}
#endif

int aidp_profile_host_init(struct aidp_profile_host *h, bool check_devices, aidp_error *err)
{
        memset(h, 0, sizeof *h);
        size_t n = 0;
        const char *env = getenv("AIDP_PROFILE_PATH");
        if (env && *env) {
                h->path_copy = strdup(env);
                if (!h->path_copy)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                char *save = NULL;
                for (char *d = strtok_r(h->path_copy, ":", &save);
                     d && n < AIDP_PROFILE_PATH_MAX_DIRS - 2; d = strtok_r(NULL, ":", &save))
                        h->dirs[n++] = d;
        }
        h->dirs[n++] = AIDP_SHARE_PROFILES;
#ifdef AIDP_SOURCE_PROFILES
        if (in_build_tree())
                h->dirs[n++] = AIDP_SOURCE_PROFILES;
#endif
        h->env.read_file = host_read;
        h->env.expand_devices = check_devices ? host_devices : NULL;
        h->env.search_path = h->dirs;
        h->env.n_search_path = n;
        struct utsname u;
        if (uname(&u) == 0 &&
            sscanf(u.release, "%u.%u", &h->env.kernel_major, &h->env.kernel_minor) != 2)
                h->env.kernel_major = h->env.kernel_minor = 0;
        return 0;
}

void aidp_profile_host_free(struct aidp_profile_host *h)
{
        free(h->path_copy);
        memset(h, 0, sizeof *h);
}

int aidp_profile_host_load(const char *name_or_path, bool check_devices, struct aidp_profile *out,
                           struct aidp_lint_list *lints, aidp_error *err)
{
        return aidp_profile_host_check(name_or_path, check_devices, out, lints, NULL, err);
}

int aidp_profile_host_check(const char *name_or_path, bool check_devices, struct aidp_profile *out,
                            struct aidp_lint_list *lints, struct aidp_profile_errors *errors,
                            aidp_error *err)
{
        struct aidp_profile_host h;
        int rc = aidp_profile_host_init(&h, check_devices, err);
        if (rc < 0)
                return rc;
        h.env.errors = errors;
        rc = aidp_profile_load(name_or_path, &h.env, out, lints, err);
        aidp_profile_host_free(&h);
        return rc;
}

/* The traced variant's context: each file the load asked for, found or not,
 * and whether devices were expanded (warm_profile.c). */
static int traced_read(void *ctx, const char *path, char **buf, size_t *len, aidp_error *err)
{
        struct aidp_profile_trace *t = ctx;
        int rc = library_read(NULL, path, buf, len, err);
        if (t->n < AIDP_PROFILE_TRACE_MAX) {
                snprintf(t->paths[t->n], sizeof t->paths[t->n], "%s", path);
                t->n++;
                if (strlen(path) >= sizeof t->paths[0])
                        t->overflow = true;
        } else
                t->overflow = true;
        return rc;
}

static int traced_devices(void *ctx, const char *pattern, char ***paths, aidp_error *err)
{
        struct aidp_profile_trace *t = ctx;
        t->devices = true;
        return host_devices(NULL, pattern, paths, err);
}

int aidp_profile_host_load_library_traced(const char *name, struct aidp_profile *out,
                                          struct aidp_profile_trace *trace, aidp_error *err)
{
        memset(trace, 0, sizeof *trace);
        if (aidp_profile_ref_is_path(name))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM, "%s: not a library name", name);
        struct aidp_profile_host h;
        int rc = aidp_profile_host_init(&h, true, err);
        if (rc < 0)
                return rc;
        h.env.read_file = traced_read;
        h.env.expand_devices = traced_devices;
        h.env.ctx = trace;
        rc = aidp_profile_load(name, &h.env, out, NULL, err);
        aidp_profile_host_free(&h);
        return rc;
}

int aidp_profile_host_load_library(const char *name, bool check_devices, struct aidp_profile *out,
                                   aidp_error *err)
{
        if (aidp_profile_ref_is_path(name))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "--profile %s: users may run installed library profiles "
                                      "only, by name (aidp profile list; an admin may run a "
                                      "file)",
                                      name);
        struct aidp_profile_host h;
        int rc = aidp_profile_host_init(&h, check_devices, err);
        if (rc < 0)
                return rc;
        h.env.read_file = library_read;
        rc = aidp_profile_load(name, &h.env, out, NULL, err);
        aidp_profile_host_free(&h);
        return rc;
}
