/* The lineage store's appends: the lock, durable writes and the anchor. The pure
 * rules (anchor block, last line, tail check, SIEM summary) are
 * codec/lineage_tail.c; the commit shared by concurrent appends is
 * lineage_commit.c.
 *
 * Append protocol:
 *   under the append lock (an exclusive flock on the log file, so concurrent
 *   supervisors are serialized and each reads the tail the previous one wrote):
 *   1. read the anchor and the last line; refuse when they disagree (the log was cut
 *      or edited: appending would bury the evidence under a fresh anchor);
 *   2. drop a torn tail left by an append that died before it committed;
 *   3. write the new line (and fdatasync the directory when the log was created);
 *   then under the sync lock, shared by every appender of the log (lineage_commit.c):
 *   4. unless a concurrent append's commit covered it already: fdatasync the log and
 *      rewrite the anchor in place, naming the last record, and fdatasync it.
 * A failed write cuts the log back to its old size; a failed fdatasync cuts it back
 * to the anchored record, and every append not committed yet fails. Only after 4 is
 * the record committed.
 *
 * The anchor is a fixed AIDP_LINEAGE_ANCHOR_SIZE bytes at offset 0, rewritten with one
 * pwrite: a write within one sector is atomic on the devices we know of (PostgreSQL's
 * pg_control relies on the same), and an overwrite that does not change the file's
 * size needs no journal commit, only the block itself. A missing anchor, or one of
 * another size (older aidp), is written whole the safe way once: a temporary file,
 * fsync, rename, fsync of the directory.
 *
 * Step 4 may run in the background (aidp_lineage_append_begin, on a thread) while
 * the caller prepares the run; _commit waits for it. With serial_commit or a TPM
 * witness both locks are held from step 1 to the end, and step 4 is always done. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "supervisor/lineage/codec/lineage_tail.h"
#include "supervisor/lineage/lineage_internal.h"
#include "supervisor/lineage/seclog.h"

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

int aidp_lineage_replace_anchor(const struct aidp_lineage *lg, const char *buf, size_t len)
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
        return aidp_lineage_fsync_dir_of(lg->anchor_path);
}

static int write_anchor(const struct aidp_lineage *lg, const struct aidp_lineage_anchor *a)
{
        char buf[AIDP_LINEAGE_ANCHOR_SIZE];
        int r = aidp_lineage_anchor_block(a, lg->key, buf);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = open(lg->anchor_path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != sizeof buf)
                return aidp_lineage_replace_anchor(lg, buf, sizeof buf);
        /* One pwrite, never a loop: the in-place update relies on a single write
         * within one sector being atomic. */
        ssize_t n = pwrite(fd, buf, sizeof buf, 0);
        if (n != (ssize_t)sizeof buf)
                return n < 0 ? -errno : -EIO;
        return fdatasync(fd) < 0 ? -errno : 0;
}

/* Best effort: a security event also goes to syslog for the SIEM. */
static void report_security_event(const struct aidp_lineage *lg, json_object *ev, uint64_t seq)
{
        struct aidp_lineage_alert a;
        if (!ev || !aidp_lineage_alert_of(ev, &a))
                return;
        char seqs[24], denieds[24];
        snprintf(seqs, sizeof seqs, "%" PRIu64, seq);
        snprintf(denieds, sizeof denieds, "%" PRIu64, a.egress_denied);
        struct aidp_seclog_param p[] = {
                {"runId", a.run_id},         {"job", a.job},
                {"eventType", a.event_type}, {"lineageSeq", seqs},
                {"egressDenied", denieds},   {"reason", a.reason},
        };
        struct aidp_seclog_msg m = {
                .severity = a.kind == AIDP_ALERT_ABORT ? LOG_NOTICE : LOG_WARNING,
                .msgid = aidp_lineage_alert_msgid(a.kind),
                .params = p,
                .nparams = ARRAY_SIZE(p),
                .text = aidp_lineage_alert_text(a.kind),
        };
        aidp_seclog_send(lg->syslog_socket, &m);
}

/* The committed record's head to the witnesses (a log of an older aidp has no
 * identity to publish under). */
