/* The run's cgroup (supervisor/sandbox/cgroup/cgroup.c) on whatever hierarchy the kernel
 * has: cgroup v1 through libcgroup on this machine, the pure cgroup v2
 * backend in the VM of scripts/vm-test. A forked child joins the cgroup before
 * it does anything, exactly as the sandbox's child does, and the test asserts
 * from outside what the kernel enforced and what the backend reports.
 *
 * Every cgroup lives under a per-test parent "aidp-test-<pid>" so a real run's
 * "aidp" parent is never touched; .fini destroys it even when an assertion
 * failed, and the test itself is a child subreaper so orphans come back to it
 * to be reaped. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>

#include "supervisor/sandbox/cgroup/cgroup.h"
#include "supervisor/sandbox/cgroup/cgroup_internal.h" /* the test-only fault point */
#include "tests/priv/priv.h"
#include "tests/tpath.h"

#define MiB (1024ull * 1024ull)

static struct aidp_cgroup *cg;
static char parent[64];
static char dirs[8][PATH_MAX];
static size_t n_dirs;

static bool in_vm(void)
{
        const char *v = getenv("AIDP_VM");
        return v && !strcmp(v, "1");
}

static void reap_all(void)
{
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

static void cleanup(void)
{
        if (cg) {
                aidp_error err = {0};
                aidp_cgroup_destroy(cg, &err);
                cg = NULL;
        }
        /* Collect whatever the kill left as zombies. */
        for (int i = 0; i < 100; i++) {
                if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
                        break;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
}

static void setup(void)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        snprintf(parent, sizeof parent, "aidp-test-%d", (int)getpid());
}

TestSuite(vm_cgroup, .init = setup, .fini = cleanup, .timeout = 60);

static void create(const struct aidp_cgroup_limits *lim)
{
        aidp_error err = {0};
        int rc = aidp_cgroup_create(parent, "run", lim, &cg, &err);
        cr_assert_eq(rc, 0, "aidp_cgroup_create: %s", err.msg);
        const char *p[8];
        n_dirs = aidp_cgroup_paths(cg, p, 8);
        cr_assert_gt(n_dirs, 0);
        for (size_t i = 0; i < n_dirs; i++)
                snprintf(dirs[i], sizeof dirs[i], "%s", p[i]);
        enum aidp_cgroup_version v = aidp_cgroup_version_of(cg);
        fprintf(stderr, "vm_cgroup: %s, first dir %s\n", aidp_cgroup_version_name(v), dirs[0]);
        cr_assert_eq(v, aidp_cgroup_detect());
        if (in_vm())
                cr_assert_eq(v, AIDP_CGROUP_V2, "the VM has a pure cgroup v2 hierarchy");
}

/* Fork a child that waits until it is in the cgroup, then runs fn and exits
 * with its result. *res gets the read end of a pipe fn may report on. */
static pid_t spawn_in_cgroup(int (*fn)(int resfd), int *res)
{
        int go[2], out[2];
        cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                char c;
                close(go[1]);
                close(out[0]);
                if (read(go[0], &c, 1) != 1)
                        _exit(99);
                _exit(fn(out[1]));
        }
        close(go[0]);
        close(out[1]);
        aidp_error err = {0};
        int rc = aidp_cgroup_attach(cg, pid, false, &err);
        if (rc < 0)
                kill(pid, SIGKILL);
        cr_assert_eq(rc, 0, "attach: %s", err.msg);
        cr_assert_eq(write(go[1], "g", 1), 1);
        close(go[1]);
        *res = out[0];
        return pid;
}

static int wait_status(pid_t pid)
{
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        return st;
}

static bool read_value(const char *dir, const char *file, char *buf, size_t len)
{
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", dir, file);
        FILE *f = fopen(p, "re");
        if (!f)
                return false;
        bool ok = fgets(buf, (int)len, f) != NULL;
        fclose(f);
        if (ok)
                buf[strcspn(buf, "\n")] = '\0';
        return ok;
}

