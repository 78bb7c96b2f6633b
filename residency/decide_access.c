/* Access: who the caller is in the policy, explicit denies, and which role
 * grants the operation on each dataset. Default deny: without a role that
 * grants everything asked for a dataset, that dataset is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "residency/decide_internal.h"

#define ROLES_MAX 64 /* roles one caller may hold at once; more are ignored with a reason */

struct access_ctx {
        struct aidp_dctx *c;
        const struct aidp_access_policy *ap;
        const struct aidp_subject *user;
        const struct aidp_role *roles[ROLES_MAX];
        size_t n_roles;
};

static const struct aidp_subject *find_subject(const struct aidp_subject *v, size_t n,
                                               const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(v[i].name, name))
                        return &v[i];
        return NULL;
}

static const struct aidp_role *find_role(const struct aidp_access_policy *ap, const char *name)
{
        for (size_t i = 0; i < ap->n_roles; i++)
                if (!strcmp(ap->roles[i].name, name))
                        return &ap->roles[i];
        return NULL;
}

/* Whether a group the caller is in matches one of the patterns; the group it
 * was (for the reason). */
static const char *caller_group_match(const struct aidp_caller *caller, char *const *patterns,
                                      size_t n)
{
        for (size_t i = 0; i < caller->n_groups; i++)
                if (aidp_residency_glob_any(patterns, n, caller->groups[i], false))
                        return caller->groups[i];
        return NULL;
}

static bool match_any(char *const *patterns, size_t n, const char *s)
{
        return aidp_residency_glob_any(patterns, n, s, false);
}

/* A pattern with '@' is matched against NAME@VERSION, otherwise against NAME;
 * case-insensitively, since the sealer chose the name's case (PHI-notes must
 * not escape a phi-* deny). */
static bool dataset_match(char *const *patterns, size_t n, const struct aidp_dataset_facts *ds)
{
        char full[512];
        snprintf(full, sizeof full, "%s@%s", ds->name, ds->version ? ds->version : "");
        for (size_t i = 0; i < n; i++)
                if (aidp_residency_glob_match(patterns[i],
                                              strchr(patterns[i], '@') ? full : ds->name, true))
                        return true;
        return false;
}

/* The caller's trusted attributes first, then the policy's. */
static const char *attribute(const struct access_ctx *a, const char *name)
{
        const struct aidp_caller *caller = &a->c->req->caller;
        for (size_t i = 0; i < caller->n_attributes; i++)
                if (!strcmp(caller->attributes[i].name, name))
                        return caller->attributes[i].value;
        if (a->user)
                for (size_t i = 0; i < a->user->n_attrs; i++)
                        if (!strcmp(a->user->attrs[i].name, name))
                                return a->user->attrs[i].value;
        return NULL;
}

static bool zone_offset(const struct aidp_residency_time *t, const char *zone, long *ret)
{
        if (!strcmp(zone, "UTC")) {
                *ret = 0;
                return true;
        }
        for (size_t i = 0; i < t->n_zones; i++)
                if (!strcmp(t->zones[i].zone, zone)) {
                        *ret = t->zones[i].utc_offset;
                        return true;
                }
        return false;
}

static void describe_window(char *buf, size_t size, const struct aidp_time_window *w)
{
        char days[64] = "";
        size_t off = 0;
        if (w->days == 0x7f) {
                aidp_residency_appendf(days, sizeof days, &off, "every day");
        } else {
                /* Monday first, the way people write schedules. */
                for (int k = 1; k <= 7; k++) {
                        int d = k % 7;
                        if (w->days & (1u << d))
                                aidp_residency_appendf(days, sizeof days, &off, "%s%s",
                                                       off ? "," : "", aidp_residency_day_name(d));
                }
        }
        snprintf(buf, size, "%s %02u:%02u-%02u:%02u %s", days, w->start / 60, w->start % 60,
                 w->end / 60, w->end % 60, w->zone);
}

/* Whether now lies in any window. On "no", why (including an unresolved zone). */
static bool in_windows(const struct aidp_residency_time *t, const struct aidp_time_window *v,
                       size_t n, char *why, size_t size)
{
        size_t off = 0;
        why[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                long offset;
                char desc[160];
                describe_window(desc, sizeof desc, &v[i]);
                if (!zone_offset(t, v[i].zone, &offset)) {
                        aidp_residency_appendf(why, size, &off,
                                               "%stime zone '%s' was not resolved (window %s)",
                                               off ? "; " : "", v[i].zone, desc);
                        continue;
                }
                int wday, minute;
                aidp_residency_local_time(t->epoch, offset, &wday, &minute);
                if (aidp_residency_window_contains(&v[i], wday, minute))
                        return true;
                aidp_residency_appendf(why, size, &off, "%s%s %02d:%02d %s is outside %s",
                                       off ? "; " : "", aidp_residency_day_name(wday), minute / 60,
                                       minute % 60, v[i].zone, desc);
        }
        return false;
}

