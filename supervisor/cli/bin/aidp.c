/* aidp: the authoring and audit tool (profiles, sealed data, policy, lineage).
 * It never builds a sandbox; aidp-supervisor does (profile learn runs it). */
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/trust.h"

/* The commands that hold keys in memory. */
static bool handles_keys(int argc, char **argv)
{
        static const char *const cmds[] = {"seal", "unseal", "inspect", "keygen", "detokenize"};
        for (size_t i = 0; argc > 1 && i < sizeof cmds / sizeof *cmds; i++)
                if (!strcmp(argv[1], cmds[i]))
                        return true;
        return false;
}

int main(int argc, char **argv)
{
        bool keys = handles_keys(argc, argv);
        if (keys)
                aidp_cli_keymem_init(); /* not dumpable, no core (keymem.h) */
        aidp_crypto_init();
        if (keys)
                aidp_cli_keymem_enable();
        aidp_error err = {0};
        if (aidp_trust_tool_check(argc, argv, &err) < 0) {
                fprintf(stderr, "aidp: error: %s\n", err.msg);
                return AIDP_EXIT_USAGE;
        }
        return aidp_cli_main(argc, argv);
}
