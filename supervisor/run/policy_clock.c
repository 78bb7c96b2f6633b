/* Time zone resolution for access time windows.
 *
 * tzfile parsing is glibc's (localtime_r with TZ set); this file only checks
 * that the zone exists, because glibc treats an unknown TZ as UTC and a typo
 * in a policy would silently shift every window. */
#include "supervisor/run/policy_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

static int check_zone_file(const char *zone, aidp_error *err)
{
        const char *dir = getenv("TZDIR");
        char path[512];
        if (!dir || !*dir)
                dir = "/usr/share/zoneinfo";
        /* The parser already refused '.', so the name cannot leave the directory. */
        if (!aidp_residency_zone_name_valid(zone))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "invalid time zone '%s'",
                                      zone);
        snprintf(path, sizeof path, "%s/%s", dir, zone);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno,
                                        "time zone '%s' is not in the tz database (%s)", zone,
                                        path);
        char magic[4];
        if (read(fd, magic, sizeof magic) != (ssize_t)sizeof magic ||
            memcmp(magic, "TZif", sizeof magic))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "time zone '%s': %s is not a tz database file", zone, path);
        return 0;
}

static int offset_at(const char *zone, int64_t epoch, long *ret, aidp_error *err)
{
        const char *old = getenv("TZ");
        _cleanup_free_ char *saved = old ? strdup(old) : NULL;
        char tz[128];
        if (old && !saved)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        /* A leading ':' makes glibc read the zone file, never a POSIX TZ rule. */
        snprintf(tz, sizeof tz, ":%s", zone);
        if (setenv("TZ", tz, 1) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "setenv TZ");
        tzset();
        time_t t = (time_t)epoch;
        struct tm tm;
        bool ok = localtime_r(&t, &tm) != NULL;
        if (saved)
                setenv("TZ", saved, 1);
        else
                unsetenv("TZ");
        tzset();
        if (!ok)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EOVERFLOW,
                                      "time %lld cannot be expressed in zone '%s'",
                                      (long long)epoch, zone);
        *ret = tm.tm_gmtoff;
        return 0;
}

int aidp_policy_clock_resolve(const struct aidp_access_policy *ap, int64_t epoch,
                              struct aidp_policy_clock *ret, aidp_error *err)
{
        _cleanup_free_ const char **zones = NULL;
        size_t n = 0;
        memset(ret, 0, sizeof *ret);
        if (!ap)
                return 0;
        if (aidp_residency_access_time_zones(ap, &zones, &n) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (n == 0)
                return 0;
        struct aidp_zone_offset *v = calloc(n, sizeof *v);
        if (!v)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                int r = check_zone_file(zones[i], err);
                if (r >= 0)
                        r = offset_at(zones[i], epoch, &v[i].utc_offset, err);
                if (r < 0) {
                        free(v);
                        return aidp_error_wrap(err, "%s",
                                               ap->source ? ap->source : "access policy");
                }
                v[i].zone = zones[i];
        }
        ret->zones = v;
        ret->n_zones = n;
        return 0;
}

void aidp_policy_clock_free(struct aidp_policy_clock *c)
{
        if (!c)
                return;
        free(c->zones);
        memset(c, 0, sizeof *c);
}

void aidp_policy_clock_view(const struct aidp_policy_clock *c, int64_t epoch,
                            struct aidp_policy_time *ret)
{
        ret->epoch = epoch;
        ret->zones = c->zones;
        ret->n_zones = c->n_zones;
}
