/* kind: ResidencyPolicy: residency tags -> regions, regulation tags -> zones,
 * classification levels -> host zones and profile properties, and what
 * happens to egress rules outside the allowed regions. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "residency/parse_internal.h"
#include "common/strv.h"

bool aidp_residency_region_pattern_valid(const char *p)
{
        size_t n = strlen(p);
        if (n == 0 || n > AIDP_NAME_MAX + 1)
                return false;
        if (p[n - 1] == '*')
                n--;
        for (size_t i = 0; i < n; i++) {
                char c = p[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                if (!ok)
                        return false;
        }
        return true;
}

bool aidp_residency_region_match(const char *pattern, const char *region)
{
        size_t n = strlen(pattern);
        if (n > 0 && pattern[n - 1] == '*')
                return !strncmp(pattern, region, n - 1);
        return !strcmp(pattern, region);
}

static struct aidp_rule_loc loc_of(struct aidp_yaml *w, const yaml_node_t *n)
{
        return (struct aidp_rule_loc){.file = NULL, .line = aidp_yaml_line(n)};
}

/* --- residency: TAG: {regions, jurisdictions} --- */

static int rf_regions(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_residency_rule *rule = ctx;
        int r = aidp_yaml_strlist(w, v, path, aidp_residency_region_pattern_valid,
                                  "region pattern (a region name or a prefix ending in '*')",
                                  &rule->regions, &rule->n_regions);
        if (r >= 0 && rule->n_regions == 0)
                return aidp_yaml_fail(w, v, path, "at least one region pattern is required");
        return r;
}

static int rf_jurisdictions(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_residency_rule *rule = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_name, "jurisdiction",
                                 &rule->jurisdictions, &rule->n_jurisdictions);
}

static void residency_rule_free(struct aidp_residency_rule *r)
{
        free(r->tag);
        aidp_strv_free(r->regions);
        aidp_strv_free(r->jurisdictions);
}

static int residency_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                           yaml_node_t *value, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"regions", rf_regions, true},
                {"jurisdictions", rf_jurisdictions, false},
        };
        struct aidp_residency_policy *p = ctx;
        if (!aidp_residency_tag_valid(key))
                return aidp_yaml_fail(w, keynode, path,
                                      "invalid residency tag '%s' (lowercase letters, "
                                      "digits, '.', '_', '-')",
                                      key);
        struct aidp_residency_rule rule = {.loc = loc_of(w, keynode)};
        int r = aidp_yaml_fields(w, value, path, fields, ARRAY_SIZE(fields), &rule);
        if (r >= 0 && !(rule.tag = strdup(key)))
                r = aidp_residency_oom(w);
        if (r >= 0 && !rule.jurisdictions && !(rule.jurisdictions = calloc(1, sizeof(char *))))
                r = aidp_residency_oom(w);
        struct aidp_residency_rule *nv = NULL;
        if (r >= 0 && !(nv = realloc(p->residency, (p->n_residency + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                residency_rule_free(&rule);
                return r;
        }
        nv[p->n_residency++] = rule;
        p->residency = nv;
        return 0;
}

static int pf_residency(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, residency_entry, ctx);
}

/* --- regulations: TAG: {zones} --- */

static int gf_zones(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_regulation_rule *rule = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_name, "zone", &rule->zones,
                                 &rule->n_zones);
}

static int regulation_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                            yaml_node_t *value, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"zones", gf_zones, true},
        };
        struct aidp_residency_policy *p = ctx;
        if (!aidp_residency_tag_valid(key))
                return aidp_yaml_fail(w, keynode, path,
                                      "invalid regulation tag '%s' (lowercase letters, "
                                      "digits, '.', '_', '-')",
                                      key);
        struct aidp_regulation_rule rule = {.loc = loc_of(w, keynode)};
        int r = aidp_yaml_fields(w, value, path, fields, ARRAY_SIZE(fields), &rule);
        if (r >= 0 && !(rule.tag = strdup(key)))
                r = aidp_residency_oom(w);
        struct aidp_regulation_rule *nv = NULL;
        if (r >= 0 && !(nv = realloc(p->regulations, (p->n_regulations + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                free(rule.tag);
                aidp_strv_free(rule.zones);
                return r;
        }
        nv[p->n_regulations++] = rule;
        p->regulations = nv;
        return 0;
}

static int pf_regulations(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, regulation_entry, ctx);
}

/* --- classifications: LEVEL: {zones, profile: {network, writableBinds}} --- */

static int cf_zones(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_classification_rule *rule = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_name, "zone", &rule->zones,
                                 &rule->n_zones);
}

static int cpf_network(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_classification_rule *rule = ctx;
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        if (!strcmp(s, "none"))
                rule->network = AIDP_RESIDENCY_NET_NONE;
        else if (!strcmp(s, "egress"))
                rule->network = AIDP_RESIDENCY_NET_EGRESS;
        else
                return aidp_yaml_fail(w, v, path,
                                      "unknown network mode '%s' (expected none or egress)", s);
        rule->require_network = true;
        return 0;
}

