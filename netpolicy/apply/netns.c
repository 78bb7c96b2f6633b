/* Acting inside the run's network namespace from the supervisor. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "netpolicy/apply/apply.h"

int aidp_np_in_netns(int netns_fd, int (*fn)(void *ctx, aidp_error *err), void *ctx,
                     aidp_error *err)
{
        /* setns(CLONE_NEWNET) moves only the calling thread, so the way back is
         * this thread's own namespace, not the process leader's. */
        _cleanup_close_ int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (home < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "opening this thread's network namespace");
        if (setns(netns_fd, CLONE_NEWNET) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "entering the run's network namespace");
        /* Sockets made in fn stay bound to the run's namespace after we leave,
         * which is how the supervisor keeps its NFLOG socket there. */
        int rc = fn(ctx, err);
        if (setns(home, CLONE_NEWNET) < 0) {
                /* Carrying on in the sandbox's namespace would configure the
                 * wrong network with root's authority: stop here. */
                fprintf(stderr, "aidp: cannot return to the host network namespace: %m\n");
                abort();
        }
        return rc;
}
