#pragma once
/* Column-level views (issue 18): the CONTRACT shared by the branches that
 * build them. Pure layer `views/` (library aidp_views: common, OpenSSL EVP,
 * libcsv, json-c, libyaml; no syscalls). Residency and the sealed codec link
 * it; nothing in it opens a file.
 *
 *   schema    what the sealer says the data is: per file pattern a format
 *             and per column its labels. Parsed from `aidp seal --schema
 *             FILE`, carried in the authenticated sealed header (format 3,
 *             TLV type 14, the canonical encoding below), shown by inspect.
 *   view      what a role may see: per label (or column) a transform.
 *             Parsed from access.yaml `views:`, chosen by the policy
 *             decision, resolved against a file's schema into one transform
 *             per column (aidp_view_resolve).
 *   viewer    the streaming engine: decrypted bytes of one file in, the
 *             transformed file out, raw values of every non-raw column
 *             handed to a callback (the output leak scan's value set) and
 *             never written anywhere else.
 *
 * Ownership: every struct here owns its strings (heap); *_free releases and
 * wipes. Errors: aidp_error with status AIDP_EXIT_CONFIG for schema/view
 * files (FILE:LINE:COL: path: message) and AIDP_EXIT_DATA for data that does
 * not parse (DATASET/PATH:ROW:COL: message), errno EBADMSG for both. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define AIDP_VIEW_LABEL_MAX          63 /* [a-z0-9][a-z0-9._-]* */
#define AIDP_VIEW_LABELS_MAX         8  /* per column */
#define AIDP_VIEW_COLUMNS_MAX        1024
#define AIDP_VIEW_FILES_MAX          64 /* file patterns per schema */
#define AIDP_VIEW_DOMAIN_MAX         63 /* token domain, same alphabet as labels */
#define AIDP_VIEW_BANDS_MAX          32
#define AIDP_VIEW_MASK_WITH_MAX      32    /* bytes of a mask's fixed replacement */
#define AIDP_VIEW_SCHEMA_ENCODED_MAX 49152 /* fits the 64 KiB header body */

/* ---------------------------------------------------------------- schema */

enum aidp_view_format { AIDP_VIEW_CSV = 1, AIDP_VIEW_JSONL = 2 };

struct aidp_schema_column {
        char *name; /* CSV: the header cell (exact, case-sensitive);
                      * JSONL: an RFC 6901 JSON pointer ("/patient/name") */
        char *labels[AIDP_VIEW_LABELS_MAX];
        size_t n_labels;
};

struct aidp_schema_file {
        // fnmatch glob (FNM_PATHNAME) on the path inside the dataset, e.g.
        // "patients/*.csv"; first match wins
        char *pattern;
        enum aidp_view_format format;
        struct aidp_schema_column *columns;
        size_t n_columns;
};

struct aidp_schema {
        struct aidp_schema_file *files;
        size_t n_files;
};

// schema.yaml:
//   apiVersion: aidp/v1
//   kind: Schema
//   files:
//     - pattern: "patients/*.csv"
//       format: csv                     # csv (RFC 4180, header row) | jsonl
//       columns:
//         name: [pii.direct]
//         birth_date: [pii.quasi]
//     - pattern: "events/*.jsonl"
//       format: jsonl
//       columns:
//         /patient/email: [pii.direct]
// Strict (common/yaml.h): unknown keys, bad labels, duplicate columns are
// errors with positions.
int aidp_schema_parse_yaml(const char *buf, size_t len, const char *file, struct aidp_schema *out,
                           aidp_error *err);
/* Canonical bytes (compact JSON, files in given order, columns in given
 * order, labels sorted and unique): decode(encode(s)) == s and encoding is
 * deterministic, so the header is canonical. */
int aidp_schema_encode(const struct aidp_schema *s, uint8_t **buf, size_t *len, aidp_error *err);
int aidp_schema_decode(const uint8_t *buf, size_t len, struct aidp_schema *out, aidp_error *err);
void aidp_schema_free(struct aidp_schema *s);
/* The first file entry whose pattern matches relpath ("patients/a.csv"), or NULL. */
const struct aidp_schema_file *aidp_schema_match(const struct aidp_schema *s, const char *relpath);
/* Whether mine keeps every column label of old as runs would apply it
 * (aidp seal --derived-from): for each labelled entry of old, each entry of
 * mine that may match one of its files, up to the first that surely matches
 * all of them, has the same format and the old columns with at least their
 * labels, and such a covering entry exists (an unlabelled entry shadowing a
 * labelled one is refused). 0, or -1 and msg ("drops label L of column C ..."). */
