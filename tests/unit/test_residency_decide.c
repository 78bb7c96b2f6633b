/* Table-driven tests of the access and residency decision (pure). Each row is
 * one request against the fixture policies; it names the expected verdict
 * and, for a denial, the check, rule, dataset and attribute of the first
 * failure, and optionally another failure that must be in the trail. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "residency_fixtures.h"

/* Instants (computed independently with Python's zoneinfo). */
#define WED_1000Z          1714557600 /* Wed 2024-05-01 10:00Z = 06:00 New York */
#define WED_1000_NY        1714572000 /* Wed 2024-05-01 10:00 New York (EDT) */
#define FRI_2330_BER       1714771800 /* Fri 2024-05-03 23:30 Berlin (CEST) */
#define SAT_0300_BER       1714784400 /* Sat 03:00 Berlin: the Friday night window */
#define SAT_0559_BER       1714795140 /* Sat 05:59 Berlin: last minute of it */
#define SAT_0600_BER       1714795200 /* Sat 06:00 Berlin: end is exclusive */
#define SAT_2300_BER       1714856400 /* Sat 23:00 Berlin: Saturday is not a window day */
#define FRI_0300_BER       1714698000 /* Fri 03:00 Berlin: belongs to Thursday's night */
#define SUN_0300Z          1714878000 /* Sun 03:00Z: maintenance (UTC) */
#define SUN_0500Z          1714885200
#define MON_1000_NY_WINTER 1705330800 /* Mon 2024-01-15 10:00 New York (EST) */
#define MON_1000Z_WINTER   1705312800 /* Mon 2024-01-15 10:00Z = 05:00 New York */

#define BER_SUMMER 7200
#define NY_SUMMER  (-14400)
#define NY_WINTER  (-18000)
#define UNRESOLVED LONG_MIN

enum { NO_ACCESS = 1, NO_RESIDENCY = 2, EGRESS_PROFILE = 4 };

struct dcase {
        const char *name;
        const char *user; /* NULL: a uid without a name */
        const char *groups[3];
        enum aidp_residency_op op;
        const char *profile; /* NULL: no profile */
        enum aidp_residency_net net;
        const char *data[3];
        const char *host; /* NULL: no host identity */
        long long at;
        long berlin, ny; /* the zones' offsets handed to the decision */
        unsigned flags;
        bool allow;
        enum aidp_reason_check check;
        const char *rule, *dataset, *attr;
        /* Another FAIL the trail must hold (or NULL). */
        enum aidp_reason_check also_check;
        const char *also_rule;
};

#define T(...)                                                                                     \
        {                                                                                          \
                __VA_ARGS__                                                                        \
        }
#define RUN  AIDP_OP_RUN
#define NONE AIDP_RESIDENCY_NET_NONE
#define EGR  AIDP_RESIDENCY_NET_EGRESS
#define ACC  AIDP_CHECK_ACCESS
#define DNY  AIDP_CHECK_DENY
#define RES  AIDP_CHECK_RESIDENCY
#define REG  AIDP_CHECK_REGULATION
#define CLS  AIDP_CHECK_CLASSIFICATION
#define MIX  AIDP_CHECK_MIX

/* Criterion may run each parameter in a fresh process, where pointers from
 * the parent are meaningless: parameters are indexes into this table. */
