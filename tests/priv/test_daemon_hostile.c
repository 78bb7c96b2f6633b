/* aidp-supervisor serve under pressure and against hostile callers (issue 16,
 * docs/protocol.md): bursts of clients while the host changes files the
 * sandbox masks, clients that race the daemon's start, and what one user may
 * do to another's runs and logs. With real unprivileged users and a daemon
 * of the test's own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "daemon_util.h"
#include "priv.h"
#include "runner.h"
#include "supervisor/daemon/proto.h"
#include "testusers.h"
#include "tests/sealed_util.h"

#define AIDP_RUN_BIN AIDP_BINARY_DIR "/aidp-run"

static struct aidp_test_user A;
static char *T;
static char sock[200], rundir[1024], profiles[1024], profile_env[1100];
static pid_t daemon_pid;
static bool ready;

static void setup(void)
{
        if (geteuid() != 0 ||
            !aidp_test_daemon_fixture(&T, "h", &A, sock, rundir, NULL, NULL, NULL))
                return;
        /* the daemon's library profiles: root's, readable by all */
        TEST_SNPRINTF(profiles, "%s/profiles", T);
        TEST_SNPRINTF(profile_env, "AIDP_PROFILE_PATH=%s", profiles);
        if (mkdir(profiles, 0755) < 0)
                return;
        ready = true;
}

static void teardown(void)
{
        aidp_test_daemon_fixture_end(&daemon_pid, sock, rundir, &T);
}

TestSuite(daemon_hostile, .init = setup, .fini = teardown, .timeout = 240);

#define NEED()                                                                                     \
        do {                                                                                       \
                AIDP_REQUIRE_ROOT();                                                               \
                cr_assert(ready, "test user or files could not be made (%s)",                      \
                          aidp_test_users_why());                                                  \
        } while (0)

static void daemon_start(void)
{
        const char *env[] = {profile_env, NULL};
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, env, true);
}

/* aidp-run ARGS... as A, not waited for. */
static void spawn_as_a(struct aidp_proc *p, const char *const *args)
{
        aidp_test_daemon_client(p, &A, sock, args);
}

/* Replaces `victim` by a new file, over and over, as useradd replaces
 * /etc/shadow: write FILE+, rename it over FILE. Until killed. */
static pid_t replace_forever(const char *victim)
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                char tmp[1400];
                snprintf(tmp, sizeof tmp, "%s+", victim);
                for (;;) {
                        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                        if (fd >= 0 && write(fd, "HOST-FILE\n", 10) == 10)
                                fchmod(fd, 0644);
                        if (fd >= 0)
                                close(fd);
                        rename(tmp, victim);
                }
        }
        return pid;
}

/* The burst failure of bench-start: a run failed "sandbox setup failed at
 * mounts (/etc/shadow): No such file or directory" when the host replaced
 * /etc/shadow (a test user made meanwhile) between the mask's lookup and its
 * mount. Here a library profile masks one file through 100 names (symlinked
 * directories) while it is replaced without pause: every run of a burst of
 * 32 clients must still start. */
Test(daemon_hostile, a_burst_survives_a_masked_file_replaced_meanwhile)
{
        NEED();
        /* outside /tmp, which is the run's own tmpfs */
        char hot[64] = "/var/tmp/aidp-mask.XXXXXX", v[1200], victim[1300], yaml[1200];
        cr_assert_not_null(aidp_test_mkdtemp(hot));
        chmod(hot, 0755);
        TEST_SNPRINTF(v, "%s/v", hot);
        TEST_SNPRINTF(victim, "%s/victim", v);
        cr_assert_eq(mkdir(v, 0755), 0);
        cr_assert_eq(aidp_test_sh("echo HOST-FILE > %s && chmod 644 %s", victim, victim), 0);
        TEST_SNPRINTF(yaml, "%s/racemask.yaml", profiles);
        FILE *f = fopen(yaml, "w");
        cr_assert_not_null(f);
        fprintf(f, "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: racemask}\n"
                   "extends: baseline\nfilesystem:\n  masked:\n");
        for (int i = 0; i < 100; i++) {
                char link[1200];
                TEST_SNPRINTF(link, "%s/l%d", hot, i);
                cr_assert_eq(symlink("v", link), 0);
                fprintf(f, "    - %s/victim\n", link);
        }
        cr_assert_eq(fclose(f), 0);
        chmod(yaml, 0644);
        daemon_start();
        pid_t r = replace_forever(victim);
        static struct aidp_proc ps[32];
        char cmd[1400];
        /* What the job then sees is not asserted: the kernel detaches a
         * mount from a file that is renamed over, in every namespace, so a
         * file replaced during the run shows the new one (for /etc/shadow:
         * root's 0640 file, which the job cannot read). */
        TEST_SNPRINTF(cmd, "test -e %s/l7/victim && echo END", hot);
        for (int i = 0; i < 32; i++) {
                const char *a[] = {"-q",      "--no-cwd", "--profile", "racemask", "--",
                                   "/bin/sh", "-c",       cmd,         NULL};
                spawn_as_a(&ps[i], a);
        }
        int failed = 0;
        for (int i = 0; i < 32; i++) {
                int st = aidp_test_finish(&ps[i]);
                if (st != 0 || strcmp(ps[i].out, "END\n"))
                        failed++;
                cr_expect_eq(st, 0, "client %d: %s", i, ps[i].err);
                cr_expect_str_eq(ps[i].out, "END\n", "client %d: %s / %s", i, ps[i].out, ps[i].err);
        }
        kill(r, SIGKILL);
        waitpid(r, NULL, 0);
        cr_expect_eq(failed, 0, "%d of 32 runs failed", failed);
}

