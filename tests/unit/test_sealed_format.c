#define _GNU_SOURCE
/* Pure parts of the sealed format: header and manifest codecs, validation,
 * tag inheritance, keys.yaml. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/codec/sealed_format.h"

static struct aidp_sealed_header sample(void)
{
        struct aidp_sealed_header h;
        memset(&h, 0, sizeof h);
        strcpy(h.meta.name, "imagenet");
        strcpy(h.meta.version, "2024.06");
        strcpy(h.meta.owner, "Alice Example <alice@example.org>");
        h.meta.created_at = 1717243200;
        h.meta.classification = AIDP_CLASS_RESTRICTED;
        aidp_sealed_meta_add_tag(&h.meta, AIDP_F_RESIDENCY, "eu", NULL);
        aidp_sealed_meta_add_tag(&h.meta, AIDP_F_RESIDENCY, "de", NULL);
        aidp_sealed_meta_add_tag(&h.meta, AIDP_F_REGULATION, "gdpr", NULL);
        strcpy(h.meta.key_id, "prod-eu.1");
        h.key_wrap = AIDP_WRAP_AES256_KWP;
        h.wrapped_key_len = 40;
        memset(h.wrapped_key, 0xAB, 40);
        memset(h.content_digest, 0xCD, 32);
        h.segment_size = 1 << 20;
        h.payload_len = 3 * (1 << 20) + 5;
        return h;
}

Test(sealed_format, header_round_trip_is_canonical)
{
        struct aidp_sealed_header h = sample(), d;
        uint8_t buf[4096], buf2[4096];
        aidp_error err = {0};
        int n = aidp_sealed_header_encode(&h, buf, sizeof buf, &err);
        cr_assert_gt(n, 0, "%s", err.msg);
        cr_assert_eq(memcmp(buf, "AIDPSEAL\0\2\0\0", 12), 0, "new headers are format 2");
        cr_assert_eq(aidp_sealed_header_decode(buf, (size_t)n, &d, &err), 0, "%s", err.msg);
        cr_assert_str_eq(d.meta.name, "imagenet");
        cr_assert_str_eq(d.meta.owner, h.meta.owner);
        cr_assert_eq(d.meta.n_residency, 2);
        cr_assert_str_eq(d.meta.residency[0], "de");
        cr_assert_eq(d.n_segments, 4);
        cr_assert_eq(d.payload_offset, (uint64_t)n + 16);
        cr_assert_eq(d.file_size, d.payload_offset + d.payload_len + 4 * 16);
        cr_assert_eq(memcmp(d.header_digest, h.header_digest, 32), 0);
        int n2 = aidp_sealed_header_encode(&d, buf2, sizeof buf2, &err);
        cr_assert_eq(n2, n);
        cr_assert_eq(memcmp(buf, buf2, (size_t)n), 0);
        /* A decoded format 1 header re-encodes as format 1, byte for byte. */
        buf[9] = 1;
        cr_assert_eq(aidp_sealed_header_decode(buf, (size_t)n, &d, &err), 0, "%s", err.msg);
        cr_assert_eq(d.format_version, 1);
        cr_assert_eq(aidp_sealed_header_encode(&d, buf2, sizeof buf2, &err), n);
        cr_assert_eq(memcmp(buf, buf2, (size_t)n), 0);
}

static void expect_decode_error(const uint8_t *buf, size_t len, const char *needle)
{
        struct aidp_sealed_header d;
        aidp_error err = {0};
        cr_assert_lt(aidp_sealed_header_decode(buf, len, &d, &err), 0, "accepted, wanted '%s'",
                     needle);
        cr_assert_eq(err.status, AIDP_EXIT_DATA);
        cr_assert(strstr(err.msg, needle), "'%s' not in '%s'", needle, err.msg);
}

