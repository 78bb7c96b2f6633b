/* aidp-supervisor: builds the sandbox, runs one job, shreds everything. */
#include <fcntl.h>

#include "common/crypto.h"
#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_supervisor.h"

int main(int argc, char **argv)
{
        /* First: not dumpable, no core, OpenSSL's allocations hooked (keymem.h). */
        aidp_cli_keymem_init();
        /* Started with stdin, stdout or stderr closed, the next file the
         * supervisor opens (a key, the lineage log) would take that number
         * and the job would inherit it as its stdio. */
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
                        return AIDP_EXIT_INTERNAL;
        aidp_crypto_init();
        aidp_cli_keymem_enable();
        /* AIDP_TEST_BUILD: aidp-supervisor-test, the same code built to honour the
         * test hooks for admins; the installed aidp-supervisor reads none. */
#ifndef AIDP_TEST_BUILD
#define AIDP_TEST_BUILD 0
#endif
        return aidp_supervisor_main(argc, argv, AIDP_TEST_BUILD);
}
