/* The old root's unmount off pid 1's path (supervisor/sandbox/oldroot.h): a
 * helper makes it and sits out its RCU grace period; pid 1 lets nothing of
 * the job run before the old root is out of its mount namespace. The fault
 * AIDP_FAULT_OLDROOT_SLOW_MS holds the helper back before its unmount, so a
 * pid 1 that did not wait would start the job with the host's whole tree
 * still stacked on its root: the job would see a second mount at "/" (the
 * host's root, parent the new root) and every host mount under it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <grp.h>

#include "daemon_util.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"

static struct aidp_proc P;

TestSuite(oldroot, .timeout = 60);

/* Runs script as the job of a direct run whose helper waits slow_ms before
 * its unmount; the job's stdout in P.out. */
static void run_slow(const char *slow_ms, const char *script)
{
        char rd[] = "/tmp/aidp-test-oldroot-XXXXXX";
        cr_assert_not_null(aidp_test_mkdtemp(rd));
        setenv("AIDP_FAULT_OLDROOT_SLOW_MS", slow_ms, 1);
        const char *const job[] = {"/bin/sh", "-c", script, NULL};
        int st = aidp_test_run_job(&P, rd, NULL, job);
        unsetenv("AIDP_FAULT_OLDROOT_SLOW_MS");
        aidp_test_rm_tree(rd);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
}

/* A job's mount table (its /proc/self/mountinfo in out), read as its first
 * act: one mount at "/" (the sandbox's tmpfs root), and every other mount's
 * parent among the mounts listed: no host mount, and no mount hanging from
 * one. */
static void expect_no_host_mount(char *out)
{
        uint64_t ids[512], parents[512], root_id = 0, root_parent = 0;
        size_t n = 0;
        int roots = 0;
        char fstype_root[64] = "", copy[sizeof P.out];
        snprintf(copy, sizeof copy, "%s", out);
        for (char *save = NULL, *l = strtok_r(out, "\n", &save); l && n < 512;
             l = strtok_r(NULL, "\n", &save)) {
                char point[4096], fstype[64];
                uint64_t id, parent;
                const char *dash = strstr(l, " - ");
                cr_assert(dash && sscanf(l, "%" SCNu64 " %" SCNu64 " %*s %*s %4095s", &id, &parent,
                                         point) == 3 &&
                                  sscanf(dash + 3, "%63s", fstype) == 1,
                          "not a mountinfo line: %s", l);
                ids[n] = id;
                parents[n++] = parent;
                if (!strcmp(point, "/")) {
                        roots++;
                        root_id = id;
                        root_parent = parent;
                        snprintf(fstype_root, sizeof fstype_root, "%s", fstype);
                }
        }
        cr_assert_gt(n, 5, "too few mounts: %s", copy);
        cr_expect_eq(roots, 1, "%d mounts at / when the job started (the old root still there):\n%s",
                     roots, copy);
        cr_expect_str_eq(fstype_root, "tmpfs", "the root is not the sandbox's tmpfs:\n%s", copy);
        for (size_t i = 0; i < n; i++) {
                if (ids[i] == root_id)
                        continue;
                bool listed = false;
                for (size_t k = 0; k < n; k++)
                        listed |= ids[k] == parents[i];
                cr_expect(listed && parents[i] != root_parent,
                          "mount %" PRIu64 " hangs from %" PRIu64 ", not a mount of the view:\n%s",
                          ids[i], parents[i], copy);
        }
}

/* A direct run whose helper is held back: the job must still start with the
 * old root gone. */
Test(oldroot, the_job_starts_only_once_the_old_root_is_gone)
{
        AIDP_REQUIRE_ROOT();
        run_slow("400", "exec cat /proc/self/mountinfo");
        expect_no_host_mount(P.out);
}

/* The helper ends (its grace period over) while the job runs, and pid 1
 * reaps it: a second later no other process of the namespace is pid 1's
 * program, and none is a zombie. */