Test(sealed_format, header_decode_errors_name_the_offset)
{
        struct aidp_sealed_header h = sample();
        uint8_t buf[4096], b[4096];
        aidp_error err = {0};
        int n = aidp_sealed_header_encode(&h, buf, sizeof buf, &err);
        expect_decode_error(buf, 10, "truncated header");
        /* a short file that is no sealed one (a 12-byte CSV given to --data) */
        expect_decode_error((const uint8_t *)"a,b\n1,2\n3,4\n", 12,
                            "not a sealed dataset (bad magic");
        expect_decode_error(buf, 0, "not a sealed dataset (an empty file");
        memcpy(b, buf, (size_t)n);
        b[0] = 'X';
        expect_decode_error(b, (size_t)n, "bad magic");
        memcpy(b, buf, (size_t)n);
        b[9] = 5;
        expect_decode_error(b, (size_t)n, "unsupported format version 5");
        b[9] = 4; /* format 4 is a produced-by record's, which it must have */
        expect_decode_error(b, (size_t)n, "required field 15 (produced-by record) missing");
        b[9] = 3; /* format 3 is format 2 plus a schema, which it must have */
        expect_decode_error(b, (size_t)n, "required field 14 (schema) missing");
        b[9] = 0;
        expect_decode_error(b, (size_t)n, "unsupported format version 0");
        expect_decode_error(buf, (size_t)n - 1, "truncated header");
        /* First field (name) claims to be longer than the header. */
        memcpy(b, buf, (size_t)n);
        b[18] = 0xff;
        expect_decode_error(b, (size_t)n, "header offset 16");
        /* Unknown field type. */
        memcpy(b, buf, (size_t)n);
        b[17] = 99;
        expect_decode_error(b, (size_t)n, "unknown field 99");
        /* Field order: make the name field a version field (type 2, then 2 again). */
        memcpy(b, buf, (size_t)n);
        b[17] = 2;
        expect_decode_error(b, (size_t)n, "out of order or repeated");
        /* Invalid name character. */
        memcpy(b, buf, (size_t)n);
        b[20] = '/';
        expect_decode_error(b, (size_t)n, "invalid dataset name");
        /* Body length 0. */
        memcpy(b, buf, (size_t)n);
        memset(b + 12, 0, 4);
        expect_decode_error(b, (size_t)n, "body length 0");
}

Test(sealed_format, header_required_fields)
{
        /* A body with only a name. */
        uint8_t b[64] = "AIDPSEAL\0\1\0\0\0\0\0\7\0\1\0\3abc";
        expect_decode_error(b, 23, "required field 2 (dataset version) missing");
}

Test(sealed_format, header_unsorted_tags_refused)
{
        struct aidp_sealed_header h = sample();
        uint8_t buf[4096];
        aidp_error err = {0};
        strcpy(h.meta.residency[0], "zz"); /* now "zz", "eu": not sorted */
        cr_assert_lt(aidp_sealed_header_encode(&h, buf, sizeof buf, &err), 0);
        cr_assert(strstr(err.msg, "not sorted"), "%s", err.msg);
}

Test(sealed_format, validators)
{
        cr_assert(aidp_sealed_valid_name("imagenet-1k_v2.0+x"));
        cr_assert_not(aidp_sealed_valid_name(".hidden"));
        cr_assert_not(aidp_sealed_valid_name("a/b"));
        cr_assert_not(aidp_sealed_valid_name(""));
        cr_assert(aidp_sealed_valid_tag("eu"));
        cr_assert(aidp_sealed_valid_tag("us-east.1"));
        cr_assert_not(aidp_sealed_valid_tag("EU"));
        cr_assert_not(aidp_sealed_valid_tag("-eu"));
        cr_assert(aidp_sealed_valid_key_id("prod-eu.2024"));
        cr_assert_not(aidp_sealed_valid_key_id("../etc/shadow"));
        cr_assert_not(aidp_sealed_valid_key_id(".x"));
        cr_assert_not(aidp_sealed_valid_owner("a\nb"));
        cr_assert(aidp_sealed_valid_owner("Alice <a@b>"));
        enum aidp_classification c;
        cr_assert_eq(aidp_sealed_class_parse("regulated", &c), 0);
        cr_assert_eq(c, AIDP_CLASS_REGULATED);
        cr_assert_lt(aidp_sealed_class_parse("secret", &c), 0);
}

