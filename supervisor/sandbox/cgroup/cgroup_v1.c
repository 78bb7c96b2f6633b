#define _GNU_SOURCE
/* The cgroup v1 backend: the run's directory in each controller's hierarchy,
 * made and limited through libcgroup, plus, on a hybrid host, a tracking
 * group in the controller-less cgroup2 mount (/sys/fs/cgroup/unified). The
 * tracking group has no limits; it gives the run cgroup.kill (the whole run
 * at once, double-forked daemons included) and lets clone3 place pid 1 at
 * fork. It is made at begin; the hierarchies, about a millisecond with
 * libcgroup's start-up, in create, which the front may run in a helper. */
#include <errno.h>
#include <fcntl.h>
#include <libcgroup.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sandbox/cgroup/cgroup_internal.h"

/* Each on its own hierarchy here (a co-mounted cpu,cpuacct hierarchy works
 * too: the directory is then shared). devices and cpuacct are optional. */
static const char *const controllers[CG_V1_MAX] = {"memory", "cpu", "cpuacct", "pids", "devices"};

static int lcg_status(int rc)
{
        if (rc == ECGOTHER)
                return cgroup_get_last_errno() ? cgroup_get_last_errno() : EIO;
        return EIO;
}

/* libcgroup reads the mount table and its controller list once per process
 * (the daemon's server once for every worker it forks: cgv1_warm). */
static int lcg_init(void)
{
        static bool inited;
        if (inited)
                return 0;
        int rc = cgroup_init();
        if (rc == 0)
                inited = true;
        return rc;
}

int cgv1_warm(void)
{
        return lcg_init() == 0 ? 0 : -EIO;
}

void cgv1_unwarm(void)
{
        char self[PATH_MAX], dir[PATH_MAX];
        for (size_t i = 0; i < CG_V1_MAX && lcg_init() == 0; i++) {
                char *mnt = NULL;
                self[0] = '\0';
                if (cgroup_get_subsys_mount_point(controllers[i], &mnt) == 0 &&
                    cgfs_self(controllers[i], self, sizeof self) == 0 &&
                    cgfs_path(dir, sizeof dir, "%s%s/aidp", mnt, self) == 0)
                        rmdir(dir);
                free(mnt);
        }
        self[0] = '\0';
        if (cgfs_self("", self, sizeof self) == 0 &&
            cgfs_path(dir, sizeof dir, CG_ROOT "/unified%s/aidp", self) == 0)
                rmdir(dir);
}

static int find_dir(const struct aidp_cgroup *cg, const char *ctrl)
{
        for (size_t i = 0; i < cg->n_dirs; i++)
                if (!cg->dirs[i].gone && !strcmp(cg->dirs[i].controller, ctrl))
                        return (int)i;
        return -1;
}

/* The tracking group. Optional: without a cgroup2 mount, or where it cannot
 * be made, the run has none and is killed by pid (cgfs_kill_run). */
static int v1_begin(struct aidp_cgroup *cg, aidp_error *err)
{
        struct statfs s;
        if (statfs(CG_ROOT "/unified", &s) < 0 || s.f_type != CGROUP2_SUPER_MAGIC)
                return 0;
        char self[PATH_MAX] = "", pdir[PATH_MAX], dir[PATH_MAX];
        const char *p = cg->parent;
        int rc;
        if (p[0])
                rc = cgfs_path(pdir, sizeof pdir, CG_ROOT "/unified%s%s", p[0] == '/' ? "" : "/",
                               p);
        else {
                cgfs_self("", self, sizeof self);
                rc = cgfs_path(pdir, sizeof pdir, CG_ROOT "/unified%s/aidp", self);
        }
        if (rc == 0)
                rc = cgfs_path(dir, sizeof dir, "%s/%s", pdir, cg->name);
        if (rc < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG,
                                      "cgroup parent '%.64s...' is too long", pdir);
        bool made = mkdir(pdir, 0755) == 0;
        if (!made && errno != EEXIST)
                return 0;
        int idx = cgfs_mkdir(cg, dir, pdir, "unified");
        /* The parent goes again if this call made it (as on v2); rmdir
         * fails harmlessly once another run uses it. */
        if (idx < 0 && made)
                rmdir(pdir);
        if (idx == CGFS_INTENT_LOST)
                return cgfs_intent_lost(err, cg, dir);
        /* ENOENT: the shared parent went in between; the front starts
         * over. Anything else: the run goes without a tracking group. */
        if (idx == -ENOENT)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, ENOENT, "cgroup v1: mkdir %s",
                                        dir);
        if (idx < 0)
                return 0;
        char probe[PATH_MAX];
        if (cgfs_path(probe, sizeof probe, "%s/cgroup.kill", dir) == 0 && access(probe, F_OK) == 0)
                cg->kill_dir = idx;
        return 0;
}

