/* Root integration tests of the run core: the probe runs inside the sandbox
 * and asserts what the kernel enforces there; the test checks from the host
 * that nothing of the run is left. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/tpath.h"
#include "common/exitcodes.h"
#include "lineage_util.h"
#include "priv.h"
#include "daemon_util.h"
#include "runner.h"

static struct aidp_proc P;

static int probe(const char *check, const char *const extra_opts[], const char *arg)
{
        char *argv[32];
        int n = 0;
        argv[n++] = AIDP_SUPERVISOR;
        argv[n++] = "run";
        argv[n++] = "--user";
        argv[n++] = "65534";
        for (int i = 0; extra_opts && extra_opts[i]; i++)
                argv[n++] = (char *)extra_opts[i];
        argv[n++] = "--";
        argv[n++] = AIDP_PROBE;
        argv[n++] = (char *)check;
        if (arg)
                argv[n++] = (char *)arg;
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

static void expect_probe_ok(const char *check)
{
        int st = probe(check, NULL, NULL);
        cr_expect_eq(st, 0, "probe %s: exit %d\nstdout:\n%s\nstderr:\n%s", check, st, P.out, P.err);
        cr_expect(strstr(P.out, "ok ") != NULL, "probe %s asserted nothing:\n%s", check, P.out);
        cr_expect(strstr(P.out, "FAIL") == NULL, "probe %s:\n%s", check, P.out);
}

TestSuite(run, .init = NULL, .timeout = 60);

Test(run, credentials_caps_nnp_seccomp_in_proc_status)
{
        AIDP_REQUIRE_ROOT();
        expect_probe_ok("status");
}

Test(run, fresh_pid_namespace_sees_no_host_pid)
{
        AIDP_REQUIRE_ROOT();
        expect_probe_ok("pidns");
}

Test(run, network_namespace_has_only_loopback_up)
{
        AIDP_REQUIRE_ROOT();
        expect_probe_ok("net");
}

Test(run, baseline_seccomp_denies_with_eperm)
{
        AIDP_REQUIRE_ROOT();
        expect_probe_ok("seccomp");
}

Test(run, masked_paths_are_unreadable)
{
        AIDP_REQUIRE_ROOT();
        expect_probe_ok("masked");
}

Test(run, root_is_read_only_and_private_mounts_writable)
{
        AIDP_REQUIRE_ROOT();
        expect_probe_ok("fs");
}

Test(run, exit_status_passes_through)
{
        AIDP_REQUIRE_ROOT();
        cr_expect_eq(probe("exit", NULL, "42"), 42, "%s", P.err);
        char *argv[] = {AIDP_SUPERVISOR, "run", "--user",     "65534", "-q", "--",
                        "/bin/sh",       "-c",  "kill -9 $$", NULL};
        cr_expect_eq(aidp_test_run(&P, argv), 128 + SIGKILL, "%s", P.err);
}

Test(run, command_not_found_and_not_executable)
{
        AIDP_REQUIRE_ROOT();
        char *nf[] = {AIDP_SUPERVISOR, "run", "--user", "65534", "--", "/no/such/cmd", NULL};
        cr_expect_eq(aidp_test_run(&P, nf), AIDP_EXIT_NOT_FOUND, "%s", P.err);
        cr_expect(strstr(P.err, "/no/such/cmd") != NULL, "%s", P.err);
        char *nx[] = {AIDP_SUPERVISOR, "run", "--user", "65534", "--", "/usr", NULL};
        cr_expect_eq(aidp_test_run(&P, nx), AIDP_EXIT_CANNOT_EXEC, "%s", P.err);
}

Test(run, memory_limit_ends_in_reported_oom)
{
        AIDP_REQUIRE_ROOT();
        const char *const o[] = {"--memory", "64Mi", "--run-id", "aidp-test-oom", NULL};
        int st = probe("memhog", o, NULL);
        cr_expect_eq(st, AIDP_EXIT_OOM, "exit %d\n%s", st, P.err);
        cr_expect(strstr(P.err, "memory limit") != NULL, "no clear OOM message: %s", P.err);
        cr_expect(!aidp_test_cgroup_exists("aidp-test-oom"), "the run's cgroup survived");
}

Test(run, fork_bomb_stops_at_pids_limit)
{
        AIDP_REQUIRE_ROOT();
        const char *const o[] = {"--pids", "32", NULL};
        int st = probe("forkbomb", o, "32");
        cr_expect_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "FAIL") == NULL, "%s", P.out);
}

Test(run, timeout_stops_the_job)
{
        AIDP_REQUIRE_ROOT();
        const char *const o[] = {"--timeout", "1s", "--kill-after", "1s", NULL};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int st = probe("sleep", o, "60");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cr_expect_eq(st, AIDP_EXIT_TIMEOUT, "exit %d\n%s", st, P.err);
        cr_expect(strstr(P.err, "wall time") != NULL, "%s", P.err);
        cr_expect(t1.tv_sec - t0.tv_sec < 30, "the job was not stopped");
}

/* Send each signal to the supervisor and wait until the job inside reports
 * it; the last one must end the job. */
