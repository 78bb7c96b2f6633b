#pragma once
/* Private to supervisor/lineage: what the store (lineage.c: key, open, files,
 * verify) and its appends (lineage_append.c) share. */
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/lineage/witness.h"

struct aidp_lineage {
        char *path;
        char *anchor_path;
        char *key_path;
        char *syslog_socket;
        bool have_key;
        bool serial; /* options.serial_commit: no group commit (benchmarks) */
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        struct aidp_witness_set wit;    /* empty unless options.publish_heads */
        struct aidp_lineage_memo *memo; /* verified bytes (lineage_memo.c); NULL: none */
};

/* ---- memo (lineage_memo.c) ---- */
/* The anchor block and the last record line this store last verified or wrote
 * with its key, by their exact bytes: the same bytes read again are not parsed
 * or MAC'd again; any other bytes are checked in full. */
struct aidp_lineage_memo;
struct aidp_lineage_memo *aidp_lineage_memo_new(void);
void aidp_lineage_memo_free(struct aidp_lineage_memo *m);
/* aidp_lineage_anchor_parse with the store's key, through the memo. */
int aidp_lineage_anchor_check(const struct aidp_lineage *lg, const char *buf, size_t len,
                              struct aidp_lineage_anchor *a, aidp_error *err);
/* aidp_lineage_record_scan with the store's key (line without its '\n'),
 * through the memo. */
int aidp_lineage_line_check(const struct aidp_lineage *lg, const char *line, size_t len,
                            struct aidp_lineage_record *rec, aidp_error *err);
/* Bytes this store made with its key (an anchor block it wrote and synced, a
 * record line it wrote), kept as checked. */
void aidp_lineage_memo_anchor(const struct aidp_lineage *lg, const char *buf, size_t len,
                              const struct aidp_lineage_anchor *a);
void aidp_lineage_memo_line(const struct aidp_lineage *lg, const char *line, size_t len,
                            const struct aidp_lineage_record *rec);
/* The process's warm memo (aidp_lineage_key_warm_fork): _keep_warm takes the
 * store's memo as it, with the store's key; _adopt_warm starts a store's memo
 * from it when the store has the same key (any other key: nothing). */
void aidp_lineage_memo_keep_warm(struct aidp_lineage *lg);
void aidp_lineage_memo_adopt_warm(struct aidp_lineage *lg);

/* mkdir -p of path's parent directory; new directories get `mode`. */
int aidp_lineage_make_parents(const char *path, mode_t mode, aidp_error *err);
/* fsync of path's parent directory: 0 or -errno. */
int aidp_lineage_fsync_dir_of(const char *path);
/* The whole range at off, or -EIO when the file is shorter (it shrank under us:
 * not under our lock), or -errno. */
int aidp_lineage_pread_exact(int fd, void *buf, size_t len, off_t off);
/* Read and check the anchor at path; a missing anchor is *have = false. */
int aidp_lineage_load_anchor(const char *path, const unsigned char *key,
                             struct aidp_lineage_anchor *a, bool *have, aidp_error *err);
/* The same for the store's own anchor, through its memo. */
int aidp_lineage_load_anchor_of(const struct aidp_lineage *lg, struct aidp_lineage_anchor *a,
                                bool *have, aidp_error *err);

/* Shared by the appends (lineage_append.c) and rotation (lineage_rotate.c). */
/* Open and lock the log (the append lock, and first the sync lock when sync_too;
 * held until the fd is closed); a log renamed away while we waited for the lock is
 * let go and the new one opened. */
int aidp_lineage_lock(const struct aidp_lineage *lg, bool sync_too, int *ret_fd, bool *created,
                      off_t *size, aidp_error *err);
/* The locked log's tail against its anchor; *last its last record (which may
 * await its commit), *anchored the anchored record's seq (NULL: not wanted). */
int aidp_lineage_check_tail(const struct aidp_lineage *lg, int fd, off_t *size,
                            struct aidp_lineage_record *last, uint64_t *anchored, aidp_error *err);
/* Both: the locked log and its last record. */
int aidp_lineage_lock_tail(const struct aidp_lineage *lg, bool sync_too, int *ret_fd, bool *created,
                           off_t *size, struct aidp_lineage_record *last, uint64_t *anchored,
                           aidp_error *err);
/* A whole new anchor file: temporary, fsync, rename, fsync of the directory. */
int aidp_lineage_replace_anchor(const struct aidp_lineage *lg, const char *buf, size_t len);
/* The committed record's head to the witnesses (bounded, never failing). */
void aidp_lineage_witness_publish(struct aidp_lineage *lg, const struct aidp_lineage_anchor *a);

/* ---- group commit (lineage_commit.c) ---- */
/* The sync lock (an OFD lock on the log's fd): blocking; 0 or -errno. */
int aidp_lineage_sync_lock(int fd);
void aidp_lineage_sync_unlock(int fd);
/* The last complete line of the log's first size bytes (without '\n'; NULL when
 * none) and where the complete part ends. */
int aidp_lineage_read_tail(int fd, off_t size, char **line, size_t *line_len, off_t *complete_end);
/* The tail of a log against its anchor (NULL: none). */
struct aidp_lineage_tail {
        struct aidp_lineage_record last; /* seq 0 and the zero hash: no record */
        bool torn;                       /* bytes after the last complete line */
        off_t complete_end;              /* where the last complete line ends */
        off_t anchored_end;              /* where the anchored record ends; -1: unknown */
};
/* Under the append lock: read it and check it (aidp_lineage_tail_check). */
int aidp_lineage_tail_read(const struct aidp_lineage *lg, int fd, off_t size,
                           const struct aidp_lineage_anchor *anchor, struct aidp_lineage_tail *t,
                           aidp_error *err);
/* Under the append lock, after the tail check: the anchor beside the log, opened
 * read-write, of the fixed size (an older anchor is rewritten first). */
int aidp_lineage_open_anchor(const struct aidp_lineage *lg, int *ret_afd);
/* Under the sync lock (with the append lock too when have_append): commit every
 * complete record of the log fd, anchor afd. On a failed fdatasync the log is cut
 * back to the anchored record. 0 or -errno; *what names the step for messages. */
int aidp_lineage_group_sync(const struct aidp_lineage *lg, int fd, int afd, bool have_append,
                            const char **what);
/* Under the sync lock: the state of the record with head `head` written at
 * [start, end) of the log, or -errno. */
enum {
        AIDP_LINEAGE_RECORD_COMMITTED,
        AIDP_LINEAGE_RECORD_PENDING,
        AIDP_LINEAGE_RECORD_DROPPED,
};
int aidp_lineage_record_state(const struct aidp_lineage *lg, int fd, int afd,
                              const struct aidp_lineage_anchor *head, off_t start, off_t end);
/* Take the sync lock and see the record committed: by an earlier group's sync, or
 * by syncing the log now. 0; -errno with *what "dropped" when another syncer's
 * failure cut the record away, else the step that failed. */
int aidp_lineage_commit_record(const struct aidp_lineage *lg, int fd, int afd,
                               const struct aidp_lineage_anchor *head, off_t start, off_t end,
                               const char **what);
