#define _GNU_SOURCE
/* The front of the cgroup layer: picks the backend once (cgroup_v1.c or
 * cgroup_v2.c, by the filesystem at /sys/fs/cgroup) and drives it through its
 * ops table. What is the same on both lives here: names, the retry when
 * another run removes the shared "aidp" parent, all-or-nothing creation,
 * the background helper, and teardown. */
#include "supervisor/sandbox/cgroup/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"
#include "supervisor/sandbox/cgroup/cgroup_internal.h"

enum aidp_cgroup_version aidp_cgroup_detect(void)
{
        struct statfs s;
        if (statfs(CG_ROOT, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC)
                return AIDP_CGROUP_V2;
        return AIDP_CGROUP_V1;
}

bool aidp_cgroup_path_gone(const char *path)
{
        if (access(path, F_OK) == 0)
                return false;
        char up[4096];
        snprintf(up, sizeof up, "%s", path);
        for (char *slash; (slash = strrchr(up, '/')) && slash != up;) {
                *slash = '\0';
                struct statfs s;
                if (statfs(up, &s) == 0)
                        return s.f_type == CGROUP2_SUPER_MAGIC || s.f_type == CGROUP_SUPER_MAGIC;
        }
        return false;
}

/* The one place the version is looked at: each run's cgroup keeps its ops. */
static const struct aidp_cgroup_ops *backend(void)
{
        return aidp_cgroup_detect() == AIDP_CGROUP_V2 ? &aidp_cgroup_v2_ops : &aidp_cgroup_v1_ops;
}

int aidp_cgroup_warm(void)
{
        cgfs_warm = true;
        return aidp_cgroup_detect() == AIDP_CGROUP_V1 ? cgv1_warm() : 0;
}

void aidp_cgroup_unwarm(void)
{
        if (!cgfs_warm)
                return;
        if (aidp_cgroup_detect() == AIDP_CGROUP_V1)
                cgv1_unwarm();
        else
                rmdir(CG_ROOT "/aidp");
}

const char *aidp_cgroup_version_name(enum aidp_cgroup_version v)
{
        switch (v) {
        case AIDP_CGROUP_V1: return "v1";
        case AIDP_CGROUP_V2: return "v2";
        case AIDP_CGROUP_VERSION_MAX: break;
        }
        return "?";
}

enum aidp_cgroup_version aidp_cgroup_version_of(const struct aidp_cgroup *cg)
{
        return cg->ops->version;
}

size_t aidp_cgroup_paths(const struct aidp_cgroup *cg, const char **paths, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < cg->n_dirs && n < max; i++)
                paths[n++] = cg->dirs[i].path;
        return n;
}

static void helper_reap(struct aidp_cgroup *cg);

static void cg_free(struct aidp_cgroup *cg)
{
        while (cg->n_task_fds > 0)
                close(cg->task_fds[--cg->n_task_fds]);
        helper_reap(cg);
        cg->ops->release(cg);
        free(cg);
}

/* Undo a failed step: remove what it added to the run's directories (they
 * stay listed, as removed) and forget the indexes that pointed there. */
static void rollback(struct aidp_cgroup *cg, size_t base)
{
        cgfs_remove_dirs_from(cg, base);
        cg->ops->release(cg);
        int *idx[] = {&cg->kill_dir, &cg->procs_dir, &cg->memory_dir, &cg->cpu_dir};
        for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
                if (*idx[i] >= (int)base)
                        *idx[i] = -1;
}

static int check_names(const char *parent, const char *name, aidp_error *err)
{
        if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
            strlen(name) >= sizeof(((struct aidp_cgroup *)0)->name))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "cgroup: bad name '%s'",
                                      name ? name : "");
        if (parent && strstr(parent, ".."))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "cgroup parent '%s' must not contain '..'", parent);
        if (parent && strlen(parent) >= PATH_MAX - 300)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG,
                                      "cgroup parent '%.64s...' is too long", parent);
        return 0;
}

static struct aidp_cgroup *cg_new(const char *parent, const char *name, int intent_fd)
{
        struct aidp_cgroup *cg = calloc(1, sizeof *cg);
        if (!cg)
                return NULL;
        cg->ops = backend();
        cg->kill_dir = cg->procs_dir = cg->memory_dir = cg->cpu_dir = -1;
        cg->helper_fd = -1;
        cg->intent_fd = intent_fd;
        snprintf(cg->parent, sizeof cg->parent, "%s", parent ? parent : "");
        snprintf(cg->name, sizeof cg->name, "%s", name);
        return cg;
}

