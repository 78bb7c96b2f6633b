/* Sealed dataset format v1: header and manifest encoding. Pure: no syscalls.
 * Every decoder reads through a cursor that refuses to step past the end, so
 * a hostile file can only produce an error naming the offset. */
#include "supervisor/sealed/codec/sealed_format.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "residency/tags.h"

/* The classification names are residency's (residency/tags.c): one table for
 * the policy files and the sealed headers, so a name that one accepts the
 * other cannot refuse. */
const char *aidp_sealed_class_name(enum aidp_classification c)
{
        return aidp_residency_classification_name(c);
}

int aidp_sealed_class_parse(const char *s, enum aidp_classification *ret)
{
        return aidp_residency_classification_parse(s, ret);
}

/* ---- field validation ---- */

static bool is_alnum(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool charset_ok(const char *s, size_t max, bool lower_only, const char *extra)
{
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                bool ok = lower_only ? ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                                     : is_alnum(c);
                if (!ok && (i == 0 || !strchr(extra, c)))
                        return false;
        }
        return true;
}

bool aidp_sealed_valid_name(const char *s)
{
        /* Names may become directory names under /data: no '/', no leading dot. */
        return charset_ok(s, AIDP_SEALED_NAME_MAX, false, "._+-");
}

bool aidp_sealed_valid_owner(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > AIDP_SEALED_OWNER_MAX || s[0] == ' ' || s[n - 1] == ' ')
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
                        return false;
        return true;
}

bool aidp_sealed_valid_tag(const char *s)
{
        return charset_ok(s, AIDP_SEALED_TAG_MAX, true, "._-");
}

bool aidp_sealed_valid_key_id(const char *s)
{
        /* Also a file name in the key directory: no '/', no leading dot. */
        return charset_ok(s, AIDP_SEALED_KEY_ID_MAX, false, "._-");
}

static int check_tags(const char (*tags)[AIDP_SEALED_TAG_MAX + 1], unsigned n, const char *what,
                      aidp_error *err)
{
        if (n > AIDP_SEALED_MAX_TAGS)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "too many %s tags (%u > %d)",
                                      what, n, AIDP_SEALED_MAX_TAGS);
        for (unsigned i = 0; i < n; i++) {
                if (!aidp_sealed_valid_tag(tags[i]))
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "invalid %s tag '%s' (want [a-z0-9][a-z0-9._-]*, "
                                              "at most %d bytes)",
                                              what, tags[i], AIDP_SEALED_TAG_MAX);
                if (i > 0 && strcmp(tags[i - 1], tags[i]) >= 0)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "%s tags not sorted and unique at '%s'", what,
                                              tags[i]);
        }
        return 0;
}

int aidp_sealed_meta_check(const struct aidp_sealed_meta *m, aidp_error *err)
{
        if (!aidp_sealed_valid_name(m->name))
                return aidp_error_set(
                        err, AIDP_EXIT_DATA, EINVAL,
                        "invalid dataset name '%s' (want [A-Za-z0-9][A-Za-z0-9._+-]*, "
                        "at most %d bytes)",
                        m->name, AIDP_SEALED_NAME_MAX);
        if (!aidp_sealed_valid_name(m->version) || strlen(m->version) > AIDP_SEALED_VERSION_MAX)
                return aidp_error_set(
                        err, AIDP_EXIT_DATA, EINVAL,
                        "invalid dataset version '%s' (want [A-Za-z0-9][A-Za-z0-9._+-]*, "
                        "at most %d bytes)",
                        m->version, AIDP_SEALED_VERSION_MAX);
        if (!aidp_sealed_valid_owner(m->owner))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "invalid owner '%s' (printable ASCII, 1-%d bytes)", m->owner,
                                      AIDP_SEALED_OWNER_MAX);
        if ((unsigned)m->classification >= AIDP_CLASS_MAX)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "invalid classification %d",
                                      (int)m->classification);
        if (!aidp_sealed_valid_key_id(m->key_id))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "invalid key id '%s' (want [A-Za-z0-9][A-Za-z0-9._-]*, at "
                                      "most %d bytes)",
                                      m->key_id, AIDP_SEALED_KEY_ID_MAX);
        int r = check_tags(m->residency, m->n_residency, "residency", err);
        if (r < 0)
                return r;
        return check_tags(m->regulation, m->n_regulation, "regulation", err);
}

