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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_util.h"
#include "priv.h"
#include "runner.h"
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
        if (geteuid() != 0 || !aidp_test_daemon_fixture(&T, "s", &A, sock, rundir, NULL, NULL, NULL))
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
        const char *a[] = {AIDP_RUN_BIN, "-q",  "--no-cwd",
                           "--",         "/bin/sh", "-c",
                           "echo RUN=$AIDP_RUN_ID; sleep 100", NULL};
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