Test(oldroot, the_helper_is_gone_while_the_job_runs)
{
        AIDP_REQUIRE_ROOT();
        run_slow("200", "sleep 1; for s in /proc/[0-9]*/stat; do read -r l < $s && echo \"$l\"; "
                        "done; echo END");
        cr_assert(strstr(P.out, "END"), "%s", P.out);
        int procs = 0;
        for (char *save = NULL, *l = strtok_r(P.out, "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
                int pid;
                char comm[64], state;
                if (sscanf(l, "%d (%63[^)]) %c", &pid, comm, &state) != 3)
                        continue;
                procs++;
                cr_expect(pid == 1 || strcmp(comm, "aidp-init"),
                          "pid %d (%s) in the sandbox besides pid 1:\n%s", pid, comm, P.out);
                cr_expect_neq(state, 'Z', "pid %d (%s) is a zombie:\n%s", pid, comm, P.out);
        }
        cr_expect_geq(procs, 2, "pid 1 and the job not listed:\n%s", P.out);
}

/* Whether this kernel has statmount (Linux 6.8): without it pid 1 unmounts
 * the old root itself and no helper is made (oldroot.h). */
static bool have_statmount(void)
{
        return syscall(457, NULL, NULL, (size_t)0, 0) < 0 && errno != ENOSYS;
}

/* A helper whose unmount fails (AIDP_FAULT_OLDROOT_FAIL: it ends with EIO and
 * unmounts nothing) ends the run before the go: exit 125 naming the step, the
 * job never ran, and nothing of the run is left in its run directory. On a
 * kernel without statmount (the VM's 6.1) there is no helper: pid 1 unmounts
 * itself and the run completes. */
Test(oldroot, a_failed_unmount_ends_the_run_before_the_job)
{
        AIDP_REQUIRE_ROOT();
        char rd[] = "/tmp/aidp-test-oldroot-XXXXXX";
        cr_assert_not_null(aidp_test_mkdtemp(rd));
        setenv("AIDP_FAULT_OLDROOT_FAIL", "1", 1);
        const char *const job[] = {"/bin/echo", "THE-JOB-RAN", NULL};
        int st = aidp_test_run_job(&P, rd, NULL, job);
        unsetenv("AIDP_FAULT_OLDROOT_FAIL");
        if (have_statmount()) {
                cr_expect_eq(st, 125, "exit %d\n%s\n%s", st, P.out, P.err);
                cr_expect(strstr(P.err, "sandbox setup failed at pivot_root (old root)"), "%s",
                          P.err);
                cr_expect_null(strstr(P.out, "THE-JOB-RAN"), "the job ran: %s", P.out);
        } else {
                cr_expect_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
                cr_expect(strstr(P.out, "THE-JOB-RAN"), "the job did not run: %s", P.out);
        }
        int left = aidp_test_sh("test -z \"$(ls -A %s)\"", rd);
        cr_expect_eq(left, 0, "the run left files in %s", rd);
        aidp_test_rm_tree(rd);
}

/* Through the daemon (pid 1 cloned by an idle worker's zygote, or by a worker
 * forked at accept): three runs in a row, each job's first act reading its
 * mount table, each without a host mount. No fault reaches a zygote's pid 1
 * (it has no environment): this is the path as it runs. */
static struct aidp_test_user A;
static char *T;
static char sock[100], rundir[1024];
static pid_t daemon_pid;
static bool ready;

static void daemon_setup(void)
{
        if (geteuid() == 0)
                ready = aidp_test_daemon_fixture(&T, "o", &A, sock, rundir, NULL, NULL, NULL);
}

static void daemon_teardown(void)
{
        aidp_test_daemon_fixture_end(&daemon_pid, sock, rundir, &T);
}

Test(oldroot, daemon_runs_start_with_no_host_mount, .init = daemon_setup, .fini = daemon_teardown)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, NULL, NULL, true);
        cr_assert_gt(daemon_pid, 0);
        for (int i = 0; i < 3; i++) {
                const char *args[] = {"-q", "--no-cwd", "--", "/bin/cat", "/proc/self/mountinfo",
                                      NULL};
                aidp_test_daemon_client(&P, &A, sock, args);
                int st = aidp_test_finish(&P);
                cr_assert_eq(st, 0, "run %d: exit %d\n%s", i, st, P.err);
                expect_no_host_mount(P.out);
                usleep(200000); /* the pool refilled: the next run a zygote's */
        }
}
