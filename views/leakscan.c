/* The output leak scan's value set (leakscan.h): the raw values the job's
 * view hid, added by the viewers of several files at once.
 *
 * Thread safety without pthreads (views/ is a pure layer): the set is 64
 * shards, each behind a C11 atomic_flag spin lock held only for one hash
 * probe and one copy of at most AIDP_LEAK_VALUE_MAX bytes, so two viewers
 * meet on a lock one add in 64 and then wait a few hundred nanoseconds. The
 * (column, label) pairs are read lock-free and appended under their own lock.
 *
 * Every byte of a value lives in chunks from the caller's allocator hooks
 * (locked, never dumped, in the supervisor) and is wiped before it goes back. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "views/leakscan_internal.h"

static void *default_alloc(void *opaque, size_t len)
{
        (void)opaque;
        return calloc(1, len);
}

static void default_free(void *opaque, void *p, size_t len)
{
        (void)opaque, (void)len;
        free(p);
}

static void spin_lock(atomic_flag *f)
{
        while (atomic_flag_test_and_set_explicit(f, memory_order_acquire))
                ;
}

static void spin_unlock(atomic_flag *f)
{
        atomic_flag_clear_explicit(f, memory_order_release);
}

/* The set's own table hash (placement only: nothing outside this file sees
 * it). Eight bytes at a time, each word folded in with a 64x64->128-bit
 * multiply (the idea of wyhash's mum): a value costs a few cycles per word
 * instead of a multiply per byte, which mattered when one run adds tens of
 * millions of values. */
static inline uint64_t mix(uint64_t a, uint64_t b)
{
        unsigned __int128 m = (unsigned __int128)a * b;
        return (uint64_t)m ^ (uint64_t)(m >> 64);
}

uint64_t aidp_leak_hash(const void *p, size_t len)
{
        const uint8_t *b = p;
        uint64_t h = 0x243f6a8885a308d3ull ^ (len * 0x9e3779b97f4a7c15ull);
        size_t i = 0;
        for (; len - i >= 8; i += 8) {
                uint64_t w;
                memcpy(&w, b + i, 8);
                h = mix(h ^ w, 0xa0761d6478bd642full);
        }
        if (i < len) {
                uint64_t w = 0;
                memcpy(&w, b + i, len - i);
                h = mix(h ^ w, 0xe7037ed1a0b428dbull);
        }
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        return h;
}

void *aidp_leak_arena_alloc(struct aidp_leakset *s, struct leak_arena *a, size_t len)
{
        struct leak_chunk *c = a->head;
        len = (len + 7) & ~(size_t)7;
        if (!c || c->cap - c->used < len) {
                size_t cap = len > LEAK_CHUNK_BYTES ? len : LEAK_CHUNK_BYTES;
                c = s->alloc.alloc(s->alloc.opaque, sizeof *c + cap);
                if (!c)
                        return NULL;
                c->cap = cap;
                c->used = 0;
                c->next = a->head;
                a->head = c;
        }
        void *p = c->data + c->used;
        c->used += len;
        return p;
}

void aidp_leak_arena_free(struct aidp_leakset *s, struct leak_arena *a)
{
        for (struct leak_chunk *c = a->head, *next; c; c = next) {
                next = c->next;
                size_t cap = c->cap;
                OPENSSL_cleanse(c, sizeof *c + cap);
                s->alloc.free(s->alloc.opaque, c, sizeof *c + cap);
        }
        a->head = NULL;
}

int aidp_leakset_new(size_t min_len, struct aidp_leakset **ret, aidp_error *err)
{
        if (min_len == 0)
                min_len = AIDP_LEAK_MIN_LEN_DEFAULT;
        if (min_len < 4 || min_len > AIDP_LEAK_MIN_LEN_MAX)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "leak scan: a minimum value length of %zu bytes (4 to %d)",
                                      min_len, AIDP_LEAK_MIN_LEN_MAX);
        struct aidp_leakset *s = calloc(1, sizeof *s);
        struct leak_pair *pairs = calloc(AIDP_LEAK_PAIRS_MAX, sizeof *pairs);
        if (!s || !pairs) {
                free(s);
                free(pairs);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        s->min_len = min_len;
        s->pairs = pairs;
        s->alloc = (struct aidp_leak_alloc){.alloc = default_alloc, .free = default_free};
        for (size_t i = 0; i < LEAK_SHARDS; i++)
                atomic_flag_clear(&s->shards[i].lock);
        atomic_flag_clear(&s->pair_lock);
        *ret = s;
        return 0;
}

