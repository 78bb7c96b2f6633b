/* The daemon's socket as README's set-up makes it: in the run directory,
 * 0660 root:GROUP. A member of the group reaches it and runs; a user who is
 * not is refused by the socket; no user lists or reads what the run directory
 * holds (docs/security.md). With real unprivileged users and a daemon of the
 * test's own, on a run directory made as on a fresh host, one an earlier aidp
 * left at 0700, and a socket in a directory of the admin's. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "daemon_util.h"
#include "priv.h"
#include "runner.h"
#include "supervisor/daemon/proto.h"
#include "testusers.h"
#include "tests/tpath.h"

#define AIDP_RUN_BIN AIDP_BINARY_DIR "/aidp-run"

static struct aidp_test_user A, B;
static struct aidp_proc P;
static char *T;
static char sock[200], rundir[1024];
static pid_t daemon_pid;
static bool ready;

static void setup(void)
{
        if (geteuid() != 0 ||
            !aidp_test_daemon_fixture(&T, "s", &A, sock, rundir, NULL, NULL, NULL))
                return;
        /* the socket in the run directory, as /run/aidp/aidp.sock */
        TEST_SNPRINTF(sock, "%s/run/aidp.sock", T);
        ready = aidp_test_user_create("o", &B) == 0;
}

static void teardown(void)
{
        aidp_test_daemon_fixture_end(&daemon_pid, sock, rundir, &T);
}

TestSuite(daemon_socket, .init = setup, .fini = teardown, .timeout = 180);

#define NEED()                                                                                     \
        do {                                                                                       \
                AIDP_REQUIRE_ROOT();                                                               \
                cr_assert(ready, "test users or files could not be made (%s)",                     \
                          aidp_test_users_why());                                                  \
        } while (0)

/* aidp-run -q --no-cwd -- ARGV... as u, waited for: its exit status. */
static int run_as(const struct aidp_test_user *u, const char *const *job)
{
        const char *a[32] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--"};
        size_t n = 4;
        for (size_t i = 0; job[i] && n < 31; i++)
                a[n++] = job[i];
        a[n] = NULL;
        return aidp_test_client_as(&P, u, sock, true, a);
}

/* as a user: these must fail with EACCES */
static int cannot_list(const char *dir, const char *unused)
{
        (void)unused;
        DIR *d = opendir(dir);
        if (d) {
                closedir(d);
                return -1;
        }
        return errno == EACCES ? 0 : -1;
}

static int cannot_read(const char *path, const char *unused)
{
        (void)unused;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                close(fd);
                return -1;
        }
        return errno == EACCES ? 0 : -1;
}

static void expect_member_runs_and_other_is_refused(void)
{
        const char *id[] = {"/usr/bin/id", "-u", NULL};
        cr_expect_eq(run_as(&A, id), 0, "a member of the socket's group: %s", P.err);
        char want[32];
        TEST_SNPRINTF(want, "%u\n", (unsigned)A.uid);
        cr_expect_str_eq(P.out, want);
        cr_expect_neq(run_as(&B, id), 0, "a user not in the group ran: %s", P.out);
        cr_expect(strstr(P.err, "Permission denied") != NULL, "%s", P.err);
}

