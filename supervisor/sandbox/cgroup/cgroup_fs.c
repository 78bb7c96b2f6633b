#define _GNU_SOURCE
/* cgroupfs helpers both backends use: control files, the run's directory
 * list, teardown by kill and rmdir, and the test-only fault point. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sandbox/cgroup/cgroup_internal.h"

int (*aidp_cgroup_fault_hook)(const char *step);

int cgfs_fault(const char *step)
{
        return aidp_cgroup_fault_hook ? aidp_cgroup_fault_hook(step) : 0;
}

bool cgfs_fault_at(const char *name)
{
        const char *f = getenv("AIDP_FAULT_FAIL_AT");
        return f && !strcmp(f, name);
}

int cgfs_path(char *buf, size_t len, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, len, fmt, ap);
        va_end(ap);
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A control file of a cgroup directory: the fd or -errno. */
static int open_ctl(const char *dir, const char *file, int flags)
{
        char p[PATH_MAX];
        if (cgfs_path(p, sizeof p, "%s/%s", dir, file) < 0)
                return -ENAMETOOLONG;
        int fd = open(p, flags | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int cgfs_write(const char *dir, const char *file, const char *val)
{
        _cleanup_close_ int fd = open_ctl(dir, file, O_WRONLY);
        if (fd < 0)
                return fd;
        size_t len = strlen(val);
        ssize_t n = write(fd, val, len);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}

int cgfs_read(const char *dir, const char *file, char *buf, size_t len)
{
        _cleanup_close_ int fd = open_ctl(dir, file, O_RDONLY);
        if (fd < 0)
                return fd;
        ssize_t n = read(fd, buf, len - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
        char *end;
        errno = 0;
        unsigned long long x = strtoull(s, &end, 10);
        if (end == s || errno || (*end && *end != '\n' && *end != ' '))
                return -EINVAL;
        *v = x;
        return 0;
}

int cgfs_read_u64(const char *dir, const char *file, uint64_t *v)
{
        char buf[64];
        int rc = cgfs_read(dir, file, buf, sizeof buf);
        return rc < 0 ? rc : parse_u64(buf, v);
}

int cgfs_read_key(const char *dir, const char *file, const char *key, uint64_t *v)
{
        char buf[4096];
        int rc = cgfs_read(dir, file, buf, sizeof buf);
        if (rc < 0)
                return rc;
        size_t kl = strlen(key);
        for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
                if (!strncmp(l, key, kl) && l[kl] == ' ')
                        return parse_u64(l + kl + 1, v);
        return -ENOENT;
}

/* Does a /proc/self/cgroup line's controller list name `controller`? ""
 * matches the cgroup2 line ("0::/path"). */
static bool line_matches(const char *id, const char *ctrls, const char *controller)
{
        if (!*controller)
                return !*ctrls && !strcmp(id, "0");
        size_t cl = strlen(controller);
        for (const char *t = ctrls; *t;) {
                size_t tl = strcspn(t, ",");
                if (tl == cl && !strncmp(t, controller, cl))
                        return true;
                t += tl + (t[tl] == ',');
        }
        return false;
}

int cgfs_self(const char *controller, char *out, size_t len)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
        if (!f)
                return -errno;
        char line[PATH_MAX + 256];
        while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = '\0';
                char *c1 = strchr(line, ':');
                char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c1 = *c2 = '\0';
                if (line_matches(line, c1 + 1, controller))
                        return cgfs_path(out, len, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
        }
        return -ENOENT;
}

/* Lines of cgroups.log, whole: 0 or -errno. Written before the directory
 * is made, so that a supervisor killed between the log and the mkdir leaves
 * gc the path, not an orphan; a line that cannot be written means no
 * directory (cgroup_internal.h). Test builds: the fault point `fault` (or
 * "cgroups-log", every write) fails it with ENOSPC. */
static int intent_write(int fd, const char *buf, size_t n, const char *fault)
{
        if (cgfs_fault_at("cgroups-log") || cgfs_fault_at(fault))
                return -ENOSPC;
        ssize_t w = write(fd, buf, n);
        return w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
}

int cgfs_intent(struct aidp_cgroup *cg, const char *path)
{
        /* no log: the journal-less API (aidp_cgroup_create); a run always
         * has one (startup.c fails without it) */
        if (cg->intent_fd < 0)
                return 0;
        char line[PATH_MAX + 2];
        int n = snprintf(line, sizeof line, "%s\n", path);
        int rc = n <= 0 || (size_t)n >= sizeof line
                         ? -ENAMETOOLONG
                         : intent_write(cg->intent_fd, line, (size_t)n, "cgroups-log");
        if (rc < 0)
                cg->intent_errno = -rc;
        return rc;
}

int cgfs_intent_lost(aidp_error *err, const struct aidp_cgroup *cg, const char *dir)
{
        /* The write's own errno: ENOSPC tells the operator /run is full. */
        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, cg->intent_errno ? cg->intent_errno : EIO,
                                "cgroup: %s not made: the run journal's cgroups.log could not "
                                "be written",
                                dir);
}

int cgfs_intent_all(const struct aidp_cgroup *cg)
{
        /* One write: on the critical path of a run that adopts them. */
        static char buf[CG_MAX_DIRS * (PATH_MAX + 1)];
        size_t n = 0;
        for (size_t i = 0; i < cg->n_dirs; i++) {
                size_t l = strlen(cg->dirs[i].path);
                if (cg->dirs[i].gone || n + l + 1 > sizeof buf)
                        continue;
                memcpy(buf + n, cg->dirs[i].path, l);
                buf[n + l] = '\n';
                n += l + 1;
        }
        return n ? intent_write(cg->intent_fd, buf, n, "cgroups-log-adopt") : 0;
}

int cgfs_add_dir(struct aidp_cgroup *cg, const char *path, const char *parent, const char *ctrl)
{
        /* A retry after a rollback makes the same directory again. */
        for (size_t i = 0; i < cg->n_dirs; i++)
                if (cg->dirs[i].gone && !strcmp(cg->dirs[i].path, path)) {
                        cg->dirs[i].gone = false;
                        return (int)i;
                }
        if (cg->n_dirs >= CG_MAX_DIRS)
                return -E2BIG;
        struct cg_dir *d = &cg->dirs[cg->n_dirs];
        if (cgfs_path(d->path, sizeof d->path, "%s", path) < 0 ||
            cgfs_path(d->parent, sizeof d->parent, "%s", parent ? parent : "") < 0 ||
            cgfs_path(d->controller, sizeof d->controller, "%s", ctrl) < 0)
                return -ENAMETOOLONG;
        d->gone = false;
        return (int)cg->n_dirs++;
}

int cgfs_mkdir(struct aidp_cgroup *cg, const char *dir, const char *parent, const char *ctrl)
{
        if (cgfs_intent(cg, dir) < 0)
                return CGFS_INTENT_LOST;
        int idx = cgfs_add_dir(cg, dir, parent, ctrl);
        if (idx >= 0 && mkdir(dir, 0755) < 0) {
                int e = errno;
                cgfs_forget_dir(cg, idx);
                return -e;
        }
        return idx;
}

void cgfs_forget_dir(struct aidp_cgroup *cg, int idx)
{
        if ((size_t)idx + 1 == cg->n_dirs)
                cg->n_dirs--;
        else
                cg->dirs[idx].gone = true; /* revived by a retry: made and removed before */
}

/* Teardown waits for the kernel to finish exiting processes; that usually
 * takes microseconds, so poll fast at first and back off to 5 ms. */
void cgfs_backoff(int attempt)
{
        long ns = 50 * 1000L << (attempt < 7 ? attempt : 7);
        if (ns > 5 * 1000 * 1000L)
                ns = 5 * 1000 * 1000L;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
}

int cgfs_rmdir_retry(const char *path)
{
        /* rmdir fails with EBUSY while the last killed task is still exiting. */
        for (int i = 0; i < 200; i++) {
                if (rmdir(path) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY)
                        return -errno;
                cgfs_backoff(i);
        }
        return -EBUSY;
}

bool cgfs_warm;

void cgfs_remove_dirs_from(struct aidp_cgroup *cg, size_t from)
{
        for (size_t i = cg->n_dirs; i-- > from;) {
                if (cg->dirs[i].gone)
                        continue;
                if (cgfs_rmdir_retry(cg->dirs[i].path) == 0)
                        cg->dirs[i].gone = true;
                /* The shared parent goes when the last run using it ends;
                 * ENOTEMPTY/EBUSY just means another run still uses it.
                 * A daemon keeps it for its next run (aidp_cgroup_warm). */
                if (cg->dirs[i].parent[0] && !cgfs_warm)
                        rmdir(cg->dirs[i].parent);
        }
}

int cgfs_remove_all(const struct aidp_cgroup *cg)
{
        int left = 0;
        for (size_t i = cg->n_dirs; i-- > 0;) {
                if (cg->dirs[i].gone)
                        continue;
                if (cgfs_rmdir_retry(cg->dirs[i].path) < 0)
                        left++;
                if (cg->dirs[i].parent[0] && !cgfs_warm)
                        rmdir(cg->dirs[i].parent);
        }
        return left;
}

/* SIGKILL every listed process but keep; true when none but keep was listed.
 * Read with plain reads into the stack, not stdio: at a run's teardown the
 * listing is usually empty, and stdio's buffer was a malloc (and, in a daemon
 * worker, copy-on-write faults) for nothing. */
static bool kill_listed(const char *dir, pid_t keep)
{
        char p[PATH_MAX];
        if (cgfs_path(p, sizeof p, "%s/cgroup.procs", dir) < 0)
                return true;
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return true;
        char buf[4096];
        size_t have = 0;
        bool only_keep = true;
        for (;;) {
                ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
                bool eof = n <= 0;
                if (n > 0)
                        have += (size_t)n;
                buf[have] = '\0';
                /* Whole lines only: a pid cut at the end of a read waits for
                 * the next one (at the end of the file every line is whole). */
                char *end = eof ? buf + have : strrchr(buf, '\n');
                if (!end) {
                        if (have >= sizeof buf - 1)
                                break;
                        continue;
                }
                for (char *c = buf; c < end;) {
                        char *next;
                        long pid = strtol(c, &next, 10);
                        if (next == c) {
                                c++;
                                continue;
                        }
                        if (next > end)
                                break;
                        c = next;
                        if (pid <= 0 || pid == keep)
                                continue;
                        only_keep = false;
                        kill((pid_t)pid, SIGKILL);
                }
                size_t used = (size_t)(end - buf) + (end < buf + have);
                memmove(buf, buf + used, have - used);
                have -= used;
                if (eof)
                        break;
        }
        return only_keep;
}

int cgfs_kill_path(const char *path, pid_t keep)
{
        /* Without cgroup.kill, a fork between reading cgroup.procs and the
         * kill could slip through, so loop until the cgroup stays empty. */
        for (int i = 0; i < 400; i++) {
                if (kill_listed(path, keep))
                        return 0;
                cgfs_backoff(i);
        }
        return -EBUSY;
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

bool cgfs_run_empty(const struct aidp_cgroup *cg)
{
        size_t from, to;
        run_listing(cg, &from, &to);
        char buf[64];
        for (size_t d = from; d < to; d++)
                if (!cg->dirs[d].gone &&
                    (cgfs_read(cg->dirs[d].path, "cgroup.procs", buf, sizeof buf) < 0 || buf[0]))
                        return false;
        return true;
}

/* A cgroup2 directory's "populated" (cgroup.events): 1 when a process is in
 * it or in any cgroup below it, 0 when none is; -1 unknown. */
static int populated(const char *path)
{
        char buf[128];
        if (cgfs_read(path, "cgroup.events", buf, sizeof buf) < 0)
                return -1;
        const char *p = strstr(buf, "populated ");
        return p && (p[10] == '0' || p[10] == '1') ? p[10] == '1' : -1;
}

/* The cgroups below a run's cgroup2 directory (a job that kept CAP_SYS_ADMIN
 * may make them and move processes there; cgroup.procs lists none of
 * theirs): each child killed whole with cgroup.kill (pid 1 is never below
 * the run's own directory), its subtree with it. Again on every pass, so that
 * a child made meanwhile is taken too. True when every child is empty
 * ("populated 0") or gone. */
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

static bool kill_children(const char *dir)
{
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return true;
        bool empty = true;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_type != DT_DIR || e->d_name[0] == '.')
                        continue;
                char child[PATH_MAX];
                if (cgfs_path(child, sizeof child, "%s/%s", dir, e->d_name) < 0)
                        continue;
                if (populated(child) == 1) {
                        cgfs_write(child, "cgroup.kill", "1");
                        empty = false;
                }
        }
        return empty;
}

