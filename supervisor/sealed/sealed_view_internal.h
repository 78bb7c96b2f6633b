#pragma once
/* Private to the view pass: sealed_view.c (files viewed whole, one per
 * worker) and sealed_view_par.c (one large file viewed in chunks on every
 * worker). */
#include "supervisor/sealed/sealed_internal.h"

/* Files of at least AIDP_VIEW_PAR_BLOCKS blocks (aidp_sealed_opts.view_block,
 * default AIDP_VIEW_BLOCK) are viewed in chunks of about a block on every
 * worker; smaller ones whole, one file per worker. */
#define AIDP_VIEW_BLOCK      (8u << 20)
#define AIDP_VIEW_PAR_BLOCKS 2
/* The committer's output buffer when a file is viewed in chunks. */
#define AIDP_VIEW_PAR_OUT_BUF (1u << 20)
static inline uint64_t aidp_view_block(const struct aidp_sealed_opts *o)
{
        return o->view_block ? o->view_block : AIDP_VIEW_BLOCK;
}

/* Is a viewed file of this size viewed in chunks on every worker? */
static inline bool aidp_view_in_chunks(const struct aidp_sealed_opts *o, uint64_t size)
{
        return size >= AIDP_VIEW_PAR_BLOCKS * aidp_view_block(o);
}

/* A chunk viewed as a guess keeps its view and its hidden values in locked
 * buffers until it is committed: at most a block of view and two blocks of
 * hidden values (their 24-byte records included: a CSV of short values
 * hides more than its size; 1.1 blocks in scripts/bench-views' data), else
 * the guess is dropped and
 * the committer views the chunk in order, straight to the file
 * (sealed_view_par.c). What a chunk holds is thus bounded whatever the data
 * (a short value masked with a long string expands ~10x). */
static inline size_t aidp_view_out_cap(const struct aidp_sealed_opts *o)
{
        return (size_t)aidp_view_block(o);
}
static inline size_t aidp_view_hid_cap(const struct aidp_sealed_opts *o)
{
        return (size_t)aidp_view_block(o) * 2;
}

struct vfile {
        size_t entry;
        const struct aidp_file_view *fv;
        uint64_t out_len;
        uint8_t digest[AIDP_SEALED_DIGEST_LEN]; /* SHA-256 of the viewed bytes */
};

struct vpass {
        struct aidp_sealed *s;
        int dirfd;
        const struct aidp_tree *t;
        const struct aidp_sealed_view *v;
        struct vfile *files;
        size_t n;
        struct vfile **whole; /* viewed by one worker each */
        size_t n_whole;
        const bool *deferred;                       /* per segment: first read here (may be NULL) */
        uint8_t (*digests)[AIDP_SEALED_DIGEST_LEN]; /* the deferred ones' SHA-256 go here */
};

/* One file's output: buffered (in a locked buffer), hashed, written in order. */
struct vout {
        int fd;
        struct aidp_sealed_buf *buf;
        size_t used;
        uint64_t written;
        EVP_MD_CTX *md;
        const char *path;
        const struct aidp_sealed_view *v;
};
int aidp_vout_write(void *opaque, const void *buf, size_t len, aidp_error *err);
int aidp_vout_flush(struct vout *o, aidp_error *err);
void aidp_vout_hidden(void *opaque, const char *column, const char *label, const void *value,
                      size_t len);
/* Read, decrypt and authenticate segment i whole into dst (room for its
 * bytes and the tag); again: the first pass authenticated it already. */
int aidp_view_segment(struct aidp_sealed *s, struct aidp_sealed_worker *w, uint64_t i, uint8_t *dst,
                      bool again, aidp_error *err);

/* View one large file (f) on nthreads workers. */
int aidp_sealed_view_par(struct vpass *p, struct vfile *f, const struct aidp_sealed_opts *o,
                         unsigned nthreads, aidp_error *err);
