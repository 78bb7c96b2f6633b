/* The exec key provider misbehaving (issue 21): a wrap that echoes the data
 * key, garbage with exit 0, a hang, a child left behind, and a module planted
 * in the caller's working directory for a `python3 -m` provider. Also what the
 * provider runs with: cwd /, a fixed minimal environment, default signal
 * dispositions and an empty mask, its own process group. Root: the provider
 * runs with root's authority, which is what makes each case matter. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "common/exitcodes.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

static char *T;
static char kek_path[4096];

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(kek_path, "%s/kek", T);
        write_all(kek_path, TEST_KEK, 32);
}

static void teardown(void)
{
        tmpdir_rm(T);
}

TestSuite(keys_exec, .init = setup, .fini = teardown, .timeout = 120);

static void write_script(const char *path, const char *body)
{
        FILE *f = fopen(path, "w");
        cr_assert(f);
        fputs(body, f);
        fclose(f);
        chmod(path, 0755);
}

static void require_python(void)
{
        if (system("/usr/bin/python3 -c 'import cryptography' 2>/dev/null") != 0) {
                if (getenv("CI"))
                        cr_assert_fail("python3-cryptography missing (scripts/install-deps)");
                cr_skip_test("needs python3-cryptography");
        }
}

/* A provider configured as argv (YAML flow list items, already quoted). */
static void exec_keys(struct aidp_keys *k, const char *argv_yaml, unsigned timeout_s)
{
        char cfg[4096], y[8192];
        TEST_SNPRINTF(cfg, "%s/keys.yaml", T);
        TEST_SNPRINTF(y, "provider: exec\nexec:\n  command: [%s]\n  timeout: %u\n", argv_yaml,
                      timeout_s);
        unlink(cfg);
        write_all(cfg, (const uint8_t *)y, strlen(y));
        chmod(cfg, 0644);
        aidp_keys_init(k);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_setup(cfg, NULL, k, &err), 0, "%s", err.msg);
}

/* A working KMS (RFC 5649 under a local KEK), with `pre` run first. */
static void kms_script(const char *path, const char *pre)
{
        char body[8192];
        TEST_SNPRINTF(body,
                      "#!/usr/bin/python3\n"
                      "import os, subprocess, sys\n"
                      "from cryptography.hazmat.primitives.keywrap import "
                      "aes_key_wrap_with_padding as w, aes_key_unwrap_with_padding as u\n"
                      "%s\n"
                      "kek = open('%s', 'rb').read()\n"
                      "op = sys.argv[1]\n"
                      "data = sys.stdin.buffer.read()\n"
                      "sys.stdout.buffer.write(b'KMS1' + w(kek, data) if op == 'wrap' else "
                      "u(kek, data[4:]))\n",
                      pre, kek_path);
        unlink(path);
        write_script(path, body);
}

static struct aidp_secret new_dk(void)
{
        struct aidp_secret dk = {0};
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_new_data_key(&dk, &err), 0, "%s", err.msg);
        return dk;
}

/* Wrap must fail with needle in the message; returns nothing stored. */
static void expect_wrap_refused(const char *argv_yaml, unsigned timeout_s, const char *needle)
{
        struct aidp_keys k;
        exec_keys(&k, argv_yaml, timeout_s);
        struct aidp_secret dk = new_dk();
        uint8_t out[AIDP_SEALED_WRAPPED_MAX];
        size_t len = 0;
        enum aidp_key_wrap alg = AIDP_WRAP_NONE;
        aidp_error err = {0};
        int r = aidp_keys_wrap(&k, "kid", &dk, &alg, out, &len, &err);
        cr_assert_lt(r, 0, "bad wrap accepted (%s)", needle);
        cr_assert_eq(err.status, AIDP_EXIT_DATA, "%s", err.msg);
        cr_assert(strstr(err.msg, needle), "'%s' not in '%s'", needle, err.msg);
        cr_assert_null(memmem(err.msg, strlen(err.msg), dk.p, 8), "key bytes in the message");
        aidp_secret_free(&dk);
        aidp_keys_free(&k);
}

