/* The lineage store on a real file system (temporary directory, no root needed):
 * durable appends, the key's permission rules, the tamper matrix for verify, the
 * anchor, torn tails, and 16 concurrent appender processes. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lineage_util.h"
#include "supervisor/lineage/lineage.h"

static char dir[256], log_path[300], key_path[300], anchor_path[320];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)st;
        (void)flag;
        (void)f;
        return remove(p);
}

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-lineage-test.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(log_path, sizeof log_path, "%s/var/lineage.jsonl", dir);
        snprintf(key_path, sizeof key_path, "%s/etc/lineage.key", dir);
        snprintf(anchor_path, sizeof anchor_path, "%s.anchor", log_path);
}

static void teardown(void)
{
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(lineage_store, .init = setup, .fini = teardown, .timeout = 120);

static struct aidp_lineage *open_store(void)
{
        struct aidp_lineage_options o = {.path = log_path,
                                         .key_path = key_path,
                                         .syslog_socket = "/nonexistent/aidp-test-log",
                                         .create_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        return lg;
}

static json_object *event(const char *job, enum aidp_lineage_event_type t)
{
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        json_object *ev = aidp_lineage_event_new(t, id, NULL, job);
        aidp_lineage_set_host(ev, "node1", "eu-west");
        aidp_lineage_add_input(ev, "aidp", "imagenet");
        return ev;
}

static void append_n(struct aidp_lineage *lg, int n)
{
        for (int i = 0; i < n; i++) {
                json_object *ev =
                        event("train", i % 2 ? AIDP_LINEAGE_COMPLETE : AIDP_LINEAGE_START);
                aidp_error e = {0};
                cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
                json_object_put(ev);
        }
}

static char *slurp(const char *path, size_t *len)
{
        return aidp_test_slurp(path, len);
}

static void spit(const char *path, const char *buf, size_t len)
{
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(buf, 1, len, f), len);
        cr_assert_eq(fclose(f), 0);
}

/* Offsets of the starts of the log's lines; returns the count. */
static size_t line_starts(const char *buf, size_t len, size_t *starts, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < len && n < max; i++)
                if (i == 0 || buf[i - 1] == '\n')
                        starts[n++] = i;
        return n;
}

static struct aidp_lineage_verify verify(bool with_key)
{
        struct aidp_lineage *lg = open_store();
        struct aidp_lineage_verify v;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_verify_file(log_path, NULL, true,
                                              with_key ? aidp_lineage_key(lg) : NULL, &v, &e),
                     0, "%s", e.msg);
        aidp_lineage_free(lg);
        return v;
}

static void expect_bad(uint64_t line, const char *reason_part)
{
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, line, "bad line %lu, expected %lu (%s)", (unsigned long)v.bad_line,
                     (unsigned long)line, v.reason);
        cr_assert(strstr(v.reason, reason_part), "reason '%s' lacks '%s'", v.reason, reason_part);
}

Test(lineage_store, appends_chain_and_verify)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 5);
        aidp_lineage_free(lg);
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 5);
        cr_assert_eq(v.reason[0], '\0', "%s", v.reason);
        struct stat st;
        cr_assert_eq(stat(key_path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600);
        cr_assert_eq(st.st_size, AIDP_LINEAGE_KEY_LEN);
        cr_assert_eq(stat(log_path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0640);
        cr_assert_eq(stat(anchor_path, &st), 0);
        /* The anchor names the last record. */
        size_t len, alen;
        char *buf = slurp(log_path, &len), *abuf = slurp(anchor_path, &alen);
        size_t starts[16];
        size_t n = line_starts(buf, len, starts, 16);
        cr_assert_eq(n, 5);
        struct aidp_lineage_anchor a;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_anchor_parse(abuf, alen, NULL, &a, &e), 0, "%s", e.msg);
        char h[AIDP_LINEAGE_HASH_HEX + 1];
        aidp_lineage_hash_line(buf + starts[4], len - starts[4] - 1, h);
        cr_assert_eq(a.seq, 5);
        cr_assert_str_eq(a.hash, h);
        free(buf);
        free(abuf);
}