/* Minutes from local (wday, minute) to the end of window w, which contains it. */
static int minutes_left(const struct aidp_time_window *w, int wday, int minute)
{
        if (w->start < w->end)
                return w->end - minute;
        if ((w->days & (1u << wday)) && minute >= w->start)
                return 1440 - minute + w->end; /* the evening part: ends tomorrow */
        return w->end - minute;
}

#define UNTIL_CHAIN_MAX 16 /* windows chained end to end; more is a weekly cycle: no end */

/* The instant the windows that contain now stop containing it: the latest end
 * of a window containing now, then of one containing that end, and so on
 * (mon-fri 00:00-24:00 is one span). Offsets are those at the decision instant.
 * 0 when the chain never ends. */
static int64_t windows_until(const struct aidp_residency_time *t, const struct aidp_time_window *v,
                             size_t n)
{
        int64_t at = t->epoch;
        for (int step = 0; step < UNTIL_CHAIN_MAX; step++) {
                int64_t best = at;
                for (size_t i = 0; i < n; i++) {
                        long offset;
                        if (!zone_offset(t, v[i].zone, &offset))
                                continue;
                        int wday, minute;
                        aidp_residency_local_time(at, offset, &wday, &minute);
                        if (!aidp_residency_window_contains(&v[i], wday, minute))
                                continue;
                        int64_t sec = ((at + offset) % 60 + 60) % 60;
                        int64_t end = at - sec + 60 * (int64_t)minutes_left(&v[i], wday, minute);
                        if (end > best)
                                best = end;
                }
                if (best == at)
                        return at;
                at = best;
        }
        return 0;
}

static void ops_list(char *buf, size_t size, unsigned ops)
{
        size_t off = 0;
        buf[0] = '\0';
        for (unsigned i = 0; i < AIDP_OP_MAX; i++)
                if (ops & (1u << i))
                        aidp_residency_appendf(buf, size, &off, "%s%s", off ? ", " : "",
                                               aidp_residency_op_name((enum aidp_residency_op)i));
}

/* A role's conditions on the dataset's authenticated facts: every residency
 * and regulation tag it carries is listed, and the key that authenticated its
 * header matches a key_ids pattern. On "no", the attribute and why. */
static bool tags_granted(const struct aidp_tag_match *t, const struct aidp_dataset_facts *ds,
                         const char **attr, char *why, size_t size)
{
        char list[512];
        for (size_t i = 0; t->has_residency && i < ds->tags.n_residency; i++)
                if (!aidp_strv_contains(t->residency, t->n_residency, ds->tags.residency[i])) {
                        *attr = "residency";
                        snprintf(why, size, "residency tag '%s' is not among the role's [%s]",
                                 ds->tags.residency[i],
                                 aidp_residency_join(list, sizeof list, t->residency,
                                                     t->n_residency));
                        return false;
                }
        for (size_t i = 0; t->has_regulations && i < ds->tags.n_regulations; i++)
                if (!aidp_strv_contains(t->regulations, t->n_regulations,
                                        ds->tags.regulations[i])) {
                        *attr = "regulation";
                        snprintf(why, size, "regulation tag '%s' is not among the role's [%s]",
                                 ds->tags.regulations[i],
                                 aidp_residency_join(list, sizeof list, t->regulations,
                                                     t->n_regulations));
                        return false;
                }
        if (t->has_key_ids && (!ds->key_id || !aidp_residency_glob_any(t->key_ids, t->n_key_ids,
                                                                       ds->key_id, false))) {
                *attr = "key_id";
                snprintf(why, size, "key id '%s' matches none of the role's key_ids [%s]",
                         ds->key_id ? ds->key_id : "(unknown)",
                         aidp_residency_join(list, sizeof list, t->key_ids, t->n_key_ids));
                return false;
        }
        return true;
}

/* A deny rule's conditions on one dataset: it carries a listed tag, or its
 * key id matches. Conditions not given match anything. */
