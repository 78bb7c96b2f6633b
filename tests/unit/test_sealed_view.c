/* Decrypting through a column view (sealed.h, struct aidp_sealed_view;
 * supervisor/sealed/sealed_view.c): files whose view transforms a column are
 * written only as the viewer makes them, others as sealed; many small files
 * sharing segments and one file spanning many are viewed by several workers
 * with the same result and digest as by one; a malformed file fails with its
 * position and leaves nothing behind; every hidden value is handed over. */
#include <pthread.h>

#include "tests/sealed_util.h"
#include "views/view.h"

static char *T;
static struct aidp_keys K;
static struct aidp_schema S;
static struct aidp_view_rule R;
static struct aidp_view V;
static struct aidp_file_view FV[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static size_t n_hidden;
static bool hid_alice;

static const char SCHEMA[] = "apiVersion: aidp/v1\n"
                             "kind: Schema\n"
                             "files:\n"
                             "  - pattern: \"sub/*.csv\"\n"
                             "    format: csv\n"
                             "    columns:\n"
                             "      name: [pii.direct]\n"
                             "  - pattern: \"*.csv\"\n"
                             "    format: csv\n"
                             "    columns:\n"
                             "      name: [pii.direct]\n";

static void hidden(void *opaque, const char *column, const char *label, const void *value,
                   size_t len)
{
        (void)opaque;
        pthread_mutex_lock(&mu);
        n_hidden++;
        cr_assert_str_eq(column, "name");
        cr_assert_str_eq(label, "pii.direct");
        if (len == 5 && !memcmp(value, "alice", 5))
                hid_alice = true;
        pthread_mutex_unlock(&mu);
}

static void setup(void)
{
        T = tmpdir_new();
        keys_static(&K, TEST_KEK);
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_parse_yaml(SCHEMA, sizeof SCHEMA - 1, "schema.yaml", &S, &err), 0,
                     "%s", err.msg);
        R = (struct aidp_view_rule){.match = "pii.direct", .x = {.kind = AIDP_XF_DROP}};
        V = (struct aidp_view){.name = "t", .labels = &R, .n_labels = 1};
        const struct aidp_view *vs[] = {&V};
        for (size_t k = 0; k < S.n_files; k++)
                cr_assert_eq(aidp_view_resolve(vs, 1, &S.files[k], &FV[k], &err), 0, "%s", err.msg);
        n_hidden = 0;
        hid_alice = false;
}

static void teardown(void)
{
        views_teardown(FV, &S, T, &K);
}

TestSuite(sealed_view, .init = setup, .fini = teardown, .timeout = 60);

static void put(const char *rel, const char *text)
{
        char p[4096];
        TEST_SNPRINTF(p, "%s/src/%s", T, rel);
        write_all(p, (const uint8_t *)text, strlen(text));
}

/* src/ with one big CSV over many 4 KiB segments, 20 small ones sharing
 * segments, a raw file and an empty CSV (header only). */
static void make_src(const char *bad)
{
        char d[4096];
        TEST_SNPRINTF(d, "%s/src", T);
        mkdir_p(d, 0755);
        TEST_SNPRINTF(d, "%s/src/sub", T);
        mkdir_p(d, 0755);
        size_t cap = 1 << 20, o = 0;
        char *big = malloc(cap);
        o += (size_t)snprintf(big, cap, "id,name,age\n");
        for (int i = 0; i < 5000; i++)
                o += (size_t)snprintf(big + o, cap - o, "%d,secret-%d,%d\n", i, i, i % 90);
        put("big.csv", big);
        free(big);
        for (int i = 0; i < 20; i++) {
                char rel[64], text[128];
                snprintf(rel, sizeof rel, "sub/s%02d.csv", i);
                snprintf(text, sizeof text, "id,name\n%d,alice\n%d,bob-%d\n", i, i, i);
                put(rel, text);
        }
        if (bad)
                put("sub/bad.csv", bad);
        put("raw.txt", "raw,alice\n");
        put("empty.csv", "id,name\n");
}

static char *slurp(const char *rel)
{
        char p[4096];
        TEST_SNPRINTF(p, "%s/%s", T, rel);
        size_t len = 0;
        return (char *)read_all(p, &len);
}

