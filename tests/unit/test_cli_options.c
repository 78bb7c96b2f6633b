/* The command-line tables (supervisor/cli/options.h): every option kind, bad
 * values (exit 120 naming the option), the usage-error format, --help and
 * --version of both binaries, the trust check and the environment table; the
 * size units they share with profiles (profiles/units.h); the path helpers
 * (common/path.h). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/exitcodes.h"
#include "common/path.h"
#include "profiles/units.h"
#include "runner.h"
#include "supervisor/cli/cli_supervisor.h"
#include "supervisor/cli/options.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"

struct t {
        bool flag;
        const char *str;
        uint64_t size, cpu, dur, n;
        struct aidp_cli_list list;
        int custom;
};

static int parse_custom(const char *arg, void *dest, aidp_error *err)
{
        (void)err;
        if (strcmp(arg, "yes"))
                return -EINVAL;
        ((struct t *)dest)->custom++;
        return 0;
}

static enum aidp_trust_level str_trust(const char *arg)
{
        return strchr(arg, '=') ? AIDP_TRUST_USER : AIDP_TRUST_ADMIN;
}

#define T(f) offsetof(struct t, f)
static const struct aidp_cli_opt opts[] = {
        AIDP_CLI_OPT("flag", 'f', AIDP_CLI_FLAG, T(flag), NULL, "a flag", AIDP_TRUST_USER),
        AIDP_CLI_OPT("str", 's', AIDP_CLI_STRING, T(str), "S", "a string", AIDP_TRUST_USER,
                     .trust_of = str_trust),
        AIDP_CLI_OPT("size", 0, AIDP_CLI_SIZE, T(size), "SIZE", "a size", AIDP_TRUST_USER,
                     .min = 4096),
        AIDP_CLI_OPT("cpu", 0, AIDP_CLI_CPU, T(cpu), "N", "cpus", AIDP_TRUST_USER),
        AIDP_CLI_OPT("dur", 0, AIDP_CLI_DURATION, T(dur), "D", "a duration", AIDP_TRUST_ADMIN,
                     .min = 1, .max = 3600, .expect = "a duration of 1s to 1h"),
        AIDP_CLI_OPT("n", 'n', AIDP_CLI_UINT, T(n), "N", "a number\nsecond line", AIDP_TRUST_USER),
        AIDP_CLI_OPT("item", 'i', AIDP_CLI_LIST, T(list), "X", "repeatable", AIDP_TRUST_USER,
                     .max = 2),
        AIDP_CLI_OPT("custom", 0, AIDP_CLI_CUSTOM, 0, "yes", "custom", AIDP_TRUST_TEST_BUILD,
                     .parse = parse_custom),
        {0},
};
static const struct aidp_cli_spec spec = {
        .prog = "aidp test",
        .synopsis = "[OPTIONS] FILE...",
        .opts = opts,
        .min_args = 1,
        .max_args = 2,
        .args = "one or two FILEs",
};

static int parse(struct t *o, struct aidp_cli_parsed *p, aidp_error *err, char **argv)
{
        int argc = 0;
        while (argv[argc])
                argc++;
        memset(o, 0, sizeof *o);
        memset(err, 0, sizeof *err);
        return aidp_cli_parse(&spec, argc, argv, o, p, err);
}

Test(cli_options, every_kind_lands_in_its_field)
{
        struct t o;
        struct aidp_cli_parsed p;
        aidp_error err;
        char *argv[] = {"test",     "-f",       "--str", "x=1",  "--size", "8G", "--cpu",
                        "1.5",      "--dur",    "1h",    "-n",   "42",     "-i", "a",
                        "--item=b", "--custom", "yes",   "FILE", NULL};
        cr_assert_eq(parse(&o, &p, &err, argv), 0, "%s", err.msg);
        cr_expect(o.flag);
        cr_expect_str_eq(o.str, "x=1");
        cr_expect_eq(o.size, 8ULL << 30);
        cr_expect_eq(o.cpu, 1500);
        cr_expect_eq(o.dur, 3600);
        cr_expect_eq(o.n, 42);
        cr_assert_eq(o.list.n, 2);
        cr_expect_str_eq(o.list.v[0], "a");
        cr_expect_str_eq(o.list.v[1], "b");
        cr_expect_eq(o.custom, 1);
        cr_expect_eq(p.first_arg, 17);
        cr_expect_eq(p.n_args, 1);
        for (int i = 0; i < 8; i++)
                cr_expect_eq(p.count[i], i == 6 ? 2 : 1, "option %d counted %u times", i,
                             p.count[i]);
        aidp_cli_list_free(&o.list);
}

Test(cli_options, operands_may_come_first_unless_in_order)
{
        struct t o;
        struct aidp_cli_parsed p;
        aidp_error err;
        char *argv[] = {"test", "A", "-f", "B", NULL};
        cr_assert_eq(parse(&o, &p, &err, argv), 0, "%s", err.msg);
        cr_expect(o.flag);
        cr_expect_eq(p.n_args, 2);
        cr_expect_str_eq(argv[p.first_arg], "A");
        /* run's table stops at the job: its options are the job's */
        char *run[] = {"run", "-q", "--", "sh", "-q", NULL};
        void *dest = calloc(1, 1 << 16); /* larger than struct run_cli */
        cr_assert_eq(aidp_cli_parse(&aidp_cli_run_spec, 5, run, dest, &p, &err), 0, "%s", err.msg);
        cr_expect_eq(p.first_arg, 3);
        free(dest);
}

