#define _GNU_SOURCE
/* The plaintext canary (issue 14, "Proof"): a sealed dataset holds a unique
 * random string; the job copies it into every place it can write (/tmp,
 * /scratch, /out, /dev/shm, a path deeper than PATH_MAX, its memory, a
 * child's argv and environment) and then ends in one of five ways: normal
 * exit, SIGKILL, timeout, OOM, or its supervisor SIGKILLed and gc cleaning
 * up. Afterwards every writable tmpfs of the host and every file under /var,
 * /run, /tmp and /dev/shm changed since the test began is searched for the
 * canary raw, in hex and in base64: zero hits; and the run's shred report
 * accounts for every file the job wrote, per mount. The test itself never
 * writes the canary anywhere but the sealing source, removed before the job. */
#include <dirent.h>
#include <poll.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "common/error.h"
#include "common/exitcodes.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

#define CONTAIN_PROBE AIDP_BINARY_DIR "/tests/helpers/contain_probe"

static char *T;
static char keydir[4096], sealed[4096], rundir[4096], logp[4096], keyp[4096], run_id[64];
static char canary[64], forms[3][128]; /* raw, hex, base64 */
static time_t began;
static struct aidp_proc P;

/* Files the job writes, per mount (the script below). */
static const struct {
        const char *mount;
        unsigned files;
} written[] = {{"/tmp", 2}, {"/scratch", 3}, {"/out", 1}, {"/dev/shm", 1}};

static void setup(void)
{
        began = time(NULL) - 1;
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        TEST_SNPRINTF(run_id, "aidp-test-canary-%d", (int)getpid());
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "canary-key", &err), 0, "%s", err.msg);

        unsigned char rnd[16];
        cr_assert_eq(RAND_bytes(rnd, sizeof rnd), 1);
        strcpy(canary, "AIDPCANARY");
        for (size_t i = 0; i < sizeof rnd; i++)
                sprintf(canary + strlen(canary), "%02x", rnd[i]);
        snprintf(forms[0], sizeof forms[0], "%s", canary);
        for (size_t i = 0; canary[i]; i++)
                sprintf(forms[1] + 2 * i, "%02x", (unsigned char)canary[i]);
        EVP_EncodeBlock((unsigned char *)forms[2], (const unsigned char *)canary,
                        (int)strlen(canary));

        /* The only plaintext the test writes: the sealing source, gone
         * before any job runs. */
        char src[4096], f[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/canary.txt", src);
        write_all(f, (const uint8_t *)canary, strlen(canary));
        TEST_SNPRINTF(sealed, "%s/canary.sealed", T);
        seal_with_key_dir(src, sealed, keydir, "canary-key", "canary");
        cr_assert_eq(unlink(f), 0);
        cr_assert_eq(rmdir(src), 0);
        /* Sealed data is decrypted only under an installed policy. */
        char pol[4096 + 16];
        TEST_SNPRINTF(pol, "%s/policy", T);
        aidp_test_policy_allow(pol, "nobody", NULL, NULL);
}

static void teardown(void)
{
        /* gc of a run this test left behind */
        aidp_test_policy_done(access(rundir, F_OK) == 0 ? rundir : NULL);
        unsetenv("AIDP_LINEAGE_KEY");
        tmpdir_rm(T);
}

TestSuite(canary, .init = setup, .fini = teardown, .timeout = 180);

/* ---- the search ---- */

struct hits {
        unsigned n;
        char first[512];
};

static void search_buf(const char *buf, size_t len, const char *path, struct hits *h)
{
        for (size_t i = 0; i < 3; i++)
                if (memmem(buf, len, forms[i], strlen(forms[i]))) {
                        if (!h->n++)
                                aidp_text_printf(h->first, sizeof h->first, "%s (%s)", path,
                                                 i == 0   ? "raw"
                                                 : i == 1 ? "hex"
                                                          : "base64");
                }
}

static void search_file(int dfd, const char *name, const char *path, struct hits *h)
{
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return;
        static char buf[(1 << 20) + 128];
        size_t keep = 0;
        for (;;) {
                ssize_t n = read(fd, buf + keep, sizeof buf - 128 - keep);
                if (n <= 0)
                        break;
                size_t len = keep + (size_t)n;
                search_buf(buf, len, path, h);
                /* Keep a tail so that a form split across reads is found. */
                keep = len < 127 ? len : 127;
                memmove(buf, buf + len - keep, keep);
        }
        close(fd);
}

/* Every regular file below dfd on the same file system (dev), or only those
 * changed since the test began when `changed`. */
