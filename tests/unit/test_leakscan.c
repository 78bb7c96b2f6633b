/* The output leak scan's set and automaton (views/leakscan.h): every hit is
 * checked against a naive search over the same bytes. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views/leakscan.h"

static struct aidp_leakset *set_of(size_t min_len, const char *const *values, size_t n)
{
        struct aidp_leakset *s = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_leakset_new(min_len, &s, &err), 0, "%s", err.msg);
        for (size_t i = 0; i < n; i++)
                cr_assert_eq(
                        aidp_leakset_add(s, "email", "pii.direct", values[i], strlen(values[i])),
                        0);
        cr_assert_eq(aidp_leakset_seal(s, &err), 0, "%s", err.msg);
        return s;
}

/* Scan text fed in pieces of `chunk` bytes (0: all at once). */
static struct aidp_leak_report scan(const struct aidp_leakset *s, const char *file,
                                    const void *text, size_t len, size_t chunk)
{
        struct aidp_leak_report rep = {0};
        struct aidp_leakscan *sc = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_leakscan_begin(s, file, &rep, &sc, &err), 0, "%s", err.msg);
        const char *p = text;
        for (size_t off = 0; off < len;) {
                size_t k = chunk && chunk < len - off ? chunk : len - off;
                cr_assert_eq(aidp_leakscan_feed(sc, p + off, k), 0);
                off += k;
        }
        aidp_leakscan_end(sc);
        return rep;
}

Test(leakscan, finds_a_value_in_every_chunking)
{
        const char *v[] = {"alice@example.org"};
        struct aidp_leakset *s = set_of(0, v, 1);
        const char text[] = "model weights ... \x01\x02 alice@example.org \xff tail";
        for (size_t chunk = 0; chunk < sizeof text; chunk++) {
                struct aidp_leak_report rep = scan(s, "model.bin", text, sizeof text - 1, chunk);
                cr_assert_eq(rep.hits, 1, "chunk %zu: %llu hits", chunk,
                             (unsigned long long)rep.hits);
                cr_assert_eq(rep.examples[0].offset, 21, "chunk %zu", chunk);
                cr_assert_str_eq(rep.examples[0].file, "model.bin");
                cr_assert_str_eq(rep.examples[0].label, "pii.direct");
                cr_assert_str_eq(rep.examples[0].column, "email");
                cr_assert_eq(rep.bytes, sizeof text - 1);
                cr_assert_eq(rep.files, 1);
        }
        aidp_leakset_free(s);
}

Test(leakscan, case_insensitive_and_at_both_ends)
{
        const char *v[] = {"Alice@Example.org"};
        struct aidp_leakset *s = set_of(0, v, 1);
        const char text[] = "ALICE@EXAMPLE.ORG,alice@example.org";
        struct aidp_leak_report rep = scan(s, "a.csv", text, sizeof text - 1, 5);
        cr_assert_eq(rep.hits, 2);
        cr_assert_eq(rep.examples[0].offset, 0);
        cr_assert_eq(rep.examples[1].offset, 18);
        aidp_leakset_free(s);
}

Test(leakscan, overlapping_values_are_each_counted)
{
        const char *v[] = {"abcdefgh", "defghijk", "abcdefghijk", "ghijkl"};
        struct aidp_leakset *s = set_of(6, v, 4);
        const char text[] = "xxabcdefghijklxx";
        for (size_t chunk = 1; chunk < 6; chunk++) {
                struct aidp_leak_report rep = scan(s, "f", text, sizeof text - 1, chunk);
                cr_assert_eq(rep.hits, 4, "chunk %zu: %llu", chunk, (unsigned long long)rep.hits);
        }
        aidp_leakset_free(s);
}

Test(leakscan, json_escaped_and_csv_quoted_forms)
{
        const char *v[] = {"o\"brien/x@example.org", "Zoë Müller", "tab\there!"};
        struct aidp_leakset *s = set_of(0, v, 3);
        const char *texts[] = {
                "{\"n\":\"o\\\"brien/x@example.org\"}",      /* escaped quote */
                "{\"n\":\"o\\\"brien\\/x@example.org\"}",    /* json-c's \/ */
                "{\"n\":\"Zo\\u00eb M\\u00fcller\"}",        /* ensure_ascii */
                "{\"n\":\"ZO\\u00EB M\\u00FCLLER\"}",        /* upper-case hex */
                "id,name\n1,\"o\"\"brien/x@example.org\"\n", /* CSV quoting */
                "{\"n\":\"tab\\there!\"}",                   /* \t */
                "Zoë Müller",                                /* raw UTF-8 */
        };
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
                struct aidp_leak_report rep = scan(s, "log.json", texts[i], strlen(texts[i]), 3);
                cr_assert_eq(rep.hits, 1, "text %zu: %llu hits", i, (unsigned long long)rep.hits);
        }
        aidp_leakset_free(s);
}