Test(daemon_socket, a_fresh_run_directory_lets_the_group_reach_the_socket_and_nothing_else)
{
        NEED();
        struct stat st;
        cr_assert(stat(rundir, &st) < 0 && errno == ENOENT);
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, NULL, true);
        cr_assert_eq(stat(rundir, &st), 0);
        cr_expect_eq(st.st_mode & 07777, 0711, "run directory mode %o", st.st_mode & 07777);
        cr_expect_eq(st.st_uid, 0);
        expect_member_runs_and_other_is_refused();

        /* a run in progress: its journal is there, and the member who runs
         * it (who knows its id) still cannot list or read any of it */
        const char *a[] = {AIDP_RUN_BIN,
                           "-q",
                           "--no-cwd",
                           "--",
                           "/bin/sh",
                           "-c",
                           "echo RUN=$AIDP_RUN_ID; sleep 100",
                           NULL};
        aidp_test_client_as(&P, &A, sock, false, a);
        cr_assert(aidp_test_wait_output(&P, "\n", 30000), "%s", P.err);
        char *rid = strstr(P.out, "RUN=");
        cr_assert_not_null(rid, "%s", P.out);
        rid += 4;
        rid[strcspn(rid, "\n")] = '\0';
        char jdir[1200], journal[1300], daemon_dir[1100], logs[1100];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, rid);
        TEST_SNPRINTF(journal, "%s/journal.json", jdir);
        TEST_SNPRINTF(daemon_dir, "%s/.daemon", rundir);
        TEST_SNPRINTF(logs, "%s/.logs", rundir);
        cr_assert_eq(stat(journal, &st), 0, "no journal at %s", journal);
        const char *dirs[] = {rundir, jdir, daemon_dir, logs};
        for (size_t i = 0; i < 4; i++) {
                cr_expect_eq(aidp_test_as_user(&A, cannot_list, dirs[i], NULL), 0,
                             "the member lists %s", dirs[i]);
                cr_expect_eq(aidp_test_as_user(&B, cannot_list, dirs[i], NULL), 0,
                             "another user lists %s", dirs[i]);
        }
        cr_expect_eq(aidp_test_as_user(&A, cannot_read, journal, NULL), 0, "the member reads %s",
                     journal);
        /* and each entry but the socket is root's alone on its own, not by
         * the run directory's mode */
        DIR *d = opendir(rundir);
        cr_assert_not_null(d);
        for (struct dirent *e; (e = readdir(d));) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
                    !strcmp(e->d_name, "aidp.sock"))
                        continue;
                cr_expect_eq(fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW), 0);
                cr_expect(st.st_uid == 0 && !(st.st_mode & 077), "%s/%s: mode %o uid %u", rundir,
                          e->d_name, st.st_mode & 07777, (unsigned)st.st_uid);
        }
        closedir(d);
        /* the client goes: its run ends and shreds */
        kill(P.pid, SIGKILL);
        aidp_test_finish(&P);
        aidp_test_expect_run_gone(rundir, rid);
}

Test(daemon_socket, an_earlier_aidps_0700_run_directory_is_opened_to_search_only)
{
        NEED();
        cr_assert_eq(mkdir(rundir, 0700), 0);
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, NULL, true);
        struct stat st;
        cr_assert_eq(stat(rundir, &st), 0);
        cr_expect_eq(st.st_mode & 07777, 0711, "run directory mode %o", st.st_mode & 07777);
        expect_member_runs_and_other_is_refused();
}

/* Until the daemon's stderr (in file) says line, or it ended. */
static char *daemon_said(const char *file, const char *line)
{
        static char buf[8192];
        for (int i = 0; i < 3000; i++) {
                int fd = open(file, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
                if (fd >= 0)
                        close(fd);
                buf[n > 0 ? n : 0] = '\0';
                if (strstr(buf, line) || waitpid(daemon_pid, NULL, WNOHANG) != 0)
                        break;
                usleep(10000);
        }
        return buf;
}

Test(daemon_socket, a_directory_of_the_admins_is_named_at_start_and_left_alone)
{
        NEED();
        char adm[1100], log[1100];
        TEST_SNPRINTF(adm, "%s/admin", T);
        TEST_SNPRINTF(log, "%s/serve.err", T);
        cr_assert_eq(mkdir(adm, 0700), 0);
        TEST_SNPRINTF(sock, "%s/aidp.sock", adm);
        /* the daemon's stderr, as a journal would keep it */
        int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert(saved >= 0 && fd >= 0);
        dup2(fd, 2);
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, NULL, true);
        dup2(saved, 2);
        close(saved);
        close(fd);
        char want[1300];
        TEST_SNPRINTF(want, "cannot reach the socket: %s is mode 0700 uid 0 gid 0", adm);
        const char *said = daemon_said(log, "listening on");
        cr_expect(strstr(said, want) != NULL, "%s", said);
        struct stat st;
        cr_assert_eq(stat(adm, &st), 0);
        cr_expect_eq(st.st_mode & 07777, 0700, "the admin's directory was changed to %o",
                     st.st_mode & 07777);
        const char *id[] = {"/usr/bin/id", "-u", NULL};
        cr_expect_neq(run_as(&A, id), 0, "ran through an unreachable socket");
        cr_expect(strstr(P.err, "Permission denied") != NULL, "%s", P.err);
        unlink(sock);
        rmdir(adm);
}

