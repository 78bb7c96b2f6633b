#define _GNU_SOURCE
/* Crash safety (issue 6): the supervisor is SIGKILLed during injection, while
 * the job runs, and during shred. Afterwards `aidp-supervisor gc` must find the
 * run, overwrite its plaintext through the sandbox's pid 1 (which holds the
 * tmpfs mounts until then), and leave nothing: no journal, process, cgroup or
 * mount; lineage says START then ABORT, with the cleanup report.
 * The supervisor is stopped at each point with AIDP_FAULT_STOP_AT. */
#include <dirent.h>
#include <json-c/json.h>
#include <linux/magic.h>
#include <regex.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>

#include "common/exitcodes.h"
#include "priv.h"
#include "lineage_util.h"
#include "runner.h"
#include "policy_util.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/sandbox/fdpass.h"
#include "supervisor/sandbox/nspin.h"
#include "tests/sealed_util.h"

static char *T;
static char keydir[4096], rundir[4096], logp[4096], input[4096];
static struct aidp_proc P;

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "crash-key", &err), 0, "%s", err.msg);
        char src[4096], f[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/weights.bin", src);
        write_file(f, 5 * 1048576 + 3, 0644, 9);
        TEST_SNPRINTF(input, "%s/crashdata.sealed", T);
        seal_with_key_dir(src, input, keydir, "crash-key", "crashdata");
        /* Sealed data is decrypted only under an installed policy. */
        TEST_SNPRINTF(src, "%s/policy", T);
        aidp_test_policy_allow(src, "nobody", NULL, NULL);
}

static void teardown(void)
{
        /* After a failed assertion a killed supervisor's run may be left:
         * clean it the way production does before removing its journal. */
        aidp_test_policy_done(rundir);
        tmpdir_rm(T);
}

TestSuite(crash, .init = setup, .fini = teardown, .timeout = 120);

static int count_events(const char *type)
{
        return aidp_test_count_events(logp, type);
}

