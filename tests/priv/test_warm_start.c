/* Warm start of aidp-supervisor serve (issue 16, docs/run-core.md "Start-up
 * time"): what a warm daemon prepares ahead of a request keeps every
 * guarantee of a cold run.
 *   - Idle workers forked ahead (supervisor/daemon/pool.h): each serves one
 *     connection, as the caller who connected, and is never handed another.
 *   - Library profiles cached in the server (supervisor/run/warm.h): a
 *     changed file is loaded again by the run, and a file that no longer
 *     passes the library checks fails the run (closed), as a cold load does.
 * With real unprivileged users and a daemon of the test's own. */
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "daemon_util.h"
#include "supervisor/daemon/proto.h"
#include "lineage_util.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"
#include "tests/sealed_util.h"

#define AIDP_RUN_BIN AIDP_BINARY_DIR "/aidp-run"
#define AIDP_BIN     AIDP_BINARY_DIR "/aidp"

static struct aidp_test_user A, B;
static char *T;
static char sock[100], rundir[1024], logp[1024], keyp[1024], policy[1024], profiles[1024];
static pid_t daemon_pid;
static bool ready;
/* More of the daemon's environment for one test ("K=V", NULL-terminated). */
static char *daemon_env[4];

static void daemon_start(void)
{
        struct group *g = getgrgid(A.gid);
        cr_assert_not_null(g);
        char group[64];
        TEST_SNPRINTF(group, "%s", g->gr_name);
        daemon_pid = fork();
        cr_assert_geq(daemon_pid, 0);
        if (daemon_pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                setenv("AIDP_LINEAGE_KEY", keyp, 1);
                setenv("AIDP_POLICY_DIR", policy, 1);
                setenv("AIDP_PROFILE_PATH", profiles, 1);
                for (size_t i = 0; daemon_env[i]; i++)
                        putenv(daemon_env[i]);
                int null = open("/dev/null", O_RDWR);
                dup2(null, 0);
                execl(AIDP_SUPERVISOR, AIDP_SUPERVISOR, "serve", "--socket", sock, "--group", group,
                      "--run-dir", rundir, "--lineage", logp, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 500; i++) {
                struct stat st;
                if (stat(sock, &st) == 0 && st.st_gid == A.gid)
                        return;
                usleep(10000);
        }
        cr_assert_fail("the daemon did not listen on %s", sock);
}

static void daemon_stop(void)
{
        if (daemon_pid <= 0)
                return;
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = 0;
        unlink(sock);
}

/* A library profile of the test's own: root's, 0644, in a root-only 0755
 * directory, with this open-files limit (the job reads it with ulimit -n). */
static void write_profile(const char *name, unsigned nofile, mode_t mode)
{
        char p[1200], tmp[1300];
        TEST_SNPRINTF(p, "%s/%s.yaml", profiles, name);
        TEST_SNPRINTF(tmp, "%s.new", p);
        FILE *f = fopen(tmp, "w");
        cr_assert_not_null(f);
        fprintf(f,
                "apiVersion: aidp/v1\nkind: Profile\nmetadata:\n  name: %s\n"
                "limits:\n  rlimits:\n    nofile: %u\nnetwork: none\n",
                name, nofile);
        cr_assert_eq(fclose(f), 0);
        cr_assert_eq(chmod(tmp, mode), 0);
        cr_assert_eq(rename(tmp, p), 0);
}

static void setup(void)
{
        if (geteuid() != 0)
                return;
        T = tmpdir_new();
        chmod(T, 0755);
        if (aidp_test_user_create("p", &A) < 0 || aidp_test_user_create("q", &B) < 0)
                return;
        TEST_SNPRINTF(sock, "%s/aidp.sock", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        /* No policy file at all: runs without sealed data are not decided. */
        TEST_SNPRINTF(policy, "%s/policy", T);
        TEST_SNPRINTF(profiles, "%s/profiles", T);
        if (mkdir(policy, 0755) < 0 || mkdir(profiles, 0755) < 0)
                return;
        if (aidp_test_user_join(&B, A.gid) != 0)
                return;
        ready = true;
}

static void teardown(void)
{
        daemon_stop();
        aidp_test_gc(rundir);
        aidp_test_users_cleanup();
        if (T)
                tmpdir_rm(T);
        T = NULL;
}

TestSuite(warm_start, .init = setup, .fini = teardown, .timeout = 120);

/* aidp-run as u started (its output in p as it comes): 0 or -1. */
static int spawn_as(struct aidp_proc *p, const struct aidp_test_user *u, const char *profile,
                    const char *cmd)
{
        char ruid[32], rgid[32];
        TEST_SNPRINTF(ruid, "--reuid=%u", (unsigned)u->uid);
        TEST_SNPRINTF(rgid, "--regid=%u", (unsigned)u->gid);
        char *a[20] = {"/usr/bin/setpriv", ruid, rgid, "--init-groups", "--", AIDP_RUN_BIN,
                       "--socket",         sock, "-q", "--no-cwd"};
        size_t n = 10;
        if (profile) {
                a[n++] = "--profile";
                a[n++] = (char *)profile;
        }
        a[n++] = "--";
        a[n++] = "/bin/sh";
        a[n++] = "-c";
        a[n++] = (char *)cmd;
        a[n] = NULL;
        return aidp_test_spawn(p, a);
}

/* aidp-run as u: its exit status, stdout in p. */
static int run_as(struct aidp_proc *p, const struct aidp_test_user *u, const char *profile,
                  const char *cmd)
{
        if (spawn_as(p, u, profile, cmd) < 0)
                return -1;
        return aidp_test_finish(p);
}

/* The daemon's children: pid and start time (a pid alone could be reused). */
static size_t children(struct aidp_test_kid *k, size_t max)
{
        return aidp_test_daemon_children(daemon_pid, k, max);
}

static bool has(const struct aidp_test_kid *k, size_t n, struct aidp_test_kid x)
{
        for (size_t i = 0; i < n; i++)
                if (k[i].pid == x.pid && k[i].start == x.start)
                        return true;
        return false;
}

/* Wait until the daemon has at least want children (its idle workers). */
static size_t wait_children(struct aidp_test_kid *k, size_t max, size_t want)
{
        size_t n = 0;
        for (int i = 0; i < 500 && (n = children(k, max)) < want; i++)
                usleep(10000);
        return n;
}

/* The one worker of `before` that is gone now (it served the run and ended),
 * waited for a moment; its pid, or 0 when not exactly one is gone. */
static struct aidp_test_kid served_by(const struct aidp_test_kid *before, size_t nb)
{
        for (int t = 0; t < 300; t++) {
                struct aidp_test_kid now[64];
                size_t nn = children(now, 64);
                struct aidp_test_kid gone = {0};
                size_t n_gone = 0;
                for (size_t i = 0; i < nb; i++)
                        if (!has(now, nn, before[i])) {
                                gone = before[i];
                                n_gone++;
                        }
                if (n_gone == 1)
                        return gone;
                usleep(10000);
        }
        return (struct aidp_test_kid){0};
}

Test(warm_start, pooled_workers_serve_one_connection_each_as_its_caller)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        struct aidp_test_kid k0[64], k1[64];
        /* Idle workers exist before anyone connects. */
        size_t n0 = wait_children(k0, 64, 2);
        cr_assert_geq(n0, 2, "the daemon forked no idle workers ahead (%zu children)", n0);
        struct aidp_proc p;
        cr_assert_eq(run_as(&p, &A, NULL, "id -u; id -g"), 0, "%s", p.err);
        char want[64];
        TEST_SNPRINTF(want, "%u\n%u\n", (unsigned)A.uid, (unsigned)A.gid);
        cr_expect_str_eq(p.out, want, "a pooled worker ran A's job as someone else");
        /* One of the workers made before A connected served A, and is gone:
         * it served one connection only. */
        struct aidp_test_kid w1 = served_by(k0, n0);
        cr_assert_gt(w1.pid, 0, "not exactly one idle worker served the first run");
        size_t n1 = wait_children(k1, 64, 2);
        cr_assert_geq(n1, 2, "the pool was not filled again");
        cr_expect_not(has(k1, n1, w1), "the worker that served A is still the daemon's");
        cr_assert_eq(run_as(&p, &B, NULL, "id -u; id -g"), 0, "%s", p.err);
        TEST_SNPRINTF(want, "%u\n%u\n", (unsigned)B.uid, (unsigned)B.gid);
        cr_expect_str_eq(p.out, want, "a pooled worker ran B's job as someone else");
        struct aidp_test_kid w2 = served_by(k1, n1);
        cr_assert_gt(w2.pid, 0, "not exactly one idle worker served the second run");
        cr_expect(w2.pid != w1.pid || w2.start != w1.start, "one worker served two connections");
        /* The daemon's end takes its idle workers with it. */
        struct aidp_test_kid k2[64];
        size_t n2 = children(k2, 64);
        daemon_stop();
        for (size_t i = 0; i < n2; i++)
                cr_expect(kill(k2[i].pid, 0) < 0 && errno == ESRCH,
                          "idle worker %d outlived the daemon", (int)k2[i].pid);
}

Test(warm_start, a_changed_library_profile_is_loaded_again_and_fails_closed)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        write_profile("warmtest", 111, 0644);
        daemon_start();
        struct aidp_proc p;
        /* The server loaded it at start; the job sees its limit. */
        cr_assert_eq(run_as(&p, &A, "warmtest", "ulimit -n"), 0, "%s", p.err);
        cr_expect_str_eq(p.out, "111\n");
        /* Changed: the run loads the new file, not the server's copy. */
        write_profile("warmtest", 222, 0644);
        cr_assert_eq(run_as(&p, &A, "warmtest", "ulimit -n"), 0, "%s", p.err);
        cr_expect_str_eq(p.out, "222\n");
        /* Again (the server has reloaded it by now, or the run does). */
        cr_assert_eq(run_as(&p, &A, "warmtest", "ulimit -n"), 0, "%s", p.err);
        cr_expect_str_eq(p.out, "222\n");
        /* Writable by its group: no longer an installed library profile.
         * The warm copy must not stand in for it. */
        char path[1200];
        TEST_SNPRINTF(path, "%s/warmtest.yaml", profiles);
        cr_assert_eq(chmod(path, 0664), 0);
        int st = run_as(&p, &A, "warmtest", "ulimit -n");
        cr_expect_eq(st, AIDP_EXIT_CONFIG, "status %d: %s", st, p.err);
        cr_expect(strstr(p.err, "not an installed library profile") != NULL, "%s", p.err);
        cr_expect_eq(p.out_len, 0, "the job ran: %s", p.out);
        /* Removed: refused too, never served from the cache. */
        cr_assert_eq(unlink(path), 0);
        st = run_as(&p, &A, "warmtest", "ulimit -n");
        cr_expect_eq(st, AIDP_EXIT_CONFIG, "status %d: %s", st, p.err);
        cr_expect_eq(p.out_len, 0, "the job ran: %s", p.out);
}

