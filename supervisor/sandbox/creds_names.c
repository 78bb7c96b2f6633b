#define _GNU_SOURCE
/* Capability names (creds.h), in the supervisor: a profile's capabilities
 * checked against the running kernel and turned into the numbers pid 1 keeps
 * (sandbox.h, spec.caps). libcap-ng's table is used for the names only. */
#include "supervisor/sandbox/creds.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"

/* A capability's number by libcap-ng's table, or -1: profiles store
 * "CAP_NET_RAW"; the table wants "net_raw". */
static int cap_number(const char *cn)
{
        return capng_name_to_capability(strncasecmp(cn, "CAP_", 4) ? cn : cn + 4);
}

int aidp_creds_kernel_last_cap(void)
{
        /* Test builds only (AIDP_FAULT_CAP_LAST_CAP=N; supervisor/cli/env.c:
         * the production binary refuses a run that sets it): a kernel older
         * than libcap-ng's table (tests/priv/test_profiles.c). */
        const char *fake = getenv("AIDP_FAULT_CAP_LAST_CAP");
        if (fake)
                return atoi(fake);
        _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
        char buf[16];
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return -(n < 0 ? errno : EIO);
        buf[n] = '\0';
        char *end;
        long v = strtol(buf, &end, 10);
        return end == buf || v < 0 || v > 63 ? -EIO : (int)v;
}

int aidp_creds_check_profile(const struct aidp_profile *pr, const char *name, int last_cap,
                             aidp_error *err)
{
        for (size_t i = 0; pr && i < pr->n_capabilities; i++) {
                const char *cn = pr->capabilities[i];
                int cap = cap_number(cn);
                if (cap < 0 || cap > last_cap)
                        return aidp_error_set(
                                err, AIDP_EXIT_CONFIG, EINVAL,
                                "profile %s: capabilities: %s (number %d) is not known to this "
                                "kernel, whose last capability is number %d "
                                "(/proc/sys/kernel/cap_last_cap); leave it out of the profile or "
                                "run on a newer kernel",
                                name, cn, cap, last_cap);
        }
        return 0;
}

int aidp_creds_profile_caps(const struct aidp_profile *pr, uint64_t *caps, const char **bad)
{
        uint64_t keep = 0;
        for (size_t i = 0; pr && i < pr->n_capabilities; i++) {
                const char *cn = pr->capabilities[i];
                int cap = cap_number(cn);
                if (cap < 0 || cap > 63) {
                        *bad = cn;
                        return -EINVAL;
                }
                keep |= 1ULL << cap;
        }
        *caps = keep;
        return 0;
}
