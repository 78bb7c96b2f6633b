/* Column-level views in the access policy (issue 18): `views:` and
 * `roles.X.view` parsed, the decision carrying every granting role's view,
 * the resolution the run gets from it across roles, the `detokenize`
 * operation, and the per-column explanation (goldens). Pure: no files but
 * the goldens. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "residency/decide.h"
#include "residency/policy.h"
#include "views/view.h"

static const char policy_yaml[] =
        "apiVersion: aidp/v1\n"
        "kind: AccessPolicy\n"
        "views:\n"
        "  research:\n"
        "    labels:\n"
        "      pii.direct: {tokenize: {mode: hmac, domain: patient, key: tok-1}}\n"
        "      pii.quasi: drop\n"
        "      phi: raw\n"
        "    columns:\n"
        "      birth_date: {generalize: {date: year}}\n"
        "      zip: {generalize: {prefix: 3}}\n"
        "  masked:\n"
        "    labels:\n"
        "      pii.*: {mask: {keep_last: 4}}\n"
        "      phi: drop\n"
        "  strict:\n"
        "    labels:\n"
        "      pii.direct: drop\n"
        "roles:\n"
        "  researcher:\n"
        "    operations: [run, detokenize]\n"
        "    profiles: [\"*\"]\n"
        "    datasets: [\"cohort-*\"]\n"
        "    max_classification: regulated\n"
        "    view: research\n"
        "  analyst:\n"
        "    operations: [run]\n"
        "    profiles: [\"*\"]\n"
        "    datasets: [\"cohort-*\"]\n"
        "    max_classification: regulated\n"
        "    view: masked\n"
        "  plain:\n"
        "    operations: [run]\n"
        "    profiles: [\"*\"]\n"
        "    datasets: [\"cohort-*\", \"open-*\"]\n"
        "    max_classification: regulated\n"
        "  narrow:\n"
        "    operations: [run]\n"
        "    profiles: [\"*\"]\n"
        "    datasets: [\"open-*\"]\n"
        "    max_classification: regulated\n"
        "    view: strict\n"
        "users:\n"
        "  r1: {roles: [researcher]}\n"
        "  a1: {roles: [analyst]}\n"
        "  ra: {roles: [researcher, analyst]}\n"
        "  p1: {roles: [plain]}\n"
        "  pr: {roles: [plain, researcher]}\n"
        "  nr: {roles: [narrow, researcher]}\n"
        "deny:\n"
        "  - name: no-detokenize\n"
        "    users: [ra]\n"
        "    operations: [detokenize]\n";

static const char schema_yaml[] = "apiVersion: aidp/v1\n"
                                  "kind: Schema\n"
                                  "files:\n"
                                  "  - pattern: \"patients/*.csv\"\n"
                                  "    format: csv\n"
                                  "    columns:\n"
                                  "      name: [pii.direct]\n"
                                  "      ssn: [pii.direct, pii.quasi]\n"
                                  "      birth_date: [pii.quasi]\n"
                                  "      zip: [pii.quasi]\n"
                                  "      diagnosis: [phi]\n"
                                  "      note: [secret]\n"
                                  "      visit: []\n"
                                  "  - pattern: \"events/*.jsonl\"\n"
                                  "    format: jsonl\n"
                                  "    columns:\n"
                                  "      /patient/email: [pii.direct]\n";

/* Column order of schema file 0. */
enum { C_NAME, C_SSN, C_BIRTH, C_ZIP, C_DIAG, C_NOTE, C_VISIT, C_N };

static struct aidp_access_policy policy;
static struct aidp_schema schema;
static struct aidp_host_identity host = {.region = "a-1"};

static void setup(void)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_parse_access(policy_yaml, strlen(policy_yaml), "access.yaml",
                                                 &policy, &err),
                     0, "%s", err.msg);
        cr_assert_eq(aidp_schema_parse_yaml(schema_yaml, strlen(schema_yaml), "schema.yaml",
                                            &schema, &err),
                     0, "%s", err.msg);
}

static void teardown(void)
{
        aidp_residency_access_free(&policy);
        aidp_schema_free(&schema);
}

TestSuite(residency_views, .init = setup, .fini = teardown);

