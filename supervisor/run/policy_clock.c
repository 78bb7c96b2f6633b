/* Time zone resolution for access time windows.
 *
 * The offset of each zone at the decision instant comes from the zone's TZif
 * file, read here and parsed by the pure reader in residency/tzif.c. The
 * obvious route, setenv("TZ") + tzset() + localtime_r(), is not used: it
 * changes the process environment, which is undefined in glibc while other
 * threads run, and the supervisor has threads (warm-up, fsync, lineage).
 *
 * The zone is missing -> a configuration error, never glibc's silent fallback
 * to UTC, because a typo in a policy would shift every window. The database
 * directory is fixed (/usr/share/zoneinfo): the supervisor runs as root for
 * unprivileged callers, so their TZDIR must not choose what root reads. */
#include "supervisor/run/policy_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "residency/tzif.h"

#define ZONEINFO     "/usr/share/zoneinfo"
#define TZIF_MAX_LEN (1 << 20) /* real zone files are a few KiB */

/* The zone's TZif bytes from dir/zone. */
static int read_zone_file(const char *dir, const char *zone, uint8_t **ret, size_t *ret_len,
                          aidp_error *err)
{
        /* The parser already refused '.' and a leading '/', so the name cannot
         * leave the directory; checked again here, where the path is built. */
        if (!aidp_residency_zone_name_valid(zone) || strstr(zone, "..") || zone[0] == '/')
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "invalid time zone '%s'",
                                      zone);
        char path[512];
        int n = snprintf(path, sizeof path, "%s/%s", dir, zone);
        if (n < 0 || (size_t)n >= sizeof path)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENAMETOOLONG,
                                      "time zone '%s': path too long", zone);
        /* O_NONBLOCK: a FIFO in the database must not hang the supervisor. Zone
         * names are often symlinks (UTC -> Etc/UTC), so they are followed. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno,
                                        "time zone '%s' is not in the tz database (%s)", zone,
                                        path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "time zone '%s': %s", zone,
                                        path);
        if (!S_ISREG(st.st_mode) || st.st_size < 4 || st.st_size > TZIF_MAX_LEN)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "time zone '%s': %s is not a tz database file", zone, path);
        _cleanup_free_ uint8_t *buf = malloc((size_t)st.st_size);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        ssize_t got = aidp_read_all(fd, buf, (size_t)st.st_size);
        if (got < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, (int)-got, "time zone '%s': %s",
                                        zone, path);
        if (got < 4 || memcmp(buf, "TZif", 4))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "time zone '%s': %s is not a tz database file", zone, path);
        *ret_len = (size_t)got;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int offset_at(const char *dir, const char *zone, int64_t epoch, long *ret, aidp_error *err)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_zone_file(dir, zone, &buf, &len, err);
        if (r < 0)
                return r;
        r = aidp_residency_tzif_offset(buf, len, epoch, ret);
        if (r == -ERANGE)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EOVERFLOW,
                                      "time %lld cannot be expressed in zone '%s'",
                                      (long long)epoch, zone);
        if (r < 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "time zone '%s': %s/%s is not a valid tz database file", zone,
                                      dir, zone);
        return 0;
}

int aidp_policy_clock_resolve_in(const char *dir, const struct aidp_access_policy *ap,
                                 int64_t epoch, struct aidp_policy_clock *ret, aidp_error *err)
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
                int r = offset_at(dir, zones[i], epoch, &v[i].utc_offset, err);
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

int aidp_policy_clock_resolve(const struct aidp_access_policy *ap, int64_t epoch,
                              struct aidp_policy_clock *ret, aidp_error *err)
{
        return aidp_policy_clock_resolve_in(ZONEINFO, ap, epoch, ret, err);
}

static int check_window_zones(const char *dir, const char *file, const struct aidp_time_window *ws,
                              size_t n, unsigned rule_line, aidp_error *err)
{
        for (size_t k = 0; k < n; k++) {
                long off;
                aidp_error e = {0};
                if (offset_at(dir, ws[k].zone, 0, &off, &e) == 0)
                        continue;
                unsigned line = ws[k].zone_line ? ws[k].zone_line : rule_line;
                return aidp_error_set_at(err, AIDP_EXIT_CONFIG, file, line,
                                         ws[k].zone_line ? ws[k].zone_col : 1, "%s", e.msg);
        }
        return 0;
}

int aidp_policy_clock_check_zones_in(const char *dir, const struct aidp_access_policy *ap,
                                     aidp_error *err)
{
        const char *file = ap->source ? ap->source : "access policy";
        for (size_t i = 0; i < ap->n_roles; i++) {
                const struct aidp_role *ro = &ap->roles[i];
                int r = check_window_zones(dir, file, ro->windows, ro->n_windows, ro->loc.line,
                                           err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ap->n_deny; i++) {
                const struct aidp_deny_rule *d = &ap->deny[i];
                int r = check_window_zones(dir, file, d->windows, d->n_windows, d->loc.line, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int aidp_policy_clock_check_zones(const struct aidp_access_policy *ap, aidp_error *err)
{
        return aidp_policy_clock_check_zones_in(ZONEINFO, ap, err);
}

void aidp_policy_clock_free(struct aidp_policy_clock *c)
{
        if (!c)
                return;
        free(c->zones);
        memset(c, 0, sizeof *c);
}

void aidp_policy_clock_view(const struct aidp_policy_clock *c, int64_t epoch,
                            struct aidp_residency_time *ret)
{
        ret->epoch = epoch;
        ret->zones = c->zones;
        ret->n_zones = c->n_zones;
}
