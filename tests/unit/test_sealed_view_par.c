/* One viewed file in chunks on every worker (supervisor/sealed/
 * sealed_view_par.c, views/viewer_chunk.h) gives exactly what one viewer fed
 * the whole file gives: the same bytes, the same received digest, the same
 * hidden values, and for bad data the same error at the same row and
 * column. Blocks of one 4 KiB segment cut each test file into dozens of
 * chunks, many of them inside quoted fields that hold newlines. */
#include <pthread.h>
#include <stdarg.h>

#include "tests/sealed_util.h"
#include "views/view.h"

static char *T;
static struct aidp_keys K;
static struct aidp_schema S;
static struct aidp_view_rule R[3];
static struct aidp_view V;
static struct aidp_file_view FV[2];
static struct aidp_token_key TK = {.key_id = "t1"};
static struct aidp_token_keys TKS = {.keys = &TK, .n = 1};
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t hid_n, hid_sum;

static const char SCHEMA[] = "apiVersion: aidp/v1\n"
                             "kind: Schema\n"
                             "files:\n"
                             "  - pattern: \"*.csv\"\n"
                             "    format: csv\n"
                             "    columns:\n"
                             "      name: [pii.direct]\n"
                             "      email: [pii.email]\n"
                             "      born: [pii.quasi]\n"
                             "  - pattern: \"*.jsonl\"\n"
                             "    format: jsonl\n"
                             "    columns:\n"
                             "      /name: [pii.direct]\n"
                             "      /email: [pii.email]\n"
                             "      /born: [pii.quasi]\n";

/* Order-free: the whole-file path and the chunked one may visit files in a
 * different order; within a file both hand values over in file order. */
static void hidden(void *opaque, const char *column, const char *label, const void *value,
                   size_t len)
{
        (void)opaque, (void)label;
        uint64_t h = 1469598103934665603ULL;
        for (const char *c = column; *c; c++)
                h = (h ^ (uint8_t)*c) * 1099511628211ULL;
        for (size_t i = 0; i < len; i++)
                h = (h ^ ((const uint8_t *)value)[i]) * 1099511628211ULL;
        pthread_mutex_lock(&mu);
        hid_n++;
        hid_sum += h;
        pthread_mutex_unlock(&mu);
}

/* The batched form (a committed chunk's values): must add up the same. */
static void hidden_many(void *opaque, const struct aidp_view_hidden *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                hidden(opaque, v[i].column, v[i].label, v[i].value, v[i].len);
}

static void setup(void)
{
        T = tmpdir_new();
        keys_static(&K, TEST_KEK);
        memset(TK.key, 0x5a, sizeof TK.key);
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_parse_yaml(SCHEMA, sizeof SCHEMA - 1, "schema.yaml", &S, &err), 0,
                     "%s", err.msg);
        R[0] = (struct aidp_view_rule){.match = "pii.direct",
                                       .x = {.kind = AIDP_XF_MASK, .keep_first = 1}};
        R[1] = (struct aidp_view_rule){.match = "pii.email",
                                       .x = {.kind = AIDP_XF_TOKENIZE,
                                             .mode = AIDP_TOK_HMAC,
                                             .domain = "person",
                                             .key_id = "t1"}};
        R[2] = (struct aidp_view_rule){
                .match = "pii.quasi", .x = {.kind = AIDP_XF_GENERALIZE, .gen = AIDP_GEN_DATE_YEAR}};
        V = (struct aidp_view){.name = "t", .labels = R, .n_labels = 3};
        const struct aidp_view *vs[] = {&V};
        for (size_t k = 0; k < S.n_files; k++)
                cr_assert_eq(aidp_view_resolve(vs, 1, &S.files[k], &FV[k], &err), 0, "%s", err.msg);
}

static void teardown(void)
{
        views_teardown(FV, &S, T, &K);
}

TestSuite(sealed_view_par, .init = setup, .fini = teardown, .timeout = 120);

struct text {
        char *p;
        size_t len, cap;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
        va_list ap;
        for (;;) {
                va_start(ap, fmt);
                int w = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
                va_end(ap);
                cr_assert_geq(w, 0);
                if ((size_t)w < t->cap - t->len) {
                        t->len += (size_t)w;
                        return;
                }
                t->cap = t->cap * 2 + (size_t)w + 1;
                t->p = realloc(t->p, t->cap);
                cr_assert_not_null(t->p);
        }
}

