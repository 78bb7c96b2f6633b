/* views/viewer_csv.c's fast path: libcsv's built-in space test (no
 * callback per byte) is used for a buffer only where it parses exactly as
 * the viewer's own no_space test. Checked against libcsv itself: random
 * CSV, cut into random buffers, parsed twice (always no_space; or per
 * buffer as the viewer chooses), must give the same fields, records and
 * errors; and the viewer fed it whole or in pieces gives the same result. */
#include <criterion/criterion.h>
#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/yaml.h"
#include "views/viewer_internal.h"

static unsigned rnd_state = 1;
static unsigned rnd(unsigned mod)
{
        rnd_state = rnd_state * 1103515245u + 12345u;
        return (rnd_state >> 16) % mod;
}

/* A field: bare (spaces and tabs inside) or quoted (anything inside,
 * quotes doubled); or, where hazard, one of the shapes where the space
 * tests differ: a space or tab at a bare field's edge, before the opening
 * quote or after the closing one. */
static size_t random_field(char *o, bool hazard)
{
        static const char bare[] = "ab \t";
        static const char quoted[] = "ab ,\t\r\n\"";
        size_t k = 0, n = rnd(7);
        unsigned shape = hazard ? rnd(3) : 3 + rnd(2);
        if (shape == 0 || shape == 3) {
                for (size_t i = 0; i < n; i++) {
                        char c = bare[rnd(sizeof bare - 1)];
                        bool edge = i == 0 || i + 1 == n;
                        o[k++] = !hazard && edge && (c == ' ' || c == '\t') ? 'c' : c;
                }
                if (hazard)
                        o[rnd(2) ? 0 : (k++, k - 1)] = rnd(2) ? ' ' : '\t';
                return k;
        }
        if (shape == 1)
                o[k++] = ' ';
        o[k++] = '"';
        for (size_t i = 0; i < n; i++)
                if ((o[k++] = quoted[rnd(sizeof quoted - 1)]) == '"')
                        o[k++] = '"';
        o[k++] = '"';
        if (shape == 2)
                o[k++] = rnd(2) ? ' ' : '\t';
        if (shape == 2 && rnd(2))
                o[k++] = 'z'; /* text after the closing quote: refused at the space or here */
        return k;
}

/* Records of 2 fields (now and then 1 or 3); hazards: none, one (its
 * field's offset in *at), or in about one field in 20. */
static size_t random_csv(char *o, size_t records, int hazards, size_t *at)
{
        size_t k = (size_t)sprintf(o, "note,ssn%s", rnd(2) ? "\r\n" : "\n");
        size_t one = rnd((unsigned)records);
        *at = 0;
        for (size_t r = 0; r < records; r++) {
                unsigned width = rnd(50) == 0 ? 1 + 2 * rnd(2) : 2;
                for (unsigned f = 0; f < width; f++) {
                        if (f)
                                o[k++] = ',';
                        bool hz = hazards == 2 ? rnd(20) == 0 : hazards == 1 && r == one && f == 0;
                        if (hz && hazards == 1)
                                *at = k;
                        k += random_field(o + k, hz);
                }
                k += (size_t)sprintf(o + k, "%s", rnd(3) ? "\n" : "\r\n");
        }
        return k;
}

/* What libcsv reported: each field as "len:bytes", each record end as "|c". */
struct log {
        char *p;
        size_t len, cap;
};

static void log_put(struct log *l, const void *p, size_t n)
{
        if (l->len + n + 1 > l->cap) {
                l->cap = (l->len + n + 1) * 2;
                l->p = realloc(l->p, l->cap);
        }
        memcpy(l->p + l->len, p, n);
        l->len += n;
        l->p[l->len] = 0;
}

static void on_field(void *s, size_t n, void *data)
{
        char head[32];
        log_put(data, head, (size_t)snprintf(head, sizeof head, "%zu:", n));
        log_put(data, s ? s : "", n);
}

static void on_record(int c, void *data)
{
        char tail[16];
        log_put(data, tail, (size_t)snprintf(tail, sizeof tail, "|%d\n", c));
}

static int no_space(unsigned char c)
{
        return 0;
}