/* Where controller i's run directory goes: rel inside the hierarchy, abs and
 * its parent pabs on the host. */
static int v1_paths(const struct aidp_cgroup *cg, const char *ctrl, const char *mnt, char *rel,
                    char *abs, char *pabs)
{
        char self[PATH_MAX] = "", prel[PATH_MAX];
        int rc;
        if (cg->parent[0])
                rc = cgfs_path(prel, PATH_MAX, "%s", cg->parent);
        else {
                /* Under the supervisor's own cgroup, so that the host's
                 * accounting of the supervisor still covers the job. */
                cgfs_self(ctrl, self, sizeof self);
                rc = cgfs_path(prel, PATH_MAX, "%s/aidp", self);
        }
        if (rc == 0)
                rc = cgfs_path(rel, PATH_MAX, "%s/%s", prel, cg->name);
        if (rc == 0)
                rc = cgfs_path(abs, PATH_MAX, "%s%s%s", mnt, rel[0] == '/' ? "" : "/", rel);
        if (rc == 0)
                rc = cgfs_path(pabs, PATH_MAX, "%s%s%s", mnt, prel[0] == '/' ? "" : "/", prel);
        return rc;
}

static void note_dir(struct aidp_cgroup *cg, const char *ctrl, int idx)
{
        if (!strcmp(ctrl, "memory"))
                cg->memory_dir = idx;
        else if (!strcmp(ctrl, "cpuacct"))
                cg->cpu_dir = idx;
        else if (!strcmp(ctrl, "pids"))
                cg->procs_dir = idx;
}

/* One hierarchy: recorded (and logged) before libcgroup makes it, so that a
 * failure half way through, in libcgroup or after it, still removes it. */
static int v1_create_one(struct aidp_cgroup *cg, size_t i, const char *mnt, aidp_error *err)
{
        const char *ctrl = controllers[i];
        char rel[PATH_MAX], abs[PATH_MAX], pabs[PATH_MAX];
        if (v1_paths(cg, ctrl, mnt, rel, abs, pabs) < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG,
                                      "cgroup v1: the run's path in %s is too long", ctrl);
        /* co-mounted controllers (cpu,cpuacct) share one directory */
        int shared = -1;
        for (size_t j = 0; j < cg->n_dirs; j++)
                if (!cg->dirs[j].gone && !strcmp(cg->dirs[j].path, abs))
                        shared = (int)j;
        /* libcgroup happily "creates" an existing directory: without this
         * check a second run of the same name would share, and at teardown
         * kill, the first one's cgroup. */
        if (shared < 0 && access(abs, F_OK) == 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EEXIST,
                                      "cgroup v1: %s already exists", abs);
        struct cgroup *c = cgroup_new_cgroup(rel);
        if (!c || !cgroup_add_controller(c, ctrl)) {
                if (c)
                        cgroup_free(&c);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "cgroup v1: new cgroup");
        }
        cg->lcg[i] = c;
        int idx = shared;
        if (shared < 0) {
                if (cgfs_intent(cg, abs) < 0)
                        return cgfs_intent_lost(err, cg, abs);
                idx = cgfs_add_dir(cg, abs, pabs, ctrl);
                if (idx < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -idx,
                                                "cgroup v1: too many hierarchies");
        }
        note_dir(cg, ctrl, idx);
        int rc = cgroup_create_cgroup(c, 1); /* 1: no chown of every control file */
        if (rc && !(shared >= 0 && rc == ECGROUPVALUENOTEXIST)) {
                /* It did not exist above: if it does now, libcgroup made it
                 * before it failed, and the rollback removes it. */
                if (shared < 0 && access(abs, F_OK) != 0)
                        cgfs_forget_dir(cg, idx);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, lcg_status(rc),
                                      "cgroup v1: creating %s in %s: %s", rel, ctrl,
                                      cgroup_strerror(rc));
        }
        char step[32];
        snprintf(step, sizeof step, "v1:%s", ctrl);
        rc = cgfs_fault(step);
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                        "cgroup v1: creating %s in %s (test fault)", rel, ctrl);
        return 0;
}

static int v1_create(struct aidp_cgroup *cg, aidp_error *err)
{
        int irc = lcg_init();
        if (irc)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, lcg_status(irc),
                                      "cgroup v1: libcgroup init: %s", cgroup_strerror(irc));
        for (size_t i = 0; i < CG_V1_MAX; i++) {
                char *mnt = NULL;
                if (cgroup_get_subsys_mount_point(controllers[i], &mnt) != 0) {
                        if (!strcmp(controllers[i], "devices") ||
                            !strcmp(controllers[i], "cpuacct"))
                                continue;
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOENT,
                                              "cgroup v1: controller %s is not mounted",
                                              controllers[i]);
                }
                int rc = v1_create_one(cg, i, mnt, err);
                free(mnt);
                if (rc < 0)
                        return rc;
        }
        /* Without a pids hierarchy, the memory one lists every process. */
        if (cg->procs_dir < 0)
                cg->procs_dir = cg->memory_dir;
        return 0;
}