/* A CSV of rows with quotes, commas and newlines inside quoted fields,
 * empty fields, UTF-8, some very long fields full of newlines; eol "\n" or
 * "\r\n"; bad_row > 0 gives that data row a field too many. */
static struct text make_csv(const char *eol, bool bom, int rows, int bad_row)
{
        struct text t = {.p = malloc(64), .cap = 64};
        add(&t, "%sid,name,email,born,note%s", bom ? "\xef\xbb\xbf" : "", eol);
        for (int i = 1; i <= rows; i++) {
                add(&t, "%d,", i);
                if (i % 7 == 0)
                        add(&t, "\"Ann \"\"%d\"\", Jr.\",", i);
                else
                        add(&t, "Jürgen %d,", i);
                add(&t, i % 11 == 0 ? "," : "p%d@example.org,", i);
                add(&t, "19%02d-0%d-1%d,", i % 100, 1 + i % 9, i % 10);
                if (i % 5 == 0) {
                        add(&t, "\"multi");
                        for (int k = 0; k < (i % 45 == 0 ? 900 : 3); k++)
                                add(&t, "%sline %d, \"\"q\"\"", k % 2 ? "\n" : "\r\n", k);
                        add(&t, "\"");
                } else {
                        add(&t, "plain %d", i);
                }
                if (i == bad_row)
                        add(&t, ",extra");
                add(&t, "%s", eol);
        }
        return t;
}

static struct text make_jsonl(int rows, int bad_row)
{
        struct text t = {.p = malloc(64), .cap = 64};
        for (int i = 1; i <= rows; i++) {
                if (i % 13 == 0)
                        add(&t, "\n"); /* a blank line */
                if (i == bad_row) {
                        add(&t, "{\"id\": %d, \"name\": \"x\"\n", i);
                        continue;
                }
                add(&t,
                    "{\"id\":%d,\"name\":\"N\\u00e9 %d\\nline\",\"email\":\"e%d@x.org\","
                    "\"born\":\"1980-0%d-02\",\"note\":\"%s\"}\n",
                    i, i, i, 1 + i % 9, i % 9 == 0 ? "a \\\"quoted\\\" one, with a comma" : "n");
        }
        return t;
}

struct outcome {
        int r;
        char msg[AIDP_ERROR_MSG_MAX];
        uint8_t digest[32];
        char *data;
        size_t len;
        uint64_t hid_n, hid_sum;
};

/* Decrypt the sealed src/NAME with the view: whole (block 0: one thread,
 * blocks larger than the file) or in chunks (4 threads, blocks of `block`
 * bytes: one or three 4 KiB segments). */
static struct outcome run(const char *name, size_t block)
{
        bool chunked = block != 0;
        char sealed[4096], out[4096], path[4096];
        TEST_SNPRINTF(sealed, "%s/x.sealed", T);
        TEST_SNPRINTF(out, "%s/out-%zu", T, block);
        aidp_error err = {0};
        struct aidp_sealed *s = NULL;
        cr_assert_eq(aidp_sealed_open(sealed, &K, &s, &err), 0, "%s", err.msg);
        mkdir(out, 0700);
        int dfd = open(out, O_RDONLY | O_DIRECTORY);
        cr_assert(dfd >= 0);
        struct aidp_sealed_view v = {
                .dataset = "ds", .schema = &S, .files = FV, .keys = &TKS, .hidden = hidden};
        if (block == 3 * 4096)
                v.hidden_many = hidden_many; /* one chunked run batched, the other not */
        struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
        o.threads = chunked ? 4 : 1;
        o.view_block = chunked ? block : (size_t)1 << 30;
        o.view = &v;
        hid_n = hid_sum = 0;
        struct aidp_sealed_result res = {0};
        struct outcome oc = {0};
        oc.r = aidp_sealed_decrypt(s, dfd, &o, &res, &err);
        close(dfd);
        aidp_sealed_close(s);
        snprintf(oc.msg, sizeof oc.msg, "%s", oc.r < 0 ? err.msg : "");
        memcpy(oc.digest, res.received_digest, 32);
        oc.hid_n = hid_n;
        oc.hid_sum = hid_sum;
        TEST_SNPRINTF(path, "%s/%s", out, name);
        if (oc.r == 0)
                oc.data = (char *)read_all(path, &oc.len);
        return oc;
}

