/* The policy parsers: what a valid file turns into, and for invalid files
 * the exact file:line:col, key path and message. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "residency_fixtures.h"

static char *slurp(const char *rel, size_t *len)
{
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", AIDP_SOURCE_DIR, rel);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        char *buf = malloc(1 << 16);
        *len = fread(buf, 1, 1 << 16, f);
        fclose(f);
        return buf;
}

Test(parse, host_identity)
{
        struct aidp_host_identity h;
        aidp_error err = {0};
        size_t len;
        char *buf = slurp("tests/data/policy/host-us.yaml", &len);
        cr_assert_eq(aidp_residency_parse_host(buf, len, "host-us.yaml", &h, &err), 0, "%s",
                     err.msg);
        cr_assert_str_eq(h.node, "gpu-us-03");
        cr_assert_str_eq(h.region, "us-east-1");
        cr_assert_str_eq(h.jurisdiction, "US");
        cr_assert_eq(h.n_zones, 2);
        cr_assert_str_eq(h.zones[0], "hipaa");
        cr_assert_str_eq(h.zones[1], "soc2");
        cr_assert_str_eq(h.source, "host-us.yaml");
        aidp_residency_host_free(&h);
        free(buf);
}

Test(parse, residency_policy)
{
        struct aidp_residency_policy p;
        fx_residency(residency_yaml, &p);
        cr_assert_eq(p.n_residency, 6);
        cr_assert_str_eq(p.residency[0].tag, "eu");
        cr_assert_eq(p.residency[0].n_regions, 1);
        cr_assert_str_eq(p.residency[0].regions[0], "eu-*");
        cr_assert_str_eq(p.residency[0].jurisdictions[0], "EU");
        cr_assert_eq(p.residency[0].loc.line, 4);
        cr_assert_str_eq(p.residency[0].loc.file, "residency.yaml");
        cr_assert_eq(p.residency[3].n_regions, 2);
        cr_assert_eq(p.n_regulations, 2);
        cr_assert_str_eq(p.regulations[0].tag, "phi");
        cr_assert_str_eq(p.regulations[0].zones[0], "hipaa");
        cr_assert_eq(p.n_classifications, 2);
        cr_assert_eq(p.classifications[0].level, AIDP_CLASS_RESTRICTED);
        cr_assert(p.classifications[0].require_network);
        cr_assert_eq(p.classifications[0].network, AIDP_RESIDENCY_NET_NONE);
        cr_assert_eq(p.classifications[1].level, AIDP_CLASS_REGULATED);
        cr_assert(!p.classifications[1].require_network);
        cr_assert_str_eq(p.classifications[1].zones[0], "soc2");
        cr_assert_eq(p.egress_untagged, AIDP_EGRESS_UNTAGGED_DROP);
        cr_assert_eq(p.egress_out_of_region, AIDP_EGRESS_OOR_DROP);
        aidp_residency_policy_free(&p);
}

Test(parse, access_policy)
{
        struct aidp_access_policy p;
        fx_access(access_yaml, &p);
        cr_assert_eq(p.n_roles, 6);
        const struct aidp_role *clinical = &p.roles[1];
        cr_assert_str_eq(clinical->name, "clinical");
        cr_assert_eq(clinical->ops, (1u << AIDP_OP_RUN) | (1u << AIDP_OP_UNSEAL));
        cr_assert_eq(clinical->max_classification, AIDP_CLASS_REGULATED);
        cr_assert_eq(clinical->n_require, 1);
        cr_assert_str_eq(clinical->require[0].name, "clearance");
        cr_assert_eq(clinical->require[0].n_values, 2);
        cr_assert_eq(clinical->loc.line, 9);
        const struct aidp_role *night = &p.roles[2];
        cr_assert_eq(night->n_windows, 1);
        cr_assert_eq(night->windows[0].days, 1u << 5, "friday only");
        cr_assert_eq(night->windows[0].start, 22 * 60);
        cr_assert_eq(night->windows[0].end, 6 * 60);
        cr_assert_str_eq(night->windows[0].zone, "Europe/Berlin");
        const struct aidp_role *auditor = &p.roles[5];
        cr_assert_eq(auditor->n_profiles, 0, "no profiles listed grants none");
        cr_assert_eq(auditor->max_classification, AIDP_CLASS_REGULATED);
        cr_assert_eq(p.n_users, 8);
        cr_assert_str_eq(p.users[1].name, "bob");
        cr_assert_eq(p.users[1].n_attrs, 1);
        cr_assert_str_eq(p.users[1].attrs[0].value, "phi");
        cr_assert_eq(p.n_groups, 2);
        cr_assert_eq(p.n_deny, 4);
        cr_assert_str_eq(p.deny[1].name, "contractors-no-restricted");
        cr_assert(p.deny[1].has_min_classification);
        cr_assert_eq(p.deny[1].min_classification, AIDP_CLASS_RESTRICTED);
        cr_assert_eq(p.deny[3].windows[0].days, 1u << 0, "sunday");
        cr_assert_str_eq(p.deny[3].windows[0].zone, "UTC", "UTC by default");
        cr_assert_eq(p.deny[3].ops, 0, "every operation");

        const char **zones;
        size_t n;
        cr_assert_eq(aidp_residency_access_time_zones(&p, &zones, &n), 0);
        cr_assert_eq(n, 2, "Berlin and New York; UTC needs no lookup");
        cr_assert_str_eq(zones[0], "Europe/Berlin");
        cr_assert_str_eq(zones[1], "America/New_York");
        free(zones);
        aidp_residency_access_free(&p);
}

Test(parse, dataset_facts_sorted_and_kind_checked)
{
        static const char y[] = "apiVersion: aidp/v1\nkind: DatasetFacts\nname: x\n"
                                "classification: confidential\nresidency: [us, eu]\n"
                                "regulations: [phi, gdpr]\n";
        struct aidp_dataset_facts f;
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_parse_dataset(y, strlen(y), "f.yaml", &f, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(f.tags.classification, AIDP_CLASS_CONFIDENTIAL);
        cr_assert_str_eq(f.tags.residency[0], "eu");
        cr_assert_str_eq(f.tags.residency[1], "us");
        cr_assert_str_eq(f.tags.regulations[0], "gdpr");
        cr_assert_null(f.version);
        aidp_residency_facts_free(&f);

        struct aidp_host_identity h;
        cr_assert_lt(aidp_residency_parse_host(y, strlen(y), "f.yaml", &h, &err), 0);
        cr_assert_str_eq(err.msg, "f.yaml: kind is DatasetFacts, expected HostIdentity");
        cr_assert_eq(err.status, AIDP_EXIT_CONFIG);
}

Test(parse, shipped_examples_parse)
{
        static const char *const files[] = {
                "tests/data/policy/host-eu.yaml",         "tests/data/policy/host-us.yaml",
                "tests/data/policy/host-us-nohipaa.yaml", "tests/data/policy/residency.yaml",
                "tests/data/policy/access.yaml",          "tests/data/policy/ds-imagenet-eu.yaml",
                "tests/data/policy/ds-phi-notes.yaml",
        };
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
                size_t len;
                char *buf = slurp(files[i], &len);
                struct aidp_residency_doc doc;
                aidp_error err = {0};
                cr_assert_eq(aidp_residency_parse(buf, len, files[i], &doc, &err), 0, "%s",
                             err.msg);
                aidp_residency_doc_free(&doc);
                free(buf);
        }
}

/* --- errors: position, path, message --- */

