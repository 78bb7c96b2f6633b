/* Tags outputs inherit: highest classification, union of residency and
 * regulation tags. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "residency/tags.h"

static char *eu_de[] = {"eu", "de", NULL};
static char *us[] = {"us", NULL};
static char *phi[] = {"phi", NULL};
static char *gdpr_phi[] = {"gdpr", "phi", NULL};

Test(tags, inherit_takes_max_and_sorted_union)
{
        struct aidp_data_tags in[] = {
                {.classification = AIDP_CLASS_INTERNAL, .residency = eu_de, .n_residency = 2},
                {.classification = AIDP_CLASS_RESTRICTED,
                 .residency = us,
                 .n_residency = 1,
                 .regulations = phi,
                 .n_regulations = 1},
                {.classification = AIDP_CLASS_CONFIDENTIAL,
                 .regulations = gdpr_phi,
                 .n_regulations = 2},
        };
        struct aidp_data_tags out;
        cr_assert_eq(aidp_residency_tags_inherit(in, 3, &out), 0);
        cr_assert_eq(out.classification, AIDP_CLASS_RESTRICTED);
        cr_assert_eq(out.n_residency, 3);
        cr_assert_str_eq(out.residency[0], "de");
        cr_assert_str_eq(out.residency[1], "eu");
        cr_assert_str_eq(out.residency[2], "us");
        cr_assert_null(out.residency[3], "NULL-terminated");
        cr_assert_eq(out.n_regulations, 2, "phi appears twice, kept once");
        cr_assert_str_eq(out.regulations[0], "gdpr");
        cr_assert_str_eq(out.regulations[1], "phi");
        cr_assert(aidp_residency_tags_has_residency(&out, "us"));
        cr_assert(!aidp_residency_tags_has_residency(&out, "ap"));
        cr_assert(aidp_residency_tags_has_regulation(&out, "gdpr"));
        aidp_residency_tags_free(&out);
}

Test(tags, no_inputs_is_public_and_untagged)
{
        struct aidp_data_tags out;
        cr_assert_eq(aidp_residency_tags_inherit(NULL, 0, &out), 0);
        cr_assert_eq(out.classification, AIDP_CLASS_PUBLIC);
        cr_assert_eq(out.n_residency, 0);
        cr_assert_eq(out.n_regulations, 0);
        aidp_residency_tags_free(&out);
}

Test(tags, add_folds_one_input_at_a_time)
{
        struct aidp_data_tags acc = {0};
        struct aidp_data_tags a = {
                .classification = AIDP_CLASS_REGULATED, .residency = us, .n_residency = 1};
        struct aidp_data_tags b = {
                .classification = AIDP_CLASS_PUBLIC, .residency = eu_de, .n_residency = 2};
        cr_assert_eq(aidp_residency_tags_add(&acc, &a), 0);
        cr_assert_eq(aidp_residency_tags_add(&acc, &b), 0);
        cr_assert_eq(acc.classification, AIDP_CLASS_REGULATED, "never lowered");
        cr_assert_eq(acc.n_residency, 3);
        aidp_residency_tags_free(&acc);
}

Test(tags, classification_names_round_trip)
{
        for (int c = 0; c < AIDP_CLASS_MAX; c++) {
                enum aidp_classification back;
                cr_assert_eq(aidp_residency_classification_parse(
                                     aidp_residency_classification_name(c), &back),
                             0);
                cr_assert_eq(back, c);
        }
        enum aidp_classification x;
        cr_assert_eq(aidp_residency_classification_parse("secret", &x), -EINVAL);
        cr_assert_str_eq(aidp_residency_classification_name(AIDP_CLASS_MAX), "?");
}

Test(tags, tag_syntax)
{
        cr_assert(aidp_residency_tag_valid("eu"));
        cr_assert(aidp_residency_tag_valid("eu-west-1"));
        cr_assert(!aidp_residency_tag_valid("ISO_27001.v2"), "tags are lowercase");
        cr_assert(aidp_residency_name_valid("ISO_27001.v2"));
        cr_assert(aidp_residency_name_valid("EU"));
        cr_assert(!aidp_residency_tag_valid(""));
        cr_assert(!aidp_residency_tag_valid("-eu"));
        cr_assert(!aidp_residency_tag_valid("eu*"));
        cr_assert(!aidp_residency_tag_valid("e u"));
        char longtag[AIDP_TAG_MAX + 2];
        memset(longtag, 'a', sizeof longtag - 1);
        longtag[sizeof longtag - 1] = '\0';
        cr_assert(!aidp_residency_tag_valid(longtag));
        longtag[AIDP_TAG_MAX] = '\0';
        cr_assert(aidp_residency_tag_valid(longtag));
}

Test(tags, facts_copy_is_deep)
{
        struct aidp_dataset_facts f = {.name = "n",
                                       .version = "1",
                                       .tags = {.classification = AIDP_CLASS_INTERNAL,
                                                .residency = eu_de,
                                                .n_residency = 2}};
        struct aidp_dataset_facts c;
        cr_assert_eq(aidp_residency_facts_copy(&f, &c), 0);
        cr_assert_neq(c.name, f.name);
        cr_assert_str_eq(c.name, "n");
        cr_assert_str_eq(c.version, "1");
        cr_assert_neq(c.tags.residency[0], eu_de[0]);
        cr_assert_str_eq(c.tags.residency[1], "de");
        aidp_residency_facts_free(&c);
}
