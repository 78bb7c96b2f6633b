/* Sealed data in a run: see inject.h. */
#define _GNU_SOURCE
#include "supervisor/sealed/inject.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/hex.h"
#include "supervisor/sealed/progress.h"

static void join_tags(char *out, size_t cap, const char (*tags)[AIDP_SEALED_TAG_MAX + 1],
                      unsigned n)
{
        size_t off = 0;
        out[0] = '\0';
        for (unsigned i = 0; i < n && off < cap; i++)
                off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? "," : "", tags[i]);
}

static void describe(const char *path, const struct aidp_sealed_header *h,
                     struct aidp_run_dataset *o)
{
        memset(o, 0, sizeof *o);
        snprintf(o->path, sizeof o->path, "%s", path);
        snprintf(o->name, sizeof o->name, "%s", h->meta.name);
        snprintf(o->version, sizeof o->version, "%s", h->meta.version);
        snprintf(o->classification, sizeof o->classification, "%s",
                 aidp_sealed_class_name(h->meta.classification));
        join_tags(o->residency, sizeof o->residency, h->meta.residency, h->meta.n_residency);
        join_tags(o->regulation, sizeof o->regulation, h->meta.regulation, h->meta.n_regulation);
        snprintf(o->key_id, sizeof o->key_id, "%s", h->meta.key_id);
        aidp_sealed_digest_ref(h, o->digest);
        o->bytes = h->payload_len;
}

static int keys_ready(struct aidp_inject *d, const char *keys_config, const char *key_dir,
                      aidp_error *err)
{
        if (d->keys_ready)
                return 0;
        aidp_keys_init(&d->keys);
        d->keys_ready = true;
        return aidp_keys_setup(keys_config, key_dir, &d->keys, err);
}

int aidp_inject_open(struct aidp_inject *d, const char *const *paths, size_t n,
                     const char *keys_config, const char *key_dir, struct aidp_run_dataset *info,
                     aidp_error *err)
{
        if (n > AIDP_RUN_MAX_DATA)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG, "at most %d --data inputs",
                                      AIDP_RUN_MAX_DATA);
        int r = keys_ready(d, keys_config, key_dir, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (d->caller_fds && d->caller_fds[i] >= 0) {
                        int fd = d->caller_fds[i];
                        d->caller_fds[i] = -1;
                        r = aidp_sealed_open_fd(fd, paths[i], &d->keys, &d->in[d->n], err);
                } else {
                        r = aidp_sealed_open(paths[i], &d->keys, &d->in[d->n], err);
                }
                if (r < 0)
                        return r;
                d->n++;
                const struct aidp_sealed_header *h = aidp_sealed_header_of(d->in[i]);
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(aidp_sealed_header_of(d->in[j])->meta.name, h->meta.name))
                                return aidp_error_set(err, AIDP_EXIT_USAGE, EEXIST,
                                                      "--data %s and %s both hold dataset %s; "
                                                      "each dataset may appear once",
                                                      paths[j], paths[i], h->meta.name);
                describe(paths[i], h, &info[i]);
        }
        return 0;
}

const struct aidp_sealed_header *aidp_inject_header(const struct aidp_inject *d, size_t i)
{
        return i < d->n ? aidp_sealed_header_of(d->in[i]) : NULL;
}

int aidp_inject_required_bytes(struct aidp_inject *d, uint64_t *ret, aidp_error *err)
{
        uint64_t sum = 0;
        for (size_t i = 0; i < d->n; i++) {
                uint64_t one = 0;
                int r = aidp_sealed_required_bytes(d->in[i], &one, err);
                if (r < 0)
                        return r;
                sum += one;
        }
        *ret = sum;
        return 0;
}

