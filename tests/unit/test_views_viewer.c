/* views/ the streaming viewer: goldens for CSV and JSONL, the same output
 * whatever the chunking, hidden values, and malformed input refused with
 * its position. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/yaml.h"
#include "views/view.h"

static const char schema_yaml[] =
        "apiVersion: aidp/v1\nkind: Schema\nfiles:\n"
        "  - pattern: \"*.csv\"\n    format: csv\n    columns:\n"
        "      name: [pii.direct]\n      birth_date: [pii.quasi]\n      ssn: [pii.ssn]\n"
        "      email: [pii.email]\n      diagnosis: [phi]\n"
        "  - pattern: \"*.jsonl\"\n    format: jsonl\n    columns:\n"
        "      /patient/name: [pii.direct]\n      /patient/dob: [pii.quasi]\n"
        "      /ssn: [pii.ssn]\n      /notes/0: [phi]\n      /age: [pii.email]\n"
        "      /missing/x: [pii.direct]\n";

static const char view_yaml[] =
        "views:\n  v:\n    labels:\n"
        "      pii.direct: {tokenize: {mode: hmac, domain: patient, key: k}}\n"
        "      pii.quasi: {generalize: {date: year}}\n"
        "      pii.ssn: {mask: {keep_last: 4}}\n"
        "      pii.email: drop\n"
        "      phi: null\n";

struct env {
        struct aidp_schema schema;
        struct aidp_view view;
        struct aidp_file_view csv, jsonl;
        struct aidp_token_key key;
        struct aidp_token_keys keys;
};

static struct env E;

static void setup(void)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_parse_yaml(schema_yaml, strlen(schema_yaml), "s", &E.schema, &err),
                     0, "%s", err.msg);
        struct aidp_yaml y = {0};
        cr_assert_eq(aidp_yaml_load(&y, "a", "policy", view_yaml, strlen(view_yaml), 0, &err), 0);
        yaml_node_t *n =
                aidp_yaml_get(&y, aidp_yaml_get(&y, aidp_yaml_root(&y), "views", NULL), "v", NULL);
        cr_assert_eq(aidp_view_parse_node(&y, n, "views.v", "v", &E.view, &err), 0, "%s", err.msg);
        aidp_yaml_free(&y);
        const struct aidp_view *vs[] = {&E.view};
        cr_assert_eq(aidp_view_resolve(vs, 1, &E.schema.files[0], &E.csv, &err), 0);
        cr_assert_eq(aidp_view_resolve(vs, 1, &E.schema.files[1], &E.jsonl, &err), 0);
        strcpy(E.key.key_id, "k");
        memset(E.key.key, 7, 32);
        E.keys.keys = &E.key;
        E.keys.n = 1;
}

static void teardown(void)
{
        aidp_file_view_free(&E.csv);
        aidp_file_view_free(&E.jsonl);
        aidp_view_free(&E.view);
        aidp_schema_free(&E.schema);
}

struct sink {
        char *out;
        size_t len;
        char hidden[4096];
        int fail_after; /* > 0: the n-th write fails */
        int writes;
};

static int sink_write(void *opaque, const void *buf, size_t len, aidp_error *err)
{
        struct sink *s = opaque;
        if (s->fail_after && ++s->writes >= s->fail_after)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOSPC, "disk full");
        s->out = realloc(s->out, s->len + len + 1);
        memcpy(s->out + s->len, buf, len);
        s->len += len;
        s->out[s->len] = 0;
        return 0;
}

static void sink_hidden(void *opaque, const char *column, const char *label, const void *value,
                        size_t len)
{
        struct sink *s = opaque;
        size_t used = strlen(s->hidden);
        snprintf(s->hidden + used, sizeof s->hidden - used, "%s(%s)=%.*s|", column,
                 label ? label : "-", (int)len, (const char *)value);
}

