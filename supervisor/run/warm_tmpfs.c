/* Warm start: the default profile's tmpfs mounts made ahead in a daemon's
 * idle worker (warm.h). */
#include "supervisor/run/warm.h"

#include "supervisor/run/run.h"
#include "supervisor/sandbox/tmpfs.h"

void aidp_run_warm_tmpfs_ahead(void)
{
        /* The default profile's (the one most runs take): prepare makes its
         * /tmp and /dev/shm root's, /scratch and /out the caller's; those two
         * get their contexts only (their owner is the run's). */
        const struct aidp_profile *p = aidp_run_warm_profile_peek(AIDP_DEFAULT_PROFILE);
        if (!p)
                return;
        aidp_tmpfs_ahead(p->limits.tmp_bytes, 01777);
        aidp_tmpfs_ahead(aidp_profile_shm_bytes(p), 01777);
        aidp_tmpfs_ahead(0, 0755);
        aidp_tmpfs_ahead(0, 0755);
}
