/* The viewer's JSON Lines half: each line one JSON object (json-c, strict,
 * UTF-8 validated); every schema column is an RFC 6901 pointer whose value
 * is transformed, nulled or removed; the object is written back compact.
 * Positions are LINE:COLUMN (byte column), 1-based. */
#include <errno.h>
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "views/viewer_internal.h"

#define JSON_DEPTH 64

/* json-c frees its strings unwiped: wipe every string of the tree first. */
static void wipe_tree(json_object *o)
{
        switch (json_object_get_type(o)) {
        case json_type_string:
                OPENSSL_cleanse((char *)json_object_get_string(o),
                                (size_t)json_object_get_string_len(o));
                break;
        case json_type_object: {
                json_object_object_foreach(o, key, val)
                {
                        wipe_tree(val);
                        (void)key;
                }
                break;
        }
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        wipe_tree(json_object_array_get_idx(o, i));
                break;
        case json_type_null:
        case json_type_boolean:
        case json_type_double:
        case json_type_int: break;
        }
}

static void put_wiped(json_object *o)
{
        if (o) {
                wipe_tree(o);
                json_object_put(o);
        }
}

/* Split "/a/b~1c" into the parent pointer "/a" and the last token "b/c". */
static int split_pointer(const char *ptr, char **parent, char **last)
{
        const char *slash = strrchr(ptr, '/');
        *parent = strndup(ptr, (size_t)(slash - ptr));
        *last = malloc(strlen(slash));
        if (!*parent || !*last)
                return -ENOMEM;
        size_t o = 0;
        for (const char *p = slash + 1; *p; p++) {
                if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                        (*last)[o++] = p[1] == '0' ? '~' : '/';
                        p++;
                } else {
                        (*last)[o++] = *p;
                }
        }
        (*last)[o] = 0;
        return 0;
}

/* Where a pointer's value sits: its parent container and key or index. */
struct slot {
        json_object *parent;
        char *key;
        size_t idx;
};

static bool find_slot(json_object *root, const char *ptr, struct slot *s, json_object **val)
{
        char *parent_ptr = NULL;
        s->key = NULL;
        if (split_pointer(ptr, &parent_ptr, &s->key) < 0) {
                free(parent_ptr);
                return false;
        }
        json_object *parent = root;
        bool ok = !parent_ptr[0] || json_pointer_get(root, parent_ptr, &parent) == 0;
        free(parent_ptr);
        if (!ok || !parent)
                return false;
        s->parent = parent;
        if (json_object_is_type(parent, json_type_object))
                return json_object_object_get_ex(parent, s->key, val);
        if (!json_object_is_type(parent, json_type_array))
                return false;
        char *end;
        unsigned long i = strtoul(s->key, &end, 10);
        if (!s->key[0] || *end || (s->key[0] == '0' && s->key[1]) ||
            i >= json_object_array_length(parent))
                return false;
        s->idx = i;
        *val = json_object_array_get_idx(parent, i);
        return true;
}

static int replace(struct slot *s, json_object *nv)
{
        if (json_object_is_type(s->parent, json_type_object))
                return json_object_object_add(s->parent, s->key, nv);
        return json_object_array_put_idx(s->parent, s->idx, nv);
}

