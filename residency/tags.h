#pragma once
/* Data tags: what an authenticated sealed header says about a dataset, and what
 * a run's outputs inherit from its inputs. Pure: no syscalls, no globals.
 *
 * The sealed-data code fills struct aidp_data_tags from a header it has
 * authenticated, and calls aidp_residency_tags_add() once per input to get the
 * tags its outputs must carry: the highest classification, and the union of
 * the residency and regulation tags (a residency tag is a constraint, so the
 * union is the strictest combination; see docs/policy.md). */
#include <stdbool.h>
#include <stddef.h>

/* Ordered: a higher value is more sensitive. */
enum aidp_classification {
        AIDP_CLASS_PUBLIC,
        AIDP_CLASS_INTERNAL,
        AIDP_CLASS_CONFIDENTIAL,
        AIDP_CLASS_RESTRICTED,
        AIDP_CLASS_REGULATED,
        AIDP_CLASS_MAX
};

#define AIDP_TAG_MAX  63 /* bytes of one data tag, without the NUL (as sealed headers) */
#define AIDP_NAME_MAX 64 /* bytes of one policy identifier (zone, role, region...) */
/* Residency tags, and separately regulation tags, one sealed header holds
 * (AIDP_SEALED_MAX_TAGS): a run whose outputs would inherit more is refused
 * before it starts, not when /out is sealed. */
#define AIDP_TAGS_MAX 32

struct aidp_data_tags {
        enum aidp_classification classification;
        char **residency; /* e.g. "eu"; sorted, unique after tags_add */
        size_t n_residency;
        char **regulations; /* e.g. "phi", "gdpr"; sorted, unique after tags_add */
        size_t n_regulations;
};

/* One input of a decision: a dataset's authenticated header facts. */
struct aidp_dataset_facts {
        char *name;
        char *version; /* NULL when the header has none */
        /* The key id whose key authenticated the header (a rule may require
         * it); NULL when not known (a what-if DatasetFacts without one). */
        char *key_id;
        struct aidp_data_tags tags;
};

/* "public" ... "regulated"; "?" for an out-of-range value. */
const char *aidp_residency_classification_name(enum aidp_classification c);
/* Returns 0 and sets *ret, or -EINVAL for an unknown name. */
int aidp_residency_classification_parse(const char *name, enum aidp_classification *ret);
/* A residency or regulation tag: 1..AIDP_TAG_MAX bytes of [a-z0-9._-],
 * starting with [a-z0-9] (the sealed header's rule, so any tag a header can
 * carry can be named in a policy and vice versa). */
bool aidp_residency_tag_valid(const char *tag);
/* A policy identifier (zone, jurisdiction, region, role, attribute):
 * 1..AIDP_NAME_MAX bytes of [A-Za-z0-9._-], starting alphanumeric. */
bool aidp_residency_name_valid(const char *name);

/* Fold one input into acc: classification = max, residency and regulations =
 * sorted union. acc starts zeroed (public, no tags). On -ENOMEM acc is left as
 * it was before the call. */
int aidp_residency_tags_add(struct aidp_data_tags *acc, const struct aidp_data_tags *in);
/* The tags outputs inherit from n inputs (zeroed *ret for n == 0). */
int aidp_residency_tags_inherit(const struct aidp_data_tags *in, size_t n,
                                struct aidp_data_tags *ret);
bool aidp_residency_tags_has_residency(const struct aidp_data_tags *t, const char *tag);
bool aidp_residency_tags_has_regulation(const struct aidp_data_tags *t, const char *tag);
void aidp_residency_tags_free(struct aidp_data_tags *t);
int aidp_residency_facts_copy(const struct aidp_dataset_facts *in, struct aidp_dataset_facts *ret);
void aidp_residency_facts_free(struct aidp_dataset_facts *f);
