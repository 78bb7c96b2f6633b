/* aidp-supervisor serve and aidp-run (issue 16, docs/protocol.md), with real
 * unprivileged users: the caller's identity comes from the kernel, files are
 * opened by the client and passed as fds, the daemon opens no path a client
 * names, signals and disconnects reach the run, bad requests get an error
 * without holding up anyone else, and a crashed run is recovered by gc. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "daemon_util.h"
#include "lineage_util.h"
#include "priv.h"
#include "runner.h"
#include "supervisor/daemon/proto.h"
#include "testusers.h"
#include "tests/tpath.h"

#define AIDP_RUN_BIN AIDP_BINARY_DIR "/aidp-run"

static struct aidp_test_user A;
static struct aidp_proc P;
static char T[64], sock[128], rundir[128], logp[128], keyp[128], secret_dir[128], secret[160],
        secret2[160];
static pid_t daemon_pid;
static bool ready;

static void daemon_start(void)
{
        char k[200];
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", keyp);
        const char *env[] = {k, NULL};
        const char *a[] = {"--lineage", logp, "--request-timeout", "2", NULL};
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, a, env, true);
}

static void daemon_stop(int sig)
{
        if (daemon_pid <= 0)
                return;
        kill(daemon_pid, sig);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = 0;
}

static void setup(void)
{
        if (geteuid() != 0)
                return;
        TEST_SNPRINTF(T, "/tmp/aidpd%d", (int)getpid());
        if (mkdir(T, 0755) < 0 || aidp_test_user_create("d", &A) < 0)
                return;
        TEST_SNPRINTF(sock, "%s/aidp.sock", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        /* root's secret, in a directory only root may enter */
        TEST_SNPRINTF(secret_dir, "%s/rootonly", T);
        TEST_SNPRINTF(secret, "%s/secret", secret_dir);
        mkdir(secret_dir, 0700);
        int fd = open(secret, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, "ROOT-SECRET\n", 12) != 12)
                return;
        close(fd);
        /* and one in a directory anyone may search: A can reach it with O_PATH */
        TEST_SNPRINTF(secret2, "%s/secret2", T);
        fd = open(secret2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, "ROOT-SECRET\n", 12) != 12)
                return;
        close(fd);
        ready = true;
}

static void teardown(void)
{
        daemon_stop(SIGTERM);
        aidp_test_gc(rundir);
        aidp_test_users_cleanup();
        if (T[0])
                aidp_test_rm_tree(T);
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 180);

#define NEED()                                                                                     \
        do {                                                                                       \
                AIDP_REQUIRE_ROOT();                                                               \
                cr_assert(ready, "test user or files could not be made (%s)",                      \
                          aidp_test_users_why());                                                  \
                if (!daemon_pid)                                                                   \
                        daemon_start();                                                            \
        } while (0)

/* aidp-run ARGS... as A (setpriv: A's uid, gid and groups). */
static int run_as_a(const char *const *args)
{
        char *a[64] = {AIDP_RUN_BIN, "--socket", sock};
        size_t n = 3;
        for (size_t i = 0; args[i] && n < 63; i++)
                a[n++] = (char *)args[i];
        a[n] = NULL;
        return aidp_test_run_as(&P, &A, false, a);
}

static void become_a(void)
{
        aidp_test_become(&A);
}

static int connect_as_a(void)
{
        return aidp_test_daemon_connect(sock);
}

/* The daemon's answer to raw bytes sent by A: "TYPE STATUS MESSAGE" of the
 * first frame, or "EOF"/"ERR ...". With pause_ms, the bytes are sent and the
 * connection is held that long before reading. */
static void raw_as_a(const void *bytes, size_t len, int pause_ms, char *out, size_t size)
{
        int pp[2];
        cr_assert_eq(pipe(pp), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(pp[0]);
                become_a();
                int s = connect_as_a();
                if (len && write(s, bytes, len) != (ssize_t)len)
                        _exit(97);
                if (pause_ms)
                        usleep((useconds_t)pause_ms * 1000);
                json_object *m = NULL;
                int fds[4];
                size_t n = 0;
                aidp_error err = {0};
                char line[2200];
                int r = aidp_proto_recv(s, 10000, &m, fds, 4, &n, &err);
                json_object *t = NULL, *st = NULL, *msg = NULL;
                if (r > 0) {
                        json_object_object_get_ex(m, "type", &t);
                        json_object_object_get_ex(m, "status", &st);
                        json_object_object_get_ex(m, "message", &msg);
                        snprintf(line, sizeof line, "%s %d %s", json_object_get_string(t),
                                 json_object_get_int(st), msg ? json_object_get_string(msg) : "");
                } else {
                        snprintf(line, sizeof line, "%s %.2000s", r == 0 ? "EOF" : "ERR", err.msg);
                }
                _exit(write(pp[1], line, strlen(line)) > 0 ? 0 : 96);
        }
        close(pp[1]);
        ssize_t n = read(pp[0], out, size - 1);
        out[n > 0 ? n : 0] = '\0';
        close(pp[0]);
        waitpid(pid, NULL, 0);
}

static void raw_json_as_a(const char *json, char *out, size_t size)
{
        char buf[4096];
        size_t l = strlen(json);
        buf[0] = (char)(l >> 24), buf[1] = (char)(l >> 16), buf[2] = (char)(l >> 8),
        buf[3] = (char)l;
        memcpy(buf + 4, json, l);
        raw_as_a(buf, l + 4, 0, out, size);
}

/* The caller is who the kernel says, whatever the client's environment
 * claims; an identity in the request is refused. */
