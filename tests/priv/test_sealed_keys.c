/* Root tests of the key providers (file permissions, exec provider), the
 * destination-too-small case on a real size-limited detached tmpfs, and the
 * aidp seal/unseal/inspect/keygen commands end to end. */
#define _GNU_SOURCE
#include <sys/mount.h>
#include <time.h>
#include <sys/wait.h>

#include "priv.h"
#include "supervisor/sandbox/tmpfs.h"
#include "tests/sealed_util.h"

#define AIDP_BIN AIDP_BINARY_DIR "/aidp"

static char *T;
static char keydir[4096];

static void setup(void)
{
        T = tmpdir_new();
        TEST_SNPRINTF(keydir, "%s/keys", T);
}

static void teardown(void)
{
        tmpdir_rm(T);
}

TestSuite(sealed_keys, .init = setup, .fini = teardown, .timeout = 120);

static void make_key(const char *id)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, id, &err), 0, "%s", err.msg);
}

static int read_kek(const char *id, aidp_error *err)
{
        struct aidp_secret s = {0};
        int r = aidp_keys_read_kek(keydir, id, &s, err);
        aidp_secret_free(&s);
        return r;
}

Test(sealed_keys, keygen_creates_root_only_key_and_never_overwrites)
{
        AIDP_REQUIRE_ROOT();
        make_key("k1");
        char p[4096];
        TEST_SNPRINTF(p, "%s/k1", keydir);
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0400);
        cr_assert_eq(st.st_uid, 0);
        cr_assert_eq(st.st_size, 32);
        stat(keydir, &st);
        cr_assert_eq(st.st_mode & 07777, 0700);
        aidp_error err = {0};
        cr_assert_lt(aidp_keys_generate(keydir, "k1", &err), 0);
        cr_assert_eq(err.errnum, EEXIST);
        cr_assert_lt(aidp_keys_generate(keydir, "../escape", &err), 0);
        cr_assert_eq(read_kek("k1", &err), 0, "%s", err.msg);
}

Test(sealed_keys, key_file_permission_checks)
{
        AIDP_REQUIRE_ROOT();
        aidp_error err = {0};
        char p[4096];
        make_key("ok600");
        TEST_SNPRINTF(p, "%s/ok600", keydir);
        chmod(p, 0600);
        cr_assert_eq(read_kek("ok600", &err), 0, "0600 must be accepted: %s", err.msg);

        const mode_t bad_modes[] = {0440, 0404, 0640, 0604, 0644, 0410, 0401};
        for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
                make_key("m");
                TEST_SNPRINTF(p, "%s/m", keydir);
                chmod(p, bad_modes[i]);
                cr_assert_lt(read_kek("m", &err), 0, "mode %o accepted", bad_modes[i]);
                cr_assert_eq(err.errnum, EPERM);
                cr_assert(strstr(err.msg, "refused") && strstr(err.msg, "group/other"), "%s",
                          err.msg);
                unlink(p);
        }
        make_key("nobody");
        TEST_SNPRINTF(p, "%s/nobody", keydir);
        cr_assert_eq(chown(p, 65534, 65534), 0);
        cr_assert_lt(read_kek("nobody", &err), 0);
        cr_assert_eq(err.errnum, EPERM);
        cr_assert(strstr(err.msg, "owned by uid 65534"), "%s", err.msg);

        /* A symlink to a good key is refused (O_NOFOLLOW). */
        char l[4096];
        TEST_SNPRINTF(l, "%s/link", keydir);
        cr_assert_eq(symlink("ok600", l), 0);
        cr_assert_lt(read_kek("link", &err), 0);

        /* Wrong size. */
        TEST_SNPRINTF(p, "%s/short", keydir);
        write_file(p, 16, 0400, 1);
        cr_assert_lt(read_kek("short", &err), 0);
        cr_assert(strstr(err.msg, "16 bytes"), "%s", err.msg);

        /* Missing key. */
        cr_assert_lt(read_kek("absent", &err), 0);
        cr_assert_eq(err.errnum, ENOKEY);
        cr_assert(strstr(err.msg, "key 'absent' not found"), "%s", err.msg);

        /* A key directory others can write is refused as a whole. */
        chmod(keydir, 0777);
        cr_assert_lt(read_kek("ok600", &err), 0);
        cr_assert(strstr(err.msg, "key directory"), "%s", err.msg);
        chmod(keydir, 0700);
        cr_assert_eq(read_kek("ok600", &err), 0);
}

