#define _GNU_SOURCE
/* The cgroup v2 backend: one directory in the unified hierarchy, driven
 * through cgroupfs directly (Debian 12's libcgroup 2.0.2 only partly supports
 * v2: no cgroup.kill, no memory.events). The directory is made at begin, so
 * that pid 1 can be cloned straight into it; the limits follow before the job
 * may run. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sandbox/cgroup/cgroup_devices.h"
#include "supervisor/sandbox/cgroup/cgroup_internal.h"

/* Controllers must be enabled on every level from the root down to the
 * parent; the root's subtree_control is shared with the host, so only ever
 * add, never remove. */
static int enable_controllers(const char *pdir, aidp_error *err)
{
        char walk[PATH_MAX];
        snprintf(walk, sizeof walk, "%s", CG_ROOT);
        const char *rest = pdir + strlen(CG_ROOT);
        for (;;) {
                int rc = cgfs_write(walk, "cgroup.subtree_control", "+memory +cpu +pids");
                if (rc < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                                "cgroup v2: enabling memory, cpu, pids in %s",
                                                walk);
                while (*rest == '/')
                        rest++;
                if (!*rest)
                        return 0;
                size_t l = strcspn(rest, "/");
                size_t wl = strlen(walk);
                snprintf(walk + wl, sizeof walk - wl, "/%.*s", (int)l, rest);
                rest += l;
        }
}

/* The run's cgroup, controllers enabled on the way down, no limits yet. */
static int v2_begin(struct aidp_cgroup *cg, aidp_error *err)
{
        const char *parent = cg->parent[0] ? cg->parent : "/aidp";
        char pdir[PATH_MAX], dir[PATH_MAX];
        if (cgfs_path(pdir, sizeof pdir, "%s%s%s", CG_ROOT, parent[0] == '/' ? "" : "/", parent) <
                    0 ||
            cgfs_path(dir, sizeof dir, "%s/%s", pdir, cg->name) < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG,
                                      "cgroup v2: parent '%.64s...' is too long", parent);
        /* A parent this call made goes again when the run's directory is
         * not made under it (rmdir fails harmlessly once another run uses
         * it); one that was there stays: it may be an admin's. */
        bool made = mkdir(pdir, 0755) == 0;
        if (!made && errno != EEXIST)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "cgroup v2: mkdir %s",
                                        pdir);
        int rc = enable_controllers(pdir, err);
        if (rc < 0) {
                if (made)
                        rmdir(pdir);
                return rc;
        }
        int idx = cgfs_mkdir(cg, dir, pdir, "");
        if (idx < 0 && made)
                rmdir(pdir);
        if (idx == CGFS_INTENT_LOST)
                return cgfs_intent_lost(err, cg, dir);
        /* ENOENT: another run's end removed the shared parent in between;
         * the front starts over. */
        if (idx < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -idx, "cgroup v2: mkdir %s", dir);
        cg->kill_dir = cg->procs_dir = cg->memory_dir = cg->cpu_dir = idx;
        return 0;
}

/* Nothing more to make on v2: begin made the one directory. */
static int v2_create(struct aidp_cgroup *cg, aidp_error *err)
{
        (void)cg;
        (void)err;
        return 0;
}

static int v2_limit(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim, aidp_error *err)
{
        const char *dir = cg->dirs[cg->memory_dir].path;
        char v[64];
        int rc = cgfs_fault("v2:limit");
        /* No swap, with a memory limit or without: the limit means RAM, and
         * the job's copies of /data must never reach swap. A kernel without
         * swap accounting has no such file. */
        if (rc == 0 && (rc = cgfs_write(dir, "memory.swap.max", "0")) == -ENOENT)
                rc = 0;
        if (rc == 0 && lim->memory_bytes) {
                snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory_bytes);
                rc = cgfs_write(dir, "memory.max", v);
                /* An OOM kill takes the whole run, not one of its processes. */
                if (rc == 0)
                        rc = cgfs_write(dir, "memory.oom.group", "1");
        }
        if (rc == 0 && lim->cpu_millis) {
                snprintf(v, sizeof v, "%llu 100000", (unsigned long long)lim->cpu_millis * 100);
                rc = cgfs_write(dir, "cpu.max", v);
        }
        if (rc == 0 && lim->pids) {
                snprintf(v, sizeof v, "%llu", (unsigned long long)lim->pids);
                rc = cgfs_write(dir, "pids.max", v);
        }
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                        "cgroup v2: setting limits on %s", dir);
        if (!lim->devices_allow)
                return 0;
        /* v2 has no devices.allow: a BPF program on the directory decides. */
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "cgroup v2: %s", dir);
        return aidp_cgroup_devices_attach(dfd, lim->devices_allow, err);
}