/* Both ways give the same; returns the error (empty on success). */
static char *same(const char *name, const struct text *in)
{
        char d[4096], p[4096], sealed[4096];
        TEST_SNPRINTF(d, "%s/src", T);
        mkdir_p(d, 0755);
        TEST_SNPRINTF(p, "%s/src/%s", T, name);
        write_all(p, (const uint8_t *)in->p, in->len);
        cr_assert_gt(in->len, 16 * 4096, "too small to be cut into chunks");
        TEST_SNPRINTF(sealed, "%s/x.sealed", T);
        struct aidp_seal_params sp = {.segment_size = 4096};
        meta_default(&sp.meta, "ds");
        aidp_error err = {0};
        unlink(sealed);
        cr_assert_eq(seal_path(d, sealed, &sp, &K, NULL, &err), 0, "%s", err.msg);
        struct outcome a = run(name, 0), b = run(name, 4096), c = run(name, 3 * 4096);
        cr_expect_str_eq(b.msg, c.msg, "%s: the errors differ with the block size: [%s] [%s]", name,
                         b.msg, c.msg);
        cr_expect(b.len == c.len && (!b.len || !memcmp(b.data, c.data, b.len)),
                  "%s: the views differ with the block size", name);
        cr_expect_eq(b.hid_n, c.hid_n);
        cr_expect_eq(b.hid_sum, c.hid_sum);
        free(c.data);
        cr_expect_eq(a.r, b.r, "%s: whole %d (%s), chunked %d (%s)", name, a.r, a.msg, b.r, b.msg);
        cr_expect_str_eq(a.msg, b.msg, "%s: the errors differ", name);
        if (a.r == 0 && b.r == 0) {
                cr_expect_eq(a.len, b.len, "%s: %zu bytes whole, %zu chunked", name, a.len, b.len);
                cr_expect(a.len == b.len && !memcmp(a.data, b.data, a.len), "%s: the views differ",
                          name);
                cr_expect_eq(memcmp(a.digest, b.digest, 32), 0, "%s: received digests differ",
                             name);
                cr_expect_gt(a.hid_n, 0);
                /* (A failed run's values are thrown away with the run.) */
                cr_expect_eq(a.hid_n, b.hid_n, "%s: %llu hidden values whole, %llu chunked", name,
                             (unsigned long long)a.hid_n, (unsigned long long)b.hid_n);
                cr_expect_eq(a.hid_sum, b.hid_sum, "%s: the hidden values differ", name);
        }
        free(a.data);
        free(b.data);
        unlink(p);
        return strdup(b.msg);
}

Test(sealed_view_par, csv_lf_with_quotes_and_newlines_in_fields)
{
        struct text t = make_csv("\n", false, 3000, 0);
        free(same("a.csv", &t));
        free(t.p);
}

Test(sealed_view_par, csv_crlf_with_a_bom)
{
        struct text t = make_csv("\r\n", true, 3000, 0);
        free(same("b.csv", &t));
        free(t.p);
}

Test(sealed_view_par, csv_without_a_final_newline)
{
        struct text t = make_csv("\n", false, 2500, 0);
        t.len--;
        free(same("c.csv", &t));
        free(t.p);
}

Test(sealed_view_par, a_ragged_row_deep_in_the_file_fails_at_the_same_position)
{
        struct text t = make_csv("\n", false, 3000, 2718);
        char *msg = same("d.csv", &t);
        char want[64];
        snprintf(want, sizeof want, "ds/d.csv:%d:", 2718 + 1);
        cr_expect_not_null(strstr(msg, want), "%s", msg);
        free(msg);
        free(t.p);
}

Test(sealed_view_par, an_unterminated_quote_fails_at_the_same_position)
{
        struct text t = make_csv("\n", false, 3000, 0);
        add(&t, "9999,\"never closed,x,1990-01-01,n\n");
        for (int i = 0; i < 2000; i++)
                add(&t, "%d,a,b,c,d\n", i);
        free(same("e.csv", &t));
        free(t.p);
}

Test(sealed_view_par, a_quote_inside_an_unquoted_field_fails_at_the_same_position)
{
        struct text t = make_csv("\n", false, 2000, 0);
        add(&t, "1,ab\"c,x,1990-01-01,n\n");
        for (int i = 0; i < 2000; i++)
                add(&t, "%d,a,b,c,d\n", i);
        free(same("f.csv", &t));
        free(t.p);
}

Test(sealed_view_par, a_field_longer_than_many_chunks)
{
        struct text t = make_csv("\n", false, 500, 0);
        add(&t, "1,big,x@y,1990-01-01,\"");
        for (int i = 0; i < 40000; i++)
                add(&t, "%s", i % 50 ? "y" : "\n");
        add(&t, "\"\n");
        for (int i = 0; i < 500; i++)
                add(&t, "%d,a,b,1999-01-01,d\n", i);
        free(same("g.csv", &t));
        free(t.p);
}