static void walk(int dfd, const char *path, dev_t dev, bool changed, int depth, struct hits *h)
{
        if (depth > 64)
                return;
        int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                struct stat st;
                if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
                        continue;
                char p[4096];
                if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dfd, e->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0) {
                                walk(sub, p, dev, changed, depth + 1, h);
                                close(sub);
                        }
                } else if (S_ISREG(st.st_mode) &&
                           (!changed || st.st_mtime >= began || st.st_ctime >= began)) {
                        search_file(dfd, e->d_name, p, h);
                }
        }
        closedir(d);
}

static void search_tree(const char *root, bool changed, struct hits *h)
{
        int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat st;
        if (fd < 0)
                return;
        if (fstat(fd, &st) == 0)
                walk(fd, strcmp(root, "/") ? root : "", st.st_dev, changed, 0, h);
        close(fd);
}

/* Every writable tmpfs of the host (a read-only one cannot have received
 * anything), whole; then the places, changed files only. */
static struct hits search_host(void)
{
        struct hits h = {0};
        FILE *f = fopen("/proc/self/mountinfo", "re");
        cr_assert_not_null(f);
        char line[4096];
        while (fgets(line, sizeof line, f)) {
                char mnt[2048], opts[512];
                const char *sep = strstr(line, " - ");
                if (!sep || strncmp(sep, " - tmpfs ", 9) ||
                    sscanf(line, "%*s %*s %*s %*s %2047s %511s", mnt, opts) != 2)
                        continue;
                if (!strncmp(opts, "ro", 2) && (opts[2] == ',' || !opts[2]))
                        continue;
                search_tree(mnt, false, &h);
        }
        fclose(f);
        static const char *const places[] = {"/var", "/run", "/tmp", "/dev/shm"};
        for (size_t i = 0; i < sizeof places / sizeof places[0]; i++)
                search_tree(places[i], true, &h);
        return h;
}

/* ---- the job ---- */

/* Copies the canary into every writable place, then ends as `ending` says.
 * The deep path is 20 directories of 240-character names under /scratch
 * (about 4.8 KB, beyond PATH_MAX), made by the probe one level at a time. */
static void script(char *out, size_t len, const char *ending)
{
        int n = snprintf(
                out, len,
                "set -e; C=$(cat /data/canary/canary.txt);"
                "for d in /tmp /scratch /out /dev/shm; do printf %%s \"$C\" > $d/canary; done;"
                "printf %%s \"$C\" | od -An -tx1 | tr -d ' \\n' > /scratch/canary.hex;"
                "printf %%s \"$C\" | base64 > /tmp/canary.b64;"
                "printf %%s \"$C\" | " CONTAIN_PROBE " deep /scratch 20 240;"
                "CANARY_ENV=\"$C\" sh -c 'sleep 300' \"$C\" & "
                "echo ready; %s",
                ending);
        cr_assert(n > 0 && (size_t)n < len);
}

static void argv_for(char **argv, const char *job, const char *const *extra)
{
        int n = 0;
        const char *fixed[] = {AIDP_SUPERVISOR, "run",       "--user",    "65534",  "--no-cwd",
                               "--run-id",      run_id,      "--run-dir", rundir,   "--key-dir",
                               keydir,          "--lineage", logp,        "--data", sealed};
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
                argv[n++] = (char *)fixed[i];
        for (int i = 0; extra && extra[i]; i++)
                argv[n++] = (char *)extra[i];
        argv[n++] = "--";
        argv[n++] = "/bin/sh";
        argv[n++] = "-c";
        argv[n++] = (char *)job;
        argv[n] = NULL;
}

/* The run's end record (the last record of its run id). */
static json_object *end_record(json_object **ev, size_t n)
{
        json_object *last = NULL;
        for (size_t i = 0; i < n; i++)
                if (!strcmp(aidp_test_json_str(ev[i], "run.facets.aidp_run.runName"), run_id) &&
                    strcmp(aidp_test_json_str(ev[i], "eventType"), "START"))
                        last = ev[i];
        return last;
}

/* After the run: nothing of the canary anywhere, and shred accounted for
 * every file the job wrote, mount by mount. */