/* Feed in in chunks of `chunk` bytes (0 = one piece); returns the status. */
static int run(const struct aidp_file_view *fv, const char *in, size_t n, size_t chunk,
               struct sink *s, aidp_error *err)
{
        struct aidp_viewer *v;
        memset(s, 0, sizeof *s);
        int r = aidp_viewer_new(fv, &E.keys, "ds/f", sink_write, sink_hidden, s, &v, err);
        cr_assert_eq(r, 0, "%s", err->msg);
        for (size_t off = 0; r >= 0 && off < n;) {
                size_t take = chunk && n - off > chunk ? chunk : n - off;
                r = aidp_viewer_feed(v, in + off, take, err);
                off += take;
        }
        if (r >= 0)
                r = aidp_viewer_finish(v, err);
        aidp_viewer_free(v);
        return r;
}

/* Split at one byte position: [0, cut) and [cut, n). */
static int run_split(const struct aidp_file_view *fv, const char *in, size_t n, size_t cut,
                     struct sink *s, aidp_error *err)
{
        struct aidp_viewer *v;
        memset(s, 0, sizeof *s);
        cr_assert_eq(aidp_viewer_new(fv, &E.keys, "ds/f", sink_write, sink_hidden, s, &v, err), 0);
        int r = aidp_viewer_feed(v, in, cut, err);
        if (r >= 0)
                r = aidp_viewer_feed(v, in + cut, n - cut, err);
        if (r >= 0)
                r = aidp_viewer_finish(v, err);
        aidp_viewer_free(v);
        return r;
}

TestSuite(viewer, .init = setup, .fini = teardown);

static const char csv_in[] =
        "\xef\xbb\xbfname,birth_date,ssn,email,diagnosis,note\r\n"
        "Alice Smith,1984-07-21,123-45-6789,alice@example.com,flu,\"says \"\"hi\"\", ok\"\r\n"
        "\"Bob, Jr.\",2001-02-03T04:05:06Z,987-65-4321,bob@example.com,\"line1\r\nline2\",\r\n"
        "Zoë,not a date,12,z@example.com,,\"multi\nline\"\r\n";

Test(viewer, csv_golden)
{
        struct sink s;
        aidp_error err = {0};
        cr_assert_eq(run(&E.csv, csv_in, strlen(csv_in), 0, &s, &err), 0, "%s", err.msg);
        /* Tokens were checked against python3-cryptography in test_views_xform;
         * here: the shape, determinism, and everything else byte for byte. */
        struct sink t;
        cr_assert_eq(run(&E.csv, csv_in, strlen(csv_in), 0, &t, &err), 0);
        cr_assert_str_eq(s.out, t.out);
        char *lines[4];
        char *save = NULL, *copy = strdup(s.out);
        /* rows end CRLF like the input; the quoted CRLF inside a field stays */
        cr_assert(strstr(s.out, "\r\n"));
        lines[0] = strtok_r(copy, "\n", &save);
        cr_assert_str_eq(lines[0], "name,birth_date,ssn,diagnosis,note\r");
        cr_assert_not_null(strstr(s.out, ",1984,*******6789,,\"says \"\"hi\"\", ok\"\r\n"), "%s",
                           s.out);
        cr_assert_not_null(strstr(s.out, ",2001,*******4321,,\r\n"), "%s", s.out);
        cr_assert_not_null(strstr(s.out, ",,**,,\"multi\nline\"\r\n"), "%s", s.out);
        cr_assert_null(strstr(s.out, "Alice"));
        cr_assert_null(strstr(s.out, "example.com"));
        cr_assert_null(strstr(s.out, "flu"));
        cr_assert_null(strstr(s.out, "line1"));
        cr_assert_eq(
                strncmp(s.out + strlen("name,birth_date,ssn,diagnosis,note\r\n"), "patient:", 8), 0,
                "%s", s.out);
        cr_assert_not_null(strstr(s.hidden, "name(pii.direct)=Alice Smith|"), "%s", s.hidden);
        cr_assert_not_null(strstr(s.hidden, "name(pii.direct)=Bob, Jr.|"));
        cr_assert_not_null(strstr(s.hidden, "email(pii.email)=alice@example.com|"));
        cr_assert_not_null(strstr(s.hidden, "diagnosis(phi)=line1\r\nline2|"));
        cr_assert_null(strstr(s.hidden, "note"), "raw columns are not hidden: %s", s.hidden);
        free(copy);
        free(s.out);
        free(t.out);
}

