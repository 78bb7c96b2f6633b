/* The start-up overlap (supervisor/run/startup.c), exercised as root: pid 1 is
 * cloned while other supervisor threads are inside malloc and stdio, and the
 * run must complete as if they were not there. pid 1 relies on raw-syscall
 * setresuid, vfork and no lock such a thread can hold; a pid 1 that broke one
 * of those rules would block on a lock copied held into it, and the run would
 * hang here instead of passing unnoticed. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "priv.h"
#include "runner.h"

static struct aidp_proc P;
static char dir[64] = "", logp[PATH_MAX], rundir[PATH_MAX];

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-startup.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(logp, sizeof logp, "%s/lineage.jsonl", dir);
        snprintf(rundir, sizeof rundir, "%s/run", dir);
        char keyp[PATH_MAX];
        snprintf(keyp, sizeof keyp, "%s/lineage.key", dir);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
}

static void teardown(void)
{
        unsetenv("AIDP_FAULT_BUSY_AT_CLONE");
        unsetenv("AIDP_FAULT_SYNC_DELAY_MS");
        if (dir[0] && access(rundir, F_OK) == 0)
                aidp_test_gc(rundir); /* a run that hung: gc shreds and kills it */
        aidp_test_rm_tree(dir);
}

TestSuite(startup, .init = setup, .fini = teardown, .timeout = 240);

/* One run with the fault point on; fails the test if it hangs. Returns the
 * number of malloc/stdio rounds the busy thread did while pid 1 was cloned. */
static unsigned long busy_run(int i)
{
        char run_id[64];
        snprintf(run_id, sizeof run_id, "aidp-test-startup-%d-%d", (int)getpid(), i);
        char *argv[] = {
                AIDP_SUPERVISOR,       "run",  "--user",    "65534", "-q", "--run-id", run_id,
                "--run-dir",           rundir, "--lineage", logp,    "--", "/bin/sh",  "-c",
                "echo started; id -u", NULL};
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        if (!aidp_test_wait_output(&P, "started", 20000)) {
                kill(P.pid, SIGKILL);
                aidp_test_reap(&P);
                cr_assert_fail("run %d hung with a thread in malloc/stdio across the clone "
                               "(pid 1 waits on a lock that thread held):\n%s",
                               i, P.err);
        }
        int st = aidp_test_finish(&P);
        cr_assert_eq(st, 0, "run %d: exit %d\n%s", i, st, P.err);
        cr_assert(strstr(P.out, "65534\n"), "run %d: the job ran as %s", i, P.out);
        cr_assert(!aidp_test_cgroup_exists(run_id), "run %d: its cgroup survived", i);
        const char *m = strstr(P.err, "fault busy-at-clone: ");
        if (AIDP_SERIAL_STARTUP) {
                /* -DAIDP_SERIAL_STARTUP=ON: no thread, so nothing can be busy */
                cr_assert_null(m, "run %d: a serial start-up had a thread:\n%s", i, P.err);
                return 0;
        }
        cr_assert_not_null(m, "run %d: the fault point did not act:\n%s", i, P.err);
        return strtoul(m + strlen("fault busy-at-clone: "), NULL, 10);
}

/* The warm-up thread, kept in a malloc/free + fprintf loop across the clone,
 * with START's fsync held back so that both helper threads live through it. */
Test(startup, pid1_cloned_while_a_thread_is_inside_malloc_and_stdio)
{
        AIDP_REQUIRE_ROOT();
        setenv("AIDP_FAULT_BUSY_AT_CLONE", "1", 1);
        setenv("AIDP_FAULT_SYNC_DELAY_MS", "20", 1);
        unsigned long rounds = 0;
        for (int i = 0; i < 12; i++)
                rounds += busy_run(i);
        /* the thread was at work while the clone happened, not parked */
        if (!AIDP_SERIAL_STARTUP)
                cr_assert_gt(rounds, 0, "the busy thread did nothing across the clones");
}
