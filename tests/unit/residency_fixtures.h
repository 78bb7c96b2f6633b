#pragma once
/* Policies, hosts and datasets shared by the residency unit tests. Included
 * by test files only (not a test itself: no Test() here). */
#include <criterion/criterion.h>
#include <string.h>

#include "residency/decide.h"
#include "residency/policy.h"
#include "common/strv.h"

static const char access_yaml[] = "apiVersion: aidp/v1\n"
                                  "kind: AccessPolicy\n"
                                  "roles:\n"
                                  "  trainer:\n"
                                  "    operations: [run, inspect]\n"
                                  "    profiles: [\"gpu-*\"]\n"
                                  "    datasets: [\"imagenet*\", \"eu-*\", \"us-*\", \"de-*\", "
                                  "\"ab*\", \"bc*\", \"ca*\", \"mars*\", \"pci*\", \"public-*\"]\n"
                                  "    max_classification: confidential\n"
                                  "  clinical:\n"
                                  "    operations: [run, unseal]\n"
                                  "    profiles: [gpu-train]\n"
                                  "    datasets: [\"phi-*\"]\n"
                                  "    max_classification: regulated\n"
                                  "    require_attributes:\n"
                                  "      clearance: [phi, phi-admin]\n"
                                  "  night:\n"
                                  "    operations: [run]\n"
                                  "    profiles: [batch]\n"
                                  "    datasets: [\"*\"]\n"
                                  "    max_classification: internal\n"
                                  "    time_windows:\n"
                                  "      - days: [fri]\n"
                                  "        hours: \"22:00-06:00\"\n"
                                  "        time_zone: Europe/Berlin\n"
                                  "  daytime-ny:\n"
                                  "    operations: [run]\n"
                                  "    profiles: [\"ny-*\"]\n"
                                  "    datasets: [\"*\"]\n"
                                  "    max_classification: internal\n"
                                  "    time_windows:\n"
                                  "      - days: [mon, tue, wed, thu, fri]\n"
                                  "        hours: \"09:00-17:00\"\n"
                                  "        time_zone: America/New_York\n"
                                  "  versioned:\n"
                                  "    operations: [run]\n"
                                  "    profiles: [\"*\"]\n"
                                  "    datasets: [\"pinned@3\"]\n"
                                  "    max_classification: internal\n"
                                  "  auditor:\n"
                                  "    operations: [inspect, lineage-read]\n"
                                  "    datasets: [\"*\"]\n"
                                  "    max_classification: regulated\n"
                                  "users:\n"
                                  "  alice: {roles: [trainer]}\n"
                                  "  bob: {roles: [clinical], attributes: {clearance: phi}}\n"
                                  "  carol: {roles: [clinical]}\n"
                                  "  dave: {roles: [clinical], attributes: {clearance: none}}\n"
                                  "  mallory: {roles: [trainer]}\n"
                                  "  erin: {roles: [night]}\n"
                                  "  frank: {roles: [daytime-ny]}\n"
                                  "  pat: {roles: [versioned]}\n"
                                  "groups:\n"
                                  "  ml-team: {roles: [trainer]}\n"
                                  "  audit: {roles: [auditor]}\n"
                                  "deny:\n"
                                  "  - name: mallory-suspended\n"
                                  "    users: [mallory]\n"
                                  "  - name: contractors-no-restricted\n"
                                  "    groups: [contractors]\n"
                                  "    operations: [run]\n"
                                  "    min_classification: restricted\n"
                                  "  - name: freeze\n"
                                  "    users: [\"*\"]\n"
                                  "    operations: [run]\n"
                                  "    profiles: [\"gpu-*\"]\n"
                                  "    datasets: [\"frozen-*\"]\n"
                                  "  - name: maintenance\n"
                                  "    groups: [ml-team]\n"
                                  "    time_windows:\n"
                                  "      - days: [sun]\n"
                                  "        hours: \"02:00-04:00\"\n";

static const char residency_yaml[] = "apiVersion: aidp/v1\n"
                                     "kind: ResidencyPolicy\n"
                                     "residency:\n"
                                     "  eu:\n"
                                     "    regions: [\"eu-*\"]\n"
                                     "    jurisdictions: [EU]\n"
                                     "  us:\n"
                                     "    regions: [\"us-*\"]\n"
                                     "  de:\n"
                                     "    regions: [eu-central-1]\n"
                                     "  ab: {regions: [\"a-*\", \"b-*\"]}\n"
                                     "  bc: {regions: [\"b-*\", \"c-*\"]}\n"
                                     "  ca: {regions: [\"c-*\", \"a-*\"]}\n"
                                     "regulations:\n"
                                     "  phi:\n"
                                     "    zones: [hipaa]\n"
                                     "  gdpr:\n"
                                     "    zones: [gdpr]\n"
                                     "classifications:\n"
                                     "  restricted:\n"
                                     "    profile:\n"
                                     "      network: none\n"
                                     "  regulated:\n"
                                     "    zones: [soc2]\n"
                                     "jurisdictions:\n"
                                     "  EU: [\"eu-*\"]\n"
                                     "  US: [\"us-*\"]\n";

struct host_fixture {
        const char *key;
        const char *yaml;
};