Test(sealed_keys, file_provider_round_trip_and_missing_key)
{
        AIDP_REQUIRE_ROOT();
        make_key("kf");
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        char f[4096], sealed[4096], out[4096];
        TEST_SNPRINTF(f, "%s/plain", T);
        write_file(f, 50000, 0644, 3);
        TEST_SNPRINTF(sealed, "%s/p.sealed", T);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, "plainset");
        strcpy(p.meta.key_id, "kf");
        aidp_error err = {0};
        cr_assert_eq(seal_path(f, sealed, &p, &k, NULL, &err), 0, "%s", err.msg);
        TEST_SNPRINTF(out, "%s/out", T);
        cr_assert_eq(unseal_path(sealed, out, &k, 2, NULL, &err), 0, "%s", err.msg);
        char g[4096];
        TEST_SNPRINTF(g, "%s/plain", out);
        assert_same_tree(f, g);
        /* Key removed: refused, naming key id and file. */
        char kp[4096];
        TEST_SNPRINTF(kp, "%s/kf", keydir);
        unlink(kp);
        TEST_SNPRINTF(out, "%s/out2", T);
        cr_assert_lt(unseal_path(sealed, out, &k, 2, NULL, &err), 0);
        cr_assert_eq(err.errnum, ENOKEY, "%s", err.msg);
        cr_assert(strstr(err.msg, "p.sealed") && strstr(err.msg, "'kf'"), "%s", err.msg);
        cr_assert_eq(count_entries(out), 0);
        aidp_keys_free(&k);
}

static void write_script(const char *path, const char *body)
{
        FILE *f = fopen(path, "w");
        cr_assert(f);
        fputs(body, f);
        fclose(f);
        chmod(path, 0755);
}

static int exec_keys(struct aidp_keys *k, const char *script, unsigned timeout_s, aidp_error *err)
{
        char cfg[4096], y[8192];
        TEST_SNPRINTF(cfg, "%s/keys.yaml", T);
        TEST_SNPRINTF(y, "provider: exec\nexec:\n  command: [%s, --flag]\n  timeout: %u\n", script,
                      timeout_s);
        write_all(cfg, (const uint8_t *)y, strlen(y));
        chmod(cfg, 0644);
        aidp_keys_init(k);
        return aidp_keys_setup(cfg, NULL, k, err);
}

Test(sealed_keys, exec_provider_round_trip)
{
        AIDP_REQUIRE_ROOT();
        if (system("/usr/bin/python3 -c 'import cryptography' 2>/dev/null") != 0)
                cr_skip_test("needs python3-cryptography");
        char kek[4096], script[4096], body[8192];
        TEST_SNPRINTF(kek, "%s/kek", T);
        write_all(kek, TEST_KEK, 32);
        TEST_SNPRINTF(script, "%s/kms.py", T);
        TEST_SNPRINTF(body,
                      "#!/usr/bin/python3\n"
                      "# test KMS: wraps with RFC 5649 under a local KEK, adds a prefix\n"
                      "import sys\n"
                      "from cryptography.hazmat.primitives.keywrap import "
                      "aes_key_wrap_with_padding as w, aes_key_unwrap_with_padding as u\n"
                      "assert sys.argv[1] == '--flag', sys.argv\n"
                      "kek = open('%s', 'rb').read()\n"
                      "op, kid = sys.argv[2], sys.argv[3]\n"
                      "assert kid == 'vault-key', kid\n"
                      "data = sys.stdin.buffer.read()\n"
                      "if op == 'wrap':\n"
                      "    sys.stdout.buffer.write(b'EXT1' + w(kek, data))\n"
                      "else:\n"
                      "    assert data[:4] == b'EXT1'\n"
                      "    sys.stdout.buffer.write(u(kek, data[4:]))\n",
                      kek);
        write_script(script, body);
        struct aidp_keys k;
        aidp_error err = {0};
        cr_assert_eq(exec_keys(&k, script, 10, &err), 0, "%s", err.msg);
        cr_assert_eq(k.kind, AIDP_KEYS_EXEC);
        char f[4096], sealed[4096], out[4096];
        TEST_SNPRINTF(f, "%s/plain", T);
        write_file(f, 70000, 0644, 3);
        TEST_SNPRINTF(sealed, "%s/e.sealed", T);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, "extset");
        strcpy(p.meta.key_id, "vault-key");
        struct aidp_seal_result res;
        cr_assert_eq(seal_path(f, sealed, &p, &k, &res, &err), 0, "%s", err.msg);
        cr_assert_eq(res.header.key_wrap, AIDP_WRAP_EXTERNAL);
        cr_assert_eq(res.header.wrapped_key_len, 44);
        TEST_SNPRINTF(out, "%s/out", T);
        cr_assert_eq(unseal_path(sealed, out, &k, 2, NULL, &err), 0, "%s", err.msg);
        char g[4096];
        TEST_SNPRINTF(g, "%s/plain", out);
        assert_same_tree(f, g);
        aidp_keys_free(&k);
}

