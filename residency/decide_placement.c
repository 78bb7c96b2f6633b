/* Placement: may these datasets be processed on this host, with this
 * profile, together? And which egress rules stay inside the regions every
 * input allows. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "residency/decide_internal.h"

static const struct aidp_residency_rule *find_residency(const struct aidp_residency_policy *p,
                                                        const char *tag)
{
        for (size_t i = 0; p && i < p->n_residency; i++)
                if (!strcmp(p->residency[i].tag, tag))
                        return &p->residency[i];
        return NULL;
}

static const struct aidp_regulation_rule *find_regulation(const struct aidp_residency_policy *p,
                                                          const char *tag)
{
        for (size_t i = 0; p && i < p->n_regulations; i++)
                if (!strcmp(p->regulations[i].tag, tag))
                        return &p->regulations[i];
        return NULL;
}

static bool host_has_zone(const struct aidp_host_identity *h, const char *zone)
{
        for (size_t i = 0; i < h->n_zones; i++)
                if (!strcmp(h->zones[i], zone))
                        return true;
        return false;
}

static bool region_allowed(const struct aidp_residency_rule *rule, const char *region)
{
        for (size_t i = 0; i < rule->n_regions; i++)
                if (aidp_residency_region_match(rule->regions[i], region))
                        return true;
        return false;
}

/* Operations that put plaintext on this host (detokenize turns tokens back
 * into identifiers); inspect and lineage-read only read authenticated
 * headers and records. */
static bool op_places_data(enum aidp_residency_op op)
{
        switch (op) {
        case AIDP_OP_RUN:
        case AIDP_OP_SEAL:
        case AIDP_OP_UNSEAL:
        case AIDP_OP_DETOKENIZE: return true;
        case AIDP_OP_INSPECT:
        case AIDP_OP_LINEAGE_READ:
        case AIDP_OP_MAX: break;
        }
        return false;
}

static const char *no_host_msg = "no host identity is installed (/etc/aidp/host.yaml)";

/* Untagged data at or above require_residency_from (default restricted, also
 * without residency.yaml) is refused: where it may be processed is unknown. */
static void check_required_tags(struct aidp_dctx *c, const struct aidp_dataset_facts *ds)
{
        const struct aidp_residency_policy *rp = c->req->residency;
        enum aidp_classification from =
                rp ? rp->require_residency_from : AIDP_RESIDENCY_REQUIRE_DEFAULT;
        if (ds->tags.n_residency || from >= AIDP_CLASS_MAX || ds->tags.classification < from)
                return;
        aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_RESIDENCY, "require_residency_from",
                              rp && rp->require_loc.line ? &rp->require_loc : NULL, ds->name,
                              "residency",
                              "dataset '%s' is %s and carries no residency tag; data from %s up "
                              "must carry one (require_residency_from%s)",
                              ds->name, aidp_residency_classification_name(ds->tags.classification),
                              aidp_residency_classification_name(from),
                              rp && rp->require_loc.line ? "" : ", the default");
}

static void check_residency(struct aidp_dctx *c, const struct aidp_dataset_facts *ds)
{
        const struct aidp_residency_policy *rp = c->req->residency;
        const struct aidp_host_identity *host = c->req->host;
        char rule[128], list[512];

        check_required_tags(c, ds);
        for (size_t t = 0; t < ds->tags.n_residency; t++) {
                const char *tag = ds->tags.residency[t];
                const struct aidp_residency_rule *r = find_residency(rp, tag);
                snprintf(rule, sizeof rule, "residency.%s", tag);
                if (!r) {
                        aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_RESIDENCY, rule, NULL,
                                              ds->name, "residency",
                                              "residency tag '%s' has no rule in %s: default deny",
                                              tag, rp ? rp->source : "any installed policy");
                        continue;
                }
                if (!host) {
                        aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_RESIDENCY, rule,
                                              &r->loc, ds->name, "region", "%s", no_host_msg);
                        continue;
                }
                aidp_residency_join(list, sizeof list, r->regions, r->n_regions);
                if (region_allowed(r, host->region))
                        aidp_residency_reason(c, AIDP_REASON_PASS, AIDP_CHECK_RESIDENCY, rule,
                                              &r->loc, ds->name, "region",
                                              "host region '%s' matches [%s]", host->region, list);
                else
                        aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_RESIDENCY, rule,
                                              &r->loc, ds->name, "region",
                                              "host region '%s' matches none of [%s]", host->region,
                                              list);
                if (r->n_jurisdictions == 0)
                        continue;
                aidp_residency_join(list, sizeof list, r->jurisdictions, r->n_jurisdictions);
                bool ok = false;
                for (size_t k = 0; host->jurisdiction && k < r->n_jurisdictions && !ok; k++)
                        ok = !strcmp(r->jurisdictions[k], host->jurisdiction);
                aidp_residency_reason(c, ok ? AIDP_REASON_PASS : AIDP_REASON_FAIL,
                                      AIDP_CHECK_RESIDENCY, rule, &r->loc, ds->name, "jurisdiction",
                                      "host jurisdiction '%s' %s [%s]",
                                      host->jurisdiction ? host->jurisdiction : "(none)",
                                      ok ? "is in" : "is not in", list);
        }
}

