/* The output key is the policy's decision (issue 21): by a regulation tag the
 * outputs carry, then their classification, else the key of the most
 * restricted input; never the order of --data. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <string.h>

#include "residency_fixtures.h"

static const char keys_yaml[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                "residency:\n  eu: {regions: [\"*\"]}\n  us: {regions: [\"*\"]}\n"
                                "regulations:\n  phi: {zones: []}\n  gdpr: {zones: []}\n"
                                "  pci: {zones: []}\n"
                                "output_keys:\n"
                                "  regulations:\n    phi: phi-out\n    pci: pci-out\n"
                                "  classifications:\n    confidential: conf-out\n"
                                "    regulated: reg-out\n";

static const char all_yaml[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  all:\n"
                               "    operations: [run]\n    profiles: [\"*\"]\n"
                               "    datasets: [\"*\"]\n    max_classification: regulated\n"
                               "users:\n  alice: {roles: [all]}\n";

struct in {
        const char *name, *key, *res, *reg;
        enum aidp_classification cls;
};

static void decide_keys(const char *res_yaml, const struct in *v, size_t n, struct aidp_decision *d)
{
        struct aidp_access_policy ap;
        struct aidp_residency_policy rp;
        fx_access(all_yaml, &ap);
        fx_residency(res_yaml, &rp);
        struct aidp_host_identity host = {.region = "eu-west-1"};
        struct aidp_dataset_facts ds[3];
        memset(ds, 0, sizeof ds);
        for (size_t i = 0; i < n; i++) {
                ds[i].name = strdup(v[i].name);
                ds[i].key_id = v[i].key ? strdup(v[i].key) : NULL;
                ds[i].tags.classification = v[i].cls;
                ds[i].tags.residency = calloc(1, sizeof(char *));
                ds[i].tags.regulations = calloc(1, sizeof(char *));
                if (v[i].res)
                        aidp_strv_push(&ds[i].tags.residency, &ds[i].tags.n_residency, v[i].res);
                if (v[i].reg)
                        aidp_strv_push(&ds[i].tags.regulations, &ds[i].tags.n_regulations,
                                       v[i].reg);
        }
        struct aidp_residency_profile prof = {.name = "p"};
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = ds,
                .n_datasets = n,
                .host = &host,
                .residency = &rp,
                .access = &ap,
                .time = {.epoch = 1714557600},
        };
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_decide(&req, d, &err), 0, "%s", err.msg);
        for (size_t i = 0; i < n; i++)
                aidp_residency_facts_free(&ds[i]);
        aidp_residency_policy_free(&rp);
        aidp_residency_access_free(&ap);
}

static const char none_yaml[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                "residency:\n  eu: {regions: [\"*\"]}\n  us: {regions: [\"*\"]}\n"
                                "regulations:\n  phi: {zones: []}\n";

Test(output_key, the_most_restricted_input_not_the_first)
{
        struct in v[] = {{"plain", "k-plain", NULL, NULL, AIDP_CLASS_INTERNAL},
                         {"notes", "k-phi", "us", "phi", AIDP_CLASS_INTERNAL}};
        struct aidp_decision d;
        decide_keys(none_yaml, v, 2, &d);
        cr_assert(d.allow);
        cr_assert_str_eq(d.output_key, "k-phi");
        cr_assert_str_eq(d.output_key_rule, "input notes (the most restricted)");
        aidp_residency_decision_free(&d);
        struct in w[] = {v[1], v[0]};
        decide_keys(none_yaml, w, 2, &d);
        cr_assert_str_eq(d.output_key, "k-phi", "argument order chose the key");
        aidp_residency_decision_free(&d);
}

Test(output_key, by_regulation_then_classification)
{
        struct in v[] = {{"notes", "k1", "us", "phi", AIDP_CLASS_INTERNAL},
                         {"big", "k2", NULL, NULL, AIDP_CLASS_REGULATED}};
        struct aidp_decision d;
        decide_keys(keys_yaml, v, 2, &d);
        cr_assert_str_eq(d.output_key, "phi-out");
        cr_assert_str_eq(d.output_key_rule, "output_keys.regulations.phi");
        struct json_object *j = aidp_residency_decision_to_json(&d), *x;
        cr_assert(json_object_object_get_ex(j, "output_key", &x));
        cr_assert_str_eq(json_object_get_string(x), "phi-out");
        json_object_put(j);
        aidp_residency_decision_free(&d);

        struct in c[] = {{"a", "k1", "eu", NULL, AIDP_CLASS_RESTRICTED}};
        decide_keys(keys_yaml, c, 1, &d);
        cr_assert_str_eq(d.output_key, "conf-out");
        cr_assert_str_eq(d.output_key_rule, "output_keys.classifications.confidential");
        aidp_residency_decision_free(&d);

        struct in p[] = {{"a", "k1", "eu", NULL, AIDP_CLASS_PUBLIC}};
        decide_keys(keys_yaml, p, 1, &d);
        cr_assert_str_eq(d.output_key, "k1");
        aidp_residency_decision_free(&d);
}

Test(output_key, two_regulations_with_different_keys_are_refused)
{
        struct in v[] = {{"notes", "k1", "us", "phi", AIDP_CLASS_INTERNAL},
                         {"cards", "k2", "us", "pci", AIDP_CLASS_INTERNAL}};
        struct aidp_decision d;
        decide_keys(keys_yaml, v, 2, &d);
        cr_assert(!d.allow);
        const struct aidp_reason *f = aidp_residency_decision_first_failure(&d);
        cr_assert_str_eq(f->rule, "output_keys");
        cr_assert(strstr(f->message, "no one output key fits both"), "%s", f->message);
        aidp_residency_decision_free(&d);
}
