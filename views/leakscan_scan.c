/* The leak scan's automaton and scanner (leakscan.h).
 *
 * Why a hashed prefix filter and not Aho-Corasick: the set holds up to
 * millions of values in up to six forms each (raw, JSON-escaped four ways,
 * CSV-quoted), all folded to lower case. A full Aho-Corasick DFA needs 256
 * transitions per trie node (gigabytes at 100k values); a sparse one chases
 * a pointer per input byte, far from cache. Here every pattern is at least
 * `window` = min(min_len, 8) bytes, so at every position of the folded text
 * the next `window` bytes are hashed and looked up in a blocked Bloom filter
 * (one 64-bit word per lookup, two bits, 64 bits per key: ~0.1% false
 * candidates), whose 8 bytes per pattern stay in cache; only candidates go
 * to the exact table (patterns sorted by their window key) and are compared
 * byte for byte. Memory is linear in the patterns' bytes, the work per byte
 * is constant, and chunking costs a carried tail of max_len - 1 bytes. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views/leakscan_internal.h"

#define SCAN_BLOCK (64u << 10)
#define FORMS_MAX  6
#define MIX1       0x9e3779b97f4a7c15ull
#define MIX2       0xbf58476d1ce4e5b9ull

static inline uint8_t fold(uint8_t c)
{
        return (uint8_t)(c - 'A') < 26u ? (uint8_t)(c + 32) : c;
}

static inline uint64_t load_key(const uint8_t *p, uint64_t mask)
{
        uint64_t k;
        memcpy(&k, p, sizeof k);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        k = __builtin_bswap64(k); /* the mask keeps the first bytes */
#endif
        return k & mask;
}

/* ----------------------------------------------------------- the forms */

struct form {
        uint8_t b[AIDP_LEAK_VALUE_MAX];
        size_t len;
};

static void put(struct form *f, const void *s, size_t n)
{
        for (size_t i = 0; i < n && f->len < sizeof f->b; i++)
                f->b[f->len++] = ((const uint8_t *)s)[i];
}