/* The directory of the given v1 controller, or the unified one on v2. */
static const char *dir_of(const char *controller)
{
        if (aidp_cgroup_version_of(cg) == AIDP_CGROUP_V2)
                return dirs[0];
        char needle[64];
        snprintf(needle, sizeof needle, "/%s/", controller);
        for (size_t i = 0; i < n_dirs; i++)
                if (strstr(dirs[i], needle))
                        return dirs[i];
        cr_assert_fail("no %s directory among the run's cgroups", controller);
        return NULL;
}

static int eat_memory(int resfd)
{
        /* Touch every page so it is charged; 512 MiB is far over the limit. */
        for (int i = 0; i < 512; i++) {
                char *p =
                        mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        return 2;
                memset(p, 0x5a, MiB);
        }
        return 0; /* survived: the limit did not hold */
}

Test(vm_cgroup, memory_limit_ends_in_a_detected_oom_kill)
{
        struct aidp_cgroup_limits lim = {.memory_bytes = 32 * MiB};
        create(&lim);
        char v[64];
        if (aidp_cgroup_version_of(cg) == AIDP_CGROUP_V2) {
                cr_assert(read_value(dir_of("memory"), "memory.max", v, sizeof v));
                cr_assert_eq(strtoull(v, NULL, 10), 32 * MiB, "memory.max %s", v);
        } else {
                cr_assert(read_value(dir_of("memory"), "memory.limit_in_bytes", v, sizeof v));
                cr_assert_eq(strtoull(v, NULL, 10), 32 * MiB, "memory.limit_in_bytes %s", v);
        }
        int res;
        pid_t pid = spawn_in_cgroup(eat_memory, &res);
        int st = wait_status(pid);
        close(res);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "the job should die of SIGKILL from the OOM killer, status 0x%x", st);
        struct aidp_cgroup_stats s;
        aidp_error err = {0};
        cr_assert_eq(aidp_cgroup_stats(cg, &s, &err), 0, "%s", err.msg);
        cr_assert_eq(s.known, AIDP_CGROUP_STAT_MEMORY_PEAK | AIDP_CGROUP_STAT_CPU |
                                      AIDP_CGROUP_STAT_OOM | AIDP_CGROUP_STAT_SWAP);
        fprintf(stderr, "vm_cgroup: oom_kills %llu, limit hit %d, peak %llu\n",
                (unsigned long long)s.oom_kills, s.memory_limit_hit,
                (unsigned long long)s.memory_peak_bytes);
        /* v2: memory.events oom_kill; v1: memory.oom_control oom_kill. */
        cr_assert_geq(s.oom_kills, 1, "the OOM kill was not detected from the cgroup");
        cr_assert(s.memory_limit_hit, "memory.events max / memory.failcnt should be > 0");
        cr_assert_leq(s.memory_peak_bytes, 33 * MiB);
}

/* No swap for the job even without a memory limit (a profile may set none):
 * its copies of /data never reach swap. v2 only, where the kernel accounts
 * swap (memory.swap.max exists); v1 can bound swap only with a limit
 * (memsw), docs/run-core.md "Memory while injecting". */
Test(vm_cgroup, swap_is_off_without_a_memory_limit)
{
        struct aidp_cgroup_limits lim = {.pids = 64};
        create(&lim);
        if (aidp_cgroup_version_of(cg) != AIDP_CGROUP_V2)
                return;
        char v[64];
        if (!read_value(dir_of("memory"), "memory.swap.max", v, sizeof v)) {
                cr_assert(!in_vm(), "the VM's kernel accounts swap");
                return;
        }
        cr_assert_str_eq(v, "0", "memory.swap.max without a memory limit");
        cr_assert(read_value(dir_of("memory"), "memory.max", v, sizeof v));
        cr_assert_str_eq(v, "max");
}

/* Whether the kernel gives the run's processes any swap, as the stats say
 * it and the files it enforces hold it: v2 memory.swap.max is 0 with or
 * without a limit; v1 memory.memsw.limit_in_bytes equals the memory limit,
 * so only with one. Without swap accounting (no such file) it is never off. */
