/* aidp_lineage_find_end (supervisor/lineage/lineage_find.h): gc's look-up of a
 * run's end record, reading the log backwards. Synthetic logs: the records'
 * chain members do not matter to it, only eventType, eventTime and run.runId,
 * one JSON object per line. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/lineage/lineage_find.h"

#define A "0a8e3a5c-1d2b-4c6e-9f00-000000000001"
#define B "0a8e3a5c-1d2b-4c6e-9f00-000000000002"

static char path[64];

static void setup(void)
{
        snprintf(path, sizeof path, "/tmp/aidp-find-XXXXXX");
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        close(fd);
}

static void teardown(void)
{
        unlink(path);
}

TestSuite(lineage_find, .init = setup, .fini = teardown);

/* One record; pad (bytes of a facet) makes it long. */
static void rec(FILE *f, const char *type, const char *id, const char *time, size_t pad)
{
        fprintf(f,
                "{\"eventType\":\"%s\",\"eventTime\":\"%s\",\"run\":{\"runId\":\"%s\","
                "\"facets\":{\"pad\":\"",
                type, time, id);
        for (size_t i = 0; i < pad; i++)
                fputc('x', f);
        fprintf(f, "\"}}}\n");
}

static FILE *log_new(void)
{
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        return f;
}

static int find(const char *id, long long not_before, char *type)
{
        return aidp_lineage_find_end(path, id, not_before, type, 16);
}

Test(lineage_find, an_end_after_the_runs_start_is_found_others_are_not)
{
        FILE *f = log_new();
        rec(f, "START", A, "2026-12-07T05:00:00.100Z", 0);
        rec(f, "START", B, "2026-12-07T05:00:00.200Z", 0);
        rec(f, "COMPLETE", A, "2026-12-07T05:00:01.000Z", 0);
        fclose(f);
        char t[16] = "";
        cr_assert_eq(find(A, 0, t), 1);
        cr_assert_str_eq(t, "COMPLETE");
        cr_assert_eq(find(B, 0, t), 0, "B has no end record");
        cr_assert_eq(find("0a8e3a5c-1d2b-4c6e-9f00-000000000003", 0, t), 0);
}

Test(lineage_find, a_run_id_used_again_is_told_apart_by_its_start_time)
{
        /* The earlier run of A ended; the later one (journal made at
         * 05:10:00) died before its START: its end is not on record. */
        FILE *f = log_new();
        rec(f, "START", A, "2026-12-07T05:00:00.100Z", 0);
        rec(f, "FAIL", A, "2026-12-07T05:00:02.000Z", 0);
        fclose(f);
        char t[16] = "";
        long long later = 1796620200; /* 2026-12-07T05:10:00Z */
        cr_assert_eq(find(A, later, t), 0);
        cr_assert_eq(find(A, 1796619600, t), 1, "05:00:00, the START's own second");
        cr_assert_str_eq(t, "FAIL");
        /* The later run's START, then no end: none, though the earlier
         * run of the same id has one. */
        f = fopen(path, "a");
        rec(f, "START", A, "2026-12-07T05:10:00.500Z", 0);
        fclose(f);
        cr_assert_eq(find(A, later, t), 0);
        cr_assert_eq(find(A, 0, t), 0);
}

Test(lineage_find, a_torn_last_line_is_no_record)
{
        FILE *f = log_new();
        rec(f, "START", A, "2026-12-07T05:00:00.100Z", 0);
        fprintf(f, "{\"eventType\":\"COMPLETE\",\"eventTime\":\"2026-12-07T05:00:01.000Z\","
                   "\"run\":{\"runId\":\"" A "\",\"facets\":{}}}");
        fclose(f);
        char t[16] = "";
        cr_assert_eq(find(A, 0, t), 0, "an append cut short counted as a record");
}

Test(lineage_find, records_longer_than_a_read_and_across_its_edges)
{
        /* 64 KiB reads: records of 50-200 KiB, the START far back, B's
         * records between, and the run id inside another record's text. */
        FILE *f = log_new();
        rec(f, "START", B, "2026-12-07T05:00:00.000Z", 1000);
        rec(f, "START", A, "2026-12-07T05:00:00.100Z", 150000);
        for (int i = 0; i < 7; i++)
                rec(f, "START", B, "2026-12-07T05:00:00.300Z", 50000 + 13 * (size_t)i);
        fprintf(f, "{\"eventType\":\"COMPLETE\",\"eventTime\":\"2026-12-07T05:00:03.000Z\","
                   "\"run\":{\"runId\":\"" B "\",\"facets\":{\"note\":\"" A "\"}}}\n");
        rec(f, "ABORT", A, "2026-12-07T05:00:04.000Z", 200000);
        rec(f, "START", B, "2026-12-07T05:00:05.000Z", 70000);
        fclose(f);
        char t[16] = "";
        cr_assert_eq(find(A, 0, t), 1);
        cr_assert_str_eq(t, "ABORT");
        cr_assert_eq(find(B, 0, t), 0, "B's last START has no end after it");
}

Test(lineage_find, a_missing_log_is_an_error_not_an_answer)
{
        unlink(path);
        char t[16] = "";
        cr_assert_lt(find(A, 0, t), 0);
}
