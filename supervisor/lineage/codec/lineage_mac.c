/* Reused HMAC-SHA256 and SHA-256 contexts: lineage_mac.h. */
#include "supervisor/lineage/codec/lineage_mac.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"

/* ---- keyed contexts kept per key (aidp_lineage_hmac_hex) ---------------------------
 * Every lineage append checks the anchor's tag and writes a new one: two HMACs of a
 * short message per record, and a run appends two records. EVP_Q_mac fetched the
 * algorithm by name, made a context, fetched the digest and derived the key's pads
 * on each of them: about 0.3 ms of CPU each in a daemon's worker, where OpenSSL's
 * tables were built by the server (docs/run-core.md, "Start-up time"). A slot is
 * filled once and never freed, and its key and template never change, so a reader
 * that sees it may use it without a lock; two threads filling a slot for the same
 * key at once leave two slots, which is harmless. Its spares are contexts used
 * before, reset with the same key: taken and given back by atomic exchange, so no
 * two threads ever hold one, and a call that finds none copies the template. A
 * spare costs no allocation, which matters in a daemon's worker: it inherits the
 * spare the server left, while a new context's memory (OpenSSL's secure heap,
 * whose pages the worker shares with the server until it writes them) would cost
 * copy-on-write faults. */
#define HMAC_SLOTS  4
#define HMAC_SPARES 4

struct hmac_slot {
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        EVP_MAC_CTX *keyed; /* the template: never used itself */
        _Atomic(EVP_MAC_CTX *) spare[HMAC_SPARES];
};

static _Atomic(struct hmac_slot *) hmac_slots[HMAC_SLOTS];

static EVP_MAC_CTX *hmac_keyed_new(const unsigned char *key)
{
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
        EVP_MAC_free(mac); /* the context holds its own reference */
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
        if (c && !EVP_MAC_init(c, key, AIDP_LINEAGE_KEY_LEN, params)) {
                EVP_MAC_CTX_free(c);
                return NULL;
        }
        return c;
}

/* The kept slot for key, made now if one is free; NULL: none (use a fresh context). */
static struct hmac_slot *hmac_kept(const unsigned char *key)
{
        for (size_t i = 0; i < HMAC_SLOTS; i++) {
                struct hmac_slot *s = atomic_load_explicit(&hmac_slots[i], memory_order_acquire);
                if (s && !CRYPTO_memcmp(s->key, key, AIDP_LINEAGE_KEY_LEN))
                        return s;
                if (s)
                        continue;
                /* The key in OpenSSL's memory, like the pads the context derives
                 * from it (the secure heap where the process set one up). */
                struct hmac_slot *n = OPENSSL_secure_zalloc(sizeof *n);
                if (!n)
                        return NULL;
                memcpy(n->key, key, AIDP_LINEAGE_KEY_LEN);
                n->keyed = hmac_keyed_new(key);
                struct hmac_slot *none = NULL;
                if (n->keyed && atomic_compare_exchange_strong_explicit(&hmac_slots[i], &none, n,
                                                                        memory_order_acq_rel,
                                                                        memory_order_acquire))
                        return n;
                EVP_MAC_CTX_free(n->keyed);
                OPENSSL_secure_clear_free(n, sizeof *n);
                if (!none)
                        return NULL; /* no context: out of memory */
                if (!CRYPTO_memcmp(none->key, key, AIDP_LINEAGE_KEY_LEN))
                        return none; /* another thread filled it with this key */
        }
        return NULL;
}

/* A context keyed with the slot's key, ready for a message: a spare reset, or a copy. */
static EVP_MAC_CTX *hmac_take(struct hmac_slot *s)
{
        for (size_t i = 0; i < HMAC_SPARES; i++) {
                EVP_MAC_CTX *c = atomic_exchange_explicit(&s->spare[i], NULL, memory_order_acquire);
                /* A NULL key starts again with the key already set (OpenSSL 3's HMAC). */
                if (c && EVP_MAC_init(c, NULL, 0, NULL))
                        return c;
                EVP_MAC_CTX_free(c);
        }
        return EVP_MAC_CTX_dup(s->keyed);
}

static void hmac_give_back(struct hmac_slot *s, EVP_MAC_CTX *c)
{
        for (size_t i = 0; c && i < HMAC_SPARES; i++) {
                EVP_MAC_CTX *none = NULL;
                if (atomic_compare_exchange_strong_explicit(
                            &s->spare[i], &none, c, memory_order_release, memory_order_relaxed))
                        return;
        }
        EVP_MAC_CTX_free(c);
}