static void check_swap_stat(bool with_limit)
{
        struct aidp_cgroup_limits lim = {.pids = 64, .memory_bytes = with_limit ? 64 * MiB : 0};
        create(&lim);
        bool v2 = aidp_cgroup_version_of(cg) == AIDP_CGROUP_V2;
        char v[64], limit[64];
        bool accounted =
                read_value(dir_of("memory"), v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes",
                           v, sizeof v);
        cr_assert(!in_vm() || accounted, "the VM's kernel accounts swap");
        bool off = accounted && v2 && !strcmp(v, "0");
        if (accounted && !v2) {
                cr_assert(
                        read_value(dir_of("memory"), "memory.limit_in_bytes", limit, sizeof limit));
                off = !strcmp(v, limit) && strtoull(limit, NULL, 10) == (with_limit ? 64 * MiB : 0);
        }
        cr_assert_eq(off, accounted && (v2 || with_limit), "memory: the swap bound file holds %s",
                     accounted ? v : "(none)");
        struct aidp_cgroup_stats st;
        aidp_error err = {0};
        cr_assert_eq(aidp_cgroup_stats(cg, &st, &err), 0, "%s", err.msg);
        cr_assert(st.known & AIDP_CGROUP_STAT_SWAP, "the stats do not say whether swap is off");
        cr_assert_eq(st.swap_off, off, "the stats say swap is %s, the files say %s",
                     st.swap_off ? "off" : "allowed", off ? "off" : "allowed");
}

Test(vm_cgroup, the_stats_say_swap_is_off_where_the_kernel_refuses_it_with_a_limit)
{
        check_swap_stat(true);
}

Test(vm_cgroup, the_stats_say_whether_swap_is_off_without_a_limit)
{
        check_swap_stat(false);
}

static int fork_until_refused(int resfd)
{
        int n = 0, err = 0;
        for (int i = 0; i < 64; i++) {
                pid_t p = fork();
                if (p < 0) {
                        err = errno;
                        break;
                }
                if (p == 0) {
                        pause();
                        _exit(0);
                }
                n++;
        }
        int r[2] = {n, err};
        if (write(resfd, r, sizeof r) != sizeof r)
                return 3;
        return 0; /* the forked children stay behind for the teardown */
}

Test(vm_cgroup, pids_limit_stops_a_fork_bomb)
{
        struct aidp_cgroup_limits lim = {.pids = 6};
        create(&lim);
        char v[64];
        cr_assert(read_value(dir_of("pids"), "pids.max", v, sizeof v));
        cr_assert_str_eq(v, "6");
        int res;
        pid_t pid = spawn_in_cgroup(fork_until_refused, &res);
        int r[2] = {0, 0};
        cr_assert_eq(read(res, r, sizeof r), (ssize_t)sizeof r);
        close(res);
        cr_assert_eq(wait_status(pid), 0);
        fprintf(stderr, "vm_cgroup: %d forks before %s\n", r[0], strerror(r[1]));
        /* The job itself counts: 6 tasks = it and 5 children. */
        cr_assert_eq(r[0], 5);
        cr_assert_eq(r[1], EAGAIN);
        cr_assert(read_value(dir_of("pids"), "pids.current", v, sizeof v));
        cr_assert_eq(atoi(v), 5, "the 5 children are still in the cgroup: %s", v);
}

static long long now_usec(clockid_t c)
{
        struct timespec ts;
        clock_gettime(c, &ts);
        return ts.tv_sec * 1000000ll + ts.tv_nsec / 1000;
}

static int spin_one_second(int resfd)
{
        long long start = now_usec(CLOCK_MONOTONIC);
        while (now_usec(CLOCK_MONOTONIC) - start < 1000000)
                ;
        long long cpu = now_usec(CLOCK_PROCESS_CPUTIME_ID);
        return write(resfd, &cpu, sizeof cpu) == sizeof cpu ? 0 : 3;
}