/* nice (field 19) and policy (field 41) of a /proc/PID/stat line. */
static bool sched_of_stat(const char *line, int *nice, int *pol_out)
{
        const char *c = strrchr(line, ')');
        if (!c)
                return false;
        /* field 3 (state) follows ") " */
        char *dup = strdup(c + 2), *save = NULL;
        cr_assert_not_null(dup);
        int i = 3;
        bool got_nice = false, got_policy = false;
        for (char *t = strtok_r(dup, " ", &save); t; t = strtok_r(NULL, " ", &save), i++) {
                if (i == 19) {
                        *nice = atoi(t);
                        got_nice = true;
                } else if (i == 41) {
                        *pol_out = atoi(t);
                        got_policy = true;
                }
        }
        free(dup);
        return got_nice && got_policy;
}

static bool sched_of(pid_t pid, int *nice, int *pol_out)
{
        char p[64];
        TEST_SNPRINTF(p, "/proc/%d/stat", (int)pid);
        size_t len = 0;
        char *buf = aidp_test_slurp(p, &len);
        bool ok = buf && sched_of_stat(buf, nice, pol_out);
        free(buf);
        return ok;
}

/* The daemon has want idle workers, each at SCHED_IDLE (still copying its
 * pages) or, once ready, at the daemon's own policy and nice (waiting to
 * accept): never anything else. Waited for a moment. */
static bool pool_waiting(size_t want, int d_nice, int d_policy)
{
        for (int t = 0; t < 300; t++) {
                struct aidp_test_kid k[64];
                size_t n = children(k, 64), ok = 0;
                for (size_t i = 0; i < n; i++) {
                        int ni, pol;
                        ok += sched_of(k[i].pid, &ni, &pol) &&
                              (pol == SCHED_IDLE || (pol == d_policy && ni == d_nice));
                }
                if (n >= want && ok == n)
                        return true;
                usleep(10000);
        }
        return false;
}

/* The pool is made off the runs' critical path: an idle worker copies its
 * pages at SCHED_IDLE, then waits for its connection at the daemon's own
 * scheduling (a ready worker accepts itself: at SCHED_IDLE it would wait for
 * a CPU on a busy machine). The run it serves (pid 1, the job) has the
 * daemon's own scheduling, and the pool is filled again after the run. */
Test(warm_start, idle_workers_copy_at_idle_priority_and_runs_get_the_daemons)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        int d_nice, d_policy;
        cr_assert(sched_of(daemon_pid, &d_nice, &d_policy));
        cr_assert_neq(d_policy, SCHED_IDLE, "the test's daemon runs at SCHED_IDLE itself");
        cr_assert(pool_waiting(2, d_nice, d_policy),
                  "the daemon's idle workers are neither at SCHED_IDLE nor at its own");
        for (int round = 0; round < 2; round++) {
                struct aidp_proc p;
                cr_assert_eq(run_as(&p, &A, NULL, "cat /proc/self/stat"), 0, "%s", p.err);
                int nice = 99, pol = 99;
                cr_assert(sched_of_stat(p.out, &nice, &pol), "job's stat: %s", p.out);
                cr_expect_eq(pol, d_policy,
                             "round %d: the job runs with policy %d, not the "
                             "daemon's %d",
                             round, pol, d_policy);
                cr_expect_eq(nice, d_nice, "round %d: the job runs at nice %d, not the daemon's %d",
                             round, nice, d_nice);
                /* No run going: the pool is filled again. */
                cr_expect(pool_waiting(2, d_nice, d_policy),
                          "round %d: the pool was not filled again", round);
        }
}

/* A connection of A's that sends this one frame and writes the type and
 * message of the daemon's first answer to the returned fd (EOF: none). */
static int raw_client(const char *json, pid_t *pid)
{
        int pp[2];
        cr_assert_eq(pipe(pp), 0);
        *pid = fork();
        cr_assert_geq(*pid, 0);
        if (*pid == 0) {
                close(pp[0]);
                aidp_test_become(&A);
                int s = aidp_test_daemon_connect(sock);
                char buf[512];
                size_t l = strlen(json);
                buf[0] = (char)(l >> 24), buf[1] = (char)(l >> 16), buf[2] = (char)(l >> 8),
                buf[3] = (char)l;
                memcpy(buf + 4, json, l);
                if (write(s, buf, l + 4) != (ssize_t)(l + 4))
                        _exit(97);
                json_object *m = NULL;
                int fds[4];
                size_t n = 0;
                aidp_error err = {0};
                if (aidp_proto_recv(s, 60000, &m, fds, 4, &n, &err) <= 0)
                        _exit(96);
                json_object *t = NULL, *msg = NULL;
                json_object_object_get_ex(m, "type", &t);
                json_object_object_get_ex(m, "message", &msg);
                snprintf(buf, sizeof buf, "%s %s", json_object_get_string(t),
                         msg ? json_object_get_string(msg) : "");
                _exit(write(pp[1], buf, strlen(buf)) > 0 ? 0 : 95);
        }
        close(pp[1]);
        return pp[0];
}

