/* Sealed dataset format v2 to v4 (and v1): the header codec (prefix, TLV body, derived sizes),
 * segment nonces and the content digest. Pure: no syscalls. Every decoder reads
 * through bounds checks that refuse to step past the end, so a hostile file can
 * only produce an error naming the offset. */
#include "supervisor/sealed/codec/sealed_format.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/hex.h"
#include "supervisor/sealed/codec/sealed_be.h"

/* ---- segments, nonces ---- */

uint64_t aidp_sealed_segment_count(uint64_t payload_len, uint32_t segment_size)
{
        if (segment_size == 0)
                return 0;
        uint64_t n = payload_len / segment_size + (payload_len % segment_size != 0);
        return n ? n : 1;
}

void aidp_sealed_nonce_segment(uint64_t index, bool final, uint8_t nonce[AIDP_SEALED_NONCE_LEN])
{
        put32(nonce, final ? 1 : 0);
        put64(nonce + 4, index);
}

void aidp_sealed_nonce_header(uint8_t nonce[AIDP_SEALED_NONCE_LEN])
{
        put32(nonce, 2);
        put64(nonce + 4, 0);
}

static int sha256(const uint8_t *buf, size_t len, uint8_t out[AIDP_SEALED_DIGEST_LEN])
{
        unsigned outlen = 0;
        if (!EVP_Digest(buf, len, out, &outlen, EVP_sha256(), NULL) ||
            outlen != AIDP_SEALED_DIGEST_LEN)
                return -EIO;
        return 0;
}

void aidp_sealed_digest_ref(const struct aidp_sealed_header *h,
                            char out[AIDP_SEALED_DIGEST_REF_LEN + 1])
{
        const char *pre = h->format_version == 1 ? "sha256:" : "hmac-sha256:";
        size_t n = strlen(pre);
        memcpy(out, pre, n);
        aidp_hex_encode(h->content_digest, AIDP_SEALED_DIGEST_LEN, out + n);
}

/* ---- header encoding ---- */

struct wbuf {
        uint8_t *p;
        size_t cap, len;
        bool overflow;
};

static void w_field(struct wbuf *w, uint16_t type, const void *val, size_t len)
{
        if (len > UINT16_MAX || w->len + 4 + len > w->cap) {
                w->overflow = true;
                return;
        }
        put16(w->p + w->len, type);
        put16(w->p + w->len + 2, (uint16_t)len);
        if (len)
                memcpy(w->p + w->len + 4, val, len);
        w->len += 4 + len;
}

static void w_str(struct wbuf *w, uint16_t type, const char *s)
{
        w_field(w, type, s, strlen(s));
}

static void w_u(struct wbuf *w, uint16_t type, uint64_t v, size_t width)
{
        uint8_t b[8];
        put64(b, v);
        w_field(w, type, b + 8 - width, width);
}

/* Sizes and counts a valid header implies; shared by encode and decode. */
static int derive(struct aidp_sealed_header *h, aidp_error *err)
{
        if (h->segment_size < AIDP_SEALED_SEGMENT_MIN ||
            h->segment_size > AIDP_SEALED_SEGMENT_MAX || (h->segment_size & (h->segment_size - 1)))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "segment size %u is not a power of two in [%u, %u]",
                                      h->segment_size, AIDP_SEALED_SEGMENT_MIN,
                                      AIDP_SEALED_SEGMENT_MAX);
        /* Bound the payload so every offset below fits in 63 bits. */
        if (h->payload_len > (UINT64_C(1) << 56))
                return aidp_error_set(err, AIDP_EXIT_DATA, EFBIG, "payload length %llu too large",
                                      (unsigned long long)h->payload_len);
        h->n_segments = aidp_sealed_segment_count(h->payload_len, h->segment_size);
        h->payload_offset = h->header_len + AIDP_SEALED_TAG_LEN;
        h->file_size = h->payload_offset + h->payload_len + h->n_segments * AIDP_SEALED_TAG_LEN;
        return 0;
}