int aidp_sealed_meta_add_tag(struct aidp_sealed_meta *m, enum aidp_sealed_field which,
                             const char *tag, aidp_error *err)
{
        char(*tags)[AIDP_SEALED_TAG_MAX + 1];
        unsigned *n;
        const char *what;
        if (which == AIDP_F_RESIDENCY) {
                tags = m->residency, n = &m->n_residency, what = "residency";
        } else if (which == AIDP_F_REGULATION) {
                tags = m->regulation, n = &m->n_regulation, what = "regulation";
        } else {
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "not a tag field: %d",
                                      (int)which);
        }
        if (!aidp_sealed_valid_tag(tag))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "invalid %s tag '%s' (want [a-z0-9][a-z0-9._-]*, at most %d "
                                      "bytes)",
                                      what, tag, AIDP_SEALED_TAG_MAX);
        unsigned pos = 0;
        while (pos < *n && strcmp(tags[pos], tag) < 0)
                pos++;
        if (pos < *n && !strcmp(tags[pos], tag))
                return 0;
        if (*n >= AIDP_SEALED_MAX_TAGS)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG, "too many %s tags (max %d)",
                                      what, AIDP_SEALED_MAX_TAGS);
        memmove(tags[pos + 1], tags[pos], (size_t)(*n - pos) * sizeof tags[0]);
        memcpy(tags[pos], tag, strlen(tag) + 1);
        (*n)++;
        return 0;
}

int aidp_sealed_meta_inherit(const struct aidp_sealed_meta *const *inputs, size_t n,
                             struct aidp_sealed_meta *out, aidp_error *err)
{
        struct aidp_sealed_meta tmp = *out;
        tmp.n_residency = tmp.n_regulation = 0;
        tmp.classification = AIDP_CLASS_PUBLIC;
        for (size_t i = 0; i < n; i++) {
                const struct aidp_sealed_meta *in = inputs[i];
                if (in->classification > tmp.classification)
                        tmp.classification = in->classification;
                for (unsigned j = 0; j < in->n_residency; j++) {
                        int r = aidp_sealed_meta_add_tag(&tmp, AIDP_F_RESIDENCY, in->residency[j],
                                                         err);
                        if (r < 0)
                                return aidp_error_wrap(err, "inheriting from dataset %s", in->name);
                }
                for (unsigned j = 0; j < in->n_regulation; j++) {
                        int r = aidp_sealed_meta_add_tag(&tmp, AIDP_F_REGULATION, in->regulation[j],
                                                         err);
                        if (r < 0)
                                return aidp_error_wrap(err, "inheriting from dataset %s", in->name);
                }
        }
        *out = tmp;
        return 0;
}

/* ---- segments, nonces ---- */

static void put16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint16_t get16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t get32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get64(const uint8_t *p)
{
        return (uint64_t)get32(p) << 32 | get32(p + 4);
}

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

int aidp_sealed_content_digest(uint64_t payload_len, uint32_t segment_size,
                               const uint8_t (*seg_digests)[AIDP_SEALED_DIGEST_LEN], uint64_t n,
                               uint8_t out[AIDP_SEALED_DIGEST_LEN])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t pre[12];
        unsigned outlen = 0;
        int ok = ctx != NULL;
        put64(pre, payload_len);
        put32(pre + 8, segment_size);
        ok = ok && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, pre, sizeof pre) &&
             (n == 0 || EVP_DigestUpdate(ctx, seg_digests, (size_t)n * AIDP_SEALED_DIGEST_LEN)) &&
             EVP_DigestFinal_ex(ctx, out, &outlen);
        EVP_MD_CTX_free(ctx);
        return ok && outlen == AIDP_SEALED_DIGEST_LEN ? 0 : -EIO;
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
        if (w.overflow)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOBUFS, "header too large");
        memcpy(buf, AIDP_SEALED_MAGIC, 8);
        put16(buf + 8, AIDP_SEALED_VERSION);
        put16(buf + 10, 0);
        put32(buf + 12, (uint32_t)w.len);
        h->format_version = AIDP_SEALED_VERSION;
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
        if (len < AIDP_SEALED_PREFIX_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "truncated header: %zu bytes, need %d", len,
                                      AIDP_SEALED_PREFIX_LEN);
        if (memcmp(buf, AIDP_SEALED_MAGIC, 8))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "not a sealed dataset (bad magic at offset 0)");
        uint16_t v = get16(buf + 8);
        if (v != AIDP_SEALED_VERSION)
                return aidp_error_set(
                        err, AIDP_EXIT_DATA, ENOTSUP,
                        "unsupported format version %u (offset 8; this aidp reads %d)", v,
                        AIDP_SEALED_VERSION);
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
        h->format_version = AIDP_SEALED_VERSION;
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
                if (t == AIDP_F_RESIDENCY || t == AIDP_F_REGULATION)
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

/* ---- tree manifest ---- */

