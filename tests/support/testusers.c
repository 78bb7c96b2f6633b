/* Test users and sudoers drop-ins (testusers.h). */
#define _GNU_SOURCE
#include "testusers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PREFIX      "aidpt"
#define SUDOERS_DIR "/etc/sudoers.d"

static char made[8][32];
static size_t n_made;

/* Why the last user or group change failed: the tool, its status and the
 * first line it printed (aidp_test_users_why). */
static char why[256];

static int run_quiet(char *const argv[])
{
        int out[2];
        if (pipe2(out, O_CLOEXEC) < 0)
                return -1;
        pid_t pid = fork();
        if (pid < 0) {
                close(out[0]);
                close(out[1]);
                return -1;
        }
        if (pid == 0) {
                int fd = open("/dev/null", O_RDWR);
                dup2(fd, 0);
                dup2(fd, 1);
                dup2(out[1], 2);
                execv(argv[0], argv);
                _exit(127);
        }
        close(out[1]);
        char msg[200] = "";
        size_t got = 0;
        ssize_t r;
        while ((r = read(out[0], msg + got, sizeof msg - 1 - got)) > 0 || (r < 0 && errno == EINTR))
                if (r > 0 && (got += (size_t)r) == sizeof msg - 1)
                        break;
        msg[got] = '\0';
        close(out[0]);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        if (code != 0) {
                msg[strcspn(msg, "\n")] = '\0';
                snprintf(why, sizeof why, "%s exit %d: %s", argv[0], code, msg);
        }
        return code;
}

const char *aidp_test_users_why(void)
{
        return why[0] ? why : "no user or group tool failed";
}

/* useradd/usermod, again while another one holds /etc/passwd's or
 * /etc/group's lock (their status 1 or 10): other tests, or other
 * engineers' suites, make users at the same time. */
static int run_shadow_tool(char *const argv[])
{
        int st = 0;
        for (int i = 0; i < 100; i++) {
                st = run_quiet(argv);
                if (st != 1 && st != 10)
                        break;
                usleep(50000);
        }
        return st == 0 ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
        (void)sb;
        (void)f;
        return flag == FTW_DP ? rmdir(p) : unlink(p);
}

/* The user, its group and its home: the directory its passwd entry names,
 * only when that is one this file made (/var/tmp/<name>-XXXXXX, mkdtemp's:
 * a name nobody else could have taken first). */
