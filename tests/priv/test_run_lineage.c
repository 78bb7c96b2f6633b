/* The run lifecycle in lineage, end to end as root: a run writes a durable START
 * before the sandbox exists and an end record after shred; a run whose START cannot
 * be written does not start; a run whose supervisor died gets an ABORT from gc. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "priv.h"
#include "lineage_util.h"
#include "runner.h"
#include "supervisor/lineage/lineage.h"

static struct aidp_proc P;
static char dir[64] = "", logp[128], keyp[128], run_id[64];

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-run-lineage.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(logp, sizeof logp, "%s/lineage.jsonl", dir);
        snprintf(keyp, sizeof keyp, "%s/lineage.key", dir);
        snprintf(run_id, sizeof run_id, "aidp-test-lineage-%d", (int)getpid());
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
}

/* chattr +i / -i; false when the file system has no such flag. */
static bool set_immutable(const char *path, bool on)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return false;
        int flags = 0;
        bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
        flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        ok = ok && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
        close(fd);
        return ok;
}

static void teardown(void)
{
        char rundir[PATH_MAX], anchor[PATH_MAX];
        snprintf(anchor, sizeof anchor, "%s.anchor", logp);
        if (logp[0])
                set_immutable(anchor, false); /* a failed commit test */
        snprintf(rundir, sizeof rundir, "%s.run", logp);
        if (logp[0] && access(rundir, F_OK) == 0)
                aidp_test_gc(rundir); /* a gc test that failed half-way */
        rmdir(rundir);
        aidp_test_rm_tree(dir);
}

TestSuite(run_lineage, .init = setup, .fini = teardown, .timeout = 90);

/* The supervisor's argv for job (NULL-terminated) into argv[32]. */
static void job_argv(char **argv, const char *const *job)
{
        const char *base[] = {AIDP_SUPERVISOR, "run",  "--user",    "65534", "-q",
                              "--run-id",      run_id, "--lineage", logp,    "--"};
        int n = 0;
        for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
                argv[n++] = (char *)base[i];
        for (int i = 0; job[i] && n < 31; i++)
                argv[n++] = (char *)job[i];
        argv[n] = NULL;
}

static int run_job(const char *const *job)
{
        char *argv[32];
        job_argv(argv, job);
        return aidp_test_run(&P, argv);
}

Test(run_lineage, run_writes_durable_start_and_complete_with_a_valid_chain)
{
        AIDP_REQUIRE_ROOT();
        int st = run_job((const char *[]){"/bin/true", NULL});
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2, "expected START and COMPLETE, got %zu records", n);
        cr_assert_str_eq(aidp_test_json_str(ev[0], "eventType"), "START");
        cr_assert_str_eq(aidp_test_json_str(ev[1], "eventType"), "COMPLETE");
        cr_assert_str_eq(aidp_test_json_str(ev[0], "run.runId"),
                         aidp_test_json_str(ev[1], "run.runId"));
        cr_assert_str_eq(aidp_test_json_str(ev[0], "run.facets.aidp_run.runName"), run_id);
        /* Named after the profile (none given: baseline), not the command. */
        cr_assert_str_eq(aidp_test_json_str(ev[0], "job.name"), "baseline");
        cr_assert_eq(json_object_get_int(aidp_test_json_at(ev[0], "run.facets.aidp_caller.jobUid")),
                     65534);
        cr_assert(aidp_test_json_at(ev[0], "run.facets.aidp_profile.name"),
                  "START lacks the profile");
        cr_assert(aidp_test_json_at(ev[0], "run.facets.aidp_host.hostname"),
                  "START lacks the host");
        /* The end record: exit status, resource usage, shred report. */
        json_object *end = ev[1];
        cr_assert_eq(json_object_get_int(aidp_test_json_at(end, "run.facets.aidp_exit.exitCode")),
                     0);
        cr_assert_eq(json_object_get_int(aidp_test_json_at(end, "run.facets.aidp_exit.status")), 0);
        cr_assert_str_eq(aidp_test_json_str(end, "run.facets.aidp_exit.reason"), "exited");
        cr_assert(aidp_test_json_at(end, "run.facets.aidp_resources.peakMemoryBytes"));
        cr_assert_gt(
                json_object_get_int64(aidp_test_json_at(end, "run.facets.aidp_resources.wallUsec")),
                0);
        cr_assert(json_object_get_boolean(aidp_test_json_at(end, "run.facets.aidp_shred.verified")),
                  "shred not verified");
        json_object *removed = aidp_test_json_at(end, "run.facets.aidp_shred.removed");
        cr_assert_geq(json_object_array_length(removed), 4, "removed: %s",
                      json_object_to_json_string(removed));
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(removed, 0)),
                         "tmpfs tmp");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
        /* And the auditor's tool agrees. */
        char *v[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_assert_eq(aidp_test_run(&P, v), 0, "%s%s", P.out, P.err);
}

