/* Lineage witnesses (issue 20), end to end as root: real runs publish their
 * chain heads to a syslog receiver this test runs on a unix socket and to a
 * witness file; then each attack a root on the host could make on the log is
 * made, and `aidp lineage verify --witness` must name it with the first
 * record affected, against both witnesses. A witness that was down for part
 * of the time shows as a gap, not as tampering. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "priv.h"
#include "runner.h"
#include "lineage_util.h"
#include "tests/tpath.h"

static struct aidp_proc P;
static char T[64], logp[256], keyp[256], cfgp[256], sockp[256], sysarch[256], wfile[256],
        rundir[256];
static int sock_fd = -1;
static pthread_t rx;

/* The syslog witness: every datagram to the socket, one per line, into a file
 * (what a site's syslog daemon forwards and archives). */
static void *receiver(void *arg)
{
        (void)arg;
        char buf[8192];
        for (;;) {
                ssize_t n = recv(sock_fd, buf, sizeof buf - 1, 0);
                if (n <= 0)
                        return NULL;
                FILE *f = fopen(sysarch, "ae");
                if (!f)
                        continue;
                fwrite(buf, 1, (size_t)n, f);
                fputc('\n', f);
                fclose(f);
        }
}

static void write_config(const char *file_witness)
{
        FILE *f = fopen(cfgp, "we");
        cr_assert_not_null(f);
        fprintf(f,
                "apiVersion: aidp/v1\nkind: Witnesses\ntimeoutMs: 500\nwitnesses:\n"
                "  - syslog: %s\n  - file: %s\n",
                sockp, file_witness);
        fclose(f);
        chmod(cfgp, 0644);
}

