/* YAML profile -> effective struct aidp_profile: the loader's entry points.
 *
 * Two phases. First every file of the `extends` graph is read (through the
 * caller's reader) and parsed into a positioned YAML tree, parents before
 * children, each file once; cycles and missing parents stop here
 * (load_graph.c). Then the built-in defaults are overlaid by each layer in that
 * order (load_sections.c, load_seccomp.c, load_network.c). Capabilities are
 * gathered from every layer before any seccomp section is applied, because a
 * Docker seccomp import is resolved against the capabilities the sandbox will
 * finally keep. Last come the checks that need the whole effective profile,
 * device globs expanded by the caller, the digest and the lints.
 * Merge rules: docs/profiles.md ("extends"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "profiles/load_internal.h"

/* ---------- lint list (shared with profile_lint.c via the API) ---------- */

void aidp_lint_list_free(struct aidp_lint_list *l)
{
        if (!l)
                return;
        free(l->items);
        memset(l, 0, sizeof *l);
}

const char *aidp_lint_level_name(enum aidp_lint_level l)
{
        switch (l) {
        case AIDP_LINT_NOTE: return "note";
        case AIDP_LINT_WARNING: return "warning";
        case AIDP_LINT_LEVEL_MAX: break;
        }
        return "?";
}

static int apply_layer(struct loader *ld, struct layer *L, struct aidp_profile *p)
{
        ytree *t = &L->t;
        ynode *root = aidp_yaml_root(t);
        ynode *v;
        int rc = 0;
        /* Sections in a fixed order: later ones may rely on earlier ones
         * (user before seccomp, for instance). */
        static const struct {
                const char *key;
                int (*apply)(struct loader *, ytree *, ynode *, struct aidp_profile *);
        } sections[] = {
                {"limits", aidp_ld_apply_limits},   {"filesystem", aidp_ld_apply_filesystem},
                {"devices", aidp_ld_apply_devices}, {"user", aidp_ld_apply_user},
                {"seccomp", aidp_ld_apply_seccomp}, {"network", aidp_ld_apply_network},
                {"data", aidp_ld_apply_data},
        };
        for (size_t i = 0; i < ARRAY_SIZE(sections); i++)
                if ((v = aidp_yaml_get(t, root, sections[i].key, NULL)) &&
                    (rc = sections[i].apply(ld, t, v, p)) < 0 && !aidp_ld_recover(ld))
                        return rc;
        if (L->description && aidp_ld_replace_str(&p->description, L->description) < 0)
                return aidp_ld_oom(ld->err);
        return aidp_strv_push(&p->layers, &p->n_layers, L->name) < 0 ? aidp_ld_oom(ld->err) : 0;
}