static int run_index(const char *name)
{
        for (int i = 0; aidp_cli_run_spec.opts[i].name; i++)
                if (!strcmp(aidp_cli_run_spec.opts[i].name, name))
                        return i;
        return -100;
}

/* What each token was, for aidp-run, which passes run's options on minus its
 * own: an option's value is its value even when it looks like an option or
 * is "--"; a cluster of short options is one token; the "--" that ends the
 * options is told apart; the job's tokens are operands. */
Test(cli_options, parse_at_says_what_each_token_was)
{
        struct aidp_cli_parsed p;
        aidp_error err = {0};
        char *run[] = {"run", "--job-name", "--detach", "-qq",   "--memory=8G", "--cwd",
                       "--",  "--",         "echo",     "--out", "x",           NULL};
        int at[11];
        void *dest = calloc(1, 1 << 16);
        cr_assert_eq(aidp_cli_parse_at(&aidp_cli_run_spec, 11, run, dest, &p, at, &err), 0, "%s",
                     err.msg);
        free(dest);
        int want[] = {AIDP_CLI_AT_OPERAND, run_index("job-name"), AIDP_CLI_AT_VALUE,
                      run_index("quiet"),  run_index("memory"),   run_index("cwd"),
                      AIDP_CLI_AT_VALUE,   AIDP_CLI_AT_END,       AIDP_CLI_AT_OPERAND,
                      AIDP_CLI_AT_OPERAND, AIDP_CLI_AT_OPERAND};
        for (int k = 0; k < 11; k++)
                cr_expect_eq(at[k], want[k], "token %d (%s): %d, not %d", k, run[k], at[k],
                             want[k]);
        cr_expect_eq(p.first_arg, 8);
        cr_expect_eq(p.count[run_index("quiet")], 2);
}

/* AIDP_* in the job is aidp's own: --env naming one is a usage error for
 * every caller, named, and a variable of the caller's own still parses. */
Test(cli_options, env_of_aidps_own_names_is_refused)
{
        struct aidp_cli_parsed p;
        aidp_error err = {0};
        struct aidp_cli_run *dest = calloc(1, sizeof *dest);
        char *bad[] = {"run", "--env", "AIDP_RUN_ID=fake", "--", "env", NULL};
        cr_expect_lt(aidp_cli_parse(&aidp_cli_run_spec, 5, bad, dest, &p, &err), 0);
        cr_expect_eq(err.status, AIDP_EXIT_USAGE);
        cr_expect(strstr(err.msg, "--env AIDP_RUN_ID: ") == err.msg, "%s", err.msg);
        char *bare[] = {"run", "--env", "AIDP_DATA_DIR", "--", "env", NULL};
        cr_expect_lt(aidp_cli_parse(&aidp_cli_run_spec, 5, bare, dest, &p, &err), 0);
        cr_expect(strstr(err.msg, "--env AIDP_DATA_DIR: ") == err.msg, "%s", err.msg);
        aidp_cli_list_free(&dest->env);
        char *ok[] = {"run", "--env", "AIDPX=1", "--", "env", NULL};
        cr_expect_eq(aidp_cli_parse(&aidp_cli_run_spec, 5, ok, dest, &p, &err), 0, "%s", err.msg);
        cr_expect_eq(dest->env.n, 1);
        aidp_cli_list_free(&dest->env);
        free(dest);
}