Test(viewer, csv_every_chunking_gives_the_same_output)
{
        struct sink whole, part;
        aidp_error err = {0};
        size_t n = strlen(csv_in);
        cr_assert_eq(run(&E.csv, csv_in, n, 0, &whole, &err), 0);
        for (size_t cut = 0; cut <= n; cut++) {
                cr_assert_eq(run_split(&E.csv, csv_in, n, cut, &part, &err), 0, "cut %zu: %s", cut,
                             err.msg);
                cr_assert_str_eq(part.out, whole.out, "cut at %zu", cut);
                cr_assert_str_eq(part.hidden, whole.hidden, "cut at %zu", cut);
                free(part.out);
        }
        cr_assert_eq(run(&E.csv, csv_in, n, 1, &part, &err), 0);
        cr_assert_str_eq(part.out, whole.out);
        free(part.out);
        free(whole.out);
}

static void csv_refused(const char *in, const char *want)
{
        struct sink s;
        aidp_error err = {0};
        int r = run(&E.csv, in, strlen(in), 0, &s, &err);
        cr_assert_lt(r, 0, "accepted: %s", in);
        cr_assert_eq(err.status, AIDP_EXIT_DATA, "%s", err.msg);
        cr_assert_eq(err.errnum, EBADMSG, "%s", err.msg);
        cr_assert_not_null(strstr(err.msg, want), "got '%s', want '%s'", err.msg, want);
        free(s.out);
}

Test(viewer, csv_malformed_is_refused_with_position)
{
        csv_refused("name,ssn\na,b\nc\n", "ds/f:3:2: record has 1 fields, the header 2");
        csv_refused("name,ssn\na,b,c\n", "ds/f:2:3: record has more than the header's 2 fields");
        csv_refused("name,ssn\na,b\"c\",d\n", "ds/f:2:2: malformed CSV");
        csv_refused("name,ssn\na,\"b\"x\n", "ds/f:2:2: malformed CSV");
        csv_refused("name,ssn\na,\"b\n", "ds/f:2:2: malformed CSV"); /* unterminated at the end */
        csv_refused("name,ssn\na,b\xff\n", "ds/f:2:2: invalid UTF-8 at byte 2 of the field");
        csv_refused("name,ssn\na,\xc3\x28\n", "ds/f:2:2: invalid UTF-8");
        csv_refused("name,ssn\na,\xed\xa0\x80\n", "ds/f:2:2: invalid UTF-8"); /* surrogate */
        csv_refused("name,ssn,name\n", "ds/f:1:3: header cell 'name' appears twice");
        csv_refused("\xef\xbbname\n", "ds/f:1:1: invalid UTF-8"); /* half a BOM */
}

/* The viewer checks UTF-8 once per fed buffer and leaves it to each field
 * once a buffer fails (a bad byte, or a sequence split between two
 * buffers): wherever the input is cut, a bad byte after a split "ü" is
 * still found at its own field, and a good file still passes. */
