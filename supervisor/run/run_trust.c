/* A user caller's limits and paths (run_trust.h, docs/security.md). */
#define _GNU_SOURCE
#include "supervisor/run/run_trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "profiles/profile_load.h"
#include "profiles/units.h"
#include "supervisor/sandbox/ascaller.h"
#include "supervisor/sandbox/sandbox.h"

void aidp_run_caller_paths_init(struct aidp_run_caller_paths *p)
{
        memset(p, 0, sizeof *p);
        for (size_t i = 0; i < AIDP_RUN_MAX_DATA; i++)
                p->data[i] = -1;
        p->cwd_tree = p->output_dir = -1;
}

void aidp_run_caller_paths_free(struct aidp_run_caller_paths *p)
{
        for (size_t i = 0; i < AIDP_RUN_MAX_DATA; i++)
                if (p->data[i] >= 0)
                        close(p->data[i]);
        for (size_t i = 0; i < p->n_bind_trees; i++)
                if (p->bind_trees[i] >= 0)
                        close(p->bind_trees[i]);
        free(p->bind_trees);
        if (p->cwd_tree >= 0)
                close(p->cwd_tree);
        if (p->output_dir >= 0)
                close(p->output_dir);
        aidp_run_caller_paths_init(p);
}

enum limit_unit { BYTES, MILLICPUS, SECONDS, COUNT };

/* A limit as the user writes it: 5 GiB, 1.5 CPUs, 90s, 1024. */
static void limit_str(uint64_t v, enum limit_unit u, char *out, size_t len)
{
        if (u == BYTES)
                aidp_profiles_fmt_size(out, len, v);
        else if (u == SECONDS)
                aidp_profiles_fmt_duration(out, len, v);
        else if (u == MILLICPUS && v % 1000)
                snprintf(out, len, "%.3g CPUs", (double)v / 1000);
        else if (u == MILLICPUS)
                snprintf(out, len, "%llu CPU%s", (unsigned long long)(v / 1000),
                         v == 1000 ? "" : "s");
        else
                snprintf(out, len, "%llu", (unsigned long long)v);
}

/* 0 in a profile means "no limit": any value lowers it. */
static int lower_only(const char *opt, enum limit_unit u, uint64_t asked, uint64_t profile,
                      const char *name, aidp_error *err)
{
        if (!asked || !profile || asked <= profile)
                return 0;
        char a[48], p[48];
        limit_str(asked, u, a, sizeof a);
        limit_str(profile, u, p, sizeof p);
        return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                              "%s %s is above profile %s's %s: users may only lower a profile's "
                              "limits (a profile that allows more: 'aidp profile list', then "
                              "--profile NAME)",
                              opt, a, name && *name ? name : "(default)", p);
}

int aidp_run_trust_limits(const struct aidp_limits *p, const char *name,
                          const struct aidp_run_opts *o, aidp_error *err)
{
        int r;
        if ((r = lower_only("--memory", BYTES, o->memory_bytes, p->memory_bytes, name, err)) < 0 ||
            (r = lower_only("--cpus", MILLICPUS, o->cpu_millis, p->cpu_millis, name, err)) < 0 ||
            (r = lower_only("--pids", COUNT, o->pids, p->pids, name, err)) < 0 ||
            (r = lower_only("--timeout", SECONDS, o->timeout_seconds, p->wall_seconds, name, err)) <
                    0 ||
            (r = lower_only("--tmp-size", BYTES, o->tmp_bytes, p->tmp_bytes, name, err)) < 0 ||
            (r = lower_only("--scratch-size", BYTES, o->scratch_bytes, p->scratch_bytes, name,
                            err)) < 0 ||
            (r = lower_only("--out-size", BYTES, o->out_bytes, p->out_bytes, name, err)) < 0 ||
            (r = lower_only("--shm-size", BYTES, o->shm_bytes,
                            p->shm_bytes ? p->shm_bytes : p->tmp_bytes, name, err)) < 0)
                return r;
        for (int i = 0; i < AIDP_RLIMIT_SLOTS; i++) {
                if (!o->rlimits[i].set)
                        continue;
                /* Without a profile value the job inherits the supervisor's
                 * own (reset at start, procstate.c). */
                uint64_t cap;
                struct rlimit cur;
                if (p->rlimits[i].set)
                        cap = p->rlimits[i].hard;
                else if (getrlimit(i, &cur) == 0)
                        cap = cur.rlim_max == RLIM_INFINITY ? UINT64_MAX : cur.rlim_max;
                else
                        cap = 0;
                if (o->rlimits[i].hard > cap)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                              "--rlimit %s: a hard limit above the profile's is "
                                              "for admins only; users may only lower limits",
                                              aidp_profiles_rlimit_name(i));
        }
        return 0;
}

