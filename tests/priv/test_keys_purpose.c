/* Keys carry a purpose (issue 13) and may be limited to dataset names
 * (issue 21): keys.yaml's `keys:` declares each key's purpose; the lineage key
 * is never a key-encryption key and a KEK never the lineage key; a key limited
 * to dataset-name patterns seals and opens only datasets whose (authenticated)
 * header names a matching dataset; `aidp keygen` writes the purpose. Root: the
 * file provider only takes root-owned keys. */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "priv.h"
#include "tests/sealed_util.h"

#define AIDP_BIN AIDP_BINARY_DIR "/aidp"

static char *T;
static char keydir[4096], cfg[4096], plain[4096];

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(cfg, "%s/keys.yaml", T);
        TEST_SNPRINTF(plain, "%s/plain", T);
        write_file(plain, 5000, 0644, 1);
}

static void teardown(void)
{
        tmpdir_rm(T);
}

TestSuite(keys_purpose, .init = setup, .fini = teardown, .timeout = 120);

static void make_key(const char *id)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, id, &err), 0, "%s", err.msg);
}

static int load(struct aidp_keys *k, const char *yaml, aidp_error *err)
{
        char y[8192];
        TEST_SNPRINTF(y, "key_dir: %s\n%s", keydir, yaml);
        unlink(cfg);
        write_all(cfg, (const uint8_t *)y, strlen(y));
        chmod(cfg, 0644);
        aidp_keys_init(k);
        return aidp_keys_setup(cfg, NULL, k, err);
}

static int seal_as(const struct aidp_keys *k, const char *key_id, const char *name, aidp_error *err)
{
        char out[4096];
        TEST_SNPRINTF(out, "%s/%s.sealed", T, name);
        unlink(out);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, name);
        snprintf(p.meta.key_id, sizeof p.meta.key_id, "%s", key_id);
        return seal_path(plain, out, &p, k, NULL, err);
}

static int open_as(const struct aidp_keys *k, const char *name, aidp_error *err)
{
        char in[4096];
        TEST_SNPRINTF(in, "%s/%s.sealed", T, name);
        struct aidp_sealed *s = NULL;
        int r = aidp_sealed_open(in, k, &s, err);
        aidp_sealed_close(s);
        return r;
}