Test(lineage_store, append_fills_chain_members_into_the_callers_event)
{
        struct aidp_lineage *lg = open_store();
        json_object *ev = event("train", AIDP_LINEAGE_START), *v;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
        cr_assert(json_object_object_get_ex(ev, "aidp_seq", &v));
        cr_assert_eq(json_object_get_int(v), 1);
        /* Appending the same object again is a new record, not a duplicate chain. */
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
        cr_assert(json_object_object_get_ex(ev, "aidp_seq", &v));
        cr_assert_eq(json_object_get_int(v), 2);
        json_object_put(ev);
        aidp_lineage_free(lg);
        cr_assert_eq(verify(true).records, 2);
}

Test(lineage_store, invalid_event_is_refused_and_nothing_written)
{
        struct aidp_lineage *lg = open_store();
        json_object *ev = event("train", AIDP_LINEAGE_START);
        json_object_object_del(ev, "producer");
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_append(lg, ev, &e), 0);
        cr_assert(strstr(e.msg, "missing producer"), "%s", e.msg);
        json_object_put(ev);
        aidp_lineage_free(lg);
        cr_assert_eq(access(log_path, F_OK), -1);
}

/* ---- the key ---------------------------------------------------------------------- */

Test(lineage_store, key_with_loose_permissions_is_refused)
{
        struct aidp_lineage *lg = open_store();
        aidp_lineage_free(lg);
        cr_assert_eq(chmod(key_path, 0644), 0);
        struct aidp_lineage_options o = {
                .path = log_path, .key_path = key_path, .create_key = true};
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_open(&lg, &o, &e), 0);
        cr_assert_eq(e.status, AIDP_EXIT_LINEAGE);
        cr_assert(strstr(e.msg, "mode 0644"), "%s", e.msg);
        cr_assert(strstr(e.msg, "mode 0600"), "%s", e.msg);
        cr_assert_eq(chmod(key_path, 0640), 0);
        cr_assert_lt(aidp_lineage_open(&lg, &o, &e), 0);
        cr_assert_eq(chmod(key_path, 0600), 0);
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        aidp_lineage_free(lg);
}

Test(lineage_store, key_of_wrong_size_or_symlink_is_refused)
{
        char d[320];
        snprintf(d, sizeof d, "%s/etc", dir);
        cr_assert_eq(mkdir(d, 0755), 0);
        spit(key_path, "short", 5);
        cr_assert_eq(chmod(key_path, 0600), 0);
        unsigned char k[AIDP_LINEAGE_KEY_LEN];
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_key_load(key_path, true, k, &e), 0);
        cr_assert(strstr(e.msg, "is 5 bytes, expected 32"), "%s", e.msg);
        char link_path[330];
        snprintf(link_path, sizeof link_path, "%s/etc/link.key", dir);
        cr_assert_eq(symlink(key_path, link_path), 0);
        cr_assert_lt(aidp_lineage_key_load(link_path, true, k, &e), 0);
        cr_assert_eq(e.status, AIDP_EXIT_LINEAGE);
}

Test(lineage_store, missing_key_without_create_is_an_error)
{
        struct aidp_lineage_options o = {.path = log_path, .key_path = key_path, .need_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_open(&lg, &o, &e), 0);
        cr_assert_eq(e.status, AIDP_EXIT_LINEAGE);
        cr_assert(strstr(e.msg, "opening lineage key"), "%s", e.msg);
        cr_assert_eq(access(key_path, F_OK), -1, "the key must not be created");
}

/* ---- the tamper matrix ------------------------------------------------------------- */

static char *log_with(int n, size_t *len, size_t *starts)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, n);
        aidp_lineage_free(lg);
        char *buf = slurp(log_path, len);
        cr_assert_eq(line_starts(buf, *len, starts, 64), (size_t)n);
        return buf;
}

