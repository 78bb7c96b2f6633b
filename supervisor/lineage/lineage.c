/* The lineage store: the host key, the lock, durable appends and the anchor.
 *
 * Append protocol (all under one exclusive flock on the log file, so concurrent
 * supervisors are serialized and each reads the tail the previous one committed):
 *   1. read the anchor and the last line; refuse when they disagree (the log was cut
 *      or edited: appending would bury the evidence under a fresh anchor);
 *   2. drop a torn tail left by an append that died before it committed;
 *   3. write the new line, fdatasync the log (and its directory when it was created);
 *   4. rewrite the anchor in place and fdatasync it.
 * Any failure in 3-4 cuts the log back to its old size: the caller sees an error and
 * the file is as it was. Only after 4 is the record committed.
 *
 * The anchor is a fixed AIDP_LINEAGE_ANCHOR_SIZE bytes at offset 0, rewritten with one
 * pwrite: a write within one sector is atomic on the devices we know of (PostgreSQL's
 * pg_control relies on the same), and an overwrite that does not change the file's
 * size needs no journal commit, only the block itself. A missing anchor, or one of
 * another size (older aidp), is written whole the safe way once: a temporary file,
 * fsync, rename, fsync of the directory.
 *
 * Steps 3's fdatasync and 4 may run in the background (aidp_lineage_append_begin,
 * on a thread) while the caller prepares the run; _commit waits for them. The log
 * stays locked in between. */
#define _GNU_SOURCE /* memrchr */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsdir.h"
#include "common/io.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/lineage/seclog.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

struct aidp_lineage {
        char *path;
        char *anchor_path;
        char *key_path;
        char *syslog_socket;
        bool have_key;
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
};

static const char *pick(const char *given, const char *env, const char *def)
{
        if (given && given[0])
                return given;
        const char *e = getenv(env);
        return e && e[0] ? e : def;
}

const char *aidp_lineage_path_for(const char *path)
{
        return pick(path, AIDP_LINEAGE_ENV_PATH, AIDP_LINEAGE_DEFAULT_PATH);
}

static char *dir_of(const char *path)
{
        char *copy = strdup(path);
        if (!copy)
                return NULL;
        char *d = strdup(dirname(copy));
        free(copy);
        return d;
}

/* mkdir -p of path's parent directory. New directories get `mode`; existing ones
 * are left as they are (the admin's choice). */
static int make_parents(const char *path, mode_t mode, aidp_error *err)
{
        _cleanup_free_ char *dir = dir_of(path);
        if (!dir)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        int r = aidp_mkdir_p(dir, mode, mode);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "creating %s", dir);
        return 0;
}

static int fsync_dir_of(const char *path)
{
        _cleanup_free_ char *dir = dir_of(path);
        if (!dir)
                return -ENOMEM;
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

/* The whole range, or -EIO when the file is shorter (it shrank under us: not
 * under our lock). */
static int pread_exact(int fd, void *buf, size_t len, off_t off)
{
        ssize_t n = aidp_pread_all(fd, buf, len, off);
        return n < 0 ? (int)n : (size_t)n == len ? 0 : -EIO;
}

/* ---- key ---------------------------------------------------------------------------- */

static int create_key(const char *path, aidp_error *err)
{
        /* /etc/aidp: readable directory, the key itself is 0600. */
        int r = make_parents(path, 0755, err);
        if (r < 0)
                return r;
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        if (RAND_priv_bytes(key, sizeof key) != 1)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EIO,
                                      "creating lineage key %s: no random bytes", path);
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        /* Write the key under a temporary name and link it into place, so a concurrent
         * supervisor sees either no key or a whole one, never a half-written file. */
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                OPENSSL_cleanse(key, sizeof key);
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "creating lineage key %s",
                                        path);
        }
        r = fchmod(fd, 0600) < 0 ? -errno : 0;
        if (r == 0)
                r = aidp_write_all(fd, (const char *)key, sizeof key);
        OPENSSL_cleanse(key, sizeof key);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r == 0 && link(tmp, path) < 0 && errno != EEXIST)
                r = -errno;
        unlink(tmp);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "creating lineage key %s",
                                        path);
        fsync_dir_of(path);
        return 0;
}

