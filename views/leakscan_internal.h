#pragma once
/* The leak set's insides, shared by leakscan.c (the set: adds from several
 * threads) and leakscan_scan.c (the automaton and the scanner). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "views/leakscan.h"

#define LEAK_SHARDS      64
#define LEAK_CHUNK_BYTES (64u << 10)

/* Memory from the caller's hooks, in a list of chunks; wiped on free. */
struct leak_chunk {
        struct leak_chunk *next;
        size_t used, cap;
        uint8_t data[];
};

struct leak_arena {
        struct leak_chunk *head;
};

/* One kept value: hash, length, (column, label) pair, then the bytes. */
struct leak_rec {
        uint64_t hash;
        uint32_t len;
        uint32_t pair;
        uint8_t bytes[];
};

/* One shard of the value set: its own lock, hash table and arena, so
 * viewer threads adding at once rarely wait for each other. */
struct leak_shard {
        atomic_flag lock;
        struct leak_rec **slots; /* open addressing, power of two */
        size_t cap, n;
        struct leak_arena arena;
};

struct leak_pair {
        char column[128];
        char label[64];
};

/* One searched form of a value (raw, JSON-escaped, CSV-quoted), folded to
 * ASCII lower case and cut at AIDP_LEAK_VALUE_MAX bytes. */
struct leak_pat {
        const uint8_t *bytes;
        uint64_t key; /* its first `window` bytes, little-endian */
        uint32_t len;
        uint32_t pair;
};

struct leak_bucket {
        uint64_t key;
        uint32_t first, count; /* a run of pats with this key */
};

struct aidp_leakset {
        size_t min_len;
        struct aidp_leak_alloc alloc;
        struct leak_shard shards[LEAK_SHARDS];
        /* Pairs: read without the lock (n_pairs is published after the
         * entry is written), appended under pair_lock. */
        struct leak_pair *pairs;
        _Atomic uint32_t n_pairs;
        atomic_flag pair_lock;
        _Atomic uint64_t count, dropped;
        atomic_bool sealed;
        /* The automaton (aidp_leakset_seal). */
        struct leak_arena pat_arena;
        struct leak_pat *pats;
        size_t n_pats;
        size_t max_len;  /* longest pattern */
        unsigned window; /* bytes hashed per position: min(min_len, 8) */
        uint64_t *bloom; /* 2 bits per key in one 64-bit word */
        unsigned bloom_shift;
        size_t bloom_words;
        struct leak_bucket *buckets;
        unsigned bucket_shift;
        size_t n_buckets;
};

void *aidp_leak_arena_alloc(struct aidp_leakset *s, struct leak_arena *a, size_t len);
void aidp_leak_arena_free(struct aidp_leakset *s, struct leak_arena *a);
void aidp_leak_automaton_free(struct aidp_leakset *s);
uint64_t aidp_leak_hash(const void *p, size_t len);
