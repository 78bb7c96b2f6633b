/* views/ transforms, one golden per rule, and tokens: the expected tokens
 * were computed independently with python3-cryptography (HKDF, HMAC,
 * AESSIV) from the construction in views/view.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "views/views_internal.h"

static struct aidp_token_key key0, key1;
static struct aidp_token_keys keys = {0};

static void setup(void)
{
        static struct aidp_token_key both[2];
        strcpy(both[0].key_id, "tok-1");
        for (int i = 0; i < 32; i++)
                both[0].key[i] = (uint8_t)i;
        strcpy(both[1].key_id, "tok-2");
        for (int i = 0; i < 32; i++)
                both[1].key[i] = (uint8_t)(100 + i);
        key0 = both[0];
        key1 = both[1];
        keys.keys = both;
        keys.n = 2;
}

/* Apply x to in; "<null>" for a null result. */
static char *apply(const struct aidp_xform *x, const char *in)
{
        struct aidp_token_col tok = {0};
        aidp_error err = {0};
        if (x->kind == AIDP_XF_TOKENIZE)
                cr_assert_eq(aidp_token_col_init(&tok, &keys, x, &err), 0, "%s", err.msg);
        struct aidp_vbuf out = {0};
        bool is_null;
        cr_assert_eq(aidp_xform_apply(x, &tok, in, strlen(in), &out, &is_null, &err), 0, "%s",
                     err.msg);
        char *s = is_null ? strdup("<null>") : strndup(out.p ? out.p : "", out.len);
        aidp_vbuf_free(&out);
        aidp_token_col_free(&tok);
        return s;
}

static void golden(const struct aidp_xform *x, const char *in, const char *want)
{
        char *got = apply(x, in);
        cr_assert_str_eq(got, want, "'%s' -> '%s', want '%s'", in, got, want);
        free(got);
}

static struct aidp_xform tokenize(enum aidp_tokenize_mode m, const char *domain, const char *key)
{
        struct aidp_xform x = {.kind = AIDP_XF_TOKENIZE, .mode = m};
        strcpy(x.domain, domain);
        strcpy(x.key_id, key);
        return x;
}

TestSuite(xform, .init = setup);

Test(xform, tokenize_hmac_golden_deterministic_domain_separated)
{
        struct aidp_xform p = tokenize(AIDP_TOK_HMAC, "patient", "tok-1");
        struct aidp_xform v = tokenize(AIDP_TOK_HMAC, "visit", "tok-1");
        golden(&p, "alice@example.com", "patient:Nav-hBz4g6jtFkWArN4ZQw");
        golden(&p, "alice@example.com", "patient:Nav-hBz4g6jtFkWArN4ZQw");
        golden(&v, "alice@example.com", "visit:5Lln6kFR_MjcS7EamzoMMg");
        golden(&p, "", ""); /* a missing value stays missing */
        /* another key: another token */
        struct aidp_xform k2 = tokenize(AIDP_TOK_HMAC, "patient", "tok-2");
        char *a = apply(&k2, "alice@example.com");
        cr_assert_str_neq(a, "patient:Nav-hBz4g6jtFkWArN4ZQw");
        free(a);
}

Test(xform, tokenize_siv_golden_and_round_trip)
{
        struct aidp_xform p = tokenize(AIDP_TOK_SIV, "patient", "tok-1");
        golden(&p, "alice@example.com", "patient~aZryiyd54v1ocSNvm9_vFH524oVKZFqUF8KSFgpENyIh");
        golden(&p, "", "");
        struct aidp_xform v = tokenize(AIDP_TOK_SIV, "visit", "tok-1");
        golden(&v, "alice@example.com", "visit~--QlmuYvcxnHGK-Cfm8502rqcJNZGsu45ugKrHdl-xxC");
        const char *vals[] = {"alice@example.com", "Zoë Ünïcødé ✓", "x"};
        for (size_t i = 0; i < 3; i++) {
                char *t = apply(&p, vals[i]);
                char *plain = NULL;
                size_t n = 0;
                aidp_error err = {0};
                cr_assert_eq(aidp_token_reverse(&keys, "tok-1", t, &plain, &n, &err), 0, "%s: %s",
                             t, err.msg);
                cr_assert_eq(n, strlen(vals[i]));
                cr_assert_str_eq(plain, vals[i]);
                free(plain);
                free(t);
        }
}

