/* Time zones through the system tz database (supervisor/run/policy_clock.c) and
 * the pure window arithmetic, checked against instants computed
 * independently (Python zoneinfo). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "residency/policy.h"
#include "supervisor/run/policy_clock.h"

static void load(const char *yaml, struct aidp_access_policy *ap)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_residency_parse_access(yaml, strlen(yaml), "a.yaml", ap, &err), 0, "%s",
                     err.msg);
}

static const char zones_yaml[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n"
                                 "  r:\n    operations: [run]\n    time_windows:\n"
                                 "      - {time_zone: Europe/Berlin}\n"
                                 "      - {time_zone: America/New_York}\n"
                                 "      - {time_zone: UTC}\n"
                                 "      - {time_zone: Asia/Kolkata}\n";

static long offset_of(const struct aidp_policy_clock *c, const char *zone)
{
        for (size_t i = 0; i < c->n_zones; i++)
                if (!strcmp(c->zones[i].zone, zone))
                        return c->zones[i].utc_offset;
        cr_assert_fail("zone %s not resolved", zone);
        return 0;
}

Test(clock, offsets_follow_daylight_saving)
{
        struct aidp_access_policy ap;
        struct aidp_policy_clock c;
        aidp_error err = {0};
        load(zones_yaml, &ap);

        cr_assert_eq(aidp_policy_clock_resolve(&ap, 1714557600 /* 2024-05-01 */, &c, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(c.n_zones, 3, "UTC needs no lookup");
        cr_assert_eq(offset_of(&c, "Europe/Berlin"), 7200);
        cr_assert_eq(offset_of(&c, "America/New_York"), -14400);
        cr_assert_eq(offset_of(&c, "Asia/Kolkata"), 19800);
        aidp_policy_clock_free(&c);

        cr_assert_eq(aidp_policy_clock_resolve(&ap, 1705330800 /* 2024-01-15 */, &c, &err), 0);
        cr_assert_eq(offset_of(&c, "Europe/Berlin"), 3600);
        cr_assert_eq(offset_of(&c, "America/New_York"), -18000);
        aidp_policy_clock_free(&c);

        /* New York springs forward at 2024-03-10 07:00Z. */
        cr_assert_eq(aidp_policy_clock_resolve(&ap, 1710053940, &c, &err), 0);
        cr_assert_eq(offset_of(&c, "America/New_York"), -18000);
        aidp_policy_clock_free(&c);
        cr_assert_eq(aidp_policy_clock_resolve(&ap, 1710054000, &c, &err), 0);
        cr_assert_eq(offset_of(&c, "America/New_York"), -14400);
        aidp_policy_clock_free(&c);
        aidp_residency_access_free(&ap);
}

Test(clock, restores_the_callers_tz)
{
        struct aidp_access_policy ap;
        struct aidp_policy_clock c;
        aidp_error err = {0};
        load(zones_yaml, &ap);
        setenv("TZ", "Australia/Sydney", 1);
        cr_assert_eq(aidp_policy_clock_resolve(&ap, 1714557600, &c, &err), 0);
        cr_assert_str_eq(getenv("TZ"), "Australia/Sydney");
        aidp_policy_clock_free(&c);
        unsetenv("TZ");
        cr_assert_eq(aidp_policy_clock_resolve(&ap, 1714557600, &c, &err), 0);
        cr_assert_null(getenv("TZ"));
        aidp_policy_clock_free(&c);
        aidp_residency_access_free(&ap);
}