static void signal_case(const int *sigs, const char *const *names, int n)
{
        char *argv[] = {AIDP_SUPERVISOR, "run",     "--user", "65534", "-q", "--",
                        AIDP_PROBE,      "signals", NULL};
        cr_assert_eq(aidp_test_spawn(&P, argv), 0);
        cr_assert(aidp_test_wait_output(&P, "ready", 20000), "probe never got ready: %s %s", P.out,
                  P.err);
        for (int i = 0; i < n; i++) {
                kill(P.pid, sigs[i]);
                cr_expect(aidp_test_wait_output(&P, names[i], 10000),
                          "%s not forwarded: %s\nstderr: %s", names[i], P.out, P.err);
        }
        int st = aidp_test_finish(&P);
        cr_expect_eq(st, 0, "exit %d: %s", st, P.err);
}

Test(run, forwards_sigusr1_sigusr2_sigterm)
{
        AIDP_REQUIRE_ROOT();
        const int s[] = {SIGUSR1, SIGUSR2, SIGTERM};
        const char *const n[] = {"got USR1", "got USR2", "got TERM"};
        signal_case(s, n, 3);
}

Test(run, forwards_sigint_and_sighup)
{
        AIDP_REQUIRE_ROOT();
        const int s1[] = {SIGINT}, s2[] = {SIGHUP};
        const char *const n1[] = {"got INT"}, *const n2[] = {"got HUP"};
        signal_case(s1, n1, 1);
        signal_case(s2, n2, 1);
}

/* A stop the job ignores ends at its grace, and the summary says why (the
 * status alone, 137, said nothing of a Ctrl-C); one the job obeys says it
 * was stopped. */
Test(run, a_stop_says_why_the_job_ended)
{
        AIDP_REQUIRE_ROOT();
        char *ignore[] = {AIDP_SUPERVISOR,
                          "run",
                          "--user",
                          "65534",
                          "--no-cwd",
                          "--kill-after",
                          "1s",
                          "--",
                          "/bin/sh",
                          "-c",
                          "trap '' INT; echo ready; sleep 30",
                          NULL};
        cr_assert_eq(aidp_test_spawn(&P, ignore), 0);
        cr_assert(aidp_test_wait_output(&P, "ready", 20000), "never ready: %s %s", P.out, P.err);
        kill(P.pid, SIGINT);
        int st = aidp_test_finish(&P);
        cr_expect_eq(st, 128 + SIGKILL, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "was stopped by SIGINT (forwarded to the job); the job did not "
                                "end within the 1s grace (--kill-after) and was killed"),
                  "%s", P.err);
        char *obey[] = {
                AIDP_SUPERVISOR,        "run", "--user", "65534", "--no-cwd", "--", "/bin/sh", "-c",
                "echo ready; sleep 30", NULL};
        cr_assert_eq(aidp_test_spawn(&P, obey), 0);
        cr_assert(aidp_test_wait_output(&P, "ready", 20000), "never ready: %s %s", P.out, P.err);
        kill(P.pid, SIGTERM);
        st = aidp_test_finish(&P);
        cr_expect_eq(st, 128 + SIGTERM, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "was stopped by SIGTERM (forwarded to the job, which then ended)"),
                  "%s", P.err);
        cr_expect_null(strstr(P.err, "grace"), "%s", P.err);
}

Test(run, orphan_is_killed_and_nothing_of_the_run_remains)
{
        AIDP_REQUIRE_ROOT();
        char tag[16], run_id[64], jdir[128];
        snprintf(tag, sizeof tag, "aidporph%d", getpid() % 100000);
        snprintf(run_id, sizeof run_id, "aidp-test-orphan-%d", (int)getpid());
        snprintf(jdir, sizeof jdir, "/run/aidp/%s", run_id);
        const char *const mine[] = {run_id, NULL};
        int mounts_before = aidp_test_mounts_of(mine);
        const char *const o[] = {"--run-id", run_id, NULL};
        int st = probe("orphan", o, tag);
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect(strstr(P.out, "orphan started") != NULL, "%s", P.out);
        pid_t left = aidp_test_find_comm(tag);
        if (left > 0)
                kill(left, SIGKILL);
        cr_expect_eq(left, 0, "the double-forked daemon survived the run");
        cr_expect(!aidp_test_cgroup_exists(run_id), "a cgroup of the run remains");
        cr_expect_eq(aidp_test_mounts_of(mine), mounts_before, "a mount of the run is left");
        cr_expect(access(jdir, F_OK) != 0, "the run journal remains");
}

