#define _GNU_SOURCE
#include "supervisor/sandbox/cgroup/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libcgroup.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "supervisor/sandbox/cgroup/cgroup_devices.h"

#define CG_ROOT     "/sys/fs/cgroup"
#define CG_MAX_DIRS 8

/* v1 controllers the run uses, each on its own hierarchy here (a co-mounted
 * cpu,cpuacct hierarchy works too: the directory is then shared). */
static const char *const v1_controllers[] = {"memory", "cpu", "cpuacct", "pids", "devices"};

struct cg_dir {
        char path[PATH_MAX];   /* absolute cgroupfs directory of the run */
        char parent[PATH_MAX]; /* its "aidp" parent, removed when it becomes empty */
        char controller[16];   /* v1 controller, "unified" or "" for v2 */
};

struct aidp_cgroup {
        enum aidp_cgroup_version version;
        struct cg_dir dirs[CG_MAX_DIRS];
        size_t n_dirs;
        int kill_dir;            /* index of a dir with cgroup.kill, or -1 */
        int procs_dir;           /* index of the dir whose cgroup.procs lists the run's pids */
        int memory_dir, cpu_dir; /* indexes for stats, or -1 */
        struct cgroup *lcg[ARRAY_SIZE(v1_controllers)]; /* libcgroup handles (v1) */
        char parent[PATH_MAX]; /* as given to aidp_cgroup_begin ("" = the default) */
        char name[256];
        pid_t helper;  /* aidp_cgroup_finish_start's process, or 0 */
        int helper_fd; /* its result pipe (read end) */
        int intent_fd; /* where each directory is logged before it is made, or -1 */
};

/* Log a directory before making it (the run journal's cgroups.log): a
 * supervisor killed in between leaves gc the path, not an orphan. Best
 * effort: journal.json lists the directories too, once they exist. */
static void intent(const struct aidp_cgroup *cg, const char *path)
{
        if (cg->intent_fd < 0)
                return;
        char line[PATH_MAX + 2];
        int n = snprintf(line, sizeof line, "%s\n", path);
        if (n > 0 && (size_t)n < sizeof line && write(cg->intent_fd, line, (size_t)n) != n)
                return;
}

enum aidp_cgroup_version aidp_cgroup_detect(void)
{
        struct statfs s;
        if (statfs(CG_ROOT, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC)
                return AIDP_CGROUP_V2;
        return AIDP_CGROUP_V1;
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
        return cg->version;
}

size_t aidp_cgroup_paths(const struct aidp_cgroup *cg, const char **paths, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < cg->n_dirs && n < max; i++)
                paths[n++] = cg->dirs[i].path;
        return n;
}

static int write_file(const char *dir, const char *file, const char *val)
{
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, file);
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, val, strlen(val));
        if (n < 0)
                return -errno;
        return 0;
}

static int read_file(const char *dir, const char *file, char *buf, size_t len)
{
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, file);
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, len - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        return 0;
}

static bool read_u64(const char *dir, const char *file, uint64_t *v)
{
        char buf[64];
        if (read_file(dir, file, buf, sizeof buf) < 0)
                return false;
        *v = strtoull(buf, NULL, 10);
        return true;
}

/* "key value" line in a flat-keyed file (memory.events, cpu.stat, oom_control). */
static bool read_key(const char *dir, const char *file, const char *key, uint64_t *v)
{
        char buf[4096];
        if (read_file(dir, file, buf, sizeof buf) < 0)
                return false;
        size_t kl = strlen(key);
        for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                if (!strncmp(l, key, kl) && l[kl] == ' ') {
                        *v = strtoull(l + kl + 1, NULL, 10);
                        return true;
                }
        }
        return false;
}

/* /proc/self/cgroup, read once per creation step. */
static int read_self_cgroups(char *buf, size_t len)
{
        _cleanup_close_ int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t n = 0;
        for (;;) {
                ssize_t r = read(fd, buf + n, len - 1 - n);
                if (r < 0)
                        return -errno;
                if (r == 0 || (n += (size_t)r) == len - 1)
                        break;
        }
        buf[n] = '\0';
        return 0;
}

/* The supervisor's own cgroup path in a v1 hierarchy ("memory") or v2 (""),
 * from the text of /proc/self/cgroup. */
