#define _GNU_SOURCE
/* A run refused for its sealed inputs once the caller passed every check
 * before them (exit 117: a tampered payload or header, another key of the
 * same id, a truncated file) is an audited event, as a policy denial is: one
 * OTHER record with the caller, what of each dataset was authenticated (and
 * nothing that was not), the reason and the status, in a log that still
 * verifies. Under aidp-supervisor run directly and through the daemon. */
#include <fcntl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/exitcodes.h"
#include "daemon_util.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"
#include "tests/sealed_util.h"

#define AIDP_RUN_BIN AIDP_BINARY_DIR "/aidp-run"

static char *T;
static char keydir[RUN_PATH_MAX], rundir[RUN_PATH_MAX], logp[RUN_PATH_MAX], keyp[RUN_PATH_MAX];
static char good[4200], policy[4200];
static struct aidp_proc P, Q;
/* the daemon test's own daemon and directory (its teardown's) */
static char *D, D_sock[100], D_run[1024];
static pid_t D_pid;
static bool D_ready;

/* The dataset "patients" (eu, phi), sealed under run-key into good; the
 * policy grants nobody runs on it. */
static void setup(void)
{
        T = run_dirs_new(keydir, rundir, logp, keyp);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
        char src[4200], f[4300];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/records.txt", src);
        write_file(f, 3000, 0644, 7);
        /* a file name that does not hold the dataset's name: a record must
         * not name the dataset unless its header was authenticated */
        TEST_SNPRINTF(good, "%s/in-1.sealed", T);
        seal_tagged(src, good, keydir, "run-key", "patients", AIDP_CLASS_CONFIDENTIAL, "eu", "phi");
        chmod(good, 0644);
        TEST_SNPRINTF(policy, "%s/policy", T);
        aidp_test_policy_allow(policy, "nobody", (const char *const[]){"eu", NULL},
                               (const char *const[]){"phi", NULL});
}

static void teardown(void)
{
        if (D)
                aidp_test_daemon_fixture_end(&D_pid, D_sock, D_run, &D);
        aidp_test_policy_done(rundir);
        tmpdir_rm(T);
}

TestSuite(refusal_lineage, .init = setup, .fini = teardown, .timeout = 120);

/* A copy of good at T/name, with the byte at off (from the end when
 * negative) xor-ed with 0xff, or the file cut by -cut bytes (cut < 0). */
static void copy_modified(const char *name, char *out, size_t size, long off, long cut)
{
        cr_assert_lt((size_t)snprintf(out, size, "%s/%s", T, name), size);
        size_t len = 0;
        char *buf = aidp_test_slurp(good, &len);
        cr_assert_not_null(buf);
        if (cut < 0) {
                len -= (size_t)-cut;
        } else {
                size_t at = off < 0 ? len - (size_t)-off : (size_t)off;
                cr_assert_lt(at, len);
                buf[at] ^= (char)0xff;
        }
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, buf, len), (ssize_t)len);
        cr_assert_eq(close(fd), 0);
        free(buf);
}

static int run(const char *user, const char *run_id, const char *kd, const char *data)
{
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        (char *)user,
                        "--no-cwd",
                        "-q",
                        "--run-id",
                        (char *)run_id,
                        "--run-dir",
                        rundir,
                        "--lineage",
                        logp,
                        "--key-dir",
                        (char *)kd,
                        "--data",
                        (char *)data,
                        "--",
                        "/bin/sh",
                        "-c",
                        "echo JOB-RAN",
                        NULL};
        return aidp_test_run(&P, argv);
}