void aidp_lineage_witness_publish(struct aidp_lineage *lg, const struct aidp_lineage_anchor *a)
{
        if (lg->wit.n == 0 || !a->log[0])
                return;
        struct aidp_lineage_head h = {.seq = a->seq};
        memcpy(h.log, a->log, sizeof h.log);
        memcpy(h.hash, a->hash, sizeof h.hash);
        if (aidp_lineage_head_sign(&h, lg->key) < 0)
                return;
        aidp_witness_publish(&lg->wit, &h);
}

/* Heads a witness did not take go into the next record, so the log itself says
 * where a witness has a gap. */
static void note_missed_heads(struct aidp_lineage *lg, json_object *ev)
{
        if (lg->wit.nmissed == 0)
                return;
        json_object *f = aidp_lineage_run_facet(ev, "aidp_witness");
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < lg->wit.nmissed; i++)
                json_object_array_add(a, json_object_new_string(lg->wit.missed[i]));
        if (f)
                json_object_object_add(f, "missed", a);
        else
                json_object_put(a);
        lg->wit.nmissed = 0;
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
        json_object *ev; /* a reference, for the syslog report at commit (NULL: none) */
        int fd;          /* the log (locked throughout when serial) */
        int afd;         /* its anchor, opened with it */
        bool serial;     /* both locks held from the write to the end */
        off_t start;     /* where the record's line lies in the log */
        off_t end;
        struct aidp_lineage_anchor next; /* the record's own head */
        bool syncing;                    /* step 4 runs on sync_tid */
        pthread_t sync_tid;
        int sync_result;
        const char *what;   /* the step that failed */
        uint64_t tpm_bound; /* the TPM counter value the record binds (0: none) */
};

/* Step 4: committed by a group's sync, or by our own. */
static int commit_work(struct aidp_lineage_pending *p)
{
        if (p->serial)
                return aidp_lineage_group_sync(p->lg, p->fd, p->afd, true, &p->what);
        return aidp_lineage_commit_record(p->lg, p->fd, p->afd, &p->next, p->start, p->end,
                                          &p->what);
}

/* Step 4 in the background, on a thread. (Linux AIO's IOCB_CMD_FDSYNC would do
 * the fdatasync without a thread, but io_destroy waits for an RCU grace period,
 * ~10-30 ms.) The run clones its sandbox while this runs, so it must take no lock
 * the clone needs: no stdio, no fork, no setuid (supervisor/sandbox.h); malloc
 * only in this thread's own arena. AIDP_FAULT_SYNC_DELAY_MS (tests) holds it back
 * (lineage_commit.c), to make sure of that. */
static void *sync_thread(void *arg)
{
        struct aidp_lineage_pending *p = arg;
        prctl(PR_SET_NAME, "aidp-fsync");
        p->sync_result = commit_work(p);
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

static void pending_free(struct aidp_lineage_pending *p)
{
        if (p->fd >= 0) {
                /* The locks belong to the open file description: release them
                 * explicitly, whatever copies of the fd exist. */
                aidp_lineage_sync_unlock(p->fd);
                flock(p->fd, LOCK_UN);
                close(p->fd);
        }
        if (p->afd >= 0)
                close(p->afd);
        json_object_put(p->ev);
        free(p);
}

/* Open and lock the log (steps before 1). The append lock is the log's own flock,
 * held until the line is written (serial: until the record is committed). */
int aidp_lineage_lock(const struct aidp_lineage *lg, bool sync_too, int *ret_fd, bool *created,
                      off_t *size, aidp_error *err)
{
        int r;
        for (int tries = 0;; tries++) {
                int fd0 = open_log(lg->path, created);
                /* /var/lib/aidp: the log names callers and datasets, so not
                 * world-readable. Made only when it is missing: walking the path
                 * component by component on every append cost about 40 us. */
                if (fd0 == -ENOENT) {
                        if ((r = aidp_lineage_make_parents(lg->path, 0750, err)) < 0)
                                return aidp_error_wrap(err, "lineage %s", lg->path);
                        fd0 = open_log(lg->path, created);
                }
                if (fd0 < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -fd0, "opening lineage %s",
                                                lg->path);
                _cleanup_close_ int fd = fd0;
                /* Lock order: sync, then append (lineage_commit.c). */
                if (sync_too && (r = aidp_lineage_sync_lock(fd)) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "locking lineage %s",
                                                lg->path);
                while (flock(fd, LOCK_EX) < 0)
                        if (errno != EINTR)
                                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno,
                                                        "locking lineage %s", lg->path);
                struct stat st, now;
                if (fstat(fd, &st) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "lineage %s",
                                                lg->path);
                if (!S_ISREG(st.st_mode))
                        return aidp_error_set(err, AIDP_EXIT_LINEAGE, EINVAL,
                                              "lineage %s is not a regular file", lg->path);
                /* `aidp lineage rotate` renames the log away under its lock: whoever
                 * waited for that lock holds the archive, and must open the new log. */
                if (stat(lg->path, &now) < 0 || now.st_ino != st.st_ino ||
                    now.st_dev != st.st_dev) {
                        if (tries < 8)
                                continue;
                        return aidp_error_set(err, AIDP_EXIT_LINEAGE, ESTALE,
                                              "lineage %s keeps being replaced", lg->path);
                }
                *size = st.st_size;
                *ret_fd = TAKE_FD(fd);
                return 0;
        }
}

