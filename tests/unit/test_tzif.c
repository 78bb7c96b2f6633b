/* The TZif reader (residency/tzif.c, residency/tz_rule.c) against glibc.
 *
 * For each zone the system's zone file is read and the offset at many
 * instants (hourly 1972-2100, and every minute around each change, with the
 * second before it) is compared with glibc's localtime_r run in a forked
 * child with TZ set: the child is single-threaded, so setting TZ there is
 * safe, and the parent's environment is never touched. Instants after the
 * last transition of the file exercise the footer's TZ string. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "residency/tzif.h"

/* glibc's offsets for instants t[0..n) in zone `tz` (a TZ value). */
static void glibc_offsets(const char *tz, const int64_t *t, size_t n, long *out)
{
        int fd[2];
        cr_assert_eq(pipe(fd), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(fd[0]);
                if (setenv("TZ", tz, 1) < 0)
                        _exit(2);
                tzset();
                for (size_t i = 0; i < n; i++) {
                        time_t tt = (time_t)t[i];
                        struct tm tm;
                        out[i] = localtime_r(&tt, &tm) ? tm.tm_gmtoff : 999999;
                }
                size_t done = 0, all = n * sizeof *out;
                while (done < all) {
                        ssize_t w = write(fd[1], (char *)out + done, all - done);
                        if (w <= 0)
                                _exit(3);
                        done += (size_t)w;
                }
                _exit(0);
        }
        close(fd[1]);
        size_t got = 0, want = n * sizeof *out;
        while (got < want) {
                ssize_t r = read(fd[0], (char *)out + got, want - got);
                if (r <= 0)
                        break;
                got += (size_t)r;
        }
        close(fd[0]);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "glibc child failed for %s", tz);
        cr_assert_eq(got, want);
}

static uint8_t *read_zone(const char *zone, size_t *len)
{
        char path[256];
        snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", zone);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s: %s (install tzdata)", path, strerror(errno));
        uint8_t *b = malloc(1 << 20);
        *len = fread(b, 1, 1 << 20, f);
        fclose(f);
        return b;
}

static void compare(const char *zone, const uint8_t *buf, size_t len, const int64_t *t, size_t n)
{
        char tz[128];
        snprintf(tz, sizeof tz, ":%s", zone);
        long *want = calloc(n, sizeof *want);
        glibc_offsets(tz, t, n, want);
        for (size_t i = 0; i < n; i++) {
                long got = 0;
                cr_assert_eq(aidp_residency_tzif_offset(buf, len, t[i], &got), 0, "%s at %lld",
                             zone, (long long)t[i]);
                cr_assert_eq(got, want[i], "%s at %lld: %ld, glibc says %ld", zone, (long long)t[i],
                             got, want[i]);
        }
        free(want);
}

/* Hourly over the years, then every minute (and the second before it) within
 * two hours of each change that the hourly pass saw. */
static void check_zone(const char *zone)
{
        size_t len;
        uint8_t *buf = read_zone(zone, &len);
        const int64_t from = 63072000 /* 1972-01-01 */, to = 4102444800 /* 2100-01-01 */;
        size_t n = (size_t)((to - from) / 3600);
        int64_t *t = malloc(n * sizeof *t);
        for (size_t i = 0; i < n; i++)
                t[i] = from + (int64_t)i * 3600;
        compare(zone, buf, len, t, n);

        char tz[128];
        snprintf(tz, sizeof tz, ":%s", zone);
        long *off = calloc(n, sizeof *off);
        glibc_offsets(tz, t, n, off);
        size_t cap = 1 << 18, m = 0, changes = 0;
        int64_t *edge = malloc(cap * sizeof *edge);
        for (size_t i = 1; i < n; i++) {
                if (off[i] == off[i - 1])
                        continue;
                changes++;
                for (int64_t s = t[i] - 7200; s <= t[i] + 3600 && m + 2 <= cap; s += 60) {
                        edge[m++] = s - 1;
                        edge[m++] = s;
                }
        }
        if (m)
                compare(zone, buf, len, edge, m);
        if (strcmp(zone, "UTC"))
                cr_assert_gt(changes, 100, "%s: only %zu offset changes seen", zone, changes);
        free(edge);
        free(off);
        free(t);
        free(buf);
}

Test(tzif, europe_berlin_matches_glibc, .timeout = 120)
{
        check_zone("Europe/Berlin");
}

Test(tzif, america_new_york_matches_glibc, .timeout = 120)
{
        check_zone("America/New_York");
}

/* Half-hour daylight saving time, in the southern hemisphere. */
Test(tzif, australia_lord_howe_matches_glibc, .timeout = 120)
{
        check_zone("Australia/Lord_Howe");
}

