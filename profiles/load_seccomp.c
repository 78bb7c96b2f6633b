/* Phase 2 of loading a profile: the seccomp section.
 *
 * Order inside one file: `reset`, then `import` (an OCI/Docker JSON policy,
 * resolved against the capabilities gathered from every layer, which is why
 * capabilities are applied before any seccomp section), then `default` and
 * `style`, then `syscalls`. A file that names a syscall takes it over: every
 * inherited rule naming it is dropped before this file's rules are added, so
 * the effect of a child never depends on the details of its parents' rules.
 * Names that exist only on another architecture are dropped with a note, so a
 * profile stays portable. The compiled filter is built later, by
 * seccomp_compile.c, from the normalised policy left here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/load_internal.h"

static int parse_sc_arg(struct loader *ld, ytree *t, ynode *n, const char *path,
                        struct aidp_sc_arg *a)
{
        static const char *const keys[] = {"index", "op", "value", "mask", NULL};
        static const struct {
                const char *name;
                enum aidp_sc_op op;
        } ops[] = {{"eq", AIDP_SC_OP_EQ},
                   {"ne", AIDP_SC_OP_NE},
                   {"lt", AIDP_SC_OP_LT},
                   {"le", AIDP_SC_OP_LE},
                   {"gt", AIDP_SC_OP_GT},
                   {"ge", AIDP_SC_OP_GE},
                   {"masked-eq", AIDP_SC_OP_MASKED_EQ}};
        int rc = aidp_yaml_check_keys(t, n, path, keys, ld->err);
        if (rc < 0)
                return rc;
        memset(a, 0, sizeof *a);
        char p[160];
        const char *s;
        uint64_t v;
        ynode *in = aidp_yaml_get(t, n, "index", NULL);
        PATHF(p, "%s.index", path);
        if (!in)
                return YERR(t, n, p, "found nothing, expected an argument index 0..5");
        if ((rc = aidp_yaml_scalar(t, in, p, "an argument index 0..5", &s, ld->err)) < 0)
                return rc;
        if (aidp_profiles_parse_uint(s, false, &v) < 0 || v > 5)
                return YERR(t, in, p, "found '%s', expected an argument index 0..5", s);
        a->index = (unsigned)v;
        ynode *on = aidp_yaml_get(t, n, "op", NULL);
        PATHF(p, "%s.op", path);
        if (!on)
                return YERR(t, n, p, "found nothing, expected eq, ne, lt, le, gt, ge or masked-eq");
        if ((rc = aidp_yaml_scalar(t, on, p, "a comparison", &s, ld->err)) < 0)
                return rc;
        size_t i;
        for (i = 0; i < ARRAY_SIZE(ops); i++)
                if (!strcmp(s, ops[i].name))
                        break;
        if (i == ARRAY_SIZE(ops))
                return YERR(t, on, p, "found '%s', expected eq, ne, lt, le, gt, ge or masked-eq",
                            s);
        a->op = ops[i].op;
        ynode *vn = aidp_yaml_get(t, n, "value", NULL);
        PATHF(p, "%s.value", path);
        if (!vn)
                return YERR(t, n, p, "found nothing, expected a number (decimal or 0x hex)");
        if ((rc = aidp_yaml_scalar(t, vn, p, "a number", &s, ld->err)) < 0)
                return rc;
        if (aidp_profiles_parse_uint(s, true, &v) < 0)
                return YERR(t, vn, p,
                            "found '%s', expected a non-negative number (decimal or 0x hex)", s);
        ynode *mn = aidp_yaml_get(t, n, "mask", NULL);
        if (a->op == AIDP_SC_OP_MASKED_EQ) {
                uint64_t m;
                PATHF(p, "%s.mask", path);
                if (!mn)
                        return YERR(t, n, p, "found nothing, expected a mask for masked-eq");
                if ((rc = aidp_yaml_scalar(t, mn, p, "a number", &s, ld->err)) < 0)
                        return rc;
                if (aidp_profiles_parse_uint(s, true, &m) < 0)
                        return YERR(
                                t, mn, p,
                                "found '%s', expected a non-negative number (decimal or 0x hex)",
                                s);
                if (v & ~m)
                        return YERR(t, vn, path,
                                    "found value bits outside the mask, expected (arg & mask) == "
                                    "value to be satisfiable");
                a->value = m;
                a->value2 = v;
        } else {
                if (mn)
                        return YERR(t, mn, path,
                                    "found a mask, expected it only with op: masked-eq");
                a->value = v;
        }
        return 0;
}

struct sc_rule_pos {
        struct aidp_sc_rule r;
        ynode *node;
        ynode **name_nodes;
};

static void sc_rule_clear(struct sc_rule_pos *r)
{
        for (size_t j = 0; j < r->r.n_names; j++)
                free(r->r.names[j]);
        free(r->r.names);
        free(r->r.args);
        free(r->name_nodes);
        memset(r, 0, sizeof *r);
}

static void sc_rules_free(struct sc_rule_pos *rs, size_t n)
{
        for (size_t i = 0; i < n; i++)
                sc_rule_clear(&rs[i]);
        free(rs);
}

/* A rule's args: at most six conditions (the syscall's six arguments), one
 * per argument; libseccomp ANDs the conditions of one rule. */