static void expect_usage(char **argv, const char *needle)
{
        struct t o;
        struct aidp_cli_parsed p;
        aidp_error err;
        int r = parse(&o, &p, &err, argv);
        cr_expect_lt(r, 0, "%s accepted", needle);
        cr_expect_eq(err.status, AIDP_EXIT_USAGE, "%s: status %d", needle, err.status);
        cr_expect(strstr(err.msg, needle) != NULL, "'%s' not in '%s'", needle, err.msg);
        aidp_cli_list_free(&o.list);
}

Test(cli_options, bad_values_are_usage_errors_naming_the_option)
{
        expect_usage((char *[]){"t", "--size", "12XB", "F", NULL},
                     "--size '12XB': expected a size");
        expect_usage((char *[]){"t", "--size", "1K", "F", NULL}, "--size '1K'"); /* below min */
        expect_usage((char *[]){"t", "--cpu", "lots", "F", NULL}, "--cpu 'lots'");
        expect_usage((char *[]){"t", "--dur", "2h", "F", NULL},
                     "--dur '2h': expected a duration of 1s to 1h");
        expect_usage((char *[]){"t", "--dur", "-5", "F", NULL}, "--dur '-5'");
        expect_usage((char *[]){"t", "-n", "-1", "F", NULL}, "--n '-1'");
        expect_usage((char *[]){"t", "-n", "0x10", "F", NULL}, "--n '0x10'");
        expect_usage((char *[]){"t", "--custom", "no", "F", NULL}, "--custom 'no'");
        expect_usage((char *[]){"t", "--str", "", "F", NULL}, "--str: empty S");
        expect_usage((char *[]){"t", "-i", "a", "-i", "b", "-i", "c", "F", NULL},
                     "--item: at most 2");
        expect_usage((char *[]){"t", "--bogus", "F", NULL}, "unknown option '--bogus'");
        expect_usage((char *[]){"t", "-z", "F", NULL}, "unknown option '-z'");
        expect_usage((char *[]){"t", "F", "--size", NULL}, "--size needs an argument (SIZE)");
        expect_usage((char *[]){"t", "F", "-n", NULL}, "--n needs an argument (N)");
        expect_usage((char *[]){"t", NULL}, "missing one or two FILEs");
        expect_usage((char *[]){"t", "A", "B", "C", NULL}, "unexpected argument 'C'");
}

Test(cli_options, help_stops_parsing_and_lists_every_option)
{
        struct t o;
        struct aidp_cli_parsed p;
        aidp_error err;
        cr_expect_eq(parse(&o, &p, &err, (char *[]){"t", "--help", "--bogus", NULL}), 1);
        cr_expect_eq(parse(&o, &p, &err, (char *[]){"t", "-h", NULL}), 1);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        aidp_cli_help(&spec, f);
        fclose(f);
        cr_expect(strstr(text, "usage: aidp test [OPTIONS] FILE...\n") != NULL, "%s", text);
        cr_expect(strstr(text, "  -f, --flag") != NULL, "%s", text);
        cr_expect(strstr(text, "  --size SIZE") != NULL, "%s", text);
        cr_expect(strstr(text, "a number\n                          second line\n") != NULL,
                  "continuation lines are indented: %s", text);
        cr_expect(strstr(text, "  -h, --help") != NULL, "%s", text);
        free(text);
}