/* The log verifies with the CLI too, as an auditor checks it. */
static void expect_log_verifies(void)
{
        char *v[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        cr_expect_eq(aidp_test_run(&Q, v), 0, "aidp lineage verify: %s%s", Q.out, Q.err);
}

/* Nothing of the refused run exists or ran. */
static void expect_nothing_started(const char *run_id)
{
        cr_expect_null(strstr(P.out, "JOB-RAN"), "the job ran: %s", P.out);
        char j[4400];
        TEST_SNPRINTF(j, "%s/%s", rundir, run_id);
        cr_expect_neq(access(j, F_OK), 0, "a journal exists for the refused run");
}

/* The only record of the log at lp (key kp): the refusal of run_id (NULL:
 * any) by user with status 117, its reason holding want, and the --data's
 * header state. */
static json_object *expect_refusal_in(const char *lp, const char *kp, const char *user,
                                      const char *run_id, const char *want, const char *header)
{
        json_object *ev[4] = {0};
        size_t n = aidp_test_lineage_records(lp, kp, ev, 4);
        cr_assert_eq(n, 1, "one record (the refusal), got %zu", n);
        json_object *e = ev[0];
        const char *js = json_object_to_json_string(e);
        cr_expect_str_eq(aidp_test_json_str(e, "eventType"), "OTHER", "%s", js);
        if (run_id)
                cr_expect_str_eq(aidp_test_json_str(e, "run.facets.aidp_run.runName"), run_id);
        cr_expect_str_eq(aidp_test_json_str(e, "run.facets.aidp_run.outcome"),
                         "refused for its sealed inputs", "%s", js);
        cr_expect_str_eq(aidp_test_json_str(e, "run.facets.aidp_caller.user"), user, "%s", js);
        json_object *st = aidp_test_json_at(e, "run.facets.aidp_exit.status");
        cr_expect_eq(st ? json_object_get_int(st) : -1, AIDP_EXIT_DATA, "%s", js);
        const char *reason = aidp_test_json_str(e, "run.facets.aidp_exit.reason");
        cr_expect(strstr(reason, want), "reason '%s' lacks '%s'", reason, want);
        cr_expect_str_eq(aidp_test_json_str(e, "run.facets.aidp_refusal.reason"), reason);
        /* what the user was told is what the auditor reads */
        cr_expect(strstr(P.err, reason), "told: %s, recorded: %s", P.err, reason);
        json_object *ds = aidp_test_json_at(e, "run.facets.aidp_refusal.datasets");
        cr_assert_not_null(ds, "%s", js);
        cr_assert_eq(json_object_array_length(ds), 1, "%s", js);
        json_object *d = json_object_array_get_idx(ds, 0);
        cr_expect_str_eq(aidp_test_json_str(d, "header"), header, "%s", js);
        cr_expect(strstr(aidp_test_json_str(d, "path"), ".sealed") != NULL, "%s", js);
        /* it read nothing: no inputs */
        json_object *ins = aidp_test_json_at(e, "inputs");
        cr_expect(!ins || json_object_array_length(ins) == 0, "%s", js);
        return e;
}

static json_object *expect_refusal(const char *run_id, const char *want, const char *header)
{
        return expect_refusal_in(logp, keyp, "nobody", run_id, want, header);
}

/* The bug a new user found: a payload byte flipped is refused (117) while
 * the manifest is decrypted before START, and the auditor saw nothing. */
Test(refusal_lineage, a_tampered_payload_is_refused_and_recorded)
{
        AIDP_REQUIRE_ROOT();
        char bad[4200];
        copy_modified("payload.sealed", bad, sizeof bad, -20, 0);
        /* the SIEM's copy: a datagram socket standing for syslog */
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        TEST_SNPRINTF(sa.sun_path, "%s/syslog.sock", T);
        int sl = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(sl, 0);
        cr_assert_eq(bind(sl, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
        setenv("AIDP_SYSLOG_SOCKET", sa.sun_path, 1);
        int st = run("65534", "refusal-payload", keydir, bad);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "failed authentication"), "%s", P.err);
        /* sent before the supervisor exited: queued on the socket now */
        char dg[4096];
        ssize_t dn = recv(sl, dg, sizeof dg - 1, MSG_DONTWAIT);
        close(sl);
        cr_assert_gt(dn, 0, "no syslog datagram: %s", strerror(errno));
        dg[dn] = '\0';
        cr_expect(strstr(dg, " DENIED [") && strstr(dg, "eventType=\"OTHER\"") &&
                          strstr(dg, "failed authentication"),
                  "%s", dg);
        expect_nothing_started("refusal-payload");
        json_object *e =
                expect_refusal("refusal-payload", "failed authentication", "authenticated");
        const char *js = json_object_to_json_string(e);
        /* the header authenticated: the dataset with its tags, and the
         * policy's decision on them (it allowed the run) */
        json_object *d = aidp_test_json_at(e, "run.facets.aidp_refusal.datasets");
        cr_expect_str_eq(aidp_test_json_str(json_object_array_get_idx(d, 0), "name"), "patients");
        json_object *req = aidp_test_json_at(e, "run.facets.aidp_requested.inputs");
        cr_assert(req && json_object_array_length(req) == 1, "%s", js);
        json_object *r0 = json_object_array_get_idx(req, 0);
        cr_expect_str_eq(aidp_test_json_str(r0, "name"), "patients", "%s", js);
        cr_expect_str_eq(aidp_test_json_str(r0, "facets.aidp_classification.residency"), "eu");
        cr_expect_eq(strlen(aidp_test_json_str(r0, "facets.aidp_digest.value")), 64, "%s", js);
        cr_expect_str_eq(aidp_test_json_str(e, "run.facets.aidp_policy.trail.decision"), "allow",
                         "%s", js);
        json_object_put(e);
        expect_log_verifies();
        /* the same data untouched still runs, after the refusal in the log */
        st = run("65534", "refusal-good", keydir, good);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        cr_expect_eq(aidp_test_count_events(logp, "OTHER"), 1);
        cr_expect_eq(aidp_test_count_events(logp, "COMPLETE"), 1);
        expect_log_verifies();
}

/* A header changed so that it no longer parses: refused before it could be
 * authenticated, said so, and recorded without anything it claims. */
Test(refusal_lineage, a_tampered_header_is_refused_said_so_and_recorded)
{
        AIDP_REQUIRE_ROOT();
        char bad[4200];
        /* the first field's type, right after the 16-byte prefix */
        copy_modified("header.sealed", bad, sizeof bad, AIDP_SEALED_PREFIX_LEN, 0);
        int st = run("65534", "refusal-header", keydir, bad);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "header malformed or modified (not authenticated): header offset "
                                "16: unknown field"),
                  "%s", P.err);
        expect_nothing_started("refusal-header");
        json_object *e =
                expect_refusal("refusal-header", "header malformed or modified", "refused");
        const char *js = json_object_to_json_string(e);
        /* nothing of a header that did not authenticate */
        cr_expect_null(strstr(js, "patients"), "%s", js);
        json_object *req = aidp_test_json_at(e, "run.facets.aidp_requested.inputs");
        cr_expect(!req || json_object_array_length(req) == 0, "%s", js);
        cr_expect_null(aidp_test_json_at(e, "run.facets.aidp_policy"), "%s", js);
        json_object_put(e);
        expect_log_verifies();
}

