#pragma once
/* Sealed inputs and outputs of one run (docs/run-core.md, "Lifecycle"):
 *   resolve  aidp_inject_open: open every --data file and authenticate its
 *            header (no payload decryption), so policy can decide on the tags;
 *   prepare  aidp_inject_required_bytes sizes the /data tmpfs, then
 *            aidp_inject_decrypt decrypts every dataset into it, each under
 *            /data/<dataset name>/, authenticating every segment first;
 *   collect  aidp_inject_collect seals the /out tmpfs into the output
 *            directory with tags inherited from the inputs, and the views
 *            that produced it (aidp_inject_produced).
 * The run core owns the tmpfs mounts and shreds them; this file only reads
 * and writes through their fds. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/sealed.h"
#include "views/leakscan.h"
#include "views/view.h"

#define AIDP_RUN_MAX_DATA 16

/* What the run summary and lineage record about a dataset. */
struct aidp_run_dataset {
        char path[1024];
        char name[AIDP_SEALED_NAME_MAX + 1];
        char version[AIDP_SEALED_VERSION_MAX + 1];
        char classification[16];
        char residency[AIDP_SEALED_MAX_TAGS * (AIDP_SEALED_TAG_MAX + 1)]; /* comma-joined */
        char regulation[AIDP_SEALED_MAX_TAGS * (AIDP_SEALED_TAG_MAX + 1)];
        char key_id[AIDP_SEALED_KEY_ID_MAX + 1];
        char digest[80]; /* content digest: "hmac-sha256:<hex>" (format 2), "sha256:<hex>" (1) */
        uint64_t bytes;  /* payload bytes */
        uint64_t files;  /* known after decrypt/collect */
        /* Column views: files that went through a viewer and the digest of
         * what the job received (sealed.h, AIDP_SEALED_VIEW_DIGEST_DOMAIN),
         * "sha256:<hex>"; empty when the job received the dataset as sealed. */
        uint64_t viewed_files;
        char received_digest[80];
        /* The views the job saw it through: "research" or "research+audit"
         * (their names), "-" for a decided view with none (labelled columns
         * dropped); empty: no view applied (no schema, or nothing decided). */
        char view[256];
};

/* A dataset's column view (docs/sealed-data.md, "Views at injection"). The
 * run sets decided/views/n from the policy decision before
 * aidp_inject_views_resolve; the rest is resolve's. */
struct aidp_inject_view {
        /* false: no policy decided (no policy installed, root's own run): the
         * files are injected as sealed and lineage says so */
        bool decided;
        const struct aidp_view *const *views; /* the granting roles' views (borrowed) */
        size_t n;
        bool has_schema;
        struct aidp_schema schema;    /* decoded from the authenticated header */
        struct aidp_file_view *files; /* per schema file, resolved */
        size_t n_files;
        bool applies; /* some file pattern's view is not all-raw */
};

struct aidp_inject {
        struct aidp_keys keys;
        bool keys_ready;
        struct aidp_sealed *in[AIDP_RUN_MAX_DATA];
        size_t n;
        /* Set by the run before aidp_inject_open for a user caller
         * (docs/security.md): each input as an fd the caller opened (taken
         * by aidp_inject_open), the output directory as an fd the caller
         * opened, and the owner the sealed output is given. */
        int *caller_fds;
        int output_dir_fd;
        bool has_output_dir_fd;
        bool chown_output;
        uid_t output_uid;
        gid_t output_gid;
        /* The output leak scan (inject_leak.c): the raw values the inputs'
         * views hid (created by aidp_inject_leaks_new, filled while
         * decrypting through aidp_inject_leak_hidden, scanned and wiped by
         * collect), what a hit does (the policy's leak_scan), and the result. */
        struct aidp_leakset *leaks;
        bool leak_quarantine;
        struct aidp_leak_report leak;
        uint64_t leak_values, leak_dropped; /* values kept, and those the set could not hold */
        bool leak_scanned, quarantined;
        char quarantine_key[AIDP_SEALED_KEY_ID_MAX + 1];
        /* Column views, per input, and the token keys they name (an array
         * of struct aidp_token_key in locked memory). */
        struct aidp_inject_view view[AIDP_RUN_MAX_DATA];
        struct aidp_secret token_mem;
        struct aidp_token_keys tokens;
        /* Where every raw value a view hides goes while the inputs are
         * decrypted, from several viewer threads at once: the output leak
         * scan's value set (views/leakscan.h, aidp_leakset_add, which is
         * thread-safe), set by the run before aidp_inject_decrypt. NULL:
         * nowhere. */
        aidp_view_hidden_fn hidden;
        aidp_view_hidden_many_fn hidden_many; /* the same, batched (may be NULL) */
        void *hidden_opaque;
        /* The output's produced-by record (sealed header TLV 15), built by
         * aidp_inject_produced before START and sealed by collect; NULL:
         * none (the output stays format 2). */
        uint8_t *produced;
        size_t produced_len;
        /* At most this many decryption and view workers per input (0: as
         * many as CPUs, up to 8): set by the run from what its memory limit
         * leaves (aidp_inject_work_bytes). */
        unsigned max_threads;
};