Test(leakscan, short_values_are_not_kept_and_nothing_else_matches)
{
        const char *v[] = {"bob", "12345", "secret-value"};
        struct aidp_leakset *s = set_of(6, v, 3);
        cr_assert_eq(aidp_leakset_count(s), 1, "only the value of 6 bytes or more");
        const char text[] = "bob 12345 bob12345 secret-valu ecret-value SECRET_VALUE";
        struct aidp_leak_report rep = scan(s, "f", text, sizeof text - 1, 0);
        cr_assert_eq(rep.hits, 0);
        cr_assert_eq(rep.n_examples, 0);
        aidp_leakset_free(s);
}

Test(leakscan, duplicates_are_kept_once)
{
        const char *v[] = {"carol@example.org", "carol@example.org", "CAROL@example.org"};
        struct aidp_leakset *s = set_of(0, v, 3);
        cr_assert_eq(aidp_leakset_count(s), 2, "exact duplicates once");
        struct aidp_leak_report rep = scan(s, "f", "carol@example.org", 17, 0);
        cr_assert_eq(rep.hits, 1, "values equal but for case match once");
        aidp_leakset_free(s);
}

Test(leakscan, refuses_bad_lengths_and_adds_after_seal)
{
        struct aidp_leakset *s = NULL;
        aidp_error err = {0};
        cr_assert_lt(aidp_leakset_new(3, &s, &err), 0);
        cr_assert(strstr(err.msg, "minimum value length"), "%s", err.msg);
        cr_assert_lt(aidp_leakset_new(65, &s, &err), 0);
        cr_assert_eq(aidp_leakset_new(0, &s, &err), 0);
        cr_assert_eq(aidp_leakset_seal(s, &err), 0);
        cr_assert_lt(aidp_leakset_add(s, "c", "l", "abcdefgh", 8), 0);
        cr_assert_lt(aidp_leakset_seal(s, &err), 0);
        struct aidp_leak_report rep = scan(s, "f", "abcdefgh", 8, 0);
        cr_assert_eq(rep.hits, 0, "an empty set matches nothing");
        aidp_leakset_free(s);
}

Test(leakscan, labels_are_counted_and_examples_capped)
{
        struct aidp_leakset *s = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_leakset_new(0, &s, &err), 0);
        cr_assert_eq(aidp_leakset_add(s, "email", "pii.direct", "dave@example.org", 16), 0);
        cr_assert_eq(aidp_leakset_add(s, "diagnosis", "phi", "J45.909-asthma", 14), 0);
        cr_assert_eq(aidp_leakset_seal(s, &err), 0);
        char text[4096] = "";
        for (int i = 0; i < 10; i++)
                strcat(text, "dave@example.org J45.909-asthma\n");
        struct aidp_leak_report rep = scan(s, "out/log.txt", text, strlen(text), 7);
        cr_assert_eq(rep.hits, 20);
        cr_assert_eq(rep.n_labels, 2);
        cr_assert_eq(rep.n_examples, AIDP_LEAK_EXAMPLES);
        for (size_t i = 0; i < rep.n_labels; i++)
                cr_assert_eq(rep.per_label[i].hits, 10, "%s", rep.per_label[i].label);
        cr_assert_str_eq(rep.examples[1].column, "diagnosis");
        cr_assert_eq(rep.examples[1].offset, 17);
        aidp_leakset_free(s);
}

/* A tiny deterministic generator, so failures reproduce. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static int cmp_folded(const void *a, const void *b)
{
        return strcasecmp(a, b);
}

/* Every (position, length) of the text looked up among the distinct values. */
static uint64_t naive_count(char (*vals)[24], size_t n, const char *text, size_t len)
{
        char(*sorted)[24] = malloc(n * sizeof *sorted);
        memcpy(sorted, vals, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_folded);
        uint64_t hits = 0;
        for (size_t p = 0; p < len; p++)
                for (size_t l = 6; l < 24 && p + l <= len; l++) {
                        char key[24] = {0};
                        memcpy(key, text + p, l);
                        hits += bsearch(key, sorted, n, sizeof *sorted, cmp_folded) != NULL;
                }
        free(sorted);
        return hits;
}

struct adder {
        struct aidp_leakset *s;
        char (*vals)[24];
        size_t from, to;
};

static void *add_some(void *arg)
{
        struct adder *a = arg;
        for (size_t i = a->from; i < a->to; i++)
                aidp_leakset_add(a->s, "c", "l", a->vals[i], strlen(a->vals[i]));
        return NULL;
}

