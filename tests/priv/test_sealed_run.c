#define _GNU_SOURCE
/* Root integration tests of sealed data in a run: a job reads /data, cannot
 * write it, writes /out, and /out comes back sealed with inherited tags; the
 * host never sees an aidp tmpfs; a tampered input refuses the run naming the
 * dataset, before the job exists, with nothing left behind. */
#include <poll.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/exitcodes.h"
#include "common/hex.h"
#include "lineage_util.h"
#include "priv.h"
#include "runner.h"
#include "policy_util.h"
#include "tests/sealed_util.h"

static char *T;
static char keydir[4096], outdir[4096], in1[4096], in2[4096], rundir[4096];
static struct aidp_proc P;

static void seal_one(const char *name, enum aidp_classification c, const char *res, const char *reg,
                     const char *content, char *path_out)
{
        char src[4096], f[4096];
        TEST_SNPRINTF(src, "%s/src-%s", T, name);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/src-%s/sub", T, name);
        mkdir_p(f, 0750);
        TEST_SNPRINTF(f, "%s/src-%s/sub/data.txt", T, name);
        write_all(f, (const uint8_t *)content, strlen(content));
        chmod(f, 0600);
        TEST_SNPRINTF(f, "%s/src-%s/big.bin", T, name);
        write_file(f, 3 * 1048576 + 7, 0644, 5);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, name);
        strcpy(p.meta.key_id, "run-key");
        p.meta.classification = c;
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, res, &err), 0);
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, reg, &err), 0);
        snprintf(path_out, 4096, "%s/%s.sealed", T, name);
        cr_assert_eq(seal_path(src, path_out, &p, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
}

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(outdir, "%s/outputs", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        mkdir_p(outdir, 0755);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "run-key", &err), 0, "%s", err.msg);
        seal_one("alpha", AIDP_CLASS_CONFIDENTIAL, "eu", "phi", "alpha-secret-7f3a\n", in1);
        seal_one("beta", AIDP_CLASS_RESTRICTED, "de", "pci", "beta-secret-91c2\n", in2);
        /* Sealed data is decrypted only under an installed policy. */
        char pol[4096];
        TEST_SNPRINTF(pol, "%s/policy", T);
        aidp_test_policy_allow(pol, "nobody", (const char *const[]){"eu", "de", NULL},
                               (const char *const[]){"phi", "pci", NULL});
}

static void teardown(void)
{
        aidp_test_policy_done(NULL);
        tmpdir_rm(T);
}

TestSuite(sealed_run, .init = setup, .fini = teardown, .timeout = 120);

static int run_job(const char *script, const char *const extra[], bool wait_ready)
{
        char *argv[40];
        int n = 0;
        argv[n++] = AIDP_SUPERVISOR;
        argv[n++] = "run";
        argv[n++] = "--user";
        argv[n++] = "65534";
        argv[n++] = "--no-cwd";
        argv[n++] = "--run-dir";
        argv[n++] = rundir;
        argv[n++] = "--key-dir";
        argv[n++] = keydir;
        for (int i = 0; extra && extra[i]; i++)
                argv[n++] = (char *)extra[i];
        argv[n++] = "--";
        argv[n++] = "/bin/sh";
        argv[n++] = "-c";
        argv[n++] = (char *)script;
        argv[n] = NULL;
        if (!wait_ready)
                return aidp_test_run(&P, argv);
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        return 0;
}

/* The host's mounts of this test's own objects (its directory, its run
 * directory) and any tmpfs with noswap (aidp's kind, which must never show on
 * the host): other runs on the machine change the rest of the table. */
static char *mountinfo(void)
{
        size_t len = 0;
        char *all = (char *)read_all("/proc/self/mountinfo", &len), *save = NULL;
        char *out = calloc(1, len + 1);
        cr_assert_not_null(out);
        for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                bool aidp_tmpfs = strstr(l, " - tmpfs ") && strstr(l, "noswap");
                if (!aidp_tmpfs && !strstr(l, T) && !strstr(l, rundir))
                        continue;
                strcat(out, l);
                strcat(out, "\n");
        }
        free(all);
        return out;
}

static char *mountinfo_without_pins(int *pins, int *nsfs)
{
        char *all = mountinfo(), *out = calloc(1, strlen(all) + 1), *save = NULL;
        cr_assert_not_null(out);
        *pins = *nsfs = 0;
        char prefix[4200];
        TEST_SNPRINTF(prefix, " %s/", rundir);
        for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                char *at = strstr(l, prefix);
                if (at && strstr(at, "/mnt.ns ")) {
                        (*pins)++;
                        *nsfs += strstr(l, " - nsfs ") != NULL;
                        continue;
                }
                strcat(out, l);
                strcat(out, "\n");
        }
        free(all);
        return out;
}

