/* Ready-made cgroups (supervisor/run/cgready.h, issue 16): each idle worker
 * of aidp-supervisor serve makes the cgroup of the run it will serve, named
 * after that run's id, and the run only writes its limits. Checked here:
 *   - the job runs in the ready cgroup (its /proc/self/cgroup, inside its
 *     cgroup namespace, is the root of every hierarchy), and that cgroup has
 *     the profile's limits while the job runs, which it had not before;
 *   - a ready cgroup no run takes goes with its worker or its daemon;
 *   - one left by a killed daemon is removed by gc at the next start.
 * With a real unprivileged user and a daemon of the test's own. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "daemon_util.h"
#include "priv.h"
#include "runner.h"
#include "supervisor/sandbox/devnodes.h"
#include "testusers.h"
#include "tests/sealed_util.h"

#define MiB (1024ull * 1024)

static struct aidp_test_user A;
static char *T;
static char sock[100], rundir[1024], ready_dir[1100], logp[1024], keyp[1024], policy[1024],
        profiles[1024];
static pid_t daemon_pid;
static bool ready;

static void daemon_start(void)
{
        char k[1100], pd[1100], pp[1100];
        TEST_SNPRINTF(k, "AIDP_LINEAGE_KEY=%s", keyp);
        TEST_SNPRINTF(pd, "AIDP_POLICY_DIR=%s", policy);
        TEST_SNPRINTF(pp, "AIDP_PROFILE_PATH=%s", profiles);
        const char *env[] = {k, pd, pp, NULL};
        const char *a[] = {"--lineage", logp, NULL};
        daemon_pid = aidp_test_daemon_spawn(sock, A.gid, rundir, a, env, true);
}

static void daemon_stop(void)
{
        if (daemon_pid <= 0)
                return;
        aidp_test_daemon_stop(daemon_pid, sock);
        daemon_pid = 0;
}

static void setup(void)
{
        if (geteuid() != 0)
                return;
        T = tmpdir_new();
        chmod(T, 0755);
        if (aidp_test_user_create("c", &A) < 0)
                return;
        TEST_SNPRINTF(sock, "%s/aidp.sock", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(ready_dir, "%s/.ready", rundir);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        /* No policy file: runs without sealed data are not decided. */
        TEST_SNPRINTF(policy, "%s/policy", T);
        TEST_SNPRINTF(profiles, "%s/profiles", T);
        if (mkdir(policy, 0755) < 0 || mkdir(profiles, 0755) < 0)
                return;
        /* Limits that no default has, so that the test sees its own. */
        char p[1200];
        TEST_SNPRINTF(p, "%s/cgready.yaml", profiles);
        FILE *f = fopen(p, "w");
        if (!f)
                return;
        fprintf(f, "apiVersion: aidp/v1\nkind: Profile\nmetadata:\n  name: cgready\n"
                   "limits:\n  memory: 192Mi\n  cpus: 1\n  pids: 48\nnetwork: none\n");
        if (fclose(f) != 0)
                return;
        ready = true;
}

static void teardown(void)
{
        daemon_stop();
        if (T)
                aidp_test_gc(rundir);
        aidp_test_users_cleanup();
        if (T)
                tmpdir_rm(T);
        T = NULL;
}

TestSuite(cgroup_ready, .init = setup, .fini = teardown, .timeout = 120);

static void need(void)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "set-up failed (%s)", aidp_test_users_why());
}

/* The ready records (their run ids), once the pool holds at least want. */
static size_t ready_ids(char ids[][40], size_t max, size_t want)
{
        size_t n = 0;
        for (int i = 0; i < 500; i++) {
                n = 0;
                DIR *d = opendir(ready_dir);
                for (struct dirent *e; d && (e = readdir(d));)
                        if (e->d_name[0] != '.' && strlen(e->d_name) == 36 && n < max)
                                snprintf(ids[n++], 40, "%.36s", e->d_name);
                if (d)
                        closedir(d);
                if (n >= want)
                        break;
                usleep(10000);
        }
        return n;
}