Test(run_lineage, failing_job_is_recorded_as_fail_with_its_exit_code)
{
        AIDP_REQUIRE_ROOT();
        int st = run_job((const char *[]){"/bin/sh", "-c", "exit 3", NULL});
        cr_assert_eq(st, 3, "exit %d: %s", st, P.err);
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(aidp_test_json_str(ev[1], "eventType"), "FAIL");
        cr_assert_eq(json_object_get_int(aidp_test_json_at(ev[1], "run.facets.aidp_exit.exitCode")),
                     3);
        cr_assert_eq(json_object_get_int(aidp_test_json_at(ev[1], "run.facets.aidp_exit.status")),
                     3);
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

static void expect_refused(const char *what)
{
        int st = run_job((const char *[]){"/bin/true", NULL});
        cr_assert_eq(st, AIDP_EXIT_LINEAGE, "%s: exit %d: %s", what, st, P.err);
        cr_assert(strstr(P.err, "does not start"), "%s: no clear error: %s", what, P.err);
        /* Nothing of the run was created. */
        char jd[128];
        snprintf(jd, sizeof jd, "/run/aidp/%s", run_id);
        cr_assert_neq(access(jd, F_OK), 0, "%s: the run journal exists", what);
        cr_assert(!aidp_test_cgroup_exists(run_id), "%s: the run's cgroup exists", what);
}

Test(run_lineage, unwritable_lineage_refuses_the_run)
{
        AIDP_REQUIRE_ROOT();
        /* The log's directory is a regular file. */
        char notdir[128];
        snprintf(notdir, sizeof notdir, "%s/var", dir);
        FILE *f = fopen(notdir, "we");
        fclose(f);
        snprintf(logp, sizeof logp, "%s/var/lineage.jsonl", dir);
        expect_refused("log under a file");
        cr_assert(strstr(P.err, "Not a directory"), "%s", P.err);
}

Test(run_lineage, lineage_key_with_loose_permissions_refuses_the_run)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(run_job((const char *[]){"/bin/true", NULL}), 0, "%s", P.err);
        cr_assert_eq(chmod(keyp, 0644), 0);
        snprintf(run_id, sizeof run_id, "aidp-test-lineage-k%d", (int)getpid());
        expect_refused("key mode 0644");
        cr_assert(strstr(P.err, "mode 0644"), "%s", P.err);
}

/* START is written right after pid 1's clone and committed before the go; if
 * it cannot be committed (here: the anchor cannot be updated), the run does not
 * start, START is cut back and no end record follows, and everything prepared
 * meanwhile (pid 1 included) is undone. */
