/* What a run's output records about the views that produced it (inject.h;
 * docs/sealed-data.md, "Views at injection"): each input as lineage START's
 * aidp_view facet shows it, and the output's produced-by record (sealed
 * header TLV 15, supervisor/sealed/codec/sealed_produced.c) built from the
 * same JSON, so the header and the lineage say the same thing. */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/sealed/inject.h"

static json_object *column_json(const struct aidp_schema_column *sc,
                                const struct aidp_column_view *cv)
{
        json_object *c = json_object_new_object();
        char desc[256];
        aidp_xform_describe(&cv->x, desc, sizeof desc);
        json_object_object_add(c, "column", json_object_new_string(sc->name));
        json_object *labels = json_object_new_array();
        for (size_t l = 0; l < sc->n_labels; l++)
                json_object_array_add(labels, json_object_new_string(sc->labels[l]));
        json_object_object_add(c, "labels", labels);
        json_object_object_add(c, "transform", json_object_new_string(desc));
        if (cv->x.kind == AIDP_XF_TOKENIZE) {
                json_object_object_add(c, "keyId", json_object_new_string(cv->x.key_id));
                json_object_object_add(c, "domain", json_object_new_string(cv->x.domain));
        }
        return c;
}

static json_object *file_json(const struct aidp_file_view *fv)
{
        json_object *f = json_object_new_object();
        json_object_object_add(f, "pattern", json_object_new_string(fv->file->pattern));
        json_object_object_add(
                f, "format",
                json_object_new_string(fv->file->format == AIDP_VIEW_JSONL ? "jsonl" : "csv"));
        json_object *cols = json_object_new_array();
        for (size_t c = 0; c < fv->n_columns; c++)
                json_object_array_add(cols, column_json(&fv->file->columns[c], &fv->columns[c]));
        json_object_object_add(f, "columns", cols);
        return f;
}

json_object *aidp_inject_view_json(const struct aidp_inject *d, size_t i,
                                   const struct aidp_run_dataset *info)
{
        const struct aidp_inject_view *v = &d->view[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "dataset", json_object_new_string(info->name));
        json_object_object_add(o, "digest", json_object_new_string(info->digest));
        const char *how = !v->has_schema ? "sealed (no schema)"
                          : !v->decided  ? "sealed (no policy decided a view)"
                          : !v->applies  ? "raw (every column's view is raw)"
                                         : "viewed";
        json_object_object_add(o, "injected", json_object_new_string(how));
        if (!v->decided || !v->has_schema)
                return o;
        json_object *views = json_object_new_array();
        for (size_t k = 0; k < v->n; k++)
                json_object_array_add(views, json_object_new_string(v->views[k]->name));
        json_object_object_add(o, "views", views);
        json_object *files = json_object_new_array();
        for (size_t k = 0; k < v->n_files; k++)
                json_object_array_add(files, file_json(&v->files[k]));
        json_object_object_add(o, "files", files);
        return o;
}

int aidp_inject_produced(struct aidp_inject *d, const char *output_name, const char *run_id,
                         const struct aidp_run_dataset *info, aidp_error *err)
{
        free(d->produced);
        d->produced = NULL;
        d->produced_len = 0;
        /* Something to record: an input seen through its schema (a view, or
         * as sealed because nothing decided one), or an input that was itself
         * produced through views (its chain goes on). Otherwise the output
         * stays format 2, readable by an aidp older than this record. */
        const struct aidp_sealed_header *in[AIDP_RUN_MAX_DATA];
        bool any = false;
        for (size_t i = 0; i < d->n; i++) {
                in[i] = aidp_sealed_header_of(d->in[i]);
                any |= d->view[i].has_schema || in[i]->produced_by_len;
        }
        if (!any)
                return 0;
        json_object *step = json_object_new_object(), *inputs = json_object_new_array();
        if (!step || !inputs) {
                json_object_put(step);
                json_object_put(inputs);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        json_object_object_add(step, "output", json_object_new_string(output_name));
        json_object_object_add(step, "run", json_object_new_string(run_id));
        json_object_object_add(step, "inputs", inputs);
        for (size_t i = 0; i < d->n; i++)
                json_object_array_add(inputs, aidp_inject_view_json(d, i, &info[i]));
        /* Built before START: a record that cannot fit the output's header
         * refuses the run now, not after the job when /out could only be
         * shredded. */
        int r = aidp_sealed_produced_chain(step, in, d->n, &d->produced, &d->produced_len, err);
        if (r < 0)
                return aidp_error_wrap(err, "sealing /out");
        return 0;
}
