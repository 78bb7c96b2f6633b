#pragma once
/* What the viewer harnesses share: one file view with every transform, fed
 * whole, in pieces (sized by the first input byte), and cut into chunks
 * viewed apart and committed in order as sealed_view_par.c does
 * (views/viewer_chunk.h); all runs must agree byte for byte, in output and
 * in error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "views/view.h"
#include "views/viewer_chunk.h"

struct fz_out {
        uint8_t *p;
        size_t len;
        uint64_t hidden;
};

static int fz_write(void *opaque, const void *buf, size_t len, aidp_error *err)
{
        struct fz_out *o = opaque;
        uint8_t *p = realloc(o->p, o->len + len);
        if (!p)
                abort();
        memcpy(p + o->len, buf, len);
        o->p = p;
        o->len += len;
        return 0;
}

static void fz_hidden(void *opaque, const char *column, const char *label, const void *value,
                      size_t len)
{
        struct fz_out *o = opaque;
        o->hidden += len + 1;
}

static int fz_run(const struct aidp_file_view *fv, const struct aidp_token_keys *keys,
                  const uint8_t *data, size_t size, size_t chunk, struct fz_out *o, aidp_error *err)
{
        struct aidp_viewer *v;
        if (aidp_viewer_new(fv, keys, "ds/f", fz_write, fz_hidden, o, &v, err) < 0)
                abort();
        int r = 0;
        for (size_t off = 0; r >= 0 && off < size;) {
                size_t take = chunk && size - off > chunk ? chunk : size - off;
                r = aidp_viewer_feed(v, data + off, take, err);
                off += take;
        }
        if (r >= 0)
                r = aidp_viewer_finish(v, err);
        aidp_viewer_free(v);
        return r;
}

/* Move what o gathered to the end of all (a chunk's result, committed). */
static void fz_commit(struct fz_out *all, struct fz_out *o)
{
        if (o->len)
                fz_write(all, o->p, o->len, NULL);
        all->hidden += o->hidden;
        o->len = 0;
        o->hidden = 0;
}

/* Just after the first newline in data[x, x + step), or x. */
static size_t fz_cut(const uint8_t *data, size_t size, size_t x, size_t step)
{
        const uint8_t *nl = memchr(data + x, '\n', size - x < step ? size - x : step);
        return nl ? (size_t)(nl - data) + 1 : x;
}

/* A viewer and what it wrote, not yet committed. */
struct fz_v {
        struct aidp_viewer *v;
        struct fz_out o;
};

static void fz_v_free(struct fz_v *x)
{
        if (!x)
                return;
        aidp_viewer_free(x->v);
        free(x->o.p);
        free(x);
}

static struct fz_v *fz_v_view(struct fz_v *c, const uint8_t *data, size_t a, size_t b, bool last)
{
        if (b > a)
                (void)aidp_viewer_feed(c->v, data + a, b - a, NULL);
        (void)(last ? aidp_viewer_finish(c->v, NULL) : aidp_viewer_flush_out(c->v, NULL));
        return c;
}

/* The commit of sealed_view_par.c, on one thread: chunk k is viewed as a
 * guess (from the first chunk's viewer) and its result used only when the
 * chunk before it ended between two records; else the viewer inside the
 * record is fed it. */
static int fz_run_chunks(const struct aidp_file_view *fv, const struct aidp_token_keys *keys,
                         const uint8_t *data, size_t size, size_t step, struct fz_out *all,
                         aidp_error *err)
{
        struct fz_v *root = calloc(1, sizeof *root), *seq = NULL;
        if (!root ||
            aidp_viewer_new(fv, keys, "ds/f", fz_write, fz_hidden, &root->o, &root->v, err) < 0)
                abort();
        uint64_t records = 0;
        bool tmpl = false;
        int r = 0;
        for (size_t k = 1, a = 0, b; r >= 0; k++, a = b) {
                b = k * step < size ? fz_cut(data, size, k * step, step) : size;
                bool last = b >= size;
                struct fz_v *c = k == 1 ? root : NULL;
                if (k > 1 && tmpl &&
                    (!(c = calloc(1, sizeof *c)) ||
                     aidp_viewer_fork(root->v, fz_write, fz_hidden, &c->o, &c->v, err) < 0))
                        abort();
                if (c)
                        fz_v_view(c, data, a, b, last);
                if (k == 1)
                        tmpl = aidp_viewer_can_fork(root->v);
                if (!seq && c) {
                        r = aidp_viewer_rebase(c->v, records, err);
                        if (r >= 0)
                                fz_commit(all, &c->o);
                        if (r >= 0 && !last && !aidp_viewer_at_boundary(c->v)) {
                                seq = c;
                        } else {
                                records = aidp_viewer_records(c->v);
                                if (c != root)
                                        fz_v_free(c);
                        }
                } else {
                        if (c != root)
                                fz_v_free(c);
                        if (!seq)
                                seq = root;
                        r = b > a ? aidp_viewer_feed(seq->v, data + a, b - a, err) : 0;
                        if (r >= 0)
                                r = last ? aidp_viewer_finish(seq->v, err)
                                         : aidp_viewer_flush_out(seq->v, err);
                        fz_commit(all, &seq->o);
                        if (r >= 0 && !last && aidp_viewer_at_boundary(seq->v) &&
                            aidp_viewer_can_fork(seq->v)) {
                                records = aidp_viewer_records(seq->v);
                                if (seq != root)
                                        fz_v_free(seq);
                                seq = NULL;
                        }
                }
                if (last)
                        break;
        }
        if (seq != root)
                fz_v_free(seq);
        fz_v_free(root);
        return r < 0 ? r : 0;
}

