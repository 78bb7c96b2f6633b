#define _GNU_SOURCE
/* Token keys from the exec key provider (issue 18; docs/views.md "Tokens"):
 * `aidp keygen ID --purpose tokenize` has the configured program wrap a random
 * key and keeps KEY_DIR/ID.wrapped; a run through a tokenizing view, and
 * `aidp detokenize`, unwrap it with the same program. The provider here is a
 * script the test writes (a pad XORed over the key behind a marker), so the
 * test can tell the key aidp uses is the one the provider unwrapped. Root: the
 * provider runs with root's authority, and the key files must be root's. */
#include <json-c/json.h>

#include "common/exitcodes.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"
#include "views/view.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"
#define MARK      "XKMS"

static char *T;
static char keydir[4096], keyscfg[4096], kms[4096], rundir[4096], logp[4096], keyp[4096];
static char poldir[4096];
static uint8_t pad[32];
static struct aidp_proc P;

static void put(const char *path, const char *text, mode_t mode)
{
        unlink(path);
        write_all(path, (const uint8_t *)text, strlen(text));
        chmod(path, mode);
}

/* The provider: wrap = MARK || key XOR pad; unwrap the reverse, and exit 3
 * when FAIL exists next to it (a KMS that is down). */
static void write_kms(void)
{
        char hex[65], body[4096];
        for (size_t i = 0; i < sizeof pad; i++) {
                pad[i] = (uint8_t)(0x5a + 7 * i);
                snprintf(hex + 2 * i, 3, "%02x", pad[i]);
        }
        TEST_SNPRINTF(body,
                      "#!/usr/bin/python3\n"
                      "import os, sys\n"
                      "pad = bytes.fromhex('%s')\n"
                      "if os.path.exists('%s/FAIL'):\n"
                      "    sys.stderr.write('kms is down'); sys.exit(3)\n"
                      "data = sys.stdin.buffer.read()\n"
                      "if sys.argv[1] == 'wrap':\n"
                      "    sys.stdout.buffer.write(b'" MARK "' + bytes(a ^ b for a, b in "
                      "zip(data, pad)))\n"
                      "else:\n"
                      "    sys.stdout.buffer.write(bytes(a ^ b for a, b in zip(data[4:], pad)))\n",
                      hex, T);
        put(kms, body, 0755);
}

static const char ACCESS[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nviews:\n  research:\n"
                             "    labels:\n"
                             "      pii.direct: {tokenize: {mode: siv, domain: patient, key: "
                             "tok-x}}\n"
                             "roles:\n  tests:\n    operations: [run, detokenize]\n"
                             "    profiles: [\"*\"]\n    datasets: [\"*\"]\n"
                             "    max_classification: regulated\n    view: research\n"
                             "users:\n  nobody: {roles: [tests]}\n";

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(keyscfg, "%s/keys.yaml", T);
        TEST_SNPRINTF(kms, "%s/kms", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        TEST_SNPRINTF(poldir, "%s/policy", T);
        mkdir_p(keydir, 0700);
        write_kms();
        char cfg[8192];
        TEST_SNPRINTF(cfg,
                      "provider: exec\nkey_dir: %s\nexec:\n  command: [%s]\n  timeout: 20\n"
                      "keys:\n  run-key: {purpose: kek}\n",
                      keydir, kms);
        put(keyscfg, cfg, 0644);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        aidp_test_policy_allow(poldir, "nobody", NULL, NULL);
        aidp_test_policy_access(poldir, ACCESS);
}

static void teardown(void)
{
        aidp_test_policy_done(rundir);
        unsetenv("AIDP_LINEAGE_KEY");
        tmpdir_rm(T);
}

TestSuite(views_keys, .init = setup, .fini = teardown, .timeout = 180);

static int keygen(const char *id)
{
        char *argv[] = {AIDP_TOOL,  "keygen",        (char *)id, "--purpose",
                        "tokenize", "--keys-config", keyscfg,    NULL};
        return aidp_test_run(&P, argv);
}

static int read_token(const char *id, struct aidp_token_key *tk, aidp_error *err)
{
        struct aidp_keys k;
        aidp_keys_init(&k);
        int r = aidp_keys_setup(keyscfg, NULL, &k, err);
        if (r == 0)
                r = aidp_keys_read_token(&k, id, tk, err);
        aidp_keys_free(&k);
        return r;
}

Test(views_keys, keygen_has_the_exec_provider_wrap_the_token_key_and_reads_unwrap_it)
{
        AIDP_REQUIRE_ROOT();
        int st = keygen("tok-x");
        cr_assert_eq(st, 0, "keygen: exit %d\n%s%s", st, P.out, P.err);
        cr_assert(strstr(P.out, "tok-x.wrapped") && strstr(P.out, "purpose tokenize"), "%s", P.out);
        char wrapped[4096];
        TEST_SNPRINTF(wrapped, "%s/tok-x.wrapped", keydir);
        struct stat sb;
        cr_assert_eq(stat(wrapped, &sb), 0);
        cr_assert_eq(sb.st_mode & 07777, 0400);
        TEST_SNPRINTF(wrapped, "%s/tok-x", keydir);
        cr_assert_neq(access(wrapped, F_OK), 0, "no key in clear next to it");
        /* Declared in keys.yaml with its purpose. */
        size_t len = 0;
        char *cfg = (char *)read_all(keyscfg, &len);
        cr_assert(memmem(cfg, len, "tok-x: {purpose: tokenize}", 26), "%.*s", (int)len, cfg);
        free(cfg);
        /* What aidp reads is what the provider unwraps: blob minus the
         * marker, XOR the pad. */
        TEST_SNPRINTF(wrapped, "%s/tok-x.wrapped", keydir);
        uint8_t *blob = read_all(wrapped, &len);
        cr_assert_eq(len, 4 + 32);
        cr_assert_eq(memcmp(blob, MARK, 4), 0);
        uint8_t want[32];
        for (size_t i = 0; i < 32; i++)
                want[i] = blob[4 + i] ^ pad[i];
        free(blob);
        struct aidp_token_key tk, again;
        aidp_error err = {0};
        cr_assert_eq(read_token("tok-x", &tk, &err), 0, "%s", err.msg);
        cr_assert_eq(memcmp(tk.key, want, 32), 0, "not the provider's key");
        cr_assert_eq(read_token("tok-x", &again, &err), 0, "%s", err.msg);
        cr_assert_eq(memcmp(tk.key, again.key, 32), 0);
        /* keygen never overwrites (the provider is not asked). */
        cr_assert_neq(keygen("tok-x"), 0);
        cr_assert(strstr(P.err, "exists"), "%s", P.err);
}

Test(views_keys, a_wrapped_token_key_follows_the_key_file_rules_and_the_provider_failing_refuses)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(keygen("tok-x"), 0, "%s", P.err);
        char wrapped[4096], fail[4096];
        TEST_SNPRINTF(wrapped, "%s/tok-x.wrapped", keydir);
        struct aidp_token_key tk;
        aidp_error err = {0};
        /* Readable by others, or not root's: refused like a key file. */
        cr_assert_eq(chmod(wrapped, 0644), 0);
        cr_assert_lt(read_token("tok-x", &tk, &err), 0);
        cr_assert(err.errnum == EPERM && strstr(err.msg, "group/other"), "%s", err.msg);
        cr_assert_eq(chmod(wrapped, 0400), 0);
        cr_assert_eq(chown(wrapped, 65534, 65534), 0);
        cr_assert_lt(read_token("tok-x", &tk, &err), 0);
        cr_assert(strstr(err.msg, "owned by uid 65534"), "%s", err.msg);
        cr_assert_eq(chown(wrapped, 0, 0), 0);
        /* The provider is down: the error names it and quotes it. */
        TEST_SNPRINTF(fail, "%s/FAIL", T);
        put(fail, "", 0644);
        cr_assert_lt(read_token("tok-x", &tk, &err), 0);
        cr_assert(strstr(err.msg, "token key tok-x") && strstr(err.msg, "kms is down"), "%s",
                  err.msg);
        unlink(fail);
        cr_assert_eq(read_token("tok-x", &tk, &err), 0, "%s", err.msg);
        /* Not declared, or another purpose: refused before the provider runs. */
        cr_assert_lt(read_token("tok-nope", &tk, &err), 0);
        cr_assert_eq(err.errnum, ENOKEY, "%s", err.msg);
        cr_assert_lt(read_token("run-key", &tk, &err), 0);
        cr_assert_eq(err.errnum, EPERM, "%s", err.msg);
}

