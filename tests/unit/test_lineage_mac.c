/* The lineage's HMAC with keyed contexts kept per key (codec/lineage_mac.h) gives
 * EVP_Q_mac's result for every key, more keys than it keeps, from several threads
 * at once (the background append's syslog report: test_seclog.c). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/hex.h"
#include "supervisor/lineage/codec/lineage_mac.h"

static void reference(const unsigned char *key, const char *msg, char out[65])
{
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t n = 0;
        cr_assert_not_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, AIDP_LINEAGE_KEY_LEN,
                                     (const unsigned char *)msg, strlen(msg), mac, sizeof mac, &n));
        cr_assert_eq(n, 32);
        aidp_hex_encode(mac, 32, out);
}

static void key_of(int i, unsigned char key[AIDP_LINEAGE_KEY_LEN])
{
        for (size_t k = 0; k < AIDP_LINEAGE_KEY_LEN; k++)
                key[k] = (unsigned char)(i * 37 + k);
}

Test(lineage_mac, kept_contexts_give_the_reference_mac_for_more_keys_than_are_kept)
{
        static const char *const msgs[] = {"", "aidp-lineage-anchor-v2:x:1:abc", "a longer one"};
        for (int round = 0; round < 3; round++)
                for (int i = 0; i < 9; i++) {
                        unsigned char key[AIDP_LINEAGE_KEY_LEN];
                        key_of(i, key);
                        for (size_t m = 0; m < sizeof msgs / sizeof *msgs; m++) {
                                char want[65], got[65];
                                reference(key, msgs[m], want);
                                cr_assert_eq(
                                        aidp_lineage_hmac_hex(key, msgs[m], strlen(msgs[m]), got),
                                        0);
                                cr_assert_str_eq(got, want, "key %d, message %zu, round %d", i, m,
                                                 round);
                        }
                }
}

Test(lineage_mac, reused_contexts_of_a_kept_key_give_the_reference_mac)
{
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        key_of(40, key);
        char want[65], got[65];
        reference(key, "ab", want);
        /* Filled, given back, taken again: each time a message of its own. */
        for (int i = 0; i < 4; i++) {
                struct aidp_lineage_mac *m = aidp_lineage_mac_new(key);
                cr_assert_not_null(m);
                cr_assert_eq(aidp_lineage_mac_hex(m, "a", 1, "b", 1, got), 0);
                cr_assert_str_eq(got, want, "round %d", i);
                cr_assert_eq(aidp_lineage_mac_hex(m, "ab", 2, NULL, 0, got), 0);
                cr_assert_str_eq(got, want, "round %d, second message", i);
                cr_assert_eq(aidp_lineage_hmac_hex(key, "ab", 2, got), 0);
                cr_assert_str_eq(got, want, "round %d, while a context is out", i);
                aidp_lineage_mac_free(m);
        }
}

static void *hammer(void *arg)
{
        int base = (int)(intptr_t)arg;
        for (int n = 0; n < 300; n++) {
                unsigned char key[AIDP_LINEAGE_KEY_LEN];
                key_of(20 + (base + n) % 6, key);
                char msg[32], want[65], got[65];
                snprintf(msg, sizeof msg, "record %d", n);
                reference(key, msg, want);
                if (aidp_lineage_hmac_hex(key, msg, strlen(msg), got) < 0 || strcmp(got, want))
                        return (void *)1;
        }
        return NULL;
}

Test(lineage_mac, threads_filling_and_using_the_kept_contexts_at_once_agree_with_the_reference)
{
        pthread_t t[6];
        for (int i = 0; i < 6; i++)
                cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)i), 0);
        for (int i = 0; i < 6; i++) {
                void *bad = NULL;
                pthread_join(t[i], &bad);
                cr_assert_null(bad, "thread %d got a wrong MAC", i);
        }
}

/* The kept SHA-256 (aidp_lineage_sha256_hex, aidp_lineage_hash_line) gives
 * what a digest fetched on the spot gives, for empty, short and multi-block
 * messages, called again and again. */
Test(lineage_mac, the_kept_sha256_gives_the_reference_digest)
{
        static char msg[3000];
        for (size_t i = 0; i < sizeof msg; i++)
                msg[i] = (char)(i * 7 + 3);
        const size_t lens[] = {0, 1, 55, 56, 64, 200, sizeof msg};
        for (int round = 0; round < 3; round++)
                for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
                        char want[AIDP_SHA256_HEX_LEN + 1], got[AIDP_LINEAGE_HASH_HEX + 1],
                                line[AIDP_LINEAGE_HASH_HEX + 1];
                        cr_assert_eq(aidp_sha256_hex(msg, lens[i], want), 0);
                        cr_assert_eq(aidp_lineage_sha256_hex(msg, lens[i], got), 0);
                        aidp_lineage_hash_line(msg, lens[i], line);
                        cr_expect_str_eq(got, want, "length %zu", lens[i]);
                        cr_expect_str_eq(line, want, "length %zu (hash_line)", lens[i]);
                }
}
