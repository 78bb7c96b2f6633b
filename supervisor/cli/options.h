#pragma once
/* Command-line tables: one table per command, one parser, one help printer, one
 * usage-error format, one subcommand dispatcher, and the trust level of every
 * option and environment variable of both binaries (docs/security.md).
 *
 * A command describes itself with a `struct aidp_cli_spec` whose `opts` table
 * (terminated by an entry with name NULL) says for each option: its long name,
 * optional short letter, argument kind and destination (`offsetof` into the
 * command's own options struct), help text, and the trust level a caller needs to
 * use it. `--help`/`-h` is added to every table by the parser.
 *
 *     struct gc_cli { const char *run_dir; };
 *     static const struct aidp_cli_opt gc_opts[] = {
 *             AIDP_CLI_OPT("run-dir", 0, AIDP_CLI_STRING, offsetof(struct gc_cli, run_dir),
 *                          "DIR", "run journals", AIDP_TRUST_ADMIN),
 *             {0}};
 *     static const struct aidp_cli_spec gc_spec = {.prog = "aidp-supervisor gc",
 *             .synopsis = "[--run-dir DIR]", .opts = gc_opts, .max_args = 0};
 *
 *     struct gc_cli o = {0};
 *     struct aidp_cli_parsed p;
 *     int status;
 *     if (!aidp_cli_options(&gc_spec, argc, argv, &o, &p, &status))
 *             return status;   (help printed: 0; usage error printed: 120)
 *
 * After parsing, `p.count[i]` says how often `opts[i]` was given and `p.level[i]`
 * the trust level its values needed (an option's `trust`, raised by `trust_of`
 * for values such as a bare `--env NAME`). That is all the trust check needs:
 *
 *     if (aidp_cli_check_trust(&spec, &p, caller_kind, test_build, &err) < 0)
 *             return aidp_cli_usage_fail(spec.prog, &err);
 *
 * Options marked `.limit` are user-level but may only lower what the profile
 * sets; that part is checked once the profile is loaded (run/resolve), because it
 * needs the profile. Operands (a positional FILE) are not in the table: a path a
 * user names is opened with the user's own credentials wherever it is used.
 *
 * Environment variables: `aidp_cli_env_table` lists every variable either binary
 * reads, with the same trust levels; `aidp_cli_env_find` looks one up and
 * `aidp_cli_check_env` refuses variables set above the caller's level. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"

/* Who may use an option or variable. A *user* caller is anyone but root running
 * the supervisor directly (sudo today, the daemon later); an *admin* is root
 * running it directly (a trusted wrapper or scheduler component). */
enum aidp_trust_level {
        AIDP_TRUST_USER,       /* anyone may use it */
        AIDP_TRUST_ADMIN,      /* admin callers only */
        AIDP_TRUST_TEST_BUILD, /* only a test build reads it, and only for admins */
        AIDP_TRUST_LEVEL_MAX
};

enum aidp_caller_kind {
        AIDP_CALLER_ADMIN, /* root started the binary directly */
        AIDP_CALLER_USER,  /* an unprivileged person (sudo, daemon) */
        AIDP_CALLER_KIND_MAX
};

enum aidp_cli_kind {
        AIDP_CLI_FLAG,     /* no argument; bool field set to true */
        AIDP_CLI_STRING,   /* const char * field (points into argv) */
        AIDP_CLI_SIZE,     /* uint64_t bytes: 512M, 8G = 8Gi, 8GB = 8x10^9 (profiles/units.h) */
        AIDP_CLI_CPU,      /* uint64_t millicpus: 2, 1.5, 500m */
        AIDP_CLI_DURATION, /* uint64_t seconds: 90s, 2h, 1h30m */
        AIDP_CLI_UINT,     /* uint64_t, decimal */
        AIDP_CLI_LIST,     /* struct aidp_cli_list: repeatable, in order given */
        AIDP_CLI_CUSTOM,   /* parse(arg, dest, err) on the whole options struct */
        AIDP_CLI_KIND_MAX
};

