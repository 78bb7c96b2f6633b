/* Column views of a run's inputs: schema from the authenticated header,
 * views from the policy decision, resolved per file pattern, token keys from
 * the key providers. See inject.h and docs/sealed-data.md, "Views at
 * injection". */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/sealed/inject.h"

#include <stdlib.h>

/* The schema an input was sealed with, decoded from its authenticated
 * header (format 3, TLV 14); *has false when it carries none. */
static int header_schema(const struct aidp_sealed_header *h, struct aidp_schema *out, bool *has,
                         aidp_error *err)
{
        int r = aidp_sealed_header_schema(h, out, err);
        if (r < 0)
                return aidp_error_wrap(err, "dataset %s: its schema", h->meta.name);
        *has = r == 1;
        return 0;
}

static int resolve_one(struct aidp_inject_view *v, const char *name, aidp_error *err)
{
        size_t n = v->schema.n_files;
        v->files = calloc(n ? n : 1, sizeof *v->files);
        if (!v->files)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t k = 0; k < n; k++) {
                int r = aidp_view_resolve(v->views, v->n, &v->schema.files[k], &v->files[k], err);
                if (r < 0)
                        return aidp_error_wrap(err, "dataset %s: view of %s", name,
                                               v->schema.files[k].pattern);
                v->n_files++;
                if (!aidp_file_view_is_raw(&v->files[k]))
                        v->applies = true;
        }
        return 0;
}

/* Every key id a resolved view tokenizes with, once. */
static size_t collect_key_ids(const struct aidp_inject *d, const char **ids, size_t cap)
{
        size_t n = 0;
        for (size_t i = 0; i < d->n; i++)
                for (size_t k = 0; k < d->view[i].n_files; k++) {
                        const struct aidp_file_view *fv = &d->view[i].files[k];
                        for (size_t c = 0; c < fv->n_columns; c++) {
                                const struct aidp_xform *x = &fv->columns[c].x;
                                if (x->kind != AIDP_XF_TOKENIZE)
                                        continue;
                                bool seen = false;
                                for (size_t j = 0; j < n && !seen; j++)
                                        seen = !strcmp(ids[j], x->key_id);
                                if (!seen && n < cap)
                                        ids[n++] = x->key_id;
                        }
                }
        return n;
}

static int load_token_keys(struct aidp_inject *d, aidp_error *err)
{
        const char *ids[AIDP_RUN_MAX_DATA * 16];
        size_t n = collect_key_ids(d, ids, sizeof ids / sizeof ids[0]);
        if (!n)
                return 0;
        int r = aidp_secret_alloc(&d->token_mem, n * sizeof(struct aidp_token_key), err);
        if (r < 0)
                return r;
        struct aidp_token_key *keys = (struct aidp_token_key *)d->token_mem.p;
        for (size_t i = 0; i < n; i++)
                if ((r = aidp_keys_read_token(&d->keys, ids[i], &keys[i], err)) < 0)
                        return aidp_error_wrap(err, "refusing the run before decryption");
        d->tokens.keys = keys;
        d->tokens.n = n;
        return 0;
}

int aidp_inject_views_resolve(struct aidp_inject *d, aidp_error *err)
{
        int r;
        for (size_t i = 0; i < d->n; i++) {
                struct aidp_inject_view *v = &d->view[i];
                const struct aidp_sealed_header *h = aidp_sealed_header_of(d->in[i]);
                if ((r = header_schema(h, &v->schema, &v->has_schema, err)) < 0)
                        return r;
                if (!v->has_schema || !v->decided)
                        continue;
                if ((r = resolve_one(v, h->meta.name, err)) < 0)
                        return r;
        }
        if (!aidp_inject_views_apply(d))
                return 0;
        if ((r = load_token_keys(d, err)) < 0)
                return r;
        /* Every raw value a view hides goes to the output leak scan's set
         * (inject_leak.c), checked against /out before it is sealed. */
        if ((r = aidp_inject_leaks_new(d, err)) < 0)
                return r;
        d->hidden = aidp_inject_leak_hidden;
        d->hidden_many = aidp_inject_leak_hidden_many;
        d->hidden_opaque = d->leaks;
        return 0;
}

bool aidp_inject_views_apply(const struct aidp_inject *d)
{
        for (size_t i = 0; i < d->n; i++)
                if (d->view[i].applies)
                        return true;
        return false;
}

void aidp_inject_view_opts(struct aidp_inject *d, size_t i, struct aidp_sealed_view *ret)
{
        struct aidp_inject_view *v = &d->view[i];
        *ret = (struct aidp_sealed_view){
                .dataset = aidp_sealed_header_of(d->in[i])->meta.name,
                .schema = &v->schema,
                .files = v->files,
                .keys = &d->tokens,
                .hidden = d->hidden,
                .hidden_many = d->hidden_many,
                .hidden_opaque = d->hidden_opaque,
        };
}

void aidp_inject_views_free(struct aidp_inject *d)
{
        for (size_t i = 0; i < AIDP_RUN_MAX_DATA; i++) {
                struct aidp_inject_view *v = &d->view[i];
                for (size_t k = 0; k < v->n_files; k++)
                        aidp_file_view_free(&v->files[k]);
                free(v->files);
                if (v->has_schema)
                        aidp_schema_free(&v->schema);
                memset(v, 0, sizeof *v);
        }
        aidp_secret_free(&d->token_mem);
        d->tokens = (struct aidp_token_keys){0};
}