Test(sealed_format, inherit_takes_max_class_and_union_of_tags)
{
        struct aidp_sealed_meta a = {0}, b = {0}, c = {0}, out = {0};
        a.classification = AIDP_CLASS_INTERNAL;
        aidp_sealed_meta_add_tag(&a, AIDP_F_RESIDENCY, "eu", NULL);
        aidp_sealed_meta_add_tag(&a, AIDP_F_REGULATION, "pci", NULL);
        b.classification = AIDP_CLASS_REGULATED;
        aidp_sealed_meta_add_tag(&b, AIDP_F_RESIDENCY, "de", NULL);
        aidp_sealed_meta_add_tag(&b, AIDP_F_RESIDENCY, "eu", NULL);
        aidp_sealed_meta_add_tag(&b, AIDP_F_REGULATION, "phi", NULL);
        c.classification = AIDP_CLASS_PUBLIC;
        strcpy(out.name, "run-output");
        const struct aidp_sealed_meta *in[] = {&a, &b, &c};
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_meta_inherit(in, 3, &out, &err), 0, "%s", err.msg);
        cr_assert_eq(out.classification, AIDP_CLASS_REGULATED);
        cr_assert_eq(out.n_residency, 2);
        cr_assert_str_eq(out.residency[0], "de");
        cr_assert_str_eq(out.residency[1], "eu");
        cr_assert_eq(out.n_regulation, 2);
        cr_assert_str_eq(out.regulation[0], "pci");
        cr_assert_str_eq(out.regulation[1], "phi");
        cr_assert_str_eq(out.name, "run-output");
        /* No inputs: public, no tags. */
        cr_assert_eq(aidp_sealed_meta_inherit(NULL, 0, &out, &err), 0);
        cr_assert_eq(out.classification, AIDP_CLASS_PUBLIC);
        cr_assert_eq(out.n_residency + out.n_regulation, 0);
}