Test(run, bad_cli_input_is_a_usage_error)
{
        AIDP_REQUIRE_ROOT();
        char *a[] = {AIDP_SUPERVISOR, "run", "--memory", "12XB", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, a), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "--memory '12XB'") != NULL, "%s", P.err);
        char *b[] = {AIDP_SUPERVISOR, "run", "--user", "65534", NULL};
        cr_expect_eq(aidp_test_run(&P, b), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "no command") != NULL, "%s", P.err);
        char *c[] = {AIDP_SUPERVISOR, "frobnicate", NULL};
        cr_expect_eq(aidp_test_run(&P, c), AIDP_EXIT_USAGE);
        char *d[] = {AIDP_SUPERVISOR, "run", "--bogus", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, d), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "--bogus") != NULL, "%s", P.err);
        char *e[] = {AIDP_SUPERVISOR, "run", "--user", "0", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, e), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "root") != NULL, "%s", P.err);
        char *f[] = {AIDP_SUPERVISOR, "run", "--timeout", "-5", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, f), AIDP_EXIT_USAGE);
        /* one path rule for the command line and profiles (common/path.c) */
        char *g[] = {AIDP_SUPERVISOR, "run", "--ro-bind", "/tmp/.:/x", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, g), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "--ro-bind /tmp/.:/x: paths must be absolute") != NULL, "%s",
                  P.err);
        char *h[] = {AIDP_SUPERVISOR, "run", "--bind", "//tmp", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, h), AIDP_EXIT_USAGE);
}

Test(run, rlimits_from_options_and_core_zero_by_default)
{
        AIDP_REQUIRE_ROOT();
        char *a[] = {AIDP_SUPERVISOR,
                     "run",
                     "-q",
                     "--user",
                     "65534",
                     "--rlimit",
                     "nofile=100:200",
                     "--rlimit",
                     "stack=4Mi",
                     "--",
                     "/bin/sh",
                     "-c",
                     "echo $(ulimit -n) $(ulimit -Hn) $(ulimit -s) $(ulimit -c)",
                     NULL};
        cr_assert_eq(aidp_test_run(&P, a), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "100 200 4096 0\n");
        char *b[] = {AIDP_SUPERVISOR, "run", "--rlimit", "nofile=300:200", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, b), AIDP_EXIT_USAGE);
        char *c[] = {AIDP_SUPERVISOR, "run", "--rlimit", "bogus=1", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, c), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "bogus") != NULL, "%s", P.err);
}

/* A bind whose target, or the working directory bound at its own path, lies
 * under a path the profile masks would be hidden from the job by the mask
 * (which wins): refused before anything is made (120), naming both and the
 * way out; so is a source under it (bound elsewhere it would show what the
 * mask hides), and the sandbox's built-in masks hold the same way. */
Test(run, a_bind_or_working_directory_under_a_masked_path_is_refused)
{
        AIDP_REQUIRE_ROOT();
        char dir[] = "/tmp/aidp-test-mask-XXXXXX", prof[128], files[128], bind[300];
        cr_assert_not_null(mkdtemp(dir));
        chmod(dir, 0755);
        TEST_SNPRINTF(prof, "%s/maskit.yaml", dir);
        TEST_SNPRINTF(files, "%s/files", dir);
        cr_assert_eq(mkdir(files, 0755), 0);
        FILE *pf = fopen(prof, "we");
        cr_assert_not_null(pf);
        fprintf(pf,
                "apiVersion: aidp/v1\nkind: Profile\nmetadata:\n  name: maskit\n"
                "filesystem:\n  masked: [%s]\n",
                dir);
        fclose(pf);
        char *a[] = {AIDP_SUPERVISOR, "run", "--user", "65534",    "-q", "--profile", prof,
                     "--cwd",         files, "--",     "/bin/pwd", NULL};
        int st = aidp_test_run(&P, a);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "is under") && strstr(P.err, "masks") && strstr(P.err, "--no-cwd"),
                  "%s", P.err);
        char src[] = "/tmp/aidp-test-src-XXXXXX", onto[300];
        cr_assert_not_null(mkdtemp(src));
        TEST_SNPRINTF(onto, "%s:%s", src, files);
        char *b[] = {
                AIDP_SUPERVISOR, "run", "--user", "65534",     "-q", "--no-cwd", "--profile", prof,
                "--ro-bind",     onto,  "--",     "/bin/true", NULL};
        st = aidp_test_run(&P, b);
        rmdir(src);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "--ro-bind") && strstr(P.err, "masks") &&
                          strstr(P.err, ":/mnt/NAME"),
                  "%s", P.err);
        /* Nor shown at another path: the source is under the mask too. */
        TEST_SNPRINTF(bind, "%s:/mnt/files", files);
        char *c[] = {
                AIDP_SUPERVISOR, "run", "--user", "65534",     "-q", "--no-cwd", "--profile", prof,
                "--ro-bind",     bind,  "--",     "/bin/true", NULL};
        st = aidp_test_run(&P, c);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "never shown to the job") != NULL, "%s", P.err);
        /* The sandbox's built-in masks (/etc/ssh) hold against a bind too. */
        char ssh[] = "/etc/ssh:/mnt/ssh";
        char *d[] = {AIDP_SUPERVISOR, "run", "--user", "65534",     "-q", "--no-cwd",
                     "--ro-bind",     ssh,   "--",     "/bin/true", NULL};
        st = aidp_test_run(&P, d);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "/etc/ssh is reserved") != NULL, "%s", P.err);
        unlink(prof);
        rmdir(files);
        rmdir(dir);
}

