/* The streaming viewer (views/view.h): set-up, the BOM, output blocks and
 * one value's transform; the formats are viewer_csv.c and viewer_jsonl.c.
 * Everything it buffers is plaintext, so every buffer is wiped (vbuf.c,
 * and the parsers' own through their allocators). */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views/viewer_internal.h"

static const uint8_t BOM[3] = {0xef, 0xbb, 0xbf};

int aidp_viewer_fail(struct aidp_viewer *v, uint64_t row, uint64_t col, const char *fmt, ...)
{
        if (v->failed)
                return -v->err.errnum;
        va_list ap;
        va_start(ap, fmt);
        aidp_text_vprintf(v->fail_msg, sizeof v->fail_msg, fmt, ap);
        va_end(ap);
        v->fail_row = row;
        v->fail_col = col;
        v->failed = true;
        aidp_viewer_format_error(v);
        return -EBADMSG;
}

void aidp_viewer_format_error(struct aidp_viewer *v)
{
        if (!v->fail_msg[0])
                return; /* not a data error (out of memory, a write) */
        aidp_error_set_at(&v->err, AIDP_EXIT_DATA, v->where, (unsigned)(v->row_base + v->fail_row),
                          (unsigned)v->fail_col, "%s", v->fail_msg);
        v->err.errnum = EBADMSG;
}

int aidp_viewer_oom(struct aidp_viewer *v)
{
        if (!v->failed) {
                aidp_error_set(&v->err, AIDP_EXIT_INTERNAL, ENOMEM, "%s: out of memory", v->where);
                v->failed = true;
        }
        return -v->err.errnum;
}

int aidp_viewer_flush(struct aidp_viewer *v, bool force)
{
        if (v->failed)
                return -v->err.errnum;
        if (v->out.len == 0 || (!force && v->out.len < VIEWER_FLUSH))
                return 0;
        aidp_error e = {0};
        int r = v->write(v->opaque, v->out.p, v->out.len, &e);
        aidp_vbuf_reset(&v->out); /* the view's output: wiped at free */
        if (r < 0) {
                v->err = e;
                if (!v->err.errnum)
                        v->err.errnum = r < 0 ? -r : EIO;
                v->failed = true;
                return -v->err.errnum;
        }
        return 0;
}

int aidp_viewer_value(struct aidp_viewer *v, struct viewer_col *c, const char *s, size_t n,
                      bool *is_null)
{
        aidp_vbuf_reset(&v->value); /* a transformed value: the job's to see */
        if (v->hidden && n)
                v->hidden(v->opaque, c->cv->column, c->label, s, n);
        aidp_error e; /* 2 KiB: filled only on failure, not zeroed per value */
        e.errnum = 0;
        int r = aidp_xform_apply(&c->cv->x, c->tok_ready ? &c->tok : NULL, s, n, &v->value, is_null,
                                 &e);
        if (r < 0 && !v->failed) {
                v->err = e;
                v->failed = true;
        }
        return r;
}

static int set_up_columns(struct aidp_viewer *v, aidp_error *err)
{
        const struct aidp_token_keys *keys = v->keys;
        const struct aidp_file_view *fv = v->fv;
        if (fv->n_columns && !(v->cols = calloc(fv->n_columns, sizeof *v->cols)))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        v->n_cols = fv->n_columns;
        for (size_t i = 0; i < fv->n_columns; i++) {
                struct viewer_col *c = &v->cols[i];
                c->cv = &fv->columns[i];
                const struct aidp_schema_column *sc = fv->file ? &fv->file->columns[i] : NULL;
                c->label = sc && sc->n_labels ? sc->labels[0] : NULL;
                if (c->cv->x.kind != AIDP_XF_TOKENIZE)
                        continue;
                int r = aidp_token_col_init(&c->tok, keys, &c->cv->x, err);
                if (r < 0)
                        return aidp_error_wrap(err, "%s: column '%s'", v->where, c->cv->column);
                c->tok_ready = true;
        }
        return 0;
}