/* Steps 1-2 on the locked log: the tail must be the anchored record or follow it
 * (records awaiting their commit); a torn tail is cut off (*size shrinks). *last
 * is the last record (seq 0 and the zero hash for none). A log without an anchor
 * gets one naming no record. */
int aidp_lineage_check_tail(const struct aidp_lineage *lg, int fd, off_t *size,
                            struct aidp_lineage_record *last, uint64_t *anchored, aidp_error *err)
{
        struct aidp_lineage_anchor anchor = {0};
        bool have_anchor = false;
        int r = aidp_lineage_load_anchor_of(lg, &anchor, &have_anchor, err);
        if (r < 0) {
                err->status = AIDP_EXIT_LINEAGE;
                return aidp_error_wrap(err, "appending to %s (run 'aidp lineage verify')",
                                       lg->path);
        }
        struct aidp_lineage_tail t;
        if ((r = aidp_lineage_tail_read(lg, fd, *size, have_anchor ? &anchor : NULL, &t, err)) < 0)
                return r;
        *last = t.last;
        /* A new log gets its identity here (or keeps the one its first anchor
         * named); a log of an older aidp keeps going without one. */
        if (last->seq == 0) {
                if (have_anchor && anchor.log[0])
                        memcpy(last->log, anchor.log, sizeof last->log);
                else if ((r = aidp_lineage_log_id_new(last->log)) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                                "making the identity of lineage %s", lg->path);
        }
        if (t.torn) {
                /* Bytes past the last '\n' are an append that never committed. */
                if (ftruncate(fd, t.complete_end) < 0 || fsync(fd) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno,
                                                "removing the torn tail of lineage %s", lg->path);
                *size = t.complete_end;
        }
        /* A log without records (and so without an anchor) gets its anchor first,
         * naming no record: an append that then dies before its commit leaves the
         * log one record past the anchor, which the next append accepts, and not
         * records without an anchor, which it must refuse. */
        if (!have_anchor) {
                aidp_lineage_anchor_genesis(&anchor);
                memcpy(anchor.log, last->log, sizeof anchor.log);
                if ((r = write_anchor(lg, &anchor)) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                                "creating the anchor of lineage %s", lg->path);
        }
        if (anchored)
                *anchored = anchor.seq;
        return 0;
}