Test(tzif, utc_matches_glibc, .timeout = 120)
{
        check_zone("UTC");
}

/* Footer strings alone, including forms zic rarely writes (Julian days,
 * negative times, times past 24h), against glibc given the same string as TZ. */
Test(tzif, tz_strings_match_glibc, .timeout = 120)
{
        static const char *const rules[] = {
                "CET-1CEST,M3.5.0,M10.5.0/3",
                "EST5EDT,M3.2.0,M11.1.0",
                "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
                "AEST-10AEDT,M10.1.0,M4.1.0/3",
                "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",
                "IST-2IDT,M3.4.4/26,M10.5.0",
                "XXX3YYY,J60/1,J300/1",
                "XXX-5:30YYY-6:45,100/0,250/23:59:59",
                "UTC0",
                "<+0545>-5:45",
        };
        const int64_t from = 946684800 /* 2000 */, to = 1262304000 /* 2010 */;
        size_t n = (size_t)((to - from) / 1800);
        int64_t *t = malloc(n * sizeof *t);
        long *want = calloc(n, sizeof *want);
        for (size_t i = 0; i < n; i++)
                t[i] = from + (int64_t)i * 1800 - 1;
        for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
                glibc_offsets(rules[r], t, n, want);
                for (size_t i = 0; i < n; i++) {
                        long got = 0;
                        cr_assert_eq(aidp_residency_tz_rule_offset(rules[r], strlen(rules[r]), t[i],
                                                                   &got),
                                     0, "%s", rules[r]);
                        cr_assert_eq(got, want[i], "%s at %lld: %ld, glibc says %ld", rules[r],
                                     (long long)t[i], got, want[i]);
                }
        }
        free(want);
        free(t);
}

/* A DST zone without a rule gets the current US rule. (glibc would read the
 * tz database's posixrules file instead; zic never writes such a footer.) */
Test(tzif, dst_without_rule_is_the_us_rule)
{
        static const char with[] = "EST5EDT,M3.2.0,M11.1.0";
        for (int64_t t = 1704067200 /* 2024 */; t < 1735689600; t += 1800) {
                long a = 0, b = 1;
                cr_assert_eq(aidp_residency_tz_rule_offset("EST5EDT", 7, t, &a), 0);
                cr_assert_eq(aidp_residency_tz_rule_offset(with, sizeof with - 1, t, &b), 0);
                cr_assert_eq(a, b, "at %lld", (long long)t);
        }
        long off;
        cr_assert_eq(aidp_residency_tz_rule_offset("EST5EDT", 7, 1720000000 /* July */, &off), 0);
        cr_assert_eq(off, -14400);
}

Test(tzif, bad_tz_strings_are_refused)
{
        static const char *const bad[] = {
                "",
                "C",
                "CET",
                "CET-1CEST,",
                "CET-1CEST,M3.5.0",
                "<+1>-1",
                "CET-25",
                "CET-1CEST,M13.1.0,M10.5.0",
                "CET-1CEST,J0,J10",
                "CET-1 ",
                "CET-1CEST,M3.5.0,M10.5.0/168",
                "CET-1CEST,M3.6.0,M10.5.0",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                long off = 12345;
                cr_assert_eq(aidp_residency_tz_rule_offset(bad[i], strlen(bad[i]), 0, &off),
                             -EINVAL, "'%s' accepted", bad[i]);
                cr_assert_eq(off, 12345, "'%s' wrote a result", bad[i]);
        }
}

/* Every truncation of a real file is refused, never read past its end
 * (ASan watches), and the full file is accepted. */
Test(tzif, truncated_and_corrupt_files_are_refused)
{
        size_t len;
        uint8_t *buf = read_zone("Europe/Berlin", &len);
        long off;
        for (size_t l = 0; l < len; l++) {
                uint8_t *cut = malloc(l ? l : 1);
                memcpy(cut, buf, l);
                cr_assert_eq(aidp_residency_tzif_offset(cut, l, 1700000000, &off), -EINVAL,
                             "accepted %zu of %zu bytes", l, len);
                free(cut);
        }
        cr_assert_eq(aidp_residency_tzif_offset(buf, len, 1700000000, &off), 0);
        cr_assert_eq(off, 3600);
        uint8_t *bad = malloc(len);
        memcpy(bad, buf, len);
        bad[0] = 'X'; /* magic */
        cr_assert_eq(aidp_residency_tzif_offset(bad, len, 0, &off), -EINVAL);
        memcpy(bad, buf, len);
        bad[4] = '9'; /* version */
        cr_assert_eq(aidp_residency_tzif_offset(bad, len, 0, &off), -EINVAL);
        cr_assert_eq(aidp_residency_tzif_offset(buf, len, INT64_MAX, &off), -ERANGE);
        free(bad);
        free(buf);
}