Test(clock, unknown_zone_is_a_config_error_not_utc)
{
        static const char y[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n"
                                "  r:\n    operations: [run]\n    time_windows:\n"
                                "      - {time_zone: Mars/Olympus_Mons}\n";
        struct aidp_access_policy ap;
        struct aidp_policy_clock c;
        aidp_error err = {0};
        load(y, &ap);
        cr_assert_lt(aidp_policy_clock_resolve(&ap, 1714557600, &c, &err), 0);
        cr_assert_eq(err.status, AIDP_EXIT_CONFIG);
        cr_assert(
                strstr(err.msg, "a.yaml: time zone 'Mars/Olympus_Mons' is not in the tz database"),
                "%s", err.msg);
        aidp_residency_access_free(&ap);
}

Test(clock, a_file_that_is_not_tzif_is_refused)
{
        static const char y[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n"
                                "  r:\n    operations: [run]\n    time_windows:\n"
                                "      - {time_zone: zone.tab}\n";
        struct aidp_access_policy ap;
        struct aidp_policy_clock c;
        aidp_error err = {0};
        /* '.' is not allowed in zone names at all: the parser refuses it first. */
        cr_assert_lt(aidp_residency_parse_access(y, strlen(y), "a.yaml", &ap, &err), 0);
        static const char y2[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n"
                                 "  r:\n    operations: [run]\n    time_windows:\n"
                                 "      - {time_zone: tzdata_not_a_zone}\n";
        load(y2, &ap);
        char dir[] = "/tmp/aidp-tzdir-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char path[256];
        snprintf(path, sizeof path, "%s/tzdata_not_a_zone", dir);
        FILE *f = fopen(path, "w");
        fputs("# not a zone\n", f);
        fclose(f);
        int r = aidp_policy_clock_resolve_in(dir, &ap, 1714557600, &c, &err);
        unlink(path);
        rmdir(dir);
        cr_assert_lt(r, 0);
        cr_assert(strstr(err.msg, "is not a tz database file"), "%s", err.msg);
        aidp_residency_access_free(&ap);
}

Test(clock, local_time_arithmetic)
{
        int wday, minute;
        aidp_residency_local_time(0, 0, &wday, &minute);
        cr_assert_eq(wday, 4, "1970-01-01 was a Thursday");
        cr_assert_eq(minute, 0);
        aidp_residency_local_time(1714771800, 7200, &wday, &minute); /* Fri 23:30 Berlin */
        cr_assert_eq(wday, 5);
        cr_assert_eq(minute, 23 * 60 + 30);
        aidp_residency_local_time(1714771800, 0, &wday, &minute); /* Fri 21:30Z */
        cr_assert_eq(minute, 21 * 60 + 30);
        aidp_residency_local_time(-60, 0, &wday, &minute); /* 1969-12-31 23:59, a Wednesday */
        cr_assert_eq(wday, 3);
        cr_assert_eq(minute, 23 * 60 + 59);
        aidp_residency_local_time(1735684200, 3600, &wday, &minute); /* Tue 2024-12-31 23:30 */
        cr_assert_eq(wday, 2);
        cr_assert_eq(minute, 23 * 60 + 30);
}

Test(clock, window_membership_across_midnight)
{
        struct aidp_time_window fri_night = {.days = 1u << 5, .start = 22 * 60, .end = 6 * 60};
        cr_assert(aidp_residency_window_contains(&fri_night, 5, 22 * 60));
        cr_assert(aidp_residency_window_contains(&fri_night, 5, 23 * 60 + 59));
        cr_assert(aidp_residency_window_contains(&fri_night, 6, 0));
        cr_assert(aidp_residency_window_contains(&fri_night, 6, 5 * 60 + 59));
        cr_assert(!aidp_residency_window_contains(&fri_night, 6, 6 * 60));
        cr_assert(!aidp_residency_window_contains(&fri_night, 5, 3 * 60), "Thursday's night");
        cr_assert(!aidp_residency_window_contains(&fri_night, 6, 23 * 60));
        cr_assert(!aidp_residency_window_contains(&fri_night, 5, 21 * 60 + 59));
        /* Saturday night runs into Sunday (wday 0): the week wraps. */
        struct aidp_time_window sat_night = {.days = 1u << 6, .start = 23 * 60, .end = 60};
        cr_assert(aidp_residency_window_contains(&sat_night, 0, 30));
        cr_assert(!aidp_residency_window_contains(&sat_night, 1, 30));
        struct aidp_time_window whole = {.days = 0x7f, .start = 0, .end = 1440};
        for (int d = 0; d < 7; d++)
                cr_assert(aidp_residency_window_contains(&whole, d, 1439));
}

/* The caller's TZDIR does not choose what the (root) supervisor reads, and
 * TZ is neither read nor changed. */
Test(clock, environment_is_neither_trusted_nor_changed)
{
        struct aidp_access_policy ap;
        struct aidp_policy_clock c;
        aidp_error err = {0};
        load(zones_yaml, &ap);
        setenv("TZDIR", "/nonexistent-aidp-tzdir", 1);
        setenv("TZ", ":Asia/Tokyo", 1);
        cr_assert_eq(aidp_policy_clock_resolve(&ap, 1714557600, &c, &err), 0, "%s", err.msg);
        cr_assert_eq(offset_of(&c, "Europe/Berlin"), 7200);
        cr_assert_str_eq(getenv("TZ"), ":Asia/Tokyo");
        unsetenv("TZDIR");
        unsetenv("TZ");
        aidp_policy_clock_free(&c);
        aidp_residency_access_free(&ap);
}