int aidp_lineage_key_load(const char *path, bool create, unsigned char key[AIDP_LINEAGE_KEY_LEN],
                          aidp_error *err)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT && create) {
                int r = create_key(path, err);
                if (r < 0)
                        return r;
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        }
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "opening lineage key %s",
                                        path);
        _cleanup_close_ int kfd = fd;
        struct stat st;
        if (fstat(kfd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "lineage key %s", path);
        /* Whoever can read the key can forge records; whoever can write it can make the
         * supervisor sign with a key they know. So: ours, and nobody else's bits. */
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EPERM,
                                      "lineage key %s is not a regular file", path);
        if (st.st_uid != geteuid() || (st.st_mode & 077))
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EPERM,
                                      "lineage key %s has owner uid %u and mode %04o; it must be "
                                      "owned by uid %u with mode 0600 (chown %u %s; chmod 600 %s)",
                                      path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
                                      (unsigned)geteuid(), (unsigned)geteuid(), path, path);
        if (st.st_size != AIDP_LINEAGE_KEY_LEN)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EINVAL,
                                      "lineage key %s is %lld bytes, expected %d", path,
                                      (long long)st.st_size, AIDP_LINEAGE_KEY_LEN);
        int r = pread_exact(kfd, (char *)key, AIDP_LINEAGE_KEY_LEN, 0);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "reading lineage key %s", path);
        return 0;
}

/* ---- open ----------------------------------------------------------------------------- */

void aidp_lineage_free(struct aidp_lineage *lg)
{
        if (!lg)
                return;
        OPENSSL_cleanse(lg->key, sizeof lg->key);
        free(lg->path);
        free(lg->anchor_path);
        free(lg->key_path);
        free(lg->syslog_socket);
        free(lg);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct aidp_lineage *, aidp_lineage_free)

int aidp_lineage_open(struct aidp_lineage **ret, const struct aidp_lineage_options *opt,
                      aidp_error *err)
{
        static const struct aidp_lineage_options none = {0};
        if (!opt)
                opt = &none;
        _cleanup_(aidp_lineage_freep) struct aidp_lineage *lg = calloc(1, sizeof *lg);
        if (!lg)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        lg->path = strdup(aidp_lineage_path_for(opt->path));
        lg->key_path = strdup(pick(opt->key_path, AIDP_LINEAGE_ENV_KEY, AIDP_LINEAGE_DEFAULT_KEY));
        if (opt->syslog_socket)
                lg->syslog_socket = strdup(opt->syslog_socket);
        if (!lg->path || !lg->key_path ||
            asprintf(&lg->anchor_path, "%s" AIDP_LINEAGE_ANCHOR_SUFFIX, lg->path) < 0) {
                lg->anchor_path = NULL;
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        aidp_error kerr = {0};
        if (aidp_lineage_key_load(lg->key_path, opt->create_key, lg->key, &kerr) == 0) {
                lg->have_key = true;
        } else if (opt->need_key || opt->create_key) {
                if (err)
                        *err = kerr;
                return -(kerr.errnum ? kerr.errnum : EINVAL);
        }
        *ret = TAKE_PTR(lg);
        return 0;
}

const char *aidp_lineage_path(const struct aidp_lineage *lg)
{
        return lg->path;
}
const char *aidp_lineage_anchor_path(const struct aidp_lineage *lg)
{
        return lg->anchor_path;
}
const unsigned char *aidp_lineage_key(const struct aidp_lineage *lg)
{
        return lg->have_key ? lg->key : NULL;
}

/* ---- reading ------------------------------------------------------------------------ */

/* Reads a small file whole. -ENOENT passes through unwrapped for the caller. */
static int read_small(const char *path, char **ret, size_t *len, size_t max)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max)
                return -EINVAL;
        _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        int r = pread_exact(fd, buf, (size_t)st.st_size, 0);
        if (r < 0)
                return r;
        buf[st.st_size] = '\0';
        *len = (size_t)st.st_size;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int load_anchor(const char *path, const unsigned char *key, struct aidp_lineage_anchor *a,
                       bool *have, aidp_error *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = read_small(path, &buf, &len, 4096);
        if (r == -ENOENT) {
                *have = false;
                return 0;
        }
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "reading anchor %s", path);
        r = aidp_lineage_anchor_parse(buf, len, key, a, err);
        if (r < 0)
                return aidp_error_wrap(err, "anchor %s", path);
        *have = true;
        return 0;
}