/* One UTF-8 sequence at v (at most n bytes): its code point and length, or 0. */
static size_t utf8_decode(const uint8_t *v, size_t n, uint32_t *cp)
{
        size_t l = v[0] >= 0xf0 ? 4 : v[0] >= 0xe0 ? 3 : v[0] >= 0xc2 ? 2 : 0;
        if (!l || l > n || v[0] > 0xf4)
                return 0;
        uint32_t c = v[0] & (0x7f >> l);
        for (size_t i = 1; i < l; i++) {
                if ((v[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (v[i] & 0x3f);
        }
        if ((l == 3 && (c < 0x800 || (c >= 0xd800 && c < 0xe000))) || (l == 4 && c < 0x10000) ||
            c > 0x10ffff)
                return 0;
        *cp = c;
        return l;
}

/* The value as a JSON string body: the escapes every encoder uses, `/` as
 * `\/` (json-c) or not, non-ASCII as \uXXXX (Python's ensure_ascii) or not. */
static void json_form(const uint8_t *v, size_t len, bool slash, bool ascii, struct form *f)
{
        f->len = 0;
        for (size_t i = 0; i < len && f->len < sizeof f->b;) {
                uint8_t c = v[i];
                char e[16];
                uint32_t cp;
                size_t l;
                static const char short_esc[] = "\b\f\n\r\t";
                const char *se = c ? strchr(short_esc, c) : NULL;
                if (c == '"' || c == '\\' || (c == '/' && slash)) {
                        e[0] = '\\', e[1] = (char)c;
                        put(f, e, 2);
                } else if (se) {
                        e[0] = '\\', e[1] = "bfnrt"[se - short_esc];
                        put(f, e, 2);
                } else if (c < 0x20) {
                        snprintf(e, sizeof e, "\\u%04x", c);
                        put(f, e, 6);
                } else if (c >= 0x80 && ascii && (l = utf8_decode(v + i, len - i, &cp))) {
                        if (cp >= 0x10000) {
                                cp -= 0x10000;
                                snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
                                         0xdc00 + (cp & 0x3ff));
                                put(f, e, 12);
                        } else {
                                snprintf(e, sizeof e, "\\u%04x", cp);
                                put(f, e, 6);
                        }
                        i += l;
                        continue;
                } else {
                        put(f, &c, 1);
                }
                i++;
        }
}

/* The forms of one value worth searching: raw, the JSON escapes that differ
 * from it, and the CSV-quoted body ("" for ") when it has a quote. */
static size_t value_forms(const uint8_t *v, size_t len, struct form *out)
{
        size_t n = 0;
        out[n].len = 0;
        put(&out[n++], v, len);
        for (int k = 0; k < 4; k++)
                json_form(v, len, k & 1, k & 2, &out[n++]);
        struct form *c = &out[n++];
        c->len = 0;
        for (size_t i = 0; i < len; i++)
                put(c, v[i] == '"' ? "\"\"" : (const char *)&v[i], v[i] == '"' ? 2 : 1);
        for (size_t i = 0; i < n; i++) /* fold, and drop duplicates */
                for (size_t j = 0; j < out[i].len; j++)
                        out[i].b[j] = fold(out[i].b[j]);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
                bool dup = false;
                for (size_t j = 0; j < m && !dup; j++)
                        dup = out[j].len == out[i].len && !memcmp(out[j].b, out[i].b, out[i].len);
                if (!dup && m != i)
                        out[m] = out[i];
                m += !dup;
        }
        return m;
}

/* ------------------------------------------------------------ the seal */

static int pat_cmp(const void *a, const void *b)
{
        const struct leak_pat *x = a, *y = b;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        if (x->len != y->len)
                return x->len < y->len ? -1 : 1;
        int c = memcmp(x->bytes, y->bytes, x->len);
        if (c)
                return c;
        return x->pair < y->pair ? -1 : x->pair > y->pair;
}

static uint64_t key_mask(unsigned window)
{
        return window >= 8 ? ~0ull : (1ull << (8 * window)) - 1;
}

static int add_forms(struct aidp_leakset *s, const struct leak_rec *r, size_t cap)
{
        struct form forms[FORMS_MAX];
        size_t nf = value_forms(r->bytes, r->len, forms);
        uint64_t mask = key_mask(s->window);
        for (size_t i = 0; i < nf && s->n_pats < cap; i++) {
                uint8_t *b = aidp_leak_arena_alloc(s, &s->pat_arena, forms[i].len + 8);
                if (!b)
                        return -ENOMEM;
                memcpy(b, forms[i].b, forms[i].len);
                struct leak_pat *p = &s->pats[s->n_pats++];
                *p = (struct leak_pat){.bytes = b,
                                       .key = load_key(b, mask),
                                       .len = (uint32_t)forms[i].len,
                                       .pair = r->pair};
                if (p->len > s->max_len)
                        s->max_len = p->len;
        }
        OPENSSL_cleanse(forms, sizeof forms);
        return 0;
}

static size_t pow2_at_least(size_t n)
{
        size_t p = 1;
        while (p < n)
                p <<= 1;
        return p;
}

static unsigned log2_of(size_t p)
{
        unsigned l = 0;
        while ((size_t)1 << l < p)
                l++;
        return l;
}

/* The Bloom filter and the exact table over the sorted, unique patterns. */
static int build_tables(struct aidp_leakset *s)
{
        size_t keys = 0;
        for (size_t i = 0; i < s->n_pats; i++)
                keys += i == 0 || s->pats[i].key != s->pats[i - 1].key;
        s->bloom_words = pow2_at_least(keys < 64 ? 64 : keys);
        s->bloom_shift = 64 - log2_of(s->bloom_words);
        s->n_buckets = pow2_at_least(keys * 2 < 64 ? 64 : keys * 2);
        s->bucket_shift = 64 - log2_of(s->n_buckets);
        s->bloom = calloc(s->bloom_words, sizeof *s->bloom);
        s->buckets = calloc(s->n_buckets, sizeof *s->buckets);
        if (!s->bloom || !s->buckets)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_pats;) {
                size_t j = i;
                while (j < s->n_pats && s->pats[j].key == s->pats[i].key)
                        j++;
                uint64_t h = s->pats[i].key * MIX1;
                uint64_t g = (h ^ (h >> 29)) * MIX2;
                s->bloom[h >> s->bloom_shift] |= 1ull << (g >> 58) | 1ull << ((g >> 52) & 63);
                size_t b = (size_t)(h >> s->bucket_shift);
                while (s->buckets[b].count)
                        b = (b + 1) & (s->n_buckets - 1);
                s->buckets[b] = (struct leak_bucket){
                        .key = s->pats[i].key, .first = (uint32_t)i, .count = (uint32_t)(j - i)};
                i = j;
        }
        return 0;
}

