/* The content digest in the world-readable header must not let anyone without
 * a key confirm a guess of the plaintext (format version 2: it is keyed), and
 * files of format version 1 (unkeyed digest) are still read.
 *
 * The "attacker" here is given the best possible guess: the exact plaintext
 * stream, recovered with the key by this test. It computes every unkeyed
 * digest the header could hold and looks for it in the header bytes. On a
 * version 1 file (tests/data/sealed/v1-*.sealed, sealed by the aidp of
 * 2026-12-06 under TEST_KEK) the guess is confirmed: that is the leak. */
#define _GNU_SOURCE
#include <openssl/evp.h>

#include "supervisor/sealed/codec/sealed_be.h"
#include "supervisor/sealed/codec/sealed_crypto.h"
#include "tests/sealed_util.h"

#define FIXTURES AIDP_SOURCE_DIR "/tests/data/sealed"

static char *T;
static struct aidp_keys K;

static void setup(void)
{
        T = tmpdir_new();
        keys_static(&K, TEST_KEK);
}

static void teardown(void)
{
        tmpdir_rm(T);
        aidp_keys_free(&K);
}

TestSuite(sealed_digest, .init = setup, .fini = teardown, .timeout = 120);

static void sha256(const void *p, size_t n, uint8_t out[32])
{
        unsigned l = 0;
        cr_assert(EVP_Digest(p, n, out, &l, EVP_sha256(), NULL));
}

/* Decrypt the whole plaintext stream of a sealed file with TEST_KEK, through
 * the codec only (no aidp file code): what a perfect guess would be. */
static uint8_t *plain_stream(const uint8_t *f, size_t flen, struct aidp_sealed_header *h)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_header_decode(f, flen, h, &err), 0, "%s", err.msg);
        uint8_t dk[AIDP_SEALED_WRAPPED_MAX];
        cr_assert_eq(
                aidp_sealed_kwp_unwrap_buf(TEST_KEK, h->wrapped_key, h->wrapped_key_len, dk, &err),
                0, "%s", err.msg);
        EVP_CIPHER_CTX *ctx = NULL;
        cr_assert_eq(aidp_sealed_seg_ctx(dk, false, &ctx, &err), 0);
        uint8_t *plain = malloc(h->payload_len + AIDP_SEALED_TAG_LEN);
        cr_assert(plain);
        for (uint64_t i = 0; i < h->n_segments; i++) {
                size_t len = (size_t)(h->payload_len - i * h->segment_size < h->segment_size
                                              ? h->payload_len - i * h->segment_size
                                              : h->segment_size);
                const uint8_t *c =
                        f + h->payload_offset + i * (h->segment_size + AIDP_SEALED_TAG_LEN);
                uint8_t *p = plain + i * h->segment_size;
                memcpy(p, c, len);
                cr_assert_eq(aidp_sealed_seg_decrypt(ctx, i, i + 1 == h->n_segments,
                                                     h->header_digest, p, len, c + len),
                             0);
        }
        EVP_CIPHER_CTX_free(ctx);
        return plain;
}

/* Does any unkeyed digest of the (correctly guessed) plaintext appear in the
 * header bytes? Tried: format 1's tree of segment hashes, SHA-256 of the
 * stream, of the file data after the manifest. */
static bool guess_confirmed(const char *path)
{
        size_t flen = 0;
        uint8_t *f = read_all(path, &flen);
        struct aidp_sealed_header h;
        uint8_t *plain = plain_stream(f, flen, &h);
        uint8_t guesses[3][32];
        size_t n = (size_t)h.n_segments;
        uint8_t *pre = malloc(12 + n * 32);
        put64(pre, h.payload_len);
        put32(pre + 8, h.segment_size);
        for (size_t i = 0; i < n; i++) {
                uint64_t start = i * h.segment_size;
                uint64_t len = h.payload_len - start < h.segment_size ? h.payload_len - start
                                                                      : h.segment_size;
                sha256(plain + start, (size_t)len, pre + 12 + i * 32);
        }
        sha256(pre, 12 + n * 32, guesses[0]);
        sha256(plain, (size_t)h.payload_len, guesses[1]);
        uint32_t mlen = get32(plain + 8);
        sha256(plain + mlen, (size_t)(h.payload_len - mlen), guesses[2]);
        bool found = false;
        for (size_t g = 0; g < 3; g++)
                if (memmem(f, h.payload_offset, guesses[g], 32))
                        found = true;
        free(pre);
        free(plain);
        free(f);
        return found;
}

/* The format 1 fixture shows the method works: its header confirms the guess. */
Test(sealed_digest, version1_header_confirms_a_guess)
{
        cr_assert(guess_confirmed(FIXTURES "/v1-result.sealed"));
        cr_assert(guess_confirmed(FIXTURES "/v1-tree.sealed"));
}

static void seal_result(const char *name, struct aidp_sealed_header *ret)
{
        char src[4096], out[4096];
        TEST_SNPRINTF(src, "%s/result.txt", T);
        write_all(src, (const uint8_t *)"result=negative\n", 16);
        TEST_SNPRINTF(out, "%s/%s.sealed", T, name);
        struct aidp_seal_params p = {.segment_size = 4096};
        meta_default(&p.meta, name);
        struct aidp_seal_result res;
        aidp_error err = {0};
        cr_assert_eq(seal_path(src, out, &p, &K, &res, &err), 0, "%s", err.msg);
        *ret = res.header;
}

Test(sealed_digest, short_known_plaintext_not_confirmable_from_header)
{
        struct aidp_sealed_header h;
        seal_result("result", &h);
        cr_assert_eq(h.format_version, 2);
        char out[4096];
        TEST_SNPRINTF(out, "%s/result.sealed", T);
        cr_assert_not(guess_confirmed(out),
                      "a keyless guess of the plaintext matches the header's digest");
}

Test(sealed_digest, equal_content_gives_unrelated_digests)
{
        struct aidp_sealed_header a, b;
        seal_result("one", &a);
        seal_result("two", &b);
        cr_assert_neq(memcmp(a.content_digest, b.content_digest, 32), 0,
                      "equal contents show equal digests across datasets");
}

Test(sealed_digest, version1_files_still_read_and_verified)
{
        static const char *const names[] = {"v1-result", "v1-tree"};
        for (size_t i = 0; i < 2; i++) {
                char in[4096], dest[4096];
                TEST_SNPRINTF(in, FIXTURES "/%s.sealed", names[i]);
                TEST_SNPRINTF(dest, "%s/%s", T, names[i]);
                struct aidp_sealed *s = NULL;
                aidp_error err = {0};
                cr_assert_eq(aidp_sealed_open(in, &K, &s, &err), 0, "%s", err.msg);
                cr_assert_eq(aidp_sealed_header_of(s)->format_version, 1);
                aidp_sealed_close(s);
                struct aidp_sealed_result res;
                cr_assert_eq(unseal_path(in, dest, &K, 1, &res, &err), 0, "%s: %s", names[i],
                             err.msg);
        }
        char p[4096];
        TEST_SNPRINTF(p, "%s/v1-result/result.txt", T);
        size_t n = 0;
        char *txt = (char *)read_all(p, &n);
        cr_assert_eq(n, 16);
        cr_assert_eq(memcmp(txt, "result=negative\n", 16), 0);
        free(txt);
        TEST_SNPRINTF(p, "%s/v1-tree/sub/notes.txt", T);
        txt = (char *)read_all(p, &n);
        cr_assert_eq(n, 9);
        free(txt);
}
