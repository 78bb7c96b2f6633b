/* Rules on what a header authenticates (issue 21): deny and grant rules on
 * residency and regulation tags and on the key id, dataset names matched
 * case-insensitively, one glob matcher for every pattern field (deny groups
 * included), no pattern where a field takes none, and enforcement: audit. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "residency_fixtures.h"

#define WED_1000Z 1714557600

static const char tags_yaml[] = "apiVersion: aidp/v1\n"
                                "kind: AccessPolicy\n"
                                "roles:\n"
                                "  all:\n"
                                "    operations: [run]\n"
                                "    profiles: [\"*\"]\n"
                                "    datasets: [\"*\"]\n"
                                "    max_classification: regulated\n"
                                "  eu-only:\n"
                                "    operations: [run]\n"
                                "    profiles: [\"*\"]\n"
                                "    datasets: [\"*\"]\n"
                                "    max_classification: regulated\n"
                                "    residency: [eu]\n"
                                "    regulations: []\n"
                                "    key_ids: [\"research-*\"]\n"
                                "users:\n"
                                "  alice: {roles: [all]}\n"
                                "  eve: {roles: [eu-only]}\n"
                                "deny:\n"
                                "  - name: no-phi\n"
                                "    users: [\"*\"]\n"
                                "    regulations: [phi]\n"
                                "  - name: no-phi-names\n"
                                "    users: [\"*\"]\n"
                                "    datasets: [\"phi-*\"]\n"
                                "  - name: contractors\n"
                                "    groups: [\"contract*\"]\n"
                                "  - name: old-key\n"
                                "    users: [\"*\"]\n"
                                "    key_ids: [\"legacy-*\"]\n";

struct tcase {
        const char *name;
        const char *user;
        const char *group;
        const char *ds_name;
        const char *res, *reg, *key;
        bool allow;
        const char *rule; /* first failure */
};

static const struct tcase tcases[] = {
        {"plain data", "alice", NULL, "train", NULL, NULL, "research-1", true, NULL},
        {"a derived output named after the run still carries phi", "alice", NULL, "run-42-out",
         "us", "phi", "research-1", false, "deny.no-phi"},
        {"case variants do not escape a name deny", "alice", NULL, "PHI-Notes", NULL, NULL,
         "research-1", false, "deny.no-phi-names"},
        {"a glob in deny groups fires", "alice", "contractors-2024", "train", NULL, NULL,
         "research-1", false, "deny.contractors"},
        {"a key id deny", "alice", NULL, "train", NULL, NULL, "legacy-2019", false, "deny.old-key"},
        {"role tags: eu data under a research key", "eve", NULL, "train", "eu", NULL, "research-7",
         true, NULL},
        {"role tags: us data is not the role's", "eve", NULL, "train", "us", NULL, "research-7",
         false, "roles.eu-only"},
        {"role tags: no regulation tag allowed", "eve", NULL, "train", "eu", "gdpr", "research-7",
         false, "roles.eu-only"},
        {"role key_ids: another key", "eve", NULL, "train", "eu", NULL, "ops-1", false,
         "roles.eu-only"},
        {"role key_ids: an unknown key", "eve", NULL, "train", "eu", NULL, NULL, false,
         "roles.eu-only"},
};

static void decide_tcase(const struct tcase *c, const char *yaml, struct aidp_decision *d)
{
        struct aidp_access_policy ap;
        fx_access(yaml, &ap);
        struct aidp_dataset_facts ds = {.name = strdup(c->ds_name)};
        ds.key_id = c->key ? strdup(c->key) : NULL;
        ds.tags.residency = calloc(1, sizeof(char *));
        ds.tags.regulations = calloc(1, sizeof(char *));
        if (c->res)
                aidp_strv_push(&ds.tags.residency, &ds.tags.n_residency, c->res);
        if (c->reg)
                aidp_strv_push(&ds.tags.regulations, &ds.tags.n_regulations, c->reg);
        const char *groups[] = {c->group};
        struct aidp_residency_profile prof = {.name = "p"};
        struct aidp_residency_policy rp = {0};
        struct aidp_residency_rule rules[] = {{.tag = "eu"}, {.tag = "us"}};
        char *star[] = {"*"};
        rules[0].regions = rules[1].regions = star;
        rules[0].n_regions = rules[1].n_regions = 1;
        struct aidp_regulation_rule regs[] = {{.tag = "phi"}, {.tag = "gdpr"}};
        rp.residency = rules;
        rp.n_residency = 2;
        rp.regulations = regs;
        rp.n_regulations = 2;
        rp.require_residency_from = AIDP_CLASS_MAX;
        struct aidp_host_identity host = {.region = "x-1"};
        struct aidp_decision_request req = {
                .caller = {.user = c->user,
                           .uid = 1000,
                           .groups = groups,
                           .n_groups = c->group ? 1 : 0},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = &ds,
                .n_datasets = 1,
                .host = &host,
                .residency = &rp,
                .access = &ap,
                .time = {.epoch = WED_1000Z},
        };
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_decide(&req, d, &err), 0, "%s", err.msg);
        aidp_residency_facts_free(&ds);
        aidp_residency_access_free(&ap);
}

