#define _GNU_SOURCE
/* Many runs at once, and a full disk under the lineage log:
 *   16 supervisors started together append START and COMPLETE to one log:
 *   no record is lost or corrupt, the chain verifies, every run succeeds and
 *   leaves nothing behind (their cgroups share a parent that is created and
 *   removed concurrently);
 *   a run whose lineage log sits on a full filesystem is refused with a clear
 *   error and exit 116, and nothing of it is created. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "lineage_util.h"
#include "priv.h"
#include "runner.h"

#define N 16

static int count_lines(const char *path, const char *needle)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        char *line = NULL;
        size_t cap = 0;
        int n = 0;
        while (getline(&line, &cap, f) > 0)
                if (!needle || strstr(line, needle))
                        n++;
        free(line);
        fclose(f);
        return n;
}

/* A list of the keys of o, for the diagnostic below. */
static void keys_of(json_object *o, char *buf, size_t len)
{
        buf[0] = '\0';
        if (!o || !json_object_is_type(o, json_type_object))
                return;
        size_t n = 0;
        json_object_object_foreach(o, k, v)
        {
                (void)v;
                int w = snprintf(buf + n, len - n, "%s%s", n ? "," : "", k);
                if (w < 0 || (size_t)w >= len - n)
                        return;
                n += (size_t)w;
        }
}

/* When the log is not what the runs should have left: every line's event
 * type, run, exit facet (an end record's reason says why it is not COMPLETE),
 * the run facets it carries, and every run's exit status and stderr. */
static void explain_log(const char *logp, struct aidp_proc *procs, char ids[][64], int n)
{
        fprintf(stderr, "--- lineage log %s, line by line:\n", logp);
        FILE *f = fopen(logp, "re");
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        for (int i = 1; f && (len = getline(&line, &cap, f)) > 0; i++) {
                json_object *ev = json_tokener_parse(line);
                if (!ev) {
                        fprintf(stderr, "line %d: %zd bytes, not JSON: %.300s\n", i, len, line);
                        continue;
                }
                char facets[512];
                keys_of(aidp_test_json_at(ev, "run.facets"), facets, sizeof facets);
                fprintf(stderr,
                        "line %d: %zd bytes, eventType %s, run %s, exitCode %s, status %s, "
                        "reason [%s], oomKills %s, started %s, facets [%s]\n",
                        i, len, aidp_test_json_str(ev, "eventType"),
                        aidp_test_json_str(ev, "run.facets.aidp_run.runName"),
                        aidp_test_json_str(ev, "run.facets.aidp_exit.exitCode"),
                        aidp_test_json_str(ev, "run.facets.aidp_exit.status"),
                        aidp_test_json_str(ev, "run.facets.aidp_exit.reason"),
                        aidp_test_json_str(ev, "run.facets.aidp_exit.oomKills"),
                        aidp_test_json_str(ev, "run.facets.aidp_exit.started"), facets);
                json_object_put(ev);
        }
        free(line);
        if (f)
                fclose(f);
        for (int i = 0; i < n; i++)
                fprintf(stderr, "run %d (%s): exit %d, stdout [%.*s], stderr [%.*s]\n", i, ids[i],
                        procs[i].status, (int)procs[i].out_len, procs[i].out, (int)procs[i].err_len,
                        procs[i].err);
}

