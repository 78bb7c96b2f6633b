#pragma once
/* aidp-supervisor's command line: run, gc, learn, version. */
#include "supervisor/cli/options.h"

#include <stdbool.h>

/* test_build: this is aidp-supervisor-test, which honours the test hooks and
 * configuration variables for admins (docs/security.md). */
int aidp_supervisor_main(int argc, char **argv, bool test_build);

/* The option tables of its commands (supervisor/cli/options.h), for the trust
 * check and the tests. */
extern const struct aidp_cli_spec aidp_cli_run_spec;
extern const struct aidp_cli_spec aidp_cli_gc_spec;
extern const struct aidp_cli_spec aidp_cli_learn_spec;
