#define _GNU_SOURCE
/* An independent decryptor (tests/tools/decrypt_sealed.py: Debian's
 * python3-cryptography, written from docs/sealed-format.md) must decrypt what
 * aidp seals, byte for byte, and refuse what aidp refuses. */
#include <sys/wait.h>

#include "tests/sealed_util.h"

#define PY   "/usr/bin/python3"
#define TOOL AIDP_SOURCE_DIR "/tests/tools/decrypt_sealed.py"

static char *T;
static struct aidp_keys K;
static char kek_path[4096];

static void setup(void)
{
        T = tmpdir_new();
        keys_static(&K, TEST_KEK);
        TEST_SNPRINTF(kek_path, "%s/kek", T);
        write_all(kek_path, TEST_KEK, 32);
}

static void teardown(void)
{
        tmpdir_rm(T);
        aidp_keys_free(&K);
}

TestSuite(sealed_python, .init = setup, .fini = teardown, .timeout = 300);

static int run_py(const char *args, char *out, size_t cap)
{
        char cmd[8192];
        TEST_SNPRINTF(cmd, PY " " TOOL " --kek '%s' %s 2>&1", kek_path, args);
        FILE *p = popen(cmd, "r");
        cr_assert(p);
        size_t n = fread(out, 1, cap - 1, p);
        out[n] = '\0';
        int st = pclose(p);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static void require_python_cryptography(void)
{
        if (system(PY " -c 'import cryptography.hazmat.primitives.keywrap' 2>/dev/null") != 0) {
                if (getenv("CI"))
                        cr_assert_fail("python3-cryptography missing (scripts/install-deps)");
                cr_skip_test("needs Debian's python3-cryptography");
        }
}

Test(sealed_python, decrypts_tree_sealed_by_aidp)
{
        require_python_cryptography();
        char src[4096], f[4096], sealed[4096], out[4096], args[8192], res[16384];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/src/sub", T);
        mkdir_p(f, 0750);
        TEST_SNPRINTF(f, "%s/src/sub/big", T);
        write_file(f, 300000, 0640, 1);
        TEST_SNPRINTF(f, "%s/src/empty", T);
        write_file(f, 0, 0600, 2);
        TEST_SNPRINTF(f, "%s/src/x.sh", T);
        write_file(f, 4096, 0755, 3);
        TEST_SNPRINTF(sealed, "%s/t.sealed", T);
        struct aidp_seal_params p = {.segment_size = 65536, .threads = 2};
        meta_default(&p.meta, "pyset");
        aidp_error err = {0};
        aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, "eu", &err);
        aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, "phi", &err);
        aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, "pci", &err);
        cr_assert_eq(seal_path(src, sealed, &p, &K, NULL, &err), 0, "%s", err.msg);
        TEST_SNPRINTF(out, "%s/pyout", T);
        TEST_SNPRINTF(args, "'%s' '%s'", sealed, out);
        int rc = run_py(args, res, sizeof res);
        cr_assert_eq(rc, 0, "python decryptor failed: %s", res);
        assert_same_tree(src, out);
        cr_assert(strstr(res, "\"name\": \"pyset\""), "%s", res);
        cr_assert(strstr(res, "\"regulation\": [\"pci\", \"phi\"]"), "%s", res);
        cr_assert(strstr(res, "\"residency\": [\"eu\"]"), "%s", res);
        cr_assert(strstr(res, "\"classification\": \"confidential\""), "%s", res);
}

