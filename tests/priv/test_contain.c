#define _GNU_SOURCE
/* Issue 14, containment, asserted from the host: every tmpfs the job can write
 * (/dev/shm included) is the supervisor's, shredded and reported per mount;
 * paths deeper than PATH_MAX are shredded; a run never gets two end records;
 * /data is charged to the run's memory cgroup and data that cannot fit is
 * refused before it is decrypted; a full mount is named at the end. */
#include <json-c/json.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <time.h>

#include "common/exitcodes.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

static char *T;
static char keydir[4096], rundir[4096], logp[4096], summary[4096], run_id[80];
static struct aidp_proc P;

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(summary, "%s/summary.json", T);
        static int seq;
        TEST_SNPRINTF(run_id, "aidp-test-contain-%d-%d", (int)getpid(), ++seq);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "contain-key", &err), 0, "%s", err.msg);
        /* Sealed data is decrypted only under an installed policy. */
        char pol[4096 + 16];
        TEST_SNPRINTF(pol, "%s/policy", T);
        aidp_test_policy_allow(pol, "nobody", NULL, NULL);
}

static void teardown(void)
{
        aidp_test_policy_done(rundir);
        tmpdir_rm(T);
}

TestSuite(contain, .init = setup, .fini = teardown, .timeout = 180);

/* Seal `bytes` of data (zeros when sparse) as dataset `name`. */
static void make_dataset(const char *name, uint64_t bytes, bool sparse, char *out, size_t len)
{
        char src[4096], f[4096];
        TEST_SNPRINTF(src, "%s/src-%s", T, name);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/blob.bin", src);
        if (sparse) {
                int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                cr_assert_geq(fd, 0);
                cr_assert_eq(ftruncate(fd, (off_t)bytes), 0);
                close(fd);
        } else {
                write_file(f, bytes, 0644, 7);
        }
        snprintf(out, len, "%s/%s.sealed", T, name);
        seal_with_key_dir(src, out, keydir, "contain-key", name);
}

/* argv of a run of `script`, with `extra` options (NULL-terminated) first. */
static void run_argv(char **argv, const char *const *extra, const char *script)
{
        size_t n = 0;
        const char *base[] = {AIDP_SUPERVISOR, "run",   "--user",    "65534", "--no-cwd",  "-q",
                              "--run-dir",     rundir,  "--key-dir", keydir,  "--lineage", logp,
                              "--summary",     summary, "--run-id",  run_id};
        for (size_t i = 0; i < sizeof base / sizeof *base; i++)
                argv[n++] = (char *)base[i];
        for (; extra && *extra; extra++)
                argv[n++] = (char *)*extra;
        argv[n++] = "--";
        argv[n++] = "/bin/sh";
        argv[n++] = "-c";
        argv[n++] = (char *)script;
        argv[n] = NULL;
}

static json_object *read_summary(void)
{
        json_object *s = json_object_from_file(summary);
        cr_assert_not_null(s, "no summary at %s: %s", summary, P.err);
        return s;
}

/* The summary's report of the tmpfs mounted at `target`. */
static json_object *mount_report(json_object *s, const char *target)
{
        json_object *ms = aidp_test_json_at(s, "shred.mounts");
        cr_assert_not_null(ms, "no per-mount shred report: %s", json_object_to_json_string(s));
        for (size_t i = 0; i < json_object_array_length(ms); i++) {
                json_object *m = json_object_array_get_idx(ms, i);
                if (!strcmp(aidp_test_json_str(m, "mount"), target))
                        return m;
        }
        cr_assert_fail("%s is not in the shred report: %s", target, json_object_to_json_string(ms));
        return NULL;
}

static uint64_t u64_at(json_object *o, const char *path)
{
        json_object *v = aidp_test_json_at(o, path);
        cr_assert_not_null(v, "no %s in %s", path, json_object_to_json_string(o));
        return json_object_get_uint64(v);
}

static int count_events(const char *type)
{
        return aidp_test_count_events(logp, type);
}

static int end_records(void)
{
        return count_events("COMPLETE") + count_events("FAIL") + count_events("ABORT");
}