struct aidp_cli_opt {
        const char *name; /* long name without "--"; NULL ends the table */
        char short_name;  /* 0: none */
        enum aidp_cli_kind kind;
        size_t offset;    /* of the field in the command's options struct */
        const char *arg;  /* metavariable in help and errors ("SIZE"); NULL for flags */
        const char *help; /* may hold '\n' for continuation lines */
        enum aidp_trust_level trust;
        /* numeric kinds: inclusive bounds (max 0: none); LIST: max = most entries */
        uint64_t min, max;
        const char *expect; /* "a size such as 512M or 8G": what a bad value is told */
        bool limit;         /* user-level, but may only lower the profile's value */
        bool local; /* names a descriptor of the caller's own process: not through the daemon */
        int (*parse)(const char *arg, void *dest, aidp_error *err); /* CUSTOM */
        /* optional: the level a particular value needs (>= trust wins) */
        enum aidp_trust_level (*trust_of)(const char *arg);
        /* optional: what a user's help (aidp-run's) shows instead of arg and
         * help: with trust_of, the forms a user may give ("NAME" of
         * "NAME|FILE"; a user's refusal names them too); help without what
         * only an admin may do */
        const char *user_arg, *user_help;
};

/* One table entry: the fixed part positionally, then designated extras
 * (.min, .max, .expect, .limit, .parse, .trust_of, .user_arg, .user_help). */
#define AIDP_CLI_OPT(name_, short_, kind_, offset_, arg_, help_, trust_, ...)                      \
        {                                                                                          \
                .name = (name_), .short_name = (short_), .kind = (kind_), .offset = (offset_),     \
                .arg = (arg_), .help = (help_), .trust = (trust_), __VA_ARGS__                     \
        }

struct aidp_cli_spec {
        const char *prog;     /* "aidp-supervisor run": prefix of errors and help */
        const char *synopsis; /* after prog in the usage line; '\n' starts another form */
        const char *about;    /* paragraph after the usage line; may be NULL */
        const struct aidp_cli_opt *opts;
        const char *footer;     /* printed after the options; may be NULL */
        bool in_order;          /* stop at the first operand (a job's argv follows) */
        int min_args, max_args; /* operand count; max_args < 0: no limit */
        const char *args;       /* what the operands are, for errors: "one FILE.sealed" */
};

#define AIDP_CLI_MAX_OPTS  64
#define AIDP_CLI_MAX_BINDS 64 /* --ro-bind/--bind per run */

/* The footer of every command that takes sizes. */
#define AIDP_CLI_UNITS_HELP                                                                        \
        "Sizes follow docker, systemd and Slurm: K, M, G, T (or Ki, Mi, Gi, Ti; any case)\n"       \
        "are powers of 1024, so 8G = 8g = 8Gi = 8589934592 bytes; KB, MB, GB, TB are\n"            \
        "powers of 1000, so 8GB = 8000000000 bytes.\n"

struct aidp_cli_parsed {
        unsigned count[AIDP_CLI_MAX_OPTS];              /* times opts[i] was given */
        enum aidp_trust_level level[AIDP_CLI_MAX_OPTS]; /* level its values needed */
        int first_arg;                                  /* argv index of the first operand */
        int n_args;
        bool help; /* --help was given (nothing else is checked) */
};

/* The field of an AIDP_CLI_LIST option: argv pointers, in order; free with
 * aidp_cli_list_free. */
struct aidp_cli_list {
        const char **v;
        size_t n;
};
void aidp_cli_list_free(struct aidp_cli_list *l);

/* Parse argv (argv[0] is the command's name) into dest. Returns 0, 1 when
 * --help was given (nothing written to dest beyond what came before), or < 0
 * with err (status AIDP_EXIT_USAGE, message naming the option and value).
 * Prints nothing. */
int aidp_cli_parse(const struct aidp_cli_spec *spec, int argc, char **argv, void *dest,
                   struct aidp_cli_parsed *ret, aidp_error *err);

/* aidp_cli_parse, also saying what each argv token was (for a caller that
 * passes the options on, minus its own): at[k] (argc entries; may be NULL) is
 * the opts index for the token naming an option, AIDP_CLI_AT_VALUE for a
 * separate token holding the previous option's value, AIDP_CLI_AT_END for the
 * "--" that ended the options, AIDP_CLI_AT_OPERAND otherwise (operands, and
 * everything after the first operand of an in_order spec). Exact for in_order
 * specs only (otherwise getopt permutes argv). */