Test(sealed_python, decrypts_single_file_on_segment_boundary)
{
        require_python_cryptography();
        char f[4096], sealed[4096], out[4096], args[8192], res[16384];
        TEST_SNPRINTF(f, "%s/blob", T);
        /* manifest 20 + 14 + 4 bytes; payload exactly 3 segments */
        write_file(f, 3 * 4096 - 38, 0644, 9);
        TEST_SNPRINTF(sealed, "%s/b.sealed", T);
        struct aidp_seal_params p = {.segment_size = 4096};
        meta_default(&p.meta, "blob");
        aidp_error err = {0};
        struct aidp_seal_result r;
        cr_assert_eq(seal_path(f, sealed, &p, &K, &r, &err), 0, "%s", err.msg);
        cr_assert_eq(r.header.n_segments, 3);
        cr_assert_eq(r.header.payload_len, 3 * 4096);
        TEST_SNPRINTF(out, "%s/pyout", T);
        TEST_SNPRINTF(args, "'%s' '%s'", sealed, out);
        cr_assert_eq(run_py(args, res, sizeof res), 0, "%s", res);
        char g[4096];
        TEST_SNPRINTF(g, "%s/blob", out);
        assert_same_tree(f, g);
}

Test(sealed_python, refuses_tampered_file_too)
{
        require_python_cryptography();
        char f[4096], sealed[4096], args[8192], res[16384];
        TEST_SNPRINTF(f, "%s/blob", T);
        write_file(f, 20000, 0644, 9);
        TEST_SNPRINTF(sealed, "%s/b.sealed", T);
        struct aidp_seal_params p = {.segment_size = 4096};
        meta_default(&p.meta, "blob");
        aidp_error err = {0};
        struct aidp_seal_result r;
        cr_assert_eq(seal_path(f, sealed, &p, &K, &r, &err), 0, "%s", err.msg);
        size_t len = 0;
        uint8_t *b = read_all(sealed, &len);
        b[r.header.payload_offset + 4096 + 16 + 7] ^= 4;
        write_all(sealed, b, len);
        free(b);
        TEST_SNPRINTF(args, "--verify '%s'", sealed);
        cr_assert_eq(run_py(args, res, sizeof res), 1, "%s", res);
        cr_assert(strstr(res, "segment 1 failed authentication"), "%s", res);
}

/* Format 2's keyed digest, computed independently (HKDF + HMAC from the
 * spec): the decryptor accepts aidp's digest and refuses a forged one. The
 * format 1 fixtures (plain SHA-256 digest) still decrypt. */
Test(sealed_python, keyed_digest_and_version1)
{
        require_python_cryptography();
        char f[4096], sealed[4096], args[8192], res[16384];
        TEST_SNPRINTF(f, "%s/blob", T);
        write_file(f, 10000, 0644, 5);
        TEST_SNPRINTF(sealed, "%s/b.sealed", T);
        struct aidp_seal_params p = {.segment_size = 4096};
        meta_default(&p.meta, "blob");
        aidp_error err = {0};
        cr_assert_eq(seal_path(f, sealed, &p, &K, NULL, &err), 0, "%s", err.msg);
        TEST_SNPRINTF(args, "--verify '%s'", sealed);
        cr_assert_eq(run_py(args, res, sizeof res), 0, "%s", res);
        cr_assert(strstr(res, "\"format_version\": 2"), "%s", res);
        size_t len = 0;
        uint8_t *b = read_all(sealed, &len);
        uint8_t *forged = forge_content_digest(b, len, TEST_KEK);
        write_all(sealed, forged, len);
        free(b);
        free(forged);
        cr_assert_eq(run_py(args, res, sizeof res), 1, "%s", res);
        cr_assert(strstr(res, "content digest mismatch"), "%s", res);
        TEST_SNPRINTF(args, "--verify '" AIDP_SOURCE_DIR "/tests/data/sealed/v1-tree.sealed'");
        cr_assert_eq(run_py(args, res, sizeof res), 0, "%s", res);
        cr_assert(strstr(res, "\"format_version\": 1"), "%s", res);
}

/* Seal a small file with p (its record 14 or 15), check the decryptor
 * reads it as `version` and prints `shown`, then change the byte at the first
 * `edit` in the header to `to`: the header tag must refuse it. */