int aidp_inject_work_bytes(struct aidp_inject *d, uint64_t *base, uint64_t *per_thread,
                           aidp_error *err)
{
        uint64_t b = 0, t = 0;
        for (size_t i = 0; i < d->n; i++) {
                struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
                struct aidp_sealed_view sv;
                if (d->view[i].applies) {
                        aidp_inject_view_opts(d, i, &sv);
                        o.view = &sv;
                }
                uint64_t ib = 0, it = 0;
                int r = aidp_sealed_work_bytes(d->in[i], &o, &ib, &it, err);
                if (r < 0)
                        return r;
                /* The cap is one for every input: the worst base with the
                 * worst per-thread cost bounds each. */
                b = ib > b ? ib : b;
                t = it > t ? it : t;
        }
        *base = b;
        *per_thread = t;
        return 0;
}

/* The run holds SIGINT, SIGTERM and SIGHUP blocked until the job runs
 * (supervisor/run/monitor.c): one pending is a stop request (Ctrl-C). */
static bool stop_requested(void)
{
        sigset_t pending;
        sigpending(&pending);
        return sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM) ||
               sigismember(&pending, SIGHUP);
}

int aidp_inject_decrypt(struct aidp_inject *d, int root_fd, uid_t uid, gid_t gid, bool progress,
                        struct aidp_run_dataset *info, aidp_error *err)
{
        for (size_t i = 0; i < d->n; i++) {
                const struct aidp_sealed_header *h = aidp_sealed_header_of(d->in[i]);
                const char *name = h->meta.name;
                /* /data/<name>: created here, private until filled. */
                if (mkdirat(root_fd, name, 0700) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                                "dataset %s: creating /data/%s", name, name);
                _cleanup_close_ int dfd =
                        openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dfd < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                                "dataset %s: opening /data/%s", name, name);
                char label[64];
                snprintf(label, sizeof label, "aidp-supervisor: decrypting %.20s", name);
                struct aidp_progress_bar b;
                aidp_progress_bar_init(&b, label);
                struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
                o.uid = uid;
                o.gid = gid;
                o.max_threads = d->max_threads;
                o.interrupted = stop_requested;
                if (progress) {
                        o.progress = aidp_progress_bar_draw;
                        o.progress_opaque = &b;
                }
                /* A view: the raw values of its transformed columns are
                 * never written to /data (sealed_view.c). */
                struct aidp_sealed_view sv;
                if (d->view[i].applies) {
                        aidp_inject_view_opts(d, i, &sv);
                        o.view = &sv;
                }
                struct aidp_sealed_result res;
                int r = aidp_sealed_decrypt(d->in[i], dfd, &o, &res, err);
                if (r < 0) {
                        unlinkat(root_fd, name, AT_REMOVEDIR);
                        return r;
                }
                if (fchown(dfd, uid, gid) < 0 || fchmod(dfd, 0755) < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                                "dataset %s: /data/%s", name, name);
                info[i].files = res.n_files;
                if (d->view[i].applies) {
                        aidp_sha256_ref(res.received_digest, info[i].received_digest);
                        info[i].viewed_files = res.n_viewed;
                }
        }
        return 0;
}

static const char *output_key(const struct aidp_inject *d, const char *key_id)
{
        if (!key_id && d->n)
                key_id = aidp_sealed_header_of(d->in[0])->meta.key_id;
        return key_id;
}

int aidp_inject_check_output_key(struct aidp_inject *d, const char *key_id, const char *name,
                                 aidp_error *err)
{
        int r = keys_ready(d, NULL, NULL, err);
        if (r < 0)
                return r;
        key_id = output_key(d, key_id);
        if (!key_id)
                return 0;
        if ((r = aidp_keys_check_kek(&d->keys, key_id, err)) < 0 ||
            (r = aidp_keys_check_dataset(&d->keys, key_id, name, err)) < 0)
                return aidp_error_wrap(err, "sealing /out");
        /* A quarantine key is for quarantined outputs, never a run's choice. */
        if (aidp_keys_is_quarantine(&d->keys, key_id))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "sealing /out: key '%s' has purpose quarantine: only a "
                                      "leak scan's quarantine seals under it",
                                      key_id);
        /* A trial wrap with every provider, the file one too: a key that is
         * not there (or no key directory at all) refuses the run now, not
         * after the job, when /out would be shredded unkept. */
        _cleanup_secret_ struct aidp_secret trial = {0};
        uint8_t wrapped[AIDP_SEALED_WRAPPED_MAX];
        size_t len = 0;
        enum aidp_key_wrap alg = AIDP_WRAP_NONE;
        if ((r = aidp_sealed_new_data_key(&trial, err)) < 0 ||
            (r = aidp_keys_wrap(&d->keys, key_id, &trial, &alg, wrapped, &len, err)) < 0)
                return aidp_error_wrap(err, "sealing /out (checked before the job)");
        return 0;
}

