/* POSIX TZ strings as found in the footer of a TZif file (RFC 8536 3.3):
 *
 *   std offset [dst [offset] [,start[/time],end[/time]]]
 *
 * e.g. "CET-1CEST,M3.5.0,M10.5.0/3" or "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0".
 * The offset is POSIX's, positive west of Greenwich, so it is negated into
 * the east-positive offset the rest of aidp uses. Transition times may be
 * -167..167 hours (the RFC's extension of POSIX). A DST zone without a rule
 * (which zic never writes) gets the current US rule, M3.2.0,M11.1.0, as in
 * tzcode; glibc would read the tz database's posixrules file instead.
 *
 * Which year a transition belongs to is taken from the instant in UTC, as
 * glibc does (tzset.c __tz_compute), so both agree near New Year too. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "residency/tzif.h"

struct tz_date {
        char kind; /* 'J': Julian 1..365 without Feb 29, 'D': 0..365, 'M': month.week.day */
        int n, m, w, d;
};

struct tz_rule {
        long std_off, dst_off; /* east of UTC, seconds */
        bool has_dst;
        struct tz_date start, end;
        long start_time, end_time; /* local seconds after midnight */
};

struct scan {
        const char *p, *end;
};

static bool at_end(const struct scan *s)
{
        return s->p >= s->end;
}

static bool is_digit(const struct scan *s)
{
        return !at_end(s) && *s->p >= '0' && *s->p <= '9';
}

static bool is_alpha(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int number(struct scan *s, long max, long *ret)
{
        long v = 0;
        if (!is_digit(s))
                return -EINVAL;
        while (is_digit(s)) {
                v = v * 10 + (*s->p++ - '0');
                if (v > max)
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

/* A zone abbreviation: three or more letters, or <...> with letters,
 * digits, '+' and '-' (three or more inside). */
static int name(struct scan *s)
{
        const char *b = s->p;
        if (!at_end(s) && *s->p == '<') {
                s->p++;
                b = s->p;
                while (!at_end(s) && *s->p != '>') {
                        char c = *s->p;
                        if (!is_alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-')
                                return -EINVAL;
                        s->p++;
                }
                if (at_end(s) || s->p - b < 3)
                        return -EINVAL;
                s->p++;
                return 0;
        }
        while (!at_end(s) && is_alpha(*s->p))
                s->p++;
        return s->p - b >= 3 ? 0 : -EINVAL;
}

/* [+-]hh[:mm[:ss]] with hh <= max_h; seconds, signed. */
static int hms(struct scan *s, long max_h, long *ret)
{
        long sign = 1, h, m = 0, sec = 0;
        if (!at_end(s) && (*s->p == '+' || *s->p == '-'))
                sign = *s->p++ == '-' ? -1 : 1;
        if (number(s, max_h, &h) < 0)
                return -EINVAL;
        if (!at_end(s) && *s->p == ':') {
                s->p++;
                if (number(s, 59, &m) < 0)
                        return -EINVAL;
                if (!at_end(s) && *s->p == ':') {
                        s->p++;
                        if (number(s, 59, &sec) < 0)
                                return -EINVAL;
                }
        }
        *ret = sign * (h * 3600 + m * 60 + sec);
        return 0;
}

static int date(struct scan *s, struct tz_date *d)
{
        long a, b, c;
        memset(d, 0, sizeof *d);
        if (!at_end(s) && *s->p == 'J') {
                s->p++;
                if (number(s, 365, &a) < 0 || a < 1)
                        return -EINVAL;
                d->kind = 'J';
                d->n = (int)a;
                return 0;
        }
        if (!at_end(s) && *s->p == 'M') {
                s->p++;
                if (number(s, 12, &a) < 0 || a < 1 || at_end(s) || *s->p++ != '.' ||
                    number(s, 5, &b) < 0 || b < 1 || at_end(s) || *s->p++ != '.' ||
                    number(s, 6, &c) < 0)
                        return -EINVAL;
                d->kind = 'M';
                d->m = (int)a;
                d->w = (int)b;
                d->d = (int)c;
                return 0;
        }
        if (number(s, 365, &a) < 0)
                return -EINVAL;
        d->kind = 'D';
        d->n = (int)a;
        return 0;
}

/* ",date[/time]" */
static int change(struct scan *s, struct tz_date *d, long *t)
{
        if (at_end(s) || *s->p++ != ',' || date(s, d) < 0)
                return -EINVAL;
        *t = 7200; /* 02:00 local, POSIX's default */
        if (!at_end(s) && *s->p == '/') {
                s->p++;
                return hms(s, 167, t);
        }
        return 0;
}

static int parse_rule(const char *text, size_t len, struct tz_rule *r)
{
        struct scan s = {text, text + len};
        long off;
        memset(r, 0, sizeof *r);
        if (name(&s) < 0 || hms(&s, 24, &off) < 0)
                return -EINVAL;
        r->std_off = r->dst_off = -off;
        if (at_end(&s))
                return 0;
        if (name(&s) < 0)
                return -EINVAL;
        r->has_dst = true;
        r->dst_off = r->std_off + 3600;
        if (!at_end(&s) && *s.p != ',') {
                if (hms(&s, 24, &off) < 0)
                        return -EINVAL;
                r->dst_off = -off;
        }
        if (at_end(&s)) {
                static const char us[] = ",M3.2.0,M11.1.0";
                struct scan d = {us, us + sizeof us - 1};
                change(&d, &r->start, &r->start_time);
                change(&d, &r->end, &r->end_time);
                return 0;
        }
        if (change(&s, &r->start, &r->start_time) < 0 || change(&s, &r->end, &r->end_time) < 0)
                return -EINVAL;
        return at_end(&s) ? 0 : -EINVAL;
}

static bool leap(int64_t y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static int64_t year_of_days(int64_t z)
{
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        return yoe + era * 400 + (mp >= 10);
}

static int64_t floor_div(int64_t a, int64_t b)
{
        return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* The day (days since the epoch) on which date d falls in year y. */
static int64_t rule_day(const struct tz_date *d, int64_t y)
{
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int64_t jan1 = days_from_civil(y, 1, 1);
        if (d->kind == 'J')
                return jan1 + d->n - 1 + (leap(y) && d->n >= 60);
        if (d->kind == 'D')
                return jan1 + d->n;
        int64_t first = days_from_civil(y, d->m, 1);
        int dow = (int)(((first % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
        int len = mdays[d->m - 1] + (d->m == 2 && leap(y));
        int day = (d->d - dow + 7) % 7 + (d->w - 1) * 7;
        while (day >= len)
                day -= 7;
        return first + day;
}

int aidp_residency_tz_rule_offset(const char *text, size_t len, int64_t instant, long *ret)
{
        struct tz_rule r;
        if (parse_rule(text, len, &r) < 0)
                return -EINVAL;
        if (instant > AIDP_RESIDENCY_TZ_MAX_INSTANT || instant < -AIDP_RESIDENCY_TZ_MAX_INSTANT)
                return -ERANGE;
        if (!r.has_dst) {
                *ret = r.std_off;
                return 0;
        }
        int64_t y = year_of_days(floor_div(instant, 86400));
        /* Start in local standard time, end in local daylight time. */
        int64_t start = rule_day(&r.start, y) * 86400 + r.start_time - r.std_off;
        int64_t end = rule_day(&r.end, y) * 86400 + r.end_time - r.dst_off;
        bool dst = start <= end ? instant >= start && instant < end
                                : !(instant >= end && instant < start);
        *ret = dst ? r.dst_off : r.std_off;
        return 0;
}