/* PyTorch's DataLoader puts batches in /dev/shm: it is the supervisor's tmpfs
 * (noswap where the kernel has it), overwritten, and reported with its files
 * and bytes like /tmp and /scratch. */
Test(contain, dev_shm_is_the_supervisors_tmpfs_shredded_and_reported)
{
        AIDP_REQUIRE_ROOT();
        char *argv[64];
        run_argv(argv, NULL,
                 "head -c 1048576 /dev/urandom > /dev/shm/batch0 && "
                 "head -c 4096 /dev/urandom > /dev/shm/batch1 && "
                 "head -c 100 /dev/urandom > /scratch/x && head -c 10 /dev/urandom > /tmp/y");
        int st = aidp_test_run(&P, argv);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        json_object *s = read_summary();
        json_object *shm = mount_report(s, "/dev/shm");
        cr_expect_eq(u64_at(shm, "files"), 2);
        cr_expect_eq(u64_at(shm, "bytes"), 1048576 + 4096, "/dev/shm was not overwritten");
        cr_expect(json_object_get_boolean(aidp_test_json_at(shm, "verified")));
        cr_expect_eq(u64_at(mount_report(s, "/scratch"), "bytes"), 100);
        cr_expect_eq(u64_at(mount_report(s, "/tmp"), "bytes"), 10);
        cr_expect_eq(u64_at(mount_report(s, "/out"), "files"), 0);
        /* noswap wherever the kernel has it: then every mount has it */
        bool kernel_noswap = json_object_get_boolean(aidp_test_json_at(s, "tmpfs_noswap"));
        cr_expect_eq(json_object_get_boolean(aidp_test_json_at(shm, "noswap")), kernel_noswap);
        cr_expect_eq(u64_at(s, "shred.files"), 4);
        cr_expect_str_eq(aidp_test_json_str(s, "shred.shredded_by"), "supervisor");
        json_object_put(s);
        /* and lineage has the same per mount */
        size_t len = 0;
        char *log = aidp_test_slurp(logp, &len);
        cr_assert_not_null(log);
        cr_expect(strstr(log, "\"mount\":\"\\/dev\\/shm\"") ||
                          strstr(log, "\"mount\":\"/dev/shm\""),
                  "no /dev/shm in lineage's shred report");
        cr_expect(strstr(log, "\"shreddedBy\":\"supervisor\""),
                  "lineage does not say who shredded");
        free(log);
}

/* While the job runs, /dev/shm in the sandbox is a tmpfs with noswap (when
 * the kernel has it), read from the host in pid 1's mount table. */
Test(contain, dev_shm_is_mounted_noswap_with_its_own_size)
{
        AIDP_REQUIRE_ROOT();
        char *argv[64];
        const char *extra[] = {"--shm-size", "3M", NULL};
        run_argv(argv, extra, "echo READY; sleep 30");
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        cr_assert(aidp_test_wait_output(&P, "READY", 20000), "the job never started: %s", P.err);
        char p[64], line[4096];
        TEST_SNPRINTF(p, "/proc/%d/task/%d/children", (int)P.pid, (int)P.pid);
        FILE *f = fopen(p, "re");
        int pid1 = 0;
        cr_assert(f && fscanf(f, "%d", &pid1) == 1, "no pid 1");
        fclose(f);
        TEST_SNPRINTF(p, "/proc/%d/mountinfo", pid1);
        f = fopen(p, "re");
        cr_assert_not_null(f);
        bool found = false, noswap = false, size_ok = false;
        while (fgets(line, sizeof line, f)) {
                if (!strstr(line, " /dev/shm "))
                        continue;
                found = true;
                noswap = strstr(line, "noswap") != NULL;
                size_ok = strstr(line, "size=3072k") != NULL;
        }
        fclose(f);
        kill(P.pid, SIGTERM);
        aidp_test_finish(&P);
        cr_expect(found, "no /dev/shm in the sandbox");
        cr_expect(size_ok, "/dev/shm is not 3 MiB");
        json_object *s = read_summary();
        cr_expect_eq(noswap, json_object_get_boolean(aidp_test_json_at(s, "tmpfs_noswap")),
                     "noswap on /dev/shm differs from what the kernel offers");
        cr_expect_eq(u64_at(mount_report(s, "/dev/shm"), "size_bytes"), 3 << 20);
        json_object_put(s);
}

