/* The sweep of ready cgroups whose record is gone (supervisor/run/cgready.h,
 * aidp_run_cgready_sweep): each ready cgroup carries its maker on itself,
 * and only those whose maker is gone and that hold no process are removed,
 * in every hierarchy (v1 here, the pure v2 of scripts/vm-test's VM). A live
 * maker's and an unmarked cgroup (a run's own) stay. Made with the default
 * parent ("aidp"), where ready cgroups live, under names of this test. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/run/cgready.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "tests/priv/priv.h"

enum { DEAD, LIVE, BUSY, PLAIN, N };

static char paths[N][8][PATH_MAX];
static size_t n_paths[N];
static pid_t kids[2];

static void cleanup(void)
{
        for (size_t k = 0; k < 2; k++)
                if (kids[k] > 0) {
                        kill(kids[k], SIGKILL);
                        waitpid(kids[k], NULL, 0);
                        kids[k] = 0;
                }
        for (size_t c = 0; c < N; c++)
                for (size_t i = n_paths[c]; i-- > 0;)
                        rmdir(paths[c][i]);
}

TestSuite(vm_cgready, .fini = cleanup, .timeout = 60);

/* A child that waits until killed. */
static pid_t sleeper(void)
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                for (;;)
                        pause();
        }
        return pid;
}

static struct aidp_cgroup *ready(int which, const char *mark)
{
        char name[64];
        static const char *const what[] = {"dead", "live", "busy", "plain"};
        snprintf(name, sizeof name, "aidp-test-sweep-%s-%d", what[which], (int)getpid());
        struct aidp_cgroup *cg = NULL;
        aidp_error err = {0};
        if (which == PLAIN) {
                struct aidp_cgroup_limits none = {0};
                cr_assert_eq(aidp_cgroup_create(NULL, name, &none, &cg, &err), 0, "%s", err.msg);
        } else
                cr_assert_eq(aidp_cgroup_prepare(NULL, name, -1, NULL, mark, &cg, &err), 0, "%s",
                             err.msg);
        const char *p[8];
        n_paths[which] = aidp_cgroup_paths(cg, p, 8);
        for (size_t i = 0; i < n_paths[which]; i++)
                snprintf(paths[which][i], PATH_MAX, "%s", p[i]);
        cr_assert_gt(n_paths[which], 0);
        return cg;
}

static size_t present(int which)
{
        size_t n = 0;
        for (size_t i = 0; i < n_paths[which]; i++)
                n += access(paths[which][i], F_OK) == 0;
        return n;
}

Test(vm_cgready, the_sweep_takes_only_empty_ready_cgroups_whose_maker_is_gone)
{
        AIDP_REQUIRE_ROOT();
        /* A maker that is gone: a child, marked while alive, then reaped. */
        char dead[96], live[96];
        kids[0] = sleeper();
        cr_assert_eq(aidp_run_cgready_mark(kids[0], dead, sizeof dead), 0);
        kill(kids[0], SIGKILL);
        waitpid(kids[0], NULL, 0);
        kids[0] = 0;
        cr_assert_eq(aidp_run_cgready_mark(getpid(), live, sizeof live), 0);
        aidp_cgroup_forget(ready(DEAD, dead));
        struct aidp_cgroup *lv = ready(LIVE, live);
        /* Gone maker, but a process in it (as a run's, its worker dead). */
        struct aidp_cgroup *busy = ready(BUSY, dead);
        kids[1] = sleeper();
        aidp_error err = {0};
        cr_assert_eq(aidp_cgroup_attach(busy, kids[1], false, &err), 0, "%s", err.msg);
        aidp_cgroup_forget(busy);
        struct aidp_cgroup *plain = ready(PLAIN, NULL);

        int n = aidp_run_cgready_sweep(NULL, NULL);
        cr_assert_geq(n, (int)n_paths[DEAD], "the sweep removed %d directories", n);
        cr_expect_eq(present(DEAD), 0, "%zu of the dead maker's directories are left",
                     present(DEAD));
        cr_expect_eq(present(LIVE), n_paths[LIVE], "a live maker's ready cgroup was taken");
        cr_expect_eq(present(BUSY), n_paths[BUSY], "a ready cgroup with a process was taken");
        cr_expect_eq(present(PLAIN), n_paths[PLAIN], "an unmarked cgroup was taken");

        /* Its process gone, the busy one goes with the next sweep. */
        kill(kids[1], SIGKILL);
        waitpid(kids[1], NULL, 0);
        kids[1] = 0;
        for (int i = 0; i < 100 && present(BUSY); i++) {
                aidp_run_cgready_sweep(NULL, NULL);
                usleep(10000);
        }
        cr_expect_eq(present(BUSY), 0, "the emptied ready cgroup of a gone maker is left");
        cr_expect_eq(present(LIVE), n_paths[LIVE]);
        cr_expect_eq(aidp_cgroup_destroy(lv, &err), 0, "%s", err.msg);
        cr_expect_eq(aidp_cgroup_destroy(plain, &err), 0, "%s", err.msg);
}