Test(vm_cgroup, cpu_quota_throttles_a_busy_loop)
{
        struct aidp_cgroup_limits lim = {.cpu_millis = 100}; /* a tenth of a cpu */
        create(&lim);
        char v[64];
        if (aidp_cgroup_version_of(cg) == AIDP_CGROUP_V2) {
                cr_assert(read_value(dir_of("cpu"), "cpu.max", v, sizeof v));
                cr_assert_str_eq(v, "10000 100000");
        } else {
                cr_assert(read_value(dir_of("cpu"), "cpu.cfs_quota_us", v, sizeof v));
                cr_assert_str_eq(v, "10000");
        }
        int res;
        pid_t pid = spawn_in_cgroup(spin_one_second, &res);
        long long cpu = -1;
        cr_assert_eq(read(res, &cpu, sizeof cpu), (ssize_t)sizeof cpu);
        close(res);
        cr_assert_eq(wait_status(pid), 0);
        struct aidp_cgroup_stats s;
        aidp_error err = {0};
        cr_assert_eq(aidp_cgroup_stats(cg, &s, &err), 0, "%s", err.msg);
        cr_assert(s.known & AIDP_CGROUP_STAT_CPU);
        fprintf(stderr, "vm_cgroup: 1 s of busy loop used %lld us of cpu (cgroup says %llu us)\n",
                cpu, (unsigned long long)s.cpu_usec);
        /* 10% of one second is 100 ms; unthrottled it would be ~1 s. */
        cr_assert_gt(cpu, 0);
        cr_assert_lt(cpu, 350000, "busy loop got %lld us of cpu in 1 s under a 10%% quota", cpu);
        cr_assert_gt(s.cpu_usec, 0, "cpu usage not reported");
}

/* The job double-forks a daemon in its own session and exits. */
static int leave_a_daemon(int resfd)
{
        pid_t p = fork();
        if (p < 0)
                return 2;
        if (p == 0) {
                if (fork() != 0)
                        _exit(0);
                setsid();
                pid_t me = getpid();
                if (write(resfd, &me, sizeof me) != sizeof me)
                        _exit(3);
                for (;;)
                        pause();
        }
        int st;
        waitpid(p, &st, 0);
        return 0;
}

Test(vm_cgroup, teardown_kills_a_double_forked_daemon_and_removes_every_cgroup)
{
        struct aidp_cgroup_limits lim = {.memory_bytes = 64 * MiB, .pids = 32, .cpu_millis = 1000};
        create(&lim);
        struct stat sb;
        char kill_file[PATH_MAX + 16];
        snprintf(kill_file, sizeof kill_file, "%s/cgroup.kill", dirs[0]);
        if (aidp_cgroup_version_of(cg) == AIDP_CGROUP_V2)
                cr_assert_eq(stat(kill_file, &sb), 0, "kernel >= 5.14 has cgroup.kill: %s",
                             kill_file);
        int res;
        pid_t pid = spawn_in_cgroup(leave_a_daemon, &res);
        pid_t daemon = 0;
        cr_assert_eq(read(res, &daemon, sizeof daemon), (ssize_t)sizeof daemon);
        close(res);
        cr_assert_eq(wait_status(pid), 0);
        cr_assert_eq(kill(daemon, 0), 0, "the daemon should be alive before the teardown");

        aidp_error err = {0};
        int rc = aidp_cgroup_destroy(cg, &err);
        cg = NULL;
        cr_assert_eq(rc, 0, "destroy: %s", err.msg);
        /* We are the subreaper: the daemon is our child now, killed. */
        int st;
        cr_assert_eq(waitpid(daemon, &st, 0), daemon);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "daemon status 0x%x", st);
        for (size_t i = 0; i < n_dirs; i++) {
                cr_assert_neq(stat(dirs[i], &sb), 0, "cgroup left: %s", dirs[i]);
                /* The per-test parent goes with its last run. */
                char p[PATH_MAX];
                TEST_SNPRINTF(p, "%s", dirs[i]);
                *strrchr(p, '/') = '\0';
                cr_assert_neq(stat(p, &sb), 0, "parent cgroup left: %s", p);
        }
        reap_all();
}

Test(vm_cgroup, create_failure_leaves_nothing)
{
        /* An existing run directory makes creation fail half-way. */
        struct aidp_cgroup_limits lim = {.pids = 8};
        create(&lim);
        struct aidp_cgroup *second = NULL;
        aidp_error err = {0};
        int rc = aidp_cgroup_create(parent, "run", &lim, &second, &err);
        cr_assert_lt(rc, 0, "a second cgroup with the same name must fail");
        cr_assert_null(second);
        fprintf(stderr, "vm_cgroup: second create: %s\n", err.msg);
        /* The first run's cgroups are intact. */
        struct stat sb;
        for (size_t i = 0; i < n_dirs; i++)
                cr_assert_eq(stat(dirs[i], &sb), 0, "%s was removed by the failed create", dirs[i]);
}