/* A request of A's own making, past aidp-run's checks: its first answer
 * ("TYPE STATUS MESSAGE") in out, and whatever its job printed in job. */
static void request_as_a(const char *json, char *out, size_t size, char *job, size_t jsize)
{
        int pp[2], op[2];
        cr_assert(pipe(pp) == 0 && pipe(op) == 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(pp[0]);
                close(op[0]);
                aidp_test_become(&A);
                int s = aidp_test_daemon_connect(sock);
                int fds[3] = {0, op[1], op[1]};
                json_object *m = json_tokener_parse(json), *r = NULL, *t = NULL, *st = NULL,
                            *msg = NULL;
                if (!m || aidp_proto_send(s, m, fds, 3) < 0)
                        _exit(97);
                close(op[1]);
                int rf[4];
                size_t n = 0;
                aidp_error err = {0};
                char line[2200];
                if (aidp_proto_recv(s, 30000, &r, rf, 4, &n, &err) <= 0)
                        _exit(96);
                json_object_object_get_ex(r, "type", &t);
                json_object_object_get_ex(r, "status", &st);
                json_object_object_get_ex(r, "message", &msg);
                snprintf(line, sizeof line, "%s %d %s", json_object_get_string(t),
                         json_object_get_int(st), msg ? json_object_get_string(msg) : "");
                if (write(pp[1], line, strlen(line)) < 0)
                        _exit(95);
                close(pp[1]);
                /* until the run's end closes the job's stdout */
                while (aidp_proto_recv(s, 30000, &r, rf, 4, &n, &err) > 0)
                        ;
                _exit(0);
        }
        close(pp[1]);
        close(op[1]);
        ssize_t n = read(pp[0], out, size - 1);
        out[n > 0 ? n : 0] = '\0';
        size_t got = 0;
        while (got < jsize - 1 && (n = read(op[0], job + got, jsize - 1 - got)) > 0)
                got += (size_t)n;
        job[got] = '\0';
        close(pp[0]);
        close(op[0]);
        waitpid(pid, NULL, 0);
}

/* AIDP_* in the job is aidp's: --env naming one is refused (120, the
 * variable named) through the daemon, directly through sudo and by root
 * itself, and none of root's own stands in for aidp's in the job. */
