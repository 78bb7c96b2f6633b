/* Root integration tests of the profile language: each shipped profile runs a
 * real python3 training workload and its denials bite; a learned profile runs
 * the workload it learned and denies what it never saw; Docker's default
 * profile imported as it is runs python3 while unshare and mount are denied;
 * devices, kept capabilities and binds are enforced as written. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "netns_util.h"
#include "priv.h"
#include "runner.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"
#define SC_PROBE  AIDP_BINARY_DIR "/tests/helpers/sc_probe"
#define PY        "/usr/bin/python3"
#define TRAIN     AIDP_SOURCE_DIR "/tests/data/workloads/train.py"
#define LIB(n)    AIDP_SOURCE_DIR "/profiles/" n ".yaml"
#define DATA(n)   AIDP_SOURCE_DIR "/tests/data/profiles/" n ".yaml"

static struct aidp_proc P;

/* aidp-supervisor run --user 65534 --profile PROFILE -- CMD... */
static int run_in(const char *profile, const char *const cmd[])
{
        char *argv[48];
        int n = 0;
        argv[n++] = AIDP_SUPERVISOR;
        argv[n++] = "run";
        argv[n++] = "-q";
        argv[n++] = "--user";
        argv[n++] = "65534";
        argv[n++] = "--timeout"; /* a hung job ends here, not as an orphan of a killed test */
        argv[n++] = "90";
        argv[n++] = "--profile";
        argv[n++] = (char *)profile;
        argv[n++] = "--";
        for (int i = 0; cmd[i] && n < 47; i++)
                argv[n++] = (char *)cmd[i];
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

static void expect_trains(const char *profile)
{
        const char *cmd[] = {PY, TRAIN, "/tmp", NULL};
        int st = run_in(profile, cmd);
        cr_expect_eq(st, 0, "%s: exit %d\nstdout:\n%s\nstderr:\n%s", profile, st, P.out, P.err);
        cr_expect(strstr(P.out, "TRAIN-OK"), "%s: no TRAIN-OK:\n%s\n%s", profile, P.out, P.err);
}

/* sc_probe CHECK... inside; each "CHECK=RESULT" must appear in its output. */
static void expect_probe(const char *profile, const char *const checks[], const char *const want[])
{
        const char *cmd[24] = {SC_PROBE};
        size_t n = 1;
        for (size_t i = 0; checks[i]; i++)
                cmd[n++] = checks[i];
        cmd[n] = NULL;
        int st = run_in(profile, cmd);
        cr_assert_eq(st, 0, "%s: probe exit %d\n%s\n%s", profile, st, P.out, P.err);
        for (size_t i = 0; checks[i]; i++) {
                char line[128];
                snprintf(line, sizeof line, "%s=%s\n", checks[i], want[i]);
                cr_expect(strstr(P.out, line), "%s: want %sgot:\n%s", profile, line, P.out);
        }
}

static const char *const checks[] = {
        "mount",       "unshare",           "ptrace", "keyctl", "io_uring_setup", "socket_netlink",
        "socket_inet", "sched_getaffinity", "getpid", NULL};

TestSuite(profiles, .timeout = 300);

Test(profiles, control_without_rules_gets_the_kernels_own_answers)
{
        AIDP_REQUIRE_ROOT();
        /* Proves the probe tells a seccomp EPERM from the kernel's answer. */
        const char *const want[] = {"EFAULT", "EINVAL", "ESRCH",  "EOPNOTSUPP", "EINVAL",
                                    "OK",     "OK",     "EINVAL", "OK"};
        const char *const c[] = {"mount",       "unshare",           "ptrace",
                                 "keyctl",      "io_uring_setup",    "socket_netlink",
                                 "socket_inet", "sched_getaffinity", "getpid",
                                 NULL};
        const char *cmd[] = {SC_PROBE, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], NULL};
        int st = run_in(DATA("permissive"), cmd);
        cr_assert_eq(st, 0, "%s\n%s", P.out, P.err);
        for (size_t i = 0; c[i]; i++) {
                char line[128];
                snprintf(line, sizeof line, "%s=", c[i]);
                const char *got = strstr(P.out, line);
                cr_assert(got, "%s missing:\n%s", c[i], P.out);
                /* the kernel's answer is anything but a seccomp EPERM */
                cr_expect(strncmp(got + strlen(line), "EPERM\n", 6),
                          "%s: EPERM without a rule:\n%s", c[i], P.out);
                (void)want;
        }
}