Test(daemon, identity_comes_from_peer_credentials)
{
        NEED();
        char want[64];
        TEST_SNPRINTF(want, "%u\n%u\n", (unsigned)A.uid, (unsigned)A.gid);
        const char *a1[] = {"-q", "--no-cwd", "--", "/bin/sh", "-c", "id -u; id -g", NULL};
        cr_expect_eq(run_as_a(a1), 0, "%s", P.err);
        cr_expect_str_eq(P.out, want, "%s", P.err);
        /* A client's SUDO_UID/SLURM_JOB_UID are only its environment. */
        const char *a2[] = {"-q",      "--no-cwd",     "--env",        "SUDO_UID=0",
                            "--",      "/usr/bin/env", "SUDO_UID=0",   "SLURM_JOB_UID=0",
                            "/bin/sh", "-c",           "id -u; id -g", NULL};
        cr_expect_eq(run_as_a(a2), 0, "%s", P.err);
        cr_expect_str_eq(P.out, want, "%s", P.err);
        const char *a3[] = {"-q", "--no-cwd", "--user", "0", "--", "/bin/echo", "JOB-RAN", NULL};
        cr_expect_eq(run_as_a(a3), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "--user is admin-only") != NULL, "%s", P.err);
        cr_expect(!strstr(P.out, "JOB-RAN"));
        const char *a4[] = {"-q", "--no-cwd", "--run-id", "mine", "--", "/bin/true", NULL};
        cr_expect_eq(run_as_a(a4), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "--run-id is admin-only") != NULL, "%s", P.err);
        /* And in a hand-made request, where the client could write anything. */
        char out[1200];
        raw_json_as_a("{\"v\":1,\"op\":\"run\",\"args\":[\"--user\",\"root\",\"--no-cwd\"],"
                      "\"argv\":[\"/bin/true\"],\"fds\":{}}",
                      out, sizeof out);
        cr_expect(strstr(out, "error 120") == out, "%s", out);
}

/* stdout, --summary and the working directory are the client's own files. */
Test(daemon, output_lands_in_the_clients_files_owned_by_the_client)
{
        NEED();
        char dir[256], outf[300], sum[300], cmd[1200];
        TEST_SNPRINTF(dir, "%s/work", A.home);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_mkdir, dir, NULL), 0);
        TEST_SNPRINTF(outf, "%s/job.out", dir);
        TEST_SNPRINTF(sum, "%s/summary.json", dir);
        TEST_SNPRINTF(cmd,
                      "cd %s && %s --socket %s -q --summary %s -- /bin/sh -c 'echo OUT-LINE; pwd; "
                      "ls' > %s",
                      dir, AIDP_RUN_BIN, sock, sum, outf);
        char *a[] = {"/bin/sh", "-c", cmd, NULL};
        cr_expect_eq(aidp_test_run_as(&P, &A, false, a), 0, "%s", P.err);
        size_t len = 0;
        char *text = aidp_test_slurp(outf, &len);
        cr_assert_not_null(text);
        char want[600];
        TEST_SNPRINTF(want, "OUT-LINE\n%s\njob.out\nsummary.json\n", dir);
        cr_expect_str_eq(text, want);
        free(text);
        struct stat st;
        cr_assert_eq(stat(outf, &st), 0);
        cr_expect(st.st_uid == A.uid && st.st_gid == A.gid, "job.out owned by %u", st.st_uid);
        cr_assert_eq(stat(sum, &st), 0);
        cr_expect(st.st_uid == A.uid, "the summary is owned by %u", st.st_uid);
        char *s = aidp_test_slurp(sum, &len);
        cr_assert_not_null(s);
        cr_expect(strstr(s, "\"exit_status\":0") != NULL, "%s", s);
        free(s);
}

static int inotify_opens(const char *path)
{
        int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        cr_assert_geq(in, 0);
        cr_assert_geq(inotify_add_watch(in, path, IN_OPEN | IN_ACCESS), 0);
        cr_assert_geq(inotify_add_watch(in, secret_dir, IN_OPEN | IN_ACCESS), 0);
        cr_assert_geq(inotify_add_watch(in, secret2, IN_OPEN | IN_ACCESS), 0);
        return in;
}

static bool was_opened(int in)
{
        char buf[4096];
        bool any = read(in, buf, sizeof buf) > 0;
        close(in);
        return any;
}

/* Frames until "exit" or "error": "TYPE STATUS MESSAGE" into line. */
static void answer(int s, char *line, size_t size)
{
        for (;;) {
                json_object *m = NULL, *t = NULL, *st = NULL, *msg = NULL;
                int fds[4];
                size_t n = 0;
                aidp_error err = {0};
                int r = aidp_proto_recv(s, 60000, &m, fds, 4, &n, &err);
                if (r <= 0) {
                        snprintf(line, size, "%s %.1000s", r == 0 ? "EOF" : "ERR", err.msg);
                        return;
                }
                json_object_object_get_ex(m, "type", &t);
                json_object_object_get_ex(m, "status", &st);
                json_object_object_get_ex(m, "message", &msg);
                snprintf(line, size, "%s %d %.1000s", json_object_get_string(t),
                         json_object_get_int(st), msg ? json_object_get_string(msg) : "");
                bool end = !strcmp(json_object_get_string(t), "exit") ||
                           !strcmp(json_object_get_string(t), "error");
                json_object_put(m);
                if (end)
                        return;
        }
}