static void remove_user(const char *name)
{
        struct passwd *pw = getpwnam(name);
        char home[PATH_MAX], mine[PATH_MAX];
        snprintf(mine, sizeof mine, "/var/tmp/%s-", name);
        if (pw && snprintf(home, sizeof home, "%s", pw->pw_dir) < (int)sizeof home &&
            !strncmp(home, mine, strlen(mine)) && !strchr(home + strlen(mine), '/'))
                nftw(home, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        char *del[] = {"/usr/sbin/userdel", "-f", (char *)name, NULL};
        run_shadow_tool(del);
}

/* A user or drop-in whose creating test process is gone: remove it. */
static bool creator_gone(const char *digits)
{
        char *end;
        long pid = strtol(digits, &end, 10);
        return end != digits && pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void cleanup_stale(void)
{
        setpwent();
        struct passwd *pw;
        char stale[64][32];
        size_t n = 0;
        while ((pw = getpwent()) && n < 64)
                if (!strncmp(pw->pw_name, PREFIX, strlen(PREFIX)) &&
                    creator_gone(pw->pw_name + strlen(PREFIX)))
                        snprintf(stale[n++], sizeof stale[0], "%s", pw->pw_name);
        endpwent();
        for (size_t i = 0; i < n; i++)
                remove_user(stale[i]);
        DIR *d = opendir(SUDOERS_DIR);
        struct dirent *e;
        while (d && (e = readdir(d)))
                if (!strncmp(e->d_name, "aidp-test-", 10) && creator_gone(e->d_name + 10))
                        /* the drop-in and its draft */
                        unlinkat(dirfd(d), e->d_name, 0);
        if (d)
                closedir(d);
}

int aidp_test_user_create(const char *tag, struct aidp_test_user *u)
{
        static bool swept;
        if (!swept) {
                cleanup_stale();
                atexit(aidp_test_users_cleanup);
                swept = true;
        }
        memset(u, 0, sizeof *u);
        snprintf(u->name, sizeof u->name, PREFIX "%d%s", (int)getpid(), tag);
        /* The name carries our pid: a user or group by that name was left by
         * an earlier process that had the same pid and was killed before its
         * clean-up (cleanup_stale cannot tell it from ours). */
        if (getpwnam(u->name))
                remove_user(u->name);
        if (getgrnam(u->name)) {
                char *gdel[] = {"/usr/sbin/groupdel", "-f", u->name, NULL};
                run_shadow_tool(gdel);
        }
        /* The home's name is mkdtemp's: never a directory someone made
         * ahead in world-writable /var/tmp. */
        snprintf(u->home, sizeof u->home, "/var/tmp/%s-XXXXXX", u->name);
        if (!mkdtemp(u->home)) {
                snprintf(why, sizeof why, "home %s: %s", u->home, strerror(errno));
                return -1;
        }
        char *add[] = {"/usr/sbin/useradd", "-M",    "-U", "-d", u->home, "-s",
                       "/usr/sbin/nologin", u->name, NULL};
        if (n_made >= sizeof made / sizeof made[0]) {
                snprintf(why, sizeof why, "more than %zu test users in one process", n_made);
                rmdir(u->home);
                return -1;
        }
        if (run_shadow_tool(add) < 0) {
                rmdir(u->home);
                return -1;
        }
        snprintf(made[n_made++], sizeof made[0], "%s", u->name);
        struct passwd *pw = getpwnam(u->name);
        if (!pw) {
                snprintf(why, sizeof why, "useradd made %s but getpwnam does not find it", u->name);
                return -1;
        }
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
        if (chown(u->home, u->uid, u->gid) < 0) {
                snprintf(why, sizeof why, "home %s: %s", u->home, strerror(errno));
                return -1;
        }
        return 0;
}

int aidp_test_user_join(const struct aidp_test_user *u, gid_t gid)
{
        struct group *g = getgrgid(gid);
        if (!g) {
                snprintf(why, sizeof why, "no group with gid %u", (unsigned)gid);
                return -1;
        }
        char group[64];
        snprintf(group, sizeof group, "%s", g->gr_name);
        char name[sizeof u->name];
        snprintf(name, sizeof name, "%s", u->name);
        char *mod[] = {"/usr/sbin/usermod", "-aG", group, name, NULL};
        return run_shadow_tool(mod);
}

static void sudoers_path(char *p, size_t n)
{
        snprintf(p, n, SUDOERS_DIR "/aidp-test-%d", (int)getpid());
}

int aidp_test_sudoers_allow(const struct aidp_test_user *u, const char *binary)
{
        char p[128], tmp[160];
        sudoers_path(p, sizeof p);
        /* sudo skips names with a '.': the draft is never read half-written. */
        snprintf(tmp, sizeof tmp, SUDOERS_DIR "/aidp-test-%d.draft", (int)getpid());
        /* Every rule so far, rewritten whole: the drop-in is replaced. */
        static char rules[4096];
        size_t used = strlen(rules);
        /* README's line: only `run`, the supervisor decides what the user may
         * ask for (docs/security.md). */
        /* "BINARY ARGS" (a space): exactly that command, e.g. "... learn *";
         * closefrom_override lets a test hand such a command an fd (sudo -C). */
        snprintf(rules + used, sizeof rules - used,
                 "Defaults:%s closefrom_override\n%s ALL=(root) NOPASSWD: %s%s\n", u->name, u->name,
                 binary, strstr(binary, "aidp-supervisor") && !strchr(binary, ' ') ? " run *" : "");
        FILE *f = fopen(tmp, "w");
        if (!f)
                return -1;
        fputs(rules, f);
        fclose(f);
        chmod(tmp, 0440);
        char *check[] = {"/usr/sbin/visudo", "-cf", tmp, NULL};
        if (run_quiet(check) != 0)
                return -1;
        return rename(tmp, p);
}

void aidp_test_users_cleanup(void)
{
        for (size_t i = 0; i < n_made; i++)
                remove_user(made[i]);
        n_made = 0;
        char p[128];
        sudoers_path(p, sizeof p);
        unlink(p);
        snprintf(p, sizeof p, SUDOERS_DIR "/aidp-test-%d.draft", (int)getpid());
        unlink(p);
}

int aidp_test_run_as(struct aidp_proc *p, const struct aidp_test_user *u, bool sudo,
                     char *const argv[])
{
        char ruid[32], rgid[32];
        snprintf(ruid, sizeof ruid, "--reuid=%u", (unsigned)u->uid);
        snprintf(rgid, sizeof rgid, "--regid=%u", (unsigned)u->gid);
        char *a[128] = {"/usr/bin/setpriv", ruid, rgid, "--init-groups", "--"};
        size_t n = 5;
        if (sudo) {
                a[n++] = "/usr/bin/sudo";
                a[n++] = "-n";
                a[n++] = "--";
        }
        for (size_t i = 0; argv[i] && n < 127; i++)
                a[n++] = argv[i];
        a[n] = NULL;
        return aidp_test_run(p, a);
}

int aidp_test_as_user(const struct aidp_test_user *u, int (*fn)(const char *a, const char *b),
                      const char *a, const char *b)
{
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0)
                        _exit(2);
                _exit(fn(a, b) == 0 ? 0 : 1);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int aidp_test_do_symlink(const char *target, const char *link)
{
        return symlink(target, link);
}

int aidp_test_do_mkdir(const char *path, const char *unused)
{
        (void)unused;
        return mkdir(path, 0700);
}

int aidp_test_do_mkfifo(const char *path, const char *unused)
{
        (void)unused;
        return mkfifo(path, 0644);
}

static mode_t write_mode;

static int do_write(const char *path, const char *content)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, write_mode);
        size_t l = strlen(content);
        return fd >= 0 && write(fd, content, l) == (ssize_t)l && fchmod(fd, write_mode) == 0 ? 0
                                                                                             : -1;
}

int aidp_test_write_as(const struct aidp_test_user *u, const char *path, const char *content,
                       mode_t mode)
{
        write_mode = mode;
        return aidp_test_as_user(u, do_write, path, content);
}
