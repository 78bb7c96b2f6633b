#define _GNU_SOURCE
/* Root integration tests of the supervisor's memory while it decrypts inside
 * the run's memory cgroup (docs/run-core.md, "Memory while injecting"): a
 * viewed dataset whose /data (with the room a view may take) and whose view
 * buffers cannot fit the run's memory is refused before START, naming the
 * MiB it needs and --memory; one that fits with fewer view workers runs to
 * its end record. Neither may ever OOM-kill the supervisor (exit 137, no end
 * record), as a 32-byte mask over a 20 MiB CSV under 56 MiB did. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>

#include "common/exitcodes.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"

static char *T;
static char keydir[RUN_PATH_MAX], rundir[RUN_PATH_MAX], logp[RUN_PATH_MAX], keyp[RUN_PATH_MAX],
        data[4096];
static struct aidp_proc P;

static void put(const char *path, const char *text)
{
        write_all(path, (const uint8_t *)text, strlen(text));
        chmod(path, 0644);
}

/* 20 MiB of "<24 a>,<n>\n": a file viewed in chunks on every worker
 * (at least two 8 MiB blocks), its name column labelled pii.direct. The
 * values repeat, so the leak scan's set stays small: what is measured is
 * /data and the view's buffers. */
static void make_csv(const char *path)
{
        FILE *f = fopen(path, "w");
        cr_assert(f, "%s", path);
        fputs("name,n\n", f);
        for (unsigned i = 0; ftell(f) < (20L << 20); i++)
                fprintf(f, "aaaaaaaaaaaaaaaaaaaaaaaa,%u\n", i % 10);
        cr_assert_eq(fclose(f), 0);
        chmod(path, 0644);
}

static void setup(void)
{
        T = run_dirs_new(keydir, rundir, logp, keyp);
        char pol[4096], src[4096], csv[4096], sch[4096];
        TEST_SNPRINTF(pol, "%s/policy", T);
        aidp_test_policy_allow(pol, "nobody", NULL, NULL);
        /* The review's view: the labelled column masked whole to 32 bytes. */
        aidp_test_policy_access(pol,
                                "apiVersion: aidp/v1\nkind: AccessPolicy\nviews:\n  research:\n"
                                "    labels:\n      pii.direct: {mask: {keep_last: 0, with: "
                                "\"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"}}\n"
                                "roles:\n  tests:\n    operations: [run]\n    profiles: [\"*\"]\n"
                                "    datasets: [\"*\"]\n    max_classification: regulated\n"
                                "    view: research\n"
                                "users:\n  nobody: {roles: [tests]}\n");
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(csv, "%s/people.csv", src);
        make_csv(csv);
        TEST_SNPRINTF(sch, "%s/schema.yaml", T);
        put(sch, "apiVersion: aidp/v1\nkind: Schema\nfiles:\n  - pattern: \"*.csv\"\n"
                 "    format: csv\n    columns:\n      name: [pii.direct]\n");
        TEST_SNPRINTF(data, "%s/people.sealed", T);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -n people -k run-key -c confidential "
                                  "--key-dir %s --schema %s -q",
                                  AIDP_TOOL, src, data, keydir, sch),
                     0, "sealing");
}

static void teardown(void)
{
        aidp_test_policy_done(rundir);
        unsetenv("AIDP_LINEAGE_KEY");
        tmpdir_rm(T);
}

TestSuite(view_memory, .init = setup, .fini = teardown, .timeout = 300);

static int run(const char *memory, const char *out_dir, const char *job)
{
        char *argv[40];
        int n = 0;
        const char *fixed[] = {AIDP_SUPERVISOR, "run",       "--user", "65534",
                               "--no-cwd",      "--run-dir", rundir,   "--key-dir",
                               keydir,          "--lineage", logp,     "--memory",
                               memory,          "--data",    data};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
                argv[n++] = (char *)fixed[i];
        if (out_dir) {
                argv[n++] = "--output-dir";
                argv[n++] = (char *)out_dir;
        }
        argv[n++] = "--";
        argv[n++] = "/bin/sh";
        argv[n++] = "-c";
        argv[n++] = (char *)job;
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

static int end_records(void)
{
        return aidp_test_count_events(logp, "COMPLETE") + aidp_test_count_events(logp, "FAIL") +
               aidp_test_count_events(logp, "ABORT");
}

/* /data may reach 1.5 times the plaintext through the view (31 MiB here) and
 * the chunked view's buffers take more than the rest of 56 MiB: refused
 * before anything of the run exists, never an OOM-killed supervisor. */
Test(view_memory, a_view_whose_data_and_buffers_exceed_the_limit_is_refused_before_start)
{
        AIDP_REQUIRE_ROOT();
        int st = run("56Mi", NULL, "echo the-job-ran");
        cr_assert_neq(st, 128 + SIGKILL, "the supervisor was killed: %s", P.err);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "decrypting the sealed inputs needs") &&
                          strstr(P.err, "through its views") && strstr(P.err, "56 MiB") &&
                          strstr(P.err, "--memory"),
                  "%s", P.err);
        cr_expect_null(strstr(P.out, "the-job-ran"), "the job ran");
        cr_expect_eq(aidp_test_count_events(logp, "START"), 0, "a refused run was started");
}