/* 20 nested directories of 240-character names in /scratch: past PATH_MAX,
 * still overwritten; the run succeeds, with one end record, and leaves
 * nothing for gc. */
Test(contain, files_deeper_than_path_max_are_shredded)
{
        AIDP_REQUIRE_ROOT();
        /* a helper program: a shell's cd builds the whole path and stops at
         * PATH_MAX (and the VM has no perl or python) */
        const char *script = "exec " AIDP_PROBE " deep /scratch";
        char *argv[64];
        run_argv(argv, NULL, script);
        int st = aidp_test_run(&P, argv);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        json_object *s = read_summary();
        json_object *m = mount_report(s, "/scratch");
        cr_expect_eq(u64_at(m, "files"), 1);
        cr_expect_eq(u64_at(m, "bytes"), 5000, "the deep file was not overwritten");
        cr_expect(json_object_get_boolean(aidp_test_json_at(s, "shred.verified")));
        json_object_put(s);
        char jdir[4096 + 96];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jdir, F_OK), 0, "the journal stayed");
        cr_expect_eq(count_events("START"), 1);
        cr_expect_eq(count_events("COMPLETE"), 1);
        cr_expect_eq(end_records(), 1);
}

/* A run whose teardown fails at the fault point `fault` (AIDP_FAULT_FAIL_AT)
 * after its end record `event` is written: the journal stays for gc, which
 * cleans up but adds no second end record (no ABORT after it). */
static void fail_then_gc(const char *fault, int want_status, const char *event, const char *said)
{
        char *argv[64];
        run_argv(argv, NULL, "head -c 1000 /dev/urandom > /scratch/x");
        setenv("AIDP_FAULT_FAIL_AT", fault, 1);
        int st = aidp_test_run(&P, argv);
        unsetenv("AIDP_FAULT_FAIL_AT");
        cr_expect_eq(st, want_status, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, said), "the supervisor did not say '%s': %s", said, P.err);
        cr_expect_eq(count_events(event), 1, "no %s record", event);
        char jp[4096 + 128];
        TEST_SNPRINTF(jp, "%s/%s/journal.json", rundir, run_id);
        json_object *j = json_object_from_file(jp);
        cr_assert_not_null(j, "teardown failed but no journal was left for gc");
        cr_expect_str_eq(aidp_test_json_str(j, "end_recorded"), event);
        json_object_put(j);
        char *gc[] = {AIDP_SUPERVISOR, "gc", "--run-dir", rundir, NULL};
        cr_assert_eq(aidp_test_run(&P, gc), 0, "%s", P.err);
        cr_expect(strstr(P.err, "already in lineage"), "%s", P.err);
        cr_expect_eq(count_events("ABORT"), 0, "gc appended an ABORT after the %s", event);
        cr_expect_eq(end_records(), 1);
        cr_expect_neq(access(jp, F_OK), 0, "gc left the journal");
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run is left after gc");
        char *verify[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", logp, NULL};
        cr_expect_eq(aidp_test_run(&P, verify), 0, "%s%s", P.out, P.err);
}

/* Teardown fails before the end record (here: a shred reported unverified):
 * the run is a FAIL, and gets no ABORT after it. */
Test(contain, a_run_never_gets_two_end_records)
{
        AIDP_REQUIRE_ROOT();
        fail_then_gc("shred", AIDP_EXIT_INTERNAL, "FAIL", "shred not verified");
}

/* What teardown does after the status (pid 1 reaped, the pin and the cgroups
 * removed) fails: the run is on record and keeps its status (the supervisor
 * says what it left for gc), and gc cleans up without an ABORT. */
Test(contain, a_failure_after_the_status_leaves_the_rest_to_gc)
{
        AIDP_REQUIRE_ROOT();
        fail_then_gc("release", 0, "COMPLETE", "left for gc");
}

