/* The effective profile as text: `explain` for people, the canonical form for
 * the digest. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/cleanup.h"
#include "common/hex.h"
#include "profiles/internal.h"
#include "profiles/units.h"

#define P(...) aidp_profiles_sb_printf(b, __VA_ARGS__)

static const char *proto_name(int proto)
{
        return proto == 6 ? "tcp" : proto == 17 ? "udp" : "tcp+udp";
}

static void rlimit_val(char *buf, size_t n, uint64_t v)
{
        if (v == UINT64_MAX)
                snprintf(buf, n, "unlimited");
        else
                snprintf(buf, n, "%" PRIu64, v);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Actions in a stable order, for counting and listing. */
struct act {
        enum aidp_sc_action a;
        int e;
        size_t names, cond_rules;
};

static int cmp_act(const void *x, const void *y)
{
        const struct act *a = x, *b = y;
        if (a->a != b->a)
                return (int)a->a - (int)b->a;
        return a->e - b->e;
}

static size_t collect_actions(const struct aidp_sc_policy *sc, struct act *acts, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < sc->n_rules; i++) {
                const struct aidp_sc_rule *r = &sc->rules[i];
                int e = r->action == AIDP_SC_ERRNO ? r->errno_ret : 0;
                size_t k;
                for (k = 0; k < n; k++)
                        if (acts[k].a == r->action && acts[k].e == e)
                                break;
                if (k == n) {
                        if (n == max)
                                continue;
                        acts[n++] = (struct act){.a = r->action, .e = e};
                }
                if (r->n_args)
                        acts[k].cond_rules++;
                /* Count distinct names per action. */
                for (size_t j = 0; j < r->n_names; j++) {
                        bool seen = false;
                        for (size_t q = 0; q < i && !seen; q++) {
                                const struct aidp_sc_rule *o = &sc->rules[q];
                                if (o->action != r->action ||
                                    (r->action == AIDP_SC_ERRNO && o->errno_ret != r->errno_ret))
                                        continue;
                                for (size_t w = 0; w < o->n_names && !seen; w++)
                                        seen = !strcmp(o->names[w], r->names[j]);
                        }
                        for (size_t w = 0; w < j && !seen; w++)
                                seen = !strcmp(r->names[w], r->names[j]);
                        if (!seen)
                                acts[k].names++;
                }
        }
        qsort(acts, n, sizeof *acts, cmp_act);
        return n;
}

/* Sorted distinct names of the rules with this action (NULL-free array). */
static char **names_for(const struct aidp_sc_policy *sc, const struct act *a, bool cond,
                        size_t *n_out)
{
        size_t total = 0;
        for (size_t i = 0; i < sc->n_rules; i++)
                total += sc->rules[i].n_names;
        char **out = calloc(total ? total : 1, sizeof *out);
        if (!out)
                return NULL;
        size_t n = 0;
        for (size_t i = 0; i < sc->n_rules; i++) {
                const struct aidp_sc_rule *r = &sc->rules[i];
                if (r->action != a->a || (r->action == AIDP_SC_ERRNO && r->errno_ret != a->e) ||
                    (r->n_args != 0) != cond)
                        continue;
                for (size_t j = 0; j < r->n_names; j++) {
                        bool dup = false;
                        for (size_t k = 0; k < n && !dup; k++)
                                dup = !strcmp(out[k], r->names[j]);
                        if (!dup)
                                out[n++] = r->names[j];
                }
        }
        qsort(out, n, sizeof *out, cmp_str);
        *n_out = n;
        return out;
}

static void wrap_names(struct aidp_sb *b, const char *indent, char **names, size_t n)
{
        size_t col = 0;
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(names[i]);
                if (col == 0) {
                        P("%s", indent);
                        col = strlen(indent);
                } else if (col + l + 1 > 88) {
                        P("\n%s", indent);
                        col = strlen(indent);
                } else {
                        P(" ");
                        col++;
                }
                P("%s", names[i]);
                col += l;
        }
        if (col)
                P("\n");
}