Test(lineage_store, tamper_edit_one_byte)
{
        size_t len, s[64];
        char *buf = log_with(4, &len, s);
        char *p = strstr(buf + s[1], "node1");
        p[4] = '2'; /* node1 -> node2 in record 2 */
        spit(log_path, buf, len);
        expect_bad(2, "authentication tag does not match");
        /* Without the key, the next line's chain link catches it. */
        struct aidp_lineage_verify v = verify(false);
        cr_assert_eq(v.bad_line, 3, "%s", v.reason);
        cr_assert(strstr(v.reason, "previous-line hash does not match line 2"), "%s", v.reason);
        free(buf);
}

Test(lineage_store, tamper_delete_a_line)
{
        size_t len, s[64];
        char *buf = log_with(4, &len, s);
        memmove(buf + s[1], buf + s[2], len - s[2]);
        spit(log_path, buf, len - (s[2] - s[1]));
        expect_bad(2, "sequence number 3 where 2 was expected");
        free(buf);
}

Test(lineage_store, tamper_delete_the_first_line)
{
        size_t len, s[64];
        char *buf = log_with(3, &len, s);
        spit(log_path, buf + s[1], len - s[1]);
        expect_bad(1, "sequence number 2 where 1 was expected");
        free(buf);
}

Test(lineage_store, tamper_insert_a_copy_of_a_line)
{
        size_t len, s[64];
        char *buf = log_with(3, &len, s);
        /* Replay record 1 after record 2: a valid tag, but out of place. */
        char *out = malloc(len + s[1]);
        memcpy(out, buf, s[2]);
        memcpy(out + s[2], buf, s[1]);
        memcpy(out + s[2] + s[1], buf + s[2], len - s[2]);
        spit(log_path, out, len + s[1]);
        expect_bad(3, "sequence number 1 where 3 was expected");
        free(out);
        free(buf);
}

Test(lineage_store, tamper_insert_a_forged_line)
{
        size_t len, s[64];
        char *buf = log_with(3, &len, s);
        /* A well-formed record with the right sequence and chain, tagged with another key:
         * everything an attacker without the host key can do. */
        struct aidp_lineage_record r2;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_record_parse(buf + s[1], s[2] - s[1] - 1, NULL, &r2, NULL, &e),
                     0);
        unsigned char other[AIDP_LINEAGE_KEY_LEN] = {7};
        json_object *ev = event("forged", AIDP_LINEAGE_COMPLETE);
        size_t flen;
        char *forged = aidp_lineage_record_format(ev, 3, r2.hash, other, &flen, &e);
        cr_assert_not_null(forged);
        char *out = malloc(len + flen);
        memcpy(out, buf, s[2]);
        memcpy(out + s[2], forged, flen);
        memcpy(out + s[2] + flen, buf + s[2], len - s[2]);
        spit(log_path, out, len + flen);
        expect_bad(3, "authentication tag does not match");
        json_object_put(ev);
        free(forged);
        free(out);
        free(buf);
}

Test(lineage_store, tamper_reorder_two_lines)
{
        size_t len, s[64];
        char *buf = log_with(4, &len, s);
        size_t l2 = s[2] - s[1], l3 = s[3] - s[2];
        char *out = malloc(len);
        memcpy(out, buf, s[1]);
        memcpy(out + s[1], buf + s[2], l3);
        memcpy(out + s[1] + l3, buf + s[1], l2);
        memcpy(out + s[3], buf + s[3], len - s[3]);
        spit(log_path, out, len);
        expect_bad(2, "sequence number 3 where 2 was expected");
        free(out);
        free(buf);
}

Test(lineage_store, tamper_truncate_last_line_partially)
{
        size_t len, s[64];
        char *buf = log_with(4, &len, s);
        spit(log_path, buf, len - 40);
        expect_bad(4, "truncated record");
        /* Cut right before its newline: the line is complete but for the '\n'. */
        spit(log_path, buf, len - 1);
        expect_bad(4, "truncated record");
        free(buf);
}