/* The answer on fd within ms, into out ("" when none came). */
static bool answered(int fd, int ms, char *out, size_t size)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        out[0] = '\0';
        if (poll(&p, 1, ms) <= 0)
                return false;
        ssize_t n = read(fd, out, size - 1);
        out[n > 0 ? n : 0] = '\0';
        return n > 0;
}

/* An idle worker of the daemon that is ready: its copies made, back at the
 * daemon's own scheduling, waiting; waited for a moment. */
static bool pool_ready(int d_policy)
{
        for (int t = 0; t < 1000; t++) {
                struct aidp_test_kid k[64];
                size_t n = children(k, 64);
                for (size_t i = 0; i < n; i++) {
                        int ni, pol;
                        if (sched_of(k[i].pid, &ni, &pol) && pol == d_policy)
                                return true;
                }
                usleep(10000);
        }
        return false;
}

/* The server is not on a request's path once an idle worker is ready: the
 * worker accepts on the listening socket itself (a request is answered while
 * the server is stopped). But nothing is served before the server has
 * counted the connection against its limits: a ps request gets its answer
 * only once the server runs again. */
Test(warm_start, a_ready_worker_accepts_itself_but_serves_only_with_the_servers_word)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        int d_nice, d_policy;
        cr_assert(sched_of(daemon_pid, &d_nice, &d_policy));
        bool direct = false;
        char bad[512] = "", ps[512] = "";
        /* A loaded machine may leave a worker's "ready" unanswered for a
         * while: then the server takes the connection, and this is tried
         * again. */
        for (int attempt = 0; attempt < 6 && !direct; attempt++) {
                cr_assert(pool_ready(d_policy), "no idle worker became ready");
                usleep(300000 * (useconds_t)(attempt + 1));
                cr_assert_eq(kill(daemon_pid, SIGSTOP), 0);
                pid_t c1, c2;
                int b = raw_client("{\"v\":2,\"op\":\"ps\"}", &c1);
                direct = answered(b, 3000, bad, sizeof bad);
                int q = raw_client("{\"v\":1,\"op\":\"ps\"}", &c2);
                bool ps_early = answered(q, 500, ps, sizeof ps);
                cr_assert_eq(kill(daemon_pid, SIGCONT), 0);
                cr_expect_not(ps_early, "a request was served while the server was stopped: %s",
                              ps);
                cr_expect(answered(q, 30000, ps, sizeof ps) && !strncmp(ps, "ps", 2),
                          "ps after the server went on: '%s'", ps);
                if (!direct)
                        answered(b, 30000, bad, sizeof bad);
                close(b);
                close(q);
                waitpid(c1, NULL, 0);
                waitpid(c2, NULL, 0);
        }
        cr_expect(direct, "no idle worker took a connection while the server was stopped");
        cr_expect(strstr(bad, "unsupported protocol version") != NULL, "%s", bad);
}

/* The shared libraries an ELF file asks for (its DT_NEEDED names, joined by
 * spaces into out) and whether it names a dynamic loader (PT_INTERP). */
static bool elf_needs(const char *path, char *out, size_t size, bool *interp)
{
        size_t len = 0;
        char *f = aidp_test_slurp(path, &len);
        cr_assert_not_null(f, "%s", path);
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
        cr_assert(len > sizeof *eh && !memcmp(eh->e_ident, ELFMAG, SELFMAG) &&
                          eh->e_ident[EI_CLASS] == ELFCLASS64,
                  "%s: not a 64-bit ELF file", path);
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(f + eh->e_phoff);
        const Elf64_Dyn *dyn = NULL;
        *interp = false;
        out[0] = '\0';
        for (size_t i = 0; i < eh->e_phnum; i++) {
                *interp |= ph[i].p_type == PT_INTERP;
                if (ph[i].p_type == PT_DYNAMIC)
                        dyn = (const Elf64_Dyn *)(f + ph[i].p_offset);
        }
        /* The string table's address (DT_STRTAB) is a virtual address: the
         * file offset of the load segment that holds it. */
        const char *strtab = NULL;
        for (const Elf64_Dyn *d = dyn; d && d->d_tag != DT_NULL; d++)
                if (d->d_tag == DT_STRTAB)
                        for (size_t i = 0; i < eh->e_phnum; i++)
                                if (ph[i].p_type == PT_LOAD && d->d_un.d_ptr >= ph[i].p_vaddr &&
                                    d->d_un.d_ptr < ph[i].p_vaddr + ph[i].p_filesz)
                                        strtab = f + ph[i].p_offset +
                                                 (d->d_un.d_ptr - ph[i].p_vaddr);
        for (const Elf64_Dyn *d = dyn; d && strtab && d->d_tag != DT_NULL; d++)
                if (d->d_tag == DT_NEEDED) {
                        strncat(out, strtab + d->d_un.d_val, size - strlen(out) - 2);
                        strcat(out, " ");
                }
        free(f);
        return true;
}

/* aidp-run is started once per job, on its critical path: it maps no
 * library it does not call. Linked static-pie (the default build), it maps
 * none at all: no loader, no relocations, no other library's constructor
 * (libcap-ng's read /proc and probed prctls at every start). */
Test(warm_start, the_client_loads_no_library_it_does_not_use)
{
        char needed[4096];
        bool interp = true;
        cr_assert(elf_needs(AIDP_RUN_BIN, needed, sizeof needed, &interp));
        if (AIDP_CLIENT_STATIC) {
                cr_expect_not(interp, "aidp-run names a dynamic loader");
                cr_expect_str_eq(needed, "", "aidp-run needs shared libraries: %s", needed);
        }
        cr_expect(strstr(needed, "libseccomp") == NULL && strstr(needed, "libcap-ng") == NULL &&
                          strstr(needed, "libcrypto") == NULL && strstr(needed, "libyaml") == NULL,
                  "aidp-run links libraries it does not call: %s", needed);
        /* And it still works, without its loader: a run through the daemon. */
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        struct aidp_proc p;
        cr_assert_eq(run_as(&p, &A, NULL, "echo through-the-daemon; exit 3"), 3, "%s", p.err);
        cr_expect_str_eq(p.out, "through-the-daemon\n");
}

/* The network namespaces the daemon's idle workers hold by fd (nsready.h). */
/* The network namespaces the daemon's children hold by fd, other than
 * own (the daemon's: a worker making its set holds its own for a moment).
 * *holders: how many children hold one; *nk: how many children. */
static size_t held_net_ns(char held[][64], size_t max, const char *own, size_t *holders, size_t *nk)
{
        struct aidp_test_kid k[64];
        size_t n = 0;
        *nk = children(k, 64);
        *holders = 0;
        for (size_t i = 0; i < *nk; i++) {
                char dir[64];
                TEST_SNPRINTF(dir, "/proc/%d/fd", (int)k[i].pid);
                DIR *d = opendir(dir);
                bool holds = false;
                for (struct dirent *e; d && (e = readdir(d)) && n < max;) {
                        char p[128], l[64];
                        TEST_SNPRINTF(p, "%s/%s", dir, e->d_name);
                        ssize_t len = readlink(p, l, sizeof l - 1);
                        if (len > 0 && (l[len] = '\0', !strncmp(l, "net:[", 5)) && strcmp(l, own)) {
                                memcpy(held[n++], l, (size_t)len + 1);
                                holds = true;
                        }
                }
                if (d)
                        closedir(d);
                *holders += holds;
        }
        return n;
}

/* Line i (0-based) of s, into out. */
static void line_of(const char *s, int i, char *out, size_t len)
{
        for (; i > 0 && s; i--)
                s = (s = strchr(s, '\n')) ? s + 1 : NULL;
        cr_assert_not_null(s);
        size_t n = strcspn(s, "\n");
        cr_assert_lt(n, len);
        memcpy(out, s, n);
        out[n] = '\0';
}

#define NS_JOB                                                                                     \
        "readlink /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts; hostname; "               \
        "ls /sys/class/net | tr '\\n' ' '; echo; cat /sys/class/net/lo/flags; ipcs -q | grep -c "  \
        "'^0x' || true; ipcmk -Q >/dev/null; echo started"

