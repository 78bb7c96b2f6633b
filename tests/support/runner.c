/* Support for root integration tests: run aidp-supervisor, capture output,
 * look for leftovers on the host. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

int aidp_test_spawn(struct aidp_proc *p, char *const argv[])
{
        /* A test process may run with stdout or stderr closed (it does in the
         * VM); then pipe2 would hand out 1 or 2 and the dup2s below collide. */
        for (int fd = 0; fd < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0)
                        open("/dev/null", O_RDWR);
        int o[2], e[2];
        if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0)
                return -1;
        if (getenv("AIDP_DEBUG_RUNNER"))
                fprintf(stderr, "runner: o=%d,%d e=%d,%d\n", o[0], o[1], e[0], e[1]);
        memset(p, 0, sizeof *p);
        p->pid = fork();
        if (p->pid == 0) {
                /* If the test dies (a Criterion timeout kills it), the
                 * supervisor it started is told to stop, and cleans up. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(o[1], 1);
                dup2(e[1], 2);
                int devnull = open("/dev/null", O_RDONLY);
                dup2(devnull, 0);
                /* dup2 onto itself (a pipe that got fd 1 because the test ran
                 * with stdout closed) keeps close-on-exec: clear it. */
                for (int fd = 0; fd < 3; fd++)
                        fcntl(fd, F_SETFD, 0);
                /* Runs started by tests record their lineage in the build tree, never
                 * in the machine's /var/lib/aidp (a test may point elsewhere). */
                /* The production binary (and aidp-run, which calls it) reads
                 * no configuration from its environment and refuses a run
                 * that sets some: those tests pass --lineage themselves. */
                if (!aidp_test_is_production(argv[0])) {
                        setenv("AIDP_LINEAGE_FILE", AIDP_BINARY_DIR "/test-lineage/lineage.jsonl",
                               0);
                        setenv("AIDP_LINEAGE_KEY", AIDP_BINARY_DIR "/test-lineage/lineage.key", 0);
                }
                execv(argv[0], argv);
                _exit(127);
        }
        close(o[1]);
        close(e[1]);
        p->out_fd = o[0];
        p->err_fd = e[0];
        return p->pid > 0 ? 0 : -1;
}

/* One read from fd into buf (size bytes, NUL kept); once buf is full the
 * bytes are read and dropped, never left for the writer to block or die on. */
static ssize_t fill(int fd, char *buf, size_t size, size_t *len)
{
        if (*len + 1 < size) {
                ssize_t n = read(fd, buf + *len, size - 1 - *len);
                if (n > 0)
                        *len += (size_t)n;
                return n;
        }
        char sink[4096];
        return read(fd, sink, sizeof sink);
}

static bool pump(struct aidp_proc *p, int timeout_ms)
{
        struct pollfd pf[2] = {{.fd = p->out_fd, .events = POLLIN},
                               {.fd = p->err_fd, .events = POLLIN}};
        if (poll(pf, 2, timeout_ms) <= 0)
                return false;
        bool any = false;
        if (pf[0].revents && p->out_fd >= 0) {
                ssize_t n = fill(p->out_fd, p->out, sizeof p->out, &p->out_len);
                if (n > 0) {
                        any = true;
                } else if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
                        any = true;
                } else {
                        close(p->out_fd);
                        p->out_fd = -1;
                }
        }
        if (pf[1].revents && p->err_fd >= 0) {
                ssize_t n = fill(p->err_fd, p->err, sizeof p->err, &p->err_len);
                if (n > 0) {
                        any = true;
                } else if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
                        any = true;
                } else {
                        close(p->err_fd);
                        p->err_fd = -1;
                }
        }
        p->out[p->out_len] = '\0';
        p->err[p->err_len] = '\0';
        return any || p->out_fd >= 0 || p->err_fd >= 0;
}

bool aidp_test_wait_output(struct aidp_proc *p, const char *needle, int timeout_ms)
{
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (!strstr(p->out, needle)) {
                clock_gettime(CLOCK_MONOTONIC, &t);
                long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
                if (el > timeout_ms || (p->out_fd < 0 && p->err_fd < 0))
                        return false;
                pump(p, 100);
        }
        return true;
}

/* The exit status (128+N for signal N), or -1000-errno when it cannot be had. */
static int wait_status(struct aidp_proc *p)
{
        int st = 0;
        pid_t r;
        do
                r = waitpid(p->pid, &st, 0);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                p->status = -1000 - errno;
        else
                p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return p->status;
}

int aidp_test_finish(struct aidp_proc *p)
{
        while (p->out_fd >= 0 || p->err_fd >= 0)
                pump(p, 1000);
        return wait_status(p);
}

int aidp_test_reap(struct aidp_proc *p)
{
        pump(p, 100);
        if (p->out_fd >= 0)
                close(p->out_fd);
        if (p->err_fd >= 0)
                close(p->err_fd);
        p->out_fd = p->err_fd = -1;
        return wait_status(p);
}

void aidp_test_gc(const char *run_dir)
{
        static struct aidp_proc p;
        char *argv[] = {AIDP_SUPERVISOR, "gc", "--run-dir", (char *)run_dir, NULL};
        aidp_test_run(&p, argv);
}