/* Another key of the same id, and a truncated file: each refused and
 * recorded, with a verifying log. */
Test(refusal_lineage, a_wrong_key_and_a_truncated_file_are_recorded)
{
        AIDP_REQUIRE_ROOT();
        char other[4200];
        TEST_SNPRINTF(other, "%s/other-keys", T);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(other, "run-key", &err), 0, "%s", err.msg);
        int st = run("65534", "refusal-key", other, good);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        expect_nothing_started("refusal-key");
        json_object *e = expect_refusal("refusal-key", "key 'run-key'", "refused");
        cr_expect_null(strstr(json_object_to_json_string(e), "\"patients\""));
        json_object_put(e);
        expect_log_verifies();

        cr_assert_eq(unlink(logp), 0);
        char anchor[4300];
        TEST_SNPRINTF(anchor, "%s.anchor", logp);
        unlink(anchor);
        char cut[4200];
        copy_modified("cut.sealed", cut, sizeof cut, 0, -100);
        st = run("65534", "refusal-cut", keydir, cut);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        e = expect_refusal("refusal-cut", "truncated", "refused");
        json_object_put(e);
        expect_log_verifies();
}

/* A refusal that cannot be recorded keeps its status, and says so. */
Test(refusal_lineage, a_refusal_that_cannot_be_recorded_keeps_117_and_says_so)
{
        AIDP_REQUIRE_ROOT();
        char bad[4200];
        copy_modified("unrecorded.sealed", bad, sizeof bad, -20, 0);
        /* a log whose directory is a regular file: it cannot be created */
        TEST_SNPRINTF(logp, "%s/l.jsonl", good);
        int st = run("65534", "refusal-unrecorded", keydir, bad);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "failed authentication (modified, reordered, truncated or from "
                                "another dataset) (and the refusal could not be recorded in "
                                "lineage: recording the refusal of run refusal-unrecorded: "),
                  "%s", P.err);
}