Test(run_lineage, start_that_cannot_be_committed_refuses_the_run_and_is_cut_back)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(run_job((const char *[]){"/bin/true", NULL}), 0, "%s", P.err);
        char anchor[PATH_MAX];
        snprintf(anchor, sizeof anchor, "%s.anchor", logp);
        size_t len0 = 0, alen0 = 0;
        char *log0 = aidp_test_slurp(logp, &len0), *anchor0 = aidp_test_slurp(anchor, &alen0);
        cr_assert_not_null(log0);
        cr_assert(set_immutable(anchor, true), "%s: chattr +i: %s", anchor, strerror(errno));
        snprintf(run_id, sizeof run_id, "aidp-test-lineage-c%d", (int)getpid());
        const char *const mine[] = {dir, run_id, NULL};
        int mounts = aidp_test_mounts_of(mine);
        int st = run_job((const char *[]){"/bin/sh", "-c", "echo the-job-ran", NULL});
        set_immutable(anchor, false);
        cr_assert_eq(st, AIDP_EXIT_LINEAGE, "exit %d: %s", st, P.err);
        cr_assert(strstr(P.err, "does not start"), "no clear error: %s", P.err);
        cr_assert(strstr(P.err, "anchor"), "the cause is not named: %s", P.err);
        cr_assert(!strstr(P.out, "the-job-ran"), "the job ran: %s", P.out);
        /* The log and its anchor are as they were: START was cut back, no FAIL. */
        size_t len1 = 0, alen1 = 0;
        char *log1 = aidp_test_slurp(logp, &len1), *anchor1 = aidp_test_slurp(anchor, &alen1);
        cr_assert_eq(len1, len0, "the log grew from %zu to %zu bytes", len0, len1);
        cr_assert_eq(memcmp(log1, log0, len0), 0);
        cr_assert_eq(alen1, alen0);
        cr_assert_eq(memcmp(anchor1, anchor0, alen0), 0);
        free(log0);
        free(log1);
        free(anchor0);
        free(anchor1);
        /* Nothing of the run is left. */
        char jd[128];
        snprintf(jd, sizeof jd, "/run/aidp/%s", run_id);
        cr_assert_neq(access(jd, F_OK), 0, "the run journal survived");
        cr_assert(!aidp_test_cgroup_exists(run_id), "the run's cgroup survived");
        cr_assert_eq(aidp_test_mounts_of(mine), mounts, "a mount of the run is left");
        /* and the chain goes on */
        snprintf(run_id, sizeof run_id, "aidp-test-lineage-d%d", (int)getpid());
        cr_assert_eq(run_job((const char *[]){"/bin/true", NULL}), 0, "%s", P.err);
        json_object *ev[8];
        cr_assert_eq(aidp_test_lineage_records(logp, keyp, ev, 8), 4);
        for (int i = 0; i < 4; i++)
                json_object_put(ev[i]);
}

/* START is written after pid 1's clone: a log whose last record is damaged
 * refuses it there, and the run ends through teardown (pid 1 killed before any
 * go): the job never ran, no end record follows, the log is untouched and
 * nothing of the run is left. */
Test(run_lineage, start_refused_after_the_clone_leaves_nothing)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(run_job((const char *[]){"/bin/true", NULL}), 0, "%s", P.err);
        size_t len0 = 0;
        char *log0 = aidp_test_slurp(logp, &len0);
        cr_assert(log0 && len0 > 40);
        /* one byte of the last record's body changed, its line kept whole */
        char *last = memrchr(log0, '\n', len0 - 1);
        last = last ? last + 1 : log0;
        char *at = strstr(last, "\"eventType\":\"COMPLETE\"");
        cr_assert_not_null(at);
        at[14] = 'c';
        FILE *f = fopen(logp, "we");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(log0, 1, len0, f), len0);
        cr_assert_eq(fclose(f), 0);
        snprintf(run_id, sizeof run_id, "aidp-test-lineage-r%d", (int)getpid());
        const char *const mine[] = {dir, run_id, NULL};
        int mounts = aidp_test_mounts_of(mine);
        int st = run_job((const char *[]){"/bin/sh", "-c", "echo the-job-ran", NULL});
        cr_assert_eq(st, AIDP_EXIT_LINEAGE, "exit %d: %s", st, P.err);
        cr_assert(strstr(P.err, "does not start"), "no clear error: %s", P.err);
        cr_assert(strstr(P.err, "damaged"), "the cause is not named: %s", P.err);
        cr_assert(!strstr(P.out, "the-job-ran"), "the job ran: %s", P.out);
        size_t len1 = 0;
        char *log1 = aidp_test_slurp(logp, &len1);
        cr_assert_eq(len1, len0, "the log changed from %zu to %zu bytes", len0, len1);
        cr_assert_eq(memcmp(log1, log0, len0), 0);
        free(log0);
        free(log1);
        char jd[128];
        snprintf(jd, sizeof jd, "/run/aidp/%s", run_id);
        cr_assert_neq(access(jd, F_OK), 0, "the run journal survived");
        cr_assert(!aidp_test_cgroup_exists(run_id), "the run's cgroup (and pid 1 in it) survived");
        cr_assert_eq(aidp_test_mounts_of(mine), mounts, "a mount of the run is left");
}