/* The last complete line of the log (without '\n') and where the complete part
 * ends; *line is NULL when the log has no complete line. Reads backwards in growing
 * windows so an append costs a few KiB of reading, not the whole log. */
static int read_tail(int fd, off_t size, char **line, size_t *line_len, off_t *complete_end)
{
        *line = NULL;
        *line_len = 0;
        *complete_end = 0;
        size_t window = 16384;
        for (;;) {
                size_t w = (off_t)window < size ? window : (size_t)size;
                if (w == 0)
                        return 0;
                _cleanup_free_ char *buf = malloc(w);
                if (!buf)
                        return -ENOMEM;
                int r = pread_exact(fd, buf, w, size - (off_t)w);
                if (r < 0)
                        return r;
                bool whole = (off_t)w == size;
                const char *nl = memrchr(buf, '\n', w);
                if (nl) {
                        const char *prev = memrchr(buf, '\n', (size_t)(nl - buf));
                        if (prev || whole) {
                                const char *start = prev ? prev + 1 : buf;
                                size_t n = (size_t)(nl - start);
                                *line = malloc(n + 1);
                                if (!*line)
                                        return -ENOMEM;
                                memcpy(*line, start, n);
                                (*line)[n] = '\0';
                                *line_len = n;
                                *complete_end = size - (off_t)w + (nl - buf) + 1;
                                return 0;
                        }
                } else if (whole) {
                        return 0; /* one torn line and nothing before it */
                }
                if (window > 2 * (size_t)AIDP_LINEAGE_LINE_MAX + 2)
                        return -E2BIG;
                window *= 4;
        }
}

/* ---- append --------------------------------------------------------------------------- */

static int open_log(const char *path, bool *created)
{
        int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;
        for (int tries = 0; tries < 3; tries++) {
                int fd = open(path, flags);
                if (fd >= 0 || errno != ENOENT)
                        return fd >= 0 ? fd : -errno;
                fd = open(path, flags | O_CREAT | O_EXCL, 0640);
                if (fd >= 0) {
                        *created = true;
                        return fd;
                }
                if (errno != EEXIST)
                        return -errno;
        }
        return -EAGAIN;
}

static int replace_anchor(const struct aidp_lineage *lg, const char *buf, size_t len)
{
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp", lg->anchor_path) < 0)
                return -ENOMEM;
        /* A fixed temporary name is safe: only the holder of the log lock writes it. */
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0)
                return -errno;
        int r = aidp_write_all(fd, buf, len);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, lg->anchor_path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_dir_of(lg->anchor_path);
}