static void explain_seccomp(struct aidp_sb *b, const struct aidp_profile *p, uint32_t arch)
{
        const struct aidp_sc_policy *sc = &p->seccomp;
        char a[48];
        P("\nseccomp (%s)\n", aidp_profiles_arch_name(arch));
        P("  style       %s\n",
          aidp_profiles_sc_permits(sc->default_action) ? "denylist" : "allowlist");
        P("  default     %s\n",
          aidp_profiles_action_str(sc->default_action, sc->default_errno, a, sizeof a));
        if (p->seccomp_import) {
                const char *base = strrchr(p->seccomp_import, '/');
                P("  imported    %s\n", base ? base + 1 : p->seccomp_import);
        }
        struct act acts[32];
        size_t n = collect_actions(sc, acts, ARRAY_SIZE(acts));
        P("  rules       %zu\n", sc->n_rules);
        for (size_t i = 0; i < n; i++) {
                P("    %-16s %zu syscall%s",
                  aidp_profiles_action_str(acts[i].a, acts[i].e, a, sizeof a), acts[i].names,
                  acts[i].names == 1 ? "" : "s");
                if (acts[i].cond_rules)
                        P(" (%zu rule%s with argument conditions)", acts[i].cond_rules,
                          acts[i].cond_rules == 1 ? "" : "s");
                P("\n");
        }
        P("  other architectures: killed\n");
        for (size_t i = 0; i < n; i++) {
                size_t nn;
                _cleanup_free_ char **names = names_for(sc, &acts[i], false, &nn);
                if (names && nn) {
                        P("  %s:\n", aidp_profiles_action_str(acts[i].a, acts[i].e, a, sizeof a));
                        wrap_names(b, "    ", names, nn);
                }
        }
        bool header = false;
        for (size_t i = 0; i < sc->n_rules; i++) {
                const struct aidp_sc_rule *r = &sc->rules[i];
                if (!r->n_args)
                        continue;
                if (!header) {
                        P("  conditional:\n");
                        header = true;
                }
                _cleanup_free_ char **names = calloc(r->n_names, sizeof *names);
                if (!names)
                        continue;
                memcpy(names, r->names, r->n_names * sizeof *names);
                qsort(names, r->n_names, sizeof *names, cmp_str);
                P("    %s", aidp_profiles_action_str(r->action, r->errno_ret, a, sizeof a));
                for (size_t j = 0; j < r->n_names; j++)
                        P("%s%s", j ? "," : " ", names[j]);
                P(" if");
                for (size_t j = 0; j < r->n_args; j++) {
                        char c[96];
                        aidp_profiles_sc_arg_str(&r->args[j], c, sizeof c);
                        P("%s %s", j ? " and" : "", c);
                }
                P("\n");
        }
}

static void explain_limits(struct aidp_sb *b, const struct aidp_profile *p)
{
        char s1[64], s2[64];
        P("\nlimits\n");
        if (p->limits.memory_bytes) {
                aidp_profiles_fmt_size(s1, sizeof s1, p->limits.memory_bytes);
                P("  memory      %s\n", s1);
        } else {
                P("  memory      unlimited\n");
        }
        if (p->limits.cpu_millis)
                P("  cpus        %" PRIu64 ".%03" PRIu64 " (%" PRIu64 "m)\n",
                  p->limits.cpu_millis / 1000, p->limits.cpu_millis % 1000, p->limits.cpu_millis);
        else
                P("  cpus        unlimited\n");
        if (p->limits.pids)
                P("  pids        %" PRIu64 "\n", p->limits.pids);
        else
                P("  pids        unlimited\n");
        if (p->limits.wall_seconds) {
                aidp_profiles_fmt_duration(s1, sizeof s1, p->limits.wall_seconds);
                P("  wall time   %s\n", s1);
        } else {
                P("  wall time   unlimited\n");
        }
        aidp_profiles_fmt_duration(s1, sizeof s1, p->limits.kill_after_seconds);
        P("  kill after  %s (a stop's SIGTERM, then SIGKILL)\n", s1);
        bool any = false;
        for (int r = 0; r < AIDP_RLIMIT_SLOTS; r++) {
                const struct aidp_rlimit *rl = &p->limits.rlimits[r];
                if (!rl->set)
                        continue;
                rlimit_val(s1, sizeof s1, rl->soft);
                rlimit_val(s2, sizeof s2, rl->hard);
                P("%s%s %s/%s", any ? ", " : "  rlimits     ", aidp_profiles_rlimit_name(r), s1,
                  s2);
                any = true;
        }
        if (any)
                P("\n");
}