int aidp_sealed_header_encode(struct aidp_sealed_header *h, uint8_t *buf, size_t cap,
                              aidp_error *err)
{
        int r = aidp_sealed_meta_check(&h->meta, err);
        if (r < 0)
                return r;
        if ((unsigned)h->key_wrap == AIDP_WRAP_NONE || (unsigned)h->key_wrap >= AIDP_WRAP_MAX ||
            h->wrapped_key_len == 0 || h->wrapped_key_len > AIDP_SEALED_WRAPPED_MAX)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "invalid wrapped key");
        if (cap < AIDP_SEALED_PREFIX_LEN)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOBUFS, "header buffer too small");
        size_t bodycap = cap - AIDP_SEALED_PREFIX_LEN;
        struct wbuf w = {.p = buf + AIDP_SEALED_PREFIX_LEN,
                         .cap = bodycap < AIDP_SEALED_BODY_MAX ? bodycap : AIDP_SEALED_BODY_MAX};
        const struct aidp_sealed_meta *m = &h->meta;
        w_str(&w, AIDP_F_NAME, m->name);
        w_str(&w, AIDP_F_VERSION, m->version);
        w_str(&w, AIDP_F_OWNER, m->owner);
        w_u(&w, AIDP_F_CREATED_AT, m->created_at, 8);
        w_u(&w, AIDP_F_CLASSIFICATION, (uint64_t)m->classification, 1);
        for (unsigned i = 0; i < m->n_residency; i++)
                w_str(&w, AIDP_F_RESIDENCY, m->residency[i]);
        for (unsigned i = 0; i < m->n_regulation; i++)
                w_str(&w, AIDP_F_REGULATION, m->regulation[i]);
        w_str(&w, AIDP_F_KEY_ID, m->key_id);
        w_u(&w, AIDP_F_KEY_WRAP, (uint64_t)h->key_wrap, 1);
        w_field(&w, AIDP_F_WRAPPED_KEY, h->wrapped_key, h->wrapped_key_len);
        w_field(&w, AIDP_F_CONTENT_DIGEST, h->content_digest, AIDP_SEALED_DIGEST_LEN);
        w_u(&w, AIDP_F_SEGMENT_SIZE, h->segment_size, 4);
        w_u(&w, AIDP_F_PAYLOAD_LEN, h->payload_len, 8);
        if (h->schema_len) {
                if (h->format_version == AIDP_SEALED_VERSION_MIN ||
                    h->schema_len > AIDP_VIEW_SCHEMA_ENCODED_MAX)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                              "a schema needs format version 3 and at most %d "
                                              "bytes",
                                              AIDP_VIEW_SCHEMA_ENCODED_MAX);
                w_field(&w, AIDP_F_SCHEMA, h->schema, h->schema_len);
        }
        if (h->produced_by_len) {
                if (h->format_version == AIDP_SEALED_VERSION_MIN ||
                    h->produced_by_len > AIDP_SEALED_PRODUCED_MAX)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                              "a produced-by record needs format version 4 and "
                                              "at most %d bytes",
                                              AIDP_SEALED_PRODUCED_MAX);
                w_field(&w, AIDP_F_PRODUCED_BY, h->produced_by, h->produced_by_len);
        }
        if (w.overflow)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOBUFS, "header too large");
        /* Version 1 only to re-encode a decoded version 1 header (canonical
         * round trip); a new dataset has the lowest version that holds its
         * records (4 with a produced-by record, 3 with a schema, else 2), so
         * a dataset without them reads with an older aidp. */
        uint16_t version = h->format_version == AIDP_SEALED_VERSION_MIN ? AIDP_SEALED_VERSION_MIN
                           : h->produced_by_len ? AIDP_SEALED_VERSION_PRODUCED
                           : h->schema_len      ? AIDP_SEALED_VERSION_SCHEMA
                                                : AIDP_SEALED_VERSION;
        memcpy(buf, AIDP_SEALED_MAGIC, 8);
        put16(buf + 8, version);
        put16(buf + 10, 0);
        put32(buf + 12, (uint32_t)w.len);
        h->format_version = version;
        h->header_len = AIDP_SEALED_PREFIX_LEN + w.len;
        r = derive(h, err);
        if (r < 0)
                return r;
        if (sha256(buf, h->header_len, h->header_digest) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        return (int)h->header_len;
}

