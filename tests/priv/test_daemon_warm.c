/* aidp-supervisor serve, the rest of issue 16 (docs/protocol.md): a client
 * that disconnects while its sealed data is being decrypted into /data, the
 * warm policy reloaded when its files change (and failing closed on a bad
 * change), detached runs with their logs, and the per-uid connection limit.
 * With real unprivileged users and a daemon of the test's own. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "daemon_util.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "supervisor/daemon/proto.h"
#include "testusers.h"
#include "tests/sealed_util.h"

#define AIDP_RUN_BIN AIDP_BINARY_DIR "/aidp-run"
#define AIDP_BIN     AIDP_BINARY_DIR "/aidp"

static struct aidp_test_user A, B;
static struct aidp_proc P, Q;
static char *T;
static char sock[100], rundir[1024], logp[1024], keyp[1024], keydir[1024], policy[1024], data[1024];
static pid_t daemon_pid;
static bool ready;

/* The daemon, as the test build, with the test's key, keys and policy, and
 * the extra options given (NULL-terminated). The data keys' directory by the
 * daemon's own --key-dir, as a site would give it (the sealed runs below
 * find their key there, or fail). */
static void daemon_start(const char *const *extra)
{
        char k[1100], pd[1100];
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", keyp);
        TEST_SNPRINTF(pd, "AIDP_POLICY_DIR=%s", policy);
        const char *env[] = {k, pd, NULL};
        const char *a[32] = {"--lineage", logp, "--key-dir", keydir};
        size_t n = 4;
        for (size_t i = 0; extra && extra[i] && n < 31; i++)
                a[n++] = extra[i];
        a[n] = NULL;
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, a, env, true);
}

static void daemon_stop(void)
{
        if (daemon_pid <= 0)
                return;
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = 0;
        unlink(sock);
}

