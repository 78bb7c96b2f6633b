/* Log identity and witnesses (issue 20), pure parts: records carry the log's id
 * under their MAC, heads parse from witness files, syslog lines and exported
 * events, the comparison names each attack with the first record it affects,
 * rotation links and TPM counter bindings round-trip, and verify's positional
 * read agrees with the full parse. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/lineage/codec/lineage_witness.h"
#include "supervisor/lineage/witness.h"

static const unsigned char key[AIDP_LINEAGE_KEY_LEN] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                                        7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                                        7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
#define LOG_A "0123456789abcdef0123456789abcdef"
#define LOG_B "fedcba9876543210fedcba9876543210"
#define ZERO  "0000000000000000000000000000000000000000000000000000000000000000"
#define H1    "1111111111111111111111111111111111111111111111111111111111111111"
#define H2    "2222222222222222222222222222222222222222222222222222222222222222"

static json_object *event(void)
{
        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START,
                                                 "7d8a3a2c-1111-4222-8333-944455556666", NULL, "j");
        cr_assert_not_null(ev);
        return ev;
}

/* A log of n records with identity log (NULL: none); returns the buffer. */
static char *make_log(const char *log, int n, char hashes[][AIDP_LINEAGE_HASH_HEX + 1])
{
        size_t total = 0;
        char *buf = NULL, prev[AIDP_LINEAGE_HASH_HEX + 1] = ZERO;
        for (int i = 0; i < n; i++) {
                json_object *ev = event();
                size_t len = 0;
                aidp_error e = {0};
                char *line = aidp_lineage_record_format_log(ev, log, (uint64_t)i + 1, prev, key,
                                                            &len, &e);
                cr_assert_not_null(line, "%s", e.msg);
                aidp_lineage_hash_line(line, len - 1, prev);
                if (hashes)
                        memcpy(hashes[i], prev, sizeof prev);
                buf = realloc(buf, total + len + 1);
                memcpy(buf + total, line, len);
                total += len;
                buf[total] = '\0';
                free(line);
                json_object_put(ev);
        }
        return buf;
}

Test(lineage_identity, records_carry_the_log_id_and_verify)
{
        char *log = make_log(LOG_A, 3, NULL);
        cr_assert(strstr(log, "\"aidp_log\":\"" LOG_A "\",\"aidp_seq\":1,"));
        struct aidp_lineage_verify v;
        aidp_lineage_verify_init(&v, key, NULL);
        cr_assert(aidp_lineage_verify_buffer(&v, log, strlen(log)), "%s", v.reason);
        cr_assert_eq(v.records, 3);
        cr_assert_str_eq(v.log, LOG_A);
        free(log);
}

Test(lineage_identity, a_record_of_another_log_is_refused_even_with_a_matching_chain)
{
        /* Log B's record 2 spliced into log A, its prev patched to follow A's
         * record 1: the MAC covers the log id, so patching the id breaks the tag,
         * and leaving it is named as another log's record. */
        char ha[3][AIDP_LINEAGE_HASH_HEX + 1];
        char *a = make_log(LOG_A, 1, ha);
        json_object *ev = event();
        size_t len = 0;
        aidp_error e = {0};
        char *b2 = aidp_lineage_record_format_log(ev, LOG_B, 2, ha[0], key, &len, &e);
        cr_assert_not_null(b2);
        char *log = NULL;
        cr_assert_gt(asprintf(&log, "%s%s", a, b2), 0);
        struct aidp_lineage_verify v;
        aidp_lineage_verify_init(&v, key, NULL);
        cr_assert(!aidp_lineage_verify_buffer(&v, log, strlen(log)));
        cr_assert_eq(v.bad_line, 2);
        cr_assert(strstr(v.reason, "belongs to log " LOG_B), "%s", v.reason);
        /* and with the id rewritten to A's, the tag fails */
        char *p = strstr(log + strlen(a), LOG_B);
        memcpy(p, LOG_A, 32);
        aidp_lineage_verify_init(&v, key, NULL);
        cr_assert(!aidp_lineage_verify_buffer(&v, log, strlen(log)));
        cr_assert(strstr(v.reason, "authentication tag"), "%s", v.reason);
        free(a), free(b2), free(log);
        json_object_put(ev);
}

