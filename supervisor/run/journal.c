#define _GNU_SOURCE
#include "supervisor/run/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsdir.h"
#include "common/path.h"

const char *aidp_journal_run_dir(const char *run_dir)
{
        if (run_dir && *run_dir)
                return run_dir;
        const char *e = getenv("AIDP_RUN_DIR");
        return e && *e ? e : AIDP_RUN_DIR_DEFAULT;
}

/* This process's own, once read: it never changes while the process lives,
 * and a fork's child has another pid. A daemon's idle worker reads it while
 * it waits (its ready cgroup's record, cgready.c), so the run's journal
 * does not read /proc again on the request's path. */
static pid_t g_self_pid;
static unsigned long long g_self_start;

static unsigned long long read_starttime(pid_t pid);

unsigned long long aidp_proc_starttime(pid_t pid)
{
        if (pid == getpid()) {
                if (g_self_pid != pid || !g_self_start) {
                        g_self_start = read_starttime(pid);
                        g_self_pid = pid;
                }
                return g_self_start;
        }
        return read_starttime(pid);
}

static unsigned long long read_starttime(pid_t pid)
{
        char p[64], buf[1024];
        snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        /* comm may contain spaces and parentheses: fields restart after the last ')' */
        char *s = strrchr(buf, ')');
        if (!s)
                return 0;
        s++;
        /* A zombie is dead: it holds nothing any more but its pid. */
        if (s[0] == ' ' && (s[1] == 'Z' || s[1] == 'X'))
                return 0;
        unsigned long long v = 0;
        /* after ')': field 3 (state) ... field 22 (starttime) = 20th token */
        char *tok, *save;
        int i = 3;
        for (tok = strtok_r(s, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++)
                if (i == 22) {
                        v = strtoull(tok, NULL, 10);
                        break;
                }
        return v;
}

int aidp_journal_create(const char *run_dir, const char *run_id, const char *lineage,
                        const char *job, struct aidp_journal *j, aidp_error *err)
{
        const char *base = aidp_journal_run_dir(run_dir);
        j->obj = NULL;
        j->lifeline_w = -1;
        j->cgroup_log = -1;
        int mk = aidp_mkdir_p(base, 0700, 0755);
        if (mk < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -mk, "creating %s", base);
        snprintf(j->dir, sizeof j->dir, "%s/%s", base, run_id);
        if (mkdir(j->dir, 0700) < 0) {
                if (errno == EEXIST)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EEXIST,
                                              "run id %s is already in use (%s exists)", run_id,
                                              j->dir);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "creating %s", j->dir);
        }
        j->obj = json_object_new_object();
        json_object_object_add(j->obj, "run_id", json_object_new_string(run_id));
        json_object_object_add(j->obj, "supervisor_pid", json_object_new_int(getpid()));
        json_object_object_add(j->obj, "supervisor_start",
                               json_object_new_uint64(aidp_proc_starttime(getpid())));
        json_object_object_add(j->obj, "created", json_object_new_int64((int64_t)time(NULL)));
        json_object_object_add(j->obj, "cgroups", json_object_new_array());
        json_object_object_add(j->obj, "tmpfs", json_object_new_array());
        if (lineage)
                aidp_journal_add(j, "lineage", lineage);
        if (job)
                aidp_journal_add(j, "job", job);
        return aidp_journal_sync(j, err);
}

void aidp_journal_add(struct aidp_journal *j, const char *kind, const char *value)
{
        if (!j->obj)
                return;
        char key[64];
        snprintf(key, sizeof key, "%ss", kind);
        json_object *arr;
        if (!json_object_object_get_ex(j->obj, key, &arr)) {
                arr = json_object_new_array();
                json_object_object_add(j->obj, key, arr);
        }
        json_object_array_add(arr, json_object_new_string(value));
}

