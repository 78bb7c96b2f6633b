#pragma once
/* Sealed dataset format, versions 2 to 4 (version 1 still read): the header model, its byte encoding
 * (sealed_header.c), the descriptive fields (sealed_meta.c), and the
 * nonce/AAD/digest rules; the tree manifest is sealed_manifest.h (included
 * here, codec sealed_manifest.c). Pure code: buffers in, values
 * out; no syscalls, no crypto calls except SHA-256 through EVP. The normative
 * description is docs/sealed-format.md; keep the two in step.
 *
 * File layout (all integers big-endian):
 *   prefix   16 bytes   "AIDPSEAL" | u16 version=2|3|4 (1) | u16 reserved=0 | u32 body_len
 *   body     body_len   TLV records: u16 type | u16 length | value
 *   tag      16 bytes   AES-256-GCM tag over prefix+body (empty plaintext)
 *   segments n × (ciphertext ≤ segment_size | 16-byte tag)
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "residency/tags.h"
#include "supervisor/sealed/codec/sealed_manifest.h"
#include "views/view.h"

#define AIDP_SEALED_MAGIC "AIDPSEAL"
/* Version 2 differs from 1 only in the content digest: keyed (HMAC under a
 * key derived from the data key) instead of a plain SHA-256 tree that anyone
 * could check a guess of the plaintext against. Version 3 is version 2 plus
 * the dataset's schema (TLV 14, issue 18), and only a header with a schema is
 * version 3. Version 4 adds the views that produced a run's output (TLV 15,
 * required; TLV 14 optional there). Written: 2, 3 with a schema, 4 with a
 * produced-by record; read: 1 to 4. An older reader refuses a newer version
 * by its number, so it never ignores a record it does not know. */
#define AIDP_SEALED_VERSION          2
#define AIDP_SEALED_VERSION_SCHEMA   3
#define AIDP_SEALED_VERSION_PRODUCED 4
#define AIDP_SEALED_VERSION_MIN      1
#define AIDP_SEALED_FORMAT_MAX       4
#define AIDP_SEALED_PREFIX_LEN       16
#define AIDP_SEALED_TAG_LEN          16
#define AIDP_SEALED_NONCE_LEN        12
#define AIDP_SEALED_KEY_LEN          32
#define AIDP_SEALED_DIGEST_LEN       32
#define AIDP_SEALED_BODY_MAX         65536

#define AIDP_SEALED_NAME_MAX    128
#define AIDP_SEALED_VERSION_MAX 64
#define AIDP_SEALED_OWNER_MAX   128
#define AIDP_SEALED_KEY_ID_MAX  64
#define AIDP_SEALED_TAG_MAX     63
#define AIDP_SEALED_MAX_TAGS    32
#define AIDP_SEALED_WRAPPED_MAX 512
/* TLV 15: the produced-by record (sealed_produced.c), at most this many bytes
 * and steps (runs back along the chain of derived datasets). */
#define AIDP_SEALED_PRODUCED_MAX   32768
#define AIDP_SEALED_PRODUCED_STEPS 256

#define AIDP_SEALED_SEGMENT_MIN     (UINT32_C(1) << 12)
#define AIDP_SEALED_SEGMENT_MAX     (UINT32_C(1) << 26)
#define AIDP_SEALED_SEGMENT_DEFAULT (UINT32_C(1) << 20)

/* enum aidp_classification (public < ... < regulated; inheritance takes the
 * maximum) is the policy module's, so headers and decisions share one type. */
#include "residency/tags.h"
#include "supervisor/sealed/codec/sealed_manifest.h"

enum aidp_key_wrap {
        AIDP_WRAP_NONE = 0,
        AIDP_WRAP_AES256_KWP = 1, /* RFC 5649 under a 32-byte KEK (file provider) */
        AIDP_WRAP_EXTERNAL = 2,   /* opaque, produced and consumed by an exec provider */
        AIDP_WRAP_MAX
};

/* TLV record types of header versions 1 to 4 (14: versions 3 and 4; 15:
 * version 4 only). */