Test(lineage_store, tamper_truncate_whole_lines_at_the_end)
{
        size_t len, s[64];
        char *buf = log_with(5, &len, s);
        spit(log_path, buf, s[4]); /* drop record 5 */
        expect_bad(5, "1 record(s) cut from the end");
        spit(log_path, buf, s[2]); /* drop records 3-5 */
        expect_bad(3, "3 record(s) cut from the end");
        spit(log_path, buf, 0);
        expect_bad(1, "5 record(s) cut from the end");
        free(buf);
}

Test(lineage_store, tamper_anchor_deleted_or_edited)
{
        size_t len, s[64];
        char *buf = log_with(3, &len, s);
        size_t alen;
        char *abuf = slurp(anchor_path, &alen);
        cr_assert_eq(unlink(anchor_path), 0);
        expect_bad(1, "is missing");
        /* --no-anchor: the chain alone verifies. */
        struct aidp_lineage *lg = open_store();
        struct aidp_lineage_verify v;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_verify_file(log_path, NULL, false, aidp_lineage_key(lg), &v, &e),
                     0);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 3);
        aidp_lineage_free(lg);
        char *p = strstr(abuf, "\"seq\":3");
        p[6] = '2';
        spit(anchor_path, abuf, alen);
        expect_bad(1, "anchor's authentication tag does not match");
        free(abuf);
        free(buf);
}

Test(lineage_store, tamper_truncation_with_an_old_anchor_put_back_is_caught_when_far_behind)
{
        /* Up to AIDP_LINEAGE_UNCOMMITTED_MAX records may await their group commit
         * (or be left so by a crash); an anchor further behind was put back. */
        struct aidp_lineage *lg = open_store();
        append_n(lg, 2);
        size_t alen;
        char *old = slurp(anchor_path, &alen);
        append_n(lg, AIDP_LINEAGE_UNCOMMITTED_MAX + 1);
        aidp_lineage_free(lg);
        spit(anchor_path, old, alen);
        char want[64];
        snprintf(want, sizeof want, "the anchor is %d records behind",
                 AIDP_LINEAGE_UNCOMMITTED_MAX + 1);
        expect_bad(AIDP_LINEAGE_UNCOMMITTED_MAX + 3, want);
        free(old);
}

/* ---- the anchor file and the two-step append ----------------------------------------- */

Test(lineage_store, anchor_is_one_fixed_size_line_rewritten_in_place)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 1);
        struct stat st1, st2;
        cr_assert_eq(stat(anchor_path, &st1), 0);
        cr_assert_eq(st1.st_size, AIDP_LINEAGE_ANCHOR_SIZE);
        append_n(lg, 3);
        cr_assert_eq(stat(anchor_path, &st2), 0);
        cr_assert_eq(st2.st_size, AIDP_LINEAGE_ANCHOR_SIZE);
        /* The same file, overwritten: no rename, no new block to allocate. */
        cr_assert_eq(st2.st_ino, st1.st_ino);
        size_t alen;
        char *abuf = slurp(anchor_path, &alen);
        cr_assert_eq(abuf[alen - 1], '\n');
        cr_assert_null(memchr(abuf, '\n', alen - 1), "the anchor is one line");
        struct aidp_lineage_anchor a;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_anchor_parse(abuf, alen, aidp_lineage_key(lg), &a, &e), 0, "%s",
                     e.msg);
        cr_assert_eq(a.seq, 4);
        free(abuf);
        aidp_lineage_free(lg);
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
}