/* Each missing zone is its own FAIL, so the trail names exactly what is missing. */
static void check_zones(struct aidp_dctx *c, enum aidp_reason_check check, const char *rule,
                        const struct aidp_rule_loc *loc, const struct aidp_dataset_facts *ds,
                        char *const *zones, size_t n_zones, const char *what)
{
        const struct aidp_host_identity *host = c->req->host;
        char list[512];
        if (n_zones == 0)
                return;
        if (!host) {
                aidp_residency_reason(c, AIDP_REASON_FAIL, check, rule, loc, ds->name, "zone", "%s",
                                      no_host_msg);
                return;
        }
        bool all = true;
        for (size_t z = 0; z < n_zones; z++)
                if (!host_has_zone(host, zones[z])) {
                        all = false;
                        aidp_residency_reason(
                                c, AIDP_REASON_FAIL, check, rule, loc, ds->name, "zone",
                                "host %s lacks compliance zone '%s' required by %s",
                                host->node ? host->node : host->region, zones[z], what);
                }
        if (all)
                aidp_residency_reason(c, AIDP_REASON_PASS, check, rule, loc, ds->name, "zone",
                                      "host holds the zones required by %s [%s]", what,
                                      aidp_residency_join(list, sizeof list, zones, n_zones));
}

static void check_regulations(struct aidp_dctx *c, const struct aidp_dataset_facts *ds)
{
        const struct aidp_residency_policy *rp = c->req->residency;
        for (size_t t = 0; t < ds->tags.n_regulations; t++) {
                const char *tag = ds->tags.regulations[t];
                const struct aidp_regulation_rule *r = find_regulation(rp, tag);
                char rule[128], what[128];
                snprintf(rule, sizeof rule, "regulations.%s", tag);
                if (!r) {
                        aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_REGULATION, rule,
                                              NULL, ds->name, "regulation",
                                              "regulation tag '%s' has no rule in %s: default deny",
                                              tag, rp ? rp->source : "any installed policy");
                        continue;
                }
                if (r->n_zones == 0) {
                        aidp_residency_reason(c, AIDP_REASON_PASS, AIDP_CHECK_REGULATION, rule,
                                              &r->loc, ds->name, "zone",
                                              "regulation '%s' requires no zone", tag);
                        continue;
                }
                snprintf(what, sizeof what, "regulation '%s'", tag);
                check_zones(c, AIDP_CHECK_REGULATION, rule, &r->loc, ds, r->zones, r->n_zones,
                            what);
        }
}

static const char *net_name(enum aidp_residency_net m)
{
        switch (m) {
        case AIDP_RESIDENCY_NET_NONE: return "none";
        case AIDP_RESIDENCY_NET_EGRESS: return "egress";
        case AIDP_RESIDENCY_NET_MAX: break;
        }
        return "?";
}

/* classifications.LEVEL.profile.writableBinds: false. A writable bind puts
 * whatever the job writes there on the host's disk, outside the shredded
 * tmpfs: data of this level may not be run with one. */
static void check_writable_binds(struct aidp_dctx *c, const struct aidp_classification_rule *r,
                                 const struct aidp_dataset_facts *ds, const char *rule,
                                 const char *what)
{
        const struct aidp_residency_profile *prof = c->req->profile;
        if (prof && prof->n_writable_binds) {
                char more[48] = "";
                if (prof->n_writable_binds > 1)
                        snprintf(more, sizeof more, " and %zu more", prof->n_writable_binds - 1);
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_CLASSIFICATION, rule, &r->loc,
                                      ds->name, "writableBinds",
                                      "the run binds %s%s writable; %s forbids writable binds",
                                      prof->writable_binds[0], more, what);
        } else
                aidp_residency_reason(c, AIDP_REASON_PASS, AIDP_CHECK_CLASSIFICATION, rule, &r->loc,
                                      ds->name, "writableBinds", "no writable bind, as %s requires",
                                      what);
}

