/* pid 1 into the run's v1 hierarchies (cgroup.h), in a file of its own: the
 * sandbox's pid 1 is also built into aidp-init (supervisor/sandbox/zygote.h),
 * which must not pull the rest of the cgroup layer (libcgroup) in. */
#include "supervisor/sandbox/cgroup/cgroup.h"

#include <errno.h>
#include <unistd.h>

int aidp_cgroup_join_self(const int *fds, size_t n)
{
        int rc = 0;
        for (size_t i = 0; i < n; i++) {
                if (write(fds[i], "0", 1) != 1 && rc == 0)
                        rc = -errno;
                close(fds[i]);
        }
        return rc;
}
