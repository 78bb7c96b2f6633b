/* aidp: the authoring and audit tool (profiles, sealed data, policy, lineage).
 * It never builds a sandbox; aidp-supervisor does (profile learn runs it). */
#include "common/crypto.h"
#include "supervisor/cli/cli.h"

int main(int argc, char **argv)
{
        aidp_crypto_init();
        return aidp_cli_main(argc, argv);
}
