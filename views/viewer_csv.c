/* The viewer's CSV half: RFC 4180 with a header row, parsed by libcsv
 * (Debian libcsv-dev) in strict mode, written back re-quoted with dropped
 * columns gone. Positions are RECORD:FIELD, 1-based, the header being
 * record 1. */
#include <errno.h>
#include <malloc.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "views/viewer_internal.h"

#define CSV_BLOCK 4096u

/* libcsv grows its one field buffer through these: the old block is wiped
 * before it is freed (it held a plaintext field), growth is geometric, and a
 * field over AIDP_VIEW_FIELD_MAX is refused here (libcsv reports ENOMEM). */
static void *wiping_realloc(void *p, size_t n)
{
        if (n > AIDP_VIEW_FIELD_MAX + 2 * CSV_BLOCK)
                return NULL;
        size_t old = p ? malloc_usable_size(p) : 0;
        if (p && n <= old)
                return p;
        size_t want = old * 2 > n ? old * 2 : n;
        if (want > AIDP_VIEW_FIELD_MAX + 2 * CSV_BLOCK)
                want = AIDP_VIEW_FIELD_MAX + 2 * CSV_BLOCK;
        void *q = malloc(want);
        if (!q)
                return NULL;
        if (p) {
                memcpy(q, p, old);
                OPENSSL_cleanse(p, old);
                free(p);
        }
        return q;
}

static void wiping_free(void *p)
{
        if (p) {
                OPENSSL_cleanse(p, malloc_usable_size(p));
                free(p);
        }
}

/* RFC 4180 keeps spaces: libcsv's default would trim them. */
static int no_space(unsigned char c)
{
        return 0;
}

/* Speed: libcsv calls the space function above for every byte of an
 * unquoted field, about a sixth of its time. Its built-in test (no
 * callback: csv_set_space_func NULL) differs from no_space only for a
 * space or tab outside quotes that stands
 *   - first in a field or record (skipped, not kept),
 *   - last before a comma, CR, LF or the end of the input (trimmed),
 *   - right after a quote (kept as trailing spaces of a quoted field, not
 *     refused as text after it), or right before one (skipped before an
 *     opening quote),
 * and libcsv carries its count of trailing spaces over buffers; inside
 * quotes spaces are never tested. So a buffer with no space or tab outside
 * quotes at either end or next to a comma, CR, LF or quote parses the same
 * with the built-in test; csv_feed checks each buffer and uses no_space for
 * any other (tests/unit/test_views_csvfast.c compares both on random CSV).
 * Outside or inside quotes is the parity of the quotes fed so far: exact
 * for well-formed CSV up to its first error, where libcsv stops (a viewer
 * starts between two records: a chunk viewer whose start was a wrong guess
 * is thrown away, viewer_chunk.h). */
static inline bool is_sp(uint8_t c)
{
        return c == ' ' || c == '\t';
}

static inline bool is_delim(uint8_t c)
{
        return c == ',' || c == '\r' || c == '\n';
}

#if defined(__SSE2__)
/* Bit i: p[i] is a space or tab (*sp), a comma, CR or LF (*dl), a quote (*qt). */
static inline void classes64(const uint8_t *p, uint64_t *sp, uint64_t *dl, uint64_t *qt)
{
        uint64_t s = 0, d = 0, q = 0;
        for (int k = 0; k < 4; k++) {
                __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
                __m128i a = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')),
                                         _mm_cmpeq_epi8(v, _mm_set1_epi8('\t')));
                __m128i b = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(',')),
                                         _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
                                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))));
                __m128i c = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
                s |= (uint64_t)(uint16_t)_mm_movemask_epi8(a) << (16 * k);
                d |= (uint64_t)(uint16_t)_mm_movemask_epi8(b) << (16 * k);
                q |= (uint64_t)(uint16_t)_mm_movemask_epi8(c) << (16 * k);
        }
        *sp = s;
        *dl = d;
        *qt = q;
}

/* Bit i: the parity of bits 0..i of x. */
static inline uint64_t prefix_xor(uint64_t x)
{
        x ^= x << 1;
        x ^= x << 2;
        x ^= x << 4;
        x ^= x << 8;
        x ^= x << 16;
        x ^= x << 32;
        return x;
}
#endif

