/* Sealed format 3: a dataset sealed with a schema carries it in the
 * authenticated header; one label byte changed in the file (to another valid
 * label, so only the header tag can tell) is refused as tampering. */
#define _GNU_SOURCE
#include "tests/sealed_util.h"
#include "views/view.h"

static const char schema_yaml[] = "apiVersion: aidp/v1\nkind: Schema\nfiles:\n"
                                  "  - pattern: \"*.csv\"\n    format: csv\n    columns:\n"
                                  "      email: [pii.direct]\n      dob: [pii.quasi]\n";

static char *T;
static struct aidp_keys K;
static char sealed[4096], victim[4096];

static void setup(void)
{
        T = tmpdir_new();
        keys_static(&K, TEST_KEK);
        char src[4096];
        TEST_SNPRINTF(src, "%s/patients.csv", T);
        FILE *f = fopen(src, "w");
        fputs("email,dob\nalice@example.com,1984-07-21\n", f);
        fclose(f);
        TEST_SNPRINTF(sealed, "%s/p.sealed", T);
        TEST_SNPRINTF(victim, "%s/victim.sealed", T);
        struct aidp_schema s;
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_parse_yaml(schema_yaml, strlen(schema_yaml), "s", &s, &err), 0);
        uint8_t *enc = NULL;
        size_t n = 0;
        cr_assert_eq(aidp_schema_encode(&s, &enc, &n, &err), 0);
        aidp_schema_free(&s);
        struct aidp_seal_params p = {.schema = enc, .schema_len = n};
        meta_default(&p.meta, "patients");
        struct aidp_seal_result res;
        cr_assert_eq(seal_path(src, sealed, &p, &K, &res, &err), 0, "%s", err.msg);
        cr_assert_eq(res.header.format_version, 3);
        free(enc);
}

static void teardown(void)
{
        tmpdir_rm(T);
        aidp_keys_free(&K);
}

TestSuite(sealed_schema, .init = setup, .fini = teardown, .timeout = 60);

Test(sealed_schema, the_schema_comes_back_authenticated)
{
        struct aidp_sealed *s = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_open(sealed, &K, &s, &err), 0, "%s", err.msg);
        struct aidp_schema sc;
        cr_assert_eq(aidp_sealed_header_schema(aidp_sealed_header_of(s), &sc, &err), 1);
        cr_assert_str_eq(sc.files[0].columns[0].name, "email");
        cr_assert_str_eq(sc.files[0].columns[0].labels[0], "pii.direct");
        cr_assert_eq(aidp_schema_match(&sc, "patients.csv"), &sc.files[0]);
        aidp_schema_free(&sc);
        aidp_sealed_close(s);
        cr_assert_eq(unseal_path(sealed, NULL, &K, 1, NULL, &err), 0, "%s", err.msg);
}

Test(sealed_schema, a_flipped_label_is_tampering)
{
        size_t len;
        uint8_t *b = read_all(sealed, &len);
        uint8_t *lab = memmem(b, len, "pii.direct", 10);
        cr_assert_not_null(lab, "label not found in the header");
        lab[4] = 'e'; /* pii.eirect: still a valid label, still a canonical schema */
        write_all(victim, b, len);
        struct aidp_sealed *s = NULL;
        aidp_error err = {0};
        int r = aidp_sealed_open(victim, &K, &s, &err);
        cr_assert_lt(r, 0, "a changed label was accepted");
        cr_assert_eq(err.status, AIDP_EXIT_DATA, "%s", err.msg);
        cr_assert(strstr(err.msg, "victim.sealed"), "%s", err.msg);
        cr_assert(strstr(err.msg, "tamper") || strstr(err.msg, "authentic"), "%s", err.msg);
        free(b);
}