/* A hand-made run request from A: fd 0 is the test's, 1 and 2 a pipe (the
 * job's output and the run's messages, into job_out), 3 `extra` opened by A with `flags`.
 * The daemon's last answer goes into res. */
static void request_as_a(const char *json, const char *extra, int flags, char *res, size_t rsize,
                         char *job_out, size_t osize)
{
        int rp[2], op[2];
        cr_assert_eq(pipe(rp), 0);
        cr_assert_eq(pipe(op), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(rp[0]);
                close(op[0]);
                become_a();
                int s = connect_as_a();
                int f = open(extra, flags | O_CLOEXEC);
                int fds[4] = {0, op[1], op[1], f};
                json_object *m = json_tokener_parse(json);
                char line[1200] = "cannot send";
                if (m && f >= 0 && aidp_proto_send(s, m, fds, 4) == 0) {
                        close(op[1]);
                        answer(s, line, sizeof line);
                } else if (f < 0) {
                        snprintf(line, sizeof line, "A cannot open %s", extra);
                }
                _exit(write(rp[1], line, strlen(line)) > 0 ? 0 : 1);
        }
        close(rp[1]);
        close(op[1]);
        /* to the end: the run's messages come in several writes */
        size_t got = 0;
        for (ssize_t k; got < osize - 1 && (k = read(op[0], job_out + got, osize - 1 - got)) > 0;)
                got += (size_t)k;
        job_out[got] = '\0';
        ssize_t n = read(rp[0], res, rsize - 1);
        res[n > 0 ? n : 0] = '\0';
        close(rp[0]);
        close(op[0]);
        waitpid(pid, NULL, 0);
}

/* A path the client cannot open: the client's own open fails, a request that
 * names it with another fd binds that fd's object, and an fd the client
 * could get without reading (O_PATH) is refused. The daemon never opens it. */
Test(daemon, a_path_the_client_cannot_open_is_never_opened_by_the_daemon)
{
        NEED();
        int in = inotify_opens(secret);
        const char *a1[] = {"-q", "--no-cwd", "--data", secret, "--", "/bin/echo", "JOB-RAN", NULL};
        cr_expect_eq(run_as_a(a1), AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "Permission denied") != NULL, "%s", P.err);
        /* The label names root's directory; the fd is A's home. */
        char mine[256], req[1024], res[1200], out[1200];
        TEST_SNPRINTF(mine, "%s/MINE", A.home);
        cr_assert_eq(aidp_test_write_as(&A, mine, "mine\n", 0644), 0);
        TEST_SNPRINTF(req,
                      "{\"v\":1,\"op\":\"run\",\"args\":[\"-q\",\"--no-cwd\",\"--ro-bind\","
                      "\"%s:/x\"],\"argv\":[\"/bin/ls\",\"/x\"],\"fds\":{\"stdin\":0,"
                      "\"stdout\":1,\"stderr\":2,\"binds\":[3]}}",
                      secret_dir);
        request_as_a(req, A.home, O_PATH | O_DIRECTORY, res, sizeof res, out, sizeof out);
        cr_expect_str_eq(res, "exit 0 ", "%s", res);
        cr_expect_str_eq(out, "MINE\n", "the bind showed: %s", out);
        /* O_PATH needs no permission on the object: the daemon checks as A. */
        request_as_a("{\"v\":1,\"op\":\"run\",\"args\":[\"-q\",\"--no-cwd\",\"--ro-bind\","
                     "\"/srv/x:/x\"],\"argv\":[\"/bin/ls\",\"/x\"],\"fds\":{\"stdin\":0,"
                     "\"stdout\":1,\"stderr\":2,\"binds\":[3]}}",
                     secret_dir, O_PATH, res, sizeof res, out, sizeof out);
        cr_expect_str_eq(res, "exit 120 ");
        cr_expect(strstr(out, "--ro-bind /srv/x: permission denied for the calling user"), "%s",
                  out);
        /* Nor can a data file be one the client could not read. */
        request_as_a("{\"v\":1,\"op\":\"run\",\"args\":[\"-q\",\"--no-cwd\",\"--data\","
                     "\"/srv/x.sealed\"],\"argv\":[\"/bin/true\"],\"fds\":{\"stdin\":0,"
                     "\"stdout\":1,\"stderr\":2,\"data\":[3]}}",
                     secret2, O_PATH, res, sizeof res, out, sizeof out);
        cr_expect_str_eq(res, "exit 120 ");
        cr_expect(strstr(out, "--data /srv/x.sealed: not a regular file"), "%s", out);
        cr_expect(!was_opened(in), "root's secret was opened");
}

/* aidp-run as A, not waited for (setpriv execs it: P.pid is the client). */
static void spawn_as_a(struct aidp_proc *p, const char *const *args)
{
        aidp_test_daemon_client(p, &A, sock, args);
}

/* The client's Ctrl-C, SIGTERM and SIGWINCH reach the job; its status is
 * the client's. */
Test(daemon, signals_are_forwarded_and_the_status_comes_back)
{
        NEED();
        const char *a[] = {"-q",
                           "--no-cwd",
                           "--",
                           "/bin/sh",
                           "-c",
                           "trap 'echo GOT-WINCH' WINCH; trap 'echo GOT-TERM; exit 7' TERM; "
                           "echo READY; while :; do sleep 0.1; done",
                           NULL};
        spawn_as_a(&P, a);
        cr_assert(aidp_test_wait_output(&P, "READY", 30000), "%s", P.err);
        kill(P.pid, SIGWINCH);
        cr_expect(aidp_test_wait_output(&P, "GOT-WINCH", 10000), "%s", P.err);
        kill(P.pid, SIGTERM);
        int st = aidp_test_finish(&P);
        cr_expect(strstr(P.out, "GOT-TERM") != NULL, "%s\n%s", P.out, P.err);
        cr_expect_eq(st, 7, "status %d: %s", st, P.err);
        const char *b[] = {"-q", "--no-cwd", "--", "/bin/sh", "-c", "exit 42", NULL};
        cr_expect_eq(run_as_a(b), 42, "%s", P.err);
}