static const struct host_fixture hosts[] = {
        {"eu", "apiVersion: aidp/v1\nkind: HostIdentity\nnode: gpu-eu-07\nregion: eu-west-1\n"
               "jurisdiction: EU\nzones: [gdpr]\n"},
        {"eu-central", "apiVersion: aidp/v1\nkind: HostIdentity\nregion: eu-central-1\n"
                       "jurisdiction: EU\nzones: [gdpr]\n"},
        {"eu-us-law", "apiVersion: aidp/v1\nkind: HostIdentity\nregion: eu-west-1\n"
                      "jurisdiction: US\nzones: [gdpr]\n"},
        {"us", "apiVersion: aidp/v1\nkind: HostIdentity\nnode: gpu-us-03\nregion: us-east-1\n"
               "jurisdiction: US\nzones: [hipaa, soc2]\n"},
        {"us-nohipaa",
         "apiVersion: aidp/v1\nkind: HostIdentity\nregion: us-east-1\nzones: [soc2]\n"},
        {"us-hipaa-only",
         "apiVersion: aidp/v1\nkind: HostIdentity\nregion: us-east-1\nzones: [hipaa]\n"},
        {"a", "apiVersion: aidp/v1\nkind: HostIdentity\nregion: a-1\n"},
};

struct fact_fixture {
        const char *name, *version;
        enum aidp_classification cls;
        const char *res[3], *reg[3];
};

static const struct fact_fixture facts[] = {
        {"imagenet-eu", "2024.1", AIDP_CLASS_INTERNAL, {"eu"}, {"gdpr"}},
        {"imagenet-restricted", NULL, AIDP_CLASS_RESTRICTED, {0}, {0}},
        {"eu-data", NULL, AIDP_CLASS_INTERNAL, {"eu"}, {0}},
        {"us-data", NULL, AIDP_CLASS_INTERNAL, {"us"}, {0}},
        {"de-data", NULL, AIDP_CLASS_INTERNAL, {"de"}, {0}},
        {"phi-notes", "7", AIDP_CLASS_RESTRICTED, {"us"}, {"phi"}},
        {"phi-registry", NULL, AIDP_CLASS_REGULATED, {"us"}, {"phi"}},
        {"frozen-set", NULL, AIDP_CLASS_PUBLIC, {0}, {0}},
        {"pinned", "3", AIDP_CLASS_PUBLIC, {0}, {0}},
        {"pinned-v4", "4", AIDP_CLASS_PUBLIC, {0}, {0}},
        {"ab-data", NULL, AIDP_CLASS_PUBLIC, {"ab"}, {0}},
        {"bc-data", NULL, AIDP_CLASS_PUBLIC, {"bc"}, {0}},
        {"ca-data", NULL, AIDP_CLASS_PUBLIC, {"ca"}, {0}},
        {"mars-data", NULL, AIDP_CLASS_PUBLIC, {"mars"}, {0}},
        {"pci-data", NULL, AIDP_CLASS_PUBLIC, {0}, {"pci"}},
        {"public-set", NULL, AIDP_CLASS_PUBLIC, {0}, {0}},
};

static inline void fx_host(const char *key, struct aidp_host_identity *ret)
{
        for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
                if (!strcmp(hosts[i].key, key)) {
                        aidp_error err = {0};
                        int r = aidp_residency_parse_host(hosts[i].yaml, strlen(hosts[i].yaml), key,
                                                          ret, &err);
                        cr_assert_eq(r, 0, "host %s: %s", key, err.msg);
                        return;
                }
        cr_assert_fail("no host fixture %s", key);
}

/* Facts by name; "pinned-v4" is dataset "pinned" at version 4. */
static inline void fx_facts(const char *name, struct aidp_dataset_facts *ret)
{
        for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
                const struct fact_fixture *f = &facts[i];
                if (strcmp(f->name, name))
                        continue;
                memset(ret, 0, sizeof *ret);
                ret->name = strdup(!strcmp(name, "pinned-v4") ? "pinned" : f->name);
                ret->version = f->version ? strdup(f->version) : NULL;
                ret->tags.classification = f->cls;
                ret->tags.residency = calloc(1, sizeof(char *));
                ret->tags.regulations = calloc(1, sizeof(char *));
                for (int k = 0; k < 3 && f->res[k]; k++)
                        aidp_strv_push(&ret->tags.residency, &ret->tags.n_residency, f->res[k]);
                for (int k = 0; k < 3 && f->reg[k]; k++)
                        aidp_strv_push(&ret->tags.regulations, &ret->tags.n_regulations, f->reg[k]);
                return;
        }
        cr_assert_fail("no dataset fixture %s", name);
}

static inline void fx_access(const char *yaml, struct aidp_access_policy *ret)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_parse_access(yaml, strlen(yaml), "access.yaml", ret, &err), 0,
                     "%s", err.msg);
}

static inline void fx_residency(const char *yaml, struct aidp_residency_policy *ret)
{
        aidp_error err = {0};
        cr_assert_eq(
                aidp_residency_parse_residency(yaml, strlen(yaml), "residency.yaml", ret, &err), 0,
                "%s", err.msg);
}
