/* aidp: the authoring and audit tool (profiles, sealed data, policy, lineage).
 * It never builds a sandbox; aidp-supervisor does (profile learn runs it). */
#include <stdio.h>

#include "common/crypto.h"
#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/trust.h"

int main(int argc, char **argv)
{
        aidp_crypto_init();
        aidp_error err = {0};
        if (aidp_trust_tool_check(argc, argv, &err) < 0) {
                fprintf(stderr, "aidp: error: %s\n", err.msg);
                return AIDP_EXIT_USAGE;
        }
        return aidp_cli_main(argc, argv);
}