Test(lineage_identity, an_anchor_of_another_log_is_refused)
{
        char h[2][AIDP_LINEAGE_HASH_HEX + 1];
        char *log = make_log(LOG_A, 2, h);
        struct aidp_lineage_anchor an = {.seq = 2};
        memcpy(an.hash, h[1], sizeof an.hash);
        memcpy(an.log, LOG_B, 33);
        size_t len;
        char *s = aidp_lineage_anchor_format(&an, key, &len);
        struct aidp_lineage_anchor back;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_anchor_parse(s, len, key, &back, &e), 0, "%s", e.msg);
        cr_assert_str_eq(back.log, LOG_B);
        struct aidp_lineage_verify v;
        aidp_lineage_verify_init(&v, key, &back);
        cr_assert(!aidp_lineage_verify_buffer(&v, log, strlen(log)));
        cr_assert(strstr(v.reason, "anchor belongs to log " LOG_B), "%s", v.reason);
        /* the anchor's MAC covers the id */
        char *p = strstr(s, LOG_B);
        memcpy(p, LOG_A, 32);
        cr_assert_lt(aidp_lineage_anchor_parse(s, len, key, &back, &e), 0);
        free(s), free(log);
}

static struct aidp_lineage_head head(const char *log, uint64_t seq, const char *hash)
{
        struct aidp_lineage_head h = {.seq = seq};
        memcpy(h.log, log, 33);
        memcpy(h.hash, hash, 65);
        cr_assert_eq(aidp_lineage_head_sign(&h, key), 0);
        return h;
}

Test(lineage_witness, heads_parse_from_json_and_syslog)
{
        struct aidp_lineage_head h = head(LOG_A, 42, ZERO), back;
        char line[256];
        int n = aidp_lineage_head_json(&h, line, sizeof line);
        cr_assert_gt(n, 0);
        cr_assert_eq(aidp_lineage_head_parse(line, (size_t)n, &back), 1);
        cr_assert_eq(back.seq, 42);
        cr_assert(aidp_lineage_head_mac_ok(&back, key));
        char sl[512];
        snprintf(sl, sizeof sl,
                 "<133>1 2026-12-06T11:00:00.000Z node aidp 77 HEAD [aidp@32473 log=\"%s\" "
                 "seq=\"42\" hash=\"%s\" mac=\"%s\"] lineage chain head\n",
                 h.log, h.hash, h.mac);
        cr_assert_eq(aidp_lineage_head_parse(sl, strlen(sl), &back), 1);
        cr_assert(aidp_lineage_head_mac_ok(&back, key));
        const char *other = "<85>1 - node aidp 1 DENIED [aidp@32473 runId=\"x\"] denied\n";
        cr_assert_eq(aidp_lineage_head_parse(other, strlen(other), &back), 0);
        const char *bad[] = {"{\"log\":\"xyz\",\"seq\":1}", "{\"log\":1}",
                             "<1>1 - - - - HEAD [aidp@32473 log=\"" LOG_A "\" seq=\"0\"]",
                             "<1>1 - - - - HEAD [aidp@32473 log=\"" LOG_A "\" seq=\"1\""};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                cr_assert_lt(aidp_lineage_head_parse(bad[i], strlen(bad[i]), &back), 0, "%s",
                             bad[i]);
        h.seq = 43; /* a MAC for another seq */
        cr_assert(!aidp_lineage_head_mac_ok(&h, key));
}

static char H[6][AIDP_LINEAGE_HASH_HEX + 1];

static void compare(const char *log, uint64_t n, const struct aidp_lineage_head *heads, size_t nh,
                    struct aidp_lineage_witness_result *r)
{
        for (int i = 0; i < 6; i++)
                snprintf(H[i], sizeof H[i], "%064d", i + 1);
        struct aidp_lineage_log_view lv = {.log = log, .n = n, .hashes = (const void *)H};
        aidp_lineage_witness_compare(&lv, heads, nh, key, r);
}