/* The job's namespaces as it saw them: net, ipc, uts, hostname, links, lo's flags, queues. */
static void check_ns(const char *out, const char *own_net, char ns[3][64])
{
        for (int i = 0; i < 3; i++)
                line_of(out, i, ns[i], 64);
        cr_expect_str_neq(ns[0], own_net, "the job is in the daemon's network namespace");
        char l[256];
        line_of(out, 3, l, sizeof l);
        cr_expect_str_eq(l, "aidp", "hostname");
        line_of(out, 4, l, sizeof l);
        cr_expect_str_eq(l, "lo ", "the sandbox's links");
        line_of(out, 5, l, sizeof l);
        cr_expect_str_eq(l, "0x9", "lo is not up (IFF_UP|IFF_LOOPBACK)");
        line_of(out, 6, l, sizeof l);
        cr_expect_str_eq(l, "0", "the job's IPC namespace has another run's message queue");
}

Test(warm_start, pid1_is_cloned_into_namespaces_made_ahead_one_fresh_set_per_run)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        char own[64], held[64][64];
        char dpath[64];
        TEST_SNPRINTF(dpath, "/proc/%d/ns/net", (int)daemon_pid);
        ssize_t ol = readlink(dpath, own, sizeof own - 1);
        cr_assert_gt(ol, 0);
        own[ol] = '\0';
        struct aidp_test_kid k[64];
        size_t nk = wait_children(k, 64, 2), nh = 0, holders = 0;
        /* The idle workers make them at SCHED_IDLE: on a busy host, a while.
         * Every idle worker must hold its set before A connects: A may be
         * served by any of them. */
        for (int i = 0; i < 2000; i++) {
                nh = held_net_ns(held, 64, own, &holders, &nk);
                if (nk >= 2 && holders == nk)
                        break;
                usleep(10000);
        }
        cr_assert_eq(holders, nk, "%zu of %zu idle workers hold a network namespace made ahead",
                     holders, nk);
        /* A keeps its namespaces alive (and a message queue in its IPC
         * namespace) while B runs: two live sets must differ. */
        char ruid[32], rgid[32];
        TEST_SNPRINTF(ruid, "--reuid=%u", (unsigned)A.uid);
        TEST_SNPRINTF(rgid, "--regid=%u", (unsigned)A.gid);
        char *a[] = {"/usr/bin/setpriv",
                     ruid,
                     rgid,
                     "--init-groups",
                     "--",
                     AIDP_RUN_BIN,
                     "--socket",
                     sock,
                     "-q",
                     "--no-cwd",
                     "--",
                     "/bin/sh",
                     "-c",
                     NS_JOB "; sleep 3",
                     NULL};
        struct aidp_proc pa, pb;
        cr_assert_eq(aidp_test_spawn(&pa, a), 0);
        cr_assert(aidp_test_wait_output(&pa, "started", 20000), "A's job did not start");
        cr_assert_eq(run_as(&pb, &B, NULL, NS_JOB), 0, "%s", pb.err);
        cr_assert_eq(aidp_test_finish(&pa), 0, "%s", pa.err);
        char na[3][64], nb[3][64];
        check_ns(pa.out, own, na);
        check_ns(pb.out, own, nb);
        bool made_ahead = false;
        for (size_t i = 0; i < nh; i++)
                made_ahead |= !strcmp(held[i], na[0]);
        cr_expect(made_ahead, "A's network namespace %s is none an idle worker held", na[0]);
        for (int i = 0; i < 3; i++)
                cr_expect_str_neq(na[i], nb[i], "two runs share a namespace: %s", na[i]);
}

/* Of pid's private writable mappings kept out of cores (MADV_DONTDUMP: the
 * secure heap, key buffers): how many, and how many are not locked. */
static void dontdump_maps(pid_t pid, int *dd, int *unlocked)
{
        *dd = *unlocked = 0;
        char p[64], line[512], perms[5] = "";
        TEST_SNPRINTF(p, "/proc/%d/smaps", (int)pid);
        FILE *f = fopen(p, "re");
        if (!f)
                return;
        while (fgets(line, sizeof line, f)) {
                unsigned long a, b;
                char pr[5];
                if (sscanf(line, "%lx-%lx %4s", &a, &b, pr) == 3)
                        memcpy(perms, pr, sizeof perms);
                else if (!strncmp(line, "VmFlags:", 8) && !strcmp(perms, "rw-p") &&
                         strstr(line + 8, " dd")) {
                        (*dd)++;
                        *unlocked += !strstr(line + 8, " lo");
                }
        }
        fclose(f);
}

Test(warm_start, idle_workers_lock_their_copies_of_the_key_pages_again)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        int dd, unlocked;
        dontdump_maps(daemon_pid, &dd, &unlocked);
        cr_assert_gt(dd, 0, "the server has no key pages (no secure heap) to check");
        cr_expect_eq(unlocked, 0, "%d of the server's %d key mappings are not locked", unlocked,
                     dd);
        /* fork passes MADV_DONTDUMP on but not mlock: a worker's first write
         * to the secure heap would copy keys into swappable pages. */
        struct aidp_test_kid k[64];
        size_t n = wait_children(k, 64, 2);
        cr_assert_geq(n, 2, "the daemon forked no idle workers ahead (%zu children)", n);
        for (size_t i = 0; i < n; i++) {
                for (int t = 0; t < 500; t++) {
                        dontdump_maps(k[i].pid, &dd, &unlocked);
                        if (dd > 0 && unlocked == 0)
                                break;
                        usleep(10000);
                }
                cr_expect_gt(dd, 0, "idle worker %d has no key pages", (int)k[i].pid);
                cr_expect_eq(unlocked, 0,
                             "idle worker %d: %d of its %d key mappings are not locked",
                             (int)k[i].pid, unlocked, dd);
        }
        /* and a run through such a worker still works */
        struct aidp_proc p;
        cr_assert_eq(run_as(&p, &A, NULL, "echo ok"), 0, "%s", p.err);
        cr_expect_str_eq(p.out, "ok\n");
}

/* pid's main stack resident in memory, in KiB (its [stack] Rss), or -1. */
static long stack_rss_kb(pid_t pid)
{
        char p[64], line[512];
        TEST_SNPRINTF(p, "/proc/%d/smaps", (int)pid);
        FILE *f = fopen(p, "re");
        if (!f)
                return -1;
        long kb = -1;
        bool in_stack = false;
        while (fgets(line, sizeof line, f)) {
                unsigned long a, b;
                if (sscanf(line, "%lx-%lx", &a, &b) == 2 && strchr(line, ' '))
                        in_stack = strstr(line, "[stack]") != NULL;
                else if (in_stack && sscanf(line, "Rss: %ld kB", &kb) == 1)
                        break;
        }
        fclose(f);
        return kb;
}

/* A run's state lives on the worker's stack (some 170 KiB of it below the
 * idle worker's frames), pages the server never reached: an idle worker
 * makes them its own while it waits (pool.c, aidp_daemon_stack_ahead), so that the
 * run does not take a fault per page of it. The server's own stack stays
 * as it was. */
Test(warm_start, idle_workers_own_the_stack_a_run_reaches)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        int d_nice, d_policy;
        cr_assert(sched_of(daemon_pid, &d_nice, &d_policy));
        cr_assert(pool_ready(d_policy), "no idle worker became ready");
        long server = stack_rss_kb(daemon_pid);
        cr_assert_geq(server, 0, "the server's stack cannot be read");
        struct aidp_test_kid k[64];
        size_t n = wait_children(k, 64, 2);
        cr_assert_geq(n, 2, "the daemon forked no idle workers ahead (%zu children)", n);
        for (size_t i = 0; i < n; i++) {
                /* A worker just forked has not made its copies yet. */
                long kb = -1;
                for (int t = 0; t < 500 && (kb = stack_rss_kb(k[i].pid)) < 256; t++)
                        usleep(10000);
                cr_expect_geq(kb, 256, "idle worker %d has %ld KiB of its stack (server: %ld)",
                              (int)k[i].pid, kb, server);
        }
        cr_expect_lt(server, 256, "the server touched %ld KiB of stack: the check proves nothing",
                     server);
        /* and a run through such a worker works */
        struct aidp_proc p;
        cr_assert_eq(run_as(&p, &A, NULL, "echo ok"), 0, "%s", p.err);
        cr_expect_str_eq(p.out, "ok\n");
}