Test(keys_exec, wrap_that_echoes_the_key_is_refused)
{
        AIDP_REQUIRE_ROOT();
        char s[4096], a[4200];
        TEST_SNPRINTF(s, "%s/echo-kms", T);
        /* wrap = the key itself; unwrap = its input: round-trips, stores the key in clear. */
        write_script(s, "#!/bin/sh\nexec cat\n");
        TEST_SNPRINTF(a, "'%s'", s);
        expect_wrap_refused(a, 10, "printed the data key");
        /* The key inside other bytes, or as hex, is no better. */
        write_script(s, "#!/bin/sh\nprintf HDR; cat; printf TRL\n");
        expect_wrap_refused(a, 10, "printed the data key");
        write_script(s, "#!/bin/sh\nif [ \"$1\" = wrap ]; then od -An -tx1 | tr -d ' \\n'; "
                        "else cat; fi\n");
        expect_wrap_refused(a, 10, "printed the data key");
}

Test(keys_exec, garbage_with_exit_0_is_refused_and_no_output_is_written)
{
        AIDP_REQUIRE_ROOT();
        char s[4096], a[4200];
        TEST_SNPRINTF(s, "%s/garbage-kms", T);
        write_script(s, "#!/bin/sh\ncat >/dev/null\necho 'error: KMS unavailable'\nexit 0\n");
        TEST_SNPRINTF(a, "'%s'", s);
        expect_wrap_refused(a, 10, "does not unwrap back");
        /* Unwrap printing 32 bytes, but of another key. */
        write_script(s, "#!/bin/sh\ncat >/dev/null\nif [ \"$1\" = wrap ]; then echo opaque; "
                        "else head -c 32 /dev/zero; fi\n");
        expect_wrap_refused(a, 10, "unwraps to another key");
        /* Sealing with it writes nothing. */
        struct aidp_keys k;
        exec_keys(&k, a, 10);
        char f[4096], out[4096];
        TEST_SNPRINTF(f, "%s/plain", T);
        write_file(f, 5000, 0644, 1);
        TEST_SNPRINTF(out, "%s/o.sealed", T);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, "g");
        aidp_error err = {0};
        cr_assert_lt(seal_path(f, out, &p, &k, NULL, &err), 0);
        cr_assert_neq(access(out, F_OK), 0, "an undecryptable output was written");
        aidp_keys_free(&k);
}

