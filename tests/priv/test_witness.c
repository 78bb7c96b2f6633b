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
        char old[300], olda[300], anchor[300];
        TEST_SNPRINTF(old, "%s/old.jsonl", T);
        TEST_SNPRINTF(olda, "%s/old.anchor", T);
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        run_true();
        cp(logp, old);
        cp(anchor, olda);
        run_true();
        cp(old, logp);
        cp(olda, anchor);
        char *plain[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        cr_assert_eq(aidp_test_run(&P, plain), 0, "without a witness the rollback is invisible");
        expect_alarm("rollback", "first record affected: 3");
}

Test(witness, a_log_replaced_by_another_log_of_the_same_key_is_named)
{
        char other[300], anchor[300], oanchor[300];
        TEST_SNPRINTF(other, "%s/other.jsonl", T);
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        TEST_SNPRINTF(oanchor, "%s.anchor", other);
        run_true();
        /* a second log of this host (same key), not known to the witnesses */
        setenv("AIDP_WITNESS_CONFIG", "/nonexistent/aidp-witness-none", 1);
        setenv("AIDP_LINEAGE_FILE", other, 1);
        run_true();
        setenv("AIDP_LINEAGE_FILE", logp, 1);
        cp(other, logp);
        cp(oanchor, anchor);
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
