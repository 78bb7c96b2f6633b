/* What a profile change loosens or tightens. One line per item, so a review
 * tool (or grep '^loosen') can read it:
 *   loosen limits.memory: 4 GiB -> 8 GiB
 *   tighten seccomp.ptrace: allow -> errno(EPERM)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <seccomp.h>

#include "common/cleanup.h"
#include "profiles/internal.h"
#include "profiles/units.h"

struct dctx {
        struct aidp_sb out;
        size_t loosen;
};

enum verdict { LOOSEN, TIGHTEN, CHANGE };

static void line(struct dctx *c, enum verdict v, const char *key, const char *a, const char *b)
{
        static const char *const words[] = {"loosen", "tighten", "change"};
        aidp_profiles_sb_printf(&c->out, "%s %s: %s -> %s\n", words[v], key, a, b);
        if (v == LOOSEN)
                c->loosen++;
}

/* 0 = unlimited, which is the loosest. */
static void limit(struct dctx *c, const char *key, uint64_t a, uint64_t b, bool size,
                  bool zero_unlimited)
{
        if (a == b)
                return;
        char sa[64], sb[64];
        if (zero_unlimited && !a)
                snprintf(sa, sizeof sa, "unlimited");
        else if (size)
                aidp_profiles_fmt_size(sa, sizeof sa, a);
        else
                snprintf(sa, sizeof sa, "%" PRIu64, a);
        if (zero_unlimited && !b)
                snprintf(sb, sizeof sb, "unlimited");
        else if (size)
                aidp_profiles_fmt_size(sb, sizeof sb, b);
        else
                snprintf(sb, sizeof sb, "%" PRIu64, b);
        uint64_t ea = zero_unlimited && !a ? UINT64_MAX : a,
                 eb = zero_unlimited && !b ? UINT64_MAX : b;
        line(c, eb > ea ? LOOSEN : TIGHTEN, key, sa, sb);
}

static const char *yes(bool b)
{
        return b ? "yes" : "no";
}

static bool has(char *const *v, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(v[i], s))
                        return true;
        return false;
}

static void set_diff(struct dctx *c, const char *key, char *const *a, size_t na, char *const *b,
                     size_t nb, bool adding_loosens)
{
        char k[512];
        for (size_t i = 0; i < nb; i++)
                if (!has(a, na, b[i])) {
                        snprintf(k, sizeof k, "%s %s", key, b[i]);
                        line(c, adding_loosens ? LOOSEN : TIGHTEN, k, "absent", "present");
                }
        for (size_t i = 0; i < na; i++)
                if (!has(b, nb, a[i])) {
                        snprintf(k, sizeof k, "%s %s", key, a[i]);
                        line(c, adding_loosens ? TIGHTEN : LOOSEN, k, "present", "absent");
                }
}

/* The state of one syscall as text and a rank: 0 runs, 1 depends on arguments, 2 refused. */
static int sc_state(const struct aidp_sc_policy *p, const char *name, char *buf, size_t n)
{
        const struct aidp_sc_rule *r;
        char a[48];
        switch (aidp_profiles_sc_effect(p, name, &r)) {
        case AIDP_SC_EFFECT_UNCONDITIONAL:
                snprintf(buf, n, "%s",
                         aidp_profiles_action_str(r->action, r->errno_ret, a, sizeof a));
                return aidp_profiles_sc_permits(r->action) ? 0 : 2;
        case AIDP_SC_EFFECT_CONDITIONAL: {
                struct aidp_sb sb = {0};
                for (size_t i = 0; i < p->n_rules; i++) {
                        const struct aidp_sc_rule *q = &p->rules[i];
                        bool named = false;
                        for (size_t j = 0; j < q->n_names && !named; j++)
                                named = !strcmp(q->names[j], name);
                        if (!named)
                                continue;
                        aidp_profiles_sb_printf(
                                &sb, "%s if",
                                aidp_profiles_action_str(q->action, q->errno_ret, a, sizeof a));
                        for (size_t j = 0; j < q->n_args; j++) {
                                char cond[96];
                                aidp_profiles_sc_arg_str(&q->args[j], cond, sizeof cond);
                                aidp_profiles_sb_printf(&sb, "%s %s", j ? " and" : "", cond);
                        }
                        aidp_profiles_sb_printf(&sb, "; ");
                }
                aidp_profiles_sb_printf(
                        &sb, "else %s",
                        aidp_profiles_action_str(p->default_action, p->default_errno, a, sizeof a));
                snprintf(buf, n, "%s", sb.s && !sb.oom ? sb.s : "?");
                aidp_profiles_sb_free(&sb);
                return 1;
        }
        case AIDP_SC_EFFECT_DEFAULT:
        case AIDP_SC_EFFECT_MAX: break;
        }
        snprintf(buf, n, "%s",
                 aidp_profiles_action_str(p->default_action, p->default_errno, a, sizeof a));
        return aidp_profiles_sc_permits(p->default_action) ? 0 : 2;
}

