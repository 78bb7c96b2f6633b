/* aidp-run: the engineer's command, a client of aidp-supervisor serve
 * (supervisor/cli/cli_client.c, docs/protocol.md). Not setuid: it runs with
 * the caller's own credentials and opens only what the caller may. */
#include <fcntl.h>

#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"

int main(int argc, char **argv)
{
        /* fds 0-2 are passed to the daemon as the job's stdio: make sure
         * they are there, not whatever the next open returns. */
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
                        return AIDP_EXIT_INTERNAL;
        return aidp_cli_run_client(argc, argv);
}