struct ecase {
        const char *name;
        const char *yaml;
        unsigned line, col;
        const char *msg; /* expected text after "t.yaml:L:C: " (a prefix of it) */
};

#define H    "apiVersion: aidp/v1\nkind: HostIdentity\n"
#define R    "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
#define A    "apiVersion: aidp/v1\nkind: AccessPolicy\n"
#define ROLE "roles:\n  r:\n    operations: [run]\n"

static const struct ecase errors[] = {
        {"unknown top-level key", H "region: eu-west-1\nzone: [x]\n", 4, 1,
         "zone: unknown key 'zone', expected one of: apiVersion, kind, metadata, node, region, "
         "jurisdiction, zones"},
        {"unknown key in a role", A ROLE "    profile: [x]\n", 6, 5,
         "roles.r.profile: unknown key 'profile', expected one of: operations, profiles, datasets, "
         "max_classification, time_windows, require_attributes"},
        {"missing required key", H "zones: [gdpr]\n", 1, 1, "missing key 'region'"},
        {"unsupported apiVersion", "apiVersion: aidp/v2\nkind: HostIdentity\nregion: x\n", 1, 13,
         "apiVersion: unsupported apiVersion 'aidp/v2' (expected aidp/v1)"},
        {"unknown kind", "apiVersion: aidp/v1\nkind: Policy\n", 2, 7,
         "kind: unknown kind 'Policy'"},
        {"missing kind", "apiVersion: aidp/v1\nregion: x\n", 1, 1, "missing key 'kind'"},
        {"YAML syntax error", H "zones: [a, b\nregion: x\n", 4, 7,
         "YAML syntax: did not find expected ',' or ']' (while parsing a flow sequence started at "
         "line 3 "
         "column 8)"},
        {"duplicate key", H "region: a\nregion: b\n", 4, 1,
         "region: found the key 'region' twice, expected it once"},
        {"anchor", R "residency:\n  eu: &r {regions: [\"eu-*\"]}\n  us: *r\n", 4, 7,
         "YAML anchors (&r) are not supported: a policy is reviewed as written"},
        {"alias", R "residency:\n  eu: {regions: [\"eu-*\"]}\n  us: *r\n", 5, 7,
         "YAML aliases (*name) are not supported"},
        {"unknown classification", A ROLE "    max_classification: secret\n", 6, 25,
         "roles.r.max_classification: unknown classification 'secret'"},
        {"hours out of range", A ROLE "    time_windows:\n      - hours: \"25:00-06:00\"\n", 7, 16,
         "roles.r.time_windows[0].hours: invalid hours '25:00-06:00'"},
        {"empty window", A ROLE "    time_windows:\n      - hours: \"08:00-08:00\"\n", 7, 16,
         "roles.r.time_windows[0].hours: empty window '08:00-08:00'"},
        {"hours without leading zero",
         A ROLE "    time_windows:\n      - {hours: \"8:00-18:00\"}\n", 7, 17,
         "roles.r.time_windows[0].hours: invalid hours '8:00-18:00'"},
        {"unknown day", A ROLE "    time_windows:\n      - days: [mon, funday]\n", 7, 21,
         "roles.r.time_windows[0].days[1]: unknown day 'funday'"},
        {"time zone escaping the tz directory",
         A ROLE "    time_windows:\n      - time_zone: ../../etc/shadow\n", 7, 20,
         "roles.r.time_windows[0].time_zone: invalid time zone '../../etc/shadow'"},
        {"empty list of windows", A ROLE "    time_windows: []\n", 6, 19,
         "roles.r.time_windows: empty list of windows"},
        {"undefined role", A ROLE "users:\n  alice: {roles: [r, ghost]}\n", 7, 22,
         "users.alice.roles[1]: unknown role 'ghost'"},
        {"unknown operation", A "roles:\n  r:\n    operations: [run, execute]\n", 5, 23,
         "roles.r.operations[1]: unknown operation 'execute'"},
        {"role without operations", A "roles:\n  r:\n    datasets: [x]\n", 5, 5,
         "roles.r: missing key 'operations'"},
        {"uppercase residency tag (sealed tags are lowercase)",
         R "residency:\n  EU: {regions: [x]}\n", 4, 3, "residency.EU: invalid residency tag 'EU'"},
        {"region pattern with inner star", R "residency:\n  eu: {regions: [\"eu-*-1\"]}\n", 4, 18,
         "residency.eu.regions[0]: found 'eu-*-1', expected a valid region pattern"},
        {"deny rule without subject", A "deny:\n  - name: x\n    operations: [run]\n", 4, 5,
         "deny[0]: a deny rule needs users or groups"},
        {"duplicate deny name", A "deny:\n  - {name: x, users: [a]}\n  - {name: x, users: [b]}\n",
         5, 5, "deny[1]: duplicate deny rule name 'x' (first at line 4)"},
        {"list expected", H "region: x\nzones: {a: b}\n", 4, 8,
         "zones: found a mapping, expected a list"},
        {"mapping expected", "- a\n- b\n", 1, 1,
         "found a list, expected a mapping with apiVersion and kind"},
        {"two documents", H "region: x\n---\nregion: y\n", 4, 1,
         "found a second YAML document, expected one policy per file"},
        {"empty document", "", 1, 1, "found an empty file, expected a policy"},
        {"NUL in a string", H "region: \"eu\\0x\"\n", 3, 9,
         "region: found a NUL byte in the string, expected text"},
        {"classification rule with no requirement", R "classifications:\n  restricted: {}\n", 4, 15,
         "classifications.restricted: a classification rule needs zones or profile"},
        {"unknown network mode", R "classifications:\n  restricted: {profile: {network: open}}\n",
         4, 35, "classifications.restricted.profile.network: unknown network mode 'open'"},
        {"unknown classification level as key", R "classifications:\n  secret: {zones: [x]}\n", 4,
         3, "classifications.secret: unknown classification 'secret'"},
        {"attribute requirement without values", A ROLE "    require_attributes: {clearance: []}\n",
         6, 37, "roles.r.require_attributes.clearance: list the accepted values"},
        {"invalid zone name", H "region: x\nzones: [\"has space\"]\n", 4, 9,
         "zones[0]: found 'has space', expected a valid zone"},
        {"duplicate zone", H "region: x\nzones: [a, a]\n", 4, 12,
         "zones[1]: found the zone 'a' twice, expected it once"},
        {"egress option", R "egress: {untagged: maybe}\n", 3, 20,
         "egress.untagged: expected drop or keep, got 'maybe'"},
        {"region with a pattern on a host", H "region: \"eu-*\"\n", 3, 9,
         "region: invalid region 'eu-*'"},
        {"wildcard user name", A ROLE "users:\n  \"*\": {roles: [r]}\n", 7, 3,
         "users.*: invalid user name '*'"},
        {"scalar where a mapping is expected", A "roles:\n  r: admin\n", 4, 6,
         "roles.r: found 'admin', expected a mapping"},
        {"missing value", H "region:\n", 3, 8, "region: found nothing, expected a string"},
        {"null node name", H "region: x\nnode: ~\n", 4, 7,
         "node: found nothing, expected a string"},
};