static const struct dcase rows[] = {
        /* residency */
        {.name = "eu data on an eu host",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .allow = true},
        {.name = "eu data on a us host",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "us",
         .at = WED_1000Z,
         .check = RES,
         .rule = "residency.eu",
         .dataset = "imagenet-eu",
         .attr = "region"},
        {.name = "eu region but us jurisdiction",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"eu-data"},
         .host = "eu-us-law",
         .at = WED_1000Z,
         .check = RES,
         .rule = "residency.eu",
         .dataset = "eu-data",
         .attr = "jurisdiction"},
        {.name = "unknown residency tag",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"mars-data"},
         .host = "eu",
         .at = WED_1000Z,
         .check = RES,
         .rule = "residency.mars",
         .dataset = "mars-data",
         .attr = "residency"},
        {.name = "no host identity",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"eu-data"},
         .host = NULL,
         .at = WED_1000Z,
         .check = RES,
         .rule = "residency.eu",
         .dataset = "eu-data",
         .attr = "region"},
        {.name = "no residency policy",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"eu-data"},
         .host = "eu",
         .at = WED_1000Z,
         .flags = NO_RESIDENCY,
         .check = RES,
         .rule = "residency.eu",
         .dataset = "eu-data",
         .attr = "residency"},
        {.name = "untagged data needs no residency policy",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-restricted"},
         .host = NULL,
         .at = WED_1000Z,
         .flags = NO_RESIDENCY,
         .check = ACC,
         .rule = "roles.trainer",
         .dataset = "imagenet-restricted",
         .attr = "classification"},
        /* regulations */
        {.name = "phi on a host with hipaa",
         .user = "bob",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"phi-notes"},
         .host = "us",
         .at = WED_1000Z,
         .allow = true},
        {.name = "phi without the hipaa zone",
         .user = "bob",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"phi-notes"},
         .host = "us-nohipaa",
         .at = WED_1000Z,
         .check = REG,
         .rule = "regulations.phi",
         .dataset = "phi-notes",
         .attr = "zone"},
        {.name = "unknown regulation tag",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"pci-data"},
         .host = "eu",
         .at = WED_1000Z,
         .check = REG,
         .rule = "regulations.pci",
         .dataset = "pci-data",
         .attr = "regulation"},
        /* classification requirements (cumulative upwards) */
        {.name = "restricted needs network none",
         .user = "bob",
         .op = RUN,
         .profile = "gpu-train",
         .net = EGR,
         .data = {"phi-notes"},
         .host = "us",
         .at = WED_1000Z,
         .check = CLS,
         .rule = "classifications.restricted",
         .dataset = "phi-notes",
         .attr = "network"},
        {.name = "regulated inherits restricted's network rule",
         .user = "bob",
         .op = RUN,
         .profile = "gpu-train",
         .net = EGR,
         .data = {"phi-registry"},
         .host = "us",
         .at = WED_1000Z,
         .check = CLS,
         .rule = "classifications.restricted",
         .dataset = "phi-registry",
         .attr = "network"},
        {.name = "regulated needs the soc2 zone",
         .user = "bob",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"phi-registry"},
         .host = "us-hipaa-only",
         .at = WED_1000Z,
         .check = CLS,
         .rule = "classifications.regulated",
         .dataset = "phi-registry",
         .attr = "zone"},
        {.name = "regulated with every zone",
         .user = "bob",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"phi-registry"},
         .host = "us",
         .at = WED_1000Z,
         .allow = true},
        /* roles: every attribute */
        {.name = "a user outside every role",
         .user = "zoe",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "default",
         .attr = "role"},
        {.name = "a uid without a user name",
         .user = NULL,
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "default",
         .attr = "user"},
        {.name = "no access policy installed",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .flags = NO_ACCESS,
         .check = ACC,
         .rule = "default",
         .attr = "policy"},
        {.name = "role through a group",
         .user = "gina",
         .groups = {"ml-team"},
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .allow = true},
        {.name = "required attribute missing",
         .user = "carol",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"phi-notes"},
         .host = "us",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "roles.clinical",
         .dataset = "phi-notes",
         .attr = "clearance"},
        {.name = "required attribute has another value",
         .user = "dave",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"phi-notes"},
         .host = "us",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "roles.clinical",
         .dataset = "phi-notes",
         .attr = "clearance"},
        {.name = "classification above the role's max",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-restricted"},
         .host = "eu",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "roles.trainer",
         .dataset = "imagenet-restricted",
         .attr = "classification"},
        {.name = "profile not in the role",
         .user = "alice",
         .op = RUN,
         .profile = "cpu-small",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "roles.trainer",
         .dataset = "imagenet-eu",
         .attr = "profile"},
        {.name = "operation not in the role",
         .user = "alice",
         .op = AIDP_OP_UNSEAL,
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "roles.trainer",
         .dataset = "imagenet-eu",
         .attr = "operation"},
        {.name = "dataset not in the role",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"phi-notes"},
         .host = "us",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "roles.trainer",
         .dataset = "phi-notes",
         .attr = "dataset"},
        {.name = "dataset pattern with a version",
         .user = "pat",
         .op = RUN,
         .profile = "any",
         .data = {"pinned"},
         .host = "eu",
         .at = WED_1000Z,
         .allow = true},
        {.name = "dataset pattern with another version",
         .user = "pat",
         .op = RUN,
         .profile = "any",
         .data = {"pinned-v4"},
         .host = "eu",
         .at = WED_1000Z,
         .check = ACC,
         .rule = "roles.versioned",
         .dataset = "pinned",
         .attr = "dataset"},
        {.name = "a run without data",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .host = "eu",
         .at = WED_1000Z,
         .allow = true},
        {.name = "inspect reads headers only: no residency",
         .user = "alice",
         .op = AIDP_OP_INSPECT,
         .data = {"imagenet-eu"},
         .host = "us",
         .at = WED_1000Z,
         .allow = true},
        {.name = "unseal places data: residency applies",
         .user = "bob",
         .op = AIDP_OP_UNSEAL,
         .data = {"phi-notes"},
         .host = "eu",
         .at = WED_1000Z,
         .check = RES,
         .rule = "residency.us",
         .dataset = "phi-notes",
         .attr = "region"},
        {.name = "lineage-read through a group",
         .user = "aud",
         .groups = {"audit"},
         .op = AIDP_OP_LINEAGE_READ,
         .host = "eu",
         .at = WED_1000Z,
         .allow = true},
        /* explicit deny overrides allow */
        {.name = "suspended user despite a role",
         .user = "mallory",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .check = DNY,
         .rule = "deny.mallory-suspended",
         .attr = "user"},
        {.name = "contractor group on restricted data",
         .user = "bob",
         .groups = {"contractors"},
         .op = RUN,
         .profile = "gpu-train",
         .data = {"phi-notes"},
         .host = "us",
         .at = WED_1000Z,
         .check = DNY,
         .rule = "deny.contractors-no-restricted",
         .dataset = "phi-notes",
         .attr = "classification"},
        {.name = "contractor group on internal data",
         .user = "gina",
         .groups = {"ml-team", "contractors"},
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = WED_1000Z,
         .allow = true},
        {.name = "freeze on a dataset pattern",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"frozen-set"},
         .host = "eu",
         .at = WED_1000Z,
         .check = DNY,
         .rule = "deny.freeze",
         .dataset = "frozen-set",
         .attr = "dataset"},
        {.name = "freeze does not match another profile",
         .user = "pat",
         .op = RUN,
         .profile = "cpu",
         .data = {"pinned"},
         .host = "eu",
         .at = WED_1000Z,
         .allow = true},
        {.name = "maintenance window denies",
         .user = "gina",
         .groups = {"ml-team"},
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = SUN_0300Z,
         .check = DNY,
         .rule = "deny.maintenance",
         .attr = "time"},
        {.name = "after the maintenance window",
         .user = "gina",
         .groups = {"ml-team"},
         .op = RUN,
         .profile = "gpu-train",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = SUN_0500Z,
         .allow = true},
        /* time windows across midnight, in Berlin */
        {.name = "Friday night window, Friday 23:30",
         .user = "erin",
         .op = RUN,
         .profile = "batch",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = FRI_2330_BER,
         .berlin = BER_SUMMER,
         .allow = true},
        {.name = "Friday night window, Saturday 03:00",
         .user = "erin",
         .op = RUN,
         .profile = "batch",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = SAT_0300_BER,
         .berlin = BER_SUMMER,
         .allow = true},
        {.name = "Friday night window, Saturday 05:59",
         .user = "erin",
         .op = RUN,
         .profile = "batch",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = SAT_0559_BER,
         .berlin = BER_SUMMER,
         .allow = true},
        {.name = "Friday night window, Saturday 06:00",
         .user = "erin",
         .op = RUN,
         .profile = "batch",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = SAT_0600_BER,
         .berlin = BER_SUMMER,
         .check = ACC,
         .rule = "roles.night",
         .dataset = "imagenet-eu",
         .attr = "time"},
        {.name = "Friday night window, Saturday 23:00",
         .user = "erin",
         .op = RUN,
         .profile = "batch",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = SAT_2300_BER,
         .berlin = BER_SUMMER,
         .check = ACC,
         .rule = "roles.night",
         .dataset = "imagenet-eu",
         .attr = "time"},
        {.name = "Friday night window, Friday 03:00",
         .user = "erin",
         .op = RUN,
         .profile = "batch",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = FRI_0300_BER,
         .berlin = BER_SUMMER,
         .check = ACC,
         .rule = "roles.night",
         .dataset = "imagenet-eu",
         .attr = "time"},
        {.name = "Berlin zone not resolved",
         .user = "erin",
         .op = RUN,
         .profile = "batch",
         .data = {"imagenet-eu"},
         .host = "eu",
         .at = FRI_2330_BER,
         .berlin = UNRESOLVED,
         .check = ACC,
         .rule = "roles.night",
         .dataset = "imagenet-eu",
         .attr = "time"},
        /* time windows in New York, summer and winter time */
        {.name = "New York office hours (EDT)",
         .user = "frank",
         .op = RUN,
         .profile = "ny-1",
         .data = {"public-set"},
         .host = "eu",
         .at = WED_1000_NY,
         .ny = NY_SUMMER,
         .allow = true},
        {.name = "10:00Z is 06:00 in New York",
         .user = "frank",
         .op = RUN,
         .profile = "ny-1",
         .data = {"public-set"},
         .host = "eu",
         .at = WED_1000Z,
         .ny = NY_SUMMER,
         .check = ACC,
         .rule = "roles.daytime-ny",
         .dataset = "public-set",
         .attr = "time"},
        {.name = "New York office hours (EST)",
         .user = "frank",
         .op = RUN,
         .profile = "ny-1",
         .data = {"public-set"},
         .host = "eu",
         .at = MON_1000_NY_WINTER,
         .ny = NY_WINTER,
         .allow = true},
        {.name = "winter 10:00Z is 05:00 in New York",
         .user = "frank",
         .op = RUN,
         .profile = "ny-1",
         .data = {"public-set"},
         .host = "eu",
         .at = MON_1000Z_WINTER,
         .ny = NY_WINTER,
         .check = ACC,
         .rule = "roles.daytime-ny",
         .dataset = "public-set",
         .attr = "time"},
        /* mixing inputs */
        {.name = "eu and us data do not intersect",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"eu-data", "us-data"},
         .host = "eu",
         .at = WED_1000Z,
         .check = RES,
         .rule = "residency.us",
         .dataset = "us-data",
         .attr = "region",
         .also_check = MIX,
         .also_rule = "residency"},
        {.name = "eu and de data intersect in eu-central-1",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"eu-data", "de-data"},
         .host = "eu-central",
         .at = WED_1000Z,
         .allow = true},
        {.name = "three inputs intersect pairwise but not together",
         .user = "alice",
         .op = RUN,
         .profile = "gpu-train",
         .data = {"ab-data", "bc-data", "ca-data"},
         .host = "a",
         .at = WED_1000Z,
         .check = RES,
         .rule = "residency.bc",
         .dataset = "bc-data",
         .attr = "region",
         .also_check = MIX,
         .also_rule = "residency"},
};

