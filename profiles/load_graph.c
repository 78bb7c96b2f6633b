/* Phase 1 of loading a profile: read the `extends` graph.
 *
 * Every file is read through the caller's reader (struct aidp_profile_env),
 * parsed into a positioned YAML tree and appended to ld->layers after its
 * parents, so that the merge in phase 2 is a plain walk in order. A file
 * reached twice (a diamond) is merged once, at its first place. A cycle is
 * refused with the whole chain in the message; it is caught before the file
 * is read when the reference is a path, so that a buffer that is not readable
 * by name cannot hide one. The depth is bounded (AIDP_LD_MAX_LAYERS) so that a
 * hostile library cannot make the loader recurse without end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/load_internal.h"

int aidp_ld_read_ref(struct loader *ld, const char *ref, const char *basedir, char **source,
                     char **buf, size_t *len, char *tried, size_t tried_len)
{
        const struct aidp_profile_env *env = ld->env;
        if (!env || !env->read_file)
                return aidp_error_set(ld->err, AIDP_EXIT_CONFIG, ENOENT,
                                      "no file reader to load '%s'", ref);
        tried[0] = '\0';
        if (aidp_ld_is_path_ref(ref)) {
                _cleanup_free_ char *np = aidp_ld_join_ref(basedir, ref);
                if (!np)
                        return aidp_ld_oom(ld->err);
                snprintf(tried, tried_len, "%s", np);
                int rc = env->read_file(env->ctx, np, buf, len, ld->err);
                if (rc < 0)
                        return rc;
                *source = TAKE_PTR(np);
                return 0;
        }
        if (!aidp_ld_valid_name(ref))
                return -EINVAL;
        size_t used = 0;
        for (size_t i = 0; i < env->n_search_path; i++) {
                char p[4096];
                PATHF(p, "%s/%s.yaml", env->search_path[i], ref);
                int w = snprintf(tried + used, tried_len - used, "%s%s", used ? ", " : "", p);
                if (w > 0 && (size_t)w < tried_len - used)
                        used += (size_t)w;
                _cleanup_free_ char *np = aidp_ld_normpath(p);
                if (!np)
                        return aidp_ld_oom(ld->err);
                int rc = env->read_file(env->ctx, np, buf, len, ld->err);
                if (rc == -ENOENT)
                        continue;
                if (rc < 0)
                        return rc;
                *source = TAKE_PTR(np);
                return 0;
        }
        return -ENOENT;
}

static int cycle_err(struct loader *ld, ytree *t, ynode *n, const char *path, size_t from,
                     const char *source)
{
        char chain[2048] = "";
        size_t used = 0;
        for (size_t j = from; j < ld->depth; j++) {
                int w = snprintf(chain + used, sizeof chain - used, "%s -> ", ld->stack[j]);
                if (w > 0 && (size_t)w < sizeof chain - used)
                        used += (size_t)w;
        }
        return YERR(t, n, path, "extends cycle: %s%s", chain, source);
}

static int load_parent(struct loader *ld, ytree *t, ynode *n, const char *path, const char *basedir)
{
        const char *ref;
        int rc = aidp_yaml_scalar(t, n, path, "a profile name or path", &ref, ld->err);
        if (rc < 0)
                return rc;
        char tried[2048];
        _cleanup_free_ char *source = NULL, *buf = NULL;
        size_t len = 0;
        if (aidp_ld_is_path_ref(ref)) {
                /* A path names its file before it is read: catch a cycle
                 * through a file that is not readable by name (a buffer). */
                _cleanup_free_ char *np = aidp_ld_join_ref(basedir, ref);
                if (!np)
                        return aidp_ld_oom(ld->err);
                for (size_t i = 0; i < ld->depth; i++)
                        if (!strcmp(ld->stack[i], np))
                                return cycle_err(ld, t, n, path, i, np);
        }
        aidp_error sub = {0};
        aidp_error *saved = ld->err;
        ld->err = &sub;
        rc = aidp_ld_read_ref(ld, ref, basedir, &source, &buf, &len, tried, sizeof tried);
        ld->err = saved;
        if (rc == -EINVAL && !aidp_ld_is_path_ref(ref))
                return YERR(t, n, path,
                            "found '%s', expected a profile name ([A-Za-z0-9._-]) or a path", ref);
        if (rc == -ENOENT)
                return YERR(t, n, path, "parent profile '%s' not found (looked in: %s)", ref,
                            *tried ? tried : "no library directories");
        if (rc < 0) {
                *ld->err = sub;
                return aidp_error_wrap(ld->err, "%s:%u:%u: %s", t->file,
                                       (unsigned)n->start_mark.line + 1,
                                       (unsigned)n->start_mark.column + 1, path);
        }
        for (size_t i = 0; i < ld->depth; i++)
                if (!strcmp(ld->stack[i], source))
                        return cycle_err(ld, t, n, path, i, source);
        for (size_t i = 0; i < ld->n_layers; i++)
                if (!strcmp(ld->layers[i].source, source))
                        return 0; /* already merged (diamond): once is enough */
        rc = aidp_ld_load_layer(ld, source, buf, len);
        if (rc < 0 && ld->err)
                aidp_error_wrap(ld->err, "in parent '%s' (%s:%u:%u)", ref, t->file,
                                (unsigned)n->start_mark.line + 1,
                                (unsigned)n->start_mark.column + 1);
        return rc;
}