static int write_anchor(const struct aidp_lineage *lg, const struct aidp_lineage_anchor *a)
{
        size_t len = 0;
        _cleanup_free_ char *line = aidp_lineage_anchor_format(a, lg->key, &len);
        if (!line)
                return -ENOMEM;
        /* The line, padded with spaces before its '\n' to the fixed size. */
        char buf[AIDP_LINEAGE_ANCHOR_SIZE];
        if (len > sizeof buf)
                return -E2BIG;
        memset(buf, ' ', sizeof buf);
        memcpy(buf, line, len - 1);
        buf[sizeof buf - 1] = '\n';
        _cleanup_close_ int fd = open(lg->anchor_path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != sizeof buf)
                return replace_anchor(lg, buf, sizeof buf);
        ssize_t n = pwrite(fd, buf, sizeof buf, 0);
        if (n != (ssize_t)sizeof buf)
                return n < 0 ? -errno : -EIO;
        return fdatasync(fd) < 0 ? -errno : 0;
}

/* Best effort: a security event also goes to syslog for the SIEM. */
static void report_security_event(const struct aidp_lineage *lg, json_object *ev, uint64_t seq)
{
        json_object *v, *run = NULL, *facets = NULL, *f;
        const char *type =
                json_object_object_get_ex(ev, "eventType", &v) ? json_object_get_string(v) : "";
        uint64_t denied = 0;
        json_object_object_get_ex(ev, "run", &run);
        if (run)
                json_object_object_get_ex(run, "facets", &facets);
        if (facets && json_object_object_get_ex(facets, "aidp_network", &f) &&
            json_object_object_get_ex(f, "denied", &v))
                denied = json_object_get_uint64(v);
        bool denial = !strcmp(type, "OTHER"), abort_ = !strcmp(type, "ABORT");
        if (!denial && !abort_ && denied == 0)
                return;
        const char *reason = NULL;
        if (facets && json_object_object_get_ex(facets, "aidp_policy", &f) &&
            json_object_object_get_ex(f, "decisions", &v)) {
                for (size_t i = 0; i < json_object_array_length(v) && !reason; i++) {
                        json_object *d = json_object_array_get_idx(v, i), *x;
                        if (json_object_object_get_ex(d, "decision", &x) &&
                            !strcmp(json_object_get_string(x), "deny") &&
                            json_object_object_get_ex(d, "reason", &x))
                                reason = json_object_get_string(x);
                }
        }
        if (!reason && facets && json_object_object_get_ex(facets, "aidp_exit", &f) &&
            json_object_object_get_ex(f, "reason", &v))
                reason = json_object_get_string(v);
        json_object *job = NULL, *jn = NULL, *rid = NULL;
        json_object_object_get_ex(ev, "job", &job);
        if (job)
                json_object_object_get_ex(job, "name", &jn);
        if (run)
                json_object_object_get_ex(run, "runId", &rid);
        char seqs[24], denieds[24];
        snprintf(seqs, sizeof seqs, "%" PRIu64, seq);
        snprintf(denieds, sizeof denieds, "%" PRIu64, denied);
        struct aidp_seclog_param p[] = {
                {"runId", rid ? json_object_get_string(rid) : ""},
                {"job", jn ? json_object_get_string(jn) : ""},
                {"eventType", type},
                {"lineageSeq", seqs},
                {"egressDenied", denieds},
                {"reason", reason ? reason : ""},
        };
        char text[512];
        snprintf(text, sizeof text, "%s",
                 denial   ? "run denied by policy"
                 : abort_ ? "run aborted"
                          : "egress denied during run");
        struct aidp_seclog_msg m = {
                .severity = abort_ ? LOG_NOTICE : LOG_WARNING,
                .msgid = denial   ? "DENIED"
                         : abort_ ? "ABORT"
                                  : "EGRESS_DENIED",
                .params = p,
                .nparams = ARRAY_SIZE(p),
                .text = text,
        };
        aidp_seclog_send(lg->syslog_socket, &m);
}

static void cut_back(int fd, off_t size)
{
        /* Restore the old length; if even this fails the next append sees a torn or
         * unanchored tail and refuses, which is the safe side. */
        if (ftruncate(fd, size) == 0)
                fsync(fd);
}