Test(lineage_witness, the_matrix_of_attacks)
{
        for (int i = 0; i < 6; i++)
                snprintf(H[i], sizeof H[i], "%064d", i + 1);
        struct aidp_lineage_head seen[5];
        for (int i = 0; i < 5; i++)
                seen[i] = head(LOG_A, (uint64_t)i + 1, H[i]);
        struct aidp_lineage_witness_result r;

        compare(LOG_A, 5, seen, 5, &r); /* intact */
        cr_assert_eq(r.verdict, AIDP_WITNESS_CONFIRMED, "%s", r.reason);
        cr_assert_eq(r.unseen, 0);

        compare(LOG_A, 3, seen, 5, &r); /* log + anchor restored from an older copy */
        cr_assert_eq(r.verdict, AIDP_WITNESS_ROLLBACK, "%s", r.reason);
        cr_assert_eq(r.first_affected, 4);
        cr_assert(strstr(r.reason, "records 4-5 are missing"), "%s", r.reason);

        compare(LOG_B, 5, seen, 5, &r); /* another log of the same host key */
        cr_assert_eq(r.verdict, AIDP_WITNESS_SUBSTITUTED, "%s", r.reason);
        cr_assert_eq(r.first_affected, 1);

        compare(LOG_A, 0, seen, 5, &r); /* emptied, anchor removed */
        cr_assert_eq(r.verdict, AIDP_WITNESS_EMPTIED, "%s", r.reason);
        compare("", 0, seen, 5, &r); /* deleted outright */
        cr_assert_eq(r.verdict, AIDP_WITNESS_EMPTIED, "%s", r.reason);

        struct aidp_lineage_head fork[5];
        memcpy(fork, seen, sizeof fork);
        fork[2] = head(LOG_A, 3, ZERO); /* record 3 differs from the one witnessed */
        compare(LOG_A, 5, fork, 5, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_REWRITTEN, "%s", r.reason);
        cr_assert_eq(r.first_affected, 3);

        /* the witness was down for records 2-3: a gap, not an alarm */
        struct aidp_lineage_head gappy[3] = {seen[0], seen[3], seen[4]};
        compare(LOG_A, 5, gappy, 3, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_CONFIRMED, "%s", r.reason);
        cr_assert_eq(r.unseen, 2);
        cr_assert_eq(r.gap_from, 2);
        cr_assert_eq(r.gap_to, 3);

        /* a head forged without the key proves nothing either way */
        struct aidp_lineage_head forged = seen[4];
        forged.seq = 9;
        compare(LOG_A, 5, &forged, 1, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_SILENT, "%s", r.reason);
        cr_assert_eq(r.forged, 1);
        cr_assert(!aidp_lineage_witness_alarm(r.verdict));
}

Test(lineage_witness, config_parses_and_errors_name_the_place)
{
        const char *ok = "apiVersion: aidp/v1\nkind: Witnesses\ntimeoutMs: 50\nwitnesses:\n"
                         "  - syslog: /dev/log\n  - file: /mnt/audit/heads.jsonl\n";
        struct aidp_witness_set s;
        aidp_error e = {0};
        cr_assert_eq(aidp_witness_parse("w.yaml", ok, strlen(ok), &s, &e), 0, "%s", e.msg);
        cr_assert_eq(s.n, 2);
        cr_assert_eq(s.timeout_ms, 50);
        cr_assert_eq(s.w[1].kind, AIDP_WITNESS_FILE);
        cr_assert_str_eq(s.w[1].target, "/mnt/audit/heads.jsonl");
        aidp_witness_set_free(&s);
        const char *bad = "apiVersion: aidp/v1\nkind: Witnesses\nwitnesses:\n  - file: rel\n";
        cr_assert_lt(aidp_witness_parse("w.yaml", bad, strlen(bad), &s, &e), 0);
        cr_assert(strstr(e.msg, "w.yaml:4:11") && strstr(e.msg, "absolute"), "%s", e.msg);
        cr_assert_eq(e.status, AIDP_EXIT_CONFIG);
        const char *two = "apiVersion: aidp/v1\nkind: Witnesses\nwitnesses:\n"
                          "  - {file: /a, syslog: /b}\n";
        cr_assert_lt(aidp_witness_parse("w.yaml", two, strlen(two), &s, &e), 0);
        cr_assert(strstr(e.msg, "exactly one"), "%s", e.msg);
}

