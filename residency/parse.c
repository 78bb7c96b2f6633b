/* Kind dispatch and the pieces every policy kind shares. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "residency/parse_internal.h"
#include "common/strv.h"

static const char *const kind_names[AIDP_RESIDENCY_KIND_MAX] = {
        [AIDP_RESIDENCY_KIND_HOST] = "HostIdentity",
        [AIDP_RESIDENCY_KIND_RESIDENCY] = "ResidencyPolicy",
        [AIDP_RESIDENCY_KIND_ACCESS] = "AccessPolicy",
        [AIDP_RESIDENCY_KIND_DATASET] = "DatasetFacts",
};

static const char *const op_names[AIDP_OP_MAX] = {
        [AIDP_OP_RUN] = "run",
        [AIDP_OP_SEAL] = "seal",
        [AIDP_OP_UNSEAL] = "unseal",
        [AIDP_OP_INSPECT] = "inspect",
        [AIDP_OP_LINEAGE_READ] = "lineage-read",
        [AIDP_OP_DETOKENIZE] = "detokenize",
};

const char *aidp_residency_kind_name(enum aidp_residency_kind k)
{
        return (unsigned)k < AIDP_RESIDENCY_KIND_MAX ? kind_names[k] : "?";
}

const char *aidp_residency_op_name(enum aidp_residency_op op)
{
        return (unsigned)op < AIDP_OP_MAX ? op_names[op] : "?";
}

int aidp_residency_op_parse(const char *name, enum aidp_residency_op *ret)
{
        for (unsigned i = 0; i < AIDP_OP_MAX; i++)
                if (!strcmp(name, op_names[i])) {
                        *ret = (enum aidp_residency_op)i;
                        return 0;
                }
        return -EINVAL;
}

int aidp_residency_oom(struct aidp_yaml *w)
{
        return aidp_error_set(w->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
}

bool aidp_residency_is_tag(const char *s)
{
        return aidp_residency_tag_valid(s);
}

bool aidp_residency_is_name(const char *s)
{
        return aidp_residency_name_valid(s);
}

/* A value matched exactly (attribute values): a pattern's syntax without glob
 * characters, which would otherwise be accepted and silently never match. */
bool aidp_residency_is_literal(const char *s)
{
        return aidp_residency_is_pattern(s) && !aidp_residency_has_glob(s);
}

/* Profile and dataset patterns: printable, no whitespace, bounded. */
bool aidp_residency_is_pattern(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
                        return false;
        return true;
}

int aidp_residency_pf_api_version(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        if (strcmp(s, AIDP_RESIDENCY_API_VERSION))
                return aidp_yaml_fail(w, v, path, "unsupported apiVersion '%s' (expected %s)", s,
                                      AIDP_RESIDENCY_API_VERSION);
        return 0;
}

int aidp_residency_pf_kind(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return 0; /* checked by the dispatcher before the walk */
}

struct metadata {
        char *name;
        char *description;
};

static int md_name(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_strdup(w, v, path, &((struct metadata *)ctx)->name);
}

static int md_description(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_strdup(w, v, path, &((struct metadata *)ctx)->description);
}

int aidp_residency_parse_metadata(struct aidp_yaml *w, yaml_node_t *v, const char *path,
                                  char **name)
{
        static const struct aidp_yaml_field fields[] = {
                {"name", md_name, false},
                {"description", md_description, false},
        };
        struct metadata md = {0};
        int r = aidp_yaml_fields(w, v, path, fields, ARRAY_SIZE(fields), &md);
        free(md.description);
        if (r < 0) {
                free(md.name);
                return r;
        }
        free(*name);
        *name = md.name;
        return 0;
}

static int op_item(struct aidp_yaml *w, yaml_node_t *item, const char *path, size_t i, void *ctx)
{
        unsigned *ops = ctx;
        const char *s;
        enum aidp_residency_op op;
        int r = aidp_yaml_string(w, item, path, &s);
        if (r < 0)
                return r;
        if (aidp_residency_op_parse(s, &op) < 0)
                return aidp_yaml_fail(w, item, path,
                                      "unknown operation '%s' (expected run, seal, unseal, "
                                      "inspect, lineage-read, detokenize)",
                                      s);
        if (*ops & (1u << op))
                return aidp_yaml_fail(w, item, path, "duplicate operation '%s'", s);
        *ops |= 1u << op;
        return 0;
}

int aidp_residency_parse_ops(struct aidp_yaml *w, yaml_node_t *v, const char *path, unsigned *ops)
{
        *ops = 0;
        return aidp_yaml_seq(w, v, path, op_item, ops);
}

int aidp_residency_parse_classification(struct aidp_yaml *w, yaml_node_t *v, const char *path,
                                        enum aidp_classification *ret)
{
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        if (aidp_residency_classification_parse(s, ret) < 0)
                return aidp_yaml_fail(w, v, path,
                                      "unknown classification '%s' (expected public, "
                                      "internal, confidential, restricted, regulated)",
                                      s);
        return 0;
}

