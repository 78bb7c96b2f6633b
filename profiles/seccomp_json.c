/* Import of an OCI runtime-spec / Docker seccomp JSON file into the policy model.
 *
 * Docker's default profile is an allowlist with conditional groups: a rule
 * with `includes` applies only when all of its conditions hold (this arch,
 * all of these capabilities kept, kernel >= minKernel); a rule with
 * `excludes` is dropped when any of its conditions holds. We resolve them for
 * the architecture the filter is built for and for the capabilities the
 * sandbox really keeps, so the result is the filter Docker would load for the
 * same container. Names that the arch does not have (chown32 on x86_64) or
 * that libseccomp does not know yet are skipped, as Docker does. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "profiles/internal.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_tokener *, json_tokener_free)

#define JSON_MAX_DEPTH 16

struct ctx {
        const char *file;
        aidp_error *err;
        uint32_t arch;
        char *const *caps;
        size_t n_caps;
        unsigned kmaj, kmin;
        size_t skipped;
};

static int jerr(struct ctx *c, const char *path, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int jerr(struct ctx *c, const char *path, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return aidp_error_set(c->err, AIDP_EXIT_CONFIG, EINVAL, "%s: %s: %s", c->file, path, msg);
}

static const char *jtype(json_object *o)
{
        switch (json_object_get_type(o)) {
        case json_type_null: return "null";
        case json_type_boolean: return "a boolean";
        case json_type_double: return "a fractional number";
        case json_type_int: return "a number";
        case json_type_object: return "an object";
        case json_type_array: return "an array";
        case json_type_string: return "a string";
        }
        return "?";
}

static int expect(struct ctx *c, json_object *o, json_type t, const char *path, const char *what)
{
        if (o && json_object_get_type(o) == t)
                return 0;
        return jerr(c, path, "found %s, expected %s", o ? jtype(o) : "nothing", what);
}

static int check_keys(struct ctx *c, json_object *o, const char *path, const char *const *allowed)
{
        json_object_object_foreach(o, key, val)
        {
                (void)val;
                bool ok = false;
                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = !strcmp(*a, key);
                if (!ok)
                        return jerr(c, path, "unknown key '%s'", key);
        }
        return 0;
}

static int parse_action(struct ctx *c, json_object *o, json_object *errno_o, int dflt_errno,
                        const char *path, enum aidp_sc_action *a, int *e)
{
        static const struct {
                const char *name;
                enum aidp_sc_action a;
        } acts[] = {
                {"SCMP_ACT_ALLOW", AIDP_SC_ALLOW},
                {"SCMP_ACT_ERRNO", AIDP_SC_ERRNO},
                {"SCMP_ACT_KILL", AIDP_SC_KILL_THREAD}, /* libseccomp: KILL == KILL_THREAD */
                {"SCMP_ACT_KILL_THREAD", AIDP_SC_KILL_THREAD},
                {"SCMP_ACT_KILL_PROCESS", AIDP_SC_KILL_PROCESS},
                {"SCMP_ACT_TRAP", AIDP_SC_TRAP},
                {"SCMP_ACT_LOG", AIDP_SC_LOG},
        };
        int rc = expect(c, o, json_type_string, path, "an action such as SCMP_ACT_ALLOW");
        if (rc < 0)
                return rc;
        const char *s = json_object_get_string(o);
        for (size_t i = 0; i < ARRAY_SIZE(acts); i++) {
                if (strcmp(s, acts[i].name))
                        continue;
                *a = acts[i].a;
                *e = 0;
                if (*a == AIDP_SC_ERRNO) {
                        *e = dflt_errno;
                        if (errno_o) {
                                char p[300];
                                aidp_text_printf(p, sizeof p, "%s (errnoRet)", path);
                                rc = expect(c, errno_o, json_type_int, p, "an errno number");
                                if (rc < 0)
                                        return rc;
                                int64_t v = json_object_get_int64(errno_o);
                                if (v < 1 || v > 4095)
                                        return jerr(c, p,
                                                    "found %" PRId64
                                                    ", expected an errno number 1..4095",
                                                    v);
                                *e = (int)v;
                        }
                }
                return 0;
        }
        if (!strcmp(s, "SCMP_ACT_TRACE") || !strcmp(s, "SCMP_ACT_NOTIFY"))
                return jerr(c, path,
                            "found '%s', which needs a tracer or listener aidp does not provide; "
                            "expected ALLOW, ERRNO, KILL*, TRAP or LOG",
                            s);
        return jerr(c, path,
                    "found '%s', expected SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, "
                    "SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP or SCMP_ACT_LOG",
                    s);
}