Test(views_keys, a_run_tokenizes_and_detokenize_reverses_with_the_exec_providers_key)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(keygen("tok-x"), 0, "%s", P.err);
        char src[4096], f[4096], sch[4096], in[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/a.csv", src);
        put(f, "name,n\nAda Lovelace,1\n", 0644);
        TEST_SNPRINTF(sch, "%s/schema.yaml", T);
        put(sch,
            "apiVersion: aidp/v1\nkind: Schema\nfiles:\n  - pattern: \"*.csv\"\n    format: csv\n"
            "    columns:\n      name: [pii.direct]\n",
            0644);
        TEST_SNPRINTF(in, "%s/ex.sealed", T);
        /* The data key is wrapped by the same provider. */
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -n ex -k run-key -c confidential "
                                  "--keys-config %s --schema %s -q",
                                  AIDP_TOOL, src, in, keyscfg, sch),
                     0);
        const char *const opts[] = {"--keys-config", keyscfg, "--lineage", logp,
                                    "--data",        in,      NULL};
        const char *const job[] = {"/bin/cat", "/data/ex/a.csv", NULL};
        int st = aidp_test_run_job(&P, rundir, opts, job);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        cr_assert_null(strstr(P.out, "Ada"), "the raw value reached the job: %s", P.out);
        const char *at = strstr(P.out, "patient~");
        cr_assert_not_null(at, "no token: %s", P.out);
        char tok[256];
        snprintf(tok, sizeof tok, "%.*s", (int)strcspn(at, ",\r\n"), at);
        /* Another process, the same key: the token turns back. */
        setenv("AIDP_LINEAGE_FILE", logp, 1);
        char *dt[] = {AIDP_TOOL,      "detokenize",    "--data", in,       "--key",
                      "tok-x",        "--keys-config", keyscfg,  "--user", "nobody",
                      "--policy-dir", poldir,          tok,      NULL};
        st = aidp_test_run(&P, dt);
        unsetenv("AIDP_LINEAGE_FILE");
        cr_assert_eq(st, 0, "detokenize: exit %d: %s", st, P.err);
        cr_assert_str_eq(P.out, "Ada Lovelace\n");
        /* The provider down: the run is refused before the job. */
        char fail[4096];
        TEST_SNPRINTF(fail, "%s/FAIL", T);
        put(fail, "", 0644);
        st = aidp_test_run_job(&P, rundir, opts, job);
        unlink(fail);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_assert_null(strstr(P.out, "patient~"), "%s", P.out);
}