static void refused(const char *key, const char *token, int status)
{
        char *plain = NULL;
        size_t n = 0;
        aidp_error err = {0};
        int r = aidp_token_reverse(&keys, key, token, &plain, &n, &err);
        cr_assert_lt(r, 0, "'%s' opened with %s", token, key);
        cr_assert_null(plain);
        cr_assert_eq(err.status, status, "%s", err.msg);
}

Test(xform, reverse_refuses_wrong_domain_key_mode_and_alteration)
{
        const char *t = "patient~aZryiyd54v1ocSNvm9_vFH524oVKZFqUF8KSFgpENyIh";
        refused("tok-2", t, AIDP_EXIT_DATA); /* wrong key */
        refused("tok-1", "visit~aZryiyd54v1ocSNvm9_vFH524oVKZFqUF8KSFgpENyIh",
                AIDP_EXIT_DATA); /* wrong domain */
        refused("tok-1", "patient~aZryiyd54v1ocSNvm9_vFH524oVKZFqUF8KSFgpENyIi",
                AIDP_EXIT_DATA); /* altered */
        refused("tok-1", "patient~aZryiyd54v1ocSNvm9_vFH524oVKZFqUF8KSFgpENy",
                AIDP_EXIT_DATA);                                            /* cut */
        refused("tok-1", "patient:Nav-hBz4g6jtFkWArN4ZQw", AIDP_EXIT_DATA); /* hmac: one-way */
        refused("tok-1", "patient~", AIDP_EXIT_DATA);
        refused("tok-1", "~abc", AIDP_EXIT_DATA);
        refused("tok-1", "Patient~aZryiyd54v1ocSNvm9_vFH524oVKZFqUF8KSFgpENyIh", AIDP_EXIT_DATA);
        refused("tok-1", "patient~aZryiyd54v1ocSNvm9/vFH524oVKZFqUF8KSFgpENyIh", AIDP_EXIT_DATA);
        refused("nope", t, AIDP_EXIT_CONFIG); /* no such key */
        (void)key0;
        (void)key1;
}

Test(xform, tokenize_without_its_key_is_an_error)
{
        struct aidp_xform x = tokenize(AIDP_TOK_HMAC, "patient", "missing");
        struct aidp_token_col tok;
        aidp_error err = {0};
        cr_assert_lt(aidp_token_col_init(&tok, &keys, &x, &err), 0);
        cr_assert_not_null(strstr(err.msg, "'missing' is not loaded"), "%s", err.msg);
}

Test(xform, mask_utf8_aware)
{
        struct aidp_xform x = {.kind = AIDP_XF_MASK, .keep_last = 4};
        golden(&x, "123-45-6789", "*******6789");
        golden(&x, "123", "***"); /* too short to hide anything: masked whole */
        golden(&x, "1234", "****");
        golden(&x, "", "");
        x = (struct aidp_xform){
                .kind = AIDP_XF_MASK, .keep_first = 1, .keep_last = 1, .mask_char = '#'};
        golden(&x, "Zoë", "Z#ë");
        golden(&x, "Jürgen", "J####n");
        golden(&x, "日本語テキスト", "日#####ト");
        x = (struct aidp_xform){.kind = AIDP_XF_MASK};
        golden(&x, "émile", "*****");
}

/* A fixed replacement hides the length as well: every value's hidden part
 * becomes the same text. */
Test(xform, mask_with_a_fixed_replacement)
{
        struct aidp_xform x = {.kind = AIDP_XF_MASK, .keep_last = 4, .mask_with = "XXXX-"};
        golden(&x, "4111-1111-1111-1234", "XXXX-1234");
        golden(&x, "5500000000005678", "XXXX-5678");
        golden(&x, "123", "XXXX-"); /* too short to hide anything: replaced whole */
        golden(&x, "", "");         /* empty stays empty */
        x = (struct aidp_xform){.kind = AIDP_XF_MASK, .keep_first = 1, .mask_with = "…"};
        golden(&x, "Jürgen", "J…");
        x = (struct aidp_xform){.kind = AIDP_XF_MASK, .mask_with = "[redacted]"};
        golden(&x, "alice@example.org", "[redacted]");
        char buf[128];
        aidp_xform_describe(&x, buf, sizeof buf);
        cr_assert_str_eq(buf, "mask(keep_first=0, keep_last=0, with=\"[redacted]\")");
}