Test(daemon_socket, aidp_variables_are_refused_on_every_path_and_aidps_own_win)
{
        NEED();
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, NULL, true);
        const char *env[] = {"/usr/bin/env", NULL};
        /* the daemon itself, whatever the client checked */
        char out[2300], job[8192];
        request_as_a("{\"v\":1,\"op\":\"run\",\"args\":[\"-q\",\"--no-cwd\",\"--env\","
                     "\"AIDP_RUN_ID=fake\",\"--env\",\"AIDP_DATA_DIR=/tmp\"],\"argv\":"
                     "[\"/usr/bin/env\"],\"fds\":{\"stdin\":0,\"stdout\":1,\"stderr\":2}}",
                     out, sizeof out, job, sizeof job);
        cr_expect(strstr(out, "error 120 --env AIDP_RUN_ID: AIDP_* variables are aidp's own") ==
                          out,
                  "%s", out);
        cr_expect(!strstr(job, "fake"), "%s", job);
        /* and through aidp-run */
        const char *d[] = {AIDP_RUN_BIN,       "-q",    "--no-cwd",           "--env",
                           "AIDP_RUN_ID=fake", "--env", "AIDP_DATA_DIR=/tmp", "--",
                           "/usr/bin/env",     NULL};
        cr_expect_eq(aidp_test_client_as(&P, &A, sock, true, d), AIDP_EXIT_USAGE, "%s\n%s", P.out,
                     P.err);
        cr_expect(strstr(P.err, "--env AIDP_RUN_ID: AIDP_* variables are aidp's own") != NULL, "%s",
                  P.err);
        cr_expect(!strstr(P.out, "fake"), "%s", P.out);
        /* a variable of the user's own still passes, and HOME may be set */
        const char *ok[] = {AIDP_RUN_BIN, "-q",        "--no-cwd", "--env", "MINE=1",
                            "--env",      "HOME=/mnt", "--",       env[0],  NULL};
        cr_expect_eq(aidp_test_client_as(&P, &A, sock, true, ok), 0, "%s", P.err);
        cr_expect(strstr(P.out, "\nMINE=1\n") && strstr(P.out, "\nHOME=/mnt\n"), "%s", P.out);
        cr_expect(strstr(P.out, "\nAIDP_RUN_ID=") != NULL, "%s", P.out);

        /* directly, the user through sudo */
        cr_assert_eq(aidp_test_sudoers_allow(&A, AIDP_SUPERVISOR_PROD), 0, "%s",
                     aidp_test_users_why());
        char *s[] = {AIDP_SUPERVISOR_PROD,  "run", "-q",           "--no-cwd", "--env",
                     "AIDP_OUT_DIR=/tmp/x", "--",  "/usr/bin/env", NULL};
        cr_expect_eq(aidp_test_run_as(&P, &A, true, s), AIDP_EXIT_USAGE, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.err, "--env AIDP_OUT_DIR: AIDP_* variables") != NULL, "%s", P.err);

        /* and root itself */
        char *r[] = {AIDP_SUPERVISOR,
                     "run",
                     "-q",
                     "--no-cwd",
                     "--user",
                     A.name,
                     "--run-dir",
                     rundir,
                     "--env",
                     "AIDP_SCRATCH_DIR=/",
                     "--",
                     "/usr/bin/env",
                     NULL};
        cr_expect_eq(aidp_test_run(&P, r), AIDP_EXIT_USAGE, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.err, "--env AIDP_SCRATCH_DIR: AIDP_* variables") != NULL, "%s", P.err);
        /* root's whole environment (--keep-env) with an AIDP_RUN_ID of its
         * own: the job still sees aidp's */
        char *k[] = {"/usr/bin/env",
                     "AIDP_RUN_ID=fake",
                     AIDP_SUPERVISOR,
                     "run",
                     "-q",
                     "--no-cwd",
                     "--keep-env",
                     "--user",
                     A.name,
                     "--run-dir",
                     rundir,
                     "--",
                     "/usr/bin/env",
                     NULL};
        cr_expect_eq(aidp_test_run(&P, k), 0, "%s", P.err);
        cr_expect(strstr(P.out, "\nAIDP_RUN_ID=") && !strstr(P.out, "AIDP_RUN_ID=fake"), "%s",
                  P.out);
}

/* Root through the daemon is judged as any user who connects: refused as a
 * job's user, and refused --user, each time told what root runs instead
 * (not sent from one refusal to the other). */
Test(daemon_socket, a_root_client_is_told_to_run_the_supervisor_itself)
{
        NEED();
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, NULL, true);
        char *a[] = {AIDP_RUN_BIN, "--socket", sock, "--no-cwd", "--", "/usr/bin/id", NULL};
        cr_expect_eq(aidp_test_run(&P, a), AIDP_EXIT_USAGE, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.err, "refusing to run the job as root (uid 0 gid 0): through the "
                                "daemon a job runs as the user who connects; as root, run it "
                                "with aidp-supervisor run --user USER directly") != NULL,
                  "%s", P.err);
        cr_expect(!strstr(P.err, "give --user"), "%s", P.err);
        char *u[] = {AIDP_RUN_BIN, "--socket", sock,          "--no-cwd", "--user",
                     A.name,       "--",       "/usr/bin/id", NULL};
        cr_expect_eq(aidp_test_run(&P, u), AIDP_EXIT_USAGE, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.err, "--user is admin-only") &&
                          strstr(P.err, "as root, run the job with aidp-supervisor run --user "
                                        "USER directly, not aidp-run"),
                  "%s", P.err);
        cr_expect_eq(P.out_len, 0, "%s", P.out);
}

/* A run's job that reaches the socket (here bound into its view on purpose)
 * is refused by the daemon, whatever it asks: it is in the run's cgroup. Its
 * user is in the socket's group, so the socket's mode alone would let it
 * start a run of other limits or egress, or stop its user's runs. */