static void record_read_then_refused(struct aidp_seal_params *p, int version, const char *shown,
                                     const char *edit, char to)
{
        require_python_cryptography();
        char f[4096], sealed[4096], args[8192], res[16384], want[64];
        TEST_SNPRINTF(f, "%s/blob", T);
        write_file(f, 5000, 0644, 3);
        TEST_SNPRINTF(sealed, "%s/r.sealed", T);
        p->segment_size = 4096;
        meta_default(&p->meta, "blob");
        aidp_error err = {0};
        cr_assert_eq(seal_path(f, sealed, p, &K, NULL, &err), 0, "%s", err.msg);
        TEST_SNPRINTF(args, "--verify '%s'", sealed);
        cr_assert_eq(run_py(args, res, sizeof res), 0, "%s", res);
        TEST_SNPRINTF(want, "\"format_version\": %d", version);
        cr_assert(strstr(res, want), "%s", res);
        cr_assert(strstr(res, shown), "%s", res);
        size_t len = 0;
        uint8_t *b = read_all(sealed, &len);
        uint8_t *at = memmem(b, len, edit, strlen(edit));
        cr_assert_not_null(at);
        at[0] = (uint8_t)to;
        write_all(sealed, b, len);
        free(b);
        cr_assert_eq(run_py(args, res, sizeof res), 1, "%s", res);
        cr_assert(strstr(res, "header authentication failed"), "%s", res);
}

/* Format 3: the independent decryptor reads the schema record (type 14),
 * checks its canonical encoding, and authenticates it with the header. */
Test(sealed_python, format3_schema)
{
        static const char schema[] =
                "{\"v\":1,\"files\":[{\"pattern\":\"*.csv\",\"format\":\"csv\","
                "\"columns\":[{\"name\":\"Zoë\",\"labels\":[\"pii.direct\"]}]}]}";
        struct aidp_seal_params p = {.schema = (const uint8_t *)schema,
                                     .schema_len = strlen(schema)};
        record_read_then_refused(&p, 3, "\"pii.direct\"", "direct", 'e');
}

/* Format 4: the produced-by record (record 15) of an output, read and
 * checked for its canonical shape by the independent decryptor. */
Test(sealed_python, format4_produced_by)
{
        static const char rec[] =
                "{\"v\":1,\"steps\":[{\"output\":\"r1-out\",\"run\":\"r1\",\"inputs\":[{"
                "\"dataset\":\"pat\",\"digest\":\"hmac-sha256:00\",\"injected\":\"viewed\","
                "\"views\":[\"research\"],\"files\":[{\"pattern\":\"*.csv\",\"format\":\"csv\","
                "\"columns\":[{\"column\":\"Zoë\",\"labels\":[\"pii.direct\"],\"transform\":"
                "\"tokenize(hmac, domain=patient, key=tok-1)\",\"keyId\":\"tok-1\",\"domain\":"
                "\"patient\"}]}]}]}]}";
        struct aidp_seal_params p = {.produced_by = (const uint8_t *)rec,
                                     .produced_by_len = strlen(rec)};
        record_read_then_refused(&p, 4, "\"keyId\": \"tok-1\"", "patient\"}", 'q');
}

/* A re-seal's step (aidp seal --derived-from: "sealedBy" where a run's step
 * has "run") is read by the independent decryptor too. */
Test(sealed_python, format4_produced_by_a_reseal)
{
        static const char rec[] =
                "{\"v\":1,\"steps\":[{\"output\":\"fixed\",\"sealedBy\":\"root (uid 0)\","
                "\"inputs\":[{\"dataset\":\"r1-out\",\"digest\":\"hmac-sha256:00\",\"injected\":"
                "\"" AIDP_SEALED_DERIVED_HOW "\"}]},{\"output\":\"r1-out\",\"run\":\"r1\","
                "\"inputs\":[{\"dataset\":\"pat\",\"digest\":\"hmac-sha256:01\",\"injected\":"
                "\"sealed (no schema)\"}]}]}";
        struct aidp_seal_params p = {.produced_by = (const uint8_t *)rec,
                                     .produced_by_len = strlen(rec)};
        record_read_then_refused(&p, 4, "\"sealedBy\": \"root (uid 0)\"", "uid 0", 'v');
}