int aidp_sealed_header_len(const uint8_t *buf, size_t len, size_t *ret_len, aidp_error *err)
{
        /* A short file that does not start as a sealed one is not one (a CSV
         * given to --data): said so, not "truncated". */
        if (len == 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "not a sealed dataset (an empty file; seal data with "
                                      "'aidp seal')");
        if (memcmp(buf, AIDP_SEALED_MAGIC, len < 8 ? len : 8))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "not a sealed dataset (bad magic at offset 0; seal data "
                                      "with 'aidp seal')");
        if (len < AIDP_SEALED_PREFIX_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "truncated header: %zu bytes, need %d", len,
                                      AIDP_SEALED_PREFIX_LEN);
        uint16_t v = get16(buf + 8);
        if (v < AIDP_SEALED_VERSION_MIN || v > AIDP_SEALED_FORMAT_MAX)
                return aidp_error_set(
                        err, AIDP_EXIT_DATA, ENOTSUP,
                        "unsupported format version %u (offset 8; this aidp reads %d to %d)", v,
                        AIDP_SEALED_VERSION_MIN, AIDP_SEALED_FORMAT_MAX);
        if (get16(buf + 10) != 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "reserved prefix bytes are not zero (offset 10)");
        uint32_t body = get32(buf + 12);
        if (body == 0 || body > AIDP_SEALED_BODY_MAX)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "header body length %u out of range [1, %d] (offset 12)",
                                      body, AIDP_SEALED_BODY_MAX);
        *ret_len = AIDP_SEALED_PREFIX_LEN + (size_t)body;
        return 0;
}

/* Copy a string field; must be valid per check(). */
static int r_str(char *dst, size_t dstcap, const uint8_t *v, uint16_t len, size_t off,
                 const char *what, bool (*check)(const char *), aidp_error *err)
{
        if (len == 0 || len >= dstcap || memchr(v, '\0', len))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "header offset %zu: %s has invalid length %u", off, what,
                                      len);
        memcpy(dst, v, len);
        dst[len] = '\0';
        if (!check(dst))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "header offset %zu: invalid %s",
                                      off, what);
        return 0;
}

static int want_len(uint16_t len, uint16_t want, size_t off, const char *what, aidp_error *err)
{
        if (len != want)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "header offset %zu: %s has length %u, want %u", off, what,
                                      len, want);
        return 0;
}

static const char *const field_names[AIDP_F_MAX] = {
        [AIDP_F_NAME] = "dataset name",
        [AIDP_F_VERSION] = "dataset version",
        [AIDP_F_OWNER] = "owner",
        [AIDP_F_CREATED_AT] = "created-at",
        [AIDP_F_CLASSIFICATION] = "classification",
        [AIDP_F_RESIDENCY] = "residency tag",
        [AIDP_F_REGULATION] = "regulation tag",
        [AIDP_F_KEY_ID] = "key id",
        [AIDP_F_KEY_WRAP] = "key wrap algorithm",
        [AIDP_F_WRAPPED_KEY] = "wrapped key",
        [AIDP_F_CONTENT_DIGEST] = "content digest",
        [AIDP_F_SEGMENT_SIZE] = "segment size",
        [AIDP_F_PAYLOAD_LEN] = "payload length",
        [AIDP_F_SCHEMA] = "schema",
        [AIDP_F_PRODUCED_BY] = "produced-by record",
};