/* One control file of a controller's run directory; 0 when the run has no
 * directory in that hierarchy (an optional controller), else 0 or -errno. */
static int v1_set(const struct aidp_cgroup *cg, const char *ctrl, const char *file, const char *val,
                  aidp_error *err)
{
        int d = find_dir(cg, ctrl);
        if (d < 0)
                return 0;
        int rc = cgfs_write(cg->dirs[d].path, file, val);
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc, "cgroup v1: %s '%s' in %s",
                                        file, val, cg->dirs[d].path);
        return 0;
}

/* The limits are plain writes to the run's own control files, not
 * libcgroup's cgroup_modify_cgroup: that reopens and parses /proc/mounts for
 * every value it sets (0.05-3 ms each, measured), on the critical path of a
 * run whose directories are ready-made. The directories are still made by
 * libcgroup (create). */
static int v1_limit(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim, aidp_error *err)
{
        char v[64];
        int rc = 0;
        if (lim->memory_bytes) {
                snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory_bytes);
                rc = v1_set(cg, "memory", "memory.limit_in_bytes", v, err);
                /* memsw = limit: the job gets no swap at all (the file
                 * exists only with swap accounting). */
                int d = find_dir(cg, "memory");
                if (rc == 0 && d >= 0) {
                        int w = cgfs_write(cg->dirs[d].path, "memory.memsw.limit_in_bytes", v);
                        if (w < 0 && w != -ENOENT)
                                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, -w,
                                                      "cgroup v1: memory.memsw.limit_in_bytes "
                                                      "in %s",
                                                      cg->dirs[d].path);
                }
        }
        if (rc == 0 && lim->cpu_millis) {
                snprintf(v, sizeof v, "%llu", (unsigned long long)lim->cpu_millis * 100);
                rc = v1_set(cg, "cpu", "cpu.cfs_period_us", "100000", err);
                if (rc == 0)
                        rc = v1_set(cg, "cpu", "cpu.cfs_quota_us", v, err);
        }
        if (rc == 0 && lim->pids) {
                snprintf(v, sizeof v, "%llu", (unsigned long long)lim->pids);
                rc = v1_set(cg, "pids", "pids.max", v, err);
        }
        if (rc < 0)
                return rc;
        const char *const *ahead = cg->dev_ahead;
        if (!lim->devices_allow)
                /* No device policy, on a ready cgroup that has the base one:
                 * every device again, as on a new cgroup. */
                return ahead ? v1_set(cg, "devices", "devices.allow", "a", err) : 0;
        /* Deny all, then one allow line per write; on a ready cgroup whose
         * lines the policy starts with, only the lines after them. */
        size_t skip = 0;
        while (ahead && ahead[skip] && lim->devices_allow[skip] &&
               !strcmp(ahead[skip], lim->devices_allow[skip]))
                skip++;
        if (!ahead || ahead[skip]) {
                skip = 0;
                rc = v1_set(cg, "devices", "devices.deny", "a", err);
        }
        for (const char *const *a = lim->devices_allow + skip; rc == 0 && *a; a++)
                rc = v1_set(cg, "devices", "devices.allow", *a, err);
        return rc;
}

/* By pid, a plain write to each hierarchy's cgroup.procs (libcgroup's
 * handles are released once the directories exist: aidp_cgroup_prepare,
 * aidp_cgroup_finish); the tracking group only when the process was not
 * cloned into it. */
static int v1_attach(struct aidp_cgroup *cg, pid_t pid, bool cloned_into, aidp_error *err)
{
        char v[32];
        snprintf(v, sizeof v, "%d", (int)pid);
        for (size_t i = 0; i < cg->n_dirs; i++) {
                bool unified = !strcmp(cg->dirs[i].controller, "unified");
                if (cg->dirs[i].gone || (unified && cloned_into))
                        continue;
                int rc = cgfs_write(cg->dirs[i].path, "cgroup.procs", v);
                if (rc < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                                "cgroup v1: attaching pid %d to %s", (int)pid,
                                                cg->dirs[i].path);
        }
        return 0;
}

static int v1_task_fds(const struct aidp_cgroup *cg, int *fds, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < cg->n_dirs; i++) {
                if (cg->dirs[i].gone || !strcmp(cg->dirs[i].controller, "unified"))
                        continue;
                char p[PATH_MAX];
                int fd = n >= max ? -E2BIG : cgfs_path(p, sizeof p, "%s/tasks", cg->dirs[i].path);
                if (fd == 0 && (fd = open(p, O_WRONLY | O_CLOEXEC)) < 0)
                        fd = -errno;
                if (fd < 0) {
                        while (n > 0)
                                close(fds[--n]);
                        return fd;
                }
                fds[n++] = fd;
        }
        return (int)n;
}