/* START is written right after pid 1's clone, and its fsync runs on a thread
 * while pid 1 builds its mounts. Held back here for 300 ms: pid 1 must not hang
 * (it changes its uid with raw system calls and starts the job with vfork), and
 * the job must wait for the commit. */
Test(run_lineage, sandbox_cloned_while_start_is_still_syncing, .timeout = 60)
{
        AIDP_REQUIRE_ROOT();
        /* (the first record of a new log is made durable on the spot) */
        cr_assert_eq(run_job((const char *[]){"/bin/true", NULL}), 0, "%s", P.err);
        snprintf(run_id, sizeof run_id, "aidp-test-lineage-s%d", (int)getpid());
        setenv("AIDP_FAULT_SYNC_DELAY_MS", "300", 1);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int st = run_job((const char *[]){"/bin/sh", "-c", "id -u; id -G", NULL});
        clock_gettime(CLOCK_MONOTONIC, &t1);
        unsetenv("AIDP_FAULT_SYNC_DELAY_MS");
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        cr_assert(strstr(P.out, "65534\n65534\n"), "the job ran as %s", P.out);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        /* (a serial start-up syncs START on the spot, with no thread to hold back) */
        if (!AIDP_SERIAL_STARTUP)
                cr_assert_geq(ms, 300.0, "the run did not wait for START (%.0f ms)", ms);
        json_object *ev[8];
        cr_assert_eq(aidp_test_lineage_records(logp, keyp, ev, 8), 4);
        cr_assert_str_eq(aidp_test_json_str(ev[2], "eventType"), "START");
        cr_assert_str_eq(aidp_test_json_str(ev[3], "eventType"), "COMPLETE");
        for (int i = 0; i < 4; i++)
                json_object_put(ev[i]);
}

Test(run_lineage, truncated_lineage_refuses_new_runs)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(run_job((const char *[]){"/bin/true", NULL}), 0, "%s", P.err);
        /* Cut the last record (COMPLETE) off: the anchor still names it. */
        FILE *f = fopen(logp, "re");
        char *line = NULL;
        size_t cap = 0;
        ssize_t first = getline(&line, &cap, f);
        free(line);
        fclose(f);
        cr_assert_gt(first, 0);
        cr_assert_eq(truncate(logp, first), 0);
        snprintf(run_id, sizeof run_id, "aidp-test-lineage-t%d", (int)getpid());
        expect_refused("truncated log");
        cr_assert(strstr(P.err, "cut from the end"), "%s", P.err);
}

Test(run_lineage, gc_records_abort_for_a_run_whose_supervisor_died)
{
        AIDP_REQUIRE_ROOT();
        /* A private run directory: no other supervisor's gc may take this
         * journal over before the test's own gc does. */
        char rundir[PATH_MAX];
        snprintf(rundir, sizeof rundir, "%s.run", logp);
        char *argv[] = {AIDP_SUPERVISOR, "run",       "--user",   "65534",     "-q", "--run-id",
                        run_id,          "--run-dir", rundir,     "--lineage", logp, "--job-name",
                        "probe-job",     "--",        AIDP_PROBE, "signals",   NULL};
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        cr_assert(aidp_test_wait_output(&P, "ready", 20000), "probe never got ready: %s %s", P.out,
                  P.err);
        kill(P.pid, SIGKILL);
        /* pid 1 outlives the supervisor, holding the run's data for gc, and
         * with it the supervisor's stdout: reap without waiting for EOF. */
        aidp_test_reap(&P);
        char *gc[] = {AIDP_SUPERVISOR, "gc", "--run-dir", rundir, NULL};
        cr_assert_eq(aidp_test_run(&P, gc), 0, "%s", P.err);
        rmdir(rundir);
        char want[160];
        snprintf(want, sizeof want, "run %s aborted earlier", run_id);
        cr_assert(strstr(P.err, want) && strstr(P.err, "ABORT recorded in lineage"), "%s", P.err);
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2, "expected START and ABORT, got %zu", n);
        cr_assert_str_eq(aidp_test_json_str(ev[0], "eventType"), "START");
        cr_assert_str_eq(aidp_test_json_str(ev[1], "eventType"), "ABORT");
        cr_assert_str_eq(aidp_test_json_str(ev[1], "run.runId"),
                         aidp_test_json_str(ev[0], "run.runId"));
        /* gc names the ABORT as the START was: after --job-name. */
        cr_assert_str_eq(aidp_test_json_str(ev[1], "job.name"), "probe-job");
        cr_assert(strstr(aidp_test_json_str(ev[1], "run.facets.aidp_shred.gcReport"), "removed"),
                  "%s", aidp_test_json_str(ev[1], "run.facets.aidp_shred.gcReport"));
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
        cr_assert(!aidp_test_cgroup_exists(run_id), "the run's cgroup survived gc");
}

