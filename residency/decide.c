/* The decision driver, the reason trail and the decision's lifetime. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "residency/decide_internal.h"
#include "common/strv.h"

static const char *const check_names[AIDP_CHECK_MAX] = {
        [AIDP_CHECK_ACCESS] = "access",
        [AIDP_CHECK_DENY] = "deny",
        [AIDP_CHECK_RESIDENCY] = "residency",
        [AIDP_CHECK_REGULATION] = "regulation",
        [AIDP_CHECK_CLASSIFICATION] = "classification",
        [AIDP_CHECK_MIX] = "mix",
        [AIDP_CHECK_EGRESS] = "egress",
};

static const char *const result_names[AIDP_REASON_RESULT_MAX] = {
        [AIDP_REASON_PASS] = "pass",
        [AIDP_REASON_FAIL] = "fail",
        [AIDP_REASON_INFO] = "info",
};

const char *aidp_residency_check_name(enum aidp_reason_check c)
{
        return (unsigned)c < AIDP_CHECK_MAX ? check_names[c] : "?";
}

const char *aidp_residency_result_name(enum aidp_reason_result r)
{
        return (unsigned)r < AIDP_REASON_RESULT_MAX ? result_names[r] : "?";
}

static char *dup_or_null(const char *s, bool *oom)
{
        if (!s)
                return NULL;
        char *d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

void aidp_residency_reason(struct aidp_dctx *c, enum aidp_reason_result result,
                           enum aidp_reason_check check, const char *rule,
                           const struct aidp_rule_loc *loc, const char *dataset,
                           const char *attribute, const char *fmt, ...)
{
        if (c->oom)
                return;
        struct aidp_reason r = {.result = result, .check = check};
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (loc && loc->file) {
                char src[512];
                snprintf(src, sizeof src, "%s:%u", loc->file, loc->line);
                r.source = dup_or_null(src, &c->oom);
        }
        r.rule = dup_or_null(rule, &c->oom);
        r.dataset = dup_or_null(dataset, &c->oom);
        r.attribute = dup_or_null(attribute, &c->oom);
        r.message = dup_or_null(msg, &c->oom);
        struct aidp_reason *nv = NULL;
        if (!c->oom && !(nv = realloc(c->d->reasons, (c->d->n_reasons + 1) * sizeof *nv)))
                c->oom = true;
        if (c->oom) {
                free(r.rule);
                free(r.source);
                free(r.dataset);
                free(r.attribute);
                free(r.message);
                return;
        }
        nv[c->d->n_reasons++] = r;
        c->d->reasons = nv;
}

const char *aidp_residency_join(char *buf, size_t size, char *const *v, size_t n)
{
        size_t off = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                int k = snprintf(buf + off, size - off, "%s%s", i ? ", " : "", v[i]);
                if (k < 0 || (size_t)k >= size - off) {
                        if (size > 4)
                                memcpy(buf + size - 4, "...", 4);
                        break;
                }
                off += (size_t)k;
        }
        return buf;
}

/* Copy what the trail needs to stand alone (the request may go away). */
static int summarize(const struct aidp_decision_request *req, struct aidp_decision *d)
{
        bool oom = false;
        d->op = req->op;
        d->user = dup_or_null(req->caller.user, &oom);
        d->uid = req->caller.uid;
        for (size_t i = 0; i < req->caller.n_groups && !oom; i++)
                if (aidp_strv_push(&d->groups, &d->n_groups, req->caller.groups[i]) < 0)
                        oom = true;
        if (req->profile)
                d->profile = dup_or_null(req->profile->name, &oom);
        if (req->host) {
                d->host_node = dup_or_null(req->host->node, &oom);
                d->host_region = dup_or_null(req->host->region, &oom);
        }
        d->epoch = req->time.epoch;
        if (req->n_datasets && !oom) {
                d->datasets = calloc(req->n_datasets, sizeof *d->datasets);
                d->views = calloc(req->n_datasets, sizeof *d->views);
                if (!d->datasets || !d->views)
                        oom = true;
                for (size_t i = 0; i < req->n_datasets && !oom; i++) {
                        if (aidp_residency_facts_copy(&req->datasets[i], &d->datasets[i]) < 0)
                                oom = true;
                        else
                                d->n_datasets++;
                }
        }
        if (!oom && req->profile && req->profile->n_egress) {
                d->egress_keep = calloc(req->profile->n_egress, sizeof *d->egress_keep);
                if (!d->egress_keep)
                        oom = true;
                else
                        d->n_egress = req->profile->n_egress;
        }
        if (!oom) {
                /* Outputs inherit from every input (docs/policy.md). */
                struct aidp_data_tags acc = {0};
                for (size_t i = 0; i < req->n_datasets && !oom; i++)
                        if (aidp_residency_tags_add(&acc, &req->datasets[i].tags) < 0)
                                oom = true;
                d->outputs = acc;
        }
        return oom ? -ENOMEM : 0;
}

/* A host with none of the three files: nothing to decide on. Sealed data is
 * still refused (docs/policy.md, "When"), except to root deciding for itself,
 * which holds the keys anyway; a run without data goes on, its egress intact. */
static void decide_without_policy(struct aidp_dctx *c)
{
        const struct aidp_decision_request *req = c->req;
        if (req->n_datasets && req->caller.uid != 0) {
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_ACCESS, "default", NULL,
                                      req->datasets[0].name, "policy",
                                      "no policy is installed (host.yaml, residency.yaml, "
                                      "access.yaml): sealed data is not decrypted without one");
                return;
        }
        for (size_t i = 0; i < c->d->n_egress; i++)
                c->d->egress_keep[i] = true;
        aidp_residency_reason(c, AIDP_REASON_INFO, AIDP_CHECK_ACCESS, "none", NULL, NULL, "policy",
                              "no policy is installed (host.yaml, residency.yaml, access.yaml): "
                              "not decided%s",
                              req->n_datasets ? " (root's own run)" : "");
}

