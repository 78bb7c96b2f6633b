/* Human units (units.h): sizes, CPU counts, durations, and their formatting. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "profiles/internal.h"
#include "profiles/units.h"

int aidp_profiles_parse_uint(const char *s, bool hex_ok, uint64_t *out)
{
        int base = 10;
        if (hex_ok && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                base = 16;
                s += 2;
                if (!isxdigit((unsigned char)s[0]))
                        return -EINVAL;
        } else if (!isdigit((unsigned char)s[0])) {
                return -EINVAL;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, base);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end)
                return -EINVAL;
        *out = v;
        return 0;
}

/* "12.345" -> 12 and the fraction scaled to `scale` (10^k); rest points after the number. */
static int parse_decimal(const char *s, uint64_t scale, uint64_t *whole, uint64_t *frac,
                         const char **rest)
{
        if (!isdigit((unsigned char)*s))
                return -EINVAL;
        uint64_t w = 0;
        while (isdigit((unsigned char)*s)) {
                if (w > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                w = w * 10 + (uint64_t)(*s++ - '0');
        }
        uint64_t f = 0, div = 1;
        if (*s == '.') {
                s++;
                if (!isdigit((unsigned char)*s))
                        return -EINVAL;
                while (isdigit((unsigned char)*s)) {
                        if (div >= 1000000000ULL)
                                return -ERANGE; /* more precision than we honour */
                        f = f * 10 + (uint64_t)(*s++ - '0');
                        div *= 10;
                }
        }
        *whole = w;
        *frac = f * scale / div;
        if (f * scale % div)
                return -EINVAL; /* would need rounding: say what you mean */
        *rest = s;
        return 0;
}

/* The unit suffixes of a size, compared without case. Docker, systemd and Slurm
 * read K/M/G/T as powers of 1024 ("--memory 8g" is 8 GiB), so aidp does too;
 * an explicit "B" after a letter (KB, MB, GB, TB, PB) asks for powers of 1000. */
static const struct {
        const char *suffix;
        uint64_t mult;
} size_units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ULL << 10},
        {"ki", 1ULL << 10},
        {"kib", 1ULL << 10},
        {"m", 1ULL << 20},
        {"mi", 1ULL << 20},
        {"mib", 1ULL << 20},
        {"g", 1ULL << 30},
        {"gi", 1ULL << 30},
        {"gib", 1ULL << 30},
        {"t", 1ULL << 40},
        {"ti", 1ULL << 40},
        {"tib", 1ULL << 40},
        {"p", 1ULL << 50},
        {"pi", 1ULL << 50},
        {"pib", 1ULL << 50},
        {"kb", 1000ULL},
        {"mb", 1000000ULL},
        {"gb", 1000000000ULL},
        {"tb", 1000000000000ULL},
        {"pb", 1000000000000000ULL},
};

int aidp_profiles_parse_size(const char *s, uint64_t *out)
{
        uint64_t w, f;
        const char *rest;
        /* Fractions are computed exactly against the unit, so parse with the
         * unit known first: find the suffix, then the number. */
        size_t len = strlen(s), nlen = len;
        while (nlen > 0 && isalpha((unsigned char)s[nlen - 1]))
                nlen--;
        const char *suf = s + nlen;
        for (size_t i = 0; i < sizeof size_units / sizeof size_units[0]; i++) {
                if (strcasecmp(suf, size_units[i].suffix))
                        continue;
                uint64_t mult = size_units[i].mult;
                char num[64];
                if (nlen == 0 || nlen >= sizeof num)
                        return -EINVAL;
                memcpy(num, s, nlen);
                num[nlen] = '\0';
                int rc = parse_decimal(num, mult, &w, &f, &rest);
                if (rc < 0)
                        return rc;
                if (*rest)
                        return -EINVAL;
                if (w > (UINT64_MAX - f) / mult)
                        return -ERANGE;
                *out = w * mult + f;
                return 0;
        }
        return -EINVAL;
}

int aidp_profiles_parse_cpu(const char *s, uint64_t *out)
{
        uint64_t w, f;
        const char *rest;
        size_t len = strlen(s);
        if (len > 1 && s[len - 1] == 'm') {
                char num[64];
                if (len >= sizeof num)
                        return -EINVAL;
                memcpy(num, s, len - 1);
                num[len - 1] = '\0';
                return aidp_profiles_parse_uint(num, false, out);
        }
        int rc = parse_decimal(s, 1000, &w, &f, &rest);
        if (rc < 0)
                return rc;
        if (*rest)
                return -EINVAL;
        if (w > (UINT64_MAX - f) / 1000)
                return -ERANGE;
        *out = w * 1000 + f;
        return 0;
}