Test(lineage_store, an_unpadded_anchor_of_an_older_version_is_read_and_replaced)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 2);
        /* The same anchor as an older aidp wrote it: the bare line. */
        size_t alen;
        char *abuf = slurp(anchor_path, &alen);
        char *end = memchr(abuf, ' ', alen);
        cr_assert_not_null(end);
        *end = '\n';
        spit(anchor_path, abuf, (size_t)(end - abuf) + 1);
        free(abuf);
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        append_n(lg, 1);
        struct stat st;
        cr_assert_eq(stat(anchor_path, &st), 0);
        cr_assert_eq(st.st_size, AIDP_LINEAGE_ANCHOR_SIZE);
        aidp_lineage_free(lg);
        v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 3);
}

Test(lineage_store, begin_writes_the_line_and_commit_anchors_it)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 2);
        json_object *ev = event("train", AIDP_LINEAGE_START);
        struct aidp_lineage_pending *p = NULL;
        aidp_error e = {0};
        /* The commit's thread holds back after reading the tail, so that what is
         * checked below is the state between the two steps, not a race with it. */
        setenv("AIDP_FAULT_SYNC_DELAY_MS", "1500", 1);
        cr_assert_eq(aidp_lineage_append_begin(lg, ev, &p, &e), 0, "%s", e.msg);
        /* Between the two: the line is there and the anchor still names the one
         * before (what a crash here would leave); the log is not locked, so
         * other appends go on (and verify notes the record awaiting its commit). */
        size_t len, alen;
        char *buf = slurp(log_path, &len), *abuf = slurp(anchor_path, &alen);
        size_t starts[8];
        cr_assert_eq(line_starts(buf, len, starts, 8), 3);
        struct aidp_lineage_anchor a;
        cr_assert_eq(aidp_lineage_anchor_parse(abuf, alen, aidp_lineage_key(lg), &a, &e), 0, "%s",
                     e.msg);
        cr_assert_eq(a.seq, 2);
        free(buf);
        free(abuf);
        /* The append lock is free between the two (the commit's thread takes it
         * only for a moment to read the tail). */
        int fd = open(log_path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        int locked = -1;
        for (int i = 0; i < 200 && (locked = flock(fd, LOCK_EX | LOCK_NB)) < 0; i++)
                usleep(5000);
        cr_assert_eq(locked, 0, "the log stays locked after append_begin returned");
        flock(fd, LOCK_UN);
        close(fd);
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.anchor_lag, 1);
        append_n(lg, 1); /* another append meanwhile commits both */
        cr_assert_eq(aidp_lineage_append_commit(p, &e), 0, "%s", e.msg);
        v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 4);
        cr_assert_eq(v.anchor_lag, 0);
        unsetenv("AIDP_FAULT_SYNC_DELAY_MS");
        json_object_put(ev);
        aidp_lineage_free(lg);
}

/* ---- crashes: torn tails and a lagging anchor -------------------------------------- */

Test(lineage_store, torn_tail_past_the_anchor_is_noted_and_removed_by_the_next_append)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 3);
        size_t len;
        char *good = slurp(log_path, &len);
        /* As if an append died mid-write: half a line, no anchor update. */
        FILE *f = fopen(log_path, "ae");
        fputs("{\"eventType\":\"START\",\"eventTime\":\"2024-", f);
        fclose(f);
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert(v.torn_tail);
        cr_assert_eq(v.records, 3);
        cr_assert(strstr(v.reason, "line 4: incomplete last line"), "%s", v.reason);
        append_n(lg, 1);
        aidp_lineage_free(lg);
        v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 4);
        cr_assert(!v.torn_tail);
        size_t len2;
        char *now = slurp(log_path, &len2);
        cr_assert_eq(memcmp(good, now, len), 0, "committed records were changed");
        free(good);
        free(now);
}

Test(lineage_store, anchor_one_behind_is_an_interrupted_update_and_is_repaired)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 2);
        size_t alen;
        char *old = slurp(anchor_path, &alen);
        append_n(lg, 1);
        spit(anchor_path, old, alen); /* the crash hit between log fsync and anchor rename */
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.anchor_lag, 1);
        cr_assert(strstr(v.reason, "anchor update interrupted"), "%s", v.reason);
        append_n(lg, 1);
        aidp_lineage_free(lg);
        v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.anchor_lag, 0);
        cr_assert_eq(v.records, 4);
        free(old);
}