/* What a process in the run's cgroup may open: the allowed character devices
 * and nothing else, on v1 (devices controller) and on v2 (a BPF device
 * program). The host's /dev is used directly, on a mount without nodev, so
 * only the cgroup can refuse. */
static int open_devices(int resfd)
{
        static const char *const devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/urandom"};
        char report[64] = "";
        for (size_t i = 0; i < 4; i++) {
                int fd = open(devs[i], O_RDWR | O_CLOEXEC);
                report[i] = fd >= 0 ? 'y' : errno == EPERM ? 'p' : 'e';
                if (fd >= 0)
                        close(fd);
        }
        if (write(resfd, report, 4) != 4)
                return 1;
        return 0;
}

/* A child in the cgroup opens null, zero, full and urandom (read-write):
 * with {"c 1:3 rwm", "c 1:9 r"} only null opens. */
static void expect_null_and_urandom_read_only(void)
{
        int res;
        pid_t pid = spawn_in_cgroup(open_devices, &res);
        char got[8] = "";
        cr_assert_eq(read(res, got, 4), 4);
        close(res);
        cr_assert(WIFEXITED(wait_status(pid)));
        /* null: allowed; zero, full: not in the list; urandom: read-only, opened rw */
        cr_expect_str_eq(got, "yppp", "null/zero/full/urandom(rw): %s (y opened, p EPERM)", got);
}

Test(vm_cgroup, device_allowlist_is_enforced)
{
        static const char *const allow[] = {"c 1:3 rwm", "c 1:9 r",
                                            NULL}; /* null; urandom read-only */
        struct aidp_cgroup_limits lim = {.devices_allow = allow};
        create(&lim);
        expect_null_and_urandom_read_only();
}

/* The run's way: the cgroup2 directory first (pid 1 is cloned into it), then the
 * limits or v1 hierarchies in the background (a helper process on v1), collected
 * later; and a destroy while that helper still works leaves nothing either. */
