/* Tamper matrix: every modification of a sealed file must be refused with an
 * error naming the dataset (or the file, before the header is trusted), and
 * leave nothing in the destination. */
#include <openssl/evp.h>

#include "supervisor/sealed/codec/sealed_crypto.h"
#include "tests/sealed_util.h"

static char *T;
static struct aidp_keys K;
static char orig[4096], victim[4096], dest[4096];
static uint8_t *obuf;
static size_t olen;
static struct aidp_sealed_header H;

#define SEG 4096u

static void setup(void)
{
        T = tmpdir_new();
        keys_static(&K, TEST_KEK);
        char src[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        char f[4096];
        TEST_SNPRINTF(f, "%s/src/one", T);
        write_file(f, 3 * SEG + 100, 0644, 1);
        TEST_SNPRINTF(f, "%s/src/two", T);
        write_file(f, 2 * SEG, 0600, 2);
        TEST_SNPRINTF(orig, "%s/orig.sealed", T);
        TEST_SNPRINTF(victim, "%s/victim.sealed", T);
        TEST_SNPRINTF(dest, "%s/dest", T);
        struct aidp_seal_params p = {.segment_size = SEG};
        meta_default(&p.meta, "tamperset");
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, "eu", &err), 0);
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, "phi", &err), 0);
        struct aidp_seal_result res;
        cr_assert_eq(seal_path(src, orig, &p, &K, &res, &err), 0, "%s", err.msg);
        H = res.header;
        cr_assert_geq(H.n_segments, 5);
        obuf = read_all(orig, &olen);
        cr_assert_eq(olen, H.file_size);
}

static void teardown(void)
{
        free(obuf);
        tmpdir_rm(T);
        aidp_keys_free(&K);
}

TestSuite(sealed_tamper, .init = setup, .fini = teardown, .timeout = 300);

/* Try to unseal buf; it must fail. Returns the error; the destination must be
 * empty afterwards. */
static aidp_error expect_refused(const uint8_t *buf, size_t len, const char *what)
{
        write_all(victim, buf, len);
        aidp_error err = {0};
        int r = unseal_path(victim, dest, &K, 2, NULL, &err);
        cr_assert_lt(r, 0, "%s: tampered file was accepted", what);
        cr_assert_eq(err.status, AIDP_EXIT_DATA, "%s: status %d (%s)", what, err.status, err.msg);
        cr_assert(strstr(err.msg, "victim.sealed"), "%s: error does not name the file: %s", what,
                  err.msg);
        cr_assert_eq(count_entries(dest), 0, "%s: plaintext left in the destination", what);
        return err;
}

Test(sealed_tamper, original_is_accepted)
{
        aidp_error err = {0};
        cr_assert_eq(unseal_path(orig, dest, &K, 2, NULL, &err), 0, "%s", err.msg);
}

Test(sealed_tamper, bit_flip_anywhere_in_header_and_tag)
{
        uint8_t *b = malloc(olen);
        for (size_t off = 0; off < H.payload_offset; off++) {
                for (int bit = 0; bit < 8; bit += 3) {
                        memcpy(b, obuf, olen);
                        b[off] ^= (uint8_t)(1u << bit);
                        char what[64];
                        TEST_SNPRINTF(what, "header byte %zu bit %d", off, bit);
                        expect_refused(b, olen, what);
                }
        }
        free(b);
}

Test(sealed_tamper, bit_flip_in_every_segment_region)
{
        uint8_t *b = malloc(olen);
        for (uint64_t i = 0; i < H.n_segments; i++) {
                uint64_t start = H.payload_offset + i * (SEG + 16);
                uint64_t len = i + 1 == H.n_segments ? H.payload_len - i * SEG : SEG;
                /* first, middle and last ciphertext byte, first and last tag byte */
                uint64_t offs[] = {start, start + len / 2, start + len - 1, start + len,
                                   start + len + 15};
                for (size_t j = 0; j < 5; j++) {
                        memcpy(b, obuf, olen);
                        b[offs[j]] ^= 0x01;
                        char what[64];
                        TEST_SNPRINTF(what, "segment %llu offset %llu", (unsigned long long)i,
                                      (unsigned long long)offs[j]);
                        aidp_error e = expect_refused(b, olen, what);
                        cr_assert_eq(e.errnum, EBADMSG, "%s: %s", what, e.msg);
                        cr_assert(strstr(e.msg, "dataset tamperset"), "%s: %s", what, e.msg);
                        cr_assert(strstr(e.msg, "failed authentication"), "%s: %s", what, e.msg);
                }
        }
        free(b);
}

