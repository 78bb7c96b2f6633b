/* views/ schema: schema.yaml into the struct (labels sorted), positions of
 * errors, the canonical header encoding (deterministic, round trip, nothing
 * else decodes) and the file match. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lineage_util.h"
#include "views/view.h"

static void parse_file(struct aidp_schema *s)
{
        size_t len;
        char *buf = aidp_test_slurp(AIDP_SOURCE_DIR "/tests/data/views/schema.yaml", &len);
        cr_assert_not_null(buf);
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_parse_yaml(buf, len, "schema.yaml", s, &err), 0, "%s", err.msg);
        free(buf);
}

Test(schema, parses_the_example)
{
        struct aidp_schema s;
        parse_file(&s);
        cr_assert_eq(s.n_files, 2);
        cr_assert_str_eq(s.files[0].pattern, "patients/*.csv");
        cr_assert_eq(s.files[0].format, AIDP_VIEW_CSV);
        cr_assert_eq(s.files[0].n_columns, 6);
        cr_assert_str_eq(s.files[0].columns[1].name, "email");
        cr_assert_eq(s.files[0].columns[1].n_labels, 2);
        /* sorted */
        cr_assert_str_eq(s.files[0].columns[1].labels[0], "contact");
        cr_assert_str_eq(s.files[0].columns[1].labels[1], "pii.direct");
        cr_assert_eq(s.files[0].columns[5].n_labels, 0);
        cr_assert_eq(s.files[1].format, AIDP_VIEW_JSONL);
        cr_assert_str_eq(s.files[1].columns[2].name, "/a~1b");
        aidp_schema_free(&s);
}

Test(schema, encoding_is_canonical_and_round_trips)
{
        struct aidp_schema s, d;
        parse_file(&s);
        uint8_t *a = NULL, *b = NULL;
        size_t na, nb;
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_encode(&s, &a, &na, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_schema_encode(&s, &b, &nb, &err), 0, "%s", err.msg);
        cr_assert_eq(na, nb);
        cr_assert_eq(memcmp(a, b, na), 0);
        const char *golden =
                "{\"v\":1,\"files\":[{\"pattern\":\"patients/*.csv\",\"format\":\"csv\","
                "\"columns\":[{\"name\":\"name\",\"labels\":[\"pii.direct\"]},"
                "{\"name\":\"email\",\"labels\":[\"contact\",\"pii.direct\"]},"
                "{\"name\":\"birth_date\",\"labels\":[\"pii.quasi\"]},"
                "{\"name\":\"zip\",\"labels\":[\"pii.quasi\"]},"
                "{\"name\":\"diagnosis\",\"labels\":[\"phi\"]},"
                "{\"name\":\"note\",\"labels\":[]}]},"
                "{\"pattern\":\"events/*.jsonl\",\"format\":\"jsonl\","
                "\"columns\":[{\"name\":\"/patient/email\",\"labels\":[\"pii.direct\"]},"
                "{\"name\":\"/patient/dob\",\"labels\":[\"pii.quasi\"]},"
                "{\"name\":\"/a~1b\",\"labels\":[\"secret\"]}]}]}";
        cr_assert_eq(na, strlen(golden), "%.*s", (int)na, (char *)a);
        cr_assert_eq(memcmp(a, golden, na), 0, "%.*s", (int)na, (char *)a);
        cr_assert_eq(aidp_schema_decode(a, na, &d, &err), 0, "%s", err.msg);
        uint8_t *c = NULL;
        size_t nc;
        cr_assert_eq(aidp_schema_encode(&d, &c, &nc, &err), 0, "%s", err.msg);
        cr_assert_eq(nc, na);
        cr_assert_eq(memcmp(a, c, na), 0);
        cr_assert_str_eq(d.files[0].columns[1].labels[0], "contact");
        aidp_schema_free(&s);
        aidp_schema_free(&d);
        free(a);
        free(b);
        free(c);
}

