/* Tokens (views/view.h, "tokens"): per key, mode and domain a key derived
 * with HKDF-SHA256; hmac tokens are HMAC-SHA256 truncated to 128 bits,
 * siv tokens AES-256-SIV (RFC 5297) with the domain as associated data, both
 * through OpenSSL EVP. The domain is the token's prefix and is inside the
 * derivation, so two domains never give the same token and a siv token only
 * opens in its own domain. */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdlib.h>
#include <string.h>

#include "views/views_internal.h"

#define TOKEN_SALT   "aidp-token-v1"
#define HMAC_TOKEN   16
#define SIV_TAG      16
#define TOKEN_IN_MAX (AIDP_VIEW_FIELD_MAX)

static int crypto_err(aidp_error *err, const char *what)
{
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "token: %s failed (OpenSSL)", what);
}

static const struct aidp_token_key *find_key(const struct aidp_token_keys *keys, const char *id)
{
        for (size_t i = 0; keys && i < keys->n; i++)
                if (!strcmp(keys->keys[i].key_id, id))
                        return &keys->keys[i];
        return NULL;
}

/* K = HKDF-SHA256(ikm = key, salt = "aidp-token-v1", info = mode || 0 || domain). */
static int derive(const uint8_t key[32], enum aidp_tokenize_mode mode, const char *domain,
                  uint8_t *out, size_t out_len)
{
        const char *m = mode == AIDP_TOK_SIV ? "siv" : "hmac";
        uint8_t info[8 + AIDP_VIEW_DOMAIN_MAX];
        size_t ml = strlen(m), dl = strlen(domain);
        memcpy(info, m, ml);
        info[ml] = 0;
        memcpy(info + ml + 1, domain, dl);
        EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
        EVP_KDF_free(kdf);
        if (!kctx)
                return -1;
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, 32),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)TOKEN_SALT,
                                                  strlen(TOKEN_SALT)),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, ml + 1 + dl),
                OSSL_PARAM_construct_end(),
        };
        int ok = EVP_KDF_derive(kctx, out, out_len, params);
        EVP_KDF_CTX_free(kctx);
        return ok == 1 ? 0 : -1;
}

int aidp_token_col_init(struct aidp_token_col *t, const struct aidp_token_keys *keys,
                        const struct aidp_xform *x, aidp_error *err)
{
        memset(t, 0, sizeof *t);
        if ((x->mode != AIDP_TOK_HMAC && x->mode != AIDP_TOK_SIV) ||
            !aidp_views_is_name(x->domain, AIDP_VIEW_DOMAIN_MAX))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "tokenize: bad mode or domain '%s'", x->domain);
        const struct aidp_token_key *k = find_key(keys, x->key_id);
        if (!k)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOKEY,
                                      "tokenize: token key '%s' is not loaded", x->key_id);
        t->mode = x->mode;
        memcpy(t->domain, x->domain, sizeof t->domain);
        if (derive(k->key, x->mode, x->domain, t->k, x->mode == AIDP_TOK_SIV ? 64 : 32) < 0)
                return crypto_err(err, "HKDF");
        if (x->mode == AIDP_TOK_HMAC) {
                EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
                t->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
                EVP_MAC_free(mac);
                OSSL_PARAM p[] = {
                        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256",
                                                         0),
                        OSSL_PARAM_construct_end(),
                };
                if (!t->mac || EVP_MAC_init(t->mac, t->k, 32, p) != 1) {
                        aidp_token_col_free(t);
                        return crypto_err(err, "HMAC set-up");
                }
        } else {
                t->siv = EVP_CIPHER_fetch(NULL, "AES-256-SIV", NULL);
                t->cctx = EVP_CIPHER_CTX_new();
                if (!t->siv || !t->cctx) {
                        aidp_token_col_free(t);
                        return crypto_err(err, "AES-256-SIV set-up");
                }
        }
        return 0;
}

void aidp_token_col_free(struct aidp_token_col *t)
{
        EVP_MAC_CTX_free(t->mac);
        EVP_CIPHER_CTX_free(t->cctx);
        EVP_CIPHER_free(t->siv);
        OPENSSL_cleanse(t, sizeof *t);
}

