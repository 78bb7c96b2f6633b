/* aidp-supervisor serve and aidp-run (issue 16, docs/protocol.md), with real
 * unprivileged users: the caller's identity comes from the kernel, files are
 * opened by the client and passed as fds, the daemon opens no path a client
 * names, signals and disconnects reach the run, bad requests get an error
 * without holding up anyone else, and a crashed run is recovered by gc. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
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
        char group[32];
        struct group *g = getgrgid(A.gid);
        cr_assert_not_null(g);
        TEST_SNPRINTF(group, "%s", g->gr_name);
        daemon_pid = fork();
        cr_assert_geq(daemon_pid, 0);
        if (daemon_pid == 0) {
                /* a crashed test takes its daemon with it */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                setenv("AIDP_LINEAGE_KEY", keyp, 1);
                int null = open("/dev/null", O_RDWR);
                dup2(null, 0);
                execl(AIDP_SUPERVISOR, AIDP_SUPERVISOR, "serve", "--socket", sock, "--group", group,
                      "--run-dir", rundir, "--lineage", logp, "--request-timeout", "2",
                      (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 500; i++) {
                struct stat st;
                if (stat(sock, &st) == 0 && st.st_gid == A.gid)
                        return;
                usleep(10000);
        }
        cr_assert_fail("the daemon did not listen on %s", sock);
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
                cr_assert(ready, "test user or files could not be made");                          \
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
        gid_t g = A.gid;
        if (setgroups(1, &g) < 0 || setresgid(A.gid, A.gid, A.gid) < 0 ||
            setresuid(A.uid, A.uid, A.uid) < 0)
                _exit(99);
}

static int connect_as_a(void)
{
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        TEST_SNPRINTF(a.sun_path, "%s", sock);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
                _exit(98);
        return fd;
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
        const char *a2[] = {"-q",      "--no-cwd", "--env", "SUDO_UID=0", "--", "/usr/bin/env",
                            "SUDO_UID=0", "SLURM_JOB_UID=0", "/bin/sh", "-c", "id -u; id -g",
                            NULL};
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
        ssize_t n = read(op[0], job_out, osize - 1);
        job_out[n > 0 ? n : 0] = '\0';
        n = read(rp[0], res, rsize - 1);
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
