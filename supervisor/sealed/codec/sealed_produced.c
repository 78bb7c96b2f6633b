/* The produced-by record of a sealed output (TLV 15, format 4;
 * docs/sealed-format.md section 3): which runs produced the dataset, from
 * which inputs, through which column views, back along the chain of derived
 * datasets. Compact JSON through json-c; a reader accepts only the bytes the
 * writer produces for the same content (the shape below, key order included,
 * then parse, re-encode, compare), so the header stays canonical. Pure: no
 * syscalls. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "supervisor/sealed/codec/sealed_format.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define STR_MAX    4096 /* any one string of the record */

/* ---- the shape: every object's keys, in order ---- */

enum kind { K_INT, K_STR, K_STRS, K_OBJS };

struct shape;
struct key {
        const char *name;
        enum kind kind;
        bool optional;
        const struct shape *sub; /* K_OBJS: each element's shape */
        size_t max;              /* K_STRS, K_OBJS: most elements */
};
struct shape {
        const char *what;
        const struct key *keys;
        size_t n;
};

#define SHAPE(w, k)                                                                                \
        {                                                                                          \
                w, k, sizeof k / sizeof *k                                                         \
        }

static const struct key column_keys[] = {
        {"column", K_STR, false, NULL, 0},    {"labels", K_STRS, false, NULL, AIDP_VIEW_LABELS_MAX},
        {"transform", K_STR, false, NULL, 0}, {"keyId", K_STR, true, NULL, 0},
        {"domain", K_STR, true, NULL, 0},
};
static const struct shape column_shape = SHAPE("column", column_keys);
static const struct key file_keys[] = {
        {"pattern", K_STR, false, NULL, 0},
        {"format", K_STR, false, NULL, 0},
        {"columns", K_OBJS, false, &column_shape, AIDP_VIEW_COLUMNS_MAX},
};
static const struct shape file_shape = SHAPE("file", file_keys);
static const struct key input_keys[] = {
        {"dataset", K_STR, false, NULL, 0},
        {"digest", K_STR, false, NULL, 0},
        {"injected", K_STR, false, NULL, 0},
        {"views", K_STRS, true, NULL, 64},
        {"files", K_OBJS, true, &file_shape, AIDP_VIEW_FILES_MAX},
};
static const struct shape input_shape = SHAPE("input", input_keys);
/* A step is a run ("run": its id) or a re-seal by hand ("sealedBy": who ran
 * aidp seal --derived-from); exactly one of the two (check_meaning). */
static const struct key step_keys[] = {
        {"output", K_STR, false, NULL, 0},
        {"run", K_STR, true, NULL, 0},
        {"sealedBy", K_STR, true, NULL, 0},
        {"inputs", K_OBJS, false, &input_shape, 64},
};
static const struct shape step_shape = SHAPE("step", step_keys);
static const struct key root_keys[] = {
        {"v", K_INT, false, NULL, 0},
        {"steps", K_OBJS, false, &step_shape, AIDP_SEALED_PRODUCED_STEPS},
};
static const struct shape root_shape = SHAPE("record", root_keys);

static int bad(aidp_error *err, const char *what, const char *why)
{
        return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG, "produced-by record: %s: %s", what,
                              why);
}

static bool good_str(json_object *v)
{
        if (!json_object_is_type(v, json_type_string))
                return false;
        size_t n = (size_t)json_object_get_string_len(v);
        return n > 0 && n <= STR_MAX && strlen(json_object_get_string(v)) == n;
}

static int check_obj(json_object *o, const struct shape *s, aidp_error *err);