static void setup(void)
{
        AIDP_REQUIRE_ROOT();
        TEST_SNPRINTF(T, "/tmp/aidp-witness.XXXXXX");
        cr_assert_not_null(mkdtemp(T));
        chmod(T, 0755);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        TEST_SNPRINTF(cfgp, "%s/witnesses.yaml", T);
        TEST_SNPRINTF(sockp, "%s/syslog.sock", T);
        TEST_SNPRINTF(sysarch, "%s/syslog.log", T);
        TEST_SNPRINTF(wfile, "%s/heads.jsonl", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        sock_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        TEST_SNPRINTF(sa.sun_path, "%s", sockp);
        cr_assert_eq(bind(sock_fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
        cr_assert_eq(pthread_create(&rx, NULL, receiver, NULL), 0);
        write_config(wfile);
        setenv("AIDP_LINEAGE_FILE", logp, 1);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        setenv("AIDP_WITNESS_CONFIG", cfgp, 1);
        setenv("AIDP_SYSLOG_SOCKET", sockp, 1);
}

static void teardown(void)
{
        if (sock_fd >= 0) {
                shutdown(sock_fd, SHUT_RDWR);
                pthread_cancel(rx);
                pthread_join(rx, NULL);
                close(sock_fd);
                sock_fd = -1;
        }
        if (T[0]) {
                char *rm[] = {"/bin/rm", "-rf", T, NULL};
                aidp_test_run(&P, rm);
        }
        unsetenv("AIDP_WITNESS_CONFIG");
}

TestSuite(witness, .init = setup, .fini = teardown, .timeout = 120);

static void run_true(void)
{
        char *argv[] = {AIDP_SUPERVISOR, "run", "-q",        "--run-dir", rundir,
                        "--no-cwd",      "--",  "/bin/true", NULL};
        cr_assert_eq(aidp_test_run(&P, argv), 0, "run: %s", P.err);
        struct timespec ts = {0, 50 * 1000 * 1000}; /* the receiver's last datagram */
        nanosleep(&ts, NULL);
}

/* verify --witness W of the log; exit status, output in P. */
static int verify(const char *witness)
{
        char *argv[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, "--witness",
                        (char *)witness,         logp,      NULL};
        return aidp_test_run(&P, argv);
}

static void cp(const char *from, const char *to)
{
        char *argv[] = {"/bin/cp", "-p", (char *)from, (char *)to, NULL};
        cr_assert_eq(aidp_test_run(&P, argv), 0, "cp %s %s: %s", from, to, P.err);
}

/* The log and its anchor saved now, and put back later: a rollback. */
static void save_log(void)
{
        char old[300], olda[300], anchor[300];
        TEST_SNPRINTF(old, "%s/old.jsonl", T);
        TEST_SNPRINTF(olda, "%s/old.anchor", T);
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        cp(logp, old);
        cp(anchor, olda);
}

static void roll_back(void)
{
        char old[300], olda[300], anchor[300];
        TEST_SNPRINTF(old, "%s/old.jsonl", T);
        TEST_SNPRINTF(olda, "%s/old.anchor", T);
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        cp(old, logp);
        cp(olda, anchor);
}

/* Another log of this host (same key), written without witnesses, put in the
 * log's place with its anchor. */
static void substitute_another_log(void)
{
        char other[300], anchor[300], oanchor[300];
        TEST_SNPRINTF(other, "%s/other.jsonl", T);
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        TEST_SNPRINTF(oanchor, "%s.anchor", other);
        const char *cfg = getenv("AIDP_WITNESS_CONFIG");
        char saved[300];
        TEST_SNPRINTF(saved, "%s", cfg ? cfg : "");
        setenv("AIDP_WITNESS_CONFIG", "/nonexistent/aidp-witness-none", 1);
        setenv("AIDP_LINEAGE_FILE", other, 1);
        run_true();
        setenv("AIDP_LINEAGE_FILE", logp, 1);
        setenv("AIDP_WITNESS_CONFIG", saved, 1);
        cp(other, logp);
        cp(oanchor, anchor);
}

static void expect_alarm(const char *what, const char *first)
{
        const char *ws[] = {wfile, sysarch};
        for (size_t i = 0; i < 2; i++) {
                cr_expect_eq(verify(ws[i]), AIDP_EXIT_FAILED, "%s not seen by %s: %s%s", what,
                             ws[i], P.out, P.err);
                cr_expect(strstr(P.err, what) && strstr(P.err, first), "%s via %s: %s", what, ws[i],
                          P.err);
        }
}

Test(witness, intact_log_is_confirmed_by_both_witnesses)
{
        run_true();
        run_true();
        cr_assert_eq(verify(wfile), 0, "%s%s", P.out, P.err);
        cr_expect(strstr(P.out, "4 head(s) of this log confirmed, the last for record 4"), "%s",
                  P.out);
        cr_assert_eq(verify(sysarch), 0, "%s%s", P.out, P.err);
        cr_expect(strstr(P.out, "confirmed, the last for record 4"), "%s", P.out);
        char *plain[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        cr_assert_eq(aidp_test_run(&P, plain), 0);
        cr_expect(strstr(P.out, "rollback of the log and its anchor"), "%s", P.out);
}

Test(witness, rollback_of_log_and_anchor_is_named)
{
        run_true();
        save_log();
        run_true();
        roll_back();
        char *plain[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        cr_assert_eq(aidp_test_run(&P, plain), 0, "without a witness the rollback is invisible");
        expect_alarm("rollback", "first record affected: 3");
}

Test(witness, a_log_replaced_by_another_log_of_the_same_key_is_named)
{
        run_true();
        /* a second log of this host (same key), not known to the witnesses */
        substitute_another_log();
        char *plain[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        cr_assert_eq(aidp_test_run(&P, plain), 0, "the other log verifies on its own");
        expect_alarm("substituted log", "first record affected: 1");
}

Test(witness, an_emptied_log_without_anchor_is_named)
{
        char anchor[300];
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        run_true();
        cr_assert_eq(truncate(logp, 0), 0);
        cr_assert_eq(unlink(anchor), 0);
        char *plain[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        cr_assert_eq(aidp_test_run(&P, plain), 0, "an empty log without anchor looks new");
        expect_alarm("emptied log", "records 1-2 are missing");
        cr_assert_eq(unlink(logp), 0);
        expect_alarm("emptied log", "first record affected: 1");
}

Test(witness, a_record_replayed_from_another_log_is_refused)
{
        char other[300];
        TEST_SNPRINTF(other, "%s/other.jsonl", T);
        run_true();
        setenv("AIDP_LINEAGE_FILE", other, 1);
        run_true();
        setenv("AIDP_LINEAGE_FILE", logp, 1);
        /* the other log's record 2 in place of this log's record 2 */
        char *sh;
        cr_assert_gt(asprintf(&sh, "head -n1 %s > %s.new && sed -n 2p %s >> %s.new && mv %s.new %s",
                              logp, logp, other, logp, logp, logp),
                     0);
        char *argv[] = {"/bin/sh", "-c", sh, NULL};
        cr_assert_eq(aidp_test_run(&P, argv), 0, "%s", P.err);
        free(sh);
        cr_assert_eq(verify(wfile), AIDP_EXIT_FAILED);
        cr_expect(strstr(P.err, "line 2: the record belongs to log"), "%s", P.err);
}

Test(witness, a_witness_down_for_a_while_is_a_gap_not_an_alarm)
{
        char late[300], latedir[300];
        TEST_SNPRINTF(latedir, "%s/share", T);
        TEST_SNPRINTF(late, "%s/heads.jsonl", latedir);
        write_config(late); /* its directory (a share not mounted yet) is missing */
        run_true();
        cr_expect(strstr(P.err, "did not take record 2"), "the missed head is reported: %s", P.err);
        cr_assert_eq(mkdir(latedir, 0755), 0);
        run_true();
        cr_assert_eq(verify(late), 0, "%s%s", P.out, P.err);
        cr_expect(strstr(P.out, "no head for 2 record(s), first 1-2"), "%s", P.out);
        cr_assert_eq(verify(sysarch), 0, "%s%s", P.out, P.err);
        /* and the log itself says where the file witness has its gap */
        size_t n = 0;
        char *log = aidp_test_slurp(logp, &n);
        cr_assert_not_null(log);
        cr_expect(strstr(log, "\"aidp_witness\"") && strstr(log, "heads.jsonl 1: No such file"),
                  "the next record names the missed head");
        free(log);
}

/* ---- the OpenLineage export as a witness, and rotation ---------------------------------- */

/* `aidp lineage export` of the log into path (each event with its chain head). */
static void export_to(const char *path)
{
        char *sh;
        cr_assert_gt(asprintf(&sh, "%s/aidp lineage export --file %s --key %s > %s",
                              AIDP_BINARY_DIR, logp, keyp, path),
                     0);
        cr_assert_eq(aidp_test_sh("%s", sh), 0, "%s", sh);
        free(sh);
}

Test(witness, an_export_of_the_log_is_a_witness)
{
        char exp[300];
        TEST_SNPRINTF(exp, "%s/export.jsonl", T);
        run_true();
        save_log();
        run_true();
        export_to(exp);
        size_t n = 0;
        char *e = aidp_test_slurp(exp, &n);
        cr_assert_not_null(e);
        cr_expect(strstr(e, "\"aidp_chain_head\":{\"_producer\":") && strstr(e, "\"seq\":4,"),
                  "every exported event carries its head: %s", e);
        free(e);
        /* and stays an OpenLineage 2-0-2 RunEvent (the custom facet is a RunFacet:
         * _producer and _schemaURL) */
        cr_assert_eq(aidp_test_sh("python3 %s/tests/data/check_openlineage.py %s >/dev/null",
                                  AIDP_SOURCE_DIR, exp),
                     0, "the exported events do not validate");
        cr_assert_eq(verify(exp), 0, "%s%s", P.out, P.err);
        cr_expect(strstr(P.out, "4 head(s) of this log confirmed"), "%s", P.out);
        roll_back();
        cr_assert_eq(verify(exp), AIDP_EXIT_FAILED, "%s%s", P.out, P.err);
        cr_expect(strstr(P.err, "rollback") && strstr(P.err, "first record affected: 3"), "%s",
                  P.err);
}

/* The archive `aidp lineage rotate` made of the log (LOG.<32 hex>). */
static void archive_of_log(char *arch, size_t size)
{
        char *ls_cmd;
        cr_assert_gt(asprintf(&ls_cmd, "ls %s.???????????????????????????????? | head -1", logp),
                     0);
        FILE *f = popen(ls_cmd, "r");
        free(ls_cmd);
        cr_assert_not_null(f);
        cr_assert_not_null(fgets(arch, (int)size, f));
        pclose(f);
        arch[strcspn(arch, "\n")] = '\0';
}

static int rotate(void)
{
        char *rot[] = {
                AIDP_BINARY_DIR "/aidp", "lineage", "rotate", "--file", logp, "--key", keyp, NULL};
        return aidp_test_run(&P, rot);
}

Test(witness, rotation_links_the_new_log_and_verify_names_a_broken_link)
{
        run_true();
        cr_assert_eq(rotate(), 0, "rotate: %s%s", P.out, P.err);
        run_true();
        /* both witnesses saw the old log and the new one */
        cr_assert_eq(verify(wfile), 0, "%s%s", P.out, P.err);
        cr_expect(strstr(P.out, "follows 1 archived log(s)") &&
                          strstr(P.out, "2 record(s) more, every link and archive verified"),
                  "%s", P.out);
        char arch[400], archa[400], saved[400];
        archive_of_log(arch, sizeof arch);
        TEST_SNPRINTF(archa, "%s.anchor", arch);
        TEST_SNPRINTF(saved, "%s/saved", T);
        /* the archive gone */
        cr_assert_eq(rename(arch, saved), 0);
        cr_assert_eq(verify(wfile), AIDP_EXIT_FAILED, "%s%s", P.out, P.err);
        cr_expect(strstr(P.err, "broken rotation link") && strstr(P.err, "which is missing"), "%s",
                  P.err);
        /* the archive cut by its last record (and its anchor with it: no key needed
         * to drop the anchor, the link still names record 2) */
        cr_assert_eq(aidp_test_sh("head -n1 %s > %s && rm -f %s", saved, arch, archa), 0);
        cr_assert_eq(verify(wfile), AIDP_EXIT_FAILED, "%s%s", P.out, P.err);
        cr_expect(strstr(P.err, "broken rotation link"), "%s", P.err);
        char *nof[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp,
                       "--no-follow",           logp,      NULL};
        cr_assert_eq(aidp_test_run(&P, nof), 0, "--no-follow: %s%s", P.out, P.err);
        /* a log that is not rotated cannot be rotated into a second archive of the
         * same name, and an empty one has nothing to rotate */
        cr_assert_eq(unlink(logp), 0);
        char anchor[300];
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        cr_assert_eq(unlink(anchor), 0);
        cr_assert_eq(aidp_test_sh("touch %s", logp), 0);
        cr_assert_neq(rotate(), 0);
        cr_expect(strstr(P.err, "nothing to rotate"), "%s", P.err);
}

/* ---- the TPM NV counter witness, against an swtpm this test starts ----------------------- */

#define NV_INDEX "0x1500016"
static char tpmdir[300], tcti[400], tpmsrc[500];
static pid_t swtpm_pid;

/* swtpm on a unix socket in the test's directory (no network), with an NV
 * counter defined the way docs/lineage.md tells the admin to. */
static void start_swtpm(void)
{
        char pidf[400];
        TEST_SNPRINTF(pidf, "%s/swtpm.pid", tpmdir);
        int r = aidp_test_sh(
                "swtpm socket --tpm2 --tpmstate dir=%s --server type=unixio,path=%s/sock "
                "--ctrl type=unixio,path=%s/sock.ctrl --flags "
                "not-need-init,startup-clear --daemon --pid file=%s",
                tpmdir, tpmdir, tpmdir, pidf);
        cr_assert_eq(r, 0, "swtpm did not start");
        for (int i = 0; i < 100 && !swtpm_pid; i++) {
                size_t n = 0;
                char *s = aidp_test_slurp(pidf, &n);
                swtpm_pid = s ? (pid_t)atoi(s) : 0;
                free(s);
                struct timespec ts = {0, 20 * 1000 * 1000};
                if (!swtpm_pid)
                        nanosleep(&ts, NULL);
        }
        cr_assert_gt(swtpm_pid, 0, "no swtpm pid");
}

static void stop_swtpm(void)
{
        if (swtpm_pid > 0) {
                kill(swtpm_pid, SIGTERM);
                for (int i = 0; i < 100 && kill(swtpm_pid, 0) == 0; i++) {
                        struct timespec ts = {0, 20 * 1000 * 1000};
                        nanosleep(&ts, NULL);
                }
        }
        swtpm_pid = 0;
}

static void write_tpm_config(const char *tcti_conf, unsigned timeout_ms)
{
        FILE *f = fopen(cfgp, "we");
        cr_assert_not_null(f);
        fprintf(f,
                "apiVersion: aidp/v1\nkind: Witnesses\ntimeoutMs: %u\nwitnesses:\n"
                "  - tpm: {nvIndex: " NV_INDEX ", tcti: \"%s\"}\n",
                timeout_ms, tcti_conf);
        fclose(f);
        chmod(cfgp, 0644);
}

static void setup_tpm(void)
{
        setup();
        if (access("/usr/bin/swtpm", X_OK) != 0 || access("/usr/bin/tpm2_nvdefine", X_OK) != 0) {
                if (getenv("CI"))
                        cr_assert_fail("CI is set but swtpm/tpm2-tools are not installed "
                                       "(scripts/install-deps)");
                cr_skip_test("swtpm or tpm2-tools not installed");
        }
        TEST_SNPRINTF(tpmdir, "%s/tpm", T);
        cr_assert_eq(mkdir(tpmdir, 0700), 0);
        TEST_SNPRINTF(tcti, "swtpm:path=%s/sock", tpmdir);
        TEST_SNPRINTF(tpmsrc, "tpm:" NV_INDEX ":%s", tcti);
        start_swtpm();
        cr_assert_eq(aidp_test_sh("TPM2TOOLS_TCTI=%s tpm2_nvdefine -Q -C o -s 8 -a "
                                  "'authread|authwrite|nt=counter' " NV_INDEX,
                                  tcti),
                     0, "tpm2_nvdefine");
        write_tpm_config(tcti, 2000);
}

static void teardown_tpm(void)
{
        stop_swtpm();
        teardown();
}

TestSuite(witness_tpm, .init = setup_tpm, .fini = teardown_tpm, .timeout = 120);

static int verify_tpm(void)
{
        return verify(tpmsrc);
}

Test(witness_tpm, runs_bind_the_counter_and_verify_confirms_it)
{
        run_true();
        run_true();
        cr_assert_eq(verify_tpm(), 0, "%s%s", P.out, P.err);
        /* the counter's first increment sets it to 1; records 1-4 bind 2-5 */
        cr_expect(strstr(P.out, "the TPM counter (5) confirms the log up to record 4"), "%s",
                  P.out);
        size_t n = 0;
        char *log = aidp_test_slurp(logp, &n);
        cr_assert_not_null(log);
        cr_expect(strstr(log, "\"aidp_tpm\":{") && strstr(log, "\"nvIndex\":\"0x01500016\","
                                                               "\"counter\":5}"),
                  "the last record binds 5");
        free(log);
        /* the witness as configured */
        cr_assert_eq(verify("tpm"), 0, "%s%s", P.out, P.err);
}

Test(witness_tpm, a_local_rollback_is_named_without_network)
{
        run_true();
        save_log();
        run_true();
        roll_back();
        cr_assert_eq(verify_tpm(), AIDP_EXIT_FAILED, "%s%s", P.out, P.err);
        cr_expect(strstr(P.err, "rollback: the TPM counter stands at 5") &&
                          strstr(P.err, "first record affected: 3"),
                  "%s", P.err);
}

Test(witness_tpm, a_substituted_and_an_emptied_log_are_named)
{
        char anchor[300];
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        run_true();
        substitute_another_log();
        cr_assert_eq(verify_tpm(), AIDP_EXIT_FAILED, "%s%s", P.out, P.err);
        cr_expect(strstr(P.err, "substituted log") && strstr(P.err, "first record affected: 1"),
                  "%s", P.err);
        cr_assert_eq(truncate(logp, 0), 0);
        cr_assert_eq(unlink(anchor), 0);
        cr_assert_eq(verify_tpm(), AIDP_EXIT_FAILED, "%s%s", P.out, P.err);
        cr_expect(strstr(P.err, "emptied log"), "%s", P.err);
}

Test(witness_tpm, a_tpm_down_for_a_while_is_a_gap_and_a_hung_one_costs_the_timeout)
{
        run_true();
        stop_swtpm();
        run_true();
        cr_expect(strstr(P.err, "tpm 0x01500016 did not take record 3"), "%s", P.err);
        start_swtpm();
        run_true();
        cr_assert_eq(verify_tpm(), 0, "a gap is no alarm: %s%s", P.out, P.err);
        cr_expect(strstr(P.out, "confirms the log up to record 6"), "%s", P.out);
        /* A TPM that takes the connection and never answers: the run waits at most
         * timeoutMs per record (bind), then goes on. */
        char hung[300];
        TEST_SNPRINTF(hung, "%s/hung", T);
        cr_assert_eq(mkdir(hung, 0700), 0);
        int ls[2];
        for (int i = 0; i < 2; i++) {
                ls[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                TEST_SNPRINTF(sa.sun_path, "%s/sock%s", hung, i ? ".ctrl" : "");
                cr_assert_eq(bind(ls[i], (struct sockaddr *)&sa, sizeof sa), 0);
                cr_assert_eq(listen(ls[i], 16), 0);
        }
        char hung_tcti[400];
        TEST_SNPRINTF(hung_tcti, "swtpm:path=%s/sock", hung);
        write_tpm_config(hung_tcti, 300);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        run_true();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        cr_expect(strstr(P.err, "no answer within 300 ms"), "%s", P.err);
        cr_expect_lt(s, 5.0, "a hung TPM held the run for %.1f s", s);
        close(ls[0]);
        close(ls[1]);
}

Test(witness_tpm, the_archived_log_put_back_after_a_rotation_is_a_rollback)
{
        run_true();
        cr_assert_eq(rotate(), 0, "rotate: %s%s", P.out, P.err);
        run_true();
        cr_assert_eq(verify_tpm(), 0, "%s%s", P.out, P.err);
        cr_expect(strstr(P.out, "follows 1 archived log(s)"), "%s", P.out);
        /* the archive (whole, verifying on its own) in place of the new log */
        char arch[400], archa[400], anchor[300];
        archive_of_log(arch, sizeof arch);
        TEST_SNPRINTF(archa, "%s.anchor", arch);
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        cp(arch, logp);
        cp(archa, anchor);
        cr_assert_eq(verify_tpm(), AIDP_EXIT_FAILED, "%s%s", P.out, P.err);
        cr_expect(strstr(P.err, "rollback") && strstr(P.err, "first record affected: 3"), "%s",
                  P.err);
}