/* The test's own cgroup parent, wherever a run may have made it (the
 * cgroup2 root, v1's tracking mount and hierarchies): clean-up on failure. */
static void remove_test_parent(const char *parent)
{
        const char *in[] = {"", "/unified", "/memory", "/cpu", "/cpuacct", "/pids", "/devices"};
        for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
                char p[256];
                TEST_SNPRINTF(p, "/sys/fs/cgroup%s/%s", in[i], parent);
                rmdir(p);
        }
}

/* A run at the fault point `fault` (AIDP_FAULT_FAIL_AT) of the run journal's
 * cgroups.log (a full /run): no cgroup directory is made that a crash would
 * leave to gc unnamed. The run fails before its job, says why (`said`, and
 * the write's or open's own errno, ENOSPC), and leaves no cgroup and no
 * journal. */
static void cgroups_log_fails(const char *fault, const char *said)
{
        /* A parent of the test's own, made fresh by the run (no other run
         * shares it, so its absence after is the run's doing): it goes
         * again with the directory not made under it. */
        char parent[96];
        TEST_SNPRINTF(parent, "aidp-test-cglog-parent-%d", (int)getpid());
        cr_assert(!aidp_test_cgroup_exists(parent), "%s exists before the run", parent);
        const char *extra[] = {"--cgroup-parent", parent, NULL};
        char *argv[64];
        run_argv(argv, extra, "echo the-job-ran");
        setenv("AIDP_FAULT_FAIL_AT", fault, 1);
        int st = aidp_test_run(&P, argv);
        unsetenv("AIDP_FAULT_FAIL_AT");
        cr_expect_eq(st, AIDP_EXIT_INTERNAL, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, said), "the cause is not named: %s", P.err);
        cr_expect(strstr(P.err, strerror(ENOSPC)), "the errno is not named: %s", P.err);
        cr_expect(!strstr(P.out, "the-job-ran"), "the job ran: %s", P.out);
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run is left");
        cr_expect(!aidp_test_cgroup_exists(parent), "the parent %s the run made is left", parent);
        remove_test_parent(parent);
        char jp[4096 + 128];
        TEST_SNPRINTF(jp, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jp, F_OK), 0, "the run's journal is left: %s", jp);
        /* refused before its START record: the log has nothing of it */
        size_t len = 0;
        char *log = aidp_test_slurp(logp, &len);
        cr_expect(!log || !strstr(log, run_id), "the log has a record of the run: %s", log);
        free(log);
}

Test(contain, a_cgroups_log_that_cannot_be_written_makes_no_cgroup)
{
        AIDP_REQUIRE_ROOT();
        cgroups_log_fails("cgroups-log", "cgroups.log could not be written");
}

/* cgroups.log cannot even be opened (no inode left on /run, no fd left):
 * the same, before any cgroup is made. */
Test(contain, a_cgroups_log_that_cannot_be_opened_makes_no_cgroup)
{
        AIDP_REQUIRE_ROOT();
        cgroups_log_fails("cgroups-log-open", "cgroups.log could not be opened");
}

/* The v1 cgroup helper killed after it made the run's hierarchies, before it
 * sent them back (AIDP_FAULT_FAIL_AT=cgroup-helper-lost): the run fails
 * before its job, and its teardown, which knows only the tracking group,
 * must not call itself clean: the journal and its cgroups.log stay, and gc
 * removes every directory the log names, the helper's among them. */