Test(xform, generalize_dates)
{
        struct aidp_xform y = {.kind = AIDP_XF_GENERALIZE, .gen = AIDP_GEN_DATE_YEAR};
        struct aidp_xform m = {.kind = AIDP_XF_GENERALIZE, .gen = AIDP_GEN_DATE_MONTH};
        golden(&y, "1984-07-21", "1984");
        golden(&m, "1984-07-21", "1984-07");
        golden(&y, "1984-07-21T13:45:00Z", "1984");
        golden(&m, "1984-07-21T13:45:00.123+02:00", "1984-07");
        golden(&m, "1984-07-21 13:45", "1984-07");
        golden(&m, "1984-07", "1984-07");
        golden(&y, "1984-13-01", "<null>");
        golden(&y, "21/07/1984", "<null>");
        golden(&y, "1984-07-21X", "<null>");
        golden(&y, "1984-07-21T1", "<null>");
        golden(&y, "", "<null>");
}

Test(xform, generalize_numbers_prefix_bands)
{
        struct aidp_xform n = {.kind = AIDP_XF_GENERALIZE, .gen = AIDP_GEN_NUMBER, .width = 10};
        golden(&n, "37", "[30,40)");
        golden(&n, "40", "[40,50)");
        golden(&n, "-3", "[-10,0)");
        golden(&n, "0.5", "[0,10)");
        golden(&n, "1e3", "[1000,1010)");
        golden(&n, "abc", "<null>");
        golden(&n, " 37", "<null>");
        golden(&n, "inf", "<null>");
        golden(&n, "nan", "<null>");
        n.width = 2.5;
        golden(&n, "6", "[5,7.5)");
        struct aidp_xform p = {.kind = AIDP_XF_GENERALIZE, .gen = AIDP_GEN_PREFIX, .keep = 3};
        golden(&p, "02139", "021");
        golden(&p, "SW1A 1AA", "SW1");
        golden(&p, "ÄÖÜß", "ÄÖÜ");
        golden(&p, "12", "12");
        struct aidp_xform b = {.kind = AIDP_XF_GENERALIZE,
                               .gen = AIDP_GEN_BANDS,
                               .bands = {0, 18, 40, 65},
                               .n_bands = 4};
        golden(&b, "17", "0-18");
        golden(&b, "18", "18-40");
        golden(&b, "64.9", "40-65");
        golden(&b, "65", "65+");
        golden(&b, "-1", "<0");
        golden(&b, "old", "<null>");
}

Test(xform, null_and_drop_and_raw)
{
        struct aidp_xform x = {.kind = AIDP_XF_NULL};
        golden(&x, "secret", "<null>");
        x.kind = AIDP_XF_DROP;
        golden(&x, "secret", "<null>");
        x.kind = AIDP_XF_RAW;
        golden(&x, "plain", "plain");
}

Test(xform, rank_and_describe)
{
        struct aidp_xform k[6] = {{.kind = AIDP_XF_RAW},  {.kind = AIDP_XF_GENERALIZE},
                                  {.kind = AIDP_XF_MASK}, {.kind = AIDP_XF_TOKENIZE},
                                  {.kind = AIDP_XF_NULL}, {.kind = AIDP_XF_DROP}};
        for (int i = 0; i + 1 < 6; i++)
                cr_assert_lt(aidp_xform_rank(&k[i]), aidp_xform_rank(&k[i + 1]));
        char buf[128];
        struct aidp_xform t = tokenize(AIDP_TOK_HMAC, "patient", "tok-1");
        aidp_xform_describe(&t, buf, sizeof buf);
        cr_assert_str_eq(buf, "tokenize(hmac, domain=patient, key=tok-1)");
        struct aidp_xform g = {.kind = AIDP_XF_GENERALIZE, .gen = AIDP_GEN_DATE_YEAR};
        aidp_xform_describe(&g, buf, sizeof buf);
        cr_assert_str_eq(buf, "generalize(date:year)");
        struct aidp_xform b = {.kind = AIDP_XF_GENERALIZE,
                               .gen = AIDP_GEN_BANDS,
                               .bands = {0, 18, 40, 65},
                               .n_bands = 4};
        aidp_xform_describe(&b, buf, sizeof buf);
        cr_assert_str_eq(buf, "generalize(bands:0,18,40,65)");
        struct aidp_xform m = {.kind = AIDP_XF_MASK, .keep_last = 4};
        aidp_xform_describe(&m, buf, sizeof buf);
        cr_assert_str_eq(buf, "mask(keep_first=0, keep_last=4, char='*')");
        aidp_xform_describe(&k[5], buf, sizeof buf);
        cr_assert_str_eq(buf, "drop");
}