static void check_classification(struct aidp_dctx *c, const struct aidp_dataset_facts *ds)
{
        const struct aidp_residency_policy *rp = c->req->residency;
        const struct aidp_residency_profile *prof = c->req->profile;
        for (size_t i = 0; rp && i < rp->n_classifications; i++) {
                const struct aidp_classification_rule *r = &rp->classifications[i];
                if (ds->tags.classification < r->level)
                        continue;
                const char *lvl = aidp_residency_classification_name(r->level);
                char rule[128], what[128];
                snprintf(rule, sizeof rule, "classifications.%s", lvl);
                snprintf(what, sizeof what, "classification %s%s", lvl,
                         ds->tags.classification > r->level ? " and above" : "");
                check_zones(c, AIDP_CHECK_CLASSIFICATION, rule, &r->loc, ds, r->zones, r->n_zones,
                            what);
                /* Sandbox properties: only a run has them. */
                if (c->req->op != AIDP_OP_RUN)
                        continue;
                if (r->forbid_writable_binds)
                        check_writable_binds(c, r, ds, rule, what);
                if (!r->require_network)
                        continue;
                if (!prof)
                        aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_CLASSIFICATION, rule,
                                              &r->loc, ds->name, "network",
                                              "no profile to check: %s requires network: %s", what,
                                              net_name(r->network));
                else if (prof->network != r->network)
                        aidp_residency_reason(
                                c, AIDP_REASON_FAIL, AIDP_CHECK_CLASSIFICATION, rule, &r->loc,
                                ds->name, "network",
                                "profile '%s' has network: %s; %s requires network: %s", prof->name,
                                net_name(prof->network), what, net_name(r->network));
                else
                        aidp_residency_reason(c, AIDP_REASON_PASS, AIDP_CHECK_CLASSIFICATION, rule,
                                              &r->loc, ds->name, "network",
                                              "profile '%s' has network: %s as %s requires",
                                              prof->name, net_name(prof->network), what);
        }
}

/* The residency constraints of the inputs as clauses: a region must match a
 * pattern of every clause. */
struct clause {
        const struct aidp_dataset_facts *ds;
        const struct aidp_residency_rule *rule;
};

static bool region_satisfies(const struct clause *v, size_t n, const char *region,
                             const struct clause **failed)
{
        for (size_t i = 0; i < n; i++)
                if (!region_allowed(v[i].rule, region)) {
                        if (failed)
                                *failed = &v[i];
                        return false;
                }
        return true;
}

/* Whether some region satisfies every clause. Patterns are names or
 * prefixes, so if one does, the most specific pattern picked by that region
 * (with its '*' stripped) does too: trying each pattern is enough. The
 * witness is the pattern. */
static bool satisfiable(const struct clause *v, size_t n, const char **witness)
{
        if (n == 0)
                return true;
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < v[i].rule->n_regions; k++) {
                        const char *p = v[i].rule->regions[k];
                        char cand[AIDP_NAME_MAX + 2];
                        snprintf(cand, sizeof cand, "%s", p);
                        size_t len = strlen(cand);
                        if (len && cand[len - 1] == '*')
                                cand[len - 1] = '\0';
                        if (region_satisfies(v, n, cand, NULL)) {
                                *witness = p;
                                return true;
                        }
                }
        return false;
}

static size_t collect_clauses(const struct aidp_decision_request *req, size_t from, size_t to,
                              struct clause *out, size_t max)
{
        size_t n = 0;
        for (size_t d = from; d < to; d++)
                for (size_t t = 0; t < req->datasets[d].tags.n_residency; t++) {
                        const struct aidp_residency_rule *r =
                                find_residency(req->residency, req->datasets[d].tags.residency[t]);
                        if (r && n < max)
                                out[n++] = (struct clause){&req->datasets[d], r};
                }
        return n;
}

static size_t count_clauses(const struct aidp_decision_request *req)
{
        size_t n = 0;
        for (size_t d = 0; d < req->n_datasets; d++)
                n += req->datasets[d].tags.n_residency;
        return n;
}

static void tags_of(char *buf, size_t size, const struct aidp_dataset_facts *ds)
{
        aidp_residency_join(buf, size, ds->tags.residency, ds->tags.n_residency);
}

