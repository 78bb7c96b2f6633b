/* Lint: things that load fine but that a reviewer should see. Warnings fail
 * `aidp profile check --strict`; notes never fail. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/cleanup.h"
#include "profiles/internal.h"

struct lctx {
        struct aidp_lint_list *l;
        bool oom;
};

/* `key` is the origin key the loader maps to file:line:col. */
static void add(struct lctx *c, enum aidp_lint_level lvl, const char *code, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(struct lctx *c, enum aidp_lint_level lvl, const char *code, const char *key,
                const char *fmt, ...)
{
        struct aidp_lint *n = realloc(c->l->items, (c->l->n + 1) * sizeof *n);
        if (!n) {
                c->oom = true;
                return;
        }
        c->l->items = n;
        struct aidp_lint *it = &n[c->l->n++];
        memset(it, 0, sizeof *it);
        it->level = lvl;
        snprintf(it->code, sizeof it->code, "%s", code);
        if (key)
                snprintf(it->where, sizeof it->where, "key=%s", key);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(it->msg, sizeof it->msg, fmt, ap);
        va_end(ap);
}

/* What a syscall gets: "allowed", "allowed under conditions", or NULL when denied. */
static const char *permitted(const struct aidp_sc_policy *p, const char *name)
{
        const struct aidp_sc_rule *r;
        switch (aidp_profiles_sc_effect(p, name, &r)) {
        case AIDP_SC_EFFECT_UNCONDITIONAL:
                return aidp_profiles_sc_permits(r->action) ? "allowed" : NULL;
        case AIDP_SC_EFFECT_CONDITIONAL: {
                bool any = aidp_profiles_sc_permits(p->default_action);
                for (size_t i = 0; i < p->n_rules && !any; i++)
                        for (size_t j = 0; j < p->rules[i].n_names; j++)
                                if (!strcmp(p->rules[i].names[j], name) &&
                                    aidp_profiles_sc_permits(p->rules[i].action))
                                        any = true;
                return any ? "allowed for some arguments" : NULL;
        }
        case AIDP_SC_EFFECT_DEFAULT:
        case AIDP_SC_EFFECT_MAX: break;
        }
        return aidp_profiles_sc_permits(p->default_action) ? "allowed (default action)" : NULL;
}

static void lint_seccomp(struct lctx *c, const struct aidp_profile *p, uint32_t arch)
{
        const struct aidp_sc_policy *sc = &p->seccomp;
        char key[96];
        /* The ptrace-like ones first: the more specific warning leads. */
        for (int pass = 0; pass < 2; pass++) {
                enum aidp_sc_danger kind = pass ? AIDP_SC_DANGER_ESCAPE : AIDP_SC_DANGER_PTRACE;
                for (size_t i = 0; i < aidp_sc_n_dangerous; i++) {
                        const char *name = aidp_sc_dangerous[i].name;
                        if (aidp_sc_dangerous[i].kind != kind ||
                            aidp_profiles_syscall_nr(arch, name) < 0)
                                continue;
                        const char *how = permitted(sc, name);
                        if (!how)
                                continue;
                        snprintf(key, sizeof key, "sc:%s", name);
                        if (kind == AIDP_SC_DANGER_PTRACE)
                                add(c, AIDP_LINT_WARNING, "seccomp-ptrace-allowed", key,
                                    "seccomp: %s is %s: lets the job read or steer other "
                                    "processes' memory",
                                    name, how);
                        else
                                add(c, AIDP_LINT_WARNING, "seccomp-dangerous-allowed", key,
                                    "seccomp: %s is %s: a classic sandbox-escape or "
                                    "kernel-attack syscall",
                                    name, how);
                }
        }
        const struct aidp_sc_rule *r;
        enum aidp_sc_effect e = aidp_profiles_sc_effect(sc, "clone", &r);
        if ((e == AIDP_SC_EFFECT_UNCONDITIONAL && aidp_profiles_sc_permits(r->action)) ||
            (e == AIDP_SC_EFFECT_DEFAULT && aidp_profiles_sc_permits(sc->default_action)))
                add(c, AIDP_LINT_WARNING, "seccomp-clone-namespaces", "sc:clone",
                    "seccomp: clone is allowed without a namespace-flag condition: the job can "
                    "create namespaces (add args: [{index: 0, op: masked-eq, mask: 0x7e020000, "
                    "value: 0}])");
        e = aidp_profiles_sc_effect(sc, "clone3", &r);
        if ((e == AIDP_SC_EFFECT_UNCONDITIONAL && aidp_profiles_sc_permits(r->action)) ||
            (e == AIDP_SC_EFFECT_DEFAULT && aidp_profiles_sc_permits(sc->default_action)))
                add(c, AIDP_LINT_WARNING, "seccomp-clone3-allowed", "sc:clone3",
                    "seccomp: clone3 is allowed: its flags live in memory the filter cannot "
                    "inspect, so namespace creation cannot be refused (return errno(ENOSYS) and "
                    "libc falls back to clone)");
        char a[48];
        if (aidp_profiles_sc_permits(sc->default_action))
                add(c, AIDP_LINT_NOTE, "seccomp-denylist", NULL,
                    "seccomp: default action %s: every syscall not listed is allowed (denylist)",
                    aidp_profiles_action_str(sc->default_action, sc->default_errno, a, sizeof a));
        if (sc->default_action == AIDP_SC_KILL_THREAD)
                add(c, AIDP_LINT_NOTE, "seccomp-kill-thread", NULL,
                    "seccomp: default kill-thread leaves the rest of the process running in an "
                    "undefined state; kill-process is safer");
        size_t logged = 0;
        for (size_t i = 0; i < sc->n_rules; i++)
                if (sc->rules[i].action == AIDP_SC_LOG)
                        logged += sc->rules[i].n_names;
        if (logged)
                add(c, AIDP_LINT_NOTE, "seccomp-log-rules", NULL,
                    "seccomp: %zu syscalls are allowed and logged (log action)", logged);
}

static bool wide_cidr(const char *cidr)
{
        return !strcmp(cidr, "0.0.0.0/0") || !strcmp(cidr, "::/0");
}

int aidp_profile_lint(const struct aidp_profile *p, const struct aidp_profile_env *env,
                      struct aidp_lint_list *lints, aidp_error *err)
{
        struct lctx c = {.l = lints};
        char key[512], buf[64];
        lint_seccomp(&c, p, aidp_profiles_arch(env));
        for (size_t i = 0; i < p->n_capabilities; i++) {
                snprintf(key, sizeof key, "cap:%s", p->capabilities[i]);
                add(&c, AIDP_LINT_WARNING, "capability-granted", key,
                    "capabilities: %s is kept inside the sandbox", p->capabilities[i]);
        }
        for (size_t i = 0; i < p->n_binds; i++) {
                if (!p->binds[i].writable)
                        continue;
                snprintf(key, sizeof key, "bind:%s", p->binds[i].target);
                add(&c, AIDP_LINT_WARNING, "writable-bind", key,
                    "filesystem.binds: %s is bound writable from the host %s: the job can leave "
                    "data behind there",
                    p->binds[i].target, p->binds[i].source);
        }
        if (p->network.mode == AIDP_NET_EGRESS) {
                if (!p->network.n_rules)
                        add(&c, AIDP_LINT_NOTE, "egress-no-rules", "network.mode",
                            "network: egress mode without rules: every packet leaving the sandbox "
                            "is dropped");
                for (size_t i = 0; i < p->network.n_rules; i++) {
                        const struct aidp_egress_rule *r = &p->network.rules[i];
                        const char *dst = r->cidr ? r->cidr : r->fqdn;
                        snprintf(key, sizeof key, "egress:%zu", i);
                        if (r->cidr && wide_cidr(r->cidr))
                                add(&c, AIDP_LINT_WARNING, "egress-wide-open", key,
                                    "network.egress: %s allows every destination", r->cidr);
                        if (!r->port_min)
                                add(&c, AIDP_LINT_WARNING, "egress-any-port", key,
                                    "network.egress: %s allows every port (list ports)", dst);
                }
        }
        if (!p->limits.memory_bytes)
                add(&c, AIDP_LINT_WARNING, "no-memory-limit", "limits.memory",
                    "limits.memory: no memory limit: one job can exhaust the node");
        if (!p->limits.pids)
                add(&c, AIDP_LINT_WARNING, "no-pids-limit", "limits.pids",
                    "limits.pids: no process limit: a fork bomb can exhaust the node");
        if (!p->limits.cpu_millis)
                add(&c, AIDP_LINT_NOTE, "no-cpu-limit", "limits.cpus", "limits.cpus: no cpu quota");
        if (!p->limits.wall_seconds)
                add(&c, AIDP_LINT_NOTE, "no-wall-time", "limits.wallTime",
                    "limits.wallTime: no wall-time limit: a stuck job holds its data until "
                    "cancelled");
        const struct aidp_rlimit *core = &p->limits.rlimits[RLIMIT_CORE];
        if (!core->set || core->hard > 0) {
                snprintf(key, sizeof key, "rlimit:%d", RLIMIT_CORE);
                add(&c, AIDP_LINT_WARNING, "core-dumps", key,
                    "limits.rlimits.core: core dumps are possible: a core of a training job is a "
                    "plaintext copy of its data");
        }
        if (p->user.allow_root)
                add(&c, AIDP_LINT_WARNING, "allow-root", "user.allowRoot",
                    "user.allowRoot: the job may run as uid 0 inside the sandbox");
        for (size_t i = 0; i < p->n_devices; i++) {
                snprintf(key, sizeof key, "device:%s", p->devices[i].path);
                add(&c, AIDP_LINT_NOTE, "device-exposed", key,
                    "devices: %s%s is exposed to the job", p->devices[i].path,
                    p->devices[i].optional ? " (optional)" : "");
        }
        (void)buf;
        if (c.oom)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}
