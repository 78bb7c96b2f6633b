/* The pure decision where it must fail closed (issue 21): sealed data on a host
 * without any policy, the instant a run's granting time windows close, and
 * outputs that would inherit more tags than a sealed header holds. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "residency_fixtures.h"

#define WED_1000Z 1714557600 /* Wed 2024-05-01 10:00:00Z */
#define MON_2300Z 1714431600 /* Mon 2024-04-29 23:00:00Z */

struct req_fx {
        struct aidp_access_policy ap;
        struct aidp_residency_policy rp;
        struct aidp_host_identity host;
        struct aidp_dataset_facts ds[2];
        size_t n;
        bool have_ap, have_rp, have_host;
};

static void fx_free(struct req_fx *f)
{
        for (size_t i = 0; i < f->n; i++)
                aidp_residency_facts_free(&f->ds[i]);
        if (f->have_ap)
                aidp_residency_access_free(&f->ap);
        if (f->have_rp)
                aidp_residency_policy_free(&f->rp);
        if (f->have_host)
                aidp_residency_host_free(&f->host);
}

static void decide(const struct aidp_decision_request *req, struct aidp_decision *d)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_decide(req, d, &err), 0, "%s", err.msg);
}

/* None of host.yaml, residency.yaml, access.yaml: sealed data is refused to
 * anyone but root deciding for itself; a run without data is not decided. */
Test(fail_closed, no_policy_refuses_sealed_data)
{
        struct req_fx f = {0};
        fx_facts("phi-registry", &f.ds[f.n++]);
        struct aidp_residency_egress rules[] = {{.cidr = "10.0.0.0/8", .region = "us-east-1"}};
        struct aidp_residency_profile prof = {.name = "gpu-train",
                                              .network = AIDP_RESIDENCY_NET_EGRESS,
                                              .egress = rules,
                                              .n_egress = 1};
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = f.ds,
                .n_datasets = f.n,
                .time = {.epoch = WED_1000Z},
        };
        struct aidp_decision d;
        decide(&req, &d);
        cr_assert(!d.allow, "sealed regulated data decided allow without any policy");
        cr_assert(!d.decided);
        const struct aidp_reason *r = aidp_residency_decision_first_failure(&d);
        cr_assert_str_eq(r->rule, "default");
        cr_assert_str_eq(r->attribute, "policy");
        cr_assert(strstr(r->message, "no policy is installed"), "%s", r->message);
        aidp_residency_decision_free(&d);

        /* An unknown uid is not root. */
        req.caller = (struct aidp_caller){.user = NULL, .uid = -1};
        decide(&req, &d);
        cr_assert(!d.allow);
        aidp_residency_decision_free(&d);

        /* Root's own run: it holds the keys; nothing to decide. */
        req.caller = (struct aidp_caller){.user = "root", .uid = 0};
        decide(&req, &d);
        cr_assert(d.allow);
        cr_assert(!d.decided);
        aidp_residency_decision_free(&d);

        /* Without data: not decided, egress untouched. */
        req.caller = (struct aidp_caller){.user = "alice", .uid = 1000};
        req.n_datasets = 0;
        decide(&req, &d);
        cr_assert(d.allow);
        cr_assert(!d.decided);
        cr_assert(d.egress_keep[0]);
        cr_assert_str_eq(d.reasons[0].rule, "none");
        aidp_residency_decision_free(&d);
        fx_free(&f);
}

/* Any one file installed turns decisions on: access.yaml missing then denies. */
Test(fail_closed, one_file_installed_decides)
{
        struct req_fx f = {0};
        fx_host("eu", &f.host);
        f.have_host = true;
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .host = &f.host,
                .time = {.epoch = WED_1000Z},
        };
        struct aidp_decision d;
        decide(&req, &d);
        cr_assert(d.decided);
        cr_assert(!d.allow);
        cr_assert(strstr(aidp_residency_decision_first_failure(&d)->message,
                         "no access policy is installed"));
        aidp_residency_decision_free(&d);
        fx_free(&f);
}

static const char windows_yaml[] = "apiVersion: aidp/v1\n"
                                   "kind: AccessPolicy\n"
                                   "roles:\n"
                                   "  day:\n"
                                   "    operations: [run]\n"
                                   "    profiles: [\"*\"]\n"
                                   "    datasets: [\"*\"]\n"
                                   "    max_classification: regulated\n"
                                   "    time_windows:\n"
                                   "      - days: [mon, tue, wed, thu, fri]\n"
                                   "        hours: \"09:00-17:00\"\n"
                                   "  span:\n"
                                   "    operations: [run]\n"
                                   "    profiles: [\"*\"]\n"
                                   "    datasets: [\"*\"]\n"
                                   "    max_classification: regulated\n"
                                   "    time_windows:\n"
                                   "      - days: [mon]\n"
                                   "      - days: [tue]\n"
                                   "        hours: \"00:00-06:30\"\n"
                                   "  always:\n"
                                   "    operations: [run]\n"
                                   "    profiles: [\"*\"]\n"
                                   "    datasets: [\"public-*\"]\n"
                                   "users:\n"
                                   "  dana: {roles: [day]}\n"
                                   "  sam: {roles: [span]}\n"
                                   "  pia: {roles: [day, always]}\n";