static bool tags_denied(const struct aidp_tag_match *t, const struct aidp_dataset_facts *ds)
{
        bool ok = true;
        if (t->has_residency) {
                bool any = false;
                for (size_t i = 0; i < t->n_residency && !any; i++)
                        any = aidp_residency_tags_has_residency(&ds->tags, t->residency[i]);
                ok = ok && any;
        }
        if (t->has_regulations) {
                bool any = false;
                for (size_t i = 0; i < t->n_regulations && !any; i++)
                        any = aidp_residency_tags_has_regulation(&ds->tags, t->regulations[i]);
                ok = ok && any;
        }
        if (t->has_key_ids)
                ok = ok && ds->key_id &&
                     aidp_residency_glob_any(t->key_ids, t->n_key_ids, ds->key_id, false);
        return ok;
}

static bool has_tag_conditions(const struct aidp_tag_match *t)
{
        return t->has_residency || t->has_regulations || t->has_key_ids;
}

/* Does this role grant the request for dataset ds (NULL: the run without
 * data)? On "no", the failing attribute and why. */
static bool role_grants(const struct access_ctx *a, const struct aidp_role *role,
                        const struct aidp_dataset_facts *ds, const char **attr, char *why,
                        size_t size)
{
        const struct aidp_decision_request *req = a->c->req;
        char list[512];

        if (!(role->ops & (1u << req->op))) {
                ops_list(list, sizeof list, role->ops);
                *attr = "operation";
                snprintf(why, size, "operation '%s' is not among the role's operations (%s)",
                         aidp_residency_op_name(req->op), list);
                return false;
        }
        if (req->profile && !match_any(role->profiles, role->n_profiles, req->profile->name)) {
                *attr = "profile";
                snprintf(why, size, "profile '%s' matches none of the role's profiles [%s]",
                         req->profile->name,
                         aidp_residency_join(list, sizeof list, role->profiles, role->n_profiles));
                return false;
        }
        if (ds && !dataset_match(role->datasets, role->n_datasets, ds)) {
                *attr = "dataset";
                snprintf(why, size, "dataset '%s' matches none of the role's datasets [%s]",
                         ds->name,
                         aidp_residency_join(list, sizeof list, role->datasets, role->n_datasets));
                return false;
        }
        if (ds && ds->tags.classification > role->max_classification) {
                *attr = "classification";
                snprintf(why, size, "classification %s is above the role's max_classification %s",
                         aidp_residency_classification_name(ds->tags.classification),
                         aidp_residency_classification_name(role->max_classification));
                return false;
        }
        if (ds && !tags_granted(&role->tags, ds, attr, why, size))
                return false;
        for (size_t i = 0; i < role->n_require; i++) {
                const struct aidp_attr_req *rq = &role->require[i];
                const char *v = attribute(a, rq->name);
                if (!v) {
                        *attr = rq->name;
                        snprintf(why, size,
                                 "the user has no attribute '%s' (required: one of [%s])", rq->name,
                                 aidp_residency_join(list, sizeof list, rq->values, rq->n_values));
                        return false;
                }
                bool ok = false;
                for (size_t k = 0; k < rq->n_values && !ok; k++)
                        ok = !strcmp(rq->values[k], v);
                if (!ok) {
                        *attr = rq->name;
                        snprintf(why, size, "attribute '%s' is '%s', required: one of [%s]",
                                 rq->name, v,
                                 aidp_residency_join(list, sizeof list, rq->values, rq->n_values));
                        return false;
                }
        }
        if (role->n_windows && !in_windows(&req->time, role->windows, role->n_windows, why, size)) {
                *attr = "time";
                return false;
        }
        return true;
}

/* Until when a granting role's windows let it grant (0: no end). */
static int64_t role_until(const struct access_ctx *a, const struct aidp_role *role)
{
        if (!role->n_windows)
                return 0;
        return windows_until(&a->c->req->time, role->windows, role->n_windows);
}

/* The role that grants the longest: one without windows, else the one whose
 * windows close last. The decision ends at the earliest such close over all
 * grants (a run must stop when any input's grant lapses). */
static const struct aidp_role *best_grant(const struct access_ctx *a,
                                          const struct aidp_dataset_facts *ds, int64_t *until)
{
        const struct aidp_role *best = NULL;
        for (size_t i = 0; i < a->n_roles; i++) {
                const char *attr;
                char why[1024];
                if (!role_grants(a, a->roles[i], ds, &attr, why, sizeof why))
                        continue;
                int64_t u = role_until(a, a->roles[i]);
                if (!best || (*until && (u == 0 || u > *until))) {
                        best = a->roles[i];
                        *until = u;
                }
        }
        return best;
}

/* The views of every held role that grants the dataset (not only the best
 * grant's): each role grants what its view shows. */