/* Whether the job's own memory could reach swap, as the summary says it:
 * "off" where its cgroup allows none (v2 always; v1 with a memory limit and
 * swap accounting), else "no-device" or "possible" as the host has swap
 * active; the result line warns only for "possible". limited: the default
 * profile's 4 GiB, or else an admin's profile with `memory: unlimited`. */
static void check_job_swap(bool limited)
{
        char dir[] = "/tmp/aidp-test-swap-XXXXXX", summ[64], prof[64];
        cr_assert_not_null(mkdtemp(dir));
        TEST_SNPRINTF(summ, "%s/summary.json", dir);
        TEST_SNPRINTF(prof, "%s/nolimit.yaml", dir);
        FILE *pf = fopen(prof, "we");
        cr_assert_not_null(pf);
        fputs("apiVersion: aidp/v1\nkind: Profile\nmetadata:\n  name: nolimit\nlimits:\n"
              "  memory: unlimited\n",
              pf);
        fclose(pf);
        char *a[] = {AIDP_SUPERVISOR, "run",       "--user", "65534", "--summary", summ,
                     "--no-cwd",      "--profile", prof,     "--",    "/bin/true", NULL};
        if (limited) /* no --profile: the default one */
                memmove(&a[7], &a[9], 3 * sizeof a[0]);
        int st = aidp_test_run(&P, a);
        size_t len;
        char *js = aidp_test_slurp(summ, &len);
        unlink(summ);
        unlink(prof);
        rmdir(dir);
        cr_assert_eq(st, 0, "%s", P.err);
        cr_assert_not_null(js);
        json_object *sj = json_tokener_parse(js);
        free(js);
        cr_assert_not_null(sj);
        const char *got = json_object_get_string(aidp_test_json_at(sj, "job_swap"));
        bool v2 = !strcmp(json_object_get_string(aidp_test_json_at(sj, "cgroup")), "v2");
        /* Does the kernel account swap? v1: the memsw files; v2: a
         * memory.swap.max in some cgroup below the root (the root has none). */
        bool accounted =
                !v2 && access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0;
        glob_t g = {0};
        if (v2 && (glob("/sys/fs/cgroup/*/memory.swap.max", 0, NULL, &g) == 0 ||
                   glob("/sys/fs/cgroup/*/*/memory.swap.max", GLOB_APPEND, NULL, &g) == 0))
                accounted = g.gl_pathc > 0;
        globfree(&g);
        FILE *sw = fopen("/proc/swaps", "re");
        char line[512];
        cr_assert(sw && fgets(line, sizeof line, sw));
        bool host_swap = fgets(line, sizeof line, sw) != NULL;
        fclose(sw);
        const char *want = accounted && (v2 || limited) ? "off"
                           : host_swap                  ? "possible"
                                                        : "no-device";
        cr_expect(got && !strcmp(got, want),
                  "memory limit %s, %s, swap accounting %s, host swap %s: job_swap %s, not %s",
                  limited ? "4G" : "none", v2 ? "v2" : "v1", accounted ? "on" : "off",
                  host_swap ? "on" : "off", got ? got : "null", want);
        cr_expect_eq(strstr(P.err, "own memory could reach swap") != NULL,
                     !strcmp(want, "possible"), "%s", P.err);
        json_object_put(sj);
}

Test(run, summary_says_whether_the_jobs_memory_can_reach_swap)
{
        AIDP_REQUIRE_ROOT();
        check_job_swap(true);
        check_job_swap(false);
}

Test(run, summary_reports_tmpfs_noswap_as_the_kernel_supports_it)
{
        AIDP_REQUIRE_ROOT();
        char path[] = "/tmp/aidp-test-summary-XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        close(fd);
        char *a[] = {AIDP_SUPERVISOR, "run", "--user", "65534", "--summary", path, "--",
                     "/bin/true",     NULL};
        int st = aidp_test_run(&P, a);
        char buf[8192] = "";
        FILE *f = fopen(path, "r");
        if (f) {
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                buf[n] = '\0';
                fclose(f);
        }
        unlink(path);
        cr_assert_eq(st, 0, "%s", P.err);
        struct utsname u;
        uname(&u);
        int major = 0, minor = 0;
        sscanf(u.release, "%d.%d", &major, &minor);
        bool has_noswap = major > 6 || (major == 6 && minor >= 4); /* tmpfs noswap: Linux 6.4 */
        cr_expect(strstr(buf, has_noswap ? "\"tmpfs_noswap\":true" : "\"tmpfs_noswap\":false") !=
                          NULL,
                  "kernel %s: summary %s", u.release, buf);
        /* Where it is missing the run says so, and still runs. */
        cr_expect_eq(strstr(P.err, "noswap unsupported") != NULL, !has_noswap, "%s", P.err);
        cr_expect(strstr(buf, "\"exit_status\":0") != NULL, "%s", buf);
}

