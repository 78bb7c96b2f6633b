/* Per-syscall views of a seccomp policy: what a name ends up doing, merging
 * and normalising rules, finding contradictions. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/internal.h"

static bool rule_names(const struct aidp_sc_rule *r, const char *name)
{
        for (size_t i = 0; i < r->n_names; i++)
                if (!strcmp(r->names[i], name))
                        return true;
        return false;
}

enum aidp_sc_effect aidp_profiles_sc_effect(const struct aidp_sc_policy *p, const char *name,
                                            const struct aidp_sc_rule **rule)
{
        enum aidp_sc_effect e = AIDP_SC_EFFECT_DEFAULT;
        if (rule)
                *rule = NULL;
        for (size_t i = 0; i < p->n_rules; i++) {
                const struct aidp_sc_rule *r = &p->rules[i];
                if (!rule_names(r, name))
                        continue;
                if (r->n_args == 0) {
                        if (rule)
                                *rule = r;
                        return AIDP_SC_EFFECT_UNCONDITIONAL;
                }
                e = AIDP_SC_EFFECT_CONDITIONAL;
        }
        return e;
}

bool aidp_profiles_sc_permits(enum aidp_sc_action a)
{
        return a == AIDP_SC_ALLOW || a == AIDP_SC_LOG;
}

static void rule_clear(struct aidp_sc_rule *r)
{
        for (size_t i = 0; i < r->n_names; i++)
                free(r->names[i]);
        free(r->names);
        free(r->args);
        memset(r, 0, sizeof *r);
}

static void drop_empty(struct aidp_sc_policy *p)
{
        size_t w = 0;
        for (size_t i = 0; i < p->n_rules; i++) {
                if (p->rules[i].n_names == 0) {
                        rule_clear(&p->rules[i]);
                        continue;
                }
                p->rules[w++] = p->rules[i];
        }
        p->n_rules = w;
}

void aidp_profiles_sc_forget(struct aidp_sc_policy *p, const char *name)
{
        for (size_t i = 0; i < p->n_rules; i++) {
                struct aidp_sc_rule *r = &p->rules[i];
                size_t w = 0;
                for (size_t j = 0; j < r->n_names; j++) {
                        if (!strcmp(r->names[j], name)) {
                                free(r->names[j]);
                                continue;
                        }
                        r->names[w++] = r->names[j];
                }
                r->n_names = w;
        }
        drop_empty(p);
}

static bool same_action(const struct aidp_sc_rule *a, enum aidp_sc_action act, int e)
{
        return a->action == act && (act != AIDP_SC_ERRNO || a->errno_ret == e);
}

void aidp_profiles_sc_normalize(struct aidp_sc_policy *p)
{
        for (size_t i = 0; i < p->n_rules; i++) {
                struct aidp_sc_rule *r = &p->rules[i];
                /* A rule with the default action changes nothing: without
                 * conditions trivially, with conditions because every other
                 * case of that syscall also gets the default (the contradiction
                 * check forbids an unconditional rule next to it). */
                if (same_action(r, p->default_action, p->default_errno)) {
                        for (size_t j = 0; j < r->n_names; j++)
                                free(r->names[j]);
                        r->n_names = 0;
                        continue;
                }
                if (r->n_args)
                        continue;
                /* Unconditional duplicates of an earlier unconditional rule
                 * with the same action: keep the first mention. */
                size_t w = 0;
                for (size_t j = 0; j < r->n_names; j++) {
                        bool dup = false;
                        for (size_t k = 0; k < i && !dup; k++)
                                if (!p->rules[k].n_args &&
                                    same_action(&p->rules[k], r->action, r->errno_ret) &&
                                    rule_names(&p->rules[k], r->names[j]))
                                        dup = true;
                        for (size_t k = 0; k < w && !dup; k++)
                                if (!strcmp(r->names[k], r->names[j]))
                                        dup = true;
                        if (dup) {
                                free(r->names[j]);
                                continue;
                        }
                        r->names[w++] = r->names[j];
                }
                r->n_names = w;
        }
        drop_empty(p);
}

static bool same_args(const struct aidp_sc_rule *a, const struct aidp_sc_rule *b)
{
        if (a->n_args != b->n_args)
                return false;
        for (size_t i = 0; i < a->n_args; i++) {
                bool found = false;
                for (size_t j = 0; j < b->n_args && !found; j++)
                        found = a->args[i].index == b->args[j].index &&
                                a->args[i].op == b->args[j].op &&
                                a->args[i].value == b->args[j].value &&
                                a->args[i].value2 == b->args[j].value2;
                if (!found)
                        return false;
        }
        return true;
}

const char *aidp_profiles_sc_contradiction(const struct aidp_sc_policy *p)
{
        for (size_t i = 0; i < p->n_rules; i++) {
                const struct aidp_sc_rule *a = &p->rules[i];
                for (size_t n = 0; n < a->n_names; n++) {
                        for (size_t j = i + 1; j < p->n_rules; j++) {
                                const struct aidp_sc_rule *b = &p->rules[j];
                                if (!rule_names(b, a->names[n]))
                                        continue;
                                bool same = same_action(a, b->action, b->errno_ret);
                                /* Unconditional + anything else with another action:
                                 * which one wins would depend on the compiler. */
                                if ((!a->n_args || !b->n_args) && !same)
                                        return a->names[n];
                                if (same_args(a, b) && !same)
                                        return a->names[n];
                        }
                }
        }
        return NULL;
}

void aidp_profiles_sc_arg_str(const struct aidp_sc_arg *a, char *buf, size_t n)
{
        static const char *const ops[] = {
                [AIDP_SC_OP_EQ] = "==", [AIDP_SC_OP_NE] = "!=", [AIDP_SC_OP_LT] = "<",
                [AIDP_SC_OP_LE] = "<=", [AIDP_SC_OP_GT] = ">",  [AIDP_SC_OP_GE] = ">=",
        };
        if (a->op == AIDP_SC_OP_MASKED_EQ)
                snprintf(buf, n, "arg%u & 0x%" PRIx64 " == 0x%" PRIx64, a->index, a->value,
                         a->value2);
        else if (a->op < AIDP_SC_OP_MASKED_EQ)
                snprintf(buf, n, "arg%u %s 0x%" PRIx64, a->index, ops[a->op], a->value);
        else
                snprintf(buf, n, "arg%u ?", a->index);
}
