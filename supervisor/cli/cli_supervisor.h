#pragma once
/* aidp-supervisor's command line: run, gc, learn, version. */
#include "supervisor/cli/options.h"

#include <stdbool.h>
#include <stdio.h>

#include "supervisor/run/run.h"

/* Everything `run` parses: the run core's options and the storage behind its
 * pointers (argv strings are not copied). Also what aidp-run and the daemon
 * parse a request with (supervisor/cli/cli_serve.c, cli_client.c). */
struct aidp_cli_run {
        struct aidp_run_opts o;
        struct aidp_cli_list env, data;
        struct aidp_run_bind binds[AIDP_CLI_MAX_BINDS];
        uint64_t kill_after;
        bool exec_hook;     /* --exec-hook (docs/exec-hook.md) */
        uint64_t result_fd; /* --result-fd N; 0: none (N >= 3) */
        bool dry_run, json; /* --dry-run [--json]: the plan, nothing run */
};
/* After aidp_cli_parse of aidp_cli_run_spec: point o at the lists and the job. */
void aidp_cli_run_finish(struct aidp_cli_run *c, char **argv, const struct aidp_cli_parsed *p);
/* --dry-run's plan on f: JSON, or a line per part (supervisor/cli/cli_plan.c)
 * with policy (the decision as `aidp policy explain` prints it; NULL when no
 * policy decided the run) in place of the policy facet. */
void aidp_cli_print_plan(struct json_object *plan, const char *policy, bool json, FILE *f);
/* Run c->o (after aidp_cli_run_finish), print the summary or the plan, write
 * --summary into summary_fd: the exit status. ended (may be NULL) is called
 * with that status as soon as the run is over and on record, after the
 * report, before the process's own clean-up (a daemon's worker tells its
 * client there); not for a dry run or a run refused before its START. */
int aidp_cli_run_and_report(struct aidp_cli_run *c, int summary_fd,
                            void (*ended)(int status, void *arg), void *arg);
/* aidp-supervisor-test? (set by aidp_supervisor_main) */
bool aidp_cli_supervisor_test_build(void);
/* aidp-supervisor serve (supervisor/cli/cli_serve.c) */
int aidp_cli_serve(int argc, char **argv);
extern const struct aidp_cli_spec aidp_cli_serve_spec;

/* test_build: this is aidp-supervisor-test, which honours the test hooks and
 * configuration variables for admins (docs/security.md). */
int aidp_supervisor_main(int argc, char **argv, bool test_build);

/* The option tables of its commands (supervisor/cli/options.h), for the trust
 * check and the tests. */
extern const struct aidp_cli_spec aidp_cli_run_spec;
extern const struct aidp_cli_spec aidp_cli_gc_spec;
extern const struct aidp_cli_spec aidp_cli_learn_spec;