static int self_cgroup(const char *self, const char *controller, char *out, size_t len)
{
        char line[PATH_MAX + 64];
        for (const char *l = self; *l;) {
                size_t ll = strcspn(l, "\n");
                snprintf(line, sizeof line, "%.*s", (int)ll, l);
                l += ll + (l[ll] == '\n');
                char *c1 = strchr(line, ':');
                char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c2 = '\0';
                const char *ctrls = c1 + 1;
                bool match = false;
                if (!*controller) {
                        match = !*ctrls && !strncmp(line, "0", 1);
                } else {
                        char tmp[256];
                        snprintf(tmp, sizeof tmp, "%s", ctrls);
                        for (char *sv, *t = strtok_r(tmp, ",", &sv); t;
                             t = strtok_r(NULL, ",", &sv))
                                if (!strcmp(t, controller))
                                        match = true;
                }
                if (match) {
                        snprintf(out, len, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
                        return 0;
                }
        }
        return -ENOENT;
}

static void helper_reap(struct aidp_cgroup *cg);

static void cg_free(struct aidp_cgroup *cg)
{
        helper_reap(cg);
        for (size_t i = 0; i < ARRAY_SIZE(cg->lcg); i++)
                if (cg->lcg[i])
                        cgroup_free(&cg->lcg[i]);
        free(cg);
}

/* Teardown waits for the kernel to finish exiting processes; that usually
 * takes microseconds, so poll fast at first and back off to 5 ms. */
static void backoff(int attempt)
{
        long ns = 50 * 1000L << (attempt < 7 ? attempt : 7);
        if (ns > 5 * 1000 * 1000L)
                ns = 5 * 1000 * 1000L;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
}

static int rmdir_retry(const char *path)
{
        /* rmdir fails with EBUSY while the last killed task is still exiting. */
        for (int i = 0; i < 200; i++) {
                if (rmdir(path) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY)
                        return -errno;
                backoff(i);
        }
        return -EBUSY;
}

/* Remove the run's directories from index `from` on, newest first. */
static void remove_dirs_from(struct aidp_cgroup *cg, size_t from)
{
        for (size_t i = cg->n_dirs; i-- > from;) {
                rmdir_retry(cg->dirs[i].path);
                /* The shared parent goes when the last run using it ends;
                 * ENOTEMPTY/EBUSY just means another run still uses it. */
                if (cg->dirs[i].parent[0])
                        rmdir(cg->dirs[i].parent);
        }
}

static void remove_dirs(struct aidp_cgroup *cg)
{
        remove_dirs_from(cg, 0);
}

static int add_dir(struct aidp_cgroup *cg, const char *path, const char *parent, const char *ctrl)
{
        if (cg->n_dirs >= CG_MAX_DIRS)
                return -E2BIG;
        struct cg_dir *d = &cg->dirs[cg->n_dirs++];
        snprintf(d->path, sizeof d->path, "%s", path);
        snprintf(d->parent, sizeof d->parent, "%s", parent ? parent : "");
        snprintf(d->controller, sizeof d->controller, "%s", ctrl);
        return (int)cg->n_dirs - 1;
}

/* ---- v2: cgroupfs ---- */

/* The run's cgroup, controllers enabled on the way down, no limits yet. */
static int v2_begin(struct aidp_cgroup *cg, const char *parent, const char *name, aidp_error *err)
{
        char pdir[PATH_MAX], dir[PATH_MAX];
        snprintf(pdir, sizeof pdir, "%s%s%s", CG_ROOT, parent[0] == '/' ? "" : "/", parent);
        if (mkdir(pdir, 0755) < 0 && errno != EEXIST)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "cgroup v2: mkdir %s",
                                        pdir);
        /* Controllers must be enabled on every level from the root down to
         * the parent; the root's subtree_control is shared with the host, so
         * only ever add, never remove. */
        char walk[PATH_MAX];
        snprintf(walk, sizeof walk, "%s", CG_ROOT);
        const char *rest = pdir + strlen(CG_ROOT);
        for (;;) {
                int rc = write_file(walk, "cgroup.subtree_control", "+memory +cpu +pids");
                if (rc < 0) {
                        rmdir(pdir);
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                                "cgroup v2: enabling memory, cpu, pids in %s",
                                                walk);
                }
                while (*rest == '/')
                        rest++;
                if (!*rest)
                        break;
                const char *slash = strchr(rest, '/');
                size_t l = slash ? (size_t)(slash - rest) : strlen(rest);
                size_t wl = strlen(walk);
                snprintf(walk + wl, sizeof walk - wl, "/%.*s", (int)l, rest);
                rest += l;
        }
        snprintf(dir, sizeof dir, "%s/%s", pdir, name);
        intent(cg, dir);
        if (mkdir(dir, 0755) < 0) {
                int e = errno;
                rmdir(pdir); /* if this call created it; fails harmlessly if in use */
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "cgroup v2: mkdir %s", dir);
        }
        int idx = add_dir(cg, dir, pdir, "");
        cg->kill_dir = cg->procs_dir = cg->memory_dir = cg->cpu_dir = idx;
        return 0;
}

