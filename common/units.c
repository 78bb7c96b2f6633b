#include "common/units.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse_number(const char *s, double *v, const char **rest)
{
        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (end == s || errno || !isfinite(d) || d < 0)
                return -EINVAL;
        /* strtod accepts hex, inf, nan and exponents; none are units here */
        for (const char *p = s; p < end; p++)
                if (!((*p >= '0' && *p <= '9') || *p == '.'))
                        return -EINVAL;
        *v = d;
        *rest = end;
        return 0;
}

int aidp_parse_size(const char *s, uint64_t *out)
{
        double v;
        const char *u;
        if (parse_number(s, &v, &u) < 0)
                return -EINVAL;
        static const struct {
                const char *suffix;
                double mult;
        } units[] = {
                {"", 1}, {"B", 1},
                {"k", 1024.0}, {"Ki", 1024.0}, {"KiB", 1024.0},
                {"M", 1048576.0}, {"Mi", 1048576.0}, {"MiB", 1048576.0},
                {"G", 1073741824.0}, {"Gi", 1073741824.0}, {"GiB", 1073741824.0},
                {"T", 1099511627776.0}, {"Ti", 1099511627776.0}, {"TiB", 1099511627776.0},
        };
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
                if (strcmp(u, units[i].suffix))
                        continue;
                double b = v * units[i].mult;
                if (b >= 18446744073709551615.0)
                        return -ERANGE;
                if (b != floor(b) && units[i].mult == 1)
                        return -EINVAL; /* fractional bytes */
                *out = (uint64_t)b;
                return 0;
        }
        return -EINVAL;
}

int aidp_parse_duration(const char *s, uint64_t *out)
{
        if (!s || !*s)
                return -EINVAL;
        uint64_t total = 0;
        const char *p = s;
        while (*p) {
                double v;
                const char *u;
                if (parse_number(p, &v, &u) < 0)
                        return -EINVAL;
                double mult;
                switch (*u) {
                case '\0': mult = 1; break;
                case 's': mult = 1; u++; break;
                case 'm': mult = 60; u++; break;
                case 'h': mult = 3600; u++; break;
                case 'd': mult = 86400; u++; break;
                default: return -EINVAL;
                }
                if (*u == '\0' && u == p)
                        return -EINVAL;
                double secs = v * mult;
                if (secs > 1e15)
                        return -ERANGE;
                total += (uint64_t)ceil(secs);
                p = u;
        }
        *out = total;
        return 0;
}

int aidp_parse_cpus(const char *s, uint64_t *out)
{
        double v;
        const char *u;
        if (parse_number(s, &v, &u) < 0)
                return -EINVAL;
        if (!strcmp(u, "m")) {
                if (v != floor(v) || v < 1 || v > 1e9)
                        return -EINVAL;
                *out = (uint64_t)v;
                return 0;
        }
        if (*u || v <= 0 || v > 1e6)
                return -EINVAL;
        double m = v * 1000.0;
        if (m < 1)
                return -EINVAL;
        *out = (uint64_t)llround(m);
        return 0;
}