int aidp_profiles_parse_duration(const char *s, uint64_t *out)
{
        if (!*s)
                return -EINVAL;
        uint64_t v;
        if (aidp_profiles_parse_uint(s, false, &v) == 0) {
                *out = v;
                return 0;
        }
        /* A sequence of <number><unit> with units in decreasing order: 1d2h30m15s. */
        static const struct {
                char unit;
                uint64_t secs;
        } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
        uint64_t total = 0;
        size_t next_unit = 0;
        while (*s) {
                if (!isdigit((unsigned char)*s))
                        return -EINVAL;
                uint64_t n = 0;
                while (isdigit((unsigned char)*s)) {
                        if (n > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        n = n * 10 + (uint64_t)(*s++ - '0');
                }
                size_t i = next_unit;
                while (i < 4 && units[i].unit != *s)
                        i++;
                if (i == 4)
                        return -EINVAL;
                s++;
                if (n > (UINT64_MAX - total) / units[i].secs)
                        return -ERANGE;
                total += n * units[i].secs;
                next_unit = i + 1;
        }
        *out = total;
        return 0;
}

void aidp_profiles_fmt_size(char *buf, size_t n, uint64_t b)
{
        static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        size_t i = 0;
        uint64_t v = b;
        while (i < 6 && v >= 1024 && v % 1024 == 0) {
                v /= 1024;
                i++;
        }
        snprintf(buf, n, "%" PRIu64 " %s", v, u[i]);
}

void aidp_profiles_fmt_duration(char *buf, size_t n, uint64_t s)
{
        struct aidp_sb sb = {0};
        uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
        if (d)
                aidp_profiles_sb_printf(&sb, "%" PRIu64 "d", d);
        if (h)
                aidp_profiles_sb_printf(&sb, "%" PRIu64 "h", h);
        if (m)
                aidp_profiles_sb_printf(&sb, "%" PRIu64 "m", m);
        if (sec || !s)
                aidp_profiles_sb_printf(&sb, "%" PRIu64 "s", sec);
        snprintf(buf, n, "%s", sb.s && !sb.oom ? sb.s : "?");
        aidp_profiles_sb_free(&sb);
}

/* rlimit names: here with the other units, so that a command line that only
 * parses them (aidp-run) links no seccomp or capability library. */
static const char *const rlimit_names[] = {
        [RLIMIT_CPU] = "cpu",           [RLIMIT_FSIZE] = "fsize",
        [RLIMIT_DATA] = "data",         [RLIMIT_STACK] = "stack",
        [RLIMIT_CORE] = "core",         [RLIMIT_RSS] = "rss",
        [RLIMIT_NPROC] = "nproc",       [RLIMIT_NOFILE] = "nofile",
        [RLIMIT_MEMLOCK] = "memlock",   [RLIMIT_AS] = "as",
        [RLIMIT_LOCKS] = "locks",       [RLIMIT_SIGPENDING] = "sigpending",
        [RLIMIT_MSGQUEUE] = "msgqueue", [RLIMIT_NICE] = "nice",
        [RLIMIT_RTPRIO] = "rtprio",     [RLIMIT_RTTIME] = "rttime",
};
_Static_assert(sizeof rlimit_names / sizeof rlimit_names[0] <= AIDP_RLIMIT_SLOTS,
               "rlimit table larger than the profile's slots");

int aidp_profiles_rlimit_parse(const char *s)
{
        if (!strncasecmp(s, "RLIMIT_", 7))
                s += 7;
        for (size_t i = 0; i < sizeof rlimit_names / sizeof rlimit_names[0]; i++)
                if (rlimit_names[i] && !strcasecmp(s, rlimit_names[i]))
                        return (int)i;
        return -1;
}

const char *aidp_profiles_rlimit_name(int r)
{
        if (r < 0 || (size_t)r >= sizeof rlimit_names / sizeof rlimit_names[0] || !rlimit_names[r])
                return "?";
        return rlimit_names[r];
}
