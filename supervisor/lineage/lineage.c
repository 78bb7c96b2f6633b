/* The lineage store: the host key, opening a log, the files beside it, and
 * verifying a log file. Appends (the lock, durable writes, the anchor) are
 * lineage_append.c; the record and anchor formats and the store's pure rules are
 * codec/. */
#define _GNU_SOURCE /* asprintf, mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fsdir.h"
#include "common/io.h"
#include "supervisor/lineage/codec/lineage_mac.h"
#include "supervisor/lineage/lineage_internal.h"

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
int aidp_lineage_make_parents(const char *path, mode_t mode, aidp_error *err)
{
        _cleanup_free_ char *dir = dir_of(path);
        if (!dir)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        int r = aidp_mkdir_p(dir, mode, mode);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "creating %s", dir);
        return 0;
}

int aidp_lineage_fsync_dir_of(const char *path)
{
        _cleanup_free_ char *dir = dir_of(path);
        if (!dir)
                return -ENOMEM;
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

int aidp_lineage_pread_exact(int fd, void *buf, size_t len, off_t off)
{
        ssize_t n = aidp_pread_all(fd, buf, len, off);
        return n < 0 ? (int)n : (size_t)n == len ? 0 : -EIO;
}

/* ---- key ---------------------------------------------------------------------------- */

static int create_key(const char *path, aidp_error *err)
{
        /* /etc/aidp: readable directory, the key itself is 0600. */
        int r = aidp_lineage_make_parents(path, 0755, err);
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
        aidp_lineage_fsync_dir_of(path);
        return 0;
}

/* The preloaded key (aidp_lineage_key_preload): a locked page, its file's
 * identity when it was read. */
static struct {
        unsigned char *page;
        char path[4096];
        struct stat st;
} g_warm_key;

static bool same_file(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mode == b->st_mode && a->st_uid == b->st_uid &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int aidp_lineage_key_preload(const char *key_path, aidp_error *err)
{
        const char *path = pick(key_path, AIDP_LINEAGE_ENV_KEY, AIDP_LINEAGE_DEFAULT_KEY);
        if (!g_warm_key.page) {
                void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                               0);
                if (p == MAP_FAILED)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "mmap");
                /* Never swapped out, never in a core dump. */
                if (mlock(p, 4096) < 0 || madvise(p, 4096, MADV_DONTDUMP) < 0) {
                        int e = errno;
                        munmap(p, 4096);
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e,
                                                "locking memory for the lineage key");
                }
                g_warm_key.page = p;
        }
        g_warm_key.path[0] = '\0';
        int r = aidp_lineage_key_load(path, true, g_warm_key.page, err);
        if (r < 0)
                return r;
        struct stat st;
        if (stat(path, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "lineage key %s", path);
        g_warm_key.st = st;
        snprintf(g_warm_key.path, sizeof g_warm_key.path, "%s", path);
        /* The key's HMAC context, made here once: a daemon's workers inherit
         * it, so a run's anchor checks and updates only copy it
         * (aidp_lineage_hmac_hex). */
        char warm[AIDP_LINEAGE_HASH_HEX + 1];
        (void)aidp_lineage_hmac_hex(g_warm_key.page, "", 0, warm);
        /* And SHA-256, fetched once per process (lineage_mac.c): a worker
         * that fetched it itself paid about 0.2 ms of CPU in START's check
         * of the log's last line. */
        aidp_lineage_mac_free(aidp_lineage_mac_new(NULL));
        /* And glibc's time zone: every record's eventTime goes through
         * gmtime_r, whose first call in a process reads /etc/localtime (UTC
         * needs no zone, but glibc loads it all the same): about 0.2 ms of
         * CPU in each worker's START. Read here once, the workers inherit it. */
        tzset();
        return 0;
}

/* The log's anchor and last record checked now, in the store's memo, which
 * becomes the process's warm memo (lineage_memo.c): the run's START finds
 * the same bytes there when no other run appended meanwhile, and skips their
 * JSON parse and HMACs. Only reads; any failure leaves no warm memo. */