static int check_value(json_object *v, const struct key *k, const char *what, aidp_error *err)
{
        switch (k->kind) {
        case K_INT:
                if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1)
                        return bad(err, what, "\"v\" is not 1");
                return 0;
        case K_STR: return good_str(v) ? 0 : bad(err, what, "a member is not a non-empty string");
        case K_STRS:
        case K_OBJS: break;
        }
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > k->max)
                return bad(err, what, "a member is not an array of the allowed length");
        for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *e = json_object_array_get_idx(v, i);
                if (k->kind == K_STRS && !good_str(e))
                        return bad(err, what, "a list holds something other than strings");
                if (k->kind == K_OBJS && check_obj(e, k->sub, err) < 0)
                        return -EBADMSG;
        }
        return 0;
}

/* Exactly the shape's keys, in its order (optional ones may be absent). */
static int check_obj(json_object *o, const struct shape *s, aidp_error *err)
{
        if (!json_object_is_type(o, json_type_object))
                return bad(err, s->what, "not an object");
        size_t k = 0;
        json_object_object_foreach(o, name, v)
        {
                while (k < s->n && strcmp(s->keys[k].name, name) && s->keys[k].optional)
                        k++;
                if (k == s->n || strcmp(s->keys[k].name, name))
                        return bad(err, s->what, "unexpected or misplaced member");
                if (check_value(v, &s->keys[k], s->what, err) < 0)
                        return -EBADMSG;
                k++;
        }
        for (; k < s->n; k++)
                if (!s->keys[k].optional)
                        return bad(err, s->what, "a required member is missing");
        return 0;
}

/* What the shape table cannot say: pairs that go together, the formats. */
static int check_meaning(json_object *root, aidp_error *err)
{
        json_object *steps = json_object_object_get(root, "steps");
        if (json_object_array_length(steps) == 0)
                return bad(err, "record", "no step");
        for (size_t s = 0; s < json_object_array_length(steps); s++) {
                json_object *st = json_object_array_get_idx(steps, s);
                if (!json_object_object_get(st, "run") == !json_object_object_get(st, "sealedBy"))
                        return bad(err, "step", "neither or both of run and sealedBy");
                json_object *ins = json_object_object_get(st, "inputs");
                for (size_t i = 0; i < json_object_array_length(ins); i++) {
                        json_object *in = json_object_array_get_idx(ins, i);
                        json_object *files = json_object_object_get(in, "files");
                        if (!json_object_object_get(in, "views") != !files)
                                return bad(err, "input",
                                           "views without files or files "
                                           "without views");
                        for (size_t f = 0; files && f < json_object_array_length(files); f++) {
                                json_object *fo = json_object_array_get_idx(files, f);
                                const char *fmt = json_object_get_string(
                                        json_object_object_get(fo, "format"));
                                if (strcmp(fmt, "csv") && strcmp(fmt, "jsonl"))
                                        return bad(err, "file", "format is not csv or jsonl");
                                json_object *cols = json_object_object_get(fo, "columns");
                                for (size_t c = 0; c < json_object_array_length(cols); c++) {
                                        json_object *co = json_object_array_get_idx(cols, c);
                                        if (!json_object_object_get(co, "keyId") !=
                                            !json_object_object_get(co, "domain"))
                                                return bad(err, "column",
                                                           "keyId without domain or domain "
                                                           "without keyId");
                                }
                        }
                }
        }
        return 0;
}

/* Parse buf into a record whose shape is checked; NULL (err set) otherwise. */
static json_object *parse(const uint8_t *buf, size_t len, aidp_error *err)
{
        if (len == 0 || len > AIDP_SEALED_PRODUCED_MAX) {
                aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                               "produced-by record: %zu bytes, expected 1 to %d", len,
                               AIDP_SEALED_PRODUCED_MAX);
                return NULL;
        }
        struct json_tokener *tok = json_tokener_new();
        if (!tok) {
                aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                return NULL;
        }
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        _cleanup_(json_object_putp) json_object *root =
                json_tokener_parse_ex(tok, (const char *)buf, (int)len);
        bool whole = root && json_tokener_get_error(tok) == json_tokener_success &&
                     json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!whole) {
                bad(err, "record", "not one JSON value");
                return NULL;
        }
        if (check_obj(root, &root_shape, err) < 0 || check_meaning(root, err) < 0)
                return NULL;
        return TAKE_PTR(root);
}