Test(contain, a_cgroup_helper_that_ends_without_its_result_leaves_gc_its_hierarchies)
{
        AIDP_REQUIRE_ROOT();
        struct statfs sfs;
        if (statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
                cr_skip_test("cgroup v2: the run's one directory is made without a helper");
        char *argv[64];
        run_argv(argv, NULL, "echo the-job-ran");
        setenv("AIDP_FAULT_FAIL_AT", "cgroup-helper-lost", 1);
        int st = aidp_test_run(&P, argv);
        unsetenv("AIDP_FAULT_FAIL_AT");
        cr_expect_eq(st, AIDP_EXIT_INTERNAL, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "ended without a result"), "the cause is not named: %s", P.err);
        cr_expect(!strstr(P.out, "the-job-ran"), "the job ran: %s", P.out);
        /* the hierarchies the helper made: left, and named in cgroups.log */
        char cl[4096 + 128];
        TEST_SNPRINTF(cl, "%s/%s/cgroups.log", rundir, run_id);
        size_t len = 0;
        char *log = aidp_test_slurp(cl, &len);
        cr_assert_not_null(log, "the run's cgroups.log is gone: nothing names the helper's "
                                "hierarchies for gc");
        char *paths[16];
        size_t n = 0, left = 0;
        char *sv = NULL;
        for (char *l = strtok_r(log, "\n", &sv); l && n < 16; l = strtok_r(NULL, "\n", &sv)) {
                paths[n++] = l;
                left += access(l, F_OK) == 0;
        }
        cr_expect_gt(n, 1, "cgroups.log names no hierarchy of the helper's");
        cr_expect_gt(left, 0, "no directory of the helper's was left to test gc with");
        char *gc[] = {AIDP_SUPERVISOR, "gc", "--run-dir", rundir, NULL};
        cr_expect_eq(aidp_test_run(&P, gc), 0, "%s", P.err);
        for (size_t i = 0; i < n; i++)
                cr_expect_neq(access(paths[i], F_OK), 0, "gc left %s", paths[i]);
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run is left after gc");
        char jp[4096 + 128];
        TEST_SNPRINTF(jp, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jp, F_OK), 0, "gc left the journal: %s", jp);
        free(log);
}

/* Data that cannot fit the run's memory is refused before anything of the
 * run exists: no decryption, no START, no journal, no cgroup. */
Test(contain, dataset_larger_than_the_memory_limit_is_refused_up_front)
{
        AIDP_REQUIRE_ROOT();
        /* 600 MiB under 128 MiB; where the disk cannot hold that (the VM's
         * /tmp is in its 1 GiB of RAM, and sealing there is slow), 48 MiB
         * under 32 MiB */
        struct statvfs sv;
        cr_assert_eq(statvfs(T, &sv), 0);
        bool small = (uint64_t)sv.f_bavail * sv.f_frsize < (1400ULL << 20);
        char big[4096];
        make_dataset("big", small ? 48ULL << 20 : 600ULL << 20, true, big, sizeof big);
        const char *mem = small ? "32Mi" : "128Mi", *mem_text = small ? "32 MiB" : "128 MiB";
        char *argv[64];
        const char *extra[] = {"--memory", mem, "--data", big, NULL};
        run_argv(argv, extra, "echo the-job-ran");
        int st = aidp_test_run(&P, argv);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "MiB of memory once decrypted"), "%s", P.err);
        cr_expect(strstr(P.err, mem_text) && strstr(P.err, "--memory"), "%s", P.err);
        cr_expect(!strstr(P.out, "the-job-ran"), "the job ran");
        cr_expect_eq(count_events("START"), 0, "a refused run was started");
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup was made");
        char jdir[4096 + 96];
        TEST_SNPRINTF(jdir, "%s/%s", rundir, run_id);
        cr_expect_neq(access(jdir, F_OK), 0, "a journal was made");
}

/* The run's cgroup file (memory.usage_in_bytes on v1, memory.current on v2)
 * of the memory hierarchy pid1 is in, read from the host; 0 when unreadable
 * (the caller stops the run before it asserts). */
static uint64_t run_memory_usage(pid_t pid1, char *file, size_t len)
{
        char p[64], line[4096];
        TEST_SNPRINTF(p, "/proc/%d/cgroup", (int)pid1);
        FILE *f = fopen(p, "re");
        if (!f)
                return 0;
        file[0] = '\0';
        while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = '\0';
                char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c1 = *c2 = '\0';
                if (strstr(c1 + 1, "memory"))
                        snprintf(file, len, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes",
                                 c2 + 1);
                else if (!c1[1] && !file[0] && !strcmp(line, "0"))
                        snprintf(file, len, "/sys/fs/cgroup%s/memory.current", c2 + 1);
        }
        fclose(f);
        f = fopen(file, "re");
        unsigned long long v = 0;
        if (!f || fscanf(f, "%llu", &v) != 1)
                v = 0;
        if (f)
                fclose(f);
        return v;
}