enum aidp_sealed_field {
        AIDP_F_NAME = 1,
        AIDP_F_VERSION = 2,
        AIDP_F_OWNER = 3,
        AIDP_F_CREATED_AT = 4,
        AIDP_F_CLASSIFICATION = 5,
        AIDP_F_RESIDENCY = 6,
        AIDP_F_REGULATION = 7,
        AIDP_F_KEY_ID = 8,
        AIDP_F_KEY_WRAP = 9,
        AIDP_F_WRAPPED_KEY = 10,
        AIDP_F_CONTENT_DIGEST = 11,
        AIDP_F_SEGMENT_SIZE = 12,
        AIDP_F_PAYLOAD_LEN = 13,
        AIDP_F_SCHEMA = 14,      /* aidp_schema_encode's canonical bytes (views/view.h) */
        AIDP_F_PRODUCED_BY = 15, /* the views that produced an output (sealed_produced.c) */
        AIDP_F_MAX
};

/* Descriptive fields a sealer chooses; also what outputs inherit. */
struct aidp_sealed_meta {
        char name[AIDP_SEALED_NAME_MAX + 1];
        char version[AIDP_SEALED_VERSION_MAX + 1];
        char owner[AIDP_SEALED_OWNER_MAX + 1];
        uint64_t created_at; /* seconds since the epoch, UTC */
        enum aidp_classification classification;
        char residency[AIDP_SEALED_MAX_TAGS][AIDP_SEALED_TAG_MAX + 1];
        unsigned n_residency;
        char regulation[AIDP_SEALED_MAX_TAGS][AIDP_SEALED_TAG_MAX + 1];
        unsigned n_regulation;
        char key_id[AIDP_SEALED_KEY_ID_MAX + 1];
};

struct aidp_sealed_header {
        uint16_t format_version; /* encode: 0 = the lowest that holds the records (2, 3
                                  * with a schema, 4 with produced_by); 1 only to re-encode */
        struct aidp_sealed_meta meta;
        enum aidp_key_wrap key_wrap;
        uint8_t wrapped_key[AIDP_SEALED_WRAPPED_MAX];
        size_t wrapped_key_len;
        uint8_t content_digest[AIDP_SEALED_DIGEST_LEN];
        uint32_t segment_size;
        uint64_t payload_len;
        /* The schema (format 3): its canonical encoding, checked by decode;
         * schema_len 0 = none. Inside the authenticated header, so a changed
         * label fails the header tag. aidp_sealed_header_schema decodes it. */
        uint8_t schema[AIDP_VIEW_SCHEMA_ENCODED_MAX];
        size_t schema_len;
        /* The produced-by record (format 4): which runs, through which
         * column views of which inputs, produced this dataset, back along the
         * chain of derived datasets; produced_by_len 0 = none. Canonical
         * compact JSON, checked by decode (aidp_sealed_produced_check), and
         * authenticated by the header tag like every field. */
        uint8_t produced_by[AIDP_SEALED_PRODUCED_MAX];
        size_t produced_by_len;
        /* Derived by aidp_sealed_header_decode/encode, not stored as fields. */
        size_t header_len;       /* prefix + body: the bytes the header tag covers */
        uint64_t payload_offset; /* header_len + AIDP_SEALED_TAG_LEN */
        uint64_t n_segments;
        uint64_t file_size;                            /* the exact size a well-formed file has */
        uint8_t header_digest[AIDP_SEALED_DIGEST_LEN]; /* SHA-256(prefix+body): segment AAD */
};

const char *aidp_sealed_class_name(enum aidp_classification c);
int aidp_sealed_class_parse(const char *s, enum aidp_classification *ret);

/* Validation of the descriptive fields (also used on CLI input). */
bool aidp_sealed_valid_name(const char *s); /* dataset name and version */
bool aidp_sealed_valid_owner(const char *s);
bool aidp_sealed_valid_tag(const char *s);
bool aidp_sealed_valid_key_id(const char *s);
/* Checks every field of meta; tags must be sorted and unique (use
 * aidp_sealed_meta_add_tag to build them). */
int aidp_sealed_meta_check(const struct aidp_sealed_meta *m, aidp_error *err);
/* Insert a tag into a sorted list, ignoring duplicates. which: AIDP_F_RESIDENCY
 * or AIDP_F_REGULATION. */
int aidp_sealed_meta_add_tag(struct aidp_sealed_meta *m, enum aidp_sealed_field which,
                             const char *tag, aidp_error *err);
/* Tags an output inherits from its inputs: the highest classification and the
 * union of residency and regulation tags. Descriptive fields of *out other
 * than those (name, owner, key id...) are left untouched. */