#define N_ROWS (sizeof rows / sizeof rows[0])

ParameterizedTestParameters(decide, table)
{
        static size_t idx[N_ROWS];
        for (size_t i = 0; i < N_ROWS; i++)
                idx[i] = i;
        return cr_make_param_array(size_t, idx, N_ROWS);
}

static const char *show(const char *s)
{
        return s ? s : "(null)";
}

static bool same(const char *a, const char *b)
{
        return (!a && !b) || (a && b && !strcmp(a, b));
}

ParameterizedTest(size_t *row, decide, table)
{
        const struct dcase *c = &rows[*row];
        long berlin = c->berlin ? c->berlin : BER_SUMMER;
        long ny = c->ny ? c->ny : NY_SUMMER;
        struct aidp_access_policy ap;
        struct aidp_residency_policy rp;
        struct aidp_host_identity host;
        struct aidp_dataset_facts ds[3];
        size_t n = 0;
        aidp_error err = {0};

        fx_access(access_yaml, &ap);
        fx_residency(residency_yaml, &rp);
        if (c->host)
                fx_host(c->host, &host);
        for (; n < 3 && c->data[n]; n++)
                fx_facts(c->data[n], &ds[n]);

        size_t n_groups = 0;
        while (n_groups < 3 && c->groups[n_groups])
                n_groups++;
        struct aidp_zone_offset zones[2];
        size_t n_zones = 0;
        if (berlin != UNRESOLVED)
                zones[n_zones++] = (struct aidp_zone_offset){"Europe/Berlin", berlin};
        if (ny != UNRESOLVED)
                zones[n_zones++] = (struct aidp_zone_offset){"America/New_York", ny};
        struct aidp_residency_profile prof = {.name = c->profile, .network = c->net};
        struct aidp_decision_request req = {
                .caller = {.user = c->user,
                           .uid = c->user ? 1000 : 4242,
                           .groups = c->groups,
                           .n_groups = n_groups},
                .op = c->op,
                .profile = c->profile ? &prof : NULL,
                .datasets = ds,
                .n_datasets = n,
                .host = c->host ? &host : NULL,
                .residency = (c->flags & NO_RESIDENCY) ? NULL : &rp,
                .access = (c->flags & NO_ACCESS) ? NULL : &ap,
                .time = {.epoch = c->at, .zones = zones, .n_zones = n_zones},
        };
        struct aidp_decision d;
        cr_assert_eq(aidp_residency_decide(&req, &d, &err), 0, "%s", err.msg);

        char *text = aidp_residency_decision_to_text(&d);
        cr_assert_not_null(text);
        cr_assert_eq(d.allow, c->allow, "%s: expected %s, trail:\n%s", c->name,
                     c->allow ? "allow" : "deny", text);
        const struct aidp_reason *f = aidp_residency_decision_first_failure(&d);
        if (c->allow) {
                cr_assert_null(f, "%s", c->name);
        } else {
                cr_assert_not_null(f);
                cr_assert(f->check == c->check && same(f->rule, c->rule) &&
                                  same(f->dataset, c->dataset) && same(f->attribute, c->attr),
                          "%s: first failure is %s %s dataset %s attribute %s, expected %s %s "
                          "dataset %s attribute %s; trail:\n%s",
                          c->name, aidp_residency_check_name(f->check), show(f->rule),
                          show(f->dataset), show(f->attribute), aidp_residency_check_name(c->check),
                          show(c->rule), show(c->dataset), show(c->attr), text);
                cr_assert(f->message && f->message[0]);
                aidp_error derr = {0};
                cr_assert_eq(aidp_residency_decision_to_error(&d, &derr), -EACCES);
                cr_assert_eq(derr.status, AIDP_EXIT_DENIED);
                cr_assert(strstr(derr.msg, c->rule), "%s", derr.msg);
                if (c->dataset)
                        cr_assert(strstr(derr.msg, c->dataset), "%s", derr.msg);
                if (c->attr)
                        cr_assert(strstr(derr.msg, c->attr), "%s", derr.msg);
                /* more than one failure: where the caller sees them all */
                size_t fails = 0;
                for (size_t i = 0; i < d.n_reasons; i++)
                        fails += d.reasons[i].result == AIDP_REASON_FAIL;
                if (fails > 1)
                        cr_assert(strstr(derr.msg,
                                         c->op == AIDP_OP_RUN
                                                 ? "more; the run's --dry-run shows them all"
                                                 : "more; 'aidp policy explain' shows them all"),
                                  "%s", derr.msg);
        }
        if (c->also_rule) {
                bool found = false;
                for (size_t i = 0; i < d.n_reasons && !found; i++)
                        found = d.reasons[i].result == AIDP_REASON_FAIL &&
                                d.reasons[i].check == c->also_check &&
                                same(d.reasons[i].rule, c->also_rule);
                cr_assert(found, "%s: no %s failure %s in the trail:\n%s", c->name,
                          aidp_residency_check_name(c->also_check), c->also_rule, text);
        }
        free(text);
        aidp_residency_decision_free(&d);
        for (size_t i = 0; i < n; i++)
                aidp_residency_facts_free(&ds[i]);
        if (c->host)
                aidp_residency_host_free(&host);
        aidp_residency_policy_free(&rp);
        aidp_residency_access_free(&ap);
}