static bool is_cgroup2(const char *path)
{
        struct statfs sf;
        return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

/* pid 1's fds now: how many, and (as far as they fit) which, as " n=target";
 * *lineage set when one of them is a file of the lineage log. */
static int pid1_fds(pid_t pid1, char *held, size_t len, bool *lineage)
{
        char dir[64], link[4096 + 64], target[4096];
        TEST_SNPRINTF(dir, "/proc/%d/fd", (int)pid1);
        DIR *d = opendir(dir);
        cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
        int nfds = 0;
        held[0] = '\0';
        *lineage = false;
        for (struct dirent *e; (e = readdir(d));) {
                if (e->d_name[0] == '.')
                        continue;
                nfds++;
                TEST_SNPRINTF(link, "%s/%s", dir, e->d_name);
                ssize_t n = readlink(link, target, sizeof target - 1);
                if (n < 0)
                        continue;
                target[n] = '\0';
                *lineage |= strstr(target, "lineage") != NULL;
                size_t used = strlen(held);
                if (used + strlen(target) + 24 < len)
                        snprintf(held + used, len - used, " %.16s=%.1900s", e->d_name, target);
        }
        closedir(d);
        return nfds;
}

/* What the sandbox's pid 1 holds while the run is under way, seen from the host:
 * no fd of the lineage log (whose lock the next append needs, gc's ABORT
 * included), and membership of the run's cgroup: from the clone on in the
 * cgroup2 group (v2, or v1's tracking group), and once the job may start
 * (`started`) in every hierarchy the run uses. */
static void check_pid1(pid_t pid1, const char *run_id, bool started)
{
        /* stdio, sync, err, status, lifeline, relay x2, the tmpfs mounts: not
         * the dozens of fds a supervisor may have open. While pid 1 still
         * builds its view it holds the masks' own layer and group fds for a
         * moment (more on a slow machine's wider /proc and /sys), so the count
         * is the one it settles at: what it inherited stays for good. */
        char held[2048];
        bool lineage = false;
        int nfds = 0;
        for (int i = 0; i < 500; i++) {
                nfds = pid1_fds(pid1, held, sizeof held, &lineage);
                if (nfds <= 16 && !lineage)
                        break;
                usleep(20000);
        }
        cr_expect(!lineage, "pid 1 holds a file of the lineage log:%s", held);
        cr_expect_leq(nfds, 16, "pid 1 holds %d fds:%s", nfds, held);

        char cgp[64], line[4096];
        TEST_SNPRINTF(cgp, "/proc/%d/comm", (int)pid1);
        size_t clen = 0;
        char *comm = aidp_test_slurp(cgp, &clen);
        cr_expect(comm && !strcmp(comm, "aidp-init\n"), "pid 1 is called %s", comm ? comm : "?");
        free(comm);
        TEST_SNPRINTF(cgp, "/proc/%d/cgroup", (int)pid1);
        FILE *f = fopen(cgp, "re");
        cr_assert_not_null(f);
        bool v2 = is_cgroup2("/sys/fs/cgroup") || is_cgroup2("/sys/fs/cgroup/unified");
        int checked = 0;
        while (fgets(line, sizeof line, f)) {
                char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c2 = '\0';
                const char *ctrls = c1 + 1, *path = c2 + 1;
                bool used = !*ctrls && v2;
                char tmp[256];
                TEST_SNPRINTF(tmp, "%s", ctrls);
                for (char *sv, *t = strtok_r(tmp, ",", &sv); t && started;
                     t = strtok_r(NULL, ",", &sv))
                        used |= !strcmp(t, "memory") || !strcmp(t, "pids") || !strcmp(t, "cpu") ||
                                !strcmp(t, "cpuacct") || !strcmp(t, "devices");
                if (!used)
                        continue;
                checked++;
                cr_expect(strstr(path, run_id), "pid 1 is not in the run's cgroup for '%s': %s",
                          ctrls, path);
        }
        fclose(f);
        if (started || v2)
                cr_expect_geq(checked, 1, "no cgroup hierarchy checked");
}

/* Start a run of `script` that stops itself (SIGSTOP) at `phase`; return once it
 * has stopped there. */
/* Up to 3 words before the supervisor's argv (a wrapper that execs it). */
static void spawn_stopped_in(char *const *wrap, const char *phase, const char *run_id,
                             const char *script)
{
        char *args[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "65534",
                        "--no-cwd",
                        "-q",
                        "--run-dir",
                        rundir,
                        "--key-dir",
                        keydir,
                        "--lineage",
                        logp,
                        "--run-id",
                        (char *)run_id,
                        "--data",
                        input,
                        "--",
                        "/bin/sh",
                        "-c",
                        (char *)script,
                        NULL};
        char *argv[4 + ARRAY_SIZE(args)];
        size_t n = 0;
        for (; wrap && wrap[n] && n < 3; n++)
                argv[n] = wrap[n];
        memcpy(argv + n, args, sizeof args);
        if (!phase) { /* a run that goes on: the caller watches it */
                cr_assert_eq(aidp_test_spawn(&P, argv), 0);
                return;
        }
        setenv("AIDP_FAULT_STOP_AT", phase, 1);
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        unsetenv("AIDP_FAULT_STOP_AT");
        bool stopped = aidp_test_wait_stopped(P.pid);
        char st = aidp_test_proc_state(P.pid);
        cr_assert(stopped, "the supervisor never reached '%s' (state %c): %s", phase, st ? st : '-',
                  P.err);
}

static void spawn_stopped(const char *phase, const char *run_id, const char *script)
{
        spawn_stopped_in(NULL, phase, run_id, script);
}

/* The gc that follows a crash: run by hand here; through an OCI runtime's
 * poststop hook in oci_poststop_hook_cleans_a_killed_run. Leaves gc's stderr
 * in P.err. */
static void gc_direct(void)
{
        char *gc[] = {AIDP_SUPERVISOR, "gc", "--run-dir", rundir, NULL};
        cr_assert_eq(aidp_test_run(&P, gc), 0, "%s", P.err);
}

/* The sandbox's pid 1, as the run's journal names it. */
static pid_t journal_pid1(const char *run_id)
{
        char jp[4096 + 128];
        TEST_SNPRINTF(jp, "%s/%s/journal.json", rundir, run_id);
        json_object *j = json_object_from_file(jp);
        cr_assert_not_null(j, "no journal at %s", jp);
        json_object *v;
        cr_assert(json_object_object_get_ex(j, "pid1", &v), "journal without pid1");
        pid_t pid1 = json_object_get_int(v);
        json_object_put(j);
        return pid1;
}

/* The run's end record says gc overwrote its pages through the pinned mount
 * namespace (pid 1 was gone). */
static void expect_shredded_through_pin(void)
{
        size_t len = 0;
        char *log = aidp_test_slurp(logp, &len);
        cr_assert_not_null(log);
        cr_expect(strstr(log, "through the run's pinned mount namespace"),
                  "lineage does not say gc shredded through the pinned namespace");
        free(log);
}

/* After gc: no journal, pid 1, cgroup or mount of the run. */
static void expect_nothing_left(const char *run_id, pid_t pid1, const char *const *mine,
                                int mounts_before)
{
        char jdir[4096 + 64];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jdir, F_OK), 0, "the journal survived gc");
        for (int i = 0; i < 200 && kill(pid1, 0) == 0; i++) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        cr_expect_neq(kill(pid1, 0), 0, "pid 1 survived gc");
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run survived gc");
        cr_expect_eq(aidp_test_mounts_of(mine), mounts_before, "a mount of the run is left");
}