static int str_array(struct ctx *c, json_object *o, const char *path)
{
        int rc = expect(c, o, json_type_array, path, "an array of strings");
        if (rc < 0)
                return rc;
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++) {
                char p[300];
                aidp_text_printf(p, sizeof p, "%s[%zu]", path, i);
                rc = expect(c, json_object_array_get_idx(o, i), json_type_string, p, "a string");
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static bool in_array(json_object *arr, const char *s)
{
        size_t n = json_object_array_length(arr);
        for (size_t i = 0; i < n; i++)
                if (!strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), s))
                        return true;
        return false;
}

static bool cap_kept(struct ctx *c, const char *cap)
{
        char canon[64];
        if (aidp_profiles_cap_canon(cap, canon, sizeof canon) < 0)
                return false;
        for (size_t i = 0; i < c->n_caps; i++)
                if (!strcmp(c->caps[i], canon))
                        return true;
        return false;
}

static int parse_kernel(struct ctx *c, json_object *o, const char *path, unsigned *maj,
                        unsigned *min)
{
        int rc = expect(c, o, json_type_string, path, "a kernel version such as \"4.8\"");
        if (rc < 0)
                return rc;
        const char *s = json_object_get_string(o);
        char tail;
        if (sscanf(s, "%u.%u%c", maj, min, &tail) != 2)
                return jerr(c, path, "found '%s', expected a kernel version such as \"4.8\"", s);
        return 0;
}

static bool kernel_at_least(struct ctx *c, unsigned maj, unsigned min)
{
        if (!c->kmaj && !c->kmin)
                return true;
        return c->kmaj > maj || (c->kmaj == maj && c->kmin >= min);
}

/* Validate a condition object; *applies says whether its clauses hold ("all
 * hold" for includes, "any holds" for excludes). */
static int conditions(struct ctx *c, json_object *o, const char *path, bool includes, bool *applies)
{
        static const char *const keys[] = {"arches", "caps", "minKernel", NULL};
        int rc = expect(c, o, json_type_object, path, "an object with arches, caps, minKernel");
        if (rc < 0)
                return rc;
        rc = check_keys(c, o, path, keys);
        if (rc < 0)
                return rc;
        bool all = true, any = false;
        char p[300];
        json_object *v;
        if (json_object_object_get_ex(o, "arches", &v) && !json_object_is_type(v, json_type_null)) {
                aidp_text_printf(p, sizeof p, "%s.arches", path);
                if ((rc = str_array(c, v, p)) < 0)
                        return rc;
                if (json_object_array_length(v)) {
                        const char *me = aidp_profiles_arch_docker(c->arch);
                        bool hit = me && in_array(v, me);
                        all = all && hit;
                        any = any || hit;
                }
        }
        if (json_object_object_get_ex(o, "caps", &v) && !json_object_is_type(v, json_type_null)) {
                aidp_text_printf(p, sizeof p, "%s.caps", path);
                if ((rc = str_array(c, v, p)) < 0)
                        return rc;
                size_t n = json_object_array_length(v);
                for (size_t i = 0; i < n; i++) {
                        const char *cap = json_object_get_string(json_object_array_get_idx(v, i));
                        char canon[64];
                        if (aidp_profiles_cap_canon(cap, canon, sizeof canon) < 0) {
                                aidp_text_printf(p, sizeof p, "%s.caps[%zu]", path, i);
                                return jerr(c, p,
                                            "found '%s', expected a capability name such as "
                                            "CAP_SYS_ADMIN",
                                            cap);
                        }
                        bool kept = cap_kept(c, cap);
                        all = all && kept;
                        any = any || kept;
                }
        }
        if (json_object_object_get_ex(o, "minKernel", &v) &&
            !json_object_is_type(v, json_type_null)) {
                unsigned maj, min;
                aidp_text_printf(p, sizeof p, "%s.minKernel", path);
                if ((rc = parse_kernel(c, v, p, &maj, &min)) < 0)
                        return rc;
                bool ok = kernel_at_least(c, maj, min);
                all = all && ok;
                any = any || ok;
        }
        *applies = includes ? all : any;
        return 0;
}

