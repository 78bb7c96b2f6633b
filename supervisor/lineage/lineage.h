#pragma once
/* The lineage store: key, lock, append, fsync, anchor; the only file I/O of the
 * lineage log. The record format, event builders and verifier are pure code in
 * codec/lineage_codec.h. */
#include "supervisor/lineage/codec/lineage_codec.h"

/* ---- the store (file I/O) -------------------------------------------------------- */

struct aidp_lineage_options {
        const char *path;          /* NULL: $AIDP_LINEAGE_FILE, else the default */
        const char *key_path;      /* NULL: $AIDP_LINEAGE_KEY, else the default */
        const char *syslog_socket; /* NULL: $AIDP_SYSLOG_SOCKET, else /dev/log */
        bool create_key;           /* create the key when missing (the supervisor) */
        bool need_key;             /* fail when the key cannot be loaded */
        /* Publish each committed record's chain head to the witnesses of
         * witness_config (NULL: $AIDP_WITNESS_CONFIG, else
         * /etc/aidp/witnesses.yaml; a missing file means none). */
        bool publish_heads;
        const char *witness_config;
        /* Commit each append on its own, holding the log locked from the write to
         * the anchor, as aidp did before group commit (docs/lineage.md, "Group
         * commit"); for benchmarks. A TPM witness always commits this way. */
        bool serial_commit;
};

struct aidp_lineage;

int aidp_lineage_open(struct aidp_lineage **ret, const struct aidp_lineage_options *opt,
                      aidp_error *err);
void aidp_lineage_free(struct aidp_lineage *lg);
const char *aidp_lineage_path(const struct aidp_lineage *lg);
/* Whether a commit publishes heads to witnesses: on threads that may outlive
 * it (a TPM or file witness past its timeout). */
bool aidp_lineage_has_witnesses(const struct aidp_lineage *lg);
/* The log aidp_lineage_open() would use for options.path = path. */
const char *aidp_lineage_path_for(const char *path);
const char *aidp_lineage_anchor_path(const struct aidp_lineage *lg);
/* The key, or NULL when it was not loaded (need_key false and no key readable). */
const unsigned char *aidp_lineage_key(const struct aidp_lineage *lg);

/* Append ev durably: under an exclusive lock on the log, checks the tail against the
 * anchor and writes one line (fsyncing the directory if the log is new); then, under
 * the log's sync lock, commits it: fdatasync of the log and rewrite of the anchor,
 * shared with every concurrent append of any process (docs/lineage.md, "Group
 * commit"). Returns 0 only when both are on disk. On any failure the record is not in
 * the log (a partial write is cut back; a failed fdatasync cuts the log back to its
 * last commit, failing every append not committed yet) and err has
 * AIDP_EXIT_LINEAGE. ev gains the aidp_* chain members. Security events (OTHER,
 * ABORT, network denials) are also sent to syslog, best effort. */
int aidp_lineage_append(struct aidp_lineage *lg, json_object *ev, aidp_error *err);

/* The same append in two halves, so that its syncs overlap other work (the run's
 * START while the run is prepared). _begin checks and writes the line, then leaves
 * the commit to a helper thread; _commit joins it: 0 when the record is committed,
 * else it fails and the record is not in the log. _commit frees p and must follow a
 * successful _begin. In between the log is unlocked (with serial_commit or a TPM
 * witness it stays locked, and nothing else may append to it). */
struct aidp_lineage_pending;
int aidp_lineage_append_begin(struct aidp_lineage *lg, json_object *ev,
                              struct aidp_lineage_pending **p, aidp_error *err);
int aidp_lineage_append_commit(struct aidp_lineage_pending *p, aidp_error *err);

/* Commit the records past the anchor that no living append will commit (an
 * appender killed between its line's write and its commit): under the log's
 * locks, fdatasync of the log and the anchor's rewrite (a failed fdatasync cuts
 * the log back to the anchored record). gc does this before it trusts an end
 * record it found in the log. 0, or < 0 with AIDP_EXIT_LINEAGE. */
int aidp_lineage_commit_pending(struct aidp_lineage *lg, aidp_error *err);

/* How many times this process fdatasync'd a log to commit records (tests,
 * benchmarks: fewer than its records when appends share their commits). */
uint64_t aidp_lineage_log_syncs(void);
/* Reads of the anchor or the last record answered by a store's memo of bytes
 * it verified or wrote (lineage_memo.c), in this process (tests). */
uint64_t aidp_lineage_memo_hits(void);

/* Archive the log and its anchor as <log>.<log id> (+ .anchor) beside it and
 * start a new log whose first record links to the old log's last head
 * (docs/lineage.md, "Rotation"). The old log must verify. *archive: the
 * archive's path (malloc'd). Needs the key; publishes the new head. */
int aidp_lineage_rotate(struct aidp_lineage *lg, char **archive, aidp_error *err);

/* Verify a log file against the anchor beside it (anchor_path NULL: <path>.anchor;
 * use_anchor false: no anchor). Returns < 0 with AIDP_EXIT_LINEAGE when a file cannot
 * be read, else 0 with the verdict in *v. */
int aidp_lineage_verify_file(const char *path, const char *anchor_path, bool use_anchor,
                             const unsigned char *key, struct aidp_lineage_verify *v,
                             aidp_error *err);
/* The same, keeping every record's line hash in v->hashes (collect), for a
 * comparison with witnesses; aidp_lineage_verify_release frees them. */
int aidp_lineage_verify_file_collect(const char *path, const char *anchor_path, bool use_anchor,
                                     const unsigned char *key, bool collect,
                                     struct aidp_lineage_verify *v, aidp_error *err);

/* A process that serves many runs (aidp-supervisor serve) keeps the host key
 * of key_path (NULL: as aidp_lineage_open picks it; created when missing) in
 * one locked page that is never dumped, read once. aidp_lineage_key_load still
 * opens the file and makes every check each time; it reads the bytes again
 * only when the file is not the one preloaded (inode, size, times). 0 or < 0. */
int aidp_lineage_key_preload(const char *key_path, aidp_error *err);
/* In a process forked from the one that preloaded the key (a daemon's idle
 * worker, before its request): one HMAC with the key and one SHA-256, so that
 * the copy-on-write faults of the OpenSSL contexts it inherited are taken
 * now, not in the run's START; and the anchor and last record of the log at
 * log_path (NULL: as aidp_lineage_open picks it) checked into the process's
 * warm memo, which stores opened later with the same key start from (their
 * tail check then skips those same bytes' parse and HMACs). All on a thread
 * that is joined, whose stack and malloc arena the run's START thread then
 * reuses. Nothing without a preloaded key. */
void aidp_lineage_key_warm_fork(const char *log_path);
/* Load/create the key file with the permission checks of docs/lineage.md. */
int aidp_lineage_key_load(const char *path, bool create, unsigned char key[AIDP_LINEAGE_KEY_LEN],
                          aidp_error *err);