Test(daemon_socket, a_runs_job_cannot_use_the_daemon)
{
        NEED();
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, NULL, true);
        char bind[300];
        TEST_SNPRINTF(bind, "%s:/tmp/daemon.sock", sock);
        const char *inner[] = {AIDP_RUN_BIN,  "--socket", "/tmp/daemon.sock",
                               "-q",          "--no-cwd", "--",
                               "/usr/bin/id", "-u",       NULL};
        const char *a[32] = {AIDP_RUN_BIN, "-q", "--no-cwd", "--ro-bind", bind, "--"};
        size_t n = 6;
        for (size_t i = 0; inner[i]; i++)
                a[n++] = inner[i];
        a[n] = NULL;
        int st = aidp_test_client_as(&P, &A, sock, true, a);
        cr_expect_eq(st, AIDP_EXIT_DENIED, "the job's own client: exit %d\n%s\n%s", st, P.out,
                     P.err);
        cr_expect(strstr(P.err, "a process inside an aidp run cannot use the daemon") != NULL, "%s",
                  P.err);
        char uid[32];
        TEST_SNPRINTF(uid, "%u\n", (unsigned)A.uid);
        cr_expect_null(strstr(P.out, uid), "a run started from inside a run: %s", P.out);
        /* and the same user outside any run still is served */
        const char *id[] = {"/usr/bin/id", "-u", NULL};
        cr_expect_eq(run_as(&A, id), 0, "%s", P.err);
}

/* Is the daemon's socket listed in the kernel's table under the name it was
 * bound by (PATH.PID.new, before the rename into place), and not as PATH? */
static bool listed_under_its_bind_name(const char *path, pid_t daemon)
{
        char want[300], line[512];
        TEST_SNPRINTF(want, " %s.%d.new\n", path, (int)daemon);
        bool found = false;
        FILE *f = fopen("/proc/net/unix", "re");
        cr_assert_not_null(f);
        while (fgets(line, sizeof line, f)) {
                size_t l = strlen(line), w = strlen(want);
                found |= l >= w && !strcmp(line + l - w, want);
        }
        fclose(f);
        return found;
}

/* The daemon's socket below a directory a user binds into a run's view, as
 * /run holds /run/aidp/aidp.sock (here the test's directory holds run/,
 * searchable, and the socket; bound as it is and through a symlink): a
 * connect(2) from inside the job fails. The kernel lists the
 * socket by its bind-time name, which is gone from the directory: pid 1
 * covers every socket of a directory where a listed name is gone. A user's
 * binds are opened by the user and come as fds (the covering knows them by
 * their device and inode). The daemon's refusal of a process inside a run
 * (a_runs_job_cannot_use_the_daemon) is not what is checked here: the
 * connect itself must fail. */
Test(daemon_socket, a_daemon_socket_in_a_bound_directory_is_not_connectable_from_the_job)
{
        NEED();
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, NULL, true);
        cr_assert(listed_under_its_bind_name(sock, daemon_pid),
                  "the daemon's socket is not listed as %s.%d.new: this test no longer checks "
                  "a renamed socket",
                  sock, (int)daemon_pid);
        char lnk[1100], direct[1100], via[1100];
        TEST_SNPRINTF(lnk, "%s/lnk", T);
        cr_assert_eq(symlink(T, lnk), 0, "%s", strerror(errno));
        TEST_SNPRINTF(direct, "%s:/mnt/r", T);
        TEST_SNPRINTF(via, "%s:/mnt/l", lnk);
        const char *a[] = {AIDP_RUN_BIN,
                           "-q",
                           "--no-cwd",
                           "--ro-bind",
                           direct,
                           "--ro-bind",
                           via,
                           "--",
                           AIDP_BINARY_DIR "/tests/helpers/contain_probe",
                           "unix",
                           "/mnt/r/run/aidp.sock",
                           "/mnt/l/run/aidp.sock",
                           NULL};
        int st = aidp_test_client_as(&P, &A, sock, true, a);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "unreachable /mnt/r/run/aidp.sock: ") != NULL,
                  "below a bind of its directory:\n%s", P.out);
        cr_expect(strstr(P.out, "unreachable /mnt/l/run/aidp.sock: ") != NULL,
                  "below a bind through a symlink:\n%s", P.out);
        cr_expect(strncmp(P.out, "reachable", 9) && !strstr(P.out, "\nreachable"),
                  "the job connected to the daemon:\n%s", P.out);
}