Test(leakscan, many_values_from_four_threads_match_like_a_naive_search)
{
        enum { N = 5000, LEN = 1 << 18 };
        char(*vals)[24] = calloc(N, sizeof *vals);
        char *text = malloc(LEN);
        cr_assert(vals && text);
        /* A small alphabet, so prefixes collide and near-misses abound. */
        for (size_t i = 0; i < N; i++) {
                size_t l = 6 + rnd() % 12;
                for (size_t j = 0; j < l; j++)
                        vals[i][j] = "abcdAB-"[rnd() % 7];
        }
        for (size_t i = 0; i < LEN; i++)
                text[i] = "abcdABCD-."[rnd() % 10];
        for (int k = 0; k < 300; k++) { /* plant some */
                const char *v = vals[rnd() % N];
                memcpy(text + rnd() % (LEN - 24), v, strlen(v));
        }
        struct aidp_leakset *s = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_leakset_new(6, &s, &err), 0);
        pthread_t th[4];
        struct adder ad[4];
        for (int t = 0; t < 4; t++) {
                ad[t] = (struct adder){s, vals, (size_t)t * N / 4, (size_t)(t + 1) * N / 4};
                cr_assert_eq(pthread_create(&th[t], NULL, add_some, &ad[t]), 0);
        }
        for (int t = 0; t < 4; t++)
                pthread_join(th[t], NULL);
        cr_assert_eq(aidp_leakset_seal(s, &err), 0);
        uint64_t want = naive_count(vals, N, text, LEN);
        cr_assert_gt(want, 200);
        struct aidp_leak_report rep = scan(s, "f", text, LEN, 4093);
        cr_assert_eq(rep.hits, want, "%llu hits, naive %llu", (unsigned long long)rep.hits,
                     (unsigned long long)want);
        aidp_leakset_free(s);
        free(vals);
        free(text);
}

static size_t allocated;
static void *count_alloc(void *opaque, size_t len)
{
        (void)opaque;
        allocated += len;
        return calloc(1, len);
}
static void count_free(void *opaque, void *p, size_t len)
{
        (void)opaque;
        for (size_t i = 0; i < len; i++)
                cr_assert_eq(((unsigned char *)p)[i], 0, "wiped before it is freed");
        allocated -= len;
        free(p);
}

Test(leakscan, values_live_in_the_callers_memory_and_are_wiped)
{
        struct aidp_leakset *s = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_leakset_new(0, &s, &err), 0);
        struct aidp_leak_alloc a = {count_alloc, count_free, NULL};
        aidp_leakset_set_alloc(s, &a);
        cr_assert_eq(aidp_leakset_add(s, "c", "l", "erin@example.org", 16), 0);
        cr_assert_gt(allocated, 0);
        cr_assert_eq(aidp_leakset_seal(s, &err), 0);
        aidp_leakset_free(s);
        cr_assert_eq(allocated, 0);
}

/* add_many (batched, the view's commit path) keeps exactly what one add per
 * value keeps: duplicates once, short values not, each value with its own
 * (column, label), across several groups and column runs. */
Test(leakscan, add_many_keeps_what_add_keeps)
{
        struct aidp_leakset *a = NULL, *b = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_leakset_new(6, &a, &err), 0);
        cr_assert_eq(aidp_leakset_new(6, &b, &err), 0);
        enum { N = 1000 };
        static char vals[N][32];
        static struct aidp_view_hidden v[N];
        for (int i = 0; i < N; i++) {
                bool email = i % 3 != 0;
                snprintf(vals[i], sizeof vals[i], email ? "user%d@example.org" : "%d", i % 400);
                v[i] = (struct aidp_view_hidden){email ? "email" : "id", email ? "pii.direct" : "q",
                                                 vals[i], strlen(vals[i])};
                cr_assert_eq(aidp_leakset_add(a, v[i].column, v[i].label, vals[i], v[i].len), 0);
        }
        cr_assert_eq(aidp_leakset_add_many(b, v, 7), 0);
        cr_assert_eq(aidp_leakset_add_many(b, v + 7, N - 7), 0);
        cr_assert_eq(aidp_leakset_count(b), aidp_leakset_count(a));
        cr_assert_eq(aidp_leakset_count(b), 400, "the distinct emails; no short id");
        cr_assert_eq(aidp_leakset_seal(b, &err), 0, "%s", err.msg);
        struct aidp_leak_report rep = scan(b, "out/x.txt", "see user399@example.org", 23, 5);
        cr_assert_eq(rep.hits, 1);
        cr_assert_str_eq(rep.examples[0].column, "email");
        struct aidp_view_hidden late = {"c", "l", "abcdefgh", 8};
        cr_assert_lt(aidp_leakset_add_many(b, &late, 1), 0, "added after seal");
        aidp_leakset_free(a);
        aidp_leakset_free(b);
}
