/* libFuzzer harness for the residency/access policy parser (every kind), and
 * for the decision fed with whatever parsed: a policy that parses must never
 * crash the decision, its JSON or its text, nor its views' resolution and
 * per-column explanation against a schema. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "residency/decide.h"
#include "residency/policy.h"
#include "views/view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char host_yaml[] = "apiVersion: aidp/v1\nkind: HostIdentity\nnode: n\n"
                                "region: eu-west-1\njurisdiction: EU\nzones: [gdpr, hipaa]\n";
static const char residency_yaml[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                     "residency:\n  eu: {regions: [\"eu-*\"], jurisdictions: "
                                     "[EU]}\n  us: {regions: [\"us-*\"]}\n"
                                     "regulations:\n  phi: {zones: [hipaa]}\n"
                                     "classifications:\n  restricted: {profile: {network: none}}\n";
static const char access_yaml[] =
        "apiVersion: aidp/v1\nkind: AccessPolicy\n"
        "roles:\n  r:\n    operations: [run]\n    profiles: [\"*\"]\n    datasets: [\"*\"]\n"
        "    max_classification: regulated\n"
        "    time_windows: [{days: [fri], hours: \"22:00-06:00\", time_zone: Europe/Berlin}]\n"
        "users:\n  u: {roles: [r], attributes: {clearance: x}}\n"
        "deny:\n  - {name: d, groups: [g], min_classification: regulated}\n";

static const char schema_yaml[] = "apiVersion: aidp/v1\nkind: Schema\nfiles:\n"
                                  "  - pattern: \"*.csv\"\n    format: csv\n    columns:\n"
                                  "      name: [pii.direct]\n      ssn: [pii.direct, pii.quasi]\n"
                                  "      birth_date: [pii.quasi]\n      zip: [pii.quasi]\n"
                                  "      age: [pii.quasi]\n      dx: [phi]\n      x: [secret]\n"
                                  "  - pattern: \"*.jsonl\"\n    format: jsonl\n    columns:\n"
                                  "      /a/email: [pii.direct]\n";

/* Resolve and explain every dataset's views over the schema. */
static void views_with(const struct aidp_decision *d)
{
        static struct aidp_schema schema;
        static bool parsed;
        aidp_error err = {0};
        if (!parsed &&
            aidp_schema_parse_yaml(schema_yaml, sizeof schema_yaml - 1, "s", &schema, &err) < 0)
                abort();
        parsed = true;
        for (size_t i = 0; i < d->n_datasets; i++) {
                for (size_t k = 0; k < schema.n_files; k++) {
                        struct aidp_file_view fv;
                        if (aidp_residency_decision_file_view(d, i, &schema.files[k], &fv, &err) <
                            0)
                                abort(); /* what parsed must resolve */
                        aidp_file_view_is_raw(&fv);
                        aidp_file_view_free(&fv);
                }
                char *text = NULL;
                if (aidp_residency_columns_to_text(d, i, &schema, &text, &err) == 0)
                        free(text);
                struct json_object *j = NULL;
                if (aidp_residency_columns_to_json(d, i, &schema, &j, &err) == 0)
                        json_object_put(j);
        }
}

static void decide_with(const struct aidp_host_identity *host,
                        const struct aidp_residency_policy *rp, const struct aidp_access_policy *ap,
                        const struct aidp_dataset_facts *extra)
{
        static char eu[] = "eu", us[] = "us", phi[] = "phi";
        static char *res_eu[] = {eu, NULL}, *res_us[] = {us, NULL}, *reg[] = {phi, NULL};
        struct aidp_dataset_facts ds[3] = {
                {.name = "a",
                 .tags = {.classification = AIDP_CLASS_INTERNAL,
                          .residency = res_eu,
                          .n_residency = 1}},
                {.name = "b",
                 .version = "2",
                 .tags = {.classification = AIDP_CLASS_RESTRICTED,
                          .residency = res_us,
                          .n_residency = 1,
                          .regulations = reg,
                          .n_regulations = 1}},
        };
        size_t n = 2;
        if (extra)
                ds[n++] = *extra;
        struct aidp_residency_egress rules[] = {
                {.cidr = "10.0.0.0/8", .region = "eu-west-1"},
                {.fqdn = "x.example"},
        };
        struct aidp_residency_profile prof = {
                .name = "p", .network = AIDP_RESIDENCY_NET_EGRESS, .egress = rules, .n_egress = 2};
        const char *groups[] = {"g"};
        struct aidp_zone_offset zones[] = {{"Europe/Berlin", 7200}};
        for (int op = 0; op < AIDP_OP_MAX; op++) {
                struct aidp_decision_request req = {
                        .caller = {.user = "u", .uid = 1, .groups = groups, .n_groups = 1},
                        .op = (enum aidp_residency_op)op,
                        .profile = op == AIDP_OP_RUN ? &prof : NULL,
                        .datasets = ds,
                        .n_datasets = n,
                        .host = host,
                        .residency = rp,
                        .access = ap,
                        .time = {.epoch = 1714784400, .zones = zones, .n_zones = 1},
                };
                struct aidp_decision d;
                aidp_error err = {0};
                if (aidp_residency_decide(&req, &d, &err) < 0)
                        continue;
                struct json_object *j = aidp_residency_decision_to_json(&d);
                if (j)
                        json_object_put(j);
                free(aidp_residency_decision_to_text(&d));
                views_with(&d);
                aidp_residency_decision_to_error(&d, &err);
                aidp_residency_decision_free(&d);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct aidp_residency_doc doc, host, rp, ap;
        aidp_error err = {0};

        if (aidp_residency_parse((const char *)data, size, "fuzz.yaml", &doc, &err) < 0) {
                /* Every refusal must say why, with a position. */
                if (!err.msg[0])
                        abort();
                return 0;
        }
        if (aidp_residency_parse(host_yaml, sizeof host_yaml - 1, "h", &host, &err) < 0 ||
            aidp_residency_parse(residency_yaml, sizeof residency_yaml - 1, "r", &rp, &err) < 0 ||
            aidp_residency_parse(access_yaml, sizeof access_yaml - 1, "a", &ap, &err) < 0)
                abort();
        switch (doc.kind) {
        case AIDP_RESIDENCY_KIND_HOST:
                decide_with(&doc.host, &rp.residency, &ap.access, NULL);
                break;
        case AIDP_RESIDENCY_KIND_RESIDENCY:
                decide_with(&host.host, &doc.residency, &ap.access, NULL);
                break;
        case AIDP_RESIDENCY_KIND_ACCESS: {
                const char **zones;
                size_t n;
                if (aidp_residency_access_time_zones(&doc.access, &zones, &n) == 0)
                        free(zones);
                decide_with(&host.host, &rp.residency, &doc.access, NULL);
                break;
        }
        case AIDP_RESIDENCY_KIND_DATASET:
                decide_with(&host.host, &rp.residency, &ap.access, &doc.dataset);
                break;
        case AIDP_RESIDENCY_KIND_MAX: abort();
        }
        aidp_residency_doc_free(&doc);
        aidp_residency_doc_free(&host);
        aidp_residency_doc_free(&rp);
        aidp_residency_doc_free(&ap);
        return 0;
}
