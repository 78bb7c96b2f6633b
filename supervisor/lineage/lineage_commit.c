/* Group commit of the lineage store's appends (docs/lineage.md, "Group commit").
 *
 * Concurrent runs are separate processes appending to one log; each record must
 * be durable before its run goes on, but they need not pay one fdatasync each.
 * Two locks, both on the log's own inode (so a rotation, which renames the log
 * away, gives the new log new locks):
 *   - the append lock, flock(LOCK_EX) on the log: held only to check the tail,
 *     write one line and, briefly, to read the tail or rewrite the anchor;
 *   - the sync lock, an OFD write lock on one byte far past the log's end
 *     (independent of flock on Linux): held to decide whether a record is
 *     committed and, if not, to commit every record in the log.
 * Lock order: sync, then append. An appender never waits for the sync lock while
 * it holds the append lock, so writers go on appending while one process syncs.
 *
 * The anchor is the commit point: it names the last committed record, and it is
 * only rewritten (and fdatasync'd, under the append lock) after an fdatasync of the
 * log that covered that record. So a record is committed exactly when its bytes
 * are still where they were written and the anchor names it or a later record;
 * an appender looks under the append lock, shared. If not, and nobody syncs, it
 * takes the sync lock, syncs the log (up to its current end), anchors the last
 * complete record and fdatasyncs the anchor. If someone syncs, it waits for the
 * anchor to change (inotify) and looks again: most find their record covered. One
 * log and one anchor fdatasync per group.
 *
 * A failed fdatasync leaves every record past the anchor suspect: the kernel may
 * have marked the pages clean without writing them, and a second fdatasync then
 * reports success (fsyncgate; tests/priv/test_lineage_group_commit.c shows it on
 * this kernel). So the syncer cuts the log back to the anchored record under the
 * append lock and fails; each waiter whose record was cut finds its bytes gone and
 * fails too, and later appends chain onto the anchored record. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/lineage/codec/lineage_tail.h"
#include "supervisor/lineage/lineage_internal.h"

/* The sync lock's byte: far past any log, so no byte-range lock of anyone else's
 * on the file's data meets it. */
#define SYNC_LOCK_OFFSET ((off_t)1 << 62)

static _Atomic uint64_t g_log_syncs;

uint64_t aidp_lineage_log_syncs(void)
{
        return atomic_load(&g_log_syncs);
}