static int seal(struct aidp_leakset *s)
{
        size_t cap = (size_t)atomic_load(&s->count) * FORMS_MAX;
        s->window = s->min_len < 8 ? (unsigned)s->min_len : 8;
        s->pats = calloc(cap ? cap : 1, sizeof *s->pats);
        if (!s->pats)
                return -ENOMEM;
        for (size_t i = 0; i < LEAK_SHARDS; i++) {
                const struct leak_shard *sh = &s->shards[i];
                for (size_t j = 0; j < sh->cap; j++)
                        if (sh->slots[j] && add_forms(s, sh->slots[j], cap) < 0)
                                return -ENOMEM;
        }
        qsort(s->pats, s->n_pats, sizeof *s->pats, pat_cmp);
        size_t m = 0;
        for (size_t i = 0; i < s->n_pats; i++)
                if (!m || s->pats[m - 1].len != s->pats[i].len ||
                    memcmp(s->pats[m - 1].bytes, s->pats[i].bytes, s->pats[i].len))
                        s->pats[m++] = s->pats[i];
        s->n_pats = m;
        return build_tables(s);
}

int aidp_leakset_seal(struct aidp_leakset *s, aidp_error *err)
{
        if (atomic_exchange(&s->sealed, true))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EBUSY,
                                      "leak scan: the value set is already sealed");
        int r = seal(s);
        if (r < 0) {
                aidp_leak_automaton_free(s);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, -r,
                                      "leak scan: building the automaton over %zu values: out "
                                      "of memory",
                                      aidp_leakset_count(s));
        }
        return 0;
}

void aidp_leak_automaton_free(struct aidp_leakset *s)
{
        aidp_leak_arena_free(s, &s->pat_arena);
        if (s->pats)
                OPENSSL_cleanse(s->pats, s->n_pats * sizeof *s->pats);
        free(s->pats);
        s->pats = NULL;
        s->n_pats = 0;
        /* The keys are each pattern's first bytes. */
        if (s->buckets)
                OPENSSL_cleanse(s->buckets, s->n_buckets * sizeof *s->buckets);
        free(s->buckets);
        free(s->bloom);
        s->buckets = NULL;
        s->bloom = NULL;
}

/* ---------------------------------------------------------- the scanner */

struct aidp_leakscan {
        const struct aidp_leakset *s;
        struct aidp_leak_report *rep;
        char file[256];
        uint8_t *buf; /* folded bytes; buf[0] is byte `base` of the file */
        size_t cap, len, next;
        uint64_t base;
};

int aidp_leakscan_begin(const struct aidp_leakset *s, const char *file,
                        struct aidp_leak_report *rep, struct aidp_leakscan **ret, aidp_error *err)
{
        if (!atomic_load(&s->sealed) || (s->n_pats && !s->bloom))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "leak scan: the value set is not sealed");
        struct aidp_leakscan *sc = calloc(1, sizeof *sc);
        if (sc)
                sc->cap = s->max_len + SCAN_BLOCK + 8;
        if (!sc || !(sc->buf = calloc(1, sc->cap))) {
                free(sc);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        sc->s = s;
        sc->rep = rep;
        snprintf(sc->file, sizeof sc->file, "%s", file ? file : "");
        rep->files++;
        *ret = sc;
        return 0;
}