struct aidp_lineage_pending {
        struct aidp_lineage *lg;
        json_object *ev; /* a reference, for the syslog report at commit */
        int fd;          /* the log, locked */
        off_t size;      /* its length before the new line */
        struct aidp_lineage_anchor next;
        bool syncing; /* the log's fdatasync, then the anchor, run on sync_tid */
        pthread_t sync_tid;
        int sync_result;
        bool anchored;     /* the thread got to write the anchor */
        int anchor_result; /* and this came of it */
};

/* The log's fdatasync and then the anchor, in the background on a thread. (Linux
 * AIO's IOCB_CMD_FDSYNC would do the first without a thread, but io_destroy waits
 * for an RCU grace period, ~10-30 ms.) The run clones its sandbox while this
 * runs, so it must take no lock the clone needs: no stdio, no fork, no setuid
 * (supervisor/sandbox.h); malloc only in this thread's own arena.
 * AIDP_FAULT_SYNC_DELAY_MS (tests) holds it back first, to make sure of that. */
static void *sync_thread(void *arg)
{
        struct aidp_lineage_pending *p = arg;
        prctl(PR_SET_NAME, "aidp-fsync");
        const char *delay = getenv("AIDP_FAULT_SYNC_DELAY_MS");
        if (delay && *delay) {
                long ms = strtol(delay, NULL, 10);
                struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
                if (ms > 0)
                        nanosleep(&ts, NULL);
        }
        p->sync_result = fdatasync(p->fd) < 0 ? -errno : 0;
        /* and step 4 right after, so that _commit has only to collect it */
        if (p->sync_result == 0) {
                p->anchor_result = write_anchor(p->lg, &p->next);
                p->anchored = true;
        }
        return NULL;
}