static bool valid_version(const char *s)
{
        return aidp_sealed_valid_name(s) && strlen(s) <= AIDP_SEALED_VERSION_MAX;
}

static int decode_field(struct aidp_sealed_header *h, uint16_t type, const uint8_t *v, uint16_t len,
                        size_t off, aidp_error *err)
{
        struct aidp_sealed_meta *m = &h->meta;
        const char *what = field_names[type];
        int r = 0;
        switch ((enum aidp_sealed_field)type) {
        case AIDP_F_NAME:
                return r_str(m->name, sizeof m->name, v, len, off, what, aidp_sealed_valid_name,
                             err);
        case AIDP_F_VERSION:
                return r_str(m->version, sizeof m->version, v, len, off, what, valid_version, err);
        case AIDP_F_OWNER:
                return r_str(m->owner, sizeof m->owner, v, len, off, what, aidp_sealed_valid_owner,
                             err);
        case AIDP_F_CREATED_AT:
                if ((r = want_len(len, 8, off, what, err)) < 0)
                        return r;
                m->created_at = get64(v);
                return 0;
        case AIDP_F_CLASSIFICATION:
                if ((r = want_len(len, 1, off, what, err)) < 0)
                        return r;
                if (v[0] >= AIDP_CLASS_MAX)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: unknown classification %u", off,
                                              v[0]);
                m->classification = (enum aidp_classification)v[0];
                return 0;
        case AIDP_F_RESIDENCY:
        case AIDP_F_REGULATION: {
                bool res = type == AIDP_F_RESIDENCY;
                unsigned *n = res ? &m->n_residency : &m->n_regulation;
                char(*tags)[AIDP_SEALED_TAG_MAX + 1] = res ? m->residency : m->regulation;
                if (*n >= AIDP_SEALED_MAX_TAGS)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: more than %d %ss", off,
                                              AIDP_SEALED_MAX_TAGS, what);
                r = r_str(tags[*n], sizeof tags[*n], v, len, off, what, aidp_sealed_valid_tag, err);
                if (r < 0)
                        return r;
                if (*n > 0 && strcmp(tags[*n - 1], tags[*n]) >= 0)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: %ss not sorted and unique", off,
                                              what);
                (*n)++;
                return 0;
        }
        case AIDP_F_KEY_ID:
                return r_str(m->key_id, sizeof m->key_id, v, len, off, what,
                             aidp_sealed_valid_key_id, err);
        case AIDP_F_KEY_WRAP:
                if ((r = want_len(len, 1, off, what, err)) < 0)
                        return r;
                if (v[0] == AIDP_WRAP_NONE || v[0] >= AIDP_WRAP_MAX)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: unknown key wrap algorithm %u",
                                              off, v[0]);
                h->key_wrap = (enum aidp_key_wrap)v[0];
                return 0;
        case AIDP_F_WRAPPED_KEY:
                if (len == 0 || len > AIDP_SEALED_WRAPPED_MAX)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: wrapped key length %u out of "
                                              "range [1, %d]",
                                              off, len, AIDP_SEALED_WRAPPED_MAX);
                memcpy(h->wrapped_key, v, len);
                h->wrapped_key_len = len;
                return 0;
        case AIDP_F_CONTENT_DIGEST:
                if ((r = want_len(len, AIDP_SEALED_DIGEST_LEN, off, what, err)) < 0)
                        return r;
                memcpy(h->content_digest, v, AIDP_SEALED_DIGEST_LEN);
                return 0;
        case AIDP_F_SEGMENT_SIZE:
                if ((r = want_len(len, 4, off, what, err)) < 0)
                        return r;
                h->segment_size = get32(v);
                return 0;
        case AIDP_F_PAYLOAD_LEN:
                if ((r = want_len(len, 8, off, what, err)) < 0)
                        return r;
                h->payload_len = get64(v);
                return 0;
        case AIDP_F_SCHEMA: {
                if (h->format_version < AIDP_SEALED_VERSION_SCHEMA)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: a schema in a version %u header "
                                              "(only versions 3 and 4 have one)",
                                              off, h->format_version);
                struct aidp_schema sc;
                if ((r = aidp_schema_decode(v, len, &sc, err)) < 0)
                        return aidp_error_wrap(err, "header offset %zu", off);
                aidp_schema_free(&sc);
                memcpy(h->schema, v, len);
                h->schema_len = len;
                return 0;
        }
        case AIDP_F_PRODUCED_BY:
                if (h->format_version < AIDP_SEALED_VERSION_PRODUCED)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: a produced-by record in a "
                                              "version %u header (only version 4 has one)",
                                              off, h->format_version);
                if (aidp_sealed_produced_check(v, len, err) < 0)
                        return aidp_error_wrap(err, "header offset %zu", off);
                memcpy(h->produced_by, v, len);
                h->produced_by_len = len;
                return 0;
        case AIDP_F_MAX: break;
        }
        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "header offset %zu: unknown field %u",
                              off, type);
}