static void explain_mounts(struct aidp_sb *b, const struct aidp_profile *p)
{
        char s1[64];
        P("\nmounts\n");
        P("  %-12s host root, read-only, /proc fresh, /dev minimal\n", "/");
        aidp_profiles_fmt_size(s1, sizeof s1, p->limits.tmp_bytes);
        P("  %-12s tmpfs %s, writable\n", "/tmp", s1);
        if (p->limits.data_bytes)
                aidp_profiles_fmt_size(s1, sizeof s1, p->limits.data_bytes);
        else
                snprintf(s1, sizeof s1, "sized from the inputs");
        P("  %-12s tmpfs %s, read-only (decrypted inputs)\n", p->paths.data, s1);
        aidp_profiles_fmt_size(s1, sizeof s1, p->limits.scratch_bytes);
        P("  %-12s tmpfs %s, writable\n", p->paths.scratch, s1);
        aidp_profiles_fmt_size(s1, sizeof s1, p->limits.out_bytes);
        P("  %-12s tmpfs %s, writable, sealed into the output directory\n", p->paths.out, s1);
        aidp_profiles_fmt_size(s1, sizeof s1, aidp_profile_shm_bytes(p));
        P("  %-12s tmpfs %s%s, writable\n", "/dev/shm", s1,
          p->limits.shm_bytes ? "" : " (as /tmp)");
        for (size_t i = 0; i < p->n_binds; i++)
                P("  %-12s bind of host %s, %s\n", p->binds[i].target, p->binds[i].source,
                  p->binds[i].writable ? "WRITABLE" : "read-only");
        if (p->bind_cwd)
                P("  %-12s the caller's working directory, read-only\n", "(cwd)");
        P("  %-12s built-in set (keys, homes, /run)", "(masked)");
        for (size_t i = 0; i < p->n_masked; i++)
                P(", %s", p->masked[i]);
        P("\n");
}

static void explain_network(struct aidp_sb *b, const struct aidp_profile *p)
{
        P("\nnetwork\n");
        if (p->network.mode == AIDP_NET_NONE) {
                P("  mode        none (loopback only)\n");
        } else {
                P("  mode        egress (everything not listed is dropped)\n");
                for (size_t i = 0; i < p->network.n_rules; i++) {
                        const struct aidp_egress_rule *r = &p->network.rules[i];
                        P("  allow       %s to %s", proto_name(r->protocol),
                          r->cidr ? r->cidr : r->fqdn);
                        if (!r->port_min)
                                P(" any port");
                        else if (r->port_min == r->port_max)
                                P(" port %u", r->port_min);
                        else
                                P(" ports %u-%u", r->port_min, r->port_max);
                        if (r->region)
                                P(" region %s", r->region);
                        P("\n");
                }
        }
}

int aidp_profile_explain(const struct aidp_profile *p, const struct aidp_profile_env *env,
                         char **text, aidp_error *err)
{
        struct aidp_sb sb = {0}, *b = &sb;
        P("profile     %s\n", p->name ? p->name : "?");
        if (p->source)
                P("source      %s\n", p->source);
        if (p->description)
                P("about       %s\n", p->description);
        if (p->n_layers) {
                P("layers      ");
                for (size_t i = 0; i < p->n_layers; i++)
                        P("%s%s", i ? " -> " : "", p->layers[i]);
                P("\n");
        }
        char digest[AIDP_SHA256_REF_LEN + 1];
        aidp_sha256_ref(p->digest, digest);
        P("digest      %s\n", digest);

        explain_limits(b, p);
        explain_mounts(b, p);

        P("\ndevices\n");
        if (!p->n_devices)
                P("  none beyond the minimal /dev (null, zero, full, random, urandom, tty)\n");
        for (size_t i = 0; i < p->n_devices; i++)
                P("  %s%s\n", p->devices[i].path,
                  p->devices[i].optional ? " (optional: skipped when absent)" : "");

        P("\nuser\n");
        if (p->user.mode == AIDP_USER_FIXED)
                P("  mode        fixed %u:%u\n", (unsigned)p->user.uid, (unsigned)p->user.gid);
        else
                P("  mode        caller (fallback %u:%u)\n", (unsigned)p->user.default_uid,
                  (unsigned)p->user.default_gid);
        P("  root        %s\n", p->user.allow_root ? "ALLOWED" : "refused");

        P("\ncapabilities\n");
        if (!p->n_capabilities)
                P("  none (all dropped)\n");
        for (size_t i = 0; i < p->n_capabilities; i++)
                P("  %s\n", p->capabilities[i]);

        explain_seccomp(b, p, aidp_profiles_arch(env));

        explain_network(b, p);
        char *t = aidp_profiles_sb_take(b);
        if (!t)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        *text = t;
        return 0;
}

/* ---- canonical form ---- */

struct lines {
        char **v;
        size_t n;
        bool oom;
};