int aidp_cgroup_begin(const char *parent, const char *name, int intent_fd, struct aidp_cgroup **out,
                      aidp_error *err)
{
        int rc = check_names(parent, name, err);
        if (rc < 0)
                return rc;
        /* Runs share the "aidp" parent, which the last run to end removes;
         * if that happens between our mkdir of the parent and of our own
         * cgroup, the latter fails with ENOENT: then simply start over. */
        struct aidp_cgroup *cg = NULL;
        rc = -ENOENT;
        for (int attempt = 0; attempt < 8 && rc == -ENOENT; attempt++) {
                cg = cg_new(parent, name, intent_fd);
                if (!cg)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                rc = cg->ops->begin(cg, err);
                if (rc < 0) {
                        rollback(cg, 0);
                        cg_free(cg);
                        cg = NULL;
                }
        }
        if (rc < 0)
                return rc;
        *out = cg;
        return 0;
}

/* The rest of the run's directories (create), with the same retry as
 * begin; on failure those made here are removed again. */
static int create_rest(struct aidp_cgroup *cg, size_t base, aidp_error *err)
{
        int rc = -ENOENT;
        /* The same race with another run's end as in begin. */
        for (int attempt = 0; attempt < 8 && rc == -ENOENT; attempt++) {
                rc = cg->ops->create(cg, err);
                if (rc < 0)
                        rollback(cg, base);
        }
        return rc;
}

/* create, then limit; all or nothing: on failure the directories made here
 * are removed again before this returns (those of begin stay, for destroy). */
int aidp_cgroup_finish(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim,
                       aidp_error *err)
{
        size_t base = cg->n_dirs;
        int rc = create_rest(cg, base, err);
        if (rc == 0 && (rc = cg->ops->limit(cg, lim, err)) < 0)
                rollback(cg, base);
        /* The backend's handles are not needed once the directories are
         * there (attach writes cgroupfs; teardown works on the paths):
         * freed now, before pid 1's clone shares these pages, not at
         * teardown. */
        if (rc == 0)
                cg->ops->release(cg);
        return rc;
}

int aidp_cgroup_prepare(const char *parent, const char *name, int intent_fd,
                        const char *const *devices_base, const char *mark, struct aidp_cgroup **out,
                        aidp_error *err)
{
        struct aidp_cgroup *cg = NULL;
        int rc = aidp_cgroup_begin(parent, name, intent_fd, &cg, err);
        if (rc < 0)
                return rc;
        rc = create_rest(cg, cg->n_dirs, err);
        if (rc == 0)
                cgfs_mark_dirs(cg, mark);
        if (rc == 0 && devices_base && cg->ops->devices_ahead) {
                const struct aidp_cgroup_limits base = {.devices_allow = devices_base};
                if ((rc = cg->ops->limit(cg, &base, err)) == 0)
                        cg->dev_ahead = devices_base;
        }
        if (rc < 0) {
                aidp_error e2 = {0};
                aidp_cgroup_destroy(cg, &e2);
                return rc;
        }
        /* The log was the ready cgroup's own; its run logs to its journal
         * (aidp_cgroup_adopt). The fds pid 1 joins the hierarchies by (v1)
         * are opened now too, off the run's path. */
        cg->intent_fd = -1;
        int n = cg->ops->task_fds(cg, cg->task_fds, CG_MAX_DIRS);
        cg->n_task_fds = n > 0 ? n : 0;
        /* The backend's handles (libcgroup's, on v1) go now, in the idle
         * process: the run joins by those fds and teardown works on the
         * directories, so it never needs them, and freeing them at its
         * teardown cost 0.3 ms of copy-on-write faults and frees there. */
        cg->ops->release(cg);
        *out = cg;
        return 0;
}

bool aidp_cgroup_is_empty(const struct aidp_cgroup *cg)
{
        return cgfs_run_empty(cg);
}

int aidp_cgroup_adopt(struct aidp_cgroup *cg, int intent_fd, const struct aidp_cgroup_limits *lim,
                      aidp_error *err)
{
        /* The run's journal names every directory before the run may use
         * it, as if the run had made them (gc removes them after a crash). */
        if (intent_fd < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EBADF,
                                      "cgroup: no run journal's cgroups.log to name the cgroup "
                                      "made ahead (it is not taken)");
        cg->intent_fd = intent_fd;
        int rc = cgfs_intent_all(cg);
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                        "cgroup: the run journal's cgroups.log could not be "
                                        "written (the cgroup made ahead is not taken)");
        /* Now the run's (the journal names it): no longer a ready cgroup a
         * sweep may judge by its maker (on v1 it is empty until pid 1 joins). */
        cgfs_unmark_dirs(cg);
        return cg->ops->limit(cg, lim, err);
}

void aidp_cgroup_forget(struct aidp_cgroup *cg)
{
        if (cg)
                cg_free(cg);
}