Test(vm_cgroup, finished_in_the_background)
{
        struct aidp_cgroup_limits lim = {.pids = 7, .memory_bytes = 64 * MiB};
        aidp_error err = {0};
        cr_assert_eq(aidp_cgroup_begin(parent, "run", -1, &cg, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_cgroup_finish_start(cg, &lim, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_cgroup_finish_wait(cg, &err), 0, "%s", err.msg);
        const char *p[8];
        n_dirs = aidp_cgroup_paths(cg, p, 8);
        int limited = 0;
        for (size_t i = 0; i < n_dirs; i++) {
                snprintf(dirs[i], sizeof dirs[i], "%s", p[i]);
                char f[PATH_MAX + 16], buf[32] = "";
                snprintf(f, sizeof f, "%s/pids.max", dirs[i]);
                FILE *fp = fopen(f, "re");
                if (!fp)
                        continue;
                cr_assert_not_null(fgets(buf, sizeof buf, fp));
                fclose(fp);
                cr_assert_str_eq(buf, "7\n", "%s", f);
                limited++;
        }
        cr_assert_eq(limited, 1, "pids.max set in exactly one directory (%d)", limited);
        aidp_cgroup_destroy(cg, &err);
        cg = NULL;
        struct stat sb;
        for (size_t i = 0; i < n_dirs; i++)
                cr_assert_neq(stat(dirs[i], &sb), 0, "cgroup left: %s", dirs[i]);

        /* Destroyed before the background work was collected. */
        struct aidp_cgroup *bg = NULL;
        cr_assert_eq(aidp_cgroup_begin(parent, "run2", -1, &bg, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_cgroup_finish_start(bg, &lim, &err), 0, "%s", err.msg);
        aidp_cgroup_destroy(bg, &err);
        static const char *const roots[] = {"",      "/memory",  "/cpu",    "/cpuacct",
                                            "/pids", "/devices", "/unified"};
        for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
                char d[PATH_MAX];
                snprintf(d, sizeof d, "/sys/fs/cgroup%s/%s/run2", roots[i], parent);
                cr_assert_neq(stat(d, &sb), 0, "cgroup left: %s", d);
        }
        reap_all();
}

/* ---- all or nothing: a failure after some hierarchies were made ---- */

static const char *fault_step; /* the step to fail at */
static int fault_hits;

static int fail_at_step(const char *step)
{
        if (strcmp(step, fault_step))
                return 0;
        fault_hits++;
        return -EINVAL;
}

/* Checked from the host, on every hierarchy there is: neither the run's
 * directory nor the per-test parent is left. */
static void assert_nothing_left(const char *name)
{
        static const char *const roots[] = {"",      "/memory",  "/cpu",    "/cpuacct",
                                            "/pids", "/devices", "/unified"};
        struct stat sb;
        for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
                char d[PATH_MAX];
                snprintf(d, sizeof d, "/sys/fs/cgroup%s/%s/%s", roots[i], parent, name);
                cr_assert_neq(stat(d, &sb), 0, "cgroup left after the fault at %s: %s", fault_step,
                              d);
                snprintf(d, sizeof d, "/sys/fs/cgroup%s/%s", roots[i], parent);
                cr_assert_neq(stat(d, &sb), 0, "parent left after the fault at %s: %s", fault_step,
                              d);
        }
}

/* The steps a creation passes after it has made something: on v1 after each
 * hierarchy (memory first, so every later step has some to remove), on v2
 * before the limits, with the run's directory made. */
static size_t fault_steps(const char **steps)
{
        if (aidp_cgroup_detect() == AIDP_CGROUP_V2) {
                steps[0] = "v2:limit";
                return 1;
        }
        static const char *const v1[] = {"v1:memory", "v1:cpu", "v1:cpuacct", "v1:pids",
                                         "v1:devices"};
        size_t n = 0;
        for (size_t i = 0; i < 5; i++) {
                char d[64];
                struct stat sb;
                snprintf(d, sizeof d, "/sys/fs/cgroup/%s", v1[i] + 3);
                if (stat(d, &sb) == 0)
                        steps[n++] = v1[i];
        }
        return n;
}

Test(vm_cgroup, a_fault_after_the_first_hierarchy_leaves_nothing)
{
        static const char *const allow[] = {"c 1:3 rwm", NULL};
        struct aidp_cgroup_limits lim = {
                .memory_bytes = 64 * MiB, .pids = 8, .cpu_millis = 500, .devices_allow = allow};
        const char *steps[8];
        size_t n = fault_steps(steps);
        cr_assert_gt(n, 0);
        aidp_cgroup_fault_hook = fail_at_step;
        for (size_t i = 0; i < n; i++) {
                fault_step = steps[i];
                fault_hits = 0;
                aidp_error err = {0};
                struct aidp_cgroup *c = NULL;
                int rc = aidp_cgroup_create(parent, "run", &lim, &c, &err);
                cr_assert_lt(rc, 0, "the fault at %s must fail the creation", fault_step);
                cr_assert_null(c);
                cr_assert_eq(fault_hits, 1, "the fault point %s was passed %d times", fault_step,
                             fault_hits);
                cr_assert(strstr(err.msg, "test fault") || strstr(err.msg, "Invalid argument"),
                          "%s", err.msg);
                assert_nothing_left("run");
        }
        aidp_cgroup_fault_hook = NULL;
}

/* The run's way, with the v1 hierarchies made by the helper process: the
 * failure comes back through finish_wait, the paths still name what was made
 * and removed (for the end record), and destroy leaves nothing. */
Test(vm_cgroup, a_fault_in_the_background_leaves_nothing_and_is_listed)
{
        struct aidp_cgroup_limits lim = {.memory_bytes = 64 * MiB, .pids = 8};
        const char *steps[8];
        size_t n = fault_steps(steps);
        aidp_cgroup_fault_hook = fail_at_step;
        fault_step = steps[n - 1]; /* the last: every earlier hierarchy exists */
        aidp_error err = {0};
        cr_assert_eq(aidp_cgroup_begin(parent, "run", -1, &cg, &err), 0, "%s", err.msg);
        int rc = aidp_cgroup_finish_start(cg, &lim, &err);
        if (rc == 0)
                rc = aidp_cgroup_finish_wait(cg, &err);
        aidp_cgroup_fault_hook = NULL;
        cr_assert_lt(rc, 0, "the fault at %s must fail finish", fault_step);
        fprintf(stderr, "vm_cgroup: fault at %s: %s\n", fault_step, err.msg);
        const char *p[8];
        size_t np = aidp_cgroup_paths(cg, p, 8);
        size_t want = aidp_cgroup_version_of(cg) == AIDP_CGROUP_V2 ? 1 : n;
        cr_assert_geq(np, want, "the removed hierarchies are still listed (%zu of %zu)", np, want);
        cr_assert_eq(aidp_cgroup_destroy(cg, &err), 0, "%s", err.msg);
        cg = NULL;
        assert_nothing_left("run");
}

/* A ready-made cgroup (the daemon's idle workers, supervisor/run/cgready.c):
 * made with no limit and no process, then adopted by its run, which logs its
 * directories and writes its limits; from then on the kernel enforces them as
 * on a cgroup made at the run's start. The base device line is written ahead
 * (v1), the run's own after it. */
Test(vm_cgroup, a_ready_cgroup_has_the_runs_limits_once_adopted)
{
        static const char *const base[] = {"c 1:3 rwm", NULL};
        static const char *const allow[] = {"c 1:3 rwm", "c 1:9 r", NULL};
        aidp_error err = {0};
        cr_assert_eq(aidp_cgroup_prepare(parent, "ready", -1, base, NULL, &cg, &err), 0, "%s",
                     err.msg);
        const char *p[8];
        n_dirs = aidp_cgroup_paths(cg, p, 8);
        for (size_t i = 0; i < n_dirs; i++)
                snprintf(dirs[i], sizeof dirs[i], "%s", p[i]);
        cr_assert(aidp_cgroup_is_empty(cg));
        bool v2 = aidp_cgroup_version_of(cg) == AIDP_CGROUP_V2;
        if (in_vm())
                cr_assert(v2, "the VM has a pure cgroup v2 hierarchy");
        char v[64];
        /* No limit before its run: it is nobody's yet. */
        cr_assert(read_value(dir_of("pids"), "pids.max", v, sizeof v));
        cr_assert_str_eq(v, "max");
        int log[2];
        cr_assert_eq(pipe2(log, O_CLOEXEC), 0);
        struct aidp_cgroup_limits lim = {
                .memory_bytes = 32 * MiB, .pids = 7, .devices_allow = allow};
        cr_assert_eq(aidp_cgroup_adopt(cg, log[1], &lim, &err), 0, "%s", err.msg);
        close(log[1]);
        /* The run's journal gets every directory. */
        char logged[8 * (PATH_MAX + 1)] = "";
        ssize_t got_n = read(log[0], logged, sizeof logged - 1);
        close(log[0]);
        cr_assert_gt(got_n, 0);
        for (size_t i = 0; i < n_dirs; i++)
                cr_assert(strstr(logged, dirs[i]), "%s not logged", dirs[i]);
        cr_assert(read_value(dir_of("pids"), "pids.max", v, sizeof v));
        cr_assert_str_eq(v, "7");
        cr_assert(read_value(dir_of("memory"), v2 ? "memory.max" : "memory.limit_in_bytes", v,
                             sizeof v));
        cr_assert_eq(strtoull(v, NULL, 10), 32 * MiB, "memory limit %s", v);
        /* Enforced: the device list exactly as asked, the memory limit. */
        expect_null_and_urandom_read_only();
        int res;
        pid_t pid = spawn_in_cgroup(eat_memory, &res);
        int st = wait_status(pid);
        close(res);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "the memory limit of the adopted cgroup did not hold: status 0x%x", st);
}