static void fz_check(const struct aidp_file_view *fv, const struct aidp_token_keys *keys,
                     const uint8_t *data, size_t size)
{
        if (size == 0)
                return;
        size_t chunk = (size_t)data[0] % 17 + 1;
        struct fz_out a = {0}, b = {0};
        aidp_error ea = {0}, eb = {0};
        int ra = fz_run(fv, keys, data + 1, size - 1, 0, &a, &ea);
        int rb = fz_run(fv, keys, data + 1, size - 1, chunk, &b, &eb);
        struct fz_out c = {0};
        aidp_error ec = {0};
        int rc = fz_run_chunks(fv, keys, data + 1, size - 1, chunk * 3, &c, &ec);
        if ((ra < 0) != (rc < 0) || (ra < 0 && strcmp(ea.msg, ec.msg)))
                abort();
        if (ra >= 0 &&
            (a.len != c.len || (a.len && memcmp(a.p, c.p, a.len)) || a.hidden != c.hidden))
                abort();
        free(c.p);
        if ((ra < 0) != (rb < 0))
                abort();
        if (ra < 0 && strcmp(ea.msg, eb.msg))
                abort();
        if (ra >= 0 &&
            (a.len != b.len || (a.len && memcmp(a.p, b.p, a.len)) || a.hidden != b.hidden))
                abort();
        free(a.p);
        free(b.p);
}

static struct aidp_xform fz_xforms[6];

static void fz_set_xforms(void)
{
        fz_xforms[0] = (struct aidp_xform){.kind = AIDP_XF_TOKENIZE,
                                           .mode = AIDP_TOK_HMAC,
                                           .domain = "patient",
                                           .key_id = "k"};
        fz_xforms[1] = (struct aidp_xform){
                .kind = AIDP_XF_TOKENIZE, .mode = AIDP_TOK_SIV, .domain = "mrn", .key_id = "k"};
        fz_xforms[2] = (struct aidp_xform){.kind = AIDP_XF_MASK, .keep_last = 2, .mask_char = '*'};
        fz_xforms[3] = (struct aidp_xform){.kind = AIDP_XF_GENERALIZE, .gen = AIDP_GEN_DATE_MONTH};
        fz_xforms[4] = (struct aidp_xform){.kind = AIDP_XF_GENERALIZE,
                                           .gen = AIDP_GEN_BANDS,
                                           .bands = {0, 18, 65},
                                           .n_bands = 3};
        fz_xforms[5] = (struct aidp_xform){.kind = AIDP_XF_DROP};
}

static struct aidp_token_key fz_key = {.key_id = "k", .key = {1, 2, 3}};
static const struct aidp_token_keys fz_keys = {.keys = &fz_key, .n = 1};

/* One file of six columns (names), each with one of fz_xforms, built once. */
struct fz_file {
        struct aidp_schema_column cols[6];
        struct aidp_schema_file file;
        struct aidp_column_view cv[6];
        struct aidp_file_view fv;
};

static const struct aidp_file_view *fz_file_view(struct fz_file *f, enum aidp_view_format format,
                                                 char *const names[6])
{
        if (f->fv.n_columns)
                return &f->fv;
        fz_set_xforms();
        for (size_t i = 0; i < 6; i++) {
                f->cols[i].name = names[i];
                f->cv[i].column = names[i];
                f->cv[i].x = fz_xforms[i];
        }
        f->file = (struct aidp_schema_file){
                .pattern = (char *)"*", .format = format, .columns = f->cols, .n_columns = 6};
        f->fv = (struct aidp_file_view){.file = &f->file, .columns = f->cv, .n_columns = 6};
        return &f->fv;
}
