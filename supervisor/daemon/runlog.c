/* The logs of detached runs (runlog.h). */
#define _GNU_SOURCE
#include "supervisor/daemon/runlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "supervisor/daemon/registry.h"

bool aidp_runlog_id_valid(const char *id)
{
        size_t n = strlen(id);
        if (n != 36)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f') ||
                      id[i] == '-'))
                        return false;
        return true;
}

int aidp_runlog_init(const char *dir, aidp_error *err)
{
        return aidp_registry_private_dir(dir, err);
}

static int name(char *buf, size_t size, const char *dir, const char *id, const char *ext)
{
        if (!aidp_runlog_id_valid(id))
                return -EINVAL;
        return snprintf(buf, size, "%s/%s.%s", dir, id, ext) < (int)size ? 0 : -ENAMETOOLONG;
}

int aidp_runlog_create(const char *dir, const char *run_id, uid_t uid, gid_t gid, aidp_error *err)
{
        char path[4096];
        if (name(path, sizeof path, dir, run_id, "log") < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "run id %s", run_id);
        /* Made by root in root's directory, then given to the caller: no
         * name the caller controls is ever followed. */
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", path);
        if (fchown(fd, uid, gid) < 0) {
                int e = errno;
                close(fd);
                unlink(path);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "%s: chown", path);
        }
        return fd;
}

void aidp_runlog_discard(const char *dir, const char *run_id)
{
        char path[4096];
        if (name(path, sizeof path, dir, run_id, "log") == 0)
                unlink(path);
}

int aidp_runlog_open(const char *dir, const char *run_id, uid_t caller)
{
        char path[4096];
        if (name(path, sizeof path, dir, run_id, "log") < 0)
                return -ENOENT;
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (caller != 0 && st.st_uid != caller)) {
                close(fd);
                return -ENOENT;
        }
        return fd;
}