/* The run journals left in run (its entries but the daemon's own dot
 * directories), waited for up to 10 s to be none: a run's goes right after
 * its end. */
static size_t journals_left(const char *run)
{
        size_t n = 1;
        for (int t = 0; t < 200 && n; t++) {
                DIR *dir = opendir(run);
                n = 0;
                for (struct dirent *e; dir && (e = readdir(dir));)
                        n += e->d_name[0] != '.';
                if (dir)
                        closedir(dir);
                if (n)
                        usleep(50000);
        }
        return n;
}

/* The client has its status as soon as the run is over and on record: shred
 * done, its end record durable. What the worker does after that (pid 1
 * reaped, the pin and the cgroups removed, the journal last: AIDP_TIMING's
 * "release" and "finish", printed after the status) no longer reaches the
 * client's files, nor waits for them; the journal, there until that is done,
 * goes then (docs/run-core.md, "The tail after the status"). */
Test(daemon, the_status_comes_once_the_run_is_on_record_before_the_clean_up)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test user or files could not be made (%s)", aidp_test_users_why());
        char sock2[160], run2[160], k[200];
        TEST_SNPRINTF(sock2, "%s/timing.sock", T);
        TEST_SNPRINTF(run2, "%s/run-timing", T);
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", keyp);
        const char *env[] = {k, "AIDP_TIMING=1", NULL};
        const char *args[] = {"--lineage", logp, NULL};
        pid_t d = aidp_test_daemon_spawn(sock2, A.gid, run2, args, env, true);
        for (int round = 0; round < 3; round++) {
                int before = aidp_test_count_events(logp, "COMPLETE");
                char *a[] = {AIDP_RUN_BIN, "--socket", sock2,       "-q",
                             "--no-cwd",   "--",       "/bin/true", NULL};
                int st = aidp_test_run_as(&P, &A, false, a);
                /* At the client's exit, not waited for: */
                int after = aidp_test_count_events(logp, "COMPLETE");
                cr_expect_eq(st, 0, "round %d: status %d: %s", round, st, P.err);
                cr_expect_eq(after, before + 1, "round %d: no end record when the client exited",
                             round);
                cr_expect(strstr(P.err, "timing: end-rec") != NULL, "round %d: %s", round, P.err);
                cr_expect(strstr(P.err, "timing: release") == NULL &&
                                  strstr(P.err, "timing: finish") == NULL,
                          "round %d: the worker's clean-up came before the client's status: %s",
                          round, P.err);
                /* The journal goes once the worker is done (waited for). */
                size_t journals = journals_left(run2);
                cr_expect_eq(journals, 0, "round %d: the worker left a journal", round);
        }
        aidp_test_daemon_stop(d, sock2);
        aidp_test_gc(run2);
}

/* A daemon of its own whose runs fail at the fault point `fault`
 * (AIDP_FAULT_FAIL_AT), on sock2 (160 bytes) with its run directory run2. */
static pid_t fault_daemon(const char *fault, char *sock2, char *run2)
{
        char k[200], f[100];
        snprintf(sock2, 160, "%s/%s.sock", T, fault);
        snprintf(run2, 160, "%s/run-%s", T, fault);
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", keyp);
        TEST_SNPRINTF(f, "AIDP_FAULT_FAIL_AT=%s", fault);
        const char *env[] = {k, f, NULL};
        const char *args[] = {"--lineage", logp, NULL};
        return aidp_test_daemon_spawn(sock2, A.gid, run2, args, env, true);
}

/* A failure of the clean-up after the status (a cgroup that cannot be
 * removed, a pid 1 that does not end; here AIDP_FAULT_FAIL_AT=release)
 * leaves the run's status as it was and its journal to gc, and is said in
 * the daemon's own log: not in the client's files, which are no longer the
 * worker's, and not nowhere. */
Test(daemon, a_failure_after_the_status_is_in_the_daemons_log)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test user or files could not be made (%s)", aidp_test_users_why());
        char sock2[160], run2[160], dlog[160];
        TEST_SNPRINTF(dlog, "%s/daemon.log", T);
        /* the daemon's stderr, its log, to a file */
        int saved = dup(STDERR_FILENO);
        int lf = open(dlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert(saved >= 0 && lf >= 0);
        dup2(lf, STDERR_FILENO);
        pid_t d = fault_daemon("release", sock2, run2);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(lf);
        char *a[] = {AIDP_RUN_BIN, "--socket", sock2, "-q", "--no-cwd", "--", "/bin/true", NULL};
        int st = aidp_test_run_as(&P, &A, false, a);
        char buf[8192] = "";
        bool said = false;
        for (int t = 0; t < 100 && !said; t++) {
                FILE *f = fopen(dlog, "re");
                size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
                if (f)
                        fclose(f);
                buf[n] = '\0';
                said = strstr(buf, "left for gc") && strstr(buf, "AIDP_FAULT_FAIL_AT=release");
                if (!said)
                        usleep(50000);
        }
        aidp_test_daemon_stop(d, sock2);
        aidp_test_gc(run2);
        cr_expect_eq(st, 0, "status %d: %s", st, P.err);
        cr_expect(!strstr(P.err, "left for gc"), "the clean-up wrote to the client: %s", P.err);
        cr_expect(said, "the daemon's log has no word of the failure: %s", buf);
}

