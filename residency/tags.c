#include "residency/tags.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/strv.h"

static const char *const class_names[AIDP_CLASS_MAX] = {
        [AIDP_CLASS_PUBLIC] = "public",
        [AIDP_CLASS_INTERNAL] = "internal",
        [AIDP_CLASS_CONFIDENTIAL] = "confidential",
        [AIDP_CLASS_RESTRICTED] = "restricted",
        [AIDP_CLASS_REGULATED] = "regulated",
};

const char *aidp_residency_classification_name(enum aidp_classification c)
{
        if ((unsigned)c >= AIDP_CLASS_MAX)
                return "?";
        return class_names[c];
}

int aidp_residency_classification_parse(const char *name, enum aidp_classification *ret)
{
        for (unsigned i = 0; i < AIDP_CLASS_MAX; i++)
                if (!strcmp(name, class_names[i])) {
                        *ret = (enum aidp_classification)i;
                        return 0;
                }
        return -EINVAL;
}

static bool is_alnum(char c, bool lower_only)
{
        return (c >= 'a' && c <= 'z') || (!lower_only && c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9');
}

static bool ident_valid(const char *s, size_t max, bool lower_only)
{
        size_t n = strlen(s);
        if (n == 0 || n > max || !is_alnum(s[0], lower_only))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_alnum(s[i], lower_only) && s[i] != '.' && s[i] != '_' && s[i] != '-')
                        return false;
        return true;
}

bool aidp_residency_tag_valid(const char *tag)
{
        return ident_valid(tag, AIDP_TAG_MAX, true);
}

bool aidp_residency_name_valid(const char *name)
{
        return ident_valid(name, AIDP_NAME_MAX, false);
}

int aidp_residency_tags_add(struct aidp_data_tags *acc, const struct aidp_data_tags *in)
{
        _cleanup_(aidp_strv_freep) char **res = NULL, **reg = NULL;
        size_t n_res = 0, n_reg = 0;

        /* Build both unions first so a failure leaves acc untouched. */
        if (aidp_strv_union(acc->residency, acc->n_residency, in->residency, in->n_residency, &res,
                            &n_res) < 0 ||
            aidp_strv_union(acc->regulations, acc->n_regulations, in->regulations,
                            in->n_regulations, &reg, &n_reg) < 0)
                return -ENOMEM;
        aidp_strv_free(acc->residency);
        aidp_strv_free(acc->regulations);
        acc->residency = TAKE_PTR(res);
        acc->n_residency = n_res;
        acc->regulations = TAKE_PTR(reg);
        acc->n_regulations = n_reg;
        if (in->classification > acc->classification && in->classification < AIDP_CLASS_MAX)
                acc->classification = in->classification;
        return 0;
}

int aidp_residency_tags_inherit(const struct aidp_data_tags *in, size_t n,
                                struct aidp_data_tags *ret)
{
        struct aidp_data_tags acc = {0};
        for (size_t i = 0; i < n; i++)
                if (aidp_residency_tags_add(&acc, &in[i]) < 0) {
                        aidp_residency_tags_free(&acc);
                        return -ENOMEM;
                }
        *ret = acc;
        return 0;
}

bool aidp_residency_tags_has_residency(const struct aidp_data_tags *t, const char *tag)
{
        return aidp_strv_contains(t->residency, t->n_residency, tag);
}

bool aidp_residency_tags_has_regulation(const struct aidp_data_tags *t, const char *tag)
{
        return aidp_strv_contains(t->regulations, t->n_regulations, tag);
}

void aidp_residency_tags_free(struct aidp_data_tags *t)
{
        if (!t)
                return;
        aidp_strv_free(t->residency);
        aidp_strv_free(t->regulations);
        memset(t, 0, sizeof *t);
}

int aidp_residency_facts_copy(const struct aidp_dataset_facts *in, struct aidp_dataset_facts *ret)
{
        struct aidp_dataset_facts f = {0};
        f.name = strdup(in->name ? in->name : "");
        f.version = in->version ? strdup(in->version) : NULL;
        f.key_id = in->key_id ? strdup(in->key_id) : NULL;
        f.tags.classification = in->tags.classification;
        if (!f.name || (in->version && !f.version) || (in->key_id && !f.key_id) ||
            aidp_strv_dup(in->tags.residency, in->tags.n_residency, &f.tags.residency) < 0 ||
            aidp_strv_dup(in->tags.regulations, in->tags.n_regulations, &f.tags.regulations) < 0) {
                aidp_residency_facts_free(&f);
                return -ENOMEM;
        }
        f.tags.n_residency = in->tags.n_residency;
        f.tags.n_regulations = in->tags.n_regulations;
        *ret = f;
        return 0;
}

void aidp_residency_facts_free(struct aidp_dataset_facts *f)
{
        if (!f)
                return;
        free(f->name);
        free(f->version);
        free(f->key_id);
        aidp_residency_tags_free(&f->tags);
        memset(f, 0, sizeof *f);
}