static double elapsed(const struct timespec *t0)
{
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static bool pid_gone(pid_t pid)
{
        /* Reparented to init, which reaps it once it is dead. */
        for (int i = 0; i < 100; i++) {
                char p[64], st[512] = "";
                TEST_SNPRINTF(p, "/proc/%d/stat", (int)pid);
                FILE *f = fopen(p, "r");
                if (!f)
                        return true;
                size_t n = fread(st, 1, sizeof st - 1, f);
                fclose(f);
                st[n] = '\0';
                const char *rp = strrchr(st, ')');
                if (rp && rp[2] == 'Z')
                        return true;
                usleep(20000);
        }
        return false;
}

Test(keys_exec, hang_times_out_and_its_children_are_killed)
{
        AIDP_REQUIRE_ROOT();
        char s[4096], a[4200], pidf[4096], body[8192];
        TEST_SNPRINTF(s, "%s/hang-kms", T);
        TEST_SNPRINTF(pidf, "%s/hang.pid", T);
        TEST_SNPRINTF(body, "#!/bin/sh\nsleep 300 &\necho $! > '%s'\nexec sleep 300\n", pidf);
        write_script(s, body);
        TEST_SNPRINTF(a, "'%s'", s);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        expect_wrap_refused(a, 1, "timed out after 1000 ms");
        cr_assert_lt(elapsed(&t0), 5.0);
        size_t n = 0;
        char *pid = (char *)read_all(pidf, &n);
        cr_assert(pid_gone(atoi(pid)), "the provider's child %s is still running", pid);
        free(pid);
}

Test(keys_exec, child_left_behind_is_killed_and_does_not_stall)
{
        AIDP_REQUIRE_ROOT();
        require_python();
        char s[4096], pidf[4096], pre[4096], a[4200];
        TEST_SNPRINTF(s, "%s/leave-kms", T);
        TEST_SNPRINTF(pidf, "%s/left.pid", T);
        /* The child inherits stdout and stderr, so they stay open after the provider exits. */
        TEST_SNPRINTF(pre,
                      "c = subprocess.Popen(['/bin/sleep', '300'])\n"
                      "open('%s', 'w').write(str(c.pid))",
                      pidf);
        kms_script(s, pre);
        TEST_SNPRINTF(a, "'%s'", s);
        struct aidp_keys k;
        exec_keys(&k, a, 20);
        struct aidp_secret dk = new_dk();
        uint8_t out[AIDP_SEALED_WRAPPED_MAX];
        size_t len = 0;
        enum aidp_key_wrap alg = AIDP_WRAP_NONE;
        aidp_error err = {0};
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cr_assert_eq(aidp_keys_wrap(&k, "kid", &dk, &alg, out, &len, &err), 0, "%s", err.msg);
        cr_assert_lt(elapsed(&t0), 10.0, "waited for the left-behind child");
        cr_assert_eq(len, 44);
        size_t n = 0;
        char *pid = (char *)read_all(pidf, &n);
        cr_assert(pid_gone(atoi(pid)), "the provider's child %s is still running as root", pid);
        free(pid);
        aidp_secret_free(&dk);
        aidp_keys_free(&k);
}

Test(keys_exec, runs_from_root_dir_with_minimal_env_default_signals_own_group)
{
        AIDP_REQUIRE_ROOT();
        require_python();
        char s[4096], kms[4096], rep[4096], pre[4096], a[4200], body[8192];
        TEST_SNPRINTF(s, "%s/report-kms", T);
        TEST_SNPRINTF(kms, "%s/kms.py", T);
        TEST_SNPRINTF(rep, "%s/report", T);
        /* The provider is a shell script (the process aidp starts); the Python
         * KMS it runs reports the shell's state, as Python changes its own
         * signal dispositions and environment at start-up. */
        TEST_SNPRINTF(pre,
                      "pp = '/proc/%%d/' %% os.getppid()\n"
                      "st = open(pp + 'status').read()\n"
                      "sig = {l.split(':')[0]: l.split()[1] for l in st.splitlines() "
                      "if l.startswith(('SigBlk', 'SigIgn'))}\n"
                      "env = sorted(e.split(b'=')[0].decode() for e in "
                      "open(pp + 'environ', 'rb').read().split(b'\\0') if e)\n"
                      "pgrp = int(open(pp + 'stat').read().rsplit(')', 1)[1].split()[2])\n"
                      "open('%s', 'w').write('cwd=%%s\\nenv=%%s\\nblk=%%s\\nign=%%s\\ngrp=%%d\\n' "
                      "%% (os.readlink(pp + 'cwd'), ','.join(env), sig['SigBlk'], "
                      "sig['SigIgn'], pgrp == os.getppid()))",
                      rep);
        kms_script(kms, pre);
        TEST_SNPRINTF(body, "#!/bin/sh\n/usr/bin/python3 '%s' \"$@\"\n", kms);
        write_script(s, body);
        TEST_SNPRINTF(a, "'%s'", s);
        struct aidp_keys k;
        exec_keys(&k, a, 20);
        /* The caller's state that must not reach the provider. */
        char cwd[4096];
        cr_assert(getcwd(cwd, sizeof cwd));
        cr_assert_eq(chdir(T), 0);
        setenv("AIDP_TEST_CALLER_SECRET", "x", 1);
        setenv("PYTHONPATH", T, 1);
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGUSR1);
        sigprocmask(SIG_BLOCK, &set, &old);
        struct sigaction ign = {.sa_handler = SIG_IGN}, oldusr2;
        sigaction(SIGUSR2, &ign, &oldusr2);
        struct aidp_secret dk = new_dk();
        uint8_t out[AIDP_SEALED_WRAPPED_MAX];
        size_t len = 0;
        enum aidp_key_wrap alg = AIDP_WRAP_NONE;
        aidp_error err = {0};
        int r = aidp_keys_wrap(&k, "kid", &dk, &alg, out, &len, &err);
        sigprocmask(SIG_SETMASK, &old, NULL);
        sigaction(SIGUSR2, &oldusr2, NULL);
        unsetenv("AIDP_TEST_CALLER_SECRET");
        unsetenv("PYTHONPATH");
        cr_assert_eq(chdir(cwd), 0);
        cr_assert_eq(r, 0, "%s", err.msg);
        size_t n = 0;
        char *got = (char *)read_all(rep, &n);
        cr_assert(strstr(got, "cwd=/\n"), "%s", got);
        cr_assert(strstr(got, "env=HOME,LANG,PATH\n"), "%s", got);
        cr_assert(strstr(got, "blk=0000000000000000\n"), "%s", got);
        /* Signals 1-31 at their defaults (glibc's posix_spawn leaves its two
         * internal real-time signals, 32 and 33, ignored: glibc programs reset
         * them at start-up). */
        const char *ignl = strstr(got, "ign=");
        cr_assert(ignl, "%s", got);
        cr_assert_eq(strtoull(ignl + 4, NULL, 16) & 0x7fffffffull, 0, "signals ignored: %s", got);
        cr_assert(strstr(got, "grp=1\n"), "%s", got);
        free(got);
        aidp_secret_free(&dk);
        aidp_keys_free(&k);
}

