#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/path.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "supervisor/lineage/codec/lineage_codec.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/lineage/lineage_find.h"
#include "supervisor/run/cgready.h"
#include "supervisor/run/journal.h"
#include "supervisor/run/run.h"
#include "supervisor/run/run_lineage.h"
#include "supervisor/run/run_net.h"
#include "supervisor/sandbox/nspin.h"
#include "supervisor/sandbox/shred.h"

static bool alive(json_object *j, const char *pid_key, const char *start_key, pid_t *pid_out)
{
        json_object *p, *s;
        if (!json_object_object_get_ex(j, pid_key, &p) ||
            !json_object_object_get_ex(j, start_key, &s))
                return false;
        pid_t pid = (pid_t)json_object_get_int(p);
        *pid_out = pid;
        unsigned long long st = aidp_proc_starttime(pid);
        return pid > 0 && st != 0 && st == json_object_get_uint64(s);
}

static void wait_gone(pid_t pid, unsigned long long start)
{
        for (int i = 0; i < 400; i++) {
                if (aidp_proc_starttime(pid) != start)
                        return;
                struct timespec ts = {0, 5 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

/* The run's cgroup directories: journal.json's list and cgroups.log (paths
 * logged before each directory was made), each once, and only run cgroups
 * (under /sys/fs/cgroup, no "..": the journal names what gc removes). */
struct cg_list {
        char paths[32][PATH_MAX];
        size_t n;
        const char *run_id;
};

/* Is pid in the run's cgroup (a line of /proc/PID/cgroup ending in
 * "/<run id>")? gc never signals or reads fds from a process that is not. */
static bool in_run_cgroup(pid_t pid, const char *run_id)
{
        char p[64], line[PATH_MAX + 64];
        snprintf(p, sizeof p, "/proc/%d/cgroup", (int)pid);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return false;
        size_t l = strlen(run_id);
        while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = '\0';
                size_t n = strlen(line);
                if (n > l + 1 && line[n - l - 1] == '/' && !strcmp(line + n - l, run_id))
                        return true;
        }
        return false;
}

/* Has pid exited, and waits only for its parent to reap it (a zombie)?
 * Such a pid 1 holds no files any more (pidfd_getfd fails), yet its /proc
 * entry keeps its start time and, on cgroup v2, its cgroup: it is no holder
 * of the run's mounts. A supervisor that died during teardown leaves one
 * (pid 1 is killed at teardown's start when its namespace is pinned). */
static bool exited(pid_t pid)
{
        char p[64], buf[512];
        snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return true;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        const char *c = strrchr(buf, ')');
        return !c || c[1] != ' ' || c[2] == 'Z' || c[2] == 'X' || c[2] == '\0';
}

/* Only what aidp itself made: a root-owned directory no one else can write
 * (0700 for a run's own), and a journal file root alone could have written. */
static bool own_dir(int fd, bool strict)
{
        struct stat st;
        return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 &&
               !(st.st_mode & (strict ? 077 : 022));
}

static json_object *own_journal(int dirfd)
{
        _cleanup_close_ int fd =
                openat(dirfd, "journal.json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
            (st.st_mode & 022))
                return NULL;
        return json_object_from_fd(fd);
}

static void cg_list_add(const char *path, void *arg)
{
        struct cg_list *l = arg;
        if (strncmp(path, "/sys/fs/cgroup/", 15) || strstr(path, "/.."))
                return;
        /* Only the run's own directories, named after it. */
        const char *base = strrchr(path, '/');
        if (!l->run_id || strcmp(base + 1, l->run_id))
                return;
        for (size_t i = 0; i < l->n; i++)
                if (!strcmp(l->paths[i], path))
                        return;
        if (l->n < sizeof l->paths / sizeof l->paths[0])
                snprintf(l->paths[l->n++], PATH_MAX, "%s", path);
}

/* The egress network of a run whose journal names one ("networks") (after its pid 1 is
 * gone, so that its namespace and the veth with it are being freed): the host
 * table and leases named after the run. NULL when the run had none. */
static const char *gc_network(const char *dir, json_object *j)
{
        json_object *net, *rid;
        if (!json_object_object_get_ex(j, "networks", &net) ||
            !json_object_object_get_ex(j, "run_id", &rid))
                return NULL;
        char base[PATH_MAX];
        snprintf(base, sizeof base, "%s", dir);
        char *slash = strrchr(base, '/');
        if (slash)
                *slash = '\0';
        aidp_error err = {0};
        if (aidp_run_net_gc(base, json_object_get_string(rid), &err) < 0)
                return ", its network remains";
        return ", released its network";
}

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

/* Overwrite one tmpfs (a writable mount fd), add it to the total and, when
 * its target is known, to the per-mount report (lineage's aidp_shred.mounts). */
static void shred_one(int fd, const char *target, struct aidp_shred_report *total,
                      json_object *mounts)
{
        struct aidp_shred_report one;
        int e = aidp_shred_tree(fd, 2, &one);
        total->files += one.files;
        total->bytes += one.bytes;
        if (!one.verified || e < 0)
                total->verified = false;
        if (!mounts || !target)
                return;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "mount", json_object_new_string(target));
        json_object_object_add(o, "files", json_object_new_uint64(one.files));
        json_object_object_add(o, "bytes", json_object_new_uint64(one.bytes));
        json_object_object_add(o, "verified", json_object_new_boolean(one.verified && e >= 0));
        json_object_array_add(mounts, o);
}

/* The sandbox path the journal names for tmpfs entry i, or NULL. */
static const char *tmpfs_target(json_object *entry)
{
        json_object *t;
        return json_object_object_get_ex(entry, "target", &t) ? json_object_get_string(t) : NULL;
}

/* Overwrite every tmpfs of the run through duplicates of pid 1's own mount
 * fds (the writable originals the supervisor had; reopening the
 * /proc/<pid>/fd link fails for a mount outside our namespace). Returns
 * whether anything was shredded. */
static bool gc_shred(json_object *j, pid_t *pid1, bool holder, struct aidp_shred_report *total,
                     json_object *mounts)
{
        json_object *arr;
        _cleanup_close_ int pidfd = holder ? (int)syscall(SYS_pidfd_open, *pid1, 0) : -1;
        if (holder && pidfd < 0)
                total->verified = false; /* pid 1 is there, its mounts out of reach */
        /* pid reuse between the liveness check and pidfd_open */
        if (pidfd < 0 || !alive(j, "pid1", "pid1_start", pid1) ||
            !json_object_object_get_ex(j, "tmpfs", &arr))
                return false;
        bool shredded = false;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *fdo;
                if (!json_object_object_get_ex(json_object_array_get_idx(arr, i), "fd", &fdo))
                        continue;
                _cleanup_close_ int fd =
                        (int)syscall(SYS_pidfd_getfd, pidfd, json_object_get_int(fdo), 0);
                if (fd < 0) {
                        total->verified = false;
                        continue;
                }
                shred_one(fd, tmpfs_target(json_object_array_get_idx(arr, i)), total, mounts);
                shredded = true;
        }
        return shredded;
}