void aidp_leakset_set_alloc(struct aidp_leakset *s, const struct aidp_leak_alloc *a)
{
        if (a && a->alloc && a->free)
                s->alloc = *a;
}

static bool pair_is(const struct leak_pair *p, const char *column, const char *label)
{
        return !strncmp(p->column, column, sizeof p->column - 1) &&
               !strncmp(p->label, label, sizeof p->label - 1);
}

/* The index of (column, label), added if new; -E2BIG when the table is full. */
static int pair_index(struct aidp_leakset *s, const char *column, const char *label)
{
        uint32_t n = atomic_load_explicit(&s->n_pairs, memory_order_acquire);
        for (uint32_t i = 0; i < n; i++)
                if (pair_is(&s->pairs[i], column, label))
                        return (int)i;
        spin_lock(&s->pair_lock);
        uint32_t m = atomic_load_explicit(&s->n_pairs, memory_order_relaxed);
        int r = -E2BIG;
        for (uint32_t i = n; i < m; i++)
                if (pair_is(&s->pairs[i], column, label)) {
                        r = (int)i;
                        goto out;
                }
        if (m < AIDP_LEAK_PAIRS_MAX) {
                struct leak_pair *p = &s->pairs[m];
                strncpy(p->column, column, sizeof p->column - 1);
                strncpy(p->label, label, sizeof p->label - 1);
                atomic_store_explicit(&s->n_pairs, m + 1, memory_order_release);
                r = (int)m;
        }
out:
        spin_unlock(&s->pair_lock);
        return r;
}

static int shard_grow(struct leak_shard *sh)
{
        size_t cap = sh->cap ? sh->cap * 2 : 256;
        struct leak_rec **slots = calloc(cap, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < sh->cap; i++) {
                struct leak_rec *r = sh->slots[i];
                if (!r)
                        continue;
                size_t j = (r->hash >> 6) & (cap - 1);
                while (slots[j])
                        j = (j + 1) & (cap - 1);
                slots[j] = r;
        }
        free(sh->slots);
        sh->slots = slots;
        sh->cap = cap;
        return 0;
}

/* Under the shard's lock: find the value, or insert a copy of it. */
static int shard_add(struct aidp_leakset *s, struct leak_shard *sh, uint64_t h, const uint8_t *v,
                     size_t len, uint32_t pair)
{
        if ((sh->n + 1) * 2 > sh->cap && shard_grow(sh) < 0)
                return -ENOMEM;
        size_t j = (h >> 6) & (sh->cap - 1);
        for (struct leak_rec *r; (r = sh->slots[j]); j = (j + 1) & (sh->cap - 1))
                if (r->hash == h && r->len == len && !memcmp(r->bytes, v, len))
                        return 0;
        struct leak_rec *r = aidp_leak_arena_alloc(s, &sh->arena, sizeof *r + len);
        if (!r)
                return -ENOMEM;
        r->hash = h;
        r->len = (uint32_t)len;
        r->pair = pair;
        memcpy(r->bytes, v, len);
        sh->slots[j] = r;
        sh->n++;
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
        return 0;
}

int aidp_leakset_add(struct aidp_leakset *s, const char *column, const char *label,
                     const void *value, size_t len)
{
        if (!s || len < s->min_len)
                return 0;
        if (atomic_load_explicit(&s->sealed, memory_order_acquire))
                return -EBUSY;
        if (len > AIDP_LEAK_VALUE_MAX)
                len = AIDP_LEAK_VALUE_MAX;
        int pair = pair_index(s, column ? column : "", label ? label : "");
        if (pair < 0) {
                atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
                return pair;
        }
        uint64_t h = aidp_leak_hash(value, len);
        struct leak_shard *sh = &s->shards[h % LEAK_SHARDS];
        spin_lock(&sh->lock);
        int r = shard_add(s, sh, h, value, len, (uint32_t)pair);
        spin_unlock(&sh->lock);
        if (r < 0)
                atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
        return r;
}

