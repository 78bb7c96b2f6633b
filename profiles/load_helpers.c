/* Small helpers of the profile loader: lints and origins (where an item of
 * the effective profile was written), lexical path checks, string arrays.
 *
 * Paths are handled as text only. A profile is reviewed as written and later
 * applied by root, so the loader refuses anything whose meaning would depend
 * on the file system at apply time ("..", "//", relative paths); it never
 * resolves a path against the host. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/load_internal.h"
#include "profiles/profile_load.h"

void aidp_ld_lint(struct aidp_lint_list *l, enum aidp_lint_level lvl, const char *code,
                  const char *where, const char *fmt, ...)
{
        if (!l)
                return;
        struct aidp_lint *n = realloc(l->items, (l->n + 1) * sizeof *n);
        if (!n)
                return; /* a lost lint is not worth failing the load */
        l->items = n;
        struct aidp_lint *it = &n[l->n++];
        memset(it, 0, sizeof *it);
        it->level = lvl;
        snprintf(it->code, sizeof it->code, "%s", code);
        snprintf(it->where, sizeof it->where, "%s", where ? where : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(it->msg, sizeof it->msg, fmt, ap);
        va_end(ap);
}

/* ---------- origins: where an item of the effective profile was written ---------- */

void aidp_ld_origin_set(struct loader *ld, const ytree *t, const ynode *n, const char *fmt, ...)
{
        char key[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(key, sizeof key, fmt, ap);
        va_end(ap);
        struct origin *o = NULL;
        for (size_t i = 0; i < ld->n_origins; i++)
                if (!strcmp(ld->origins[i].key, key))
                        o = &ld->origins[i];
        if (!o) {
                struct origin *nw = realloc(ld->origins, (ld->n_origins + 1) * sizeof *nw);
                if (!nw)
                        return;
                ld->origins = nw;
                o = &nw[ld->n_origins];
                o->key = strdup(key);
                if (!o->key)
                        return;
                ld->n_origins++;
        }
        snprintf(o->where, sizeof o->where, "%s:%u:%u", t->file, (unsigned)n->start_mark.line + 1,
                 (unsigned)n->start_mark.column + 1);
}

/* ---------- small helpers ---------- */

char *aidp_ld_normpath(const char *p)
{
        size_t len = strlen(p);
        char *out = malloc(len + 2);
        if (!out)
                return NULL;
        bool abs = p[0] == '/';
        size_t o = 0;
        size_t seg_starts[512];
        size_t nseg = 0;
        if (abs)
                out[o++] = '/';
        const char *s = p;
        while (*s) {
                while (*s == '/')
                        s++;
                if (!*s)
                        break;
                const char *e = strchr(s, '/');
                size_t l = e ? (size_t)(e - s) : strlen(s);
                if (l == 1 && s[0] == '.') {
                        /* skip */
                } else if (l == 2 && s[0] == '.' && s[1] == '.' && nseg > 0 &&
                           !(o - seg_starts[nseg - 1] == 2 &&
                             !strncmp(out + seg_starts[nseg - 1], "..", 2))) {
                        o = seg_starts[--nseg];
                        if (o > (abs ? 1u : 0u))
                                o--; /* the separator before it */
                } else if (l == 2 && s[0] == '.' && s[1] == '.' && abs) {
                        /* "/.." is "/" */
                } else {
                        if (o > (abs ? 1u : 0u))
                                out[o++] = '/';
                        if (nseg < 512)
                                seg_starts[nseg++] = o;
                        memcpy(out + o, s, l);
                        o += l;
                }
                s += l;
        }
        if (o == 0)
                out[o++] = '.';
        out[o] = '\0';
        return out;
}

char *aidp_ld_join_ref(const char *basedir, const char *ref)
{
        if (ref[0] == '/' || !basedir)
                return aidp_ld_normpath(ref);
        size_t lb = strlen(basedir), lr = strlen(ref);
        _cleanup_free_ char *j = malloc(lb + lr + 2);
        if (!j)
                return NULL;
        memcpy(j, basedir, lb);
        j[lb] = '/';
        memcpy(j + lb + 1, ref, lr + 1);
        return aidp_ld_normpath(j);
}

char *aidp_ld_dirname(const char *path)
{
        const char *sl = strrchr(path, '/');
        if (!sl)
                return strdup(".");
        if (sl == path)
                return strdup("/");
        return strndup(path, (size_t)(sl - path));
}

bool aidp_ld_valid_name(const char *s)
{
        if (!*s || strlen(s) > 63 || !isalnum((unsigned char)s[0]))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
                        return false;
        return true;
}

bool aidp_ld_path_within(const char *path, const char *dir)
{
        size_t l = strlen(dir);
        if (!strcmp(dir, "/"))
                return true;
        return !strncmp(path, dir, l) && (path[l] == '\0' || path[l] == '/');
}

/* Paths the sandbox builds itself or that hold aidp's own state: never a
 * bind's target (profile or command line) nor a command-line bind's source. */
bool aidp_profile_bind_path_reserved(const char *path)
{
        static const char *const reserved[] = {"/proc", "/dev", "/sys", "/run/aidp"};
        if (!strcmp(path, "/"))
                return true;
        for (size_t r = 0; r < sizeof reserved / sizeof reserved[0]; r++)
                if (aidp_ld_path_within(path, reserved[r]))
                        return true;
        return false;
}

int aidp_ld_replace_str(char **dst, const char *s)
{
        char *d = strdup(s);
        if (!d)
                return -ENOMEM;
        free(*dst);
        *dst = d;
        return 0;
}

int aidp_ld_expect_list(struct loader *ld, ytree *t, ynode *n, const char *path, const char *what)
{
        int rc = aidp_yaml_expect(t, n, YAML_SEQUENCE_NODE, path, what, ld->err);
        if (rc < 0)
                return rc;
        if (n->data.sequence.items.top - n->data.sequence.items.start > AIDP_LD_MAX_LIST)
                return YERR(t, n, path, "found more than %d items, expected fewer",
                            AIDP_LD_MAX_LIST);
        return 0;
}

bool aidp_ld_collect(void *ctx, aidp_error *e)
{
        struct loader *ld = ctx;
        struct aidp_profile_errors *l = ld->env->errors;
        if (!l || e->status != AIDP_EXIT_CONFIG)
                return false;
        if (l->n == AIDP_PROFILE_ERRORS_MAX) {
                l->more = true;
                return false;
        }
        l->items[l->n++] = *e;
        return true;
}

bool aidp_ld_recover(struct loader *ld)
{
        if (!aidp_ld_collect(ld, ld->err))
                return false;
        memset(ld->err, 0, sizeof *ld->err);
        return true;
}