/* The first record of a new log, written but never committed (its writer died
 * before the anchor update): the log starts with an anchor naming no record, so
 * this is the interrupted update above, not a log whose anchor was deleted. */
Test(lineage_store, first_record_of_a_new_log_left_uncommitted_does_not_block_the_log)
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                struct aidp_lineage *lg = open_store();
                json_object *ev = event("train", AIDP_LINEAGE_START);
                struct aidp_lineage_pending *p = NULL;
                aidp_error e = {0};
                _exit(aidp_lineage_append_begin(lg, ev, &p, &e) == 0 ? 0 : 1);
        }
        int st = 0;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 1);
        cr_assert_eq(v.anchor_lag, 1);
        struct aidp_lineage *lg = open_store();
        append_n(lg, 1);
        aidp_lineage_free(lg);
        v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 2);
        cr_assert_eq(v.anchor_lag, 0);
}

Test(lineage_store, append_refuses_to_bury_a_truncation)
{
        size_t len, s[64];
        char *buf = log_with(4, &len, s);
        spit(log_path, buf, s[3]);
        size_t alen;
        char *anchor_before = slurp(anchor_path, &alen);
        struct aidp_lineage *lg = open_store();
        json_object *ev = event("train", AIDP_LINEAGE_START);
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_append(lg, ev, &e), 0);
        cr_assert_eq(e.status, AIDP_EXIT_LINEAGE);
        cr_assert(strstr(e.msg, "records were cut from the end"), "%s", e.msg);
        /* Neither file moved: the evidence is intact for verify. */
        size_t len2, alen2;
        char *now = slurp(log_path, &len2), *anchor_now = slurp(anchor_path, &alen2);
        cr_assert_eq(len2, s[3]);
        cr_assert_eq(memcmp(now, buf, len2), 0);
        cr_assert_eq(alen2, alen);
        cr_assert_eq(memcmp(anchor_now, anchor_before, alen), 0);
        expect_bad(4, "cut from the end");
        json_object_put(ev);
        aidp_lineage_free(lg);
        free(buf);
        free(now);
        free(anchor_before);
        free(anchor_now);
}

/* The store keeps the bytes it verified or wrote (lineage_memo.c), so that an
 * append does not parse and MAC the same anchor and last line again. A change
 * to either file made while the store is open, keeping sizes, must still be
 * caught by the next append on that store. */
static void expect_append_refused(struct aidp_lineage *lg, const char *why)
{
        json_object *ev = event("train", AIDP_LINEAGE_START);
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_append(lg, ev, &e), 0, "a tampered log took an append");
        cr_assert(strstr(e.msg, why), "%s", e.msg);
        json_object_put(ev);
}

Test(lineage_store, a_tampered_anchor_or_last_line_is_caught_though_the_store_kept_them)
{
        struct aidp_lineage *lg = open_store();
        uint64_t hits0 = aidp_lineage_memo_hits();
        append_n(lg, 3);
        /* the memo answered: the commits' reads, the next appends' tail checks */
        cr_assert_gt(aidp_lineage_memo_hits(), hits0 + 3, "the memo was not used");

        /* the anchor: its hash edited, one hex digit, same size */
        size_t alen = 0;
        char *abuf = slurp(anchor_path, &alen);
        char *h = strstr(abuf, "\"hash\":\"");
        cr_assert_not_null(h);
        char was = h[8];
        h[8] = was == '0' ? '1' : '0';
        spit(anchor_path, abuf, alen);
        expect_append_refused(lg, "authentication tag");
        h[8] = was;
        spit(anchor_path, abuf, alen);
        append_n(lg, 1);

        /* the last line: one byte of its event, same size */
        size_t len = 0, s[64];
        char *buf = slurp(log_path, &len);
        size_t n = line_starts(buf, len, s, 64);
        cr_assert_eq(n, 4);
        char *j = strstr(buf + s[3], "\"train\"");
        cr_assert_not_null(j);
        j[1] = 'T';
        spit(log_path, buf, len);
        expect_append_refused(lg, "damaged");
        j[1] = 't';
        spit(log_path, buf, len);
        append_n(lg, 1);
        aidp_lineage_free(lg);

        /* and the whole log still verifies: what the memo answered was right */
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 5);
        free(abuf);
        free(buf);
}