/* The test's daemon, once its idle workers have made their ready cgroups. */
static size_t daemon_start_ready(char ids[][40], size_t max)
{
        daemon_start();
        size_t n = ready_ids(ids, max, 2);
        cr_assert_geq(n, 2, "the idle workers made %zu ready cgroups", n);
        return n;
}

static bool v2_host(void)
{
        struct statfs s;
        return statfs("/sys/fs/cgroup", &s) == 0 && s.f_type == 0x63677270; /* CGROUP2 */
}

/* The run's directory of a controller: v2 its one directory, v1 the one
 * named id in that controller's hierarchy (found with find(1)). */
static bool run_dir_of(const char *id, const char *ctrl, char *out, size_t len)
{
        if (v2_host())
                return snprintf(out, len, "/sys/fs/cgroup/aidp/%s", id) < (int)len &&
                       access(out, F_OK) == 0;
        char cmd[512];
        TEST_SNPRINTF(cmd, "find -H /sys/fs/cgroup/%s -maxdepth 8 -type d -name %s", ctrl, id);
        FILE *f = popen(cmd, "r");
        cr_assert_not_null(f);
        bool ok = fgets(out, (int)len, f) != NULL;
        pclose(f);
        if (ok)
                out[strcspn(out, "\n")] = '\0';
        return ok && out[0];
}

static unsigned long long value(const char *dir, const char *file)
{
        char p[1200], buf[64] = "";
        TEST_SNPRINTF(p, "%s/%s", dir, file);
        FILE *f = fopen(p, "r");
        cr_assert_not_null(f, "%s: %s", p, strerror(errno));
        cr_assert_not_null(fgets(buf, sizeof buf, f), "%s empty", p);
        fclose(f);
        if (!strncmp(buf, "max", 3))
                return ~0ull;
        return strtoull(buf, NULL, 10);
}

/* pids.max (v2 and v1 alike), the memory limit and the cpu quota of the
 * run's cgroup id. */
static void limits_of(const char *id, unsigned long long *pids, unsigned long long *mem,
                      unsigned long long *quota)
{
        char d[1100];
        cr_assert(run_dir_of(id, "pids", d, sizeof d), "no pids cgroup named %s", id);
        *pids = value(d, "pids.max");
        cr_assert(run_dir_of(id, "memory", d, sizeof d), "no memory cgroup named %s", id);
        *mem = value(d, v2_host() ? "memory.max" : "memory.limit_in_bytes");
        cr_assert(run_dir_of(id, "cpu", d, sizeof d), "no cpu cgroup named %s", id);
        if (v2_host()) {
                char p[1200], buf[64] = "";
                TEST_SNPRINTF(p, "%s/cpu.max", d);
                FILE *f = fopen(p, "r");
                cr_assert_not_null(f);
                cr_assert_not_null(fgets(buf, sizeof buf, f));
                fclose(f);
                *quota = strncmp(buf, "max", 3) ? strtoull(buf, NULL, 10) : ~0ull;
        } else {
                long long q = (long long)value(d, "cpu.cfs_quota_us");
                *quota = q < 0 ? ~0ull : (unsigned long long)q;
        }
}

/* A worker names its record before it makes the cgroup (so that gc always
 * finds what it made): wait until every hierarchy the test reads has it. */
static void wait_made(const char *id)
{
        static const char *const ctrls[] = {"pids", "memory", "cpu"};
        char d[1100];
        for (size_t i = 0; i < ARRAY_SIZE(ctrls); i++) {
                int tries = 0;
                while (!run_dir_of(id, ctrls[i], d, sizeof d) && tries++ < 1000)
                        usleep(10000);
                cr_assert_lt(tries, 1000, "the ready cgroup %s has no %s directory", id, ctrls[i]);
        }
}

static bool listed(char ids[][40], size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(ids[i], id))
                        return true;
        return false;
}

/* A client of the test's daemon running args, whose job prints
 * "id=$AIDP_RUN_ID" then "started": its run id, once started; returns where
 * the id line is in p->out. */