static void until_for(const char *user, const char *data, int64_t at, struct aidp_decision *d)
{
        struct req_fx f = {0};
        fx_access(windows_yaml, &f.ap);
        f.have_ap = true;
        fx_facts(data, &f.ds[f.n++]);
        struct aidp_residency_profile prof = {.name = "p"};
        struct aidp_decision_request req = {
                .caller = {.user = user, .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = f.ds,
                .n_datasets = f.n,
                .access = &f.ap,
                .time = {.epoch = at},
        };
        decide(&req, d);
        fx_free(&f);
}

/* The instant the granting windows close: what the supervisor ends the run at. */
Test(fail_closed, until_is_when_the_granting_window_closes)
{
        struct aidp_decision d;
        until_for("dana", "public-set", WED_1000Z + 30, &d);
        cr_assert(d.allow);
        cr_assert_eq(d.until, WED_1000Z + 7 * 3600, "until %lld", (long long)d.until);
        cr_assert_str_eq(d.until_rule, "roles.day");
        char *text = aidp_residency_decision_to_text(&d);
        cr_assert(strstr(text, "access ends 2024-05-01T17:00:00Z: the time window of roles.day"),
                  "%s", text);
        free(text);
        aidp_residency_decision_free(&d);

        /* Windows end to end are one span: Monday all day, then Tuesday to 06:30. */
        until_for("sam", "public-set", MON_2300Z, &d);
        cr_assert(d.allow);
        cr_assert_eq(d.until, MON_2300Z + 3600 + 6 * 3600 + 1800, "until %lld", (long long)d.until);
        aidp_residency_decision_free(&d);

        /* A role without windows also grants it: no end. */
        until_for("pia", "public-set", WED_1000Z, &d);
        cr_assert(d.allow);
        cr_assert_eq(d.until, 0);
        cr_assert_null(d.until_rule);
        aidp_residency_decision_free(&d);
}

/* Outputs inherit the union of the inputs' tags; more than a sealed header
 * holds is refused before the job runs. */
Test(fail_closed, outputs_over_the_header_tag_limit_are_refused)
{
        struct req_fx f = {0};
        fx_access(access_yaml, &f.ap);
        f.have_ap = true;
        for (int k = 0; k < 2; k++) {
                struct aidp_dataset_facts *ds = &f.ds[f.n++];
                memset(ds, 0, sizeof *ds);
                ds->name = strdup(k ? "public-b" : "public-a");
                for (int t = 0; t < 20; t++) {
                        char tag[16];
                        snprintf(tag, sizeof tag, "r%c%02d", 'a' + k, t);
                        cr_assert_eq(
                                aidp_strv_push(&ds->tags.regulations, &ds->tags.n_regulations, tag),
                                0);
                }
        }
        struct aidp_residency_profile prof = {.name = "gpu-train"};
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = f.ds,
                .n_datasets = f.n,
                .access = &f.ap,
                .time = {.epoch = WED_1000Z},
        };
        struct aidp_decision d;
        decide(&req, &d);
        cr_assert(!d.allow);
        bool found = false;
        for (size_t i = 0; i < d.n_reasons; i++)
                found |= d.reasons[i].result == AIDP_REASON_FAIL &&
                         !strcmp(d.reasons[i].rule, "outputs") &&
                         strstr(d.reasons[i].message, "40 regulation tags") != NULL;
        cr_assert(found, "no FAIL for 40 inherited regulation tags");
        aidp_residency_decision_free(&d);
        fx_free(&f);
}

static const char all_yaml[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  all:\n"
                               "    operations: [run]\n    profiles: [\"*\"]\n"
                               "    datasets: [\"*\"]\n    max_classification: regulated\n"
                               "users:\n  alice: {roles: [all]}\n";

static bool require_allows(const char *residency_yaml_or_null, const char *data)
{
        struct req_fx f = {0};
        fx_access(all_yaml, &f.ap);
        f.have_ap = true;
        if (residency_yaml_or_null) {
                fx_residency(residency_yaml_or_null, &f.rp);
                f.have_rp = true;
        }
        fx_host("us", &f.host);
        f.have_host = true;
        fx_facts(data, &f.ds[f.n++]);
        struct aidp_residency_profile prof = {.name = "gpu-train"};
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = f.ds,
                .n_datasets = f.n,
                .host = &f.host,
                .residency = f.have_rp ? &f.rp : NULL,
                .access = &f.ap,
                .time = {.epoch = WED_1000Z},
        };
        struct aidp_decision d;
        decide(&req, &d);
        bool allow = d.allow;
        const struct aidp_reason *r = aidp_residency_decision_first_failure(&d);
        if (!allow)
                cr_assert_str_eq(r->rule, "require_residency_from", "%s", r->message);
        aidp_residency_decision_free(&d);
        fx_free(&f);
        return allow;
}

/* Untagged data from a classification up is refused; restricted by default,
 * also without residency.yaml; configurable, `none` switches it off. */
Test(fail_closed, residency_tags_required_from_a_classification_up)
{
        static const char from_conf[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                        "require_residency_from: confidential\n";
        static const char off[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                  "require_residency_from: none\n";
        static const char dflt[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                   "residency:\n  us: {regions: [\"us-*\"]}\n";
        /* imagenet-restricted: restricted, no tags; public-set: public, no tags */
        cr_assert(!require_allows(NULL, "imagenet-restricted"));
        cr_assert(!require_allows(dflt, "imagenet-restricted"));
        cr_assert(require_allows(off, "imagenet-restricted"));
        cr_assert(require_allows(dflt, "public-set"));
        cr_assert(require_allows(from_conf, "public-set"));
        cr_assert(!require_allows(from_conf, "imagenet-restricted"));
        cr_assert(require_allows(dflt, "us-data"), "tagged data is not concerned");
}