Test(lineage_store, append_refuses_a_log_without_its_anchor)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 2);
        cr_assert_eq(unlink(anchor_path), 0);
        json_object *ev = event("train", AIDP_LINEAGE_START);
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_append(lg, ev, &e), 0);
        cr_assert(strstr(e.msg, "no anchor"), "%s", e.msg);
        json_object_put(ev);
        aidp_lineage_free(lg);
}

Test(lineage_store, unwritable_lineage_location_is_a_clear_lineage_error)
{
        /* The log's directory is a regular file: nothing can be created there. */
        char d[320];
        snprintf(d, sizeof d, "%s/var", dir);
        spit(d, "x", 1);
        struct aidp_lineage *lg = open_store();
        json_object *ev = event("train", AIDP_LINEAGE_START);
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_append(lg, ev, &e), 0);
        cr_assert_eq(e.status, AIDP_EXIT_LINEAGE);
        cr_assert(strstr(e.msg, log_path) || strstr(e.msg, d), "%s", e.msg);
        json_object_put(ev);
        aidp_lineage_free(lg);
}

/* ---- concurrency ---------------------------------------------------------------------- */

#define WRITERS    16
#define PER_WRITER 40

Test(lineage_store, sixteen_concurrent_appenders_lose_nothing)
{
        /* Create the key first so the children do not race to create it (that race is
         * handled too, but this test is about the log). */
        aidp_lineage_free(open_store());
        pid_t pids[WRITERS];
        for (int w = 0; w < WRITERS; w++) {
                pids[w] = fork();
                cr_assert_geq(pids[w], 0);
                if (pids[w] == 0) {
                        struct aidp_lineage_options o = {.path = log_path,
                                                         .key_path = key_path,
                                                         .syslog_socket = "/nonexistent/x",
                                                         .need_key = true};
                        struct aidp_lineage *lg = NULL;
                        aidp_error e = {0};
                        if (aidp_lineage_open(&lg, &o, &e) < 0)
                                _exit(2);
                        char job[32];
                        snprintf(job, sizeof job, "writer-%02d", w);
                        for (int i = 0; i < PER_WRITER; i++) {
                                json_object *ev = event(job, AIDP_LINEAGE_OTHER);
                                if (aidp_lineage_append(lg, ev, &e) < 0) {
                                        fprintf(stderr, "%s\n", e.msg);
                                        _exit(3);
                                }
                                json_object_put(ev);
                        }
                        aidp_lineage_free(lg);
                        _exit(0);
                }
        }
        for (int w = 0; w < WRITERS; w++) {
                int st;
                cr_assert_eq(waitpid(pids[w], &st, 0), pids[w]);
                cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d failed (%d)", w, st);
        }
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, WRITERS * PER_WRITER);
        cr_assert_eq(v.anchor_lag, 0);
        /* Every writer's every event is there, whole. */
        size_t len;
        char *buf = slurp(log_path, &len);
        int count[WRITERS] = {0};
        for (char *p = buf; (p = strstr(p, "\"name\":\"writer-")); p++)
                count[atoi(p + strlen("\"name\":\"writer-"))]++;
        for (int w = 0; w < WRITERS; w++)
                cr_assert_eq(count[w], PER_WRITER, "writer %d: %d events", w, count[w]);
        free(buf);
}