static int decrypt_viewed(const char *out_rel, unsigned threads, struct aidp_sealed_result *res,
                          aidp_error *err)
{
        char sealed[4096], out[4096];
        TEST_SNPRINTF(sealed, "%s/x.sealed", T);
        TEST_SNPRINTF(out, "%s/%s", T, out_rel);
        struct aidp_sealed *s = NULL;
        cr_assert_eq(aidp_sealed_open(sealed, &K, &s, err), 0, "%s", err->msg);
        mkdir(out, 0700);
        int dfd = open(out, O_RDONLY | O_DIRECTORY);
        cr_assert(dfd >= 0);
        struct aidp_sealed_view v = {.dataset = "ds", .schema = &S, .files = FV, .hidden = hidden};
        struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
        o.threads = threads;
        o.view = &v;
        int r = aidp_sealed_decrypt(s, dfd, &o, res, err);
        close(dfd);
        aidp_sealed_close(s);
        return r;
}

static void seal_src(void)
{
        char src[4096], sealed[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        TEST_SNPRINTF(sealed, "%s/x.sealed", T);
        unlink(sealed);
        struct aidp_seal_params p = {.segment_size = 4096};
        meta_default(&p.meta, "ds");
        aidp_error err = {0};
        cr_assert_eq(seal_path(src, sealed, &p, &K, NULL, &err), 0, "%s", err.msg);
}

Test(sealed_view, viewed_files_hold_only_the_view_and_others_are_as_sealed)
{
        make_src(NULL);
        seal_src();
        struct aidp_sealed_result r1, r4;
        aidp_error err = {0};
        cr_assert_eq(decrypt_viewed("out1", 1, &r1, &err), 0, "%s", err.msg);
        size_t hidden1 = n_hidden;
        cr_assert_eq(decrypt_viewed("out4", 4, &r4, &err), 0, "%s", err.msg);
        cr_expect_eq(r1.n_viewed, 22, "big.csv, 20 small ones and empty.csv");
        cr_expect_eq(r4.n_viewed, r1.n_viewed);
        cr_expect_eq(memcmp(r1.received_digest, r4.received_digest, 32), 0,
                     "the digest depends on the thread count");
        cr_expect_eq(hidden1, 5000 + 40, "one hidden value per row");
        cr_expect(hid_alice);
        char *big = slurp("out4/big.csv");
        cr_expect_null(strstr(big, "secret-"), "a dropped value was written");
        cr_expect_not_null(strstr(big, "4999"), "the kept columns are missing");
        free(big);
        char *s7 = slurp("out4/sub/s07.csv");
        cr_expect_null(strstr(s7, "alice"));
        cr_expect_not_null(strstr(s7, "7"));
        free(s7);
        char *raw = slurp("out4/raw.txt");
        cr_expect_str_eq(raw, "raw,alice\n", "a file no pattern matches is as sealed");
        free(raw);
        char *e1 = slurp("out1/sub/s03.csv"), *e4 = slurp("out4/sub/s03.csv");
        cr_expect_str_eq(e1, e4);
        free(e1);
        free(e4);
}

Test(sealed_view, a_malformed_file_fails_with_its_position_and_leaves_nothing)
{
        make_src("id,name\n1,alice\n2,bob,extra\n");
        seal_src();
        struct aidp_sealed_result r;
        aidp_error err = {0};
        cr_assert_lt(decrypt_viewed("out", 4, &r, &err), 0);
        cr_expect_eq(err.status, AIDP_EXIT_DATA);
        cr_expect_not_null(strstr(err.msg, "ds/sub/bad.csv:3:"), "%s", err.msg);
        char out[4096];
        TEST_SNPRINTF(out, "%s/out", T);
        cr_expect_eq(count_entries(out), 0, "the failed decryption left entries behind");
}

Test(sealed_view, without_a_view_every_file_is_as_sealed)
{
        make_src(NULL);
        seal_src();
        char sealed[4096], out[4096];
        TEST_SNPRINTF(sealed, "%s/x.sealed", T);
        TEST_SNPRINTF(out, "%s/plain", T);
        struct aidp_sealed_result r;
        aidp_error err = {0};
        cr_assert_eq(unseal_path(sealed, out, &K, 2, &r, &err), 0, "%s", err.msg);
        cr_expect_eq(r.n_viewed, 0);
        char *big = slurp("plain/big.csv");
        cr_expect_not_null(strstr(big, "secret-4999"));
        free(big);
}