Test(cli_options, trust_levels_are_checked_per_caller)
{
        struct t o;
        struct aidp_cli_parsed p;
        aidp_error err = {0};
        cr_assert_eq(parse(&o, &p, &err, (char *[]){"t", "--str", "a=b", "-f", "F", NULL}), 0);
        cr_expect_eq(aidp_cli_check_trust(&spec, &p, AIDP_CALLER_USER, false, &err), 0);
        /* a value that needs more than the option: a bare NAME */
        cr_assert_eq(parse(&o, &p, &err, (char *[]){"t", "--str", "NAME", "F", NULL}), 0);
        cr_expect_eq(p.level[1], AIDP_TRUST_ADMIN);
        cr_expect_eq(aidp_cli_check_trust(&spec, &p, AIDP_CALLER_USER, false, &err), -EPERM);
        cr_expect_eq(err.status, AIDP_EXIT_USAGE);
        cr_expect(strstr(err.msg, "--str with this value is admin-only") != NULL, "%s", err.msg);
        cr_expect_eq(aidp_cli_check_trust(&spec, &p, AIDP_CALLER_ADMIN, false, &err), 0);
        cr_assert_eq(parse(&o, &p, &err, (char *[]){"t", "--dur", "5s", "F", NULL}), 0);
        cr_expect_lt(aidp_cli_check_trust(&spec, &p, AIDP_CALLER_USER, false, &err), 0);
        cr_expect(strstr(err.msg, "--dur is admin-only") != NULL, "%s", err.msg);
        cr_assert_eq(parse(&o, &p, &err, (char *[]){"t", "--custom", "yes", "F", NULL}), 0);
        cr_expect_lt(aidp_cli_check_trust(&spec, &p, AIDP_CALLER_ADMIN, false, &err), 0);
        cr_expect(strstr(err.msg, "test hook") != NULL, "%s", err.msg);
        cr_expect_lt(aidp_cli_check_trust(&spec, &p, AIDP_CALLER_USER, true, &err), 0);
        cr_expect_eq(aidp_cli_check_trust(&spec, &p, AIDP_CALLER_ADMIN, true, &err), 0);
}

/* run's table by value: a profile file and a bare --env NAME are the
 * admin's; a user's refusal names the form a user may give. */
Test(cli_options, run_table_refuses_a_users_admin_forms_naming_theirs)
{
        static const struct {
                const char *opt, *val, *gives;
        } admin[] = {{"--profile", "./mine.yaml", "give --profile NAME"},
                     {"--profile", "/etc/passwd", "give --profile NAME"},
                     {"--profile", "gpu.yml", "give --profile NAME"},
                     {"--env", "HOME", "give --env NAME=VALUE"}},
          user[] = {{"--profile", "gpu-train", NULL}, {"--env", "A=b", NULL}};
        for (size_t i = 0; i < sizeof admin / sizeof *admin + sizeof user / sizeof *user; i++) {
                bool adm = i < sizeof admin / sizeof *admin;
                const char *opt = adm ? admin[i].opt : user[i - sizeof admin / sizeof *admin].opt;
                const char *val = adm ? admin[i].val : user[i - sizeof admin / sizeof *admin].val;
                struct aidp_cli_run c = {0};
                struct aidp_cli_parsed p;
                aidp_error err = {0};
                char *av[] = {"run", (char *)opt, (char *)val, "--", "true", NULL};
                cr_assert_eq(aidp_cli_parse(&aidp_cli_run_spec, 5, av, &c, &p, &err), 0, "%s",
                             err.msg);
                int r = aidp_cli_check_trust(&aidp_cli_run_spec, &p, AIDP_CALLER_USER, false, &err);
                cr_expect_eq(r < 0, adm, "%s %s: %d %s", opt, val, r, err.msg);
                if (adm)
                        cr_expect(strstr(err.msg, admin[i].gives) != NULL, "%s", err.msg);
                cr_expect_eq(aidp_cli_check_trust(&aidp_cli_run_spec, &p, AIDP_CALLER_ADMIN, false,
                                                  &err),
                             0);
                aidp_cli_list_free(&c.env);
        }
}

/* Issue 13's list: admin-only for users; and issue 17's exec-hook options, which
 * assert the scheduler's ids in lineage. */
Test(cli_options, run_table_classifies_issue_13s_admin_options)
{
        static const char *const admin[] = {
                "run-dir", "lineage",  "cgroup-parent", "keys-config", "key-dir", "run-id",
                "user",    "keep-env", "exec-hook",     "scheduler",   "job-id",  "step-id"};
        static const char *const limits[] = {"memory",     "cpus",     "pids",   "timeout",
                                             "kill-after", "tmp-size", "rlimit", "scratch-size",
                                             "out-size",   "shm-size"};
        const struct aidp_cli_opt *t = aidp_cli_run_spec.opts;
        size_t n_admin = 0, n_limits = 0;
        for (size_t i = 0; t[i].name; i++) {
                bool want_admin = false, want_limit = false;
                for (size_t k = 0; k < sizeof admin / sizeof *admin; k++)
                        want_admin |= !strcmp(t[i].name, admin[k]);
                for (size_t k = 0; k < sizeof limits / sizeof *limits; k++)
                        want_limit |= !strcmp(t[i].name, limits[k]);
                cr_expect_eq(t[i].trust, want_admin ? AIDP_TRUST_ADMIN : AIDP_TRUST_USER,
                             "--%s is %s", t[i].name, aidp_cli_trust_name(t[i].trust));
                cr_expect_eq(t[i].limit, want_limit, "--%s limit", t[i].name);
                cr_expect(t[i].help && t[i].help[0], "--%s has no help", t[i].name);
                n_admin += want_admin;
                n_limits += want_limit;
        }
        cr_expect_eq(n_admin, sizeof admin / sizeof *admin, "an admin option left the table");
        cr_expect_eq(n_limits, sizeof limits / sizeof *limits);
        cr_expect_eq(aidp_cli_gc_spec.opts[0].trust, AIDP_TRUST_ADMIN);
}