static void seccomp_diff(struct dctx *c, const struct aidp_sc_policy *a,
                         const struct aidp_sc_policy *b, uint32_t arch)
{
        char sa[1024], sb[1024], k[128];
        int ra = aidp_profiles_sc_permits(a->default_action) ? 0 : 2;
        int rb = aidp_profiles_sc_permits(b->default_action) ? 0 : 2;
        aidp_profiles_action_str(a->default_action, a->default_errno, sa, sizeof sa);
        aidp_profiles_action_str(b->default_action, b->default_errno, sb, sizeof sb);
        if (strcmp(sa, sb))
                line(c, rb < ra ? LOOSEN : rb > ra ? TIGHTEN : CHANGE, "seccomp.default", sa, sb);
        /* Every syscall of the architecture, by number, so a change through the
         * default action shows up as well as a change of a rule. */
        for (int nr = 0; nr < 1024; nr++) {
                _cleanup_free_ char *name = seccomp_syscall_resolve_num_arch(arch, nr);
                if (!name)
                        continue;
                ra = sc_state(a, name, sa, sizeof sa);
                rb = sc_state(b, name, sb, sizeof sb);
                if (!strcmp(sa, sb))
                        continue;
                snprintf(k, sizeof k, "seccomp.%s", name);
                line(c, rb < ra ? LOOSEN : rb > ra ? TIGHTEN : CHANGE, k, sa, sb);
        }
}

static void egress_str(const struct aidp_egress_rule *r, char *buf, size_t n)
{
        char ports[32];
        if (!r->port_min)
                snprintf(ports, sizeof ports, "any");
        else if (r->port_min == r->port_max)
                snprintf(ports, sizeof ports, "%u", r->port_min);
        else
                snprintf(ports, sizeof ports, "%u-%u", r->port_min, r->port_max);
        snprintf(buf, n, "%s %s port %s%s%s",
                 r->protocol == 6    ? "tcp"
                 : r->protocol == 17 ? "udp"
                                     : "any",
                 r->cidr ? r->cidr : r->fqdn, ports, r->region ? " region " : "",
                 r->region ? r->region : "");
}

static char **egress_strs(const struct aidp_network *net)
{
        char **v = calloc(net->n_rules + 1, sizeof *v);
        for (size_t i = 0; v && i < net->n_rules; i++) {
                v[i] = malloc(512);
                if (v[i])
                        egress_str(&net->rules[i], v[i], 512);
                else
                        v[i] = NULL;
        }
        return v;
}

static void strs_free(char **v, size_t n)
{
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static char **bind_strs(const struct aidp_profile *p)
{
        char **v = calloc(p->n_binds + 1, sizeof *v);
        for (size_t i = 0; v && i < p->n_binds; i++)
                if (asprintf(&v[i], "%s (from %s, %s)", p->binds[i].target, p->binds[i].source,
                             p->binds[i].writable ? "writable" : "read-only") < 0)
                        v[i] = NULL;
        return v;
}

static char **device_strs(const struct aidp_profile *p)
{
        char **v = calloc(p->n_devices + 1, sizeof *v);
        for (size_t i = 0; v && i < p->n_devices; i++)
                if (!(v[i] = strdup(p->devices[i].path)))
                        v[i] = NULL;
        return v;
}

static bool all_set(char **v, size_t n)
{
        if (!v)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!v[i])
                        return false;
        return true;
}