Test(concurrent, sixteen_supervisors_share_one_lineage_log, .timeout = 180)
{
        AIDP_REQUIRE_ROOT();
        char dir[] = "/var/tmp/aidp-test-conc-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char logp[PATH_MAX], keyp[PATH_MAX], rundir[PATH_MAX];
        snprintf(logp, sizeof logp, "%s/lineage.jsonl", dir);
        snprintf(keyp, sizeof keyp, "%s/lineage.key", dir);
        snprintf(rundir, sizeof rundir, "%s/run", dir);
        static struct aidp_proc procs[N];
        char ids[N][64];
        char conc_ids[64];
        snprintf(conc_ids, sizeof conc_ids, "aidp-test-conc-%d-", (int)getpid());
        const char *const mine[] = {dir, conc_ids, NULL};
        int mounts_before = aidp_test_mounts_of(mine);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        for (int i = 0; i < N; i++) {
                snprintf(ids[i], sizeof ids[i], "aidp-test-conc-%d-%d", (int)getpid(), i);
                char *argv[] = {AIDP_SUPERVISOR,
                                "run",
                                "-q",
                                "--user",
                                "65534",
                                "--no-cwd",
                                "--run-dir",
                                rundir,
                                "--lineage",
                                logp,
                                "--run-id",
                                ids[i],
                                "--",
                                "/bin/sh",
                                "-c",
                                "echo $AIDP_RUN_ID > /scratch/id && cat /scratch/id",
                                NULL};
                cr_assert_eq(aidp_test_spawn(&procs[i], argv), 0);
        }
        unsetenv("AIDP_LINEAGE_KEY");
        int ok = 0;
        for (int i = 0; i < N; i++) {
                int st = aidp_test_finish(&procs[i]);
                cr_expect_eq(st, 0, "run %d: exit %d: %s", i, st, procs[i].err);
                cr_expect(strstr(procs[i].out, ids[i]) != NULL, "run %d: out [%s] err [%s]", i,
                          procs[i].out, procs[i].err);
                ok += st == 0;
        }
        cr_expect_eq(ok, N);
        int lines = count_lines(logp, NULL);
        int starts = count_lines(logp, "\"eventType\":\"START\"");
        int completes = count_lines(logp, "\"eventType\":\"COMPLETE\"");
        cr_expect_eq(lines, 2 * N, "records in the log: %d", lines);
        cr_expect_eq(starts, N, "START records: %d", starts);
        cr_expect_eq(completes, N, "COMPLETE records: %d", completes);
        static struct aidp_proc v;
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        int vrc = aidp_test_run(&v, verify);
        cr_expect_eq(vrc, 0, "%s%s", v.out, v.err);
        if (ok != N || lines != 2 * N || starts != N || completes != N || vrc != 0)
                explain_log(logp, procs, ids, N);
        for (int i = 0; i < N; i++)
                cr_expect(!aidp_test_cgroup_exists(ids[i]), "run %d left its cgroup", i);
        cr_expect_eq(aidp_test_mounts_of(mine), mounts_before);
        rmdir(rundir);
        char p[PATH_MAX + 16];
        snprintf(p, sizeof p, "%s.anchor", logp);
        unlink(p);
        unlink(logp);
        unlink(keyp);
        rmdir(dir);
}

Test(concurrent, full_disk_under_the_lineage_log_refuses_the_run, .timeout = 180)
{
        AIDP_REQUIRE_ROOT();
        /* A 64 KiB filesystem of its own, in this test's mount namespace only. */
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                if (unshare(CLONE_NEWNS) < 0 ||
                    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit(10);
                char dir[] = "/var/tmp/aidp-test-full-XXXXXX";
                if (!mkdtemp(dir))
                        _exit(11);
                if (mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700") < 0)
                        _exit(12);
                /* Its own run directory and run id: other runs of this test
                 * (another worktree) may run at the same time. */
                char fill[PATH_MAX], logp[PATH_MAX], keyp[PATH_MAX], first[PATH_MAX],
                        rundir[] = "/var/tmp/aidp-test-full-run-XXXXXX", run_id[64];
                if (!mkdtemp(rundir))
                        _exit(11);
                snprintf(run_id, sizeof run_id, "aidp-test-full-disk-%d", (int)getpid());
                snprintf(logp, sizeof logp, "%s/lineage.jsonl", dir);
                /* The key is made by a first run into a log of its own: a log
                 * that already exists has room left in its last page (tmpfs
                 * allocates pages), where a START record may still fit. */
                snprintf(first, sizeof first, "%s/first.jsonl", dir);
                snprintf(keyp, sizeof keyp, "%s/lineage.key", dir);
                /* the key first (it fits), then fill the rest */
                setenv("AIDP_LINEAGE_KEY", keyp, 1);
                struct aidp_proc P;
                char *ok[] = {AIDP_SUPERVISOR,
                              "run",
                              "-q",
                              "--user",
                              "65534",
                              "--no-cwd",
                              "--run-dir",
                              rundir,
                              "--lineage",
                              first,
                              "--",
                              "/bin/true",
                              NULL};
                if (aidp_test_run(&P, ok) != 0)
                        _exit(13);
                snprintf(fill, sizeof fill, "%s/fill", dir);
                int fd = open(fill, O_CREAT | O_WRONLY, 0600);
                char buf[4096] = {0};
                /* Page by page, until the file system has no page left
                 * (each write at a page boundary needs exactly one). */
                while (write(fd, buf, sizeof buf) > 0)
                        ;
                close(fd);
                struct statfs sf;
                if (statfs(dir, &sf) < 0 || sf.f_bavail != 0) {
                        fprintf(stderr, "%llu blocks still free\n",
                                (unsigned long long)sf.f_bavail);
                        _exit(14);
                }
                off_t before = 0;
                struct stat st;
                if (stat(logp, &st) == 0)
                        before = st.st_size;
                /* tmpfs hands out whole pages: an append that fits in the
                 * rest of the log's last page needs no free space. Binds
                 * (each listed in START's aidp_binds) make this START larger
                 * than a page, so it can never fit in that rest. */
                char *run[160] = {AIDP_SUPERVISOR, "run",  "--user",    "65534", "--no-cwd",
                                  "--run-dir",     rundir, "--lineage", logp,    "--run-id",
                                  run_id};
                int n = 11;
                static char binds[64][48];
                for (int i = 0; i < 64; i++) {
                        snprintf(binds[i], sizeof binds[i], "/usr:/mnt/aidp-test-pad-%02d", i);
                        run[n++] = "--ro-bind";
                        run[n++] = binds[i];
                }
                const char *job[] = {"--", "/bin/sh", "-c", "echo JOB-RAN", NULL};
                for (int i = 0; job[i]; i++)
                        run[n++] = (char *)job[i];
                run[n] = NULL;
                int rc = aidp_test_run(&P, run);
                int res = 0;
                if (rc != AIDP_EXIT_LINEAGE)
                        res = 20;
                else if (strstr(P.out, "JOB-RAN"))
                        res = 21;
                else if (!strstr(P.err, "does not start") || !strstr(P.err, "No space left"))
                        res = 22;
                else if (stat(logp, &st) == 0 && st.st_size != before)
                        res = 23;
                else if (aidp_test_cgroup_exists(run_id))
                        res = 24;
                if (res)
                        fprintf(stderr, "exit %d\n%s\n", rc, P.err);
                unlink(first);
                umount2(dir, MNT_DETACH);
                rmdir(dir);
                rmdir(rundir);
                _exit(res);
        }
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st), "child crashed");
        cr_assert_eq(WEXITSTATUS(st), 0,
                     "step %d failed (13: first run, 14: pages left, 20: exit not 116, 21: job "
                     "ran, 22: message, "
                     "23: log changed, 24: cgroup left)",
                     WEXITSTATUS(st));
}

