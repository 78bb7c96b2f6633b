/* Rotation (docs/lineage.md, "Rotation"): the log and its anchor are archived
 * beside it as <log>.<log id> and a new log starts whose first record names the
 * old log's last head, so that verify can follow the chain back and a log put
 * back in place of its successor, or an archive cut short, shows.
 *
 * Order, under the old log's locks (sync and append) and with the new log locked
 * before anyone can open it (so a waiting append never sees the new log with the
 * old anchor):
 *   1. the old log verified whole (before the lock: verify takes a shared one),
 *      then its tail checked against the anchor under the lock, and the records
 *      that await their commit committed (the link names the last one, which
 *      must be durable);
 *   2. the new log written to a temporary file, fsync'd, locked;
 *   3. the archive made by hard links (log, then anchor), directory fsync'd: the
 *      archive is complete before anything changes;
 *   4. the new log renamed into place, its anchor replaced, directory fsync'd;
 *   5. the new head published to the witnesses.
 * A crash in 4 leaves the new log with the old anchor: appends refuse it and
 * verify names the anchor's log; the archive is whole (docs: recovery). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "supervisor/lineage/codec/lineage_tail.h"
#include "supervisor/lineage/lineage_internal.h"

#define ROTATE_JOB "lineage.rotate"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

/* The first record of the new log: an OTHER event naming its predecessor. */
static char *first_record(const struct aidp_lineage *lg, const struct aidp_lineage_link *link,
                          uint64_t tpm_bound, struct aidp_lineage_anchor *na, size_t *len,
                          aidp_error *err)
{
        char run_id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(run_id);
        _cleanup_(json_object_putp) json_object *ev =
                aidp_lineage_event_new(AIDP_LINEAGE_OTHER, run_id, NULL, ROTATE_JOB);
        if (!ev) {
                aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                return NULL;
        }
        aidp_lineage_set_rotation(ev, link);
        if (tpm_bound)
                aidp_lineage_set_tpm_binding(ev, aidp_witness_tpm(&lg->wit)->nv_index, tpm_bound);
        *na = (struct aidp_lineage_anchor){.seq = 1};
        int r = aidp_lineage_log_id_new(na->log);
        if (r < 0) {
                aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "making a log identity");
                return NULL;
        }
        char *line = aidp_lineage_record_format_log(ev, na->log, 1, AIDP_LINEAGE_ZERO_HASH, lg->key,
                                                    len, err);
        if (line)
                aidp_lineage_hash_line(line, *len - 1, na->hash);
        return line;
}

/* Step 2: the new log in a temporary file beside the old, with the old one's owner
 * and mode, durable and locked. */
static int write_new_log(const struct aidp_lineage *lg, int oldfd, const char *tmp,
                         const char *line, size_t len, int *ret_fd, aidp_error *err)
{
        struct stat st;
        if (fstat(oldfd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "lineage %s", lg->path);
        /* A fixed temporary name is safe: only the holder of the log lock writes it. */
        unlink(tmp);
        _cleanup_close_ int fd =
                open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "creating %s", tmp);
        int r = flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno : 0;
        if (r == 0 && (fchown(fd, st.st_uid, st.st_gid) < 0 || fchmod(fd, st.st_mode & 0640) < 0))
                r = -errno;
        if (r == 0)
                r = aidp_write_all(fd, line, len);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "writing %s", tmp);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Step 3: hard links, so the archive is whole before the log changes. */
static int make_archive(const struct aidp_lineage *lg, const char *archive, aidp_error *err)
{
        _cleanup_free_ char *aanchor = NULL;
        if (asprintf(&aanchor, "%s" AIDP_LINEAGE_ANCHOR_SUFFIX, archive) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (link(lg->path, archive) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "archiving %s as %s",
                                        lg->path, archive);
        if (link(lg->anchor_path, aanchor) < 0) {
                int e = errno;
                unlink(archive);
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, e, "archiving %s as %s",
                                        lg->anchor_path, aanchor);
        }
        /* What --incremental exported refers to lines of the old log. */
        _cleanup_free_ char *st_old = NULL, *st_new = NULL;
        if (asprintf(&st_old, "%s.export-state", lg->path) >= 0 &&
            asprintf(&st_new, "%s.export-state", archive) >= 0 && access(st_old, F_OK) == 0)
                (void)rename(st_old, st_new);
        int r = aidp_lineage_fsync_dir_of(lg->path);
        return r < 0 ? aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "syncing %s", archive) : 0;
}

/* Step 1: a log that does not verify is not archived under a link that vouches
 * for it. */