static bool sync_submit(struct aidp_lineage_pending *p)
{
        pthread_attr_t attr;
        if (pthread_attr_init(&attr))
                return false;
        pthread_attr_setstacksize(&attr, 256 * 1024); /* the anchor's HMAC */
        /* Signals stay with the caller's threads. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        p->syncing = pthread_create(&p->sync_tid, &attr, sync_thread, p) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        return p->syncing;
}

/* 0 or -errno of the background fdatasync; afterwards none is in flight. */
static int sync_wait(struct aidp_lineage_pending *p)
{
        if (!p->syncing)
                return 0;
        pthread_join(p->sync_tid, NULL);
        p->syncing = false;
        return p->sync_result;
}

static void pending_free(struct aidp_lineage_pending *p)
{
        if (p->fd >= 0) {
                /* The lock belongs to the open file description: release it
                 * explicitly, whatever copies of the fd exist. */
                flock(p->fd, LOCK_UN);
                close(p->fd);
        }
        json_object_put(p->ev);
        free(p);
}

static int append_begin(struct aidp_lineage *lg, json_object *ev, bool background,
                        struct aidp_lineage_pending **out, aidp_error *err)
{
        int r;
        if (!lg->have_key)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, ENOKEY,
                                      "appending to %s: no lineage key loaded", lg->path);
        aidp_lineage_strip_chain(ev);
        if ((r = aidp_lineage_event_check(ev, err)) < 0) {
                err->status = AIDP_EXIT_INTERNAL;
                return aidp_error_wrap(err, "appending to %s: bad event", lg->path);
        }
        /* /var/lib/aidp: the log names callers and datasets, so not world-readable. */
        if ((r = make_parents(lg->path, 0750, err)) < 0)
                return aidp_error_wrap(err, "lineage %s", lg->path);
        bool created = false;
        int fd0 = open_log(lg->path, &created);
        if (fd0 < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -fd0, "opening lineage %s",
                                        lg->path);
        _cleanup_close_ int fd = fd0;
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "locking lineage %s",
                                                lg->path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "lineage %s", lg->path);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EINVAL,
                                      "lineage %s is not a regular file", lg->path);
        off_t size = st.st_size;

        struct aidp_lineage_anchor anchor = {0};
        bool have_anchor = false;
        if ((r = load_anchor(lg->anchor_path, lg->key, &anchor, &have_anchor, err)) < 0) {
                err->status = AIDP_EXIT_LINEAGE;
                return aidp_error_wrap(err, "appending to %s (run 'aidp lineage verify')",
                                       lg->path);
        }
        _cleanup_free_ char *last = NULL;
        size_t last_len = 0;
        off_t complete_end = 0;
        if ((r = read_tail(fd, size, &last, &last_len, &complete_end)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "reading the end of lineage %s",
                                        lg->path);
        struct aidp_lineage_record rec = {.seq = 0};
        memcpy(rec.hash, ZERO_HASH, sizeof rec.hash);
        if (last) {
                aidp_error perr = {0};
                if (aidp_lineage_record_parse(last, last_len, lg->key, &rec, NULL, &perr) < 0)
                        return aidp_error_set(err, AIDP_EXIT_LINEAGE, EBADMSG,
                                              "lineage %s: the last record is damaged (%s); "
                                              "refusing to append (run 'aidp lineage verify')",
                                              lg->path, perr.msg);
        }
        bool torn = complete_end < size;
        /* The tail must be what the anchor says was committed last, or one record past
         * it (an append that died between its fsync and the anchor update). */
        const char *why = NULL;
        if (!have_anchor) {
                if (rec.seq > 0 || torn)
                        why = "it has records but no anchor (the anchor was deleted?)";
        } else if (rec.seq < anchor.seq) {
                why = "it ends before the record its anchor names (records were cut from the end)";
        } else if (rec.seq == anchor.seq) {
                if (strcmp(rec.hash, anchor.hash))
                        why = "its last record differs from the anchored one";
        } else if (rec.seq == anchor.seq + 1) {
                if (strcmp(rec.prev, anchor.hash))
                        why = "its last record does not follow the anchored one";
                else if (torn)
                        why = "it has a torn line after an unanchored record";
        } else {
                why = "its anchor is more than one record behind";
        }
        if (why)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EBADMSG,
                                      "lineage %s: refusing to append: %s; run 'aidp lineage "
                                      "verify' and move the log and its anchor aside to start a "
                                      "new one",
                                      lg->path, why);
        if (torn) {
                /* Bytes past the last '\n' are an append that never committed. */
                if (ftruncate(fd, complete_end) < 0 || fsync(fd) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno,
                                                "removing the torn tail of lineage %s", lg->path);
                size = complete_end;
        }

        /* A log without records (and so without an anchor) gets its anchor first,
         * naming no record: an append that then dies before its commit leaves the
         * log one record past the anchor, which the next append accepts, and not
         * records without an anchor, which it must refuse. */
        if (!have_anchor) {
                struct aidp_lineage_anchor genesis = {.seq = 0};
                memcpy(genesis.hash, ZERO_HASH, sizeof genesis.hash);
                if ((r = write_anchor(lg, &genesis)) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                                "creating the anchor of lineage %s", lg->path);
        }

        size_t len = 0;
        _cleanup_free_ char *line =
                aidp_lineage_record_format(ev, rec.seq + 1, rec.hash, lg->key, &len, err);
        if (!line)
                return aidp_error_wrap(err, "appending to lineage %s", lg->path);
        struct aidp_lineage_pending *p = calloc(1, sizeof *p);
        if (!p)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        *p = (struct aidp_lineage_pending){
                .lg = lg, .fd = -1, .size = size, .next = {.seq = rec.seq + 1}};
        aidp_lineage_hash_line(line, len - 1, p->next.hash);
        r = aidp_write_all(fd, line, len);
        p->fd = TAKE_FD(fd);
        if (r == 0 && (created || !background || !sync_submit(p))) {
                if (fdatasync(p->fd) < 0)
                        r = -errno;
                else if (created)
                        r = fsync_dir_of(lg->path);
        }
        if (r < 0) {
                cut_back(p->fd, size);
                pending_free(p);
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                        "writing lineage %s (the log is unchanged)", lg->path);
        }
        p->ev = json_object_get(ev);
        *out = p;
        return 0;
}

