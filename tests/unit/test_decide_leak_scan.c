/* access.yaml leak_scan: what an output leak scan hit does, per the outputs'
 * classification: a level's action binds the levels above it, default below
 * (issue 18). */
#include <criterion/criterion.h>
#include <string.h>

#include "residency_fixtures.h"

#define ROLES                                                                                      \
        "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  all:\n"                                \
        "    operations: [run]\n    profiles: [\"*\"]\n"                                           \
        "    datasets: [\"*\"]\n    max_classification: regulated\n"                               \
        "users:\n  alice: {roles: [all]}\n"

static void decide(const char *yaml, enum aidp_classification cls, struct aidp_decision *d)
{
        struct aidp_access_policy ap;
        fx_access(yaml, &ap);
        struct aidp_dataset_facts ds = {0};
        ds.name = strdup("in");
        ds.key_id = strdup("k");
        ds.tags.classification = cls;
        ds.tags.residency = calloc(1, sizeof(char *));
        ds.tags.regulations = calloc(1, sizeof(char *));
        struct aidp_residency_profile prof = {.name = "p"};
        struct aidp_host_identity host = {.region = "eu-west-1"};
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = &ds,
                .n_datasets = 1,
                .host = &host,
                .access = &ap,
                .time = {.epoch = 1714557600},
        };
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_decide(&req, d, &err), 0, "%s", err.msg);
        aidp_residency_facts_free(&ds);
        aidp_residency_access_free(&ap);
}

Test(leak_scan, per_classification_with_default_below)
{
        static const char y[] = ROLES "leak_scan: {default: report, restricted: quarantine}\n";
        static const struct {
                enum aidp_classification c;
                enum aidp_leak_action a;
                const char *rule;
        } want[] = {
                {AIDP_CLASS_PUBLIC, AIDP_LEAK_REPORT, "leak_scan.default"},
                {AIDP_CLASS_CONFIDENTIAL, AIDP_LEAK_REPORT, "leak_scan.default"},
                {AIDP_CLASS_RESTRICTED, AIDP_LEAK_QUARANTINE, "leak_scan.restricted"},
                {AIDP_CLASS_REGULATED, AIDP_LEAK_QUARANTINE, "leak_scan.restricted"},
        };
        for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
                struct aidp_decision d;
                decide(y, want[i].c, &d);
                cr_assert_eq(d.leak_action, want[i].a, "class %d", want[i].c);
                cr_assert_str_eq(d.leak_rule, want[i].rule);
                char *text = aidp_residency_decision_to_text(&d);
                cr_assert(strstr(text, "output leak scan hits: "), "%s", text);
                free(text);
                aidp_residency_decision_free(&d);
        }
}

Test(leak_scan, a_later_level_overrides_and_none_means_report)
{
        struct aidp_decision d;
        decide(ROLES "leak_scan: {internal: quarantine, regulated: report}\n", AIDP_CLASS_REGULATED,
               &d);
        cr_assert_eq(d.leak_action, AIDP_LEAK_REPORT);
        cr_assert_str_eq(d.leak_rule, "leak_scan.regulated");
        aidp_residency_decision_free(&d);
        decide(ROLES "leak_scan: {internal: quarantine, regulated: report}\n",
               AIDP_CLASS_CONFIDENTIAL, &d);
        cr_assert_eq(d.leak_action, AIDP_LEAK_QUARANTINE);
        aidp_residency_decision_free(&d);
        decide(ROLES, AIDP_CLASS_REGULATED, &d);
        cr_assert_eq(d.leak_action, AIDP_LEAK_REPORT);
        cr_assert_str_eq(d.leak_rule, "", "no rule: nothing in the decision");
        aidp_residency_decision_free(&d);
}

Test(leak_scan, bad_entries_are_errors_with_positions)
{
        static const char *bad[] = {ROLES "leak_scan: {restricted: delete}\n",
                                    ROLES "leak_scan: {secret: report}\n",
                                    ROLES "leak_scan: report\n"};
        static const char *msg[] = {"expected report or quarantine, not 'delete'",
                                    "expected default or a classification", "leak_scan"};
        for (size_t i = 0; i < 3; i++) {
                struct aidp_access_policy ap;
                aidp_error err = {0};
                cr_assert_lt(aidp_residency_parse_access(bad[i], strlen(bad[i]), "access.yaml", &ap,
                                                         &err),
                             0);
                cr_assert(strstr(err.msg, msg[i]), "%s", err.msg);
                cr_assert(strstr(err.msg, "access.yaml:11:"), "%s", err.msg);
        }
}
