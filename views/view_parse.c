/* One view of access.yaml `views:` (views/view.h) through the strict walker:
 *   labels:  {LABEL-GLOB: TRANSFORM, ...}
 *   columns: {COLUMN: TRANSFORM, ...}
 * TRANSFORM is `raw`, `drop`, `null`, or a one-key mapping:
 *   {tokenize: {mode: hmac|siv, domain: D, key: KEYID}}
 *   {mask: {keep_first: N, keep_last: N, char: C | with: STRING}}
 *   {generalize: {date: year|month} | {number: WIDTH} | {prefix: N} | {bands: [E, ...]}} */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/yaml.h"
#include "views/views_internal.h"

#define COUNT_MAX 4096u /* mask keep_first/keep_last, prefix */

static int oom(struct aidp_yaml *y)
{
        return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
}

static int read_uint(struct aidp_yaml *y, yaml_node_t *v, const char *path, unsigned min,
                     unsigned *out)
{
        const char *s;
        int r = aidp_yaml_scalar(y, v, path, "a whole number", &s, y->err);
        if (r < 0)
                return r;
        char *end;
        errno = 0;
        unsigned long n = strtoul(s, &end, 10);
        if (s[0] < '0' || s[0] > '9' || *end || errno || n < min || n > COUNT_MAX)
                return aidp_yaml_fail(y, v, path,
                                      "found '%s', expected a whole number from %u to %u", s, min,
                                      COUNT_MAX);
        *out = (unsigned)n;
        return 0;
}

static int read_double(struct aidp_yaml *y, yaml_node_t *v, const char *path, double *out)
{
        const char *s;
        int r = aidp_yaml_scalar(y, v, path, "a number", &s, y->err);
        if (r < 0)
                return r;
        char *end;
        *out = strtod(s, &end);
        if (!s[0] || *end || !isfinite(*out) || s[0] == ' ')
                return aidp_yaml_fail(y, v, path, "found '%s', expected a number", s);
        return 0;
}

/* ---- tokenize */
static int tk_mode(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (!strcmp(s, "hmac"))
                x->mode = AIDP_TOK_HMAC;
        else if (!strcmp(s, "siv"))
                x->mode = AIDP_TOK_SIV;
        else
                return aidp_yaml_fail(y, v, path, "found '%s', expected hmac or siv", s);
        return 0;
}

static int tk_domain(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (!aidp_views_is_name(s, AIDP_VIEW_DOMAIN_MAX))
                return aidp_yaml_fail(y, v, path,
                                      "found '%s', expected a token domain ([a-z0-9][a-z0-9._-]*, "
                                      "at most %d characters)",
                                      s, AIDP_VIEW_DOMAIN_MAX);
        strcpy(x->domain, s);
        return 0;
}

static int tk_key(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        size_t n = strlen(s);
        bool ok = n > 0 && n < sizeof x->key_id;
        for (size_t i = 0; ok && i < n; i++)
                ok = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f;
        if (!ok)
                return aidp_yaml_fail(y, v, path,
                                      "found '%s', expected a key id (1 to %zu "
                                      "printable characters)",
                                      s, sizeof x->key_id - 1);
        strcpy(x->key_id, s);
        return 0;
}

/* ---- mask */
static int mk_first(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        return read_uint(y, v, path, 0, &((struct aidp_xform *)ctx)->keep_first);
}

static int mk_last(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        return read_uint(y, v, path, 0, &((struct aidp_xform *)ctx)->keep_last);
}

static int mk_char(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (strlen(s) != 1 || s[0] < 0x21 || s[0] > 0x7e)
                return aidp_yaml_fail(y, v, path,
                                      "found '%s', expected one printable ASCII character", s);
        x->mask_char = s[0];
        return 0;
}

/* The fixed replacement: UTF-8 without control characters, quotes or
 * backslashes (it is shown quoted in `policy explain` and lineage). */
static int mk_with(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        size_t n = strlen(s);
        bool ok = n >= 1 && n <= AIDP_VIEW_MASK_WITH_MAX &&
                  aidp_views_utf8_check((const uint8_t *)s, n) == n;
        for (size_t i = 0; ok && i < n; i++)
                ok = (uint8_t)s[i] >= 0x20 && s[i] != 0x7f && s[i] != '"' && s[i] != '\\';
        if (!ok)
                return aidp_yaml_fail(y, v, path,
                                      "expected 1 to %d bytes of UTF-8 text without control "
                                      "characters, quotes or backslashes",
                                      AIDP_VIEW_MASK_WITH_MAX);
        memcpy(x->mask_with, s, n + 1);
        return 0;
}