bool aidp_viewer_csv_edge_space(const uint8_t *b, size_t n, bool *inq)
{
        size_t i = 0;
        bool hit = false;
        uint64_t in = *inq;                /* inside quotes after the byte before b[i] */
        uint64_t prev_sp = 0, prev_at = 0; /* bit 0: that byte's class (outside quotes) */
#if defined(__SSE2__)
        for (; n - i >= 64; i += 64) {
                uint64_t sp, dl, qt;
                classes64(b + i, &sp, &dl, &qt);
                uint64_t q = prefix_xor(qt) ^ (0 - in); /* bit i: inside after byte i */
                in = q >> 63;
                sp &= ~q;
                uint64_t at = (dl & ~q) | qt;
                hit |= (((sp << 1 | prev_sp) & at) | ((at << 1 | prev_at) & sp)) != 0;
                hit |= i == 0 && (sp & 1);
                prev_sp = sp >> 63;
                prev_at = at >> 63;
        }
#endif
        for (; i < n; i++) {
                uint64_t qt = b[i] == '"';
                in ^= qt;
                uint64_t sp = is_sp(b[i]) && !in, at = (is_delim(b[i]) && !in) | qt;
                hit |= ((prev_sp & at) | (prev_at & sp)) != 0;
                hit |= i == 0 && sp;
                prev_sp = sp;
                prev_at = at;
        }
        *inq = in;
        return hit || prev_sp; /* prev_sp: the last byte */
}

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
/* Does any byte of w equal c? (The classic "has a zero byte" test on w ^ c:
 * exact as a yes/no, only which byte it points at may be wrong.) */
static inline uint64_t has_byte(uint64_t w, uint8_t c)
{
        uint64_t x = w ^ (ONES * c);
        return (x - ONES) & ~x & HIGHS;
}

/* Does any byte of w make a field need quotes (, " CR LF)? A zero byte never does. */
static inline bool special_word(uint64_t w)
{
        return (has_byte(w, ',') | has_byte(w, '"') | has_byte(w, '\n') | has_byte(w, '\r')) != 0;
}

static inline uint64_t load64(const char *s)
{
        uint64_t w;
        memcpy(&w, s, 8);
        return w;
}

static inline uint64_t load32(const char *s)
{
        uint32_t w;
        memcpy(&w, s, 4);
        return w;
}

/* Does s[0..n) need quotes? Whole words only, no byte loop: the last word
 * overlaps the one before it, and a field under 8 bytes is read as two
 * overlapping halves (4 to 7 bytes) or zero-padded (under 4). */
static inline bool needs_quotes(const char *s, size_t n)
{
        if (n >= 8) {
                size_t i = 0;
                for (; n - i >= 8; i += 8)
                        if (special_word(load64(s + i)))
                                return true;
                return i < n && special_word(load64(s + n - 8));
        }
        if (n >= 4)
                return special_word(load32(s) | load32(s + n - 4) << 32);
        uint64_t w = 0;
        for (size_t i = 0; i < n; i++)
                w |= (uint64_t)(uint8_t)s[i] << (8 * i);
        return special_word(w);
}

/* One output field, re-quoted where needed: copied as is when no byte needs
 * quotes (most fields never have one), else written quoted, each quote
 * doubled (found with memchr, the runs between copied whole). */
static inline int put_field(struct aidp_viewer *v, const char *s, size_t n)
{
        struct aidp_vbuf *o = &v->out;
        if (o->cap - o->len < 2 * n + 3 && aidp_vbuf_reserve(o, 2 * n + 3) < 0)
                return -ENOMEM;
        char *d = o->p + o->len;
        if (!v->out_first)
                *d++ = ',';
        v->out_first = false;
        if (!needs_quotes(s, n)) {
                memcpy(d, s, n);
                o->len = (size_t)(d + n - o->p);
                return 0;
        }
        *d++ = '"';
        for (const char *q; n && (q = memchr(s, '"', n));) {
                size_t k = (size_t)(q - s) + 1; /* up to and with the quote */
                memcpy(d, s, k);
                d += k;
                *d++ = '"';
                s += k;
                n -= k;
        }
        memcpy(d, s, n);
        d += n;
        *d++ = '"';
        o->len = (size_t)(d - o->p);
        return 0;
}