#define ADD_GROUP 64

/* Under the shard's lock: the slot a probe for h starts at. */
static const void *slot_of(struct leak_shard *sh, uint64_t h, bool record)
{
        spin_lock(&sh->lock);
        const void *p = NULL;
        if (sh->cap) {
                struct leak_rec **slot = &sh->slots[(h >> 6) & (sh->cap - 1)];
                p = record ? (const void *)*slot : (const void *)slot;
        }
        spin_unlock(&sh->lock);
        return p;
}

int aidp_leakset_add_many(struct aidp_leakset *s, const struct aidp_view_hidden *v, size_t n)
{
        if (!s)
                return 0;
        if (atomic_load_explicit(&s->sealed, memory_order_acquire))
                return -EBUSY;
        int first = 0, pair = -1;
        const char *col = NULL, *lab = NULL;
        for (size_t base = 0; base < n; base += ADD_GROUP) {
                size_t m = n - base < ADD_GROUP ? n - base : ADD_GROUP;
                uint64_t h[ADD_GROUP];
                int pr[ADD_GROUP];
                size_t len[ADD_GROUP];
                /* 1: hash, and fetch the first slot of each probe ahead */
                for (size_t i = 0; i < m; i++) {
                        const struct aidp_view_hidden *x = &v[base + i];
                        len[i] = x->len > AIDP_LEAK_VALUE_MAX ? AIDP_LEAK_VALUE_MAX : x->len;
                        pr[i] = -1;
                        if (len[i] < s->min_len)
                                continue;
                        /* Values of one column come in runs: one lookup per run. */
                        if (pair < 0 || x->column != col || x->label != lab) {
                                col = x->column, lab = x->label;
                                pair = pair_index(s, col ? col : "", lab ? lab : "");
                        }
                        if ((pr[i] = pair) < 0) {
                                atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
                                first = first ? first : pair;
                                pair = -1; /* look it up again next time */
                                continue;
                        }
                        h[i] = aidp_leak_hash(x->value, len[i]);
                        __builtin_prefetch(slot_of(&s->shards[h[i] % LEAK_SHARDS], h[i], false));
                }
                /* 2: the records those slots point to */
                for (size_t i = 0; i < m; i++)
                        if (pr[i] >= 0)
                                __builtin_prefetch(
                                        slot_of(&s->shards[h[i] % LEAK_SHARDS], h[i], true));
                /* 3: the adds, as aidp_leakset_add */
                for (size_t i = 0; i < m; i++) {
                        if (pr[i] < 0)
                                continue;
                        struct leak_shard *sh = &s->shards[h[i] % LEAK_SHARDS];
                        spin_lock(&sh->lock);
                        int r = shard_add(s, sh, h[i], v[base + i].value, len[i], (uint32_t)pr[i]);
                        spin_unlock(&sh->lock);
                        if (r < 0) {
                                atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
                                first = first ? first : r;
                        }
                }
        }
        return first;
}

size_t aidp_leakset_count(const struct aidp_leakset *s)
{
        return s ? (size_t)atomic_load(&s->count) : 0;
}

uint64_t aidp_leakset_dropped(const struct aidp_leakset *s)
{
        return s ? atomic_load(&s->dropped) : 0;
}

void aidp_leakset_free(struct aidp_leakset *s)
{
        if (!s)
                return;
        aidp_leak_automaton_free(s);
        for (size_t i = 0; i < LEAK_SHARDS; i++) {
                struct leak_shard *sh = &s->shards[i];
                aidp_leak_arena_free(s, &sh->arena);
                free(sh->slots);
        }
        free(s->pairs);
        OPENSSL_cleanse(s, sizeof *s);
        free(s);
}