int aidp_inject_collect(struct aidp_inject *d, int out_fd, uint64_t max_bytes,
                        const char *output_dir, const char *run_id, const char *key_id,
                        const char *owner, bool progress, struct aidp_run_dataset *ret,
                        aidp_error *err)
{
        int r = keys_ready(d, NULL, NULL, err);
        if (r < 0)
                return r;
        struct aidp_seal_params p = {.skip_special = true,
                                     .max_bytes = max_bytes,
                                     .produced_by = d->produced,
                                     .produced_by_len = d->produced_len};
        const struct aidp_sealed_meta *in[AIDP_RUN_MAX_DATA];
        for (size_t i = 0; i < d->n; i++)
                in[i] = &aidp_sealed_header_of(d->in[i])->meta;
        r = aidp_sealed_meta_inherit(in, d->n, &p.meta, err);
        if (r < 0)
                return r;
        key_id = output_key(d, key_id);
        if (!key_id)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "sealing /out needs a key id (--output-key-id) when there "
                                      "are no --data inputs");
        snprintf(p.meta.key_id, sizeof p.meta.key_id, "%s", key_id);
        snprintf(p.meta.name, sizeof p.meta.name, "%s-out", run_id);
        strcpy(p.meta.version, "1");
        snprintf(p.meta.owner, sizeof p.meta.owner, "%s", owner && *owner ? owner : "unknown");
        _cleanup_close_ int odir = d->has_output_dir_fd
                                           ? fcntl(d->output_dir_fd, F_DUPFD_CLOEXEC, 3)
                                           : open(output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (odir < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "output directory %s",
                                        output_dir);
        /* The mount fd may be O_PATH; reading the tree needs a real one. */
        _cleanup_close_ int src = openat(out_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (src < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "opening /out");
        /* Before the seal picks its key: a hit under a quarantine policy
         * seals /out under the admin-only key instead. */
        if ((r = aidp_inject_leak_scan(d, src, err)) < 0)
                return r;
        if (d->quarantined)
                snprintf(p.meta.key_id, sizeof p.meta.key_id, "%s", d->quarantine_key);
        char fname[128];
        snprintf(fname, sizeof fname, "%s.sealed", run_id);
        struct aidp_progress_bar b;
        aidp_progress_bar_init(&b, "aidp-supervisor: sealing /out");
        if (progress) {
                p.progress = aidp_progress_bar_draw;
                p.progress_opaque = &b;
        }
        /* The caller's output is the caller's file, given through its fd. */
        p.chown = d->chown_output;
        p.uid = d->output_uid;
        p.gid = d->output_gid;
        struct aidp_seal_result res;
        r = aidp_sealed_seal(src, "out", &p, &d->keys, odir, fname, &res, err);
        if (r < 0)
                return aidp_error_wrap(err, "collecting /out into %s/%s", output_dir, fname);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", output_dir, fname);
        describe(path, &res.header, ret);
        ret->files = res.n_files;
        return 0;
}

void aidp_inject_free(struct aidp_inject *d)
{
        aidp_inject_leaks_free(d);
        for (size_t i = 0; i < d->n; i++)
                aidp_sealed_close(d->in[i]);
        d->n = 0;
        if (d->has_output_dir_fd)
                close(d->output_dir_fd);
        d->has_output_dir_fd = false;
        aidp_inject_views_free(d);
        free(d->produced);
        d->produced = NULL;
        d->produced_len = 0;
        if (d->keys_ready)
                aidp_keys_free(&d->keys);
        d->keys_ready = false;
}