static int sync_lock_as(int fd, short type)
{
        struct flock fl = {
                .l_type = type, .l_whence = SEEK_SET, .l_start = SYNC_LOCK_OFFSET, .l_len = 1};
        /* An OFD lock belongs to the open file description, like flock: it goes
         * when the process dies, so a syncer killed mid-way blocks nobody. */
        while (fcntl(fd, F_OFD_SETLKW, &fl) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

int aidp_lineage_sync_lock(int fd)
{
        return sync_lock_as(fd, F_WRLCK);
}

void aidp_lineage_sync_unlock(int fd)
{
        struct flock fl = {
                .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = SYNC_LOCK_OFFSET, .l_len = 1};
        (void)fcntl(fd, F_OFD_SETLK, &fl);
}

static int append_lock(int fd)
{
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static void append_unlock(int fd)
{
        flock(fd, LOCK_UN);
}

int aidp_lineage_read_tail(int fd, off_t size, char **line, size_t *line_len, off_t *complete_end)
{
        *line = NULL;
        *line_len = 0;
        *complete_end = 0;
        /* A run's records are 2-4 KiB: the first window holds the usual
         * last line whole (each append reads it twice, START's and the end
         * record's tail checks; a 16 KiB read cost about 0.1 ms of CPU in
         * each, mostly its copy), a longer one takes the next windows. */
        for (size_t window = 4096;; window *= 4) {
                size_t w = (off_t)window < size ? window : (size_t)size;
                if (w == 0)
                        return 0;
                _cleanup_free_ char *buf = malloc(w);
                if (!buf)
                        return -ENOMEM;
                int r = aidp_lineage_pread_exact(fd, buf, w, size - (off_t)w);
                if (r < 0)
                        return r;
                size_t start = 0, n = 0, end = 0;
                r = aidp_lineage_last_line(buf, w, (off_t)w == size, &start, &n, &end);
                if (r == 0)
                        return 0;
                if (r > 0) {
                        *line = strndup(buf + start, n);
                        if (!*line)
                                return -ENOMEM;
                        *line_len = n;
                        *complete_end = size - (off_t)w + (off_t)end;
                        return 0;
                }
                if (window > 2 * (size_t)AIDP_LINEAGE_LINE_MAX + 2)
                        return -E2BIG;
        }
}

/* The k-th last line of the log's first `end` bytes (end: just past a '\n'), and
 * where it starts. -ENODATA when there are fewer lines. */
static int nth_last_line(int fd, off_t end, uint64_t k, struct aidp_lineage_record *rec,
                         off_t *start)
{
        const size_t most =
                (AIDP_LINEAGE_UNCOMMITTED_MAX + 1) * ((size_t)AIDP_LINEAGE_LINE_MAX + 1);
        for (size_t window = 65536;; window *= 4) {
                size_t w = (off_t)window < end ? window : (size_t)end;
                if (w == 0)
                        return -ENODATA;
                _cleanup_free_ char *buf = malloc(w);
                if (!buf)
                        return -ENOMEM;
                int r = aidp_lineage_pread_exact(fd, buf, w, end - (off_t)w);
                if (r < 0)
                        return r;
                size_t s = 0, n = 0;
                r = aidp_lineage_tail_line(buf, w, (off_t)w == end, k, &s, &n);
                if (r == 1) {
                        *start = end - (off_t)w + (off_t)s;
                        return aidp_lineage_line_chain(buf + s, n, rec) == 1 ? 0 : -EBADMSG;
                }
                if (r == 0)
                        return -ENODATA;
                if (r != -EAGAIN || window > most)
                        return r == -EAGAIN ? -E2BIG : r;
        }
}

int aidp_lineage_tail_read(const struct aidp_lineage *lg, int fd, off_t size,
                           const struct aidp_lineage_anchor *anchor, struct aidp_lineage_tail *t,
                           aidp_error *err)
{
        *t = (struct aidp_lineage_tail){.anchored_end = -1};
        memcpy(t->last.hash, AIDP_LINEAGE_ZERO_HASH, sizeof t->last.hash);
        _cleanup_free_ char *line = NULL;
        size_t n = 0;
        int r = aidp_lineage_read_tail(fd, size, &line, &n, &t->complete_end);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "reading the end of lineage %s",
                                        lg->path);
        t->torn = t->complete_end < size;
        aidp_error perr = {0};
        if (line && aidp_lineage_line_check(lg, line, n, &t->last, &perr) < 0)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EBADMSG,
                                      "lineage %s: the last record is damaged (%s); "
                                      "refusing to append (run 'aidp lineage verify')",
                                      lg->path, perr.msg);
        /* The record right after the anchored one, which must follow it. */
        struct aidp_lineage_record next = {0};
        bool have_next = false;
        off_t next_start = t->complete_end - (off_t)n - 1;
        if (anchor && line && t->last.seq == anchor->seq)
                t->anchored_end = t->complete_end;
        else if (!line && anchor && anchor->seq == 0)
                t->anchored_end = 0;
        else if (anchor && line && t->last.seq == anchor->seq + 1) {
                next = t->last;
                have_next = true;
        } else if (anchor && line && t->last.seq > anchor->seq + 1 &&
                   t->last.seq - anchor->seq <= AIDP_LINEAGE_UNCOMMITTED_MAX)
                have_next = nth_last_line(fd, t->complete_end, t->last.seq - anchor->seq, &next,
                                          &next_start) == 0;
        if (have_next)
                t->anchored_end = next_start;
        const char *why =
                aidp_lineage_tail_check(&t->last, t->torn, anchor, have_next ? &next : NULL);
        if (why)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EBADMSG,
                                      "lineage %s: refusing to append: %s; run 'aidp lineage "
                                      "verify' and move the log and its anchor aside to start a "
                                      "new one",
                                      lg->path, why);
        return 0;
}

