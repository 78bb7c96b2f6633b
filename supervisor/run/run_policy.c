/* The run's policy decision: glue between the run core and residency/. */
#define _GNU_SOURCE
#include "supervisor/run/run_policy.h"

#include <errno.h>
#include <stdarg.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/run/policy_decide.h"
#include "supervisor/run/warm.h"
#include "supervisor/sealed/codec/sealed_format.h"

_Static_assert(AIDP_TAGS_MAX == AIDP_SEALED_MAX_TAGS,
               "the decision's output tag limit is the sealed header's");

/* Root started us itself (not sudo on behalf of another user): the
 * environment and --user are root's own choices. */
bool aidp_run_root_directly(void)
{
        const char *su = getenv("SUDO_UID");
        return getuid() == 0 && (!su || !strcmp(su, "0"));
}

/* The refusal of sealed data on a host with no policy at all (to a user:
 * only as_user runs ask, so the admin is named as who installs it), with a policy
 * that lets this user run data tagged eu as it is (each file after a "--- "
 * line naming it, to be adapted: the tag, the region, the classification). */
static int no_policy_for_data(const char *dir, const char *user, aidp_error *err)
{
        return aidp_error_set(
                err, AIDP_EXIT_DENIED, EACCES,
                "sealed data needs a policy, and none is installed in %s: ask this host's "
                "admin to install one, root-owned files there (docs/policy.md), for example "
                "these, adapted:\n"
                "--- %s/access.yaml (who may run which data)\n"
                "apiVersion: aidp/v1\n"
                "kind: AccessPolicy\n"
                "roles:\n"
                "  trainer: {operations: [run], profiles: [\"*\"], datasets: [\"*\"], "
                "max_classification: confidential}\n"
                "users:\n"
                "  %s: {roles: [trainer]}\n"
                "--- %s/host.yaml (this node's region)\n"
                "apiVersion: aidp/v1\n"
                "kind: HostIdentity\n"
                "region: my-region\n"
                "--- %s/residency.yaml (where data of each residency tag may run: one rule per "
                "tag your data carries)\n"
                "apiVersion: aidp/v1\n"
                "kind: ResidencyPolicy\n"
                "residency:\n"
                "  eu: {regions: [my-region]}\n"
                "---\n"
                "then `aidp-run --dry-run ...` shows the decision and every reason",
                dir, dir, user ? user : "USER", dir, dir);
}

int aidp_run_policy_require_for_data(const char *user, aidp_error *err)
{
        static const char *const files[] = {"host.yaml", "residency.yaml", "access.yaml"};
        /* Where the decision will look (aidp_run_policy_decide): the test
         * build's AIDP_POLICY_DIR when root started us (a daemon's worker). */
        const char *dir = aidp_run_root_directly() ? getenv(AIDP_POLICY_DIR_ENV) : NULL;
        if (!dir || !*dir)
                dir = AIDP_POLICY_DIR_DEFAULT;
        char p[PATH_MAX];
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
                snprintf(p, sizeof p, "%s/%s", dir, files[i]);
                /* lstat: a dangling symlink is there, and its load fails (119) */
                struct stat st;
                if (lstat(p, &st) == 0)
                        return 0;
        }
        return no_policy_for_data(dir, user, err);
}

/* Keep only the egress rules the decision kept. */
static void restrict_egress(struct aidp_profile *profile, const struct aidp_decision *d)
{
        struct aidp_network *net = &profile->network;
        size_t w = 0;
        for (size_t i = 0; i < net->n_rules; i++) {
                if (i < d->n_egress && !d->egress_keep[i]) {
                        free(net->rules[i].cidr);
                        free(net->rules[i].fqdn);
                        free(net->rules[i].region);
                        continue;
                }
                net->rules[w++] = net->rules[i];
        }
        net->n_rules = w;
}

int aidp_run_policy_profile_view(const struct aidp_profile *p, struct aidp_residency_profile *ret)
{
        memset(ret, 0, sizeof *ret);
        struct aidp_residency_egress *e =
                calloc(p->network.n_rules ? p->network.n_rules : 1, sizeof *e);
        if (!e)
                return -ENOMEM;
        for (size_t i = 0; i < p->network.n_rules; i++) {
                const struct aidp_egress_rule *r = &p->network.rules[i];
                e[i] = (struct aidp_residency_egress){
                        .cidr = r->cidr,
                        .fqdn = r->fqdn,
                        .region = r->region,
                        .port_min = r->port_min,
                        .port_max = r->port_max,
                        .protocol = r->protocol,
                };
        }
        ret->name = p->name;
        ret->network = p->network.mode == AIDP_NET_EGRESS ? AIDP_RESIDENCY_NET_EGRESS
                                                          : AIDP_RESIDENCY_NET_NONE;
        ret->egress = e;
        ret->n_egress = p->network.n_rules;
        /* Writable binds (host paths the job can write): a policy input. */
        const char **wb = calloc(p->n_binds + 1, sizeof *wb);
        if (!wb) {
                aidp_run_policy_profile_view_free(ret);
                return -ENOMEM;
        }
        for (size_t i = 0; i < p->n_binds; i++)
                if (p->binds[i].writable)
                        wb[ret->n_writable_binds++] = p->binds[i].source;
        ret->writable_binds = wb;
        return 0;
}