static char *client_started(struct aidp_proc *p, const char *const *args, char id[40])
{
        aidp_test_daemon_client(p, &A, sock, args);
        cr_assert(aidp_test_wait_output(p, "started", 20000), "the job did not start: %s%s", p->out,
                  p->err);
        char *idl = strstr(p->out, "id=");
        cr_assert_not_null(idl);
        snprintf(id, 40, "%.36s", idl + 3);
        return idl;
}

Test(cgroup_ready, the_job_runs_in_a_ready_cgroup_with_the_runs_limits)
{
        need();
        char ids[8][40];
        size_t n = daemon_start_ready(ids, 8);
        /* Made ahead, and without any limit yet: a ready cgroup is no run's. */
        unsigned long long pids, mem, quota;
        wait_made(ids[0]);
        limits_of(ids[0], &pids, &mem, &quota);
        cr_assert_gt(pids, 48, "pids.max %llu before any run", pids);
        cr_assert_gt(mem, 192 * MiB, "memory limit %llu before any run", mem);
        const char *args[] = {
                "-q",        "--no-cwd",
                "--profile", "cgready",
                "--",        "/bin/sh",
                "-c",        "echo id=$AIDP_RUN_ID; cat /proc/self/cgroup; echo started; sleep 2",
                NULL};
        struct aidp_proc p;
        char id[40];
        char *idl = client_started(&p, args, id);
        cr_assert(listed(ids, n, id), "run %s did not get a ready cgroup", id);
        /* Its ready record stays while the run goes on, held by the worker
         * (gc leaves it alone), and goes once the run is over (below). */
        char rec[1200];
        TEST_SNPRINTF(rec, "%s/%s", ready_dir, id);
        int rfd = open(rec, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(rfd, 0, "the run's ready record %s is gone while it runs", rec);
        cr_expect_neq(flock(rfd, LOCK_EX | LOCK_NB), 0, "the run's ready record is not held");
        close(rfd);
        /* Inside its cgroup namespace the job sees the run's cgroup as the
         * root of every hierarchy: it is in the ready cgroup in each (a
         * hierarchy it had not joined would show a path above that root). */
        size_t lines = 0;
        for (char *l = strchr(idl, '\n') + 1; *l && strncmp(l, "started", 7);
             l += strcspn(l, "\n") + (l[strcspn(l, "\n")] == '\n')) {
                int len = (int)strcspn(l, "\n");
                cr_assert(len >= 2 && l[len - 2] == ':' && l[len - 1] == '/',
                          "the job is not at its cgroup's root: %.*s", len, l);
                lines++;
        }
        cr_assert_geq(lines, 1);
        /* The profile's limits, in force while the job runs. */
        limits_of(id, &pids, &mem, &quota);
        cr_assert_eq(pids, 48);
        cr_assert_eq(mem, 192 * MiB);
        cr_assert_eq(quota, 100000, "cpu quota %llu", quota);
        /* Adopted, the cgroup is the run's own: it no longer carries the
         * ready mark, so no sweep can take it for a ready one. */
        char md[1100], mv[PATH_MAX + 128];
        cr_assert(run_dir_of(id, "pids", md, sizeof md));
        cr_expect_lt(getxattr(md, "trusted.aidp.ready", mv, sizeof mv), 0,
                     "the run's cgroup %s still carries the ready mark", md);
        /* v1: the device policy (its base lines were written ahead, the
         * run's own after them) is exactly the minimal /dev's, nothing more:
         * the same list a cgroup made at the run's start gets. */
        char d[1100];
        if (!v2_host() && run_dir_of(id, "devices", d, sizeof d)) {
                char p2[1200], list[4096] = "";
                TEST_SNPRINTF(p2, "%s/devices.list", d);
                FILE *f = fopen(p2, "r");
                cr_assert_not_null(f);
                size_t got = fread(list, 1, sizeof list - 1, f);
                fclose(f);
                list[got] = '\0';
                cr_assert_not(strstr(list, "a *:*"), "every device allowed: %s", list);
                size_t rules = 0;
                for (const char *const *a = aidp_devnodes_allow; *a; a++, rules++)
                        cr_assert(strstr(list, *a), "%s missing from %s", *a, list);
                size_t nl = 0;
                for (const char *c = list; (c = strchr(c, '\n')); c++)
                        nl++;
                cr_assert_eq(nl, rules, "devices.list: %s", list);
        }
        cr_assert_eq(aidp_test_finish(&p), 0, "%s", p.err);
        /* The pin of the sandbox's mount namespace is dropped on a thread
         * after the client has its status (teardown.c, unpin), and gone
         * before the journal is. */
        aidp_test_expect_run_gone(rundir, id);
        const char *const mine[] = {id, NULL};
        cr_expect_eq(aidp_test_mounts_of(mine), 0,
                     "a mount of the run is left with its journal gone");
        cr_assert_not(aidp_test_cgroup_exists(id));
        for (int i = 0; i < 100 && access(rec, F_OK) == 0; i++)
                usleep(50000);
        cr_expect_neq(access(rec, F_OK), 0, "the run's ready record %s is left", rec);
}

/* A run keeps its ready record to its end (held, its cgroup populated): a
 * daemon stopped meanwhile waits for its idle workers' records, never for it,
 * and the run goes on to its status. */
Test(cgroup_ready, a_daemon_stopped_during_a_run_does_not_wait_for_the_runs_record)
{
        need();
        char ids[8][40];
        daemon_start_ready(ids, 8);
        const char *args[] = {"-q", "--no-cwd", "--", "/bin/sh", "-c", "echo started; sleep 4",
                              NULL};
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, args);
        cr_assert(aidp_test_wait_output(&p, "started", 20000), "the job did not start: %s%s", p.out,
                  p.err);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        daemon_stop();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        cr_expect_lt(ms, 1500, "the daemon's stop waited %ld ms for a live run's record", ms);
        cr_expect_eq(aidp_test_finish(&p), 0, "the run did not go on to its status: %s", p.err);
}