bool aidp_tree_valid_path(const char *p, size_t len)
{
        if (len == 0 || len > AIDP_TREE_PATH_MAX || memchr(p, '\0', len))
                return false;
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
                if (i < len && p[i] != '/')
                        continue;
                size_t clen = i - start;
                if (clen == 0 || clen > 255)
                        return false;
                if ((clen == 1 && p[start] == '.') ||
                    (clen == 2 && p[start] == '.' && p[start + 1] == '.'))
                        return false;
                start = i + 1;
        }
        return true;
}

static int cmp_entry(const void *a, const void *b)
{
        return strcmp(((const struct aidp_tree_entry *)a)->path,
                      ((const struct aidp_tree_entry *)b)->path);
}

/* Validate a sorted entry list and compute offsets; the manifest length is
 * passed in (decode) or computed (finish). */
static int tree_check(struct aidp_tree *t, aidp_error *err)
{
        if ((unsigned)t->root != AIDP_ROOT_FILE && (unsigned)t->root != AIDP_ROOT_DIR)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: unknown root kind %d",
                                      (int)t->root);
        if (t->root_mode & ~AIDP_TREE_MODE_MASK)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: invalid root mode %o",
                                      t->root_mode);
        if (t->n > AIDP_TREE_MAX_ENTRIES)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: too many entries");
        if (t->root == AIDP_ROOT_FILE && (t->n != 1 || t->entries[0].type != AIDP_ENTRY_FILE ||
                                          strchr(t->entries[0].path, '/') || t->root_mode != 0))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: a single-file dataset must hold exactly one file "
                                      "at the top level");
        uint64_t len = AIDP_TREE_PREFIX_LEN;
        for (size_t i = 0; i < t->n; i++) {
                struct aidp_tree_entry *e = &t->entries[i];
                len += AIDP_TREE_ENTRY_FIXED + strlen(e->path);
        }
        if (len > AIDP_TREE_MAX_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest too large");
        uint64_t off = len;
        for (size_t i = 0; i < t->n; i++) {
                struct aidp_tree_entry *e = &t->entries[i];
                size_t plen = strlen(e->path);
                if (!aidp_tree_valid_path(e->path, plen))
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu: invalid path", i);
                if ((unsigned)e->type != AIDP_ENTRY_FILE && (unsigned)e->type != AIDP_ENTRY_DIR)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu (%s): unknown type %d", i,
                                              e->path, (int)e->type);
                if (e->mode & ~AIDP_TREE_MODE_MASK)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu (%s): invalid mode %o", i,
                                              e->path, e->mode);
                if (e->type == AIDP_ENTRY_DIR && e->size != 0)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu (%s): directory with a size", i,
                                              e->path);
                if (i > 0 && strcmp(t->entries[i - 1].path, e->path) >= 0)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "manifest entry %zu (%s): paths not sorted and "
                                              "unique",
                                              i, e->path);
                const char *slash = strrchr(e->path, '/');
                if (slash) {
                        /* The parent sorts before the child (it is a prefix), so it
                         * is one of the entries already checked. */
                        size_t pl = (size_t)(slash - e->path);
                        size_t lo = 0, hi = i;
                        bool found = false;
                        while (lo < hi) {
                                size_t mid = lo + (hi - lo) / 2;
                                const char *mp = t->entries[mid].path;
                                int c = strncmp(mp, e->path, pl);
                                if (c == 0)
                                        c = mp[pl] == '\0' ? 0 : 1;
                                if (c == 0) {
                                        found = t->entries[mid].type == AIDP_ENTRY_DIR;
                                        break;
                                }
                                if (c < 0)
                                        lo = mid + 1;
                                else
                                        hi = mid;
                        }
                        if (!found)
                                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                                      "manifest entry %zu (%s): parent directory "
                                                      "not listed before it",
                                                      i, e->path);
                }
                if (e->size > (UINT64_C(1) << 56) - off)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EFBIG,
                                              "manifest entry %zu (%s): size too large", i,
                                              e->path);
                e->offset = off;
                off += e->size;
        }
        t->manifest_len = (uint32_t)len;
        t->stream_len = off;
        return 0;
}

int aidp_tree_finish(struct aidp_tree *t, aidp_error *err)
{
        if (t->n > 1)
                qsort(t->entries, t->n, sizeof t->entries[0], cmp_entry);
        return tree_check(t, err);
}