/* As many tmpfs mounts as a run has (AIDP_SANDBOX_MAX_MOUNTS). */
#define GC_MAX_MOUNTS 8

/* pid 1 is gone too: the tmpfs mounts live on in its mount namespace, which
 * the run pinned in its journal directory (nspin.h). Writable clones of them
 * are opened in there and overwritten. Returns whether anything was. */
static bool gc_shred_pinned(const char *pin, json_object *j, struct aidp_shred_report *total,
                            json_object *mounts)
{
        json_object *arr;
        if (access(pin, F_OK) != 0 || !json_object_object_get_ex(j, "tmpfs", &arr))
                return false;
        const char *targets[GC_MAX_MOUNTS];
        size_t n = 0;
        for (size_t i = 0; i < json_object_array_length(arr) && n < GC_MAX_MOUNTS; i++) {
                json_object *t;
                /* Only absolute paths without "..": names inside the
                 * sandbox, resolved in its namespace. */
                if (json_object_object_get_ex(json_object_array_get_idx(arr, i), "target", &t) &&
                    aidp_path_is_clean_abs(json_object_get_string(t)))
                        targets[n++] = json_object_get_string(t);
        }
        if (n == 0)
                return false;
        int fds[GC_MAX_MOUNTS];
        int opened = aidp_nspin_open_mounts(pin, targets, n, fds);
        if (opened < (int)n)
                total->verified = false; /* a mount out of reach */
        bool shredded = false;
        for (size_t i = 0; i < n; i++) {
                if (fds[i] < 0)
                        continue;
                shred_one(fds[i], targets[i], total, mounts);
                close(fds[i]);
                shredded = true;
        }
        return shredded;
}