/* Room for one view worker but not for one per CPU: the view pass runs on
 * what fits and the job sees every row masked; the run ends with its own
 * end record. With --output-dir the hidden values also go to the leak scan
 * (a bounded buffer per chunk, the set itself from inside the cgroup). */
Test(view_memory, a_view_that_fits_with_fewer_workers_runs_to_its_end_record)
{
        AIDP_REQUIRE_ROOT();
        char out[4096];
        TEST_SNPRINTF(out, "%s/out", T);
        mkdir_p(out, 0777);
        chmod(out, 0777);
        int st = run("256Mi", out,
                     "f=/data/people/people.csv; "
                     "rows=$(grep -c '^XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX,[0-9]$' $f); "
                     "all=$(wc -l < $f); "
                     "! grep -q aaaa $f && [ $rows -gt 700000 ] && [ $rows -eq $((all - 1)) ] && "
                     "echo masked-rows=$rows");
        cr_assert_neq(st, 128 + SIGKILL, "the supervisor was killed: %s", P.err);
        cr_expect_eq(st, 0, "exit %d: %s\n%s", st, P.err, P.out);
        cr_expect(strstr(P.out, "masked-rows="), "%s\n%s", P.out, P.err);
        cr_expect_eq(aidp_test_count_events(logp, "START"), 1);
        cr_expect_eq(aidp_test_count_events(logp, "COMPLETE"), 1);
        cr_expect_eq(end_records(), 1);
}

/* The run's memory cgroup file `v1` (cgroup v1) or `v2` of process pid. */
static void cgroup_file(pid_t pid, const char *v1, const char *v2, char *out, size_t n)
{
        char p[64], line[4096];
        snprintf(p, sizeof p, "/proc/%d/cgroup", (int)pid);
        FILE *f = fopen(p, "r");
        cr_assert(f, "%s", p);
        out[0] = 0;
        while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = 0;
                char *path = strchr(strchr(line, ':') + 1, ':') + 1;
                if (strstr(line, ":memory:"))
                        snprintf(out, n, "/sys/fs/cgroup/memory%s/%s", path, v1);
                else if (!strncmp(line, "0::", 3) && !out[0])
                        snprintf(out, n, "/sys/fs/cgroup%s/%s", path, v2);
        }
        fclose(f);
        cr_assert(out[0], "no memory cgroup for %d", (int)pid);
}

/* Can this root lower an oom_score_adj (CAP_SYS_RESOURCE)? Some containers
 * drop it; production hosts and the test VM have it. */
static bool has_sys_resource(void)
{
        size_t len = 0;
        char *st = aidp_test_slurp("/proc/self/status", &len);
        cr_assert(st);
        const char *e = strstr(st, "CapEff:");
        unsigned long long caps = e ? strtoull(e + 7, NULL, 16) : 0;
        free(st);
        return caps & (1ULL << 24);
}

/* Someone (root) lowers the run's limit while the supervisor decrypts in its
 * cgroup: the kernel's OOM killer takes the sandbox's pid 1, never the
 * supervisor (oom_score_adj -1000 while inside), whose next charge fails:
 * the run ends with its error and its end record, not exit 137. Where root
 * lacks CAP_SYS_RESOURCE the supervisor cannot protect itself (the
 * documented residual): it may then be killed, and gc records ABORT. */
