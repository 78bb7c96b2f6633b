/* `aidp profile check|explain|diff|learn`: the security team's tools. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "profiles/profile_load.h"
#include "profiles/seccomp_compile.h"
#include "supervisor/cli/cli.h"
#include "supervisor/run/profile_env.h"

#define PROG "aidp profile"

/* The options of check, explain and diff (one struct; each table takes its own). */
struct profile_cli {
        bool strict, offline, host;
};

#define PC(f) offsetof(struct profile_cli, f)
#define OFFLINE                                                                                    \
        AIDP_CLI_OPT("offline", 0, AIDP_CLI_FLAG, PC(offline), NULL,                               \
                     "do not check devices against this host", AIDP_TRUST_USER)

static const struct aidp_cli_opt check_opts[] = {
        AIDP_CLI_OPT("strict", 0, AIDP_CLI_FLAG, PC(strict), NULL,
                     "also exit 1 when there are lint warnings", AIDP_TRUST_USER),
        OFFLINE,
        AIDP_CLI_OPT("host", 0, AIDP_CLI_FLAG, PC(host), NULL,
                     "also check what a run on this host needs: bind sources\n"
                     "exist and are directories or regular files (devices are\n"
                     "checked unless --offline)",
                     AIDP_TRUST_USER),
        {0},
};
static const struct aidp_cli_opt offline_opts[] = {OFFLINE, {0}};

#define NAMES_HELP                                                                                 \
        "Names are looked up in $AIDP_PROFILE_PATH, then the installed profile library.\n"

const struct aidp_cli_spec aidp_cli_profile_check_spec = {
        .prog = PROG " check",
        .synopsis = "[--strict] [--offline | --host] FILE...",
        .about = "Load each profile, compile its seccomp filter, print errors and lint\n"
                 "warnings; exit 119 on errors, with --strict also exit 1 on warnings.",
        .opts = check_opts,
        .min_args = 1,
        .max_args = -1,
        .args = "at least one FILE",
};
const struct aidp_cli_spec aidp_cli_profile_explain_spec = {
        .prog = PROG " explain",
        .synopsis = "[--offline] FILE|NAME",
        .about = "The effective profile after `extends`, readable.",
        .opts = offline_opts,
        .footer = NAMES_HELP,
        .min_args = 1,
        .max_args = 1,
        .args = "one FILE or NAME",
};
const struct aidp_cli_spec aidp_cli_profile_diff_spec = {
        .prog = PROG " diff",
        .synopsis = "[--offline] A B",
        .about = "What B loosens or tightens compared with A; exit 1 when B loosens.",
        .opts = offline_opts,
        .footer = NAMES_HELP,
        .min_args = 2,
        .max_args = 2,
        .args = "two profiles, A and B",
};

static void print_lints(const char *file, const struct aidp_lint_list *l, size_t *warnings)
{
        for (size_t i = 0; i < l->n; i++) {
                const struct aidp_lint *it = &l->items[i];
                printf("%s: %s: %s [%s]\n", it->where[0] ? it->where : file,
                       aidp_lint_level_name(it->level), it->msg, it->code);
                if (it->level == AIDP_LINT_WARNING)
                        (*warnings)++;
        }
}

/* What a run would refuse only when it starts (status 125), found now: the
 * filter compiles for this architecture and fits in what the kernel loads. */
static size_t check_filter(const char *file, const struct aidp_profile *p)
{
        struct aidp_bpf b;
        aidp_error err = {0};
        if (aidp_seccomp_compile(&p->seccomp, &b, &err) < 0) {
                fprintf(stderr, "%s: error: %s\n", file, err.msg);
                return 1;
        }
        aidp_bpf_free(&b);
        return 0;
}

/* --host: each bind source exists here and is a directory or a regular file
 * (a socket, fifo or device node is not a bind: devices have their own
 * section). Checked with this process's own credentials. */
static size_t check_binds(const char *file, const struct aidp_profile *p)
{
        size_t errors = 0;
        for (size_t i = 0; i < p->n_binds; i++) {
                const char *src = p->binds[i].source;
                struct stat st;
                if (stat(src, &st) < 0) {
                        fprintf(stderr, "%s: error: filesystem.binds[%zu]: source %s: %s\n", file,
                                i, src, strerror(errno));
                        errors++;
                } else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
                        fprintf(stderr,
                                "%s: error: filesystem.binds[%zu]: source %s is a %s, expected a "
                                "directory or a regular file\n",
                                file, i, src,
                                S_ISSOCK(st.st_mode)   ? "socket"
                                : S_ISFIFO(st.st_mode) ? "fifo"
                                : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)
                                        ? "device (list it under devices)"
                                        : "special file");
                        errors++;
                }
        }
        return errors;
}

/* Every error the load gathered (file:line:col each), or the one that ended it. */
static size_t print_errors(const char *file, const struct aidp_profile_errors *all,
                           const aidp_error *err)
{
        if (!all->n) {
                fprintf(stderr, "%s: error: %s\n", file, err->msg);
                return 1;
        }
        for (size_t k = 0; k < all->n; k++)
                fprintf(stderr, "%s: error: %s\n", file, all->items[k].msg);
        if (all->more)
                fprintf(stderr, "%s: error: stopped after %d errors\n", file,
                        AIDP_PROFILE_ERRORS_MAX);
        return all->n;
}