/* base64url without padding (RFC 4648 section 5), written straight from its
 * alphabet: once per token, where EVP_EncodeBlock and a pass to swap + and /
 * cost more than the encoding (decoding, once per detokenize, stays
 * EVP_DecodeBlock's). */
static int b64url_put(struct aidp_vbuf *out, const uint8_t *in, size_t n)
{
        static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int r = aidp_vbuf_reserve(out, 4 * ((n + 2) / 3) + 1); /* + 1: never a NULL buffer */
        if (r < 0)
                return r;
        char *p = out->p + out->len;
        size_t i = 0;
        for (; n - i >= 3; i += 3) {
                uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
                *p++ = A[w >> 18];
                *p++ = A[(w >> 12) & 63];
                *p++ = A[(w >> 6) & 63];
                *p++ = A[w & 63];
        }
        if (n - i) {
                uint32_t w = (uint32_t)in[i] << 16 | (n - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
                *p++ = A[w >> 18];
                *p++ = A[(w >> 12) & 63];
                if (n - i == 2)
                        *p++ = A[(w >> 6) & 63];
        }
        out->len = (size_t)(p - out->p);
        return 0;
}

static int b64url_get(const char *s, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
        if (n % 4 == 1 || n * 3 / 4 > cap)
                return -1;
        char *tmp = malloc(n + 4);
        if (!tmp)
                return -1;
        size_t i;
        for (i = 0; i < n; i++) {
                char c = s[i];
                if (c == '+' || c == '/' || c == '=')
                        break;
                tmp[i] = c == '-' ? '+' : c == '_' ? '/' : c;
        }
        size_t pad = (4 - n % 4) % 4;
        memset(tmp + n, '=', pad);
        uint8_t *dec = malloc((n + pad) / 4 * 3 + 1);
        int w = i == n && dec ? EVP_DecodeBlock(dec, (unsigned char *)tmp, (int)(n + pad)) : -1;
        free(tmp);
        if (w < 0 || (size_t)w - pad > cap) {
                free(dec);
                return -1;
        }
        *out_len = (size_t)w - pad;
        memcpy(out, dec, *out_len);
        free(dec);
        /* Canonical only: re-encoding must give the same text (no stray bits). */
        struct aidp_vbuf again = {0};
        int r = b64url_put(&again, out, *out_len);
        bool same = r >= 0 && again.len == n && !memcmp(again.p, s, n);
        aidp_vbuf_free(&again);
        return same ? 0 : -1;
}

static int siv_encrypt(struct aidp_token_col *t, const uint8_t *v, size_t n, uint8_t *out)
{
        int l;
        EVP_CIPHER_CTX *c = t->cctx;
        size_t dl = strlen(t->domain);
        /* out = V (the SIV, 16 bytes) || C, as RFC 5297 writes it. */
        if (EVP_EncryptInit_ex2(c, t->siv, t->k, NULL, NULL) != 1 ||
            EVP_EncryptUpdate(c, NULL, &l, (const uint8_t *)t->domain, (int)dl) != 1 ||
            EVP_EncryptUpdate(c, out + SIV_TAG, &l, v, (int)n) != 1 ||
            EVP_EncryptFinal_ex(c, out + SIV_TAG + l, &l) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, SIV_TAG, out) != 1)
                return -1;
        return 0;
}