static int parse_sc_args(struct loader *ld, ytree *t, ynode *args, const char *path,
                         struct sc_rule_pos *out)
{
        char p[160];
        int rc;
        PATHF(p, "%s.args", path);
        if ((rc = aidp_ld_expect_list(ld, t, args, p, "a list of {index, op, value[, mask]}")) < 0)
                return rc;
        size_t na = (size_t)(args->data.sequence.items.top - args->data.sequence.items.start);
        if (na > 6)
                return YERR(t, args, p, "found %zu conditions, expected at most 6", na);
        out->r.args = calloc(na ? na : 1, sizeof *out->r.args);
        if (!out->r.args)
                return aidp_ld_oom(ld->err);
        {
                ynode *item;
                FOREACH_ITEM(t, args, i, item)
                {
                        char ip[192];
                        PATHF(ip, "%s[%zu]", p, i);
                        if ((rc = parse_sc_arg(ld, t, item, ip, &out->r.args[i])) < 0)
                                return rc;
                        for (size_t j = 0; j < i; j++)
                                if (out->r.args[j].index == out->r.args[i].index)
                                        return YERR(t, item, ip,
                                                    "found a second condition on arg%u, "
                                                    "expected one condition per argument "
                                                    "(write two rules to OR them)",
                                                    out->r.args[i].index);
                        out->r.n_args = i + 1;
                }
        }
        return 0;
}

static int parse_sc_rule(struct loader *ld, ytree *t, ynode *n, const char *path, uint32_t arch,
                         struct sc_rule_pos *out)
{
        static const char *const keys[] = {"names", "action", "args", NULL};
        int rc = aidp_yaml_check_keys(t, n, path, keys, ld->err);
        if (rc < 0)
                return rc;
        memset(out, 0, sizeof *out);
        out->node = n;
        char p[160];
        const char *s;
        ynode *an = aidp_yaml_get(t, n, "action", NULL);
        PATHF(p, "%s.action", path);
        if (!an)
                return YERR(t, n, p,
                            "found nothing, expected allow, log, errno(E...), kill-process, "
                            "kill-thread or trap");
        if ((rc = aidp_yaml_scalar(t, an, p, "an action", &s, ld->err)) < 0)
                return rc;
        if (aidp_profiles_action_parse(s, &out->r.action, &out->r.errno_ret) < 0) {
                static const char *const actions[] = {"allow",        "log",         "errno(EPERM)",
                                                      "kill-process", "kill-thread", "trap"};
                struct aidp_suggest sg;
                char dym[AIDP_SUGGEST_MAX + 32];
                aidp_suggest_table(&sg, s, actions, ARRAY_SIZE(actions), sizeof *actions);
                return YERR(t, an, p,
                            "found '%s', expected allow, log, errno(EPERM|<errno name>|<1..4095>), "
                            "kill-process, kill-thread or trap%s",
                            s, aidp_suggest_text(&sg, dym, sizeof dym));
        }
        ynode *nn = aidp_yaml_get(t, n, "names", NULL);
        PATHF(p, "%s.names", path);
        if (!nn)
                return YERR(t, n, p, "found nothing, expected a list of syscall names");
        if ((rc = aidp_ld_expect_list(ld, t, nn, p, "a list of syscall names")) < 0)
                return rc;
        size_t cnt = (size_t)(nn->data.sequence.items.top - nn->data.sequence.items.start);
        if (!cnt)
                return YERR(t, nn, p, "found an empty list, expected at least one syscall name");
        out->r.names = calloc(cnt, sizeof(char *));
        out->name_nodes = calloc(cnt, sizeof(ynode *));
        if (!out->r.names || !out->name_nodes)
                return aidp_ld_oom(ld->err);
        {
                ynode *item;
                FOREACH_ITEM(t, nn, i, item)
                {
                        char ip[192];
                        PATHF(ip, "%s[%zu]", p, i);
                        if (aidp_yaml_scalar(t, item, ip, "a syscall name", &s, ld->err) < 0)
                                ITEM_FAIL(-EINVAL);
                        int nr = aidp_profiles_syscall_nr(arch, s);
                        if (nr == -1) {
                                char dym[AIDP_SUGGEST_MAX + 32];
                                ITEM_FAIL(YERR(
                                        t, item, ip,
                                        "unknown syscall '%s', expected a syscall name "
                                        "known to libseccomp%s",
                                        s,
                                        aidp_profiles_syscall_suggest(arch, s, dym, sizeof dym)));
                        }
                        for (size_t j = 0; j < out->r.n_names; j++)
                                if (!strcmp(out->r.names[j], s))
                                        return YERR(
                                                t, item, ip,
                                                "found '%s' twice in this rule, expected it once",
                                                s);
                        if (nr == -2) {
                                /* A real syscall of another architecture (open on
                                 * aarch64): nothing on this one can call it, so the
                                 * name is dropped and the profile stays portable. */
                                char w[320];
                                PATHF(w, "%s:%u:%u", t->file, (unsigned)item->start_mark.line + 1,
                                      (unsigned)item->start_mark.column + 1);
                                aidp_ld_lint(ld->in_root ? ld->lints : NULL, AIDP_LINT_NOTE,
                                             "seccomp-other-arch", w,
                                             "%s: '%s' does not exist on %s; ignored here", ip, s,
                                             aidp_profiles_arch_name(arch));
                                continue;
                        }
                        if (!(out->r.names[out->r.n_names] = strdup(s)))
                                return aidp_ld_oom(ld->err);
                        out->name_nodes[out->r.n_names++] = item;
                }
        }
        ynode *args = aidp_yaml_get(t, n, "args", NULL);
        if (args)
                return parse_sc_args(ld, t, args, path, out);
        return 0;
}