static bool clean_abs_path(const char *p)
{
        size_t l = p ? strlen(p) : 0;
        return l && p[0] == '/' && !strstr(p, "/../") && !strstr(p, "/./") && !strstr(p, "//") &&
               !(l >= 3 && !strcmp(p + l - 3, "/..")) && !(l >= 2 && !strcmp(p + l - 2, "/."));
}

static bool within(const char *path, const char *dir)
{
        size_t l = strlen(dir);
        return !strncmp(path, dir, l) && (path[l] == '\0' || path[l] == '/');
}

/* aidp's own state, root's alone: keys, policy, lineage. */
static const char *const own_dirs[] = {"/etc/aidp", "/var/lib/aidp", "/run/aidp"};

static bool reserved(const char *path)
{
        if (aidp_profile_bind_path_reserved(path))
                return true;
        /* The sandbox's built-in masks hold against a caller's bind too:
         * neither a source nor a target there (also by an fd's real path). */
        for (size_t i = 0; aidp_sandbox_masked_paths[i]; i++)
                if (within(path, aidp_sandbox_masked_paths[i]))
                        return true;
        for (size_t i = 0; i < sizeof own_dirs / sizeof own_dirs[0]; i++)
                if (within(path, own_dirs[i]))
                        return true;
        return false;
}

int aidp_run_trust_bind(const struct aidp_run_bind *b, aidp_error *err)
{
        const char *opt = b->writable ? "--bind" : "--ro-bind";
        const char *dst = b->target ? b->target : b->source;
        if (!clean_abs_path(b->source) || !clean_abs_path(dst))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "%s %s%s%s: paths must be absolute, without '.' or '..'", opt,
                                      b->source, b->target ? ":" : "", b->target ? b->target : "");
        const char *bad = reserved(b->source) ? b->source : reserved(dst) ? dst : NULL;
        if (bad)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "%s %s%s%s: %s is reserved (/, /proc, /dev, /sys, aidp's "
                                      "own /etc/aidp, /var/lib/aidp, /run/aidp and what the "
                                      "sandbox always masks, such as /etc/shadow or /etc/ssh, "
                                      "are never bound from the command line)",
                                      opt, b->source, b->target ? ":" : "",
                                      b->target ? b->target : "", bad);
        return 0;
}

const char *aidp_run_output_dir_label(const struct aidp_run_opts *o)
{
        return o->peer && o->peer->output_dir_label ? o->peer->output_dir_label : "--output-dir";
}

const char *aidp_run_cwd_label(const struct aidp_run_opts *o)
{
        if (o->peer && o->peer->cwd_label)
                return o->peer->cwd_label;
        return o->cwd ? "--cwd" : "the working directory";
}

/* What the fd really is, for the reserved-path rule: the path the caller
 * typed or the label a client gave proves nothing (a symlink into /run/aidp
 * passes a check of the text). */
static int fd_path(int fd, char *buf, size_t size)
{
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, buf, size - 1);
        if (n < 0 || (size_t)n >= size - 1)
                return -1;
        buf[n] = '\0';
        return 0;
}

/* A tree or directory opened for the caller (not a file it reads): refused
 * when what it really is lies in a reserved place. */
static int check_real(int fd, const char *opt, const char *path, aidp_error *err)
{
        char real[4096] = "";
        if (fd_path(fd, real, sizeof real) < 0 || reserved(real))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "%s %s: the file passed is %s, which is reserved "
                                      "(never bound or written for a caller)",
                                      opt, path, real);
        return 0;
}

static int clone_tree(int fd, const char *opt, const char *path, int *ret, aidp_error *err)
{
        /* In our own mount namespace, where the caller's fd was opened: a
         * clone made in the sandbox's new namespace would fail (EINVAL). */
        int t = open_tree(fd, "",
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (t < 0)
                return aidp_error_errno(err, AIDP_EXIT_USAGE, errno, "%s %s", opt, path);
        *ret = t;
        return 0;
}

static int reserved_cwd(const char *cwd, aidp_error *err)
{
        return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                              "working directory %s: reserved, never bound into the sandbox "
                              "(use --no-cwd or --cwd DIR)",
                              cwd);
}

