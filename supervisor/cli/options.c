/* The command-line table parser (options.h), built on getopt_long: the table
 * becomes getopt's option array and short-option string, and each value is
 * converted by its kind into the command's options struct. */
#define _GNU_SOURCE
#include "supervisor/cli/options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/exitcodes.h"
#include "profiles/units.h"

/* getopt's val for table entry i; --help is the entry after the table. */
#define VAL_BASE 256

static size_t count_opts(const struct aidp_cli_opt *opts)
{
        size_t n = 0;
        while (opts && opts[n].name)
                n++;
        return n;
}

static const char *default_expect(const struct aidp_cli_opt *o)
{
        switch (o->kind) {
        case AIDP_CLI_SIZE: return "a size such as 512M, 8G (GiB) or 8GB (10^9 bytes)";
        case AIDP_CLI_CPU: return "a number of CPUs such as 2, 1.5 or 500m";
        case AIDP_CLI_DURATION: return "a duration such as 90s, 2h or 1h30m";
        case AIDP_CLI_UINT: return "a non-negative integer";
        case AIDP_CLI_FLAG:
        case AIDP_CLI_STRING:
        case AIDP_CLI_LIST:
        case AIDP_CLI_CUSTOM:
        case AIDP_CLI_KIND_MAX: break;
        }
        return "a value";
}

static int bad_value(const struct aidp_cli_opt *o, const char *arg, aidp_error *err)
{
        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "--%s '%s': expected %s", o->name, arg,
                              o->expect ? o->expect : default_expect(o));
}

static int parse_number(const struct aidp_cli_opt *o, const char *arg, uint64_t *v)
{
        int r = -EINVAL;
        switch (o->kind) {
        case AIDP_CLI_SIZE: r = aidp_profiles_parse_size(arg, v); break;
        case AIDP_CLI_CPU: r = aidp_profiles_parse_cpu(arg, v); break;
        case AIDP_CLI_DURATION: r = aidp_profiles_parse_duration(arg, v); break;
        case AIDP_CLI_UINT:
                r = arg[0] >= '0' && arg[0] <= '9' ? aidp_profiles_parse_uint(arg, false, v)
                                                   : -EINVAL;
                break;
        case AIDP_CLI_FLAG:
        case AIDP_CLI_STRING:
        case AIDP_CLI_LIST:
        case AIDP_CLI_CUSTOM:
        case AIDP_CLI_KIND_MAX: break;
        }
        if (r < 0 || *v < o->min || (o->max && *v > o->max))
                return -EINVAL;
        return 0;
}

static int list_push(const struct aidp_cli_opt *o, struct aidp_cli_list *l, const char *arg,
                     aidp_error *err)
{
        if (o->max && l->n >= o->max)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG, "--%s: at most %llu", o->name,
                                      (unsigned long long)o->max);
        const char **v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (!v)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        v[l->n++] = arg;
        l->v = v;
        return 0;
}

void aidp_cli_list_free(struct aidp_cli_list *l)
{
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

/* Store one option's value into dest by its kind. */
static int store(const struct aidp_cli_opt *o, const char *arg, void *dest, aidp_error *err)
{
        char *field = (char *)dest + o->offset;
        uint64_t v;
        switch (o->kind) {
        case AIDP_CLI_FLAG: *(bool *)field = true; return 0;
        case AIDP_CLI_STRING:
                if (!*arg)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "--%s: empty %s",
                                              o->name, o->arg ? o->arg : "value");
                *(const char **)field = arg;
                return 0;
        case AIDP_CLI_SIZE:
        case AIDP_CLI_CPU:
        case AIDP_CLI_DURATION:
        case AIDP_CLI_UINT:
                if (parse_number(o, arg, &v) < 0)
                        return bad_value(o, arg, err);
                *(uint64_t *)field = v;
                return 0;
        case AIDP_CLI_LIST:
                if (!*arg)
                        return bad_value(o, arg, err);
                return list_push(o, (struct aidp_cli_list *)field, arg, err);
        case AIDP_CLI_CUSTOM: {
                int r = o->parse(arg, dest, err);
                if (r < 0 && !err->msg[0])
                        return bad_value(o, arg, err);
                if (r < 0 && !err->status)
                        err->status = AIDP_EXIT_USAGE;
                return r;
        }
        case AIDP_CLI_KIND_MAX: break;
        }
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "--%s: bad table entry", o->name);
}