Test(sealed_tamper, truncation)
{
        size_t cuts[] = {0,
                         10,
                         H.header_len,
                         H.payload_offset,
                         H.payload_offset + 100,
                         (size_t)(H.payload_offset + 2 * (SEG + 16)),
                         olen - 17,
                         olen - 16,
                         olen - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
                char what[64];
                TEST_SNPRINTF(what, "truncated to %zu bytes", cuts[i]);
                expect_refused(obuf, cuts[i], what);
        }
}

Test(sealed_tamper, appended_bytes)
{
        uint8_t *b = malloc(olen + SEG + 16);
        memcpy(b, obuf, olen);
        memset(b + olen, 0, SEG + 16);
        expect_refused(b, olen + 1, "one byte appended");
        /* A whole extra segment copied from the middle. */
        memcpy(b + olen, obuf + H.payload_offset + SEG + 16, SEG + 16);
        expect_refused(b, olen + SEG + 16, "segment appended");
        free(b);
}

static void swap_segments(uint8_t *b, uint64_t i, uint64_t j)
{
        uint8_t tmp[SEG + 16];
        uint64_t oi = H.payload_offset + i * (SEG + 16), oj = H.payload_offset + j * (SEG + 16);
        memcpy(tmp, b + oi, SEG + 16);
        memcpy(b + oi, b + oj, SEG + 16);
        memcpy(b + oj, tmp, SEG + 16);
}

Test(sealed_tamper, segment_reorder_and_swap_within_dataset)
{
        uint8_t *b = malloc(olen);
        memcpy(b, obuf, olen);
        swap_segments(b, 1, 2);
        aidp_error e = expect_refused(b, olen, "segments 1 and 2 swapped");
        cr_assert_eq(e.errnum, EBADMSG);
        memcpy(b, obuf, olen);
        swap_segments(b, 0, 3);
        expect_refused(b, olen, "segments 0 and 3 swapped");
        /* Duplicate: segment 2 replaced by segment 1. */
        memcpy(b, obuf, olen);
        memcpy(b + H.payload_offset + 2 * (SEG + 16), b + H.payload_offset + 1 * (SEG + 16),
               SEG + 16);
        expect_refused(b, olen, "segment 1 duplicated over 2");
        /* Rotate the full-size segments. */
        memcpy(b, obuf, olen);
        for (uint64_t i = 0; i + 2 < H.n_segments; i++)
                swap_segments(b, i, i + 1);
        expect_refused(b, olen, "segments rotated");
        free(b);
}

Test(sealed_tamper, segment_swap_between_datasets)
{
        /* A second dataset with the same layout and the same tags. */
        char other[4096], src[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        TEST_SNPRINTF(other, "%s/other.sealed", T);
        struct aidp_seal_params p = {.segment_size = SEG};
        meta_default(&p.meta, "tamperset");
        aidp_error err = {0};
        aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, "eu", &err);
        aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, "phi", &err);
        cr_assert_eq(seal_path(src, other, &p, &K, NULL, &err), 0, "%s", err.msg);
        size_t ol = 0;
        uint8_t *ob = read_all(other, &ol);
        cr_assert_eq(ol, olen);
        uint8_t *b = malloc(olen);
        for (uint64_t i = 0; i < H.n_segments; i++) {
                memcpy(b, obuf, olen);
                uint64_t off = H.payload_offset + i * (SEG + 16);
                uint64_t n = i + 1 == H.n_segments ? olen - off : SEG + 16;
                memcpy(b + off, ob + off, n);
                char what[64];
                TEST_SNPRINTF(what, "segment %llu from another dataset", (unsigned long long)i);
                aidp_error e = expect_refused(b, olen, what);
                cr_assert_eq(e.errnum, EBADMSG, "%s", e.msg);
        }
        /* The other dataset's header on our segments. */
        memcpy(b, obuf, olen);
        memcpy(b, ob, H.payload_offset);
        expect_refused(b, olen, "header from another dataset");
        free(b);
        free(ob);
}

