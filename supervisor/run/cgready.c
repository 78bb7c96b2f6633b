/* Ready-made cgroups (cgready.h). */
#define _GNU_SOURCE
#include "supervisor/run/cgready.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "common/cleanup.h"
#include "common/fsdir.h"
#include "common/path.h"
#include "supervisor/run/journal.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "supervisor/sandbox/devnodes.h"

#define READY_DIR  ".ready"
#define NEW_SUFFIX ".new"

/* This process's ready cgroup: one at most, for the one run it serves. */
static struct {
        struct aidp_cgroup *cg;
        char id[40];
        char record[PATH_MAX]; /* <run dir>/.ready/<id> */
        int fd;                /* the record, open and locked while held; -1 */
} g = {.fd = -1};

static int records_dir(const char *run_dir, char *out, size_t len)
{
        return aidp_path_join(out, len, aidp_journal_run_dir(run_dir), READY_DIR);
}

/* Remove a record's files and directory (what it names is gone). */
static void record_remove(int dfd, const char *dir)
{
        unlinkat(dfd, AIDP_JOURNAL_CGROUP_LOG, 0);
        rmdir(dir);
}

/* A record directory of its own, locked, then renamed into place: gc never
 * sees a record under its final name that nobody holds yet. */
static int record_create(const char *rdir)
{
        char tmp[PATH_MAX + 8];
        if (aidp_path_join(g.record, sizeof g.record, rdir, g.id) < 0 ||
            snprintf(tmp, sizeof tmp, "%s" NEW_SUFFIX, g.record) >= (int)sizeof tmp ||
            mkdir(tmp, 0700) < 0)
                return -1;
        int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 || flock(dfd, LOCK_EX | LOCK_NB) < 0 || rename(tmp, g.record) < 0) {
                if (dfd >= 0)
                        close(dfd);
                rmdir(tmp);
                return -1;
        }
        return dfd;
}

/* This process's pid namespace (its inode), or 0: a mark's pid means a
 * process only in the namespace it was read in. */
static unsigned long pid_ns(void)
{
        struct stat st;
        return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0;
}