/* Parse in[0..n) cut at cuts[]; fast: the viewer's choice per buffer. */
static void parse(const char *in, size_t n, const size_t *cuts, size_t n_cuts, bool fast,
                  struct log *l, size_t *fast_bufs)
{
        struct csv_parser p;
        cr_assert_eq(csv_init(&p, CSV_STRICT | CSV_STRICT_FINI), 0);
        csv_set_space_func(&p, no_space);
        bool inq = false;
        size_t at = 0;
        for (size_t c = 0; c <= n_cuts; c++) {
                size_t end = c < n_cuts ? cuts[c] : n;
                const uint8_t *b = (const uint8_t *)in + at;
                bool use = fast && !aidp_viewer_csv_edge_space(b, end - at, &inq);
                *fast_bufs += use && end > at;
                csv_set_space_func(&p, use ? NULL : no_space);
                size_t done = csv_parse(&p, b, end - at, on_field, on_record, l);
                if (done != end - at) {
                        char e[64];
                        log_put(l, e, (size_t)snprintf(e, sizeof e, "ERR@%zu", at + done));
                        csv_free(&p);
                        return;
                }
                at = end;
        }
        if (csv_fini(&p, on_field, on_record, l) != 0)
                log_put(l, "ERR@fini", 8);
        csv_free(&p);
}

static int cmp_size(const void *a, const void *b)
{
        size_t x = *(const size_t *)a, y = *(const size_t *)b;
        return x < y ? -1 : x > y;
}

Test(csvfast, libcsv_parses_the_same_with_the_builtin_space_test_where_chosen)
{
        static char in[96 << 10];
        size_t fast_bufs = 0, refused = 0;
        for (int t = 0; t < 3000; t++) {
                size_t at;
                size_t n = random_csv(in, 1 + rnd(t % 3 ? 30 : 800), t % 3, &at);
                size_t cuts[3], n_cuts = rnd(4);
                for (size_t c = 0; c < n_cuts; c++)
                        cuts[c] = rnd((unsigned)n + 1);
                /* A cut next to the one hazard: a pair split over two buffers. */
                if (n_cuts && at && rnd(2))
                        cuts[0] = at + rnd(3) - 1 <= n ? at + rnd(3) - 1 : n;
                qsort(cuts, n_cuts, sizeof cuts[0], cmp_size);
                struct log slow = {0}, fast = {0};
                size_t unused = 0;
                parse(in, n, cuts, n_cuts, false, &slow, &unused);
                parse(in, n, cuts, n_cuts, true, &fast, &fast_bufs);
                cr_assert_str_eq(fast.p, slow.p, "case %d (%zu bytes, %zu cuts)", t, n, n_cuts);
                refused += strstr(slow.p, "ERR@") != NULL;
                free(slow.p);
                free(fast.p);
        }
        /* The test saw both: buffers parsed fast, and inputs refused. */
        cr_assert_gt(fast_bufs, 1000, "%zu", fast_bufs);
        cr_assert_gt(refused, 100, "%zu", refused);
        cr_assert_lt(refused, 2900, "%zu", refused);
}

/* The check itself, on shapes named one by one. */
Test(csvfast, edge_space_cases)
{
        static const struct {
                const char *s;
                bool inq_before, hit, inq_after;
        } cases[] = {
                {"ab,cd\n", false, false, false},    {"a b,c d\n", false, false, false},
                {" ab", false, true, false},         {"ab ", false, true, false},
                {"a ,b", false, true, false},        {"a, b", false, true, false},
                {"a \r\n", false, true, false},      {"a\n b", false, true, false},
                {"\"a, b\",c", false, false, false}, {"\"a \",c", false, false, false},
                {"x\" ,", true, true, false},        {"a, b\",c", true, false, false},
                {"\"a\nb", false, false, true},      {"\"\"\"\"", false, false, false},
                {"a ,b", true, false, true},         {"\"x  y\" z", false, true, false},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                bool inq = cases[i].inq_before;
                bool hit = aidp_viewer_csv_edge_space((const uint8_t *)cases[i].s,
                                                      strlen(cases[i].s), &inq);
                cr_assert_eq(hit, cases[i].hit, "'%s'", cases[i].s);
                cr_assert_eq(inq, cases[i].inq_after, "'%s'", cases[i].s);
        }
        /* The same past the 64-byte blocks: one hazard anywhere in a long buffer. */
        char buf[300];
        for (size_t pos = 1; pos + 2 < sizeof buf; pos++) {
                memset(buf, 'a', sizeof buf);
                buf[pos] = ',';
                bool inq = false;
                cr_assert(!aidp_viewer_csv_edge_space((uint8_t *)buf, sizeof buf, &inq));
                buf[pos + 1] = ' ';
                cr_assert(aidp_viewer_csv_edge_space((uint8_t *)buf, sizeof buf, &inq), "%zu", pos);
                buf[pos - 1] = '"';
                buf[sizeof buf - 1] = '"';
                inq = false; /* the space is now inside quotes */
                cr_assert(!aidp_viewer_csv_edge_space((uint8_t *)buf, sizeof buf, &inq), "%zu",
                          pos);
                cr_assert(!inq);
        }
}