static int wait_to_be_killed(int resfd)
{
        close(resfd);
        for (;;)
                pause();
        return 0;
}

/* The run's cgroup2 directory (v2's, or v1's tracking group), or NULL. */
static const char *run_v2_dir(void)
{
        for (size_t i = 0; i < n_dirs; i++) {
                char k[PATH_MAX + 16];
                TEST_SNPRINTF(k, "%s/cgroup.kill", dirs[i]);
                if (access(k, F_OK) == 0)
                        return dirs[i];
        }
        return NULL;
}

/* A process of the run moved to a cgroup `below` the run's (a job that kept
 * CAP_SYS_ADMIN can make one and move there); the run's own listing is then
 * empty. Returns the process. */
static pid_t spawn_below(const char *v2, char *sub, size_t len)
{
        int res;
        pid_t pid = spawn_in_cgroup(wait_to_be_killed, &res);
        close(res);
        char procs[PATH_MAX + 32], pids[32];
        cr_assert_lt((size_t)snprintf(sub, len, "%s/below", v2), len);
        cr_assert_eq(mkdir(sub, 0755), 0, "%s: %s", sub, strerror(errno));
        TEST_SNPRINTF(procs, "%s/cgroup.procs", sub);
        TEST_SNPRINTF(pids, "%d", (int)pid);
        FILE *f = fopen(procs, "w");
        cr_assert_not_null(f);
        cr_assert(fputs(pids, f) >= 0 && fclose(f) == 0, "moving %d to %s: %s", (int)pid, sub,
                  strerror(errno));
        return pid;
}

