/* common/hex.h: the one hex and SHA-256 digest encoder. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/hex.h"

Test(hex, encodes_lowercase_two_digits_per_byte)
{
        const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
        char out[2 * sizeof in + 1];
        memset(out, '#', sizeof out);
        aidp_hex_encode(in, sizeof in, out);
        cr_assert_str_eq(out, "00017f80abff");
        aidp_hex_encode(in, 0, out);
        cr_assert_str_eq(out, "");
}

Test(hex, is_lower_wants_exactly_n_lowercase_digits)
{
        cr_assert(aidp_hex_is_lower("0123456789abcdef", 16));
        cr_assert_not(aidp_hex_is_lower("0123456789ABCDEF", 16), "uppercase");
        cr_assert_not(aidp_hex_is_lower("abcg", 4));
        cr_assert_not(aidp_hex_is_lower("abc", 4), "shorter than n");
        cr_assert(aidp_hex_is_lower("abcz", 3), "only the first n count");
}

Test(hex, sha256_hex_matches_the_known_digests)
{
        char out[AIDP_SHA256_HEX_LEN + 1];
        cr_assert_eq(aidp_sha256_hex("", 0, out), 0);
        cr_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        cr_assert_eq(aidp_sha256_hex("abc", 3, out), 0);
        cr_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(hex, sha256_ref_prefixes_the_algorithm)
{
        uint8_t d[AIDP_SHA256_LEN];
        for (size_t i = 0; i < sizeof d; i++)
                d[i] = (uint8_t)((i % 16) * 17);
        char out[AIDP_SHA256_REF_LEN + 1];
        aidp_sha256_ref(d, out);
        cr_assert_eq(strlen(out), 7 + 64);
        cr_assert_str_eq(out, "sha256:00112233445566778899aabbccddeeff"
                              "00112233445566778899aabbccddeeff");
}