/* --- the egress allowlist restricted to in-region rules --- */

static const char residency_egress_deny_yaml[] =
        "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
        "residency:\n  eu: {regions: [\"eu-*\"]}\n"
        "egress:\n  untagged: keep\n  out_of_region: deny\n";

/* One run request of `data` on the eu host under `residency` with profile prof. */
static void decide_run(const char *residency, const char *data,
                       const struct aidp_residency_profile *prof, struct aidp_decision *d)
{
        struct aidp_access_policy ap;
        struct aidp_residency_policy rp;
        struct aidp_host_identity host;
        struct aidp_dataset_facts ds;
        aidp_error err = {0};
        fx_access(access_yaml, &ap);
        fx_residency(residency, &rp);
        fx_host("eu", &host);
        fx_facts(data, &ds);
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = prof,
                .datasets = &ds,
                .n_datasets = 1,
                .host = &host,
                .residency = &rp,
                .access = &ap,
                .time = {.epoch = WED_1000Z},
        };
        cr_assert_eq(aidp_residency_decide(&req, d, &err), 0, "%s", err.msg);
        aidp_residency_facts_free(&ds);
        aidp_residency_host_free(&host);
        aidp_residency_policy_free(&rp);
        aidp_residency_access_free(&ap);
}

static void egress_decide(const char *residency, const char *data, struct aidp_decision *d)
{
        struct aidp_residency_egress rules[] = {
                {.cidr = "10.20.0.0/16", .region = "eu-west-1", .port_min = 443, .port_max = 443},
                {.cidr = "203.0.113.7/32", .region = "us-east-1"},
                {.fqdn = "pypi.internal.example", .region = NULL},
        };
        struct aidp_residency_profile prof = {.name = "gpu-train",
                                              .network = AIDP_RESIDENCY_NET_EGRESS,
                                              .egress = rules,
                                              .n_egress = 3};
        decide_run(residency, data, &prof, d);
}