/* pid's private writable anonymous mappings ([heap] alone, or every other
 * one but the stack): how many of their present pages are the very pages
 * (same frame, from pagemap: root reads it) that the server has at the same
 * address, i.e. still shared with it; and whether the first [heap] mapping
 * (the one the worker inherited) is locked. The sandbox's pid 1, cloned
 * from the worker, shares the worker's own copies, not the server's. */
struct shared_pages {
        size_t heap, other;
        bool heap_locked;
};

/* Present pages of [a, b) that are the same frame in both pagemaps. */
static size_t same_frames(int pm, int spm, unsigned long a, unsigned long b)
{
        uint64_t x[512], y[512];
        size_t same = 0;
        while (a < b) {
                size_t n = (b - a) / 4096 > 512 ? 512 : (b - a) / 4096;
                off_t off = (off_t)(a / 4096 * sizeof x[0]);
                ssize_t r1 = pread(pm, x, n * sizeof x[0], off),
                        r2 = pread(spm, y, n * sizeof y[0], off);
                if (r1 <= 0 || r2 <= 0)
                        break;
                n = (size_t)(r1 < r2 ? r1 : r2) / sizeof x[0];
                for (size_t i = 0; i < n; i++)
                        same += (x[i] >> 63) && (y[i] >> 63) &&
                                (x[i] & ((1ULL << 55) - 1)) == (y[i] & ((1ULL << 55) - 1));
                a += n * 4096;
        }
        return same;
}

static struct shared_pages shared_with(pid_t pid, pid_t server)
{
        struct shared_pages s = {0};
        char p[64], line[512];
        TEST_SNPRINTF(p, "/proc/%d/pagemap", (int)pid);
        int pm = open(p, O_RDONLY | O_CLOEXEC);
        TEST_SNPRINTF(p, "/proc/%d/pagemap", (int)server);
        int spm = open(p, O_RDONLY | O_CLOEXEC);
        TEST_SNPRINTF(p, "/proc/%d/smaps", (int)pid);
        FILE *f = fopen(p, "re");
        bool first_heap = true, in_heap = false, anon = false;
        unsigned long a = 0, b = 0;
        while (f && pm >= 0 && spm >= 0 && fgets(line, sizeof line, f)) {
                char pr[5];
                int off = 0;
                unsigned long lo, hi; /* "Anonymous:" parses as the hex A */
                if (sscanf(line, "%lx-%lx %4s %*s %*s %*s%n", &lo, &hi, pr, &off) == 3) {
                        a = lo;
                        b = hi;
                        const char *nm = line + off;
                        while (*nm == ' ')
                                nm++;
                        in_heap = !strncmp(nm, "[heap]", 6);
                        anon = !strcmp(pr, "rw-p") && (*nm == '\n' || in_heap);
                        continue;
                }
                /* The key pages (" dd") stay the server's, locked there. */
                if (strncmp(line, "VmFlags:", 8) || !anon || strstr(line + 8, " dd"))
                        continue;
                *(in_heap ? &s.heap : &s.other) += same_frames(pm, spm, a, b);
                if (in_heap && first_heap)
                        s.heap_locked = strstr(line + 8, " lo") != NULL;
                first_heap &= !in_heap;
        }
        if (f)
                fclose(f);
        if (pm >= 0)
                close(pm);
        if (spm >= 0)
                close(spm);
        return s;
}

/* The processes called comm whose parent is pid (a worker's pid 1). */
static size_t children_named(pid_t pid, const char *comm, pid_t *out, size_t max)
{
        DIR *d = opendir("/proc");
        size_t n = 0;
        struct dirent *e;
        while (d && (e = readdir(d)) && n < max) {
                char sp[300], line[256], name[64] = "";
                long ppid = -1;
                if (e->d_name[0] < '1' || e->d_name[0] > '9')
                        continue;
                TEST_SNPRINTF(sp, "/proc/%s/status", e->d_name);
                FILE *f = fopen(sp, "re");
                while (f && fgets(line, sizeof line, f) && ppid < 0)
                        if (sscanf(line, "Name: %63s", name) != 1)
                                sscanf(line, "PPid: %ld", &ppid);
                if (f)
                        fclose(f);
                if (ppid == pid && !strcmp(name, comm))
                        out[n++] = (pid_t)atoi(e->d_name);
        }
        if (d)
                closedir(d);
        return n;
}

/* Is this process a sandbox's pid 1 (its innermost pid is 1)? An idle
 * worker's zygote has the same name (aidp-init) but lives in the daemon's
 * pid namespace. */
static bool is_sandbox_init(pid_t pid)
{
        char sp[64], line[256];
        TEST_SNPRINTF(sp, "/proc/%d/status", (int)pid);
        FILE *f = fopen(sp, "re");
        bool init = false;
        while (f && fgets(line, sizeof line, f))
                if (!strncmp(line, "NSpid:", 6)) {
                        char *last = strrchr(line, '\t');
                        init = last && strtol(last + 1, NULL, 10) == 1;
                }
        if (f)
                fclose(f);
        return init;
}

static long vmlck_kb(pid_t pid)
{
        char p[64], line[256];
        TEST_SNPRINTF(p, "/proc/%d/status", (int)pid);
        FILE *f = fopen(p, "re");
        long kb = -1;
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
                        break;
        if (f)
                fclose(f);
        return kb;
}

/* More clients at once than the pool holds: every serving worker, pooled or
 * forked at accept (its private pages still shared with the server, where a
 * pooled worker made all of them its own), locks its mappings in one call
 * (the key pages among them, and the heap it inherited); pid 1, cloned from
 * it, locks nothing. */
Test(warm_start, serving_workers_lock_their_mappings_and_pid1_locks_nothing)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        int d_nice, d_policy;
        cr_assert(sched_of(daemon_pid, &d_nice, &d_policy));
        cr_assert(pool_ready(d_policy), "no idle worker became ready");
        enum { N = 6 };
        static struct aidp_proc p[N];
        char ruid[32], rgid[32];
        TEST_SNPRINTF(ruid, "--reuid=%u", (unsigned)A.uid);
        TEST_SNPRINTF(rgid, "--regid=%u", (unsigned)A.gid);
        char *a[] = {"/usr/bin/setpriv",
                     ruid,
                     rgid,
                     "--init-groups",
                     "--",
                     AIDP_RUN_BIN,
                     "--socket",
                     sock,
                     "-q",
                     "--no-cwd",
                     "--",
                     "/bin/sh",
                     "-c",
                     "echo started; exec sleep 60",
                     NULL};
        for (int i = 0; i < N; i++)
                cr_assert_eq(aidp_test_spawn(&p[i], a), 0);
        for (int i = 0; i < N; i++)
                cr_assert(aidp_test_wait_output(&p[i], "started", 30000), "run %d did not start",
                          i);
        struct aidp_test_kid k[64];
        size_t nk = children(k, 64), at_accept = 0, serving = 0;
        for (size_t i = 0; i < nk; i++) {
                pid_t pid1[8];
                size_t nc = children_named(k[i].pid, "aidp-init", pid1, 8), ng = 0;
                for (size_t g = 0; g < nc; g++) {
                        if (!is_sandbox_init(pid1[g]))
                                continue; /* an idle worker's zygote */
                        ng++;
                        cr_expect_eq(vmlck_kb(pid1[g]), 0,
                                     "pid 1 %d of worker %d has locked memory", (int)pid1[g],
                                     (int)k[i].pid);
                }
                if (ng == 0)
                        continue; /* an idle worker */
                serving++;
                int dd, unlocked;
                dontdump_maps(k[i].pid, &dd, &unlocked);
                cr_expect(dd > 0 && unlocked == 0, "worker %d: %d of its %d key mappings unlocked",
                          (int)k[i].pid, unlocked, dd);
                struct shared_pages sp = shared_with(k[i].pid, daemon_pid);
                cr_expect(sp.heap_locked, "worker %d: its heap is not locked", (int)k[i].pid);
                /* A pooled worker made every page its own; one forked at
                 * accept shares the server's still. */
                at_accept += sp.heap + sp.other > 0;
        }
        for (int i = 0; i < N; i++) {
                kill(p[i].pid, SIGTERM);
                aidp_test_finish(&p[i]);
        }
        cr_expect_eq(serving, N, "%zu workers serve the %d runs", serving, N);
        cr_expect_gt(at_accept, 0, "no worker was forked at accept (%zu serving)", serving);
}