static int cpf_writable_binds(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_classification_rule *rule = ctx;
        bool allowed = true;
        int r = aidp_yaml_bool(w, v, path, &allowed, w->err);
        if (r < 0)
                return r;
        rule->forbid_writable_binds = !allowed;
        return 0;
}

static int cf_profile(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"network", cpf_network, false},
                {"writableBinds", cpf_writable_binds, false},
        };
        return aidp_yaml_fields(w, v, path, fields, ARRAY_SIZE(fields), ctx);
}

static int classification_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                                yaml_node_t *value, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"zones", cf_zones, false},
                {"profile", cf_profile, false},
        };
        struct aidp_residency_policy *p = ctx;
        struct aidp_classification_rule rule = {.loc = loc_of(w, keynode)};
        if (aidp_residency_classification_parse(key, &rule.level) < 0)
                return aidp_yaml_fail(w, keynode, path,
                                      "unknown classification '%s' (expected public, "
                                      "internal, confidential, restricted, regulated)",
                                      key);
        int r = aidp_yaml_fields(w, value, path, fields, ARRAY_SIZE(fields), &rule);
        if (r >= 0 && rule.n_zones == 0 && !rule.require_network && !rule.forbid_writable_binds)
                r = aidp_yaml_fail(w, value, path, "a classification rule needs zones or profile");
        if (r >= 0 && !rule.zones && !(rule.zones = calloc(1, sizeof(char *))))
                r = aidp_residency_oom(w);
        struct aidp_classification_rule *nv = NULL;
        if (r >= 0 && !(nv = realloc(p->classifications, (p->n_classifications + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                aidp_strv_free(rule.zones);
                return r;
        }
        nv[p->n_classifications++] = rule;
        p->classifications = nv;
        return 0;
}

static int pf_classifications(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, classification_entry, ctx);
}

/* --- egress: {untagged, out_of_region} --- */

static int ef_untagged(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_residency_policy *p = ctx;
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        if (!strcmp(s, "drop"))
                p->egress_untagged = AIDP_EGRESS_UNTAGGED_DROP;
        else if (!strcmp(s, "keep"))
                p->egress_untagged = AIDP_EGRESS_UNTAGGED_KEEP;
        else
                return aidp_yaml_fail(w, v, path, "expected drop or keep, got '%s'", s);
        return 0;
}

static int ef_out_of_region(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_residency_policy *p = ctx;
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        if (!strcmp(s, "drop"))
                p->egress_out_of_region = AIDP_EGRESS_OOR_DROP;
        else if (!strcmp(s, "deny"))
                p->egress_out_of_region = AIDP_EGRESS_OOR_DENY;
        else
                return aidp_yaml_fail(w, v, path, "expected drop or deny, got '%s'", s);
        return 0;
}

static int pf_egress(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"untagged", ef_untagged, false},
                {"out_of_region", ef_out_of_region, false},
        };
        struct aidp_residency_policy *p = ctx;
        p->egress_loc = loc_of(w, v);
        return aidp_yaml_fields(w, v, path, fields, ARRAY_SIZE(fields), ctx);
}

/* --- require_residency_from: LEVEL | none --- */

static int pf_require(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_residency_policy *p = ctx;
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        p->require_loc = loc_of(w, v);
        if (!strcmp(s, "none")) {
                p->require_residency_from = AIDP_CLASS_MAX;
                return 0;
        }
        return aidp_residency_parse_classification(w, v, path, &p->require_residency_from);
}

/* --- jurisdictions: NAME: [region patterns] (egress destinations) --- */