/* The job's root mirrors the host's top level: every host symlink there
 * (merged /usr: bin -> usr/bin) is the same symlink, every host directory is
 * a directory (bound read-only, or an empty mount point for what the sandbox
 * replaces or masks), and a bound one shows the host's content. */
Test(run, the_jobs_root_has_the_hosts_top_level_entries)
{
        AIDP_REQUIRE_ROOT();
        /* sh, not python: the VM's guest has busybox only. The glob skips
         * dot entries, as the host side below does. */
        static const char script[] =
                "for p in /*; do n=${p#/}\n"
                " if [ -L \"$p\" ]; then echo \"$n link:$(readlink \"$p\")\"\n"
                " elif [ -d \"$p\" ]; then echo \"$n dir\"\n"
                " else echo \"$n other\"; fi\n"
                "done\n"
                "[ -e /usr/bin/true ] && echo usr-bin-true True || echo usr-bin-true False\n";
        char rd[] = "/tmp/aidp-test-root-XXXXXX";
        cr_assert_not_null(aidp_test_mkdtemp(rd));
        const char *const job[] = {"/bin/sh", "-c", script, NULL};
        int st = aidp_test_run_job(&P, rd, NULL, job);
        aidp_test_rm_tree(rd);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "usr-bin-true True\n"), "%s", P.out);
        DIR *d = opendir("/");
        cr_assert_not_null(d);
        struct dirent *e;
        int checked = 0;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                char path[PATH_MAX], want[PATH_MAX + 300], target[PATH_MAX];
                snprintf(path, sizeof path, "/%s", e->d_name);
                struct stat sb;
                if (lstat(path, &sb) < 0)
                        continue;
                if (S_ISLNK(sb.st_mode)) {
                        ssize_t n = readlink(path, target, sizeof target - 1);
                        cr_assert_gt(n, 0);
                        target[n] = '\0';
                        snprintf(want, sizeof want, "\n%s link:%s\n", e->d_name, target);
                } else if (S_ISDIR(sb.st_mode)) {
                        snprintf(want, sizeof want, "\n%s dir\n", e->d_name);
                } else {
                        continue;
                }
                /* a whole line: at the start of the output or after a newline */
                bool found = !strncmp(P.out, want + 1, strlen(want + 1)) || strstr(P.out, want);
                cr_expect(found, "host /%s: want '%s' in the job's root:\n%s", e->d_name, want + 1,
                          P.out);
                checked++;
        }
        closedir(d);
        cr_expect_gt(checked, 5, "the host root had only %d entries", checked);
}

Test(run, ro_bind_and_bind_options)
{
        AIDP_REQUIRE_ROOT();
        char dir[] = "/var/tmp/aidp-test-bind-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char f[PATH_MAX], g[PATH_MAX], ro[PATH_MAX + 16], rw[PATH_MAX + 16];
        snprintf(f, sizeof f, "%s/in", dir);
        snprintf(g, sizeof g, "%s/made-inside", dir);
        FILE *fp = fopen(f, "w");
        cr_assert_not_null(fp);
        fputs("hello\n", fp);
        fclose(fp);
        chmod(dir, 0777);
        snprintf(ro, sizeof ro, "%s:/mnt/ro", dir);
        snprintf(rw, sizeof rw, "%s:/mnt/rw", dir);
        char *a[] = {AIDP_SUPERVISOR,
                     "run",
                     "-q",
                     "--user",
                     "65534",
                     "--ro-bind",
                     ro,
                     "--bind",
                     rw,
                     "--",
                     "/bin/sh",
                     "-c",
                     "cat /mnt/ro/in && ! touch /mnt/ro/x 2>/dev/null && touch /mnt/rw/made-inside "
                     "&& echo done",
                     NULL};
        int st = aidp_test_run(&P, a);
        bool made = access(g, F_OK) == 0;
        unlink(g);
        unlink(f);
        rmdir(dir);
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect_str_eq(P.out, "hello\ndone\n");
        cr_expect(made, "a write through --bind did not reach the host");
        char *b[] = {AIDP_SUPERVISOR, "run", "--ro-bind", "relative/path", "--", "true", NULL};
        cr_expect_eq(aidp_test_run(&P, b), AIDP_EXIT_USAGE);
        cr_expect(strstr(P.err, "relative/path") != NULL, "%s", P.err);
}