static void warm_tail(const char *log_path)
{
        struct aidp_lineage_options lo = {.path = log_path, .key_path = g_warm_key.path};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        if (aidp_lineage_open(&lg, &lo, &e) < 0)
                return;
        struct aidp_lineage_anchor a;
        bool have = false;
        _cleanup_close_ int fd = open(lg->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        struct stat st;
        _cleanup_free_ char *line = NULL;
        size_t n = 0;
        off_t end = 0;
        struct aidp_lineage_record rec;
        if (lg->have_key && aidp_lineage_load_anchor_of(lg, &a, &have, &e) == 0 && have &&
            fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            aidp_lineage_read_tail(fd, st.st_size, &line, &n, &end) == 0 && line &&
            aidp_lineage_line_check(lg, line, n, &rec, &e) == 0)
                aidp_lineage_memo_keep_warm(lg);
        aidp_lineage_free(lg);
}

static void *warm_thread(void *arg)
{
        prctl(PR_SET_NAME, "aidp-warm");
        char warm[AIDP_LINEAGE_HASH_HEX + 1];
        (void)aidp_lineage_hmac_hex(g_warm_key.page, "", 0, warm);
        (void)aidp_lineage_sha256_hex("", 0, warm);
        warm_tail(arg);
        return NULL;
}

void aidp_lineage_key_warm_fork(const char *log_path)
{
        if (!g_warm_key.page || !g_warm_key.path[0])
                return;
        /* On a thread of glibc's default attributes, joined: its stack
         * goes to glibc's cache and its malloc arena to the free list, and
         * the run's START thread (created the same way) takes both, where
         * it made a new arena in its first malloc (about 0.2 ms of CPU,
         * alloc_new_heap and its page faults). Signals stay with the
         * caller's thread. Without a thread, the same work here. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_t t;
        pthread_sigmask(SIG_SETMASK, &all, &old);
        bool started = pthread_create(&t, NULL, warm_thread, (void *)log_path) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (started)
                pthread_join(t, NULL);
        else
                warm_thread((void *)log_path);
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
        if (g_warm_key.path[0] && key != g_warm_key.page && !strcmp(path, g_warm_key.path) &&
            same_file(&st, &g_warm_key.st)) {
                memcpy(key, g_warm_key.page, AIDP_LINEAGE_KEY_LEN);
                return 0;
        }
        int r = aidp_lineage_pread_exact(kfd, (char *)key, AIDP_LINEAGE_KEY_LEN, 0);
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
        aidp_witness_set_free(&lg->wit);
        aidp_lineage_memo_free(lg->memo);
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
        lg->serial = opt->serial_commit;
        lg->memo = aidp_lineage_memo_new(); /* NULL: every read checked in full */
        aidp_error kerr = {0};
        if (aidp_lineage_key_load(lg->key_path, opt->create_key, lg->key, &kerr) == 0) {
                lg->have_key = true;
                aidp_lineage_memo_adopt_warm(lg);
        } else if (opt->need_key || opt->create_key) {
                if (err)
                        *err = kerr;
                return -(kerr.errnum ? kerr.errnum : EINVAL);
        }
        int r;
        if (opt->publish_heads && (r = aidp_witness_load(opt->witness_config, &lg->wit, err)) < 0)
                return r;
        *ret = TAKE_PTR(lg);
        return 0;
}

const char *aidp_lineage_path(const struct aidp_lineage *lg)
{
        return lg->path;
}

bool aidp_lineage_has_witnesses(const struct aidp_lineage *lg)
{
        return lg && lg->wit.n > 0;
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
        int r = aidp_lineage_pread_exact(fd, buf, (size_t)st.st_size, 0);
        if (r < 0)
                return r;
        buf[st.st_size] = '\0';
        *len = (size_t)st.st_size;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* With lg: through its memo (lineage_memo.c); else with key. */
static int load_anchor(const struct aidp_lineage *lg, const char *path, const unsigned char *key,
                       struct aidp_lineage_anchor *a, bool *have, aidp_error *err)
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
        r = lg ? aidp_lineage_anchor_check(lg, buf, len, a, err)
               : aidp_lineage_anchor_parse(buf, len, key, a, err);
        if (r < 0)
                return aidp_error_wrap(err, "anchor %s", path);
        *have = true;
        return 0;
}

int aidp_lineage_load_anchor(const char *path, const unsigned char *key,
                             struct aidp_lineage_anchor *a, bool *have, aidp_error *err)
{
        return load_anchor(NULL, path, key, a, have, err);
}

int aidp_lineage_load_anchor_of(const struct aidp_lineage *lg, struct aidp_lineage_anchor *a,
                                bool *have, aidp_error *err)
{
        return load_anchor(lg, lg->anchor_path, lg->key, a, have, err);
}

/* The last complete line of the log (without '\n') and where the complete part
 * ends; *line is NULL when the log has no complete line. Reads backwards in growing
 * windows so an append costs a few KiB of reading, not the whole log. */
/* ---- verify a file ---------------------------------------------------------------------- */

int aidp_lineage_verify_file(const char *path, const char *anchor_path, bool use_anchor,
                             const unsigned char *key, struct aidp_lineage_verify *v,
                             aidp_error *err)
{
        return aidp_lineage_verify_file_collect(path, anchor_path, use_anchor, key, false, v, err);
}

int aidp_lineage_verify_file_collect(const char *path, const char *anchor_path, bool use_anchor,
                                     const unsigned char *key, bool collect,
                                     struct aidp_lineage_verify *v, aidp_error *err)
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
                if (aidp_lineage_load_anchor(anchor_path, key, &anchor, &have, &aerr) < 0) {
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
        v->collect = collect;
        /* Large reads: stdio's 4 KiB would be a syscall every two or three records. */
        setvbuf(f, NULL, _IOFBF, 1 << 20);
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