/* With cloned_into, clone3 already placed the child: nothing to migrate. */
static int v2_attach(struct aidp_cgroup *cg, pid_t pid, bool cloned_into, aidp_error *err)
{
        if (cloned_into)
                return 0;
        char v[32];
        snprintf(v, sizeof v, "%d", (int)pid);
        const char *dir = cg->dirs[cg->procs_dir].path;
        int rc = cgfs_write(dir, "cgroup.procs", v);
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                        "cgroup v2: attaching pid %d to %s", (int)pid, dir);
        return 0;
}

/* v2 has no per-hierarchy tasks files: pid 1 is cloned into the cgroup. */
static int v2_task_fds(const struct aidp_cgroup *cg, int *fds, size_t max)
{
        (void)cg;
        (void)fds;
        (void)max;
        return 0;
}

static int v2_stats(const struct aidp_cgroup *cg, struct aidp_cgroup_stats *st, aidp_error *err)
{
        const char *d = cg->dirs[cg->memory_dir].path;
        uint64_t max_events = 0;
        const char *bad = NULL;
        int rc, first = 0;
        /* memory.peak is 5.19+: older kernels report the peak as unknown. */
        if ((rc = cgfs_read_u64(d, "memory.peak", &st->memory_peak_bytes)) == 0)
                st->known |= AIDP_CGROUP_STAT_MEMORY_PEAK;
        else if (!first)
                first = rc, bad = "memory.peak";
        if ((rc = cgfs_read_key(d, "memory.events", "oom_kill", &st->oom_kills)) == 0 &&
            (rc = cgfs_read_key(d, "memory.events", "max", &max_events)) == 0) {
                st->known |= AIDP_CGROUP_STAT_OOM;
                st->memory_limit_hit = max_events > 0;
        } else if (!first)
                first = rc, bad = "memory.events";
        /* "max" does not read as a number: swap allowed. No such file: the
         * kernel accounts no swap, and bounds none. */
        uint64_t swap_max = UINT64_MAX;
        int sr = cgfs_read_u64(d, "memory.swap.max", &swap_max);
        if (sr == 0 || sr == -ENOENT || sr == -EINVAL) {
                st->swap_off = sr == 0 && swap_max == 0;
                st->known |= AIDP_CGROUP_STAT_SWAP;
        }
        if ((rc = cgfs_read_key(d, "cpu.stat", "usage_usec", &st->cpu_usec)) == 0)
                st->known |= AIDP_CGROUP_STAT_CPU;
        else if (!first)
                first = rc, bad = "cpu.stat usage_usec";
        if (first)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -first,
                                        "cgroup v2: reading %s of %s", bad, d);
        return 0;
}

static void v2_release(struct aidp_cgroup *cg)
{
        (void)cg;
}

static int v2_memory_home(char *out, size_t len)
{
        char self[PATH_MAX] = "";
        int rc = cgfs_self("", self, sizeof self);
        return rc < 0 ? rc : cgfs_path(out, len, "%s%s", CG_ROOT, self);
}

const struct aidp_cgroup_ops aidp_cgroup_v2_ops = {
        .version = AIDP_CGROUP_V2,
        .create_in_helper = false,
        .devices_ahead = false, /* one BPF program with the whole list */
        .begin = v2_begin,
        .create = v2_create,
        .limit = v2_limit,
        .attach = v2_attach,
        .task_fds = v2_task_fds,
        .stats = v2_stats,
        .memory_home = v2_memory_home,
        .kill = cgfs_kill_run, /* the same on both: cgroup.kill or by pid */
        .release = v2_release,
};