/* cgroup v1's "no limit": PAGE_COUNTER_MAX pages (9223372036854771712 with
 * 4 KiB pages); any value at or above 2^62 is taken for it. */
#define AIDP_CGROUP_V1_UNLIMITED ((uint64_t)1 << 62)

static int v1_stats(const struct aidp_cgroup *cg, struct aidp_cgroup_stats *st, aidp_error *err)
{
        uint64_t failcnt = 0, ns = 0;
        const char *bad = NULL, *d = NULL;
        int rc = 0, first = 0;
        if (cg->memory_dir >= 0) {
                d = cg->dirs[cg->memory_dir].path;
                if ((rc = cgfs_read_u64(d, "memory.max_usage_in_bytes", &st->memory_peak_bytes)) ==
                    0)
                        st->known |= AIDP_CGROUP_STAT_MEMORY_PEAK;
                else
                        first = rc, bad = "memory.max_usage_in_bytes";
                if ((rc = cgfs_read_key(d, "memory.oom_control", "oom_kill", &st->oom_kills)) ==
                            0 &&
                    (rc = cgfs_read_u64(d, "memory.failcnt", &failcnt)) == 0) {
                        /* With memsw = limit (no swap) the kernel counts no
                         * failure in either failcnt when it reclaims or
                         * OOM-kills instead; a v1 memcg OOM kill or a peak
                         * at the limit is the limit hit then. */
                        uint64_t memsw = 0, limit = UINT64_MAX, memsw_limit = 0;
                        cgfs_read_u64(d, "memory.memsw.failcnt", &memsw);
                        int lr = cgfs_read_u64(d, "memory.limit_in_bytes", &limit);
                        int sr = cgfs_read_u64(d, "memory.memsw.limit_in_bytes", &memsw_limit);
                        /* No swap: memory and swap together bounded by the
                         * memory limit itself. Unlimited is PAGE_COUNTER_MAX
                         * pages, far above any RAM; without swap accounting
                         * there is no memsw file and no bound. */
                        if (lr == 0 && (sr == 0 || sr == -ENOENT)) {
                                st->swap_off = sr == 0 && memsw_limit <= limit &&
                                               limit < AIDP_CGROUP_V1_UNLIMITED;
                                st->known |= AIDP_CGROUP_STAT_SWAP;
                        }
                        st->known |= AIDP_CGROUP_STAT_OOM;
                        st->memory_limit_hit = failcnt > 0 || memsw > 0 || st->oom_kills > 0 ||
                                               ((st->known & AIDP_CGROUP_STAT_MEMORY_PEAK) &&
                                                st->memory_peak_bytes >= limit);
                } else if (!first)
                        first = rc, bad = "memory.oom_control";
        }
        if (cg->cpu_dir >= 0) {
                if ((rc = cgfs_read_u64(cg->dirs[cg->cpu_dir].path, "cpuacct.usage", &ns)) == 0) {
                        st->cpu_usec = ns / 1000;
                        st->known |= AIDP_CGROUP_STAT_CPU;
                } else if (!first)
                        first = rc, bad = "cpuacct.usage", d = cg->dirs[cg->cpu_dir].path;
        }
        if (first)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -first,
                                        "cgroup v1: reading %s of %s", bad, d);
        if (cg->memory_dir < 0 || cg->cpu_dir < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOENT,
                                      "cgroup v1: the run has no %s hierarchy",
                                      cg->memory_dir < 0 ? "memory" : "cpuacct");
        return 0;
}

static void v1_release(struct aidp_cgroup *cg)
{
        for (size_t i = 0; i < CG_V1_MAX; i++)
                if (cg->lcg[i])
                        cgroup_free(&cg->lcg[i]);
}

static int v1_memory_home(char *out, size_t len)
{
        if (lcg_init())
                return -EIO;
        char *mnt = NULL, self[PATH_MAX] = "";
        if (cgroup_get_subsys_mount_point("memory", &mnt) != 0)
                return -ENOENT;
        int rc = cgfs_self("memory", self, sizeof self);
        if (rc == 0)
                rc = cgfs_path(out, len, "%s%s", mnt, self);
        free(mnt);
        return rc;
}

const struct aidp_cgroup_ops aidp_cgroup_v1_ops = {
        .version = AIDP_CGROUP_V1,
        .create_in_helper = true,
        .devices_ahead = true,
        .begin = v1_begin,
        .create = v1_create,
        .limit = v1_limit,
        .attach = v1_attach,
        .task_fds = v1_task_fds,
        .stats = v1_stats,
        .memory_home = v1_memory_home,
        .kill = cgfs_kill_run, /* the same on both: cgroup.kill or by pid */
        .release = v1_release,
};