/* Reaped within 2 s (its status in *st), or killed and false. */
static bool reaped_soon(pid_t pid, int *st)
{
        pid_t w = 0;
        for (int i = 0; i < 200 && (w = waitpid(pid, st, WNOHANG)) == 0; i++)
                usleep(10000);
        if (w == 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        return w == pid;
}

/* The kill still takes a process below the run's cgroup (before the fix an
 * empty listing made teardown skip cgroup.kill, and the process lived on). */
Test(vm_cgroup, the_kill_takes_a_process_in_a_cgroup_below_the_runs)
{
        struct aidp_cgroup_limits lim = {.pids = 32};
        create(&lim);
        const char *v2 = run_v2_dir();
        if (!v2)
                cr_skip_test("no cgroup2 directory with cgroup.kill (kernel < 5.14, or v1 only)");
        char sub[PATH_MAX + 16];
        pid_t pid = spawn_below(v2, sub, sizeof sub);
        char listed[64] = "";
        cr_assert(read_value(v2, "cgroup.procs", listed, sizeof listed) || !listed[0]);
        cr_assert_eq(listed[0], '\0', "the run's own listing is not empty: %s", listed);
        (void)aidp_cgroup_kill(cg);
        int st = 0;
        bool gone = reaped_soon(pid, &st);
        rmdir(sub);
        cr_assert(gone, "the process below the run's cgroup survived its kill");
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", st);
}

/* Teardown's kill before shred spares pid 1 (aidp_cgroup_kill_except), so it
 * cannot use the run's cgroup.kill: a process below the run's cgroup must die
 * all the same, and before it returns (it could write while shred runs, and
 * the client's status follows shred), while the kept process lives on. */
Test(vm_cgroup, the_kill_sparing_pid1_takes_a_process_below_the_runs_first)
{
        struct aidp_cgroup_limits lim = {.pids = 32};
        create(&lim);
        const char *v2 = run_v2_dir();
        if (!v2)
                cr_skip_test("no cgroup2 directory with cgroup.kill (kernel < 5.14, or v1 only)");
        int res;
        pid_t kept = spawn_in_cgroup(wait_to_be_killed, &res);
        close(res);
        char sub[PATH_MAX + 16];
        pid_t pid = spawn_below(v2, sub, sizeof sub);
        cr_assert_eq(aidp_cgroup_kill_except(cg, kept), 0);
        /* Already dead when it returned: a zombie now, reaped at once. */
        int st = 0;
        pid_t w = waitpid(pid, &st, WNOHANG);
        bool kept_alive = kill(kept, 0) == 0 && waitpid(kept, NULL, WNOHANG) == 0;
        if (w == 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        kill(kept, SIGKILL);
        waitpid(kept, NULL, 0);
        rmdir(sub);
        cr_assert_eq(w, pid, "the process below the run's cgroup was alive after the kill");
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", st);
        cr_assert(kept_alive, "the kept process (pid 1) was killed too");
}