static int v2_limits(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim, aidp_error *err)
{
        const char *dir = cg->dirs[cg->memory_dir].path;
        char v[64];
        int rc = 0;
        if (lim->memory_bytes) {
                snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory_bytes);
                rc = write_file(dir, "memory.max", v);
                /* No swap: the limit means RAM, and plaintext must not reach swap. */
                if (rc == 0 && write_file(dir, "memory.swap.max", "0") < 0 && errno != ENOENT)
                        rc = 0;
                if (rc == 0)
                        write_file(dir, "memory.oom.group", "1");
        }
        if (rc == 0 && lim->cpu_millis) {
                snprintf(v, sizeof v, "%llu 100000", (unsigned long long)lim->cpu_millis * 100);
                rc = write_file(dir, "cpu.max", v);
        }
        if (rc == 0 && lim->pids) {
                snprintf(v, sizeof v, "%llu", (unsigned long long)lim->pids);
                rc = write_file(dir, "pids.max", v);
        }
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                        "cgroup v2: setting limits on %s", dir);
        if (lim->devices_allow) {
                _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "cgroup v2: %s",
                                                dir);
                rc = aidp_cgroup_devices_attach(dfd, lim->devices_allow, err);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

/* ---- v1: libcgroup ---- */

static int lcg_status(int rc)
{
        if (rc == ECGOTHER)
                return cgroup_get_last_errno() ? cgroup_get_last_errno() : EIO;
        return EIO;
}

/* libcgroup reads the mount table and its controller list once per process. */
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

/* On a hybrid host the cgroup2 mount has no controllers but does have
 * cgroup.kill: a tracking cgroup there kills the whole run atomically,
 * double-forked daemons included, and lets clone3 place pid 1 at fork. */
static int v1_begin(struct aidp_cgroup *cg, const char *parent, const char *name)
{
        struct statfs s;
        if (statfs(CG_ROOT "/unified", &s) < 0 || s.f_type != CGROUP2_SUPER_MAGIC)
                return 0;
        char self[PATH_MAX] = "", pdir[PATH_MAX], dir[PATH_MAX], own[4096];
        if (parent)
                snprintf(pdir, sizeof pdir, CG_ROOT "/unified%s%s", parent[0] == '/' ? "" : "/",
                         parent);
        else {
                if (read_self_cgroups(own, sizeof own) == 0)
                        self_cgroup(own, "", self, sizeof self);
                snprintf(pdir, sizeof pdir, CG_ROOT "/unified%s/aidp", self);
        }
        snprintf(dir, sizeof dir, "%s/%s", pdir, name);
        if (mkdir(pdir, 0755) < 0 && errno != EEXIST)
                return 0; /* optional: the run then has no tracking group */
        intent(cg, dir);
        if (mkdir(dir, 0755) < 0)
                return errno == ENOENT ? -ENOENT : 0;
        int idx = add_dir(cg, dir, pdir, "unified");
        char probe[PATH_MAX];
        snprintf(probe, sizeof probe, "%s/cgroup.kill", dir);
        if (idx >= 0 && access(probe, F_OK) == 0)
                cg->kill_dir = idx;
        return 0;
}