static bool rules_name(const struct aidp_sc_rule *r, const char *name)
{
        for (size_t i = 0; i < r->n_names; i++)
                if (!strcmp(r->names[i], name))
                        return true;
        return false;
}

/* seccomp.reset: true starts from nothing (deny everything, no inherited
 * rule, no import), so a child can replace a parent's policy wholesale. */
static int sc_reset(struct loader *ld, ytree *t, ynode *v, struct aidp_profile *p)
{
        bool reset;
        int rc = aidp_yaml_bool(t, v, "seccomp.reset", &reset, ld->err);
        if (rc < 0 || !reset)
                return rc;
        aidp_sc_policy_free(&p->seccomp);
        p->seccomp.default_action = AIDP_SC_ERRNO;
        p->seccomp.default_errno = EPERM;
        free(p->seccomp_import);
        p->seccomp_import = NULL;
        return 0;
}

static int import_err(struct loader *ld, ytree *t, ynode *v)
{
        return aidp_error_wrap(ld->err, "%s:%u:%u: seccomp.import", t->file,
                               (unsigned)v->start_mark.line + 1,
                               (unsigned)v->start_mark.column + 1);
}

/* seccomp.import: an OCI/Docker JSON policy replaces the policy so far. The
 * path is relative to the profile that names it and is read through the
 * caller's reader, like a parent profile. */