/* The thread of pid named comm (its tid), or 0. */
static pid_t thread_named(pid_t pid, const char *comm)
{
        char p[64];
        TEST_SNPRINTF(p, "/proc/%d/task", (int)pid);
        DIR *d = opendir(p);
        if (!d)
                return 0;
        pid_t found = 0;
        for (struct dirent *e; !found && (e = readdir(d));) {
                if (e->d_name[0] == '.')
                        continue;
                char cp[128], name[64] = "";
                TEST_SNPRINTF(cp, "/proc/%d/task/%s/comm", (int)pid, e->d_name);
                FILE *f = fopen(cp, "re");
                if (f && fgets(name, sizeof name, f))
                        name[strcspn(name, "\n")] = '\0';
                if (f)
                        fclose(f);
                if (!strcmp(name, comm))
                        found = (pid_t)atoi(e->d_name);
        }
        closedir(d);
        return found;
}

/* How many entries of the registry directory are made-ahead files (".PID"),
 * and whether worker pid has one (empty, root's, 0600). */
static size_t ahead_files(pid_t pid, bool *has_pid)
{
        char dir[1100];
        TEST_SNPRINTF(dir, "%s/.daemon", rundir);
        *has_pid = false;
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d));) {
                if (e->d_name[0] != '.' || e->d_name[1] < '0' || e->d_name[1] > '9')
                        continue;
                n++;
                struct stat st;
                if (pid > 0 && atoi(e->d_name + 1) == pid &&
                    fstatat(dirfd(d), e->d_name, &st, 0) == 0)
                        *has_pid = S_ISREG(st.st_mode) && st.st_size == 0 && st.st_uid == 0 &&
                                   (st.st_mode & 07777) == 0600;
        }
        closedir(d);
        return n;
}

/* Worker pid's watcher and START's thread run at the daemon's scheduling,
 * and the worker has its registry file. */
static void check_ahead(pid_t pid, int d_nice, int d_policy)
{
        static const char *const names[] = {"aidp-watch", "aidp-start"};
        for (size_t i = 0; i < 2; i++) {
                pid_t w = 0;
                for (int t = 0; t < 300 && !(w = thread_named(pid, names[i])); t++)
                        usleep(10000);
                cr_assert_gt(w, 0, "ready worker %d has no %s thread", (int)pid, names[i]);
                char sp[128];
                TEST_SNPRINTF(sp, "/proc/%d/task/%d/stat", (int)pid, (int)w);
                int tn = 99, tp = 99;
                size_t len = 0;
                char *buf = aidp_test_slurp(sp, &len);
                cr_assert(buf && sched_of_stat(buf, &tn, &tp), "%s", sp);
                free(buf);
                cr_expect(tp == d_policy && tn == d_nice,
                          "worker %d's %s runs at policy %d nice %d, not the daemon's %d/%d",
                          (int)pid, names[i], tp, tn, d_policy, d_nice);
        }
        bool has_file = false;
        for (int t = 0; t < 300 && (ahead_files(pid, &has_file), !has_file); t++)
                usleep(10000);
        cr_expect(has_file, "ready worker %d has no registry file made ahead", (int)pid);
}

/* What a ready worker makes ahead of its connection (docs/run-core.md, "The
 * worker segment"): the threads that will watch its client (aidp-watch) and
 * write its START (aidp-start), at the daemon's own scheduling (made at
 * SCHED_IDLE they would be late on a busy machine), and its registry entry's
 * file,
 * which ps never lists. The run's client is watched by that thread (a
 * disconnect stops the run: test_daemon.c), and a worker that served no run,
 * the ones the server stops, and those that served a run leave no such
 * file. */
Test(warm_start, a_ready_worker_has_its_threads_and_registry_file_ahead_and_leaves_none)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        int d_nice, d_policy;
        cr_assert(sched_of(daemon_pid, &d_nice, &d_policy));
        size_t checked = 0;
        /* The idle workers that are ready (they make both right before they
         * say so), waited for */
        for (int t = 0; t < 1000 && !checked; t++, usleep(10000)) {
                struct aidp_test_kid k[64];
                size_t n = children(k, 64);
                for (size_t i = 0; i < n; i++) {
                        if (thread_named(k[i].pid, "aidp-watch") > 0) {
                                check_ahead(k[i].pid, d_nice, d_policy);
                                checked++;
                        }
                }
        }
        cr_assert_gt(checked, 0, "no idle worker has an aidp-watch thread");
        /* A run, and a ps request: neither worker leaves its file, and ps
         * lists no made-ahead file (only the run's own entry while it ran). */
        struct aidp_proc r;
        cr_assert_eq(run_as(&r, &A, NULL, "true"), 0, "%s", r.err);
        pid_t c;
        int q = raw_client("{\"v\":1,\"op\":\"ps\"}", &c);
        char ps[512];
        cr_expect(answered(q, 30000, ps, sizeof ps) && !strncmp(ps, "ps", 2), "ps: '%s'", ps);
        close(q);
        waitpid(c, NULL, 0);
        /* Every file left belongs to an idle worker alive now. */
        for (int t = 0; t < 300; t++) {
                struct aidp_test_kid now[64];
                size_t nn = children(now, 64), idle_with = 0;
                for (size_t i = 0; i < nn; i++) {
                        bool h = false;
                        ahead_files(now[i].pid, &h);
                        idle_with += h;
                }
                bool dummy;
                if (ahead_files(0, &dummy) == idle_with)
                        break;
                usleep(10000);
                cr_assert_lt(t, 299, "a registry file made ahead outlived its worker");
        }
        daemon_stop();
        bool dummy;
        cr_expect_eq(ahead_files(0, &dummy), 0, "registry files made ahead outlived the daemon");
}

/* A library profile of the test's own with these tmpfs sizes. */
static void write_tmpfs_profile(const char *name, const char *tmp, const char *shm)
{
        char p[1200];
        TEST_SNPRINTF(p, "%s/%s.yaml", profiles, name);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fprintf(f,
                "apiVersion: aidp/v1\nkind: Profile\nmetadata:\n  name: %s\n"
                "limits:\n  tmpfs:\n    /tmp: %s\n%s%s%snetwork: none\n",
                name, tmp, shm ? "    /dev/shm: " : "", shm ? shm : "", shm ? "\n" : "");
        cr_assert_eq(fclose(f), 0);
        cr_assert_eq(chmod(p, 0644), 0);
}

/* The tmpfs mounts a ready worker makes ahead of its run (docs/run-core.md,
 * "The worker segment": the default profile's /tmp and /dev/shm whole, the
 * contexts of /scratch and /out) are exactly what the run would have made,
 * seen from inside the sandbox: each one's size, mode, owner and noswap, for
 * a run of the default profile (taken) and one of another profile (other
 * sizes: not taken), each twice. */
