/* kind: AccessPolicy: roles (what may be done), users and groups (who holds
 * which roles, with which attributes), and explicit deny rules. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "common/suggest.h"
#include "residency/parse_internal.h"

static struct aidp_rule_loc loc_of(const yaml_node_t *n)
{
        return (struct aidp_rule_loc){.file = NULL, .line = aidp_yaml_line(n)};
}

static void attr_req_free(struct aidp_attr_req *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].name);
                aidp_strv_free(v[i].values);
        }
        free(v);
}

static void tag_match_free(struct aidp_tag_match *t)
{
        aidp_strv_free(t->residency);
        aidp_strv_free(t->regulations);
        aidp_strv_free(t->key_ids);
}

/* residency:, regulations: (tags) and key_ids: (patterns) of a role or a deny
 * rule; ctx is the role or rule, whose first member is its struct aidp_tag_match. */
static int tm_residency(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_tag_match *t = ctx;
        t->has_residency = true;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_tag, "residency tag", &t->residency,
                                 &t->n_residency);
}

static int tm_regulations(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_tag_match *t = ctx;
        t->has_regulations = true;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_tag, "regulation tag",
                                 &t->regulations, &t->n_regulations);
}

static int tm_key_ids(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_tag_match *t = ctx;
        t->has_key_ids = true;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_pattern, "key id pattern",
                                 &t->key_ids, &t->n_key_ids);
}

static int ensure_tag_lists(struct aidp_yaml *w, struct aidp_tag_match *t);

static void role_free(struct aidp_role *r)
{
        free(r->name);
        aidp_strv_free(r->profiles);
        aidp_strv_free(r->datasets);
        aidp_residency_windows_free(r->windows, r->n_windows);
        attr_req_free(r->require, r->n_require);
        tag_match_free(&r->tags);
}

static void subject_free(struct aidp_subject *s)
{
        free(s->name);
        aidp_strv_free(s->roles);
        for (size_t i = 0; i < s->n_attrs; i++) {
                free(s->attrs[i].name);
                free(s->attrs[i].value);
        }
        free(s->attrs);
}

static void deny_free(struct aidp_deny_rule *d)
{
        free(d->name);
        aidp_strv_free(d->users);
        aidp_strv_free(d->groups);
        aidp_strv_free(d->profiles);
        aidp_strv_free(d->datasets);
        aidp_residency_windows_free(d->windows, d->n_windows);
        tag_match_free(&d->tags);
}

/* Lists are never NULL after parsing, so callers can iterate without checks. */
static int ensure_list(struct aidp_yaml *w, char ***v)
{
        if (!*v && !(*v = calloc(1, sizeof **v)))
                return aidp_residency_oom(w);
        return 0;
}

static int ensure_tag_lists(struct aidp_yaml *w, struct aidp_tag_match *t)
{
        int r = ensure_list(w, &t->residency);
        if (r >= 0)
                r = ensure_list(w, &t->regulations);
        if (r >= 0)
                r = ensure_list(w, &t->key_ids);
        return r;
}

/* --- roles --- */

static int ro_operations(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_role *role = ctx;
        int r = aidp_residency_parse_ops(w, v, path, &role->ops);
        if (r >= 0 && role->ops == 0)
                return aidp_yaml_fail(w, v, path, "a role needs at least one operation");
        return r;
}

static int ro_profiles(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_role *role = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_pattern, "profile pattern",
                                 &role->profiles, &role->n_profiles);
}

static int ro_datasets(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_role *role = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_pattern, "dataset pattern",
                                 &role->datasets, &role->n_datasets);
}

static int ro_max_class(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_role *role = ctx;
        return aidp_residency_parse_classification(w, v, path, &role->max_classification);
}

static int ro_windows(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_role *role = ctx;
        int r = aidp_residency_parse_windows(w, v, path, &role->windows, &role->n_windows);
        if (r >= 0 && role->n_windows == 0 && !aidp_yaml_is_null(v))
                return aidp_yaml_fail(w, v, path,
                                      "empty list of windows (omit the key for any time)");
        return r;
}