static void record(struct aidp_leakscan *sc, uint64_t off, uint32_t pair)
{
        struct aidp_leak_report *rep = sc->rep;
        const struct leak_pair *p = &sc->s->pairs[pair];
        const size_t nl = sizeof rep->per_label / sizeof rep->per_label[0];
        rep->hits++;
        size_t i = 0;
        while (i < rep->n_labels && strcmp(rep->per_label[i].label, p->label) &&
               strcmp(rep->per_label[i].label, "(other labels)"))
                i++;
        if (i == rep->n_labels) {
                rep->n_labels++;
                snprintf(rep->per_label[i].label, sizeof rep->per_label[i].label, "%s",
                         i + 1 < nl ? p->label : "(other labels)");
        }
        rep->per_label[i].hits++;
        if (rep->n_examples < AIDP_LEAK_EXAMPLES) {
                struct aidp_leak_hit *h = &rep->examples[rep->n_examples++];
                snprintf(h->file, sizeof h->file, "%s", sc->file);
                h->offset = off;
                snprintf(h->label, sizeof h->label, "%s", p->label);
                snprintf(h->column, sizeof h->column, "%s", p->column);
        }
}

static void verify(struct aidp_leakscan *sc, size_t p, uint64_t key, uint64_t h)
{
        const struct aidp_leakset *s = sc->s;
        for (size_t b = (size_t)(h >> s->bucket_shift); s->buckets[b].count;
             b = (b + 1) & (s->n_buckets - 1)) {
                if (s->buckets[b].key != key)
                        continue;
                const struct leak_pat *pt = &s->pats[s->buckets[b].first];
                for (uint32_t i = 0; i < s->buckets[b].count; i++, pt++)
                        if (p + pt->len <= sc->len && !memcmp(sc->buf + p, pt->bytes, pt->len))
                                record(sc, sc->base + p, pt->pair);
                return;
        }
}

/* Every start in [sc->next, end): the filter, then the exact table. */
static void scan_to(struct aidp_leakscan *sc, size_t end)
{
        const struct aidp_leakset *s = sc->s;
        const uint64_t mask = key_mask(s->window);
        const uint64_t *bloom = s->bloom;
        const unsigned shift = s->bloom_shift;
        const uint8_t *buf = sc->buf;
        for (size_t p = sc->next; p < end; p++) {
                uint64_t key = load_key(buf + p, mask);
                uint64_t h = key * MIX1;
                uint64_t w = bloom[h >> shift];
                uint64_t g = (h ^ (h >> 29)) * MIX2;
                if ((w >> (g >> 58)) & (w >> ((g >> 52) & 63)) & 1)
                        verify(sc, p, key, h);
        }
        if (end > sc->next)
                sc->next = end;
}

int aidp_leakscan_feed(struct aidp_leakscan *sc, const void *data, size_t len)
{
        const uint8_t *in = data;
        const struct aidp_leakset *s = sc->s;
        sc->rep->bytes += len;
        if (!s->n_pats)
                return 0;
        while (len) {
                size_t k = len < SCAN_BLOCK ? len : SCAN_BLOCK;
                uint8_t *dst = sc->buf + sc->len;
                for (size_t i = 0; i < k; i++) /* branch-free: vectorised */
                        dst[i] = (uint8_t)(in[i] + (((uint8_t)(in[i] - 'A') < 26u) << 5));
                sc->len += k;
                in += k;
                len -= k;
                /* Only starts whose longest pattern fits are checked now;
                 * the rest wait for the next bytes (or the end). */
                if (sc->len >= s->max_len)
                        scan_to(sc, sc->len - s->max_len + 1);
                size_t keep = sc->len - sc->next;
                memmove(sc->buf, sc->buf + sc->next, keep);
                sc->base += sc->next;
                sc->len = keep;
                sc->next = 0;
        }
        return 0;
}

void aidp_leakscan_end(struct aidp_leakscan *sc)
{
        if (!sc)
                return;
        if (sc->s->n_pats && sc->len >= sc->s->window)
                scan_to(sc, sc->len - sc->s->window + 1);
        OPENSSL_cleanse(sc->buf, sc->cap);
        free(sc->buf);
        free(sc);
}