static int sc_import(struct loader *ld, ytree *t, ynode *v, uint32_t arch, struct aidp_profile *p)
{
        const char *s;
        int rc = aidp_yaml_scalar(t, v, "seccomp.import",
                                  "a path to an OCI/Docker seccomp JSON file", &s, ld->err);
        if (rc < 0)
                return rc;
        _cleanup_free_ char *dir = aidp_ld_dirname(t->file), *src = NULL, *buf = NULL;
        if (!dir || !(src = aidp_ld_join_ref(dir, s)))
                return aidp_ld_oom(ld->err);
        size_t len = 0;
        if (!ld->env || !ld->env->read_file)
                return YERR(t, v, "seccomp.import", "cannot read '%s': no file reader", src);
        aidp_error sub = {0};
        rc = ld->env->read_file(ld->env->ctx, src, &buf, &len, &sub);
        if (rc == -ENOENT)
                return YERR(t, v, "seccomp.import",
                            "found '%s', which does not exist (%s), expected an OCI/Docker "
                            "seccomp JSON file",
                            s, src);
        if (rc < 0) {
                *ld->err = sub;
                return import_err(ld, t, v);
        }
        struct aidp_sc_policy imp;
        size_t skipped = 0;
        rc = aidp_profiles_seccomp_json(src, buf, len, ld->env, p->capabilities, p->n_capabilities,
                                        &imp, &skipped, ld->err);
        if (rc < 0)
                return import_err(ld, t, v);
        aidp_sc_policy_free(&p->seccomp);
        p->seccomp = imp;
        if (aidp_ld_replace_str(&p->seccomp_import, src) < 0)
                return aidp_ld_oom(ld->err);
        if (skipped)
                aidp_ld_lint(ld->in_root ? ld->lints : NULL, AIDP_LINT_NOTE, "import-skipped-names",
                             "",
                             "%s: %zu syscall names skipped: unknown to libseccomp or not on %s",
                             src, skipped, aidp_profiles_arch_name(arch));
        return 0;
}

/* seccomp.default and seccomp.style. The style alone picks the matching
 * default; a default that contradicts the style is refused rather than
 * guessed at, since the two would describe opposite filters. */
static int sc_default_style(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        const char *s;
        int rc;
        ynode *dn = aidp_yaml_get(t, n, "default", NULL);
        if (dn) {
                if ((rc = aidp_yaml_scalar(t, dn, "seccomp.default", "an action", &s, ld->err)) < 0)
                        return rc;
                if (aidp_profiles_action_parse(s, &p->seccomp.default_action,
                                               &p->seccomp.default_errno) < 0)
                        return YERR(t, dn, "seccomp.default",
                                    "found '%s', expected errno(EPERM|<errno name>|<1..4095>), "
                                    "kill-process, kill-thread, trap, log or allow",
                                    s);
        }
        ynode *v = aidp_yaml_get(t, n, "style", NULL);
        if (!v)
                return 0;
        if ((rc = aidp_yaml_scalar(t, v, "seccomp.style", "allowlist or denylist", &s, ld->err)) <
            0)
                return rc;
        bool allowlist;
        if (!strcmp(s, "allowlist"))
                allowlist = true;
        else if (!strcmp(s, "denylist"))
                allowlist = false;
        else
                return YERR(t, v, "seccomp.style", "found '%s', expected allowlist or denylist", s);
        bool permits = aidp_profiles_sc_permits(p->seccomp.default_action);
        if (!dn) {
                if (allowlist && permits) {
                        p->seccomp.default_action = AIDP_SC_ERRNO;
                        p->seccomp.default_errno = EPERM;
                } else if (!allowlist && !permits) {
                        p->seccomp.default_action = AIDP_SC_ALLOW;
                        p->seccomp.default_errno = 0;
                }
        } else if (allowlist == permits) {
                char a[48];
                return YERR(t, dn, "seccomp.default", "found '%s' with style %s, expected %s",
                            aidp_profiles_action_str(p->seccomp.default_action,
                                                     p->seccomp.default_errno, a, sizeof a),
                            s,
                            allowlist ? "a denying default (errno(...), kill-process, "
                                        "kill-thread or trap)"
                                      : "allow or log");
        }
        return 0;
}

/* Contradictions inside one file, reported where they are written (the
 * effective policy is checked again after the merge, in profile_load.c). */
static int sc_contradictions(struct loader *ld, ytree *t, const struct sc_rule_pos *rs, size_t nr)
{
        for (size_t i = 0; i < nr; i++) {
                for (size_t j = 0; j < i; j++) {
                        for (size_t k = 0; k < rs[i].r.n_names; k++) {
                                if (!rules_name(&rs[j].r, rs[i].r.names[k]))
                                        continue;
                                struct aidp_sc_rule two[2] = {rs[j].r, rs[i].r};
                                struct aidp_sc_policy pair = {.rules = two, .n_rules = 2};
                                if (!aidp_profiles_sc_contradiction(&pair))
                                        continue;
                                char path[96];
                                PATHF(path, "seccomp.syscalls[%zu].names[%zu]", i, k);
                                return YERR(t, rs[i].name_nodes[k], path,
                                            "contradictory rules for '%s': also in "
                                            "seccomp.syscalls[%zu] (line %u) with another "
                                            "action; expected one action per syscall, or "
                                            "only argument-conditioned rules",
                                            rs[i].r.names[k], j,
                                            (unsigned)rs[j].node->start_mark.line + 1);
                        }
                }
        }
        return 0;
}