/* What the helper process sends back: the outcome and the directories. */
struct helper_msg {
        int32_t rc;
        aidp_error err;
        uint32_t n_dirs;
        int32_t memory_dir, cpu_dir, procs_dir, kill_dir;
        struct cg_dir dirs[CG_MAX_DIRS];
};

/* Kill and reap a helper nobody collected (an error path). */
static void helper_reap(struct aidp_cgroup *cg)
{
        if (cg->helper <= 0)
                return;
        kill(cg->helper, SIGKILL);
        while (waitpid(cg->helper, NULL, 0) < 0 && errno == EINTR)
                ;
        close(cg->helper_fd);
        cg->helper = 0;
        cg->helper_fd = -1;
}

static _Noreturn void helper_main(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim,
                                  pid_t parent, int fd)
{
        prctl(PR_SET_NAME, "aidp-cgroup");
        /* Not on after the supervisor: what it has logged is gc's. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
        static struct helper_msg m;
        aidp_error e = {0};
        m.rc = aidp_cgroup_finish(cg, lim, &e);
        /* Test builds: killed with its directories made, before it tells
         * (AIDP_FAULT_FAIL_AT=cgroup-helper-lost). */
        if (cgfs_fault_at("cgroup-helper-lost"))
                raise(SIGKILL);
        m.err = e;
        m.n_dirs = (uint32_t)cg->n_dirs;
        m.memory_dir = cg->memory_dir;
        m.cpu_dir = cg->cpu_dir;
        m.procs_dir = cg->procs_dir;
        m.kill_dir = cg->kill_dir;
        memcpy(m.dirs, cg->dirs, sizeof m.dirs);
        _exit(aidp_write_all(fd, &m, sizeof m) == 0 ? 0 : 1);
}

int aidp_cgroup_finish_start(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim,
                             aidp_error *err)
{
        if (cg->helper > 0)
                return 0;
        if (!cg->ops->create_in_helper || cgfs_warm)
                return aidp_cgroup_finish(cg, lim, err);
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return aidp_cgroup_finish(cg, lim, err);
        /* fork, not a thread: libcgroup writes through stdio, whose locks the
         * sandbox's pid 1 needs (capng reads /proc/self/status), and pid 1 is
         * cloned while this work goes on. fork's handlers leave those locks usable
         * in the child; the caller's other threads must not be inside libcgroup. */
        pid_t self = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return aidp_cgroup_finish(cg, lim, err);
        }
        if (pid == 0) {
                close(p[0]);
                helper_main(cg, lim, self, p[1]);
        }
        close(p[1]);
        cg->helper = pid;
        cg->helper_fd = p[0];
        return 0;
}

int aidp_cgroup_finish_wait(struct aidp_cgroup *cg, aidp_error *err)
{
        if (cg->helper <= 0)
                return 0;
        static struct helper_msg m;
        memset(&m, 0, sizeof m);
        ssize_t n = aidp_read_all(cg->helper_fd, &m, sizeof m);
        int status = 0;
        while (waitpid(cg->helper, &status, 0) < 0 && errno == EINTR)
                ;
        close(cg->helper_fd);
        cg->helper = 0;
        cg->helper_fd = -1;
        if (n != (ssize_t)sizeof m || m.n_dirs > CG_MAX_DIRS || m.n_dirs < cg->n_dirs) {
                /* It may have made hierarchies that only cgroups.log names
                 * now: destroy leaves them, and the journal, to gc. */
                cg->helper_lost = true;
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                      "cgroup v1: the helper making the run's hierarchies ended "
                                      "without a result (status %d)",
                                      status);
        }
        /* Its directories, whatever came of it: on failure the helper removed
         * what it made (listed as gone), and what is left is removed with the
         * rest. The libcgroup handles stay in the helper: the parent needs
         * none (pid 1 joins by the tasks fds, teardown kills by pid). */
        memcpy(cg->dirs, m.dirs, sizeof cg->dirs);
        cg->n_dirs = m.n_dirs;
        cg->memory_dir = m.memory_dir;
        cg->cpu_dir = m.cpu_dir;
        cg->procs_dir = m.procs_dir;
        cg->kill_dir = m.kill_dir;
        if (m.rc < 0) {
                *err = m.err;
                return m.rc;
        }
        return 0;
}

int aidp_cgroup_create(const char *parent, const char *name, const struct aidp_cgroup_limits *lim,
                       struct aidp_cgroup **out, aidp_error *err)
{
        struct aidp_cgroup *cg = NULL;
        int rc = aidp_cgroup_begin(parent, name, -1, &cg, err);
        if (rc < 0)
                return rc;
        rc = aidp_cgroup_finish(cg, lim, err);
        if (rc < 0) {
                aidp_error e2 = {0};
                aidp_cgroup_destroy(cg, &e2);
                return rc;
        }
        *out = cg;
        return 0;
}