static struct viewer_col *column_at(struct aidp_viewer *v, size_t field)
{
        int idx = v->map ? v->map[field] : -1;
        return idx >= 0 ? &v->cols[idx] : NULL;
}

/* The header: map each cell to its schema column (a name twice is refused:
 * which one the schema means would be a guess) and write the cells kept. */
static int header_cell(struct aidp_viewer *v, const char *s, size_t n)
{
        size_t f = v->field;
        if (f >= AIDP_VIEW_COLUMNS_MAX * 4)
                return aidp_viewer_fail(v, 1, f + 1, "more than %d header cells",
                                        AIDP_VIEW_COLUMNS_MAX * 4);
        int *m = realloc(v->map, (f + 1) * sizeof *m);
        if (!m)
                return aidp_viewer_oom(v);
        v->map = m;
        m[f] = -1;
        for (size_t i = 0; i < v->n_cols; i++) {
                const char *name = v->cols[i].cv->column;
                if (strlen(name) == n && !memcmp(name, s, n)) {
                        for (size_t j = 0; j < f; j++)
                                if (m[j] == (int)i)
                                        return aidp_viewer_fail(v, 1, f + 1,
                                                                "header cell '%s' appears twice "
                                                                "(also field %zu)",
                                                                name, j + 1);
                        m[f] = (int)i;
                }
        }
        struct viewer_col *c = column_at(v, f);
        if (c && c->cv->x.kind == AIDP_XF_DROP)
                return 0;
        return put_field(v, s, n) < 0 ? aidp_viewer_oom(v) : 0;
}

static int data_cell(struct aidp_viewer *v, const char *s, size_t n)
{
        if (v->field >= v->n_header)
                return aidp_viewer_fail(v, v->row + 1, v->field + 1,
                                        "record has more than the header's %zu fields",
                                        v->n_header);
        struct viewer_col *c = column_at(v, v->field);
        if (!c || c->cv->x.kind == AIDP_XF_RAW)
                return put_field(v, s, n) < 0 ? aidp_viewer_oom(v) : 0;
        bool is_null;
        if (aidp_viewer_value(v, c, s, n, &is_null) < 0)
                return -1;
        if (c->cv->x.kind == AIDP_XF_DROP)
                return 0;
        /* An empty value may have no buffer yet (p NULL): memcpy wants a pointer. */
        int r = is_null || !v->value.len ? put_field(v, "", 0)
                                         : put_field(v, v->value.p, v->value.len);
        aidp_vbuf_reset(&v->value);
        return r < 0 ? aidp_viewer_oom(v) : 0;
}

static void on_field(void *s, size_t n, void *data)
{
        struct aidp_viewer *v = data;
        if (v->failed)
                return;
        const char *p = s ? s : "";
        if (n > AIDP_VIEW_FIELD_MAX) {
                aidp_viewer_fail(v, v->row + 1, v->field + 1, "field longer than %u bytes",
                                 AIDP_VIEW_FIELD_MAX);
                return;
        }
        size_t bad = v->fed_utf8 ? n : aidp_views_utf8_check((const uint8_t *)p, n);
        if (bad != n) {
                aidp_viewer_fail(v, v->row + 1, v->field + 1,
                                 "invalid UTF-8 at byte %zu of the field", bad + 1);
                return;
        }
        if (v->row == 0)
                header_cell(v, p, n);
        else
                data_cell(v, p, n);
        v->field++;
}

static void on_record(int c, void *data)
{
        struct aidp_viewer *v = data;
        if (v->failed)
                return;
        if (v->row == 0) {
                v->n_header = v->field;
                v->crlf = c == '\r';
        } else if (v->field != v->n_header) {
                aidp_viewer_fail(v, v->row + 1, v->field + 1,
                                 "record has %zu fields, the header %zu", v->field, v->n_header);
                return;
        }
        if (c >= 0 && aidp_vbuf_put(&v->out, v->crlf ? "\r\n" : "\n", v->crlf ? 2 : 1) < 0) {
                aidp_viewer_oom(v);
                return;
        }
        v->row++;
        v->field = 0;
        v->out_first = true;
        aidp_viewer_flush(v, false);
}