static const char *origin_get(struct loader *ld, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static const char *origin_get(struct loader *ld, const char *fmt, ...)
{
        char key[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(key, sizeof key, fmt, ap);
        va_end(ap);
        for (size_t i = 0; i < ld->n_origins; i++)
                if (!strcmp(ld->origins[i].key, key))
                        return ld->origins[i].where;
        return NULL;
}

static int at(struct loader *ld, const char *where, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int at(struct loader *ld, const char *where, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (where && *where)
                return aidp_error_set(ld->err, AIDP_EXIT_CONFIG, EINVAL, "%s: %s", where, msg);
        return aidp_error_set(ld->err, AIDP_EXIT_CONFIG, EINVAL, "%s", msg);
}

/* Checks that need the whole effective profile. */
static int check_effective(struct loader *ld, struct aidp_profile *p)
{
        const char *dp[] = {p->paths.data, p->paths.scratch, p->paths.out};
        const char *dn[] = {"data", "scratch", "out"};
        for (size_t i = 0; i < 3; i++)
                for (size_t j = 0; j < 3; j++)
                        if (i != j && aidp_ld_path_within(dp[i], dp[j]))
                                return at(ld, origin_get(ld, "data.%s", dn[i]),
                                          "data.%s: found '%s' inside data.%s ('%s'), expected "
                                          "separate mount points",
                                          dn[i], dp[i], dn[j], dp[j]);
        for (size_t b = 0; b < p->n_binds; b++)
                for (size_t i = 0; i < 3; i++)
                        if (aidp_ld_path_within(p->binds[b].target, dp[i]) ||
                            aidp_ld_path_within(dp[i], p->binds[b].target) ||
                            aidp_ld_path_within(p->binds[b].target, "/tmp"))
                                return at(ld, origin_get(ld, "bind:%s", p->binds[b].target),
                                          "filesystem.binds: found target '%s' overlapping the "
                                          "sandbox's own mount %s, expected a separate path",
                                          p->binds[b].target,
                                          aidp_ld_path_within(p->binds[b].target, "/tmp") ? "/tmp"
                                                                                          : dp[i]);
        if (p->user.mode == AIDP_USER_FIXED && !origin_get(ld, "user.uid"))
                return at(ld, NULL, "user: found mode fixed without uid, expected uid and gid");
        if (p->user.mode == AIDP_USER_FIXED && !origin_get(ld, "user.gid"))
                return at(ld, NULL, "user: found mode fixed without gid, expected uid and gid");
        if (!p->user.allow_root) {
                if (p->user.mode == AIDP_USER_FIXED && (p->user.uid == 0 || p->user.gid == 0))
                        return at(ld, origin_get(ld, p->user.uid == 0 ? "user.uid" : "user.gid"),
                                  "user: found uid/gid 0, expected an unprivileged id (or "
                                  "allowRoot: true)");
                if (p->user.default_uid == 0 || p->user.default_gid == 0)
                        return at(ld,
                                  origin_get(ld, p->user.default_uid == 0 ? "user.defaultUid"
                                                                          : "user.defaultGid"),
                                  "user: found default uid/gid 0, expected an unprivileged id (or "
                                  "allowRoot: true)");
        }
        if (p->network.mode == AIDP_NET_NONE && p->network.n_rules)
                return at(ld, NULL,
                          "network: found egress rules with mode none, expected mode egress");
        const char *bad = aidp_profiles_sc_contradiction(&p->seccomp);
        if (bad)
                return at(ld, origin_get(ld, "sc:%s", bad),
                          "seccomp: contradictory rules for '%s' in the effective policy (an "
                          "unconditional rule next to a rule with another action)",
                          bad);
        return 0;
}

static int expand_devices(struct loader *ld, struct aidp_profile *p)
{
        const struct aidp_profile_env *env = ld->env;
        if (!env || !env->expand_devices || !p->n_devices)
                return 0;
        struct aidp_device *out = NULL;
        size_t n_out = 0;
        int rc = 0;
        for (size_t i = 0; i < p->n_devices && rc == 0; i++) {
                char **found = NULL;
                aidp_error sub = {0};
                int n = env->expand_devices(env->ctx, p->devices[i].path, &found, &sub);
                const char *where = origin_get(ld, "device:%s", p->devices[i].path);
                if (n < 0) {
                        *ld->err = sub;
                        rc = aidp_error_wrap(ld->err, "%sdevices: '%s'", where ? where : "",
                                             p->devices[i].path);
                        break;
                }
                if (n == 0) {
                        if (p->devices[i].optional)
                                aidp_ld_lint(
                                        ld->lints, AIDP_LINT_NOTE, "device-missing-optional", where,
                                        "devices: '%s' matches no character device on this host; "
                                        "optional, so not exposed",
                                        p->devices[i].path);
                        else
                                rc = at(ld, where,
                                        "devices: found no character device matching '%s' on this "
                                        "host, expected an existing device (or optional: true)",
                                        p->devices[i].path);
                }
                for (int j = 0; j < n; j++) {
                        bool dup = false;
                        for (size_t k = 0; k < n_out && !dup; k++)
                                dup = !strcmp(out[k].path, found[j]);
                        if (!dup && rc == 0) {
                                struct aidp_device *no = realloc(out, (n_out + 1) * sizeof *no);
                                if (!no) {
                                        rc = aidp_ld_oom(ld->err);
                                } else {
                                        out = no;
                                        out[n_out].path = found[j];
                                        out[n_out++].optional = p->devices[i].optional;
                                        found[j] = NULL;
                                }
                        }
                        free(found[j]);
                }
                free(found);
        }
        for (size_t i = 0; i < p->n_devices; i++)
                free(p->devices[i].path);
        free(p->devices);
        p->devices = out;
        p->n_devices = n_out;
        return rc;
}

static void loader_free(struct loader *ld)
{
        for (size_t i = 0; i < ld->n_layers; i++) {
                aidp_yaml_free(&ld->layers[i].t);
                free(ld->layers[i].name);
                free(ld->layers[i].source);
                free(ld->layers[i].description);
        }
        free(ld->layers);
        for (size_t i = 0; i < ld->n_origins; i++)
                free(ld->origins[i].key);
        free(ld->origins);
}

static int digest(struct aidp_profile *p, aidp_error *err)
{
        _cleanup_free_ char *text = NULL;
        int rc = aidp_profile_canonical(p, &text, err);
        if (rc < 0)
                return rc;
        unsigned int len = 0;
        if (!EVP_Digest(text, strlen(text), p->digest, &len, EVP_sha256(), NULL) || len != 32)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "SHA-256 failed");
        return 0;
}

static int finish(struct loader *ld, const char *source, struct aidp_profile *out)
{
        struct aidp_profile p;
        if (aidp_profile_init_defaults(&p) < 0)
                return aidp_ld_oom(ld->err);
        int rc = 0;
        /* Capabilities first: an import resolves against the final set. */
        for (size_t i = 0; i < ld->n_layers && rc == 0; i++) {
                ynode *v = aidp_yaml_get(&ld->layers[i].t, aidp_yaml_root(&ld->layers[i].t),
                                         "capabilities", NULL);
                if (v && (rc = aidp_ld_apply_caps(ld, &ld->layers[i].t, v, &p)) < 0 &&
                    aidp_ld_recover(ld))
                        rc = 0;
        }
        for (size_t i = 0; i < ld->n_layers && rc == 0; i++) {
                /* Positioned notes about a file are for the file checked, not
                 * repeated for every profile that extends it. */
                ld->in_root = i == ld->n_layers - 1;
                rc = apply_layer(ld, &ld->layers[i], &p);
        }
        /* Errors gathered for profile check: the checks of the whole profile
         * would only repeat them. */
        if (rc == 0 && ld->env->errors && ld->env->errors->n)
                rc = -EINVAL;
        if (rc == 0)
                rc = check_effective(ld, &p);
        if (rc == 0)
                rc = expand_devices(ld, &p);
        if (rc == 0) {
                struct layer *last = &ld->layers[ld->n_layers - 1];
                if (aidp_ld_replace_str(&p.name, last->name) < 0 ||
                    aidp_ld_replace_str(&p.source, source) < 0)
                        rc = aidp_ld_oom(ld->err);
        }
        if (rc == 0)
                rc = digest(&p, ld->err);
        if (rc == 0 && ld->lints) {
                aidp_error lerr = {0};
                struct aidp_lint_list more = {0};
                rc = aidp_profile_lint(&p, ld->env, &more, &lerr);
                if (rc < 0) {
                        *ld->err = lerr;
                } else {
                        /* Attach positions to the effective-profile lints. */
                        for (size_t i = 0; i < more.n; i++) {
                                struct aidp_lint *l = &more.items[i];
                                const char *w = NULL;
                                char key[160];
                                if (sscanf(l->where, "key=%159s", key) == 1)
                                        w = origin_get(ld, "%s", key);
                                snprintf(l->where, sizeof l->where, "%s", w ? w : "");
                                aidp_ld_lint(ld->lints, l->level, l->code, l->where, "%s", l->msg);
                        }
                }
                aidp_lint_list_free(&more);
        }
        if (rc < 0) {
                aidp_profile_free(&p);
                return rc;
        }
        *out = p;
        return 0;
}

/* profile check: the error that ended the load joins those gathered, and
 * *err is the first of them. */
static void gathered(struct aidp_profile_errors *l, int rc, aidp_error *err)
{
        if (!l || rc >= 0 || !err)
                return;
        if (err->msg[0] && l->n < AIDP_PROFILE_ERRORS_MAX)
                l->items[l->n++] = *err;
        if (l->n)
                *err = l->items[0];
}

static int load_common(const char *source, const char *buf, size_t len,
                       const struct aidp_profile_env *env, struct aidp_profile *out,
                       struct aidp_lint_list *lints, aidp_error *err)
{
        struct loader ld = {.env = env, .err = err};
        struct aidp_lint_list local = {0};
        ld.lints = lints ? &local : NULL;
        memset(out, 0, sizeof *out);
        int rc = aidp_ld_load_layer(&ld, source, buf, len);
        if (rc == 0)
                rc = finish(&ld, source, out);
        /* Layer lints first (in file order), then effective-profile lints. */
        for (size_t i = 0; rc == 0 && lints && i < local.n; i++)
                aidp_ld_lint(lints, local.items[i].level, local.items[i].code, local.items[i].where,
                             "%s", local.items[i].msg);
        aidp_lint_list_free(&local);
        loader_free(&ld);
        if (rc < 0 && err && !err->status)
                err->status = AIDP_EXIT_CONFIG;
        gathered(env->errors, rc, err);
        return rc;
}

int aidp_profile_load_buffer(const char *file, const char *buf, size_t len,
                             const struct aidp_profile_env *env, struct aidp_profile *out,
                             struct aidp_lint_list *lints, aidp_error *err)
{
        _cleanup_free_ char *src = aidp_ld_normpath(file ? file : "<input>");
        if (!src)
                return aidp_ld_oom(err);
        return load_common(src, buf, len, env, out, lints, err);
}

int aidp_profile_load(const char *name_or_path, const struct aidp_profile_env *env,
                      struct aidp_profile *out, struct aidp_lint_list *lints, aidp_error *err)
{
        struct loader ld = {.env = env, .err = err};
        _cleanup_free_ char *source = NULL, *buf = NULL;
        size_t len = 0;
        char tried[2048];
        memset(out, 0, sizeof *out);
        int rc =
                aidp_ld_read_ref(&ld, name_or_path, NULL, &source, &buf, &len, tried, sizeof tried);
        if (rc == -EINVAL && !aidp_ld_is_path_ref(name_or_path))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "profile '%s': expected a library name ([A-Za-z0-9._-]) or a "
                                      "path to a .yaml file",
                                      name_or_path);
        if (rc == -ENOENT && !aidp_ld_is_path_ref(name_or_path))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOENT,
                                      "profile '%s' not found in the library (looked in: %s; 'aidp "
                                      "profile list' shows the profiles there)",
                                      name_or_path, *tried ? tried : "no library directories");
        if (rc == -ENOENT)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOENT, "profile '%s' not found",
                                      name_or_path);
        if (rc < 0)
                return rc;
        return load_common(source, buf, len, env, out, lints, err);
}