static void crash_then(const char *phase, const char *script, void (*gc)(void))
{
        char run_id[64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-%s-%d", phase, (int)getpid());
        const char *const mine[] = {T, run_id, NULL};
        int mounts_before = aidp_test_mounts_of(mine);
        bool in_teardown = !strcmp(phase, "shred");
        /* In teardown pid 1 is killed at its start: this process becomes its
         * reaper once the supervisor dies, and reaps it only after gc, so
         * that gc meets it as a zombie (which holds no files, but keeps its
         * start time and, on cgroup v2, its cgroup), as after a crash of a
         * daemon worker whose gc runs before init reaps. */
        if (in_teardown)
                cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        spawn_stopped(phase, run_id, script);
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);

        /* What a dead supervisor leaves: its journal, and pid 1 holding the
         * data, up to teardown. From teardown's start pid 1 is killed (its
         * exit overlaps shred) when its mount namespace is pinned, which then
         * keeps the data: gc shreds through the pin. */
        pid_t pid1 = journal_pid1(run_id);
        if (in_teardown) {
                char st = 0;
                for (int i = 0; i < 300 && (st = aidp_test_proc_state(pid1)) != 'Z'; i++)
                        usleep(10000);
                cr_assert_eq(st, 'Z', "pid 1 outlived the start of teardown (state %c)",
                             st ? st : '-');
                char pin[4096 + 128];
                TEST_SNPRINTF(pin, "%s/%s/mnt.ns", rundir, run_id);
                cr_assert_eq(access(pin, F_OK), 0, "pid 1 was killed but nothing pins the data");
        } else {
                cr_assert_eq(kill(pid1, 0), 0,
                             "pid 1 of the sandbox did not hold on to the run's data");
                /* inject comes before the go, which moves pid 1 into the v1
                 * hierarchies */
                check_pid1(pid1, run_id, strcmp(phase, "inject") != 0);
        }
        cr_assert_eq(count_events("START"), 1);
        /* START is committed, anchor and all, and the log unlocked, before a byte
         * is decrypted (the first stop point is right after injection). */
        int lfd = open(logp, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(lfd, 0);
        cr_expect_eq(flock(lfd, LOCK_EX | LOCK_NB), 0, "the lineage log is still locked: %s",
                     strerror(errno));
        close(lfd);
        char *verify_start[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_expect_eq(aidp_test_run(&P, verify_start), 0, "START is not anchored: %s%s", P.out,
                     P.err);

        gc();
        char want[160];
        TEST_SNPRINTF(want, "run %s aborted earlier: shredded", run_id);
        cr_expect(strstr(P.err, want) != NULL, "gc did not shred: %s", P.err);
        cr_expect(strstr(P.err, "verified: yes") != NULL, "%s", P.err);
        cr_expect(strstr(P.err, " 0 bytes") == NULL, "nothing was overwritten: %s", P.err);
        if (in_teardown) {
                expect_shredded_through_pin();
                cr_expect_eq(waitpid(pid1, NULL, 0), pid1, "pid 1 was not this test's to reap");
        }

        expect_nothing_left(run_id, pid1, mine, mounts_before);
        cr_expect_eq(count_events("ABORT"), 1, "lineage has no ABORT for the run");
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_expect_eq(aidp_test_run(&P, verify), 0, "%s%s", P.out, P.err);
}

static void crash_at(const char *phase, const char *script)
{
        crash_then(phase, script, gc_direct);
}

Test(crash, sigkill_during_injection)
{
        AIDP_REQUIRE_ROOT();
        crash_at("inject", "exit 0");
}

Test(crash, sigkill_while_the_job_runs)
{
        AIDP_REQUIRE_ROOT();
        crash_at("job", "head -c 1048576 /dev/urandom > /scratch/x; sleep 600");
}

Test(crash, sigkill_during_shred)
{
        AIDP_REQUIRE_ROOT();
        crash_at("shred",
                 "head -c 1048576 /dev/urandom > /scratch/x; cp /data/crashdata/weights.bin /out/");
}

/* The supervisor stopped at `phase` gets a SIGTERM: the run ends before the
 * job starts, through teardown, with START then ABORT on record and nothing
 * left. starts: START records already written at the stop. */
static void sigterm_at(const char *phase, int starts)
{
        char run_id[64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-t%s-%d", phase, (int)getpid());
        const char *const mine[] = {T, run_id, NULL};
        int mounts_before = aidp_test_mounts_of(mine);
        spawn_stopped(phase, run_id, "echo the-job-ran");
        cr_assert_eq(count_events("START"), starts, "START records at '%s'", phase);
        kill(P.pid, SIGTERM);
        kill(P.pid, SIGCONT);
        int rc = aidp_test_finish(&P);
        cr_expect_neq(rc, 0, "the run succeeded: %s", P.err);
        cr_expect(strstr(P.err, "interrupted before the job started"), "%s", P.err);
        cr_expect(!strstr(P.out, "the-job-ran"), "the job ran: %s", P.out);
        cr_expect_eq(count_events("START"), 1, "the run's START is not on record");
        cr_expect_eq(count_events("ABORT"), 1, "no ABORT for the interrupted run");
        char jdir[4096 + 64];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jdir, F_OK), 0, "the journal survived");
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run survived");
        cr_expect_eq(aidp_test_mounts_of(mine), mounts_before, "a mount of the run is left");
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_expect_eq(aidp_test_run(&P, verify), 0, "%s%s", P.out, P.err);
}

/* A stop request while START is written (after pid 1's clone; the cgroup may
 * still be made by its helper): the supervisor already holds the signal, so
 * the run ends at start-sync, before the go. */
Test(crash, sigterm_while_start_is_recorded_ends_the_run_cleanly)
{
        AIDP_REQUIRE_ROOT();
        sigterm_at("start", 1);
}

/* A stop request before prepare ends the run before pid 1 and START exist;
 * the run still records its START (written late, before the end record) and
 * its ABORT. */
Test(crash, sigterm_before_the_clone_records_start_and_abort)
{
        AIDP_REQUIRE_ROOT();
        sigterm_at("prepare", 0);
}

/* Killed right after START: the run's cgroup directories exist (the v1 helper
 * goes on making them while the supervisor is stopped) but the journal does not
 * list them yet; its cgroups.log, written before each directory is made, lets
 * gc remove every one. START, the first record of a new log here, was never
 * committed: the log's first anchor names no record, so gc can still append
 * its ABORT after it. */
Test(crash, sigkill_right_after_start_leaves_gc_every_cgroup)
{
        AIDP_REQUIRE_ROOT();
        char run_id[64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-early-%d", (int)getpid());
        bool v2 = is_cgroup2("/sys/fs/cgroup");
        int want = 1;
        if (!v2) {
                static const char *const h[] = {"memory", "cpu", "cpuacct", "pids", "devices"};
                struct stat st;
                want = is_cgroup2("/sys/fs/cgroup/unified") ? 1 : 0;
                for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
                        char p[64];
                        TEST_SNPRINTF(p, "/sys/fs/cgroup/%s", h[i]);
                        want += stat(p, &st) == 0 && S_ISDIR(st.st_mode);
                }
        }
        spawn_stopped("start", run_id, "echo the-job-ran");
        int have = 0;
        for (int i = 0; i < 300 && (have = aidp_test_cgroup_count(run_id)) < want; i++) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        cr_expect_eq(have, want, "the run's cgroups were not all made (%d of %d)", have, want);
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        char log[4096 + 128];
        TEST_SNPRINTF(log, "%s/%s/cgroups.log", rundir, run_id);
        size_t len = 0;
        char *lines = aidp_test_slurp(log, &len);
        cr_assert_not_null(lines, "no %s", log);
        int logged = 0;
        for (char *p = lines; (p = strchr(p, '\n')); p++)
                logged++;
        free(lines);
        cr_expect_geq(logged, want, "cgroups.log has %d paths", logged);
        char *gc[] = {AIDP_SUPERVISOR, "gc", "--run-dir", rundir, NULL};
        cr_assert_eq(aidp_test_run(&P, gc), 0, "%s", P.err);
        cr_expect_eq(aidp_test_cgroup_count(run_id), 0, "a cgroup of the run survived gc");
        char jdir[4096 + 64];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jdir, F_OK), 0, "the journal survived gc");
        cr_expect_eq(count_events("START"), 1);
        cr_expect_eq(count_events("ABORT"), 1, "gc recorded no ABORT");
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_expect_eq(aidp_test_run(&P, verify), 0, "%s%s", P.out, P.err);
}

