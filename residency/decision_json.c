/* The decision as a json-c object, for lineage. */
#include <json-c/json.h>

#include "common/cleanup.h"
#include "residency/decide.h"
#include "residency/decide_internal.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put)

int aidp_residency_json_add(struct json_object *o, const char *key, struct json_object *v)
{
        if (!v)
                return -1;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -1;
        }
        return 0;
}

int aidp_residency_json_add_str(struct json_object *o, const char *key, const char *s)
{
        /* json-c represents JSON null as a NULL object. */
        if (!s)
                return json_object_object_add(o, key, NULL);
        return aidp_residency_json_add(o, key, json_object_new_string(s));
}

static struct json_object *strv_json(char *const *v, size_t n)
{
        struct json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < n; i++) {
                struct json_object *s = json_object_new_string(v[i]);
                if (!s || json_object_array_add(a, s) < 0) {
                        json_object_put(s);
                        json_object_put(a);
                        return NULL;
                }
        }
        return a;
}

static int add_tags(struct json_object *o, const struct aidp_data_tags *t)
{
        if (aidp_residency_json_add_str(o, "classification",
                                        aidp_residency_classification_name(t->classification)) <
                    0 ||
            aidp_residency_json_add(o, "residency", strv_json(t->residency, t->n_residency)) < 0 ||
            aidp_residency_json_add(o, "regulations", strv_json(t->regulations, t->n_regulations)) <
                    0)
                return -1;
        return 0;
}

static struct json_object *tags_json(const struct aidp_data_tags *t)
{
        _cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
        if (!o || add_tags(o, t) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static struct json_object *dataset_json(const struct aidp_dataset_facts *f)
{
        _cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
        if (!o || aidp_residency_json_add_str(o, "name", f->name) < 0 ||
            aidp_residency_json_add_str(o, "version", f->version) < 0 ||
            aidp_residency_json_add_str(o, "key_id", f->key_id) < 0 || add_tags(o, &f->tags) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* [{"role": R, "view": V|null, "source": S|null}, ...]: the granting roles
 * and their views (null: labelled columns dropped). */
static struct json_object *views_json(const struct aidp_dataset_views *v)
{
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < v->n_grants; i++) {
                struct json_object *g = json_object_new_object();
                if (!g || json_object_array_add(a, g) < 0) {
                        json_object_put(g);
                        return NULL;
                }
                if (aidp_residency_json_add_str(g, "role", v->grants[i].role) < 0 ||
                    aidp_residency_json_add_str(g, "view", v->grants[i].view) < 0 ||
                    aidp_residency_json_add_str(g, "source", v->grants[i].source) < 0)
                        return NULL;
        }
        return TAKE_PTR(a);
}

static struct json_object *reason_json(const struct aidp_reason *r)
{
        _cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
        if (!o ||
            aidp_residency_json_add_str(o, "result", aidp_residency_result_name(r->result)) < 0 ||
            aidp_residency_json_add_str(o, "check", aidp_residency_check_name(r->check)) < 0 ||
            aidp_residency_json_add_str(o, "rule", r->rule) < 0 ||
            aidp_residency_json_add_str(o, "source", r->source) < 0 ||
            aidp_residency_json_add_str(o, "dataset", r->dataset) < 0 ||
            aidp_residency_json_add_str(o, "attribute", r->attribute) < 0 ||
            aidp_residency_json_add_str(o, "message", r->message) < 0)
                return NULL;
        return TAKE_PTR(o);
}

struct json_object *aidp_residency_decision_to_json(const struct aidp_decision *d)
{
        _cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
        if (!o || aidp_residency_json_add_str(o, "decision", d->allow ? "allow" : "deny") < 0 ||
            aidp_residency_json_add_str(o, "operation", aidp_residency_op_name(d->op)) < 0 ||
            aidp_residency_json_add_str(o, "user", d->user) < 0 ||
            aidp_residency_json_add(o, "uid", json_object_new_int64(d->uid)) < 0 ||
            aidp_residency_json_add(o, "groups", strv_json(d->groups, d->n_groups)) < 0 ||
            aidp_residency_json_add_str(o, "profile", d->profile) < 0 ||
            aidp_residency_json_add_str(o, "host_node", d->host_node) < 0 ||
            aidp_residency_json_add_str(o, "host_region", d->host_region) < 0 ||
            aidp_residency_json_add(o, "time", json_object_new_int64(d->epoch)) < 0)
                return NULL;

        struct json_object *ds = json_object_new_array();
        if (aidp_residency_json_add(o, "datasets", ds) < 0)
                return NULL;
        for (size_t i = 0; i < d->n_datasets; i++) {
                struct json_object *x = dataset_json(&d->datasets[i]);
                if (x && d->views &&
                    aidp_residency_json_add(x, "views", views_json(&d->views[i])) < 0) {
                        json_object_put(x);
                        return NULL;
                }
                if (!x || json_object_array_add(ds, x) < 0) {
                        json_object_put(x);
                        return NULL;
                }
        }
        struct json_object *rs = json_object_new_array();
        if (aidp_residency_json_add(o, "reasons", rs) < 0)
                return NULL;
        for (size_t i = 0; i < d->n_reasons; i++) {
                struct json_object *x = reason_json(&d->reasons[i]);
                if (!x || json_object_array_add(rs, x) < 0) {
                        json_object_put(x);
                        return NULL;
                }
        }
        if (d->n_egress) {
                struct json_object *eg = json_object_new_array();
                if (aidp_residency_json_add(o, "egress_kept", eg) < 0)
                        return NULL;
                for (size_t i = 0; i < d->n_egress; i++) {
                        struct json_object *b = json_object_new_boolean(d->egress_keep[i]);
                        if (!b || json_object_array_add(eg, b) < 0) {
                                json_object_put(b);
                                return NULL;
                        }
                }
        }
        if (aidp_residency_json_add(o, "outputs", tags_json(&d->outputs)) < 0 ||
            aidp_residency_json_add(o, "decided", json_object_new_boolean(d->decided)) < 0 ||
            aidp_residency_json_add_str(o, "enforcement", d->audit ? "audit" : "enforce") < 0)
                return NULL;
        if (d->output_key_rule &&
            (aidp_residency_json_add_str(o, "output_key", d->output_key) < 0 ||
             aidp_residency_json_add_str(o, "output_key_rule", d->output_key_rule) < 0))
                return NULL;
        if (d->leak_rule[0] &&
            (aidp_residency_json_add_str(o, "leak_scan",
                                         aidp_residency_leak_action_name(d->leak_action)) < 0 ||
             aidp_residency_json_add_str(o, "leak_scan_rule", d->leak_rule) < 0))
                return NULL;
        if (d->until && (aidp_residency_json_add(o, "until", json_object_new_int64(d->until)) < 0 ||
                         aidp_residency_json_add_str(o, "until_rule", d->until_rule) < 0))
                return NULL;
        return TAKE_PTR(o);
}