static int parse_arg(struct ctx *c, json_object *o, const char *path, struct aidp_sc_arg *a)
{
        static const char *const keys[] = {"index", "value", "valueTwo", "op", NULL};
        static const struct {
                const char *name;
                enum aidp_sc_op op;
        } ops[] = {
                {"SCMP_CMP_EQ", AIDP_SC_OP_EQ},
                {"SCMP_CMP_NE", AIDP_SC_OP_NE},
                {"SCMP_CMP_LT", AIDP_SC_OP_LT},
                {"SCMP_CMP_LE", AIDP_SC_OP_LE},
                {"SCMP_CMP_GT", AIDP_SC_OP_GT},
                {"SCMP_CMP_GE", AIDP_SC_OP_GE},
                {"SCMP_CMP_MASKED_EQ", AIDP_SC_OP_MASKED_EQ},
        };
        int rc = expect(c, o, json_type_object, path, "an object with index, value, valueTwo, op");
        if (rc < 0 || (rc = check_keys(c, o, path, keys)) < 0)
                return rc;
        char p[300];
        json_object *v;
        memset(a, 0, sizeof *a);
        aidp_text_printf(p, sizeof p, "%s.index", path);
        json_object_object_get_ex(o, "index", &v);
        if ((rc = expect(c, v, json_type_int, p, "an argument index 0..5")) < 0)
                return rc;
        int64_t idx = json_object_get_int64(v);
        if (idx < 0 || idx > 5)
                return jerr(c, p, "found %" PRId64 ", expected an argument index 0..5", idx);
        a->index = (unsigned)idx;
        uint64_t *dst[] = {&a->value, &a->value2};
        const char *names[] = {"value", "valueTwo"};
        for (size_t i = 0; i < 2; i++) {
                aidp_text_printf(p, sizeof p, "%s.%s", path, names[i]);
                if (!json_object_object_get_ex(o, names[i], &v)) {
                        if (i == 0)
                                return jerr(c, p, "found nothing, expected a number");
                        continue;
                }
                if ((rc = expect(c, v, json_type_int, p, "a non-negative number")) < 0)
                        return rc;
                if (json_object_get_int64(v) < 0)
                        return jerr(c, p, "found %" PRId64 ", expected a non-negative number",
                                    json_object_get_int64(v));
                *dst[i] = json_object_get_uint64(v);
        }
        aidp_text_printf(p, sizeof p, "%s.op", path);
        json_object_object_get_ex(o, "op", &v);
        if ((rc = expect(c, v, json_type_string, p, "a comparison such as SCMP_CMP_EQ")) < 0)
                return rc;
        const char *op = json_object_get_string(v);
        for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
                if (!strcmp(op, ops[i].name)) {
                        a->op = ops[i].op;
                        return 0;
                }
        return jerr(c, p, "found '%s', expected SCMP_CMP_EQ, _NE, _LT, _LE, _GT, _GE or _MASKED_EQ",
                    op);
}