static int jurisdiction_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                              yaml_node_t *value, const char *path, void *ctx)
{
        struct aidp_residency_policy *p = ctx;
        if (!aidp_residency_name_valid(key))
                return aidp_yaml_fail(w, keynode, path, "invalid jurisdiction '%s'", key);
        struct aidp_jurisdiction_rule j = {.loc = loc_of(w, keynode)};
        int r = aidp_yaml_strlist(w, value, path, aidp_residency_region_pattern_valid,
                                  "region pattern (a region name or a prefix ending in '*')",
                                  &j.regions, &j.n_regions);
        if (r >= 0 && j.n_regions == 0)
                r = aidp_yaml_fail(w, value, path, "at least one region pattern is required");
        if (r >= 0 && !(j.name = strdup(key)))
                r = aidp_residency_oom(w);
        struct aidp_jurisdiction_rule *nv = NULL;
        if (r >= 0 && !(nv = realloc(p->jurisdictions, (p->n_jurisdictions + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                free(j.name);
                aidp_strv_free(j.regions);
                return r;
        }
        nv[p->n_jurisdictions++] = j;
        p->jurisdictions = nv;
        return 0;
}

static int pf_jurisdictions(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, jurisdiction_entry, ctx);
}

/* --- output_keys: {regulations: {TAG: KEY}, classifications: {LEVEL: KEY}} --- */

static int output_key_add(struct aidp_yaml *w, struct aidp_residency_policy *p,
                          struct aidp_output_key_rule *k, yaml_node_t *value, const char *path)
{
        int r = aidp_yaml_strdup(w, value, path, &k->key_id);
        if (r >= 0 && !aidp_residency_name_valid(k->key_id))
                r = aidp_yaml_fail(w, value, path, "invalid key id '%s'", k->key_id);
        struct aidp_output_key_rule *nv = NULL;
        if (r >= 0 && !(nv = realloc(p->output_keys, (p->n_output_keys + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                free(k->regulation);
                free(k->key_id);
                return r;
        }
        nv[p->n_output_keys++] = *k;
        p->output_keys = nv;
        return 0;
}

static int okey_regulation(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                           yaml_node_t *value, const char *path, void *ctx)
{
        if (!aidp_residency_tag_valid(key))
                return aidp_yaml_fail(w, keynode, path, "invalid regulation tag '%s'", key);
        struct aidp_output_key_rule k = {.loc = loc_of(w, keynode), .regulation = strdup(key)};
        if (!k.regulation)
                return aidp_residency_oom(w);
        return output_key_add(w, ctx, &k, value, path);
}

static int okey_class(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                      yaml_node_t *value, const char *path, void *ctx)
{
        struct aidp_output_key_rule k = {.loc = loc_of(w, keynode)};
        if (aidp_residency_classification_parse(key, &k.level) < 0)
                return aidp_yaml_fail(w, keynode, path, "unknown classification '%s'", key);
        return output_key_add(w, ctx, &k, value, path);
}

static int okf_regulations(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, okey_regulation, ctx);
}

static int okf_classifications(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, okey_class, ctx);
}

static int pf_output_keys(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"regulations", okf_regulations, false},
                {"classifications", okf_classifications, false},
        };
        return aidp_yaml_fields(w, v, path, fields, ARRAY_SIZE(fields), ctx);
}

static int pf_metadata(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_residency_parse_metadata(w, v, path,
                                             &((struct aidp_residency_policy *)ctx)->name);
}

int aidp_residency_parse_residency_doc(struct aidp_yaml *w, yaml_node_t *root,
                                       struct aidp_residency_policy *ret)
{
        static const struct aidp_yaml_field fields[] = {
                {"apiVersion", aidp_residency_pf_api_version, true},
                {"kind", aidp_residency_pf_kind, true},
                {"metadata", pf_metadata, false},
                {"residency", pf_residency, false},
                {"regulations", pf_regulations, false},
                {"classifications", pf_classifications, false},
                {"egress", pf_egress, false},
                {"require_residency_from", pf_require, false},
                {"jurisdictions", pf_jurisdictions, false},
                {"output_keys", pf_output_keys, false},
        };
        struct aidp_residency_policy p = {.require_residency_from = AIDP_RESIDENCY_REQUIRE_DEFAULT};
        int r = aidp_yaml_fields(w, root, "", fields, ARRAY_SIZE(fields), &p);
        if (r >= 0 && !(p.source = strdup(w->file)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                aidp_residency_policy_free(&p);
                return r;
        }
        /* Rule locations point at the policy's own copy of its file name. */
        for (size_t i = 0; i < p.n_residency; i++)
                p.residency[i].loc.file = p.source;
        for (size_t i = 0; i < p.n_regulations; i++)
                p.regulations[i].loc.file = p.source;
        for (size_t i = 0; i < p.n_classifications; i++)
                p.classifications[i].loc.file = p.source;
        p.egress_loc.file = p.source;
        p.require_loc.file = p.source;
        for (size_t i = 0; i < p.n_jurisdictions; i++)
                p.jurisdictions[i].loc.file = p.source;
        for (size_t i = 0; i < p.n_output_keys; i++)
                p.output_keys[i].loc.file = p.source;
        *ret = p;
        return 0;
}

void aidp_residency_policy_free(struct aidp_residency_policy *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_residency; i++)
                residency_rule_free(&p->residency[i]);
        free(p->residency);
        for (size_t i = 0; i < p->n_regulations; i++) {
                free(p->regulations[i].tag);
                aidp_strv_free(p->regulations[i].zones);
        }
        free(p->regulations);
        for (size_t i = 0; i < p->n_classifications; i++)
                aidp_strv_free(p->classifications[i].zones);
        free(p->classifications);
        for (size_t i = 0; i < p->n_jurisdictions; i++) {
                free(p->jurisdictions[i].name);
                aidp_strv_free(p->jurisdictions[i].regions);
        }
        free(p->jurisdictions);
        for (size_t i = 0; i < p->n_output_keys; i++) {
                free(p->output_keys[i].regulation);
                free(p->output_keys[i].key_id);
        }
        free(p->output_keys);
        free(p->source);
        free(p->name);
        memset(p, 0, sizeof *p);
}
