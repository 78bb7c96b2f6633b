/* YAML profile -> effective struct aidp_profile.
 *
 * Two phases. First every file of the `extends` graph is read (through the
 * caller's reader) and parsed into a positioned YAML tree, parents before
 * children, each file once; cycles and missing parents stop here. Then the
 * built-in defaults are overlaid by each layer in that order. Capabilities are
 * gathered from every layer before any seccomp section is applied, because a
 * Docker seccomp import is resolved against the capabilities the sandbox will
 * finally keep. Merge rules: docs/profiles.md ("extends"). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/path.h"
#include "profiles/internal.h"

#pragma GCC diagnostic ignored "-Wformat-truncation"

#define MAX_LAYERS 32
#define MAX_LIST   4096 /* items in one list: more is a mistake, not a profile */

typedef struct aidp_ytree ytree;
typedef yaml_node_t ynode;

struct layer {
        ytree t;
        char *source; /* normalised path */
        char *name;   /* metadata.name */
        char *description;
};

struct origin {
        char *key;
        char where[320];
};

struct loader {
        const struct aidp_profile_env *env;
        aidp_error *err;
        struct layer *layers;
        size_t n_layers;
        const char *stack[MAX_LAYERS];
        size_t depth;
        struct origin *origins;
        size_t n_origins;
        struct aidp_lint_list *lints; /* layer-local lints (redundant rules) */
        bool in_root;                 /* applying the file that was asked for */
};

static int oom(aidp_error *err)
{
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
}

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

