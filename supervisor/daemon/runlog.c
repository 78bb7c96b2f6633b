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
#include <sys/xattr.h>
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

/* The log's owner: in a trusted.* attribute, which only root may read or
 * set. Not the file's owner: a caller who owned the inode could reopen the
 * read-only fd `aidp logs` hands out for writing (/proc/self/fd/N) and grow
 * the log past every cap in root's run directory. */
#define OWNER_XATTR "trusted.aidp.owner"

static int owner_of(int fd, uid_t *uid)
{
        char v[16];
        ssize_t n = fgetxattr(fd, OWNER_XATTR, v, sizeof v - 1);
        if (n <= 0)
                return -ENOENT;
        v[n] = '\0';
        char *end;
        errno = 0;
        unsigned long u = strtoul(v, &end, 10);
        if (errno || *end || end == v || u > UINT32_MAX - 1)
                return -EINVAL;
        *uid = (uid_t)u;
        return 0;
}

/* Logs an older daemon made (owned by their user, no owner attribute):
 * given the attribute from their owner and made root's, so that their users
 * still reach them, they count against their caps, and no new fd to them is
 * writable by their user (one already held stays so: fds are not revoked). */
static void adopt_old_logs(int dfd)
{
        DIR *d = fdopendir(dup(dfd));
        for (struct dirent *e; d && (e = readdir(d));) {
                size_t l = strlen(e->d_name);
                if (l < 4 || strcmp(e->d_name + l - 4, ".log"))
                        continue;
                int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
                struct stat st;
                uid_t owner;
                if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid != 0 &&
                    owner_of(fd, &owner) == -ENOENT) {
                        char v[16];
                        int n = snprintf(v, sizeof v, "%u", (unsigned)st.st_uid);
                        if (fsetxattr(fd, OWNER_XATTR, v, (size_t)n, 0) == 0)
                                (void)!fchown(fd, 0, 0);
                }
                if (fd >= 0)
                        close(fd);
        }
        if (d)
                closedir(d);
}

int aidp_runlog_init(const char *dir, aidp_error *err)
{
        if (aidp_registry_private_dir(dir, err) < 0)
                return -1;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", dir);
        /* Can a log here record its owner? Told now, not at each --detach. */
        int p = openat(dfd, ".owner-probe", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                       0600);
        if (p < 0 || fsetxattr(p, OWNER_XATTR, "0", 1, 0) < 0)
                fprintf(stderr,
                        "aidp-supervisor serve: warning: %s cannot record a log's owner (%s: "
                        "%s): detached runs (--detach) will be refused; put the run directory on "
                        "a tmpfs\n",
                        dir, OWNER_XATTR, strerror(errno));
        if (p >= 0)
                close(p);
        unlinkat(dfd, ".owner-probe", 0);
        adopt_old_logs(dfd);
        close(dfd);
        return 0;
}

static int name(char *buf, size_t size, const char *dir, const char *id, const char *ext)
{
        if (!aidp_runlog_id_valid(id))
                return -EINVAL;
        return snprintf(buf, size, "%s/%s.%s", dir, id, ext) < (int)size ? 0 : -ENAMETOOLONG;
}