Test(profiles, baseline_trains_and_denies_namespaces_ptrace_keyrings_io_uring)
{
        AIDP_REQUIRE_ROOT();
        expect_trains(LIB("baseline"));
        const char *const want[] = {"EPERM", "EPERM", "EPERM",  "EPERM", "EPERM",
                                    "OK",    "OK",    "EINVAL", "OK"};
        expect_probe(LIB("baseline"), checks, want);
}

Test(profiles, strict_cpu_train_trains_and_denies_everything_else)
{
        AIDP_REQUIRE_ROOT();
        expect_trains(LIB("strict-cpu-train"));
        const char *const want[] = {"EPERM", "EPERM", "EPERM",  "EPERM", "EPERM",
                                    "EPERM", "EPERM", "EINVAL", "OK"};
        expect_probe(LIB("strict-cpu-train"), checks, want);
        /* and from python3 itself: no IP sockets */
        const char *cmd[] = {PY, "-c",
                             "import socket\ntry:\n socket.socket()\nexcept PermissionError as "
                             "e:\n print('DENIED', e.errno)\n",
                             NULL};
        cr_assert_eq(run_in(LIB("strict-cpu-train"), cmd), 0, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.out, "DENIED 1\n"), "%s\n%s", P.out, P.err);
}

Test(profiles, gpu_train_loads_and_trains_without_a_gpu)
{
        AIDP_REQUIRE_ROOT();
        /* no /dev/nvidia* here: optional devices are skipped, not errors */
        expect_trains(LIB("gpu-train"));
        const char *const want[] = {"EPERM", "EPERM", "EPERM",  "EPERM", "EPERM",
                                    "EPERM", "EPERM", "EINVAL", "OK"};
        expect_probe(LIB("gpu-train"), checks, want);
        const char *cmd[] = {"/bin/ls", "/dev", NULL};
        cr_assert_eq(run_in(LIB("gpu-train"), cmd), 0, "%s", P.err);
        cr_expect_null(strstr(P.out, "nvidia"), "%s", P.out);
}

/* An egress profile gets a veth and host rules: never on the machine's own
 * network, so this test moves into a namespace standing in for the host, with
 * a network configuration of its own (docs/egress.md). */
static char netcfg[PATH_MAX];

static void stand_in_host(void)
{
        cr_assert_eq(aidp_test_fake_host(), 0, "cannot make the stand-in host namespace");
        static char dir[] = "/var/tmp/aidp-test-profiles-net-XXXXXX";
        cr_assert_not_null(aidp_test_mkdtemp(dir));
        char *p = netcfg;
        snprintf(netcfg, sizeof netcfg, "%s/network.yaml", dir);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        /* egress-example names a host: its DNS proxy needs an upstream (the
         * stand-in host's loopback; nothing is asked there) */
        fputs("apiVersion: aidp/v1\nkind: Network\npools: {ipv4: 10.213.9.0/28}\n"
              "resolvers: [127.0.0.53]\n",
              f);
        fclose(f);
        setenv("AIDP_NETWORK_CONFIG", p, 1);
}

static void stand_in_host_end(void)
{
        unlink(netcfg);
        *strrchr(netcfg, '/') = '\0';
        rmdir(netcfg);
}

Test(profiles, egress_example_trains_and_allows_ip_but_not_netlink_sockets)
{
        AIDP_REQUIRE_ROOT();
        stand_in_host();
        expect_trains(LIB("egress-example"));
        const char *const want[] = {"EPERM", "EPERM", "EPERM",  "EPERM", "EPERM",
                                    "EPERM", "OK",    "EINVAL", "OK"};
        expect_probe(LIB("egress-example"), checks, want);
        stand_in_host_end();
}