/* Apply column c to root. */
static int apply_column(struct aidp_viewer *v, struct viewer_col *c, json_object *root)
{
        struct slot s = {0};
        json_object *val = NULL;
        bool found = find_slot(root, c->cv->column, &s, &val);
        int r = 0;
        if (!found || c->cv->x.kind == AIDP_XF_RAW)
                goto out;
        if (val) { /* JSON null stays null: there is nothing to hide */
                const char *text;
                size_t n;
                if (json_object_is_type(val, json_type_string)) {
                        text = json_object_get_string(val);
                        n = (size_t)json_object_get_string_len(val);
                } else {
                        text = json_object_to_json_string_length(
                                val, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
                }
                bool is_null;
                if (aidp_viewer_value(v, c, text, n, &is_null) < 0) {
                        r = -1;
                        goto out;
                }
                if (c->cv->x.kind != AIDP_XF_DROP && !is_null) {
                        json_object *nv = json_object_new_string_len(v->value.p, (int)v->value.len);
                        aidp_vbuf_reset(&v->value);
                        wipe_tree(val);
                        if (!nv || replace(&s, nv) < 0) {
                                r = aidp_viewer_oom(v);
                                goto out;
                        }
                        goto out;
                }
                wipe_tree(val);
        }
        if (c->cv->x.kind == AIDP_XF_DROP) {
                if (json_object_is_type(s.parent, json_type_object))
                        json_object_object_del(s.parent, s.key);
                else
                        json_object_array_del_idx(s.parent, s.idx, 1);
        } else if (val && replace(&s, NULL) < 0) {
                r = aidp_viewer_oom(v);
        }
out:
        free(s.key);
        return r;
}

static int emit(struct aidp_viewer *v, json_object *root)
{
        size_t n;
        const char *text = json_object_to_json_string_length(
                root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        if (!text || aidp_vbuf_put(&v->out, text, n) < 0 || aidp_vbuf_putc(&v->out, '\n') < 0)
                return aidp_viewer_oom(v);
        OPENSSL_cleanse((char *)text, n);
        return 0;
}

static bool blank(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t')
                        return false;
        return true;
}

static int one_line(struct aidp_viewer *v)
{
        const char *s = v->line.p;
        size_t n = v->line.len;
        v->line_no++;
        if (n && s[n - 1] == '\r')
                n--;
        if (blank(s, n))
                return 0;
        size_t bad = aidp_views_utf8_check((const uint8_t *)s, n);
        if (bad != n)
                return aidp_viewer_fail(v, v->line_no, bad + 1, "invalid UTF-8");
        json_tokener_reset(v->tok);
        json_object *root = json_tokener_parse_ex(v->tok, s, (int)n);
        enum json_tokener_error je = json_tokener_get_error(v->tok);
        size_t end = json_tokener_get_parse_end(v->tok);
        /* The tokener's scratch buffer held the line's strings. */
        if (v->tok->pb && v->tok->pb->buf)
                OPENSSL_cleanse(v->tok->pb->buf, (size_t)v->tok->pb->size);
        if (!root || je != json_tokener_success || !blank(s + end, n - end)) {
                put_wiped(root);
                return aidp_viewer_fail(v, v->line_no,
                                        (root  ? end
                                         : end ? end
                                               : 0) +
                                                1,
                                        "not valid JSON: %s",
                                        root ? "text after the value"
                                        : je == json_tokener_continue
                                                ? "the line ends inside a value"
                                                : json_tokener_error_desc(je));
        }
        if (!json_object_is_type(root, json_type_object)) {
                put_wiped(root);
                return aidp_viewer_fail(v, v->line_no, 1, "expected a JSON object on each line");
        }
        int r = 0;
        for (size_t i = 0; i < v->n_cols && r >= 0; i++)
                r = apply_column(v, &v->cols[i], root);
        if (r >= 0)
                r = emit(v, root);
        put_wiped(root);
        return r < 0 ? -1 : 0;
}

int aidp_viewer_jsonl_init(struct aidp_viewer *v)
{
        v->tok = json_tokener_new_ex(JSON_DEPTH);
        if (!v->tok)
                return -ENOMEM;
        json_tokener_set_flags(v->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        return 0;
}

int aidp_viewer_jsonl_feed(struct aidp_viewer *v, const uint8_t *buf, size_t len)
{
        while (len) {
                const uint8_t *nl = memchr(buf, '\n', len);
                size_t take = nl ? (size_t)(nl - buf) : len;
                if (v->line.len + take > JSONL_LINE_MAX)
                        return aidp_viewer_fail(v, v->line_no + 1, v->line.len + 1,
                                                "line longer than %zu bytes", JSONL_LINE_MAX);
                if (aidp_vbuf_put(&v->line, buf, take) < 0)
                        return aidp_viewer_oom(v);
                buf += take;
                len -= take;
                if (!nl)
                        break;
                buf++;
                len--;
                int r = one_line(v);
                aidp_vbuf_clear(&v->line);
                if (r < 0)
                        return -EBADMSG;
                if (aidp_viewer_flush(v, false) < 0)
                        return -1;
        }
        return 0;
}

int aidp_viewer_jsonl_finish(struct aidp_viewer *v)
{
        if (v->line.len == 0)
                return 0;
        int r = one_line(v);
        aidp_vbuf_clear(&v->line);
        return r;
}

void aidp_viewer_jsonl_free(struct aidp_viewer *v)
{
        if (v->tok)
                json_tokener_free(v->tok);
        v->tok = NULL;
        aidp_vbuf_free(&v->line);
}