static void line_add(struct lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_add(struct lines *l, const char *fmt, ...)
{
        if (l->oom)
                return;
        va_list ap;
        va_start(ap, fmt);
        char *s = NULL;
        int rc = vasprintf(&s, fmt, ap);
        va_end(ap);
        char **nv = rc < 0 ? NULL : realloc(l->v, (l->n + 1) * sizeof *nv);
        if (!nv) {
                free(rc < 0 ? NULL : s);
                l->oom = true;
                return;
        }
        l->v = nv;
        nv[l->n++] = s;
}

int aidp_profile_canonical(const struct aidp_profile *p, char **text, aidp_error *err)
{
        struct lines l = {0};
        const struct aidp_limits *lim = &p->limits;
        line_add(&l,
                 "limits memory=%" PRIu64 " cpu=%" PRIu64 " pids=%" PRIu64 " wall=%" PRIu64
                 " tmp=%" PRIu64 " scratch=%" PRIu64 " out=%" PRIu64 " data=%" PRIu64,
                 lim->memory_bytes, lim->cpu_millis, lim->pids, lim->wall_seconds, lim->tmp_bytes,
                 lim->scratch_bytes, lim->out_bytes, lim->data_bytes);
        /* Only when set, so that the digest of a profile without it stays. */
        if (lim->shm_bytes)
                line_add(&l, "limits shm=%" PRIu64, lim->shm_bytes);
        for (int r = 0; r < AIDP_RLIMIT_SLOTS; r++)
                if (lim->rlimits[r].set)
                        line_add(&l, "rlimit %02d %" PRIu64 " %" PRIu64, r, lim->rlimits[r].soft,
                                 lim->rlimits[r].hard);
        for (size_t i = 0; i < p->n_binds; i++)
                line_add(&l, "bind %s %s %s", p->binds[i].target, p->binds[i].source,
                         p->binds[i].writable ? "rw" : "ro");
        for (size_t i = 0; i < p->n_masked; i++)
                line_add(&l, "masked %s", p->masked[i]);
        for (size_t i = 0; i < p->n_devices; i++)
                line_add(&l, "device %s%s", p->devices[i].path,
                         p->devices[i].optional ? " optional" : "");
        line_add(&l, "user mode=%d uid=%u gid=%u default=%u:%u root=%d", (int)p->user.mode,
                 (unsigned)p->user.uid, (unsigned)p->user.gid, (unsigned)p->user.default_uid,
                 (unsigned)p->user.default_gid, p->user.allow_root);
        for (size_t i = 0; i < p->n_capabilities; i++)
                line_add(&l, "cap %s", p->capabilities[i]);
        line_add(&l, "paths data=%s scratch=%s out=%s cwd=%d", p->paths.data, p->paths.scratch,
                 p->paths.out, p->bind_cwd);
        line_add(&l, "seccomp default=%d errno=%d", (int)p->seccomp.default_action,
                 p->seccomp.default_action == AIDP_SC_ERRNO ? p->seccomp.default_errno : 0);
        for (size_t i = 0; i < p->seccomp.n_rules; i++) {
                const struct aidp_sc_rule *r = &p->seccomp.rules[i];
                struct aidp_sb sb = {0}, *b = &sb;
                P("sc %d %d", (int)r->action, r->action == AIDP_SC_ERRNO ? r->errno_ret : 0);
                /* argument conditions sorted by index */
                for (unsigned idx = 0; idx < 6; idx++)
                        for (size_t j = 0; j < r->n_args; j++)
                                if (r->args[j].index == idx)
                                        P(" a%u:%d:%" PRIx64 ":%" PRIx64, idx, (int)r->args[j].op,
                                          r->args[j].value, r->args[j].value2);
                char *prefix = aidp_profiles_sb_take(b);
                if (!prefix) {
                        l.oom = true;
                        break;
                }
                for (size_t j = 0; j < r->n_names; j++)
                        line_add(&l, "%s %s", prefix, r->names[j]);
                free(prefix);
        }
        line_add(&l, "net mode=%d", (int)p->network.mode);
        for (size_t i = 0; i < p->network.n_rules; i++) {
                const struct aidp_egress_rule *r = &p->network.rules[i];
                line_add(&l, "egress %s %s %u-%u %d %s", r->cidr ? r->cidr : "-",
                         r->fqdn ? r->fqdn : "-", r->port_min, r->port_max, r->protocol,
                         r->region ? r->region : "-");
        }
        struct aidp_sb out = {0};
        if (!l.oom) {
                qsort(l.v, l.n, sizeof *l.v, cmp_str);
                aidp_profiles_sb_printf(&out, "aidp-profile-canonical/1\n");
                for (size_t i = 0; i < l.n; i++)
                        if (i == 0 || strcmp(l.v[i], l.v[i - 1])) /* merged duplicates are one */
                                aidp_profiles_sb_printf(&out, "%s\n", l.v[i]);
        }
        for (size_t i = 0; i < l.n; i++)
                free(l.v[i]);
        free(l.v);
        char *t = l.oom ? NULL : aidp_profiles_sb_take(&out);
        if (!t) {
                aidp_profiles_sb_free(&out);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        *text = t;
        return 0;
}