Test(view_memory, a_limit_lowered_during_the_injection_ends_the_run_with_its_end_record)
{
        AIDP_REQUIRE_ROOT();
        char *argv[] = {
                AIDP_SUPERVISOR, "run",       "--user", "65534",     "--no-cwd", "--run-dir",
                rundir,          "--key-dir", keydir,   "--lineage", logp,       "--memory",
                "400Mi",         "--data",    data,     "--",        "true",     NULL};
        setenv("AIDP_FAULT_STOP_AT", "charged", 1);
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        unsetenv("AIDP_FAULT_STOP_AT");
        cr_assert(aidp_test_wait_stopped(P.pid), "the supervisor never reached 'charged': %s",
                  P.err);
        char cur[4096], max[4096];
        cgroup_file(P.pid, "memory.usage_in_bytes", "memory.current", cur, sizeof cur);
        cgroup_file(P.pid, "memory.limit_in_bytes", "memory.max", max, sizeof max);
        size_t len = 0;
        char *text = aidp_test_slurp(cur, &len);
        cr_assert(text, "%s", cur);
        unsigned long long used = strtoull(text, NULL, 10);
        free(text);
        /* A little above what is charged now: no OOM yet, but far less than
         * /data and one view worker need. */
        cr_assert_eq(aidp_test_sh("echo %llu > %s", (used + (4ULL << 20)) & ~4095ULL, max), 0, "%s",
                     max);
        kill(P.pid, SIGCONT);
        if (!has_sys_resource()) {
                cr_assert_null(getenv("AIDP_VM"), "the VM's root has CAP_SYS_RESOURCE");
                int st = aidp_test_reap(&P);
                if (st == 128 + SIGKILL) {
                        aidp_test_gc(rundir);
                        cr_expect_eq(aidp_test_count_events(logp, "ABORT"), 1);
                }
                cr_expect_eq(end_records(), 1, "exit %d: %s", st, P.err);
                return;
        }
        int st = aidp_test_finish(&P);
        cr_assert_neq(st, 128 + SIGKILL, "the supervisor was killed: %s", P.err);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "ran out while decrypting into /data") && strstr(P.err, "--memory"),
                  "exit %d: %s", st, P.err);
        cr_expect_eq(aidp_test_count_events(logp, "START"), 1);
        cr_expect_eq(aidp_test_count_events(logp, "FAIL"), 1, "%s", P.err);
        cr_expect_eq(end_records(), 1);
}

/* While it decrypts and views, every page the supervisor touches is locked
 * (its heap holds plaintext: json-c's strings, libcsv's buffer, the viewers'
 * rows): the kernel's VmFlags of its heap and of a mapping made after the
 * lock say so, wherever the run's cgroup would allow swap. */
Test(view_memory, the_supervisors_memory_is_locked_while_it_decrypts)
{
        AIDP_REQUIRE_ROOT();
        char *argv[] = {
                AIDP_SUPERVISOR, "run",  "--user",    "65534", "--no-cwd", "--run-dir", rundir,
                "--key-dir",     keydir, "--lineage", logp,    "--data",   data,        "--",
                "true",          NULL};
        setenv("AIDP_FAULT_STOP_AT", "charged", 1);
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        unsetenv("AIDP_FAULT_STOP_AT");
        cr_assert(aidp_test_wait_stopped(P.pid), "the supervisor never reached 'charged': %s",
                  P.err);
        char path[64];
        TEST_SNPRINTF(path, "/proc/%d/smaps", (int)P.pid);
        size_t len = 0;
        char *smaps = aidp_test_slurp(path, &len);
        kill(P.pid, SIGCONT);
        cr_assert(smaps, "%s", path);
        /* Every private writable mapping: locked (VmFlags " lo"), on fault. */
        size_t rw = 0, locked = 0;
        bool in_rw = false, heap_locked = false, is_heap = false;
        for (char *l = smaps; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                char perms[5] = "";
                unsigned long lo, hi;
                if (sscanf(l, "%lx-%lx %4s", &lo, &hi, perms) == 3) {
                        in_rw = !strcmp(perms, "rw-p");
                        is_heap = strstr(l, "[heap]") && strstr(l, "[heap]") < strchr(l, '\n');
                        rw += in_rw;
                } else if (!strncmp(l, "VmFlags:", 8) && in_rw) {
                        const char *end = strchr(l, '\n');
                        const char *f = strstr(l, " lo");
                        bool yes = f && (!end || f < end);
                        locked += yes;
                        heap_locked |= is_heap && yes;
                }
        }
        free(smaps);
        cr_expect(heap_locked, "the supervisor's heap is not locked while it decrypts");
        cr_expect_eq(locked, rw, "%zu of %zu private writable mappings locked", locked, rw);
        cr_expect_eq(aidp_test_finish(&P), 0, "%s", P.err);
        cr_expect_eq(end_records(), 1);
}