static void check_mix(struct aidp_dctx *c)
{
        const struct aidp_decision_request *req = c->req;
        if (req->n_datasets < 2 || !req->residency)
                return;
        size_t max = count_clauses(req);
        if (max == 0)
                return;
        _cleanup_free_ struct clause *all = calloc(max, sizeof *all);
        _cleanup_free_ struct clause *pair = calloc(max, sizeof *pair);
        if (!all || !pair) {
                c->oom = true;
                return;
        }
        bool pair_failed = false;
        const char *witness = NULL;
        for (size_t i = 0; i < req->n_datasets; i++)
                for (size_t j = i + 1; j < req->n_datasets; j++) {
                        size_t n = collect_clauses(req, i, i + 1, pair, max);
                        n += collect_clauses(req, j, j + 1, pair + n, max - n);
                        if (satisfiable(pair, n, &witness))
                                continue;
                        char ti[256], tj[256];
                        tags_of(ti, sizeof ti, &req->datasets[i]);
                        tags_of(tj, sizeof tj, &req->datasets[j]);
                        pair_failed = true;
                        aidp_residency_reason(
                                c, AIDP_REASON_FAIL, AIDP_CHECK_MIX, "residency", NULL,
                                req->datasets[i].name, "residency",
                                "datasets '%s' [%s] and '%s' [%s] allow no region in common: "
                                "they cannot be mixed in one run",
                                req->datasets[i].name, ti, req->datasets[j].name, tj);
                }
        if (pair_failed)
                return;
        size_t n = collect_clauses(req, 0, req->n_datasets, all, max);
        if (!satisfiable(all, n, &witness))
                aidp_residency_reason(c, AIDP_REASON_FAIL, AIDP_CHECK_MIX, "residency", NULL, NULL,
                                      "residency",
                                      "the residency tags of all %zu inputs together allow no "
                                      "region: they cannot be mixed in one run",
                                      req->n_datasets);
        else if (n > 0)
                aidp_residency_reason(c, AIDP_REASON_PASS, AIDP_CHECK_MIX, "residency", NULL, NULL,
                                      "residency",
                                      "the %zu inputs' residency sets intersect (e.g. regions "
                                      "matching '%s')",
                                      req->n_datasets, witness);
}

void aidp_residency_decide_placement(struct aidp_dctx *c)
{
        const struct aidp_decision_request *req = c->req;
        if (!op_places_data(req->op))
                return;
        for (size_t i = 0; i < req->n_datasets && !c->oom; i++) {
                check_residency(c, &req->datasets[i]);
                check_regulations(c, &req->datasets[i]);
                check_classification(c, &req->datasets[i]);
        }
        if (!c->oom)
                check_mix(c);
}

static void describe_egress(char *buf, size_t size, const struct aidp_residency_egress *r)
{
        size_t off = 0;
        buf[0] = '\0';
        aidp_residency_appendf(buf, size, &off, "%s", r->cidr ? r->cidr : r->fqdn ? r->fqdn : "?");
        if (r->port_min || r->port_max) {
                if (r->port_min == r->port_max)
                        aidp_residency_appendf(buf, size, &off, " port %u", r->port_min);
                else
                        aidp_residency_appendf(buf, size, &off, " ports %u-%u", r->port_min,
                                               r->port_max);
        }
        if (r->protocol == IPPROTO_TCP)
                aidp_residency_appendf(buf, size, &off, "/tcp");
        else if (r->protocol == IPPROTO_UDP)
                aidp_residency_appendf(buf, size, &off, "/udp");
}

/* The jurisdiction of an egress destination's region: the first entry of
 * residency.yaml's jurisdictions: whose patterns match it; NULL if none. */
static const char *region_jurisdiction(const struct aidp_residency_policy *rp, const char *region)
{
        for (size_t i = 0; rp && i < rp->n_jurisdictions; i++)
                for (size_t k = 0; k < rp->jurisdictions[i].n_regions; k++)
                        if (aidp_residency_region_match(rp->jurisdictions[i].regions[k], region))
                                return rp->jurisdictions[i].name;
        return NULL;
}

/* A residency rule with jurisdictions binds egress too: the destination's
 * region must lie in one of them (an unknown jurisdiction is outside). */
static const struct clause *jurisdiction_fails(const struct aidp_residency_policy *rp,
                                               const struct clause *v, size_t n, const char *region,
                                               const char **jur)
{
        *jur = region_jurisdiction(rp, region);
        for (size_t i = 0; i < n; i++) {
                const struct aidp_residency_rule *r = v[i].rule;
                if (r->n_jurisdictions &&
                    (!*jur || !aidp_strv_contains(r->jurisdictions, r->n_jurisdictions, *jur)))
                        return &v[i];
        }
        return NULL;
}

static void egress_outside(struct aidp_dctx *c, size_t i, const char *rule, const char *desc,
                           const struct clause *failed, const char *what,
                           enum aidp_egress_out_of_region oor)
{
        c->d->egress_keep[i] = false;
        aidp_residency_reason(
                c, oor == AIDP_EGRESS_OOR_DENY ? AIDP_REASON_FAIL : AIDP_REASON_INFO,
                AIDP_CHECK_EGRESS, rule, &failed->rule->loc, failed->ds->name, "jurisdiction",
                "egress rule %s is %s of residency '%s': %s", desc, what, failed->rule->tag,
                oor == AIDP_EGRESS_OOR_DENY ? "run refused (egress.out_of_region: deny)"
                                            : "dropped");
}