static void decide(const char *user, enum aidp_residency_op op, const char *dataset,
                   struct aidp_decision *d)
{
        struct aidp_dataset_facts ds = {.name = (char *)dataset,
                                        .tags = {.classification = AIDP_CLASS_INTERNAL}};
        struct aidp_residency_profile prof = {.name = "p", .network = AIDP_RESIDENCY_NET_NONE};
        struct aidp_decision_request req = {
                .caller = {.user = user, .uid = 1000},
                .op = op,
                .profile = op == AIDP_OP_RUN ? &prof : NULL,
                .datasets = &ds,
                .n_datasets = 1,
                .host = &host,
                .access = &policy,
                .time = {.epoch = 1714557600},
        };
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_decide(&req, d, &err), 0, "%s", err.msg);
}

/* The transform kinds user's run gets for the schema's first file (csv). */
static void resolved(const char *user, enum aidp_xform_kind want[C_N])
{
        struct aidp_decision d;
        struct aidp_file_view fv;
        aidp_error err = {0};
        decide(user, AIDP_OP_RUN, "cohort-a", &d);
        cr_assert(d.allow, "%s: %s", user, aidp_residency_decision_first_failure(&d)->message);
        cr_assert_eq(aidp_residency_decision_file_view(&d, 0, &schema.files[0], &fv, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(fv.n_columns, C_N);
        for (size_t c = 0; c < C_N; c++) {
                char got[128];
                aidp_xform_describe(&fv.columns[c].x, got, sizeof got);
                cr_expect_eq(fv.columns[c].x.kind, want[c], "%s: column %s: got %s", user,
                             fv.columns[c].column, got);
        }
        aidp_file_view_free(&fv);
        aidp_residency_decision_free(&d);
}

Test(residency_views, parsed_views_and_role_references)
{
        cr_assert_eq(policy.n_views, 3);
        cr_expect_str_eq(policy.views[0].view.name, "research");
        cr_expect_eq(policy.views[0].loc.line, 4);
        cr_expect_str_eq(policy.views[0].loc.file, "access.yaml");
        cr_assert_eq(policy.n_roles, 4);
        cr_assert_not_null(policy.roles[0].view);
        cr_expect_str_eq(policy.roles[0].view->view.name, "research");
        cr_expect_str_eq(policy.roles[1].view->view.name, "masked");
        cr_expect_null(policy.roles[2].view, "a role without view: has none");
        cr_expect(policy.roles[0].ops & (1u << AIDP_OP_DETOKENIZE));
        cr_expect_eq(policy.deny[0].ops, 1u << AIDP_OP_DETOKENIZE);
}

Test(residency_views, one_role_most_restrictive_within_the_view)
{
        /* name: its label rule; ssn: tokenize vs drop -> drop; birth_date, zip:
         * column rules over pii.quasi's drop; phi raw; secret has no rule. */
        enum aidp_xform_kind want[C_N] = {AIDP_XF_TOKENIZE,   AIDP_XF_DROP, AIDP_XF_GENERALIZE,
                                          AIDP_XF_GENERALIZE, AIDP_XF_RAW,  AIDP_XF_DROP,
                                          AIDP_XF_RAW};
        resolved("r1", want);
        enum aidp_xform_kind masked[C_N] = {AIDP_XF_MASK, AIDP_XF_MASK, AIDP_XF_MASK, AIDP_XF_MASK,
                                            AIDP_XF_DROP, AIDP_XF_DROP, AIDP_XF_RAW};
        resolved("a1", masked);
}

Test(residency_views, several_roles_least_restrictive_across_them)
{
        /* research and masked: per column the less restrictive of the two. */
        enum aidp_xform_kind want[C_N] = {AIDP_XF_MASK,       AIDP_XF_MASK, AIDP_XF_GENERALIZE,
                                          AIDP_XF_GENERALIZE, AIDP_XF_RAW,  AIDP_XF_DROP,
                                          AIDP_XF_RAW};
        resolved("ra", want);
}

Test(residency_views, a_role_without_a_view_drops_labelled_columns)
{
        enum aidp_xform_kind none[C_N] = {AIDP_XF_DROP, AIDP_XF_DROP, AIDP_XF_DROP, AIDP_XF_DROP,
                                          AIDP_XF_DROP, AIDP_XF_DROP, AIDP_XF_RAW};
        resolved("p1", none);
        /* next to a role with a view it adds nothing */
        enum aidp_xform_kind research[C_N] = {AIDP_XF_TOKENIZE,   AIDP_XF_DROP, AIDP_XF_GENERALIZE,
                                              AIDP_XF_GENERALIZE, AIDP_XF_RAW,  AIDP_XF_DROP,
                                              AIDP_XF_RAW};
        resolved("pr", research);
}

Test(residency_views, the_decision_carries_every_granting_roles_view)
{
        struct aidp_decision d;
        decide("pr", AIDP_OP_RUN, "cohort-a", &d);
        cr_assert_not_null(d.views);
        const struct aidp_dataset_views *v = &d.views[0];
        cr_assert_eq(v->n_grants, 2);
        cr_expect_str_eq(v->grants[0].role, "plain");
        cr_expect_null(v->grants[0].view);
        cr_expect_str_eq(v->grants[1].role, "researcher");
        cr_expect_str_eq(v->grants[1].view, "research");
        cr_expect_str_eq(v->grants[1].source, "access.yaml:4");
        cr_assert_eq(v->n_views, 1);
        cr_expect_eq(v->views[0], &policy.views[0].view, "borrowed from the policy");

        /* JSON for lineage: per dataset, each granting role and its view */
        struct json_object *j = aidp_residency_decision_to_json(&d);
        cr_assert_not_null(j);
        struct json_object *ds =
                json_object_array_get_idx(json_object_object_get(j, "datasets"), 0);
        const char *views = json_object_to_json_string_ext(json_object_object_get(ds, "views"),
                                                           JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        cr_expect_str_eq(views, "[{\"role\":\"plain\",\"view\":null,\"source\":null},"
                                "{\"role\":\"researcher\",\"view\":\"research\","
                                "\"source\":\"access.yaml:4\"}]");
        json_object_put(j);

        char *text = aidp_residency_decision_to_text(&d);
        cr_assert_not_null(text);
        cr_expect(strstr(text, "  views of cohort-a: no view (roles.plain: labelled columns "
                               "dropped), view research (roles.researcher [access.yaml:4]); per "
                               "column the least restrictive wins\n"),
                  "%s", text);
        free(text);
        aidp_residency_decision_free(&d);
}

Test(residency_views, only_roles_that_grant_the_dataset_count)
{
        /* narrow (view strict) does not grant cohort-*: only research applies */
        struct aidp_decision d;
        decide("nr", AIDP_OP_RUN, "cohort-a", &d);
        cr_assert_eq(d.views[0].n_grants, 1);
        cr_expect_str_eq(d.views[0].grants[0].role, "researcher");
        aidp_residency_decision_free(&d);
        /* and on open-* it is narrow's view alone */
        decide("nr", AIDP_OP_RUN, "open-data", &d);
        cr_assert_eq(d.views[0].n_views, 1);
        cr_expect_str_eq(d.views[0].views[0]->name, "strict");
        aidp_residency_decision_free(&d);
        /* no role grants: no view, every labelled column dropped */
        decide("a1", AIDP_OP_RUN, "open-data", &d);
        cr_expect_not(d.allow);
        cr_expect_eq(d.views[0].n_grants, 0);
        cr_expect_eq(d.views[0].n_views, 0);
        char *text = aidp_residency_decision_to_text(&d);
        cr_expect_null(strstr(text, "views of"), "no view line without a view: %s", text);
        free(text);
        aidp_residency_decision_free(&d);
}

Test(residency_views, detokenize_is_granted_and_denied_like_any_operation)
{
        struct aidp_decision d;
        decide("r1", AIDP_OP_DETOKENIZE, "cohort-a", &d);
        cr_expect(d.allow);
        aidp_residency_decision_free(&d);
        decide("a1", AIDP_OP_DETOKENIZE, "cohort-a", &d);
        cr_expect_not(d.allow);
        cr_expect_str_eq(aidp_residency_decision_first_failure(&d)->attribute, "operation");
        aidp_residency_decision_free(&d);
        decide("ra", AIDP_OP_DETOKENIZE, "cohort-a", &d);
        cr_expect_not(d.allow);
        cr_expect_str_eq(aidp_residency_decision_first_failure(&d)->rule, "deny.no-detokenize");
        aidp_residency_decision_free(&d);
        enum aidp_residency_op op;
        cr_expect_eq(aidp_residency_op_parse("detokenize", &op), 0);
        cr_expect_eq(op, AIDP_OP_DETOKENIZE);
        cr_expect_str_eq(aidp_residency_op_name(AIDP_OP_DETOKENIZE), "detokenize");
}

/* --- per-column explanation: goldens --- */

static char *golden(const char *name)
{
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/data/policy/golden/%s", AIDP_SOURCE_DIR, name);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        char *buf = calloc(1, 1 << 16);
        size_t n = fread(buf, 1, (1 << 16) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

/* AIDP_UPDATE_GOLDEN=1 rewrites the golden instead of comparing. */
static void expect_golden(const char *got, const char *name)
{
        if (getenv("AIDP_UPDATE_GOLDEN")) {
                char path[4096];
                snprintf(path, sizeof path, "%s/tests/data/policy/golden/%s", AIDP_SOURCE_DIR,
                         name);
                FILE *f = fopen(path, "w");
                cr_assert_not_null(f);
                fputs(got, f);
                fclose(f);
                return;
        }
        char *want = golden(name);
        cr_expect_str_eq(got, want, "differs from %s:\n%s", name, got);
        free(want);
}

static void columns_golden(const char *user, const char *name, const struct aidp_schema *s)
{
        struct aidp_decision d;
        aidp_error err = {0};
        char *text = NULL;
        decide(user, AIDP_OP_RUN, "cohort-a", &d);
        cr_assert_eq(aidp_residency_columns_to_text(&d, 0, s, &text, &err), 0, "%s", err.msg);
        expect_golden(text, name);
        free(text);
        aidp_residency_decision_free(&d);
}

Test(residency_views, explain_columns_of_one_role)
{
        columns_golden("r1", "columns-research.txt", &schema);
}

Test(residency_views, explain_columns_across_roles)
{
        columns_golden("ra", "columns-research-masked.txt", &schema);
}

Test(residency_views, explain_columns_without_a_view)
{
        columns_golden("p1", "columns-no-view.txt", &schema);
}

Test(residency_views, explain_a_dataset_without_a_schema)
{
        struct aidp_schema none = {0};
        columns_golden("r1", "columns-no-schema.txt", &none);
        columns_golden("r1", "columns-no-schema.txt", NULL);
}

Test(residency_views, explain_columns_as_json)
{
        struct aidp_decision d;
        aidp_error err = {0};
        struct json_object *j = NULL;
        decide("ra", AIDP_OP_RUN, "cohort-a", &d);
        cr_assert_eq(aidp_residency_columns_to_json(&d, 0, &schema, &j, &err), 0, "%s", err.msg);
        expect_golden(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE),
                      "columns-research-masked.json");
        json_object_put(j);
        aidp_residency_decision_free(&d);
}

/* --- parse errors --- */

static void expect_error(const char *yaml, const char *want)
{
        struct aidp_access_policy p;
        aidp_error err = {0};
        cr_assert_lt(aidp_residency_parse_access(yaml, strlen(yaml), "access.yaml", &p, &err), 0,
                     "accepted:\n%s", yaml);
        cr_expect_str_eq(err.msg, want);
        cr_expect_eq(err.status, AIDP_EXIT_CONFIG);
}

#define HEAD "apiVersion: aidp/v1\nkind: AccessPolicy\n"

Test(residency_views_errors, unknown_view_names_its_position_and_a_suggestion)
{
        expect_error(HEAD "views:\n"
                          "  research: {labels: {phi: raw}}\n"
                          "roles:\n"
                          "  r:\n"
                          "    operations: [run]\n"
                          "    view: reserch\n",
                     "access.yaml:8:11: roles.r.view: unknown view 'reserch' (not under views:) "
                     "(did you mean 'research'?)");
        expect_error(HEAD "roles:\n"
                          "  r: {operations: [run], view: research}\n",
                     "access.yaml:4:32: roles.r.view: unknown view 'research' (not under views:)");
}

Test(residency_views_errors, bad_view_names_and_values)
{
        expect_error(HEAD "views:\n"
                          "  \"bad name\": {labels: {phi: raw}}\n",
                     "access.yaml:4:3: views.bad name: invalid view name 'bad name'");
        expect_error(HEAD "roles:\n"
                          "  r: {operations: [run], view: [a]}\n",
                     "access.yaml:4:32: roles.r.view: found a list, expected a string");
        expect_error(HEAD "roles:\n"
                          "  r: {operations: [tokenize]}\n",
                     "access.yaml:4:20: roles.r.operations[0]: unknown operation 'tokenize' "
                     "(expected run, seal, unseal, inspect, lineage-read, detokenize)");
}

Test(residency_views_errors, the_view_grammar_is_checked_with_positions)
{
        /* views/view_parse.c's errors keep the file, position and key path */
        struct aidp_access_policy p;
        aidp_error err = {0};
        static const char yaml[] = HEAD "views:\n"
                                        "  v:\n"
                                        "    labels:\n"
                                        "      age: {generalize: {bands: [40, 18]}}\n";
        cr_assert_lt(aidp_residency_parse_access(yaml, strlen(yaml), "access.yaml", &p, &err), 0);
        cr_expect(!strncmp(err.msg, "access.yaml:6:", 14), "%s", err.msg);
        cr_expect(strstr(err.msg, "views.v.labels.age"), "%s", err.msg);
}