Test(warm_start, tmpfs_made_ahead_are_exactly_what_the_run_would_make)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        write_tmpfs_profile("baseline", "96Mi", "48Mi");
        write_tmpfs_profile("smalltmp", "64Mi", NULL);
        daemon_start();
        static const struct {
                const char *profile;
                unsigned long long tmp, shm;
        } cases[] = {{NULL, 96ull << 20, 48ull << 20},
                     {"smalltmp", 64ull << 20, 64ull << 20},
                     {NULL, 96ull << 20, 48ull << 20},
                     {"smalltmp", 64ull << 20, 64ull << 20}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct aidp_proc p;
                cr_assert_eq(run_as(&p, &A, cases[i].profile,
                                    "stat -f -c '%b %S' /tmp /dev/shm; "
                                    "stat -c '%a %u %g' /tmp /dev/shm /scratch /out; "
                                    "grep -c ' /tmp .* tmpfs .*noswap' /proc/self/mountinfo; "
                                    "grep -c ' /dev/shm .* tmpfs .*noswap' /proc/self/mountinfo"),
                             0, "case %zu: %s", i, p.err);
                unsigned long long b1, s1, b2, s2;
                unsigned m[4], u[4], g[4];
                int ns_tmp = -1, ns_shm = -1;
                int got = sscanf(p.out,
                                 "%llu %llu\n%llu %llu\n%o %u %u\n%o %u %u\n%o %u %u\n%o %u %u\n"
                                 "%d\n%d",
                                 &b1, &s1, &b2, &s2, &m[0], &u[0], &g[0], &m[1], &u[1], &g[1],
                                 &m[2], &u[2], &g[2], &m[3], &u[3], &g[3], &ns_tmp, &ns_shm);
                cr_assert_eq(got, 18, "case %zu: %s", i, p.out);
                cr_expect_eq(b1 * s1, cases[i].tmp, "case %zu: /tmp holds %llu bytes", i, b1 * s1);
                cr_expect_eq(b2 * s2, cases[i].shm, "case %zu: /dev/shm holds %llu bytes", i,
                             b2 * s2);
                for (int k = 0; k < 4; k++) {
                        bool root = k < 2;
                        cr_expect_eq(m[k], root ? 01777u : 0755u, "case %zu, mount %d: mode %o", i,
                                     k, m[k]);
                        cr_expect_eq(u[k], root ? 0u : (unsigned)A.uid,
                                     "case %zu, mount %d: owner %u", i, k, u[k]);
                        cr_expect_eq(g[k], root ? 0u : (unsigned)A.gid,
                                     "case %zu, mount %d: group %u", i, k, g[k]);
                }
                cr_expect(ns_tmp == 1 && ns_shm == 1, "case %zu: noswap missing: %s", i, p.out);
        }
}

/* Whether the space-separated ids in s hold id. */
static bool ids_hold(const char *s, unsigned id)
{
        char buf[1024];
        TEST_SNPRINTF(buf, "%s", s);
        char *save = NULL;
        for (char *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
                if ((unsigned)strtoul(t, NULL, 10) == id)
                        return true;
        return false;
}

/* The caller's account entries (its name, the job's supplementary groups)
 * are read from the databases for each run, never kept from the time a
 * worker was forked or made ready (docs/run-core.md, "The worker segment":
 * nothing of them is made ahead): A joins a group between two runs, and the
 * second run's job has it, served by an idle worker made before the change. */
Test(warm_start, an_account_database_change_is_seen_by_the_next_run_of_a_ready_worker)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        int d_nice, d_policy;
        cr_assert(sched_of(daemon_pid, &d_nice, &d_policy));
        struct aidp_proc p;
        cr_assert_eq(run_as(&p, &A, NULL, "id -G"), 0, "%s", p.err);
        cr_assert_not(ids_hold(p.out, (unsigned)B.gid), "A is in B's group already: %s", p.out);
        /* the idle workers of now, ready (their entries would be stale if
         * they were read ahead) */
        for (int t = 0; t < 1000; t++, usleep(10000)) {
                struct aidp_test_kid k[64];
                size_t n = children(k, 64), r = 0;
                for (size_t i = 0; i < n; i++)
                        r += thread_named(k[i].pid, "aidp-watch") > 0;
                if (r >= 2)
                        break;
        }
        /* Only the idle workers (each has its watcher made ahead): the first
         * run's worker may still be in its tail here, and its end would make
         * two gone (seen once at load 6). */
        struct aidp_test_kid all[64], before[64];
        size_t na = children(all, 64), nb = 0;
        for (size_t i = 0; i < na; i++)
                if (thread_named(all[i].pid, "aidp-watch") > 0)
                        before[nb++] = all[i];
        cr_assert_geq(nb, 2, "fewer than two ready idle workers");
        cr_assert_eq(aidp_test_user_join(&A, B.gid), 0);
        cr_assert_eq(run_as(&p, &A, NULL, "id -G"), 0, "%s", p.err);
        struct aidp_test_kid w = served_by(before, nb);
        cr_expect_gt(w.pid, 0, "the second run was not served by a worker made before the change");
        cr_expect(ids_hold(p.out, (unsigned)B.gid),
                  "the job of A, who joined group %u, has only the groups %s", (unsigned)B.gid,
                  p.out);
}

/* The daemon's children in state state (aidp_test_proc_state), how many. */
static size_t children_in(char state, pid_t *one)
{
        struct aidp_test_kid k[64];
        size_t n = children(k, 64), m = 0;
        for (size_t i = 0; i < n; i++)
                if (aidp_test_proc_state(k[i].pid) == state) {
                        m++;
                        *one = k[i].pid;
                }
        return m;
}

/* The pool is refilled as a run's client has its status, never while a
 * client waits for its run: a fork of the server during the start-up took CPU
 * from pid 1 and the client, and during the job from the job's exit, the end
 * record and the status. The quiet time after which the pool is refilled
 * anyway (a long job) is taken out of the way (AIDP_FAULT_POOL_QUIET_MS), and
 * every run's worker stops itself before its job (AIDP_FAULT_STOP_AT=cloned). */
Test(warm_start, the_pool_is_refilled_once_a_runs_client_has_its_status_not_before)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_env[0] = "AIDP_FAULT_POOL_QUIET_MS=600000";
        daemon_env[1] = "AIDP_FAULT_STOP_AT=cloned";
        daemon_start();
        struct aidp_test_kid k[64], first[64];
        size_t n0 = wait_children(first, 64, 2);
        cr_assert_eq(n0, 2, "the daemon has %zu children, not its two idle workers", n0);
        struct aidp_proc pa;
        cr_assert_eq(spawn_as(&pa, &A, NULL, "echo up; sleep 1.5; echo down"), 0);
        /* A's worker stops itself right after pid 1's clone: A is starting. */
        pid_t w = 0;
        for (int i = 0; i < 2000 && children_in('T', &w) == 0; i++)
                usleep(10000);
        cr_expect_gt(w, 0, "A's worker never stopped at its fault point");
        /* Meanwhile no worker is forked: the stopped one and one idle. */
        usleep(300 * 1000);
        size_t n1 = children(k, 64);
        cr_expect_eq(n1, 2, "the daemon forked a worker while A was starting (%zu children)", n1);
        if (w > 0)
                kill(w, SIGCONT);
        cr_assert(aidp_test_wait_output(&pa, "up", 20000), "A's job did not start: %s", pa.err);
        /* Nor while A's job runs (its client waits for it). */
        usleep(600 * 1000);
        size_t n2 = children(k, 64);
        cr_expect_eq(n2, 2, "the daemon forked a worker while A's job ran (%zu children)", n2);
        cr_expect(!strstr(pa.out, "down"), "A's job ended before the check: %s", pa.out);
        cr_assert_eq(aidp_test_finish(&pa), 0, "%s", pa.err);
        /* A has its status: a worker that was not there before is forked,
         * long before the quiet time. */
        bool fresh = false;
        for (int t = 0; t < 500 && !fresh; t++) {
                size_t n = children(k, 64);
                for (size_t i = 0; i < n && !fresh; i++)
                        fresh = !has(first, n0, k[i]);
                if (!fresh)
                        usleep(10000);
        }
        cr_expect(fresh, "the pool was not refilled once A had its status");
        daemon_stop();
        daemon_env[0] = daemon_env[1] = NULL;
}

