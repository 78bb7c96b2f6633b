/* aidp: the authoring and audit tool (profiles, sealed data, policy, lineage).
 * It never builds a sandbox; aidp-supervisor does. */
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"

static const struct aidp_cli_cmd commands[] = {
        {"lineage", aidp_cli_lineage, "verify, show, graph and export the lineage log"},
        {"policy", aidp_cli_policy, "check policy files, explain an access/residency decision"},
        {"profile", aidp_cli_profile, "check, explain, diff and learn sandbox profiles"},
        {"seal", aidp_cli_seal, "seal a file or directory tree into a sealed dataset"},
        {"unseal", aidp_cli_seal, "decrypt and authenticate a sealed dataset"},
        {"inspect", aidp_cli_seal, "print a sealed dataset's authenticated header"},
        {"keygen", aidp_cli_seal, "create a key-encryption key file"},
        {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
        fprintf(f, "usage: aidp COMMAND [ARGS...]\n\ncommands:\n");
        for (const struct aidp_cli_cmd *c = commands; c->name; c++)
                fprintf(f, "  %-10s %s\n", c->name, c->summary);
        fprintf(f, "  %-10s %s\n", "version", "print the version");
        fprintf(f, "\nRun 'aidp COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
        aidp_crypto_init();
        if (argc < 2) {
                usage(stderr);
                return AIDP_EXIT_USAGE;
        }
        if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
                usage(stdout);
                return 0;
        }
        if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
                printf("aidp 0.1.0\n");
                return 0;
        }
        for (const struct aidp_cli_cmd *c = commands; c->name; c++)
                if (!strcmp(argv[1], c->name))
                        return c->fn(argc - 1, argv + 1);
        fprintf(stderr, "aidp: error: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return AIDP_EXIT_USAGE;
}