void aidp_run_policy_profile_view_free(struct aidp_residency_profile *v)
{
        free((struct aidp_residency_egress *)v->egress);
        free((const char **)v->writable_binds);
        memset(v, 0, sizeof *v);
}

static void appendf(char *buf, size_t size, size_t *off, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t size, size_t *off, const char *fmt, ...)
{
        if (*off >= size - 1)
                return;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(buf + *off, size - *off, fmt, ap);
        va_end(ap);
        if (k > 0)
                *off = *off + (size_t)k < size - 1 ? *off + (size_t)k : size - 1;
}

/* enforcement: audit (rolling a policy out): the verdict is made, recorded in
 * lineage and reported on stderr and in the summary, and not enforced: a
 * denied run goes on, egress rules stay, the time window does not end it. */
static int audit_report(struct aidp_run_policy *p)
{
        const struct aidp_decision *d = &p->decision;
        size_t dropped = 0;
        for (size_t i = 0; i < d->n_egress; i++)
                dropped += !d->egress_keep[i];
        aidp_error e = {0};
        if (!d->allow)
                aidp_residency_decision_to_error(d, &e);
        if (d->allow && !dropped && !d->until)
                return 0;
        size_t off = 0;
        appendf(p->audit_msg, sizeof p->audit_msg, &off, "%s", d->allow ? "run allowed" : e.msg);
        if (dropped)
                appendf(p->audit_msg, sizeof p->audit_msg, &off,
                        "; %zu egress rule(s) would be dropped", dropped);
        if (d->until)
                appendf(p->audit_msg, sizeof p->audit_msg, &off,
                        "; the run would be stopped at @%lld when the time "
                        "window of %s closes",
                        (long long)d->until, d->until_rule);
        fprintf(stderr, "aidp-supervisor: policy audit (enforcement: audit, not enforced): %s\n",
                p->audit_msg);
        return 0;
}

int aidp_run_policy_decide(struct aidp_run_policy *p, struct aidp_caller_identity *caller,
                           const aidp_error *caller_err, struct aidp_profile *profile,
                           const struct aidp_inject *inject, aidp_error *err)
{
        memset(p, 0, sizeof *p);
        bool trusted = aidp_run_root_directly();
        /* Test hook (a test-build variable: the trust check refuses it to the
         * production binary): the policy clock shifted, so a test can start a
         * run seconds before its time window closes. */
        const char *off = trusted ? getenv("AIDP_FAULT_CLOCK_OFFSET") : NULL;
        if (off)
                p->clock_offset = strtoll(off, NULL, 10);
        const char *dir = trusted ? getenv(AIDP_POLICY_DIR_ENV) : NULL;
        snprintf(p->dir, sizeof p->dir, "%s", dir && *dir ? dir : AIDP_POLICY_DIR_DEFAULT);

        /* Policy comes only from files root alone can write. */
        struct aidp_policy_sources src = {
                .dir = p->dir,
                .trust_env = false,
                .require_root_owned = true,
        };
        /* A daemon's warm copy when none of the files changed (warm.h). */
        int r = aidp_run_warm_policy_take(p->dir, &p->set)
                        ? 0
                        : aidp_policy_set_load(&src, &p->set, err);
        if (r < 0)
                return aidp_error_wrap(err, "loading the access and residency policy");
        p->enforced = aidp_policy_set_installed(&p->set);
        size_t n_data = inject ? inject->n : 0;
        if (!caller && (p->enforced || n_data)) {
                *err = *caller_err;
                return aidp_error_wrap(err, "identifying the caller for the access policy");
        }
        /* The groups matter only to a policy; without one nobody looks them up. */
        if (p->enforced && (r = aidp_caller_fill_groups(caller, err)) < 0)
                return aidp_error_wrap(err, "identifying the caller for the access policy");
        p->caller = caller;

        struct aidp_dataset_facts facts[AIDP_RUN_MAX_DATA];
        size_t n = 0;
        for (; n < n_data; n++) {
                r = aidp_policy_facts_from_header(aidp_inject_header(inject, n), &facts[n], err);
                if (r < 0)
                        break;
        }
        _cleanup_(aidp_run_policy_profile_view_free) struct aidp_residency_profile pv = {0};
        if (r >= 0 && aidp_run_policy_profile_view(profile, &pv) < 0)
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (r >= 0) {
                struct aidp_policy_query q = {
                        .op = AIDP_OP_RUN,
                        .profile = &pv,
                        .datasets = facts,
                        .n_datasets = n,
                        .at = (int64_t)time(NULL) + p->clock_offset,
                };
                if (caller)
                        aidp_caller_view(caller, &q.caller);
                else
                        q.caller.uid = -1;
                r = aidp_policy_decide_with(&p->set, &q, &p->decision, err);
                if (r >= 0)
                        p->decided = true;
        }
        for (size_t i = 0; i < n; i++)
                aidp_residency_facts_free(&facts[i]);
        if (r < 0)
                return r;
        if (!p->decision.allow && !p->enforced)
                return no_policy_for_data(p->dir, caller->user, err);
        if (p->decision.audit)
                return audit_report(p);
        if (!p->decision.allow)
                return aidp_residency_decision_to_error(&p->decision, err);
        restrict_egress(profile, &p->decision);
        return 0;
}

