/* aidp seal --derived-from SEALED... (docs/sealed-data.md, "Re-sealing a
 * derived dataset"): a dataset unsealed, changed and sealed again keeps its
 * history. Each named sealed file is opened and its header authenticated as
 * `aidp unseal` would for this caller (tool_access.h: the caller's own
 * credentials and keys; for a sudo user, the access policy's unseal grant),
 * so nobody can claim a file they could not read themselves. The new header
 * takes their classification (the highest) and every residency and
 * regulation tag on top of the command line's, their schema's column labels
 * (theirs, or a --schema that keeps every one of them), and a produced-by record
 * (TLV 15) whose first step names the files it was derived from, followed by
 * their own steps: the same chain a run's output keeps. */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "supervisor/cli/cli_schema.h"
#include "supervisor/cli/tool_access.h"
#include "views/view.h"

/* At most the inputs one produced-by step holds (sealed_produced.c). */
#define DERIVED_MAX 64

struct derived {
        struct aidp_sealed *s[DERIVED_MAX];
        const struct aidp_sealed_header *h[DERIVED_MAX];
        size_t n;
        uid_t uid; /* who asked, as tool_access identified them */
};

static void derived_free(struct derived *d)
{
        for (size_t i = 0; i < d->n; i++)
                aidp_sealed_close(d->s[i]);
        d->n = 0;
}

static int open_all(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *pa,
                    const struct aidp_cli_list *files, const char *keys_config, const char *key_dir,
                    struct derived *d, aidp_error *err)
{
        if (files->n > DERIVED_MAX)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG,
                                      "--derived-from given %zu times; at most %d", files->n,
                                      DERIVED_MAX);
        for (size_t i = 0; i < files->n; i++) {
                struct aidp_tool_access acc;
                /* What the caller may unseal, and only that, may be named:
                 * the header authenticates under the installed keys, the
                 * file is read with the caller's credentials, and the
                 * policy decides unseal for a user root acts for. */
                int r = aidp_tool_open_sealed(spec, pa, files->v[i], AIDP_OP_UNSEAL, keys_config,
                                              key_dir, &acc, &d->s[d->n], err);
                if (r < 0)
                        return aidp_error_wrap(err, "--derived-from %s", files->v[i]);
                d->h[d->n] = aidp_sealed_header_of(d->s[d->n]);
                d->n++;
                d->uid = acc.uid;
        }
        return 0;
}

/* The inputs' classification and tags on top of the command line's. A
 * classification given lower than an input's is refused, never lowered
 * silently; tags are only ever added. */
static int inherit(const struct derived *d, const struct aidp_cli_list *files, bool cls_given,
                   struct aidp_sealed_meta *m, aidp_error *err)
{
        const struct aidp_sealed_meta *in[DERIVED_MAX + 1];
        for (size_t i = 0; i < d->n; i++) {
                in[i] = &d->h[i]->meta;
                if (cls_given && in[i]->classification > m->classification)
                        return aidp_error_set(
                                err, AIDP_EXIT_USAGE, EPERM,
                                "--classification %s is lower than %s, the classification of "
                                "--derived-from %s (dataset %s): a derived dataset keeps its "
                                "inputs' classification; give %s or higher, or leave "
                                "--classification out",
                                aidp_sealed_class_name(m->classification),
                                aidp_sealed_class_name(in[i]->classification), files->v[i],
                                in[i]->name, aidp_sealed_class_name(in[i]->classification));
        }
        /* The command line's own tags count as one more input. */
        struct aidp_sealed_meta mine = *m;
        in[d->n] = &mine;
        return aidp_sealed_meta_inherit(in, d->n + 1, m, err);
}

/* Every label of input i's schema is kept by the new one as a run would
 * apply it (aidp_schema_keeps_labels: the first matching entry wins, so an
 * unlabelled entry ahead of a labelled one counts): a re-seal never unlabels
 * a column (a column without labels is passed to every run raw). */
static int labels_kept(const struct aidp_schema *mine, const struct aidp_sealed_header *h,
                       const char *file, aidp_error *err)
{
        struct aidp_schema old = {0};
        char msg[512];
        int r = aidp_sealed_header_schema(h, &old, err);
        if (r >= 0 && aidp_schema_keeps_labels(&old, mine, msg, sizeof msg) < 0)
                r = aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                   "--schema %s, which --derived-from %s (dataset %s) has: a "
                                   "derived dataset keeps its inputs' column labels",
                                   msg, file, h->meta.name);
        aidp_schema_free(&old);
        return r;
}