Test(cli_options, environment_table)
{
        /* Configuration is read only by the test build (a scheduler may hand
         * the production supervisor a job's environment: docs/security.md). */
        static const char *const config[] = {
                "AIDP_POLICY_DIR", "AIDP_PROFILE_PATH",  "AIDP_LINEAGE_FILE", "AIDP_LINEAGE_KEY",
                "AIDP_RUN_DIR",    "AIDP_SYSLOG_SOCKET", "AIDP_KEYS_CONFIG"};
        for (size_t i = 0; i < sizeof config / sizeof *config; i++) {
                const struct aidp_cli_env *e = aidp_cli_env_find(config[i]);
                cr_assert_not_null(e, "%s is not in the table", config[i]);
                cr_expect_eq(e->trust, AIDP_TRUST_TEST_BUILD, "%s", config[i]);
        }
        cr_expect_eq(aidp_cli_env_find("SLURM_JOB_UID")->trust, AIDP_TRUST_ADMIN);
        const struct aidp_cli_env *e = aidp_cli_env_find("AIDP_FAULT_STOP_AT");
        cr_assert_not_null(e);
        cr_expect_eq(e->trust, AIDP_TRUST_TEST_BUILD);
        cr_expect_eq(aidp_cli_env_find("AIDP_TIMING")->trust, AIDP_TRUST_ADMIN);
        cr_expect_eq(aidp_cli_env_find("SLURM_NTASKS")->trust, AIDP_TRUST_USER);
        cr_expect_eq(aidp_cli_env_find("SUDO_UID")->trust, AIDP_TRUST_USER);
        cr_expect_null(aidp_cli_env_find("HOME_NOT_READ"));

        char *env[] = {"HOME=/root", "SUDO_UID=1000", "LC_ALL=C", NULL};
        aidp_error err = {0};
        cr_expect_eq(
                aidp_cli_check_env(env, AIDP_CLI_BIN_SUPERVISOR, AIDP_CALLER_USER, false, &err), 0,
                "%s", err.msg);
        char *bad[] = {"SUDO_UID=1000", "AIDP_RUN_DIR=/tmp/x", NULL};
        cr_expect_lt(
                aidp_cli_check_env(bad, AIDP_CLI_BIN_SUPERVISOR, AIDP_CALLER_USER, false, &err), 0);
        cr_expect(strstr(err.msg, "AIDP_RUN_DIR is a test hook") != NULL, "%s", err.msg);
        cr_expect_lt(
                aidp_cli_check_env(bad, AIDP_CLI_BIN_SUPERVISOR, AIDP_CALLER_ADMIN, false, &err),
                0);
        cr_expect_eq(
                aidp_cli_check_env(bad, AIDP_CLI_BIN_SUPERVISOR, AIDP_CALLER_ADMIN, true, &err), 0);
        /* AIDP_RUN_DIR is read by the supervisor only */
        cr_expect_eq(aidp_cli_check_env(bad, AIDP_CLI_BIN_AIDP, AIDP_CALLER_USER, false, &err), 0);
        char *hook[] = {"AIDP_FAULT_STOP_AT=job", NULL};
        cr_expect_lt(
                aidp_cli_check_env(hook, AIDP_CLI_BIN_SUPERVISOR, AIDP_CALLER_ADMIN, false, &err),
                0);
        cr_expect(strstr(err.msg, "test hook") != NULL, "%s", err.msg);
        cr_expect_eq(
                aidp_cli_check_env(hook, AIDP_CLI_BIN_SUPERVISOR, AIDP_CALLER_ADMIN, true, &err),
                0);
}

