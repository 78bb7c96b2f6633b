/* Root tests of issue 14's "nothing leaves except through the sealed output":
 * host unix sockets, the job's stdio, the default profile and run ids. The
 * probe (tests/helpers/contain_probe) reports from inside the sandbox what
 * the kernel let it do; the test checks the host side. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "lineage_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"
#include "tests/tpath.h"

#define CONTAIN_PROBE AIDP_BINARY_DIR "/tests/helpers/contain_probe"

static struct aidp_proc P;
static char vardir[64], cwddir[64], binddir[64], logp[128], keyp[128];
static pid_t server = -1;
static pid_t holders[24]; /* host sockets held open (any_number_of_host_sockets) */
static char run_sock[96]; /* a socket made in the host's /run, removed at the end */

static void setup(void)
{
        snprintf(vardir, sizeof vardir, "/var/tmp/aidp-test-contain-XXXXXX");
        snprintf(cwddir, sizeof cwddir, "/tmp/aidp-test-contain-cwd-XXXXXX");
        snprintf(binddir, sizeof binddir, "/var/tmp/aidp-test-contain-bind-XXXXXX");
        cr_assert_not_null(mkdtemp(vardir));
        cr_assert_not_null(mkdtemp(cwddir));
        cr_assert_not_null(mkdtemp(binddir));
        /* Searchable by the job's user: only the covering may stop it. */
        chmod(vardir, 0755);
        chmod(cwddir, 0755);
        chmod(binddir, 0755);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", vardir);
        TEST_SNPRINTF(keyp, "%s/lineage.key", vardir);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
}

#define DEEP_LEVELS 25
static const char deep_name[] = /* 200 characters */
        "d123456789d123456789d123456789d123456789d123456789d123456789d123456789d123456789"
        "d123456789d123456789d123456789d123456789d123456789d123456789d123456789d123456789"
        "d123456789d123456789d123456789d123456789";

/* The deep chain of a_socket_below_a_path_too_long_to_name...: removed level
 * by level through fds (its paths are too long for nftw). */
