#pragma once
/* The streaming viewer's state, shared by viewer.c (set-up, output, BOM),
 * viewer_csv.c (libcsv) and viewer_jsonl.c (json-c). */
#include <csv.h>

#include "views/views_internal.h"

#define VIEWER_FLUSH   (64u << 10) /* hand output over in blocks of about this */
#define JSONL_LINE_MAX (2 * (size_t)AIDP_VIEW_FIELD_MAX)

struct viewer_col {
        const struct aidp_column_view *cv; /* the resolved transform */
        const char *label;                 /* the column's first label, for hidden() */
        struct aidp_token_col tok;         /* TOKENIZE only */
        bool tok_ready;
};

struct aidp_viewer {
        const struct aidp_file_view *fv;
        const struct aidp_token_keys *keys;
        enum aidp_view_format format;
        char where[512];
        aidp_view_write_fn write;
        aidp_view_hidden_fn hidden;
        void *opaque;
        struct viewer_col *cols; /* one per fv column */
        size_t n_cols;

        struct aidp_vbuf out;   /* output not yet handed to write() */
        struct aidp_vbuf value; /* one transformed value */
        uint8_t head[3];        /* the first bytes, until we know whether they are a BOM */
        size_t n_head;
        bool bom_done, failed, finished;
        aidp_error err; /* the first failure, sticky */
        /* Positions: a chunk viewer (viewer_chunk.c) counts from the start of
         * its chunk; row_base turns that into the file's. The failure is kept
         * unformatted too, to be re-formatted once the base is known. */
        bool chunk;
        uint64_t row_base, fail_row, fail_col;
        char fail_msg[AIDP_ERROR_MSG_MAX / 2];

        /* CSV */
        struct csv_parser csv;
        bool csv_ready;
        uint64_t row;      /* 1-based record number; the header is 1 */
        size_t field;      /* fields seen in this record */
        size_t n_header;   /* fields of the header */
        int *map;          /* header position -> fv column index, or -1 */
        bool out_first;    /* no field written yet in this output row */
        bool crlf;         /* the input's records end in CR LF: so do ours */
        bool newline_seen; /* the first record's terminator is known */
        /* Every byte fed so far came in buffers that were whole, well-formed
         * UTF-8: then so is every field (fields are cut at ASCII bytes), and
         * on_field skips its own check. Cleared for good by the first buffer
         * that is not (a bad byte, or a sequence split over two buffers). */
        bool fed_utf8;
        /* libcsv runs with its built-in space test (no callback per byte)
         * for the buffer being fed: see edge_space() in viewer_csv.c. */
        bool csv_fast;
        bool csv_inq; /* inside quotes after the bytes fed so far */

        /* JSONL */
        struct aidp_vbuf line;
        uint64_t line_no;
        struct json_tokener *tok;
};

/* Fail the viewer at (row, col) of where; sticky; returns -EBADMSG. */
int aidp_viewer_fail(struct aidp_viewer *v, uint64_t row, uint64_t col, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
int aidp_viewer_oom(struct aidp_viewer *v);
/* Format the failure into v->err at (row_base + fail_row, fail_col). */
void aidp_viewer_format_error(struct aidp_viewer *v);
/* The rest of a viewer's set-up once its fields are filled: columns and
 * parser (root: the viewer a chunk viewer is forked from, else NULL). Frees
 * v on failure. */
int aidp_viewer_set_up(struct aidp_viewer *v, const struct aidp_viewer *root,
                       struct aidp_viewer **ret, aidp_error *err);
/* Is the CSV parser between two records (libcsv's own state, probed)? */
bool aidp_viewer_csv_at_boundary(struct aidp_viewer *v);
int aidp_viewer_csv_fork(struct aidp_viewer *child, const struct aidp_viewer *root);
/* Hand the buffered output to write() when there is enough (or all with force). */
int aidp_viewer_flush(struct aidp_viewer *v, bool force);
/* The transformed value of column c for raw value s[0..n): v->value holds
 * it; *is_null for a null result. Calls hidden() with the raw value. */
int aidp_viewer_value(struct aidp_viewer *v, struct viewer_col *c, const char *s, size_t n,
                      bool *is_null);

/* Does b hold a space or tab outside quotes first or last, or next to a
 * comma, CR or LF outside quotes or to a quote (viewer_csv.c: where libcsv's
 * built-in space test would parse differently)? *inq: inside quotes before
 * b, and after it on return. */
bool aidp_viewer_csv_edge_space(const uint8_t *b, size_t n, bool *inq);
int aidp_viewer_csv_init(struct aidp_viewer *v);
int aidp_viewer_csv_feed(struct aidp_viewer *v, const uint8_t *buf, size_t len);
int aidp_viewer_csv_finish(struct aidp_viewer *v);
void aidp_viewer_csv_free(struct aidp_viewer *v);

int aidp_viewer_jsonl_init(struct aidp_viewer *v);
int aidp_viewer_jsonl_feed(struct aidp_viewer *v, const uint8_t *buf, size_t len);
int aidp_viewer_jsonl_finish(struct aidp_viewer *v);
void aidp_viewer_jsonl_free(struct aidp_viewer *v);