int aidp_test_run(struct aidp_proc *p, char *const argv[])
{
        if (aidp_test_spawn(p, argv) < 0)
                return -1;
        return aidp_test_finish(p);
}

int aidp_test_run_job(struct aidp_proc *p, const char *run_dir, const char *const opts[],
                      const char *const job[])
{
        const char *argv[64] = {AIDP_SUPERVISOR, "run",       "--user", "65534",
                                "--no-cwd",      "--run-dir", run_dir};
        size_t n = 7;
        for (size_t i = 0; opts && opts[i] && n < 40; i++)
                argv[n++] = opts[i];
        argv[n++] = "--";
        for (size_t i = 0; job[i] && n < 63; i++)
                argv[n++] = job[i];
        argv[n] = NULL;
        return aidp_test_run(p, (char *const *)argv);
}

/* Directories named `name` below dir, down to depth 8. */
static int count_dirs(const char *dir, const char *name, int depth)
{
        if (depth > 8)
                return 0;
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_type != DT_DIR || e->d_name[0] == '.')
                        continue;
                if (!strcmp(e->d_name, name)) {
                        n++;
                        continue;
                }
                char p[4096];
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                n += count_dirs(p, name, depth + 1);
        }
        closedir(d);
        return n;
}

int aidp_test_cgroup_count(const char *name)
{
        return count_dirs("/sys/fs/cgroup", name, 0);
}

bool aidp_test_cgroup_exists(const char *name)
{
        return aidp_test_cgroup_count(name) > 0;
}

int aidp_test_mount_count(void)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        int n = 0, c;
        while (f && (c = fgetc(f)) != EOF)
                n += c == '\n';
        if (f)
                fclose(f);
        return n;
}

char aidp_test_proc_state(pid_t pid)
{
        char p[64], buf[512];
        snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(p, "re");
        if (!f)
                return 0;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        return rp && rp[1] == ' ' ? rp[2] : 0;
}

bool aidp_test_wait_stopped(pid_t pid)
{
        for (int i = 0; i < 3000; i++) {
                char st = aidp_test_proc_state(pid);
                if (st == 'T' || st == 0)
                        return st == 'T';
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        return false;
}

int aidp_test_mounts_of(const char *const *names)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -1;
        char *line = NULL;
        size_t cap = 0;
        int n = 0;
        while (getline(&line, &cap, f) > 0) {
                for (size_t i = 0; names[i]; i++)
                        if (names[i][0] && strstr(line, names[i])) {
                                n++;
                                break;
                        }
        }
        free(line);
        fclose(f);
        return n;
}

pid_t aidp_test_find_comm(const char *comm)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        pid_t found = 0;
        while (d && (e = readdir(d)) && !found) {
                int pid = atoi(e->d_name);
                if (pid <= 0)
                        continue;
                char p[64], buf[64] = "";
                snprintf(p, sizeof p, "/proc/%d/comm", pid);
                FILE *f = fopen(p, "re");
                if (f) {
                        if (fgets(buf, sizeof buf, f))
                                buf[strcspn(buf, "\n")] = '\0';
                        fclose(f);
                }
                if (!strcmp(buf, comm))
                        found = pid;
        }
        if (d)
                closedir(d);
        return found;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)st;
        (void)flag;
        (void)f;
        return remove(p);
}

void aidp_test_rm_tree(const char *dir)
{
        if (dir && dir[0])
                nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Directories to remove when their maker exits; a forked child (a test's
 * helper process) does not remove its parent's. */
#define TMPDIRS_MAX 32
static struct {
        char path[256];
        pid_t owner;
} tmpdirs[TMPDIRS_MAX];

char *aidp_test_mkdtemp(char *tmpl)
{
        if (!mkdtemp(tmpl))
                return NULL;
        for (size_t i = 0; i < TMPDIRS_MAX; i++) {
                if (tmpdirs[i].path[0])
                        continue;
                if (strlen(tmpl) < sizeof tmpdirs[i].path) {
                        strcpy(tmpdirs[i].path, tmpl);
                        tmpdirs[i].owner = getpid();
                }
                break;
        }
        return tmpl;
}

__attribute__((destructor)) static void tmpdirs_remove(void)
{
        for (size_t i = 0; i < TMPDIRS_MAX; i++) {
                if (tmpdirs[i].path[0] && tmpdirs[i].owner == getpid())
                        aidp_test_rm_tree(tmpdirs[i].path);
                tmpdirs[i].path[0] = '\0';
        }
}

bool aidp_test_is_production(const char *path)
{
        size_t l = strlen(path);
        static const char *const ends[] = {"/aidp-supervisor", "/aidp-run", "/setpriv"};
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
                size_t e = strlen(ends[i]);
                if (l >= e && !strcmp(path + l - e, ends[i]))
                        return true;
        }
        return false;
}

int aidp_test_sh(const char *fmt, ...)
{
        char cmd[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        int st = system(cmd);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool aidp_test_fd_all_zero(int fd, off_t size)
{
        unsigned char buf[65536];
        for (off_t off = 0; off < size;) {
                ssize_t n = pread(fd, buf, sizeof buf, off);
                if (n <= 0)
                        return false;
                for (ssize_t i = 0; i < n; i++)
                        if (buf[i])
                                return false;
                off += n;
        }
        return true;
}
