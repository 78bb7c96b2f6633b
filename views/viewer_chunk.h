#pragma once
/* Viewing one file in parallel (supervisor/sealed/sealed_view.c): the file
 * is cut into chunks, each viewed by its own chunk viewer on any thread, and
 * the results are committed in order. A cut is only a guess at a record
 * boundary (it is made after a newline); whether it was one is decided by
 * the parser itself: a chunk's result is used only when the chunk before it
 * ended between two records (aidp_viewer_at_boundary, libcsv's own state for
 * CSV; an empty line buffer for JSONL, where a raw newline cannot be inside
 * a JSON string). Otherwise the committer feeds the chunk to the viewer that
 * is still inside the record, and the guess is thrown away. Output, hidden
 * values and errors are therefore exactly those of one viewer fed the whole
 * file (tests/unit/test_views_chunk.c compares both).
 *
 *   root = aidp_viewer_new(...)        first chunk: BOM, header (CSV)
 *   aidp_viewer_can_fork(root)         once the header is in
 *   c = aidp_viewer_fork(root, ...)    any later chunk, any thread
 *   aidp_viewer_feed(c, ...); aidp_viewer_at_boundary(c)
 *   in order: aidp_viewer_rebase(c, committed, err); committed = aidp_viewer_records(c)
 */
#include "views/view.h"

/* True once root's header (CSV) is parsed; JSONL: always. Until then a fork
 * is refused. */
bool aidp_viewer_can_fork(const struct aidp_viewer *root);
/* A viewer for a chunk that starts at a record boundary after root's header:
 * the same file view, keys and header map; no BOM handling; positions
 * counted from the chunk until aidp_viewer_rebase. Reads only what root set
 * while it parsed the header, so root may go on being fed meanwhile. */
int aidp_viewer_fork(const struct aidp_viewer *root, aidp_view_write_fn write,
                     aidp_view_hidden_fn hidden, void *opaque, struct aidp_viewer **ret,
                     aidp_error *err);
/* Is v between two records (nothing of a record pending)? Never true after
 * a failure. Does not change v. */
bool aidp_viewer_at_boundary(struct aidp_viewer *v);
/* Records (CSV, the header included) or lines (JSONL) v has completed,
 * counted in the file once v is rebased. */
uint64_t aidp_viewer_records(const struct aidp_viewer *v);
/* Place a chunk viewer in the file: `committed` records came before its
 * chunk. Its failure, if any, is re-stated at the file's position into err
 * and returned (< 0); else 0. */
int aidp_viewer_rebase(struct aidp_viewer *v, uint64_t committed, aidp_error *err);
/* Hand everything v has buffered to its write function now. */
int aidp_viewer_flush_out(struct aidp_viewer *v, aidp_error *err);