Test(sealed_run, job_reads_data_cannot_write_it_and_out_is_sealed_with_inherited_tags)
{
        AIDP_REQUIRE_ROOT();
        char summary[4096];
        TEST_SNPRINTF(summary, "%s/summary.json", T);
        const char *extra[] = {"--data", in1,         "--data", in2, "--output-dir",
                               outdir,   "--summary", summary,  NULL};
        const char *script =
                "cat /data/alpha/sub/data.txt /data/beta/sub/data.txt;"
                "wc -c < /data/alpha/big.bin;"
                "if echo x > /data/alpha/sub/data.txt 2>/dev/null; then echo WROTE-EXISTING; fi;"
                "if touch /data/alpha/new 2>/dev/null; then echo WROTE-NEW; fi;"
                "if rm -f /data/beta/big.bin 2>/dev/null && [ ! -e /data/beta/big.bin ]; then "
                "echo REMOVED; fi;"
                "mkdir /out/model && echo trained-weights > /out/model/w.bin && echo ok > /out/log";
        int st = run_job(script, extra, false);
        cr_assert_eq(st, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", st, P.out, P.err);
        cr_assert(strstr(P.out, "alpha-secret-7f3a\nbeta-secret-91c2\n"), "%s", P.out);
        cr_assert(strstr(P.out, "3145735"), "%s", P.out);
        cr_assert_null(strstr(P.out, "WROTE"), "/data was writable: %s", P.out);
        cr_assert_null(strstr(P.out, "REMOVED"), "/data was writable: %s", P.out);
        /* stderr is a pipe here (a batch log): progress comes as whole lines,
         * of injection and of sealing /out, each ending in "done". */
        cr_expect(strstr(P.err, "aidp-supervisor: decrypting alpha: 100%, 3.0 of 3.0 MiB") &&
                          strstr(P.err, "aidp-supervisor: decrypting beta: 100%"),
                  "no injection progress lines: %s", P.err);
        cr_expect(strstr(P.err, "aidp-supervisor: sealing /out: 100%") != NULL,
                  "no sealing progress line: %s", P.err);
        cr_expect_null(strchr(P.err, '\r'), "a terminal bar in a batch log: %s", P.err);

        /* Exactly one sealed output, named after the run, with inherited tags. */
        DIR *d = opendir(outdir);
        struct dirent *e;
        char sealed[4096] = "";
        while ((e = readdir(d)))
                if (strstr(e->d_name, ".sealed"))
                        TEST_SNPRINTF(sealed, "%s/%s", outdir, e->d_name);
        closedir(d);
        cr_assert_eq(count_entries(outdir), 1);
        cr_assert(sealed[0], "no sealed output in %s", outdir);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_sealed *s = NULL;
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_open(sealed, &k, &s, &err), 0, "%s", err.msg);
        const struct aidp_sealed_header *h = aidp_sealed_header_of(s);
        cr_assert_eq(h->meta.classification, AIDP_CLASS_RESTRICTED);
        cr_assert_eq(h->meta.n_residency, 2);
        cr_assert_str_eq(h->meta.residency[0], "de");
        cr_assert_str_eq(h->meta.residency[1], "eu");
        cr_assert_eq(h->meta.n_regulation, 2);
        cr_assert_str_eq(h->meta.regulation[0], "pci");
        cr_assert_str_eq(h->meta.regulation[1], "phi");
        cr_assert_str_eq(h->meta.key_id, "run-key");
        cr_assert_str_eq(h->meta.owner, "nobody");
        char back[4096];
        TEST_SNPRINTF(back, "%s/back", T);
        mkdir_p(back, 0700);
        int bfd = open(back, O_RDONLY | O_DIRECTORY);
        cr_assert_eq(aidp_sealed_decrypt(s, bfd, NULL, NULL, &err), 0, "%s", err.msg);
        close(bfd);
        size_t len = 0;
        char w[4096];
        TEST_SNPRINTF(w, "%s/model/w.bin", back);
        uint8_t *wb = read_all(w, &len);
        cr_assert_eq(len, 16);
        cr_assert_eq(memcmp(wb, "trained-weights\n", 16), 0);
        free(wb);

        /* Digests in the summary. */
        size_t sl = 0;
        char *js = (char *)read_all(summary, &sl);
        char want[200];
        strcpy(want, "\"content_digest\":\"hmac-sha256:"); /* format 2: keyed */
        cr_assert(strstr(js, "\"name\":\"alpha\""), "%s", js);
        cr_assert(strstr(js, "\"name\":\"beta\""), "%s", js);
        cr_assert(strstr(js, "\"output\":"), "%s", js);
        cr_assert(strstr(js, want), "%s", js);
        char hexd[AIDP_SHA256_HEX_LEN + 1];
        aidp_hex_encode(h->content_digest, AIDP_SHA256_LEN, hexd);
        cr_assert(strstr(js, hexd), "output digest not in summary: %s", js);
        free(js);
        aidp_sealed_close(s);
        aidp_keys_free(&k);
}