static void seal_big(void)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "warm-key", &err), 0, "%s", err.msg);
        char src[4200], f[4300];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        /* Large enough that decrypting it takes a while: the client is
         * killed while /data is being filled. */
        for (int i = 0; i < 4; i++) {
                TEST_SNPRINTF(f, "%s/part%d.bin", src, i);
                write_file(f, 48u * 1048576, 0644, (unsigned)i + 1);
        }
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, "bigdata");
        strcpy(p.meta.key_id, "warm-key");
        TEST_SNPRINTF(data, "%s/big.sealed", T);
        cr_assert_eq(seal_path(src, data, &p, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
        chmod(data, 0644);
}

/* The policy grants u1 (and u2) every run. */
static void grant(const char *u1, const char *u2)
{
        aidp_test_policy_allow(policy, u1, NULL, NULL);
        unsetenv("AIDP_POLICY_DIR");
        if (u2) {
                char f[1100];
                TEST_SNPRINTF(f, "%s/access.yaml", policy);
                FILE *fp = fopen(f, "a");
                cr_assert_not_null(fp);
                fprintf(fp, "  %s: {roles: [tests]}\n", u2);
                cr_assert_eq(fclose(fp), 0);
        }
}

static void setup(void)
{
        if (geteuid() != 0)
                return;
        T = tmpdir_new();
        chmod(T, 0755);
        if (aidp_test_user_create("w", &A) < 0 || aidp_test_user_create("x", &B) < 0)
                return;
        TEST_SNPRINTF(sock, "%s/aidp.sock", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(policy, "%s/policy", T);
        /* B may connect too (the socket's group is A's) */
        if (aidp_test_user_join(&B, A.gid) != 0)
                return;
        grant(A.name, B.name);
        ready = true;
}

static void teardown(void)
{
        daemon_stop();
        aidp_test_gc(rundir);
        aidp_test_users_cleanup();
        if (T)
                tmpdir_rm(T);
        T = NULL;
}

TestSuite(daemon_warm, .init = setup, .fini = teardown, .timeout = 240);

#define NEED(...)                                                                                  \
        do {                                                                                       \
                AIDP_REQUIRE_ROOT();                                                               \
                cr_assert(ready, "test users or files could not be made (%s)",                     \
                          aidp_test_users_why());                                                  \
                const char *extra_[] = {__VA_ARGS__ NULL};                                         \
                daemon_start(extra_);                                                              \
        } while (0)

/* argv[0] (aidp-run or aidp) as u, with --socket after argv[1] for aidp. */
static int as_user(struct aidp_proc *p, const struct aidp_test_user *u, bool wait,
                   const char *const *args)
{
        return aidp_test_client_as(p, u, sock, wait, args);
}

static char *wait_lineage(const char *run_id, const char *type, int timeout_ms)
{
        return aidp_test_wait_lineage(logp, run_id, type, timeout_ms);
}

static void expect_gone(const char *run_id)
{
        aidp_test_expect_run_gone(rundir, run_id);
}

/* The pid and run id of the one run in the daemon's registry. */
static pid_t registered(char *run_id, size_t size, int timeout_ms)
{
        char reg[4300];
        TEST_SNPRINTF(reg, "%s/.daemon", rundir);
        for (int t = 0; t < timeout_ms; t += 20) {
                DIR *d = opendir(reg);
                for (struct dirent *e; d && (e = readdir(d));) {
                        if (e->d_name[0] == '.')
                                continue;
                        char p[4400];
                        TEST_SNPRINTF(p, "%s/%s", reg, e->d_name);
                        size_t len = 0;
                        char *s = aidp_test_slurp(p, &len);
                        json_object *o = s ? json_tokener_parse(s) : NULL, *v;
                        free(s);
                        if (o && json_object_object_get_ex(o, "run_id", &v)) {
                                snprintf(run_id, size, "%s", json_object_get_string(v));
                                json_object_put(o);
                                closedir(d);
                                return (pid_t)atoi(e->d_name);
                        }
                        json_object_put(o);
                }
                if (d)
                        closedir(d);
                usleep(20000);
        }
        return 0;
}

/* Bytes a process has read (its sealed input, while it decrypts it). */
static long long rchar(pid_t pid)
{
        char p[64], buf[1024];
        TEST_SNPRINTF(p, "/proc/%d/io", (int)pid);
        FILE *f = fopen(p, "re");
        long long v = -1;
        while (f && fgets(buf, sizeof buf, f))
                if (sscanf(buf, "rchar: %lld", &v) == 1)
                        break;
        if (f)
                fclose(f);
        return v;
}

/* A client killed while its 192 MiB of sealed data is decrypted into /data:
 * the job never starts, /data is shredded, the end record is ABORT, nothing
 * of the run is left. */
Test(daemon_warm, client_disconnect_during_injection_shreds_and_aborts)
{
        NEED();
        seal_big();
        grant(A.name, NULL);
        const char *a[] = {AIDP_RUN_BIN, "-q",      "--no-cwd", "--data",       data,
                           "--",         "/bin/sh", "-c",       "echo JOB-RAN", NULL};
        as_user(&P, &A, false, a);
        char run_id[64] = "";
        pid_t worker = registered(run_id, sizeof run_id, 30000);
        cr_assert_gt(worker, 0, "no run registered");
        long long base = rchar(worker);
        bool injecting = false;
        for (int t = 0; t < 30000 && !injecting; t += 2) {
                long long now = rchar(worker);
                injecting = now >= 0 && base >= 0 && now - base > 8 * 1048576;
                if (!injecting)
                        usleep(2000);
        }
        if (!injecting) {
                kill(P.pid, SIGKILL);
                aidp_test_finish(&P);
                cr_assert_fail("the worker never read the sealed data (%lld -> %lld): %s", base,
                               rchar(worker), P.err);
        }
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        char *end = wait_lineage(run_id, "ABORT", 120000);
        cr_assert_not_null(end, "no ABORT record for run %s", run_id);
        cr_expect(strstr(end, "\"aidp_shred\"") && strstr(end, "\"verified\":true"), "%s", end);
        free(end);
        cr_expect(!strstr(P.out, "JOB-RAN"), "the job ran after its client was gone");
        expect_gone(run_id);
}

/* The warm policy follows its files: a change of access.yaml takes effect at
 * the next request, and a change that makes a file untrustworthy (group
 * writable) or unreadable fails the run instead of falling back to the
 * copy in memory. */
Test(daemon_warm, policy_is_reloaded_on_change_and_fails_closed)
{
        NEED();
        const char *a[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--", "/bin/echo", "ALLOWED", NULL};
        grant(A.name, NULL);
        cr_expect_eq(as_user(&P, &A, true, a), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "ALLOWED\n");
        /* the grant moves to B */
        grant(B.name, NULL);
        cr_expect_eq(as_user(&P, &A, true, a), AIDP_EXIT_DENIED, "%s", P.err);
        cr_expect_eq(as_user(&Q, &B, true, a), 0, "%s", Q.err);
        /* group-writable: refused, with the file named */
        char f[4300];
        TEST_SNPRINTF(f, "%s/access.yaml", policy);
        cr_assert_eq(chmod(f, 0664), 0);
        cr_expect_eq(as_user(&Q, &B, true, a), AIDP_EXIT_CONFIG, "%s", Q.err);
        cr_expect(strstr(Q.err, "access.yaml") != NULL, "%s", Q.err);
        /* a syntax error: refused, not the last good copy */
        cr_assert_eq(chmod(f, 0644), 0);
        cr_assert_eq(aidp_test_sh("printf 'kind: [' > %s", f), 0);
        cr_expect_eq(as_user(&Q, &B, true, a), AIDP_EXIT_CONFIG, "%s", Q.err);
        /* back to A's grant: allowed again */
        grant(A.name, NULL);
        cr_expect_eq(as_user(&P, &A, true, a), 0, "%s", P.err);
        cr_expect_eq(as_user(&Q, &B, true, a), AIDP_EXIT_DENIED, "%s", Q.err);
}

static char *log_path(const char *run_id)
{
        static char p[4400];
        TEST_SNPRINTF(p, "%s/.logs/%s.log", rundir, run_id);
        return p;
}

/* aidp-run --detach prints the run id and returns; the output goes to a log
 * only the caller can read (aidp logs; B is told there is none of theirs);
 * aidp ps marks the run; aidp stop ends it with shred and end record;
 * --follow ends with the run's status; past retention the log is shredded. */
Test(daemon_warm, detached_run_logs_and_stop)
{
        NEED();
        const char *a[] = {AIDP_RUN_BIN, "-q",      "--no-cwd", "--detach",
                           "--",         "/bin/sh", "-c",       "echo READY; sleep 100",
                           NULL};
        cr_assert_eq(as_user(&P, &A, true, a), 0, "%s", P.err);
        char run_id[64];
        TEST_SNPRINTF(run_id, "%.36s", P.out);
        cr_assert_eq(strlen(run_id), 36, "no run id: %s / %s", P.out, P.err);
        struct stat st;
        cr_assert_eq(stat(log_path(run_id), &st), 0, "%s", log_path(run_id));
        /* root's, its owner in an attribute only root reads */
        cr_expect_eq(st.st_uid, 0);
        cr_expect_eq(st.st_mode & 0777, 0600);
        char owner[16] = "";
        ssize_t on = getxattr(log_path(run_id), "trusted.aidp.owner", owner, sizeof owner - 1);
        owner[on > 0 ? on : 0] = '\0';
        cr_expect_eq(strtoul(owner, NULL, 10), A.uid, "owner attribute '%s'", owner);
        const char *ps[] = {AIDP_BIN, "ps", "--json", NULL};
        cr_assert_eq(as_user(&Q, &A, true, ps), 0, "%s", Q.err);
        cr_expect(strstr(Q.out, run_id) && strstr(Q.out, "\"detached\":true"), "%s", Q.out);
        const char *follow[] = {AIDP_BIN, "logs", "--follow", run_id, NULL};
        as_user(&P, &A, false, follow);
        cr_expect(aidp_test_wait_output(&P, "READY", 30000), "%s", P.err);
        const char *logs[] = {AIDP_BIN, "logs", run_id, NULL};
        cr_expect_eq(as_user(&Q, &B, true, logs), AIDP_EXIT_USAGE, "%s", Q.out);
        cr_expect(strstr(Q.err, "of yours") != NULL, "%s", Q.err);
        cr_expect(!strstr(Q.out, "READY"), "B read A's log");
        const char *stop[] = {AIDP_BIN, "stop", run_id, NULL};
        cr_assert_eq(as_user(&Q, &A, true, stop), 0, "%s", Q.err);
        int rc = aidp_test_finish(&P);
        cr_expect_eq(rc, 128 + SIGTERM, "logs --follow: %d %s", rc, P.err);
        char *end = wait_lineage(run_id, "ABORT", 60000);
        cr_assert_not_null(end, "no end record for the stopped run %s", run_id);
        cr_expect(strstr(end, "\"aidp_shred\"") != NULL, "%s", end);
        free(end);
        expect_gone(run_id);
        /* after the run: still readable, within retention */
        cr_expect_eq(as_user(&Q, &A, true, logs), 0, "%s", Q.err);
        cr_expect(strstr(Q.out, "READY") != NULL, "%s", Q.out);
        /* a daemon with a retention of 1s shreds it */
        daemon_stop();
        sleep(2);
        const char *ret[] = {"--log-retention", "1s", NULL};
        daemon_start(ret);
        for (int t = 0; t < 50 && stat(log_path(run_id), &st) == 0; t++)
                usleep(100000);
        cr_expect_neq(stat(log_path(run_id), &st), 0, "the log outlived its retention");
}

/* One user's flood (idle connections up to the limit) leaves room for
 * another user; the flooder is told why; detached runs do not count. */
Test(daemon_warm, one_users_flood_does_not_block_another)
{
        NEED("--max-clients-per-user", "3", "--request-timeout", "60s", );
        int pp[2];
        cr_assert_eq(pipe(pp), 0);
        pid_t holder = fork();
        cr_assert_geq(holder, 0);
        if (holder == 0) {
                close(pp[0]);
                aidp_test_become(&A);
                for (int i = 0; i < 3; i++)
                        (void)aidp_test_daemon_connect(sock); /* held until killed */
                if (write(pp[1], "x", 1) != 1)
                        _exit(97);
                pause();
                _exit(0);
        }
        close(pp[1]);
        char c;
        cr_assert_eq(read(pp[0], &c, 1), 1, "A's connections were not made");
        close(pp[0]);
        usleep(200000); /* the server has accepted them */
        const char *a[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--", "/bin/echo", "RAN", NULL};
        int rc = as_user(&P, &A, true, a);
        cr_expect_eq(rc, AIDP_EXIT_INTERNAL, "A's 4th connection: %d %s", rc, P.err);
        cr_expect(strstr(P.err, "max-clients-per-user") != NULL, "%s", P.err);
        cr_expect_eq(as_user(&Q, &B, true, a), 0, "B was blocked: %s", Q.err);
        cr_expect_str_eq(Q.out, "RAN\n");
        kill(holder, SIGKILL);
        waitpid(holder, NULL, 0);
        /* three detached runs of A, then a 4th run attached: room still */
        const char *d[] = {AIDP_RUN_BIN, "-q",         "--no-cwd", "--detach",
                           "--",         "/bin/sleep", "60",       NULL};
        char ids[3][64];
        for (int i = 0; i < 3; i++) {
                usleep(100000);
                cr_assert_eq(as_user(&P, &A, true, d), 0, "detached run %d: %s", i, P.err);
                TEST_SNPRINTF(ids[i], "%.36s", P.out);
        }
        cr_expect_eq(as_user(&P, &A, true, a), 0, "detached runs counted: %s", P.err);
        for (int i = 0; i < 3; i++) {
                const char *stop[] = {AIDP_BIN, "stop", ids[i], NULL};
                as_user(&Q, &A, true, stop);
        }
        for (int i = 0; i < 3; i++) {
                char *end = wait_lineage(ids[i], "ABORT", 60000);
                cr_expect_not_null(end, "no end record for %s", ids[i]);
                free(end);
        }
}

/* aidp-run --detach as u running `sh -c cmd`: its run id into id (36 chars),
 * or the client's status when it was refused. */
static int detach_as(const struct aidp_test_user *u, const char *cmd, char *id, size_t size)
{
        const char *a[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--detach", "--",
                           "/bin/sh",    "-c", cmd,        NULL};
        int rc = as_user(&P, u, true, a);
        snprintf(id, size, "%.36s", P.out);
        return rc;
}

/* A detached run's log holds at most --log-max of the newest output: the job
 * writes 1 MB and ends (it never blocks on the log), and the log keeps its
 * last bytes after a marker line saying how many were dropped, which `aidp
 * logs` reports too; a follower gets to the end. One user's logs together
 * hold at most --log-max-per-user: a detached run that could pass it is
 * refused with what to do, and `aidp logs --rm` (the caller's own, of a run
 * that ended) makes room. */
Test(daemon_warm, detached_logs_are_capped_per_run_and_per_user)
{
        NEED("--log-max", "64K", "--log-max-per-user", "160K", );
        const char *flood = "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo LAST-LINE";
        char r1[64], r2[64], r3[64];
        cr_assert_eq(detach_as(&A, flood, r1, sizeof r1), 0, "%s", P.err);
        /* A follower gets to the end (its status is the run's). */
        const char *f1[] = {AIDP_BIN, "logs", "--follow", r1, NULL};
        cr_expect_eq(as_user(&Q, &A, true, f1), 0, "logs --follow: %s", Q.err);
        /* The ended run's log: what it holds, in blocks, is under the cap. */
        struct stat st;
        cr_assert_eq(stat(log_path(r1), &st), 0);
        cr_expect_leq((long long)st.st_blocks * 512, 64 * 1024, "the log holds %lld bytes",
                      (long long)st.st_blocks * 512);
        /* aidp logs, into files (more than a captured pipe holds) */
        char outp[1200], errp[1200];
        TEST_SNPRINTF(outp, "%s/logs.out", T);
        TEST_SNPRINTF(errp, "%s/logs.err", T);
        cr_expect_eq(aidp_test_sh("setpriv --reuid=%u --regid=%u --init-groups -- %s logs "
                                  "--socket %s %s >%s 2>%s",
                                  (unsigned)A.uid, (unsigned)A.gid, AIDP_BIN, sock, r1, outp, errp),
                     0);
        size_t len = 0, elen = 0;
        char *out = aidp_test_slurp(outp, &len), *err = aidp_test_slurp(errp, &elen);
        cr_assert(out && err);
        cr_expect_leq(len, 64 * 1024, "aidp logs printed %zu bytes", len);
        cr_expect_geq(len, 48 * 1024, "aidp logs printed %zu bytes", len);
        long long first = -1, dropped = -1;
        cr_expect(sscanf(out, "[aidp: the first %lld bytes of the run's output were dropped",
                         &first) == 1,
                  "no marker at the head: %.100s", out);
        const char *nl = memchr(out, '\n', len);
        cr_assert(nl && len >= 11);
        /* the marker's count and the bytes after it are the whole output,
         * and those are its newest bytes */
        size_t kept = len - (size_t)(nl + 1 - out);
        cr_expect_eq(first + (long long)kept, 1000000 + 1 + 10, "%lld dropped + %zu kept", first,
                     kept);
        cr_expect(!strcmp(out + len - 11, "\nLAST-LINE\n"), "the newest is not kept");
        for (const char *c = nl + 1; c < out + len - 11; c++)
                if (*c != 'x') {
                        cr_expect_fail("byte %td of the kept output is %#x", c - out, *c);
                        break;
                }
        const char *d = strstr(err, "aidp logs: ");
        cr_expect(d && sscanf(d, "aidp logs: %lld bytes", &dropped) == 1, "%s", err);
        cr_expect_eq(dropped, first, "aidp logs says %lld dropped, the marker %lld", dropped,
                     first);
        free(out);
        free(err);
        /* a second one fits (2 x 64K of 160K), a third could not */
        cr_assert_eq(detach_as(&A, flood, r2, sizeof r2), 0, "%s", P.err);
        const char *f2[] = {AIDP_BIN, "logs", "--follow", r2, NULL};
        cr_expect_eq(as_user(&Q, &A, true, f2), 0, "%s", Q.err);
        cr_expect_eq(detach_as(&A, "echo THIRD", r3, sizeof r3), AIDP_EXIT_USAGE, "%s", P.out);
        cr_expect(strstr(P.err, "--log-max-per-user") && strstr(P.err, "aidp logs --rm"), "%s",
                  P.err);
        /* B cannot remove A's log; A cannot remove one whose run still goes */
        const char *rm_b[] = {AIDP_BIN, "logs", "--rm", r1, NULL};
        cr_expect_eq(as_user(&Q, &B, true, rm_b), AIDP_EXIT_USAGE, "%s", Q.out);
        cr_expect(strstr(Q.err, "of yours") != NULL, "%s", Q.err);
        cr_expect_eq(stat(log_path(r1), &st), 0, "B removed A's log");
        char r4[64];
        cr_assert_eq(detach_as(&B, "echo B-READY; sleep 100", r4, sizeof r4), 0, "%s", P.err);
        const char *rm_run[] = {AIDP_BIN, "logs", "--rm", r4, NULL};
        cr_expect_eq(as_user(&Q, &B, true, rm_run), AIDP_EXIT_USAGE, "%s", Q.out);
        cr_expect(strstr(Q.err, "is still going") != NULL, "%s", Q.err);
        const char *stop[] = {AIDP_BIN, "stop", r4, NULL};
        cr_expect_eq(as_user(&Q, &B, true, stop), 0, "%s", Q.err);
        /* A's own, ended: shredded now, and room made */
        const char *rm_a[] = {AIDP_BIN, "logs", "--rm", r1, NULL};
        cr_expect_eq(as_user(&Q, &A, true, rm_a), 0, "%s", Q.err);
        cr_expect_neq(stat(log_path(r1), &st), 0, "the log is still there");
        const char *logs[] = {AIDP_BIN, "logs", r1, NULL};
        cr_expect_eq(as_user(&Q, &A, true, logs), AIDP_EXIT_USAGE, "%s", Q.out);
        cr_expect_eq(detach_as(&A, "echo THIRD", r3, sizeof r3), 0, "%s", P.err);
        const char *f3[] = {AIDP_BIN, "logs", "--follow", r3, NULL};
        cr_expect_eq(as_user(&Q, &A, true, f3), 0, "%s", Q.err);
        cr_expect(strstr(Q.out, "THIRD") != NULL, "%s", Q.out);
        char *end = wait_lineage(r4, "ABORT", 60000);
        free(end);
}

/* Detached runs hold no connection, so the per-uid connection limit does not
 * bound them; what does is the per-user log budget, in which a run still
 * going counts as a full log. Before, an empty log counted nothing and one
 * user could start detached runs until every worker of the daemon was taken
 * (--max-clients) and nobody else was served. */
Test(daemon_warm, one_users_detached_runs_are_bounded)
{
        NEED("--log-max", "64K", "--log-max-per-user", "160K", );
        char r[3][64], rb[64];
        const char *nap = "echo UP; sleep 100";
        cr_assert_eq(detach_as(&A, nap, r[0], sizeof r[0]), 0, "%s", P.err);
        cr_assert_eq(detach_as(&A, nap, r[1], sizeof r[1]), 0, "%s", P.err);
        int third = detach_as(&A, nap, r[2], sizeof r[2]);
        bool refused = third == AIDP_EXIT_USAGE && strstr(P.err, "--log-max-per-user");
        /* B is served meanwhile */
        cr_expect_eq(detach_as(&B, nap, rb, sizeof rb), 0, "%s", P.err);
        const char *stop_b[] = {AIDP_BIN, "stop", rb, NULL};
        cr_expect_eq(as_user(&Q, &B, true, stop_b), 0, "%s", Q.err);
        for (int i = 0; i < (third == 0 ? 3 : 2); i++) {
                const char *stop[] = {AIDP_BIN, "stop", r[i], NULL};
                cr_expect_eq(as_user(&Q, &A, true, stop), 0, "%s", Q.err);
        }
        cr_expect(refused, "a third detached run of 64K logs fit in 160K: %d %s", third, P.err);
        /* once they ended, their logs count what they hold */
        for (int i = 0; i < 2; i++)
                free(wait_lineage(r[i], "ABORT", 60000));
        free(wait_lineage(rb, "ABORT", 60000));
        char r4[64];
        int rc = 0;
        for (int t = 0; t < 50; t++) {
                if ((rc = detach_as(&A, "echo FOURTH", r4, sizeof r4)) == 0)
                        break;
                usleep(100000);
        }
        cr_expect_eq(rc, 0, "%s", P.err);
        /* The fourth goes on after the request: the test's directory goes
         * only once it has ended (its end record, its journal). */
        if (rc == 0) {
                free(wait_lineage(r4, "COMPLETE", 60000));
                aidp_test_expect_run_gone(rundir, r4);
        }
}

static void signal_all(const struct aidp_test_kid *k, size_t n, int sig)
{
        for (size_t i = 0; i < n; i++)
                kill(k[i].pid, sig);
}

/* A connection an idle worker took itself and the server refused (past
 * --max-clients-per-user) is not a client served: until its worker ends it
 * must not take one of the --max-clients places from another user. The
 * refused workers are held stopped, so that "until its worker ends" lasts. */
Test(daemon_warm, refused_connections_do_not_take_the_places_of_others)
{
        NEED("--max-clients", "2", "--max-clients-per-user", "1", "--request-timeout", "60s", );
        int pp[2], go[2];
        cr_assert_eq(pipe(pp), 0);
        cr_assert_eq(pipe(go), 0);
        pid_t holder = fork();
        cr_assert_geq(holder, 0);
        if (holder == 0) {
                close(pp[0]);
                close(go[1]);
                aidp_test_become(&A);
                char c;
                /* one connection held (A's one place), then two more */
                (void)aidp_test_daemon_connect(sock);
                if (write(pp[1], "x", 1) != 1 || read(go[0], &c, 1) != 1)
                        _exit(97);
                (void)aidp_test_daemon_connect(sock);
                (void)aidp_test_daemon_connect(sock);
                if (write(pp[1], "y", 1) != 1)
                        _exit(97);
                pause();
                _exit(0);
        }
        close(pp[1]);
        close(go[0]);
        char c;
        cr_assert_eq(read(pp[0], &c, 1), 1, "A's first connection was not made");
        /* The pool refilled: two idle workers besides the one serving A. */
        struct aidp_test_kid kids[16];
        size_t n = 0;
        for (int t = 0; t < 300 && (n = aidp_test_daemon_children(daemon_pid, kids, 16)) < 3; t++)
                usleep(20000);
        cr_assert_geq(n, 3, "the daemon has %zu children", n);
        sleep(1); /* they are ready and accept themselves (pool.h) */
        /* The server stopped: the idle workers take A's two connections
         * and wait for its word; then they are stopped too. */
        kill(daemon_pid, SIGSTOP);
        cr_assert_eq(write(go[1], "g", 1), 1);
        cr_assert_eq(read(pp[0], &c, 1), 1, "A's further connections were not made");
        usleep(300000);
        n = aidp_test_daemon_children(daemon_pid, kids, 16);
        signal_all(kids, n, SIGSTOP);
        kill(daemon_pid, SIGCONT);
        usleep(300000); /* the server refused both (A is at its limit) */
        const char *a[] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--", "/bin/echo", "RAN", NULL};
        int rc = as_user(&Q, &B, true, a);
        signal_all(kids, n, SIGCONT);
        kill(holder, SIGKILL);
        waitpid(holder, NULL, 0);
        close(pp[0]);
        close(go[1]);
        cr_expect_eq(rc, 0, "B was refused while A's refused workers lived: %d %s", rc, Q.err);
        cr_expect_str_eq(Q.out, "RAN\n");
}