/* A policy denial is still recorded as a denial, not as a refusal. */
Test(refusal_lineage, a_policy_denial_is_recorded_as_before)
{
        AIDP_REQUIRE_ROOT();
        if (!getpwnam("daemon"))
                cr_skip_test("no 'daemon' account on this system");
        int st = run("daemon", "refusal-denied", keydir, good);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d: %s", st, P.err);
        json_object *ev[4] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 1, "one record (the denial), got %zu", n);
        const char *js = json_object_to_json_string(ev[0]);
        cr_expect_str_eq(aidp_test_json_str(ev[0], "eventType"), "OTHER");
        cr_expect_str_eq(aidp_test_json_str(ev[0], "run.facets.aidp_run.outcome"),
                         "denied by policy", "%s", js);
        cr_expect_null(aidp_test_json_at(ev[0], "run.facets.aidp_refusal"), "%s", js);
        json_object *s = aidp_test_json_at(ev[0], "run.facets.aidp_exit.status");
        cr_expect_eq(s ? json_object_get_int(s) : -1, AIDP_EXIT_DENIED, "%s", js);
        json_object_put(ev[0]);
        expect_log_verifies();
}

/* Through the daemon (aidp-run): the same refusal, recorded in the daemon's
 * log with the connecting user as the caller and the path as they named it. */
Test(refusal_lineage, through_the_daemon_a_tampered_payload_is_recorded)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_test_user a;
        char dsock[100], drun[1024], dlog[1024], dkey[1024], dpol[1024];
        D_ready = aidp_test_daemon_fixture(&D, "r", &a, dsock, drun, dlog, dkey, dpol);
        cr_assert(D_ready, "test user or files could not be made (%s)", aidp_test_users_why());
        snprintf(D_sock, sizeof D_sock, "%s", dsock);
        snprintf(D_run, sizeof D_run, "%s", drun);
        aidp_test_policy_allow(dpol, a.name, (const char *const[]){"eu", NULL},
                               (const char *const[]){"phi", NULL});
        unsetenv("AIDP_POLICY_DIR");
        char k[1100], kd[4200], pd[1100];
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", dkey);
        TEST_SNPRINTF(kd, "AIDP_KEY_DIR=%s", keydir);
        TEST_SNPRINTF(pd, "AIDP_POLICY_DIR=%s", dpol);
        const char *env[] = {k, kd, pd, NULL};
        const char *args[] = {"--lineage", dlog, NULL};
        D_pid = aidp_test_daemon_spawn(dsock, a.gid, drun, args, env, true);
        cr_assert_gt(D_pid, 0);
        char bad[4200];
        copy_modified("daemon.sealed", bad, sizeof bad, -20, 0);
        const char *run[] = {AIDP_RUN_BIN, "-q",      "--no-cwd", "--data",       bad,
                             "--",         "/bin/sh", "-c",       "echo JOB-RAN", NULL};
        int st = aidp_test_client_as(&P, &a, dsock, true, run);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "failed authentication"), "%s", P.err);
        cr_expect_null(strstr(P.out, "JOB-RAN"), "%s", P.out);
        json_object *e = expect_refusal_in(dlog, dkey, a.name, NULL, "failed authentication",
                                           "authenticated");
        json_object *d = aidp_test_json_at(e, "run.facets.aidp_refusal.datasets");
        cr_expect_str_eq(aidp_test_json_str(json_object_array_get_idx(d, 0), "path"), bad);
        cr_expect_str_eq(aidp_test_json_str(json_object_array_get_idx(d, 0), "name"), "patients");
        json_object_put(e);
        char *v[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", dkey, dlog, NULL};
        cr_expect_eq(aidp_test_run(&Q, v), 0, "aidp lineage verify: %s%s", Q.out, Q.err);
}