/* ---- generalize */
static int gen_date(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (!strcmp(s, "year"))
                x->gen = AIDP_GEN_DATE_YEAR;
        else if (!strcmp(s, "month"))
                x->gen = AIDP_GEN_DATE_MONTH;
        else
                return aidp_yaml_fail(y, v, path, "found '%s', expected year or month", s);
        return 0;
}

static int gen_number(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        int r = read_double(y, v, path, &x->width);
        if (r >= 0 && !(x->width > 0))
                return aidp_yaml_fail(y, v, path, "found %g, expected a bucket width above 0",
                                      x->width);
        x->gen = AIDP_GEN_NUMBER;
        return r;
}

static int gen_prefix(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        x->gen = AIDP_GEN_PREFIX;
        return read_uint(y, v, path, 1, &x->keep);
}

static int band_edge(struct aidp_yaml *y, yaml_node_t *item, const char *path, size_t index,
                     void *ctx)
{
        struct aidp_xform *x = ctx;
        if (index >= AIDP_VIEW_BANDS_MAX)
                return aidp_yaml_fail(y, item, path, "found more than %d band edges",
                                      AIDP_VIEW_BANDS_MAX);
        double d;
        int r = read_double(y, item, path, &d);
        if (r < 0)
                return r;
        if (index && !(d > x->bands[index - 1]))
                return aidp_yaml_fail(y, item, path,
                                      "found %g after %g, expected strictly increasing edges", d,
                                      x->bands[index - 1]);
        x->bands[x->n_bands++] = d;
        return 0;
}

static int gen_bands(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_xform *x = ctx;
        x->gen = AIDP_GEN_BANDS;
        int r = aidp_yaml_expect(y, v, YAML_SEQUENCE_NODE, path, "a list of band edges", y->err);
        if (r >= 0)
                r = aidp_yaml_seq(y, v, path, band_edge, x);
        if (r >= 0 && x->n_bands < 2)
                return aidp_yaml_fail(y, v, path, "found %zu band edges, expected at least 2",
                                      x->n_bands);
        return r;
}

/* The mapping under a one-key transform. */
static int transform_body(struct aidp_yaml *y, const char *kind, yaml_node_t *kn, yaml_node_t *body,
                          const char *path, struct aidp_xform *x)
{
        static const struct aidp_yaml_field tokenize[] = {
                {"mode", tk_mode, true}, {"domain", tk_domain, true}, {"key", tk_key, true}};
        static const struct aidp_yaml_field mask[] = {{"keep_first", mk_first, false},
                                                      {"keep_last", mk_last, false},
                                                      {"char", mk_char, false},
                                                      {"with", mk_with, false}};
        static const struct aidp_yaml_field generalize[] = {{"date", gen_date, false},
                                                            {"number", gen_number, false},
                                                            {"prefix", gen_prefix, false},
                                                            {"bands", gen_bands, false}};
        char sub[AIDP_YAML_PATH_MAX];
        aidp_yaml_path_key(sub, path, kind);
        if (!strcmp(kind, "tokenize")) {
                x->kind = AIDP_XF_TOKENIZE;
                return aidp_yaml_fields(y, body, sub, tokenize, ARRAY_SIZE(tokenize), x);
        }
        if (!strcmp(kind, "mask")) {
                x->kind = AIDP_XF_MASK;
                int r = aidp_yaml_fields(y, body, sub, mask, ARRAY_SIZE(mask), x);
                if (r >= 0 && x->mask_char && x->mask_with[0])
                        return aidp_yaml_fail(y, body, sub,
                                              "'char' and 'with' exclude each other: one mask "
                                              "character per hidden character, or one fixed "
                                              "replacement");
                if (!x->mask_char)
                        x->mask_char = '*';
                return r;
        }
        if (!strcmp(kind, "generalize")) {
                x->kind = AIDP_XF_GENERALIZE;
                int r = aidp_yaml_expect(y, body, YAML_MAPPING_NODE, sub,
                                         "one of {date: ...}, {number: ...}, {prefix: ...}, "
                                         "{bands: [...]}",
                                         y->err);
                if (r >= 0 && body->data.mapping.pairs.top - body->data.mapping.pairs.start != 1)
                        return aidp_yaml_fail(y, body, sub,
                                              "found %d rules, expected exactly one of date, "
                                              "number, prefix, bands",
                                              (int)(body->data.mapping.pairs.top -
                                                    body->data.mapping.pairs.start));
                if (r < 0)
                        return r;
                return aidp_yaml_fields(y, body, sub, generalize, ARRAY_SIZE(generalize), x);
        }
        return aidp_yaml_fail(y, kn, sub,
                              "unknown transform '%s', expected raw, drop, null, tokenize, mask "
                              "or generalize",
                              kind);
}