Test(lineage_witness, the_shipped_example_parses)
{
        FILE *f = fopen(AIDP_SOURCE_DIR "/examples/policy/witnesses.yaml", "re");
        cr_assert_not_null(f);
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        struct aidp_witness_set s;
        aidp_error e = {0};
        cr_assert_eq(aidp_witness_parse("witnesses.yaml", buf, n, &s, &e), 0, "%s", e.msg);
        cr_assert_eq(s.n, 1); /* file and tpm are commented out */
        cr_assert_eq(s.w[0].kind, AIDP_WITNESS_SYSLOG);
        aidp_witness_set_free(&s);
}

/* ---- verify's fast path ----------------------------------------------------------------- */

Test(lineage_verify_fast, the_positional_read_agrees_with_the_full_parse)
{
        char h[3][AIDP_LINEAGE_HASH_HEX + 1];
        char *log = make_log(LOG_A, 3, h);
        struct aidp_lineage_verify fast, chain;
        aidp_lineage_verify_init(&fast, key, NULL);   /* tags: positional read */
        aidp_lineage_verify_init(&chain, NULL, NULL); /* no key: the JSON parse */
        cr_assert(aidp_lineage_verify_buffer(&fast, log, strlen(log)), "%s", fast.reason);
        cr_assert(aidp_lineage_verify_buffer(&chain, log, strlen(log)), "%s", chain.reason);
        cr_assert_eq(fast.records, chain.records);
        cr_assert_str_eq(fast.log, chain.log);
        cr_assert_str_eq(fast.last_hash, h[2]);
        cr_assert_str_eq(chain.last_hash, h[2]);
        /* an edited byte: the positional read declines and the parse names it */
        char *p = strstr(log, "\"j\"");
        p[1] = 'k';
        aidp_lineage_verify_init(&fast, key, NULL);
        cr_assert(!aidp_lineage_verify_buffer(&fast, log, strlen(log)));
        cr_assert_eq(fast.bad_line, 1);
        cr_assert(strstr(fast.reason, "authentication tag does not match"), "%s", fast.reason);
        p[1] = 'j';
        /* a sequence number spelled with a leading zero is not the writer's */
        p = strstr(log, "\"aidp_seq\":2,");
        cr_assert_not_null(p);
        char *zero = NULL;
        cr_assert_gt(asprintf(&zero, "%.*s0%s", (int)(p + 11 - log), log, p + 11), 0);
        free(log);
        log = zero;
        aidp_lineage_verify_init(&fast, key, NULL);
        cr_assert(!aidp_lineage_verify_buffer(&fast, log, strlen(log)));
        cr_assert_eq(fast.bad_line, 2);
        cr_assert(strstr(fast.reason, "not valid JSON"), "%s", fast.reason);
        free(log);
}

/* ---- heads on exported events --------------------------------------------------------- */