void aidp_run_policy_annotate(const void *arg, json_object *ev)
{
        const struct aidp_run_policy *p = arg;
        if (!p)
                return;
        json_object *f = aidp_lineage_run_facet(ev, "aidp_policy");
        json_object_object_add(f, "enforced", json_object_new_boolean(p->enforced));
        if (p->decided && p->decision.audit) {
                /* decided and recorded, not enforced */
                json_object_object_add(f, "enforcement", json_object_new_string("audit"));
                if (p->audit_msg[0])
                        json_object_object_add(f, "audit", json_object_new_string(p->audit_msg));
        }
        if (!p->enforced || !p->decided) {
                bool deny = p->decided && !p->decision.allow;
                char why[1200];
                snprintf(why, sizeof why, "no policy installed in %s: %s", p->dir,
                         deny ? "sealed data is not decrypted without one"
                              : "the run was not decided");
                aidp_lineage_add_decision(ev, "run", deny ? "deny" : "allow",
                                          deny ? "default" : "none", why);
                return;
        }
        const struct aidp_decision *d = &p->decision;
        const struct aidp_reason *first = aidp_residency_decision_first_failure(d);
        /* Whom the policy decided for, and how that identity was found; the
         * aidp_caller facet names who invoked the supervisor, which differs
         * when root runs it with --user. */
        if (p->caller) {
                json_object *c = json_object_new_object();
                if (c) {
                        if (p->caller->user)
                                json_object_object_add(c, "user",
                                                       json_object_new_string(p->caller->user));
                        json_object_object_add(c, "uid", json_object_new_int64(p->caller->uid));
                        json_object_object_add(c, "source",
                                               json_object_new_string(p->caller->source));
                        json_object_object_add(f, "caller", c);
                }
        }
        aidp_lineage_add_decision(ev, "run", d->allow ? "allow" : "deny",
                                  first ? first->rule : "policy",
                                  first ? first->message : "every check passed");
        /* One entry per rule checked, in trail order; infos stay in the trail. */
        for (size_t i = 0; i < d->n_reasons; i++) {
                const struct aidp_reason *x = &d->reasons[i];
                if (x->result == AIDP_REASON_INFO)
                        continue;
                char subject[256], rule[512], reason[1400];
                if (x->dataset)
                        snprintf(subject, sizeof subject, "dataset %s", x->dataset);
                else
                        snprintf(subject, sizeof subject, "run");
                snprintf(rule, sizeof rule, "%s%s%s%s", x->rule ? x->rule : "?",
                         x->source ? " (" : "", x->source ? x->source : "", x->source ? ")" : "");
                snprintf(reason, sizeof reason, "%s%s%s", x->attribute ? x->attribute : "",
                         x->attribute ? ": " : "", x->message);
                aidp_lineage_add_decision(ev, subject,
                                          x->result == AIDP_REASON_PASS ? "allow" : "deny", rule,
                                          reason);
        }
        json_object *trail = aidp_residency_decision_to_json(d);
        if (trail)
                json_object_object_add(f, "trail", trail);
        if (p->set.host)
                aidp_lineage_set_host(ev, NULL, p->set.host->region);
}

void aidp_run_policy_free(struct aidp_run_policy *p)
{
        aidp_residency_decision_free(&p->decision);
        aidp_policy_set_free(&p->set);
        p->caller = NULL;
        p->decided = false;
}
