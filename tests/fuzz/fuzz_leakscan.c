/* libFuzzer harness for the output leak scan (views/leakscan.h). Input:
 * byte 0 picks the minimum length (4..11) and byte 1 a chunk size; then
 * values separated by '\n' up to the first NUL; the rest is the output file.
 * Checked: the same hits and examples whatever the chunking (one piece vs
 * the picked size); and when no value has a byte with another JSON or CSV
 * form, the hit count equals a naive case-insensitive search's. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "views/leakscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void scan(const struct aidp_leakset *s, const uint8_t *t, size_t n, size_t chunk,
                 struct aidp_leak_report *rep)
{
        struct aidp_leakscan *sc = NULL;
        aidp_error err = {0};
        memset(rep, 0, sizeof *rep);
        if (aidp_leakscan_begin(s, "f", rep, &sc, &err) < 0)
                abort();
        for (size_t off = 0; off < n;) {
                size_t k = chunk < n - off ? chunk : n - off;
                aidp_leakscan_feed(sc, t + off, k);
                off += k;
        }
        aidp_leakscan_end(sc);
}

static bool plain(const uint8_t *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (v[i] < 0x20 || v[i] >= 0x80 || v[i] == '"' || v[i] == '\\' || v[i] == '/')
                        return false;
        return true;
}

static bool seen_before(const uint8_t *const *vs, const size_t *ls, size_t i)
{
        for (size_t j = 0; j < i; j++)
                if (ls[j] == ls[i] && !strncasecmp((const char *)vs[j], (const char *)vs[i], ls[i]))
                        return true;
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        size_t min_len = 4 + (data[0] & 7), chunk = 1 + data[1];
        const uint8_t *p = data + 2, *end = data + size;
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        const uint8_t *text = nul ? nul + 1 : end;
        size_t tlen = (size_t)(end - text);
        struct aidp_leakset *s = NULL;
        aidp_error err = {0};
        if (aidp_leakset_new(min_len, &s, &err) < 0)
                abort();
        enum { MAXV = 64 };
        const uint8_t *vs[MAXV];
        size_t ls[MAXV], nv = 0;
        bool all_plain = true;
        for (const uint8_t *v = p; v < (nul ? nul : end) && nv < MAXV;) {
                const uint8_t *e = memchr(v, '\n', (size_t)((nul ? nul : end) - v));
                size_t l = (size_t)((e ? e : (nul ? nul : end)) - v);
                if (l >= min_len && l <= AIDP_LEAK_VALUE_MAX) {
                        vs[nv] = v, ls[nv] = l, nv++;
                        all_plain = all_plain && plain(v, l);
                }
                if (aidp_leakset_add(s, "col", "lab", v, l) < 0)
                        abort();
                v += l + 1;
        }
        if (aidp_leakset_seal(s, &err) < 0)
                abort();
        struct aidp_leak_report a, b;
        scan(s, text, tlen, tlen ? tlen : 1, &a);
        scan(s, text, tlen, chunk, &b);
        if (a.hits != b.hits || a.n_examples != b.n_examples || a.bytes != tlen)
                abort();
        for (size_t i = 0; i < a.n_examples; i++)
                if (a.examples[i].offset != b.examples[i].offset || a.examples[i].offset >= tlen)
                        abort();
        if (all_plain && nv == aidp_leakset_count(s)) {
                uint64_t want = 0;
                for (size_t i = 0; i < nv; i++)
                        for (size_t q = 0; !seen_before(vs, ls, i) && q + ls[i] <= tlen; q++)
                                want += !strncasecmp((const char *)text + q, (const char *)vs[i],
                                                     ls[i]);
                if (want != a.hits)
                        abort();
        }
        aidp_leakset_free(s);
        return 0;
}