Test(sealed_run, host_mountinfo_never_shows_an_aidp_tmpfs)
{
        AIDP_REQUIRE_ROOT();
        char *before = mountinfo();
        const char *extra[] = {"--data", in1, NULL};
        run_job("echo READY; sleep 2; cat /data/alpha/sub/data.txt > /out/copy", extra, true);
        cr_assert(aidp_test_wait_output(&P, "READY", 30000), "job did not start: %s", P.err);
        int pins = 0, nsfs = 0;
        char *during = mountinfo_without_pins(&pins, &nsfs);
        /* only the pin of the run's mount namespace: nsfs on a private bind */
        cr_expect_eq(pins, 2, "%d mounts at the run's mnt.ns", pins);
        cr_expect_eq(nsfs, 1, "the pin is not an nsfs mount");
        int st = aidp_test_finish(&P);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        char *after = mountinfo();
        cr_assert_str_eq(during, before, "host mount table changed during the run");
        cr_assert_str_eq(after, before, "host mount table changed after the run");
        cr_assert_null(strstr(during, "noswap"), "a noswap tmpfs is visible on the host");
        free(before);
        free(during);
        free(after);
}

static void expect_refused(const char *sealed_path, const char *needle)
{
        const char *extra[] = {"--data", in2, "--data", sealed_path, "--output-dir", outdir, NULL};
        char *before = mountinfo();
        int st = run_job("echo JOB-RAN; cat /data/*/sub/data.txt", extra, false);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d\nstdout:\n%s\nstderr:\n%s", st, P.out, P.err);
        cr_assert_null(strstr(P.out, "JOB-RAN"), "the job ran: %s", P.out);
        cr_assert_null(strstr(P.out, "secret"), "plaintext reached stdout");
        cr_assert(strstr(P.err, needle), "'%s' not in stderr: %s", needle, P.err);
        cr_assert(strstr(P.err, "alpha"), "dataset not named: %s", P.err);
        cr_assert_eq(count_entries(outdir), 0, "output written for a refused run");
        char *after = mountinfo();
        cr_assert_str_eq(after, before);
        free(before);
        free(after);
        /* The run's journal and state are gone too. */
        cr_assert_eq(count_entries(rundir), 0, "run state left in %s", rundir);
}

Test(sealed_run, tampered_segment_refuses_the_run_with_dataset_named)
{
        AIDP_REQUIRE_ROOT();
        size_t len = 0;
        uint8_t *b = read_all(in1, &len);
        b[len - 1048576] ^= 0x10; /* inside the last full segment */
        char bad[4096];
        TEST_SNPRINTF(bad, "%s/alpha-bad.sealed", T);
        write_all(bad, b, len);
        free(b);
        expect_refused(bad, "failed authentication");
}

/* A header whose digest does not match its (authentic) content: the run
 * recomputes the digest while decrypting and refuses before the job starts,
 * rather than recording a digest nobody checked. */
Test(sealed_run, content_digest_mismatch_refuses_the_run)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_secret kek = {0};
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_read_kek(keydir, "run-key", &kek, &err), 0, "%s", err.msg);
        size_t len = 0;
        uint8_t *b = read_all(in1, &len);
        uint8_t *forged = forge_content_digest(b, len, kek.p);
        aidp_secret_free(&kek);
        char bad[4096];
        TEST_SNPRINTF(bad, "%s/alpha-digest.sealed", T);
        write_all(bad, forged, len);
        free(b);
        free(forged);
        expect_refused(bad, "content digest does not match");
}