/* A connection whose peer hung up before it was accepted asks nothing: it
 * costs no worker, neither an idle one nor a fork (a user's flood of
 * connect-and-close made every other user's run wait behind thousands of
 * forks). The daemon and its idle workers are stopped while a user connects
 * and hangs up 50 times, so that every connection is gone when it is accepted;
 * afterwards the same two idle workers are there, and no other child. */
Test(warm_start, connections_that_hung_up_cost_no_worker)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        struct aidp_test_kid first[64], k[64];
        size_t n0 = wait_children(first, 64, 2);
        cr_assert_eq(n0, 2, "the daemon has %zu children, not its two idle workers", n0);
        /* both ready (each has its watcher): they accept themselves */
        for (int t = 0; t < 500; t++) {
                size_t r = 0;
                for (size_t i = 0; i < n0; i++)
                        r += thread_named(first[i].pid, "aidp-watch") > 0;
                if (r == n0)
                        break;
                usleep(10000);
        }
        kill(daemon_pid, SIGSTOP);
        for (size_t i = 0; i < n0; i++)
                kill(first[i].pid, SIGSTOP);
        pid_t c = fork();
        cr_assert_geq(c, 0);
        if (c == 0) {
                aidp_test_become(&A);
                for (int i = 0; i < 50; i++) {
                        int s = aidp_test_daemon_connect(sock);
                        if (s < 0)
                                _exit(1);
                        close(s);
                }
                _exit(0);
        }
        int st = -1;
        waitpid(c, &st, 0);
        for (size_t i = 0; i < n0; i++)
                kill(first[i].pid, SIGCONT);
        kill(daemon_pid, SIGCONT);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "A could not connect 50 times");
        usleep(500 * 1000);
        size_t n = children(k, 64);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
                kept += has(first, n0, k[i]);
        cr_expect_eq(kept, n0, "%zu of the %zu idle workers were used up", n0 - kept, n0);
        cr_expect_eq(n, n0, "%zu children after the hung-up connections, not %zu", n, n0);
        daemon_stop();
}

/* The zygote's deadline (3 s) is its own: the worker's work while the
 * zygote clones (listing the host's sockets, long on a host with very many)
 * does not count against it. The worker stops itself in that listing
 * (AIDP_FAULT_STOP_AT=hostsock) for longer than the deadline; the run then
 * goes on through the zygote's pid 1. */
Test(warm_start, the_zygotes_deadline_does_not_count_the_host_sockets_listing)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_env[0] = "AIDP_FAULT_STOP_AT=hostsock";
        daemon_start();
        struct aidp_proc pa;
        cr_assert_eq(spawn_as(&pa, &A, NULL, "echo through"), 0);
        pid_t w = 0;
        for (int i = 0; i < 2000 && children_in('T', &w) == 0; i++)
                usleep(10000);
        cr_expect_gt(w, 0, "A's worker never stopped in the listing");
        usleep(3500 * 1000);
        if (w > 0)
                kill(w, SIGCONT);
        cr_expect_eq(aidp_test_finish(&pa), 0, "%s", pa.err);
        cr_expect(strstr(pa.out, "through") != NULL, "%s / %s", pa.out, pa.err);
        cr_expect(!strstr(pa.err, "did not answer in time"), "%s", pa.err);
        cr_expect(!strstr(pa.err, "clones the sandbox itself"), "no zygote was used: %s", pa.err);
        daemon_stop();
        daemon_env[0] = NULL;
}

/* Of pid's present pages in anonymous private writable mappings (no file
 * behind them, not its stack): how many, and how many hold only zeros. */
static void anon_pages(pid_t pid, size_t *present, size_t *zero)
{
        *present = *zero = 0;
        char p[64];
        TEST_SNPRINTF(p, "/proc/%d/maps", (int)pid);
        FILE *maps = fopen(p, "re");
        TEST_SNPRINTF(p, "/proc/%d/pagemap", (int)pid);
        int pm = open(p, O_RDONLY | O_CLOEXEC);
        TEST_SNPRINTF(p, "/proc/%d/mem", (int)pid);
        int mem = open(p, O_RDONLY | O_CLOEXEC);
        cr_assert(maps && pm >= 0 && mem >= 0, "cannot read the memory of %d", (int)pid);
        char line[512];
        while (fgets(line, sizeof line, maps)) {
                unsigned long lo, hi, ino;
                char perms[5], name[64] = "";
                if (sscanf(line, "%lx-%lx %4s %*x %*x:%*x %lu %63s", &lo, &hi, perms, &ino, name) <
                            4 ||
                    strcmp(perms, "rw-p") || ino || !strcmp(name, "[stack]"))
                        continue;
                for (unsigned long a = lo; a < hi; a += 4096) {
                        uint64_t e = 0;
                        unsigned char page[4096];
                        if (pread(pm, &e, sizeof e, (off_t)(a / 4096 * 8)) != sizeof e ||
                            !(e >> 63) || pread(mem, page, sizeof page, (off_t)a) != sizeof page)
                                continue;
                        (*present)++;
                        size_t i = 0;
                        while (i < sizeof page && !page[i])
                                i++;
                        *zero += i == sizeof page;
                }
        }
        fclose(maps);
        close(pm);
        close(mem);
}

/* The server gives back the pages of zeros in its anonymous memory (800 KiB
 * of them are libcgroup's zeroed mount table) before it forks workers: each
 * fork would map them and each idle worker's prefault copy them, for
 * nothing. */
Test(warm_start, the_server_keeps_no_page_of_zeros_for_its_workers_to_copy)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_start();
        struct aidp_test_kid k[64];
        cr_assert_geq(wait_children(k, 64, 2), 2, "the daemon forked no idle workers ahead");
        size_t present, zero;
        anon_pages(daemon_pid, &present, &zero);
        cr_assert_gt(present, 0, "no anonymous page of the server was read");
        cr_expect_leq(zero, 4, "%zu of the server's %zu anonymous pages hold only zeros", zero,
                      present);
        /* and a run is served as before by what it inherited */
        struct aidp_proc p;
        cr_assert_eq(run_as(&p, &A, NULL, "echo served"), 0, "%s", p.err);
        cr_expect_str_eq(p.out, "served\n");
}

/* A request that is no run (here `aidp logs --follow`, which lasts as long
 * as the run it follows) is no start-up either: the pool is refilled while
 * it is served, as while a detached run goes on. */
Test(warm_start, the_pool_is_refilled_while_a_logs_follow_is_served)
{
        AIDP_REQUIRE_ROOT();
        cr_assert(ready, "test users or directories could not be made (%s)", aidp_test_users_why());
        daemon_env[0] = "AIDP_FAULT_POOL_QUIET_MS=600000";
        daemon_start();
        struct aidp_test_kid k[64];
        cr_assert_eq(wait_children(k, 64, 2), 2, "the daemon did not fork its two idle workers");
        struct aidp_proc p, f, s;
        const char *run[] = {AIDP_RUN_BIN, "-q",      "--no-cwd", "--detach",
                             "--",         "/bin/sh", "-c",       "echo READY; sleep 30",
                             NULL};
        cr_assert_eq(aidp_test_client_as(&p, &A, sock, true, run), 0, "%s", p.err);
        char id[64];
        TEST_SNPRINTF(id, "%.36s", p.out);
        /* the detached run's worker and two idle ones */
        size_t n1 = wait_children(k, 64, 3);
        cr_expect_eq(n1, 3, "%zu children while the detached run goes on", n1);
        const char *follow[] = {AIDP_BIN, "logs", "--follow", id, NULL};
        cr_assert_eq(aidp_test_client_as(&f, &A, sock, false, follow), 0);
        cr_expect(aidp_test_wait_output(&f, "READY", 30000), "%s", f.err);
        /* and the worker that serves the logs */
        size_t n2 = wait_children(k, 64, 4);
        cr_expect_eq(n2, 4, "the pool was not refilled while a logs --follow was served (%zu)", n2);
        const char *stop[] = {AIDP_BIN, "stop", id, NULL};
        cr_expect_eq(aidp_test_client_as(&s, &A, sock, true, stop), 0, "%s", s.err);
        aidp_test_finish(&f);
        daemon_stop();
        daemon_env[0] = NULL;
}