/* One request list for the helper: data, binds, cwd, output dir. */
struct plan {
        struct aidp_ascaller_req req[AIDP_RUN_MAX_DATA + 64 + 2];
        const char *opt[AIDP_RUN_MAX_DATA + 64 + 2];
        size_t n;
};

static void plan_add(struct plan *p, const char *opt, const char *path, enum aidp_ascaller_how how)
{
        p->opt[p->n] = opt;
        p->req[p->n++] = (struct aidp_ascaller_req){.path = path, .how = how};
}

/* Data, binds, cwd, output dir: the order of every fd list below. */
static void make_plan(const struct aidp_run_opts *o, const char *cwd, struct plan *pl)
{
        memset(pl, 0, sizeof *pl);
        for (size_t i = 0; i < o->n_data; i++)
                plan_add(pl, "--data", o->data[i], AIDP_ASCALLER_READ);
        for (size_t i = 0; i < o->n_binds; i++)
                plan_add(pl, o->binds[i].writable ? "--bind" : "--ro-bind", o->binds[i].source,
                         o->binds[i].writable ? AIDP_ASCALLER_TREE_RW : AIDP_ASCALLER_TREE);
        if (cwd)
                plan_add(pl, aidp_run_cwd_label(o), cwd, AIDP_ASCALLER_DIR);
        if (o->output_dir)
                plan_add(pl, aidp_run_output_dir_label(o), o->output_dir,
                         AIDP_ASCALLER_DIR_WRITABLE);
}

static int take_fds(const struct aidp_run_opts *o, const char *cwd, size_t n_binds_total,
                    const struct plan *pl, int *fds, struct aidp_run_caller_paths *ret,
                    aidp_error *err)
{
        size_t k = 0;
        for (size_t i = 0; i < o->n_data; i++, k++)
                ret->data[i] = fds[k], fds[k] = -1;
        ret->n_bind_trees = n_binds_total;
        ret->bind_trees = malloc((n_binds_total ? n_binds_total : 1) * sizeof(int));
        if (!ret->bind_trees)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t i = 0; i < n_binds_total; i++)
                ret->bind_trees[i] = -1;
        for (size_t i = 0; i < o->n_binds; i++, k++) {
                int r = clone_tree(fds[k], pl->opt[k], pl->req[k].path,
                                   &ret->bind_trees[n_binds_total - o->n_binds + i], err);
                if (r < 0)
                        return r;
        }
        if (cwd) {
                int r = clone_tree(fds[k], pl->opt[k], cwd, &ret->cwd_tree, err);
                if (r < 0)
                        return r;
                k++;
        }
        if (o->output_dir)
                ret->output_dir = fds[k], fds[k] = -1;
        return 0;
}

int aidp_run_open_caller_paths(const struct aidp_run_opts *o, uid_t uid, gid_t gid, const char *cwd,
                               size_t n_binds_total, struct aidp_run_caller_paths *ret,
                               aidp_error *err)
{
        aidp_run_caller_paths_init(ret);
        if (o->n_binds > 64 || o->n_binds > n_binds_total)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG, "at most 64 binds");
        if (cwd && reserved(cwd))
                return reserved_cwd(cwd, err);
        struct plan pl;
        make_plan(o, cwd, &pl);
        struct aidp_ascaller who;
        int r = aidp_ascaller_for_uid(uid, gid, &who, err);
        if (r < 0)
                return r;
        int fds[AIDP_RUN_MAX_DATA + 64 + 2], errs[AIDP_RUN_MAX_DATA + 64 + 2];
        if ((r = aidp_ascaller_open(&who, pl.req, pl.n, fds, errs, err)) < 0)
                return r;
        for (size_t i = 0; i < pl.n && r == 0; i++)
                if (fds[i] < 0)
                        r = aidp_error_set(err, AIDP_EXIT_USAGE, errs[i], "%s %s: %s (as uid %u)",
                                           pl.opt[i], pl.req[i].path,
                                           aidp_ascaller_strerror(pl.req[i].how, errs[i]),
                                           (unsigned)uid);
                else if (pl.req[i].how != AIDP_ASCALLER_READ)
                        r = check_real(fds[i], pl.opt[i], pl.req[i].path, err);
        if (r == 0)
                r = take_fds(o, cwd, n_binds_total, &pl, fds, ret, err);
        for (size_t i = 0; i < pl.n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        if (r < 0)
                aidp_run_caller_paths_free(ret);
        return r;
}