static void record_views(const struct access_ctx *a, size_t i)
{
        const struct aidp_role *granting[ROLES_MAX];
        size_t n = 0;
        for (size_t k = 0; k < a->n_roles; k++) {
                const char *attr;
                char why[1024];
                if (role_grants(a, a->roles[k], &a->c->req->datasets[i], &attr, why, sizeof why))
                        granting[n++] = a->roles[k];
        }
        aidp_residency_decide_views(a->c, i, granting, n);
}

static void note_until(struct aidp_dctx *c, const struct aidp_role *role, int64_t until)
{
        if (!until || (c->d->until && c->d->until <= until))
                return;
        char rule[128];
        snprintf(rule, sizeof rule, "roles.%s", role->name);
        char *r = strdup(rule);
        if (!r) {
                c->oom = true;
                return;
        }
        free(c->d->until_rule);
        c->d->until_rule = r;
        c->d->until = until;
}

static void grant_one(struct access_ctx *a, const struct aidp_dataset_facts *ds)
{
        struct aidp_dctx *c = a->c;
        const struct aidp_decision_request *req = c->req;
        const char *dsname = ds ? ds->name : NULL;

        int64_t until = 0;
        const struct aidp_role *best = best_grant(a, ds, &until);
        if (ds)
                record_views(a, (size_t)(ds - req->datasets));
        for (size_t i = 0; best && i < a->n_roles; i++) {
                if (a->roles[i] != best)
                        continue;
                note_until(c, best, until);
                char rule[128];
                snprintf(rule, sizeof rule, "roles.%s", a->roles[i]->name);
                if (ds)
                        aidp_residency_reason(
                                c, AIDP_REASON_PASS, AIDP_CHECK_ACCESS, rule, &a->roles[i]->loc,
                                dsname, "role",
                                "role '%s' grants %s on dataset '%s' (%s, max %s)%s%s",
                                a->roles[i]->name, aidp_residency_op_name(req->op), dsname,
                                aidp_residency_classification_name(ds->tags.classification),
                                aidp_residency_classification_name(a->roles[i]->max_classification),
                                req->profile ? " with profile " : "",
                                req->profile ? req->profile->name : "");
                else
                        aidp_residency_reason(c, AIDP_REASON_PASS, AIDP_CHECK_ACCESS, rule,
                                              &a->roles[i]->loc, NULL, "role",
                                              "role '%s' grants %s%s%s (no datasets)",
                                              a->roles[i]->name, aidp_residency_op_name(req->op),
                                              req->profile ? " with profile " : "",
                                              req->profile ? req->profile->name : "");
                return;
        }
        /* No role grants it: one FAIL per role, each with its first failing attribute. */
        for (size_t i = 0; i < a->n_roles; i++) {
                const char *attr = NULL;
                char why[1024], rule[128];
                role_grants(a, a->roles[i], ds, &attr, why, sizeof why);
                snprintf(rule, sizeof rule, "roles.%s", a->roles[i]->name);
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_ACCESS, rule,
                                      &a->roles[i]->loc, dsname, attr, "%s", why);
        }
}

/* Does an explicit deny rule match? On "yes", the most specific condition
 * that matched, the dataset it matched (if any), and a description. */
static bool deny_matches(const struct access_ctx *a, const struct aidp_deny_rule *r,
                         const char **attr, const char **dataset, char *why, size_t size)
{
        const struct aidp_decision_request *req = a->c->req;
        const struct aidp_caller *caller = &req->caller;
        const char *subject = NULL;

        *dataset = NULL;
        const char *group = NULL;
        if (caller->user && match_any(r->users, r->n_users, caller->user))
                subject = "user";
        else if ((group = caller_group_match(caller, r->groups, r->n_groups)))
                subject = "group";
        if (!subject)
                return false;
        *attr = subject;
        if (r->ops) {
                if (!(r->ops & (1u << req->op)))
                        return false;
                *attr = "operation";
        }
        if (r->n_profiles) {
                if (!req->profile || !match_any(r->profiles, r->n_profiles, req->profile->name))
                        return false;
                *attr = "profile";
        }
        bool tagged = has_tag_conditions(&r->tags);
        if (r->n_datasets || r->has_min_classification || tagged) {
                const struct aidp_dataset_facts *hit = NULL;
                for (size_t i = 0; i < req->n_datasets && !hit; i++) {
                        const struct aidp_dataset_facts *ds = &req->datasets[i];
                        if (r->n_datasets && !dataset_match(r->datasets, r->n_datasets, ds))
                                continue;
                        if (r->has_min_classification &&
                            ds->tags.classification < r->min_classification)
                                continue;
                        if (tagged && !tags_denied(&r->tags, ds))
                                continue;
                        hit = ds;
                }
                if (!hit)
                        return false;
                *dataset = hit->name;
                *attr = tagged                      ? (r->tags.has_key_ids ? "key_id" : "tags")
                        : r->has_min_classification ? "classification"
                                                    : "dataset";
        }
        if (r->n_windows) {
                char tmp[512];
                if (!in_windows(&req->time, r->windows, r->n_windows, tmp, sizeof tmp))
                        return false;
                *attr = "time";
        }
        size_t off = 0;
        why[0] = '\0';
        aidp_residency_appendf(why, size, &off, "explicit deny '%s' matches: %s %s", r->name,
                               subject, group ? group : caller->user);
        if (r->ops)
                aidp_residency_appendf(why, size, &off, ", operation %s",
                                       aidp_residency_op_name(req->op));
        if (r->n_profiles)
                aidp_residency_appendf(why, size, &off, ", profile %s", req->profile->name);
        if (*dataset)
                aidp_residency_appendf(why, size, &off, ", dataset %s", *dataset);
        if (r->has_min_classification)
                aidp_residency_appendf(why, size, &off, " (classification at or above %s)",
                                       aidp_residency_classification_name(r->min_classification));
        if (tagged)
                aidp_residency_appendf(why, size, &off, " (its tags or key match the rule)");
        if (r->n_windows)
                aidp_residency_appendf(why, size, &off, ", inside its time window");
        return true;
}