/* The run's directory in each controller's hierarchy, through libcgroup. */
static int v1_hierarchies(struct aidp_cgroup *cg, const char *parent, const char *name,
                          const struct aidp_cgroup_limits *lim, aidp_error *err)
{
        int irc = lcg_init();
        if (irc)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, lcg_status(irc),
                                      "cgroup v1: libcgroup init: %s", cgroup_strerror(irc));
        char own[4096] = "";
        if (!parent)
                read_self_cgroups(own, sizeof own);
        for (size_t i = 0; i < ARRAY_SIZE(v1_controllers); i++) {
                const char *ctrl = v1_controllers[i];
                char *mnt = NULL;
                if (cgroup_get_subsys_mount_point(ctrl, &mnt) != 0) {
                        if (!strcmp(ctrl, "devices") || !strcmp(ctrl, "cpuacct"))
                                continue; /* optional */
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOENT,
                                              "cgroup v1: controller %s is not mounted", ctrl);
                }
                char self[PATH_MAX] = "", rel[PATH_MAX], prel[PATH_MAX], abs[PATH_MAX],
                     pabs[PATH_MAX];
                if (parent)
                        snprintf(prel, sizeof prel, "%s", parent);
                else {
                        self_cgroup(own, ctrl, self, sizeof self);
                        snprintf(prel, sizeof prel, "%s/aidp", self);
                }
                snprintf(rel, sizeof rel, "%s/%s", prel, name);
                snprintf(abs, sizeof abs, "%s%s%s", mnt, rel[0] == '/' ? "" : "/", rel);
                snprintf(pabs, sizeof pabs, "%s%s%s", mnt, prel[0] == '/' ? "" : "/", prel);
                free(mnt);
                /* co-mounted controllers (cpu,cpuacct) share one directory */
                bool shared = false;
                for (size_t j = 0; j < cg->n_dirs; j++)
                        if (!strcmp(cg->dirs[j].path, abs))
                                shared = true;

                /* libcgroup happily "creates" an existing directory: without
                 * this check a second run of the same name would share, and
                 * at teardown kill, the first one's cgroup. */
                if (!shared && access(abs, F_OK) == 0)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EEXIST,
                                              "cgroup v1: %s already exists", abs);
                struct cgroup *c = cgroup_new_cgroup(rel);
                if (!c)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                              "cgroup v1: new cgroup");
                cg->lcg[i] = c;
                struct cgroup_controller *cc = cgroup_add_controller(c, ctrl);
                if (!cc)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "cgroup v1: add %s",
                                              ctrl);
                int rc = 0;
                char v[64];
                if (!strcmp(ctrl, "memory") && lim->memory_bytes) {
                        rc = cgroup_add_value_uint64(cc, "memory.limit_in_bytes",
                                                     lim->memory_bytes);
                        char probe[PATH_MAX];
                        snprintf(probe, sizeof probe, "%s/memory.memsw.limit_in_bytes", pabs);
                        /* memsw = limit: the job gets no swap at all. */
                        if (!rc && access(probe, F_OK) == 0)
                                rc = cgroup_add_value_uint64(cc, "memory.memsw.limit_in_bytes",
                                                             lim->memory_bytes);
                } else if (!strcmp(ctrl, "cpu") && lim->cpu_millis) {
                        rc = cgroup_add_value_uint64(cc, "cpu.cfs_period_us", 100000);
                        if (!rc)
                                rc = cgroup_add_value_uint64(cc, "cpu.cfs_quota_us",
                                                             lim->cpu_millis * 100);
                } else if (!strcmp(ctrl, "pids") && lim->pids) {
                        snprintf(v, sizeof v, "%llu", (unsigned long long)lim->pids);
                        rc = cgroup_add_value_string(cc, "pids.max", v);
                } else if (!strcmp(ctrl, "devices") && lim->devices_allow) {
                        rc = cgroup_add_value_string(cc, "devices.deny", "a");
                }
                if (rc)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, lcg_status(rc),
                                              "cgroup v1: %s value: %s", ctrl, cgroup_strerror(rc));
                if (!shared)
                        intent(cg, abs);
                rc = cgroup_create_cgroup(c, 1); /* 1: no chown of every control file */
                if (rc && !(shared && rc == ECGROUPVALUENOTEXIST))
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, lcg_status(rc),
                                              "cgroup v1: creating %s in %s: %s", rel, ctrl,
                                              cgroup_strerror(rc));
                if (shared)
                        continue;
                int idx = add_dir(cg, abs, pabs, ctrl);
                if (idx < 0)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, E2BIG,
                                              "cgroup v1: too many hierarchies");
                if (!strcmp(ctrl, "memory"))
                        cg->memory_dir = idx;
                else if (!strcmp(ctrl, "cpuacct"))
                        cg->cpu_dir = idx;
                else if (!strcmp(ctrl, "pids"))
                        cg->procs_dir = idx;
                else if (!strcmp(ctrl, "devices") && lim->devices_allow) {
                        /* libcgroup writes values once at creation; the allow
                         * list has to follow the deny, one line per write. */
                        for (const char *const *a = lim->devices_allow; *a; a++) {
                                int wr = write_file(abs, "devices.allow", *a);
                                if (wr < 0)
                                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -wr,
                                                                "cgroup v1: devices.allow '%s'",
                                                                *a);
                        }
                }
        }
        if (cg->procs_dir < 0 && cg->memory_dir >= 0)
                cg->procs_dir = cg->memory_dir;
        return 0;
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
                cg = calloc(1, sizeof *cg);
                if (!cg)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                cg->kill_dir = cg->procs_dir = cg->memory_dir = cg->cpu_dir = -1;
                cg->helper_fd = -1;
                cg->intent_fd = intent_fd;
                cg->version = aidp_cgroup_detect();
                snprintf(cg->parent, sizeof cg->parent, "%s", parent ? parent : "");
                snprintf(cg->name, sizeof cg->name, "%s", name);
                rc = cg->version == AIDP_CGROUP_V2
                             ? v2_begin(cg, parent ? parent : "/aidp", name, err)
                             : v1_begin(cg, parent, name);
                if (rc < 0) {
                        remove_dirs(cg);
                        cg_free(cg);
                        cg = NULL;
                }
        }
        if (rc < 0) {
                if (!err->msg[0])
                        aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc, "cgroup: creating %s", name);
                return rc;
        }
        *out = cg;
        return 0;
}