int aidp_run_open_cwd_as(const char *opt, uid_t uid, gid_t gid, const char *cwd, int *ret_tree,
                         aidp_error *err)
{
        *ret_tree = -1;
        if (reserved(cwd))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "%s %s: reserved, never bound into the sandbox (use "
                                      "--no-cwd or --cwd DIR)",
                                      opt, cwd);
        struct aidp_ascaller who;
        int r = aidp_ascaller_for_uid(uid, gid, &who, err);
        if (r < 0)
                return r;
        struct aidp_ascaller_req q = {.path = cwd, .how = AIDP_ASCALLER_DIR};
        int fd = -1, e = 0;
        if ((r = aidp_ascaller_open(&who, &q, 1, &fd, &e, err)) < 0)
                return r;
        if (fd < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, e, "%s %s: %s (as uid %u)", opt, cwd,
                                      aidp_ascaller_strerror(q.how, e), (unsigned)uid);
        r = check_real(fd, opt, cwd, err);
        if (r == 0)
                r = clone_tree(fd, opt, cwd, ret_tree, err);
        close(fd);
        return r;
}

/* The peer's fds in plan order (borrowed), or -1 where one is missing. */
static int peer_fds(const struct aidp_run_opts *o, const char *cwd, int *fds, aidp_error *err)
{
        const struct aidp_run_peer *pe = o->peer;
        size_t k = 0;
        for (size_t i = 0; i < o->n_data; i++)
                fds[k++] = pe->data_fds[i];
        for (size_t i = 0; i < o->n_binds; i++)
                fds[k++] = pe->bind_fds[i];
        if (cwd) {
                if (pe->cwd_fd < 0)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EBADF,
                                              "the working directory was not passed (give "
                                              "--cwd DIR with its fd, or --no-cwd)");
                fds[k++] = pe->cwd_fd;
        }
        if (o->output_dir) {
                if (pe->output_dir_fd < 0)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EBADF, "%s %s: no fd passed",
                                              aidp_run_output_dir_label(o), o->output_dir);
                fds[k++] = pe->output_dir_fd;
        }
        return (int)k;
}

int aidp_run_take_peer_paths(const struct aidp_run_opts *o, const char *cwd, size_t n_binds_total,
                             struct aidp_run_caller_paths *ret, aidp_error *err)
{
        aidp_run_caller_paths_init(ret);
        if (o->n_binds > 64 || o->n_binds > n_binds_total)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG, "at most 64 binds");
        /* The label is the target inside the sandbox: the same rule as a path. */
        if (cwd && reserved(cwd))
                return reserved_cwd(cwd, err);
        struct plan pl;
        make_plan(o, cwd, &pl);
        int src[AIDP_RUN_MAX_DATA + 64 + 2], fds[AIDP_RUN_MAX_DATA + 64 + 2];
        int errs[AIDP_RUN_MAX_DATA + 64 + 2];
        enum aidp_ascaller_how how[AIDP_RUN_MAX_DATA + 64 + 2];
        int r = peer_fds(o, cwd, src, err);
        if (r < 0)
                return r;
        struct aidp_ascaller who = {.uid = o->peer->uid, .gid = o->peer->gid};
        for (size_t i = 0; i < o->peer->n_groups && i < AIDP_ASCALLER_MAX_GROUPS; i++)
                who.groups[who.n_groups++] = o->peer->groups[i];
        for (size_t i = 0; i < pl.n; i++)
                how[i] = pl.req[i].how;
        if ((r = aidp_ascaller_check_fds(&who, src, how, pl.n, errs, err)) < 0)
                return r;
        for (size_t i = 0; i < pl.n; i++) {
                if (errs[i])
                        return aidp_error_set(err, AIDP_EXIT_USAGE, errs[i],
                                              "%s %s: %s (as uid %u)", pl.opt[i], pl.req[i].path,
                                              aidp_ascaller_strerror(pl.req[i].how, errs[i]),
                                              (unsigned)who.uid);
                if (pl.req[i].how != AIDP_ASCALLER_READ &&
                    (r = check_real(src[i], pl.opt[i], pl.req[i].path, err)) < 0)
                        return r;
        }
        for (size_t i = 0; i < pl.n; i++)
                fds[i] = -1;
        for (size_t i = 0; i < pl.n && r == 0; i++)
                if ((fds[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
                        r = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "dup");
        if (r == 0)
                r = take_fds(o, cwd, n_binds_total, &pl, fds, ret, err);
        for (size_t i = 0; i < pl.n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        if (r < 0)
                aidp_run_caller_paths_free(ret);
        return r;
}
