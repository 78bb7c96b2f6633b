/* After pid 1's pivot_root, the old root's lazy unmount takes every host mount
 * out of the sandbox's namespace before the job starts (sandbox.c; measured
 * in docs/run-core.md, "The old root's unmount: measured, left as it is"):
 * the job's first act reads its mount table, on the direct path and through
 * the daemon (pid 1 cloned by a zygote). With the unmount left out the job
 * sees a second mount at "/" (the host's root, parent the new root) and every
 * host mount under it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grp.h>

#include "daemon_util.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"

static struct aidp_proc P;

TestSuite(oldroot, .timeout = 60);

/* Runs script as the job of a direct run; the job's stdout in P.out. */
static void run_direct(const char *script)
{
        char rd[] = "/tmp/aidp-test-oldroot-XXXXXX";
        cr_assert_not_null(aidp_test_mkdtemp(rd));
        const char *const job[] = {"/bin/sh", "-c", script, NULL};
        int st = aidp_test_run_job(&P, rd, NULL, job);
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
                cr_assert(dash &&
                                  sscanf(l, "%" SCNu64 " %" SCNu64 " %*s %*s %4095s", &id, &parent,
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
        cr_expect_eq(roots, 1,
                     "%d mounts at / when the job started (the old root still there):\n%s", roots,
                     copy);
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

Test(oldroot, a_direct_runs_job_starts_with_no_host_mount)
{
        AIDP_REQUIRE_ROOT();
        run_direct("exec cat /proc/self/mountinfo");
        expect_no_host_mount(P.out);
}

/* Through the daemon (pid 1 cloned by an idle worker's zygote, or by a worker
 * forked at accept): three runs in a row, each job's first act reading its
 * mount table, each without a host mount. */
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