static const struct aidp_reason *reason_for(const struct aidp_decision *d, const char *rule)
{
        for (size_t i = 0; i < d->n_reasons; i++)
                if (d->reasons[i].rule && !strcmp(d->reasons[i].rule, rule))
                        return &d->reasons[i];
        return NULL;
}

Test(decide, egress_keeps_only_in_region_rules)
{
        struct aidp_decision d;
        egress_decide(residency_yaml, "eu-data", &d);
        cr_assert(d.allow);
        cr_assert_eq(d.n_egress, 3);
        cr_assert(d.egress_keep[0], "eu-west-1 rule is in region");
        cr_assert(!d.egress_keep[1], "us-east-1 rule leaves");
        cr_assert(!d.egress_keep[2], "untagged rule leaves by default");
        const struct aidp_reason *r = reason_for(&d, "egress[1]");
        cr_assert_not_null(r);
        cr_assert_eq(r->result, AIDP_REASON_INFO);
        cr_assert_str_eq(r->dataset, "eu-data");
        cr_assert(strstr(r->message, "us-east-1") && strstr(r->message, "dropped"), "%s",
                  r->message);
        aidp_residency_decision_free(&d);
}

Test(decide, egress_out_of_region_can_deny)
{
        struct aidp_decision d;
        egress_decide(residency_egress_deny_yaml, "eu-data", &d);
        cr_assert(!d.allow);
        cr_assert(d.egress_keep[0]);
        cr_assert(!d.egress_keep[1]);
        cr_assert(d.egress_keep[2], "untagged: keep");
        const struct aidp_reason *f = aidp_residency_decision_first_failure(&d);
        cr_assert_eq(f->check, AIDP_CHECK_EGRESS);
        cr_assert_str_eq(f->rule, "egress[1]");
        cr_assert_str_eq(f->attribute, "region");
        aidp_residency_decision_free(&d);
}