int aidp_cgroup_finish(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim,
                       aidp_error *err)
{
        if (cg->version == AIDP_CGROUP_V2)
                return v2_limits(cg, lim, err);
        const char *parent = cg->parent[0] ? cg->parent : NULL;
        size_t base = cg->n_dirs;
        int rc = -ENOENT;
        for (int attempt = 0; attempt < 8 && rc == -ENOENT; attempt++) {
                rc = v1_hierarchies(cg, parent, cg->name, lim, err);
                if (rc < 0) {
                        /* Back to what aidp_cgroup_begin made (the same race
                         * with another run's end as there). */
                        remove_dirs_from(cg, base);
                        cg->n_dirs = base;
                        for (size_t i = 0; i < ARRAY_SIZE(cg->lcg); i++)
                                if (cg->lcg[i])
                                        cgroup_free(&cg->lcg[i]);
                        cg->memory_dir = cg->cpu_dir = cg->procs_dir = -1;
                }
        }
        return rc;
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

int aidp_cgroup_finish_start(struct aidp_cgroup *cg, const struct aidp_cgroup_limits *lim,
                             aidp_error *err)
{
        if (cg->version == AIDP_CGROUP_V2 || cg->helper > 0)
                return cg->helper > 0 ? 0 : aidp_cgroup_finish(cg, lim, err);
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
                prctl(PR_SET_NAME, "aidp-cgroup");
                /* Not on after the supervisor: what it has logged is gc's. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != self)
                        _exit(1);
                close(p[0]);
                static struct helper_msg m;
                aidp_error e = {0};
                m.rc = aidp_cgroup_finish(cg, lim, &e);
                m.err = e;
                m.n_dirs = (uint32_t)cg->n_dirs;
                m.memory_dir = cg->memory_dir;
                m.cpu_dir = cg->cpu_dir;
                m.procs_dir = cg->procs_dir;
                m.kill_dir = cg->kill_dir;
                memcpy(m.dirs, cg->dirs, sizeof m.dirs);
                _exit(aidp_write_all(p[1], &m, sizeof m) == 0 ? 0 : 1);
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
        if (n != (ssize_t)sizeof m || m.n_dirs > CG_MAX_DIRS || m.n_dirs < cg->n_dirs)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                      "cgroup v1: the helper making the run's hierarchies ended "
                                      "without a result (status %d)",
                                      status);
        /* Its directories, whatever came of it: on failure the helper removed
         * what it made, and what is left is removed with the rest. */
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
        for (size_t i = 0; i < cg->n_dirs; i++)
                if (cg->version == AIDP_CGROUP_V2 || !strcmp(cg->dirs[i].controller, "unified"))
                        return open(cg->dirs[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return -1;
}

int aidp_cgroup_task_fds(const struct aidp_cgroup *cg, int *fds, size_t max)
{
        size_t n = 0;
        if (cg->version != AIDP_CGROUP_V1)
                return 0;
        for (size_t i = 0; i < cg->n_dirs; i++) {
                if (!strcmp(cg->dirs[i].controller, "unified"))
                        continue;
                char p[PATH_MAX + 8];
                snprintf(p, sizeof p, "%s/tasks", cg->dirs[i].path);
                int fd = n < max ? open(p, O_WRONLY | O_CLOEXEC) : -E2BIG;
                if (fd < 0) {
                        int e = n < max ? -errno : fd;
                        while (n > 0)
                                close(fds[--n]);
                        return e;
                }
                fds[n++] = fd;
        }
        return (int)n;
}

int aidp_cgroup_join_self(const int *fds, size_t n)
{
        int rc = 0;
        for (size_t i = 0; i < n; i++) {
                if (write(fds[i], "0", 1) != 1 && rc == 0)
                        rc = -errno;
                close(fds[i]);
        }
        return rc;
}

int aidp_cgroup_attach(struct aidp_cgroup *cg, pid_t pid, bool cloned_into, aidp_error *err)
{
        if (cloned_into && cg->version == AIDP_CGROUP_V2)
                return 0;
        char v[32];
        snprintf(v, sizeof v, "%d", (int)pid);
        if (cg->version == AIDP_CGROUP_V1) {
                for (size_t i = 0; i < ARRAY_SIZE(cg->lcg); i++) {
                        if (!cg->lcg[i])
                                continue;
                        int rc = cgroup_attach_task_pid(cg->lcg[i], pid);
                        if (rc)
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, lcg_status(rc),
                                                      "cgroup v1: attaching pid %d to %s: %s",
                                                      (int)pid, v1_controllers[i],
                                                      cgroup_strerror(rc));
                }
        }
        for (size_t i = 0; i < cg->n_dirs; i++) {
                if (cg->version == AIDP_CGROUP_V1 && strcmp(cg->dirs[i].controller, "unified"))
                        continue;
                int rc = write_file(cg->dirs[i].path, "cgroup.procs", v);
                if (rc < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                                "cgroup: attaching pid %d to %s", (int)pid,
                                                cg->dirs[i].path);
        }
        return 0;
}

int aidp_cgroup_stats(struct aidp_cgroup *cg, struct aidp_cgroup_stats *st)
{
        memset(st, 0, sizeof *st);
        if (cg->memory_dir >= 0) {
                const char *d = cg->dirs[cg->memory_dir].path;
                uint64_t v = 0;
                if (cg->version == AIDP_CGROUP_V2) {
                        read_u64(d, "memory.peak", &st->memory_peak_bytes);
                        read_key(d, "memory.events", "oom_kill", &st->oom_kills);
                        if (read_key(d, "memory.events", "max", &v))
                                st->memory_limit_hit = v > 0;
                } else {
                        read_u64(d, "memory.max_usage_in_bytes", &st->memory_peak_bytes);
                        read_key(d, "memory.oom_control", "oom_kill", &st->oom_kills);
                        if (read_u64(d, "memory.failcnt", &v))
                                st->memory_limit_hit = v > 0;
                }
        }
        if (cg->cpu_dir >= 0) {
                const char *d = cg->dirs[cg->cpu_dir].path;
                if (cg->version == AIDP_CGROUP_V2) {
                        read_key(d, "cpu.stat", "usage_usec", &st->cpu_usec);
                } else {
                        uint64_t ns = 0;
                        if (read_u64(d, "cpuacct.usage", &ns))
                                st->cpu_usec = ns / 1000;
                }
        }
        return 0;
}

static bool dir_empty_of_procs(const char *dir)
{
        char buf[64];
        if (read_file(dir, "cgroup.procs", buf, sizeof buf) < 0)
                return true;
        return buf[0] == '\0';
}

static void kill_listed(const char *dir)
{
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/cgroup.procs", dir);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return;
        int pid;
        while (fscanf(f, "%d", &pid) == 1)
                if (pid > 0)
                        kill(pid, SIGKILL);
}

/* Kill every listed process but `keep`; true when none but `keep` was left. */
static bool kill_listed_except(const char *dir, pid_t keep)
{
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/cgroup.procs", dir);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return true;
        int pid;
        bool only_keep = true;
        while (fscanf(f, "%d", &pid) == 1) {
                if (pid <= 0 || pid == keep)
                        continue;
                only_keep = false;
                kill(pid, SIGKILL);
        }
        return only_keep;
}

/* The directories that list every process of the run: the one that contains
 * them all (the cgroup2 group pid 1 was cloned into: v2's, or v1's tracking
 * group; else the pids hierarchy, which pid 1 joins before the job exists, and
 * processes of the run cannot leave), or all of them. Sets [*from, *to). */
static void run_listing(const struct aidp_cgroup *cg, size_t *from, size_t *to)
{
        int d = cg->kill_dir >= 0 ? cg->kill_dir : cg->procs_dir;
        *from = d >= 0 ? (size_t)d : 0;
        *to = d >= 0 ? (size_t)d + 1 : cg->n_dirs;
}

int aidp_cgroup_kill_except(struct aidp_cgroup *cg, pid_t keep)
{
        if (keep <= 0)
                return aidp_cgroup_kill(cg);
        size_t from, to;
        run_listing(cg, &from, &to);
        for (int i = 0; i < 400; i++) {
                bool done = true;
                for (size_t d = from; d < to; d++)
                        if (!kill_listed_except(cg->dirs[d].path, keep))
                                done = false;
                if (done)
                        return 0;
                backoff(i);
        }
        return -EBUSY;
}

int aidp_cgroup_path_kill_except(const char *path, pid_t keep)
{
        for (int i = 0; i < 400; i++) {
                if (kill_listed_except(path, keep))
                        return 0;
                backoff(i);
        }
        return -EBUSY;
}

int aidp_cgroup_kill(struct aidp_cgroup *cg)
{
        if (cg->kill_dir >= 0)
                write_file(cg->dirs[cg->kill_dir].path, "cgroup.kill", "1");
        const char *watch = cg->kill_dir >= 0    ? cg->dirs[cg->kill_dir].path
                            : cg->procs_dir >= 0 ? cg->dirs[cg->procs_dir].path
                                                 : NULL;
        if (!watch)
                return 0;
        /* Without cgroup.kill, a fork between reading cgroup.procs and the
         * kill could slip through, so loop until the cgroup stays empty. */
        size_t from, to;
        run_listing(cg, &from, &to);
        for (int i = 0; i < 400; i++) {
                bool empty = true;
                for (size_t d = from; d < to; d++) {
                        if (!dir_empty_of_procs(cg->dirs[d].path)) {
                                empty = false;
                                kill_listed(cg->dirs[d].path);
                        }
                }
                if (empty)
                        return 0;
                backoff(i);
        }
        return -EBUSY;
}

int aidp_cgroup_destroy(struct aidp_cgroup *cg, aidp_error *err)
{
        if (!cg)
                return 0;
        /* A helper still at work: its directories first (and it reaped). */
        aidp_error herr = {0};
        aidp_cgroup_finish_wait(cg, &herr);
        int rc = aidp_cgroup_kill(cg);
        remove_dirs(cg);
        int left = 0;
        for (size_t i = 0; i < cg->n_dirs; i++)
                if (access(cg->dirs[i].path, F_OK) == 0)
                        left++;
        if (rc == 0 && left)
                rc = -EBUSY;
        if (rc < 0)
                aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc,
                                 "cgroup: %d run cgroup(s) could not be removed", left);
        cg_free(cg);
        return rc;
}

int aidp_cgroup_remove_path(const char *path)
{
        char kill_probe[PATH_MAX];
        snprintf(kill_probe, sizeof kill_probe, "%s/cgroup.kill", path);
        if (access(kill_probe, F_OK) == 0)
                write_file(path, "cgroup.kill", "1");
        for (int i = 0; i < 400 && !dir_empty_of_procs(path); i++) {
                kill_listed(path);
                backoff(i);
        }
        int rc = rmdir_retry(path);
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