int aidp_token_make(struct aidp_token_col *t, const void *value, size_t n, struct aidp_vbuf *out,
                    aidp_error *err)
{
        if (n > TOKEN_IN_MAX)
                return aidp_error_set(err, AIDP_EXIT_DATA, EFBIG, "tokenize: value too long");
        /* An empty value (a missing one, in CSV) stays empty: it identifies
         * nobody, and OpenSSL's AES-SIV refuses an empty plaintext. */
        if (n == 0)
                return 0;
        size_t dl = strlen(t->domain);
        int r = aidp_vbuf_put(out, t->domain, dl);
        if (r >= 0)
                r = aidp_vbuf_putc(out, t->mode == AIDP_TOK_SIV ? '~' : ':');
        if (r < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (t->mode == AIDP_TOK_HMAC) {
                uint8_t mac[32];
                size_t ml = 0;
                /* A NULL key re-initialises with the key set at init. */
                if (EVP_MAC_init(t->mac, NULL, 0, NULL) != 1 ||
                    EVP_MAC_update(t->mac, value, n) != 1 ||
                    EVP_MAC_final(t->mac, mac, &ml, sizeof mac) != 1)
                        return crypto_err(err, "HMAC");
                r = b64url_put(out, mac, HMAC_TOKEN);
        } else {
                uint8_t *ct = malloc(n + SIV_TAG);
                if (!ct)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                if (siv_encrypt(t, value, n, ct) < 0) {
                        free(ct);
                        return crypto_err(err, "AES-256-SIV");
                }
                r = b64url_put(out, ct, n + SIV_TAG);
                free(ct);
        }
        if (r < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

static int siv_decrypt(struct aidp_token_col *t, const uint8_t *in, size_t n, uint8_t *out)
{
        int l;
        EVP_CIPHER_CTX *c = t->cctx;
        size_t dl = strlen(t->domain);
        if (EVP_DecryptInit_ex2(c, t->siv, t->k, NULL, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, SIV_TAG, (void *)in) != 1 ||
            EVP_DecryptUpdate(c, NULL, &l, (const uint8_t *)t->domain, (int)dl) != 1 ||
            EVP_DecryptUpdate(c, out, &l, in + SIV_TAG, (int)(n - SIV_TAG)) != 1 ||
            EVP_DecryptFinal_ex(c, out + l, &l) != 1)
                return -1;
        return 0;
}

int aidp_token_reverse(const struct aidp_token_keys *k, const char *key_id, const char *token,
                       char **plain, size_t *plain_len, aidp_error *err)
{
        const char *sep = token ? strchr(token, '~') : NULL;
        struct aidp_xform x = {.kind = AIDP_XF_TOKENIZE, .mode = AIDP_TOK_SIV};
        size_t dl = sep ? (size_t)(sep - token) : 0;
        if (!sep || dl == 0 || dl > AIDP_VIEW_DOMAIN_MAX)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "detokenize: not a siv token (DOMAIN~...)");
        memcpy(x.domain, token, dl);
        if (!aidp_views_is_name(x.domain, AIDP_VIEW_DOMAIN_MAX) || !key_id ||
            strlen(key_id) >= sizeof x.key_id)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "detokenize: not a siv token (bad domain or key id)");
        strcpy(x.key_id, key_id);
        size_t tl = strlen(sep + 1);
        size_t cap = tl / 4 * 3 + 3;
        uint8_t *raw = malloc(cap);
        if (!raw)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        size_t rl = 0;
        if (b64url_get(sep + 1, tl, raw, cap, &rl) < 0 || rl < SIV_TAG) {
                free(raw);
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "detokenize: not a siv token (bad encoding)");
        }
        struct aidp_token_col t;
        int r = aidp_token_col_init(&t, k, &x, err);
        char *out = r >= 0 ? malloc(rl - SIV_TAG + 1) : NULL;
        if (r >= 0 && !out)
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (r >= 0 && siv_decrypt(&t, raw, rl, (uint8_t *)out) < 0)
                r = aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                   "detokenize: the token does not open with key '%s' in domain "
                                   "'%s' (another key, another domain, or altered)",
                                   key_id, x.domain);
        aidp_token_col_free(&t); /* init zeroes t first, so this is safe after a failure */
        OPENSSL_cleanse(raw, cap);
        free(raw);
        if (r < 0) {
                if (out) {
                        OPENSSL_cleanse(out, rl - SIV_TAG + 1);
                        free(out);
                }
                return r;
        }
        out[rl - SIV_TAG] = 0;
        *plain = out;
        *plain_len = rl - SIV_TAG;
        return 0;
}