int aidp_lineage_append_begin(struct aidp_lineage *lg, json_object *ev,
                              struct aidp_lineage_pending **out, aidp_error *err)
{
        return append_begin(lg, ev, true, out, err);
}

int aidp_lineage_append_commit(struct aidp_lineage_pending *p, aidp_error *err)
{
        const char *what = "writing";
        int r = sync_wait(p);
        if (r == 0) {
                what = "updating the anchor of";
                r = p->anchored ? p->anchor_result : write_anchor(p->lg, &p->next);
        }
        if (r < 0) {
                cut_back(p->fd, p->size);
                r = aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                     "%s lineage %s (the log is unchanged)", what, p->lg->path);
                pending_free(p);
                return r;
        }
        report_security_event(p->lg, p->ev, p->next.seq);
        pending_free(p);
        return 0;
}

int aidp_lineage_append(struct aidp_lineage *lg, json_object *ev, aidp_error *err)
{
        struct aidp_lineage_pending *p = NULL;
        int r = append_begin(lg, ev, false, &p, err);
        return r < 0 ? r : aidp_lineage_append_commit(p, err);
}

/* ---- verify a file ---------------------------------------------------------------------- */

int aidp_lineage_verify_file(const char *path, const char *anchor_path, bool use_anchor,
                             const unsigned char *key, struct aidp_lineage_verify *v,
                             aidp_error *err)
{
        _cleanup_free_ char *apath = NULL;
        if (!anchor_path && asprintf(&apath, "%s" AIDP_LINEAGE_ANCHOR_SUFFIX, path) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (!anchor_path)
                anchor_path = apath;
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "opening lineage %s", path);
        /* Shared lock: a concurrent append finishes (log and anchor) before we read. */
        while (flock(fileno(f), LOCK_SH) < 0)
                if (errno != EINTR)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "locking %s", path);
        struct stat st;
        if (fstat(fileno(f), &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "lineage %s", path);
        struct aidp_lineage_anchor anchor = {0};
        bool have = false;
        if (use_anchor) {
                aidp_error aerr = {0};
                if (load_anchor(anchor_path, key, &anchor, &have, &aerr) < 0) {
                        /* A forged or garbled anchor is tamper evidence; an anchor that
                         * cannot be read at all is an I/O error. */
                        if (aerr.errnum != EBADMSG && aerr.errnum != EINVAL) {
                                if (err)
                                        *err = aerr;
                                return -(aerr.errnum ? aerr.errnum : EIO);
                        }
                        aidp_lineage_verify_init(v, key, NULL);
                        v->bad_line = 1;
                        snprintf(v->reason, sizeof v->reason, "%.400s", aerr.msg);
                        return 0;
                }
                /* A log that was never appended to (or whose first append was rolled
                 * back) has no anchor and nothing to protect. */
                if (!have && st.st_size > 0) {
                        aidp_lineage_verify_init(v, key, NULL);
                        v->bad_line = 1;
                        snprintf(v->reason, sizeof v->reason,
                                 "anchor %s is missing, so records cut from the end cannot be "
                                 "detected (use --no-anchor to check the chain alone)",
                                 anchor_path);
                        return 0;
                }
        }
        aidp_lineage_verify_init(v, key, have ? &anchor : NULL);
        char *buf = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&buf, &cap, f)) > 0) {
                bool term = buf[n - 1] == '\n';
                if (!aidp_lineage_verify_line(v, buf, (size_t)n - (term ? 1 : 0), term))
                        break;
        }
        int e = ferror(f) ? errno : 0;
        free(buf);
        if (e)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, e, "reading lineage %s", path);
        aidp_lineage_verify_finish(v);
        return 0;
}