/* The run journal's cgroups.log cannot take the names of the cgroup an idle
 * worker made ahead (at the fault point `fault`): the run does not take it (a
 * crash would leave gc a cgroup it cannot name), fails before its job, says
 * why (`said`, with the errno: ENOSPC), and leaves neither the cgroup nor its
 * journal. */
static void ready_cgroup_not_taken(const char *fault, const char *said)
{
        char sock2[160], run2[160], ready_dir[200];
        pid_t d = fault_daemon(fault, sock2, run2);
        TEST_SNPRINTF(ready_dir, "%s/.ready", run2);
        /* an idle worker has made its run's cgroup ahead */
        char id[NAME_MAX + 1] = "";
        for (int t = 0; t < 500 && !id[0]; t++) {
                DIR *dir = opendir(ready_dir);
                for (struct dirent *e; dir && (e = readdir(dir));)
                        if (e->d_name[0] != '.')
                                TEST_SNPRINTF(id, "%s", e->d_name);
                if (dir)
                        closedir(dir);
                if (!id[0])
                        usleep(10000);
        }
        cr_expect(id[0], "no idle worker made a cgroup ahead in %s", ready_dir);
        char *a[] = {AIDP_RUN_BIN, "--socket",         sock2, "-q", "--no-cwd", "--", "/bin/sh",
                     "-c",         "echo the-job-ran", NULL};
        int st = aidp_test_run_as(&P, &A, false, a);
        cr_expect_eq(st, AIDP_EXIT_INTERNAL, "status %d: %s", st, P.err);
        cr_expect(strstr(P.err, said), "the cause is not named: %s", P.err);
        cr_expect(strstr(P.err, strerror(ENOSPC)), "the errno is not named: %s", P.err);
        cr_expect(!strstr(P.out, "the-job-ran"), "the job ran: %s", P.out);
        /* refused before its START record (the run's id is its cgroup's) */
        size_t len = 0;
        char *log = aidp_test_slurp(logp, &len);
        cr_expect(!id[0] || !log || !strstr(log, id), "the lineage log has a record of %s", id);
        free(log);
        /* no journal of a run left (only the daemon's own directories) */
        size_t journals = journals_left(run2);
        cr_expect_eq(journals, 0, "the failed run left its journal in %s", run2);
        aidp_test_daemon_stop(d, sock2);
        aidp_test_gc(run2);
        /* the cgroups made ahead are the daemon's to remove at its end, the
         * one the run failed to take among them */
        for (int t = 0; t < 200 && id[0] && aidp_test_cgroup_exists(id); t++)
                usleep(25000);
        cr_expect(!id[0] || !aidp_test_cgroup_exists(id), "the cgroup %s is left", id);
}

/* ...that write only (AIDP_FAULT_FAIL_AT=cgroups-log-adopt). */
Test(daemon, a_ready_cgroup_the_journal_cannot_name_is_not_taken)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test user or files could not be made (%s)", aidp_test_users_why());
        ready_cgroup_not_taken("cgroups-log-adopt", "cgroups.log could not be written");
}

/* ...cgroups.log cannot be opened (AIDP_FAULT_FAIL_AT=cgroups-log-open):
 * the ready cgroup is not even taken from the worker. */
Test(daemon, a_ready_cgroup_is_not_taken_without_a_cgroups_log)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test user or files could not be made (%s)", aidp_test_users_why());
        ready_cgroup_not_taken("cgroups-log-open", "cgroups.log could not be opened");
}

static char *wait_lineage(const char *run_id, const char *type, int timeout_ms)
{
        return aidp_test_wait_lineage(logp, run_id, type, timeout_ms);
}

static void expect_gone(const char *run_id)
{
        aidp_test_expect_run_gone(rundir, run_id);
}

/* A client that goes away mid-job: the run stops, shreds and writes its end
 * record, like a run stopped by its terminal. */