Test(decide, egress_untouched_without_residency_tags)
{
        struct aidp_decision d;
        egress_decide(residency_yaml, "public-set", &d);
        cr_assert(d.allow);
        for (size_t i = 0; i < 3; i++)
                cr_assert(d.egress_keep[i]);
        aidp_residency_decision_free(&d);
}

/* --- outputs, JSON for lineage, text --- */

Test(decide, outputs_inherit_and_json_carries_the_trail)
{
        struct aidp_access_policy ap;
        struct aidp_residency_policy rp;
        struct aidp_host_identity host;
        struct aidp_dataset_facts ds[2];
        aidp_error err = {0};
        fx_access(access_yaml, &ap);
        fx_residency(residency_yaml, &rp);
        fx_host("us", &host);
        fx_facts("imagenet-eu", &ds[0]);
        fx_facts("phi-notes", &ds[1]);
        struct aidp_residency_profile prof = {.name = "gpu-train"};
        struct aidp_decision_request req = {
                .caller = {.user = "alice", .uid = 1000},
                .op = AIDP_OP_RUN,
                .profile = &prof,
                .datasets = ds,
                .n_datasets = 2,
                .host = &host,
                .residency = &rp,
                .access = &ap,
                .time = {.epoch = WED_1000Z},
        };
        struct aidp_decision d;
        cr_assert_eq(aidp_residency_decide(&req, &d, &err), 0);
        cr_assert(!d.allow);
        cr_assert_eq(d.outputs.classification, AIDP_CLASS_RESTRICTED);
        cr_assert_eq(d.outputs.n_residency, 2);
        cr_assert_str_eq(d.outputs.residency[0], "eu");
        cr_assert_str_eq(d.outputs.residency[1], "us");
        cr_assert_eq(d.outputs.n_regulations, 2);
        cr_assert_str_eq(d.outputs.regulations[0], "gdpr");
        cr_assert_str_eq(d.outputs.regulations[1], "phi");

        struct json_object *j = aidp_residency_decision_to_json(&d);
        cr_assert_not_null(j);
        const char *s = json_object_to_json_string(j);
        struct json_object *back = json_tokener_parse(s);
        cr_assert_not_null(back, "JSON must round-trip: %s", s);
        struct json_object *v;
        cr_assert(json_object_object_get_ex(back, "decision", &v));
        cr_assert_str_eq(json_object_get_string(v), "deny");
        cr_assert(json_object_object_get_ex(back, "user", &v));
        cr_assert_str_eq(json_object_get_string(v), "alice");
        cr_assert(json_object_object_get_ex(back, "reasons", &v));
        cr_assert_eq(json_object_array_length(v), d.n_reasons);
        bool saw_fail = false;
        for (size_t i = 0; i < d.n_reasons; i++) {
                struct json_object *r = json_object_array_get_idx(v, i), *x;
                cr_assert(json_object_object_get_ex(r, "result", &x));
                cr_assert_str_eq(json_object_get_string(x),
                                 aidp_residency_result_name(d.reasons[i].result));
                cr_assert(json_object_object_get_ex(r, "rule", &x));
                cr_assert_str_eq(json_object_get_string(x), d.reasons[i].rule);
                if (d.reasons[i].result == AIDP_REASON_FAIL) {
                        saw_fail = true;
                        cr_assert(json_object_object_get_ex(r, "dataset", &x));
                        cr_assert(json_object_object_get_ex(r, "attribute", &x));
                        cr_assert(json_object_object_get_ex(r, "source", &x));
                }
        }
        cr_assert(saw_fail);
        cr_assert(json_object_object_get_ex(back, "outputs", &v));
        struct json_object *cls;
        cr_assert(json_object_object_get_ex(v, "classification", &cls));
        cr_assert_str_eq(json_object_get_string(cls), "restricted");
        cr_assert(json_object_object_get_ex(back, "datasets", &v));
        cr_assert_eq(json_object_array_length(v), 2);
        json_object_put(back);
        json_object_put(j);

        char *text = aidp_residency_decision_to_text(&d);
        cr_assert(strstr(text, "DENY: run by user alice"), "%s", text);
        cr_assert(strstr(text, "FAIL residency      residency.eu [residency.yaml:"), "%s", text);
        cr_assert(
                strstr(text,
                       "outputs inherit: restricted, residency [eu, us], regulations [gdpr, phi]"),
                "%s", text);
        free(text);

        aidp_residency_decision_free(&d);
        aidp_residency_facts_free(&ds[0]);
        aidp_residency_facts_free(&ds[1]);
        aidp_residency_host_free(&host);
        aidp_residency_policy_free(&rp);
        aidp_residency_access_free(&ap);
}