static int cmd_check(int argc, char **argv)
{
        struct profile_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&aidp_cli_profile_check_spec, argc, argv, &c, &pa, &st))
                return st;
        if (c.offline && c.host)
                return aidp_cli_usage_error(PROG " check", "--offline and --host contradict");
        bool strict = c.strict, offline = c.offline;
        int first = pa.first_arg;
        size_t errors = 0, warnings_total = 0;
        _cleanup_free_ struct aidp_profile_errors *all = malloc(sizeof *all);
        if (!all)
                return AIDP_EXIT_INTERNAL;
        for (int i = first; i < argc; i++) {
                struct aidp_profile p;
                struct aidp_lint_list lints = {0};
                aidp_error err = {0};
                size_t warnings = 0;
                memset(all, 0, sizeof *all);
                if (aidp_profile_host_check(argv[i], !offline, &p, &lints, all, &err) < 0) {
                        errors += print_errors(argv[i], all, &err);
                        aidp_lint_list_free(&lints);
                        continue;
                }
                size_t e = check_filter(argv[i], &p) + (c.host ? check_binds(argv[i], &p) : 0);
                print_lints(argv[i], &lints, &warnings);
                if (!e)
                        printf("%s: ok: profile %s, %zu warning%s%s\n", argv[i], p.name, warnings,
                               warnings == 1 ? "" : "s", c.host ? " (checked on this host)" : "");
                errors += e;
                warnings_total += warnings;
                aidp_lint_list_free(&lints);
                aidp_profile_free(&p);
        }
        if (errors)
                return AIDP_EXIT_CONFIG;
        if (strict && warnings_total) {
                fprintf(stderr, PROG " check: %zu warning%s and --strict\n", warnings_total,
                        warnings_total == 1 ? "" : "s");
                return AIDP_EXIT_FAILED;
        }
        return 0;
}

static int cmd_explain(int argc, char **argv)
{
        struct profile_cli c = {0};
        struct aidp_cli_parsed pa;
        int rc;
        if (!aidp_cli_options(&aidp_cli_profile_explain_spec, argc, argv, &c, &pa, &rc))
                return rc;
        bool offline = c.offline;
        int first = pa.first_arg;
        struct aidp_profile_host h;
        struct aidp_profile p;
        aidp_error err = {0};
        if (aidp_profile_host_init(&h, !offline, &err) < 0)
                return aidp_cli_fail(PROG " explain", &err);
        if (aidp_profile_load(argv[first], &h.env, &p, NULL, &err) < 0) {
                aidp_profile_host_free(&h);
                return aidp_cli_fail(PROG " explain", &err);
        }
        _cleanup_free_ char *text = NULL;
        rc = aidp_profile_explain(&p, &h.env, &text, &err);
        aidp_profile_free(&p);
        aidp_profile_host_free(&h);
        if (rc < 0)
                return aidp_cli_fail(PROG " explain", &err);
        fputs(text, stdout);
        return 0;
}

static int cmd_diff(int argc, char **argv)
{
        struct profile_cli c = {0};
        struct aidp_cli_parsed pa;
        int rc;
        if (!aidp_cli_options(&aidp_cli_profile_diff_spec, argc, argv, &c, &pa, &rc))
                return rc;
        bool offline = c.offline;
        int first = pa.first_arg;
        struct aidp_profile_host h;
        struct aidp_profile a, b;
        aidp_error err = {0};
        if (aidp_profile_host_init(&h, !offline, &err) < 0)
                return aidp_cli_fail(PROG " diff", &err);
        if (aidp_profile_load(argv[first], &h.env, &a, NULL, &err) < 0) {
                aidp_profile_host_free(&h);
                return aidp_cli_fail(PROG " diff", &err);
        }
        if (aidp_profile_load(argv[first + 1], &h.env, &b, NULL, &err) < 0) {
                aidp_profile_free(&a);
                aidp_profile_host_free(&h);
                return aidp_cli_fail(PROG " diff", &err);
        }
        _cleanup_free_ char *text = NULL;
        size_t loosen = 0;
        rc = aidp_profile_diff(&a, &b, &h.env, &text, &loosen, &err);
        aidp_profile_free(&a);
        aidp_profile_free(&b);
        aidp_profile_host_free(&h);
        if (rc < 0)
                return aidp_cli_fail(PROG " diff", &err);
        fputs(text, stdout);
        return loosen ? AIDP_EXIT_FAILED : 0;
}

int aidp_cli_profile(int argc, char **argv)
{
        static const struct aidp_cli_cmd cmds[] = {
                {"list", aidp_cli_profile_list, "the library's profiles, with their limits"},
                {"check", cmd_check, "load profiles, print errors and lint warnings"},
                {"explain", cmd_explain, "the effective profile after `extends`, readable"},
                {"diff", cmd_diff, "what B loosens or tightens compared with A"},
                {"learn", aidp_cli_profile_learn,
                 "run CMD in the sandbox, record its syscalls, write an allowlist profile"},
                {NULL, NULL, NULL},
        };
        static const struct aidp_cli_group g = {.prog = PROG, .cmds = cmds};
        return aidp_cli_dispatch(&g, argc, argv);
}