/* getopt_long's tables from ours: long options get val VAL_BASE + index. */
static void build_getopt(const struct aidp_cli_spec *spec, size_t n, struct option *longs,
                         char *shorts)
{
        char *s = shorts;
        if (spec->in_order)
                *s++ = '+'; /* else permute, the GNU default */
        *s++ = ':';         /* a missing argument returns ':' instead of '?' */
        *s++ = 'h';
        for (size_t i = 0; i < n; i++) {
                const struct aidp_cli_opt *o = &spec->opts[i];
                bool has_arg = o->kind != AIDP_CLI_FLAG;
                longs[i] = (struct option){o->name, has_arg ? required_argument : no_argument, NULL,
                                           VAL_BASE + (int)i};
                if (o->short_name) {
                        *s++ = o->short_name;
                        if (has_arg)
                                *s++ = ':';
                }
        }
        longs[n] = (struct option){"help", no_argument, NULL, VAL_BASE + (int)n};
        longs[n + 1] = (struct option){0};
        *s = '\0';
}

static int index_of_short(const struct aidp_cli_spec *spec, size_t n, int c)
{
        for (size_t i = 0; i < n; i++)
                if (spec->opts[i].short_name && spec->opts[i].short_name == c)
                        return (int)i;
        return -1;
}

static int getopt_error(const struct aidp_cli_spec *spec, size_t n, int c, char **argv,
                        aidp_error *err)
{
        const char *given = argv[optind - 1];
        int i = optopt >= VAL_BASE ? optopt - VAL_BASE : index_of_short(spec, n, optopt);
        if (c == ':' && i >= 0 && (size_t)i < n)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "--%s needs an argument (%s)",
                                      spec->opts[i].name,
                                      spec->opts[i].arg ? spec->opts[i].arg : "a value");
        if (optopt && optopt < VAL_BASE)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "unknown option '-%c'", optopt);
        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "unknown option '%s'", given);
}

static int check_operands(const struct aidp_cli_spec *spec, int argc, char **argv,
                          struct aidp_cli_parsed *p, aidp_error *err)
{
        p->first_arg = optind;
        p->n_args = argc - optind;
        if (spec->max_args == 0 && p->n_args > 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "unexpected argument '%s'",
                                      argv[optind]);
        const char *what = spec->args ? spec->args : "arguments";
        if (p->n_args < spec->min_args)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "missing %s", what);
        if (spec->max_args >= 0 && p->n_args > spec->max_args)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "unexpected argument '%s' (expected %s)",
                                      argv[optind + spec->max_args], what);
        return 0;
}

int aidp_cli_parse(const struct aidp_cli_spec *spec, int argc, char **argv, void *dest,
                   struct aidp_cli_parsed *ret, aidp_error *err)
{
        return aidp_cli_parse_at(spec, argc, argv, dest, ret, NULL, err);
}

int aidp_cli_parse_at(const struct aidp_cli_spec *spec, int argc, char **argv, void *dest,
                      struct aidp_cli_parsed *ret, int *at, aidp_error *err)
{
        size_t n = count_opts(spec->opts);
        if (n > AIDP_CLI_MAX_OPTS)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, E2BIG, "%s: option table too long",
                                      spec->prog);
        struct option longs[AIDP_CLI_MAX_OPTS + 2];
        char shorts[3 * AIDP_CLI_MAX_OPTS + 8];
        build_getopt(spec, n, longs, shorts);
        memset(ret, 0, sizeof *ret);
        optind = 0; /* 0, not 1: also resets glibc's internal state between parses */
        opterr = 0;
        int c, r = 0, prev = 1;
        for (int k = 0; at && k < argc; k++)
                at[k] = AIDP_CLI_AT_OPERAND;
        while (r == 0 && (c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
                if (c == 'h' || c == VAL_BASE + (int)n) {
                        ret->help = true;
                        return 1;
                }
                int i = c >= VAL_BASE ? c - VAL_BASE : index_of_short(spec, n, c);
                if (c == '?' || c == ':' || i < 0)
                        return getopt_error(spec, n, c, argv, err);
                const struct aidp_cli_opt *o = &spec->opts[i];
                /* The tokens getopt took for it: none while inside a cluster
                 * of short options (-qq), else its name and a separate value. */
                for (int k = prev; at && k < optind; k++)
                        at[k] = k == prev ? i : AIDP_CLI_AT_VALUE;
                if (optind > prev)
                        prev = optind;
                ret->count[i]++;
                enum aidp_trust_level lv = o->trust_of ? o->trust_of(optarg) : o->trust;
                if (lv < o->trust)
                        lv = o->trust;
                if (lv > ret->level[i])
                        ret->level[i] = lv;
                r = store(o, optarg, dest, err);
        }
        if (r < 0)
                return r;
        /* What getopt skipped without returning it is the "--" that ends the options. */
        for (int k = prev; at && k < optind; k++)
                at[k] = AIDP_CLI_AT_END;
        return check_operands(spec, argc, argv, ret, err);
}