Test(viewer, csv_utf8_checked_whatever_the_buffers)
{
        static const char bad[] = "name,ssn\nJ\xc3\xbcrgen,1\nb,c\nd,e\xff\n";
        static const char good[] = "name,ssn\nJ\xc3\xbcrgen,1\nb,c\nd,\xe2\x82\xac\n";
        struct sink s;
        aidp_error err = {0};
        for (size_t cut = 0; cut <= strlen(bad); cut++) {
                memset(&err, 0, sizeof err);
                cr_assert_lt(run_split(&E.csv, bad, strlen(bad), cut, &s, &err), 0, "cut %zu", cut);
                cr_assert_not_null(strstr(err.msg, "ds/f:4:2: invalid UTF-8 at byte 2"),
                                   "cut %zu: %s", cut, err.msg);
                free(s.out);
        }
        for (size_t cut = 0; cut <= strlen(good); cut++) {
                cr_assert_eq(run_split(&E.csv, good, strlen(good), cut, &s, &err), 0, "cut %zu: %s",
                             cut, err.msg);
                free(s.out);
        }
}

Test(viewer, csv_no_trailing_newline_lf_and_spaces_kept)
{
        struct sink s;
        aidp_error err = {0};
        const char *in = "note,ssn\n  spaced  ,1234567\nlast,\"\"";
        cr_assert_eq(run(&E.csv, in, strlen(in), 0, &s, &err), 0, "%s", err.msg);
        cr_assert_str_eq(s.out, "note,ssn\n  spaced  ,***4567\nlast,");
        free(s.out);
        cr_assert_eq(run(&E.csv, "", 0, 0, &s, &err), 0, "%s", err.msg);
        cr_assert_null(s.out);
}

/* Spaces and tabs are kept wherever they stand (field edges, inside quotes)
 * and wherever the input is cut; after a closing quote they are refused. */
Test(viewer, csv_spaces_and_tabs_kept_whatever_the_buffers)
{
        static const char in[] = "note,ssn\n \t a b\t , 12 34 \n\"\t q \",\" \"\n\t,\t\n";
        static const char want[] = "note,ssn\n \t a b\t ,*** 34 \n\t q ,*\n\t,*\n";
        struct sink s;
        aidp_error err = {0};
        for (size_t cut = 0; cut <= strlen(in); cut++) {
                cr_assert_eq(run_split(&E.csv, in, strlen(in), cut, &s, &err), 0, "cut %zu: %s",
                             cut, err.msg);
                cr_assert_str_eq(s.out, want, "cut %zu", cut);
                free(s.out);
        }
        /* A space after a closing quote is text after it: refused, as before. */
        static const char bad[] = "note,ssn\n\"a\" ,1\n";
        for (size_t cut = 0; cut <= strlen(bad); cut++) {
                memset(&err, 0, sizeof err);
                cr_assert_lt(run_split(&E.csv, bad, strlen(bad), cut, &s, &err), 0, "cut %zu", cut);
                cr_assert_not_null(strstr(err.msg, "ds/f:2:1: malformed CSV"), "cut %zu: %s", cut,
                                   err.msg);
                free(s.out);
        }
}

/* RFC 4180 quoting of f into out: "f" with each quote doubled. */
static size_t quote_into(char *out, const char *f, size_t n)
{
        size_t k = 0;
        out[k++] = '"';
        for (size_t i = 0; i < n; i++) {
                if (f[i] == '"')
                        out[k++] = '"';
                out[k++] = f[i];
        }
        out[k++] = '"';
        return k;
}

/* A raw field is written bare unless it holds , " CR or LF, then quoted with
 * its quotes doubled: for every length around the 4- and 8-byte words the
 * check reads, with each such byte (one or two of them) at every position. */
