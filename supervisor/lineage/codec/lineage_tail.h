#pragma once
/* The pure rules of the lineage store (supervisor/lineage/lineage_append.c): the
 * fixed-size anchor block, where the last complete line of a log ends, whether a
 * log's tail may be appended to given its anchor, and what a record tells the
 * SIEM. Buffers in, values out; unit-tested in tests/unit/test_lineage_tail.c. */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor/lineage/codec/lineage_codec.h"

/* aidp_prev of the first record, and the hash an empty log's anchor names. */
#define AIDP_LINEAGE_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* The anchor of a log without records: seq 0, the zero hash. */
void aidp_lineage_anchor_genesis(struct aidp_lineage_anchor *a);

/* The anchor line padded with spaces before its '\n' to exactly
 * AIDP_LINEAGE_ANCHOR_SIZE bytes, so that it is rewritten in place with one
 * write. 0, -ENOMEM, or -E2BIG when the line does not fit. */
int aidp_lineage_anchor_block(const struct aidp_lineage_anchor *a,
                              const unsigned char key[AIDP_LINEAGE_KEY_LEN],
                              char out[AIDP_LINEAGE_ANCHOR_SIZE]);

/* The last complete line in buf, the last len bytes of a log (all of it when
 * whole). 1: found, *start and *n give the line without its '\n', *end is where
 * the complete part of buf ends (just past that '\n'); 0: the log has no complete
 * line (whole is true); -EAGAIN: buf is too short to tell, read a longer tail. */
int aidp_lineage_last_line(const char *buf, size_t len, bool whole, size_t *start, size_t *n,
                           size_t *end);

/* The k-th last line (k >= 1) of buf, the last len bytes of a log up to the end of
 * its last complete line (all of it when whole). 1: found, *start and *n give the
 * line without its '\n'; 0: the log has fewer lines (whole is true); -EAGAIN: buf
 * is too short to tell, read a longer tail. */
int aidp_lineage_tail_line(const char *buf, size_t len, bool whole, uint64_t k, size_t *start,
                           size_t *n);

/* NULL when a log whose last record is `last` (seq 0 and the zero hash when it
 * has none) and that has a torn line after it when `torn`, may be appended to
 * under `anchor` (NULL: the log has no anchor); else why not. The tail must be
 * what the anchor says was committed last, or up to AIDP_LINEAGE_UNCOMMITTED_MAX
 * records past it (appends awaiting their group commit, or left by a crash),
 * the first of which follows the anchored record: `next` is that record (last
 * itself when it is one past; NULL when it could not be read). */
const char *aidp_lineage_tail_check(const struct aidp_lineage_record *last, bool torn,
                                    const struct aidp_lineage_anchor *anchor,
                                    const struct aidp_lineage_record *next);

/* What a security event (a denial, an abort, or a run with denied egress) tells
 * the SIEM. Strings point into the event, or are "". */
enum aidp_lineage_alert_kind {
        AIDP_ALERT_DENIED,        /* eventType OTHER: the run was refused */
        AIDP_ALERT_ABORT,         /* eventType ABORT */
        AIDP_ALERT_EGRESS_DENIED, /* any other event with aidp_network.denied > 0 */
        AIDP_ALERT_MAX
};
struct aidp_lineage_alert {
        enum aidp_lineage_alert_kind kind;
        const char *run_id, *job, *event_type, *reason;
        uint64_t egress_denied;
};
/* false when ev is no security event (nothing to report). */
bool aidp_lineage_alert_of(json_object *ev, struct aidp_lineage_alert *ret);
/* "DENIED", "ABORT", "EGRESS_DENIED": the syslog MSGID. */
const char *aidp_lineage_alert_msgid(enum aidp_lineage_alert_kind k);
/* The message text: "run denied by policy", ... */
const char *aidp_lineage_alert_text(enum aidp_lineage_alert_kind k);
