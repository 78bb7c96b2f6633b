/* `aidp profile check` finds at check time what a run would refuse only when it
 * starts: a seccomp filter too large for the kernel, and with --host what depends
 * on this host (bind sources). The built binary on profiles written to a scratch
 * directory. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "tests/tpath.h"

extern char **environ;

#define AIDP AIDP_BINARY_DIR "/aidp"

static char dir[64], outp[128], errp[128];
static char *out, *err;

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-check.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(outp, sizeof outp, "%s/stdout", dir);
        snprintf(errp, sizeof errp, "%s/stderr", dir);
        setenv("AIDP_PROFILE_PATH", AIDP_SOURCE_DIR "/profiles", 1);
}

static void teardown(void)
{
        free(out);
        free(err);
        out = err = NULL;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(profile_check, .init = setup, .fini = teardown, .timeout = 60);

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "%s", path);
        char *buf = calloc(1, 1 << 20);
        size_t n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

/* `aidp profile check ARGS...`; stdout and stderr in out and err. */
static int check(const char *const *args)
{
        char *argv[16] = {"aidp", "profile", "check"};
        size_t n = 3;
        for (size_t i = 0; args[i]; i++)
                argv[n++] = (char *)args[i];
        argv[n] = NULL;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        pid_t pid;
        cr_assert_eq(posix_spawn(&pid, AIDP, &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st));
        free(out);
        free(err);
        out = slurp(outp);
        err = slurp(errp);
        return WEXITSTATUS(st);
}

/* path with the given text. */
static void put(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
}

#define HEAD "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: p}\nextends: strict-cpu-train\n"

Test(profile_check, a_filter_too_large_to_load_fails_the_check)
{
        char path[128];
        snprintf(path, sizeof path, "%s/big.yaml", dir);
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs(HEAD "seccomp:\n  syscalls:\n", f);
        /* 700 two-condition rules: about 4500 instructions, over BPF_MAXINSNS */
        for (int i = 0; i < 700; i++)
                fprintf(f,
                        "    - {action: allow, names: [ioctl], args: [{index: 1, op: eq, value: "
                        "%d}, {index: 2, op: eq, value: %lld}]}\n",
                        i * 7 + 1, (long long)i * 13 + (1LL << 33));
        fclose(f);
        cr_assert_eq(check((const char *[]){path, NULL}), AIDP_EXIT_CONFIG, "%s%s", out, err);
        cr_assert(strstr(err, "big.yaml: error: the seccomp filter compiles to ") &&
                          strstr(err, "the kernel loads at most 4096"),
                  "%s", err);
        cr_assert_null(strstr(out, ": ok:"), "%s", out);
}

Test(profile_check, host_checks_bind_sources_exist_and_are_directories_or_files)
{
        char sock[128], path[128], text[1024];
        snprintf(sock, sizeof sock, "%s/s.sock", dir);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        TEST_SNPRINTF(sa.sun_path, "%s", sock);
        cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
        close(s);
        snprintf(path, sizeof path, "%s/binds.yaml", dir);
        snprintf(text, sizeof text,
                 HEAD "filesystem:\n  binds:\n"
                      "    - {source: %s, target: /ok-dir}\n"
                      "    - {source: %s/missing, target: /missing}\n"
                      "    - {source: %s, target: /sock}\n"
                      "    - {source: %s, target: /ok-file}\n",
                 dir, dir, sock, path);
        put(path, text);
        /* Without --host the profile is fine: it may be meant for another host. */
        cr_assert_eq(check((const char *[]){path, NULL}), 0, "%s%s", out, err);
        cr_assert(strstr(out, "binds.yaml: ok: profile p"), "%s", out);
        /* With --host each bad source is an error, and all of them are reported. */
        cr_assert_eq(check((const char *[]){"--host", path, NULL}), AIDP_EXIT_CONFIG, "%s%s", out,
                     err);
        cr_assert(strstr(err, "filesystem.binds[1]: source ") &&
                          strstr(err, "/missing: No such file or directory"),
                  "%s", err);
        cr_assert(strstr(err, "filesystem.binds[2]: source ") &&
                          strstr(err, "s.sock is a socket, expected a directory or a regular file"),
                  "%s", err);
        cr_assert_null(strstr(err, "binds[0]"), "%s", err);
        cr_assert_null(strstr(err, "binds[3]"), "%s", err);
        cr_assert_null(strstr(out, ": ok:"), "%s", out);
        /* The shipped profiles pass on this host. */
        cr_assert_eq(
                check((const char *[]){"--host", AIDP_SOURCE_DIR "/profiles/baseline.yaml",
                                       AIDP_SOURCE_DIR "/profiles/strict-cpu-train.yaml", NULL}),
                0, "%s%s", out, err);
        cr_assert(strstr(out, "(checked on this host)"), "%s", out);
        cr_assert_eq(check((const char *[]){"--host", "--offline", path, NULL}), AIDP_EXIT_USAGE);
}