int aidp_sealed_produced_check(const uint8_t *buf, size_t len, aidp_error *err)
{
        _cleanup_(json_object_putp) json_object *root = parse(buf, len, err);
        if (!root)
                return -EBADMSG;
        /* Canonical: only the bytes the writer produces for this content. */
        size_t n = 0;
        const char *again = json_object_to_json_string_length(root, JSON_FLAGS, &n);
        if (!again || n != len || memcmp(again, buf, len))
                return bad(err, "record", "not the canonical encoding");
        return 0;
}

/* Is this very step (every member equal) in steps already? Equal names are
 * not enough: a re-seal may keep its input's name (a new --version), and a
 * name alone must never let one step hide another's history. */
static bool has_step(json_object *steps, json_object *step)
{
        for (size_t i = 0; i < json_object_array_length(steps); i++)
                if (json_object_equal(json_object_array_get_idx(steps, i), step))
                        return true;
        return false;
}

/* Append the steps of one input's record that steps does not hold yet. */
static int add_input_steps(json_object *steps, const struct aidp_sealed_header *h, aidp_error *err)
{
        _cleanup_(json_object_putp) json_object *rec =
                parse(h->produced_by, h->produced_by_len, err);
        if (!rec)
                return aidp_error_wrap(err, "input %s", h->meta.name);
        json_object *theirs = json_object_object_get(rec, "steps");
        for (size_t i = 0; i < json_object_array_length(theirs); i++) {
                json_object *s = json_object_array_get_idx(theirs, i);
                if (has_step(steps, s))
                        continue;
                if (json_object_array_add(steps, json_object_get(s)) < 0) {
                        json_object_put(s);
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                }
        }
        return 0;
}

int aidp_sealed_produced_chain(json_object *step, const struct aidp_sealed_header *const *inputs,
                               size_t n, uint8_t **ret, size_t *ret_len, aidp_error *err)
{
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *steps = json_object_new_array();
        if (!root || !steps || !step) {
                json_object_put(steps);
                json_object_put(step);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        json_object_object_add(root, "v", json_object_new_int(1));
        json_object_object_add(root, "steps", steps);
        json_object_array_add(steps, step);
        for (size_t i = 0; i < n; i++) {
                int r = inputs[i]->produced_by_len ? add_input_steps(steps, inputs[i], err) : 0;
                if (r < 0)
                        return r;
        }
        size_t len = 0;
        const char *text = json_object_to_json_string_length(root, JSON_FLAGS, &len);
        if (!text)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (len > AIDP_SEALED_PRODUCED_MAX ||
            json_object_array_length(steps) > AIDP_SEALED_PRODUCED_STEPS)
                return aidp_error_set(err, AIDP_EXIT_DATA, EFBIG,
                                      "the produced-by record of the output would be %zu bytes "
                                      "and %zu steps; at most %d bytes and %d steps fit the "
                                      "sealed header (the inputs' history is too long)",
                                      len, json_object_array_length(steps),
                                      AIDP_SEALED_PRODUCED_MAX, AIDP_SEALED_PRODUCED_STEPS);
        /* What a reader will accept, checked before anything is sealed. */
        int r = aidp_sealed_produced_check((const uint8_t *)text, len, err);
        if (r < 0)
                return aidp_error_wrap(err, "the output's produced-by record");
        uint8_t *b = malloc(len);
        if (!b)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        memcpy(b, text, len);
        *ret = b;
        *ret_len = len;
        return 0;
}

json_object *aidp_sealed_produced_json(const struct aidp_sealed_header *h)
{
        if (!h->produced_by_len)
                return NULL;
        aidp_error err = {0};
        return parse(h->produced_by, h->produced_by_len, &err);
}