static void check_after(const char *what)
{
        struct hits h = search_host();
        cr_expect_eq(h.n, 0, "%s: the canary was found %u time(s), first in %s", what, h.n,
                     h.first);
        json_object *ev[16];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 16);
        json_object *end = end_record(ev, n);
        cr_assert_not_null(end, "%s: no end record", what);
        const char *s = json_object_to_json_string(aidp_test_json_at(end, "run.facets.aidp_shred"));
        cr_expect(json_object_get_boolean(aidp_test_json_at(end, "run.facets.aidp_shred.verified")),
                  "%s: shred not verified: %s", what, s);
        unsigned total = 0;
        for (size_t i = 0; i < sizeof written / sizeof written[0]; i++)
                total += written[i].files;
        cr_expect_geq(json_object_get_int64(aidp_test_json_at(end, "run.facets.aidp_shred.files")),
                      total, "%s: shred counted fewer files than the job wrote (%u): %s", what,
                      total, s);
        json_object *mounts = aidp_test_json_at(end, "run.facets.aidp_shred.mounts");
        cr_expect_not_null(mounts, "%s: no per-mount shred report: %s", what, s);
        for (size_t i = 0; mounts && i < sizeof written / sizeof written[0]; i++) {
                json_object *m = NULL;
                for (size_t j = 0; j < json_object_array_length(mounts); j++) {
                        json_object *c = json_object_array_get_idx(mounts, j);
                        if (!strcmp(aidp_test_json_str(c, "mount"), written[i].mount))
                                m = c;
                }
                cr_expect_not_null(m, "%s: %s missing from the shred report: %s", what,
                                   written[i].mount, s);
                if (!m)
                        continue;
                cr_expect_geq(json_object_get_int64(aidp_test_json_at(m, "files")),
                              written[i].files, "%s: %s: fewer files than written: %s", what,
                              written[i].mount, s);
                cr_expect(json_object_get_boolean(aidp_test_json_at(m, "verified")),
                          "%s: %s not verified: %s", what, written[i].mount, s);
        }
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

static int run_case(const char *ending, const char *const *extra)
{
        char job[2048], *argv[48];
        script(job, sizeof job, ending);
        argv_for(argv, job, extra);
        int st = aidp_test_run(&P, argv);
        cr_expect(strstr(P.out, "ready"), "the job never wrote the canary copies: exit %d\n%s", st,
                  P.err);
        return st;
}

Test(canary, normal_exit)
{
        AIDP_REQUIRE_ROOT();
        int st = run_case("exit 0", NULL);
        cr_expect_eq(st, 0, "exit %d: %s", st, P.err);
        check_after("normal exit");
}

Test(canary, job_sigkill)
{
        AIDP_REQUIRE_ROOT();
        int st = run_case("kill -9 $$", NULL);
        cr_expect_eq(st, 128 + SIGKILL, "exit %d: %s", st, P.err);
        check_after("job SIGKILL");
}

Test(canary, timeout)
{
        AIDP_REQUIRE_ROOT();
        const char *extra[] = {"--timeout", "2s", "--kill-after", "1s", NULL};
        int st = run_case("sleep 300", extra);
        cr_expect_eq(st, AIDP_EXIT_TIMEOUT, "exit %d: %s", st, P.err);
        check_after("timeout");
}

Test(canary, oom)
{
        AIDP_REQUIRE_ROOT();
        const char *extra[] = {"--memory", "96Mi", NULL};
        int st = run_case("exec " AIDP_PROBE " memhog", extra);
        cr_expect_neq(st, 0, "the memory hog was not stopped: %s", P.err);
        cr_expect(strstr(P.err, "OOM") || strstr(P.err, "out of memory") || strstr(P.err, "oom"),
                  "no OOM reported (exit %d): %s", st, P.err);
        check_after("OOM");
}

Test(canary, supervisor_sigkill_then_gc)
{
        AIDP_REQUIRE_ROOT();
        char job[2048], *argv[48];
        script(job, sizeof job, "sleep 300");
        argv_for(argv, job, NULL);
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        cr_assert(aidp_test_wait_output(&P, "ready", 60000), "the job never got ready: %s", P.out);
        cr_assert_eq(kill(P.pid, SIGKILL), 0);
        aidp_test_reap(&P);
        char *gc[] = {AIDP_SUPERVISOR, "gc", "--run-dir", rundir, NULL};
        cr_expect_eq(aidp_test_run(&P, gc), 0, "gc: %s", P.err);
        check_after("supervisor SIGKILL then gc");
}

/* The search itself: it finds a form of the canary planted on a tmpfs (then
 * removed), so zero hits above means something. */
Test(canary, the_search_finds_a_planted_canary)
{
        AIDP_REQUIRE_ROOT();
        struct hits h = search_host();
        cr_assert_eq(h.n, 0, "the canary is on the host before any job: %s", h.first);
        char f[128];
        TEST_SNPRINTF(f, "/dev/shm/aidp-test-canary-%d", (int)getpid());
        write_all(f, (const uint8_t *)forms[2], strlen(forms[2]));
        h = search_host();
        unlink(f);
        cr_expect_geq(h.n, 1, "a planted base64 canary was not found");
        cr_expect(strstr(h.first, f) && strstr(h.first, "base64"), "%s", h.first);
}