Test(profiles, kill_process_action_kills)
{
        AIDP_REQUIRE_ROOT();
        const char *cmd[] = {SC_PROBE, "getpid", "mount", "getpid", NULL};
        int st = run_in(DATA("kill-mount"), cmd);
        cr_expect_eq(st, 128 + 31, "killed by SIGSYS: exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "getpid=OK\n"), "%s", P.out);
        cr_expect_null(strstr(P.out, "mount="), "%s", P.out);
}

Test(profiles, docker_default_import_runs_python_and_denies_unshare_and_mount)
{
        AIDP_REQUIRE_ROOT();
        expect_trains(DATA("docker-import"));
        /* Docker allows ptrace on kernels >= 4.8 and keeps socket families
         * other than AF_VSOCK: those are the kernel's answers. */
        const char *const want[] = {"EPERM", "EPERM", "ESRCH", "EPERM", "OK", "EINVAL", NULL};
        const char *const c[] = {"mount",       "unshare",           "ptrace", "keyctl",
                                 "socket_inet", "sched_getaffinity", NULL};
        expect_probe(DATA("docker-import"), c, want);
        const char *py[] = {PY, "-c",
                            "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                            "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"
                            "print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), "
                            "ctypes.get_errno())\n",
                            NULL};
        cr_assert_eq(run_in(DATA("docker-import"), py), 0, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.out, "unshare -1 1\n"), "user namespace refused with EPERM:\n%s", P.out);
        cr_expect(strstr(P.out, "mount -1 1\n"), "%s", P.out);
}

Test(profiles, learned_profile_runs_its_workload_and_denies_the_rest)
{
        AIDP_REQUIRE_ROOT();
        char dir[] = "/tmp/aidp-learn.XXXXXX";
        cr_assert_not_null(aidp_test_mkdtemp(dir));
        char out[256];
        snprintf(out, sizeof out, "%s/learned.yaml", dir);
        /* learn runs the production aidp-supervisor, which refuses a run with
         * AIDP_* configuration in its environment (the runner sets the lineage
         * variables for the tool): the log is passed as an admin's option. */
        char lineage[256];
        snprintf(lineage, sizeof lineage, "%s/lineage.jsonl", dir);
        char *learn[] = {"/usr/bin/env",
                         "-u",
                         "AIDP_LINEAGE_FILE",
                         "-u",
                         "AIDP_LINEAGE_KEY",
                         AIDP_TOOL,
                         "profile",
                         "learn",
                         "--base",
                         LIB("baseline"),
                         "--lineage",
                         lineage,
                         "--user",
                         "65534",
                         "-o",
                         out,
                         "--",
                         PY,
                         TRAIN,
                         "/tmp",
                         NULL};
        int st = aidp_test_run(&P, learn);
        cr_expect_eq(st, 0, "learn: %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "TRAIN-OK"), "the workload ran while learning:\n%s", P.out);
        char *check[] = {AIDP_TOOL, "profile", "check", "--strict", out, NULL};
        st = aidp_test_run(&P, check);
        cr_expect_eq(st, 0, "learned profile is clean: %s\n%s", P.out, P.err);
        for (int i = 0; i < 2; i++)
                expect_trains(out);
        /* never used by train.py: refused now, allowed under the base */
        const char *cmd[] = {PY, "-c",
                             "import os\ntry:\n os.sched_getaffinity(0)\n print('ALLOWED')\nexcept "
                             "PermissionError:\n print('DENIED')\n",
                             NULL};
        cr_assert_eq(run_in(out, cmd), 0, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.out, "DENIED\n"), "%s\n%s", P.out, P.err);
        cr_assert_eq(run_in(LIB("baseline"), cmd), 0, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.out, "ALLOWED\n"), "%s\n%s", P.out, P.err);
        aidp_test_rm_tree(dir);
}