Test(viewer, csv_raw_fields_requoted_at_every_length_and_position)
{
        static const char specials[] = {',', '"', '\n', '\r', 0};
        for (size_t n = 0; n <= 20; n++)
                for (size_t pos = 0; pos <= n; pos++)
                        for (const char *c = specials; c < specials + sizeof specials; c++)
                                for (int twice = 0; twice < 2; twice++) {
                                        char f[24], in[80], want[80];
                                        for (size_t i = 0; i < n; i++)
                                                f[i] = (char)('a' + i);
                                        bool has = pos < n && *c;
                                        if (has)
                                                f[pos] = *c;
                                        if (has && twice)
                                                f[n - 1 - pos] = *c;
                                        size_t k = (size_t)sprintf(in, "note\n");
                                        k += quote_into(in + k, f, n);
                                        in[k++] = '\n';
                                        size_t w = (size_t)sprintf(want, "note\n");
                                        if (has)
                                                w += quote_into(want + w, f, n);
                                        else
                                                memcpy(want + w, f, n), w += n;
                                        want[w++] = '\n';
                                        struct sink s;
                                        aidp_error err = {0};
                                        cr_assert_eq(run(&E.csv, in, k, 0, &s, &err), 0, "%s",
                                                     err.msg);
                                        cr_assert_eq(s.len, w, "n=%zu pos=%zu c=%d", n, pos, *c);
                                        cr_assert_eq(memcmp(s.out, want, w), 0,
                                                     "n=%zu pos=%zu c=%d", n, pos, *c);
                                        free(s.out);
                                }
}

Test(viewer, csv_long_fields_up_to_the_limit)
{
        size_t n = AIDP_VIEW_FIELD_MAX;
        char *in = malloc(n + 64);
        strcpy(in, "note,ssn\nx,");
        size_t h = strlen(in);
        memset(in + h, '7', n);
        in[h + n] = '\n';
        struct sink s;
        aidp_error err = {0};
        cr_assert_eq(run(&E.csv, in, h + n + 1, 1 << 20, &s, &err), 0, "%s", err.msg);
        cr_assert_eq(s.len, strlen("note,ssn\nx,") + n + 1);
        cr_assert_eq(s.out[s.len - 2], '7');
        cr_assert_eq(s.out[s.len - 6], '*');
        free(s.out);
        in[h + n] = '7';
        in[h + n + 1] = '\n';
        cr_assert_lt(run(&E.csv, in, h + n + 2, 1 << 20, &s, &err), 0);
        cr_assert_not_null(strstr(err.msg, "ds/f:2:2: field longer than"), "%s", err.msg);
        free(s.out);
        free(in);
}

Test(viewer, a_failing_writer_stops_the_viewer)
{
        struct aidp_viewer *v;
        struct sink s = {.fail_after = 1};
        aidp_error err = {0};
        cr_assert_eq(aidp_viewer_new(&E.csv, &E.keys, "ds/f", sink_write, NULL, &s, &v, &err), 0);
        int r = aidp_viewer_feed(v, csv_in, strlen(csv_in), &err);
        if (r >= 0)
                r = aidp_viewer_finish(v, &err);
        cr_assert_lt(r, 0);
        cr_assert_str_eq(err.msg, "disk full");
        cr_assert_eq(err.errnum, ENOSPC);
        aidp_viewer_free(v);
}

Test(viewer, a_missing_token_key_fails_at_set_up)
{
        struct aidp_token_keys none = {0};
        struct aidp_viewer *v = NULL;
        aidp_error err = {0};
        struct sink s = {0};
        cr_assert_lt(aidp_viewer_new(&E.csv, &none, "ds/f", sink_write, NULL, &s, &v, &err), 0);
        cr_assert_not_null(strstr(err.msg, "ds/f: column 'name': tokenize: token key 'k' is not "
                                           "loaded"),
                           "%s", err.msg);
}

static const char jsonl_in[] =
        "{\"patient\":{\"name\":\"Alice\",\"dob\":\"1984-07-21\"},\"ssn\":\"123-45-6789\","
        "\"notes\":[\"flu\",\"ok\"],\"age\":41,\"k\":1.5}\n"
        "\r\n"
        "{\"patient\":{\"name\":null,\"dob\":19840721},\"ssn\":123456789,\"notes\":[]}\r\n"
        "{\"other\":\"Zoë\",\"patient\":\"flat\"}";