Test(daemon, disconnect_mid_job_shreds_and_writes_the_end_record)
{
        NEED();
        int rp[2], op[2];
        cr_assert_eq(pipe(rp), 0);
        cr_assert_eq(pipe(op), 0);
        pid_t pid = fork();
        if (pid == 0) {
                close(rp[0]);
                close(op[0]);
                become_a();
                int s = connect_as_a();
                int fds[3] = {0, op[1], op[1]};
                json_object *m = json_tokener_parse(
                        "{\"v\":1,\"op\":\"run\",\"args\":[\"-q\",\"--no-cwd\"],\"argv\":"
                        "[\"/bin/sh\",\"-c\",\"head -c 300000 /dev/urandom > /tmp/plain; echo "
                        "READY; sleep 100\"],\"fds\":{\"stdin\":0,\"stdout\":1,\"stderr\":2}}");
                if (aidp_proto_send(s, m, fds, 3) < 0)
                        _exit(1);
                close(op[1]);
                json_object *r = NULL, *id = NULL;
                int rf[4];
                size_t k = 0;
                aidp_error err = {0};
                if (aidp_proto_recv(s, 30000, &r, rf, 4, &k, &err) <= 0 ||
                    !json_object_object_get_ex(r, "run_id", &id))
                        _exit(2);
                const char *v = json_object_get_string(id);
                if (write(rp[1], v, strlen(v)) < 0)
                        _exit(3);
                close(rp[1]);
                pause();
                _exit(0);
        }
        close(rp[1]);
        close(op[1]);
        char run_id[64] = "", buf[256];
        ssize_t n = read(rp[0], run_id, sizeof run_id - 1);
        run_id[n > 0 ? n : 0] = '\0';
        close(rp[0]);
        cr_assert(n > 0, "no run id from the daemon");
        n = read(op[0], buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        cr_expect(strstr(buf, "READY") != NULL, "%s", buf);
        kill(pid, SIGKILL); /* the client and its connection are gone */
        waitpid(pid, NULL, 0);
        /* stopped by a signal: ABORT, as a run stopped by its terminal */
        char *end = wait_lineage(run_id, "ABORT", 60000);
        cr_assert_not_null(end, "no end record for run %s", run_id);
        cr_expect(strstr(end, "\"aidp_shred\"") && strstr(end, "\"verified\":true"), "%s", end);
        free(end);
        close(op[0]);
        expect_gone(run_id);
}

/* 32 clients at once, each its own run. */
Test(daemon, thirty_two_concurrent_clients)
{
        NEED();
        static struct aidp_proc ps[32];
        char cmd[32][64];
        for (int i = 0; i < 32; i++) {
                TEST_SNPRINTF(cmd[i], "echo client-%d", i);
                const char *a[] = {"-q", "--no-cwd", "--", "/bin/sh", "-c", cmd[i], NULL};
                spawn_as_a(&ps[i], a);
        }
        for (int i = 0; i < 32; i++) {
                char want[64];
                TEST_SNPRINTF(want, "client-%d\n", i);
                cr_expect_eq(aidp_test_finish(&ps[i]), 0, "client %d: %s", i, ps[i].err);
                cr_expect_str_eq(ps[i].out, want, "client %d: %s", i, ps[i].err);
        }
}

/* Malformed and oversized requests get an error; the daemon serves on. */
Test(daemon, malformed_and_oversized_requests_get_an_error)
{
        NEED();
        char out[1200];
        raw_as_a("\xff\xff\xff\xff", 4, 0, out, sizeof out);
        cr_expect(strstr(out, "error 120 the frame is too large") == out, "%s", out);
        raw_json_as_a("{\"v\":1,\"op\":", out, sizeof out);
        cr_expect(strstr(out, "error 120 the frame is cut short or not one JSON object") == out,
                  "%s", out);
        raw_json_as_a("[1,2]", out, sizeof out);
        cr_expect(strstr(out, "error 120 the frame is cut short or not one JSON object") == out,
                  "%s", out);
        raw_json_as_a("{\"v\":2,\"op\":\"run\"}", out, sizeof out);
        cr_expect(strstr(out, "error 120 unsupported protocol version") == out, "%s", out);
        raw_json_as_a("{\"v\":1,\"op\":\"format-disk\"}", out, sizeof out);
        cr_expect(strstr(out, "error 120 unknown op") == out, "%s", out);
        raw_json_as_a("{\"v\":1,\"op\":\"run\",\"args\":[\"--no-cwd\"],\"argv\":[\"/bin/true\"],"
                      "\"fds\":{\"stdin\":0,\"stdout\":5,\"stderr\":2}}",
                      out, sizeof out);
        cr_expect(strstr(out, "error 120 request: \"stdin\" must be an integer") == out, "%s", out);
        raw_json_as_a("{\"v\":1,\"op\":\"run\",\"args\":[\"--no-cwd\",\"stray\"],"
                      "\"argv\":[\"/bin/true\"],\"fds\":{}}",
                      out, sizeof out);
        cr_expect(strstr(out, "error 120") == out, "%s", out);
        const char *a[] = {"-q", "--no-cwd", "--", "/bin/echo", "STILL-SERVING", NULL};
        cr_expect_eq(run_as_a(a), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "STILL-SERVING\n");
}

/* A client that sends half a request and waits: an error after the deadline
 * (2 s here), and nobody else waits for it meanwhile. */
Test(daemon, a_slow_client_gets_an_error_and_blocks_no_one)
{
        NEED();
        int rp[2];
        cr_assert_eq(pipe(rp), 0);
        pid_t pid = fork();
        if (pid == 0) {
                close(rp[0]);
                char out[1200];
                raw_as_a("\0\0", 2, 0, out, sizeof out);
                _exit(write(rp[1], out, strlen(out)) > 0 ? 0 : 1);
        }
        close(rp[1]);
        usleep(200000);
        const char *a[] = {"-q", "--no-cwd", "--", "/bin/echo", "NOT-BLOCKED", NULL};
        cr_expect_eq(run_as_a(a), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "NOT-BLOCKED\n");
        char out[1200];
        ssize_t n = read(rp[0], out, sizeof out - 1);
        out[n > 0 ? n : 0] = '\0';
        close(rp[0]);
        waitpid(pid, NULL, 0);
        cr_expect(strstr(out, "error 120 the request did not arrive in time") == out, "%s", out);
}

/* The registry entry of the only run in progress: its worker's pid. */
static pid_t worker_of_run(char *run_id, size_t size)
{
        char dir[256];
        TEST_SNPRINTF(dir, "%s/.daemon", rundir);
        for (int t = 0; t < 100; t++) {
                DIR *d = opendir(dir);
                struct dirent *e;
                while (d && (e = readdir(d)))
                        if (e->d_name[0] != '.') {
                                char f[512];
                                TEST_SNPRINTF(f, "%s/%s", dir, e->d_name);
                                size_t len = 0;
                                char *s = aidp_test_slurp(f, &len);
                                json_object *o = s ? json_tokener_parse(s) : NULL, *v;
                                free(s);
                                pid_t pid = (pid_t)atoi(e->d_name);
                                if (o && json_object_object_get_ex(o, "run_id", &v))
                                        snprintf(run_id, size, "%s", json_object_get_string(v));
                                json_object_put(o);
                                closedir(d);
                                return pid;
                        }
                if (d)
                        closedir(d);
                usleep(100000);
        }
        return 0;
}

/* The daemon killed mid-run: the run goes on and a restarted daemon leaves
 * it alone; a run whose worker is killed too is recovered by gc at the
 * restarted daemon's start (ABORT, shred, nothing left). */
Test(daemon, daemon_sigkill_restart_and_gc)
{
        NEED();
        const char *a[] = {
                "-q", "--no-cwd", "--", "/bin/sh", "-c", "echo READY; sleep 2; echo DONE", NULL};
        spawn_as_a(&P, a);
        cr_assert(aidp_test_wait_output(&P, "READY", 30000), "%s", P.err);
        daemon_stop(SIGKILL);
        daemon_start();
        cr_expect_eq(aidp_test_finish(&P), 0, "%s", P.err);
        cr_expect(strstr(P.out, "DONE") != NULL, "the run did not survive: %s", P.out);

        const char *b[] = {"-q", "--no-cwd",
                           "--", "/bin/sh",
                           "-c", "head -c 100000 /dev/urandom > /tmp/plain; echo READY; sleep 100",
                           NULL};
        struct aidp_proc *q = calloc(1, sizeof *q);
        spawn_as_a(q, b);
        cr_assert(aidp_test_wait_output(q, "READY", 30000), "%s", q->err);
        char run_id[64] = "";
        pid_t worker = worker_of_run(run_id, sizeof run_id);
        cr_assert(worker > 0 && run_id[0], "no registry entry");
        daemon_stop(SIGKILL);
        kill(worker, SIGKILL);
        aidp_test_reap(q);
        free(q);
        daemon_start(); /* gc at start */
        char *end = wait_lineage(run_id, "ABORT", 60000);
        cr_assert_not_null(end, "no ABORT for run %s", run_id);
        cr_expect(strstr(end, "\"aidp_shred\"") != NULL, "%s", end);
        free(end);
        expect_gone(run_id);
}

/* Every occurrence of `from` in s (in place, s has room for size bytes). */
static void replace_all(char *s, size_t size, const char *from, const char *to)
{
        size_t fl = strlen(from), tl = strlen(to);
        for (char *p = strstr(s, from); p; p = strstr(p + tl, from)) {
                size_t rest = strlen(p + fl) + 1;
                cr_assert_lt((size_t)(p - s) + tl + rest, size);
                memmove(p + tl, p + fl, rest);
                memcpy(p, to, tl);
        }
}

/* --dry-run through the daemon: the plan (golden, with the run id, the test
 * user, the host and the profile digest replaced), and nothing recorded. */
Test(daemon, dry_run_prints_the_plan_and_records_nothing)
{
        NEED();
        const char *a[] = {"--dry-run", "--no-cwd",  "--profile", "baseline",
                           "--",        "/bin/true", NULL};
        cr_assert_eq(run_as_a(a), 0, "%s", P.err);
        char out[8192], num[32], host[256] = "";
        TEST_SNPRINTF(out, "%s", P.out);
        char *id = strstr(out, "plan of run ");
        cr_assert_not_null(id, "%s", out);
        char run_id[40];
        TEST_SNPRINTF(run_id, "%.36s", id + 12);
        replace_all(out, sizeof out, run_id, "RUN-ID");
        char *d = strstr(out, "sha256:");
        cr_assert_not_null(d, "no profile digest: %s", out);
        char digest[80];
        TEST_SNPRINTF(digest, "%.71s", d);
        replace_all(out, sizeof out, digest, "sha256:DIGEST");
        gethostname(host, sizeof host - 1);
        char hq[300];
        TEST_SNPRINTF(hq, "\"%s\"", host);
        replace_all(out, sizeof out, hq, "\"HOST\"");
        TEST_SNPRINTF(hq, "\"%s\"", A.name);
        replace_all(out, sizeof out, hq, "\"USER\"");
        static const char *const keys[] = {"uid", "jobUid", "gid", "jobGid"};
        for (int k = 0; k < 4; k++) {
                char to[32];
                TEST_SNPRINTF(num, "\"%s\":%u", keys[k], (unsigned)(k < 2 ? A.uid : A.gid));
                TEST_SNPRINTF(to, "\"%s\":%s", keys[k], k < 2 ? "UID" : "GID");
                replace_all(out, sizeof out, num, to);
        }
        const char *golden = AIDP_SOURCE_DIR "/tests/data/daemon/dry-run.txt";
        if (getenv("AIDP_UPDATE_GOLDEN")) {
                FILE *f = fopen(golden, "we");
                cr_assert_not_null(f);
                fputs(out, f);
                fclose(f);
        }
        size_t len = 0;
        char *want = aidp_test_slurp(golden, &len);
        cr_assert_not_null(want, "%s (AIDP_UPDATE_GOLDEN=1 writes it)", golden);
        cr_expect_str_eq(out, want);
        free(want);
        struct stat st;
        cr_expect(stat(logp, &st) != 0 || st.st_size == 0, "the dry run wrote lineage");
        char j[256];
        TEST_SNPRINTF(j, "%s/%s", rundir, run_id);
        cr_expect_neq(stat(j, &st), 0, "the dry run made a journal");
        const char *b[] = {"--dry-run", "--json", "--no-cwd", "--", "/bin/true", NULL};
        cr_assert_eq(run_as_a(b), 0, "%s", P.err);
        json_object *o = json_tokener_parse(P.out), *v = NULL;
        cr_assert_not_null(o, "%s", P.out);
        cr_expect(json_object_object_get_ex(o, "dryRun", &v) && json_object_get_boolean(v));
        json_object_put(o);
}

/* aidp ps lists the caller's runs; aidp stop ends one, which still shreds
 * and writes its end record; another user's stop is told there is no such
 * run of theirs. */
Test(daemon, ps_lists_and_stop_ends_a_run)
{
        NEED();
        struct aidp_test_user B;
        cr_assert_eq(aidp_test_user_create("e", &B), 0);
        const char *a[] = {"-q", "--no-cwd", "--", "/bin/sh", "-c", "echo READY; sleep 100", NULL};
        spawn_as_a(&P, a);
        cr_assert(aidp_test_wait_output(&P, "READY", 30000), "%s", P.err);
        static struct aidp_proc Q;
        char *ps[] = {AIDP_BINARY_DIR "/aidp", "ps", "--json", "--socket", sock, NULL};
        cr_assert_eq(aidp_test_run_as(&Q, &A, false, ps), 0, "%s", Q.err);
        json_object *runs = json_tokener_parse(Q.out), *v;
        cr_assert(runs && json_object_array_length(runs) == 1, "%s", Q.out);
        json_object *r0 = json_object_array_get_idx(runs, 0);
        cr_assert(json_object_object_get_ex(r0, "run_id", &v));
        char run_id[64];
        TEST_SNPRINTF(run_id, "%s", json_object_get_string(v));
        cr_expect(json_object_object_get_ex(r0, "uid", &v) &&
                  json_object_get_int64(v) == (int64_t)A.uid);
        json_object_put(runs);
        /* root sees it; B, in the socket's group too, neither sees nor stops it */
        cr_assert_eq(aidp_test_run(&Q, ps), 0, "%s", Q.err);
        cr_expect(strstr(Q.out, run_id) != NULL, "%s", Q.out);
        cr_assert_eq(aidp_test_user_join(&B, A.gid), 0);
        cr_assert_eq(aidp_test_run_as(&Q, &B, false, ps), 0, "%s", Q.err);
        cr_expect_str_eq(Q.out, "[]\n");
        char *stop_b[] = {AIDP_BINARY_DIR "/aidp", "stop", "--socket", sock, run_id, NULL};
        int st = aidp_test_run_as(&Q, &B, false, stop_b);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "B stopped A's run: %s", Q.err);
        cr_expect(strstr(Q.err, "of yours") != NULL, "%s", Q.err);
        cr_expect(kill(P.pid, 0) == 0, "A's client ended");
        cr_assert_eq(aidp_test_run_as(&Q, &A, false, stop_b), 0, "%s", Q.err);
        st = aidp_test_finish(&P);
        cr_expect_neq(st, 0, "a stopped run exited 0");
        char *end = wait_lineage(run_id, "ABORT", 60000);
        cr_assert_not_null(end, "no end record for the stopped run %s", run_id);
        cr_expect(strstr(end, "\"aidp_shred\"") != NULL, "%s", end);
        free(end);
        expect_gone(run_id);
}

