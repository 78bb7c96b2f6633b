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
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "supervisor/run/cgready.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "tests/priv/priv.h"
#include "tests/tpath.h"

enum { DEAD, LIVE, BUSY, PLAIN, OTHER, GONEDIR, N };

static char paths[N][8][PATH_MAX];
static size_t n_paths[N];
static pid_t kids[2];
/* This test's run directory, another instance's (alive), and one deleted. */
static char rundir[64], other[64], gone[64];
/* A delegated subtree (not root's), with an "aidp" parent below it. */
static char deleg[3][PATH_MAX];

static void cleanup(void)
{
        for (size_t k = 0; k < 2; k++)
                if (kids[k] > 0) {
                        kill(kids[k], SIGKILL);
                        waitpid(kids[k], NULL, 0);
                        kids[k] = 0;
                }
        for (size_t c = 0; c < N; c++)
                for (size_t i = n_paths[c]; i-- > 0;) {
                        rmdir(paths[c][i]);
                        /* and its "aidp" parent, when that left it empty (as a
                         * run's end does; a parent in use stays) */
                        char parent[PATH_MAX];
                        snprintf(parent, sizeof parent, "%s", paths[c][i]);
                        char *slash = strrchr(parent, '/');
                        if (!slash)
                                continue;
                        *slash = '\0';
                        const char *base = strrchr(parent, '/');
                        if (base && !strcmp(base, "/aidp"))
                                rmdir(parent);
                }
        for (int i = 3; i-- > 0;)
                if (deleg[i][0])
                        rmdir(deleg[i]);
        if (rundir[0])
                rmdir(rundir);
        if (other[0])
                rmdir(other);
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
        static const char *const what[] = {"dead", "live", "busy", "plain", "other", "gonedir"};
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

static void dirs_new(void)
{
        char *const d[] = {rundir, other, gone};
        static const char *const what[] = {"run", "other", "gone"};
        for (int i = 0; i < 3; i++) {
                snprintf(d[i], sizeof rundir, "/tmp/aidp-sweep-%s-XXXXXX", what[i]);
                cr_assert_not_null(mkdtemp(d[i]));
        }
}

/* Beside the "aidp" parent of the ready cgroup at `ready_dir`: a directory
 * delegated to nobody, with aidp/<x> below it marked as a gone maker's
 * (made by root, as a user's own directories could not be). */
static void delegated_new(const char *ready_dir, const char *mark)
{
        char base[PATH_MAX];
        snprintf(base, sizeof base, "%s", ready_dir);
        *strrchr(base, '/') = '\0'; /* its "aidp" parent */
        *strrchr(base, '/') = '\0'; /* where that lies */
        TEST_SNPRINTF(deleg[0], "%s/aidp-test-deleg-%d", base, (int)getpid());
        TEST_SNPRINTF(deleg[1], "%s/aidp", deleg[0]);
        TEST_SNPRINTF(deleg[2], "%s/x", deleg[1]);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(mkdir(deleg[i], 0755), 0, "%s: %s", deleg[i], strerror(errno));
        cr_assert_eq(chown(deleg[0], 65534, 65534), 0, "%s", strerror(errno));
        cr_assert_eq(setxattr(deleg[2], "trusted.aidp.ready", mark, strlen(mark), 0), 0, "%s",
                     strerror(errno));
}

Test(vm_cgready, the_sweep_takes_only_empty_ready_cgroups_whose_maker_is_gone)
{
        AIDP_REQUIRE_ROOT();
        dirs_new();
        /* A maker that is gone: a child, marked while alive, then reaped. */
        char dead[AIDP_CGREADY_MARK_MAX], live[AIDP_CGREADY_MARK_MAX];
        char dead_other[AIDP_CGREADY_MARK_MAX], dead_gone[AIDP_CGREADY_MARK_MAX];
        kids[0] = sleeper();
        cr_assert_eq(aidp_run_cgready_mark(kids[0], rundir, dead, sizeof dead), 0);
        cr_assert_eq(aidp_run_cgready_mark(kids[0], other, dead_other, sizeof dead_other), 0);
        cr_assert_eq(aidp_run_cgready_mark(kids[0], gone, dead_gone, sizeof dead_gone), 0);
        kill(kids[0], SIGKILL);
        waitpid(kids[0], NULL, 0);
        kids[0] = 0;
        cr_assert_eq(rmdir(gone), 0);
        cr_assert_eq(aidp_run_cgready_mark(getpid(), rundir, live, sizeof live), 0);
        aidp_cgroup_forget(ready(DEAD, dead));
        /* A gone maker of another instance (its run directory alive): that
         * instance's to sweep; of a run directory deleted: anyone's. */
        aidp_cgroup_forget(ready(OTHER, dead_other));
        aidp_cgroup_forget(ready(GONEDIR, dead_gone));
        delegated_new(paths[DEAD][0], dead);
        struct aidp_cgroup *lv = ready(LIVE, live);
        /* Gone maker, but a process in it (as a run's, its worker dead). */
        struct aidp_cgroup *busy = ready(BUSY, dead);
        kids[1] = sleeper();
        aidp_error err = {0};
        cr_assert_eq(aidp_cgroup_attach(busy, kids[1], false, &err), 0, "%s", err.msg);
        aidp_cgroup_forget(busy);
        struct aidp_cgroup *plain = ready(PLAIN, NULL);

        int n = aidp_run_cgready_sweep(rundir, NULL, NULL);
        cr_assert_geq(n, (int)n_paths[DEAD], "the sweep removed %d directories", n);
        cr_expect_eq(present(DEAD), 0, "%zu of the dead maker's directories are left",
                     present(DEAD));
        cr_expect_eq(present(LIVE), n_paths[LIVE], "a live maker's ready cgroup was taken");
        cr_expect_eq(present(BUSY), n_paths[BUSY], "a ready cgroup with a process was taken");
        cr_expect_eq(present(PLAIN), n_paths[PLAIN], "an unmarked cgroup was taken");
        cr_expect_eq(present(OTHER), n_paths[OTHER],
                     "a ready cgroup of another instance's live run directory was taken");
        cr_expect_eq(present(GONEDIR), 0, "a gone maker's of a deleted run directory is left");
        cr_expect_eq(access(deleg[2], F_OK), 0, "the sweep went into a delegated subtree");

        /* Its process gone, the busy one goes with the next sweep. */
        kill(kids[1], SIGKILL);
        waitpid(kids[1], NULL, 0);
        kids[1] = 0;
        for (int i = 0; i < 100 && present(BUSY); i++) {
                aidp_run_cgready_sweep(rundir, NULL, NULL);
                usleep(10000);
        }
        cr_expect_eq(present(BUSY), 0, "the emptied ready cgroup of a gone maker is left");
        cr_expect_eq(present(LIVE), n_paths[LIVE]);
        cr_expect_eq(aidp_cgroup_destroy(lv, &err), 0, "%s", err.msg);
        cr_expect_eq(aidp_cgroup_destroy(plain, &err), 0, "%s", err.msg);
}