static void lint_add(struct aidp_lint_list *l, enum aidp_lint_level lvl, const char *code,
                     const char *where, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void lint_add(struct aidp_lint_list *l, enum aidp_lint_level lvl, const char *code,
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

static void origin_set(struct loader *ld, const ytree *t, const ynode *n, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void origin_set(struct loader *ld, const ytree *t, const ynode *n, const char *fmt, ...)
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

#define PATHF(buf, ...) snprintf(buf, sizeof buf, __VA_ARGS__)

static char *normpath(const char *p)
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

static char *dirname_of(const char *path)
{
        const char *sl = strrchr(path, '/');
        if (!sl)
                return strdup(".");
        if (sl == path)
                return strdup("/");
        return strndup(path, (size_t)(sl - path));
}

static bool is_path_ref(const char *s)
{
        size_t l = strlen(s);
        return strchr(s, '/') || (l > 5 && !strcmp(s + l - 5, ".yaml")) ||
               (l > 4 && !strcmp(s + l - 4, ".yml"));
}

static bool valid_name(const char *s)
{
        if (!*s || strlen(s) > 63 || !isalnum((unsigned char)s[0]))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
                        return false;
        return true;
}

static bool path_within(const char *path, const char *dir)
{
        size_t l = strlen(dir);
        if (!strcmp(dir, "/"))
                return true;
        return !strncmp(path, dir, l) && (path[l] == '\0' || path[l] == '/');
}

static int push_str(char ***arr, size_t *n, const char *s)
{
        char *d = strdup(s);
        if (!d)
                return -ENOMEM;
        char **na = realloc(*arr, (*n + 1) * sizeof *na);
        if (!na) {
                free(d);
                return -ENOMEM;
        }
        *arr = na;
        na[(*n)++] = d;
        return 0;
}

static bool has_str(char *const *arr, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(arr[i], s))
                        return true;
        return false;
}

static int replace_str(char **dst, const char *s)
{
        char *d = strdup(s);
        if (!d)
                return -ENOMEM;
        free(*dst);
        *dst = d;
        return 0;
}

#define YERR(t, n, path, ...) aidp_profiles_yaml_err((t), (n), ld->err, (path), __VA_ARGS__)

static int expect_list(struct loader *ld, ytree *t, ynode *n, const char *path, const char *what)
{
        int rc = aidp_profiles_yaml_expect(t, n, YAML_SEQUENCE_NODE, path, what, ld->err);
        if (rc < 0)
                return rc;
        if (n->data.sequence.items.top - n->data.sequence.items.start > MAX_LIST)
                return YERR(t, n, path, "found more than %d items, expected fewer", MAX_LIST);
        return 0;
}

/* One loop level only, so that `break` inside leaves the whole list: the
 * caller declares `item` (a nested one-pass loop would swallow the break). */
#define SEQ_LEN(seq) ((size_t)((seq)->data.sequence.items.top - (seq)->data.sequence.items.start))
#define FOREACH_ITEM(t, seq, i, item)                                                              \
        for (size_t i = 0;                                                                         \
             i < SEQ_LEN(seq) &&                                                                   \
             ((item) = aidp_profiles_yaml_node((t), (seq)->data.sequence.items.start[i]));         \
             i++)

#define FOREACH_PAIR(t, map, k, v)                                                                 \
        for (yaml_node_pair_t *_p = (map)->data.mapping.pairs.start;                               \
             _p < (map)->data.mapping.pairs.top &&                                                 \
             ((k) = aidp_profiles_yaml_node((t), _p->key)) &&                                      \
             ((v) = aidp_profiles_yaml_node((t), _p->value));                                      \
             _p++)

/* ---------- phase 1: read the extends graph ---------- */

static int read_ref(struct loader *ld, const char *ref, const char *basedir, char **source,
                    char **buf, size_t *len, char *tried, size_t tried_len)
{
        const struct aidp_profile_env *env = ld->env;
        if (!env || !env->read_file)
                return aidp_error_set(ld->err, AIDP_EXIT_CONFIG, ENOENT,
                                      "no file reader to load '%s'", ref);
        tried[0] = '\0';
        if (is_path_ref(ref)) {
                char joined[4096];
                if (ref[0] == '/' || !basedir)
                        PATHF(joined, "%s", ref);
                else
                        PATHF(joined, "%s/%s", basedir, ref);
                _cleanup_free_ char *np = normpath(joined);
                if (!np)
                        return oom(ld->err);
                snprintf(tried, tried_len, "%s", np);
                int rc = env->read_file(env->ctx, np, buf, len, ld->err);
                if (rc < 0)
                        return rc;
                *source = TAKE_PTR(np);
                return 0;
        }
        if (!valid_name(ref))
                return -EINVAL;
        size_t used = 0;
        for (size_t i = 0; i < env->n_search_path; i++) {
                char p[4096];
                PATHF(p, "%s/%s.yaml", env->search_path[i], ref);
                int w = snprintf(tried + used, tried_len - used, "%s%s", used ? ", " : "", p);
                if (w > 0 && (size_t)w < tried_len - used)
                        used += (size_t)w;
                _cleanup_free_ char *np = normpath(p);
                if (!np)
                        return oom(ld->err);
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

static int load_layer(struct loader *ld, const char *source, const char *buf, size_t len);

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
        int rc = aidp_profiles_yaml_scalar(t, n, path, "a profile name or path", &ref, ld->err);
        if (rc < 0)
                return rc;
        char tried[2048];
        _cleanup_free_ char *source = NULL, *buf = NULL;
        size_t len = 0;
        if (is_path_ref(ref)) {
                /* A path names its file before it is read: catch a cycle
                 * through a file that is not readable by name (a buffer). */
                char joined[4096];
                if (ref[0] == '/')
                        PATHF(joined, "%s", ref);
                else
                        PATHF(joined, "%s/%s", basedir, ref);
                _cleanup_free_ char *np = normpath(joined);
                if (!np)
                        return oom(ld->err);
                for (size_t i = 0; i < ld->depth; i++)
                        if (!strcmp(ld->stack[i], np))
                                return cycle_err(ld, t, n, path, i, np);
        }
        aidp_error sub = {0};
        aidp_error *saved = ld->err;
        ld->err = &sub;
        rc = read_ref(ld, ref, basedir, &source, &buf, &len, tried, sizeof tried);
        ld->err = saved;
        if (rc == -EINVAL && !is_path_ref(ref))
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
        rc = load_layer(ld, source, buf, len);
        if (rc < 0 && ld->err)
                aidp_error_wrap(ld->err, "in parent '%s' (%s:%u:%u)", ref, t->file,
                                (unsigned)n->start_mark.line + 1,
                                (unsigned)n->start_mark.column + 1);
        return rc;
}

static const char *const top_keys[] = {
        "apiVersion", "kind",         "metadata", "extends", "limits", "filesystem", "devices",
        "user",       "capabilities", "seccomp",  "network", "data",   NULL};

static int load_layer(struct loader *ld, const char *source, const char *buf, size_t len)
{
        if (ld->depth >= MAX_LAYERS || ld->n_layers >= MAX_LAYERS)
                return aidp_error_set(ld->err, AIDP_EXIT_CONFIG, ELOOP,
                                      "%s: more than %d profiles in the extends chain", source,
                                      MAX_LAYERS);
        struct layer L = {0};
        int rc = aidp_profiles_yaml_load(&L.t, source, buf, len, ld->err);
        if (rc < 0)
                goto fail;
        ytree *t = &L.t;
        ynode *root = aidp_profiles_yaml_root(t);
        if ((rc = aidp_profiles_yaml_check_keys(t, root, "", top_keys, ld->err)) < 0)
                goto fail;
        const char *s;
        ynode *n = aidp_profiles_yaml_get(t, root, "apiVersion", NULL);
        if (!n) {
                rc = YERR(t, root, "apiVersion", "found nothing, expected 'aidp/v1'");
                goto fail;
        }
        if ((rc = aidp_profiles_yaml_scalar(t, n, "apiVersion", "'aidp/v1'", &s, ld->err)) < 0)
                goto fail;
        if (strcmp(s, "aidp/v1")) {
                rc = YERR(t, n, "apiVersion", "found '%s', expected 'aidp/v1'", s);
                goto fail;
        }
        n = aidp_profiles_yaml_get(t, root, "kind", NULL);
        if (!n) {
                rc = YERR(t, root, "kind", "found nothing, expected 'Profile'");
                goto fail;
        }
        if ((rc = aidp_profiles_yaml_scalar(t, n, "kind", "'Profile'", &s, ld->err)) < 0)
                goto fail;
        if (strcmp(s, "Profile")) {
                rc = YERR(t, n, "kind", "found '%s', expected 'Profile'", s);
                goto fail;
        }
        ynode *md = aidp_profiles_yaml_get(t, root, "metadata", NULL);
        if (!md) {
                rc = YERR(t, root, "metadata", "found nothing, expected a mapping with name");
                goto fail;
        }
        static const char *const md_keys[] = {"name", "description", NULL};
        if ((rc = aidp_profiles_yaml_check_keys(t, md, "metadata", md_keys, ld->err)) < 0)
                goto fail;
        n = aidp_profiles_yaml_get(t, md, "name", NULL);
        if (!n) {
                rc = YERR(t, md, "metadata.name", "found nothing, expected a profile name");
                goto fail;
        }
        if ((rc = aidp_profiles_yaml_scalar(t, n, "metadata.name", "a profile name", &s, ld->err)) <
            0)
                goto fail;
        if (!valid_name(s)) {
                rc = YERR(t, n, "metadata.name",
                          "found '%s', expected a name of letters, digits, '.', '_', '-' (at most "
                          "63)",
                          s);
                goto fail;
        }
        L.name = strdup(s);
        n = aidp_profiles_yaml_get(t, md, "description", NULL);
        if (n) {
                if ((rc = aidp_profiles_yaml_scalar(t, n, "metadata.description", "a string", &s,
                                                    ld->err)) < 0)
                        goto fail;
                L.description = strdup(s);
                if (!L.description) {
                        rc = oom(ld->err);
                        goto fail;
                }
        }
        L.source = strdup(source);
        if (!L.name || !L.source) {
                rc = oom(ld->err);
                goto fail;
        }
        ynode *ext = aidp_profiles_yaml_get(t, root, "extends", NULL);
        if (ext) {
                _cleanup_free_ char *dir = dirname_of(source);
                if (!dir) {
                        rc = oom(ld->err);
                        goto fail;
                }
                ld->stack[ld->depth++] = L.source;
                if (ext->type == YAML_SCALAR_NODE) {
                        rc = load_parent(ld, t, ext, "extends", dir);
                } else if ((rc = expect_list(ld, t, ext, "extends",
                                             "a profile name, path or a list of them")) == 0) {
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
                rc = oom(ld->err);
                goto fail;
        }
        ld->layers = nl;
        nl[ld->n_layers++] = L;
        return 0;
fail:
        aidp_profiles_yaml_free(&L.t);
        free(L.name);
        free(L.source);
        free(L.description);
        return rc;
}

/* ---------- phase 2: sections ---------- */

static int size_value(struct loader *ld, ytree *t, ynode *n, const char *path, bool unlimited_ok,
                      uint64_t unlimited, uint64_t *out)
{
        const char *s;
        int rc = aidp_profiles_yaml_scalar(t, n, path, "a size such as 8Gi, 512Mi or 1G", &s,
                                           ld->err);
        if (rc < 0)
                return rc;
        if (unlimited_ok && !strcmp(s, "unlimited")) {
                *out = unlimited;
                return 0;
        }
        if (aidp_profiles_parse_size(s, out) < 0)
                return YERR(t, n, path,
                            "found '%s', expected a size such as 8Gi, 512Mi, 1G or a byte count%s",
                            s, unlimited_ok ? ", or unlimited" : "");
        return 0;
}

static int apply_rlimits(struct loader *ld, ytree *t, ynode *map, struct aidp_profile *p)
{
        int rc = aidp_profiles_yaml_expect(t, map, YAML_MAPPING_NODE, "limits.rlimits",
                                           "a mapping of rlimit name to value", ld->err);
        if (rc < 0)
                return rc;
        {
                ynode *k, *v;
                FOREACH_PAIR(t, map, k, v)
                {
                        const char *name = aidp_profiles_yaml_str(k);
                        char path[128];
                        PATHF(path, "limits.rlimits.%s", name ? name : "?");
                        int r = name ? aidp_profiles_rlimit_parse(name) : -1;
                        if (r < 0)
                                return YERR(t, k, path,
                                            "unknown rlimit '%s', expected one of: cpu, fsize, "
                                            "data, stack, core, rss, nproc, nofile, memlock, as, "
                                            "locks, sigpending, msgqueue, nice, rtprio, rttime",
                                            name ? name : "?");
                        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < _p; q++) {
                                const char *qs =
                                        aidp_profiles_yaml_str(aidp_profiles_yaml_node(t, q->key));
                                if (qs && aidp_profiles_rlimit_parse(qs) == r)
                                        return YERR(t, k, path,
                                                    "found rlimit '%s' twice, expected it once",
                                                    name);
                        }
                        struct aidp_rlimit rl = {.set = true};
                        if (v && v->type == YAML_MAPPING_NODE) {
                                static const char *const keys[] = {"soft", "hard", NULL};
                                if ((rc = aidp_profiles_yaml_check_keys(t, v, path, keys,
                                                                        ld->err)) < 0)
                                        return rc;
                                ynode *sn = aidp_profiles_yaml_get(t, v, "soft", NULL);
                                ynode *hn = aidp_profiles_yaml_get(t, v, "hard", NULL);
                                char sp[160], hp[160];
                                PATHF(sp, "%s.soft", path);
                                PATHF(hp, "%s.hard", path);
                                if (!sn || !hn)
                                        return YERR(t, v, path,
                                                    "found %s, expected both soft and hard",
                                                    sn   ? "only soft"
                                                    : hn ? "only hard"
                                                         : "neither");
                                if ((rc = size_value(ld, t, sn, sp, true, UINT64_MAX, &rl.soft)) <
                                            0 ||
                                    (rc = size_value(ld, t, hn, hp, true, UINT64_MAX, &rl.hard)) <
                                            0)
                                        return rc;
                                if (rl.soft > rl.hard)
                                        return YERR(t, sn, sp,
                                                    "found a soft limit above the hard limit, "
                                                    "expected soft <= hard");
                        } else {
                                if ((rc = size_value(ld, t, v, path, true, UINT64_MAX, &rl.soft)) <
                                    0)
                                        return rc;
                                rl.hard = rl.soft;
                        }
                        p->limits.rlimits[r] = rl;
                        origin_set(ld, t, k, "rlimit:%d", r);
                }
        }
        return 0;
}

static int apply_limits(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"memory", "cpus",    "pids", "wallTime",
                                           "tmpfs",  "rlimits", NULL};
        int rc = aidp_profiles_yaml_check_keys(t, n, "limits", keys, ld->err);
        if (rc < 0)
                return rc;
        ynode *v;
        const char *s;
        if ((v = aidp_profiles_yaml_get(t, n, "memory", NULL))) {
                if ((rc = size_value(ld, t, v, "limits.memory", true, 0, &p->limits.memory_bytes)) <
                    0)
                        return rc;
                if (p->limits.memory_bytes && p->limits.memory_bytes < (4u << 20))
                        return YERR(t, v, "limits.memory",
                                    "found %" PRIu64 " bytes, expected at least 4Mi (a smaller "
                                    "cgroup limit only produces OOM kills)",
                                    p->limits.memory_bytes);
                origin_set(ld, t, v, "limits.memory");
        }
        if ((v = aidp_profiles_yaml_get(t, n, "cpus", NULL))) {
                if ((rc = aidp_profiles_yaml_scalar(t, v, "limits.cpus",
                                                    "a cpu count such as 2, 1.5 or 500m", &s,
                                                    ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "unlimited"))
                        p->limits.cpu_millis = 0;
                else if (aidp_profiles_parse_cpu(s, &p->limits.cpu_millis) < 0 ||
                         p->limits.cpu_millis == 0 || p->limits.cpu_millis > 1000000)
                        return YERR(t, v, "limits.cpus",
                                    "found '%s', expected a cpu count such as 2, 1.5 or 500m "
                                    "(1m..1000), or unlimited",
                                    s);
                origin_set(ld, t, v, "limits.cpus");
        }
        if ((v = aidp_profiles_yaml_get(t, n, "pids", NULL))) {
                if ((rc = aidp_profiles_yaml_scalar(t, v, "limits.pids", "a number of processes",
                                                    &s, ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "unlimited"))
                        p->limits.pids = 0;
                else if (aidp_profiles_parse_uint(s, false, &p->limits.pids) < 0 ||
                         p->limits.pids == 0 || p->limits.pids > 4194304)
                        return YERR(t, v, "limits.pids",
                                    "found '%s', expected a number of processes 1..4194304, or "
                                    "unlimited",
                                    s);
                origin_set(ld, t, v, "limits.pids");
        }
        if ((v = aidp_profiles_yaml_get(t, n, "wallTime", NULL))) {
                if ((rc = aidp_profiles_yaml_scalar(t, v, "limits.wallTime",
                                                    "a duration such as 2h, 90m or 1h30m", &s,
                                                    ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "unlimited"))
                        p->limits.wall_seconds = 0;
                else if (aidp_profiles_parse_duration(s, &p->limits.wall_seconds) < 0 ||
                         p->limits.wall_seconds == 0)
                        return YERR(t, v, "limits.wallTime",
                                    "found '%s', expected a duration such as 2h, 90m, 1h30m, 45s "
                                    "or 1d, or unlimited",
                                    s);
                origin_set(ld, t, v, "limits.wallTime");
        }
        if ((v = aidp_profiles_yaml_get(t, n, "tmpfs", NULL))) {
                static const char *const tkeys[] = {"/tmp", "/scratch", "/out", "/data", NULL};
                if ((rc = aidp_profiles_yaml_check_keys(t, v, "limits.tmpfs", tkeys, ld->err)) < 0)
                        return rc;
                uint64_t *dst[] = {&p->limits.tmp_bytes, &p->limits.scratch_bytes,
                                   &p->limits.out_bytes, &p->limits.data_bytes};
                for (size_t i = 0; i < 4; i++) {
                        ynode *sv = aidp_profiles_yaml_get(t, v, tkeys[i], NULL);
                        if (!sv)
                                continue;
                        char path[64];
                        PATHF(path, "limits.tmpfs.%s", tkeys[i]);
                        if (i == 3 && aidp_profiles_yaml_str(sv) &&
                            !strcmp(aidp_profiles_yaml_str(sv), "auto")) {
                                *dst[i] = 0;
                                continue;
                        }
                        if ((rc = size_value(ld, t, sv, path, false, 0, dst[i])) < 0)
                                return rc;
                        if (*dst[i] < 4096)
                                return YERR(t, sv, path,
                                            "found %" PRIu64 " bytes, expected at least 4Ki%s",
                                            *dst[i],
                                            i == 3 ? " (or auto: sized from the inputs)" : "");
                }
        }
        if ((v = aidp_profiles_yaml_get(t, n, "rlimits", NULL)))
                if ((rc = apply_rlimits(ld, t, v, p)) < 0)
                        return rc;
        return 0;
}

static int abs_path_value(struct loader *ld, ytree *t, ynode *n, const char *path, const char **out)
{
        const char *s;
        int rc = aidp_profiles_yaml_scalar(t, n, path, "an absolute path", &s, ld->err);
        if (rc < 0)
                return rc;
        if (!aidp_path_is_clean_abs(s))
                return YERR(t, n, path,
                            "found '%s', expected an absolute path without '.', '..' or '//'", s);
        *out = s;
        return 0;
}

static int apply_filesystem(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"binds", "masked", "bindCwd", NULL};
        int rc = aidp_profiles_yaml_check_keys(t, n, "filesystem", keys, ld->err);
        if (rc < 0)
                return rc;
        ynode *v;
        if ((v = aidp_profiles_yaml_get(t, n, "bindCwd", NULL)))
                if ((rc = aidp_profiles_yaml_bool(t, v, "filesystem.bindCwd", &p->bind_cwd,
                                                  ld->err)) < 0)
                        return rc;
        if ((v = aidp_profiles_yaml_get(t, n, "masked", NULL))) {
                if ((rc = expect_list(ld, t, v, "filesystem.masked", "a list of absolute paths")) <
                    0)
                        return rc;
                {
                        ynode *item;
                        FOREACH_ITEM(t, v, i, item)
                        {
                                char path[64];
                                const char *s;
                                PATHF(path, "filesystem.masked[%zu]", i);
                                if ((rc = abs_path_value(ld, t, item, path, &s)) < 0)
                                        return rc;
                                if (!strcmp(s, "/"))
                                        return YERR(t, item, path,
                                                    "found '/', expected a path below the root");
                                if (!has_str(p->masked, p->n_masked, s) &&
                                    push_str(&p->masked, &p->n_masked, s) < 0)
                                        return oom(ld->err);
                        }
                }
        }
        if ((v = aidp_profiles_yaml_get(t, n, "binds", NULL))) {
                if ((rc = expect_list(ld, t, v, "filesystem.binds",
                                      "a list of {source, target, writable}")) < 0)
                        return rc;
                {
                        ynode *item;
                        FOREACH_ITEM(t, v, i, item)
                        {
                                char path[64], sp[96];
                                PATHF(path, "filesystem.binds[%zu]", i);
                                static const char *const bkeys[] = {"source", "target", "writable",
                                                                    NULL};
                                const char *src, *dst;
                                bool writable = false;
                                if ((rc = aidp_profiles_yaml_check_keys(t, item, path, bkeys,
                                                                        ld->err)) < 0)
                                        return rc;
                                ynode *sn = aidp_profiles_yaml_get(t, item, "source", NULL);
                                PATHF(sp, "%s.source", path);
                                if (!sn)
                                        return YERR(
                                                t, item, sp,
                                                "found nothing, expected the host path to bind");
                                if ((rc = abs_path_value(ld, t, sn, sp, &src)) < 0)
                                        return rc;
                                dst = src;
                                ynode *tn = aidp_profiles_yaml_get(t, item, "target", NULL);
                                if (tn) {
                                        PATHF(sp, "%s.target", path);
                                        if ((rc = abs_path_value(ld, t, tn, sp, &dst)) < 0)
                                                return rc;
                                }
                                static const char *const reserved[] = {"/proc", "/dev", "/sys",
                                                                       "/run/aidp"};
                                for (size_t r = 0; r < ARRAY_SIZE(reserved); r++)
                                        if (path_within(dst, reserved[r]) || !strcmp(dst, "/"))
                                                return YERR(t, tn ? tn : sn, path,
                                                            "found target '%s', expected a path "
                                                            "outside /, "
                                                            "/proc, /dev, /sys and /run/aidp (the "
                                                            "sandbox "
                                                            "builds those itself)",
                                                            dst);
                                ynode *wn = aidp_profiles_yaml_get(t, item, "writable", NULL);
                                if (wn) {
                                        PATHF(sp, "%s.writable", path);
                                        if ((rc = aidp_profiles_yaml_bool(t, wn, sp, &writable,
                                                                          ld->err)) < 0)
                                                return rc;
                                }
                                struct aidp_bind *b = NULL;
                                for (size_t j = 0; j < p->n_binds; j++)
                                        if (!strcmp(p->binds[j].target, dst))
                                                b = &p->binds[j];
                                if (!b) {
                                        struct aidp_bind *nb =
                                                realloc(p->binds, (p->n_binds + 1) * sizeof *nb);
                                        if (!nb)
                                                return oom(ld->err);
                                        p->binds = nb;
                                        b = &nb[p->n_binds++];
                                        memset(b, 0, sizeof *b);
                                }
                                if (replace_str(&b->source, src) < 0 ||
                                    replace_str(&b->target, dst) < 0)
                                        return oom(ld->err);
                                b->writable = writable;
                                origin_set(ld, t, item, "bind:%s", dst);
                        }
                }
        }
        return 0;
}

static int apply_devices(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        int rc = expect_list(ld, t, n, "devices", "a list of device paths or {path, optional}");
        if (rc < 0)
                return rc;
        {
                ynode *item;
                FOREACH_ITEM(t, n, i, item)
                {
                        char path[64], pp[80];
                        PATHF(path, "devices[%zu]", i);
                        const char *dev;
                        bool optional = false;
                        ynode *pn = item;
                        if (item->type == YAML_MAPPING_NODE) {
                                static const char *const keys[] = {"path", "optional", NULL};
                                if ((rc = aidp_profiles_yaml_check_keys(t, item, path, keys,
                                                                        ld->err)) < 0)
                                        return rc;
                                pn = aidp_profiles_yaml_get(t, item, "path", NULL);
                                if (!pn)
                                        return YERR(t, item, path,
                                                    "found no path, expected path: /dev/...");
                                ynode *on = aidp_profiles_yaml_get(t, item, "optional", NULL);
                                PATHF(pp, "%s.optional", path);
                                if (on && (rc = aidp_profiles_yaml_bool(t, on, pp, &optional,
                                                                        ld->err)) < 0)
                                        return rc;
                                PATHF(pp, "%s.path", path);
                        } else {
                                PATHF(pp, "%s", path);
                        }
                        if ((rc = aidp_profiles_yaml_scalar(t, pn, pp,
                                                            "a device path such as /dev/nvidia0",
                                                            &dev, ld->err)) < 0)
                                return rc;
                        if (strncmp(dev, "/dev/", 5) || !aidp_path_is_clean_abs(dev) ||
                            strlen(dev) <= 5)
                                return YERR(t, pn, pp,
                                            "found '%s', expected a character device path under "
                                            "/dev/ (globs * ? [..] allowed)",
                                            dev);
                        struct aidp_device *d = NULL;
                        for (size_t j = 0; j < p->n_devices; j++)
                                if (!strcmp(p->devices[j].path, dev))
                                        d = &p->devices[j];
                        if (!d) {
                                struct aidp_device *nd =
                                        realloc(p->devices, (p->n_devices + 1) * sizeof *nd);
                                if (!nd)
                                        return oom(ld->err);
                                p->devices = nd;
                                d = &nd[p->n_devices++];
                                memset(d, 0, sizeof *d);
                                if (!(d->path = strdup(dev)))
                                        return oom(ld->err);
                        }
                        d->optional = optional;
                        origin_set(ld, t, pn, "device:%s", dev);
                }
        }
        return 0;
}

static int id_value(struct loader *ld, ytree *t, ynode *n, const char *path, uint32_t *out)
{
        const char *s;
        uint64_t v;
        int rc = aidp_profiles_yaml_scalar(t, n, path, "a numeric id", &s, ld->err);
        if (rc < 0)
                return rc;
        if (aidp_profiles_parse_uint(s, false, &v) < 0 || v >= UINT32_MAX)
                return YERR(t, n, path, "found '%s', expected a numeric id 0..4294967294", s);
        *out = (uint32_t)v;
        return 0;
}

static int apply_user(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"mode",       "uid",       "gid", "defaultUid",
                                           "defaultGid", "allowRoot", NULL};
        int rc = aidp_profiles_yaml_check_keys(t, n, "user", keys, ld->err);
        if (rc < 0)
                return rc;
        ynode *v;
        const char *s;
        uint32_t id = 0;
        if ((v = aidp_profiles_yaml_get(t, n, "mode", NULL))) {
                if ((rc = aidp_profiles_yaml_scalar(t, v, "user.mode", "caller or fixed", &s,
                                                    ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "caller"))
                        p->user.mode = AIDP_USER_CALLER;
                else if (!strcmp(s, "fixed"))
                        p->user.mode = AIDP_USER_FIXED;
                else
                        return YERR(t, v, "user.mode", "found '%s', expected caller or fixed", s);
        }
        struct {
                const char *key;
                void *dst;
                bool gid;
        } ids[] = {{"uid", &p->user.uid, false},
                   {"gid", &p->user.gid, true},
                   {"defaultUid", &p->user.default_uid, false},
                   {"defaultGid", &p->user.default_gid, true}};
        for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
                if (!(v = aidp_profiles_yaml_get(t, n, ids[i].key, NULL)))
                        continue;
                char path[64];
                PATHF(path, "user.%s", ids[i].key);
                if ((rc = id_value(ld, t, v, path, &id)) < 0)
                        return rc;
                if (ids[i].gid)
                        *(gid_t *)ids[i].dst = id;
                else
                        *(uid_t *)ids[i].dst = id;
                origin_set(ld, t, v, "user.%s", ids[i].key);
        }
        if ((v = aidp_profiles_yaml_get(t, n, "allowRoot", NULL))) {
                if ((rc = aidp_profiles_yaml_bool(t, v, "user.allowRoot", &p->user.allow_root,
                                                  ld->err)) < 0)
                        return rc;
                origin_set(ld, t, v, "user.allowRoot");
        }
        return 0;
}

static int apply_caps(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        int rc = expect_list(ld, t, n, "capabilities",
                             "a list of capability names such as CAP_NET_BIND_SERVICE");
        if (rc < 0)
                return rc;
        {
                ynode *item;
                FOREACH_ITEM(t, n, i, item)
                {
                        char path[64], canon[64];
                        const char *s;
                        PATHF(path, "capabilities[%zu]", i);
                        if ((rc = aidp_profiles_yaml_scalar(t, item, path, "a capability name", &s,
                                                            ld->err)) < 0)
                                return rc;
                        if (aidp_profiles_cap_canon(s, canon, sizeof canon) < 0)
                                return YERR(t, item, path,
                                            "found '%s', expected a capability name such as "
                                            "CAP_NET_BIND_SERVICE",
                                            s);
                        if (!has_str(p->capabilities, p->n_capabilities, canon) &&
                            push_str(&p->capabilities, &p->n_capabilities, canon) < 0)
                                return oom(ld->err);
                        origin_set(ld, t, item, "cap:%s", canon);
                }
        }
        return 0;
}

/* ---- seccomp ---- */

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
        int rc = aidp_profiles_yaml_check_keys(t, n, path, keys, ld->err);
        if (rc < 0)
                return rc;
        memset(a, 0, sizeof *a);
        char p[160];
        const char *s;
        uint64_t v;
        ynode *in = aidp_profiles_yaml_get(t, n, "index", NULL);
        PATHF(p, "%s.index", path);
        if (!in)
                return YERR(t, n, p, "found nothing, expected an argument index 0..5");
        if ((rc = aidp_profiles_yaml_scalar(t, in, p, "an argument index 0..5", &s, ld->err)) < 0)
                return rc;
        if (aidp_profiles_parse_uint(s, false, &v) < 0 || v > 5)
                return YERR(t, in, p, "found '%s', expected an argument index 0..5", s);
        a->index = (unsigned)v;
        ynode *on = aidp_profiles_yaml_get(t, n, "op", NULL);
        PATHF(p, "%s.op", path);
        if (!on)
                return YERR(t, n, p, "found nothing, expected eq, ne, lt, le, gt, ge or masked-eq");
        if ((rc = aidp_profiles_yaml_scalar(t, on, p, "a comparison", &s, ld->err)) < 0)
                return rc;
        size_t i;
        for (i = 0; i < ARRAY_SIZE(ops); i++)
                if (!strcmp(s, ops[i].name))
                        break;
        if (i == ARRAY_SIZE(ops))
                return YERR(t, on, p, "found '%s', expected eq, ne, lt, le, gt, ge or masked-eq",
                            s);
        a->op = ops[i].op;
        ynode *vn = aidp_profiles_yaml_get(t, n, "value", NULL);
        PATHF(p, "%s.value", path);
        if (!vn)
                return YERR(t, n, p, "found nothing, expected a number (decimal or 0x hex)");
        if ((rc = aidp_profiles_yaml_scalar(t, vn, p, "a number", &s, ld->err)) < 0)
                return rc;
        if (aidp_profiles_parse_uint(s, true, &v) < 0)
                return YERR(t, vn, p,
                            "found '%s', expected a non-negative number (decimal or 0x hex)", s);
        ynode *mn = aidp_profiles_yaml_get(t, n, "mask", NULL);
        if (a->op == AIDP_SC_OP_MASKED_EQ) {
                uint64_t m;
                PATHF(p, "%s.mask", path);
                if (!mn)
                        return YERR(t, n, p, "found nothing, expected a mask for masked-eq");
                if ((rc = aidp_profiles_yaml_scalar(t, mn, p, "a number", &s, ld->err)) < 0)
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

static int parse_sc_rule(struct loader *ld, ytree *t, ynode *n, const char *path, uint32_t arch,
                         struct sc_rule_pos *out)
{
        static const char *const keys[] = {"names", "action", "args", NULL};
        int rc = aidp_profiles_yaml_check_keys(t, n, path, keys, ld->err);
        if (rc < 0)
                return rc;
        memset(out, 0, sizeof *out);
        out->node = n;
        char p[160];
        const char *s;
        ynode *an = aidp_profiles_yaml_get(t, n, "action", NULL);
        PATHF(p, "%s.action", path);
        if (!an)
                return YERR(t, n, p,
                            "found nothing, expected allow, log, errno(E...), kill-process, "
                            "kill-thread or trap");
        if ((rc = aidp_profiles_yaml_scalar(t, an, p, "an action", &s, ld->err)) < 0)
                return rc;
        if (aidp_profiles_action_parse(s, &out->r.action, &out->r.errno_ret) < 0)
                return YERR(t, an, p,
                            "found '%s', expected allow, log, errno(EPERM|<errno name>|<1..4095>), "
                            "kill-process, kill-thread or trap",
                            s);
        ynode *nn = aidp_profiles_yaml_get(t, n, "names", NULL);
        PATHF(p, "%s.names", path);
        if (!nn)
                return YERR(t, n, p, "found nothing, expected a list of syscall names");
        if ((rc = expect_list(ld, t, nn, p, "a list of syscall names")) < 0)
                return rc;
        size_t cnt = (size_t)(nn->data.sequence.items.top - nn->data.sequence.items.start);
        if (!cnt)
                return YERR(t, nn, p, "found an empty list, expected at least one syscall name");
        out->r.names = calloc(cnt, sizeof(char *));
        out->name_nodes = calloc(cnt, sizeof(ynode *));
        if (!out->r.names || !out->name_nodes)
                return oom(ld->err);
        {
                ynode *item;
                FOREACH_ITEM(t, nn, i, item)
                {
                        char ip[192];
                        PATHF(ip, "%s[%zu]", p, i);
                        if ((rc = aidp_profiles_yaml_scalar(t, item, ip, "a syscall name", &s,
                                                            ld->err)) < 0)
                                return rc;
                        int nr = aidp_profiles_syscall_nr(arch, s);
                        if (nr == -1)
                                return YERR(t, item, ip,
                                            "unknown syscall '%s', expected a syscall name known "
                                            "to libseccomp",
                                            s);
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
                                lint_add(ld->in_root ? ld->lints : NULL, AIDP_LINT_NOTE,
                                         "seccomp-other-arch", w,
                                         "%s: '%s' does not exist on %s; ignored here", ip, s,
                                         aidp_profiles_arch_name(arch));
                                continue;
                        }
                        if (!(out->r.names[out->r.n_names] = strdup(s)))
                                return oom(ld->err);
                        out->name_nodes[out->r.n_names++] = item;
                }
        }
        ynode *args = aidp_profiles_yaml_get(t, n, "args", NULL);
        if (args) {
                PATHF(p, "%s.args", path);
                if ((rc = expect_list(ld, t, args, p, "a list of {index, op, value[, mask]}")) < 0)
                        return rc;
                size_t na =
                        (size_t)(args->data.sequence.items.top - args->data.sequence.items.start);
                if (na > 6)
                        return YERR(t, args, p, "found %zu conditions, expected at most 6", na);
                out->r.args = calloc(na ? na : 1, sizeof *out->r.args);
                if (!out->r.args)
                        return oom(ld->err);
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
        }
        return 0;
}

static bool rules_name(const struct aidp_sc_rule *r, const char *name)
{
        for (size_t i = 0; i < r->n_names; i++)
                if (!strcmp(r->names[i], name))
                        return true;
        return false;
}

static int apply_seccomp(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"reset", "import", "default", "style", "syscalls", NULL};
        int rc = aidp_profiles_yaml_check_keys(t, n, "seccomp", keys, ld->err);
        if (rc < 0)
                return rc;
        uint32_t arch = aidp_profiles_arch(ld->env);
        const char *s;
        ynode *v;
        if ((v = aidp_profiles_yaml_get(t, n, "reset", NULL))) {
                bool reset;
                if ((rc = aidp_profiles_yaml_bool(t, v, "seccomp.reset", &reset, ld->err)) < 0)
                        return rc;
                if (reset) {
                        /* Start from nothing: deny everything, no inherited rule. */
                        aidp_sc_policy_free(&p->seccomp);
                        p->seccomp.default_action = AIDP_SC_ERRNO;
                        p->seccomp.default_errno = EPERM;
                        free(p->seccomp_import);
                        p->seccomp_import = NULL;
                }
        }
        if ((v = aidp_profiles_yaml_get(t, n, "import", NULL))) {
                if ((rc = aidp_profiles_yaml_scalar(t, v, "seccomp.import",
                                                    "a path to an OCI/Docker seccomp JSON file", &s,
                                                    ld->err)) < 0)
                        return rc;
                _cleanup_free_ char *dir = dirname_of(t->file), *src = NULL, *buf = NULL;
                char joined[4096];
                if (!dir)
                        return oom(ld->err);
                if (s[0] == '/')
                        PATHF(joined, "%s", s);
                else
                        PATHF(joined, "%s/%s", dir, s);
                if (!(src = normpath(joined)))
                        return oom(ld->err);
                size_t len = 0;
                if (!ld->env || !ld->env->read_file)
                        return YERR(t, v, "seccomp.import", "cannot read '%s': no file reader",
                                    src);
                aidp_error sub = {0};
                rc = ld->env->read_file(ld->env->ctx, src, &buf, &len, &sub);
                if (rc == -ENOENT)
                        return YERR(t, v, "seccomp.import",
                                    "found '%s', which does not exist (%s), expected an OCI/Docker "
                                    "seccomp JSON file",
                                    s, src);
                if (rc < 0) {
                        *ld->err = sub;
                        return aidp_error_wrap(ld->err, "%s:%u:%u: seccomp.import", t->file,
                                               (unsigned)v->start_mark.line + 1,
                                               (unsigned)v->start_mark.column + 1);
                }
                struct aidp_sc_policy imp;
                size_t skipped = 0;
                rc = aidp_profiles_seccomp_json(src, buf, len, ld->env, p->capabilities,
                                                p->n_capabilities, &imp, &skipped, ld->err);
                if (rc < 0)
                        return aidp_error_wrap(ld->err, "%s:%u:%u: seccomp.import", t->file,
                                               (unsigned)v->start_mark.line + 1,
                                               (unsigned)v->start_mark.column + 1);
                aidp_sc_policy_free(&p->seccomp);
                p->seccomp = imp;
                if (replace_str(&p->seccomp_import, src) < 0)
                        return oom(ld->err);
                if (skipped)
                        lint_add(
                                ld->in_root ? ld->lints : NULL, AIDP_LINT_NOTE,
                                "import-skipped-names", "",
                                "%s: %zu syscall names skipped: unknown to libseccomp or not on %s",
                                src, skipped, aidp_profiles_arch_name(arch));
        }
        ynode *dn = aidp_profiles_yaml_get(t, n, "default", NULL);
        if (dn) {
                if ((rc = aidp_profiles_yaml_scalar(t, dn, "seccomp.default", "an action", &s,
                                                    ld->err)) < 0)
                        return rc;
                if (aidp_profiles_action_parse(s, &p->seccomp.default_action,
                                               &p->seccomp.default_errno) < 0)
                        return YERR(t, dn, "seccomp.default",
                                    "found '%s', expected errno(EPERM|<errno name>|<1..4095>), "
                                    "kill-process, kill-thread, trap, log or allow",
                                    s);
        }
        if ((v = aidp_profiles_yaml_get(t, n, "style", NULL))) {
                if ((rc = aidp_profiles_yaml_scalar(t, v, "seccomp.style", "allowlist or denylist",
                                                    &s, ld->err)) < 0)
                        return rc;
                bool allowlist;
                if (!strcmp(s, "allowlist"))
                        allowlist = true;
                else if (!strcmp(s, "denylist"))
                        allowlist = false;
                else
                        return YERR(t, v, "seccomp.style",
                                    "found '%s', expected allowlist or denylist", s);
                bool permits = aidp_profiles_sc_permits(p->seccomp.default_action);
                if (!dn) {
                        /* The style alone picks the matching default. */
                        if (allowlist && permits) {
                                p->seccomp.default_action = AIDP_SC_ERRNO;
                                p->seccomp.default_errno = EPERM;
                        } else if (!allowlist && !permits) {
                                p->seccomp.default_action = AIDP_SC_ALLOW;
                                p->seccomp.default_errno = 0;
                        }
                } else if (allowlist == permits) {
                        char a[48];
                        return YERR(t, dn, "seccomp.default",
                                    "found '%s' with style %s, expected %s",
                                    aidp_profiles_action_str(p->seccomp.default_action,
                                                             p->seccomp.default_errno, a, sizeof a),
                                    s,
                                    allowlist ? "a denying default (errno(...), kill-process, "
                                                "kill-thread or trap)"
                                              : "allow or log");
                }
        }
        ynode *sn = aidp_profiles_yaml_get(t, n, "syscalls", NULL);
        if (sn) {
                if ((rc = expect_list(ld, t, sn, "seccomp.syscalls",
                                      "a list of {names, action, args}")) < 0)
                        return rc;
                size_t cnt = (size_t)(sn->data.sequence.items.top - sn->data.sequence.items.start);
                struct sc_rule_pos *rs = calloc(cnt ? cnt : 1, sizeof *rs);
                if (!rs)
                        return oom(ld->err);
                size_t nr = 0;
                {
                        ynode *item;
                        FOREACH_ITEM(t, sn, i, item)
                        {
                                char path[64];
                                PATHF(path, "seccomp.syscalls[%zu]", i);
                                rc = parse_sc_rule(ld, t, item, path, arch, &rs[nr++]);
                                if (rc < 0)
                                        break;
                                if (!rs[nr - 1].r.n_names) /* only other arches' names */
                                        sc_rule_clear(&rs[--nr]);
                        }
                }
                /* Contradictions inside this file, reported where written. */
                for (size_t i = 0; rc == 0 && i < nr; i++) {
                        for (size_t j = 0; rc == 0 && j < i; j++) {
                                for (size_t k = 0; k < rs[i].r.n_names; k++) {
                                        if (!rules_name(&rs[j].r, rs[i].r.names[k]))
                                                continue;
                                        struct aidp_sc_rule two[2] = {rs[j].r, rs[i].r};
                                        struct aidp_sc_policy pair = {.rules = two, .n_rules = 2};
                                        if (aidp_profiles_sc_contradiction(&pair)) {
                                                char path[96];
                                                PATHF(path, "seccomp.syscalls[%zu].names[%zu]", i,
                                                      k);
                                                rc = YERR(t, rs[i].name_nodes[k], path,
                                                          "contradictory rules for '%s': also in "
                                                          "seccomp.syscalls[%zu] (line %u) with "
                                                          "another "
                                                          "action; expected one action per "
                                                          "syscall, or "
                                                          "only argument-conditioned rules",
                                                          rs[i].r.names[k], j,
                                                          (unsigned)rs[j].node->start_mark.line +
                                                                  1);
                                                break;
                                        }
                                }
                        }
                }
                if (rc == 0) {
                        /* A file that mentions a syscall takes it over: every
                         * inherited rule naming it goes, then this file's rules
                         * apply. Merging conditions across files would make the
                         * effect of a child depend on details of its parents. */
                        for (size_t i = 0; i < nr; i++)
                                for (size_t k = 0; k < rs[i].r.n_names; k++)
                                        aidp_profiles_sc_forget(&p->seccomp, rs[i].r.names[k]);
                        for (size_t i = 0; i < nr && rc == 0; i++) {
                                char a[48], w[320];
                                const struct aidp_sc_rule *r = &rs[i].r;
                                if (r->action == p->seccomp.default_action &&
                                    (r->action != AIDP_SC_ERRNO ||
                                     r->errno_ret == p->seccomp.default_errno)) {
                                        PATHF(w, "%s:%u:%u", t->file,
                                              (unsigned)rs[i].node->start_mark.line + 1,
                                              (unsigned)rs[i].node->start_mark.column + 1);
                                        lint_add(ld->in_root ? ld->lints : NULL, AIDP_LINT_WARNING,
                                                 "seccomp-redundant-rule", w,
                                                 "seccomp.syscalls[%zu]: action %s is the default "
                                                 "action; the rule has no effect",
                                                 i,
                                                 aidp_profiles_action_str(r->action, r->errno_ret,
                                                                          a, sizeof a));
                                }
                                for (size_t k = 0; k < r->n_names; k++)
                                        origin_set(ld, t, rs[i].name_nodes[k], "sc:%s",
                                                   r->names[k]);
                                if (aidp_sc_policy_add(&p->seccomp, r) < 0)
                                        rc = oom(ld->err);
                        }
                }
                sc_rules_free(rs, nr);
                if (rc < 0)
                        return rc;
        }
        aidp_profiles_sc_normalize(&p->seccomp);
        return 0;
}

/* ---- network ---- */

static int parse_cidr(const char *s, char *canon, size_t n)
{
        char addr[64];
        const char *sl = strchr(s, '/');
        size_t al = sl ? (size_t)(sl - s) : strlen(s);
        if (al == 0 || al >= sizeof addr)
                return -EINVAL;
        memcpy(addr, s, al);
        addr[al] = '\0';
        unsigned char bytes[16];
        int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(fam, addr, bytes) != 1)
                return -EINVAL;
        unsigned maxp = fam == AF_INET ? 32 : 128, prefix = maxp;
        if (sl) {
                uint64_t v;
                if (aidp_profiles_parse_uint(sl + 1, false, &v) < 0 || v > maxp)
                        return -ERANGE;
                prefix = (unsigned)v;
        }
        /* Host bits set ("10.1.2.3/8") usually means a typo in the prefix. */
        for (unsigned bit = prefix; bit < maxp; bit++)
                if (bytes[bit / 8] & (0x80 >> (bit % 8)))
                        return -EDOM;
        char txt[INET6_ADDRSTRLEN];
        inet_ntop(fam, bytes, txt, sizeof txt);
        snprintf(canon, n, "%s/%u", txt, prefix);
        return 0;
}

static bool valid_fqdn(const char *s)
{
        size_t len = strlen(s);
        if (len == 0 || len > 253 || !strchr(s, '.'))
                return false;
        const char *p = s;
        while (*p) {
                const char *e = strchr(p, '.');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                if (l == 0 || l > 63 || p[0] == '-' || p[l - 1] == '-')
                        return false;
                for (size_t i = 0; i < l; i++)
                        if (!isalnum((unsigned char)p[i]) && p[i] != '-')
                                return false;
                p += l;
                if (*p == '.')
                        p++;
                if (e && !*p)
                        return false; /* trailing dot */
        }
        /* An all-numeric last label would be an IP address in disguise. */
        const char *last = strrchr(s, '.') + 1;
        for (const char *q = last; *q; q++)
                if (!isdigit((unsigned char)*q))
                        return true;
        return false;
}

static bool valid_region(const char *s)
{
        size_t l = strlen(s);
        if (l == 0 || l > 63 || !isalnum((unsigned char)s[0]))
                return false;
        for (size_t i = 0; i < l; i++)
                if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
                        return false;
        return true;
}

static int port_spec(const char *s, uint16_t *lo, uint16_t *hi)
{
        const char *dash = strchr(s, '-');
        uint64_t a, b;
        if (dash) {
                char first[16];
                size_t l = (size_t)(dash - s);
                if (l == 0 || l >= sizeof first)
                        return -EINVAL;
                memcpy(first, s, l);
                first[l] = '\0';
                if (aidp_profiles_parse_uint(first, false, &a) < 0 ||
                    aidp_profiles_parse_uint(dash + 1, false, &b) < 0)
                        return -EINVAL;
        } else {
                if (aidp_profiles_parse_uint(s, false, &a) < 0)
                        return -EINVAL;
                b = a;
        }
        if (a < 1 || b > 65535 || a > b)
                return -ERANGE;
        *lo = (uint16_t)a;
        *hi = (uint16_t)b;
        return 0;
}

static bool same_rule(const struct aidp_egress_rule *a, const struct aidp_egress_rule *b)
{
        return !strcmp(a->cidr ? a->cidr : "", b->cidr ? b->cidr : "") &&
               !strcmp(a->fqdn ? a->fqdn : "", b->fqdn ? b->fqdn : "") &&
               !strcmp(a->region ? a->region : "", b->region ? b->region : "") &&
               a->port_min == b->port_min && a->port_max == b->port_max &&
               a->protocol == b->protocol;
}

static int add_egress(struct aidp_network *net, const struct aidp_egress_rule *r)
{
        for (size_t i = 0; i < net->n_rules; i++)
                if (same_rule(&net->rules[i], r))
                        return 0;
        struct aidp_egress_rule *nr = realloc(net->rules, (net->n_rules + 1) * sizeof *nr);
        if (!nr)
                return -ENOMEM;
        net->rules = nr;
        struct aidp_egress_rule *d = &nr[net->n_rules];
        memset(d, 0, sizeof *d);
        d->port_min = r->port_min;
        d->port_max = r->port_max;
        d->protocol = r->protocol;
        if ((r->cidr && !(d->cidr = strdup(r->cidr))) ||
            (r->fqdn && !(d->fqdn = strdup(r->fqdn))) ||
            (r->region && !(d->region = strdup(r->region)))) {
                free(d->cidr);
                free(d->fqdn);
                free(d->region);
                return -ENOMEM;
        }
        net->n_rules++;
        return 0;
}

static int parse_egress_rule(struct loader *ld, ytree *t, ynode *n, const char *path,
                             struct aidp_network *net)
{
        static const char *const keys[] = {"cidr", "fqdn", "ports", "protocol", "region", NULL};
        int rc = aidp_profiles_yaml_check_keys(t, n, path, keys, ld->err);
        if (rc < 0)
                return rc;
        char p[160], canon[64];
        const char *s;
        struct aidp_egress_rule r = {0};
        ynode *cn = aidp_profiles_yaml_get(t, n, "cidr", NULL);
        ynode *fn = aidp_profiles_yaml_get(t, n, "fqdn", NULL);
        if (!!cn == !!fn)
                return YERR(t, n, path, "found %s, expected exactly one of cidr or fqdn",
                            cn ? "both cidr and fqdn" : "neither cidr nor fqdn");
        _cleanup_free_ char *fq = NULL;
        if (cn) {
                PATHF(p, "%s.cidr", path);
                if ((rc = aidp_profiles_yaml_scalar(t, cn, p, "a CIDR such as 10.0.0.0/8", &s,
                                                    ld->err)) < 0)
                        return rc;
                rc = parse_cidr(s, canon, sizeof canon);
                if (rc == -EDOM)
                        return YERR(t, cn, p,
                                    "found '%s' with host bits set, expected a network address "
                                    "(e.g. 10.0.0.0/8)",
                                    s);
                if (rc < 0)
                        return YERR(t, cn, p,
                                    "found '%s', expected an IPv4 or IPv6 CIDR such as 10.0.0.0/8 "
                                    "or 2001:db8::/32",
                                    s);
                r.cidr = canon;
        } else {
                PATHF(p, "%s.fqdn", path);
                if ((rc = aidp_profiles_yaml_scalar(t, fn, p, "a host name", &s, ld->err)) < 0)
                        return rc;
                if (!valid_fqdn(s))
                        return YERR(t, fn, p,
                                    "found '%s', expected a fully qualified host name such as "
                                    "pypi.internal.example (no wildcards, no trailing dot)",
                                    s);
                if (!(fq = strdup(s)))
                        return oom(ld->err);
                for (char *q = fq; *q; q++)
                        *q = (char)tolower((unsigned char)*q);
                r.fqdn = fq;
        }
        ynode *rn = aidp_profiles_yaml_get(t, n, "region", NULL);
        if (rn) {
                PATHF(p, "%s.region", path);
                if ((rc = aidp_profiles_yaml_scalar(t, rn, p, "a region tag such as eu-west-1", &s,
                                                    ld->err)) < 0)
                        return rc;
                if (!valid_region(s))
                        return YERR(t, rn, p,
                                    "found '%s', expected a region tag of lower-case letters, "
                                    "digits and '-' such as eu-west-1",
                                    s);
                r.region = (char *)s;
        }
        ynode *pn = aidp_profiles_yaml_get(t, n, "protocol", NULL);
        if (pn) {
                PATHF(p, "%s.protocol", path);
                if ((rc = aidp_profiles_yaml_scalar(t, pn, p, "tcp, udp or any", &s, ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "tcp"))
                        r.protocol = 6;
                else if (!strcmp(s, "udp"))
                        r.protocol = 17;
                else if (!strcmp(s, "any"))
                        r.protocol = 0;
                else
                        return YERR(t, pn, p, "found '%s', expected tcp, udp or any", s);
        }
        ynode *ports = aidp_profiles_yaml_get(t, n, "ports", NULL);
        if (!ports) {
                if ((rc = add_egress(net, &r)) < 0)
                        return oom(ld->err);
                origin_set(ld, t, n, "egress:%zu", net->n_rules - 1);
                return 0;
        }
        PATHF(p, "%s.ports", path);
        if ((rc = expect_list(ld, t, ports, p,
                              "a list of ports or ranges such as [443, 8000-8100]")) < 0)
                return rc;
        if (ports->data.sequence.items.top == ports->data.sequence.items.start)
                return YERR(
                        t, ports, p,
                        "found an empty list, expected ports (leave ports out to allow any port)");
        {
                ynode *item;
                FOREACH_ITEM(t, ports, i, item)
                {
                        char ip[192];
                        PATHF(ip, "%s[%zu]", p, i);
                        if ((rc = aidp_profiles_yaml_scalar(t, item, ip, "a port or range", &s,
                                                            ld->err)) < 0)
                                return rc;
                        if (port_spec(s, &r.port_min, &r.port_max) < 0)
                                return YERR(t, item, ip,
                                            "found '%s', expected a port 1..65535 or a range such "
                                            "as 8000-8100",
                                            s);
                        if ((rc = add_egress(net, &r)) < 0)
                                return oom(ld->err);
                        origin_set(ld, t, n, "egress:%zu", net->n_rules - 1);
                }
        }
        return 0;
}

static void egress_clear(struct aidp_network *net)
{
        for (size_t i = 0; i < net->n_rules; i++) {
                free(net->rules[i].cidr);
                free(net->rules[i].fqdn);
                free(net->rules[i].region);
        }
        free(net->rules);
        net->rules = NULL;
        net->n_rules = 0;
}

static int apply_network(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        const char *s;
        int rc;
        ynode *mode = n, *eg = NULL;
        if (n->type == YAML_MAPPING_NODE) {
                static const char *const keys[] = {"mode", "egress", NULL};
                if ((rc = aidp_profiles_yaml_check_keys(t, n, "network", keys, ld->err)) < 0)
                        return rc;
                mode = aidp_profiles_yaml_get(t, n, "mode", NULL);
                eg = aidp_profiles_yaml_get(t, n, "egress", NULL);
                if (!mode)
                        return YERR(t, n, "network.mode", "found nothing, expected none or egress");
        }
        const char *mp = n->type == YAML_MAPPING_NODE ? "network.mode" : "network";
        if ((rc = aidp_profiles_yaml_scalar(t, mode, mp, "none or egress", &s, ld->err)) < 0)
                return rc;
        if (!strcmp(s, "none")) {
                if (eg)
                        return YERR(t, eg, "network.egress",
                                    "found egress rules with mode none, expected mode: egress");
                p->network.mode = AIDP_NET_NONE;
                egress_clear(&p->network);
                origin_set(ld, t, mode, "network.mode");
                return 0;
        }
        if (strcmp(s, "egress"))
                return YERR(t, mode, mp, "found '%s', expected none or egress", s);
        p->network.mode = AIDP_NET_EGRESS;
        origin_set(ld, t, mode, "network.mode");
        if (!eg)
                return 0;
        if ((rc = expect_list(ld, t, eg, "network.egress",
                              "a list of {cidr|fqdn, ports, protocol, region}")) < 0)
                return rc;
        {
                ynode *item;
                FOREACH_ITEM(t, eg, i, item)
                {
                        char path[64];
                        PATHF(path, "network.egress[%zu]", i);
                        if ((rc = parse_egress_rule(ld, t, item, path, &p->network)) < 0)
                                return rc;
                }
        }
        return 0;
}

static int apply_data(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"data", "scratch", "out", NULL};
        int rc = aidp_profiles_yaml_check_keys(t, n, "data", keys, ld->err);
        if (rc < 0)
                return rc;
        char **dst[] = {&p->paths.data, &p->paths.scratch, &p->paths.out};
        for (size_t i = 0; i < 3; i++) {
                ynode *v = aidp_profiles_yaml_get(t, n, keys[i], NULL);
                if (!v)
                        continue;
                char path[32];
                const char *s;
                PATHF(path, "data.%s", keys[i]);
                if ((rc = abs_path_value(ld, t, v, path, &s)) < 0)
                        return rc;
                static const char *const reserved[] = {"/proc", "/dev", "/sys",  "/run", "/etc",
                                                       "/usr",  "/bin", "/sbin", "/lib", "/lib64"};
                for (size_t r = 0; r < ARRAY_SIZE(reserved); r++)
                        if (path_within(s, reserved[r]) || !strcmp(s, "/"))
                                return YERR(t, v, path,
                                            "found '%s', expected a path outside /, /proc, /dev, "
                                            "/sys, /run, /etc, /usr and the library directories",
                                            s);
                if (replace_str(dst[i], s) < 0)
                        return oom(ld->err);
                origin_set(ld, t, v, "data.%s", keys[i]);
        }
        return 0;
}

static int apply_layer(struct loader *ld, struct layer *L, struct aidp_profile *p)
{
        ytree *t = &L->t;
        ynode *root = aidp_profiles_yaml_root(t);
        ynode *v;
        int rc = 0;
        /* Sections in a fixed order: later ones may rely on earlier ones
         * (user before seccomp, for instance). */
        static const struct {
                const char *key;
                int (*apply)(struct loader *, ytree *, ynode *, struct aidp_profile *);
        } sections[] = {
                {"limits", apply_limits},   {"filesystem", apply_filesystem},
                {"devices", apply_devices}, {"user", apply_user},
                {"seccomp", apply_seccomp}, {"network", apply_network},
                {"data", apply_data},
        };
        for (size_t i = 0; i < ARRAY_SIZE(sections); i++)
                if ((v = aidp_profiles_yaml_get(t, root, sections[i].key, NULL)) &&
                    (rc = sections[i].apply(ld, t, v, p)) < 0)
                        return rc;
        if (L->description && replace_str(&p->description, L->description) < 0)
                return oom(ld->err);
        return push_str(&p->layers, &p->n_layers, L->name) < 0 ? oom(ld->err) : 0;
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
                        if (i != j && path_within(dp[i], dp[j]))
                                return at(ld, origin_get(ld, "data.%s", dn[i]),
                                          "data.%s: found '%s' inside data.%s ('%s'), expected "
                                          "separate mount points",
                                          dn[i], dp[i], dn[j], dp[j]);
        for (size_t b = 0; b < p->n_binds; b++)
                for (size_t i = 0; i < 3; i++)
                        if (path_within(p->binds[b].target, dp[i]) ||
                            path_within(dp[i], p->binds[b].target) ||
                            path_within(p->binds[b].target, "/tmp"))
                                return at(ld, origin_get(ld, "bind:%s", p->binds[b].target),
                                          "filesystem.binds: found target '%s' overlapping the "
                                          "sandbox's own mount %s, expected a separate path",
                                          p->binds[b].target,
                                          path_within(p->binds[b].target, "/tmp") ? "/tmp" : dp[i]);
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
                                lint_add(ld->lints, AIDP_LINT_NOTE, "device-missing-optional",
                                         where,
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
                                        rc = oom(ld->err);
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
                aidp_profiles_yaml_free(&ld->layers[i].t);
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
                return oom(ld->err);
        int rc = 0;
        /* Capabilities first: an import resolves against the final set. */
        for (size_t i = 0; i < ld->n_layers && rc == 0; i++) {
                ynode *v = aidp_profiles_yaml_get(&ld->layers[i].t,
                                                  aidp_profiles_yaml_root(&ld->layers[i].t),
                                                  "capabilities", NULL);
                if (v)
                        rc = apply_caps(ld, &ld->layers[i].t, v, &p);
        }
        for (size_t i = 0; i < ld->n_layers && rc == 0; i++) {
                /* Positioned notes about a file are for the file checked, not
                 * repeated for every profile that extends it. */
                ld->in_root = i == ld->n_layers - 1;
                rc = apply_layer(ld, &ld->layers[i], &p);
        }
        if (rc == 0)
                rc = check_effective(ld, &p);
        if (rc == 0)
                rc = expand_devices(ld, &p);
        if (rc == 0) {
                struct layer *last = &ld->layers[ld->n_layers - 1];
                if (replace_str(&p.name, last->name) < 0 || replace_str(&p.source, source) < 0)
                        rc = oom(ld->err);
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
                                lint_add(ld->lints, l->level, l->code, l->where, "%s", l->msg);
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

static int load_common(const char *source, const char *buf, size_t len,
                       const struct aidp_profile_env *env, struct aidp_profile *out,
                       struct aidp_lint_list *lints, aidp_error *err)
{
        struct loader ld = {.env = env, .err = err};
        struct aidp_lint_list local = {0};
        ld.lints = lints ? &local : NULL;
        memset(out, 0, sizeof *out);
        int rc = load_layer(&ld, source, buf, len);
        if (rc == 0)
                rc = finish(&ld, source, out);
        /* Layer lints first (in file order), then effective-profile lints. */
        for (size_t i = 0; rc == 0 && lints && i < local.n; i++)
                lint_add(lints, local.items[i].level, local.items[i].code, local.items[i].where,
                         "%s", local.items[i].msg);
        aidp_lint_list_free(&local);
        loader_free(&ld);
        if (rc < 0 && err && !err->status)
                err->status = AIDP_EXIT_CONFIG;
        return rc;
}

int aidp_profile_load_buffer(const char *file, const char *buf, size_t len,
                             const struct aidp_profile_env *env, struct aidp_profile *out,
                             struct aidp_lint_list *lints, aidp_error *err)
{
        _cleanup_free_ char *src = normpath(file ? file : "<input>");
        if (!src)
                return oom(err);
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
        int rc = read_ref(&ld, name_or_path, NULL, &source, &buf, &len, tried, sizeof tried);
        if (rc == -EINVAL && !is_path_ref(name_or_path))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "profile '%s': expected a library name ([A-Za-z0-9._-]) or a "
                                      "path to a .yaml file",
                                      name_or_path);
        if (rc == -ENOENT && !is_path_ref(name_or_path))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOENT,
                                      "profile '%s' not found in the library (looked in: %s)",
                                      name_or_path, *tried ? tried : "no library directories");
        if (rc == -ENOENT)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOENT, "profile '%s' not found",
                                      name_or_path);
        if (rc < 0)
                return rc;
        return load_common(source, buf, len, env, out, lints, err);
}