int aidp_journal_cgroup_log(struct aidp_journal *j)
{
        if (j->cgroup_log >= 0)
                return j->cgroup_log;
        if (!j->obj)
                return -EBADF;
        /* Test builds: a /run out of inodes (or the process out of fds). */
        const char *f = getenv("AIDP_FAULT_FAIL_AT");
        if (f && !strcmp(f, "cgroups-log-open"))
                return -ENOSPC;
        char p[PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/" AIDP_JOURNAL_CGROUP_LOG, j->dir);
        int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        return j->cgroup_log = fd;
}

void aidp_journal_cgroup_log_each(const char *dir, void (*fn)(const char *path, void *arg),
                                  void *arg)
{
        char p[PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/" AIDP_JOURNAL_CGROUP_LOG, dir);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return;
        char line[PATH_MAX + 2];
        while (fgets(line, sizeof line, f)) {
                size_t n = strlen(line);
                /* a line cut short by a crash has no newline: ignored */
                if (n < 2 || line[n - 1] != '\n')
                        continue;
                line[n - 1] = '\0';
                fn(line, arg);
        }
}

void aidp_journal_add_fd(struct aidp_journal *j, const char *label, const char *target, int fd)
{
        json_object *arr;
        if (!j->obj || !json_object_object_get_ex(j->obj, "tmpfs", &arr))
                return;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "label", json_object_new_string(label));
        json_object_object_add(o, "fd", json_object_new_int(fd));
        json_object_object_add(o, "target", json_object_new_string(target));
        json_object_array_add(arr, o);
}

void aidp_journal_set_pid1(struct aidp_journal *j, pid_t pid)
{
        if (!j->obj)
                return;
        json_object_object_add(j->obj, "pid1", json_object_new_int(pid));
        json_object_object_add(j->obj, "pid1_start",
                               json_object_new_uint64(aidp_proc_starttime(pid)));
}

void aidp_journal_set_ended(struct aidp_journal *j, const char *event)
{
        if (j->obj)
                json_object_object_add(j->obj, "end_recorded", json_object_new_string(event));
}

/* The new version (tmp) in place of the old (final), atomically for a reader
 * (gc): journal.json names one whole version at every instant. Swapped, not
 * renamed over: ext4 (auto_da_alloc) writes out a file renamed over another
 * before the rename returns, which waits for the journal's running
 * transaction, 1-10 ms behind another run's lineage fsync (docs/run-core.md,
 * "Start-up time"). The old version, at tmp after the swap, is unlinked
 * unwritten. The first version has nothing to swap with (ENOENT), and a file
 * system without RENAME_EXCHANGE says EINVAL: a rename then. */
static int journal_replace(const char *tmp, const char *final, aidp_error *err)
{
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
                unlink(tmp);
                return 0;
        }
        if ((errno == ENOENT || errno == EINVAL) && rename(tmp, final) == 0)
                return 0;
        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "renaming %s", tmp);
}

int aidp_journal_sync(struct aidp_journal *j, aidp_error *err)
{
        char tmp[PATH_MAX + 16], final[PATH_MAX + 16];
        if (aidp_path_join(tmp, sizeof tmp, j->dir, "journal.json.tmp") < 0 ||
            aidp_path_join(final, sizeof final, j->dir, "journal.json") < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENAMETOOLONG,
                                      "journal in %s: path too long", j->dir);
        const char *s = json_object_to_json_string_ext(j->obj, JSON_C_TO_STRING_PLAIN);
        /* A new file every time: truncating one that holds data (a version
         * a crash left here) makes ext4 write it out at close. */
        if (unlink(tmp) < 0 && errno != ENOENT)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "removing %s", tmp);
        _cleanup_close_ int fd =
                open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "writing %s", tmp);
        size_t len = strlen(s);
        /* No fsync: the journal only has to survive the supervisor, not the
         * machine; after a reboot nothing it lists exists any more. */
        if (write(fd, s, len) != (ssize_t)len)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "writing %s", tmp);
        return journal_replace(tmp, final, err);
}

void aidp_journal_remove(struct aidp_journal *j)
{
        char p[PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/" AIDP_JOURNAL_CGROUP_LOG, j->dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/" AIDP_JOURNAL_NSPIN, j->dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/journal.json", j->dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/journal.json.tmp", j->dir);
        unlink(p);
        rmdir(j->dir);
        aidp_journal_close(j);
}

void aidp_journal_close(struct aidp_journal *j)
{
        if (j->cgroup_log >= 0)
                close(j->cgroup_log);
        j->cgroup_log = -1;
        if (j->obj)
                json_object_put(j->obj);
        j->obj = NULL;
}