int aidp_runlog_create(const char *dir, const char *run_id, uid_t uid, aidp_error *err)
{
        char path[4096];
        if (name(path, sizeof path, dir, run_id, "log") < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "run id %s", run_id);
        /* Made by root in root's directory, and root's: no name the caller
         * controls is ever followed, and the caller gets only a read-only
         * fd to it. */
        /* Not O_APPEND: the relay writes at offsets of its own (a ring). */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", path);
        char v[16];
        int n = snprintf(v, sizeof v, "%u", (unsigned)uid);
        if (fsetxattr(fd, OWNER_XATTR, v, (size_t)n, XATTR_CREATE) < 0) {
                int e = errno;
                close(fd);
                unlink(path);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e,
                                        "%s: recording its owner (%s; the run directory's file "
                                        "system must take trusted.* attributes: a tmpfs does)",
                                        path, OWNER_XATTR);
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
        uid_t owner = 0;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            (caller != 0 && (owner_of(fd, &owner) < 0 || owner != caller))) {
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
                /* The bytes it holds, not its holes (a log that wrapped
                 * is sparse: filling its head would allocate it whole). */
                for (off_t off = 0; off < st.st_size;) {
                        off_t data = lseek(fd, off, SEEK_DATA);
                        if (data < 0)
                                break;
                        off_t hole = lseek(fd, data, SEEK_HOLE);
                        if (hole < 0 || hole > st.st_size)
                                hole = st.st_size;
                        for (off = data; off < hole;) {
                                size_t k = (size_t)(hole - off) < sizeof zero ? (size_t)(hole - off)
                                                                              : sizeof zero;
                                ssize_t w = pwrite(fd, zero, k, off);
                                if (w <= 0)
                                        break;
                                off += w;
                        }
                        if (off < hole)
                                break;
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
                if (l < 4 || strcmp(e->d_name + l - 4, ".log"))
                        continue;
                int fd =
                        openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
                uid_t owner = 0;
                bool ours = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                            owner_of(fd, &owner) == 0 && owner == uid;
                if (fd >= 0)
                        close(fd);
                if (!ours)
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

static bool pwrite_all(int fd, const char *p, size_t n, off_t off)
{
        while (n) {
                ssize_t w = pwrite(fd, p, n, off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return false;
                p += w;
                n -= (size_t)w;
                off += w;
        }
        return true;
}

/* Where the file system cannot free the head of a file (no
 * FALLOC_FL_PUNCH_HOLE), or the log cannot be written: the newest output is
 * dropped instead, after this line. */
#define CAP_MARKER                                                                                 \
        "\n[aidp: this log is full (--log-max); the rest of the run's output is dropped]\n"

/* The ring (runlog.h): the log's offsets are the stream's; [head, end) holds
 * the newest output, a marker line over its first bytes once head moved, and
 * before head is a hole. */
struct ring {
        int log;
        uint64_t max, slack;
        off_t head, end;
        off_t marked;        /* the head the marker line stands at (0: none) */
        uint64_t marker_len; /* stream bytes at head the marker covers */
        bool flat;           /* no ring (see CAP_MARKER): dropping the newest */
        bool full;           /* flat and at its cap: dropping everything */
        uint64_t flat_dropped;
};

#define RING_MARKER "[aidp: the first %llu bytes of the run's output were dropped (--log-max)]\n"

/* Overwrite [from, to) of what is written (the job's output must not
 * outlive the log in freed pages or blocks), then free it. */
static int ring_free(struct ring *r, off_t from, off_t to)
{
        static const char zero[65536];
        if (to > r->end)
                to = r->end;
        for (off_t o = from; o < to;) {
                size_t k = (size_t)(to - o) < sizeof zero ? (size_t)(to - o) : sizeof zero;
                if (!pwrite_all(r->log, zero, k, o))
                        return -1;
                o += (off_t)k;
        }
        if (to > from &&
            fallocate(r->log, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, to - from) < 0)
                return -1;
        return 0;
}

/* The marker line at the head, over the first bytes the log still holds
 * (they count as dropped too, so its number counts its own length). */
static void ring_mark(struct ring *r)
{
        char m[160];
        unsigned long long n = (unsigned long long)r->head;
        int len = 0;
        for (int i = 0; i < 4; i++) {
                len = snprintf(m, sizeof m, RING_MARKER, n);
                if (n == (unsigned long long)r->head + (unsigned)len)
                        break;
                n = (unsigned long long)r->head + (unsigned)len;
        }
        uint64_t room = (uint64_t)(r->end - r->head);
        r->marker_len = (uint64_t)len < room ? (uint64_t)len : room;
        if (pwrite_all(r->log, m, (size_t)r->marker_len, r->head) && r->marker_len == (uint64_t)len)
                r->marked = r->head;
}

/* k more bytes at r->end, the oldest freed first when the log would pass its
 * cap. false when the ring cannot go on (the file system cannot punch a
 * hole, or a write failed). */
static bool ring_put(struct ring *r, const char *buf, size_t k)
{
        off_t new_end = r->end + (off_t)k;
        if ((uint64_t)(new_end - r->head) > r->max) {
                /* A slack more, in whole pages: not done at every read. */
                uint64_t want = (uint64_t)new_end - r->max + r->slack;
                off_t head = (off_t)((want + 4095) & ~(uint64_t)4095);
                if (head > new_end)
                        head = new_end;
                if (ring_free(r, r->head, head) < 0)
                        return false;
                r->head = head;
        }
        off_t from = r->end > r->head ? r->end : r->head;
        size_t skip = (size_t)(from - r->end);
        if (skip < k && !pwrite_all(r->log, buf + skip, k - skip, from))
                return false;
        r->end = new_end;
        if (r->head > 0 && r->marked != r->head)
                ring_mark(r);
        return true;
}

/* Without a ring: what fits under the cap is kept, then CAP_MARKER, and the
 * rest is dropped. The log holds [head, end) and the marker after it: at most
 * max in every path, also after a ring that failed with head anywhere (a
 * ring holds up to max, so its newest bytes may give way to the marker). */
static void flat_put(struct ring *r, const char *buf, size_t k)
{
        const uint64_t mlen = sizeof CAP_MARKER - 1;
        uint64_t room = r->max > mlen ? r->max - mlen : 0;
        uint64_t used = (uint64_t)(r->end - r->head);
        size_t keep = r->full || used >= room      ? 0
                      : (uint64_t)k <= room - used ? k
                                                   : (size_t)(room - used);
        /* A log that cannot be written (the file system is full) drops the
         * rest as a full one does: the job goes on. */
        if (keep && !pwrite_all(r->log, buf, keep, r->end))
                keep = 0, r->full = true;
        r->end += (off_t)keep;
        r->flat_dropped += (uint64_t)k - keep;
        if (!r->full && keep < k) {
                r->full = true;
                if (used > room) {
                        r->flat_dropped += used - room;
                        r->end = r->head + (off_t)room;
                }
                /* ends at head + max at most: past it the ring wrote nothing */
                (void)pwrite_all(r->log, CAP_MARKER, (size_t)(r->max - room), r->end);
        }
}

void aidp_runlog_relay(int rfd, int log, uint64_t max, uint64_t *dropped, const volatile int *stop)
{
        static char buf[65536];
        /* an eighth of the cap, in pages: once it wrapped the log holds
         * between cap - slack - a page and cap of the newest output */
        struct ring r = {.log = log, .max = max, .slack = (max / 8) & ~(uint64_t)4095};
        /* Whether this file system frees a file's head (tmpfs, ext4, xfs,
         * btrfs do): asked of the empty log, before any byte depends on it. */
        r.flat = fallocate(log, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) < 0;
        int silent_ms = 0;
        for (;;) {
                struct pollfd p = {.fd = rfd, .events = POLLIN};
                int pr = poll(&p, 1, 100);
                if (pr < 0 && errno != EINTR)
                        break;
                if (pr <= 0) {
                        /* the run is over but something still holds the
                         * pipe: its end is not waited for long */
                        if (__atomic_load_n(stop, __ATOMIC_ACQUIRE) && (silent_ms += 100) >= 3000)
                                break;
                        continue;
                }
                silent_ms = 0;
                ssize_t k = read(rfd, buf, sizeof buf);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0)
                        break;
                if (!r.flat && ring_put(&r, buf, (size_t)k))
                        continue;
                if (!r.flat && r.end < r.head)
                        r.end = r.head; /* freed past end, then the write failed */
                if (!r.flat && r.head > 0 && r.marked != r.head)
                        ring_mark(&r); /* head moved before the write failed */
                r.flat = true;
                flat_put(&r, buf, (size_t)k);
        }
        *dropped = (r.head ? (uint64_t)r.head + r.marker_len : 0) + r.flat_dropped;
}