Test(keys_purpose, parse_purposes_patterns_and_errors)
{
        struct aidp_keys k;
        aidp_keys_init(&k);
        aidp_error err = {0};
        const char *ok = "keys:\n"
                         "  run-key:\n    purpose: kek\n    datasets: [trial-*, imagenet]\n"
                         "  host-lineage: {purpose: lineage}\n"
                         "  tok: {purpose: tokenize}\n";
        cr_assert_eq(aidp_keys_parse(ok, strlen(ok), "k.yaml", &k, &err), 0, "%s", err.msg);
        cr_assert_eq(k.n_decls, 3);
        const struct aidp_key_decl *d = aidp_keys_find(&k, "run-key");
        cr_assert(d);
        cr_assert_eq(d->purpose, AIDP_KEY_PURPOSE_KEK);
        cr_assert_eq(d->n_datasets, 2);
        cr_assert_eq(aidp_keys_find(&k, "host-lineage")->purpose, AIDP_KEY_PURPOSE_LINEAGE);
        cr_assert_null(aidp_keys_find(&k, "nope"));
        aidp_keys_free(&k);
        static const struct {
                const char *y, *needle;
        } bad[] = {
                {"keys:\n  a: {purpose: signing}\n", "keys.a.purpose: found 'signing'"},
                {"keys:\n  a: {datasets: [x]}\n", "keys.a: missing key 'purpose'"},
                {"keys:\n  'bad/id': {purpose: kek}\n", "keys: found 'bad/id', expected a key id"},
                {"keys:\n  a: {purpose: lineage, datasets: [x]}\n",
                 "keys.a.datasets: only a kek can be limited to datasets"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                aidp_keys_init(&k);
                err = (aidp_error){0};
                cr_assert_lt(aidp_keys_parse(bad[i].y, strlen(bad[i].y), "k.yaml", &k, &err), 0,
                             "accepted: %s", bad[i].y);
                cr_assert_eq(err.status, AIDP_EXIT_CONFIG);
                cr_assert(strstr(err.msg, bad[i].needle), "'%s' not in '%s'", bad[i].needle,
                          err.msg);
                aidp_keys_free(&k);
        }
}

Test(keys_purpose, lineage_key_is_never_a_kek)
{
        AIDP_REQUIRE_ROOT();
        make_key("host-lineage");
        make_key("run-key");
        struct aidp_keys k;
        aidp_error err = {0};
        /* Sealed under it before the purpose was declared. */
        cr_assert_eq(load(&k, "", &err), 0, "%s", err.msg);
        cr_assert_eq(seal_as(&k, "host-lineage", "early", &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
        cr_assert_eq(load(&k,
                          "keys:\n  host-lineage: {purpose: lineage}\n"
                          "  run-key: {purpose: kek}\n",
                          &err),
                     0, "%s", err.msg);
        cr_assert_lt(seal_as(&k, "host-lineage", "late", &err), 0);
        cr_assert(strstr(err.msg, "key 'host-lineage'") && strstr(err.msg, cfg) &&
                          strstr(err.msg, "purpose lineage"),
                  "%s", err.msg);
        cr_assert_lt(open_as(&k, "early", &err), 0);
        cr_assert(strstr(err.msg, "key 'host-lineage'") && strstr(err.msg, "purpose lineage"), "%s",
                  err.msg);
        /* An undeclared key is a kek (keys made before purposes existed). */
        make_key("stray");
        cr_assert_eq(seal_as(&k, "stray", "s", &err), 0, "%s", err.msg);
        cr_assert_eq(seal_as(&k, "run-key", "fine", &err), 0, "%s", err.msg);
        /* And the other way round: a KEK (declared, or an undeclared key file)
         * cannot be the lineage key. */
        char kp[4096];
        TEST_SNPRINTF(kp, "%s/run-key", keydir);
        cr_assert_lt(aidp_keys_check_lineage_key(&k, kp, &err), 0);
        cr_assert(strstr(err.msg, "run-key") && strstr(err.msg, "purpose kek"), "%s", err.msg);
        TEST_SNPRINTF(kp, "%s/stray", keydir);
        cr_assert_lt(aidp_keys_check_lineage_key(&k, kp, &err), 0);
        cr_assert(strstr(err.msg, "stray"), "%s", err.msg);
        TEST_SNPRINTF(kp, "%s/host-lineage", keydir);
        cr_assert_eq(aidp_keys_check_lineage_key(&k, kp, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
}

Test(keys_purpose, host_lineage_key_file_is_refused_as_kek_without_declarations)
{
        AIDP_REQUIRE_ROOT();
        make_key("lineage.key");
        struct aidp_keys k;
        aidp_error err = {0};
        cr_assert_eq(load(&k, "", &err), 0, "%s", err.msg);
        /* key_dir pointed at the directory holding the host lineage key. */
        TEST_SNPRINTF(k.lineage_key, "%s/lineage.key", keydir);
        cr_assert_lt(seal_as(&k, "lineage.key", "x", &err), 0);
        cr_assert(strstr(err.msg, "lineage key"), "%s", err.msg);
        aidp_keys_free(&k);
}

Test(keys_purpose, key_limited_to_dataset_patterns)
{
        AIDP_REQUIRE_ROOT();
        make_key("trial-key");
        struct aidp_keys k;
        aidp_error err = {0};
        cr_assert_eq(load(&k, "", &err), 0, "%s", err.msg);
        cr_assert_eq(seal_as(&k, "trial-key", "payroll", &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
        cr_assert_eq(
                load(&k, "keys:\n  trial-key: {purpose: kek, datasets: [trial-*, cohort]}\n", &err),
                0, "%s", err.msg);
        cr_assert_eq(seal_as(&k, "trial-key", "trial-7", &err), 0, "%s", err.msg);
        cr_assert_eq(open_as(&k, "trial-7", &err), 0, "%s", err.msg);
        cr_assert_lt(seal_as(&k, "trial-key", "payroll2", &err), 0);
        cr_assert(strstr(err.msg, "key 'trial-key'") && strstr(err.msg, "payroll2") &&
                          strstr(err.msg, cfg),
                  "%s", err.msg);
        /* Sealed before the limit: its authenticated header names another dataset. */
        cr_assert_lt(open_as(&k, "payroll", &err), 0);
        cr_assert(strstr(err.msg, "key 'trial-key'") && strstr(err.msg, "payroll"), "%s", err.msg);
        cr_assert_eq(err.status, AIDP_EXIT_DATA, "%s", err.msg);
        aidp_keys_free(&k);
}

static int sh(const char *cmd, char *out, size_t cap)
{
        FILE *p = popen(cmd, "r");
        cr_assert(p);
        size_t n = fread(out, 1, cap - 1, p);
        out[n] = '\0';
        int st = pclose(p);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

Test(keys_purpose, keygen_writes_the_purpose)
{
        AIDP_REQUIRE_ROOT();
        char cmd[16384], out[8192];
        /* A fresh config gets a keys: section. */
        TEST_SNPRINTF(cmd,
                      AIDP_BIN " keygen k1 --keys-config '%s' --key-dir '%s' 2>&1 && " AIDP_BIN
                               " keygen lin --purpose lineage --keys-config '%s' --key-dir '%s' "
                               "2>&1 && " AIDP_BIN
                               " keygen k2 --datasets 'trial-*,cohort' --keys-config '%s' "
                               "--key-dir '%s' 2>&1",
                      cfg, keydir, cfg, keydir, cfg, keydir);
        const char *start = "# site keys\nprovider: file\n";
        write_all(cfg, (const uint8_t *)start, strlen(start));
        chmod(cfg, 0644);
        cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);
        struct aidp_keys k;
        aidp_error err = {0};
        aidp_keys_init(&k);
        cr_assert_eq(aidp_keys_setup(cfg, keydir, &k, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_keys_find(&k, "k1")->purpose, AIDP_KEY_PURPOSE_KEK);
        cr_assert_eq(aidp_keys_find(&k, "lin")->purpose, AIDP_KEY_PURPOSE_LINEAGE);
        cr_assert_eq(aidp_keys_find(&k, "k2")->n_datasets, 2);
        aidp_keys_free(&k);
        size_t n = 0;
        char *text = (char *)read_all(cfg, &n);
        cr_assert(strstr(text, "# site keys\n"), "comment lost: %s", text);
        free(text);
        /* A bad purpose changes nothing: no key file, config untouched. */
        text = (char *)read_all(cfg, &n);
        TEST_SNPRINTF(cmd,
                      AIDP_BIN
                      " keygen k3 --purpose nonsense --keys-config '%s' --key-dir '%s' 2>&1",
                      cfg, keydir);
        cr_assert_eq(sh(cmd, out, sizeof out), 120, "%s", out);
        char kp[4096];
        TEST_SNPRINTF(kp, "%s/k3", keydir);
        cr_assert_neq(access(kp, F_OK), 0);
        size_t n2 = 0;
        char *text2 = (char *)read_all(cfg, &n2);
        cr_assert_eq(n, n2);
        cr_assert_eq(memcmp(text, text2, n), 0);
        free(text);
        free(text2);
}