int aidp_sealed_meta_inherit(const struct aidp_sealed_meta *const *inputs, size_t n,
                             struct aidp_sealed_meta *out, aidp_error *err);

/* Segment arithmetic: n = ceil(payload_len / segment_size), at least 1. */
uint64_t aidp_sealed_segment_count(uint64_t payload_len, uint32_t segment_size);
/* nonce = u32be(kind) | u64be(index); kind 0 = segment, 1 = final segment, 2 = header. */
void aidp_sealed_nonce_segment(uint64_t index, bool final, uint8_t nonce[AIDP_SEALED_NONCE_LEN]);
void aidp_sealed_nonce_header(uint8_t nonce[AIDP_SEALED_NONCE_LEN]);

/* Encode h (meta, key_wrap, wrapped_key, content_digest, segment_size,
 * payload_len) into buf: prefix and body, without the header tag. Fills the
 * derived fields of h. Returns the length or < 0. */
int aidp_sealed_header_encode(struct aidp_sealed_header *h, uint8_t *buf, size_t cap,
                              aidp_error *err);
/* How many bytes the header (prefix + body) occupies, from the 16-byte prefix.
 * Returns < 0 for a bad prefix. Lets a reader fetch exactly the header. */
int aidp_sealed_header_len(const uint8_t *buf, size_t len, size_t *ret_len, aidp_error *err);
/* Parse and validate prefix+body (the header tag is checked by the crypto
 * layer). Every read is bounds-checked; any malformed input is an error with
 * the byte offset. Does not touch *ret on failure. */
int aidp_sealed_header_decode(const uint8_t *buf, size_t len, struct aidp_sealed_header *ret,
                              aidp_error *err);

/* The header's schema into *ret: 1 when there is one, 0 (and *ret empty)
 * when there is none, < 0 on error. Free with aidp_schema_free. */
int aidp_sealed_header_schema(const struct aidp_sealed_header *h, struct aidp_schema *ret,
                              aidp_error *err);

/* ---- the produced-by record, TLV 15 (sealed_produced.c; docs/sealed-format.md
 * section 3) ----
 *   {"v":1,"steps":[STEP,...]}               newest first, one per run or re-seal
 *   STEP  {"output":NAME,"run":RUN-ID,"inputs":[INPUT,...]}      a run's /out
 *         {"output":NAME,"sealedBy":WHO,"inputs":[INPUT,...]}    aidp seal --derived-from
 *   INPUT {"dataset":NAME,"digest":REF,"injected":HOW[,"views":[V,...],
 *          "files":[{"pattern":P,"format":"csv"|"jsonl","columns":[COLUMN,...]},...]]}
 *   COLUMN {"column":C,"labels":[L,...],"transform":T[,"keyId":K,"domain":D]}
 * A run's INPUT is what lineage START's aidp_view facet records for the
 * dataset (one encoder, supervisor/sealed/inject_produced.c); a re-seal's is
 * the named sealed file's name, digest and AIDP_SEALED_DERIVED_HOW. */
#define AIDP_SEALED_DERIVED_HOW "derived (unsealed and sealed again: aidp seal --derived-from)"
struct json_object;
/* Is buf exactly the canonical encoding of a well-formed record? */
int aidp_sealed_produced_check(const uint8_t *buf, size_t len, aidp_error *err);
/* The record of an output: `step` (this run's STEP; taken, even on failure)
 * followed by every input's steps, each step once (an identical one is not repeated; equal output names alone never hide a step), as
 * canonical bytes in *ret (malloc). Too large for the header: EFBIG. */
int aidp_sealed_produced_chain(struct json_object *step,
                               const struct aidp_sealed_header *const *inputs, size_t n,
                               uint8_t **ret, size_t *ret_len, aidp_error *err);
/* The header's record parsed ({"v":1,"steps":[...]}), or NULL when none. */
struct json_object *aidp_sealed_produced_json(const struct aidp_sealed_header *h);

/* The content digest (keyed in versions 2 to 4) is computed in sealed_crypto.h:
 * aidp_sealed_content_digest. This is how it is shown: "hmac-sha256:<hex>"
 * for version 2, "sha256:<hex>" for version 1. */
#define AIDP_SEALED_DIGEST_REF_LEN (12 + 2 * AIDP_SEALED_DIGEST_LEN)
void aidp_sealed_digest_ref(const struct aidp_sealed_header *h,
                            char out[AIDP_SEALED_DIGEST_REF_LEN + 1]);