static int require_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                         yaml_node_t *value, const char *path, void *ctx)
{
        struct aidp_role *role = ctx;
        if (!aidp_residency_name_valid(key))
                return aidp_yaml_fail(w, keynode, path, "invalid attribute name '%s'", key);
        struct aidp_attr_req req = {0};
        int r = aidp_yaml_strlist(w, value, path, aidp_residency_is_literal,
                                  "value (matched exactly: no '*', '?' or '[')", &req.values,
                                  &req.n_values);
        if (r >= 0 && req.n_values == 0)
                r = aidp_yaml_fail(w, value, path, "list the accepted values of attribute '%s'",
                                   key);
        if (r >= 0 && !(req.name = strdup(key)))
                r = aidp_residency_oom(w);
        struct aidp_attr_req *nv = NULL;
        if (r >= 0 && !(nv = realloc(role->require, (role->n_require + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                free(req.name);
                aidp_strv_free(req.values);
                return r;
        }
        nv[role->n_require++] = req;
        role->require = nv;
        return 0;
}

static int ro_require(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, require_entry, ctx);
}

/* The value is checked here; role_entry() looks the name up, since views
 * live in the policy and a field handler only sees the role. */
static int ro_view(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        (void)ctx;
        const char *s;
        return aidp_yaml_string(w, v, path, &s);
}

/* roles.X.view: NAME must be under views: (parsed before roles). */
static int resolve_view(struct aidp_yaml *w, const struct aidp_access_policy *p,
                        yaml_node_t *role_node, const char *path, struct aidp_role *role)
{
        yaml_node_t *v = aidp_yaml_get(w, role_node, "view", NULL);
        if (!v)
                return 0;
        const char *name = aidp_yaml_str(v);
        struct aidp_suggest sg;
        aidp_suggest_init(&sg, name);
        for (size_t i = 0; i < p->n_views; i++) {
                if (!strcmp(p->views[i].view.name, name)) {
                        role->view = &p->views[i];
                        return 0;
                }
                aidp_suggest_add(&sg, p->views[i].view.name);
        }
        char sub[AIDP_YAML_PATH_MAX], hint[AIDP_SUGGEST_MAX + 32];
        aidp_yaml_path_key(sub, path, "view");
        return aidp_yaml_fail(w, v, sub, "unknown view '%s' (not under views:)%s", name,
                              aidp_suggest_text(&sg, hint, sizeof hint));
}

static int role_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                      yaml_node_t *value, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"operations", ro_operations, true}, {"profiles", ro_profiles, false},
                {"datasets", ro_datasets, false},    {"max_classification", ro_max_class, false},
                {"time_windows", ro_windows, false}, {"require_attributes", ro_require, false},
                {"residency", tm_residency, false},  {"regulations", tm_regulations, false},
                {"key_ids", tm_key_ids, false},      {"view", ro_view, false},
        };
        struct aidp_access_policy *p = ctx;
        if (!aidp_residency_name_valid(key))
                return aidp_yaml_fail(w, keynode, path, "invalid role name '%s'", key);
        struct aidp_role role = {.max_classification = AIDP_CLASS_PUBLIC, .loc = loc_of(keynode)};
        int r = aidp_yaml_fields(w, value, path, fields, ARRAY_SIZE(fields), &role);
        if (r >= 0)
                r = resolve_view(w, p, value, path, &role);
        if (r >= 0 && !(role.name = strdup(key)))
                r = aidp_residency_oom(w);
        if (r >= 0)
                r = ensure_list(w, &role.profiles);
        if (r >= 0)
                r = ensure_list(w, &role.datasets);
        if (r >= 0)
                r = ensure_tag_lists(w, &role.tags);
        struct aidp_role *nv = NULL;
        if (r >= 0 && !(nv = realloc(p->roles, (p->n_roles + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                role_free(&role);
                return r;
        }
        nv[p->n_roles++] = role;
        p->roles = nv;
        return 0;
}

static int af_roles(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, role_entry, ctx);
}

/* --- views (issue 18; the view's own grammar is views/view_parse.c's) --- */

static int view_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                      yaml_node_t *value, const char *path, void *ctx)
{
        struct aidp_access_policy *p = ctx;
        if (!aidp_residency_name_valid(key))
                return aidp_yaml_fail(w, keynode, path, "invalid view name '%s'", key);
        struct aidp_policy_view pv = {.loc = loc_of(keynode)};
        int r = aidp_view_parse_node(w, value, path, key, &pv.view, w->err);
        if (r < 0)
                return r;
        struct aidp_policy_view *nv = realloc(p->views, (p->n_views + 1) * sizeof *nv);
        if (!nv) {
                aidp_view_free(&pv.view);
                return aidp_residency_oom(w);
        }
        nv[p->n_views++] = pv;
        p->views = nv;
        return 0;
}