Test(sealed_run, edited_header_tag_and_truncation_refuse_the_run)
{
        AIDP_REQUIRE_ROOT();
        size_t len = 0;
        uint8_t *b = read_all(in1, &len);
        /* The residency tag "eu" -> "us": header authentication fails. */
        uint8_t *p = memmem(b, 400, "\0\6\0\2eu", 6);
        cr_assert(p);
        memcpy(p + 4, "us", 2);
        char bad[4096];
        TEST_SNPRINTF(bad, "%s/alpha-edited.sealed", T);
        write_all(bad, b, len);
        expect_refused(bad, "header authentication failed");
        p[4] = 'e', p[5] = 'u';
        TEST_SNPRINTF(bad, "%s/alpha-short.sealed", T);
        write_all(bad, b, len - 4096);
        expect_refused(bad, "truncated");
        free(b);
}

Test(sealed_run, sparse_giant_in_out_is_refused_not_expanded)
{
        AIDP_REQUIRE_ROOT();
        const char *extra[] = {"--data", in1, "--output-dir", outdir, NULL};
        int st = run_job("truncate -s 200G /out/huge && echo made", extra, false);
        cr_assert(strstr(P.out, "made"), "%s", P.err);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_assert(strstr(P.err, "sparse"), "%s", P.err);
        cr_assert_eq(count_entries(outdir), 0, "partial output left");
}

/* Ctrl-C during a long injection stops it: no job, /data shredded, and the
 * end record an ABORT naming the interrupt. */
Test(sealed_run, sigint_during_injection_stops_it_cleanly, .timeout = 300)
{
        AIDP_REQUIRE_ROOT();
        char src[4096], f[4096], big[4096], logp[4096], keyp[4096];
        snprintf(src, sizeof src, "%s/src-huge", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/huge.bin", src);
        /* 1 GiB where there is room; the VM's 1 GiB of RAM holds its /tmp, so
         * there a third of the free space (plain file, then the sealed copy),
         * which its emulated CPU still decrypts for seconds. */
        struct statvfs vfs;
        cr_assert_eq(statvfs(T, &vfs), 0, "%s: %s", T, strerror(errno));
        uint64_t room = (uint64_t)vfs.f_bavail * vfs.f_frsize / 3;
        uint64_t size = room < 1024ull * 1048576 ? room & ~(1048576ull - 1) : 1024ull * 1048576;
        cr_assert_geq(size, 64ull * 1048576, "%s: too little free space for the dataset", T);
        write_file(f, size, 0644, 9);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, "huge");
        strcpy(p.meta.key_id, "run-key");
        aidp_error err = {0};
        snprintf(big, sizeof big, "%s/huge.sealed", T);
        cr_assert_eq(seal_path(src, big, &p, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
        unlink(f);
        snprintf(logp, sizeof logp, "%s/lineage.jsonl", T);
        snprintf(keyp, sizeof keyp, "%s/lineage.key", T);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        const char *extra[] = {"--data", big, "--lineage", logp, NULL};
        run_job("echo JOB-RAN", extra, true);
        /* Wait for the first progress line of the injection, then Ctrl-C. */
        char buf[8192] = "";
        size_t len = 0;
        for (int i = 0; i < 600 && !strstr(buf, "decrypting huge"); i++) {
                struct pollfd pf = {.fd = P.err_fd, .events = POLLIN};
                if (poll(&pf, 1, 100) > 0) {
                        ssize_t n = read(P.err_fd, buf + len, sizeof buf - 1 - len);
                        if (n <= 0)
                                break;
                        len += (size_t)n;
                        buf[len] = '\0';
                }
        }
        cr_assert(strstr(buf, "decrypting huge"), "no injection progress line: %s", buf);
        cr_assert_eq(kill(P.pid, SIGINT), 0);
        int st = aidp_test_finish(&P);
        unsetenv("AIDP_LINEAGE_KEY");
        cr_expect_neq(st, 0, "%s%s", buf, P.err);
        cr_expect_null(strstr(P.out, "JOB-RAN"), "the job ran after Ctrl-C: %s", P.out);
        cr_expect(strstr(P.err, "interrupted") != NULL, "%s%s", buf, P.err);
        cr_expect_null(strstr(P.err, "100%"), "the injection ran to the end: %s%s", buf, P.err);
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2, "expected START and an end record");
        cr_expect_str_eq(aidp_test_json_str(ev[1], "eventType"), "ABORT");
        cr_expect(strstr(aidp_test_json_str(ev[1], "run.facets.aidp_exit.reason"), "interrupt"),
                  "%s", json_object_to_json_string(ev[1]));
        cr_expect(
                json_object_get_boolean(aidp_test_json_at(ev[1], "run.facets.aidp_shred.verified")),
                "/data not shredded and verified");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}