Test(viewer, jsonl_golden)
{
        struct sink s;
        aidp_error err = {0};
        cr_assert_eq(run(&E.jsonl, jsonl_in, strlen(jsonl_in), 0, &s, &err), 0, "%s", err.msg);
        char *l2 = strchr(s.out, '\n') + 1;
        char *l3 = strchr(l2, '\n') + 1;
        const char *head = "{\"patient\":{\"name\":\"patient:";
        cr_assert_eq(strncmp(s.out, head, strlen(head)), 0, "%s", s.out);
        cr_assert_not_null(strstr(s.out, "\",\"dob\":\"1984\"},\"ssn\":\"*******6789\","
                                         "\"notes\":[null,\"ok\"],\"k\":1.5}\n"),
                           "%s", s.out);
        /* a JSON null stays null; a number that is no date becomes null; numbers are masked as text */
        cr_assert_str_eq(l2 - 0, "{\"patient\":{\"name\":null,\"dob\":null},\"ssn\":\"*****6789\","
                                 "\"notes\":[]}\n"
                                 "{\"other\":\"Zoë\",\"patient\":\"flat\"}\n");
        (void)l3;
        cr_assert_not_null(strstr(s.hidden, "/patient/name(pii.direct)=Alice|"), "%s", s.hidden);
        cr_assert_not_null(strstr(s.hidden, "/age(pii.email)=41|"), "%s", s.hidden);
        cr_assert_not_null(strstr(s.hidden, "/notes/0(phi)=flu|"), "%s", s.hidden);
        cr_assert_not_null(strstr(s.hidden, "/ssn(pii.ssn)=123456789|"), "%s", s.hidden);
        free(s.out);
}

Test(viewer, jsonl_every_chunking_gives_the_same_output)
{
        struct sink whole, part;
        aidp_error err = {0};
        size_t n = strlen(jsonl_in);
        cr_assert_eq(run(&E.jsonl, jsonl_in, n, 0, &whole, &err), 0);
        for (size_t cut = 0; cut <= n; cut++) {
                cr_assert_eq(run_split(&E.jsonl, jsonl_in, n, cut, &part, &err), 0, "cut %zu: %s",
                             cut, err.msg);
                cr_assert_str_eq(part.out, whole.out, "cut at %zu", cut);
                cr_assert_str_eq(part.hidden, whole.hidden, "cut at %zu", cut);
                free(part.out);
        }
        free(whole.out);
}

static void jsonl_refused(const char *in, const char *want)
{
        struct sink s;
        aidp_error err = {0};
        int r = run(&E.jsonl, in, strlen(in), 0, &s, &err);
        cr_assert_lt(r, 0, "accepted: %s", in);
        cr_assert_eq(err.status, AIDP_EXIT_DATA, "%s", err.msg);
        cr_assert_eq(err.errnum, EBADMSG, "%s", err.msg);
        cr_assert_not_null(strstr(err.msg, want), "got '%s', want '%s'", err.msg, want);
        free(s.out);
}

Test(viewer, jsonl_malformed_is_refused_with_position)
{
        jsonl_refused("{\"a\":1}\n[1,2]\n", "ds/f:2:1: expected a JSON object on each line");
        jsonl_refused("{\"a\":1}\n\"str\"\n", "ds/f:2:1: expected a JSON object");
        jsonl_refused("{\"a\":1}\n{\"a\":tru}\n", "ds/f:2:");
        jsonl_refused("{\"a\":1} x\n", "ds/f:1:");
        jsonl_refused("{\"a\":1}{\"b\":2}\n", "ds/f:1:");
        jsonl_refused("{\"a\":\"\xff\"}\n", "ds/f:1:7: invalid UTF-8");
        jsonl_refused("{\"a\":1,}\n", "ds/f:1:");
        jsonl_refused("{\"a\":\n", "ds/f:1:");
}
