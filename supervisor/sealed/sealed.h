#pragma once
/* Sealed datasets: the API the supervisor and the `aidp seal/unseal/inspect`
 * tools call. Format: docs/sealed-format.md; model: sealed_format.h; keys:
 * keys.h.
 *
 * Reading a dataset is two steps, so that policy can decide before any
 * payload byte is decrypted:
 *
 *   struct aidp_sealed *s;
 *   aidp_sealed_open(path, &keys, &s, &err);        // header parsed, data key
 *                                                   // unwrapped, header tag
 *                                                   // verified; no payload read
 *   const struct aidp_sealed_header *h = aidp_sealed_header_of(s);
 *   ... residency/access decision on h->meta (authenticated tags) ...
 *   aidp_sealed_decrypt(s, tmpfs_root_fd, &opts, &result, &err);
 *   aidp_sealed_close(s);                           // wipes the data key
 *
 * aidp_sealed_decrypt writes only through openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) / mkdirat relative to dirfd, so the
 * destination never needs a host path (a detached tmpfs from fsmount works).
 * It returns success only after EVERY segment authenticated and the content
 * digest recomputed from the plaintext matched the header's. On any failure it overwrites with zeros and removes
 * every entry it created (never anything it did not create) before returning; the caller still
 * shreds the tmpfs. Unauthenticated plaintext may exist in the destination while decryption runs,
 * so the destination must be invisible to everything else until success (a detached mount is).
 *
 * Error messages name the dataset ("dataset NAME (PATH): ...") and the cause;
 * err->status is AIDP_EXIT_DATA for every data/key problem, errno tells them
 * apart: EBADMSG (authentication), ENOKEY (missing key), EPERM (key file
 * refused), ENOSPC (destination too small), ETIMEDOUT (key provider), EIO,
 * EACCES/ENOENT (unreadable input).
 *
 * Thread safety: a struct aidp_sealed is used by one caller at a time;
 * decrypt and seal start their own worker threads and join them before
 * returning. The progress callback runs on the calling thread only, at most
 * every ~100 ms plus once at the end with done == total.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/codec/sealed_format.h"
#include "views/view.h"

struct aidp_sealed;

typedef void (*aidp_sealed_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/* Open a sealed file, read and authenticate its header. No payload byte is
 * decrypted. Also checks the file has exactly the size the header implies
 * (truncation and appended bytes are refused here). */
int aidp_sealed_open(const char *path, const struct aidp_keys *keys, struct aidp_sealed **ret,
                     aidp_error *err);
/* The same from an fd already open for reading (opened with the caller's
 * credentials); fd is taken, also on failure. path is for messages only. */
int aidp_sealed_open_fd(int fd, const char *path, const struct aidp_keys *keys,
                        struct aidp_sealed **ret, aidp_error *err);
const struct aidp_sealed_header *aidp_sealed_header_of(const struct aidp_sealed *s);
const char *aidp_sealed_path_of(const struct aidp_sealed *s);
void aidp_sealed_close(struct aidp_sealed *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct aidp_sealed *, aidp_sealed_close)

/* Bytes a tmpfs needs to hold the decrypted dataset: every file rounded up
 * to whole pages. Decrypts and authenticates only the segments holding the
 * manifest (file names and sizes); call it after the policy decision. */
int aidp_sealed_required_bytes(struct aidp_sealed *s, uint64_t *ret, aidp_error *err);

struct aidp_sealed_opts {
        unsigned threads; /* workers incl. the caller; 0 = online CPUs, at most 8 */
        /* At most this many workers whatever threads says (0: no cap): the
         * run's memory limit leaves room for this many view buffers
         * (aidp_sealed_work_bytes). */
        unsigned max_threads;
        uid_t uid; /* owner of created entries; (uid_t)-1 keeps the caller's */
        gid_t gid;
        aidp_sealed_progress_fn progress;
        void *progress_opaque;
        /* Polled on the calling thread every ~100 ms: true stops the work,
         * which fails with EINTR (an interrupt, as Ctrl-C); NULL: never. */
        bool (*interrupted)(void);
        /* Column views (docs/sealed-data.md, "Views at injection"); NULL: every
         * file as sealed. */
        const struct aidp_sealed_view *view;
        /* Viewed files of at least 2 blocks are viewed in chunks of about a
         * block on every worker (sealed_view_par.c); 0 = 8 MiB. Tests set it
         * small to cut small files into many chunks. */
        size_t view_block;
};
#define AIDP_SEALED_OPTS_DEFAULT                                                                   \
        {                                                                                          \
                .threads = 0, .uid = (uid_t)-1, .gid = (gid_t)-1                                   \
        }

/* What a dataset's files look like to the job: files[k] is the resolved view
 * of schema->files[k]. A file whose path matches a schema pattern whose view
 * is not all-raw is never written as decrypted: after every segment has
 * authenticated and the content digest matched, its segments are decrypted
 * again (and authenticated again) into locked worker buffers, in order, and
 * streamed through a viewer (views/view.h); only the viewer's output reaches
 * dirfd. Every other file is written as sealed. Small files are viewed in
 * parallel (one viewer per file, one file per worker at a time); a large one
 * in chunks on every worker, committed in order, with the same result as one
 * viewer (sealed_view_par.c, views/viewer_chunk.h). A viewer error (the
 * data does not parse) fails the decryption with AIDP_EXIT_DATA and the
 * position (DATASET/PATH:ROW:COL), and everything created is wiped. */