#define N_ERRORS (sizeof errors / sizeof errors[0])

ParameterizedTestParameters(parse, errors)
{
        static size_t idx[N_ERRORS];
        for (size_t i = 0; i < N_ERRORS; i++)
                idx[i] = i;
        return cr_make_param_array(size_t, idx, N_ERRORS);
}

ParameterizedTest(size_t *row, parse, errors)
{
        const struct ecase *c = &errors[*row];
        struct aidp_residency_doc doc;
        aidp_error err = {0};
        /* Length without the terminating NUL, like a file read. Strings with an
         * embedded "\\0" escape are YAML escapes, not C NULs. */
        int r = aidp_residency_parse(c->yaml, strlen(c->yaml), "t.yaml", &doc, &err);
        cr_assert_lt(r, 0, "%s: parsed", c->name);
        cr_assert_eq(err.status, AIDP_EXIT_CONFIG, "%s: status %d", c->name, err.status);
        char want[512];
        snprintf(want, sizeof want, "t.yaml:%u:%u: %s", c->line, c->col, c->msg);
        cr_assert(!strncmp(err.msg, want, strlen(want)), "%s:\n  got  %s\n  want %s...", c->name,
                  err.msg, want);
        cr_assert_eq(err.line, c->line, "%s", c->name);
        cr_assert_eq(err.column, c->col, "%s", c->name);
}