/* The log's missing directories are made on the first append (only then: the
 * log is opened first), 0750 whatever the umask, and later appends find them. */
Test(lineage_store, the_first_append_makes_the_logs_directory_0750)
{
        char sub[320];
        snprintf(sub, sizeof sub, "%s/var", dir);
        struct stat st;
        cr_assert_neq(stat(sub, &st), 0, "the directory exists before the first append");
        mode_t old = umask(0);
        struct aidp_lineage *lg = open_store();
        append_n(lg, 1);
        umask(old);
        cr_assert_eq(stat(sub, &st), 0, "no directory made for the log");
        cr_expect_eq(st.st_mode & 07777, 0750, "mode %o", st.st_mode & 07777);
        append_n(lg, 2);
        aidp_lineage_free(lg);
        size_t len = 0;
        char *log = slurp(log_path, &len);
        size_t lines = 0;
        for (size_t i = 0; i < len; i++)
                lines += log[i] == '\n';
        free(log);
        cr_expect_eq(lines, 3);
}

/* A daemon's idle worker checks the log's tail before its request
 * (aidp_lineage_key_warm_fork): a store opened afterwards with the same key
 * starts from those checked bytes, and only from the same bytes. */
static uint64_t hits_of_one_append(void)
{
        struct aidp_lineage *lg = open_store();
        uint64_t h0 = aidp_lineage_memo_hits();
        append_n(lg, 1);
        uint64_t h = aidp_lineage_memo_hits() - h0;
        aidp_lineage_free(lg);
        return h;
}

static void preload_and_warm(void)
{
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_key_preload(key_path, &e), 0, "%s", e.msg);
        aidp_lineage_key_warm_fork(log_path);
}

Test(lineage_store, a_store_opened_after_the_warm_up_skips_the_tails_checks)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 2);
        aidp_lineage_free(lg);
        uint64_t cold = hits_of_one_append();
        preload_and_warm();
        uint64_t warm = hits_of_one_append();
        /* the anchor and the last line, both answered from the warm memo */
        cr_assert_eq(warm, cold + 2, "cold %lu, warm %lu memo hits", (unsigned long)cold,
                     (unsigned long)warm);
        /* a record appended meanwhile: other bytes, checked in full */
        lg = open_store();
        append_n(lg, 1);
        aidp_lineage_free(lg);
        cr_assert_eq(hits_of_one_append(), cold);
        struct aidp_lineage_verify v = verify(true);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 6);
}

Test(lineage_store, the_warm_memo_says_nothing_about_bytes_changed_after_it)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 2);
        aidp_lineage_free(lg);
        preload_and_warm();
        /* the last line edited after the warm-up, same size */
        size_t len = 0, s[64];
        char *buf = slurp(log_path, &len);
        cr_assert_eq(line_starts(buf, len, s, 64), 2);
        char *j = strstr(buf + s[1], "\"train\"");
        cr_assert_not_null(j);
        j[1] = 'T';
        spit(log_path, buf, len);
        lg = open_store();
        expect_append_refused(lg, "damaged");
        aidp_lineage_free(lg);
        free(buf);
}

Test(lineage_store, the_warm_memo_of_one_key_is_not_taken_by_a_store_of_another)
{
        struct aidp_lineage *lg = open_store();
        append_n(lg, 2);
        aidp_lineage_free(lg);
        preload_and_warm();
        /* the same log, another key: its anchor's tag does not match, and the
         * bytes checked with the first key must not say otherwise */
        char other[320];
        snprintf(other, sizeof other, "%s/etc/other.key", dir);
        struct aidp_lineage_options o = {.path = log_path,
                                         .key_path = other,
                                         .syslog_socket = "/nonexistent/aidp-test-log",
                                         .create_key = true};
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        uint64_t h0 = aidp_lineage_memo_hits();
        expect_append_refused(lg, "authentication tag");
        cr_assert_eq(aidp_lineage_memo_hits(), h0);
        aidp_lineage_free(lg);
}