struct aidp_lineage_mac {
        EVP_MAC_CTX *hmac;      /* keyed once; NULL without a key */
        struct hmac_slot *slot; /* where hmac goes back to (NULL: freed) */
        EVP_MD *sha256;
        EVP_MD_CTX *md;
};

/* SHA-256, fetched once for the process (each user takes a reference). */
static EVP_MD *sha256_kept(void)
{
        static _Atomic(EVP_MD *) kept;
        EVP_MD *md = atomic_load_explicit(&kept, memory_order_acquire);
        if (!md) {
                EVP_MD *none = NULL, *n = EVP_MD_fetch(NULL, "SHA256", NULL);
                if (!n)
                        return NULL;
                if (atomic_compare_exchange_strong_explicit(&kept, &none, n, memory_order_acq_rel,
                                                            memory_order_acquire))
                        md = n;
                else {
                        EVP_MD_free(n);
                        md = none;
                }
        }
        return md;
}

static EVP_MD *sha256_md(void)
{
        EVP_MD *md = sha256_kept();
        return md && EVP_MD_up_ref(md) ? md : NULL;
}

int aidp_lineage_sha256_hex(const void *data, size_t len, char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        EVP_MD *sha = sha256_kept();
        if (!sha || EVP_Digest(data, len, md, &mdlen, sha, NULL) != 1 || mdlen != 32)
                return -EIO;
        aidp_hex_encode(md, 32, out);
        return 0;
}

void aidp_lineage_mac_free(struct aidp_lineage_mac *m)
{
        if (!m)
                return;
        if (m->slot)
                hmac_give_back(m->slot, m->hmac);
        else
                EVP_MAC_CTX_free(m->hmac);
        EVP_MD_CTX_free(m->md);
        EVP_MD_free(m->sha256);
        free(m);
}

struct aidp_lineage_mac *aidp_lineage_mac_new(const unsigned char *key)
{
        struct aidp_lineage_mac *m = calloc(1, sizeof *m);
        if (!m)
                return NULL;
        m->sha256 = sha256_md();
        m->md = EVP_MD_CTX_new();
        if (!m->sha256 || !m->md)
                goto fail;
        if (key) {
                /* The key's kept context when it has one (hmac_kept). */
                m->slot = hmac_kept(key);
                m->hmac = m->slot ? hmac_take(m->slot) : hmac_keyed_new(key);
                if (!m->hmac)
                        goto fail;
        }
        return m;
fail:
        aidp_lineage_mac_free(m);
        return NULL;
}

int aidp_lineage_mac_hex(struct aidp_lineage_mac *m, const void *a, size_t alen, const void *b,
                         size_t blen, char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen = 0;
        /* A NULL key re-initialises with the key already set (OpenSSL 3's HMAC). */
        if (!m->hmac || !EVP_MAC_init(m->hmac, NULL, 0, NULL) ||
            !EVP_MAC_update(m->hmac, a, alen) || (blen && !EVP_MAC_update(m->hmac, b, blen)) ||
            !EVP_MAC_final(m->hmac, mac, &maclen, sizeof mac) || maclen != 32)
                return -EIO;
        aidp_hex_encode(mac, 32, out);
        OPENSSL_cleanse(mac, sizeof mac);
        return 0;
}

int aidp_lineage_mac_sha256(struct aidp_lineage_mac *m, const void *data, size_t len,
                            char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (!EVP_DigestInit_ex(m->md, m->sha256, NULL) || !EVP_DigestUpdate(m->md, data, len) ||
            !EVP_DigestFinal_ex(m->md, md, &mdlen) || mdlen != 32)
                return -EIO;
        aidp_hex_encode(md, 32, out);
        return 0;
}

int aidp_lineage_hmac_hex(const unsigned char key[AIDP_LINEAGE_KEY_LEN], const void *data,
                          size_t len, char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        struct hmac_slot *s = hmac_kept(key);
        EVP_MAC_CTX *c = s ? hmac_take(s) : hmac_keyed_new(key);
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen = 0;
        bool ok = c && EVP_MAC_update(c, data, len) && EVP_MAC_final(c, mac, &maclen, sizeof mac) &&
                  maclen == 32;
        if (s && ok)
                hmac_give_back(s, c);
        else
                EVP_MAC_CTX_free(c);
        if (!ok)
                return -EIO;
        aidp_hex_encode(mac, 32, out);
        OPENSSL_cleanse(mac, sizeof mac);
        return 0;
}
