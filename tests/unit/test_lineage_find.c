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

Test(lineage_find, a_torn_tail_longer_than_a_read_is_no_record)
{
        /* The COMPLETE cut short after 150 KiB: more than two 64 KiB reads
         * without a '\n', then the START. */
        FILE *f = log_new();
        rec(f, "START", A, "2026-12-07T05:00:00.100Z", 0);
        fprintf(f, "{\"eventType\":\"COMPLETE\",\"eventTime\":\"2026-12-07T05:00:01.000Z\","
                   "\"run\":{\"runId\":\"" A "\",\"facets\":{\"pad\":\"");
        for (int i = 0; i < 150000; i++)
                fputc('x', f);
        fclose(f);
        char t[16] = "";
        cr_assert_eq(find(A, 0, t), 0, "a torn tail of 150 KiB counted as a record");
        /* Whole, it counts. */
        f = fopen(path, "a");
        fprintf(f, "\"}}}\n");
        fclose(f);
        cr_assert_eq(find(A, 0, t), 1);
        cr_assert_str_eq(t, "COMPLETE");
}

Test(lineage_find, a_log_that_is_one_torn_line_has_no_record)
{
        FILE *f = log_new();
        fprintf(f, "{\"eventType\":\"START\",\"eventTime\":\"2026-12-07T05:00:00.100Z\","
                   "\"run\":{\"runId\":\"" A "\"}}");
        fclose(f);
        char t[16] = "";
        cr_assert_eq(find(A, 0, t), 0);
        f = log_new(); /* empty */
        fclose(f);
        cr_assert_eq(find(A, 0, t), 0);
}

Test(lineage_find, empty_lines_are_skipped)
{
        FILE *f = log_new();
        fputs("\n\n", f);
        rec(f, "START", A, "2026-12-07T05:00:00.100Z", 0);
        fputs("\n", f);
        rec(f, "FAIL", A, "2026-12-07T05:00:01.000Z", 0);
        fputs("\n\n", f);
        fclose(f);
        char t[16] = "";
        cr_assert_eq(find(A, 0, t), 1);
        cr_assert_str_eq(t, "FAIL");
}

/* The first record of a rotated log: an OTHER naming its archive. */
static void link_rec(FILE *f, const char *archive, const char *time)
{
        fprintf(f,
                "{\"eventType\":\"OTHER\",\"eventTime\":\"%s\",\"run\":{\"runId\":\"%s\","
                "\"facets\":{\"aidp_rotation\":{\"previous\":{\"log\":\"%s\",\"seq\":2,"
                "\"hash\":\"%s\",\"mac\":\"%s\",\"file\":\"%s\"}}}}}\n",
                time, B, "0123456789abcdef0123456789abcdef",
                "0000000000000000000000000000000000000000000000000000000000000000",
                "0000000000000000000000000000000000000000000000000000000000000000", archive);
}

/* A run under way while the log rotated: its START in the archive, its
 * COMPLETE in the new log. Before, the new log alone was read: no START
 * there, so no end, and gc appended ABORT after the COMPLETE. */
Test(lineage_find, a_run_that_spans_a_rotation_finds_its_start_in_the_archive)
{
        char archive[160];
        snprintf(archive, sizeof archive, "%s.0123456789abcdef0123456789abcdef", path);
        FILE *f = fopen(archive, "w");
        cr_assert_not_null(f);
        rec(f, "START", A, "2026-12-07T05:00:00.100Z", 0);
        fclose(f);
        f = log_new();
        link_rec(f, strrchr(archive, '/') + 1, "2026-12-07T05:00:00.500Z");
        rec(f, "COMPLETE", A, "2026-12-07T05:00:01.000Z", 0);
        fclose(f);
        char t[16] = "";
        int r = find(A, 1796619600, t);      /* the journal: 05:00:00 */
        int r_late = find(A, 1796620200, t); /* a journal younger than the rotation */
        unlink(archive);
        cr_assert_eq(r, 1, "the run's START in the archive was not found");
        cr_assert_str_eq(t, "COMPLETE");
        cr_assert_eq(r_late, 0, "a START older than the journal counted");
}