/* Killed after pid 1's clone and before START is written (START follows the
 * clone: docs/run-core.md, "Lifecycle"): the journal names pid 1, which holds
 * the run's mounts (nothing decrypted yet) and is in the run's cgroup; the log
 * has no START. gc kills pid 1, overwrites the mounts, removes the cgroup and
 * the journal, and records its ABORT: the cleanup report is the log's only
 * record of a run whose job never ran, as for a crash before START. */
Test(crash, sigkill_between_the_clone_and_start_leaves_gc_the_journal)
{
        AIDP_REQUIRE_ROOT();
        char run_id[64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-cloned-%d", (int)getpid());
        const char *const mine[] = {T, run_id, NULL};
        int mounts_before = aidp_test_mounts_of(mine);
        spawn_stopped("cloned", run_id, "echo the-job-ran");
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        pid_t pid1 = journal_pid1(run_id);
        cr_assert_eq(kill(pid1, 0), 0, "pid 1 of the sandbox did not wait for the go");
        check_pid1(pid1, run_id, false);
        cr_assert_eq(count_events("START"), 0, "START was written before the stop point");
        gc_direct();
        char want[160];
        TEST_SNPRINTF(want, "run %s aborted earlier: shredded", run_id);
        cr_expect(strstr(P.err, want) != NULL, "gc did not shred: %s", P.err);
        expect_nothing_left(run_id, pid1, mine, mounts_before);
        cr_expect_eq(count_events("START"), 0);
        cr_expect_eq(count_events("ABORT"), 1, "gc recorded no ABORT");
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_expect_eq(aidp_test_run(&P, verify), 0, "%s%s", P.out, P.err);
}

/* Issue 17: the shipped OCI hooks.d example (integrations/oci/aidp-hook.json),
 * run by a real OCI runtime. A node's container stops after its aidp run's
 * supervisor was killed; the runtime's poststop hook (the example's path and
 * args, with the build under test and this test's run directory) runs gc, which
 * must leave exactly what a hand-run gc leaves. The example's `when` clause is
 * evaluated as the CRI-O/Podman hook manager does (a regex over each annotation
 * name and value). */
static bool regex_full(const char *re, const char *s)
{
        regex_t r;
        cr_assert_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0, "bad regex %s", re);
        bool m = regexec(&r, s, 0, NULL, 0) == 0;
        regfree(&r);
        return m;
}

static bool hook_applies(json_object *when, const char *name, const char *value)
{
        json_object *ann;
        cr_assert(json_object_object_get_ex(when, "annotations", &ann));
        json_object_object_foreach(ann, k,
                                   v) if (regex_full(k, name) &&
                                          regex_full(json_object_get_string(v), value)) return true;
        return false;
}

static char oci_bundle[4096];

