#pragma once
/* Output leak scan (issue 18): the CONTRACT. Pure (views/, no syscalls).
 *
 * While the inputs are decrypted, every raw value the job's view hid
 * (aidp_view_hidden_fn) of at least `min_len` bytes goes into a set; before
 * /out is sealed every output file is matched against the set in one pass
 * (a multi-pattern automaton, also inside text, CSV and JSON: values are
 * also searched in their JSON-escaped and lower-case form). Hits are
 * counted per label and the first few are kept (file, offset, label,
 * column; never the value itself) for the summary and lineage. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "views/view.h"

#define AIDP_LEAK_MIN_LEN_DEFAULT 6
#define AIDP_LEAK_EXAMPLES        8

struct aidp_leakset;

struct aidp_leak_hit {
        char file[256];  /* path inside /out */
        uint64_t offset; /* of the first byte */
        char label[64];
        char column[128];
};

struct aidp_leak_report {
        uint64_t files, bytes, hits;
        struct {
                char label[64];
                uint64_t hits;
        } per_label[16];
        size_t n_labels;
        struct aidp_leak_hit examples[AIDP_LEAK_EXAMPLES];
        size_t n_examples;
};

/* min_len 0: AIDP_LEAK_MIN_LEN_DEFAULT; otherwise 4..AIDP_LEAK_MIN_LEN_MAX. */
#define AIDP_LEAK_MIN_LEN_MAX 64
/* Values are matched on their first AIDP_LEAK_VALUE_MAX bytes (a longer
 * value that leaks whole also leaks that prefix). */
#define AIDP_LEAK_VALUE_MAX 256
int aidp_leakset_new(size_t min_len, struct aidp_leakset **ret, aidp_error *err);
/* The caller's allocator hooks (the supervisor's: locked, never dumped):
 * every buffer that holds a value or a pattern derived from one comes from
 * alloc (zeroed) and is wiped by the set before it goes back to free. Set
 * before the first add; without hooks, the ordinary heap (still wiped). */
struct aidp_leak_alloc {
        void *(*alloc)(void *opaque, size_t len);
        void (*free)(void *opaque, void *p, size_t len);
        void *opaque;
};
void aidp_leakset_set_alloc(struct aidp_leakset *s, const struct aidp_leak_alloc *a);
/* Thread-safe (the viewers of several files add at once). Duplicates are
 * kept once. Values are copied into locked, wiped memory by the caller's
 * allocator hooks if set; the set is wiped on free. */
int aidp_leakset_add(struct aidp_leakset *s, const char *column, const char *label,
                     const void *value, size_t len);
/* Values shorter than min_len are not kept (0 returned); -ENOMEM; -E2BIG
 * past AIDP_LEAK_PAIRS_MAX distinct (column, label) pairs (the value is
 * then counted by aidp_leakset_dropped, never silently lost). */
#define AIDP_LEAK_PAIRS_MAX 2048
/* aidp_leakset_add of n values, in groups whose table slots and records are
 * fetched ahead, so one value's cache misses overlap the next ones' (a set
 * of millions of values misses the cache on nearly every add). Returns the
 * first error, having tried every value. */
int aidp_leakset_add_many(struct aidp_leakset *s, const struct aidp_view_hidden *v, size_t n);
uint64_t aidp_leakset_dropped(const struct aidp_leakset *s);
/* Build the automaton; no adds after this. */
int aidp_leakset_seal(struct aidp_leakset *s, aidp_error *err);
size_t aidp_leakset_count(const struct aidp_leakset *s);

/* Scan one file's bytes, fed in any chunking (matches across chunk
 * boundaries are found). file: the path for the report. */
struct aidp_leakscan;
int aidp_leakscan_begin(const struct aidp_leakset *s, const char *file,
                        struct aidp_leak_report *rep, struct aidp_leakscan **ret, aidp_error *err);
int aidp_leakscan_feed(struct aidp_leakscan *sc, const void *buf, size_t len);
void aidp_leakscan_end(struct aidp_leakscan *sc);
void aidp_leakset_free(struct aidp_leakset *s);