enum { AIDP_CLI_AT_OPERAND = -1, AIDP_CLI_AT_VALUE = -2, AIDP_CLI_AT_END = -3 };
int aidp_cli_parse_at(const struct aidp_cli_spec *spec, int argc, char **argv, void *dest,
                      struct aidp_cli_parsed *ret, int *at, aidp_error *err);

/* The usual front door of a command: parse; print help (to stdout) or the usage
 * error (to stderr). True when the command should go on; otherwise *status is
 * what it returns (0 after help, AIDP_EXIT_USAGE after an error). */
bool aidp_cli_options(const struct aidp_cli_spec *spec, int argc, char **argv, void *dest,
                      struct aidp_cli_parsed *ret, int *status);

/* The whole help of a command, generated from its table. */
void aidp_cli_help(const struct aidp_cli_spec *spec, FILE *f);

/* A point in time: "now", "@EPOCH", YYYY-MM-DD (midnight UTC) or ISO 8601
 * YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM). Returns 0 or -EINVAL. */
int aidp_cli_parse_time(const char *s, int64_t *ret);

/* The one usage-error format: "PROG: error: MSG" and one line pointing to
 * "PROG --help". Returns AIDP_EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int aidp_cli_usage_error(const char *prog, const char *fmt,
                                                               ...);
int aidp_cli_usage_fail(const char *prog, const aidp_error *err);

/* Every option given whose level (p->level) is above what `kind` may use:
 * the first one is refused with AIDP_EXIT_USAGE naming it. Test-build options
 * need test_build and an admin. Pure; 0 when all are allowed. */
int aidp_cli_check_trust(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *p,
                         enum aidp_caller_kind kind, bool test_build, aidp_error *err);
/* May `kind` use something of `level` in this build? */
bool aidp_cli_trust_allows(enum aidp_trust_level level, enum aidp_caller_kind kind,
                           bool test_build);
const char *aidp_cli_trust_name(enum aidp_trust_level level);

/* ---- subcommands ---- */

struct aidp_cli_cmd {
        const char *name;
        int (*fn)(int argc, char **argv); /* argv[0] is the subcommand name */
        const char *summary;
};

struct aidp_cli_group {
        const char *prog;    /* "aidp" or "aidp lineage" */
        const char *version; /* "aidp 0.1.0": --version/version answer; NULL for groups */
        const struct aidp_cli_cmd *cmds; /* terminated by name NULL */
        const char *footer;              /* after the command list; may be NULL */
};

/* argv[0] is the group's name, argv[1] the subcommand: runs it, or answers
 * help/--help/-h (the list, on stdout), --version, or a usage error (missing or
 * unknown command: the error and one line pointing to --help). */
int aidp_cli_dispatch(const struct aidp_cli_group *g, int argc, char **argv);
void aidp_cli_group_help(const struct aidp_cli_group *g, FILE *f);

/* ---- environment ---- */

enum {
        AIDP_CLI_BIN_AIDP = 1u << 0,       /* the aidp tool */
        AIDP_CLI_BIN_SUPERVISOR = 1u << 1, /* aidp-supervisor */
};

struct aidp_cli_env {
        const char *name; /* the variable, or a prefix when prefix is set */
        bool prefix;
        unsigned binaries; /* AIDP_CLI_BIN_* reading it */
        enum aidp_trust_level trust;
        const char *read_by; /* the file that reads it */
        const char *help;
};

/* Every variable either binary reads (or passes to a job by name), terminated by
 * name NULL. */
extern const struct aidp_cli_env aidp_cli_env_table[];

/* The entry for a variable name ("AIDP_FAULT_STOP_AT" matches the AIDP_FAULT_
 * prefix entry), or NULL when no binary reads it. */
const struct aidp_cli_env *aidp_cli_env_find(const char *name);

/* For each "NAME=VALUE" of envp read by `binary`: refuse (AIDP_EXIT_USAGE, naming
 * the variable) the first one this caller may not set. Pure. */
int aidp_cli_check_env(char *const *envp, unsigned binary, enum aidp_caller_kind kind,
                       bool test_build, aidp_error *err);