int aidp_schema_keeps_labels(const struct aidp_schema *old, const struct aidp_schema *mine,
                             char *msg, size_t len);

/* ------------------------------------------------------------ transforms */

enum aidp_xform_kind {
        AIDP_XF_RAW = 0,
        AIDP_XF_TOKENIZE,   /* mode hmac (one-way) or siv (reversible) */
        AIDP_XF_MASK,       /* keep first/last N characters (UTF-8 aware) */
        AIDP_XF_GENERALIZE, /* date→year|month, number→bucket, prefix N, bands */
        AIDP_XF_NULL,       /* the column stays, every value empty / JSON null */
        AIDP_XF_DROP,       /* the column disappears */
};

enum aidp_tokenize_mode { AIDP_TOK_HMAC = 1, AIDP_TOK_SIV = 2 };
enum aidp_generalize_kind {
        AIDP_GEN_DATE_YEAR = 1, /* ISO 8601 date/datetime → "YYYY" */
        AIDP_GEN_DATE_MONTH,    /* → "YYYY-MM" */
        AIDP_GEN_NUMBER,        /* → bucket "[lo,hi)" of width `width` */
        AIDP_GEN_PREFIX,        /* keep the first `keep` characters (ZIP 3, postcode outward) */
        AIDP_GEN_BANDS,         /* → "lo-hi" of the band edges (ages) */
};

struct aidp_xform {
        enum aidp_xform_kind kind;
        /* TOKENIZE */
        enum aidp_tokenize_mode mode;
        char domain[AIDP_VIEW_DOMAIN_MAX + 1]; /* token domain: joins work within one */
        char key_id[65];                       /* a keys.yaml key with purpose tokenize */
        /* MASK */
        unsigned keep_first, keep_last;
        char mask_char; /* default '*' */
        /* A fixed replacement of the hidden part (the value's length stays
         * hidden); "" means one mask_char per hidden character. */
        char mask_with[AIDP_VIEW_MASK_WITH_MAX + 1];
        /* GENERALIZE */
        enum aidp_generalize_kind gen;
        double width;                      /* NUMBER */
        unsigned keep;                     /* PREFIX */
        double bands[AIDP_VIEW_BANDS_MAX]; /* BANDS: strictly increasing edges */
        size_t n_bands;
};

/* Restrictiveness for combining: DROP > NULL > TOKENIZE > MASK > GENERALIZE > RAW. */
int aidp_xform_rank(const struct aidp_xform *x);
/* "tokenize(hmac, domain=patient, key=tok-1)", "generalize(date:year)", "drop" ... */
void aidp_xform_describe(const struct aidp_xform *x, char *buf, size_t len);

/* ------------------------------------------------------------------ view */

struct aidp_view_rule {
        char *match; /* a label glob ("pii.*") in `labels`, a column name in `columns` */
        struct aidp_xform x;
};

/* access.yaml:
 *   views:
 *     research:
 *       labels:                                   # label glob → transform
 *         pii.direct: {tokenize: {mode: hmac, domain: patient, key: tok-1}}
 *         pii.quasi: drop
 *         phi: raw
 *       columns:                                  # optional, column name → transform,
 *         birth_date: {generalize: {date: year}}  #   overrides the label rules
 *         zip: {generalize: {prefix: 3}}
 *         age: {generalize: {bands: [0, 18, 40, 65]}}
 *         ssn: {mask: {keep_last: 4, char: "*"}}
 *   roles:
 *     researcher: {..., view: research}
 * A role without `view:` sees labelled columns dropped (fail closed). */
struct aidp_view {
        char *name;
        struct aidp_view_rule *labels;
        size_t n_labels;
        struct aidp_view_rule *columns;
        size_t n_columns;
};

/* Parse one view's mapping (the value under views.NAME) with the strict
 * walker; y/node are common/yaml.h's. Declared with an opaque pointer so
 * this header does not pull in libyaml: node is a yaml_node_t *. */