Test(lineage_export_head, an_exported_event_carries_its_head_and_parses_as_one)
{
        struct aidp_lineage_head h = head(LOG_A, 7, H1);
        cr_assert_eq(aidp_lineage_head_sign(&h, key), 0);
        json_object *ev = event();
        aidp_lineage_set_head_facet(ev, &h);
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_event_check(ev, &e), 0, "still a RunEvent: %s", e.msg);
        const char *s = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        cr_assert(strstr(s, "\"aidp_chain_head\":{\"_producer\":\"" AIDP_LINEAGE_PRODUCER
                            "\",\"_schemaURL\":\"" AIDP_LINEAGE_FACET_SCHEMA_BASE
                            "aidp_chain_head\",\"log\":\"" LOG_A "\",\"seq\":7,"),
                  "%s", s);
        struct aidp_lineage_head back;
        cr_assert_eq(aidp_lineage_head_parse(s, strlen(s), &back), 1);
        cr_assert_str_eq(back.log, LOG_A);
        cr_assert_eq(back.seq, 7);
        cr_assert_str_eq(back.hash, H1);
        cr_assert(aidp_lineage_head_mac_ok(&back, key));
        json_object_put(ev);
        /* an event exported without the key carries no head; a broken one is malformed */
        ev = event();
        s = json_object_to_json_string_ext(ev,
                                           JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        cr_assert_eq(aidp_lineage_head_parse(s, strlen(s), &back), 0);
        json_object *f = aidp_lineage_run_facet(ev, AIDP_LINEAGE_HEAD_FACET);
        json_object_object_add(f, "seq", json_object_new_string("7"));
        s = json_object_to_json_string_ext(ev,
                                           JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        cr_assert_eq(aidp_lineage_head_parse(s, strlen(s), &back), -EINVAL);
        json_object_put(ev);
}

/* ---- rotation ---------------------------------------------------------------------------- */

Test(lineage_rotation, the_link_round_trips_and_refuses_paths)
{
        struct aidp_lineage_link l = {.prev = head(LOG_A, 9, H2)};
        cr_assert_eq(aidp_lineage_head_sign(&l.prev, key), 0);
        snprintf(l.file, sizeof l.file, "lineage.jsonl." LOG_A);
        json_object *ev = event();
        aidp_lineage_set_rotation(ev, &l);
        struct aidp_lineage_link back;
        cr_assert_eq(aidp_lineage_rotation_of(ev, &back), 1);
        cr_assert_str_eq(back.file, l.file);
        cr_assert_eq(back.prev.seq, 9);
        cr_assert_str_eq(back.prev.mac, l.prev.mac);
        cr_assert(aidp_lineage_head_mac_ok(&back.prev, key));
        const char *bad[] = {"../lineage.jsonl", "a/b", "..", ""};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                snprintf(l.file, sizeof l.file, "%s", bad[i]);
                json_object *e2 = event();
                aidp_lineage_set_rotation(e2, &l);
                cr_expect_eq(aidp_lineage_rotation_of(e2, &back), -EINVAL, "%s", bad[i]);
                json_object_put(e2);
        }
        json_object_put(ev);
        ev = event();
        cr_assert_eq(aidp_lineage_rotation_of(ev, &back), 0);
        json_object_put(ev);
}

Test(lineage_rotation, heads_of_the_logs_it_follows_are_no_substitution)
{
        char h[1][AIDP_LINEAGE_HASH_HEX + 1];
        char *log = make_log(LOG_A, 1, h);
        struct aidp_lineage_head hs[] = {head(LOG_B, 5, H1)};
        cr_assert_eq(aidp_lineage_head_sign(&hs[0], key), 0);
        const char prior[1][AIDP_LINEAGE_LOG_ID_HEX + 1] = {LOG_B};
        struct aidp_lineage_log_view lv = {.log = LOG_A, .n = 1, .hashes = (const void *)h};
        struct aidp_lineage_witness_result r;
        aidp_lineage_witness_compare(&lv, hs, 1, key, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_SUBSTITUTED);
        lv.prior = prior;
        lv.nprior = 1;
        aidp_lineage_witness_compare(&lv, hs, 1, key, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_SILENT, "%s", r.reason);
        free(log);
}

/* ---- the TPM counter ---------------------------------------------------------------------- */

Test(lineage_tpm, the_binding_round_trips)
{
        json_object *ev = event();
        aidp_lineage_set_tpm_binding(ev, 0x01500016, 42);
        const char *s = json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        cr_assert(strstr(s, AIDP_LINEAGE_TPM_MARK), "%s", s);
        cr_assert(strstr(s, "\"nvIndex\":\"0x01500016\",\"counter\":42}"), "%s", s);
        uint32_t ix = 0;
        uint64_t c = 0;
        cr_assert_eq(aidp_lineage_tpm_binding_of(ev, &ix, &c), 1);
        cr_assert_eq(ix, 0x01500016);
        cr_assert_eq(c, 42);
        json_object_put(ev);
}