/* An attacker who edits a tag re-encodes the header; the header tag no longer
 * matches. */
static void edit_header(void (*edit)(struct aidp_sealed_header *), const char *what)
{
        struct aidp_sealed_header h = H;
        edit(&h);
        uint8_t hb[AIDP_SEALED_PREFIX_LEN + AIDP_SEALED_BODY_MAX];
        aidp_error err = {0};
        int hl = aidp_sealed_header_encode(&h, hb, sizeof hb, &err);
        cr_assert_gt(hl, 0, "%s", err.msg);
        size_t nlen = (size_t)hl + 16 + (olen - H.payload_offset);
        uint8_t *b = malloc(nlen);
        memcpy(b, hb, (size_t)hl);
        memcpy(b + hl, obuf + H.header_len, 16); /* the old header tag */
        memcpy(b + hl + 16, obuf + H.payload_offset, olen - H.payload_offset);
        aidp_error e = expect_refused(b, nlen, what);
        cr_assert_eq(e.errnum, EBADMSG, "%s: %s", what, e.msg);
        cr_assert(strstr(e.msg, "header authentication failed"), "%s: %s", what, e.msg);
        free(b);
}

static void strip_residency(struct aidp_sealed_header *h)
{
        h->meta.n_residency = 0;
}
static void strip_regulation(struct aidp_sealed_header *h)
{
        h->meta.n_regulation = 0;
}
static void add_residency(struct aidp_sealed_header *h)
{
        aidp_sealed_meta_add_tag(&h->meta, AIDP_F_RESIDENCY, "us", NULL);
}
static void downgrade_class(struct aidp_sealed_header *h)
{
        h->meta.classification = AIDP_CLASS_PUBLIC;
}
static void rename_ds(struct aidp_sealed_header *h)
{
        strcpy(h->meta.name, "tamperseu");
}
static void edit_owner(struct aidp_sealed_header *h)
{
        strcpy(h->meta.owner, "mallory");
}
static void edit_digest(struct aidp_sealed_header *h)
{
        h->content_digest[0] ^= 1;
}

Test(sealed_tamper, header_field_edits_and_strips)
{
        edit_header(strip_residency, "residency tag stripped");
        edit_header(strip_regulation, "regulation tag stripped");
        edit_header(add_residency, "residency tag added");
        edit_header(downgrade_class, "classification downgraded");
        edit_header(rename_ds, "dataset renamed");
        edit_header(edit_owner, "owner edited");
        edit_header(edit_digest, "content digest edited");
}

Test(sealed_tamper, header_tag_stripped)
{
        /* Header without its tag: everything shifts by 16 bytes. */
        size_t nlen = olen - 16;
        uint8_t *b = malloc(olen);
        memcpy(b, obuf, H.header_len);
        memcpy(b + H.header_len, obuf + H.payload_offset, olen - H.payload_offset);
        expect_refused(b, nlen, "header tag removed");
        free(b);
}

Test(sealed_tamper, wrong_key)
{
        struct aidp_keys wrong;
        uint8_t kek[32];
        memcpy(kek, TEST_KEK, 32);
        kek[31] ^= 0x80;
        keys_static(&wrong, kek);
        aidp_error err = {0};
        int r = unseal_path(orig, dest, &wrong, 2, NULL, &err);
        cr_assert_lt(r, 0);
        cr_assert_eq(err.errnum, EBADMSG, "%s", err.msg);
        cr_assert(strstr(err.msg, "wrong key"), "%s", err.msg);
        cr_assert(strstr(err.msg, "tamperset"), "%s", err.msg);
        cr_assert_eq(count_entries(dest), 0);
        aidp_keys_free(&wrong);
}

Test(sealed_tamper, missing_key_file_provider)
{
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s/no-such-key-dir", T);
        aidp_error err = {0};
        int r = unseal_path(orig, dest, &k, 2, NULL, &err);
        cr_assert_lt(r, 0);
        cr_assert_eq(err.status, AIDP_EXIT_DATA);
        cr_assert(strstr(err.msg, "no-such-key-dir"), "%s", err.msg);
        cr_assert(strstr(err.msg, "orig.sealed"), "%s", err.msg);
        aidp_keys_free(&k);
}