/* Without --output-dir, /out is shredded: the run says so before the job
 * starts, and the summary line, the JSON summary and the end record say how
 * much was discarded. */
Test(run_lineage, out_without_output_dir_is_reported_discarded)
{
        AIDP_REQUIRE_ROOT();
        char summ[PATH_MAX];
        snprintf(summ, sizeof summ, "%s/summary.json", dir);
        char *a[] = {AIDP_SUPERVISOR,
                     "run",
                     "--user",
                     "65534",
                     "--run-id",
                     run_id,
                     "--lineage",
                     logp,
                     "--summary",
                     summ,
                     "--",
                     "/bin/sh",
                     "-c",
                     "echo job-started >&2; head -c 12345 /dev/zero >/out/ckpt.pt",
                     NULL};
        int st = aidp_test_run(&P, a);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        const char *warn = strstr(P.err, "warning: no --output-dir");
        const char *started = strstr(P.err, "job-started");
        cr_assert(warn && started && warn < started, "no warning before the job: %s", P.err);
        cr_expect(strstr(P.err, "keep it with --output-dir DIR") != NULL, "%s", P.err);
        cr_expect(strstr(P.err, "/out: 12345 bytes in 1 files discarded") != NULL, "%s", P.err);
        size_t jlen;
        char *js = aidp_test_slurp(summ, &jlen);
        cr_assert_not_null(js);
        json_object *sj = json_tokener_parse(js);
        free(js);
        cr_assert_not_null(sj);
        cr_expect_eq(json_object_get_int64(aidp_test_json_at(sj, "out_discarded_bytes")), 12345);
        cr_expect(!json_object_get_boolean(aidp_test_json_at(sj, "out_kept")));
        json_object_put(sj);
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2);
        cr_expect_eq(json_object_get_int64(
                             aidp_test_json_at(ev[1], "run.facets.aidp_out.discardedBytes")),
                     12345);
        cr_expect(aidp_test_json_at(ev[1], "run.facets.aidp_out.kept") &&
                  !json_object_get_boolean(aidp_test_json_at(ev[1], "run.facets.aidp_out.kept")));
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

/* A process of the job killed by the memory limit (here a child of the job's
 * shell) shows in the stderr summary line and the end record, whatever the
 * job's own status. */
Test(run_lineage, oom_kill_of_a_child_is_in_the_summary_line_and_end_record)
{
        AIDP_REQUIRE_ROOT();
        char *a[] = {AIDP_SUPERVISOR,
                     "run",
                     "--user",
                     "65534",
                     "--memory",
                     "64Mi",
                     "--run-id",
                     run_id,
                     "--lineage",
                     logp,
                     "--",
                     "/bin/sh",
                     "-c",
                     AIDP_PROBE " memhog; echo child-ended",
                     NULL};
        int st = aidp_test_run(&P, a);
        cr_expect(st == 0 || st == AIDP_EXIT_OOM, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "OOM kills ") != NULL, "summary line without the OOM: %s", P.err);
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2);
        cr_expect_geq(
                json_object_get_int64(aidp_test_json_at(ev[1], "run.facets.aidp_exit.oomKills")), 1,
                "%s", json_object_to_json_string(ev[1]));
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

/* scancel (proctrack/linuxproc) signals the whole tree at once: the job and its
 * supervisor get SIGTERM at nearly the same time, in either order. Issue 17: a
 * run once got FAIL, the job's death processed before the supervisor's own
 * SIGTERM arrived. Both orders are made deterministic with SIGSTOP: the run
 * must end in ABORT, "stopped by a signal to the supervisor". */