static void gc_by_oci_hook(void)
{
        json_object *hook =
                json_object_from_file(AIDP_SOURCE_DIR "/integrations/oci/aidp-hook.json");
        cr_assert_not_null(hook, "integrations/oci/aidp-hook.json does not parse");
        json_object *h, *when, *stages, *args;
        cr_assert(json_object_object_get_ex(hook, "hook", &h));
        cr_assert(json_object_object_get_ex(hook, "when", &when));
        cr_assert(json_object_object_get_ex(hook, "stages", &stages));
        cr_assert(json_object_object_get_ex(h, "args", &args));
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(stages, 0)), "poststop");
        cr_assert(hook_applies(when, "io.aidp.sandbox", "true"));
        cr_assert(!hook_applies(when, "io.aidp.sandbox", "false"));
        cr_assert(!hook_applies(when, "io.aidp.sandboxed", "true"));

        /* The container: /bin/true over a read-only /usr, in its own namespaces
         * (network included: a new, empty one). */
        TEST_SNPRINTF(oci_bundle, "%s/oci", T);
        char p[4096 + 64];
        static const char *const dirs[] = {"", "/rootfs", "/rootfs/usr", "/rootfs/proc",
                                           "/rootfs/dev"};
        for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
                TEST_SNPRINTF(p, "%s%s", oci_bundle, dirs[i]);
                mkdir_p(p, 0755);
        }
        static const char *const merged[] = {"bin", "lib", "lib64", "sbin"};
        for (size_t i = 0; i < sizeof merged / sizeof *merged; i++) {
                char l[4096 + 64], t[32];
                TEST_SNPRINTF(l, "%s/rootfs/%s", oci_bundle, merged[i]);
                TEST_SNPRINTF(t, "usr/%s", merged[i]);
                cr_assert_eq(symlink(t, l), 0, "%s: %s", l, strerror(errno));
        }
        json_object *cfg = json_tokener_parse(
                "{\"ociVersion\":\"1.0.2\",\"process\":{\"user\":{\"uid\":0,\"gid\":0},"
                "\"args\":[\"/bin/true\"],\"env\":[\"PATH=/usr/bin:/bin\"],\"cwd\":\"/\","
                "\"noNewPrivileges\":true},\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
                "\"annotations\":{\"io.aidp.sandbox\":\"true\"},"
                "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
                "{\"destination\":\"/usr\",\"type\":\"bind\",\"source\":\"/usr\","
                "\"options\":[\"rbind\",\"ro\"]}],"
                "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"},"
                "{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"network\"}]}}");
        cr_assert_not_null(cfg);
        json_object *hargs = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(args); i++)
                json_object_array_add(hargs, json_object_get(json_object_array_get_idx(args, i)));
        json_object_array_add(hargs, json_object_new_string("--run-dir"));
        json_object_array_add(hargs, json_object_new_string(rundir));
        json_object *ph = json_object_new_object();
        json_object_object_add(ph, "path", json_object_new_string(AIDP_SUPERVISOR));
        json_object_object_add(ph, "args", hargs);
        json_object *post = json_object_new_array(), *hooks = json_object_new_object();
        json_object_array_add(post, ph);
        json_object_object_add(hooks, "poststop", post);
        json_object_object_add(cfg, "hooks", hooks);
        json_object *ann;
        cr_assert(json_object_object_get_ex(cfg, "annotations", &ann));
        TEST_SNPRINTF(p, "%s/hook.err", oci_bundle);
        json_object_object_add(ann, "run.oci.hooks.stderr", json_object_new_string(p));
        TEST_SNPRINTF(p, "%s/config.json", oci_bundle);
        cr_assert_eq(json_object_to_file(p, cfg), 0);
        json_object_put(cfg);
        json_object_put(hook);

        /* crun 1.8 refuses a hybrid host whose cgroup2 mount lists a
         * controller, even with cgroups disabled: in a private mount namespace
         * an empty file covers that list (and nothing else, so the hook's gc
         * still sees every cgroup). The hook's stderr goes to a file (crun's
         * run.oci.hooks.stderr annotation). */
        char script[4096 * 4], errp[4096 + 64];
        TEST_SNPRINTF(errp, "%s/hook.err", oci_bundle);
        TEST_SNPRINTF(script,
                      "c=/sys/fs/cgroup/unified/cgroup.controllers; "
                      "if [ \"$(stat -f -c %%T /sys/fs/cgroup)\" != cgroup2fs ] && grep -q . $c; "
                      "then : >%s/empty && mount --bind %s/empty $c || exit 1; fi; "
                      "exec crun --root %s/state --cgroup-manager=disabled run --bundle %s "
                      "aidp-test-oci-%d",
                      oci_bundle, oci_bundle, oci_bundle, oci_bundle, (int)getpid());
        char *argv[] = {"/usr/bin/unshare", "-m", "--propagation", "private",
                        "/bin/sh",          "-c", script,          NULL};
        cr_assert_eq(aidp_test_run(&P, argv), 0, "crun run: %s", P.err);
        size_t n = 0;
        char *herr = aidp_test_slurp(errp, &n);
        cr_assert_not_null(herr, "the poststop hook never ran (no %s)", errp);
        snprintf(P.err, sizeof P.err, "%s", herr);
        free(herr);
}