struct aidp_yaml;
int aidp_view_parse_node(struct aidp_yaml *y, void *node, const char *path, const char *name,
                         struct aidp_view *out, aidp_error *err);
void aidp_view_free(struct aidp_view *v);

/* One column's resolved transform for one file. */
struct aidp_column_view {
        const char *column; /* points into the schema */
        struct aidp_xform x;
};
struct aidp_file_view {
        const struct aidp_schema_file *file; /* points into the schema */
        struct aidp_column_view *columns;    /* one per schema column, same order */
        size_t n_columns;
};

/* Resolve views[0..n) (every role of the caller that grants the dataset)
 * against one schema file: per column, a `columns` rule of a view wins over
 * its `labels` rules; within one view a column with several labels takes
 * the most restrictive matching rule and a label no rule matches is DROP;
 * across views the LEAST restrictive result wins (each role grants what it
 * grants). n == 0: every labelled column DROP. Columns without labels: RAW. */
int aidp_view_resolve(const struct aidp_view *const *views, size_t n,
                      const struct aidp_schema_file *file, struct aidp_file_view *out,
                      aidp_error *err);
void aidp_file_view_free(struct aidp_file_view *fv);
/* True when every column is RAW (the file can be copied as is). */
bool aidp_file_view_is_raw(const struct aidp_file_view *fv);

/* ---------------------------------------------------------------- tokens */

/* Token keys: per key id, 32 bytes from a keys.yaml key of purpose
 * tokenize; the engine derives per domain and mode
 *   K = HKDF-SHA256(ikm = key, salt = "aidp-token-v1", info = mode || 0 || domain)
 * hmac token: "<domain>:" || base64url(HMAC-SHA256(K, value)[0..16))
 * siv token:  "<domain>~" || base64url(AES-256-SIV(K(64 bytes), ad = domain, value))
 * so tokens of different domains never collide (the prefix differs) and a
 * siv token decrypts only with its domain. An empty value stays empty. */
struct aidp_token_key {
        char key_id[65];
        uint8_t key[32];
};
struct aidp_token_keys {
        const struct aidp_token_key *keys;
        size_t n;
};
/* Reverse a siv token (aidp detokenize). Fails EBADMSG on any other token. */
int aidp_token_reverse(const struct aidp_token_keys *k, const char *key_id, const char *token,
                       char **plain, size_t *plain_len, aidp_error *err);

/* ---------------------------------------------------------------- viewer */

/* Output of the viewer, in order; return < 0 (and fill err) to stop. */
typedef int (*aidp_view_write_fn)(void *opaque, const void *buf, size_t len, aidp_error *err);
/* A raw value of a non-RAW column the job will not see (for the leak scan). */
typedef void (*aidp_view_hidden_fn)(void *opaque, const char *column, const char *label,
                                    const void *value, size_t len);
/* Many of them at once, in order (a chunk's, committed): the same as one
 * aidp_view_hidden_fn call each, cheaper for a receiver that batches. */
struct aidp_view_hidden {
        const char *column, *label;
        const void *value;
        size_t len;
};
typedef void (*aidp_view_hidden_many_fn)(void *opaque, const struct aidp_view_hidden *v, size_t n);

struct aidp_viewer;
/* where: "DATASET/relpath" for error positions (row:col 1-based). */
int aidp_viewer_new(const struct aidp_file_view *fv, const struct aidp_token_keys *keys,
                    const char *where, aidp_view_write_fn write, aidp_view_hidden_fn hidden,
                    void *opaque, struct aidp_viewer **ret, aidp_error *err);
/* Feed decrypted bytes in any chunking. Malformed input (ragged row, bad
 * quoting, invalid UTF-8, a JSONL line that is not an object, a field over
 * AIDP_VIEW_FIELD_MAX) fails with the position; nothing partial is "done". */
#define AIDP_VIEW_FIELD_MAX (16u << 20)
int aidp_viewer_feed(struct aidp_viewer *v, const void *buf, size_t len, aidp_error *err);
int aidp_viewer_finish(struct aidp_viewer *v, aidp_error *err);
/* Wipes internal buffers (they held plaintext). */
void aidp_viewer_free(struct aidp_viewer *v);
