#pragma once
/* The lineage log: an append-only file of JSON lines, one OpenLineage RunEvent per
 * line, chained and authenticated so that an auditor can tell whether any record
 * was edited, deleted, inserted, reordered or cut off (docs/lineage.md).
 *
 * Each stored line is the event object with three aidp fields appended, in this
 * order, the last one always last:
 *   ...,"aidp_seq":N,"aidp_prev":"<sha256 hex of the previous line>","aidp_hmac":"<hex>"}
 * aidp_hmac is HMAC-SHA256, with the host key, over the line's bytes with the
 * `,"aidp_hmac":"…"` member cut out (i.e. the object as it was serialized before the
 * tag was added). A separate anchor file (<log>.anchor) holds the sequence number and
 * hash of the last committed line so that whole records cut from the end are seen.
 *
 * Three layers:
 *   - event builder (lineage_event.c): pure, json-c objects in and out;
 *   - verifier (lineage_verify.c): pure, bytes + key in, verdict out; fuzzed;
 *   - store (lineage.c): key, lock, append, fsync, anchor; the only file I/O.
 */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define AIDP_LINEAGE_DEFAULT_PATH  "/var/lib/aidp/lineage.jsonl"
#define AIDP_LINEAGE_DEFAULT_KEY   "/etc/aidp/lineage.key"
#define AIDP_LINEAGE_ENV_PATH      "AIDP_LINEAGE_FILE"
#define AIDP_LINEAGE_ENV_KEY       "AIDP_LINEAGE_KEY"
#define AIDP_LINEAGE_ANCHOR_SUFFIX ".anchor"
#define AIDP_LINEAGE_ANCHOR_SIZE   256 /* the anchor line, space-padded, one sector */

/* OpenLineage identifiers. The producer names this code; custom facets point at the
 * facet's section of docs/lineage.md. */
#define AIDP_LINEAGE_PRODUCER          "https://github.com/aidp/aidp/tree/v0.1.0/supervisor"
#define AIDP_LINEAGE_SCHEMA_URL        "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
#define AIDP_LINEAGE_FACET_SCHEMA_BASE "https://github.com/aidp/aidp/blob/v0.1.0/docs/lineage.md#"
#define AIDP_LINEAGE_JOB_NAMESPACE     "aidp"

#define AIDP_LINEAGE_KEY_LEN    32
#define AIDP_LINEAGE_HASH_HEX   64 /* SHA-256 and HMAC-SHA256, lowercase hex */
#define AIDP_LINEAGE_RUN_ID_LEN 36
#define AIDP_LINEAGE_LINE_MAX   (1024 * 1024) /* one record; longer lines are refused */
#define AIDP_LINEAGE_LOG_ID_HEX 32            /* a log's random identity, 128 bits */

enum aidp_lineage_event_type {
        AIDP_LINEAGE_START,
        AIDP_LINEAGE_COMPLETE,
        AIDP_LINEAGE_FAIL,
        AIDP_LINEAGE_ABORT,
        AIDP_LINEAGE_OTHER, /* denials and other security events outside a run's life */
        AIDP_LINEAGE_EVENT_MAX
};

const char *aidp_lineage_event_type_name(enum aidp_lineage_event_type t);
/* -1 when the name is not one of the five. */
int aidp_lineage_event_type_from_name(const char *name);

/* ---- event builder (pure) ------------------------------------------------------ */

/* A fresh random (v4) UUID, lowercase, NUL-terminated. */
void aidp_lineage_run_id_new(char out[AIDP_LINEAGE_RUN_ID_LEN + 1]);
/* OpenLineage wants a UUID as runId; a supervisor run id that is not one (--run-id
 * from a scheduler, "slurm-4242.0") maps to a name-based (v5) UUID of it, the same
 * one every time. A UUID maps to itself (lowercased). */
void aidp_lineage_run_id_for(const char *run_name, char out[AIDP_LINEAGE_RUN_ID_LEN + 1]);
/* RFC 3339 UTC with milliseconds, "2024-05-01T12:34:56.789Z", from a realtime clock
 * reading in nanoseconds since the epoch. */
void aidp_lineage_format_time(char out[32], int64_t epoch_ns);

/* A RunEvent with eventType, eventTime (now), run.runId, job.namespace/name, empty
 * inputs/outputs, producer and schemaURL. NULL job_ns means AIDP_LINEAGE_JOB_NAMESPACE.
 * Returns NULL only when out of memory or when run_id/job_name is NULL. */
json_object *aidp_lineage_event_new(enum aidp_lineage_event_type type, const char *run_id,
                                    const char *job_ns, const char *job_name);
/* Overrides eventTime (tests, gc recording a past crash). */
void aidp_lineage_event_set_time(json_object *ev, int64_t epoch_ns);

/* Add a dataset to inputs/outputs; returns it (owned by ev) for the setters below. */
json_object *aidp_lineage_add_input(json_object *ev, const char *ns, const char *name);
json_object *aidp_lineage_add_output(json_object *ev, const char *ns, const char *name);
/* Dataset facets: digest ("sha256", hex) as the standard `version` facet plus
 * `aidp_digest`; classification and tags as `aidp_classification`. */
