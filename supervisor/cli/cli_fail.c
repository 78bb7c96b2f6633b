/* The one error line of every command. Its own file: the supervisor uses it
 * too, and must not pull in the aidp tool's command table (cli_common.c),
 * which would link libcurl and its thirty libraries into every run's
 * process (each one mapped at exec and copied at every fork). */
#include "supervisor/cli/cli.h"

#include <stdio.h>

#include "common/error.h"

int aidp_cli_fail(const char *prog, const struct aidp_error *err)
{
        if (err->status == AIDP_EXIT_USAGE)
                return aidp_cli_usage_fail(prog, err);
        fprintf(stderr, "%s: error: %s\n", prog, err->msg[0] ? err->msg : "unknown error");
        return err->status ? err->status : AIDP_EXIT_INTERNAL;
}