struct aidp_sealed_view {
        const char *dataset; /* for positions: "DATASET/PATH:ROW:COL" */
        const struct aidp_schema *schema;
        const struct aidp_file_view *files; /* parallel to schema->files */
        const struct aidp_token_keys *keys;
        aidp_view_hidden_fn hidden; /* every raw value the job does not see */
        /* optional, the same opaque: a chunk's values at once (file order kept) */
        aidp_view_hidden_many_fn hidden_many;
        void *hidden_opaque;
};

/* The most memory aidp_sealed_decrypt(s, dirfd >= 0, o) holds at once
 * besides the files it writes (worker, view and output buffers, and the
 * viewers' own record buffers), as *base bytes plus *per_thread bytes per
 * worker: a caller inside a memory limit sets o->max_threads from it.
 * o->view as it will be passed; reads and authenticates the manifest. */
int aidp_sealed_work_bytes(struct aidp_sealed *s, const struct aidp_sealed_opts *o, uint64_t *base,
                           uint64_t *per_thread, aidp_error *err);

/* The digest of what a viewed dataset's job received (docs/lineage.md,
 * "Views"): SHA-256 over "aidp-view-v1" NUL, the sealed content digest (32
 * bytes: the files passed as sealed are exactly its plaintext), then for every
 * viewed file in manifest order its path, NUL, the viewed length (u64
 * big-endian) and SHA-256 of the viewed bytes. */
#define AIDP_SEALED_VIEW_DIGEST_DOMAIN "aidp-view-v1"

struct aidp_sealed_result {
        enum aidp_tree_root root; /* single file or directory tree */
        uint16_t root_mode;       /* mode of the sealed top directory */
        uint64_t n_files, n_dirs; /* entries written (or that would be) */
        uint64_t bytes;           /* file bytes */
        /* with a view: files that went through a viewer, their viewed bytes,
         * and the digest of what was written (AIDP_SEALED_VIEW_DIGEST_DOMAIN) */
        uint64_t n_viewed, viewed_bytes;
        uint8_t received_digest[AIDP_SEALED_DIGEST_LEN];
};

/* Decrypt the whole dataset into dirfd (contents of the sealed directory, or
 * the single sealed file, appear directly in dirfd; dirfd itself is not
 * modified). dirfd < 0 authenticates everything and writes nothing (verify).
 * ret may be NULL. */
int aidp_sealed_decrypt(struct aidp_sealed *s, int dirfd, const struct aidp_sealed_opts *o,
                        struct aidp_sealed_result *ret, aidp_error *err);

struct aidp_seal_params {
        struct aidp_sealed_meta meta; /* name, version, owner, created_at (0 = now), tags, key id */
        uint32_t segment_size;        /* 0 = AIDP_SEALED_SEGMENT_DEFAULT */
        unsigned threads;             /* as in aidp_sealed_opts */
        bool skip_special;  /* skip symlinks, devices, fifos, sockets instead of failing */
        uint64_t max_bytes; /* refuse trees whose file bytes exceed this; 0 = no limit
                             * (sparse files can claim far more than a tmpfs holds) */
        /* The dataset's schema, aidp_schema_encode's bytes (views/view.h); NULL
         * = none. With one the file is format 3, else format 2. */
        const uint8_t *schema;
        size_t schema_len;
        /* The produced-by record (sealed_format.h, aidp_sealed_produced_chain's
         * bytes); NULL = none. With one the file is format 4. */
        const uint8_t *produced_by;
        size_t produced_by_len;
        /* Give the file to this owner through its own fd before it is
         * renamed into place: in a directory its owner can write, a chown
         * by name after the rename could reach a link put there instead. */
        bool chown;
        uid_t uid;
        gid_t gid;
        aidp_sealed_progress_fn progress;
        void *progress_opaque;
};

struct aidp_seal_result {
        struct aidp_sealed_header header; /* as written, incl. content digest */
        uint64_t n_files, n_dirs, n_skipped;
};

/* Every regular file below the directory dir_fd, as the seal walks it
 * (symlinks and special files skipped, the same path rules), each opened
 * beneath dir_fd (RESOLVE_BENEATH, no symlinks) and handed to fn with its
 * path inside the tree and its size; fn's fd is closed after it returns.
 * The first fn < 0 stops the walk and is returned. */
typedef int (*aidp_sealed_file_fn)(void *opaque, const char *path, int fd, uint64_t size,
                                   aidp_error *err);
int aidp_sealed_walk_files(int dir_fd, aidp_sealed_file_fn fn, void *opaque, aidp_error *err);

/* Seal src_fd (a directory: the tree below it; a regular file: that file,
 * stored under src_name) into out_dirfd/out_name. The output is written under
 * a temporary name and renamed into place without replacing an existing file;
 * on failure nothing is left. Files that change while sealing are detected
 * (size or content) and fail the seal. ret may be NULL. */
int aidp_sealed_seal(int src_fd, const char *src_name, const struct aidp_seal_params *p,
                     const struct aidp_keys *keys, int out_dirfd, const char *out_name,
                     struct aidp_seal_result *ret, aidp_error *err);
