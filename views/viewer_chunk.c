/* Chunk viewers for viewing one file in parallel (views/viewer_chunk.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "views/viewer_chunk.h"
#include "views/viewer_internal.h"

bool aidp_viewer_can_fork(const struct aidp_viewer *root)
{
        if (root->failed || !root->bom_done)
                return false;
        return root->format == AIDP_VIEW_JSONL || root->row >= 1;
}

int aidp_viewer_fork(const struct aidp_viewer *root, aidp_view_write_fn write,
                     aidp_view_hidden_fn hidden, void *opaque, struct aidp_viewer **ret,
                     aidp_error *err)
{
        /* Only what is set once, with the header: root may be being fed on
         * another thread. */
        if (root->format == AIDP_VIEW_CSV && root->n_header == 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "viewer: forked before the header");
        struct aidp_viewer *v = calloc(1, sizeof *v);
        if (!v)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        v->fv = root->fv;
        v->keys = root->keys;
        v->format = root->format;
        memcpy(v->where, root->where, sizeof v->where);
        v->write = write;
        v->hidden = hidden;
        v->opaque = opaque;
        v->chunk = true;
        v->bom_done = true; /* a BOM is only at the start of the file */
        return aidp_viewer_set_up(v, root, ret, err);
}

bool aidp_viewer_at_boundary(struct aidp_viewer *v)
{
        if (v->failed || !v->bom_done || v->finished)
                return false;
        if (v->format == AIDP_VIEW_JSONL)
                return v->line.len == 0;
        return aidp_viewer_csv_at_boundary(v);
}

uint64_t aidp_viewer_records(const struct aidp_viewer *v)
{
        /* A CSV chunk viewer's row starts at 1 and its base is one less. */
        return v->row_base + (v->format == AIDP_VIEW_CSV ? v->row : v->line_no);
}

int aidp_viewer_rebase(struct aidp_viewer *v, uint64_t committed, aidp_error *err)
{
        /* Positions are row + 1 (CSV: row counts from 1 in a chunk) and
         * line_no (JSONL: from 0). */
        v->row_base = v->format == AIDP_VIEW_CSV && v->chunk ? committed - 1 : committed;
        if (!v->failed)
                return 0;
        aidp_viewer_format_error(v);
        if (err)
                *err = v->err;
        return v->err.errnum ? -v->err.errnum : -EIO;
}

int aidp_viewer_flush_out(struct aidp_viewer *v, aidp_error *err)
{
        int r = aidp_viewer_flush(v, true);
        if (r < 0 && err)
                *err = v->err;
        return r;
}