int aidp_profile_diff(const struct aidp_profile *a, const struct aidp_profile *b,
                      const struct aidp_profile_env *env, char **text, size_t *n_loosen,
                      aidp_error *err)
{
        struct dctx c = {0};
        const struct aidp_limits *la = &a->limits, *lb = &b->limits;
        limit(&c, "limits.memory", la->memory_bytes, lb->memory_bytes, true, true);
        limit(&c, "limits.cpus(m)", la->cpu_millis, lb->cpu_millis, false, true);
        limit(&c, "limits.pids", la->pids, lb->pids, false, true);
        limit(&c, "limits.wallTime(s)", la->wall_seconds, lb->wall_seconds, false, true);
        limit(&c, "limits.tmpfs./tmp", la->tmp_bytes, lb->tmp_bytes, true, false);
        limit(&c, "limits.tmpfs./scratch", la->scratch_bytes, lb->scratch_bytes, true, false);
        limit(&c, "limits.tmpfs./out", la->out_bytes, lb->out_bytes, true, false);
        limit(&c, "limits.tmpfs./dev/shm", aidp_profile_shm_bytes(a), aidp_profile_shm_bytes(b),
              true, false);
        if (la->data_bytes != lb->data_bytes) {
                /* 0 is "sized from the inputs": neither looser nor tighter. */
                char sa[64] = "auto", sb[64] = "auto";
                if (la->data_bytes)
                        aidp_profiles_fmt_size(sa, sizeof sa, la->data_bytes);
                if (lb->data_bytes)
                        aidp_profiles_fmt_size(sb, sizeof sb, lb->data_bytes);
                line(&c,
                     la->data_bytes && lb->data_bytes
                             ? (lb->data_bytes > la->data_bytes ? LOOSEN : TIGHTEN)
                             : CHANGE,
                     "limits.tmpfs./data", sa, sb);
        }
        for (int r = 0; r < AIDP_RLIMIT_SLOTS; r++) {
                const struct aidp_rlimit *ra = &la->rlimits[r], *rb = &lb->rlimits[r];
                char k[64];
                snprintf(k, sizeof k, "limits.rlimits.%s", aidp_profiles_rlimit_name(r));
                uint64_t ha = ra->set ? ra->hard : UINT64_MAX, hb = rb->set ? rb->hard : UINT64_MAX;
                if (ha != hb || ra->set != rb->set) {
                        char sa[32], sb[32];
                        snprintf(sa, sizeof sa, "%" PRIu64, ha);
                        snprintf(sb, sizeof sb, "%" PRIu64, hb);
                        if (ha == UINT64_MAX)
                                snprintf(sa, sizeof sa, ra->set ? "unlimited" : "inherited");
                        if (hb == UINT64_MAX)
                                snprintf(sb, sizeof sb, rb->set ? "unlimited" : "inherited");
                        line(&c, hb > ha ? LOOSEN : hb < ha ? TIGHTEN : CHANGE, k, sa, sb);
                }
        }
        char **ba = bind_strs(a), **bb = bind_strs(b);
        char **da = device_strs(a), **db = device_strs(b);
        char **ea = egress_strs(&a->network), **eb = egress_strs(&b->network);
        bool ok = all_set(ba, a->n_binds) && all_set(bb, b->n_binds) && all_set(da, a->n_devices) &&
                  all_set(db, b->n_devices) && all_set(ea, a->network.n_rules) &&
                  all_set(eb, b->network.n_rules);
        if (ok) {
                set_diff(&c, "filesystem.binds", ba, a->n_binds, bb, b->n_binds, true);
                set_diff(&c, "filesystem.masked", a->masked, a->n_masked, b->masked, b->n_masked,
                         false);
                set_diff(&c, "devices", da, a->n_devices, db, b->n_devices, true);
                set_diff(&c, "capabilities", a->capabilities, a->n_capabilities, b->capabilities,
                         b->n_capabilities, true);
        }
        if (a->bind_cwd != b->bind_cwd)
                line(&c, b->bind_cwd ? LOOSEN : TIGHTEN, "filesystem.bindCwd", yes(a->bind_cwd),
                     yes(b->bind_cwd));
        if (a->user.allow_root != b->user.allow_root)
                line(&c, b->user.allow_root ? LOOSEN : TIGHTEN, "user.allowRoot",
                     yes(a->user.allow_root), yes(b->user.allow_root));
        char sa[64], sb[64];
        snprintf(sa, sizeof sa, "fixed %u:%u", (unsigned)a->user.uid, (unsigned)a->user.gid);
        snprintf(sb, sizeof sb, "fixed %u:%u", (unsigned)b->user.uid, (unsigned)b->user.gid);
        if (a->user.mode != AIDP_USER_FIXED)
                snprintf(sa, sizeof sa, "caller");
        if (b->user.mode != AIDP_USER_FIXED)
                snprintf(sb, sizeof sb, "caller");
        if (strcmp(sa, sb))
                line(&c, CHANGE, "user.mode", sa, sb);
        snprintf(sa, sizeof sa, "%u:%u", (unsigned)a->user.default_uid,
                 (unsigned)a->user.default_gid);
        snprintf(sb, sizeof sb, "%u:%u", (unsigned)b->user.default_uid,
                 (unsigned)b->user.default_gid);
        if (strcmp(sa, sb))
                line(&c, CHANGE, "user.default", sa, sb);
        seccomp_diff(&c, &a->seccomp, &b->seccomp, aidp_profiles_arch(env));
        if (a->network.mode != b->network.mode)
                line(&c, b->network.mode == AIDP_NET_EGRESS ? LOOSEN : TIGHTEN, "network.mode",
                     a->network.mode == AIDP_NET_EGRESS ? "egress" : "none",
                     b->network.mode == AIDP_NET_EGRESS ? "egress" : "none");
        if (ok)
                set_diff(&c, "network.egress", ea, a->network.n_rules, eb, b->network.n_rules,
                         true);
        const char *pa[] = {a->paths.data, a->paths.scratch, a->paths.out};
        const char *pb[] = {b->paths.data, b->paths.scratch, b->paths.out};
        const char *pk[] = {"data.data", "data.scratch", "data.out"};
        for (size_t i = 0; i < 3; i++)
                if (strcmp(pa[i], pb[i]))
                        line(&c, CHANGE, pk[i], pa[i], pb[i]);
        strs_free(ba, a->n_binds);
        strs_free(bb, b->n_binds);
        strs_free(da, a->n_devices);
        strs_free(db, b->n_devices);
        strs_free(ea, a->network.n_rules);
        strs_free(eb, b->network.n_rules);
        char *t = ok ? aidp_profiles_sb_take(&c.out) : NULL;
        if (!t) {
                aidp_profiles_sb_free(&c.out);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        *text = t;
        *n_loosen = c.loosen;
        return 0;
}