/* pid 1 that fails its set-up before the supervisor pinned its mount
 * namespace (held at the pin here, AIDP_FAULT_STOP_AT=pin, until pid 1 has
 * exited): the run's error is pid 1's own, naming what failed, not a pin
 * that found no namespace ("pinning ...: No such file or directory"). */
Test(run, a_pid1_that_fails_before_the_pin_reports_its_own_error)
{
        AIDP_REQUIRE_ROOT();
        char dir[] = "/var/tmp/aidp-test-earlyfail-XXXXXX";
        cr_assert_not_null(aidp_test_mkdtemp(dir));
        chmod(dir, 0755);
        char src[PATH_MAX], spec[2 * PATH_MAX];
        TEST_SNPRINTF(src, "%s/src", dir);
        FILE *fp = fopen(src, "w");
        cr_assert_not_null(fp);
        fputs("bound\n", fp);
        cr_assert_eq(fclose(fp), 0);
        chmod(src, 0644);
        /* the job's view of /var/tmp is read-only: no mount point there */
        TEST_SNPRINTF(spec, "%s:%s/missing/probe", src, dir);
        char *a[] = {AIDP_SUPERVISOR, "run", "-q", "--user",    "65534", "--no-cwd",
                     "--ro-bind",     spec,  "--", "/bin/true", NULL};
        setenv("AIDP_FAULT_STOP_AT", "pin", 1);
        cr_assert_eq(aidp_test_spawn(&P, a), 0);
        unsetenv("AIDP_FAULT_STOP_AT");
        bool stopped = aidp_test_wait_stopped(P.pid);
        pid_t z = 0;
        for (int i = 0; stopped && i < 1000 && !(z = aidp_test_child_in_state(P.pid, 'Z')); i++)
                usleep(10000);
        kill(P.pid, SIGCONT);
        int st = aidp_test_finish(&P);
        cr_assert(stopped, "the supervisor never stopped at the pin: %s", P.err);
        cr_assert(z > 0, "pid 1 did not exit while the supervisor was held: %s", P.err);
        cr_expect_eq(st, AIDP_EXIT_INTERNAL, "%s", P.err);
        cr_expect(strstr(P.err, "/missing/probe") != NULL, "not pid 1's error: %s", P.err);
        cr_expect_null(strstr(P.err, "pinning"), "%s", P.err);
}

/* A bind's target is made and resolved as the job sees its path: a symlink on
 * the way (the host's /var/run -> /run, or one a caller made in a directory
 * the view shows) leads inside the sandbox's root, and root never creates the
 * mount point on the host. */
Test(run, a_bind_target_through_a_symlink_is_made_in_the_sandbox_never_on_the_host)
{
        AIDP_REQUIRE_ROOT();
        char dir[] = "/var/tmp/aidp-test-bindlink-XXXXXX",
             away[] = "/var/tmp/aidp-test-away-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_not_null(mkdtemp(away));
        chmod(dir, 0755);
        chmod(away, 0777);
        char link[PATH_MAX], host_probe[PATH_MAX], spec[2 * PATH_MAX], src[PATH_MAX];
        TEST_SNPRINTF(link, "%s/link", dir);
        TEST_SNPRINTF(host_probe, "%s/probe", away);
        TEST_SNPRINTF(src, "%s/src", dir);
        cr_assert_eq(symlink(away, link), 0);
        FILE *fp = fopen(src, "w");
        cr_assert_not_null(fp);
        fputs("bound\n", fp);
        cr_assert_eq(fclose(fp), 0);
        chmod(src, 0644);
        TEST_SNPRINTF(spec, "%s:%s/probe", src, link);
        char *a[] = {AIDP_SUPERVISOR, "run", "-q", "--user",    "65534", "--no-cwd",
                     "--ro-bind",     spec,  "--", "/bin/true", NULL};
        int st = aidp_test_run(&P, a);
        bool on_host = access(host_probe, F_OK) == 0;
        unlink(host_probe);
        unlink(link);
        rmdir(away);
        cr_expect_not(on_host, "root made the bind's mount point %s on the host", host_probe);
        /* In the sandbox the link leads to the read-only view of away: the
         * run fails there, naming the target, or the bind is placed there. */
        cr_expect(st == 0 || strstr(P.err, "/link/probe"), "status %d: %s", st, P.err);

        struct stat vr;
        if (lstat("/var/run", &vr) < 0 || !S_ISLNK(vr.st_mode)) {
                unlink(src);
                rmdir(dir);
                return; /* no /var/run -> /run symlink on this host */
        }
        char target[64], spec2[PATH_MAX + 64], cmd[128], run_probe[64];
        TEST_SNPRINTF(target, "/var/run/aidp-test-probe-%d", (int)getpid());
        TEST_SNPRINTF(run_probe, "/run/aidp-test-probe-%d", (int)getpid());
        TEST_SNPRINTF(spec2, "%s:%s", src, target);
        TEST_SNPRINTF(cmd, "cat %s", target);
        char *b[] = {AIDP_SUPERVISOR, "run", "-q",      "--user", "65534", "--no-cwd", "--ro-bind",
                     spec2,           "--",  "/bin/sh", "-c",     cmd,     NULL};
        st = aidp_test_run(&P, b);
        on_host = access(run_probe, F_OK) == 0;
        unlink(run_probe);
        unlink(src);
        rmdir(dir);
        cr_expect_not(on_host, "root made %s on the host", run_probe);
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect_str_eq(P.out, "bound\n", "the job does not see the bind at %s", target);
}