/* The new dataset's schema: the one given, if it keeps every input's
 * labels; otherwise the inputs' own (when they have one, the same one). */
static int keep_schema(const struct derived *d, const struct aidp_cli_list *files,
                       struct aidp_seal_params *p, uint8_t **ret, aidp_error *err)
{
        if (p->schema_len) {
                struct aidp_schema mine = {0};
                int r = aidp_schema_decode(p->schema, p->schema_len, &mine, err);
                for (size_t i = 0; r >= 0 && i < d->n; i++)
                        if (d->h[i]->schema_len)
                                r = labels_kept(&mine, d->h[i], files->v[i], err);
                aidp_schema_free(&mine);
                return r;
        }
        const struct aidp_sealed_header *first = NULL;
        for (size_t i = 0; i < d->n; i++) {
                const struct aidp_sealed_header *h = d->h[i];
                if (!h->schema_len)
                        continue;
                if (first && (first->schema_len != h->schema_len ||
                              memcmp(first->schema, h->schema, h->schema_len)))
                        return aidp_error_set(
                                err, AIDP_EXIT_USAGE, EINVAL,
                                "--derived-from %s (dataset %s) and dataset %s have different "
                                "schemas: give --schema with every label of both",
                                files->v[i], h->meta.name, first->meta.name);
                first = first ? first : h;
        }
        if (!first)
                return 0;
        *ret = malloc(first->schema_len);
        if (!*ret)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        memcpy(*ret, first->schema, first->schema_len);
        p->schema = *ret;
        p->schema_len = first->schema_len;
        return 0;
}

static json_object *who_json(uid_t uid)
{
        char buf[160];
        struct passwd *pw = getpwuid(uid);
        snprintf(buf, sizeof buf, "%s (uid %u)", pw ? pw->pw_name : "?", (unsigned)uid);
        return json_object_new_string(buf);
}

/* This re-seal's step: {"output":NAME,"sealedBy":WHO,"inputs":[...]}. */
static json_object *step_json(const struct derived *d, const char *output)
{
        json_object *step = json_object_new_object(), *inputs = json_object_new_array();
        if (!step || !inputs) {
                json_object_put(step);
                json_object_put(inputs);
                return NULL;
        }
        json_object_object_add(step, "output", json_object_new_string(output));
        json_object_object_add(step, "sealedBy", who_json(d->uid));
        json_object_object_add(step, "inputs", inputs);
        for (size_t i = 0; i < d->n; i++) {
                char dg[AIDP_SEALED_DIGEST_REF_LEN + 1];
                aidp_sealed_digest_ref(d->h[i], dg);
                json_object *in = json_object_new_object();
                json_object_object_add(in, "dataset", json_object_new_string(d->h[i]->meta.name));
                json_object_object_add(in, "digest", json_object_new_string(dg));
                json_object_object_add(in, "injected",
                                       json_object_new_string(AIDP_SEALED_DERIVED_HOW));
                json_object_array_add(inputs, in);
        }
        return step;
}

int aidp_cli_derived_from(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *pa,
                          const struct aidp_cli_list *files, const char *keys_config,
                          const char *key_dir, bool cls_given, struct aidp_seal_params *p,
                          uint8_t **ret_produced, uint8_t **ret_schema, aidp_error *err)
{
        struct derived d = {0};
        int r = open_all(spec, pa, files, keys_config, key_dir, &d, err);
        if (r >= 0)
                r = inherit(&d, files, cls_given, &p->meta, err);
        if (r >= 0)
                r = keep_schema(&d, files, p, ret_schema, err);
        if (r >= 0) {
                json_object *step = step_json(&d, p->meta.name);
                r = aidp_sealed_produced_chain(step, d.h, d.n, ret_produced, &p->produced_by_len,
                                               err);
                if (r < 0)
                        aidp_error_wrap(err, "--derived-from");
                else
                        p->produced_by = *ret_produced;
        }
        derived_free(&d);
        return r;
}