Test(cli_options, usage_error_is_the_error_and_one_line, .init = cr_redirect_stderr)
{
        cr_expect_eq(aidp_cli_usage_error("aidp seal", "missing %s", "-o OUT"), AIDP_EXIT_USAGE);
        fflush(stderr);
        cr_expect_stderr_eq_str("aidp seal: error: missing -o OUT\n"
                                "Try 'aidp seal --help' for more information.\n");
}

static struct aidp_proc P;

static void expect_binary_usage_error(char *const argv[], const char *prog, const char *msg)
{
        cr_expect_eq(aidp_test_run(&P, argv), AIDP_EXIT_USAGE, "%s %s: %s", argv[0], argv[1],
                     P.err);
        char want[512];
        snprintf(want, sizeof want, "%s: error: %s\nTry '%s --help' for more information.\n", prog,
                 msg, prog);
        cr_expect_str_eq(P.err, want);
        cr_expect_str_eq(P.out, "");
}

Test(cli_options, binaries_print_one_usage_line_and_their_version)
{
        char *v1[] = {AIDP_SUPERVISOR, "--version", NULL};
        cr_expect_eq(aidp_test_run(&P, v1), 0);
        cr_expect(!strncmp(P.out, "aidp-supervisor ", 16), "%s", P.out);
        char *v3[] = {AIDP_SOURCE_DIR "/scripts/aidp-run", "--version", NULL};
        setenv("AIDP_SUPERVISOR", AIDP_SUPERVISOR, 1); /* this build's, wherever it is */
        cr_expect_eq(aidp_test_run(&P, v3), 0);
        unsetenv("AIDP_SUPERVISOR");
        cr_expect(!strncmp(P.out, "aidp-supervisor ", 16), "aidp-run --version: %s", P.out);
        char *v2[] = {AIDP_TOOL, "--version", NULL};
        cr_expect_eq(aidp_test_run(&P, v2), 0);
        cr_expect(!strncmp(P.out, "aidp ", 5), "%s", P.out);

        expect_binary_usage_error(
                (char *[]){AIDP_SUPERVISOR, "run", "--memory", "12XB", "--", "true", NULL},
                "aidp-supervisor run",
                "--memory '12XB': expected a size such as 512M or 8G (at "
                "least 4K)");
        expect_binary_usage_error((char *[]){AIDP_SUPERVISOR, "frobnicate", NULL},
                                  "aidp-supervisor", "unknown command 'frobnicate'");
        expect_binary_usage_error((char *[]){AIDP_SUPERVISOR, "gc", "--bogus", NULL},
                                  "aidp-supervisor gc", "unknown option '--bogus'");
        expect_binary_usage_error((char *[]){AIDP_TOOL, NULL}, "aidp", "missing COMMAND");
        expect_binary_usage_error((char *[]){AIDP_TOOL, "seal", "--bogus", NULL}, "aidp seal",
                                  "unknown option '--bogus'");
        expect_binary_usage_error((char *[]){AIDP_TOOL, "profile", "explain", NULL},
                                  "aidp profile explain", "missing one FILE or NAME");
        expect_binary_usage_error((char *[]){AIDP_TOOL, "lineage", "show", "--run", NULL},
                                  "aidp lineage show", "--run needs an argument (ID)");
        expect_binary_usage_error(
                (char *[]){AIDP_TOOL, "policy", "explain", "--at", "x", "--user", "a", NULL},
                "aidp policy explain",
                "--at 'x': expected now, @EPOCH or YYYY-MM-DDTHH:MM:SS "
                "followed by Z or +HH:MM");

        char *h[] = {AIDP_SUPERVISOR, "run", "--help", NULL};
        cr_expect_eq(aidp_test_run(&P, h), 0);
        cr_expect(strstr(P.out, "8G = 8g = 8Gi") != NULL, "units not explained: %s", P.out);
        cr_expect(strstr(P.out, "--run-dir DIR") != NULL, "%s", P.out);
}

/* aidp-run forwards each --out=DIR as two arguments: many of them fit (the
 * ASan build catches a write past its array) and reach the daemon's socket,
 * here one that is not there: the unreachable error, nothing else. */
