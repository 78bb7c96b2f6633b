/* The pure rules of the lineage store (codec/lineage_tail.h), from buffers: the
 * fixed-size anchor block, finding the last complete line, whether a tail may be
 * appended to under its anchor, and the SIEM summary of a security event. */
#define _GNU_SOURCE /* memrchr */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "supervisor/lineage/codec/lineage_tail.h"

static const unsigned char key[AIDP_LINEAGE_KEY_LEN] = "0123456789abcdef0123456789abcdef";

static void hash_of(char c, char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        memset(out, c, AIDP_LINEAGE_HASH_HEX);
        out[AIDP_LINEAGE_HASH_HEX] = '\0';
}

Test(lineage_tail, anchor_block_is_the_anchor_line_padded_to_one_sector)
{
        struct aidp_lineage_anchor a = {.seq = 42}, back = {0};
        hash_of('a', a.hash);
        char block[AIDP_LINEAGE_ANCHOR_SIZE];
        cr_assert_eq(aidp_lineage_anchor_block(&a, key, block), 0);
        cr_assert_eq(block[AIDP_LINEAGE_ANCHOR_SIZE - 1], '\n');
        cr_assert_null(memchr(block, '\n', AIDP_LINEAGE_ANCHOR_SIZE - 1), "one line only");
        const char *close = memrchr(block, '}', sizeof block);
        cr_assert_not_null(close);
        for (const char *p = close + 1; p < block + sizeof block - 1; p++)
                cr_assert_eq(*p, ' ', "padding at %td is not a space", p - block);
        aidp_error err = {0};
        cr_assert_eq(aidp_lineage_anchor_parse(block, sizeof block, key, &back, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(back.seq, 42);
        cr_assert_str_eq(back.hash, a.hash);
        /* The block is authenticated like the line it holds. */
        block[10] ^= 1;
        cr_assert_lt(aidp_lineage_anchor_parse(block, sizeof block, key, &back, &err), 0);
}

Test(lineage_tail, genesis_anchor_names_no_record)
{
        struct aidp_lineage_anchor a;
        aidp_lineage_anchor_genesis(&a);
        cr_assert_eq(a.seq, 0);
        cr_assert_str_eq(a.hash, AIDP_LINEAGE_ZERO_HASH);
        cr_assert_eq(strlen(AIDP_LINEAGE_ZERO_HASH), AIDP_LINEAGE_HASH_HEX);
}

Test(lineage_tail, last_line_in_a_whole_log)
{
        const char log[] = "one\ntwo\nthree\n";
        size_t start = 9, n = 9, end = 9;
        cr_assert_eq(aidp_lineage_last_line(log, strlen(log), true, &start, &n, &end), 1);
        cr_assert_eq(n, 5);
        cr_assert_eq(memcmp(log + start, "three", 5), 0);
        cr_assert_eq(end, strlen(log));
        /* A single line is found in a whole log, from its first byte. */
        cr_assert_eq(aidp_lineage_last_line("only\n", 5, true, &start, &n, &end), 1);
        cr_assert_eq(start, 0);
        cr_assert_eq(n, 4);
        cr_assert_eq(end, 5);
}

Test(lineage_tail, torn_tail_is_left_out_of_the_complete_part)
{
        const char log[] = "one\ntwo\ntorn wri";
        size_t start = 0, n = 0, end = 0;
        cr_assert_eq(aidp_lineage_last_line(log, strlen(log), true, &start, &n, &end), 1);
        cr_assert_eq(memcmp(log + start, "two", n), 0);
        cr_assert_eq(n, 3);
        cr_assert_eq(end, 8, "the complete part ends after 'two\\n'");
        /* Only a torn line: no complete line at all. */
        cr_assert_eq(aidp_lineage_last_line("torn", 4, true, &start, &n, &end), 0);
        cr_assert_eq(aidp_lineage_last_line("", 0, true, &start, &n, &end), 0);
}

Test(lineage_tail, a_window_too_short_to_tell_asks_for_more)
{
        size_t start = 0, n = 0, end = 0;
        /* The window holds the end of a line whose beginning lies before it. */
        cr_assert_eq(aidp_lineage_last_line("ree\n", 4, false, &start, &n, &end), -EAGAIN);
        /* No '\n' at all in a partial window. */
        cr_assert_eq(aidp_lineage_last_line("abc", 3, false, &start, &n, &end), -EAGAIN);
        /* Two '\n' in a partial window: the last line is complete. */
        cr_assert_eq(aidp_lineage_last_line("o\ntwo\n", 6, false, &start, &n, &end), 1);
        cr_assert_eq(start, 2);
        cr_assert_eq(n, 3);
}

static struct aidp_lineage_record rec(uint64_t seq, char prev, char hash)
{
        struct aidp_lineage_record r = {.seq = seq};
        hash_of(prev, r.prev);
        hash_of(hash, r.hash);
        return r;
}

Test(lineage_tail, tail_matching_the_anchor_or_records_awaiting_their_commit_may_be_appended_to)
{
        struct aidp_lineage_anchor a = {.seq = 5};
        hash_of('5', a.hash);
        struct aidp_lineage_record at = rec(5, '4', '5'), next = rec(6, '5', '6'),
                                   far = rec(9, '8', '9');
        cr_assert_null(aidp_lineage_tail_check(&at, false, &a, NULL));
        cr_assert_null(aidp_lineage_tail_check(&at, true, &a, NULL),
                       "a torn append after the anchor");
        cr_assert_null(aidp_lineage_tail_check(&next, false, &a, &next),
                       "an interrupted anchor update");
        cr_assert_null(aidp_lineage_tail_check(&far, false, &a, &next),
                       "records awaiting their group commit");
        cr_assert_null(aidp_lineage_tail_check(&far, true, &a, &next),
                       "records left by a crash, and a torn line after them");
        struct aidp_lineage_record empty = {.seq = 0};
        hash_of('0', empty.hash);
        cr_assert_null(aidp_lineage_tail_check(&empty, false, NULL, NULL), "a new log");
}

Test(lineage_tail, tails_that_would_bury_tampering_are_refused_with_a_reason)
{
        struct aidp_lineage_anchor a = {.seq = 5};
        hash_of('5', a.hash);
        struct aidp_lineage_record cut = rec(4, '3', '4'), edited = rec(5, '4', 'e'),
                                   forked = rec(6, 'f', '6'), next = rec(6, '5', '6'),
                                   far = rec(9, '8', '9'), empty = {.seq = 0},
                                   too_far = rec(5 + AIDP_LINEAGE_UNCOMMITTED_MAX + 1, '8', '9');
        hash_of('0', empty.hash);
        cr_assert(strstr(aidp_lineage_tail_check(&cut, false, &a, NULL), "cut from the end"));
        cr_assert(strstr(aidp_lineage_tail_check(&edited, false, &a, NULL), "differs"));
        cr_assert(strstr(aidp_lineage_tail_check(&forked, false, &a, &forked), "does not follow"));
        cr_assert(strstr(aidp_lineage_tail_check(&far, false, &a, &forked),
                         "past the anchor do not follow"));
        cr_assert(strstr(aidp_lineage_tail_check(&far, false, &a, NULL), "do not follow"),
                  "the record after the anchored one could not be read");
        cr_assert(strstr(aidp_lineage_tail_check(&far, false, &a, &far), "do not follow"),
                  "the record named as next is not the one after the anchored one");
        cr_assert(strstr(aidp_lineage_tail_check(&too_far, false, &a, &next), "further behind"));
        cr_assert(strstr(aidp_lineage_tail_check(&next, false, NULL, NULL), "no anchor"));
        cr_assert(strstr(aidp_lineage_tail_check(&empty, true, NULL, NULL), "no anchor"),
                  "a torn line without an anchor");
}

Test(lineage_tail, the_kth_last_line_is_found_or_a_longer_tail_asked_for)
{
        const char *log = "one\ntwo\nthree\n";
        size_t start = 0, n = 0;
        cr_assert_eq(aidp_lineage_tail_line(log, strlen(log), true, 1, &start, &n), 1);
        cr_assert_eq(start, 8);
        cr_assert_eq(n, 5);
        cr_assert_eq(aidp_lineage_tail_line(log, strlen(log), true, 3, &start, &n), 1);
        cr_assert_eq(start, 0);
        cr_assert_eq(n, 3);
        cr_assert_eq(aidp_lineage_tail_line(log, strlen(log), true, 4, &start, &n), 0);
        /* A window that starts inside "two": its first line may begin before it. */
        cr_assert_eq(aidp_lineage_tail_line(log + 5, strlen(log) - 5, false, 2, &start, &n),
                     -EAGAIN);
        cr_assert_eq(aidp_lineage_tail_line(log + 5, strlen(log) - 5, false, 1, &start, &n), 1);
        cr_assert_eq(n, 5);
}

static json_object *event(const char *type, const char *json_facets)
{
        json_object *ev = json_object_new_object();
        json_object_object_add(ev, "eventType", json_object_new_string(type));
        json_object *run = json_object_new_object();
        json_object_object_add(run, "runId", json_object_new_string("run-1"));
        if (json_facets)
                json_object_object_add(run, "facets", json_tokener_parse(json_facets));
        json_object_object_add(ev, "run", run);
        json_object *job = json_object_new_object();
        json_object_object_add(job, "name", json_object_new_string("train"));
        json_object_object_add(ev, "job", job);
        return ev;
}

Test(lineage_tail, denial_names_the_first_deny_reason)
{
        json_object *ev = event("OTHER", "{\"aidp_policy\":{\"decisions\":["
                                         "{\"decision\":\"allow\",\"reason\":\"ok\"},"
                                         "{\"decision\":\"deny\",\"reason\":\"residency eu\"},"
                                         "{\"decision\":\"deny\",\"reason\":\"second\"}]}}");
        struct aidp_lineage_alert a;
        cr_assert(aidp_lineage_alert_of(ev, &a));
        cr_assert_eq(a.kind, AIDP_ALERT_DENIED);
        cr_assert_str_eq(a.reason, "residency eu");
        cr_assert_str_eq(a.run_id, "run-1");
        cr_assert_str_eq(a.job, "train");
        cr_assert_str_eq(a.event_type, "OTHER");
        cr_assert_str_eq(aidp_lineage_alert_msgid(a.kind), "DENIED");
        cr_assert_str_eq(aidp_lineage_alert_text(a.kind), "run denied by policy");
        json_object_put(ev);
}

Test(lineage_tail, abort_falls_back_to_the_exit_reason)
{
        json_object *ev = event("ABORT", "{\"aidp_exit\":{\"reason\":\"wall time\"}}");
        struct aidp_lineage_alert a;
        cr_assert(aidp_lineage_alert_of(ev, &a));
        cr_assert_eq(a.kind, AIDP_ALERT_ABORT);
        cr_assert_str_eq(a.reason, "wall time");
        cr_assert_str_eq(aidp_lineage_alert_msgid(a.kind), "ABORT");
        json_object_put(ev);
}

Test(lineage_tail, only_runs_with_denied_egress_are_reported_among_the_others)
{
        json_object *quiet = event("COMPLETE", "{\"aidp_network\":{\"denied\":0}}");
        json_object *loud = event("COMPLETE", "{\"aidp_network\":{\"denied\":3}}");
        json_object *bare = event("START", NULL);
        struct aidp_lineage_alert a;
        cr_assert_not(aidp_lineage_alert_of(quiet, &a));
        cr_assert_not(aidp_lineage_alert_of(bare, &a));
        cr_assert(aidp_lineage_alert_of(loud, &a));
        cr_assert_eq(a.kind, AIDP_ALERT_EGRESS_DENIED);
        cr_assert_eq(a.egress_denied, 3);
        cr_assert_str_eq(a.reason, "");
        cr_assert_str_eq(aidp_lineage_alert_msgid(a.kind), "EGRESS_DENIED");
        json_object_put(quiet);
        json_object_put(loud);
        json_object_put(bare);
}