Test(profiles, devices_capabilities_and_binds_are_enforced)
{
        AIDP_REQUIRE_ROOT();
        struct stat st;
        if (stat("/dev/fuse", &st) < 0 || !S_ISCHR(st.st_mode))
                cr_skip_test("needs /dev/fuse on the host");
        char dir[] = "/tmp/aidp-prof.XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char rw[300], ro[300], yaml[300];
        snprintf(rw, sizeof rw, "%s/rw", dir);
        snprintf(ro, sizeof ro, "%s/ro", dir);
        snprintf(yaml, sizeof yaml, "%s/p.yaml", dir);
        cr_assert_eq(mkdir(rw, 0777), 0);
        cr_assert_eq(chmod(rw, 0777), 0);
        cr_assert_eq(mkdir(ro, 0777), 0);
        cr_assert_eq(chmod(ro, 0777), 0);
        FILE *f = fopen(yaml, "w");
        cr_assert_not_null(f);
        fprintf(f,
                "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: p}\n"
                "extends: %s\n"
                "devices: [/dev/fuse]\n"
                "capabilities: [CAP_NET_BIND_SERVICE]\n"
                "filesystem:\n  binds:\n    - {source: %s, target: /hostrw, writable: true}\n"
                "    - {source: %s, target: /hostro}\n",
                LIB("baseline"), rw, ro);
        fclose(f);
        const char *cmd[] = {
                PY, "-c",
                "import os, socket\n"
                "try:\n os.close(os.open('/dev/fuse', os.O_RDWR)); print('fuse ok')\n"
                "except OSError as e:\n print('fuse', e.errno)\n"
                "print('kvm', os.path.exists('/dev/kvm'))\n"
                "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "s.bind(('127.0.0.1', 80)); print('bind80 ok')\n"
                "open('/hostrw/written', 'w').write('x'); print('rw ok')\n"
                "try:\n open('/hostro/written', 'w')\nexcept OSError as e:\n print('ro', "
                "e.errno)\n",
                NULL};
        int rc = run_in(yaml, cmd);
        cr_expect_eq(rc, 0, "%s\n%s", P.out, P.err);
        /* The device cgroup allows /dev/fuse; whether the job's uid may open it
         * is the host node's mode (0666 on some hosts, 0600 on others): EACCES
         * then, never EPERM, which would be the device cgroup refusing it. */
        struct stat fuse;
        cr_assert_eq(stat("/dev/fuse", &fuse), 0, "host /dev/fuse: %s", strerror(errno));
        if ((fuse.st_mode & 0006) == 0006)
                cr_expect(strstr(P.out, "fuse ok\n"), "%s\n%s", P.out, P.err);
        else
                cr_expect(strstr(P.out, "fuse 13\n"), "EACCES from a 0%o node:\n%s\n%s",
                          fuse.st_mode & 07777, P.out, P.err);
        cr_expect(strstr(P.out, "kvm False\n"), "%s", P.out);
        cr_expect(strstr(P.out, "bind80 ok\n"), "CAP_NET_BIND_SERVICE kept:\n%s\n%s", P.out, P.err);
        cr_expect(strstr(P.out, "rw ok\n"), "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.out, "ro 30\n"), "EROFS:\n%s\n%s", P.out, P.err);
        char written[320];
        snprintf(written, sizeof written, "%s/written", rw);
        cr_expect_eq(access(written, F_OK), 0, "the writable bind reached the host");
        /* and without the profile's grants: no device, no capability */
        const char *cmd2[] = {PY, "-c",
                              "import os, socket\nprint('fuse', os.path.exists('/dev/fuse'))\n"
                              "s = socket.socket()\ntry:\n s.bind(('127.0.0.1', 80))\nexcept "
                              "OSError as e:\n print('bind80', e.errno)\n",
                              NULL};
        cr_expect_eq(run_in(LIB("baseline"), cmd2), 0, "%s\n%s", P.out, P.err);
        cr_expect(strstr(P.out, "fuse False\n"), "%s", P.out);
        cr_expect(strstr(P.out, "bind80 13\n"), "EACCES without the capability:\n%s", P.out);
        unlink(written);
        unlink(yaml);
        rmdir(rw);
        rmdir(ro);
        rmdir(dir);
}

/* dir/p.yaml: the baseline keeping caps (a YAML flow list's inside). */
static void caps_profile(char *dir, const char *caps, char yaml[300])
{
        cr_assert_not_null(mkdtemp(dir));
        snprintf(yaml, 300, "%s/p.yaml", dir);
        FILE *f = fopen(yaml, "w");
        cr_assert_not_null(f);
        fprintf(f,
                "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: p}\n"
                "extends: %s\ncapabilities: [%s]\n",
                LIB("baseline"), caps);
        fclose(f);
}

/* A profile's capability is the job's whole set, in each of the five: the
 * bounding set holds nothing else, and ambient carries it over the job's
 * execve as a non-root user; without the grant every set is empty
 * (sandbox_probe checks that for the baseline). */
Test(profiles, a_kept_capability_is_exactly_each_of_the_jobs_sets)
{
        AIDP_REQUIRE_ROOT();
        char dir[] = "/tmp/aidp-prof-caps.XXXXXX", yaml[300];
        caps_profile(dir, "CAP_NET_BIND_SERVICE, CAP_NET_RAW", yaml);
        const char *cmd[] = {PY, "-c",
                             "import os\n"
                             "for l in open('/proc/self/status'):\n"
                             " k = l.split(':')[0]\n"
                             " if k.startswith('Cap'): print(k, int(l.split()[1], 16))\n"
                             "print('uid', os.getuid(), os.geteuid())\n",
                             NULL};
        int rc = run_in(yaml, cmd);
        cr_expect_eq(rc, 0, "%s\n%s", P.out, P.err);
        /* CAP_NET_BIND_SERVICE is 10, CAP_NET_RAW 13 */
        const char *sets[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
                char want[64];
                snprintf(want, sizeof want, "%s %d\n", sets[i], (1 << 10) | (1 << 13));
                cr_expect(strstr(P.out, want), "%s:\n%s\n%s", want, P.out, P.err);
        }
        cr_expect(strstr(P.out, "uid 65534 65534\n"), "%s", P.out);
        unlink(yaml);
        rmdir(dir);
}

Test(profiles, bad_profile_is_a_config_error_before_anything_runs)
{
        AIDP_REQUIRE_ROOT();
        const char *cmd[] = {"/bin/true", NULL};
        int st = run_in(DATA("bad-unit"), cmd);
        cr_expect_eq(st, AIDP_EXIT_CONFIG, "%d %s", st, P.err);
        cr_expect(strstr(P.err, "bad-unit.yaml:6:11: limits.memory: found '8Gx'"), "%s", P.err);
        st = run_in("no-such-profile", cmd);
        cr_expect_eq(st, AIDP_EXIT_CONFIG, "%d %s", st, P.err);
}

/* A capability libcap-ng knows but the running kernel lacks (a kernel older
 * than the library; here a kernel whose last capability is 39, by the test
 * build's AIDP_FAULT_CAP_LAST_CAP, so CAP_CHECKPOINT_RESTORE, number 40, is
 * past it): a bad profile before anything runs, naming the profile, the
 * capability and the kernel's last one, not pid 1's bare capset EPERM. */
Test(profiles, a_capability_the_kernel_lacks_is_a_config_error_naming_it)
{
        AIDP_REQUIRE_ROOT();
        char dir[] = "/tmp/aidp-prof-lastcap.XXXXXX", yaml[300];
        caps_profile(dir, "CAP_CHECKPOINT_RESTORE", yaml);
        const char *cmd[] = {"/bin/true", NULL};
        setenv("AIDP_FAULT_CAP_LAST_CAP", "39", 1);
        int st = run_in(yaml, cmd);
        unsetenv("AIDP_FAULT_CAP_LAST_CAP");
        cr_expect_eq(st, AIDP_EXIT_CONFIG, "%d\n%s", st, P.err);
        char want[400];
        snprintf(want, sizeof want, "profile %s: capabilities: CAP_CHECKPOINT_RESTORE (number 40)",
                 yaml);
        cr_expect(strstr(P.err, want), "%s\n%s", want, P.err);
        cr_expect(strstr(P.err, "last capability is number 39"), "%s", P.err);
        cr_expect(!strstr(P.err, "capset"), "%s", P.err);
        /* and on the kernel as it is, the same profile runs */
        st = run_in(yaml, cmd);
        cr_expect_eq(st, 0, "%d\n%s", st, P.err);
        unlink(yaml);
        rmdir(dir);
}