int aidp_lineage_lock_tail(const struct aidp_lineage *lg, bool sync_too, int *ret_fd, bool *created,
                           off_t *size, struct aidp_lineage_record *last, uint64_t *anchored,
                           aidp_error *err)
{
        int fd0 = -1;
        int r = aidp_lineage_lock(lg, sync_too, &fd0, created, size, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = fd0;
        if ((r = aidp_lineage_check_tail(lg, fd, size, last, anchored, err)) < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Steps before 3: the log locked, its tail checked, its anchor open, and room for
 * one more record awaiting its commit (AIDP_LINEAGE_UNCOMMITTED_MAX): when there
 * is none, the waiting records are committed first. */
static int lock_for_append(struct aidp_lineage *lg, bool serial, int *ret_fd, int *ret_afd,
                           bool *created, off_t *size, struct aidp_lineage_record *last,
                           aidp_error *err)
{
        for (int tries = 0; tries < 8; tries++) {
                uint64_t anchored = 0;
                int fd0 = -1, afd0 = -1;
                int r = aidp_lineage_lock_tail(lg, serial, &fd0, created, size, last, &anchored,
                                               err);
                if (r < 0)
                        return r;
                _cleanup_close_ int fd = fd0;
                if ((r = aidp_lineage_open_anchor(lg, &afd0)) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                                "opening the anchor of lineage %s", lg->path);
                _cleanup_close_ int afd = afd0;
                if (last->seq - anchored < AIDP_LINEAGE_UNCOMMITTED_MAX) {
                        *ret_fd = TAKE_FD(fd);
                        *ret_afd = TAKE_FD(afd);
                        return 0;
                }
                const char *what = "";
                if (!serial) {
                        /* Never wait for the sync lock holding the append lock. */
                        flock(fd, LOCK_UN);
                        if ((r = aidp_lineage_sync_lock(fd)) < 0)
                                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                                        "locking lineage %s", lg->path);
                }
                r = aidp_lineage_group_sync(lg, fd, afd, serial, &what);
                if (r < 0)
                        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                                "%s lineage %s (committing the records that "
                                                "await their commit)",
                                                what, lg->path);
        }
        return aidp_error_set(err, AIDP_EXIT_LINEAGE, EAGAIN,
                              "lineage %s: too many appends await their commit", lg->path);
}

static int append_begin(struct aidp_lineage *lg, json_object *ev, bool background,
                        struct aidp_lineage_pending **out, aidp_error *err)
{
        int r;
        if (!lg->have_key)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, ENOKEY,
                                      "appending to %s: no lineage key loaded", lg->path);
        aidp_lineage_strip_chain(ev);
        note_missed_heads(lg, ev);
        if ((r = aidp_lineage_event_check(ev, err)) < 0) {
                err->status = AIDP_EXIT_INTERNAL;
                return aidp_error_wrap(err, "appending to %s: bad event", lg->path);
        }
        /* The TPM binding needs records committed one at a time, in order. */
        bool serial = lg->serial || aidp_witness_tpm(&lg->wit);
        bool created = false;
        off_t size = 0;
        int fd0 = -1, afd0 = -1;
        struct aidp_lineage_record rec;
        if ((r = lock_for_append(lg, serial, &fd0, &afd0, &created, &size, &rec, err)) < 0)
                return r;
        _cleanup_close_ int fd = fd0, afd = afd0;
        /* The TPM counter the record binds (docs/lineage.md, "TPM counter"): read
         * under the lock, so that concurrent appends take turns. */
        uint64_t bound = 0;
        aidp_witness_tpm_bind(&lg->wit, rec.seq + 1, &bound);
        if (bound)
                aidp_lineage_set_tpm_binding(ev, aidp_witness_tpm(&lg->wit)->nv_index, bound);
        /* Step 3. */
        size_t len = 0;
        _cleanup_free_ char *line = aidp_lineage_record_format_log(
                ev, rec.log[0] ? rec.log : NULL, rec.seq + 1, rec.hash, lg->key, &len, err);
        if (!line)
                return aidp_error_wrap(err, "appending to lineage %s", lg->path);
        struct aidp_lineage_pending *p = calloc(1, sizeof *p);
        if (!p)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        *p = (struct aidp_lineage_pending){.lg = lg,
                                           .fd = -1,
                                           .afd = -1,
                                           .serial = serial,
                                           .start = size,
                                           .end = size + (off_t)len,
                                           .next = {.seq = rec.seq + 1},
                                           .what = "committing",
                                           .tpm_bound = bound};
        memcpy(p->next.log, rec.log, sizeof p->next.log);
        aidp_lineage_hash_line(line, len - 1, p->next.hash);
        r = aidp_write_all(fd, line, len);
        /* A new log's directory entry is durable before anyone else's record in it
         * can be committed. */
        if (r == 0 && created)
                r = aidp_lineage_fsync_dir_of(lg->path);
        p->fd = TAKE_FD(fd);
        p->afd = TAKE_FD(afd);
        if (r == 0) {
                /* Our own line, made with the key: the commit's and the next
                 * append's reads of it need not check it again (lineage_memo.c). */
                struct aidp_lineage_record mine = {.seq = p->next.seq};
                memcpy(mine.prev, rec.hash, sizeof mine.prev);
                memcpy(mine.hash, p->next.hash, sizeof mine.hash);
                memcpy(mine.log, rec.log, sizeof mine.log);
                aidp_lineage_memo_line(lg, line, len - 1, &mine);
        }
        if (r < 0) {
                cut_back(p->fd, size);
                pending_free(p);
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                        "writing lineage %s (the log is unchanged)", lg->path);
        }
        if (!serial)
                flock(p->fd, LOCK_UN); /* others may append while this one commits */
        /* Kept only when the commit reports it: a run's START is no
         * security event, and its tree is freed by the caller before pid 1
         * is cloned, not after, when each page freeing touches is a
         * copy-on-write fault shared with pid 1 (docs/run-core.md). */
        struct aidp_lineage_alert alert;
        p->ev = aidp_lineage_alert_of(ev, &alert) ? json_object_get(ev) : NULL;
        if (background)
                sync_submit(p);
        *out = p;
        return 0;
}