/* Find `kind` before walking, since it selects the schema. */
static int read_kind(struct aidp_yaml *w, yaml_node_t *root, enum aidp_residency_kind *ret)
{
        int r = aidp_yaml_expect(w, root, YAML_MAPPING_NODE, "",
                                 "a mapping with apiVersion and kind", w->err);
        if (r < 0)
                return r;
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = aidp_yaml_node(w, p->key);
                yaml_node_t *v = aidp_yaml_node(w, p->value);
                const char *ks = aidp_yaml_str(k);
                if (!ks || !v || strcmp(ks, "kind"))
                        continue;
                const char *s;
                r = aidp_yaml_string(w, v, "kind", &s);
                if (r < 0)
                        return r;
                for (unsigned i = 0; i < AIDP_RESIDENCY_KIND_MAX; i++)
                        if (!strcmp(s, kind_names[i])) {
                                *ret = (enum aidp_residency_kind)i;
                                return 0;
                        }
                return aidp_yaml_fail(w, v, "kind",
                                      "unknown kind '%s' (expected HostIdentity, "
                                      "ResidencyPolicy, AccessPolicy or DatasetFacts)",
                                      s);
        }
        return aidp_yaml_fail(w, root, "",
                              "missing key 'kind' (HostIdentity, ResidencyPolicy, "
                              "AccessPolicy or DatasetFacts)");
}

int aidp_residency_parse(const char *buf, size_t len, const char *file,
                         struct aidp_residency_doc *ret, aidp_error *err)
{
        struct aidp_yaml w;
        struct aidp_residency_doc doc;
        int r;

        memset(&doc, 0, sizeof doc);
        if (len > AIDP_RESIDENCY_INPUT_MAX)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG, "%s: larger than %u bytes",
                                      file ? file : "<input>", AIDP_RESIDENCY_INPUT_MAX);
        r = aidp_yaml_load(&w, file, "policy", buf, len, 0, err);
        if (r < 0)
                goto out;
        yaml_node_t *root = aidp_yaml_root(&w);
        if (!root) {
                r = -EINVAL;
                goto out;
        }
        r = read_kind(&w, root, &doc.kind);
        if (r < 0)
                goto out;
        switch (doc.kind) {
        case AIDP_RESIDENCY_KIND_HOST:
                r = aidp_residency_parse_host_doc(&w, root, &doc.host);
                break;
        case AIDP_RESIDENCY_KIND_RESIDENCY:
                r = aidp_residency_parse_residency_doc(&w, root, &doc.residency);
                break;
        case AIDP_RESIDENCY_KIND_ACCESS:
                r = aidp_residency_parse_access_doc(&w, root, &doc.access);
                break;
        case AIDP_RESIDENCY_KIND_DATASET:
                r = aidp_residency_parse_dataset_doc(&w, root, &doc.dataset);
                break;
        case AIDP_RESIDENCY_KIND_MAX: r = aidp_yaml_fail(&w, root, "kind", "unknown kind"); break;
        }
        if (r >= 0)
                *ret = doc;
out:
        aidp_yaml_free(&w);
        return r;
}

void aidp_residency_doc_free(struct aidp_residency_doc *doc)
{
        if (!doc)
                return;
        switch (doc->kind) {
        case AIDP_RESIDENCY_KIND_HOST: aidp_residency_host_free(&doc->host); break;
        case AIDP_RESIDENCY_KIND_RESIDENCY: aidp_residency_policy_free(&doc->residency); break;
        case AIDP_RESIDENCY_KIND_ACCESS: aidp_residency_access_free(&doc->access); break;
        case AIDP_RESIDENCY_KIND_DATASET: aidp_residency_facts_free(&doc->dataset); break;
        case AIDP_RESIDENCY_KIND_MAX: break;
        }
}

static int parse_expect(const char *buf, size_t len, const char *file,
                        enum aidp_residency_kind want, struct aidp_residency_doc *doc,
                        aidp_error *err)
{
        int r = aidp_residency_parse(buf, len, file, doc, err);
        if (r < 0)
                return r;
        if (doc->kind != want) {
                enum aidp_residency_kind got = doc->kind;
                aidp_residency_doc_free(doc);
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "%s: kind is %s, expected %s",
                                      file ? file : "<input>", kind_names[got], kind_names[want]);
        }
        return 0;
}

int aidp_residency_parse_host(const char *buf, size_t len, const char *file,
                              struct aidp_host_identity *ret, aidp_error *err)
{
        struct aidp_residency_doc doc;
        int r = parse_expect(buf, len, file, AIDP_RESIDENCY_KIND_HOST, &doc, err);
        if (r >= 0)
                *ret = doc.host;
        return r;
}

int aidp_residency_parse_residency(const char *buf, size_t len, const char *file,
                                   struct aidp_residency_policy *ret, aidp_error *err)
{
        struct aidp_residency_doc doc;
        int r = parse_expect(buf, len, file, AIDP_RESIDENCY_KIND_RESIDENCY, &doc, err);
        if (r >= 0)
                *ret = doc.residency;
        return r;
}

int aidp_residency_parse_access(const char *buf, size_t len, const char *file,
                                struct aidp_access_policy *ret, aidp_error *err)
{
        struct aidp_residency_doc doc;
        int r = parse_expect(buf, len, file, AIDP_RESIDENCY_KIND_ACCESS, &doc, err);
        if (r >= 0)
                *ret = doc.access;
        return r;
}

int aidp_residency_parse_dataset(const char *buf, size_t len, const char *file,
                                 struct aidp_dataset_facts *ret, aidp_error *err)
{
        struct aidp_residency_doc doc;
        int r = parse_expect(buf, len, file, AIDP_RESIDENCY_KIND_DATASET, &doc, err);
        if (r >= 0)
                *ret = doc.dataset;
        return r;
}