Test(crash, oci_poststop_hook_cleans_a_killed_run)
{
        AIDP_REQUIRE_ROOT();
        /* The VM (AIDP_VM=1, scripts/vm-test) carries no OCI runtime; on a
         * host, scripts/install-deps installs crun, so CI must have it. */
        const char *vm = getenv("AIDP_VM");
        if (vm && !strcmp(vm, "1") && access("/usr/bin/crun", X_OK) != 0)
                cr_skip_test("the VM carries no OCI runtime (crun)");
        if (access("/usr/bin/crun", X_OK) != 0) {
                cr_assert(!getenv("CI"),
                          "crun is not installed (scripts/install-deps installs it)");
                cr_skip_test("crun is not installed");
        }
        crash_then("job", "head -c 1048576 /dev/urandom > /scratch/x; sleep 600", gc_by_oci_hook);
}

/* A file of the run's tmpfs at target, through its pinned mount namespace (pid
 * 1 is killed at teardown's start, so /proc/<pid1>/root no longer leads
 * there): opened in a child that first enters the supervisor's mount
 * namespace (nsfd, or -1 for the test's own), where the pin is mounted, and
 * handed back over a socket. */
static int open_pinned(int nsfd, const char *run_id, const char *target, const char *name)
{
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        pid_t c = fork();
        cr_assert_geq(c, 0);
        if (c == 0) {
                close(sv[0]);
                char pin[4096 + 128];
                snprintf(pin, sizeof pin, "%s/%s/mnt.ns", rundir, run_id);
                const char *t[] = {target};
                int m[1];
                if ((nsfd >= 0 && setns(nsfd, CLONE_NEWNS) < 0) ||
                    aidp_nspin_open_mounts(pin, t, 1, m) != 1)
                        _exit(1);
                int fd = openat(m[0], name, O_RDONLY | O_CLOEXEC);
                _exit(fd < 0 || aidp_fdpass_send(sv[1], 'f', &fd, 1) < 0 ? 2 : 0);
        }
        close(sv[1]);
        char b;
        int fd = -1;
        size_t n = 0;
        int got = aidp_fdpass_recv(sv[0], &b, &fd, 1, &n);
        close(sv[0]);
        int st = 0;
        waitpid(c, &st, 0);
        cr_assert(got == 1 && n == 1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "%s/%s through the run's pinned namespace: status %d", target, name, st);
        return fd;
}

/* The supervisor is killed mid-teardown (after /tmp was overwritten, before
 * /scratch), then the sandbox's pid 1: nothing holds a mount fd any more, yet
 * the pages are overwritten before they are freed, by gc through the run's
 * pinned mount namespace, and lineage says so. Seen from the host through a
 * descriptor of the job's file kept across all of it. With wrap, the
 * supervisor runs through that wrapper in a mount namespace of its own
 * (nsfd_out: held by the test, and gc runs in it too). */
static void killed_mid_teardown(const char *run_id, char *const *wrap)
{
        const char *const mine[] = {T, run_id, NULL};
        int mounts_before = aidp_test_mounts_of(mine);
        spawn_stopped_in(wrap, "shred", run_id,
                         "head -c 1048576 /dev/urandom > /scratch/x; "
                         "head -c 65536 /dev/urandom > /dev/shm/y");
        int nsfd = -1;
        char nsarg[128] = "";
        if (wrap) {
                char p[64];
                TEST_SNPRINTF(p, "/proc/%d/ns/mnt", (int)P.pid);
                nsfd = open(p, O_RDONLY | O_CLOEXEC);
                cr_assert_geq(nsfd, 0, "%s: %s", p, strerror(errno));
                TEST_SNPRINTF(nsarg, "--mount=/proc/%d/fd/%d", (int)getpid(), nsfd);
        }
        pid_t pid1 = journal_pid1(run_id);
        int keep = open_pinned(nsfd, run_id, "/scratch", "x");
        cr_assert(!aidp_test_fd_all_zero(keep, 1048576),
                  "/scratch/x holds no data before the kill");

        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        cr_expect(!strstr(P.err, "could not be pinned") && !strstr(P.err, "namespace ids"),
                  "the supervisor did not pin the sandbox's mount namespace: %s", P.err);
        kill(pid1, SIGKILL);
        for (int i = 0; i < 300 && kill(pid1, 0) == 0; i++) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        cr_assert_neq(kill(pid1, 0), 0, "pid 1 survived SIGKILL");

        char *gc[] = {AIDP_SUPERVISOR, "gc", "--run-dir", rundir, NULL};
        char *gc_in[] = {
                "/usr/bin/nsenter", nsarg, AIDP_SUPERVISOR, "gc", "--run-dir", rundir, NULL};
        cr_assert_eq(aidp_test_run(&P, wrap ? gc_in : gc), 0, "%s", P.err);
        if (nsfd >= 0)
                close(nsfd);
        cr_expect(strstr(P.err, "verified: yes"), "%s", P.err);
        cr_expect(strstr(P.err, " 0 bytes") == NULL, "nothing was overwritten: %s", P.err);
        cr_expect(aidp_test_fd_all_zero(keep, 1048576),
                  "/scratch/x was freed without an overwrite");
        close(keep);
        expect_shredded_through_pin();
        cr_expect_eq(count_events("ABORT"), 1);
        cr_expect_eq(aidp_test_mounts_of(mine), mounts_before, "a mount of the run is left");
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run survived gc");
        char jdir[4096 + 64];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jdir, F_OK), 0, "the journal survived gc");
}