/* What the outputs inherit must fit a sealed header; refused now rather than
 * after the job has run, when sealing /out would fail and its results be lost. */
static void check_output_tags(struct aidp_dctx *c)
{
        const struct aidp_data_tags *o = &c->d->outputs;
        if (c->req->op != AIDP_OP_RUN)
                return;
        if (o->n_residency > AIDP_TAGS_MAX || o->n_regulations > AIDP_TAGS_MAX)
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_MIX, "outputs", NULL, NULL,
                                      "tags",
                                      "the outputs would inherit %zu residency and %zu regulation "
                                      "tags; a sealed header holds at most %d of each",
                                      o->n_residency, o->n_regulations, AIDP_TAGS_MAX);
}

int aidp_residency_decide(const struct aidp_decision_request *req, struct aidp_decision *ret,
                          aidp_error *err)
{
        struct aidp_decision d;
        memset(&d, 0, sizeof d);
        struct aidp_dctx c = {.req = req, .d = &d};

        if (summarize(req, &d) < 0)
                c.oom = true;
        d.decided = req->host || req->residency || req->access;
        d.audit = req->access && req->access->audit;
        if (!c.oom && !d.decided) {
                decide_without_policy(&c);
        } else {
                if (!c.oom)
                        aidp_residency_decide_access(&c);
                if (!c.oom)
                        aidp_residency_decide_placement(&c);
                if (!c.oom)
                        aidp_residency_decide_egress(&c);
        }
        if (!c.oom)
                check_output_tags(&c);
        if (!c.oom)
                aidp_residency_decide_output_key(&c);
        if (!c.oom)
                aidp_residency_decide_leak_scan(&c);
        if (c.oom) {
                aidp_residency_decision_free(&d);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                      "policy decision: out of memory");
        }
        d.allow = aidp_residency_decision_first_failure(&d) == NULL;
        *ret = d;
        return 0;
}

int aidp_residency_decision_refuse(struct aidp_decision *d, enum aidp_reason_check check,
                                   const char *rule, const char *dataset, const char *attribute,
                                   const char *message)
{
        struct aidp_dctx c = {.d = d};
        aidp_residency_reason(&c, AIDP_REASON_FAIL, check, rule, NULL, dataset, attribute, "%s",
                              message);
        if (c.oom)
                return -ENOMEM;
        d->allow = false;
        d->audit = false;
        return 0;
}

void aidp_residency_decision_free(struct aidp_decision *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->n_reasons; i++) {
                free(d->reasons[i].rule);
                free(d->reasons[i].source);
                free(d->reasons[i].dataset);
                free(d->reasons[i].attribute);
                free(d->reasons[i].message);
        }
        free(d->reasons);
        free(d->user);
        aidp_strv_free(d->groups);
        free(d->profile);
        free(d->host_node);
        free(d->host_region);
        aidp_residency_views_free(d->views, d->n_datasets);
        for (size_t i = 0; i < d->n_datasets; i++)
                aidp_residency_facts_free(&d->datasets[i]);
        free(d->datasets);
        free(d->egress_keep);
        free(d->until_rule);
        free(d->output_key);
        free(d->output_key_rule);
        aidp_residency_tags_free(&d->outputs);
        memset(d, 0, sizeof *d);
}

const struct aidp_reason *aidp_residency_decision_first_failure(const struct aidp_decision *d)
{
        for (size_t i = 0; i < d->n_reasons; i++)
                if (d->reasons[i].result == AIDP_REASON_FAIL)
                        return &d->reasons[i];
        return NULL;
}

int aidp_residency_decision_to_error(const struct aidp_decision *d, aidp_error *err)
{
        const struct aidp_reason *r = aidp_residency_decision_first_failure(d);
        if (!r)
                return 0;
        size_t fails = 0;
        for (size_t i = 0; i < d->n_reasons; i++)
                fails += d->reasons[i].result == AIDP_REASON_FAIL;
        char more[96] = "";
        if (fails > 1)
                snprintf(more, sizeof more, " (and %zu more; %s shows them all)", fails - 1,
                         d->op == AIDP_OP_RUN ? "the run's --dry-run" : "'aidp policy explain'");
        aidp_error_set(err, AIDP_EXIT_DENIED, EACCES, "%s denied by %s rule %s%s%s%s: %s%s%s%s%s%s",
                       aidp_residency_op_name(d->op), aidp_residency_check_name(r->check),
                       r->rule ? r->rule : "?", r->source ? " (" : "", r->source ? r->source : "",
                       r->source ? ")" : "", r->dataset ? "dataset '" : "",
                       r->dataset ? r->dataset : "", r->dataset ? "': " : "",
                       r->attribute ? r->attribute : "", r->attribute ? ": " : "", r->message);
        if (more[0] && err) {
                size_t len = strlen(err->msg);
                aidp_text_printf(err->msg + len, sizeof err->msg - len, "%s", more);
        }
        return -EACCES;
}

void aidp_residency_appendf(char *buf, size_t size, size_t *off, const char *fmt, ...)
{
        if (size == 0 || *off >= size - 1)
                return;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(buf + *off, size - *off, fmt, ap);
        va_end(ap);
        if (k < 0)
                return;
        *off += (size_t)k;
        if (*off > size - 1)
                *off = size - 1;
}