/* A file that mentions a syscall takes it over: every inherited rule naming
 * it goes, then this file's rules apply. Merging conditions across files
 * would make the effect of a child depend on details of its parents. */
static int sc_merge(struct loader *ld, ytree *t, const struct sc_rule_pos *rs, size_t nr,
                    struct aidp_profile *p)
{
        for (size_t i = 0; i < nr; i++)
                for (size_t k = 0; k < rs[i].r.n_names; k++)
                        aidp_profiles_sc_forget(&p->seccomp, rs[i].r.names[k]);
        for (size_t i = 0; i < nr; i++) {
                char a[48], w[320];
                const struct aidp_sc_rule *r = &rs[i].r;
                if (r->action == p->seccomp.default_action &&
                    (r->action != AIDP_SC_ERRNO || r->errno_ret == p->seccomp.default_errno)) {
                        PATHF(w, "%s:%u:%u", t->file, (unsigned)rs[i].node->start_mark.line + 1,
                              (unsigned)rs[i].node->start_mark.column + 1);
                        aidp_ld_lint(
                                ld->in_root ? ld->lints : NULL, AIDP_LINT_WARNING,
                                "seccomp-redundant-rule", w,
                                "seccomp.syscalls[%zu]: action %s is the default action; "
                                "the rule has no effect",
                                i, aidp_profiles_action_str(r->action, r->errno_ret, a, sizeof a));
                }
                for (size_t k = 0; k < r->n_names; k++)
                        aidp_ld_origin_set(ld, t, rs[i].name_nodes[k], "sc:%s", r->names[k]);
                if (aidp_sc_policy_add(&p->seccomp, r) < 0)
                        return aidp_ld_oom(ld->err);
        }
        return 0;
}

/* seccomp.syscalls: parse every rule first, so that nothing of this file is
 * merged when one of its rules is wrong. */
static int sc_syscalls(struct loader *ld, ytree *t, ynode *sn, uint32_t arch,
                       struct aidp_profile *p)
{
        int rc = aidp_ld_expect_list(ld, t, sn, "seccomp.syscalls",
                                     "a list of {names, action, args}");
        if (rc < 0)
                return rc;
        size_t cnt = SEQ_LEN(sn);
        struct sc_rule_pos *rs = calloc(cnt ? cnt : 1, sizeof *rs);
        if (!rs)
                return aidp_ld_oom(ld->err);
        size_t nr = 0;
        {
                ynode *item;
                FOREACH_ITEM(t, sn, i, item)
                {
                        char path[64];
                        PATHF(path, "seccomp.syscalls[%zu]", i);
                        rc = parse_sc_rule(ld, t, item, path, arch, &rs[nr++]);
                        if (rc < 0 && aidp_ld_recover(ld)) {
                                sc_rule_clear(&rs[--nr]); /* the next rule, then */
                                rc = 0;
                                continue;
                        }
                        if (rc < 0)
                                break;
                        if (!rs[nr - 1].r.n_names) /* only other arches' names */
                                sc_rule_clear(&rs[--nr]);
                }
        }
        if (rc == 0)
                rc = sc_contradictions(ld, t, rs, nr);
        if (rc == 0)
                rc = sc_merge(ld, t, rs, nr, p);
        sc_rules_free(rs, nr);
        return rc;
}

int aidp_ld_apply_seccomp(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"reset", "import", "default", "style", "syscalls", NULL};
        int rc = aidp_yaml_check_keys(t, n, "seccomp", keys, ld->err);
        if (rc < 0)
                return rc;
        uint32_t arch = aidp_profiles_arch(ld->env);
        ynode *v;
        if ((v = aidp_yaml_get(t, n, "reset", NULL)) && (rc = sc_reset(ld, t, v, p)) < 0)
                return rc;
        if ((v = aidp_yaml_get(t, n, "import", NULL)) && (rc = sc_import(ld, t, v, arch, p)) < 0)
                return rc;
        if ((rc = sc_default_style(ld, t, n, p)) < 0)
                return rc;
        if ((v = aidp_yaml_get(t, n, "syscalls", NULL)) &&
            (rc = sc_syscalls(ld, t, v, arch, p)) < 0)
                return rc;
        aidp_profiles_sc_normalize(&p->seccomp);
        return 0;
}