static void expect_exec_failure(const char *body, unsigned timeout_s, int errnum,
                                const char *needle)
{
        char script[4096];
        TEST_SNPRINTF(script, "%s/bad-kms", T);
        unlink(script);
        write_script(script, body);
        struct aidp_keys k;
        aidp_error err = {0};
        cr_assert_eq(exec_keys(&k, script, timeout_s, &err), 0, "%s", err.msg);
        uint8_t wrapped[40] = {1};
        struct aidp_secret dk = {0};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = aidp_keys_unwrap(&k, "kid", AIDP_WRAP_EXTERNAL, wrapped, sizeof wrapped, &dk, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cr_assert_lt(r, 0, "provider failure not detected (%s)", needle);
        cr_assert_null(dk.p);
        cr_assert_eq(err.status, AIDP_EXIT_DATA, "%s", err.msg);
        cr_assert_eq(err.errnum, errnum, "%s", err.msg);
        cr_assert(strstr(err.msg, needle), "'%s' not in '%s'", needle, err.msg);
        cr_assert(strstr(err.msg, script), "%s", err.msg);
        cr_assert_lt(t1.tv_sec - t0.tv_sec, timeout_s + 3);
        aidp_keys_free(&k);
}

Test(sealed_keys, exec_provider_failures_are_clear)
{
        AIDP_REQUIRE_ROOT();
        expect_exec_failure("#!/bin/sh\necho 'vault is sealed' >&2\nexit 3\n", 10, EIO,
                            "failed with exit status 3: vault is sealed");
        expect_exec_failure("#!/bin/sh\ncat >/dev/null\nprintf short\n", 10, EIO,
                            "printed 5 bytes, want a 32-byte data key");
        expect_exec_failure("#!/bin/sh\nexec sleep 30\n", 1, ETIMEDOUT, "timed out after 1000 ms");
        expect_exec_failure("#!/bin/sh\nkill -9 $$\n", 10, EIO, "killed by signal 9");
        /* A provider others can modify is not run at all. */
        char script[4096];
        TEST_SNPRINTF(script, "%s/open-kms", T);
        write_script(script, "#!/bin/sh\nhead -c 32 /dev/zero\n");
        chmod(script, 0777);
        struct aidp_keys k;
        aidp_error err = {0};
        cr_assert_eq(exec_keys(&k, script, 5, &err), 0);
        struct aidp_secret dk = {0};
        uint8_t w[40] = {0};
        cr_assert_lt(aidp_keys_unwrap(&k, "kid", AIDP_WRAP_EXTERNAL, w, 40, &dk, &err), 0);
        cr_assert(strstr(err.msg, "writable by group or other"), "%s", err.msg);
        aidp_keys_free(&k);
        /* Not executable at all. */
        TEST_SNPRINTF(script, "%s/no-such-kms", T);
        cr_assert_eq(exec_keys(&k, script, 5, &err), 0);
        cr_assert_lt(aidp_keys_unwrap(&k, "kid", AIDP_WRAP_EXTERNAL, w, 40, &dk, &err), 0);
        cr_assert(strstr(err.msg, "no-such-kms"), "%s", err.msg);
        aidp_keys_free(&k);
}

Test(sealed_keys, destination_too_small_reports_enospc_with_dataset_name)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_keys k;
        keys_static(&k, TEST_KEK);
        char src[4096], f[4096], sealed[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/src/a", T);
        write_file(f, 600000, 0644, 1);
        TEST_SNPRINTF(f, "%s/src/b", T);
        write_file(f, 900000, 0644, 2);
        TEST_SNPRINTF(sealed, "%s/big.sealed", T);
        struct aidp_seal_params p = {.segment_size = 65536};
        meta_default(&p.meta, "toolarge");
        aidp_error err = {0};
        cr_assert_eq(seal_path(src, sealed, &p, &k, NULL, &err), 0, "%s", err.msg);
        struct aidp_tmpfs t;
        cr_assert_eq(aidp_tmpfs_create("data", 1024 * 1024, 0755, 0, 0, &t, &err), 0, "%s",
                     err.msg);
        struct aidp_sealed *s = NULL;
        cr_assert_eq(aidp_sealed_open(sealed, &k, &s, &err), 0, "%s", err.msg);
        uint64_t need = 0;
        cr_assert_eq(aidp_sealed_required_bytes(s, &need, &err), 0);
        cr_assert_eq(need, 600000 / 4096 * 4096 + 4096 + 900000 / 4096 * 4096 + 4096);
        int r = aidp_sealed_decrypt(s, t.fd, NULL, NULL, &err);
        cr_assert_lt(r, 0);
        cr_assert_eq(err.errnum, ENOSPC, "%s", err.msg);
        cr_assert(strstr(err.msg, "dataset toolarge"), "%s", err.msg);
        cr_assert(strstr(err.msg, "destination too small"), "%s", err.msg);
        /* Nothing left in the tmpfs. */
        int dfd = openat(t.fd, ".", O_RDONLY | O_DIRECTORY);
        DIR *d = fdopendir(dfd);
        struct dirent *e;
        unsigned n = 0;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        n++;
        closedir(d);
        cr_assert_eq(n, 0, "entries left in the tmpfs");
        /* A large enough tmpfs takes it. */
        struct aidp_tmpfs t2;
        cr_assert_eq(aidp_tmpfs_create("data", need, 0755, 0, 0, &t2, &err), 0);
        cr_assert_eq(aidp_sealed_decrypt(s, t2.fd, NULL, NULL, &err), 0, "%s", err.msg);
        aidp_sealed_close(s);
        aidp_tmpfs_release(&t);
        aidp_tmpfs_release(&t2);
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

Test(sealed_keys, cli_seal_inspect_unseal_and_exit_codes)
{
        AIDP_REQUIRE_ROOT();
        char cmd[16384], out[65536];
        TEST_SNPRINTF(cmd,
                      "set -e; cd '%s'; mkdir -p src/d; echo hi > src/d/f; " AIDP_BIN
                      " keygen cli-key --key-dir keys; " AIDP_BIN
                      " seal -q src -o src.sealed -k cli-key --key-dir keys -c restricted "
                      "-r eu -r de -g phi,pci -n clidata -V 3 -O bob; " AIDP_BIN
                      " inspect --json --key-dir keys src.sealed",
                      T);
        cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);
        cr_assert(strstr(out, "\"name\":\"clidata\""), "%s", out);
        cr_assert(strstr(out, "\"classification\":\"restricted\""), "%s", out);
        cr_assert(strstr(out, "\"residency\":[\n    \"de\",\n    \"eu\"\n  ]"), "%s", out);
        cr_assert(strstr(out, "\"authenticated\":true"), "%s", out);
        TEST_SNPRINTF(cmd,
                      "cd '%s' && " AIDP_BIN " unseal -q --key-dir keys src.sealed -o back && "
                      "cat back/d/f",
                      T);
        cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);
        cr_assert_str_eq(out, "hi\n");
        /* Tampered: exit 117, dataset named, nothing extracted. */
        TEST_SNPRINTF(
                cmd,
                "cd '%s' && printf '\\001' | dd of=src.sealed bs=1 seek=$(( $(stat -c %%s "
                "src.sealed) - 20 )) conv=notrunc 2>/dev/null && " AIDP_BIN
                " unseal --key-dir keys src.sealed -o back2 2>&1; echo rc=$?; test -e back2 && "
                "echo LEFT || echo GONE",
                T);
        sh(cmd, out, sizeof out);
        cr_assert(strstr(out, "rc=117"), "%s", out);
        cr_assert(strstr(out, "dataset clidata"), "%s", out);
        cr_assert(strstr(out, "failed authentication"), "%s", out);
        cr_assert(strstr(out, "GONE"), "unseal left its destination behind: %s", out);
        /* Usage errors: 120. */
        TEST_SNPRINTF(cmd, AIDP_BIN " seal '%s/src' -o x.sealed -k k 2>&1; echo rc=$?", T);
        sh(cmd, out, sizeof out);
        cr_assert(strstr(out, "missing --classification") && strstr(out, "rc=120"), "%s", out);
        /* Missing key: 117. */
        TEST_SNPRINTF(cmd,
                      "cd '%s' && rm keys/cli-key && " AIDP_BIN
                      " inspect --key-dir keys src.sealed 2>&1; echo rc=$?",
                      T);
        sh(cmd, out, sizeof out);
        cr_assert(strstr(out, "key 'cli-key' not found") && strstr(out, "rc=117"), "%s", out);
}