/* The anchor through the fd opened with the log: after a rotation it is still
 * this log's (the archive's) anchor. *block: its bytes, for a rollback. */
static int read_anchor(const struct aidp_lineage *lg, int afd, struct aidp_lineage_anchor *a,
                       char block[AIDP_LINEAGE_ANCHOR_SIZE])
{
        int r = aidp_lineage_pread_exact(afd, block, AIDP_LINEAGE_ANCHOR_SIZE, 0);
        if (r < 0)
                return r;
        aidp_error e = {0};
        return aidp_lineage_anchor_check(lg, block, AIDP_LINEAGE_ANCHOR_SIZE, a, &e) < 0 ? -EBADMSG
                                                                                         : 0;
}

int aidp_lineage_open_anchor(const struct aidp_lineage *lg, int *ret_afd)
{
        for (int tries = 0; tries < 2; tries++) {
                _cleanup_close_ int afd =
                        open(lg->anchor_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                struct stat st;
                if (afd < 0 || fstat(afd, &st) < 0)
                        return -errno;
                if (S_ISREG(st.st_mode) && st.st_size == AIDP_LINEAGE_ANCHOR_SIZE) {
                        *ret_afd = TAKE_FD(afd);
                        return 0;
                }
                /* An anchor of an older aidp (the bare line): rewritten whole, the
                 * safe way, as the fixed-size block the in-place updates need. */
                struct aidp_lineage_anchor a;
                bool have = false;
                aidp_error e = {0};
                char block[AIDP_LINEAGE_ANCHOR_SIZE];
                int r;
                if (aidp_lineage_load_anchor(lg->anchor_path, lg->key, &a, &have, &e) < 0 || !have)
                        return -EBADMSG;
                if ((r = aidp_lineage_anchor_block(&a, lg->key, block)) < 0 ||
                    (r = aidp_lineage_replace_anchor(lg, block, sizeof block)) < 0)
                        return r;
        }
        return -EAGAIN;
}

/* Tests (AIDP_FAULT_SYNC_DELAY_MS, test builds only: supervisor/cli/env.c) hold the
 * sync back, with the sync lock taken: a run's sandbox is cloned while its START
 * syncs, and a syncer can be killed while it holds the lock. */
static void fault_delay(void)
{
        const char *delay = getenv("AIDP_FAULT_SYNC_DELAY_MS");
        long ms = delay && *delay ? strtol(delay, NULL, 10) : 0;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        if (ms > 0)
                nanosleep(&ts, NULL);
}

/* After a failed fdatasync of the log or the anchor: the anchor as it was, and
 * the log cut back to the record it names (under the append lock). If even this
 * fails, the records past the anchor stay; a later fdatasync may then report them
 * durable when they are not (docs/lineage.md, "Limits"). */
static void cut_to_anchor(const struct aidp_lineage *lg, int fd, int afd,
                          const struct aidp_lineage_anchor *old, const char *old_block,
                          bool have_append)
{
        if (!have_append && append_lock(fd) < 0)
                return;
        if (old_block && pwrite(afd, old_block, AIDP_LINEAGE_ANCHOR_SIZE, 0) > 0)
                (void)fdatasync(afd);
        struct stat st;
        struct aidp_lineage_tail t;
        aidp_error e = {0};
        if (fstat(fd, &st) == 0 && aidp_lineage_tail_read(lg, fd, st.st_size, old, &t, &e) == 0 &&
            t.anchored_end >= 0 && ftruncate(fd, t.anchored_end) == 0)
                (void)fsync(fd);
        if (!have_append)
                append_unlock(fd);
}

int aidp_lineage_group_sync(const struct aidp_lineage *lg, int fd, int afd, bool have_append,
                            const char **what)
{
        struct aidp_lineage_anchor old, next = {0};
        char old_block[AIDP_LINEAGE_ANCHOR_SIZE], block[AIDP_LINEAGE_ANCHOR_SIZE];
        *what = "reading the anchor of";
        int r = read_anchor(lg, afd, &old, old_block);
        if (r < 0)
                return r;
        /* What there is to commit: the last complete record, which must follow the
         * anchored one (a log that does not is left alone, and nobody commits). */
        *what = "reading the end of";
        if (!have_append && (r = append_lock(fd)) < 0)
                return r;
        struct stat st;
        struct aidp_lineage_tail t;
        aidp_error e = {0};
        r = fstat(fd, &st) < 0 ? -errno : aidp_lineage_tail_read(lg, fd, st.st_size, &old, &t, &e);
        if (!have_append)
                append_unlock(fd);
        if (r < 0)
                return r;
        if (t.last.seq == old.seq)
                return 0;
        fault_delay();
        /* Step 3 for every record written so far, whoever wrote it. */
        *what = "syncing";
        if (fdatasync(fd) < 0) {
                r = -errno;
                cut_to_anchor(lg, fd, afd, &old, NULL, have_append);
                return r;
        }
        atomic_fetch_add(&g_log_syncs, 1);
        /* Step 4: the anchor names the last record the fdatasync covered. Written
         * under the append lock, so that an appender checking the tail never reads
         * half an anchor. */
        next.seq = t.last.seq;
        memcpy(next.hash, t.last.hash, sizeof next.hash);
        memcpy(next.log, t.last.log, sizeof next.log);
        *what = "updating the anchor of";
        if ((r = aidp_lineage_anchor_block(&next, lg->key, block)) < 0)
                return r;
        /* Written and fdatasync'd under the append lock: an appender looking at the
         * anchor (under the lock, shared) sees the old one or a durable new one, and
         * a failed update is undone before anyone can see it. */
        if (!have_append && (r = append_lock(fd)) < 0)
                return r;
        ssize_t n = pwrite(afd, block, sizeof block, 0);
        r = n == (ssize_t)sizeof block ? 0 : n < 0 ? -errno : -EIO;
        if (r == 0 && fdatasync(afd) < 0)
                r = -errno;
        if (r < 0)
                cut_to_anchor(lg, fd, afd, &old, old_block, true);
        else /* made with the key: the state checks below need not MAC it again */
                aidp_lineage_memo_anchor(lg, block, sizeof block, &next);
        if (!have_append)
                append_unlock(fd);
        return r;
}

int aidp_lineage_record_state(const struct aidp_lineage *lg, int fd, int afd,
                              const struct aidp_lineage_anchor *head, off_t start, off_t end)
{
        struct aidp_lineage_anchor a;
        char block[AIDP_LINEAGE_ANCHOR_SIZE];
        int r = read_anchor(lg, afd, &a, block);
        if (r < 0)
                return r;
        size_t len = (size_t)(end - start);
        _cleanup_free_ char *buf = malloc(len);
        if (!buf)
                return -ENOMEM;
        /* Still where it was written (nobody cuts a log but under the sync lock,
         * which the caller holds)? A record written after a cut-back in its place
         * has other bytes: another run, another time. */
        char hash[AIDP_LINEAGE_HASH_HEX + 1];
        r = aidp_lineage_pread_exact(fd, buf, len, start);
        if (r == -EIO)
                return AIDP_LINEAGE_RECORD_DROPPED;
        if (r < 0)
                return r;
        aidp_lineage_hash_line(buf, len - 1, hash);
        if (buf[len - 1] != '\n' || strcmp(hash, head->hash))
                return AIDP_LINEAGE_RECORD_DROPPED;
        return a.seq >= head->seq ? AIDP_LINEAGE_RECORD_COMMITTED : AIDP_LINEAGE_RECORD_PENDING;
}

/* The record's state under the append lock, shared: as the last sync or cut-back
 * left log and anchor (both change only under the exclusive lock). */
static int state_now(const struct aidp_lineage *lg, int fd, int afd,
                     const struct aidp_lineage_anchor *head, off_t start, off_t end)
{
        while (flock(fd, LOCK_SH) < 0)
                if (errno != EINTR)
                        return -errno;
        int s = aidp_lineage_record_state(lg, fd, afd, head, start, end);
        append_unlock(fd);
        return s;
}

/* A record state as a result: 1 awaiting its commit, 0 committed, < 0 dropped
 * (*what "dropped") or an error. */
static int settled(int s, const char **what)
{
        if (s == AIDP_LINEAGE_RECORD_PENDING)
                return 1;
        if (s == AIDP_LINEAGE_RECORD_DROPPED) {
                *what = "dropped";
                return -EIO;
        }
        return s < 0 ? s : 0;
}

/* Holding the sync lock: commit the record unless that is done already. */
static int sync_as_leader(const struct aidp_lineage *lg, int fd, int afd,
                          const struct aidp_lineage_anchor *head, off_t start, off_t end,
                          const char **what)
{
        for (int round = 0;; round++) {
                *what = "reading the anchor of";
                int s = settled(aidp_lineage_record_state(lg, fd, afd, head, start, end), what);
                if (s <= 0)
                        return s;
                if (round > 0) { /* synced, yet not covered: never expected */
                        *what = "committing";
                        return -EIO;
                }
                int r = aidp_lineage_group_sync(lg, fd, afd, false, what);
                if (r < 0)
                        return r;
        }
}

/* An inotify instance woken when the anchor (afd's inode, wherever it is now) is
 * rewritten; -1 when there is none. */
static int watch_anchor(int afd)
{
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", afd);
        int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (ifd >= 0 && inotify_add_watch(ifd, path, IN_MODIFY) < 0) {
                close(ifd);
                ifd = -1;
        }
        return ifd;
}

int aidp_lineage_commit_record(const struct aidp_lineage *lg, int fd, int afd,
                               const struct aidp_lineage_anchor *head, off_t start, off_t end,
                               const char **what)
{
        /* Appenders whose record a running sync covers must not queue for the sync
         * lock: the kernel wakes lock waiters but does not hand the lock over, so
         * the next syncer takes it first and they would wait out its sync as well,
         * with their next records unwritten (groups of one or two). They wait for
         * the anchor to change instead, and look again. The watch is made only
         * once the lock is found taken (an inotify instance and its close cost
         * about 0.1 ms of CPU, for nothing when nobody else syncs): the state is
         * looked at again after it is made, so a change before it is not missed. */
        _cleanup_close_ int ifd = -1;
        bool watching = false;
        struct flock fl = {
                .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SYNC_LOCK_OFFSET, .l_len = 1};
        for (;;) {
                *what = "reading the anchor of";
                int s = settled(state_now(lg, fd, afd, head, start, end), what);
                if (s <= 0)
                        return s;
                /* Nobody syncs: this append does, for everyone. Without inotify,
                 * it waits for the lock. */
                int r = watching && ifd < 0               ? aidp_lineage_sync_lock(fd)
                        : fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno
                                                          : 0;
                if (r == 0) {
                        r = sync_as_leader(lg, fd, afd, head, start, end, what);
                        aidp_lineage_sync_unlock(fd);
                        return r;
                }
                if (r != -EAGAIN && r != -EACCES && r != -EINTR) {
                        *what = "locking";
                        return r;
                }
                if (!watching) {
                        ifd = watch_anchor(afd);
                        watching = true;
                        continue;
                }
                /* A sync runs. A cut-back, or a syncer's death, rewrites no anchor:
                 * hence the timeout. */
                struct pollfd pfd = {.fd = ifd, .events = POLLIN};
                if (poll(&pfd, 1, 20) > 0) {
                        char ev[4096];
                        while (read(ifd, ev, sizeof ev) > 0)
                                ;
                }
        }
}