/* Open and authenticate every input; fills info[i]. Dataset names must be
 * unique (each becomes a directory under /data). */
int aidp_inject_open(struct aidp_inject *d, const char *const *paths, size_t n,
                     const char *keys_config, const char *key_dir, struct aidp_run_dataset *info,
                     aidp_error *err);
const struct aidp_sealed_header *aidp_inject_header(const struct aidp_inject *d, size_t i);
/* After the policy decision (view[i].decided/views/n set), before START:
 * decode each input's schema, resolve the views per file pattern and load
 * the token keys they name from the key providers (keys.yaml purpose
 * tokenize; a missing key or one of another purpose refuses the run:
 * AIDP_EXIT_DATA, ENOKEY/EPERM). No payload byte is decrypted. */
int aidp_inject_views_resolve(struct aidp_inject *d, aidp_error *err);
/* Some input is decrypted through a view. */
bool aidp_inject_views_apply(const struct aidp_inject *d);
/* The decryption options' view of input i (valid while d is). */
void aidp_inject_view_opts(struct aidp_inject *d, size_t i, struct aidp_sealed_view *ret);
void aidp_inject_views_free(struct aidp_inject *d);
/* Input i as lineage START's aidp_view facet and the output's produced-by
 * record show it (one encoder, inject_produced.c): its name and content
 * digest, how it reached the job and, through a view, the views' names and
 * per file pattern and column the labels, transform, key id and token
 * domain. After aidp_inject_views_resolve. */
struct json_object;
struct json_object *aidp_inject_view_json(const struct aidp_inject *d, size_t i,
                                          const struct aidp_run_dataset *info);
/* After aidp_inject_views_resolve and before START, for a run that seals
 * /out as output_name: the output's produced-by record (this run's step, then
 * every input's own steps) into d->produced. None when no input has a schema
 * or a record of its own. A record too large for the header refuses the run
 * (AIDP_EXIT_DATA, EFBIG). */
int aidp_inject_produced(struct aidp_inject *d, const char *output_name, const char *run_id,
                         const struct aidp_run_dataset *info, aidp_error *err);
int aidp_inject_required_bytes(struct aidp_inject *d, uint64_t *ret, aidp_error *err);
/* The most memory aidp_inject_decrypt holds at once besides the files it
 * writes, for the input that needs most (they are decrypted one after the
 * other): *base bytes plus *per_thread per worker (aidp_sealed_work_bytes).
 * After aidp_inject_views_resolve. */
int aidp_inject_work_bytes(struct aidp_inject *d, uint64_t *base, uint64_t *per_thread,
                           aidp_error *err);
/* root_fd: the supervisor's /data tmpfs mount fd. Entries are owned by
 * uid:gid. progress: a bar on stderr, or progress lines when it is no
 * terminal (batch logs). */
int aidp_inject_decrypt(struct aidp_inject *d, int root_fd, uid_t uid, gid_t gid, bool progress,
                        struct aidp_run_dataset *info, aidp_error *err);
/* Seal the tree under out_fd into output_dir/<run_id>.sealed as dataset
 * "<run_id>-out", owner `owner`, key key_id (NULL: the first input's).
 * max_bytes: the /out tmpfs size; a tree claiming more (sparse files) is
 * refused rather than expanded. progress: as for decrypt. */
/* Before the job: can /out be sealed under the key collect will use
 * (key_id ?: the first input's)? Its purpose and dataset limits for NAME
 * (<run-id>-out), and with an exec provider a trial wrap of a throwaway key,
 * checked like every wrap: a broken provider refuses the run now instead of
 * failing the seal after the job, when /out can only be shredded. */
int aidp_inject_check_output_key(struct aidp_inject *d, const char *key_id, const char *name,
                                 aidp_error *err);
int aidp_inject_collect(struct aidp_inject *d, int out_fd, uint64_t max_bytes,
                        const char *output_dir, const char *run_id, const char *key_id,
                        const char *owner, bool progress, struct aidp_run_dataset *ret,
                        aidp_error *err);
void aidp_inject_free(struct aidp_inject *d);

/* The leak set, in locked memory never dumped (idempotent). */
int aidp_inject_leaks_new(struct aidp_inject *d, aidp_error *err);
/* An aidp_view_hidden_many_fn; opaque is d->leaks. */
void aidp_inject_leak_hidden_many(void *opaque, const struct aidp_view_hidden *v, size_t n);
/* An aidp_view_hidden_fn; opaque is d->leaks. */
void aidp_inject_leak_hidden(void *opaque, const char *column, const char *label, const void *value,
                             size_t len);
/* Scan every regular file below dir_fd against d->leaks (nothing when the
 * set is empty), fill d->leak, and with d->leak_quarantine and a hit pick
 * the quarantine key (none declared: an error, nothing sealed). The set is
 * wiped and freed whatever happens. Called by aidp_inject_collect. */
int aidp_inject_leak_scan(struct aidp_inject *d, int dir_fd, aidp_error *err);
/* Before the job: a policy that quarantines (d->leak_quarantine) needs a
 * key with purpose quarantine declared. */
int aidp_inject_check_quarantine(struct aidp_inject *d, aidp_error *err);
void aidp_inject_leaks_free(struct aidp_inject *d);