Test(keys_exec, module_planted_in_callers_cwd_is_not_executed)
{
        AIDP_REQUIRE_ROOT();
        char mod[4096], marker[4096], body[4096], cwd[4096];
        TEST_SNPRINTF(mod, "%s/aidp_planted_kms.py", T);
        TEST_SNPRINTF(marker, "%s/PLANTED-RAN", T);
        TEST_SNPRINTF(body,
                      "import sys\nopen('%s', 'w').write('ran')\n"
                      "sys.stdout.buffer.write(bytes(32))\n",
                      marker);
        write_all(mod, (const uint8_t *)body, strlen(body));
        struct aidp_keys k;
        exec_keys(&k, "/usr/bin/python3, -m, aidp_planted_kms", 10);
        cr_assert(getcwd(cwd, sizeof cwd));
        cr_assert_eq(chdir(T), 0);
        uint8_t wrapped[40] = {1};
        struct aidp_secret dk = {0};
        aidp_error err = {0};
        int r = aidp_keys_unwrap(&k, "kid", AIDP_WRAP_EXTERNAL, wrapped, sizeof wrapped, &dk, &err);
        cr_assert_eq(chdir(cwd), 0);
        cr_assert_neq(access(marker, F_OK), 0, "the planted module ran as root");
        cr_assert_lt(r, 0, "a provider that cannot be found succeeded");
        cr_assert(strstr(err.msg, "aidp_planted_kms"), "%s", err.msg);
        aidp_secret_free(&dk);
        aidp_keys_free(&k);
}

/* A run whose /out would be sealed by a broken provider is refused before the
 * job runs (the trial wrap), not after it, when /out could only be shredded. */
Test(keys_exec, broken_provider_refuses_the_run_before_the_job)
{
        AIDP_REQUIRE_ROOT();
        char s[4096], a[4200], cfg[4096], outdir[4096], rundir[4096];
        TEST_SNPRINTF(s, "%s/garbage-kms", T);
        write_script(s, "#!/bin/sh\ncat >/dev/null\necho 'error: KMS unavailable'\nexit 0\n");
        TEST_SNPRINTF(a, "'%s'", s);
        struct aidp_keys k;
        exec_keys(&k, a, 10);
        aidp_keys_free(&k);
        TEST_SNPRINTF(cfg, "%s/keys.yaml", T);
        TEST_SNPRINTF(outdir, "%s/outputs", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        mkdir(outdir, 0755);
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "65534",
                        "--no-cwd",
                        "--run-dir",
                        rundir,
                        "--keys-config",
                        cfg,
                        "--output-dir",
                        outdir,
                        "--output-key-id",
                        "out-key",
                        "--",
                        "/bin/sh",
                        "-c",
                        "echo JOB-RAN",
                        NULL};
        struct aidp_proc p;
        int st = aidp_test_run(&p, argv);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s%s", st, p.out, p.err);
        cr_assert_null(strstr(p.out, "JOB-RAN"), "the job ran: %s", p.out);
        cr_assert(strstr(p.err, "does not unwrap back") && strstr(p.err, "checked before the job"),
                  "%s", p.err);
        cr_assert_eq(count_entries(outdir), 0);
}