/* The socket's path appears only once the daemon listens: a client that
 * connects the moment it is there is served. Before, the path was there from
 * bind() on and refused connections until listen(): a burst's first clients
 * failed at a daemon's start. strace holds each listen() for 300 ms, so that
 * the gap, if there is one, is seen every time. */
Test(daemon_hostile, the_socket_appears_only_when_it_accepts_connections)
{
        NEED();
        struct group *g = getgrgid(A.gid);
        cr_assert_not_null(g);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                int null = open("/dev/null", O_RDWR);
                dup2(null, 0);
                dup2(null, 2);
                execl("/usr/bin/strace", "strace", "-o", "/dev/null", "-e",
                      "inject=listen:delay_enter=300000", AIDP_SUPERVISOR, "serve", "--socket",
                      sock, "--group", g->gr_name, "--run-dir", rundir, (char *)NULL);
                _exit(127);
        }
        struct stat st;
        for (int i = 0; i < 20000 && stat(sock, &st) < 0; i++)
                usleep(1000);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        TEST_SNPRINTF(a.sun_path, "%s", sock);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        int r = connect(fd, (struct sockaddr *)&a, sizeof a);
        int e = errno;
        close(fd);
        /* and already the group's: a client of the group may connect at once */
        bool there = stat(sock, &st) == 0;
        /* the daemon is strace's child: stopped first, then strace ends */
        char kids[256], buf[64] = "";
        TEST_SNPRINTF(kids, "/proc/%d/task/%d/children", (int)pid, (int)pid);
        FILE *kf = fopen(kids, "re");
        if (kf && fgets(buf, sizeof buf, kf) && atoi(buf) > 0)
                kill(atoi(buf), SIGTERM);
        if (kf)
                fclose(kf);
        waitpid(pid, NULL, 0);
        aidp_test_gc(rundir);
        cr_assert(there, "the daemon never made %s", sock);
        cr_expect_eq(st.st_gid, A.gid, "group %u at first sight", (unsigned)st.st_gid);
        cr_expect_eq(st.st_mode & 0777, 0660, "mode %o at first sight", st.st_mode & 0777);
        cr_expect_eq(r, 0, "connect at first sight: %s", strerror(e));
}

struct dir_stdin {
        const char *dir;
        int flags;
};

/* In the client, as A: the directory as stdin, /dev/null as stdout and stderr. */
static int dir_and_null(int *fds, size_t max, void *arg)
{
        const struct dir_stdin *d = arg;
        int dfd = open(d->dir, d->flags | O_CLOEXEC), null = open("/dev/null", O_WRONLY);
        if (max < 3 || dfd < 0 || null < 0)
                return -1;
        fds[0] = dfd;
        fds[1] = fds[2] = null;
        return 3;
}

/* A run request from A with `stdin` an fd of dir that A opened with flags,
 * stdout and stderr /dev/null: the daemon's last answer ("TYPE STATUS
 * MESSAGE") into res. */
static void run_with_dir_stdin(const char *dir, int flags, const char *cmd, char *res, size_t size)
{
        json_object *q = json_tokener_parse("{\"op\":\"run\",\"args\":[\"-q\",\"--no-cwd\"],"
                                            "\"fds\":{\"stdin\":0,\"stdout\":1,\"stderr\":2}}");
        json_object *argv = json_object_new_array();
        json_object_array_add(argv, json_object_new_string("/bin/sh"));
        json_object_array_add(argv, json_object_new_string("-c"));
        json_object_array_add(argv, json_object_new_string(cmd));
        json_object_object_add(q, "argv", argv);
        struct dir_stdin d = {dir, flags};
        aidp_test_daemon_raw(&A, sock, json_object_to_json_string(q), dir_and_null, NULL, &d, res,
                             size);
        json_object_put(q);
}

/* A directory passed as stdio would be a way out of the sandbox: through it
 * (fchdir, openat, /proc/self/fd/0/...) the job reaches and writes the host's
 * tree that its mount namespace hides, e.g. to leave decrypted data in the
 * caller's home. A directory or an O_PATH fd as stdin, stdout or stderr is
 * refused, and the job never runs. */