/* A mount below / that lives a few milliseconds, the way another run's pinned
 * namespace does (nspin.h: a bind on a file of its run directory, which its
 * end unmounts and unlinks; the unlink detaches the copy in every other
 * namespace), over and over, until killed. */
static _Noreturn void churn_mounts(const char *dir)
{
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        enum { SLOTS = 32 };
        for (unsigned i = 0;; i++) {
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s/m%u", dir, i % SLOTS);
                if (i >= SLOTS) {
                        umount2(p, MNT_DETACH);
                        unlink(p);
                }
                int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
                if (fd >= 0)
                        close(fd);
                mount(p, p, NULL, MS_BIND, NULL);
                struct timespec ts = {0, 200 * 1000};
                nanosleep(&ts, NULL);
        }
}

/* In a mount namespace of the test's own (the runs start in it too, and
 * nothing of it reaches the host's): a fresh directory for the mounts and
 * one for the run journals. 0, or the step that failed (10, 11). */
static int own_ns_dirs(char *dir, char *rundir)
{
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return 10;
        if (!mkdtemp(dir))
                return 11;
        if (!mkdtemp(rundir)) {
                rmdir(dir);
                return 11;
        }
        return 0;
}

/* Everything in dir (unmounted first), dir and rundir. */
static void clear_dirs(const char *dir, const char *rundir)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)))
                if (e->d_name[0] != '.') {
                        char p[PATH_MAX];
                        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                        umount2(p, MNT_DETACH);
                        unlink(p);
                }
        if (d)
                closedir(d);
        rmdir(dir);
        rmdir(rundir);
}

/* body in a child process (its own mount namespace goes with it): it must
 * return 0; else the step it returns fails the test, explained by steps. */
static void in_child(int (*body)(void), const char *steps)
{
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0)
                _exit(body());
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st), "child crashed");
        cr_assert_eq(WEXITSTATUS(st), 0, "step %d failed (%s)", WEXITSTATUS(st), steps);
}