Test(schema, decode_refuses_anything_not_canonical)
{
        static const char *bad[] = {
                "",
                "{}",
                "[]",
                "{\"v\":2,\"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[]}]}",
                /* whitespace */
                "{\"v\":1, \"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[]}]}",
                /* key order */
                "{\"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[]}],\"v\":1}",
                /* unknown key */
                "{\"v\":1,\"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[],\"x\":1}]"
                "}",
                /* labels unsorted */
                "{\"v\":1,\"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[{\"name\":"
                "\"n\",\"labels\":[\"b\",\"a\"]}]}]}",
                /* bad label */
                "{\"v\":1,\"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[{\"name\":"
                "\"n\",\"labels\":[\"PII\"]}]}]}",
                /* duplicate column */
                "{\"v\":1,\"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[{\"name\":"
                "\"n\",\"labels\":[]},{\"name\":\"n\",\"labels\":[]}]}]}",
                /* jsonl column not a pointer */
                "{\"v\":1,\"files\":[{\"pattern\":\"a\",\"format\":\"jsonl\",\"columns\":[{"
                "\"name\":"
                "\"n\",\"labels\":[]}]}]}",
                /* bad format, bad pattern, trailing bytes */
                "{\"v\":1,\"files\":[{\"pattern\":\"a\",\"format\":\"tsv\",\"columns\":[]}]}",
                "{\"v\":1,\"files\":[{\"pattern\":\"../a\",\"format\":\"csv\",\"columns\":[]}]}",
                "{\"v\":1,\"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[]}]}x",
                "{\"v\":1,\"files\":[]}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct aidp_schema d;
                aidp_error err = {0};
                int r = aidp_schema_decode((const uint8_t *)bad[i], strlen(bad[i]), &d, &err);
                cr_assert_lt(r, 0, "accepted %s", bad[i]);
                cr_assert_eq(err.status, AIDP_EXIT_DATA, "%s", bad[i]);
                cr_assert_eq(err.errnum, EBADMSG);
        }
        const char *ok =
                "{\"v\":1,\"files\":[{\"pattern\":\"a\",\"format\":\"csv\",\"columns\":[]}]}";
        struct aidp_schema d;
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_decode((const uint8_t *)ok, strlen(ok), &d, &err), 0, "%s",
                     err.msg);
        aidp_schema_free(&d);
}

static void expect_error(const char *yaml, const char *want)
{
        struct aidp_schema s;
        aidp_error err = {0};
        int r = aidp_schema_parse_yaml(yaml, strlen(yaml), "s.yaml", &s, &err);
        cr_assert_lt(r, 0, "accepted: %s", yaml);
        cr_assert_eq(err.status, AIDP_EXIT_CONFIG, "%s", err.msg);
        cr_assert_eq(err.errnum, EBADMSG, "%s", err.msg);
        cr_assert_not_null(strstr(err.msg, want), "got '%s', want '%s'", err.msg, want);
}

#define HEAD "apiVersion: aidp/v1\nkind: Schema\n"

Test(schema, errors_name_position_and_item)
{
        expect_error("apiVersion: aidp/v2\nkind: Schema\nfiles: []\n",
                     "s.yaml:1:13: apiVersion: found 'aidp/v2', expected aidp/v1");
        expect_error(HEAD "files: []\n", "s.yaml:3:8: files: found no file entry");
        expect_error(HEAD "files:\n  - pattern: a\n    format: tsv\n    columns: {}\n",
                     "s.yaml:5:13: files[0].format: found 'tsv', expected csv or jsonl");
        expect_error(HEAD "files:\n  - pattern: a\n    format: csv\n    colums: {}\n",
                     "s.yaml:6:5: files[0].colums: unknown key 'colums'");
        expect_error(HEAD "files:\n  - pattern: a\n    format: csv\n    columns:\n      n: [PII]\n",
                     "s.yaml:7:11: files[0].columns.n[0]");
        expect_error(HEAD "files:\n  - pattern: a\n    format: csv\n    columns:\n      n: [a]\n"
                          "      n: [b]\n",
                     "found the key 'n' twice");
        expect_error(HEAD "files:\n  - pattern: a\n    format: jsonl\n    columns:\n      n: [a]\n",
                     "s.yaml:7:7: files[0].columns.n: found 'n', expected a JSON pointer");
        expect_error(HEAD "files:\n  - pattern: /abs\n    format: csv\n    columns: {}\n",
                     "s.yaml:4:14: files[0].pattern: found '/abs'");
        expect_error(HEAD "files:\n  - pattern: a/../b\n    format: csv\n    columns: {}\n",
                     "files[0].pattern: found 'a/../b'");
        expect_error(HEAD "files:\n  - pattern: a\n    format: csv\n    columns:\n"
                          "      n: [a, b, c, d, e, f, g, h, i]\n",
                     "found 9 labels, expected at most 8");
        expect_error(HEAD
                     "files:\n  - pattern: a\n    format: csv\n    columns:\n      n: [a, a]\n",
                     "s.yaml:7:14");
        expect_error("", "s.yaml");
        /* The first matching entry wins, so a repeated pattern never applies. */
        expect_error(HEAD "files:\n  - pattern: a.csv\n    format: csv\n    columns: {}\n"
                          "  - pattern: b.csv\n    format: csv\n    columns: {}\n"
                          "  - pattern: a.csv\n    format: csv\n    columns: {n: [x]}\n",
                     "s.yaml:10:5: files[2]: found pattern 'a.csv' again (files[0] has it)");
}

Test(schema, match_first_wins_and_respects_slashes)
{
        struct aidp_schema s;
        parse_file(&s);
        cr_assert_eq(aidp_schema_match(&s, "patients/a.csv"), &s.files[0]);
        cr_assert_null(aidp_schema_match(&s, "patients/sub/a.csv"));
        cr_assert_eq(aidp_schema_match(&s, "events/x.jsonl"), &s.files[1]);
        cr_assert_null(aidp_schema_match(&s, "other.csv"));
        aidp_schema_free(&s);
}