/* The job sendfile()s a file of its /scratch into stdout, a pipe nobody reads
 * until the run is over: splice semantics put references to the tmpfs pages in
 * the pipe, and shred overwrites exactly those pages. The output relay copies
 * them out before shred, so the late reader still gets the bytes. */
Test(run, output_spliced_from_tmpfs_survives_shred)
{
        AIDP_REQUIRE_ROOT();
        char *a[] = {AIDP_SUPERVISOR, "run",      "-q",       "--user", "65534", "--no-cwd", "--",
                     AIDP_PROBE,      "sendfile", "/scratch", NULL};
        cr_assert_eq(aidp_test_spawn(&P, a), 0);
        int st;
        cr_assert_eq(waitpid(P.pid, &st, 0), P.pid); /* read nothing until the run is over */
        P.pid = 0;
        char buf[128] = "";
        ssize_t n = read(P.out_fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
        cr_expect_str_eq(buf, "MARKER-0123456789abcdef\n");
        close(P.out_fd);
        close(P.err_fd);
}

Test(run, aidp_run_wrapper_runs_a_job_as_root_and_passes_the_status)
{
        AIDP_REQUIRE_ROOT();
        /* As root the wrapper calls the supervisor directly (no sudo): this
         * build's, wherever it is (out of tree, ASan). */
        setenv("AIDP_SUPERVISOR", AIDP_SUPERVISOR, 1);
        char *a[] = {AIDP_SOURCE_DIR "/scripts/aidp-run",
                     "-q",
                     "--user",
                     "65534",
                     "--lineage",
                     AIDP_PROD_LINEAGE,
                     "--no-cwd",
                     "--",
                     "/bin/sh",
                     "-c",
                     "id -u; exit 7",
                     NULL};
        int st = aidp_test_run(&P, a);
        cr_expect_eq(st, 7, "%s", P.err);
        cr_expect_str_eq(P.out, "65534\n");
        char *h[] = {AIDP_SOURCE_DIR "/scripts/aidp-run", "--help", NULL};
        cr_expect_eq(aidp_test_run(&P, h), 0);
        cr_expect(strstr(P.out, "--user") != NULL, "%s", P.out);
        /* --out DIR is --output-dir DIR (an argument of the job is left alone) */
        char *o[] = {AIDP_SOURCE_DIR "/scripts/aidp-run",
                     "-q",
                     "--no-cwd",
                     "--out",
                     "/nonexistent/aidp-out",
                     "--output-key-id",
                     "k",
                     "--",
                     "/bin/echo",
                     "--out",
                     NULL};
        cr_expect_eq(aidp_test_run(&P, o), AIDP_EXIT_USAGE, "%s", P.err);
        cr_expect(strstr(P.err, "--output-dir /nonexistent/aidp-out: not a directory") != NULL,
                  "%s", P.err);
        unsetenv("AIDP_SUPERVISOR");
}

/* Behind sudo the job runs as the sudo user: tests/priv/test_trust.c, through
 * a real sudo as a real unprivileged user. */

/* A virtualenv in a directory the sandbox hides (/tmp here, as /home or
 * /root would be): the failure names the hidden path and the bind that shows
 * it, a PATH through it is warned about before the job starts, and the
 * advised --ro-bind makes it run. */
Test(run, hidden_virtualenv_is_named_with_the_bind_that_shows_it)
{
        AIDP_REQUIRE_ROOT();
        char venv[] = "/tmp/aidp-test-venv.XXXXXX", bin[PATH_MAX], py[PATH_MAX];
        cr_assert_not_null(mkdtemp(venv));
        chmod(venv, 0755);
        snprintf(bin, sizeof bin, "%s/bin", venv);
        TEST_SNPRINTF(py, "%s/python", bin);
        cr_assert_eq(mkdir(bin, 0755), 0);
        FILE *f = fopen(py, "w");
        cr_assert_not_null(f);
        fputs("#!/bin/sh\necho venv-python\n", f);
        fclose(f);
        chmod(py, 0755);
        char want[PATH_MAX + 64], path_env[PATH_MAX + 32];
        snprintf(want, sizeof want, "--ro-bind %s ", venv);
        snprintf(path_env, sizeof path_env, "PATH=%s:/usr/bin:/bin", bin);

        char *direct[] = {AIDP_SUPERVISOR, "run", "-q", "--no-cwd", "--user",
                          "65534",         "--",  py,   NULL};
        cr_expect_eq(aidp_test_run(&P, direct), AIDP_EXIT_NOT_FOUND, "%s", P.err);
        cr_expect(strstr(P.err, "is under /tmp, which the sandbox hides") && strstr(P.err, want),
                  "%s", P.err);
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "%s train.py", py);
        char *shell[] = {AIDP_SUPERVISOR, "run", "-q", "--no-cwd", "--user", "65534", "--",
                         "/bin/sh",       "-c",  cmd,  NULL};
        cr_expect_eq(aidp_test_run(&P, shell), 127, "%s", P.err);
        cr_expect(strstr(P.err, "exited 127") && strstr(P.err, want), "%s", P.err);
        char *onpath[] = {AIDP_SUPERVISOR, "run",    "--no-cwd", "--user", "65534",
                          "--env",         path_env, "--",       "true",   NULL};
        cr_expect_eq(aidp_test_run(&P, onpath), 0, "%s", P.err);
        cr_expect(strstr(P.err, "warning: ") && strstr(P.err, want), "no warning: %s", P.err);
        char *bound[] = {AIDP_SUPERVISOR, "run", "-q", "--no-cwd", "--user", "65534",
                         "--ro-bind",     venv,  "--", py,         NULL};
        cr_expect_eq(aidp_test_run(&P, bound), 0, "%s", P.err);
        cr_expect_str_eq(P.out, "venv-python\n");
        unlink(py);
        rmdir(bin);
        rmdir(venv);
}

