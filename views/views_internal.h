#pragma once
/* What the files of views/ share and nobody else needs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "views/view.h"

/* [a-z0-9][a-z0-9._-]*, at most max bytes: labels and token domains. */
bool aidp_views_is_name(const char *s, size_t max);
bool aidp_views_is_label(const char *s);
/* An fnmatch glob on a path inside a dataset: relative, no "..", no empty
 * component, printable. */
bool aidp_views_is_pattern(const char *s);
/* RFC 6901 pointer, non-empty ("/a/b", "~0" and "~1" the only escapes). */
bool aidp_views_is_pointer(const char *s);
/* Well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF).
 * Returns the byte offset of the first bad sequence, or len when all good. */
size_t aidp_views_utf8_check(const uint8_t *s, size_t len);
/* Byte length of the UTF-8 sequence starting with lead byte c (1 for a bad one). */
static inline size_t aidp_views_utf8_len(uint8_t c)
{
        return c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 1;
}

/* Check the invariants of a schema whoever built it (the YAML parser or the
 * header decoder): limits, names, labels sorted and unique, no column twice
 * in a file. Fills msg on failure. */
int aidp_schema_check(const struct aidp_schema *s, char *msg, size_t len);
void aidp_schema_sort_labels(struct aidp_schema_column *c);

#define AIDP_SCHEMA_INPUT_MAX (1u << 20)

/* ---- a growable byte buffer for plaintext: wiped when it grows or goes */
struct aidp_vbuf {
        char *p;
        size_t len, cap;
};
int aidp_vbuf_reserve(struct aidp_vbuf *b, size_t more);
int aidp_vbuf_put(struct aidp_vbuf *b, const void *p, size_t n);
static inline int aidp_vbuf_putc(struct aidp_vbuf *b, char c)
{
        if (b->len < b->cap) {
                b->p[b->len++] = c;
                return 0;
        }
        return aidp_vbuf_put(b, &c, 1);
}
/* Empties b, wiping what it held; keeps the allocation. */
void aidp_vbuf_clear(struct aidp_vbuf *b);
/* Empties b without wiping, for what the job sees anyway (the view's
 * output); the allocation is still wiped by aidp_vbuf_free. */
static inline void aidp_vbuf_reset(struct aidp_vbuf *b)
{
        b->len = 0;
}
/* Wipes and frees. */
void aidp_vbuf_free(struct aidp_vbuf *b);

/* ---- tokens (token.c): one column's derived key and reusable EVP state */
struct evp_mac_ctx_st;
struct evp_cipher_ctx_st;
struct evp_cipher_st;
struct aidp_token_col {
        enum aidp_tokenize_mode mode;
        char domain[AIDP_VIEW_DOMAIN_MAX + 1];
        uint8_t k[64]; /* HKDF output: 32 bytes for hmac, 64 for siv */
        struct evp_mac_ctx_st *mac;
        struct evp_cipher_ctx_st *cctx;
        struct evp_cipher_st *siv;
};
/* Look x's key up in keys and derive the column's key (view.h, "tokens"). */
int aidp_token_col_init(struct aidp_token_col *t, const struct aidp_token_keys *keys,
                        const struct aidp_xform *x, aidp_error *err);
/* Append the token of value[0..n) to out. */
int aidp_token_make(struct aidp_token_col *t, const void *value, size_t n, struct aidp_vbuf *out,
                    aidp_error *err);
void aidp_token_col_free(struct aidp_token_col *t);

/* ---- transforms (xform.c, xform_generalize.c) */
/* Apply a TOKENIZE, MASK or GENERALIZE (or NULL) transform to one value:
 * out gets the new value and *is_null says the result is null (a NULL
 * transform, or a value a generalization cannot read: never the raw value).
 * tok is the column's token state (TOKENIZE only). */
int aidp_xform_apply(const struct aidp_xform *x, struct aidp_token_col *tok, const char *v,
                     size_t n, struct aidp_vbuf *out, bool *is_null, aidp_error *err);
int aidp_xform_mask(const struct aidp_xform *x, const char *v, size_t n, struct aidp_vbuf *out);
int aidp_xform_generalize(const struct aidp_xform *x, const char *v, size_t n,
                          struct aidp_vbuf *out, bool *is_null);