void aidp_lineage_dataset_set_digest(json_object *ds, const char *algorithm, const char *hex);
void aidp_lineage_dataset_set_classification(json_object *ds, const char *classification,
                                             const char *const *tags, size_t ntags);

/* A run facet `name` (created with _producer and _schemaURL if absent); the caller
 * may add members to the returned object, which ev owns. */
json_object *aidp_lineage_run_facet(json_object *ev, const char *name);

/* The same for a dataset facet of ds (an input or output of the event). */
json_object *aidp_lineage_dataset_facet(json_object *ds, const char *name);

/* The standard OpenLineage `parent` run facet (ParentRunFacet 1-2-0) for a run
 * started by a scheduler: parent.job is {scheduler, "JOB.STEP"} (or "JOB" without a
 * step), root.job is {scheduler, "JOB"}; their runIds are name-based UUIDs of
 * "scheduler:name", so every step of a job points at the same root run. The raw ids
 * also go into the `aidp_scheduler` facet. step may be NULL. */
#define AIDP_LINEAGE_PARENT_SCHEMA_URL                                                             \
        "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
void aidp_lineage_set_parent(json_object *ev, const char *scheduler, const char *job,
                             const char *step);

/* The aidp run facets. Strings may be NULL (member omitted). */
void aidp_lineage_set_caller(json_object *ev, uint32_t uid, uint32_t gid, const char *user,
                             const char *scheduler_job);
void aidp_lineage_set_host(json_object *ev, const char *hostname, const char *region);
void aidp_lineage_set_profile(json_object *ev, const char *name, const char *digest);
/* Appends one decision to aidp_policy.decisions; `decision` is "allow" or "deny". */
void aidp_lineage_add_decision(json_object *ev, const char *subject, const char *decision,
                               const char *rule, const char *reason);
/* Appends one denied flow to aidp_network.denials and bumps aidp_network.denied. */
void aidp_lineage_add_network_denial(json_object *ev, const char *protocol, const char *dst,
                                     unsigned port, uint64_t count);

struct aidp_lineage_resources {
        uint64_t peak_memory_bytes;
        uint64_t cpu_usec; /* user + system, from the cgroup */
        uint64_t wall_usec;
        /* false: written as null (the cgroup could not tell) */
        bool peak_memory_known, cpu_known;
        const char *error; /* why a value is unknown, or NULL */
};
void aidp_lineage_set_resources(json_object *ev, const struct aidp_lineage_resources *r);

/* How the job ended: exit code (or -1), terminating signal (or 0), the supervisor's
 * own exit status, and a short reason ("exited", "signal", "timeout", "oom", ...). */
void aidp_lineage_set_exit(json_object *ev, int exit_code, int term_signal, int status,
                           const char *reason);

struct aidp_lineage_shred {
        uint64_t files;
        uint64_t bytes;
        bool verified;
        uint64_t duration_usec;
        const char *const *removed; /* what was torn down: "cgroup ...", "netns ..." */
        size_t nremoved;
};
void aidp_lineage_set_shred(json_object *ev, const struct aidp_lineage_shred *s);

/* Required OpenLineage RunEvent members present and well-typed (eventType one of the
 * five, eventTime, run.runId a UUID, job.namespace, job.name, producer, schemaURL,
 * inputs/outputs arrays if present). On failure names the member in *err. */
int aidp_lineage_event_check(json_object *ev, aidp_error *err);

/* ---- line format and verification (pure) --------------------------------------- */

struct aidp_lineage_anchor {
        uint64_t seq;                          /* 0: empty log */
        char hash[AIDP_LINEAGE_HASH_HEX + 1];  /* sha256 of line `seq` */
        char log[AIDP_LINEAGE_LOG_ID_HEX + 1]; /* the log's identity; "" in older anchors */
};

/* One stored line (without its '\n'), split and checked against the format. With a
 * key the tag is checked too. Fills seq, prev, the line's own hash, and (if ret_event
 * is non-NULL) the parsed object. Errors are AIDP_EXIT_FAILED with a reason. */
struct aidp_lineage_record {
        uint64_t seq;
        char prev[AIDP_LINEAGE_HASH_HEX + 1];
        char hash[AIDP_LINEAGE_HASH_HEX + 1];
        char log[AIDP_LINEAGE_LOG_ID_HEX + 1]; /* aidp_log; "" in records of older logs */
};
int aidp_lineage_record_parse(const char *line, size_t len, const unsigned char *key,
                              struct aidp_lineage_record *rec, json_object **ret_event,
                              aidp_error *err);
/* The same without the event: a line in the writer's spelling (chain members last)
 * is read by position and its tag checked with one HMAC, without a JSON parse;
 * any other line takes aidp_lineage_record_parse. */
int aidp_lineage_record_scan(const char *line, size_t len, const unsigned char *key,
                             struct aidp_lineage_record *rec, aidp_error *err);