/* The job keeps its user's supplementary groups: a group-readable 0640 file
 * opens inside. The group exists only in this test's own mount namespace
 * (a copy of /etc/group with it added, bound over /etc/group there), so the
 * host's group database is never touched. */
Test(run, supplementary_groups_are_kept_and_open_group_readable_files)
{
        AIDP_REQUIRE_ROOT();
        struct passwd *pw = getpwuid(65534);
        cr_assert_not_null(pw, "no passwd entry for uid 65534");
        char user[64];
        snprintf(user, sizeof user, "%s", pw->pw_name);
        gid_t g = 64321;
        while (getgrgid(g))
                g++;
        char dir[] = "/tmp/aidp-test-groups.XXXXXX", grp[PATH_MAX], data[PATH_MAX], file[PATH_MAX];
        cr_assert_not_null(mkdtemp(dir));
        chmod(dir, 0755);
        snprintf(grp, sizeof grp, "%s/group", dir);
        snprintf(data, sizeof data, "%s/shared", dir);
        TEST_SNPRINTF(file, "%s/secret.csv", data);
        size_t len;
        char *orig = aidp_test_slurp("/etc/group", &len);
        cr_assert_not_null(orig);
        FILE *f = fopen(grp, "w");
        cr_assert_not_null(f);
        fprintf(f, "%saidptestshare:x:%u:%s\n", orig, (unsigned)g, user);
        fclose(f);
        free(orig);
        chmod(grp, 0644);
        cr_assert_eq(mkdir(data, 0755), 0);
        f = fopen(file, "w");
        cr_assert_not_null(f);
        fputs("group-shared-row\n", f);
        fclose(f);
        cr_assert_eq(chown(file, 0, g), 0);
        cr_assert_eq(chmod(file, 0640), 0);
        /* Criterion runs each test in its own process: the namespace ends with it. */
        cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare: %s", strerror(errno));
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        cr_assert_eq(mount(grp, "/etc/group", NULL, MS_BIND, NULL), 0, "%s", strerror(errno));
        char want[64];
        snprintf(want, sizeof want, " %u ", (unsigned)g);
        char *a[] = {AIDP_SUPERVISOR,
                     "run",
                     "-q",
                     "--no-cwd",
                     "--user",
                     user,
                     "--ro-bind",
                     data,
                     "--",
                     "/bin/sh",
                     "-c",
                     "grep '^Groups:' /proc/self/status; cat \"$0\"",
                     file,
                     NULL};
        int st = aidp_test_run(&P, a);
        umount2("/etc/group", MNT_DETACH);
        cr_expect_eq(st, 0, "exit %d: %s%s", st, P.out, P.err);
        char want_tab[64];
        snprintf(want_tab, sizeof want_tab, "\t%u ", (unsigned)g);
        cr_expect(!strncmp(P.out, "Groups:", 7) && (strstr(P.out, want) || strstr(P.out, want_tab)),
                  "%s", P.out);
        cr_expect(strstr(P.out, "group-shared-row\n") != NULL, "0640 file unreadable: %s%s", P.out,
                  P.err);
        unlink(file);
        rmdir(data);
        unlink(grp);
        rmdir(dir);
}