int aidp_cgroup_open_fd(const struct aidp_cgroup *cg)
{
        /* The cgroup2 directory: v2's own, or v1's tracking group. */
        for (size_t i = 0; i < cg->n_dirs; i++)
                if (!cg->dirs[i].gone &&
                    (!cg->dirs[i].controller[0] || !strcmp(cg->dirs[i].controller, "unified")))
                        return open(cg->dirs[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return -1;
}

int aidp_cgroup_task_fds(struct aidp_cgroup *cg, int *fds, size_t max)
{
        if (cg->n_task_fds > 0 && (size_t)cg->n_task_fds <= max) {
                int n = cg->n_task_fds;
                memcpy(fds, cg->task_fds, (size_t)n * sizeof *fds);
                cg->n_task_fds = 0;
                return n;
        }
        return cg->ops->task_fds(cg, fds, max);
}

int aidp_cgroup_charge_begin(struct aidp_cgroup *cg, int *back_fd, aidp_error *err)
{
        *back_fd = -1;
        if (cg->memory_dir < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOENT,
                                      "the run has no memory cgroup to charge its data to");
        char home[PATH_MAX], procs[PATH_MAX + 16];
        int rc = cg->ops->memory_home(home, sizeof home);
        if (rc == 0)
                rc = cgfs_path(procs, sizeof procs, "%s/cgroup.procs", home);
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                        "finding the supervisor's own memory cgroup");
        /* The way back is opened first: the supervisor must never stay in
         * the run's cgroup, whose end kills everything in it. */
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "opening %s", procs);
        rc = cgfs_write(cg->dirs[cg->memory_dir].path, "cgroup.procs", "0");
        if (rc < 0) {
                close(fd);
                return aidp_error_errno(
                        err, AIDP_EXIT_INTERNAL, -rc,
                        "moving the supervisor into %s to charge the data to the run",
                        cg->dirs[cg->memory_dir].path);
        }
        *back_fd = fd;
        return 0;
}

int aidp_cgroup_charge_end(int *back_fd)
{
        if (*back_fd < 0)
                return 0;
        int rc = write(*back_fd, "0", 1) == 1 ? 0 : -errno;
        close(*back_fd);
        *back_fd = -1;
        return rc;
}

int aidp_cgroup_attach(struct aidp_cgroup *cg, pid_t pid, bool cloned_into, aidp_error *err)
{
        return cg->ops->attach(cg, pid, cloned_into, err);
}

int aidp_cgroup_stats(struct aidp_cgroup *cg, struct aidp_cgroup_stats *st, aidp_error *err)
{
        memset(st, 0, sizeof *st);
        return cg->ops->stats(cg, st, err);
}

int aidp_cgroup_kill(struct aidp_cgroup *cg)
{
        return cg->ops->kill(cg, 0);
}

int aidp_cgroup_kill_except(struct aidp_cgroup *cg, pid_t keep)
{
        return cg->ops->kill(cg, keep > 0 ? keep : 0);
}

int aidp_cgroup_destroy(struct aidp_cgroup *cg, aidp_error *err)
{
        if (!cg)
                return 0;
        /* A helper still at work: its directories first (and it reaped). */
        aidp_error herr = {0};
        aidp_cgroup_finish_wait(cg, &herr);
        int rc = cg->ops->kill(cg, 0);
        /* Every directory rmdir did not remove (ENOENT counts as removed). */
        int left = cgfs_remove_all(cg);
        if (rc == 0 && left)
                rc = -EBUSY;
        if (rc < 0)
                aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                 "cgroup: %d run cgroup(s) could not be removed", left);
        /* Not clean: the caller keeps the journal, and gc removes every
         * directory cgroups.log names, those the helper made among them. */
        else if (cg->helper_lost)
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                    "cgroup v1: the hierarchies the helper made are not known "
                                    "here (its result was lost): left for gc, which finds them "
                                    "in cgroups.log");
        cg_free(cg);
        return rc;
}

int aidp_cgroup_path_kill_except(const char *path, pid_t keep)
{
        return cgfs_kill_path(path, keep);
}

int aidp_cgroup_remove_path(const char *path)
{
        char kill_probe[PATH_MAX];
        if (cgfs_path(kill_probe, sizeof kill_probe, "%s/cgroup.kill", path) < 0)
                return -ENAMETOOLONG;
        if (access(kill_probe, F_OK) == 0)
                cgfs_write(path, "cgroup.kill", "1");
        cgfs_kill_path(path, 0);
        int rc = cgfs_rmdir_retry(path);
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", path);
        char *slash = strrchr(parent, '/');
        if (slash) {
                *slash = '\0';
                const char *base = strrchr(parent, '/');
                if (base && !strcmp(base + 1, "aidp"))
                        rmdir(parent);
        }
        return rc;
}