/* The chain members of a line in the writer's spelling, read by position, and the
 * line's hash; the tag is not checked. 1, or 0 when the line is not in that shape. */
int aidp_lineage_line_chain(const char *line, size_t len, struct aidp_lineage_record *rec);

/* Appends commit in groups (docs/lineage.md, "Group commit"): at most this many
 * records may lie past the anchor, waiting for their commit or left so by a crash.
 * An append that would exceed it commits the others first. */
#define AIDP_LINEAGE_UNCOMMITTED_MAX 64

/* Serialize ev (which must not yet carry aidp_* chain members) as a stored line with
 * seq/prev/tag and a trailing '\n'. Returns a malloc'd buffer, length in *len. */
char *aidp_lineage_record_format(json_object *ev, uint64_t seq, const char *prev_hex,
                                 const unsigned char key[AIDP_LINEAGE_KEY_LEN], size_t *len,
                                 aidp_error *err);
/* The same with the log's identity (`"aidp_log":"<32 hex>"` before aidp_seq), which
 * the tag then covers: a record of another log does not verify as one of this log.
 * NULL log_id: the older format without it. */
char *aidp_lineage_record_format_log(json_object *ev, const char *log_id, uint64_t seq,
                                     const char *prev_hex,
                                     const unsigned char key[AIDP_LINEAGE_KEY_LEN], size_t *len,
                                     aidp_error *err);
/* A fresh random log identity (lowercase hex). 0, or -EIO when no randomness. */
int aidp_lineage_log_id_new(char out[AIDP_LINEAGE_LOG_ID_HEX + 1]);

/* sha256(line) as lowercase hex. */
void aidp_lineage_hash_line(const char *line, size_t len, char out[AIDP_LINEAGE_HASH_HEX + 1]);

/* Anchor file content: one JSON line {"seq":N,"hash":"…","hmac":"…"}. */
char *aidp_lineage_anchor_format(const struct aidp_lineage_anchor *a,
                                 const unsigned char key[AIDP_LINEAGE_KEY_LEN], size_t *len);
int aidp_lineage_anchor_parse(const char *buf, size_t len, const unsigned char *key,
                              struct aidp_lineage_anchor *a, aidp_error *err);

/* Streaming verifier: feed every line in order, then finish (or release).
 * With a key, a record whose chain members sit last in the writer's spelling
 * and whose tag verifies is read by position, without a JSON parse: the tag
 * proves the writer made those bytes, and the writer checked the event before
 * it wrote it. Any other record takes the full parse, which names the fault. */
struct aidp_lineage_mac;
struct aidp_lineage_verify {
        /* inputs */
        const unsigned char *key; /* NULL: chain only, tags unchecked */
        bool has_anchor;          /* false: no anchor (end cuts unseen) */
        struct aidp_lineage_anchor anchor;
        /* results */
        uint64_t records;    /* good records so far */
        uint64_t bad_line;   /* first bad line (1-based), 0 if none */
        char reason[512];    /* why bad_line is bad, or a note when good */
        bool anchor_seen;    /* the anchored record was met with the right hash */
        bool torn_tail;      /* last line had no '\n' and lay past the anchor */
        uint64_t anchor_lag; /* records past the anchor (commit under way, or a crash) */
        /* state */
        uint64_t line_no;
        char prev[AIDP_LINEAGE_HASH_HEX + 1];
        char log[AIDP_LINEAGE_LOG_ID_HEX + 1]; /* the first record's log identity */
        char last_hash[AIDP_LINEAGE_HASH_HEX + 1];
        /* collect: every good record's line hash into hashes (for --witness);
         * free with aidp_lineage_verify_release */
        bool collect;
        char (*hashes)[AIDP_LINEAGE_HASH_HEX + 1];
        uint64_t hashes_cap;
        /* the keyed HMAC and SHA-256 contexts, made at the first line and freed by
         * _finish or _release */
        struct aidp_lineage_mac *mac;
};
/* anchor is copied; NULL for none. key is kept by pointer. */
void aidp_lineage_verify_init(struct aidp_lineage_verify *v, const unsigned char *key,
                              const struct aidp_lineage_anchor *anchor);
/* One line without its '\n'; `terminated` says whether a '\n' followed it. Returns
 * false once a bad line has been found (further lines are ignored). */
bool aidp_lineage_verify_line(struct aidp_lineage_verify *v, const char *line, size_t len,
                              bool terminated);
/* Whole-log checks (anchor). Returns true when the log verified. */
bool aidp_lineage_verify_finish(struct aidp_lineage_verify *v);
void aidp_lineage_verify_release(struct aidp_lineage_verify *v);
/* Convenience: a whole buffer. */
bool aidp_lineage_verify_buffer(struct aidp_lineage_verify *v, const char *buf, size_t len);

/* Removes the aidp_seq/aidp_prev/aidp_hmac members: a plain OpenLineage RunEvent. */
void aidp_lineage_strip_chain(json_object *ev);