Test(sealed_format, nonces)
{
        uint8_t n[12];
        aidp_sealed_nonce_segment(0x0102030405060708ull, true, n);
        const uint8_t want[12] = {0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8};
        cr_assert_eq(memcmp(n, want, 12), 0);
        aidp_sealed_nonce_segment(3, false, n);
        const uint8_t want2[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
        cr_assert_eq(memcmp(n, want2, 12), 0);
        aidp_sealed_nonce_header(n);
        const uint8_t want3[12] = {0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0};
        cr_assert_eq(memcmp(n, want3, 12), 0);
        cr_assert_eq(aidp_sealed_segment_count(0, 4096), 1);
        cr_assert_eq(aidp_sealed_segment_count(4096, 4096), 1);
        cr_assert_eq(aidp_sealed_segment_count(4097, 4096), 2);
}

static struct aidp_tree_entry ent(enum aidp_tree_type t, const char *p, uint64_t size)
{
        return (struct aidp_tree_entry){.type = t,
                                        .mode = t == AIDP_ENTRY_DIR ? 0755 : 0644,
                                        .size = size,
                                        .path = strdup(p)};
}

Test(sealed_format, manifest_round_trip_sorted)
{
        struct aidp_tree t = {.root = AIDP_ROOT_DIR, .root_mode = 0755};
        t.entries = calloc(5, sizeof *t.entries);
        t.entries[0] = ent(AIDP_ENTRY_FILE, "a/b", 10);
        t.entries[1] = ent(AIDP_ENTRY_DIR, "a", 0);
        t.entries[2] = ent(AIDP_ENTRY_FILE, "a-c", 3);
        t.entries[3] = ent(AIDP_ENTRY_FILE, "z", 0);
        t.entries[4] = ent(AIDP_ENTRY_FILE, "m", 7);
        t.n = 5;
        aidp_error err = {0};
        cr_assert_eq(aidp_tree_finish(&t, &err), 0, "%s", err.msg);
        cr_assert_str_eq(t.entries[0].path, "a");
        cr_assert_str_eq(t.entries[1].path, "a-c");
        cr_assert_str_eq(t.entries[2].path, "a/b");
        cr_assert_eq(t.entries[1].offset, t.manifest_len);
        cr_assert_eq(t.entries[2].offset, t.manifest_len + 3);
        cr_assert_eq(t.stream_len, t.manifest_len + 20);
        uint8_t *m = NULL;
        cr_assert_eq(aidp_tree_encode(&t, &m, &err), 0);
        struct aidp_tree d = {0};
        cr_assert_eq(aidp_tree_decode(m, t.manifest_len, &d, &err), 0, "%s", err.msg);
        cr_assert_eq(d.n, 5);
        cr_assert_eq(d.stream_len, t.stream_len);
        cr_assert_str_eq(d.entries[2].path, "a/b");
        /* aidp_tree_find: first entry whose bytes end after an offset. */
        cr_assert_eq(aidp_tree_find(&d, 0), 0);
        cr_assert_eq(aidp_tree_find(&d, t.manifest_len), 1);
        cr_assert_eq(aidp_tree_find(&d, t.manifest_len + 3), 2);
        cr_assert_eq(aidp_tree_find(&d, t.manifest_len + 13), 3);
        cr_assert_eq(aidp_tree_find(&d, t.stream_len), 5);
        free(m);
        aidp_tree_free(&d);
        aidp_tree_free(&t);
}

static void expect_tree_error(struct aidp_tree_entry *es, size_t n, const char *needle)
{
        struct aidp_tree t = {.root = AIDP_ROOT_DIR, .root_mode = 0755};
        t.entries = calloc(n, sizeof *t.entries);
        for (size_t i = 0; i < n; i++)
                t.entries[i] = es[i];
        t.n = n;
        aidp_error err = {0};
        cr_assert_lt(aidp_tree_finish(&t, &err), 0, "accepted; wanted %s", needle);
        cr_assert(strstr(err.msg, needle), "'%s' not in '%s'", needle, err.msg);
        aidp_tree_free(&t);
}

Test(sealed_format, manifest_rejects_bad_trees)
{
        struct aidp_tree_entry e1[] = {ent(AIDP_ENTRY_FILE, "a/b", 1)};
        expect_tree_error(e1, 1, "parent directory not listed");
        struct aidp_tree_entry e2[] = {ent(AIDP_ENTRY_FILE, "a", 1),
                                       ent(AIDP_ENTRY_FILE, "a/b", 1)};
        expect_tree_error(e2, 2, "parent directory not listed");
        struct aidp_tree_entry e3[] = {ent(AIDP_ENTRY_FILE, "../x", 1)};
        expect_tree_error(e3, 1, "invalid path");
        struct aidp_tree_entry e4[] = {ent(AIDP_ENTRY_FILE, "/abs", 1)};
        expect_tree_error(e4, 1, "invalid path");
        struct aidp_tree_entry e5[] = {ent(AIDP_ENTRY_FILE, "x", 1), ent(AIDP_ENTRY_FILE, "x", 1)};
        expect_tree_error(e5, 2, "not sorted and unique");
        struct aidp_tree_entry e6[] = {ent(AIDP_ENTRY_DIR, "d", 0)};
        e6[0].size = 5;
        expect_tree_error(e6, 1, "directory with a size");
        struct aidp_tree_entry e7[] = {ent(AIDP_ENTRY_FILE, "f", 0)};
        e7[0].mode = 04755;
        expect_tree_error(e7, 1, "invalid mode");
        cr_assert_not(aidp_tree_valid_path("a//b", 4));
        cr_assert_not(aidp_tree_valid_path("a/./b", 5));
        cr_assert_not(aidp_tree_valid_path("a/", 2));
        cr_assert(aidp_tree_valid_path("a/..b", 5));
}

Test(sealed_format, manifest_decode_bounds)
{
        struct aidp_tree t = {.root = AIDP_ROOT_DIR, .root_mode = 0755};
        t.entries = calloc(1, sizeof *t.entries);
        t.entries[0] = ent(AIDP_ENTRY_FILE, "f", 1);
        t.n = 1;
        aidp_error err = {0};
        cr_assert_eq(aidp_tree_finish(&t, &err), 0);
        uint8_t *m = NULL;
        aidp_tree_encode(&t, &m, &err);
        struct aidp_tree d = {0};
        uint8_t b[64];
        memcpy(b, m, t.manifest_len);
        b[19] = 200; /* entry count larger than fits */
        cr_assert_lt(aidp_tree_decode(b, t.manifest_len, &d, &err), 0);
        cr_assert(strstr(err.msg, "entry count"), "%s", err.msg);
        memcpy(b, m, t.manifest_len);
        b[AIDP_TREE_PREFIX_LEN + 13] = 50; /* path length past the end */
        cr_assert_lt(aidp_tree_decode(b, t.manifest_len, &d, &err), 0);
        cr_assert(strstr(err.msg, "malformed"), "%s", err.msg);
        cr_assert_lt(aidp_tree_decode(m, t.manifest_len - 1, &d, &err), 0);
        free(m);
        aidp_tree_free(&t);
}

Test(keys_config, parse_exec_provider)
{
        const char *y = "provider: exec\n"
                        "key_dir: /srv/keys\n"
                        "exec:\n"
                        "  command: [/usr/local/sbin/kms, --region, eu]\n"
                        "  timeout: 5\n";
        struct aidp_keys k;
        aidp_keys_init(&k);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_parse(y, strlen(y), "keys.yaml", &k, &err), 0, "%s", err.msg);
        cr_assert_eq(k.kind, AIDP_KEYS_EXEC);
        cr_assert_str_eq(k.dir, "/srv/keys");
        cr_assert_str_eq(k.argv[0], "/usr/local/sbin/kms");
        cr_assert_str_eq(k.argv[2], "eu");
        cr_assert_null(k.argv[3]);
        cr_assert_eq(k.timeout_ms, 5000);
        aidp_keys_free(&k);
}