int aidp_runlog_ended(const char *dir, const char *run_id, int status, uint64_t dropped)
{
        char path[4096], tmp[4096];
        if (name(path, sizeof path, dir, run_id, "status") < 0 ||
            name(tmp, sizeof tmp, dir, run_id, "status.new") < 0)
                return -EINVAL;
        char buf[128];
        int n = snprintf(buf, sizeof buf, "{\"status\":%d,\"ended\":%lld,\"dropped\":%llu}\n",
                         status, (long long)time(NULL), (unsigned long long)dropped);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        int r = write(fd, buf, (size_t)n) == n ? 0 : -EIO;
        close(fd);
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

int aidp_runlog_status(const char *dir, const char *run_id, int *status, uint64_t *dropped)
{
        char path[4096];
        if (name(path, sizeof path, dir, run_id, "status") < 0)
                return 0;
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return 0;
        char buf[128];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        json_object *o = json_tokener_parse(buf), *v;
        int r = 0;
        if (o && json_object_object_get_ex(o, "status", &v)) {
                *status = json_object_get_int(v);
                if (dropped)
                        *dropped = json_object_object_get_ex(o, "dropped", &v)
                                           ? (uint64_t)json_object_get_int64(v)
                                           : 0;
                r = 1;
        }
        json_object_put(o);
        return r;
}

/* Overwrite, then remove: the job's output does not outlive its retention
 * in freed pages or blocks the next file gets. */
static void shred_at(int dfd, const char *file)
{
        int fd = openat(dfd, file, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                static const char zero[65536];
                for (off_t off = 0; off < st.st_size;) {
                        size_t k = (size_t)(st.st_size - off) < sizeof zero
                                           ? (size_t)(st.st_size - off)
                                           : sizeof zero;
                        ssize_t w = pwrite(fd, zero, k, off);
                        if (w <= 0)
                                break;
                        off += w;
                }
                fdatasync(fd);
        }
        if (fd >= 0)
                close(fd);
        unlinkat(dfd, file, 0);
}

void aidp_runlog_sweep(const char *dir, const char *state_dir, unsigned retention_s)
{
        DIR *d = opendir(dir);
        if (!d)
                return;
        time_t now = time(NULL);
        for (struct dirent *e; (e = readdir(d));) {
                size_t l = strlen(e->d_name);
                if (l != 36 + 4 || strcmp(e->d_name + 36, ".log"))
                        continue;
                char id[37], st_name[64];
                memcpy(id, e->d_name, 36);
                id[36] = '\0';
                snprintf(st_name, sizeof st_name, "%s.status", id);
                struct stat st;
                /* Ended: its status's age. Never ended (its daemon
                 * crashed): the log's own age, kept while it grows. */
                if (fstatat(dirfd(d), st_name, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
                    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                pid_t pid;
                uid_t uid;
                if (now - st.st_mtime < (time_t)retention_s ||
                    aidp_registry_find(state_dir, id, &pid, &uid) == 0)
                        continue;
                shred_at(dirfd(d), e->d_name);
                unlinkat(dirfd(d), st_name, 0);
        }
        closedir(d);
}

void aidp_runlog_remove(const char *dir, const char *run_id)
{
        if (!aidp_runlog_id_valid(run_id))
                return;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return;
        char f[64];
        snprintf(f, sizeof f, "%s.log", run_id);
        shred_at(dfd, f);
        snprintf(f, sizeof f, "%s.status", run_id);
        unlinkat(dfd, f, 0);
        close(dfd);
}

uint64_t aidp_runlog_usage(const char *dir, uid_t uid, uint64_t reserve)
{
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        uint64_t total = 0;
        for (struct dirent *e; (e = readdir(d));) {
                struct stat st;
                size_t l = strlen(e->d_name);
                if (l < 4 || strcmp(e->d_name + l - 4, ".log") ||
                    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISREG(st.st_mode) || st.st_uid != uid)
                        continue;
                /* blocks, not the size: a sparse log takes little */
                uint64_t used = (uint64_t)st.st_blocks * 512;
                char status[64];
                struct stat ss;
                snprintf(status, sizeof status, "%.*s.status", (int)(l - 4), e->d_name);
                if (used < reserve && fstatat(dirfd(d), status, &ss, AT_SYMLINK_NOFOLLOW) < 0)
                        used = reserve;
                total += used;
        }
        closedir(d);
        return total;
}

static bool write_all(int fd, const char *p, size_t n)
{
        while (n) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return false;
                p += w;
                n -= (size_t)w;
        }
        return true;
}

#define CAP_MARKER                                                                                 \
        "\n[aidp: this log is full (--log-max); the rest of the run's output is dropped]\n"

void aidp_runlog_relay(int rfd, int log, uint64_t max, uint64_t *dropped, const volatile int *stop)
{
        static char buf[65536];
        uint64_t room = max > sizeof CAP_MARKER ? max - (sizeof CAP_MARKER - 1) : 0;
        uint64_t written = 0;
        bool full = false;
        int silent_ms = 0;
        *dropped = 0;
        for (;;) {
                struct pollfd p = {.fd = rfd, .events = POLLIN};
                int pr = poll(&p, 1, 100);
                if (pr < 0 && errno != EINTR)
                        return;
                if (pr <= 0) {
                        /* the run is over but something still holds the
                         * pipe: its end is not waited for long */
                        if (__atomic_load_n(stop, __ATOMIC_ACQUIRE) && (silent_ms += 100) >= 3000)
                                return;
                        continue;
                }
                silent_ms = 0;
                ssize_t k = read(rfd, buf, sizeof buf);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0)
                        return;
                size_t keep = full                            ? 0
                              : (uint64_t)k <= room - written ? (size_t)k
                                                              : (size_t)(room - written);
                /* A log that cannot be written (the file system is full)
                 * drops the rest as a full one does: the job goes on. */
                if (keep && !write_all(log, buf, keep))
                        keep = 0, full = true;
                written += keep;
                *dropped += (uint64_t)k - keep;
                if (!full && keep < (size_t)k) {
                        full = true;
                        (void)write_all(log, CAP_MARKER, sizeof CAP_MARKER - 1);
                }
        }
}
