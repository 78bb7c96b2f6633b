#define _GNU_SOURCE
/* Many runs at once, and a full disk under the lineage log:
 *   16 supervisors started together append START and COMPLETE to one log:
 *   no record is lost or corrupt, the chain verifies, every run succeeds and
 *   leaves nothing behind (their cgroups share a parent that is created and
 *   removed concurrently);
 *   a run whose lineage log sits on a full filesystem is refused with a clear
 *   error and exit 116, and nothing of it is created. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/exitcodes.h"
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
        cr_expect_eq(count_lines(logp, NULL), 2 * N, "records in the log");
        cr_expect_eq(count_lines(logp, "\"eventType\":\"START\""), N);
        cr_expect_eq(count_lines(logp, "\"eventType\":\"COMPLETE\""), N);
        struct aidp_proc v;
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", "--key", keyp, logp, NULL};
        cr_expect_eq(aidp_test_run(&v, verify), 0, "%s%s", v.out, v.err);
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