Test(crash, supervisor_then_pid1_killed_mid_teardown_still_overwritten_by_gc)
{
        AIDP_REQUIRE_ROOT();
        char run_id[64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-pin-%d", (int)getpid());
        killed_mid_teardown(run_id, NULL);
}

/* The same with the supervisor in a mount namespace whose id is above every id
 * its CPU hands out next (Linux 6.18's per-CPU id batches; a Slurm job
 * container): the kernel refuses to pin a namespace with a lower id, so the
 * sandbox's must get a higher one (nspin.h), and the run is pinned all the same. */
Test(crash, pinned_from_a_mount_namespace_above_its_cpu)
{
        AIDP_REQUIRE_ROOT();
        cpu_set_t cs;
        cr_assert_eq(sched_getaffinity(0, sizeof cs, &cs), 0);
        int cpus[2], n = 0;
        for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
                if (CPU_ISSET(c, &cs))
                        cpus[n++] = c;
        if (n < 2)
                cr_skip_test("one CPU: namespace ids are handed out in order");
        /* NS_GET_ID (6.18) is what the helper needs; older kernels hand
         * out ids in one sequence, where the case cannot arise. */
        char *probe[] = {AIDP_BINARY_DIR "/tests/helpers/nsorder_exec", "0", "0", "/bin/true",
                         NULL};
        if (aidp_test_run(&P, probe) == 2 && strstr(P.err, "Inappropriate ioctl"))
                cr_skip_test("no NS_GET_ID: namespace ids are one sequence here");
        char a[16], b[16], run_id[64];
        TEST_SNPRINTF(a, "%d", cpus[1]);
        TEST_SNPRINTF(b, "%d", cpus[0]);
        TEST_SNPRINTF(run_id, "aidp-test-crash-nsorder-%d", (int)getpid());
        char *wrap[] = {AIDP_BINARY_DIR "/tests/helpers/nsorder_exec", a, b, NULL};
        killed_mid_teardown(run_id, wrap);
}

/* gc run where the run's cgroup hierarchy is not mounted (another mount
 * namespace) must not take a missing path for a removed cgroup: it keeps the
 * journal, so a gc that can see the hierarchy finishes the job. (A gc in an
 * OCI runtime's namespace once left the v2 cgroup behind this way.) */
Test(crash, gc_blind_to_a_cgroup_hierarchy_keeps_the_journal)
{
        AIDP_REQUIRE_ROOT();
        char run_id[64], jdir[4096 + 64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-blind-%d", (int)getpid());
        spawn_stopped("job", run_id, "sleep 600");
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        /* The hierarchy that holds the tracking cgroup: cgroup2 at the root
         * (pure v2) or at /sys/fs/cgroup/unified (hybrid). */
        char script[4096 + 256];
        TEST_SNPRINTF(script,
                      "if mountpoint -q /sys/fs/cgroup/unified; then umount -l "
                      "/sys/fs/cgroup/unified; else umount -l /sys/fs/cgroup; fi && exec %s gc "
                      "--run-dir %s",
                      AIDP_SUPERVISOR, rundir);
        char *blind[] = {"/usr/bin/unshare", "-m", "--propagation", "private",
                         "/bin/sh",          "-c", script,          NULL};
        aidp_test_run(&P, blind);
        cr_expect(strstr(P.err, "some cgroups remain"), "blind gc: %s", P.err);
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_expect_eq(access(jdir, F_OK), 0, "the blind gc dropped the journal: %s", P.err);
        cr_expect(aidp_test_cgroup_exists(run_id), "the cgroup should still be there");
        gc_direct();
        cr_expect_neq(access(jdir, F_OK), 0, "the journal survived the second gc: %s", P.err);
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run survived gc");
}

/* The supervisor dies after its end record is on disk, before the journal
 * goes (step 10, where the pin's thread is joined): gc cleans up what is
 * left and adds no ABORT after the COMPLETE (before the fix it did); a
 * second gc finds nothing to do. */
Test(crash, sigkill_after_the_end_record_adds_no_abort_after_it)
{
        AIDP_REQUIRE_ROOT();
        char run_id[64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-ended-%d", (int)getpid());
        const char *const mine[] = {T, run_id, NULL};
        int mounts_before = aidp_test_mounts_of(mine);
        spawn_stopped("ended", run_id, "head -c 65536 /dev/urandom > /scratch/x; exit 0");
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        char jdir[4096 + 64];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_assert_eq(access(jdir, F_OK), 0, "the journal went before the crash point");
        cr_assert_eq(count_events("START"), 1);
        cr_assert_eq(count_events("COMPLETE"), 1, "the end record is not on disk");
        gc_direct();
        cr_expect(strstr(P.err, "end record (COMPLETE) already in lineage"), "gc said: %s", P.err);
        cr_expect_eq(count_events("ABORT"), 0, "gc added an ABORT after the COMPLETE");
        cr_expect_eq(count_events("COMPLETE"), 1);
        cr_expect_neq(access(jdir, F_OK), 0, "the journal survived gc");
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run survived gc");
        cr_expect_eq(aidp_test_mounts_of(mine), mounts_before, "a mount of the run is left");
        gc_direct();
        cr_expect_eq(count_events("ABORT"), 0);
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_expect_eq(aidp_test_run(&P, verify), 0, "%s%s", P.out, P.err);
}

/* The supervisor dies after the status is out (its report printed, its
 * end record committed) but before pid 1 is reaped, the pin dropped, the
 * cgroup removed and the journal deleted (docs/run-core.md, "The tail after
 * the status"): gc finishes that work, reaches the mounts through the pin
 * (pid 1 is dead), and adds no ABORT after the COMPLETE. */
Test(crash, sigkill_after_the_status_before_the_release_leaves_gc_the_rest)
{
        AIDP_REQUIRE_ROOT();
        char run_id[64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-reported-%d", (int)getpid());
        const char *const mine[] = {T, run_id, NULL};
        int mounts_before = aidp_test_mounts_of(mine);
        /* pid 1's reaper once the supervisor is gone: reaped after gc */
        cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        spawn_stopped("reported", run_id, "head -c 65536 /dev/urandom > /scratch/x; exit 0");
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        char jdir[4096 + 64], pin[4096 + 128];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        TEST_SNPRINTF(pin, "%s/mnt.ns", jdir);
        cr_assert_eq(access(jdir, F_OK), 0, "the journal went before the status");
        cr_assert_eq(count_events("COMPLETE"), 1, "the status came before the end record");
        /* What the status did not wait for is still there for gc. */
        cr_expect(aidp_test_cgroup_exists(run_id), "the cgroup went before the status");
        cr_expect_eq(access(pin, F_OK), 0, "the pin went before the status");
        pid_t pid1 = journal_pid1(run_id);
        char st = 0;
        for (int i = 0; i < 300 && (st = aidp_test_proc_state(pid1)) != 'Z'; i++)
                usleep(10000);
        cr_expect_eq(st, 'Z', "pid 1 is not dead after shred (state %c)", st ? st : '-');
        gc_direct();
        cr_expect(strstr(P.err, "end record (COMPLETE) already in lineage"), "gc said: %s", P.err);
        cr_expect_eq(waitpid(pid1, NULL, 0), pid1, "pid 1 was not this test's to reap");
        expect_nothing_left(run_id, pid1, mine, mounts_before);
        cr_expect_eq(count_events("ABORT"), 0, "gc added an ABORT after the COMPLETE");
        cr_expect_eq(count_events("COMPLETE"), 1);
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_expect_eq(aidp_test_run(&P, verify), 0, "%s%s", P.out, P.err);
}

/* The supervisor dies after its end record's line is written but before that
 * line is committed (fdatasync of the log, anchor rewritten: held back here
 * by AIDP_FAULT_SYNC_DELAY_MS): gc may skip the ABORT only after it has
 * committed that record; before the fix it trusted a line only the page
 * cache held, which a host crash (or a later append's failed sync) drops. */
Test(crash, sigkill_before_the_end_records_commit_gets_it_committed_by_gc)
{
        AIDP_REQUIRE_ROOT();
        char run_id[64];
        TEST_SNPRINTF(run_id, "aidp-test-crash-uncommitted-%d", (int)getpid());
        setenv("AIDP_FAULT_SYNC_DELAY_MS", "2500", 1);
        spawn_stopped_in(NULL, NULL, run_id, "exit 0");
        unsetenv("AIDP_FAULT_SYNC_DELAY_MS");
        /* The COMPLETE's line is in the log, its commit 2.5 s away. */
        bool seen = false;
        for (int i = 0; i < 3000 && !seen; i++) {
                seen = count_events("COMPLETE") == 1;
                if (!seen)
                        usleep(5000);
        }
        kill(P.pid, SIGKILL);
        aidp_test_reap(&P);
        cr_assert(seen, "no COMPLETE line within 15 s: %s", P.err);
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        aidp_error err = {0};
        const char *kp = getenv("AIDP_LINEAGE_KEY"); /* as runner.c gives the supervisor */
        cr_assert_eq(aidp_lineage_key_load(kp ? kp : AIDP_BINARY_DIR "/test-lineage/lineage.key",
                                           false, key, &err),
                     0, "%s", err.msg);
        struct aidp_lineage_verify v = {0};
        cr_assert_eq(aidp_lineage_verify_file(logp, NULL, true, key, &v, &err), 0, "%s", err.msg);
        cr_assert_eq(v.anchor_lag, 1, "the COMPLETE was committed before the kill");
        gc_direct();
        cr_expect_eq(count_events("ABORT"), 0, "gc: %s", P.err);
        memset(&v, 0, sizeof v);
        cr_assert_eq(aidp_lineage_verify_file(logp, NULL, true, key, &v, &err), 0, "%s", err.msg);
        cr_expect_eq(v.anchor_lag, 0, "gc trusted an end record it did not commit: %s", P.err);
        cr_expect(v.anchor_seen);
        char jdir[4096 + 64];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jdir, F_OK), 0, "the journal survived gc");
}