void aidp_residency_decide_access(struct aidp_dctx *c)
{
        const struct aidp_decision_request *req = c->req;
        const struct aidp_caller *caller = &req->caller;
        struct access_ctx a = {.c = c, .ap = req->access};
        char list[512];

        if (!a.ap) {
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_ACCESS, "default", NULL, NULL,
                                      "policy", "no access policy is installed: default deny");
                return;
        }
        if (!caller->user) {
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_ACCESS, "default", NULL, NULL,
                                      "user", "caller uid %lld has no user name: default deny",
                                      (long long)caller->uid);
                return;
        }

        /* The roles the caller holds: as a user, then through each group. */
        a.user = find_subject(a.ap->users, a.ap->n_users, caller->user);
        char held[1024] = "";
        size_t off = 0;
        for (size_t g = 0; g <= caller->n_groups; g++) {
                const struct aidp_subject *s =
                        g == 0 ? a.user
                               : find_subject(a.ap->groups, a.ap->n_groups, caller->groups[g - 1]);
                if (!s)
                        continue;
                for (size_t k = 0; k < s->n_roles; k++) {
                        const struct aidp_role *role = find_role(a.ap, s->roles[k]);
                        bool dup = false;
                        for (size_t j = 0; j < a.n_roles && !dup; j++)
                                dup = a.roles[j] == role;
                        if (!role || dup || a.n_roles == ROLES_MAX)
                                continue;
                        a.roles[a.n_roles++] = role;
                        aidp_residency_appendf(held, sizeof held, &off, "%s%s (via %s %s)",
                                               off ? ", " : "", role->name,
                                               g == 0 ? "user" : "group", s->name);
                }
        }
        aidp_residency_join(list, sizeof list, (char *const *)caller->groups, caller->n_groups);
        if (a.n_roles == 0) {
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_ACCESS, "default", NULL, NULL,
                                      "role",
                                      "user '%s' (groups: %s) holds no role in the access policy: "
                                      "default deny",
                                      caller->user, caller->n_groups ? list : "none");
        } else {
                char rule[160];
                snprintf(rule, sizeof rule, a.user ? "users.%s" : "groups", caller->user);
                aidp_residency_reason(c, AIDP_REASON_INFO, AIDP_CHECK_ACCESS, rule,
                                      a.user ? &a.user->loc : NULL, NULL, "role",
                                      "user '%s' (groups: %s) holds roles %s", caller->user,
                                      caller->n_groups ? list : "none", held);
        }

        /* Explicit denies override any grant, so they come first in the trail. */
        for (size_t i = 0; i < a.ap->n_deny; i++) {
                const char *attr, *dataset;
                char why[1024], rule[128];
                if (!deny_matches(&a, &a.ap->deny[i], &attr, &dataset, why, sizeof why))
                        continue;
                snprintf(rule, sizeof rule, "deny.%s", a.ap->deny[i].name);
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_DENY, rule,
                                      &a.ap->deny[i].loc, dataset, attr, "%s", why);
        }

        if (a.n_roles == 0)
                return;
        if (req->n_datasets == 0)
                grant_one(&a, NULL);
        for (size_t i = 0; i < req->n_datasets; i++)
                grant_one(&a, &req->datasets[i]);
}