static size_t count(const char *text, const char *needle)
{
        size_t n = 0;
        for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* Every error of a file, each with file:line:column, and "did you mean" for
 * unknown keys, syscalls, capabilities and actions. */
Test(profile_check, reports_every_error_with_its_position_and_a_suggestion)
{
        char path[128];
        snprintf(path, sizeof path, "%s/bad.yaml", dir);
        put(path, HEAD "limts:\n  memory: 1G\n"
                       "capabilities: [CAP_NET_BIND_SERVCE, CAP_CHOWN]\n"
                       "filesystem:\n  binds:\n"
                       "    - {source: /etc, target: /x, writeable: true}\n"
                       "    - {source: relative, target: /y}\n"
                       "seccomp:\n  syscalls:\n"
                       "    - action: allow\n      names: [mmap3, read, opnat]\n"
                       "    - action: allwo\n      names: [write]\n");
        cr_assert_eq(check((const char *[]){path, NULL}), AIDP_EXIT_CONFIG, "%s%s", out, err);
        static const char *const want[] = {
                "bad.yaml:5:1: limts: unknown key 'limts', expected one of: ",
                "seccomp, network, data (did you mean 'limits'?)\n",
                "bad.yaml:7:16: capabilities[0]: found 'CAP_NET_BIND_SERVCE', expected a "
                "capability name such as CAP_NET_BIND_SERVICE (did you mean "
                "'CAP_NET_BIND_SERVICE'?)\n",
                "bad.yaml:10:34: filesystem.binds[0].writeable: unknown key 'writeable', expected "
                "one of: source, target, writable (did you mean 'writable'?)\n",
                "bad.yaml:11:16: filesystem.binds[1].source: found 'relative', expected an "
                "absolute path",
                "bad.yaml:15:15: seccomp.syscalls[0].names[0]: unknown syscall 'mmap3', expected a "
                "syscall name known to libseccomp (did you mean 'mmap'?)\n",
                "bad.yaml:15:28: seccomp.syscalls[0].names[2]: unknown syscall 'opnat', expected "
                "a syscall name known to libseccomp (did you mean 'openat'?)\n",
                "bad.yaml:16:15: seccomp.syscalls[1].action: found 'allwo', expected allow, log, "
                "errno(EPERM|<errno name>|<1..4095>), kill-process, kill-thread or trap (did you "
                "mean 'allow'?)\n",
        };
        for (size_t i = 0; i < sizeof want / sizeof *want; i++)
                cr_expect(strstr(err, want[i]), "missing: %s\nin:\n%s", want[i], err);
        cr_assert_eq(count(err, ": error: "), 7, "%s", err);
        /* nothing close: no suggestion */
        cr_assert_null(strstr(err, "(did you mean 'read'"), "%s", err);
        cr_assert_null(strstr(out, ": ok:"), "%s", out);
}

Test(profile_check, stops_after_twenty_errors_and_says_so)
{
        char path[128], text[4096];
        snprintf(path, sizeof path, "%s/many.yaml", dir);
        int n = snprintf(text, sizeof text, HEAD);
        for (int i = 0; i < 30; i++)
                n += snprintf(text + n, sizeof text - (size_t)n, "x%d: 1\n", i);
        put(path, text);
        cr_assert_eq(check((const char *[]){path, NULL}), AIDP_EXIT_CONFIG, "%s%s", out, err);
        cr_assert_eq(count(err, ": unknown key 'x"), 20, "%s", err);
        cr_assert(strstr(err, "many.yaml: error: stopped after 20 errors\n"), "%s", err);
}

/* A run loads a profile as before: it stops at the first error. */
Test(profile_check, explain_still_reports_the_first_error_only)
{
        char path[128];
        snprintf(path, sizeof path, "%s/two.yaml", dir);
        put(path, HEAD "limts: {}\nfilesystm: {}\n");
        char *argv[] = {"aidp", "profile", "explain", path, NULL};
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        pid_t pid;
        cr_assert_eq(posix_spawn(&pid, AIDP, &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert_eq(WEXITSTATUS(st), AIDP_EXIT_CONFIG);
        free(err);
        err = slurp(errp);
        cr_assert(strstr(err, "unknown key 'limts'") && !strstr(err, "filesystm"), "%s", err);
}