static int af_views(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, view_entry, ctx);
}

/* --- users and groups --- */

struct subject_ctx {
        struct aidp_access_policy *policy;
        struct aidp_subject subj;
        bool is_user;
};

static int role_ref(struct aidp_yaml *w, yaml_node_t *item, const char *path, size_t i, void *ctx)
{
        struct subject_ctx *c = ctx;
        const char *s;
        int r = aidp_yaml_string(w, item, path, &s);
        if (r < 0)
                return r;
        bool defined = false;
        for (size_t k = 0; k < c->policy->n_roles && !defined; k++)
                defined = !strcmp(c->policy->roles[k].name, s);
        if (!defined)
                return aidp_yaml_fail(w, item, path, "unknown role '%s' (not under roles:)", s);
        if (aidp_strv_contains(c->subj.roles, c->subj.n_roles, s))
                return aidp_yaml_fail(w, item, path, "duplicate role '%s'", s);
        if (aidp_strv_push(&c->subj.roles, &c->subj.n_roles, s) < 0)
                return aidp_residency_oom(w);
        return 0;
}

static int sf_roles(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_seq(w, v, path, role_ref, ctx);
}

static int attr_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                      yaml_node_t *value, const char *path, void *ctx)
{
        struct subject_ctx *c = ctx;
        const char *s;
        if (!aidp_residency_name_valid(key))
                return aidp_yaml_fail(w, keynode, path, "invalid attribute name '%s'", key);
        int r = aidp_yaml_string(w, value, path, &s);
        if (r < 0)
                return r;
        struct aidp_attr a = {strdup(key), strdup(s)};
        struct aidp_attr *nv = NULL;
        if (!a.name || !a.value ||
            !(nv = realloc(c->subj.attrs, (c->subj.n_attrs + 1) * sizeof *nv))) {
                free(a.name);
                free(a.value);
                return aidp_residency_oom(w);
        }
        nv[c->subj.n_attrs++] = a;
        c->subj.attrs = nv;
        return 0;
}

static int sf_attributes(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_map(w, v, path, attr_entry, ctx);
}

static int subject_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                         yaml_node_t *value, const char *path, void *ctx)
{
        static const struct aidp_yaml_field user_fields[] = {
                {"roles", sf_roles, false},
                {"attributes", sf_attributes, false},
        };
        static const struct aidp_yaml_field group_fields[] = {
                {"roles", sf_roles, false},
        };
        struct subject_ctx *c = ctx;
        struct aidp_access_policy *p = c->policy;
        if (!aidp_residency_is_pattern(key) || strchr(key, '*') || strchr(key, '?') ||
            strchr(key, '['))
                return aidp_yaml_fail(w, keynode, path, "invalid %s name '%s'",
                                      c->is_user ? "user" : "group", key);
        memset(&c->subj, 0, sizeof c->subj);
        c->subj.loc = loc_of(keynode);
        int r = c->is_user
                        ? aidp_yaml_fields(w, value, path, user_fields, ARRAY_SIZE(user_fields), c)
                        : aidp_yaml_fields(w, value, path, group_fields, ARRAY_SIZE(group_fields),
                                           c);
        if (r >= 0 && !(c->subj.name = strdup(key)))
                r = aidp_residency_oom(w);
        if (r >= 0)
                r = ensure_list(w, &c->subj.roles);
        struct aidp_subject **v = c->is_user ? &p->users : &p->groups;
        size_t *n = c->is_user ? &p->n_users : &p->n_groups;
        struct aidp_subject *nv = NULL;
        if (r >= 0 && !(nv = realloc(*v, (*n + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                subject_free(&c->subj);
                return r;
        }
        nv[(*n)++] = c->subj;
        *v = nv;
        return 0;
}

static int af_users(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct subject_ctx c = {.policy = ctx, .is_user = true};
        return aidp_yaml_map(w, v, path, subject_entry, &c);
}

static int af_groups(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct subject_ctx c = {.policy = ctx, .is_user = false};
        return aidp_yaml_map(w, v, path, subject_entry, &c);
}

/* --- deny rules --- */

static int dn_name(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_deny_rule *d = ctx;
        int r = aidp_yaml_strdup(w, v, path, &d->name);
        if (r >= 0 && !aidp_residency_name_valid(d->name))
                return aidp_yaml_fail(w, v, path, "invalid rule name '%s'", d->name);
        return r;
}

static int dn_users(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_deny_rule *d = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_pattern, "user pattern", &d->users,
                                 &d->n_users);
}

static int dn_groups(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_deny_rule *d = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_pattern, "group", &d->groups,
                                 &d->n_groups);
}

static int dn_operations(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_residency_parse_ops(w, v, path, &((struct aidp_deny_rule *)ctx)->ops);
}

static int dn_profiles(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_deny_rule *d = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_pattern, "profile pattern",
                                 &d->profiles, &d->n_profiles);
}