/* ---- aidp_schema_keeps_labels: a re-seal's --schema judged as runs apply
 * it (the first matching entry wins) ---- */

#define OLD                                                                                        \
        HEAD "files:\n  - pattern: \"train/*.csv\"\n    format: csv\n    columns:\n"               \
             "      email: [pii.direct]\n      age: []\n"

static void keeps(const char *old_yaml, const char *new_yaml, const char *want)
{
        struct aidp_schema o, n;
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_parse_yaml(old_yaml, strlen(old_yaml), "old.yaml", &o, &err), 0,
                     "%s", err.msg);
        cr_assert_eq(aidp_schema_parse_yaml(new_yaml, strlen(new_yaml), "new.yaml", &n, &err), 0,
                     "%s", err.msg);
        char msg[512] = "";
        int r = aidp_schema_keeps_labels(&o, &n, msg, sizeof msg);
        if (want)
                cr_assert(r < 0 && strstr(msg, want), "r=%d msg '%s', want '%s'\n%s", r, msg, want,
                          new_yaml);
        else
                cr_assert_eq(r, 0, "refused: %s\n%s", msg, new_yaml);
        aidp_schema_free(&o);
        aidp_schema_free(&n);
}

Test(schema_keep, the_same_schema_or_more_labels_is_kept)
{
        keeps(OLD, OLD, NULL);
        keeps(OLD,
              HEAD "files:\n  - pattern: \"train/*.csv\"\n    format: csv\n    columns:\n"
                   "      email: [contact, pii.direct]\n      age: [pii.quasi]\n",
              NULL);
        /* A wider pattern that keeps the labels covers the old one; a
         * disjoint unlabelled entry ahead of it changes nothing. */
        keeps(OLD,
              HEAD "files:\n  - pattern: \"test/*.csv\"\n    format: csv\n    columns: {}\n"
                   "  - pattern: \"*/*.csv\"\n    format: csv\n    columns:\n"
                   "      email: [pii.direct]\n",
              NULL);
        /* After the covering entry, nothing else is ever used for those files. */
        keeps(OLD,
              HEAD "files:\n  - pattern: \"train/*.csv\"\n    format: csv\n    columns:\n"
                   "      email: [pii.direct]\n  - pattern: \"*/*\"\n    format: csv\n"
                   "    columns: {}\n",
              NULL);
        /* An old schema without labels asks for nothing. */
        keeps(HEAD "files:\n  - pattern: a.csv\n    format: csv\n    columns: {n: []}\n",
              HEAD "files:\n  - pattern: b.csv\n    format: csv\n    columns: {}\n", NULL);
}

Test(schema_keep, an_unlabelled_entry_shadowing_the_labelled_one_is_refused)
{
        /* The reviewer's case: a catch-all first, the original entry after it.
         * Every file of train/ gets the catch-all's (no) labels at run time. */
        keeps(OLD,
              HEAD "files:\n  - pattern: \"*/*.csv\"\n    format: csv\n    columns: {}\n"
                   "  - pattern: \"train/*.csv\"\n    format: csv\n    columns:\n"
                   "      email: [pii.direct]\n",
              "drops label pii.direct of column email (entry */*.csv, for files of pattern "
              "train/*.csv)");
        /* One file of the pattern shadowed is enough. */
        keeps(OLD,
              HEAD "files:\n  - pattern: train/a.csv\n    format: csv\n    columns: {}\n"
                   "  - pattern: \"train/*.csv\"\n    format: csv\n    columns:\n"
                   "      email: [pii.direct]\n",
              "drops label pii.direct of column email (entry train/a.csv");
        keeps(OLD,
              HEAD "files:\n  - pattern: \"train/?.csv\"\n    format: csv\n    columns: {}\n"
                   "  - pattern: \"train/*.csv\"\n    format: csv\n    columns:\n"
                   "      email: [pii.direct]\n",
              "entry train/?.csv");
        /* Brackets are not compared: assumed to overlap. */
        keeps(OLD,
              HEAD "files:\n  - pattern: \"tr[a]in/x.csv\"\n    format: csv\n    columns: {}\n"
                   "  - pattern: \"train/*.csv\"\n    format: csv\n    columns:\n"
                   "      email: [pii.direct]\n",
              "entry tr[a]in/x.csv");
        /* The same column in another format is not the same column. */
        keeps(OLD,
              HEAD "files:\n  - pattern: \"train/*.csv\"\n    format: jsonl\n    columns:\n"
                   "      /email: [pii.direct]\n",
              "drops label pii.direct of column email");
        /* A narrower pattern leaves the old one's other files to no entry. */
        keeps(OLD,
              HEAD "files:\n  - pattern: train/a.csv\n    format: csv\n    columns:\n"
                   "      email: [pii.direct]\n",
              "has no entry that covers every file of pattern train/*.csv");
        keeps(OLD,
              HEAD "files:\n  - pattern: \"train/*.csv\"\n    format: csv\n    columns:\n"
                   "      email: []\n",
              "drops label pii.direct of column email");
}