static const char *const top_keys[] = {
        "apiVersion", "kind",         "metadata", "extends", "limits", "filesystem", "devices",
        "user",       "capabilities", "seccomp",  "network", "data",   NULL};

/* apiVersion, kind and metadata: what makes a YAML file a profile. Checked
 * before the parents are read, so that a stray file named by `extends` is
 * reported as such and not by its first unknown key. */
static int read_header(struct loader *ld, struct layer *L, ynode *root)
{
        ytree *t = &L->t;
        int rc;
        const char *s;
        ynode *n = aidp_yaml_get(t, root, "apiVersion", NULL);
        if (!n)
                return YERR(t, root, "apiVersion", "found nothing, expected 'aidp/v1'");
        if ((rc = aidp_yaml_scalar(t, n, "apiVersion", "'aidp/v1'", &s, ld->err)) < 0)
                return rc;
        if (strcmp(s, "aidp/v1"))
                return YERR(t, n, "apiVersion", "found '%s', expected 'aidp/v1'", s);
        n = aidp_yaml_get(t, root, "kind", NULL);
        if (!n)
                return YERR(t, root, "kind", "found nothing, expected 'Profile'");
        if ((rc = aidp_yaml_scalar(t, n, "kind", "'Profile'", &s, ld->err)) < 0)
                return rc;
        if (strcmp(s, "Profile"))
                return YERR(t, n, "kind", "found '%s', expected 'Profile'", s);
        ynode *md = aidp_yaml_get(t, root, "metadata", NULL);
        if (!md)
                return YERR(t, root, "metadata", "found nothing, expected a mapping with name");
        static const char *const md_keys[] = {"name", "description", NULL};
        if ((rc = aidp_yaml_check_keys(t, md, "metadata", md_keys, ld->err)) < 0)
                return rc;
        n = aidp_yaml_get(t, md, "name", NULL);
        if (!n)
                return YERR(t, md, "metadata.name", "found nothing, expected a profile name");
        if ((rc = aidp_yaml_scalar(t, n, "metadata.name", "a profile name", &s, ld->err)) < 0)
                return rc;
        if (!aidp_ld_valid_name(s))
                return YERR(
                        t, n, "metadata.name",
                        "found '%s', expected a name of letters, digits, '.', '_', '-' (at most "
                        "63)",
                        s);
        L->name = strdup(s);
        n = aidp_yaml_get(t, md, "description", NULL);
        if (n) {
                if ((rc = aidp_yaml_scalar(t, n, "metadata.description", "a string", &s, ld->err)) <
                    0)
                        return rc;
                L->description = strdup(s);
                if (!L->description)
                        return aidp_ld_oom(ld->err);
        }
        return 0;
}

int aidp_ld_load_layer(struct loader *ld, const char *source, const char *buf, size_t len)
{
        if (ld->depth >= AIDP_LD_MAX_LAYERS || ld->n_layers >= AIDP_LD_MAX_LAYERS)
                return aidp_error_set(ld->err, AIDP_EXIT_CONFIG, ELOOP,
                                      "%s: more than %d profiles in the extends chain", source,
                                      AIDP_LD_MAX_LAYERS);
        struct layer L = {0};
        int rc = aidp_yaml_load(&L.t, source, "profile", buf, len, 0, ld->err);
        if (rc < 0)
                goto fail;
        L.t.collect = aidp_ld_collect; /* unknown keys: reported, skipped (profile check) */
        L.t.collect_ctx = ld;
        ytree *t = &L.t;
        ynode *root = aidp_yaml_root(t);
        if ((rc = aidp_yaml_check_keys(t, root, "", top_keys, ld->err)) < 0)
                goto fail;
        if ((rc = read_header(ld, &L, root)) < 0)
                goto fail;
        L.source = strdup(source);
        if (!L.name || !L.source) {
                rc = aidp_ld_oom(ld->err);
                goto fail;
        }
        ynode *ext = aidp_yaml_get(t, root, "extends", NULL);
        if (ext) {
                _cleanup_free_ char *dir = aidp_ld_dirname(source);
                if (!dir) {
                        rc = aidp_ld_oom(ld->err);
                        goto fail;
                }
                ld->stack[ld->depth++] = L.source;
                if (ext->type == YAML_SCALAR_NODE) {
                        rc = load_parent(ld, t, ext, "extends", dir);
                } else if ((rc = aidp_ld_expect_list(ld, t, ext, "extends",
                                                     "a profile name, path or a list of them")) ==
                           0) {
                        {
                                ynode *item;
                                FOREACH_ITEM(t, ext, i, item)
                                {
                                        char path[64];
                                        PATHF(path, "extends[%zu]", i);
                                        if ((rc = load_parent(ld, t, item, path, dir)) < 0)
                                                break;
                                }
                        }
                }
                ld->depth--;
                if (rc < 0)
                        goto fail;
        }
        struct layer *nl = realloc(ld->layers, (ld->n_layers + 1) * sizeof *nl);
        if (!nl) {
                rc = aidp_ld_oom(ld->err);
                goto fail;
        }
        ld->layers = nl;
        nl[ld->n_layers++] = L;
        return 0;
fail:
        aidp_yaml_free(&L.t);
        free(L.name);
        free(L.source);
        free(L.description);
        return rc;
}