Test(sealed_view_par, jsonl_with_blank_lines)
{
        struct text t = make_jsonl(3000, 0);
        free(same("h.jsonl", &t));
        free(t.p);
}

Test(sealed_view_par, jsonl_bad_line_fails_at_the_same_position)
{
        struct text t = make_jsonl(3000, 2345);
        free(same("i.jsonl", &t));
        free(t.p);
}

Test(sealed_view_par, invalid_utf8_deep_in_the_file_fails_at_the_same_position)
{
        struct text t = make_csv("\n", false, 2000, 0);
        add(&t, "2001,J\xc3\xbcrgen,x@y,1990-01-01,bad \xff byte\n");
        for (int i = 0; i < 2000; i++)
                add(&t, "%d,a,b,1999-01-01,d\n", i);
        char *msg = same("j.csv", &t);
        cr_expect_not_null(strstr(msg, ":2002:5: invalid UTF-8 at byte 5 of the field"), "%s", msg);
        free(msg);
        free(t.p);
}

/* The segments inside a file viewed in chunks are read by the view pass
 * alone (the first pass skips them): one altered there still fails the
 * run as tampering, not as a change during the injection, and nothing of
 * the file is left. */
Test(sealed_view_par, an_altered_segment_inside_a_chunked_file_fails_as_tampering)
{
        struct text t = make_csv("\n", false, 3000, 0);
        char d[4096], p[4096], sealed[4096], out[4096];
        TEST_SNPRINTF(d, "%s/src", T);
        mkdir_p(d, 0755);
        TEST_SNPRINTF(p, "%s/src/k.csv", T);
        write_all(p, (const uint8_t *)t.p, t.len);
        TEST_SNPRINTF(sealed, "%s/x.sealed", T);
        struct aidp_seal_params sp = {.segment_size = 4096};
        meta_default(&sp.meta, "ds");
        aidp_error err = {0};
        unlink(sealed);
        cr_assert_eq(seal_path(d, sealed, &sp, &K, NULL, &err), 0, "%s", err.msg);
        struct aidp_sealed *s = NULL;
        cr_assert_eq(aidp_sealed_open(sealed, &K, &s, &err), 0, "%s", err.msg);
        const struct aidp_sealed_header *h = aidp_sealed_header_of(s);
        uint64_t seg = h->n_segments / 2;
        off_t at = (off_t)(h->payload_offset + seg * (4096 + AIDP_SEALED_TAG_LEN) + 100);
        aidp_sealed_close(s);
        int fd = open(sealed, O_RDWR);
        cr_assert(fd >= 0);
        uint8_t b;
        cr_assert_eq(pread(fd, &b, 1, at), 1);
        b ^= 0x01;
        cr_assert_eq(pwrite(fd, &b, 1, at), 1);
        close(fd);
        for (size_t block = 0; block <= 4096; block += 4096) {
                struct outcome oc = run("k.csv", block);
                cr_expect_lt(oc.r, 0, "block %zu: an altered segment was accepted", block);
                char want[64];
                snprintf(want, sizeof want, "segment %llu of", (unsigned long long)seg);
                cr_expect_not_null(strstr(oc.msg, want), "block %zu: %s", block, oc.msg);
                cr_expect_not_null(strstr(oc.msg, "failed authentication (modified"), "%s", oc.msg);
                TEST_SNPRINTF(out, "%s/out-%zu/k.csv", T, block);
                cr_expect_neq(access(out, F_OK), 0, "block %zu: %s was left behind", block, out);
                free(oc.data);
        }
        unlink(p);
        free(t.p);
}

/* Short values whose view is several times longer (an e-mail of a few bytes
 * becomes a token of about 40): a chunk's view outgrows its buffer
 * (aidp_view_out_cap, one block) and its hidden values theirs (half a
 * block), so its guess is dropped and the committer views it in order,
 * straight to the file: the same bytes and values as one viewer. */
Test(sealed_view_par, chunks_whose_view_outgrows_their_buffers_are_viewed_in_order)
{
        struct text t = {.p = malloc(64), .cap = 64};
        add(&t, "id,name,email,born,note\n");
        for (int i = 1; i <= 9000; i++)
                add(&t, "%d,n,%d@x,1980-01-02,%s\n", i, i % 97,
                    i % 500 == 0 ? "\"a quoted\nnote\"" : "");
        free(same("e.csv", &t));
        free(t.p);
}