/* The boundary probe: libcsv's csv_fini submits the pending field and
 * record, if any, through these, so run on a copy of the parser it tells
 * whether a record is pending without a hand-made reading of its state. */
static void probe_field(void *s, size_t n, void *data)
{
        (void)s, (void)n;
        *(bool *)data = true;
}

static void probe_record(int c, void *data)
{
        (void)c;
        *(bool *)data = true;
}

bool aidp_viewer_csv_at_boundary(struct aidp_viewer *v)
{
        /* A shallow copy: csv_fini only resets the copy's counters (it writes
         * into entry_buf only with CSV_APPEND_NULL, not set) and frees nothing. */
        struct csv_parser copy = v->csv;
        bool pending = false;
        int r = csv_fini(&copy, probe_field, probe_record, &pending);
        return r == 0 && !pending && v->field == 0;
}

int aidp_viewer_csv_fork(struct aidp_viewer *child, const struct aidp_viewer *root)
{
        int r = aidp_viewer_csv_init(child);
        if (r < 0)
                return r;
        if (root->n_header && !(child->map = malloc(root->n_header * sizeof *child->map)))
                return -ENOMEM;
        if (root->n_header)
                memcpy(child->map, root->map, root->n_header * sizeof *child->map);
        child->n_header = root->n_header;
        child->crlf = root->crlf;
        child->row = 1; /* the header is the root's */
        return 0;
}

int aidp_viewer_csv_init(struct aidp_viewer *v)
{
        if (csv_init(&v->csv, CSV_STRICT | CSV_STRICT_FINI) != 0)
                return -ENOMEM;
        csv_set_realloc_func(&v->csv, wiping_realloc);
        csv_set_free_func(&v->csv, wiping_free);
        csv_set_space_func(&v->csv, no_space);
        csv_set_blk_size(&v->csv, CSV_BLOCK);
        v->csv_ready = true;
        v->out_first = true;
        v->fed_utf8 = true;
        return 0;
}

static int parse_error(struct aidp_viewer *v)
{
        int e = csv_error(&v->csv);
        if (e == CSV_ENOMEM || e == CSV_ETOOBIG)
                return aidp_viewer_fail(v, v->row + 1, v->field + 1,
                                        "field longer than %u bytes (or out of memory)",
                                        AIDP_VIEW_FIELD_MAX);
        return aidp_viewer_fail(v, v->row + 1, v->field + 1,
                                "malformed CSV (a quote inside an unquoted field, text after a "
                                "closing quote, or an unterminated quote)");
}

int aidp_viewer_csv_feed(struct aidp_viewer *v, const uint8_t *buf, size_t len)
{
        /* One pass over the whole buffer (8 bytes at a time) instead of one
         * call per field; a buffer that fails leaves the check to on_field,
         * which reports the field's own position. */
        if (v->fed_utf8 && aidp_views_utf8_check(buf, len) != len)
                v->fed_utf8 = false;
        bool fast = !aidp_viewer_csv_edge_space(buf, len, &v->csv_inq);
        if (fast != v->csv_fast) {
                csv_set_space_func(&v->csv, fast ? NULL : no_space);
                v->csv_fast = fast;
        }
        size_t done = csv_parse(&v->csv, buf, len, on_field, on_record, v);
        if (v->failed)
                return -v->err.errnum;
        if (done != len)
                return parse_error(v);
        return 0;
}

int aidp_viewer_csv_finish(struct aidp_viewer *v)
{
        int r = csv_fini(&v->csv, on_field, on_record, v);
        if (v->failed)
                return -v->err.errnum;
        if (r != 0)
                return parse_error(v);
        return 0;
}

void aidp_viewer_csv_free(struct aidp_viewer *v)
{
        if (v->csv_ready)
                csv_free(&v->csv);
        v->csv_ready = false;
        free(v->map);
        v->map = NULL;
}