Test(cgroup_ready, a_ready_cgroup_no_run_takes_goes_with_its_worker_and_daemon)
{
        need();
        char ids[8][40];
        size_t n = daemon_start_ready(ids, 8);
        /* A dry run takes no cgroup: its worker's ready one goes with it. */
        const char *args[] = {"-q", "--no-cwd", "--dry-run", "--", "/bin/true", NULL};
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, args);
        cr_assert_eq(aidp_test_finish(&p), 0, "%s", p.err);
        char after[8][40];
        size_t m = 0, gone = 0;
        for (int t = 0; t < 500 && gone == 0; t++, usleep(10000)) {
                m = ready_ids(after, 8, 0);
                gone = 0;
                for (size_t i = 0; i < n; i++)
                        gone += !listed(after, m, ids[i]);
        }
        for (size_t i = 0; i < n; i++)
                if (!listed(after, m, ids[i]))
                        cr_assert_not(aidp_test_cgroup_exists(ids[i]),
                                      "the unused ready cgroup %s is left", ids[i]);
        cr_assert_eq(gone, 1, "%zu of the ready cgroups went with the dry run", gone);
        /* The daemon's end takes every ready cgroup of its idle workers. */
        daemon_stop();
        for (size_t i = 0; i < m; i++)
                cr_assert_not(aidp_test_cgroup_exists(after[i]), "ready cgroup %s left", after[i]);
        char none[8][40];
        cr_assert_eq(ready_ids(none, 8, 0), 0, "ready records left");
}

/* Whether every directory of the ready cgroup id carries its maker's mark
 * (set once all of them exist; the worker may be a moment behind). */
static bool marked(const char *id)
{
        char d[1100], v[PATH_MAX + 128]; /* the mark names the run directory */
        return run_dir_of(id, "pids", d, sizeof d) &&
               getxattr(d, "trusted.aidp.ready", v, sizeof v) > 0;
}