static void wait_gone(pid_t pid)
{
        for (int i = 0; i < 3000; i++) {
                char st = aidp_test_proc_state(pid);
                if (st == 0 || st == 'Z')
                        return;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        cr_assert_fail("the job %d did not die", (int)pid);
}

/* The first child of parent (from its children list). */
static pid_t first_child(pid_t parent)
{
        char p[96];
        snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)parent, (int)parent);
        size_t len = 0;
        char *s = aidp_test_slurp(p, &len);
        pid_t c = s ? (pid_t)atoi(s) : 0;
        free(s);
        return c;
}

/* The supervisor running `sleep 600` as its job (stop_at: AIDP_FAULT_STOP_AT):
 * sets *job to the job's pid as the host sees it. */
static void spawn_sleeper(const char *stop_at, pid_t *job)
{
        char *argv[32];
        job_argv(argv, (const char *[]){"/bin/sh", "-c", "echo ready; exec sleep 600", NULL});
        if (stop_at)
                setenv("AIDP_FAULT_STOP_AT", stop_at, 1);
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        unsetenv("AIDP_FAULT_STOP_AT");
        cr_assert(aidp_test_wait_output(&P, "ready", 30000), "the job did not start: %s", P.err);
        /* supervisor -> pid 1 (aidp-init) -> the job; the relay's output may
         * come before the children list is visible. */
        pid_t pid1 = 0;
        for (int i = 0; i < 500 && !(pid1 && (*job = first_child(pid1))); i++) {
                pid1 = first_child(P.pid);
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        cr_assert(pid1 > 0 && *job > 0, "no job process under the supervisor %d", (int)P.pid);
}

static void expect_abort(void)
{
        aidp_test_finish(&P);
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2, "expected START and an end record, got %zu: %s", n, P.err);
        cr_expect_str_eq(aidp_test_json_str(ev[1], "eventType"), "ABORT", "%s",
                         json_object_to_json_string(ev[1]));
        cr_expect_str_eq(aidp_test_json_str(ev[1], "run.facets.aidp_exit.reason"),
                         "stopped by a signal to the supervisor");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

/* The job dies of its SIGTERM and the supervisor has read that (it is past the
 * job, stopped mid-teardown) before its own SIGTERM arrives. */
Test(run_lineage, scancel_job_first_then_supervisor_is_an_abort)
{
        AIDP_REQUIRE_ROOT();
        pid_t job;
        spawn_sleeper("shred", &job);
        cr_assert_eq(kill(job, SIGTERM), 0);
        cr_assert(aidp_test_wait_stopped(P.pid), "the supervisor never got past the job: %s",
                  P.err);
        cr_assert_eq(kill(P.pid, SIGTERM), 0);
        cr_assert_eq(kill(P.pid, SIGCONT), 0);
        expect_abort();
}

/* The supervisor's SIGTERM is sent first but not yet read (it is stopped) when
 * the job dies of its own: the job's end and the stop request are both waiting
 * when it goes on. */
Test(run_lineage, scancel_supervisor_first_then_job_is_an_abort)
{
        AIDP_REQUIRE_ROOT();
        pid_t job;
        spawn_sleeper(NULL, &job);
        cr_assert_eq(kill(P.pid, SIGSTOP), 0);
        cr_assert(aidp_test_wait_stopped(P.pid), "the supervisor did not stop");
        cr_assert_eq(kill(P.pid, SIGTERM), 0);
        cr_assert_eq(kill(job, SIGTERM), 0);
        wait_gone(job);
        cr_assert_eq(kill(P.pid, SIGCONT), 0);
        expect_abort();
}

/* No false ABORT: a job that kills itself with SIGTERM, nobody stopping the run,
 * is a FAIL (after the supervisor waited out the window for a stop request). */
Test(run_lineage, job_killing_itself_with_sigterm_is_a_fail)
{
        AIDP_REQUIRE_ROOT();
        int st = run_job((const char *[]){"/bin/sh", "-c", "kill -TERM $$", NULL});
        cr_assert_eq(st, 128 + SIGTERM, "exit %d: %s", st, P.err);
        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(aidp_test_json_str(ev[1], "eventType"), "FAIL");
        cr_assert_str_eq(aidp_test_json_str(ev[1], "run.facets.aidp_exit.reason"), "signal");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}
