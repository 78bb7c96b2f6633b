/* `aidp profile check|explain|diff|learn`: the security team's tools. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "profiles/profile_load.h"
#include "supervisor/cli.h"
#include "supervisor/profile_env.h"

#define PROG "aidp profile"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: aidp profile check [--strict] [--offline] FILE...\n"
                "       aidp profile explain [--offline] FILE|NAME\n"
                "       aidp profile diff [--offline] A B\n"
                "       aidp profile learn [--base NAME] [--name NAME] -o OUT.yaml -- CMD [ARGS...]\n"
                "\n"
                "check    load each profile, print errors and lint warnings; exit %d on errors,\n"
                "         with --strict also exit %d on warnings\n"
                "explain  the effective profile after `extends`, readable\n"
                "diff     what B loosens or tightens compared with A; exit %d when B loosens\n"
                "learn    run CMD in the sandbox, record its syscalls, write an allowlist profile\n"
                "\n"
                "--offline  do not check devices against this host\n"
                "Names are looked up in $AIDP_PROFILE_PATH, then the installed profile library.\n",
                AIDP_EXIT_CONFIG, AIDP_EXIT_FAILED, AIDP_EXIT_FAILED);
}

static int parse_common(int argc, char **argv, bool *strict, bool *offline, int *first)
{
        static const struct option opts[] = {
                {"strict", no_argument, NULL, 's'},
                {"offline", no_argument, NULL, 'O'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        optind = 1;
        int c;
        while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        if (!strict) {
                                fprintf(stderr, PROG " %s: --strict only applies to check\n", argv[0]);
                                return AIDP_EXIT_USAGE;
                        }
                        *strict = true;
                        break;
                case 'O':
                        *offline = true;
                        break;
                case 'h':
                        usage(stdout);
                        return -1;
                default:
                        usage(stderr);
                        return AIDP_EXIT_USAGE;
                }
        }
        *first = optind;
        return 0;
}

static void print_lints(const char *file, const struct aidp_lint_list *l, size_t *warnings)
{
        for (size_t i = 0; i < l->n; i++) {
                const struct aidp_lint *it = &l->items[i];
                printf("%s: %s: %s [%s]\n", it->where[0] ? it->where : file, aidp_lint_level_name(it->level), it->msg,
                       it->code);
                if (it->level == AIDP_LINT_WARNING)
                        (*warnings)++;
        }
}

static int cmd_check(int argc, char **argv)
{
        bool strict = false, offline = false;
        int first, rc = parse_common(argc, argv, &strict, &offline, &first);
        if (rc)
                return rc < 0 ? 0 : rc;
        if (first >= argc) {
                fprintf(stderr, PROG " check: expected at least one FILE\n");
                return AIDP_EXIT_USAGE;
        }
        size_t errors = 0, warnings_total = 0;
        for (int i = first; i < argc; i++) {
                struct aidp_profile p;
                struct aidp_lint_list lints = {0};
                aidp_error err = {0};
                size_t warnings = 0;
                if (aidp_profile_host_load(argv[i], !offline, &p, &lints, &err) < 0) {
                        fprintf(stderr, "%s: error: %s\n", argv[i], err.msg);
                        errors++;
                        aidp_lint_list_free(&lints);
                        continue;
                }
                print_lints(argv[i], &lints, &warnings);
                printf("%s: ok: profile %s, %zu warning%s\n", argv[i], p.name, warnings, warnings == 1 ? "" : "s");
                warnings_total += warnings;
                aidp_lint_list_free(&lints);
                aidp_profile_free(&p);
        }
        if (errors)
                return AIDP_EXIT_CONFIG;
        if (strict && warnings_total) {
                fprintf(stderr, PROG " check: %zu warning%s and --strict\n", warnings_total, warnings_total == 1 ? "" : "s");
                return AIDP_EXIT_FAILED;
        }
        return 0;
}

static int cmd_explain(int argc, char **argv)
{
        bool offline = false;
        int first, rc = parse_common(argc, argv, NULL, &offline, &first);
        if (rc)
                return rc < 0 ? 0 : rc;
        if (argc - first != 1) {
                fprintf(stderr, PROG " explain: expected one FILE or NAME\n");
                return AIDP_EXIT_USAGE;
        }
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
        bool offline = false;
        int first, rc = parse_common(argc, argv, NULL, &offline, &first);
        if (rc)
                return rc < 0 ? 0 : rc;
        if (argc - first != 2) {
                fprintf(stderr, PROG " diff: expected two profiles, A and B\n");
                return AIDP_EXIT_USAGE;
        }
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
        if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? AIDP_EXIT_USAGE : 0;
        }
        if (!strcmp(argv[1], "check"))
                return cmd_check(argc - 1, argv + 1);
        if (!strcmp(argv[1], "explain"))
                return cmd_explain(argc - 1, argv + 1);
        if (!strcmp(argv[1], "diff"))
                return cmd_diff(argc - 1, argv + 1);
        fprintf(stderr, PROG ": unknown subcommand '%s'\n", argv[1]);
        usage(stderr);
        return AIDP_EXIT_USAGE;
}