static int dn_datasets(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_deny_rule *d = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_pattern, "dataset pattern",
                                 &d->datasets, &d->n_datasets);
}

static int dn_min_class(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_deny_rule *d = ctx;
        d->has_min_classification = true;
        return aidp_residency_parse_classification(w, v, path, &d->min_classification);
}

static int dn_windows(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_deny_rule *d = ctx;
        return aidp_residency_parse_windows(w, v, path, &d->windows, &d->n_windows);
}

static int deny_item(struct aidp_yaml *w, yaml_node_t *item, const char *path, size_t i, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"name", dn_name, true},
                {"users", dn_users, false},
                {"groups", dn_groups, false},
                {"operations", dn_operations, false},
                {"profiles", dn_profiles, false},
                {"datasets", dn_datasets, false},
                {"min_classification", dn_min_class, false},
                {"time_windows", dn_windows, false},
                {"residency", tm_residency, false},
                {"regulations", tm_regulations, false},
                {"key_ids", tm_key_ids, false},
        };
        struct aidp_access_policy *p = ctx;
        struct aidp_deny_rule d = {.loc = loc_of(item)};
        int r = aidp_yaml_fields(w, item, path, fields, ARRAY_SIZE(fields), &d);
        if (r >= 0 && d.n_users == 0 && d.n_groups == 0)
                r = aidp_yaml_fail(w, item, path,
                                   "a deny rule needs users or groups (use users: ['*'] "
                                   "for everyone)");
        for (size_t k = 0; r >= 0 && k < p->n_deny; k++)
                if (!strcmp(p->deny[k].name, d.name))
                        r = aidp_yaml_fail(w, item, path,
                                           "duplicate deny rule name '%s' (first at line %u)",
                                           d.name, p->deny[k].loc.line);
        if (r >= 0)
                r = ensure_list(w, &d.users);
        if (r >= 0)
                r = ensure_list(w, &d.groups);
        if (r >= 0)
                r = ensure_list(w, &d.profiles);
        if (r >= 0)
                r = ensure_list(w, &d.datasets);
        if (r >= 0)
                r = ensure_tag_lists(w, &d.tags);
        struct aidp_deny_rule *nv = NULL;
        if (r >= 0 && !(nv = realloc(p->deny, (p->n_deny + 1) * sizeof *nv)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                deny_free(&d);
                return r;
        }
        nv[p->n_deny++] = d;
        p->deny = nv;
        return 0;
}

static int af_deny(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_seq(w, v, path, deny_item, ctx);
}

static int af_enforcement(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_access_policy *p = ctx;
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        if (strcmp(s, "enforce") && strcmp(s, "audit"))
                return aidp_yaml_fail(w, v, path, "expected enforce or audit, not '%s'", s);
        p->audit = !strcmp(s, "audit");
        p->enforcement_loc = loc_of(v);
        return 0;
}