Test(tags, rules_on_tags_keys_groups_and_names)
{
        for (size_t i = 0; i < sizeof tcases / sizeof tcases[0]; i++) {
                const struct tcase *c = &tcases[i];
                struct aidp_decision d;
                decide_tcase(c, tags_yaml, &d);
                char *text = aidp_residency_decision_to_text(&d);
                cr_expect_eq(d.allow, c->allow, "%s: trail\n%s", c->name, text);
                const struct aidp_reason *f = aidp_residency_decision_first_failure(&d);
                if (c->rule)
                        cr_expect(f && !strcmp(f->rule, c->rule),
                                  "%s: first failure %s, not %s\n%s", c->name,
                                  f ? f->rule : "(none)", c->rule, text);
                free(text);
                aidp_residency_decision_free(&d);
        }
}

/* enforcement: audit: the verdict is made and shown, and flagged not enforced. */
Test(tags, audit_mode_decides_and_says_so)
{
        char yaml[sizeof tags_yaml + 64];
        snprintf(yaml, sizeof yaml, "%senforcement: audit\n", tags_yaml);
        struct aidp_decision d;
        decide_tcase(&tcases[1], yaml, &d);
        cr_assert(!d.allow);
        cr_assert(d.audit);
        char *text = aidp_residency_decision_to_text(&d);
        cr_assert(!strncmp(text, "AUDIT (not enforced) DENY: run", 30), "%s", text);
        free(text);
        struct json_object *j = aidp_residency_decision_to_json(&d), *v;
        cr_assert(json_object_object_get_ex(j, "enforcement", &v));
        cr_assert_str_eq(json_object_get_string(v), "audit");
        json_object_put(j);
        aidp_residency_decision_free(&d);

        decide_tcase(&tcases[1], tags_yaml, &d);
        cr_assert(!d.audit);
        aidp_residency_decision_free(&d);
}

static void expect_parse_error(const char *yaml, const char *needle)
{
        struct aidp_access_policy ap;
        aidp_error err = {0};
        cr_assert_lt(aidp_residency_parse_access(yaml, strlen(yaml), "access.yaml", &ap, &err), 0,
                     "accepted:\n%s", yaml);
        cr_assert(strstr(err.msg, needle), "'%s' not in: %s", needle, err.msg);
}

/* Fields matched exactly refuse glob characters instead of never matching. */
Test(tags, patterns_only_where_supported)
{
        expect_parse_error("apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  r:\n"
                           "    operations: [run]\n    require_attributes:\n"
                           "      clearance: [\"phi*\"]\n",
                           "access.yaml:7:");
        expect_parse_error("apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  r:\n"
                           "    operations: [run]\n    residency: [\"eu*\"]\n",
                           "residency tag");
        expect_parse_error("apiVersion: aidp/v1\nkind: AccessPolicy\nusers:\n  \"al*\": {}\n",
                           "invalid user name");
        expect_parse_error("apiVersion: aidp/v1\nkind: AccessPolicy\nenforcement: warn\n",
                           "expected enforce or audit");
}

/* Egress destinations are judged by jurisdiction as well as region: a region
 * the tag allows but in another jurisdiction (or none known) is dropped. */
Test(tags, egress_considers_jurisdiction)
{
        static const char res_yaml[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                       "residency:\n  eu:\n    regions: [\"eu-*\", \"ch-*\"]\n"
                                       "    jurisdictions: [EU]\n"
                                       "jurisdictions:\n  EU: [\"eu-*\"]\n  CH: [\"ch-*\"]\n";
        struct aidp_access_policy ap;
        struct aidp_residency_policy rp;
        fx_access(access_yaml, &ap);
        fx_residency(res_yaml, &rp);
        struct aidp_host_identity host = {.region = "eu-west-1", .jurisdiction = "EU"};
        struct aidp_dataset_facts ds;
        fx_facts("eu-data", &ds);
        struct aidp_residency_egress rules[] = {
                {.cidr = "10.0.0.0/8", .region = "eu-west-1"},
                {.cidr = "10.1.0.0/16", .region = "ch-1"},
        };
        struct aidp_residency_profile prof = {.name = "gpu-train",
                                              .network = AIDP_RESIDENCY_NET_EGRESS,
                                              .egress = rules,
                                              .n_egress = 2};
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = &ds,
                .n_datasets = 1,
                .host = &host,
                .residency = &rp,
                .access = &ap,
                .time = {.epoch = WED_1000Z},
        };
        struct aidp_decision d;
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_decide(&req, &d, &err), 0, "%s", err.msg);
        char *text = aidp_residency_decision_to_text(&d);
        cr_assert(d.allow, "%s", text);
        cr_assert(d.egress_keep[0], "%s", text);
        cr_assert(!d.egress_keep[1], "ch-1 is in jurisdiction CH: %s", text);
        cr_assert(strstr(text, "in jurisdiction 'CH' (region 'ch-1'), outside [EU]"), "%s", text);
        free(text);
        aidp_residency_decision_free(&d);
        aidp_residency_facts_free(&ds);
        aidp_residency_policy_free(&rp);
        aidp_residency_access_free(&ap);
}