static void expect_cfg_error(const char *y, const char *needle)
{
        struct aidp_keys k;
        aidp_keys_init(&k);
        aidp_error err = {0};
        cr_assert_lt(aidp_keys_parse(y, strlen(y), "keys.yaml", &k, &err), 0, "accepted: %s", y);
        cr_assert_eq(err.status, AIDP_EXIT_CONFIG);
        cr_assert(strstr(err.msg, needle), "'%s' not in '%s'", needle, err.msg);
        aidp_keys_free(&k);
}

Test(keys_config, errors_have_line_and_column)
{
        expect_cfg_error("provider: vault\n",
                         "keys.yaml:1:11: provider: found 'vault', expected file or exec");
        expect_cfg_error("provider: file\nkeydir: /x\n",
                         "keys.yaml:2:1: keydir: unknown key 'keydir', expected one of");
        expect_cfg_error("key_dir: relative\n", "keys.yaml:1:10: key_dir");
        expect_cfg_error("provider: exec\n", "needs exec.command");
        expect_cfg_error("exec:\n  command: [kms]\n",
                         "keys.yaml:2:13: exec.command[0]: found 'kms', "
                         "expected an absolute path");
        expect_cfg_error("exec:\n  command: [/x]\n  timeout: 0\n", "keys.yaml:3:12: exec.timeout");
        expect_cfg_error("exec:\n  command: /x\n", "expected a list");
        expect_cfg_error("provider: [\n", "keys.yaml:2:1:");
        expect_cfg_error("- a\n", "expected a mapping");
}

static const char schema_json[] =
        "{\"v\":1,\"files\":[{\"pattern\":\"*.csv\",\"format\":\"csv\",\"columns\":"
        "[{\"name\":\"email\",\"labels\":[\"pii.direct\"]}]}]}";

Test(sealed_format, format3_carries_the_schema)
{
        struct aidp_sealed_header h = sample(), d;
        memcpy(h.schema, schema_json, strlen(schema_json));
        h.schema_len = strlen(schema_json);
        uint8_t buf[8192];
        aidp_error err = {0};
        int n = aidp_sealed_header_encode(&h, buf, sizeof buf, &err);
        cr_assert_gt(n, 0, "%s", err.msg);
        cr_assert_eq(h.format_version, 3);
        cr_assert_eq(buf[9], 3);
        cr_assert_eq(aidp_sealed_header_decode(buf, (size_t)n, &d, &err), 0, "%s", err.msg);
        cr_assert_eq(d.format_version, 3);
        cr_assert_eq(d.schema_len, strlen(schema_json));
        cr_assert_eq(memcmp(d.schema, schema_json, d.schema_len), 0);
        struct aidp_schema s;
        cr_assert_eq(aidp_sealed_header_schema(&d, &s, &err), 1, "%s", err.msg);
        cr_assert_str_eq(s.files[0].columns[0].labels[0], "pii.direct");
        aidp_schema_free(&s);
        /* canonical: re-encoding the decoded header gives the same bytes */
        uint8_t again[8192];
        cr_assert_eq(aidp_sealed_header_encode(&d, again, sizeof again, &err), n);
        cr_assert_eq(memcmp(buf, again, (size_t)n), 0);

        /* The schema is checked when read: a label edited to an invalid one,
         * or to a non-canonical encoding, is refused by the codec itself (a
         * valid edit is caught by the header tag: test_sealed_schema). */
        uint8_t b[8192];
        memcpy(b, buf, (size_t)n);
        uint8_t *lab = memmem(b, (size_t)n, "pii.direct", 10);
        cr_assert_not_null(lab);
        lab[0] = 'P';
        expect_decode_error(b, (size_t)n, "schema in the header");
        /* A version 2 header has no schema. */
        memcpy(b, buf, (size_t)n);
        b[9] = 2;
        expect_decode_error(b, (size_t)n, "a schema in a version 2 header");

        /* Without a schema a new header is still version 2. */
        struct aidp_sealed_header plain = sample();
        cr_assert_gt(aidp_sealed_header_encode(&plain, buf, sizeof buf, &err), 0);
        cr_assert_eq(plain.format_version, 2);
        cr_assert_eq(aidp_sealed_header_schema(&plain, &s, &err), 0);
}