static int leak_scan_entry(struct aidp_yaml *w, const char *key, yaml_node_t *keynode,
                           yaml_node_t *value, const char *path, void *ctx)
{
        struct aidp_access_policy *p = ctx;
        const char *s;
        int r = aidp_yaml_string(w, value, path, &s);
        if (r < 0)
                return r;
        enum aidp_leak_action a;
        if (!strcmp(s, "report"))
                a = AIDP_LEAK_REPORT;
        else if (!strcmp(s, "quarantine"))
                a = AIDP_LEAK_QUARANTINE;
        else
                return aidp_yaml_fail(w, value, path, "expected report or quarantine, not '%s'", s);
        enum aidp_classification c;
        if (!strcmp(key, "default"))
                p->leak_scan_default = a;
        else if (aidp_residency_classification_parse(key, &c) == 0)
                p->leak_scan_set[c] = true, p->leak_scan[c] = a;
        else
                return aidp_yaml_fail(w, keynode, path,
                                      "expected default or a classification (public, internal, "
                                      "confidential, restricted, regulated), not '%s'",
                                      key);
        return 0;
}

static int af_leak_scan(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        ((struct aidp_access_policy *)ctx)->has_leak_scan = true;
        return aidp_yaml_map(w, v, path, leak_scan_entry, ctx);
}

static int af_metadata(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_residency_parse_metadata(w, v, path, &((struct aidp_access_policy *)ctx)->name);
}

int aidp_residency_parse_access_doc(struct aidp_yaml *w, yaml_node_t *root,
                                    struct aidp_access_policy *ret)
{
        /* views before roles, roles before users and groups: each is checked
         * against the one before. */
        static const struct aidp_yaml_field fields[] = {
                {"apiVersion", aidp_residency_pf_api_version, true},
                {"kind", aidp_residency_pf_kind, true},
                {"metadata", af_metadata, false},
                {"views", af_views, false},
                {"roles", af_roles, false},
                {"users", af_users, false},
                {"groups", af_groups, false},
                {"deny", af_deny, false},
                {"enforcement", af_enforcement, false},
                {"leak_scan", af_leak_scan, false},
        };
        struct aidp_access_policy p = {0};
        int r = aidp_yaml_fields(w, root, "", fields, ARRAY_SIZE(fields), &p);
        if (r >= 0 && !(p.source = strdup(w->file)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                aidp_residency_access_free(&p);
                return r;
        }
        for (size_t i = 0; i < p.n_roles; i++)
                p.roles[i].loc.file = p.source;
        for (size_t i = 0; i < p.n_users; i++)
                p.users[i].loc.file = p.source;
        for (size_t i = 0; i < p.n_groups; i++)
                p.groups[i].loc.file = p.source;
        for (size_t i = 0; i < p.n_deny; i++)
                p.deny[i].loc.file = p.source;
        for (size_t i = 0; i < p.n_views; i++)
                p.views[i].loc.file = p.source;
        p.enforcement_loc.file = p.source;
        *ret = p;
        return 0;
}

void aidp_residency_access_free(struct aidp_access_policy *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_roles; i++)
                role_free(&p->roles[i]);
        free(p->roles);
        for (size_t i = 0; i < p->n_users; i++)
                subject_free(&p->users[i]);
        free(p->users);
        for (size_t i = 0; i < p->n_groups; i++)
                subject_free(&p->groups[i]);
        free(p->groups);
        for (size_t i = 0; i < p->n_deny; i++)
                deny_free(&p->deny[i]);
        free(p->deny);
        for (size_t i = 0; i < p->n_views; i++)
                aidp_view_free(&p->views[i].view);
        free(p->views);
        free(p->source);
        free(p->name);
        memset(p, 0, sizeof *p);
}

int aidp_residency_access_time_zones(const struct aidp_access_policy *p, const char ***ret,
                                     size_t *ret_n)
{
        const char **v = NULL;
        size_t n = 0;
        for (size_t pass = 0; pass < 2; pass++) {
                size_t nw = pass == 0 ? p->n_roles : p->n_deny;
                for (size_t i = 0; i < nw; i++) {
                        const struct aidp_time_window *ws =
                                pass == 0 ? p->roles[i].windows : p->deny[i].windows;
                        size_t nws = pass == 0 ? p->roles[i].n_windows : p->deny[i].n_windows;
                        for (size_t k = 0; k < nws; k++) {
                                const char *z = ws[k].zone;
                                bool dup = !strcmp(z, "UTC");
                                for (size_t j = 0; j < n && !dup; j++)
                                        dup = !strcmp(v[j], z);
                                if (dup)
                                        continue;
                                const char **nv = realloc(v, (n + 1) * sizeof *nv);
                                if (!nv) {
                                        free(v);
                                        return -ENOMEM;
                                }
                                v = nv;
                                v[n++] = z;
                        }
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}