int aidp_lineage_append_begin(struct aidp_lineage *lg, json_object *ev,
                              struct aidp_lineage_pending **out, aidp_error *err)
{
        return append_begin(lg, ev, true, out, err);
}

static int commit_error(struct aidp_lineage_pending *p, int r, aidp_error *err)
{
        const char *path = p->lg->path;
        if (!strcmp(p->what, "dropped"))
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                        "lineage %s: the record was removed because a concurrent "
                                        "append could not sync the log (the log is back at its "
                                        "last commit)",
                                        path);
        if (!strcmp(p->what, "syncing") || !strcmp(p->what, "updating the anchor of"))
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                        "%s lineage %s (the log is back at its last commit: this "
                                        "record and every one not committed yet were removed)",
                                        p->what, path);
        return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                "%s lineage %s (the record is not "
                                "committed)",
                                p->what, path);
}

int aidp_lineage_append_commit(struct aidp_lineage_pending *p, aidp_error *err)
{
        int r;
        if (p->syncing) {
                pthread_join(p->sync_tid, NULL);
                p->syncing = false;
                r = p->sync_result;
        } else {
                r = commit_work(p);
        }
        if (r < 0) {
                r = commit_error(p, r, err);
                pending_free(p);
                return r;
        }
        report_security_event(p->lg, p->ev, p->next.seq);
        /* Durable: the TPM counter now reaches the value the record bound. */
        aidp_witness_tpm_commit(&p->lg->wit, p->next.seq, p->tpm_bound);
        /* The record is durable: now (and only now) its head goes to the
         * witnesses, within a bounded time and never failing the run. */
        aidp_lineage_witness_publish(p->lg, &p->next);
        pending_free(p);
        return 0;
}

int aidp_lineage_append(struct aidp_lineage *lg, json_object *ev, aidp_error *err)
{
        struct aidp_lineage_pending *p = NULL;
        int r = append_begin(lg, ev, false, &p, err);
        return r < 0 ? r : aidp_lineage_append_commit(p, err);
}

/* Commit what lies past the anchor: the records of appenders that died between
 * their line's write and its commit. Under both locks, as a group's sync (which
 * cuts the log back to the anchored record when the fdatasync fails). Heads go to
 * no witness: a dead appender's TPM binding is not ours to finish. */
int aidp_lineage_commit_pending(struct aidp_lineage *lg, aidp_error *err)
{
        int fd0 = -1, afd0 = -1;
        bool created = false;
        off_t size = 0;
        struct aidp_lineage_record last;
        uint64_t anchored = 0;
        int r = aidp_lineage_lock_tail(lg, true, &fd0, &created, &size, &last, &anchored, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = fd0;
        const char *what = "opening the anchor of";
        if (last.seq != anchored && (r = aidp_lineage_open_anchor(lg, &afd0)) == 0) {
                _cleanup_close_ int afd = afd0;
                r = aidp_lineage_group_sync(lg, fd, afd, true, &what);
        }
        aidp_lineage_sync_unlock(fd);
        flock(fd, LOCK_UN);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                        "%s lineage %s (committing the records that await their "
                                        "commit)",
                                        what, lg->path);
        return 0;
}