static int check_old(struct aidp_lineage *lg, aidp_error *err)
{
        struct aidp_lineage_verify v;
        int r = aidp_lineage_verify_file(lg->path, lg->anchor_path, true, lg->key, &v, err);
        aidp_lineage_verify_release(&v);
        if (r < 0)
                return r;
        if (v.bad_line)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EBADMSG,
                                      "refusing to rotate %s: it does not verify: %s", lg->path,
                                      v.reason);
        if (v.records == 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENODATA,
                                      "%s has no records: nothing to rotate", lg->path);
        return 0;
}

/* Steps 2-4 on the locked old log whose last record is `last`. */
static int switch_logs(struct aidp_lineage *lg, int oldfd, const struct aidp_lineage_record *last,
                       uint64_t tpm_bound, char **ret_archive, struct aidp_lineage_anchor *na,
                       aidp_error *err)
{
        struct aidp_lineage_link link = {.prev = {.seq = last->seq}};
        memcpy(link.prev.log, last->log, sizeof link.prev.log);
        memcpy(link.prev.hash, last->hash, sizeof link.prev.hash);
        _cleanup_free_ char *archive = NULL, *tmp = NULL, *dup = NULL;
        if (asprintf(&archive, "%s.%s", lg->path, last->log) < 0 ||
            asprintf(&tmp, "%s.rotate.tmp", lg->path) < 0 || !(dup = strdup(archive)))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        snprintf(link.file, sizeof link.file, "%s", basename(dup));
        if (aidp_lineage_head_sign(&link.prev, lg->key) < 0)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EIO, "HMAC-SHA256 failed");
        size_t len = 0;
        _cleanup_free_ char *line = first_record(lg, &link, tpm_bound, na, &len, err);
        if (!line)
                return aidp_error_wrap(err, "rotating %s", lg->path);
        char block[AIDP_LINEAGE_ANCHOR_SIZE];
        int r = aidp_lineage_anchor_block(na, lg->key, block);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r, "formatting an anchor");
        int nfd0 = -1;
        if ((r = write_new_log(lg, oldfd, tmp, line, len, &nfd0, err)) < 0)
                return r;
        /* Held open until the new log is in place (closed on every return). */
        _cleanup_close_ int nfd = nfd0;
        (void)nfd;
        if ((r = make_archive(lg, archive, err)) < 0) {
                unlink(tmp);
                return r;
        }
        if (rename(tmp, lg->path) < 0) {
                r = aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno,
                                     "putting the new log in place of %s (archived as %s; "
                                     "the log is unchanged)",
                                     lg->path, archive);
                unlink(tmp);
                return r;
        }
        if ((r = aidp_lineage_replace_anchor(lg, block, sizeof block)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                        "replacing the anchor of %s after its rotation (the "
                                        "archive %s is whole; see docs/lineage.md, Rotation)",
                                        lg->path, archive);
        *ret_archive = TAKE_PTR(archive);
        return 0;
}

int aidp_lineage_rotate(struct aidp_lineage *lg, char **ret_archive, aidp_error *err)
{
        if (!lg->have_key)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, ENOKEY,
                                      "rotating %s: no lineage key loaded", lg->path);
        int r = check_old(lg, err);
        if (r < 0)
                return r;
        bool created = false;
        off_t size = 0;
        int fd0 = -1;
        struct aidp_lineage_record last;
        if ((r = aidp_lineage_lock_tail(lg, true, &fd0, &created, &size, &last, NULL, err)) < 0)
                return r;
        _cleanup_close_ int fd = fd0;
        int afd0 = -1;
        if ((r = aidp_lineage_open_anchor(lg, &afd0)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                        "opening the anchor of lineage %s", lg->path);
        _cleanup_close_ int afd = afd0;
        const char *what = "";
        if ((r = aidp_lineage_group_sync(lg, fd, afd, true, &what)) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, -r,
                                        "%s lineage %s (committing the records that await their "
                                        "commit before the rotation)",
                                        what, lg->path);
        if (last.seq == 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENODATA,
                                      "%s has no records: nothing to rotate", lg->path);
        if (!last.log[0])
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "%s is a log of an older aidp, without an identity to "
                                      "link to: move it and its anchor aside instead",
                                      lg->path);
        /* The new log's first record binds the TPM counter like any record: the
         * old log put back in its place is then behind the counter. */
        uint64_t bound = 0;
        aidp_witness_tpm_bind(&lg->wit, 1, &bound);
        struct aidp_lineage_anchor na;
        if ((r = switch_logs(lg, fd, &last, bound, ret_archive, &na, err)) < 0)
                return r;
        aidp_witness_tpm_commit(&lg->wit, 1, bound);
        /* Both locks go with the fds; the new head goes to the witnesses first. */
        aidp_lineage_witness_publish(lg, &na);
        return 0;
}