Test(sealed_tamper, unreadable_or_not_sealed)
{
        aidp_error err = {0};
        char p[4096];
        TEST_SNPRINTF(p, "%s/does-not-exist.sealed", T);
        cr_assert_lt(unseal_path(p, dest, &K, 1, NULL, &err), 0);
        cr_assert_eq(err.errnum, ENOENT);
        cr_assert(strstr(err.msg, "does-not-exist.sealed"), "%s", err.msg);
        cr_assert_lt(unseal_path(T, dest, &K, 1, NULL, &err), 0);
        cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
        expect_refused((const uint8_t *)"hello world, not sealed at all", 30, "garbage");
}

/* The nonce binds the final flag and the AAD binds the header: checked at the
 * primitive level, where they are the only difference. */
Test(sealed_tamper, nonce_final_flag_and_aad_binding)
{
        uint8_t dk[32] = {7}, aad[32] = {1}, aad2[32] = {2}, tag[16];
        uint8_t buf[64], copy[64];
        for (int i = 0; i < 64; i++)
                buf[i] = (uint8_t)i;
        EVP_CIPHER_CTX *e = NULL, *d = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_seg_ctx(dk, true, &e, &err), 0);
        cr_assert_eq(aidp_sealed_seg_ctx(dk, false, &d, &err), 0);
        cr_assert_eq(aidp_sealed_seg_encrypt(e, 5, false, aad, buf, 48, tag), 0);
        memcpy(copy, buf, 64);
        cr_assert_eq(aidp_sealed_seg_decrypt(d, 5, true, aad, copy, 48, tag), -EBADMSG,
                     "non-final segment accepted as final (truncation)");
        memcpy(copy, buf, 64);
        cr_assert_eq(aidp_sealed_seg_decrypt(d, 4, false, aad, copy, 48, tag), -EBADMSG,
                     "segment accepted at another index");
        memcpy(copy, buf, 64);
        cr_assert_eq(aidp_sealed_seg_decrypt(d, 5, false, aad2, copy, 48, tag), -EBADMSG,
                     "segment accepted under another header");
        memcpy(copy, buf, 64);
        cr_assert_eq(aidp_sealed_seg_decrypt(d, 5, false, aad, copy, 48, tag), 0);
        for (int i = 0; i < 48; i++)
                cr_assert_eq(copy[i], i);
        EVP_CIPHER_CTX_free(e);
        EVP_CIPHER_CTX_free(d);
}

/* A header whose content digest does not match the payload, but whose tags
 * are all valid (what a faulty sealer holding the data key could write):
 * every decryption recomputes the digest and refuses it, also with the
 * default options the supervisor's injection uses. */
Test(sealed_tamper, content_digest_mismatch_always_detected)
{
        aidp_error err = {0};
        uint8_t *b = forge_content_digest(obuf, olen, TEST_KEK);
        aidp_error e = expect_refused(b, olen, "content digest forged");
        cr_assert_eq(e.errnum, EBADMSG);
        cr_assert(strstr(e.msg, "content digest does not match"), "%s", e.msg);
        /* Default options, verify only and into a directory: refused too. */
        struct aidp_sealed *s = NULL;
        cr_assert_eq(aidp_sealed_open(victim, &K, &s, &err), 0, "%s", err.msg);
        cr_assert_lt(aidp_sealed_decrypt(s, -1, NULL, NULL, &err), 0);
        cr_assert(strstr(err.msg, "content digest does not match"), "%s", err.msg);
        mkdir(dest, 0700);
        int dfd = open(dest, O_RDONLY | O_DIRECTORY);
        cr_assert_geq(dfd, 0);
        cr_assert_lt(aidp_sealed_decrypt(s, dfd, NULL, NULL, &err), 0);
        close(dfd);
        cr_assert_eq(count_entries(dest), 0, "plaintext left after a digest mismatch");
        aidp_sealed_close(s);
        free(b);
}