int aidp_viewer_set_up(struct aidp_viewer *v, const struct aidp_viewer *root,
                       struct aidp_viewer **ret, aidp_error *err)
{
        int r = set_up_columns(v, err);
        if (r >= 0) {
                r = v->format == AIDP_VIEW_CSV && root ? aidp_viewer_csv_fork(v, root)
                    : v->format == AIDP_VIEW_CSV       ? aidp_viewer_csv_init(v)
                    : v->format == AIDP_VIEW_JSONL     ? aidp_viewer_jsonl_init(v)
                                                       : -EINVAL;
                if (r < 0)
                        aidp_error_set(err, AIDP_EXIT_INTERNAL, -r, "%s: viewer set-up failed",
                                       v->where);
        }
        if (r < 0) {
                aidp_viewer_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

int aidp_viewer_new(const struct aidp_file_view *fv, const struct aidp_token_keys *keys,
                    const char *where, aidp_view_write_fn write, aidp_view_hidden_fn hidden,
                    void *opaque, struct aidp_viewer **ret, aidp_error *err)
{
        if (!fv || !fv->file || !write)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "viewer: no file view or no writer");
        struct aidp_viewer *v = calloc(1, sizeof *v);
        if (!v)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        v->fv = fv;
        v->keys = keys;
        v->format = fv->file->format;
        aidp_text_printf(v->where, sizeof v->where, "%s", where ? where : "<data>");
        v->write = write;
        v->hidden = hidden;
        v->opaque = opaque;
        return aidp_viewer_set_up(v, NULL, ret, err);
}

static int feed_format(struct aidp_viewer *v, const uint8_t *buf, size_t len)
{
        if (len == 0)
                return 0;
        return v->format == AIDP_VIEW_CSV ? aidp_viewer_csv_feed(v, buf, len)
                                          : aidp_viewer_jsonl_feed(v, buf, len);
}

/* A leading UTF-8 BOM is dropped; it may arrive split over chunks. */
static int feed_head(struct aidp_viewer *v, const uint8_t **buf, size_t *len)
{
        while (!v->bom_done && *len) {
                v->head[v->n_head++] = **buf;
                (*buf)++;
                (*len)--;
                if (v->head[v->n_head - 1] != BOM[v->n_head - 1]) {
                        v->bom_done = true;
                        return feed_format(v, v->head, v->n_head);
                }
                if (v->n_head == 3)
                        v->bom_done = true; /* a BOM: dropped */
        }
        return 0;
}

/* The viewer's sticky error into err, once anything failed. */
static int report(struct aidp_viewer *v, int r, aidp_error *err)
{
        if (r >= 0 && !v->failed)
                return 0;
        if (err)
                *err = v->err;
        return v->err.errnum ? -v->err.errnum : -EIO;
}

int aidp_viewer_feed(struct aidp_viewer *v, const void *buf, size_t len, aidp_error *err)
{
        const uint8_t *p = buf;
        int r = v->failed ? -v->err.errnum : 0;
        if (r >= 0 && v->finished)
                r = aidp_viewer_fail(v, 0, 0, "fed after finish");
        if (r >= 0)
                r = feed_head(v, &p, &len);
        if (r >= 0)
                r = feed_format(v, p, len);
        if (r >= 0)
                r = aidp_viewer_flush(v, false);
        return report(v, r, err);
}

int aidp_viewer_finish(struct aidp_viewer *v, aidp_error *err)
{
        int r = v->failed ? -1 : 0;
        if (r >= 0 && !v->bom_done) {
                v->bom_done = true;
                if (!(v->n_head == 3 && !memcmp(v->head, BOM, 3)))
                        r = feed_format(v, v->head, v->n_head);
        }
        if (r >= 0 && !v->finished) {
                v->finished = true;
                r = v->format == AIDP_VIEW_CSV ? aidp_viewer_csv_finish(v)
                                               : aidp_viewer_jsonl_finish(v);
        }
        if (r >= 0)
                r = aidp_viewer_flush(v, true);
        return report(v, r, err);
}

void aidp_viewer_free(struct aidp_viewer *v)
{
        if (!v)
                return;
        if (v->format == AIDP_VIEW_CSV)
                aidp_viewer_csv_free(v);
        else
                aidp_viewer_jsonl_free(v);
        for (size_t i = 0; i < v->n_cols; i++)
                if (v->cols[i].tok_ready)
                        aidp_token_col_free(&v->cols[i].tok);
        free(v->cols);
        aidp_vbuf_free(&v->out);
        aidp_vbuf_free(&v->value);
        OPENSSL_cleanse(v, sizeof *v);
        free(v);
}