void aidp_residency_decide_egress(struct aidp_dctx *c)
{
        const struct aidp_decision_request *req = c->req;
        const struct aidp_residency_profile *prof = req->profile;
        const struct aidp_residency_policy *rp = req->residency;
        if (!prof || prof->n_egress == 0)
                return;
        if (prof->network != AIDP_RESIDENCY_NET_EGRESS) {
                aidp_residency_reason(c, AIDP_REASON_INFO, AIDP_CHECK_EGRESS, "egress", NULL, NULL,
                                      "network",
                                      "profile '%s' has network: none; its %zu egress rules are "
                                      "not used",
                                      prof->name, prof->n_egress);
                return;
        }
        size_t max = count_clauses(req);
        _cleanup_free_ struct clause *cl = calloc(max ? max : 1, sizeof *cl);
        if (!cl) {
                c->oom = true;
                return;
        }
        size_t n = collect_clauses(req, 0, req->n_datasets, cl, max);
        if (n == 0) {
                for (size_t i = 0; i < prof->n_egress; i++)
                        c->d->egress_keep[i] = true;
                aidp_residency_reason(c, AIDP_REASON_INFO, AIDP_CHECK_EGRESS, "egress", NULL, NULL,
                                      "region",
                                      "no input carries a residency tag: all %zu egress rules "
                                      "are kept",
                                      prof->n_egress);
                return;
        }
        enum aidp_egress_untagged untagged = rp ? rp->egress_untagged : AIDP_EGRESS_UNTAGGED_DROP;
        enum aidp_egress_out_of_region oor = rp ? rp->egress_out_of_region : AIDP_EGRESS_OOR_DROP;
        const struct aidp_rule_loc *loc = rp ? &rp->egress_loc : NULL;
        for (size_t i = 0; i < prof->n_egress && !c->oom; i++) {
                const struct aidp_residency_egress *e = &prof->egress[i];
                char rule[64], desc[320];
                snprintf(rule, sizeof rule, "egress[%zu]", i);
                describe_egress(desc, sizeof desc, e);
                if (!e->region) {
                        bool keep = untagged == AIDP_EGRESS_UNTAGGED_KEEP;
                        c->d->egress_keep[i] = keep;
                        aidp_residency_reason(
                                c, AIDP_REASON_INFO, AIDP_CHECK_EGRESS, rule, loc, NULL, "region",
                                "egress rule %s has no region: %s (egress.untagged: %s)", desc,
                                keep ? "kept" : "dropped", keep ? "keep" : "drop");
                        continue;
                }
                const struct clause *failed = NULL;
                const char *jur = NULL;
                if (region_satisfies(cl, n, e->region, &failed) &&
                    (failed = jurisdiction_fails(rp, cl, n, e->region, &jur))) {
                        char what[256], list[256];
                        snprintf(what, sizeof what,
                                 "in jurisdiction '%s' (region '%s'), outside [%s]",
                                 jur ? jur : "unknown", e->region,
                                 aidp_residency_join(list, sizeof list, failed->rule->jurisdictions,
                                                     failed->rule->n_jurisdictions));
                        egress_outside(c, i, rule, desc, failed, what, oor);
                        continue;
                }
                if (!failed) {
                        c->d->egress_keep[i] = true;
                        aidp_residency_reason(c, AIDP_REASON_PASS, AIDP_CHECK_EGRESS, rule, loc,
                                              NULL, "region",
                                              "egress rule %s is in region '%s', allowed for every "
                                              "input: kept",
                                              desc, e->region);
                        continue;
                }
                char list[512];
                aidp_residency_join(list, sizeof list, failed->rule->regions,
                                    failed->rule->n_regions);
                c->d->egress_keep[i] = false;
                aidp_residency_reason(
                        c, oor == AIDP_EGRESS_OOR_DENY ? AIDP_REASON_FAIL : AIDP_REASON_INFO,
                        AIDP_CHECK_EGRESS, rule, &failed->rule->loc, failed->ds->name, "region",
                        "egress rule %s is in region '%s', outside [%s] of residency "
                        "'%s': %s",
                        desc, e->region, list, failed->rule->tag,
                        oor == AIDP_EGRESS_OOR_DENY ? "run refused (egress.out_of_region: deny)"
                                                    : "dropped");
        }
}