Test(cli_options, aidp_run_forwards_many_out_options_whole)
{
        char *a[40] = {AIDP_BINARY_DIR "/aidp-run", "--socket", "/nonexistent/aidp-test.sock",
                       "--no-cwd"};
        int n = 4;
        for (int i = 0; i < 24; i++)
                a[n++] = "--out=/tmp";
        a[n++] = "true";
        a[n] = NULL;
        cr_expect_eq(aidp_test_run(&P, a), AIDP_EXIT_INTERNAL, "%s", P.err);
        cr_expect(strstr(P.err, "cannot reach the aidp daemon at /nonexistent/aidp-test.sock"),
                  "%s", P.err);
        cr_expect_null(strstr(P.err, "AddressSanitizer"), "%s", P.err);
}

Test(units, sizes_follow_docker_systemd_and_slurm)
{
        static const struct {
                const char *s;
                uint64_t v;
        } ok[] = {
                {"0", 0},
                {"4096", 4096},
                {"8G", 8ULL << 30},
                {"8g", 8ULL << 30},
                {"8Gi", 8ULL << 30},
                {"8GiB", 8ULL << 30},
                {"8GB", 8000000000ULL},
                {"8gb", 8000000000ULL},
                {"512m", 512ULL << 20},
                {"512M", 512ULL << 20},
                {"512MB", 512000000ULL},
                {"1.5G", 3ULL << 29},
                {"2k", 2048},
                {"2KB", 2000},
                {"1T", 1ULL << 40},
                {"1TB", 1000000000000ULL},
                {"10b", 10},
        };
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
                uint64_t v = 1;
                cr_expect_eq(aidp_profiles_parse_size(ok[i].s, &v), 0, "%s refused", ok[i].s);
                cr_expect_eq(v, ok[i].v, "%s = %llu", ok[i].s, (unsigned long long)v);
        }
        static const char *const bad[] = {"",
                                          "G",
                                          "8X",
                                          "8GG",
                                          "8 G",
                                          "-1",
                                          "1.0000000001G",
                                          "1.5B",
                                          "8Gx",
                                          "99999999999999999999"};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                uint64_t v;
                cr_expect_lt(aidp_profiles_parse_size(bad[i], &v), 0, "'%s' accepted", bad[i]);
        }
}

Test(path, one_clean_absolute_path_rule)
{
        static const char *const clean[] = {"/", "/a", "/a/b", "/a.b/..c/...", "/a/.b"};
        static const char *const dirty[] = {"",      "a",     "a/b",   "//",  "/a/.", "/a/./b",
                                            "/a/..", "/../a", "/a//b", "/a/", ".",    "/."};
        for (size_t i = 0; i < sizeof clean / sizeof *clean; i++)
                cr_expect(aidp_path_is_clean_abs(clean[i]), "%s refused", clean[i]);
        for (size_t i = 0; i < sizeof dirty / sizeof *dirty; i++)
                cr_expect(!aidp_path_is_clean_abs(dirty[i]), "'%s' accepted", dirty[i]);
        cr_expect(!aidp_path_is_clean_abs(NULL));
        char longp[AIDP_PATH_CLEAN_MAX + 2];
        memset(longp, 'a', sizeof longp - 1);
        longp[0] = '/';
        longp[sizeof longp - 1] = '\0';
        cr_expect(!aidp_path_is_clean_abs(longp), "over AIDP_PATH_CLEAN_MAX accepted");
}

Test(path, join_never_truncates)
{
        char out[16];
        cr_expect_eq(aidp_path_join(out, sizeof out, "/run/aidp", "x"), 0);
        cr_expect_str_eq(out, "/run/aidp/x");
        cr_expect_eq(aidp_path_join(out, sizeof out, "/run/", "/x"), 0);
        cr_expect_str_eq(out, "/run/x");
        cr_expect_eq(aidp_path_join(out, sizeof out, "/", "etc"), 0);
        cr_expect_str_eq(out, "/etc");
        cr_expect_eq(aidp_path_join(out, sizeof out, "/run/aidp", "abcde"), 0); /* 15 + NUL */
        cr_expect_str_eq(out, "/run/aidp/abcde");
        cr_expect_eq(aidp_path_join(out, sizeof out, "/run/aidp", "abcdef"), -ENAMETOOLONG);
        cr_expect_str_eq(out, "", "a truncated path was left: %s", out);
        cr_expect_eq(aidp_path_join(out, 0, "/", "x"), -ENAMETOOLONG);
}
