#include "supervisor/cli/cli.h"

#include <stdio.h>

#include "common/error.h"

static const struct aidp_cli_cmd commands[] = {
        {"lineage", aidp_cli_lineage, "verify, show, graph and export the lineage log"},
        {"policy", aidp_cli_policy, "check policy files, explain an access/residency decision"},
        {"profile", aidp_cli_profile, "check, explain, diff and learn sandbox profiles"},
        {"seal", aidp_cli_seal, "seal a file or directory tree into a sealed dataset"},
        {"unseal", aidp_cli_seal, "decrypt and authenticate a sealed dataset"},
        {"inspect", aidp_cli_seal, "print a sealed dataset's authenticated header"},
        {"keygen", aidp_cli_seal, "create a key-encryption key file"},
        {"detokenize", aidp_cli_detokenize, "turn siv tokens of a view back into values"},
        {"ps", aidp_cli_ps, "your runs in progress through the daemon"},
        {"stop", aidp_cli_stop, "stop a run of yours (it still shreds)"},
        {"logs", aidp_cli_logs, "the output of a detached run of yours"},
        {NULL, NULL, NULL},
};

int aidp_cli_main(int argc, char **argv)
{
        static const struct aidp_cli_group g = {
                .prog = "aidp",
                .version = "aidp " AIDP_VERSION,
                .cmds = commands,
        };
        return aidp_cli_dispatch(&g, argc, argv);
}