int aidp_sealed_header_decode(const uint8_t *buf, size_t len, struct aidp_sealed_header *ret,
                              aidp_error *err)
{
        size_t hlen = 0;
        int r = aidp_sealed_header_len(buf, len, &hlen, err);
        if (r < 0)
                return r;
        if (len < hlen)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "truncated header: %zu bytes, need %zu", len, hlen);
        _cleanup_free_ struct aidp_sealed_header *h = calloc(1, sizeof *h);
        if (!h)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        h->format_version = get16(buf + 8);
        unsigned seen = 0;
        unsigned last = 0;
        size_t off = AIDP_SEALED_PREFIX_LEN;
        while (off < hlen) {
                if (hlen - off < 4)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: truncated field header", off);
                uint16_t type = get16(buf + off), flen = get16(buf + off + 2);
                if (flen > hlen - off - 4)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: field %u length %u runs past the "
                                              "header end",
                                              off, type, flen);
                if (type == 0 || type >= AIDP_F_MAX)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: unknown field %u", off, type);
                bool repeatable = type == AIDP_F_RESIDENCY || type == AIDP_F_REGULATION;
                if (type < last || (type == last && !repeatable))
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header offset %zu: field %u (%s) out of order or "
                                              "repeated",
                                              off, type, field_names[type]);
                r = decode_field(h, type, buf + off + 4, flen, off, err);
                if (r < 0)
                        return r;
                seen |= 1u << type;
                last = type;
                off += 4 + (size_t)flen;
        }
        for (unsigned t = 1; t < AIDP_F_MAX; t++) {
                /* 14: required in version 3 only (optional in 4, which an
                 * output without a schema has); 15: required in version 4. */
                if (t == AIDP_F_RESIDENCY || t == AIDP_F_REGULATION ||
                    (t == AIDP_F_SCHEMA && h->format_version != AIDP_SEALED_VERSION_SCHEMA) ||
                    (t == AIDP_F_PRODUCED_BY && h->format_version < AIDP_SEALED_VERSION_PRODUCED))
                        continue;
                if (!(seen & (1u << t)))
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "header: required field %u (%s) missing", t,
                                              field_names[t]);
        }
        h->header_len = hlen;
        r = derive(h, err);
        if (r < 0)
                return r;
        if (sha256(buf, hlen, h->header_digest) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        *ret = *h;
        return 0;
}

int aidp_sealed_header_schema(const struct aidp_sealed_header *h, struct aidp_schema *ret,
                              aidp_error *err)
{
        memset(ret, 0, sizeof *ret);
        if (!h->schema_len)
                return 0;
        int r = aidp_schema_decode(h->schema, h->schema_len, ret, err);
        return r < 0 ? r : 1;
}
