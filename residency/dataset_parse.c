/* kind: DatasetFacts: a dataset's header facts written out by hand, for
 * `aidp policy explain` and tests until the facts come from a sealed header. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "residency/parse_internal.h"
#include "common/strv.h"

static int df_metadata(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        _cleanup_free_ char *name = NULL;
        return aidp_residency_parse_metadata(w, v, path, &name);
}

static int df_name(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_dataset_facts *f = ctx;
        int r = aidp_yaml_strdup(w, v, path, &f->name);
        if (r >= 0 && !aidp_residency_is_pattern(f->name))
                return aidp_yaml_fail(w, v, path, "invalid dataset name '%s'", f->name);
        return r;
}

static int df_version(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_dataset_facts *f = ctx;
        int r = aidp_yaml_strdup(w, v, path, &f->version);
        if (r >= 0 && !aidp_residency_is_pattern(f->version))
                return aidp_yaml_fail(w, v, path, "invalid version '%s'", f->version);
        return r;
}

static int df_classification(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_dataset_facts *f = ctx;
        return aidp_residency_parse_classification(w, v, path, &f->tags.classification);
}

static int df_residency(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_dataset_facts *f = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_tag, "residency tag",
                                 &f->tags.residency, &f->tags.n_residency);
}

static int df_regulations(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_dataset_facts *f = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_tag, "regulation tag",
                                 &f->tags.regulations, &f->tags.n_regulations);
}

int aidp_residency_parse_dataset_doc(struct aidp_yaml *w, yaml_node_t *root,
                                     struct aidp_dataset_facts *ret)
{
        static const struct aidp_yaml_field fields[] = {
                {"apiVersion", aidp_residency_pf_api_version, true},
                {"kind", aidp_residency_pf_kind, true},
                {"metadata", df_metadata, false},
                {"name", df_name, true},
                {"version", df_version, false},
                {"classification", df_classification, true},
                {"residency", df_residency, false},
                {"regulations", df_regulations, false},
        };
        struct aidp_dataset_facts f = {0};
        int r = aidp_yaml_fields(w, root, "", fields, ARRAY_SIZE(fields), &f);
        /* Keep the invariants of struct aidp_data_tags: sorted, unique, NULL-terminated. */
        struct aidp_data_tags sorted;
        if (r >= 0) {
                if (aidp_residency_tags_inherit(&f.tags, 1, &sorted) < 0) {
                        r = aidp_residency_oom(w);
                } else {
                        aidp_residency_tags_free(&f.tags);
                        f.tags = sorted;
                }
        }
        if (r < 0) {
                aidp_residency_facts_free(&f);
                return r;
        }
        *ret = f;
        return 0;
}
