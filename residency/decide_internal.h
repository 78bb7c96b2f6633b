#pragma once
/* Shared state of one decision (internal to residency/). */
#include <stdarg.h>

#include "residency/decide.h"

struct aidp_dctx {
        const struct aidp_decision_request *req;
        struct aidp_decision *d;
        bool oom; /* an allocation failed: the whole decision fails */
};

/* Append a reason; on allocation failure sets c->oom. rule/loc/dataset/
 * attribute may be NULL. */
void aidp_residency_reason(struct aidp_dctx *c, enum aidp_reason_result result,
                           enum aidp_reason_check check, const char *rule,
                           const struct aidp_rule_loc *loc, const char *dataset,
                           const char *attribute, const char *fmt, ...)
        __attribute__((format(printf, 8, 9)));

/* "a, b, c" of a string list into buf (truncated with "..."). */
const char *aidp_residency_join(char *buf, size_t size, char *const *v, size_t n);

void aidp_residency_decide_access(struct aidp_dctx *c);
void aidp_residency_decide_leak_scan(struct aidp_dctx *c);
/* Record the views of the roles granting dataset i (decide_views.c). */
void aidp_residency_decide_views(struct aidp_dctx *c, size_t i,
                                 const struct aidp_role *const *roles, size_t n);
void aidp_residency_views_free(struct aidp_dataset_views *v, size_t n);
void aidp_residency_decide_placement(struct aidp_dctx *c);
void aidp_residency_decide_egress(struct aidp_dctx *c);
void aidp_residency_decide_output_key(struct aidp_dctx *c);

/* o[key] = v, taking ownership of v also on failure (v == NULL is an
 * allocation failure); _str adds a string, JSON null for NULL. < 0 on failure. */
struct json_object;
int aidp_residency_json_add(struct json_object *o, const char *key, struct json_object *v);
int aidp_residency_json_add_str(struct json_object *o, const char *key, const char *s);

/* snprintf at buf + *off, clamped: never writes past size, keeps *off <= size - 1. */
void aidp_residency_appendf(char *buf, size_t size, size_t *off, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