static int runs_among_churning_mounts(void)
{
        char dir[] = "/var/tmp/aidp-test-churn-XXXXXX",
             rundir[] = "/var/tmp/aidp-test-churn-run-XXXXXX";
        int res = own_ns_dirs(dir, rundir);
        if (res)
                return res;
        pid_t churner = fork();
        if (churner == 0)
                churn_mounts(dir);
        int failed = 0;
        static struct aidp_proc P;
        for (int i = 0; churner > 0 && i < 8; i++) {
                char *run[] = {AIDP_SUPERVISOR, "run",  "-q", "--user",    "65534", "--no-cwd",
                               "--run-dir",     rundir, "--", "/bin/true", NULL};
                int rc = aidp_test_run(&P, run);
                if (rc != 0 && failed++ == 0)
                        fprintf(stderr, "run %d: exit %d: %s\n", i, rc, P.err);
        }
        if (churner > 0) {
                kill(churner, SIGKILL);
                waitpid(churner, NULL, 0);
        }
        clear_dirs(dir, rundir);
        return churner < 0 ? 12 : failed ? 20 : 0;
}

/* Runs that start while host mounts come and go (concurrent runs pin and
 * release their namespaces below the run directory): a mount that is gone
 * by the time pid 1 moves it onto its mask overlay showed nothing, and the
 * run goes on. Before, pid 1 failed at "mounts" (EINVAL or ENOENT naming the
 * other run's mnt.ns), which cut sixteen_supervisors' COMPLETE count short. */
Test(concurrent, host_mounts_that_come_and_go_fail_no_starting_run, .timeout = 180)
{
        AIDP_REQUIRE_ROOT();
        in_child(runs_among_churning_mounts,
                 "10: namespace, 11: directories, 12: fork, 20: a run failed, see its error above");
}

static int run_while_its_mount_goes(void)
{
        char dir[] = "/var/tmp/aidp-test-gone-XXXXXX",
             rundir[] = "/var/tmp/aidp-test-gone-run-XXXXXX";
        int res = own_ns_dirs(dir, rundir);
        if (res)
                return res;
        char m[PATH_MAX], fifo[PATH_MAX], job[PATH_MAX + 64];
        snprintf(m, sizeof m, "%s/m", dir);
        snprintf(fifo, sizeof fifo, "%s/fifo", dir);
        snprintf(job, sizeof job, "test ! -e %s && echo NOTHING-THERE", m);
        int fd = -1;
        if (close(open(m, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) < 0 ||
            mount(m, m, NULL, MS_BIND, NULL) < 0 || mkfifo(fifo, 0600) < 0 ||
            (fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
                res = 12;
        setenv("AIDP_FAULT_MASK_CHILD", dir, 1);
        static struct aidp_proc P;
        char *run[] = {
                AIDP_SUPERVISOR, "run", "-q",      "--user", "65534", "--no-cwd", "--run-dir",
                rundir,          "--",  "/bin/sh", "-c",     job,     NULL};
        if (res == 0 && aidp_test_spawn(&P, run) < 0)
                res = 13;
        /* pid 1 says it is there; then the mount goes, as at the end of
         * another run (nspin_release: unmount, then unlink). */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char c;
        if (res == 0 && (poll(&pfd, 1, 60000) != 1 || read(fd, &c, 1) != 1))
                res = 14;
        umount2(m, MNT_DETACH);
        unlink(m);
        if (res == 0 || res == 14) {
                int rc = aidp_test_finish(&P);
                if (res == 0 && rc != 0)
                        res = 20;
                else if (res == 0 && !strstr(P.out, "NOTHING-THERE"))
                        res = 21;
                if (res)
                        fprintf(stderr, "exit %d\nout: %s\nerr: %s\n", rc, P.out, P.err);
        }
        if (fd >= 0)
                close(fd);
        clear_dirs(dir, rundir);
        return res;
}

/* The same at the one moment that matters, every time: pid 1 has found the
 * mount below /var (a mask group: /var/lib/aidp is masked) and is about to
 * clone it onto its overlay when the host unmounts and unlinks it
 * (AIDP_FAULT_MASK_CHILD holds pid 1 there until it is gone). The run goes
 * on, and the job sees nothing at that path. */
Test(concurrent, a_host_mount_removed_while_pid1_moves_it_fails_no_run, .timeout = 120)
{
        AIDP_REQUIRE_ROOT();
        in_child(run_while_its_mount_goes,
                 "10: namespace, 11: directories, 12: the mount or fifo, 13: spawn, 14: pid 1 "
                 "never reached the mount, 20: the run failed, 21: the job saw something at the "
                 "mount's path");
}