int aidp_run_cgready_mark(pid_t pid, const char *run_dir, char *out, size_t len)
{
        unsigned long long start = aidp_proc_starttime(pid);
        unsigned long ns = pid_ns();
        const char *rd = aidp_journal_run_dir(run_dir);
        struct stat st;
        if (start == 0 || ns == 0 || rd[0] != '/' || stat(rd, &st) < 0)
                return -1;
        int n = snprintf(out, len, "%d %llu %lu %llu:%llu %s", (int)pid, start, ns,
                         (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, rd);
        return n > 0 && (size_t)n < len ? 0 : -1;
}

void aidp_run_cgready_make(const char *run_dir)
{
        if (g.cg)
                return;
        char rdir[PATH_MAX];
        if (records_dir(run_dir, rdir, sizeof rdir) < 0 ||
            aidp_mkdir_p(aidp_journal_run_dir(run_dir), 0700, 0755) < 0 ||
            (mkdir(rdir, 0700) < 0 && errno != EEXIST))
                return;
        /* Those of workers that ended without a run (a "ps", a refused
         * request), before this one adds its own. */
        aidp_run_cgready_gc(run_dir, 0);
        uuid_t u;
        uuid_generate_random(u);
        uuid_unparse_lower(u, g.id);
        int dfd = record_create(rdir);
        if (dfd < 0)
                return;
        _cleanup_close_ int log =
                openat(dfd, AIDP_JOURNAL_CGROUP_LOG,
                       O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        /* Its maker, on the cgroup itself: found and judged by
         * aidp_run_cgready_sweep even once this record is gone with its run
         * directory (deleted after the daemon was killed). */
        char mark[AIDP_CGREADY_MARK_MAX];
        const char *mk =
                aidp_run_cgready_mark(getpid(), run_dir, mark, sizeof mark) == 0 ? mark : NULL;
        aidp_error err = {0};
        if (log < 0 ||
            aidp_cgroup_prepare(NULL, g.id, log, aidp_devnodes_allow, mk, &g.cg, &err) < 0) {
                g.cg = NULL;
                record_remove(dfd, g.record);
                close(dfd);
                return;
        }
        g.fd = dfd;
}

bool aidp_run_cgready_id(char *out, size_t len)
{
        if (!g.cg)
                return false;
        snprintf(out, len, "%s", g.id);
        return true;
}

struct aidp_cgroup *aidp_run_cgready_take(const char *run_id, const char *parent)
{
        if (!g.cg)
                return NULL;
        if ((parent && *parent) || strcmp(run_id, g.id)) {
                aidp_run_cgready_drop();
                return NULL;
        }
        /* Fresh: no process may have joined it (only root can, but a run
         * must never share its cgroup). One that has is left as it is, to
         * gc, which removes it once empty. */
        if (!aidp_cgroup_is_empty(g.cg)) {
                aidp_cgroup_forget(g.cg);
                g.cg = NULL;
                close(g.fd);
                g.fd = -1;
                return NULL;
        }
        struct aidp_cgroup *cg = g.cg;
        g.cg = NULL;
        return cg;
}

void aidp_run_cgready_release(void)
{
        if (g.fd < 0)
                return;
        record_remove(g.fd, g.record);
        close(g.fd);
        g.fd = -1;
}

void aidp_run_cgready_drop(void)
{
        if (g.cg) {
                aidp_error err = {0};
                int rc = aidp_cgroup_destroy(g.cg, &err);
                g.cg = NULL;
                if (rc < 0 && g.fd >= 0) {
                        /* Left to gc, which its record still points to. */
                        close(g.fd);
                        g.fd = -1;
                }
        }
        aidp_run_cgready_release();
}

/* ---- gc ---- */

struct gc_state {
        const char *id;
        int left;
};

/* Only a ready cgroup's own directory: under the cgroup mount, named after
 * the record. rmdir alone: a ready cgroup holds no process, and one a run
 * took over (crash between its journal and the record's removal) is that
 * run's, removed by its journal's gc. */
static void gc_path(const char *path, void *arg)
{
        struct gc_state *s = arg;
        const char *base = strrchr(path, '/');
        if (strncmp(path, "/sys/fs/cgroup/", 15) || strstr(path, "/..") || !base ||
            strcmp(base + 1, s->id))
                return;
        if (rmdir(path) < 0 && errno != ENOENT)
                s->left++;
}

/* Whether a cgroup of a record holds a process (arg: bool, set once true). */
static void populated_path(const char *path, void *arg)
{
        bool *populated = arg;
        char p[PATH_MAX];
        if (*populated || strncmp(path, "/sys/fs/cgroup/", 15) || strstr(path, "/..") ||
            aidp_path_join(p, sizeof p, path, "cgroup.procs") < 0)
                return;
        _cleanup_close_ int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        char c;
        if (fd >= 0 && read(fd, &c, 1) == 1)
                *populated = true;
}

/* One record: true when it is gone. held (when not NULL): a worker holds it
 * and may let it go in a moment (an idle one, whose cgroup is empty); a
 * record whose cgroup holds a process is a run's, which it keeps to its end
 * (startup.c), and is not waited for. A caller that waits for nobody passes
 * NULL: telling the two apart reads the record's cgroups.log and a
 * cgroup.procs per hierarchy, for every live worker's record, in every idle
 * worker's aidp_run_cgready_make (about 0.9 ms of CPU per run back to back,
 * docs/run-core.md, "Where a run's CPU goes"). */
static bool gc_record(int rfd, const char *rdir, const char *name, bool *held)
{
        char dir[PATH_MAX], id[64];
        if (held)
                *held = false;
        size_t l = strlen(name);
        bool is_new = l > strlen(NEW_SUFFIX) && !strcmp(name + l - strlen(NEW_SUFFIX), NEW_SUFFIX);
        if (aidp_path_join(dir, sizeof dir, rdir, name) < 0 ||
            snprintf(id, sizeof id, "%.*s", (int)(is_new ? l - strlen(NEW_SUFFIX) : l), name) >=
                    (int)sizeof id)
                return false;
        _cleanup_close_ int dfd =
                openat(rfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (dfd < 0 || fstat(dfd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 077))
                return false;
        if (flock(dfd, LOCK_EX | LOCK_NB) < 0) {
                if (!held)
                        return false;
                bool populated = false;
                aidp_journal_cgroup_log_each(dir, populated_path, &populated);
                *held = !populated;
                return false;
        }
        /* Not renamed into place yet: its maker may not hold it yet either. */
        if (is_new && time(NULL) - st.st_mtime < 60)
                return false;
        struct gc_state s = {.id = id};
        aidp_journal_cgroup_log_each(dir, gc_path, &s);
        if (s.left)
                return false;
        record_remove(dfd, dir);
        return true;
}

int aidp_run_cgready_gc(const char *run_dir, int wait_ms)
{
        char rdir[PATH_MAX];
        if (records_dir(run_dir, rdir, sizeof rdir) < 0)
                return 0;
        int removed = 0;
        for (int waited = 0;; waited += 20) {
                DIR *d = opendir(rdir);
                if (!d)
                        return removed;
                bool any_held = false;
                for (struct dirent *e; (e = readdir(d));) {
                        if (e->d_name[0] == '.')
                                continue;
                        bool held = false;
                        removed += gc_record(dirfd(d), rdir, e->d_name, wait_ms > 0 ? &held : NULL);
                        any_held |= held;
                }
                closedir(d);
                if (!any_held || waited >= wait_ms)
                        return removed;
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

/* ---- the sweep: ready cgroups whose record is gone ---- */

/* Is pid, started at start, gone? Only a /proc entry that does not exist
 * (ENOENT, ESRCH), a zombie or another start time say so; one that cannot be
 * read now (ENFILE, ENOMEM, EACCES...) tells nothing: the maker counts as
 * alive. */
static bool pid_gone(int pid, unsigned long long start)
{
        char p[64], buf[1024];
        snprintf(p, sizeof p, "/proc/%d/stat", pid);
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT || errno == ESRCH;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
                return errno == ESRCH; /* the task went between open and read */
        buf[n] = '\0';
        /* comm may hold spaces and ')': the fields restart after the last ')' */
        const char *s = strrchr(buf, ')');
        char state;
        unsigned long long t;
        if (!s || sscanf(s + 1,
                         " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                         "%*s %*s %*s %llu",
                         &state, &t) != 2)
                return false;
        return state == 'Z' || state == 'X' || t != start;
}

/* The run directory the sweep is for: its own marks, and those of a run
 * directory that is gone, are its to judge. */
struct sweep_for {
        const char *run_dir;
        unsigned long long dev, ino;
        void (*report)(const char *path, void *arg);
        void *arg;
};

/* Is the mark's run directory one this sweep may judge for: its own, or one
 * that no longer exists (or is another directory now, another inode)? Another
 * aidp instance's live run directory (a parallel test suite, another daemon)
 * is that instance's to sweep. */
static bool run_dir_ours(const struct sweep_for *sf, unsigned long long dev, unsigned long long ino,
                         const char *path)
{
        if (sf->run_dir && !strcmp(path, sf->run_dir) && dev == sf->dev && ino == sf->ino)
                return true;
        struct stat st;
        if (stat(path, &st) < 0)
                return errno == ENOENT || errno == ENOTDIR;
        return (unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino;
}

/* A mark names a maker that is gone: its pid (in this pid namespace) has
 * another start time, or none (exited, a zombie). A maker of another pid
 * namespace (a daemon in a container, gc on the host) cannot be judged
 * from here, nor can anything unreadable: both count as alive. A mark of
 * another instance's live run directory is left alone. */
static bool maker_gone(const char *mark, void *arg)
{
        const struct sweep_for *sf = arg;
        int pid, off = 0;
        unsigned long long start, dev, ino;
        unsigned long ns;
        if (sscanf(mark, "%d %llu %lu %llu:%llu %n", &pid, &start, &ns, &dev, &ino, &off) != 5 ||
            off == 0 || mark[off] != '/' || pid <= 0 || start == 0 || ns == 0 || ns != pid_ns())
                return false;
        return run_dir_ours(sf, dev, ino, mark + off) && pid_gone(pid, start);
}

static void swept(const char *path, void *arg)
{
        struct sweep_for *sf = arg;
        if (sf->report)
                sf->report(path, sf->arg);
}

int aidp_run_cgready_sweep(const char *run_dir, void (*report)(const char *path, void *arg),
                           void *arg)
{
        struct sweep_for sf = {
                .run_dir = aidp_journal_run_dir(run_dir), .report = report, .arg = arg};
        struct stat st;
        if (stat(sf.run_dir, &st) == 0) {
                sf.dev = (unsigned long long)st.st_dev;
                sf.ino = (unsigned long long)st.st_ino;
        } else
                sf.run_dir = NULL;
        return aidp_cgroup_sweep_marked(maker_gone, swept, &sf);
}