static void deep_rm(void)
{
        char top[128];
        TEST_SNPRINTF(top, "%s/deep", vardir);
        int fds[DEEP_LEVELS + 1];
        fds[0] = open(top, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int n = 0;
        while (n < DEEP_LEVELS && fds[n] >= 0 &&
               (fds[n + 1] = openat(fds[n], deep_name,
                                    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
                n++;
        for (; n >= 0; n--) {
                if (fds[n] < 0)
                        continue;
                unlinkat(fds[n], "s", 0);
                unlinkat(fds[n], "b", 0);
                if (n < DEEP_LEVELS)
                        unlinkat(fds[n], deep_name, AT_REMOVEDIR);
                close(fds[n]);
        }
}

static void teardown(void)
{
        deep_rm();
        if (run_sock[0])
                unlink(run_sock);
        run_sock[0] = '\0';
        if (server > 0) {
                kill(server, SIGKILL);
                waitpid(server, NULL, 0);
                server = -1;
        }
        for (size_t h = 0; h < ARRAY_SIZE(holders); h++)
                if (holders[h] > 0) {
                        kill(holders[h], SIGKILL);
                        waitpid(holders[h], NULL, 0);
                        holders[h] = 0;
                }
        aidp_test_rm_tree(vardir);
        aidp_test_rm_tree(cwddir);
        aidp_test_rm_tree(binddir);
}

TestSuite(leaks, .init = setup, .fini = teardown, .timeout = 90);

/* A listening socket at path (or "@name", abstract) that anyone may connect
 * to: mode 0777, so a refusal comes from the sandbox, never from DAC. */
static int listen_unix(const char *name)
{
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        size_t n = strlen(name);
        cr_assert_lt(n, sizeof a.sun_path);
        memcpy(a.sun_path, name, n);
        if (name[0] == '@')
                a.sun_path[0] = '\0';
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *)&a,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
                     0, "bind %s: %s", name, strerror(errno));
        if (name[0] != '@')
                cr_assert_eq(chmod(name, 0777), 0);
        cr_assert_eq(listen(fd, 16), 0);
        return fd;
}

/* One process answering "pong" on every listener until the test ends. */
static void serve(const int *fds, size_t n)
{
        server = fork();
        cr_assert_geq(server, 0);
        if (server > 0)
                return;
        struct pollfd pf[8];
        for (size_t i = 0; i < n; i++)
                pf[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        for (;;) {
                if (poll(pf, n, -1) < 0)
                        continue;
                for (size_t i = 0; i < n; i++) {
                        if (!(pf[i].revents & POLLIN))
                                continue;
                        int c = accept(fds[i], NULL, NULL);
                        char buf[8];
                        if (c >= 0 && read(c, buf, sizeof buf) > 0 && write(c, "pong", 4) != 4)
                                _exit(1);
                        if (c >= 0)
                                close(c);
                }
        }
}

static int run_probe(const char *const *opts, const char *const *args)
{
        char *argv[48];
        int n = 0;
        /* Its own lineage log (and key, setup): never the machine's. */
        const char *fixed[] = {AIDP_SUPERVISOR, "run", "--user", "65534", "-q", "--lineage", logp};
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
                argv[n++] = (char *)fixed[i];
        for (int i = 0; opts && opts[i]; i++)
                argv[n++] = (char *)opts[i];
        argv[n++] = "--";
        argv[n++] = CONTAIN_PROBE;
        for (int i = 0; args[i]; i++)
                argv[n++] = (char *)args[i];
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

static bool has_line(const char *prefix, const char *name)
{
        char want[512];
        TEST_SNPRINTF(want, "%s %s:", prefix, name);
        return strstr(P.out, want) != NULL;
}

/* The probe's line "reachable NAME: ..." (not "unreachable NAME: ..."). */
static bool reached(const char *name)
{
        char want[512];
        TEST_SNPRINTF(want, "reachable %s:", name);
        size_t n = strlen(want);
        for (const char *l = P.out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
                if (!strncmp(l, want, n))
                        return true;
        return false;
}

/* With network: none (the baseline), no host socket is connectable: one
 * under /var (visible through the read-only host view), one in the working
 * directory (bound from the host's /tmp), one in a bound directory, and an
 * abstract one in the host's network namespace. The same socket bound
 * explicitly by the profile is reachable (that is how a site allows one). */
Test(leaks, host_unix_sockets_are_unreachable_unless_bound_explicitly)
{
        AIDP_REQUIRE_ROOT();
        char var_sock[128], cwd_sock[128], bind_sock[128], abs_name[64], bind_opt[160],
                allow_opt[160];
        TEST_SNPRINTF(var_sock, "%s/var.sock", vardir);
        TEST_SNPRINTF(cwd_sock, "%s/cwd.sock", cwddir);
        TEST_SNPRINTF(bind_sock, "%s/bind.sock", binddir);
        TEST_SNPRINTF(abs_name, "@aidp-test-contain-%d", (int)getpid());
        TEST_SNPRINTF(bind_opt, "%s:/mnt/b", binddir);
        TEST_SNPRINTF(allow_opt, "%s:/mnt/allowed.sock", var_sock);
        int fds[] = {listen_unix(var_sock), listen_unix(cwd_sock), listen_unix(bind_sock),
                     listen_unix(abs_name)};
        serve(fds, 4);
        for (size_t i = 0; i < 4; i++)
                close(fds[i]);

        const char *opts[] = {"--cwd", cwddir, "--ro-bind", bind_opt, NULL};
        const char *args[] = {"unix", var_sock, cwd_sock, "/mnt/b/bind.sock", abs_name, NULL};
        int st = run_probe(opts, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(has_line("unreachable", var_sock), "under /var:\n%s", P.out);
        cr_expect(has_line("unreachable", cwd_sock), "in the working directory:\n%s", P.out);
        cr_expect(has_line("unreachable", "/mnt/b/bind.sock"), "in a bound directory:\n%s", P.out);
        cr_expect(has_line("unreachable", abs_name), "abstract, host netns:\n%s", P.out);
        cr_expect(!strstr(P.out, "\nreachable") && strncmp(P.out, "reachable", 9),
                  "something was reachable:\n%s", P.out);

        /* Allowed explicitly: the socket file itself bound by the profile
         * (here the command line's bind, which joins the profile's). */
        const char *opts2[] = {"--ro-bind", allow_opt, NULL};
        const char *args2[] = {"unix", "/mnt/allowed.sock", var_sock, NULL};
        st = run_probe(opts2, args2);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "reachable /mnt/allowed.sock: pong"), "bound explicitly:\n%s",
                  P.out);
        cr_expect(has_line("unreachable", var_sock), "its host path stays covered:\n%s", P.out);
}

/* A socket bound in a network namespace of its own (a container's, on the
 * host) is listed through the one process in that namespace, whose table the
 * supervisor reads once per namespace (hostsock.c: the namespace of each
 * process, by its ns/net link), and is covered like the host's. */
Test(leaks, a_socket_bound_in_another_network_namespace_is_covered)
{
        AIDP_REQUIRE_ROOT();
        char sock[128], bind_opt[160];
        TEST_SNPRINTF(sock, "%s/netns.sock", binddir);
        TEST_SNPRINTF(bind_opt, "%s:/mnt/b", binddir);
        int ready[2];
        cr_assert_eq(pipe(ready), 0);
        server = fork();
        cr_assert_geq(server, 0);
        if (server == 0) {
                /* A throwaway namespace: the host's own is never changed. */
                struct sockaddr_un a = {.sun_family = AF_UNIX};
                memcpy(a.sun_path, sock, strlen(sock));
                int fd = -1;
                if (unshare(CLONE_NEWNET) < 0 ||
                    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
                    bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || chmod(sock, 0777) < 0 ||
                    listen(fd, 16) < 0)
                        _exit(1);
                if (write(ready[1], "r", 1) != 1)
                        _exit(1);
                for (;;) {
                        int c = accept(fd, NULL, NULL);
                        char buf[8];
                        if (c >= 0 && read(c, buf, sizeof buf) > 0 && write(c, "pong", 4) != 4)
                                _exit(1);
                        if (c >= 0)
                                close(c);
                }
        }
        close(ready[1]);
        char r;
        cr_assert_eq(read(ready[0], &r, 1), 1, "the server in its own namespace did not start");
        close(ready[0]);
        /* Its own namespace, and reachable from the host by its path. */
        char mine[64], its[64], link[64];
        TEST_SNPRINTF(link, "/proc/%d/ns/net", (int)server);
        ssize_t n1 = readlink("/proc/self/ns/net", mine, sizeof mine - 1);
        ssize_t n2 = readlink(link, its, sizeof its - 1);
        cr_assert(n1 > 0 && n2 > 0);
        mine[n1] = its[n2] = '\0';
        cr_assert_str_neq(mine, its);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        memcpy(a.sun_path, sock, strlen(sock));
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char buf[8] = {0};
        cr_assert_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
        cr_assert_eq(write(c, "ping", 4), 4);
        cr_assert_eq(read(c, buf, sizeof buf), 4);
        close(c);
        cr_assert_str_eq(buf, "pong");

        /* In a bound directory, which the job sees (a read-only bind does
         * not stop a connect; only the cover does). */
        const char *opts[] = {"--ro-bind", bind_opt, NULL};
        const char *args[] = {"unix", "/mnt/b/netns.sock", NULL};
        int st = run_probe(opts, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(has_line("unreachable", "/mnt/b/netns.sock"), "bound in another namespace:\n%s",
                  P.out);
        cr_expect(!reached("/mnt/b/netns.sock"), "%s", P.out);
}

/* A socket the profile allows stays reachable when a symlink stands between
 * the name the host bound it by and the path the profile names (a daemon
 * that binds /var/run/x.sock, a profile that allows /run/x.sock): the cover
 * goes by where a path leads in the job's view, not by its spelling. Here
 * the host binds lnk/NAME, lnk a symlink to /tmp, and the profile allows
 * /tmp/NAME at its own path (the job's /tmp is its own: the bind makes the
 * file). A socket beside it that is not allowed stays covered. */
Test(leaks, an_allowed_socket_named_through_a_symlink_stays_reachable)
{
        AIDP_REQUIRE_ROOT();
        char lnk[96], via[160], real[128], other[128], other_via[160], allow[300];
        TEST_SNPRINTF(lnk, "%s/lnk", vardir);
        cr_assert_eq(symlink("/tmp", lnk), 0);
        TEST_SNPRINTF(real, "/tmp/aidp-test-contain-%d-s.sock", (int)getpid());
        TEST_SNPRINTF(other, "/tmp/aidp-test-contain-%d-o.sock", (int)getpid());
        TEST_SNPRINTF(via, "%s%s", lnk, real + 4);
        TEST_SNPRINTF(other_via, "%s%s", lnk, other + 4);
        TEST_SNPRINTF(allow, "%s:%s", real, real);
        unlink(real);
        unlink(other);
        int fds[] = {listen_unix(via), listen_unix(other_via)};
        serve(fds, 2);
        for (size_t i = 0; i < 2; i++)
                close(fds[i]);
        const char *opts[] = {"--ro-bind", allow, NULL};
        const char *args[] = {"unix", real, via, other_via, NULL};
        int st = run_probe(opts, args);
        unlink(real);
        unlink(other);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(reached(real), "allowed:\n%s", P.out);
        cr_expect(reached(via), "allowed, by the host's name:\n%s", P.out);
        cr_expect(!reached(other_via), "not allowed:\n%s", P.out);
}

/* Is /var/run a symlink that leads to /run (Debian's)? */
static bool var_run_is_run(void)
{
        struct stat st;
        char real[PATH_MAX];
        return lstat("/var/run", &st) == 0 && S_ISLNK(st.st_mode) && realpath("/var/run", real) &&
               !strcmp(real, "/run");
}

/* A bind whose source is named through a symlink (lnk -> a directory that
 * holds a listening socket) shows that socket below its target, and it is
 * covered there: the covering knows a bind by the file it bound (its device
 * and inode), not by how its source was spelled, which no socket's path
 * starts with. On a host where /var/run is a symlink to /run, the same for a
 * bind of /var/run and a socket the test makes in /run. Root's binds, which
 * pid 1 opens itself (a user's, opened by the user: daemon_socket), and the
 * working directory's. */
Test(leaks, a_bind_through_a_symlink_covers_the_sockets_it_shows)
{
        AIDP_REQUIRE_ROOT();
        char real[96], lnk[96], sock[128], bind_opt[128], in_run[128];
        TEST_SNPRINTF(real, "%s/real", binddir);
        cr_assert_eq(mkdir(real, 0755), 0);
        TEST_SNPRINTF(lnk, "%s/lnk", vardir);
        cr_assert_eq(symlink(real, lnk), 0);
        TEST_SNPRINTF(sock, "%s/s.sock", real);
        TEST_SNPRINTF(bind_opt, "%s:/mnt/l", lnk);
        bool var_run = var_run_is_run();
        TEST_SNPRINTF(run_sock, "/run/aidp-test-hostsock-%d.sock", (int)getpid());
        TEST_SNPRINTF(in_run, "/mnt/vr%s", run_sock + 4);
        int fds[2];
        size_t n = 0;
        fds[n++] = listen_unix(sock);
        if (var_run) {
                unlink(run_sock);
                fds[n++] = listen_unix(run_sock);
        } else {
                run_sock[0] = '\0';
        }
        serve(fds, n);
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        /* The working directory is a bind too: here a symlink in the host's
         * /tmp (the job's /tmp is its own, so it is bound at that path). */
        char cwd_lnk[96], in_cwd[128];
        TEST_SNPRINTF(cwd_lnk, "%s/lnk", cwddir);
        cr_assert_eq(symlink(real, cwd_lnk), 0);
        TEST_SNPRINTF(in_cwd, "%s/s.sock", cwd_lnk);
        const char *opts[] = {"--cwd",
                              cwd_lnk,
                              "--ro-bind",
                              bind_opt,
                              var_run ? "--ro-bind" : NULL,
                              "/var/run:/mnt/vr",
                              NULL};
        const char *args[] = {"unix", "/mnt/l/s.sock", in_cwd, var_run ? in_run : NULL, NULL};
        int st = run_probe(opts, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(has_line("unreachable", "/mnt/l/s.sock"), "below a bind through a symlink:\n%s",
                  P.out);
        cr_expect(has_line("unreachable", in_cwd), "in a working directory through a symlink:\n%s",
                  P.out);
        if (var_run)
                cr_expect(has_line("unreachable", in_run), "below a bind of /var/run:\n%s", P.out);
        else /* a note, not a warning: Criterion exits 1 on one (the VM has no such link) */
                fprintf(stderr,
                        "/var/run is not a symlink to /run here: that part is not checked\n");
        cr_expect(!strstr(P.out, "\nreachable") && strncmp(P.out, "reachable", 9),
                  "something was reachable:\n%s", P.out);
}

#define SOCKET_STEM "a-long-socket-name-to-pass-the-old-mebibyte-of-paths"

/* A child holding n bound sockets dir/<long name>-<from + i>.sock until it is
 * killed (teardown), so that no one process needs more than its fd limit. */
static pid_t hold_sockets(const char *dir, size_t from, size_t n)
{
        int ready[2];
        cr_assert_eq(pipe(ready), 0);
        pid_t p = fork();
        cr_assert_geq(p, 0);
        if (p == 0) {
                close(ready[0]);
                /* Room for n open sockets whatever the machine's default limit
                 * (1024 in the VM); root may raise its own hard limit. */
                struct rlimit rl = {.rlim_cur = n + 64, .rlim_max = n + 64};
                struct rlimit cur;
                if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max > rl.rlim_max)
                        rl.rlim_max = cur.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        _exit(3);
                for (size_t i = from; i < from + n; i++) {
                        struct sockaddr_un a = {.sun_family = AF_UNIX};
                        char path[256];
                        int k = snprintf(path, sizeof path, "%s/%s-%06zu.sock", dir, SOCKET_STEM,
                                         i);
                        if (k < 0 || (size_t)k >= sizeof a.sun_path)
                                _exit(2);
                        memcpy(a.sun_path, path, (size_t)k);
                        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0)
                                _exit(1);
                }
                if (write(ready[1], "r", 1) != 1)
                        _exit(1);
                pause();
                _exit(0);
        }
        close(ready[1]);
        char c;
        if (read(ready[0], &c, 1) != 1) {
                int ws = 0;
                waitpid(p, &ws, 0);
                cr_assert_fail("holder %zu..%zu failed: status 0x%x (1 socket/bind, 2 name, "
                               "3 fd limit)",
                               from, from + n, ws);
        }
        close(ready[0]);
        return p;
}

/* The probe's "seq reachable R unreachable U (first: E)" and "mounts M below
 * B" lines, for the sockets PREFIX-<from..from+n>.sock. */
struct seq_result {
        size_t reach, unreach, mounts, below;
};

static struct seq_result probe_seq(const char *prefix, size_t from, size_t n)
{
        char f[32], c[32];
        TEST_SNPRINTF(f, "%zu", from);
        TEST_SNPRINTF(c, "%zu", n);
        const char *args[] = {"unix-seq", prefix, f, c, NULL};
        int st = run_probe(NULL, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        struct seq_result r = {0};
        const char *a = strstr(P.out, "seq reachable "), *b = strstr(P.out, "mounts ");
        cr_assert(a && b, "no result from the probe:\n%s", P.out);
        cr_assert_eq(sscanf(a, "seq reachable %zu unreachable %zu", &r.reach, &r.unreach), 2);
        cr_assert_eq(sscanf(b, "mounts %zu below %zu", &r.mounts, &r.below), 2);
        return r;
}

/* Any host user may bind as many unix sockets as it likes, in a directory
 * every sandbox sees (here /var/tmp): no number of them makes a run fail or
 * adds a mount. 200,000 bound sockets with long paths (past fs.mount-max,
 * which one cover mount per socket once hit, and past the 16384 paths and
 * 1 MiB pid 1 once had room for), held open across several processes for the
 * run: each one is unreachable with a real connect() from inside, no mount
 * sits on their directory, and the job's view has as many mounts as with ten
 * of them. In the VM (1 GiB, an emulated CPU) 20,000: the same code path,
 * through mountinfo instead of listmount there. */
Test(leaks, any_number_of_host_sockets_still_runs_and_covers, .timeout = 600)
{
        AIDP_REQUIRE_ROOT();
        /* 10,000 a holder: below the hard fd limit a root without
         * CAP_SYS_RESOURCE (a container) cannot raise. */
        size_t total = getenv("AIDP_VM") ? 20000 : 200000, per = 10000;
        char many[64], prefix[160], var_sock[128];
        TEST_SNPRINTF(many, "%s/many", vardir);
        cr_assert_eq(mkdir(many, 0755), 0);
        TEST_SNPRINTF(prefix, "%s/%s", many, SOCKET_STEM);
        TEST_SNPRINTF(var_sock, "%s/var.sock", vardir);
        int fd = listen_unix(var_sock);
        serve(&fd, 1);
        close(fd);

        holders[0] = hold_sockets(many, 0, 10);
        struct seq_result few = probe_seq(prefix, 0, 10);
        cr_expect_eq(few.reach, 0, "with 10 sockets:\n%s", P.out);
        cr_expect_eq(few.unreach, 10, "with 10 sockets:\n%s", P.out);
        cr_expect_eq(few.below, 0, "a mount per socket with 10:\n%s", P.out);

        for (size_t from = 10, h = 1; from < total; from += per, h++) {
                cr_assert_lt(h, ARRAY_SIZE(holders));
                holders[h] = hold_sockets(many, from, from + per <= total ? per : total - from);
        }
        struct seq_result lots = probe_seq(prefix, 0, total);
        cr_expect_eq(lots.reach, 0, "reachable host sockets:\n%s", P.out);
        cr_expect_eq(lots.unreach, total, "\n%s", P.out);
        cr_expect_eq(lots.below, 0, "mounts on the sockets' directory:\n%s", P.out);
        /* Other tests may mount on the host meanwhile (the view copies the
         * host's mounts): a margin, far below one mount per socket. */
        cr_expect_leq(lots.mounts, few.mounts + 20, "%zu mounts with %zu sockets, %zu with 10",
                      lots.mounts, total, few.mounts);

        const char *args[] = {"unix", var_sock, NULL};
        int st = run_probe(NULL, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(has_line("unreachable", var_sock), "under /var:\n%s", P.out);
}

/* A directory dir/name of the given mode holding a listening socket s.sock:
 * the socket's path. */
static const char *sock_in(const char *dir, const char *name, mode_t mode, char out[128], int *fd)
{
        char d[100];
        TEST_SNPRINTF(d, "%s/%s", dir, name);
        cr_assert_eq(mkdir(d, 0755), 0);
        cr_assert_lt(snprintf(out, 128, "%s/s.sock", d), 128);
        *fd = listen_unix(out);
        cr_assert_eq(chmod(d, mode), 0);
        return out;
}

/* An access ACL on dir denying uid 65534 (the job's user) while "other" may
 * search it: USER_OBJ rwx, USER 65534 ---, GROUP_OBJ r-x, MASK r-x, OTHER
 * r-x, in the kernel's xattr form. false where the file system has none. */
static bool deny_nobody(const char *dir)
{
        struct {
                uint16_t tag, perm;
                uint32_t id;
        } __attribute__((packed))
        e[] = {{0x01, 7, ~0u}, {0x02, 0, 65534}, {0x04, 5, ~0u}, {0x10, 5, ~0u}, {0x20, 5, ~0u}};
        unsigned char buf[4 + sizeof e];
        uint32_t version = 2;
        memcpy(buf, &version, 4);
        memcpy(buf + 4, e, sizeof e);
        if (setxattr(dir, "system.posix_acl_access", buf, sizeof buf, 0) == 0)
                return true;
        cr_assert_eq(errno, EOPNOTSUPP, "setxattr %s: %s", dir, strerror(errno));
        return false;
}

/* A hidden socket's directories look to the job as they do on the host: the
 * overlay shows the top layer's owner, mode and ACL for a directory it
 * merges (never the host's), so the layer's copies must be exact. A socket
 * below a mode-0700 root directory or one whose ACL denies the job's user
 * stays out of reach by permission (EACCES), one in an open directory is
 * gone from it (a whiteout: ENOENT). */
Test(leaks, hidden_sockets_keep_their_directories_owner_mode_and_acl)
{
        AIDP_REQUIRE_ROOT();
        char priv[128], acl[128], open_[128], acl_dir[128];
        int fds[3];
        sock_in(vardir, "private", 0700, priv, &fds[0]);
        sock_in(vardir, "acl", 0755, acl, &fds[1]);
        sock_in(vardir, "open", 0755, open_, &fds[2]);
        TEST_SNPRINTF(acl_dir, "%s/acl", vardir);
        bool has_acl = deny_nobody(acl_dir);
        serve(fds, 3);
        for (size_t i = 0; i < 3; i++)
                close(fds[i]);
        const char *args[] = {"unix", priv, acl, open_, NULL};
        int st = run_probe(NULL, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        char want[200];
        TEST_SNPRINTF(want, "unreachable %s: Permission denied", priv);
        cr_expect(strstr(P.out, want), "below a mode-0700 directory:\n%s", P.out);
        TEST_SNPRINTF(want, "unreachable %s: Permission denied", acl);
        cr_expect(!has_acl || strstr(P.out, want), "below an ACL that denies the job:\n%s", P.out);
        if (!has_acl)
                cr_log_warn("no POSIX ACLs on %s's file system: that part is not checked", vardir);
        TEST_SNPRINTF(want, "unreachable %s: No such file or directory", open_);
        cr_expect(strstr(P.out, want), "in an open directory:\n%s", P.out);
}

/* A host user's socket whose directory's path is longer than a path may be
 * (reached through symlinks: a -> 15 levels down, then b -> 10 more): its
 * directory cannot be named in the overlay's layer, so it is covered by a
 * bind, and the run goes on; it used to stop every run at the mounts. */
Test(leaks, a_socket_below_a_path_too_long_to_name_still_runs_and_is_covered)
{
        AIDP_REQUIRE_ROOT();
        char top[128], link_a[128], target[PATH_MAX], rel[PATH_MAX], sock[160];
        TEST_SNPRINTF(top, "%s/deep", vardir);
        cr_assert_eq(mkdir(top, 0755), 0);
        int fd = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        size_t tl = (size_t)snprintf(target, sizeof target, "%s", top), rl = 0;
        rel[0] = '\0';
        for (int i = 0; i < DEEP_LEVELS; i++) {
                cr_assert_eq(mkdirat(fd, deep_name, 0755), 0, "level %d: %s", i, strerror(errno));
                int next = openat(fd, deep_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
                cr_assert_geq(next, 0);
                if (i < 15) {
                        tl += (size_t)snprintf(target + tl, sizeof target - tl, "/%s", deep_name);
                } else {
                        rl += (size_t)snprintf(rel + rl, sizeof rel - rl, "%s%s", rl ? "/" : "",
                                               deep_name);
                }
                close(fd);
                fd = next;
        }
        close(fd);
        cr_assert_lt(tl, sizeof target - 1);
        cr_assert_eq(chmod(top, 0755), 0);
        TEST_SNPRINTF(link_a, "%s/a", vardir);
        cr_assert_eq(symlink(target, link_a), 0, "%s", strerror(errno));
        char link_b[PATH_MAX + 8];
        TEST_SNPRINTF(link_b, "%s/b", target);
        cr_assert_eq(symlink(rel, link_b), 0, "%s", strerror(errno));
        TEST_SNPRINTF(sock, "%s/a/b/s", vardir);
        int s = listen_unix(sock);
        serve(&s, 1);
        close(s);
        /* Under /var/tmp, which the job sees through the host's read-only
         * root (whatever the working directory). */
        const char *args[] = {"unix", sock, NULL};
        int st = run_probe(NULL, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(has_line("unreachable", sock), "below a path too long to name:\n%s", P.out);
}

/* A writable bind cannot take an overlay (it would become read-only): a
 * host socket there is covered by a bind of a mode-0 file, a mount each. A
 * host user may fill a shared writable directory with sockets, so past
 * AIDP_HOSTSOCK_MAX_BINDS (1000) the run stops before the job, naming the
 * directory, instead of filling the mount table. */
Test(leaks, sockets_in_a_writable_bind_are_covered_up_to_a_limit, .timeout = 180)
{
        AIDP_REQUIRE_ROOT();
        char bind_opt[160];
        TEST_SNPRINTF(bind_opt, "%s:/mnt/w", binddir);
        const char *opts[] = {"--bind", bind_opt, NULL};
        holders[0] = hold_sockets(binddir, 0, 5);
        const char *args[] = {"unix-seq", "/mnt/w/" SOCKET_STEM, "0", "5", NULL};
        int st = run_probe(opts, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "seq reachable 0 unreachable 5 (first: Permission denied)"),
                  "in a writable bind:\n%s", P.out);

        holders[1] = hold_sockets(binddir, 5, 1000);
        st = run_probe(opts, args);
        cr_expect_neq(st, 0, "1005 sockets in a writable bind:\n%s", P.out);
        cr_expect(strstr(P.err, binddir) && strstr(P.err, "more than 1000 host unix sockets"),
                  "the error names the directory and the limit:\n%s", P.err);
        cr_expect(!strstr(P.out, "seq reachable"), "the job ran:\n%s", P.out);
}

/* Supervisor's stdout is root's log file with earlier content: the job gets a
 * pipe (the relay), cannot truncate or seek the log, and its output still
 * arrives after the earlier content. A socket as stdin (it could be written
 * through) becomes /dev/null. */
Test(leaks, job_stdio_goes_through_the_relay_never_the_log_file)
{
        AIDP_REQUIRE_ROOT();
        char logf[128], errf[128];
        TEST_SNPRINTF(logf, "%s/supervisor.log", vardir);
        TEST_SNPRINTF(errf, "%s/supervisor.err", vardir);
        static const char earlier[] = "earlier content of root's log\n";
        int lfd = open(logf, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(lfd, 0);
        cr_assert_eq(write(lfd, earlier, sizeof earlier - 1), (ssize_t)sizeof earlier - 1);
        int efd = open(errf, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(efd, 0);
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (dup2(sv[0], 0) < 0 || dup2(lfd, 1) < 0 || dup2(efd, 2) < 0)
                        _exit(126);
                execl(AIDP_SUPERVISOR, AIDP_SUPERVISOR, "run", "--user", "65534", "-q", "--lineage",
                      logp, "--", CONTAIN_PROBE, "stdio", (char *)NULL);
                _exit(127);
        }
        close(sv[0]);
        int ws;
        cr_assert_eq(waitpid(pid, &ws, 0), pid);
        close(sv[1]);
        close(lfd);
        close(efd);
        size_t len = 0;
        char *log = aidp_test_slurp(logf, &len);
        size_t elen = 0;
        char *err = aidp_test_slurp(errf, &elen);
        cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "status %d\n%s\n%s", ws, log, err);
        cr_assert_not_null(log);
        cr_expect(!strncmp(log, earlier, sizeof earlier - 1), "earlier content lost:\n%s", log);
        cr_expect(strstr(log, "fd 1 pipe"), "stdout is not the relay's pipe:\n%s", log);
        cr_expect(strstr(log, "fd 2 pipe"), "stderr is not the relay's pipe:\n%s", log);
        cr_expect(strstr(log, "fd 0 chr"), "stdin (a socket) not replaced by /dev/null:\n%s", log);
        cr_expect(strstr(log, "seek-stdout Illegal seek"), "%s", log);
        cr_expect(strstr(log, "truncate-stdout Invalid argument"), "%s", log);
        cr_expect(strstr(log, "job-output-line"), "the job's output did not arrive:\n%s", log);
        free(log);
        free(err);
}

/* Without --profile: the library's baseline (AF_VSOCK refused with EPERM),
 * and lineage names it with its digest. */
Test(leaks, no_profile_means_baseline_with_digest_in_lineage)
{
        AIDP_REQUIRE_ROOT();
        const char *args[] = {"vsock", NULL};
        int st = run_probe(NULL, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "vsock errno 1 "), "AF_VSOCK not refused by baseline:\n%s", P.out);
        json_object *ev[4];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 2, "expected START and COMPLETE, got %zu", n);
        cr_assert_str_eq(aidp_test_json_str(ev[0], "run.facets.aidp_profile.name"), "baseline");
        const char *dg = aidp_test_json_str_or_null(ev[0], "run.facets.aidp_profile.digest");
        cr_assert(dg && !strncmp(dg, "sha256:", 7) && strlen(dg) == 7 + 64,
                  "START has no profile digest: %s", dg ? dg : "(none)");
}

/* Run ids that output sealing would refuse are a usage error before anything
 * happens: no journal, no lineage record, no job. */
Test(leaks, run_ids_sealing_would_refuse_are_usage_errors_up_front)
{
        AIDP_REQUIRE_ROOT();
        char rundir[128];
        TEST_SNPRINTF(rundir, "%s/run", vardir);
        cr_assert_eq(mkdir(rundir, 0700), 0);
        const char *bad[] = {"_r1", "-r1", ".r1", "r 1", ""};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                char *argv[] = {AIDP_SUPERVISOR,
                                "run",
                                "--run-id",
                                (char *)bad[i],
                                "--run-dir",
                                rundir,
                                "--lineage",
                                logp,
                                "--user",
                                "65534",
                                "--",
                                "/bin/true",
                                NULL};
                int st = aidp_test_run(&P, argv);
                cr_expect_eq(st, AIDP_EXIT_USAGE, "--run-id '%s': exit %d\n%s", bad[i], st, P.err);
                cr_expect(strstr(P.err, "run-id") || strstr(P.err, "run id"), "%s", P.err);
        }
        cr_expect_eq(access(logp, F_OK), -1, "a lineage record was written");
        DIR *d = opendir(rundir);
        cr_assert_not_null(d);
        struct dirent *e;
        int entries = 0;
        while ((e = readdir(d)))
                entries += e->d_name[0] != '.';
        closedir(d);
        cr_expect_eq(entries, 0, "the run directory is not empty");
        /* A valid id runs. */
        char *ok[] = {AIDP_SUPERVISOR, "run", "--run-id", "r1-ok", "--run-dir", rundir,
                      "--lineage",     logp,  "--user",   "65534", "-q",        "--",
                      "/bin/true",     NULL};
        cr_expect_eq(aidp_test_run(&P, ok), 0, "%s", P.err);
}

/* Binds are in the START record (issue 13): source, target, writable, and the
 * working directory when it is bound. */
Test(leaks, binds_and_cwd_are_in_the_start_record)
{
        AIDP_REQUIRE_ROOT();
        char rw[160], ro[160];
        TEST_SNPRINTF(rw, "%s:/mnt/w", binddir);
        TEST_SNPRINTF(ro, "%s:/mnt/r", vardir);
        const char *opts[] = {"--bind", rw, "--ro-bind", ro, "--cwd", cwddir, NULL};
        const char *args[] = {"vsock", NULL};
        int st = run_probe(opts, args);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        json_object *ev[4];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 2, "expected START and COMPLETE, got %zu", n);
        json_object *f = aidp_test_json_at(ev[0], "run.facets.aidp_binds");
        cr_assert_not_null(f, "START has no aidp_binds facet");
        cr_assert_eq(json_object_get_int(aidp_test_json_at(f, "writable")), 1);
        json_object *b = aidp_test_json_at(f, "binds");
        cr_assert_eq(json_object_array_length(b), 2);
        bool rw_seen = false, ro_seen = false;
        for (size_t i = 0; i < 2; i++) {
                json_object *e = json_object_array_get_idx(b, i);
                const char *src = aidp_test_json_str(e, "source");
                bool w = json_object_get_boolean(aidp_test_json_at(e, "writable"));
                rw_seen |= !strcmp(src, binddir) && w &&
                           !strcmp(aidp_test_json_str(e, "target"), "/mnt/w");
                ro_seen |= !strcmp(src, vardir) && !w &&
                           !strcmp(aidp_test_json_str(e, "target"), "/mnt/r");
        }
        cr_expect(rw_seen && ro_seen, "%s", json_object_to_json_string(f));
        cr_expect_str_eq(aidp_test_json_str(f, "cwd"), cwddir);
}

/* The shipped residency example forbids writable binds for confidential data
 * and above: a run of restricted data with a --bind is refused (121) naming
 * the rule and the bind, before anything starts; without it, it runs. */
Test(leaks, shipped_residency_example_refuses_writable_binds_for_classified_data)
{
        AIDP_REQUIRE_ROOT();
        char keydir[160], policydir[160], src[160], f[200], data[160], rw[200], rundir[160];
        TEST_SNPRINTF(keydir, "%s/keys", vardir);
        TEST_SNPRINTF(policydir, "%s/policy", vardir);
        TEST_SNPRINTF(rundir, "%s/run", vardir);
        TEST_SNPRINTF(src, "%s/src", vardir);
        TEST_SNPRINTF(data, "%s/phi.sealed", vardir);
        mkdir_p(policydir, 0755);
        mkdir_p(src, 0755);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "bind-key", &err), 0, "%s", err.msg);
        TEST_SNPRINTF(f, "%s/records.txt", src);
        write_all(f, (const uint8_t *)"phi-records\n", 12);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params sp = {0};
        meta_default(&sp.meta, "phi");
        strcpy(sp.meta.key_id, "bind-key");
        sp.meta.classification = AIDP_CLASS_RESTRICTED;
        cr_assert_eq(aidp_sealed_meta_add_tag(&sp.meta, AIDP_F_RESIDENCY, "us", &err), 0);
        cr_assert_eq(aidp_sealed_meta_add_tag(&sp.meta, AIDP_F_REGULATION, "phi", &err), 0);
        cr_assert_eq(seal_path(src, data, &sp, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);

        size_t len = 0;
        uint8_t *ex = read_all(AIDP_SOURCE_DIR "/examples/policy/residency.yaml", &len);
        TEST_SNPRINTF(f, "%s/residency.yaml", policydir);
        write_all(f, ex, len);
        free(ex);
        static const char access_y[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n"
                                       "  t: {operations: [run], profiles: [\"*\"], datasets: "
                                       "[\"*\"], max_classification: regulated}\n"
                                       "users:\n  nobody: {roles: [t]}\n";
        TEST_SNPRINTF(f, "%s/access.yaml", policydir);
        write_all(f, (const uint8_t *)access_y, strlen(access_y));
        static const char hosty[] = "apiVersion: aidp/v1\nkind: HostIdentity\nnode: n\n"
                                    "region: us-east-1\nzones: [hipaa]\n";
        TEST_SNPRINTF(f, "%s/host.yaml", policydir);
        write_all(f, (const uint8_t *)hosty, strlen(hosty));
        setenv("AIDP_POLICY_DIR", policydir, 1);

        TEST_SNPRINTF(rw, "%s:/mnt/w", binddir);
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "nobody",
                        "--no-cwd",
                        "--run-dir",
                        rundir,
                        "--key-dir",
                        keydir,
                        "--lineage",
                        logp,
                        "--data",
                        data,
                        "--bind",
                        rw,
                        "--",
                        "/bin/sh",
                        "-c",
                        "cat /data/phi/records.txt; echo JOB-RAN > /mnt/w/ran",
                        NULL};
        int st = aidp_test_run(&P, argv);
        cr_expect_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.err, "classifications.confidential") && strstr(P.err, binddir) &&
                          strstr(P.err, "writableBinds"),
                  "%s", P.err);
        TEST_SNPRINTF(f, "%s/ran", binddir);
        cr_expect_neq(access(f, F_OK), 0, "the job ran");
        /* Without the writable bind the same run is allowed. */
        char *argv2[] = {AIDP_SUPERVISOR,
                         "run",
                         "--user",
                         "nobody",
                         "--no-cwd",
                         "--run-dir",
                         rundir,
                         "--key-dir",
                         keydir,
                         "--lineage",
                         logp,
                         "--data",
                         data,
                         "--",
                         "/bin/cat",
                         "/data/phi/records.txt",
                         NULL};
        st = aidp_test_run(&P, argv2);
        unsetenv("AIDP_POLICY_DIR");
        cr_expect_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "phi-records"), "%s", P.out);
}