/* Warm start: the library's filters are compiled once in the server and
 * taken by digest in each worker; what the kernel enforces is the same. */
Test(daemon, warm_filter_of_a_library_profile_is_enforced)
{
        NEED();
        const char *a[] = {"-q", "--no-cwd", "--profile", "baseline",
                           "--", AIDP_PROBE, "seccomp",   NULL};
        cr_expect_eq(run_as_a(a), 0, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.out, "ok   mount fails with EPERM") != NULL, "%s", P.out);
        cr_expect(!strstr(P.out, "FAIL"), "%s", P.out);
}

/* A client that never reads its stdout: its job blocks on a full pipe, and
 * nobody else waits for it; when it goes away, its run ends and shreds. */
Test(daemon, a_client_that_never_reads_its_stdout_blocks_no_one)
{
        NEED();
        int op[2];
        cr_assert_eq(pipe(op), 0);
        pid_t pid = fork();
        if (pid == 0) {
                become_a();
                int s = connect_as_a();
                int fds[3] = {0, op[1], 2};
                json_object *m = json_tokener_parse(
                        "{\"v\":1,\"op\":\"run\",\"args\":[\"-q\",\"--no-cwd\"],\"argv\":"
                        "[\"/bin/sh\",\"-c\",\"head -c 10000000 /dev/zero\"],"
                        "\"fds\":{\"stdin\":0,\"stdout\":1,\"stderr\":2}}");
                if (aidp_proto_send(s, m, fds, 3) < 0)
                        _exit(1);
                pause();
                _exit(0);
        }
        close(op[1]);
        char run_id[64] = "";
        cr_assert(worker_of_run(run_id, sizeof run_id) > 0, "no run registered");
        const char *a[] = {"-q", "--no-cwd", "--", "/bin/echo", "NOT-BLOCKED", NULL};
        cr_expect_eq(run_as_a(a), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "NOT-BLOCKED\n");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char *end = wait_lineage(run_id, "ABORT", 60000);
        cr_expect_not_null(end, "no end record for the blocked run %s", run_id);
        free(end);
        close(op[0]);
        expect_gone(run_id);
}