Test(decide, allow_to_error_is_a_no_op)
{
        struct aidp_decision d = {.allow = true};
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_decision_to_error(&d, &err), 0);
        cr_assert_eq(err.status, 0);
}

/* --- classifications.LEVEL.profile.writableBinds: false --- */

static const char residency_no_writable_yaml[] =
        "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
        "residency:\n  eu: {regions: [\"eu-*\"]}\n"
        "classifications:\n  internal:\n    profile:\n      writableBinds: false\n";

static bool binds_decide(const char *data, const char *const *binds, size_t n_binds,
                         struct aidp_decision *d)
{
        struct aidp_residency_profile prof = {.name = "gpu-train",
                                              .network = AIDP_RESIDENCY_NET_NONE,
                                              .writable_binds = binds,
                                              .n_writable_binds = n_binds};
        decide_run(residency_no_writable_yaml, data, &prof, d);
        return d->allow;
}

Test(decide, writable_binds_can_be_forbidden_from_a_classification_up)
{
        const char *binds[] = {"/srv/results", "/srv/more"};
        struct aidp_decision d;
        /* internal data, a writable bind: denied, naming the bind */
        cr_assert_not(binds_decide("eu-data", binds, 2, &d));
        const struct aidp_reason *f = aidp_residency_decision_first_failure(&d);
        cr_assert_not_null(f);
        cr_assert_eq(f->check, AIDP_CHECK_CLASSIFICATION);
        cr_assert_str_eq(f->rule, "classifications.internal");
        cr_assert_str_eq(f->attribute, "writableBinds");
        cr_assert(strstr(f->message, "/srv/results") && strstr(f->message, "1 more"), "%s",
                  f->message);
        aidp_residency_decision_free(&d);
        /* the same data without one: allowed, with the rule in the trail */
        cr_assert(binds_decide("eu-data", NULL, 0, &d));
        const struct aidp_reason *p = reason_for(&d, "classifications.internal");
        cr_assert(p && p->result == AIDP_REASON_PASS);
        aidp_residency_decision_free(&d);
        /* public data is below the rule's level: the bind is its own business */
        cr_assert(binds_decide("public-set", binds, 1, &d));
        aidp_residency_decision_free(&d);
}

Test(decide, writable_binds_must_be_a_boolean)
{
        struct aidp_residency_policy rp;
        aidp_error err = {0};
        static const char bad[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                  "classifications:\n  internal:\n    profile:\n"
                                  "      writableBinds: never\n";
        cr_assert_lt(aidp_residency_parse_residency(bad, strlen(bad), "r.yaml", &rp, &err), 0);
        cr_assert(strstr(err.msg, "writableBinds") && strstr(err.msg, "never"), "%s", err.msg);
}
