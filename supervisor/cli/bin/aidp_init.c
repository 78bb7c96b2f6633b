/* aidp-init: the zygote a daemon's idle worker starts (supervisor/sandbox/
 * zygote.h, docs/run-core.md "The zygote"). Linked static-pie from the pid 1
 * side of supervisor/sandbox only (no libseccomp, libcap-ng, json-c or
 * OpenSSL): the sandbox's pid 1 is cloned from this small process, not from
 * the worker. Its socket to the worker is fd 3; it serves one plan. */
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "supervisor/sandbox/zygote.h"

int main(void)
{
        /* Exec'd by fd: before Linux 6.15 the name would be the fd's number. */
        prctl(PR_SET_NAME, "aidp-init");
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
                fprintf(stderr, "aidp-init: started by aidp-supervisor serve only\n");
                return 2;
        }
        return aidp_zygote_main(3);
}