static int parse_rule(struct ctx *c, json_object *o, size_t idx, int dflt_errno,
                      struct aidp_sc_policy *out)
{
        static const char *const keys[] = {"names",   "name",     "action",   "errnoRet", "args",
                                           "comment", "includes", "excludes", NULL};
        char path[64], p[300];
        aidp_text_printf(path, sizeof path, "syscalls[%zu]", idx);
        int rc = expect(c, o, json_type_object, path, "an object with names and action");
        if (rc < 0 || (rc = check_keys(c, o, path, keys)) < 0)
                return rc;
        json_object *names = NULL, *name = NULL, *action = NULL, *errno_o = NULL, *args = NULL, *v;
        json_object_object_get_ex(o, "names", &names);
        json_object_object_get_ex(o, "name", &name);
        json_object_object_get_ex(o, "action", &action);
        json_object_object_get_ex(o, "errnoRet", &errno_o);
        json_object_object_get_ex(o, "args", &args);
        if (json_object_object_get_ex(o, "comment", &v)) {
                aidp_text_printf(p, sizeof p, "%s.comment", path);
                if ((rc = expect(c, v, json_type_string, p, "a string")) < 0)
                        return rc;
        }
        if (names) {
                aidp_text_printf(p, sizeof p, "%s.names", path);
                if ((rc = str_array(c, names, p)) < 0)
                        return rc;
        } else if (name) {
                aidp_text_printf(p, sizeof p, "%s.name", path);
                if ((rc = expect(c, name, json_type_string, p, "a syscall name")) < 0)
                        return rc;
        } else {
                return jerr(c, path, "found no names, expected names: [...]");
        }
        struct aidp_sc_rule r = {0};
        aidp_text_printf(p, sizeof p, "%s.action", path);
        if ((rc = parse_action(c, action, errno_o, dflt_errno, p, &r.action, &r.errno_ret)) < 0)
                return rc;
        struct aidp_sc_arg argv[6];
        if (args && !json_object_is_type(args, json_type_null)) {
                aidp_text_printf(p, sizeof p, "%s.args", path);
                if ((rc = expect(c, args, json_type_array, p, "an array of conditions")) < 0)
                        return rc;
                size_t n = json_object_array_length(args);
                if (n > 6)
                        return jerr(c, p, "found %zu conditions, expected at most 6", n);
                for (size_t i = 0; i < n; i++) {
                        aidp_text_printf(p, sizeof p, "%s.args[%zu]", path, i);
                        if ((rc = parse_arg(c, json_object_array_get_idx(args, i), p, &argv[i])) <
                            0)
                                return rc;
                        for (size_t j = 0; j < i; j++)
                                if (argv[j].index == argv[i].index)
                                        return jerr(c, p,
                                                    "found a second condition on arg%u, expected "
                                                    "one per argument",
                                                    argv[i].index);
                }
                r.args = argv;
                r.n_args = n;
        }
        bool inc = true, exc = false;
        if (json_object_object_get_ex(o, "includes", &v)) {
                aidp_text_printf(p, sizeof p, "%s.includes", path);
                if ((rc = conditions(c, v, p, true, &inc)) < 0)
                        return rc;
        }
        if (json_object_object_get_ex(o, "excludes", &v)) {
                aidp_text_printf(p, sizeof p, "%s.excludes", path);
                if ((rc = conditions(c, v, p, false, &exc)) < 0)
                        return rc;
        }
        if (!inc || exc)
                return 0;
        /* Keep only the names this arch has. */
        size_t total = names ? json_object_array_length(names) : 1;
        _cleanup_free_ char **kept = calloc(total ? total : 1, sizeof(char *));
        if (!kept)
                return aidp_error_set(c->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        size_t nk = 0;
        for (size_t i = 0; i < total; i++) {
                const char *s = names ? json_object_get_string(json_object_array_get_idx(names, i))
                                      : json_object_get_string(name);
                if (aidp_profiles_syscall_nr(c->arch, s) < 0) {
                        c->skipped++;
                        continue;
                }
                kept[nk++] = (char *)s;
        }
        if (!nk)
                return 0;
        r.names = kept;
        r.n_names = nk;
        if (aidp_sc_policy_add(out, &r) < 0)
                return aidp_error_set(c->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

static int offset_to_pos(const char *buf, size_t off, unsigned *line, unsigned *col)
{
        *line = 1;
        *col = 1;
        for (size_t i = 0; i < off; i++) {
                if (buf[i] == '\n') {
                        (*line)++;
                        *col = 1;
                } else {
                        (*col)++;
                }
        }
        return 0;
}

int aidp_profiles_seccomp_json(const char *file, const char *buf, size_t len,
                               const struct aidp_profile_env *env, char *const *caps, size_t n_caps,
                               struct aidp_sc_policy *out, size_t *n_skipped, aidp_error *err)
{
        struct ctx c = {
                .file = file,
                .err = err,
                .arch = aidp_profiles_arch(env),
                .caps = caps,
                .n_caps = n_caps,
                .kmaj = env ? env->kernel_major : 0,
                .kmin = env ? env->kernel_minor : 0,
        };
        memset(out, 0, sizeof *out);
        if (len > INT32_MAX)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG, "%s: too large", file);
        _cleanup_(json_tokener_freep) struct json_tokener *tok =
                json_tokener_new_ex(JSON_MAX_DEPTH);
        if (!tok)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        _cleanup_(json_object_putp) json_object *root = json_tokener_parse_ex(tok, buf, (int)len);
        enum json_tokener_error jr = json_tokener_get_error(tok);
        size_t off = json_tokener_get_parse_end(tok);
        if (!root || jr != json_tokener_success) {
                unsigned line, col;
                if (jr == json_tokener_continue)
                        jr = json_tokener_error_parse_eof;
                offset_to_pos(buf, off > len ? len : off, &line, &col);
                return aidp_error_set_at(err, AIDP_EXIT_CONFIG, file, line, col, "JSON syntax: %s",
                                         json_tokener_error_desc(jr));
        }
        for (; off < len; off++)
                if (buf[off] != ' ' && buf[off] != '\n' && buf[off] != '\t' && buf[off] != '\r') {
                        unsigned line, col;
                        offset_to_pos(buf, off, &line, &col);
                        return aidp_error_set_at(err, AIDP_EXIT_CONFIG, file, line, col,
                                                 "JSON syntax: found text after the document, "
                                                 "expected the end of the file");
                }
        static const char *const keys[] = {"defaultAction", "defaultErrnoRet",  "architectures",
                                           "archMap",       "syscalls",         "flags",
                                           "listenerPath",  "listenerMetadata", NULL};
        int rc = expect(&c, root, json_type_object, "(top level)",
                        "an object with defaultAction and syscalls");
        if (rc < 0 || (rc = check_keys(&c, root, "(top level)", keys)) < 0)
                return rc;
        json_object *v, *errno_o = NULL;
        json_object_object_get_ex(root, "defaultErrnoRet", &errno_o);
        if (!json_object_object_get_ex(root, "defaultAction", &v))
                return jerr(&c, "defaultAction",
                            "found nothing, expected an action such as SCMP_ACT_ERRNO");
        struct aidp_sc_policy pol = {0};
        if ((rc = parse_action(&c, v, errno_o, EPERM, "defaultAction", &pol.default_action,
                               &pol.default_errno)) < 0)
                return rc;
        if (json_object_object_get_ex(root, "listenerPath", &v) &&
            json_object_get_type(v) == json_type_string && *json_object_get_string(v))
                return jerr(&c, "listenerPath",
                            "found a seccomp agent, expected none: aidp does not forward "
                            "notifications");
        if (json_object_object_get_ex(root, "syscalls", &v) &&
            !json_object_is_type(v, json_type_null)) {
                if ((rc = expect(&c, v, json_type_array, "syscalls", "an array of rules")) < 0)
                        return rc;
                size_t n = json_object_array_length(v);
                for (size_t i = 0; i < n; i++) {
                        rc = parse_rule(&c, json_object_array_get_idx(v, i), i, EPERM, &pol);
                        if (rc < 0) {
                                aidp_sc_policy_free(&pol);
                                return rc;
                        }
                }
        }
        aidp_profiles_sc_normalize(&pol);
        const char *bad = aidp_profiles_sc_contradiction(&pol);
        if (bad) {
                rc = jerr(&c, "syscalls",
                          "contradictory rules for '%s' after resolving includes/excludes: an "
                          "unconditional rule next to another action, or the same conditions with "
                          "two actions",
                          bad);
                aidp_sc_policy_free(&pol);
                return rc;
        }
        *out = pol;
        if (n_skipped)
                *n_skipped = c.skipped;
        return 0;
}