/* The maker's pid in the mark on ready cgroup id (once it is there). */
static pid_t maker_of(const char *id)
{
        char d[1100], v[PATH_MAX + 128];
        int tries = 0;
        while (!marked(id) && tries++ < 500)
                usleep(10000);
        cr_assert(run_dir_of(id, "pids", d, sizeof d), "no pids cgroup named %s", id);
        ssize_t n = getxattr(d, "trusted.aidp.ready", v, sizeof v - 1);
        cr_assert_gt(n, 0, "ready cgroup %s has no mark: %s", id, strerror(errno));
        v[n] = '\0';
        return (pid_t)strtol(v, NULL, 10);
}

static pid_t parent_of(pid_t pid)
{
        char p[64], buf[1024];
        TEST_SNPRINTF(p, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(p, "r");
        cr_assert_not_null(f, "%s: %s", p, strerror(errno));
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *s = strrchr(buf, ')');
        int ppid = 0;
        cr_assert(s && sscanf(s + 1, " %*c %d", &ppid) == 1, "%s: %s", p, buf);
        return ppid;
}

/* An idle worker killed while its daemon goes on (the OOM killer, an
 * admin): its record is held no more, and the gc of ready records (each new
 * idle worker's, or the daemon's after a worker's death) removes its cgroup
 * and record, while the records other live workers hold, and their cgroups,
 * are left as they are. That gc no longer reads a held record's cgroups
 * (docs/run-core.md, "Where a run's CPU goes"): only which records it
 * removes matters, which this checks. */
Test(cgroup_ready, a_killed_idle_workers_ready_cgroup_is_removed_and_live_ones_are_left)
{
        need();
        char ids[8][40];
        size_t n = daemon_start_ready(ids, 8);
        for (size_t i = 0; i < n; i++)
                wait_made(ids[i]);
        pid_t victim = maker_of(ids[0]);
        /* Only a process of the test's own daemon, by its pid. */
        cr_assert_gt(victim, 1);
        cr_assert_eq(parent_of(victim), daemon_pid,
                     "ready cgroup %s's maker %d is not an idle "
                     "worker of the test's daemon",
                     ids[0], (int)victim);
        cr_assert_eq(kill(victim, SIGKILL), 0, "%s", strerror(errno));
        char after[8][40];
        size_t m = 0;
        for (int t = 0; t < 1000; t++, usleep(10000)) {
                m = ready_ids(after, 8, 0);
                if (!listed(after, m, ids[0]) && !aidp_test_cgroup_exists(ids[0]))
                        break;
        }
        cr_assert_not(listed(after, m, ids[0]), "the killed worker's record %s is left", ids[0]);
        cr_assert_not(aidp_test_cgroup_exists(ids[0]),
                      "the killed worker's ready cgroup %s is left", ids[0]);
        for (size_t i = 1; i < n; i++) {
                cr_assert(listed(after, m, ids[i]), "a live worker's record %s was removed",
                          ids[i]);
                cr_assert(aidp_test_cgroup_exists(ids[i]),
                          "a live worker's ready cgroup %s was removed", ids[i]);
        }
        /* and the pool still serves a run */
        const char *args[] = {"-q", "--no-cwd", "--", "/bin/true", NULL};
        struct aidp_proc p;
        aidp_test_daemon_client(&p, &A, sock, args);
        cr_assert_eq(aidp_test_finish(&p), 0, "%s", p.err);
        daemon_stop();
        char none[8][40];
        cr_assert_eq(ready_ids(none, 8, 0), 0, "ready records left");
}

/* The idle workers of the killed daemon (whose records it held) are gone. */
static void wait_records_free(char ids[][40], size_t n)
{
        for (size_t i = 0; i < n; i++) {
                char r[1200];
                TEST_SNPRINTF(r, "%s/%s", ready_dir, ids[i]);
                int fd = open(r, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                cr_assert_geq(fd, 0, "%s: %s", r, strerror(errno));
                int t = 0;
                while (flock(fd, LOCK_EX | LOCK_NB) < 0 && t++ < 500)
                        usleep(10000);
                cr_assert_lt(t, 500, "the idle worker holding %s did not end", ids[i]);
                close(fd);
        }
}

/* SIGKILL the test's daemon: its idle workers end with it. */
static void daemon_kill(void)
{
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = 0;
        unlink(sock);
}

Test(cgroup_ready, a_ready_cgroup_left_by_a_killed_daemon_is_removed_by_gc)
{
        need();
        char ids[8][40];
        size_t n = daemon_start_ready(ids, 8);
        daemon_kill();
        /* Its idle workers end with it (their records are held no more);
         * their cgroups stay, for gc. */
        wait_records_free(ids, n);
        for (size_t i = 0; i < n; i++)
                cr_assert(aidp_test_cgroup_exists(ids[i]), "%s", ids[i]);
        /* The next daemon's start recovers them. */
        daemon_start();
        for (size_t i = 0; i < n; i++)
                cr_assert_not(aidp_test_cgroup_exists(ids[i]), "%s left after gc", ids[i]);
        daemon_stop();
        char none[8][40];
        cr_assert_eq(ready_ids(none, 8, 0), 0, "ready records left");
}

/* A daemon SIGKILLed, then its run directory deleted: nothing names its
 * idle workers' ready cgroups any more but their own mark (the maker's pid
 * and start time). The next daemon's start removes them in every
 * hierarchy; an explicit gc while that daemon serves a run leaves its idle
 * workers' ready cgroups and the live run's cgroup alone. */
Test(cgroup_ready, a_ready_cgroup_whose_run_dir_was_deleted_is_removed_by_the_next_start)
{
        need();
        char ids[8][40];
        size_t n = daemon_start_ready(ids, 8);
        for (size_t i = 0; i < n; i++) {
                wait_made(ids[i]);
                int t = 0;
                while (!marked(ids[i]) && t++ < 500)
                        usleep(10000);
                cr_assert_lt(t, 500, "the ready cgroup %s carries no mark", ids[i]);
        }
        daemon_kill();
        wait_records_free(ids, n);
        int counts[8];
        for (size_t i = 0; i < n; i++)
                counts[i] = aidp_test_cgroup_count(ids[i]);
        aidp_test_rm_tree(rundir);
        cr_assert_neq(access(rundir, F_OK), 0, "%s is still there", rundir);
        for (size_t i = 0; i < n; i++)
                cr_assert_gt(counts[i], 0, "%s went with its daemon", ids[i]);
        /* Another daemon, with a run directory of its own: its start finds
         * them by their marks. */
        TEST_SNPRINTF(rundir, "%s/run2", T);
        TEST_SNPRINTF(ready_dir, "%s/.ready", rundir);
        char live[8][40];
        size_t m = daemon_start_ready(live, 8);
        for (size_t i = 0; i < n; i++)
                cr_assert_not(aidp_test_cgroup_exists(ids[i]),
                              "the orphaned ready cgroup %s is left (%d directories before)",
                              ids[i], counts[i]);
        for (size_t i = 0; i < m; i++)
                wait_made(live[i]);
        const char *args[] = {"-q",      "--no-cwd", "--",
                              "/bin/sh", "-c",       "echo id=$AIDP_RUN_ID; echo started; sleep 2",
                              NULL};
        struct aidp_proc p;
        char id[40];
        client_started(&p, args, id);
        int run_dirs = aidp_test_cgroup_count(id);
        cr_assert_gt(run_dirs, 0, "the run %s has no cgroup", id);
        /* An explicit gc meanwhile: live makers, so nothing of theirs goes. */
        aidp_test_gc(rundir);
        cr_assert_eq(aidp_test_cgroup_count(id), run_dirs, "gc took a live run's cgroup");
        for (size_t i = 0; i < m; i++)
                if (strcmp(live[i], id))
                        cr_assert(aidp_test_cgroup_exists(live[i]),
                                  "gc took the live idle worker's ready cgroup %s", live[i]);
        cr_assert_eq(aidp_test_finish(&p), 0, "the run did not end well: %s", p.err);
        cr_assert_not(aidp_test_cgroup_exists(id));
}