int cgfs_kill_run(struct aidp_cgroup *cg, pid_t keep)
{
        size_t from, to;
        run_listing(cg, &from, &to);
        /* cgroup.kill takes the whole run at once, forks in flight included,
         * and the cgroups below it; it cannot spare pid 1, so only a full
         * kill uses it. Not when nothing is left in the cgroup nor below it
         * ("populated 0": a run's teardown has killed and reaped everything
         * by then): an unpopulated cgroup gains no process by a fork, and
         * only root could move one in. cgroup.procs would not do: it lists
         * no descendant's process (a job that kept CAP_SYS_ADMIN may make a
         * child cgroup and move there). */
        if (keep <= 0 && cg->kill_dir >= 0 && !cg->dirs[cg->kill_dir].gone) {
                if (populated(cg->dirs[cg->kill_dir].path) == 0)
                        return 0;
                cgfs_write(cg->dirs[cg->kill_dir].path, "cgroup.kill", "1");
        }
        /* Sparing pid 1, the run's own directory is killed by its list and
         * the cgroups below it whole. */
        bool below = keep > 0 && cg->kill_dir >= 0 && !cg->dirs[cg->kill_dir].gone;
        for (int i = 0; i < 400; i++) {
                bool done = !below || kill_children(cg->dirs[cg->kill_dir].path);
                for (size_t d = from; d < to; d++)
                        if (!cg->dirs[d].gone && !kill_listed(cg->dirs[d].path, keep))
                                done = false;
                if (done)
                        return 0;
                cgfs_backoff(i);
        }
        return -EBUSY;
}