/* Remove the run's cgroup directories; counts what was removed and left. */
static void gc_cgroups(const struct cg_list *cgs, int *removed, int *left)
{
        *removed = *left = 0;
        /* Deepest first is not needed: every path is a run's own leaf. */
        for (size_t i = 0; i < cgs->n; i++) {
                /* A path gc cannot see (its hierarchy not mounted in gc's
                 * namespace) is not gone: it is left, and the journal kept. */
                if (aidp_cgroup_path_gone(cgs->paths[i]))
                        continue;
                if (access(cgs->paths[i], F_OK) != 0) {
                        (*left)++;
                        continue;
                }
                if (aidp_cgroup_remove_path(cgs->paths[i]) == 0)
                        (*removed)++;
                else
                        (*left)++;
        }
}

/* Commit the log's records past its anchor: a supervisor killed between its
 * end record's write and that record's commit left a line no fdatasync covers
 * (a host crash would lose it, a later append's failed sync cut it away). */
static bool commit_pending(const char *log)
{
        struct aidp_lineage *lg = NULL;
        struct aidp_lineage_options lo = {.path = log, .create_key = true};
        aidp_error err = {0};
        int r = aidp_lineage_open(&lg, &lo, &err);
        if (r == 0)
                r = aidp_lineage_commit_pending(lg, &err);
        aidp_lineage_free(lg);
        return r == 0;
}

/* Is the run's end record (COMPLETE, FAIL, or a previous gc's ABORT) in its
 * lineage log already, and committed? Only one after the run's own START
 * counts: that START is not older than the journal (a run id used again names
 * another run). One found is committed first (it may await the commit its
 * killed writer never made), then looked for again (a failed commit cuts the
 * log back to the anchored record). A log that cannot be read or committed
 * tells nothing: the ABORT is appended as before. */