bool aidp_cli_options(const struct aidp_cli_spec *spec, int argc, char **argv, void *dest,
                      struct aidp_cli_parsed *ret, int *status)
{
        aidp_error err = {0};
        int r = aidp_cli_parse(spec, argc, argv, dest, ret, &err);
        if (r == 0)
                return true;
        if (r > 0) {
                aidp_cli_help(spec, stdout);
                *status = 0;
        } else if (err.status == AIDP_EXIT_USAGE) {
                *status = aidp_cli_usage_fail(spec->prog, &err);
        } else {
                fprintf(stderr, "%s: error: %s\n", spec->prog, err.msg);
                *status = err.status ? err.status : AIDP_EXIT_INTERNAL;
        }
        return false;
}

/* ---- help ---- */

#define HELP_COL 26

static void print_wrapped(FILE *f, const char *text, int col)
{
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                int len = nl ? (int)(nl - p) : (int)strlen(p);
                fprintf(f, "%.*s\n", len, p);
                if (!nl)
                        return;
                p = nl + 1;
                fprintf(f, "%*s", col, "");
        }
}

static void help_option(FILE *f, char short_name, const char *name, const char *arg,
                        const char *help)
{
        char left[96];
        if (short_name)
                snprintf(left, sizeof left, "  -%c, --%s%s%s", short_name, name, arg ? " " : "",
                         arg ? arg : "");
        else
                snprintf(left, sizeof left, "  --%s%s%s", name, arg ? " " : "", arg ? arg : "");
        if (strlen(left) >= HELP_COL - 1)
                fprintf(f, "%s\n%*s", left, HELP_COL, "");
        else
                fprintf(f, "%-*s", HELP_COL, left);
        print_wrapped(f, help ? help : "", HELP_COL);
}

void aidp_cli_help(const struct aidp_cli_spec *spec, FILE *f)
{
        const char *syn = spec->synopsis ? spec->synopsis : "";
        fprintf(f, "usage: ");
        for (const char *p = syn;;) {
                const char *nl = strchr(p, '\n');
                int len = nl ? (int)(nl - p) : (int)strlen(p);
                fprintf(f, "%s %.*s\n", spec->prog, len, p);
                if (!nl)
                        break;
                p = nl + 1;
                fprintf(f, "       ");
        }
        if (spec->about)
                fprintf(f, "\n%s\n", spec->about);
        fprintf(f, "\n");
        for (size_t i = 0; spec->opts && spec->opts[i].name; i++) {
                const struct aidp_cli_opt *o = &spec->opts[i];
                help_option(f, o->short_name, o->name, o->kind == AIDP_CLI_FLAG ? NULL : o->arg,
                            o->help);
        }
        help_option(f, 'h', "help", NULL, "print this help and exit");
        if (spec->footer)
                fprintf(f, "\n%s", spec->footer);
}

/* ---- usage errors ---- */

static void usage_tail(const char *prog)
{
        fprintf(stderr, "Try '%s --help' for more information.\n", prog);
}

int aidp_cli_usage_error(const char *prog, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s: error: ", prog);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        usage_tail(prog);
        return AIDP_EXIT_USAGE;
}

int aidp_cli_usage_fail(const char *prog, const aidp_error *err)
{
        return aidp_cli_usage_error(prog, "%s", err->msg[0] ? err->msg : "bad usage");
}

/* ---- trust ---- */

bool aidp_cli_trust_allows(enum aidp_trust_level level, enum aidp_caller_kind kind, bool test_build)
{
        switch (level) {
        case AIDP_TRUST_USER: return true;
        case AIDP_TRUST_ADMIN: return kind == AIDP_CALLER_ADMIN;
        case AIDP_TRUST_TEST_BUILD: return test_build && kind == AIDP_CALLER_ADMIN;
        case AIDP_TRUST_LEVEL_MAX: break;
        }
        return false;
}