static int parse_transform(struct aidp_yaml *y, yaml_node_t *v, const char *path,
                           struct aidp_xform *x)
{
        memset(x, 0, sizeof *x);
        /* `null` is a transform here, not YAML's nothing (which stays an error). */
        if (v && v->type == YAML_SCALAR_NODE && !strcmp(aidp_yaml_str(v), "null")) {
                x->kind = AIDP_XF_NULL;
                return 0;
        }
        if (v && v->type == YAML_SCALAR_NODE && !aidp_yaml_is_null(v)) {
                const char *s = aidp_yaml_str(v);
                if (!strcmp(s, "raw"))
                        x->kind = AIDP_XF_RAW;
                else if (!strcmp(s, "drop"))
                        x->kind = AIDP_XF_DROP;
                else if (!strcmp(s, "null"))
                        x->kind = AIDP_XF_NULL;
                else
                        return aidp_yaml_fail(y, v, path,
                                              "found '%s', expected raw, drop, null or a mapping "
                                              "{tokenize|mask|generalize: ...}",
                                              s);
                return 0;
        }
        if (!v || v->type != YAML_MAPPING_NODE ||
            v->data.mapping.pairs.top - v->data.mapping.pairs.start != 1) {
                char found[80];
                aidp_yaml_found(v, found, sizeof found);
                return aidp_yaml_fail(y, v, path,
                                      "found %s, expected raw, drop, null or a one-key mapping "
                                      "{tokenize|mask|generalize: ...}",
                                      found);
        }
        yaml_node_pair_t *p = v->data.mapping.pairs.start;
        yaml_node_t *kn = aidp_yaml_node(y, p->key);
        const char *kind = aidp_yaml_str(kn);
        if (!kind)
                return aidp_yaml_fail(y, kn, path, "found a non-string key, expected a transform");
        return transform_body(y, kind, kn, aidp_yaml_node(y, p->value), path, x);
}

/* A label glob: label characters plus fnmatch's * ? [ ]. */
static bool is_label_glob(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > AIDP_VIEW_LABEL_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("._-*?[]!", c)))
                        return false;
        }
        return true;
}

struct rules {
        struct aidp_view_rule *v;
        size_t n;
        bool labels;
};

static int one_rule(struct aidp_yaml *y, const char *key, yaml_node_t *keynode, yaml_node_t *value,
                    const char *path, void *ctx)
{
        struct rules *rs = ctx;
        if (rs->labels && !is_label_glob(key))
                return aidp_yaml_fail(y, keynode, path,
                                      "found '%s', expected a label or label glob "
                                      "([a-z0-9._-] and * ? [ ])",
                                      key);
        if (!key[0])
                return aidp_yaml_fail(y, keynode, path, "found an empty column name");
        struct aidp_view_rule *r = &rs->v[rs->n];
        if (!(r->match = strdup(key)))
                return oom(y);
        rs->n++;
        return parse_transform(y, value, path, &r->x);
}

static int rule_map(struct aidp_yaml *y, yaml_node_t *v, const char *path, bool labels,
                    struct aidp_view_rule **out, size_t *n_out)
{
        if (aidp_yaml_is_null(v))
                return 0;
        int r = aidp_yaml_expect(y, v, YAML_MAPPING_NODE, path, "a mapping", y->err);
        if (r < 0)
                return r;
        size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
        struct rules rs = {.labels = labels};
        if (n && !(rs.v = calloc(n, sizeof *rs.v)))
                return oom(y);
        r = aidp_yaml_map(y, v, path, one_rule, &rs);
        *out = rs.v;
        *n_out = rs.n;
        return r;
}

static int vf_labels(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_view *view = ctx;
        return rule_map(y, v, path, true, &view->labels, &view->n_labels);
}

static int vf_columns(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_view *view = ctx;
        return rule_map(y, v, path, false, &view->columns, &view->n_columns);
}

int aidp_view_parse_node(struct aidp_yaml *y, void *node, const char *path, const char *name,
                         struct aidp_view *out, aidp_error *err)
{
        static const struct aidp_yaml_field fields[] = {
                {"labels", vf_labels, false},
                {"columns", vf_columns, false},
        };
        aidp_error *saved = y->err;
        if (err)
                y->err = err;
        struct aidp_view v = {0};
        int r = (v.name = strdup(name ? name : "")) ? 0 : oom(y);
        if (r >= 0)
                r = aidp_yaml_fields(y, node, path, fields, ARRAY_SIZE(fields), &v);
        y->err = saved;
        if (r < 0) {
                aidp_view_free(&v);
                return r;
        }
        *out = v;
        return 0;
}

void aidp_view_free(struct aidp_view *v)
{
        if (!v)
                return;
        for (size_t i = 0; i < v->n_labels; i++)
                free(v->labels[i].match);
        for (size_t i = 0; i < v->n_columns; i++)
                free(v->columns[i].match);
        free(v->labels);
        free(v->columns);
        free(v->name);
        memset(v, 0, sizeof *v);
}
