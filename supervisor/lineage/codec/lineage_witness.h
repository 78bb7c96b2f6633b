#pragma once
/* Chain heads and witnesses (docs/lineage.md, "Witnesses"). Pure: no I/O.
 *
 * After each durable record the supervisor publishes the log's head (log id,
 * sequence number, the record's line hash) with a MAC under the host key to
 * witnesses outside the log's reach: syslog (forwarded off the host), an
 * append-only file on another filesystem. `aidp lineage verify --witness`
 * compares the log with what a witness saw: a witness that knows a later
 * record than the log ends with is a rollback; one that never saw this log's
 * id is a substituted log; one that saw records of a log that now has none is
 * an emptied log; a record that differs from the witnessed one is a rewrite. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor/lineage/codec/lineage_codec.h"

/* A head in syslog: MSGID HEAD and the aidp SD element (seclog.h):
 *   <85>1 TIME HOST aidp PID HEAD [aidp@32473 log="…" seq="7" hash="…" mac="…"] … */
#define AIDP_LINEAGE_HEAD_MSGID "HEAD"
#define AIDP_LINEAGE_HEAD_MARK  "HEAD [aidp@32473 "

struct aidp_lineage_head {
        char log[AIDP_LINEAGE_LOG_ID_HEX + 1];
        uint64_t seq;
        char hash[AIDP_LINEAGE_HASH_HEX + 1]; /* sha256 of record `seq`'s line */
        char mac[AIDP_LINEAGE_HASH_HEX + 1];  /* HMAC-SHA256 of the three, host key */
};

/* Fill h->mac. 0 or -EIO. */
int aidp_lineage_head_sign(struct aidp_lineage_head *h,
                           const unsigned char key[AIDP_LINEAGE_KEY_LEN]);
bool aidp_lineage_head_mac_ok(const struct aidp_lineage_head *h,
                              const unsigned char key[AIDP_LINEAGE_KEY_LEN]);
/* One JSON line with its '\n'. Length, or -ENOSPC. */
int aidp_lineage_head_json(const struct aidp_lineage_head *h, char *buf, size_t size);

/* One line of a witness's record: a JSON head line (a witness file), or a
 * syslog line with MSGID HEAD and its [aidp@32473 ...] element (a syslog archive).
 * 1: a head; 0: a line that holds none (other syslog traffic); -EINVAL: a
 * malformed head. */
int aidp_lineage_head_parse(const char *line, size_t len, struct aidp_lineage_head *h);

/* ---- heads on exported events ("aidp lineage export") ---------------------------- */

/* The run facet `aidp_chain_head` {log, seq, hash, mac} that `aidp lineage
 * export` puts on each event it sends: the head of the record the event came
 * from, so that the OpenLineage consumer is a witness too. Its _schemaURL is the
 * facet's section of docs/lineage.md. */
#define AIDP_LINEAGE_HEAD_FACET "aidp_chain_head"
void aidp_lineage_set_head_facet(json_object *ev, const struct aidp_lineage_head *h);
/* The head an exported event carries. 1: found; 0: the event has none; -EINVAL:
 * a malformed one. */
int aidp_lineage_head_of_event(json_object *ev, struct aidp_lineage_head *h);

/* ---- rotation ----------------------------------------------------------------------- */

/* The first record of a log started by `aidp lineage rotate` names its
 * predecessor: the run facet `aidp_rotation` {previous: {log, seq, hash, mac,
 * file}}, the old log's last head (mac as a witness would have it) and the name
 * of the archived log in the same directory. */
#define AIDP_LINEAGE_ROTATION_FACET   "aidp_rotation"
#define AIDP_LINEAGE_ARCHIVE_NAME_MAX 255
struct aidp_lineage_link {
        struct aidp_lineage_head prev;
        char file[AIDP_LINEAGE_ARCHIVE_NAME_MAX + 1]; /* a plain file name, no '/' */
};
void aidp_lineage_set_rotation(json_object *ev, const struct aidp_lineage_link *l);
/* 1: ev names a predecessor; 0: it does not; -EINVAL: a malformed link. */
int aidp_lineage_rotation_of(json_object *ev, struct aidp_lineage_link *l);

struct aidp_lineage_witness_result;

/* ---- the TPM counter witness ------------------------------------------------------------ */

/* The run facet `aidp_tpm` {nvIndex: "0x01500016", counter: N}: the value the TPM
 * NV counter has once this record is durable (docs/lineage.md, "TPM counter"). */
#define AIDP_LINEAGE_TPM_FACET "aidp_tpm"
#define AIDP_LINEAGE_TPM_MARK  "\"" AIDP_LINEAGE_TPM_FACET "\":{"
void aidp_lineage_set_tpm_binding(json_object *ev, uint32_t nv_index, uint64_t counter);
/* 1: ev binds a counter (*nv_index, *counter); 0: it does not; -EINVAL: malformed. */
int aidp_lineage_tpm_binding_of(json_object *ev, uint32_t *nv_index, uint64_t *counter);

/* The log against the TPM counter: `bound` is the counter value the last record
 * binding one (record `bound_seq`, 0: none) names, `records` the log's length;
 * `readable` false when the counter was never incremented. */
void aidp_lineage_tpm_compare(uint64_t records, uint64_t bound_seq, uint64_t bound, bool readable,
                              uint64_t counter, struct aidp_lineage_witness_result *r);

/* The log as verify read it: its id ("" for a log of an older aidp) and the
 * line hash of each record, hashes[i] being record i + 1. */
struct aidp_lineage_log_view {
        const char *log;
        uint64_t n;
        const char (*hashes)[AIDP_LINEAGE_HASH_HEX + 1];
        /* the logs this one follows by rotation (their heads are no sign of a
         * substituted log) */
        const char (*prior)[AIDP_LINEAGE_LOG_ID_HEX + 1];
        size_t nprior;
};

enum aidp_lineage_witness_verdict {
        AIDP_WITNESS_CONFIRMED,   /* every head of this log matches it */
        AIDP_WITNESS_SILENT,      /* the witness holds no head at all */
        AIDP_WITNESS_ROLLBACK,    /* it saw a later record than the log has */
        AIDP_WITNESS_SUBSTITUTED, /* it never saw this log's id */
        AIDP_WITNESS_EMPTIED,     /* it saw records; the log has none */
        AIDP_WITNESS_REWRITTEN,   /* a record differs from the one it saw */
};

struct aidp_lineage_witness_result {
        enum aidp_lineage_witness_verdict verdict;
        uint64_t first_affected;   /* the first record the finding concerns (0: none) */
        uint64_t heads;            /* authentic heads of this log */
        uint64_t last_seen;        /* the highest record of this log the witness saw */
        uint64_t forged;           /* heads whose MAC is wrong (ignored) */
        uint64_t unseen;           /* records of the log the witness has no head for */
        uint64_t gap_from, gap_to; /* the first stretch of those */
        char reason[640];
};

/* Compare; heads in any order, duplicates allowed. key NULL: MACs unchecked. */
void aidp_lineage_witness_compare(const struct aidp_lineage_log_view *lv,
                                  const struct aidp_lineage_head *heads, size_t n,
                                  const unsigned char *key, struct aidp_lineage_witness_result *r);
/* true for the verdicts that mean tampering. */
bool aidp_lineage_witness_alarm(enum aidp_lineage_witness_verdict v);