int aidp_tree_encode(const struct aidp_tree *t, uint8_t **ret, aidp_error *err)
{
        uint8_t *buf = malloc(t->manifest_len);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        memcpy(buf, AIDP_TREE_MAGIC, 8);
        put32(buf + 8, t->manifest_len);
        buf[12] = (uint8_t)t->root;
        buf[13] = 0;
        put16(buf + 14, t->root_mode);
        put32(buf + 16, (uint32_t)t->n);
        size_t off = AIDP_TREE_PREFIX_LEN;
        for (size_t i = 0; i < t->n; i++) {
                const struct aidp_tree_entry *e = &t->entries[i];
                size_t plen = strlen(e->path);
                buf[off] = (uint8_t)e->type;
                buf[off + 1] = 0;
                put16(buf + off + 2, e->mode);
                put64(buf + off + 4, e->size);
                put16(buf + off + 12, (uint16_t)plen);
                memcpy(buf + off + AIDP_TREE_ENTRY_FIXED, e->path, plen);
                off += AIDP_TREE_ENTRY_FIXED + plen;
        }
        if (off != t->manifest_len) {
                free(buf);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "manifest length mismatch");
        }
        *ret = buf;
        return 0;
}

int aidp_tree_manifest_len(const uint8_t *buf, size_t len, uint32_t *ret, aidp_error *err)
{
        if (len < AIDP_TREE_PREFIX_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: truncated prefix");
        if (memcmp(buf, AIDP_TREE_MAGIC, 8))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "manifest: bad magic");
        uint32_t ml = get32(buf + 8);
        if (ml < AIDP_TREE_PREFIX_LEN || ml > AIDP_TREE_MAX_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: length %u out of range", ml);
        *ret = ml;
        return 0;
}

void aidp_tree_free(struct aidp_tree *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++)
                free(t->entries[i].path);
        free(t->entries);
        t->entries = NULL;
        t->n = 0;
}

int aidp_tree_decode(const uint8_t *buf, size_t len, struct aidp_tree *ret, aidp_error *err)
{
        uint32_t ml = 0;
        int r = aidp_tree_manifest_len(buf, len, &ml, err);
        if (r < 0)
                return r;
        if (ml != len)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: length field %u does not match %zu bytes", ml,
                                      len);
        if (buf[13] != 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: reserved byte not zero");
        uint32_t n = get32(buf + 16);
        /* Each entry takes at least AIDP_TREE_ENTRY_FIXED + 1 bytes, which
         * bounds n by the buffer before anything is allocated. */
        if (n > AIDP_TREE_MAX_ENTRIES ||
            n > (len - AIDP_TREE_PREFIX_LEN) / (AIDP_TREE_ENTRY_FIXED + 1))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "manifest: entry count %u does not fit in %zu bytes", n, len);
        struct aidp_tree t = {.root = (enum aidp_tree_root)buf[12], .root_mode = get16(buf + 14)};
        t.entries = calloc(n ? n : 1, sizeof *t.entries);
        if (!t.entries)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        size_t off = AIDP_TREE_PREFIX_LEN;
        for (uint32_t i = 0; i < n; i++) {
                if (len - off < AIDP_TREE_ENTRY_FIXED) {
                        r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                           "manifest offset %zu: truncated entry %u", off, i);
                        goto fail;
                }
                const uint8_t *p = buf + off;
                uint16_t plen = get16(p + 12);
                if (p[1] != 0 || plen > len - off - AIDP_TREE_ENTRY_FIXED) {
                        r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                           "manifest offset %zu: entry %u malformed", off, i);
                        goto fail;
                }
                if (!aidp_tree_valid_path((const char *)p + AIDP_TREE_ENTRY_FIXED, plen)) {
                        r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                           "manifest offset %zu: entry %u has an invalid path", off,
                                           i);
                        goto fail;
                }
                struct aidp_tree_entry *e = &t.entries[i];
                e->type = (enum aidp_tree_type)p[0];
                e->mode = get16(p + 2);
                e->size = get64(p + 4);
                e->path = strndup((const char *)p + AIDP_TREE_ENTRY_FIXED, plen);
                t.n = i + 1;
                if (!e->path) {
                        r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                        goto fail;
                }
                off += AIDP_TREE_ENTRY_FIXED + plen;
        }
        if (off != len) {
                r = aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                   "manifest: %zu trailing bytes after the entries", len - off);
                goto fail;
        }
        r = tree_check(&t, err);
        if (r < 0)
                goto fail;
        *ret = t;
        return 0;
fail:
        aidp_tree_free(&t);
        return r;
}

size_t aidp_tree_find(const struct aidp_tree *t, uint64_t off)
{
        /* Entries are laid out in order (directories with size 0), so
         * offset + size is non-decreasing and the first entry ending after off
         * is a non-empty file. */
        size_t lo = 0, hi = t->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct aidp_tree_entry *e = &t->entries[mid];
                if (e->offset + e->size <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}