static bool end_in_lineage(json_object *j, const char *log, const char *run_id, char *type,
                           size_t len)
{
        json_object *c;
        int64_t created =
                json_object_object_get_ex(j, "created", &c) ? json_object_get_int64(c) : 0;
        char lid[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_for(run_id, lid);
        return aidp_lineage_find_end(log, lid, created, type, len) == 1 && commit_pending(log) &&
               aidp_lineage_find_end(log, lid, created, type, len) == 1;
}

/* The ABORT record, before the journal goes: if it cannot be written the
 * journal stays and the next gc tries again. */
static int gc_record_abort(json_object *j, const struct aidp_shred_report *total, bool shredded,
                           const char *by, json_object *mounts, char *what, size_t what_len)
{
        json_object *lin, *jobs, *rid, *ended;
        /* The supervisor wrote the run's end record and left the rest to gc:
         * a second end record (ABORT after FAIL) would contradict it. */
        if (json_object_object_get_ex(j, "end_recorded", &ended)) {
                char report[512];
                aidp_text_printf(report, sizeof report, "%s", what);
                aidp_text_printf(what, what_len, "%s; end record (%s) already in lineage", report,
                                 json_object_get_string(ended));
                return 0;
        }
        if (!json_object_object_get_ex(j, "lineages", &lin) || json_object_array_length(lin) == 0)
                return 0;
        const char *job = NULL;
        if (json_object_object_get_ex(j, "jobs", &jobs) && json_object_array_length(jobs) > 0)
                job = json_object_get_string(json_object_array_get_idx(jobs, 0));
        const char *run_id =
                json_object_object_get_ex(j, "run_id", &rid) ? json_object_get_string(rid) : NULL;
        const char *log = json_object_get_string(json_object_array_get_idx(lin, 0));
        char report[512];
        aidp_text_printf(report, sizeof report, "%s", what);
        /* The supervisor died after its end record was in the log but
         * before the journal went (step 10, the pin's thread joined): the
         * run is on record already, and gc only cleaned up. */
        char type[16];
        if (run_id && log && end_in_lineage(j, log, run_id, type, sizeof type)) {
                aidp_text_printf(what, what_len,
                                 "end record (%s) already in lineage, with its teardown's shred "
                                 "report; gc only cleaned up: %s",
                                 type, report);
                return 0;
        }
        aidp_error lerr = {0};
        if (run_id && aidp_run_lineage_abort(log, run_id, job, total, shredded, by, report, mounts,
                                             &lerr) < 0) {
                aidp_text_printf(what, what_len, "%s; ABORT not recorded, journal kept: %s", report,
                                 lerr.msg);
                return -EIO;
        }
        aidp_text_printf(what, what_len, "%s; ABORT recorded in lineage", report);
        return 0;
}

static void gc_remove_journal(const char *dir)
{
        char p[PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/" AIDP_JOURNAL_NSPIN, dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/" AIDP_JOURNAL_CGROUP_LOG, dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/journal.json", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/journal.json.tmp", dir);
        unlink(p);
        rmdir(dir);
}

/* Clean one run whose supervisor is gone: shred through the tmpfs fds that
 * the sandbox's pid 1 still holds, kill it, remove cgroups and the journal. */
static int gc_one(const char *dir, const char *name, json_object *j, char *what, size_t what_len)
{
        pid_t pid1 = 0;
        struct aidp_shred_report total = {.verified = true};
        _cleanup_(json_object_putp) json_object *mounts = json_object_new_array();
        json_object *arr, *rido;
        static struct cg_list cgs;
        cgs.n = 0;
        /* A journal names the run of its own directory, or it is not ours. */
        const char *jrid =
                json_object_object_get_ex(j, "run_id", &rido) ? json_object_get_string(rido) : NULL;
        if (!jrid || strcmp(jrid, name)) {
                snprintf(what, what_len, "journal names run '%s', not its directory's: left alone",
                         jrid ? jrid : "(none)");
                return -EPERM;
        }
        cgs.run_id = name;
        if (json_object_object_get_ex(j, "cgroups", &arr))
                for (size_t i = 0; i < json_object_array_length(arr); i++)
                        cg_list_add(json_object_get_string(json_object_array_get_idx(arr, i)),
                                    &cgs);
        aidp_journal_cgroup_log_each(dir, cg_list_add, &cgs);
        bool holder =
                alive(j, "pid1", "pid1_start", &pid1) && !exited(pid1) && in_run_cgroup(pid1, name);
        /* Nothing of the job may run while its data is overwritten: kill every
         * process of the run but pid 1, which holds the tmpfs mounts. A process
         * that survives keeps the journal (the next gc tries again); the shred
         * goes on regardless. */
        bool survivors = false;
        for (size_t i = 0; i < cgs.n; i++)
                if (aidp_cgroup_path_kill_except(cgs.paths[i], holder ? pid1 : 0) < 0)
                        survivors = true;
        bool shredded = gc_shred(j, &pid1, holder, &total, mounts);
        const char *by = shredded ? "gc, through the mount fds of the sandbox's pid 1" : NULL;
        char pin[PATH_MAX + 16];
        snprintf(pin, sizeof pin, "%s/" AIDP_JOURNAL_NSPIN, dir);
        /* Nothing through pid 1 (gone, a zombie, or it died meanwhile): the
         * pin, if the run made one, still holds the mounts. What could not
         * be reached through pid 1 is then judged by what the pin reaches. */
        if (!shredded) {
                struct aidp_shred_report pinned = {.verified = true};
                if (gc_shred_pinned(pin, j, &pinned, mounts)) {
                        total = pinned;
                        shredded = true;
                        by = "gc, through the run's pinned mount namespace";
                }
        }
        if (pid1 > 0 && alive(j, "pid1", "pid1_start", &pid1) && !exited(pid1) &&
            in_run_cgroup(pid1, name)) {
                json_object *s;
                json_object_object_get_ex(j, "pid1_start", &s);
                kill(pid1, SIGKILL);
                wait_gone(pid1, json_object_get_uint64(s));
        }
        /* Overwritten (or out of reach): the namespace may go, and with it
         * the network namespace its sysfs holds. */
        aidp_nspin_release(pin);
        int removed, left;
        gc_cgroups(&cgs, &removed, &left);
        const char *warn = survivors ? ", processes of the run survived the kill"
                           : left    ? ", some cgroups remain"
                                     : "";
        const char *net = gc_network(dir, j);
        bool net_left = net && strstr(net, "remain");
        if (shredded)
                snprintf(what, what_len,
                         "shredded %llu files, %llu bytes (verified: %s); removed %d cgroups%s%s",
                         (unsigned long long)total.files, (unsigned long long)total.bytes,
                         total.verified ? "yes" : "no", removed, warn, net ? net : "");
        else
                snprintf(what, what_len,
                         "no sandbox left holding run data (tmpfs already released by the kernel, "
                         "not overwritten); removed %d cgroups%s%s",
                         removed, warn, net ? net : "");
        if (left || survivors || net_left)
                return -EBUSY;
        int rc = gc_record_abort(j, &total, shredded, by, mounts, what, what_len);
        if (rc == 0)
                gc_remove_journal(dir);
        return rc;
}

int aidp_run_gc(const char *run_dir, void (*report)(const char *, const char *, void *), void *arg,
                aidp_error *err)
{
        const char *base = aidp_journal_run_dir(run_dir);
        int bfd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (bfd < 0) {
                if (errno == ENOENT)
                        return 0;
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "gc: opening %s", base);
        }
        /* gc trusts only its own state: a run directory that anyone but root
         * could have filled is reported and left alone. */
        if (!own_dir(bfd, false)) {
                close(bfd);
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "gc: %s is not a root-owned directory that only root can "
                                      "write: left alone",
                                      base);
        }
        DIR *d = fdopendir(bfd);
        if (!d) {
                close(bfd);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "gc: opening %s", base);
        }
        int cleaned = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                char dir[PATH_MAX], jp[PATH_MAX + 16];
                snprintf(dir, sizeof dir, "%s/%s", base, e->d_name);
                struct stat st;
                if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                snprintf(jp, sizeof jp, "%s/journal.json", dir);
                /* Two supervisors starting at once both run gc: whoever holds
                 * the journal directory's lock cleans it, the other skips. The
                 * lock goes with the fd, also when gc itself dies. */
                _cleanup_close_ int lockfd = openat(
                        dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0)
                        continue;
                if (!own_dir(lockfd, true)) {
                        if (report)
                                report(e->d_name, "not a root-owned 0700 run directory: left alone",
                                       arg);
                        continue;
                }
                (void)jp;
                json_object *j = own_journal(lockfd);
                if (!j) {
                        /* A journal is written before anything is created:
                         * a directory without one holds nothing to clean,
                         * unless it is brand new (its run is starting). */
                        if (time(NULL) - st.st_mtime > 60) {
                                rmdir(dir);
                        }
                        continue;
                }
                pid_t sup;
                if (alive(j, "supervisor_pid", "supervisor_start", &sup)) {
                        json_object_put(j);
                        continue;
                }
                char what[512];
                int rc = gc_one(dir, e->d_name, j, what, sizeof what);
                if (report)
                        report(e->d_name, what, arg);
                if (rc == 0)
                        cleaned++;
                json_object_put(j);
        }
        closedir(d);
        /* Ready cgroups (cgready.h) that no worker holds any more. */
        aidp_run_cgready_gc(run_dir, 0);
        return cleaned;
}