Test(lineage_tpm, the_matrix)
{
        struct aidp_lineage_witness_result r;
        /* 10 records, record 10 binds 21: the counter at 21 confirms all */
        aidp_lineage_tpm_compare(10, 10, 21, true, 21, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_CONFIRMED, "%s", r.reason);
        cr_assert_eq(r.unseen, 0);
        /* its increment lost (TPM down, supervisor died): a gap, not an alarm */
        aidp_lineage_tpm_compare(10, 10, 21, true, 20, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_CONFIRMED);
        cr_assert(strstr(r.reason, "one short") && strstr(r.reason, "no record is missing"), "%s",
                  r.reason);
        cr_assert_eq(r.gap_from, 10);
        /* records after the last binding one (TPM down then): a gap */
        aidp_lineage_tpm_compare(12, 10, 21, true, 21, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_CONFIRMED);
        cr_assert_eq(r.gap_from, 11);
        cr_assert_eq(r.gap_to, 12);
        /* the counter ahead of the log: rollback, from the record after */
        aidp_lineage_tpm_compare(8, 8, 19, true, 21, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_ROLLBACK);
        cr_assert_eq(r.first_affected, 9);
        cr_assert(strstr(r.reason, "2 committed record(s) after record 8 are missing"), "%s",
                  r.reason);
        /* no records, a counter that counted: emptied */
        aidp_lineage_tpm_compare(0, 0, 0, true, 21, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_EMPTIED);
        /* records, none binding a counter that counted: substituted */
        aidp_lineage_tpm_compare(5, 0, 0, true, 21, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_SUBSTITUTED);
        /* a binding the counter never reached: another TPM or index */
        aidp_lineage_tpm_compare(5, 5, 40, true, 21, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_SUBSTITUTED);
        cr_assert(strstr(r.reason, "another TPM"), "%s", r.reason);
        /* a counter never incremented: nothing to say */
        aidp_lineage_tpm_compare(5, 0, 0, false, 0, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_SILENT);
        cr_assert(!aidp_lineage_witness_alarm(r.verdict));
        /* ... unless the log binds it: the index was redefined */
        aidp_lineage_tpm_compare(5, 5, 9, false, 0, &r);
        cr_assert_eq(r.verdict, AIDP_WITNESS_SUBSTITUTED);
        cr_assert(strstr(r.reason, "redefined"), "%s", r.reason);
}

Test(lineage_tpm, config_takes_a_tpm_witness_and_names_errors)
{
        const char *ok = "apiVersion: aidp/v1\nkind: Witnesses\nwitnesses:\n"
                         "  - tpm: {nvIndex: 0x1500016}\n"
                         "  - file: /mnt/audit/heads.jsonl\n";
        struct aidp_witness_set s;
        aidp_error e = {0};
        cr_assert_eq(aidp_witness_parse("w.yaml", ok, strlen(ok), &s, &e), 0, "%s", e.msg);
        const struct aidp_witness *t = aidp_witness_tpm(&s);
        cr_assert_not_null(t);
        cr_assert_eq(t->nv_index, 0x01500016);
        cr_assert_str_eq(t->tcti, AIDP_WITNESS_TPM_DEFAULT_TCTI);
        cr_assert_str_eq(t->target, "tpm 0x01500016");
        aidp_witness_set_free(&s);
        const char *bad[][2] = {
                {"  - tpm: {nvIndex: 0x81000001}\n", "expected an NV index"},
                {"  - tpm: {tcti: \"device:/dev/tpmrm0\"}\n", "nvIndex is required"},
                {"  - tpm: {nvIndex: 0x1500016, pcr: 7}\n", "pcr"},
                {"  - tpm: {nvIndex: 0x1500016}\n  - tpm: {nvIndex: 0x1500017}\n",
                 "only one tpm witness"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                char doc[512];
                snprintf(doc, sizeof doc, "apiVersion: aidp/v1\nkind: Witnesses\nwitnesses:\n%s",
                         bad[i][0]);
                cr_expect_lt(aidp_witness_parse("w.yaml", doc, strlen(doc), &s, &e), 0, "%s",
                             bad[i][0]);
                cr_expect(strstr(e.msg, bad[i][1]) && strstr(e.msg, "w.yaml:"), "%s: %s", bad[i][0],
                          e.msg);
                cr_expect_eq(e.status, AIDP_EXIT_CONFIG);
        }
}