/* A dataset that fits: its pages are charged to the run's cgroup (seen from
 * the host while the job runs), and the summary and lineage report data,
 * tmpfs and process memory apart. */
Test(contain, data_pages_are_charged_to_the_run_and_reported_apart)
{
        AIDP_REQUIRE_ROOT();
        char ds[4096];
        make_dataset("fits", 32ULL << 20, false, ds, sizeof ds);
        char *argv[64];
        const char *extra[] = {"--memory", "256Mi", "--data", ds, NULL};
        run_argv(argv, extra, "head -c 3000000 /dev/urandom > /scratch/x; echo READY; sleep 30");
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        cr_assert(aidp_test_wait_output(&P, "READY", 60000), "the job never started: %s", P.err);
        char p[64];
        TEST_SNPRINTF(p, "/proc/%d/task/%d/children", (int)P.pid, (int)P.pid);
        FILE *f = fopen(p, "re");
        int pid1 = 0;
        cr_assert(f && fscanf(f, "%d", &pid1) == 1, "no pid 1");
        fclose(f);
        char file[4200];
        uint64_t usage = run_memory_usage(pid1, file, sizeof file);
        kill(P.pid, SIGTERM);
        aidp_test_finish(&P);
        cr_assert_gt(usage, 0, "cannot read the run's memory usage (%s)", file);
        cr_expect_geq(usage, 35ULL << 20,
                      "the run's cgroup holds %llu bytes: the 32 MiB of /data are not charged "
                      "to it",
                      (unsigned long long)usage);
        json_object *s = read_summary();
        uint64_t data = u64_at(s, "memory.data_bytes"), tmpfs = u64_at(s, "memory.tmpfs_bytes");
        cr_expect(data >= (32ULL << 20) && data < (34ULL << 20), "data memory %llu",
                  (unsigned long long)data);
        cr_expect(tmpfs >= 3000000 && tmpfs < (4ULL << 20), "tmpfs memory %llu",
                  (unsigned long long)tmpfs);
        cr_expect_geq(u64_at(s, "memory.peak_bytes"), data + tmpfs);
        cr_expect_not_null(aidp_test_json_at(s, "memory.process_peak_bytes"));
        json_object_put(s);
        size_t len = 0;
        char *log = aidp_test_slurp(logp, &len);
        cr_assert_not_null(log);
        cr_expect(strstr(log, "\"dataMemoryBytes\":") && strstr(log, "\"tmpfsMemoryBytes\":") &&
                          strstr(log, "\"processMemoryPeakBytes\":"),
                  "lineage does not report the memory parts");
        free(log);
}

/* A write that fills /scratch: the end-of-run message names the mount and
 * how to raise it, also with -q. */
Test(contain, a_full_mount_is_named_with_how_to_raise_it)
{
        AIDP_REQUIRE_ROOT();
        char *argv[64];
        const char *extra[] = {"--scratch-size", "1M", NULL};
        run_argv(argv, extra, "head -c 2000000 /dev/zero > /scratch/big; exit 0");
        int st = aidp_test_run(&P, argv);
        cr_expect_eq(st, 0, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "/scratch filled up"), "%s", P.err);
        cr_expect(strstr(P.err, "--scratch-size"), "%s", P.err);
        cr_expect(strstr(P.err, "limits.tmpfs./scratch"), "%s", P.err);
        json_object *s = read_summary();
        json_object *m = mount_report(s, "/scratch");
        cr_expect(json_object_get_boolean(aidp_test_json_at(m, "full")));
        cr_expect_eq(u64_at(m, "size_bytes"), 1 << 20);
        cr_expect(!json_object_get_boolean(aidp_test_json_at(mount_report(s, "/tmp"), "full")));
        json_object_put(s);
}