Test(daemon_hostile, a_directory_passed_as_stdio_is_refused)
{
        NEED();
        daemon_start();
        char escaped[300], cmd[600], res[1200];
        TEST_SNPRINTF(escaped, "%s/ESCAPED", A.home);
        TEST_SNPRINTF(cmd, "echo out > /proc/self/fd/0/ESCAPED");
        const int flags[] = {O_RDONLY | O_DIRECTORY, O_PATH | O_DIRECTORY};
        for (size_t i = 0; i < 2; i++) {
                run_with_dir_stdin(A.home, flags[i], cmd, res, sizeof res);
                struct stat st;
                cr_expect_neq(stat(escaped, &st), 0, "%s: the job wrote into A's home (%s)",
                              i ? "O_PATH" : "O_RDONLY", res);
                unlink(escaped);
                cr_expect(strstr(res, "error 120 request: stdin") == res, "%s", res);
        }
}

/* The same through the supervisor run directly (sudo, a scheduler): a
 * directory as its stdin (`< DIR`, or an O_PATH fd) is not the job's; the job
 * reads /dev/null. */
Test(daemon_hostile, a_directory_as_the_supervisors_stdin_is_not_the_jobs)
{
        NEED();
        char escaped[300], uid[32];
        TEST_SNPRINTF(escaped, "%s/ESCAPED", A.home);
        TEST_SNPRINTF(uid, "%u", (unsigned)A.uid);
        const int flags[] = {O_RDONLY | O_DIRECTORY, O_PATH | O_DIRECTORY};
        for (size_t i = 0; i < 2; i++) {
                pid_t pid = fork();
                cr_assert_geq(pid, 0);
                if (pid == 0) {
                        int d = open(A.home, flags[i]);
                        int null = open("/dev/null", O_WRONLY);
                        if (d < 0 || null < 0 || dup2(d, 0) < 0 || dup2(null, 1) < 0)
                                _exit(98);
                        execl(AIDP_SUPERVISOR, AIDP_SUPERVISOR, "run", "-q", "--no-cwd",
                              "--run-dir", rundir, "--user", uid, "--", "/bin/sh", "-c",
                              "echo out > /proc/self/fd/0/ESCAPED", (char *)NULL);
                        _exit(127);
                }
                int st = 0;
                waitpid(pid, &st, 0);
                struct stat sb;
                cr_expect_neq(stat(escaped, &sb), 0, "%s: the job wrote into A's home",
                              i ? "O_PATH" : "O_RDONLY");
                unlink(escaped);
        }
}

/* A detached run closes the client's stdio at once, and the fd number is
 * reused (the daemon's own log is kept there): a summary passed as the same
 * fd as stdin was then written into root's log, not the client's file. Each
 * use gets its own fd: a request that names one fd for two uses is refused,
 * and nothing is written anywhere. */
/* In the client, as A: the summary file it makes, its only fd. */
static int new_summary(int *fds, size_t max, void *arg)
{
        int f = open(arg, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (max < 1 || f < 0)
                return -1;
        fds[0] = f;
        return 1;
}

Test(daemon_hostile, one_fd_for_stdio_and_the_summary_is_refused)
{
        NEED();
        daemon_start();
        char summ[300], res[1200];
        TEST_SNPRINTF(summ, "%s/summary.json", A.home);
        unlink(summ);
        aidp_test_daemon_raw(&A, sock,
                             "{\"op\":\"run\",\"detach\":true,"
                             "\"args\":[\"-q\",\"--no-cwd\",\"--summary\",\"s\"],"
                             "\"argv\":[\"/bin/true\"],\"fds\":{\"stdin\":0,\"stdout\":0,"
                             "\"stderr\":0,\"summary\":0}}",
                             new_summary, NULL, summ, res, sizeof res);
        cr_expect(strstr(res, "error 120 request: fds.stdin and fds.summary are the same") == res,
                  "%s", res);
        struct stat st;
        cr_expect(stat(summ, &st) == 0 && st.st_size == 0, "the summary file was written");
        unlink(summ);
}

/* A run directory that is no tmpfs (detached runs' output and the journals
 * would reach a disk) or that everyone may list is told at the daemon's
 * start, and the daemon serves all the same. */
Test(daemon_hostile, a_run_directory_on_disk_or_listable_is_warned_about)
{
        NEED();
        char dir[1100], s2[1200];
        TEST_SNPRINTF(dir, "%s/disk-run", T);
        cr_assert_eq(mkdir(dir, 0755), 0);
        TEST_SNPRINTF(s2, "%s/aidp2.sock", T);
        struct statfs fs;
        cr_assert_eq(statfs(dir, &fs), 0);
        bool on_tmpfs = fs.f_type == TMPFS_MAGIC;
        char *argv[] = {AIDP_SUPERVISOR, "serve", "--socket", s2, "--run-dir", dir, NULL};
        struct aidp_proc d;
        cr_assert_eq(aidp_test_spawn(&d, argv), 0);
        struct stat st;
        for (int i = 0; i < 1000 && stat(s2, &st) < 0; i++)
                usleep(10000);
        cr_expect_eq(stat(s2, &st), 0, "the daemon never listened");
        kill(d.pid, SIGTERM);
        aidp_test_finish(&d);
        cr_expect(strstr(d.err, "is listable by everyone (mode 0755)") != NULL, "%s", d.err);
        cr_expect_eq(strstr(d.err, "is not a tmpfs") != NULL, !on_tmpfs, "%s", d.err);
        aidp_test_gc(dir);
}
