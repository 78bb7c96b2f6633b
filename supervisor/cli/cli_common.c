#include "supervisor/cli/cli.h"

#include <stdio.h>

#include "common/error.h"

int aidp_cli_fail(const char *prog, const struct aidp_error *err)
{
        fprintf(stderr, "%s: error: %s\n", prog, err->msg[0] ? err->msg : "unknown error");
        return err->status ? err->status : AIDP_EXIT_INTERNAL;
}