const char *aidp_cli_trust_name(enum aidp_trust_level level)
{
        switch (level) {
        case AIDP_TRUST_USER: return "user";
        case AIDP_TRUST_ADMIN: return "admin";
        case AIDP_TRUST_TEST_BUILD: return "test-build";
        case AIDP_TRUST_LEVEL_MAX: break;
        }
        return "?";
}

int aidp_cli_check_trust(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *p,
                         enum aidp_caller_kind kind, bool test_build, aidp_error *err)
{
        size_t n = count_opts(spec->opts);
        for (size_t i = 0; i < n && i < AIDP_CLI_MAX_OPTS; i++) {
                if (!p->count[i] || aidp_cli_trust_allows(p->level[i], kind, test_build))
                        continue;
                if (p->level[i] == AIDP_TRUST_TEST_BUILD)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                              "--%s is a test hook: only a test build reads it, "
                                              "for an admin caller",
                                              spec->opts[i].name);
                const struct aidp_cli_opt *o = &spec->opts[i];
                if (p->level[i] > o->trust && o->user_arg)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                              "--%s with this value is admin-only (only root "
                                              "running %s directly may use it): give --%s %s",
                                              o->name, spec->prog, o->name, o->user_arg);
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "--%s%s is admin-only: only root running %s directly may "
                                      "use it",
                                      o->name, p->level[i] > o->trust ? " with this value" : "",
                                      spec->prog);
        }
        return 0;
}

/* ---- subcommands ---- */

void aidp_cli_group_help(const struct aidp_cli_group *g, FILE *f)
{
        fprintf(f, "usage: %s COMMAND [ARGS...]\n\ncommands:\n", g->prog);
        for (const struct aidp_cli_cmd *c = g->cmds; c->name; c++)
                fprintf(f, "  %-10s %s\n", c->name, c->summary);
        if (g->version)
                fprintf(f, "  %-10s %s\n", "version", "print the version (also --version)");
        fprintf(f, "\nRun '%s COMMAND --help' for a command's options.\n", g->prog);
        if (g->footer)
                fprintf(f, "\n%s", g->footer);
}

int aidp_cli_dispatch(const struct aidp_cli_group *g, int argc, char **argv)
{
        if (argc < 2)
                return aidp_cli_usage_error(g->prog, "missing COMMAND");
        const char *cmd = argv[1];
        if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
                aidp_cli_group_help(g, stdout);
                return 0;
        }
        if (g->version && (!strcmp(cmd, "--version") || !strcmp(cmd, "version"))) {
                printf("%s\n", g->version);
                return 0;
        }
        for (const struct aidp_cli_cmd *c = g->cmds; c->name; c++)
                if (!strcmp(cmd, c->name))
                        return c->fn(argc - 1, argv + 1);
        return aidp_cli_usage_error(g->prog, "unknown command '%s'", cmd);
}

int aidp_cli_parse_time(const char *s, int64_t *ret)
{
        if (!strcmp(s, "now")) {
                *ret = (int64_t)time(NULL);
                return 0;
        }
        if (s[0] == '@') {
                char *end;
                errno = 0;
                long long v = strtoll(s + 1, &end, 10);
                if (errno || end == s + 1 || *end)
                        return -EINVAL;
                *ret = v;
                return 0;
        }
        char tmp[64];
        size_t n = strlen(s);
        if (n == 0 || n >= sizeof tmp - 5)
                return -EINVAL;
        snprintf(tmp, sizeof tmp, "%s", s);
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(tmp, "%Y-%m-%d", &tm);
        if (end && !*end) /* a date alone: its midnight UTC */
                return (*ret = (int64_t)timegm(&tm)), 0;
        if (tmp[n - 1] == 'Z')
                snprintf(tmp + n - 1, sizeof tmp - (n - 1), "+0000");
        memset(&tm, 0, sizeof tm);
        end = strptime(tmp, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end)
                return -EINVAL;
        if (*end == '.') /* fractions of a second (lineage's eventTime): dropped */
                for (end++; *end >= '0' && *end <= '9'; end++)
                        ;
        end = strptime(end, "%z", &tm);
        if (!end || *end)
                return -EINVAL;
        long off = tm.tm_gmtoff;
        *ret = (int64_t)timegm(&tm) - off;
        return 0;
}
