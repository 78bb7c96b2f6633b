/* `aidp unseal -o DIR`: plaintext reaches DIR only once it is authenticated
 * (tool_access.h).
 *
 * A worker process with the caller's credentials creates DIR/.aidp-unseal-*
 * (0700), decrypts into it, and only after every segment's tag verified
 * renames the entries up into DIR (RENAME_NOREPLACE). What stops it:
 * - SIGINT/SIGTERM/SIGHUP to either process: the worker stops (the parent
 *   forwards them), aidp_sealed_decrypt wipes what it wrote, the worker
 *   removes its directory;
 * - SIGKILL of the parent: the worker gets SIGTERM (parent-death signal) and
 *   cleans up the same way;
 * - SIGKILL of the worker (the caller may send it): the parent removes the
 *   worker's directory, again with the caller's credentials. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/cli/tool_access.h"

#define TMP_PREFIX ".aidp-unseal-"

struct unseal_job {
        struct aidp_sealed *s;
        const char *dir;
        struct aidp_sealed_opts o;
        pid_t parent;
        int report; /* write end: struct report messages */
};

/* Worker -> parent, each one write (< PIPE_BUF, so never torn). */
struct report {
        char kind; /* 'T': the temporary directory exists; 'E': the end */
        bool made_dir;
        char tmp[32];
        int rc;
        struct aidp_sealed_result res;
        aidp_error err;
};

static volatile sig_atomic_t g_stop;
static volatile pid_t g_worker;

static void worker_on_signal(int sig)
{
        (void)sig;
        g_stop = 1;
}

static bool worker_stopped(void)
{
        return g_stop != 0;
}

static void parent_on_signal(int sig)
{
        if (g_worker > 0)
                kill(g_worker, sig);
}

static void set_handlers(void (*fn)(int))
{
        struct sigaction sa = {.sa_handler = fn};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
}

static void send_report(int fd, const struct report *r)
{
        ssize_t n;
        do
                n = write(fd, r, sizeof *r);
        while (n < 0 && errno == EINTR);
}

/* Remove a tree the worker made, as the caller (nftw: physical walk, no
 * symlink followed). Files are truncated first, so their blocks are free
 * even if someone still holds one open. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (flag == FTW_F && truncate(path, 0) < 0 && errno != ENOENT)
                errno = 0; /* removed below all the same */
        remove(path);
        return 0;
}

static void remove_tmp(const char *dir, const char *tmp, bool made_dir)
{
        char path[4096];
        if (tmp[0] && snprintf(path, sizeof path, "%s/%s", dir, tmp) < (int)sizeof path)
                nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        if (made_dir)
                rmdir(dir);
}

/* Move every entry of the temporary directory up into DIR, never replacing
 * one; on a clash the entries already moved go back. */
static int move_up(int dfd, int tfd, const char *tmp, aidp_error *err)
{
        _cleanup_close_ int lfd = openat(tfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
        if (!d)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "listing %s", tmp);
        lfd = -1;
        char **names = NULL;
        size_t n = 0, moved = 0;
        int r = 0;
        for (struct dirent *e; (e = readdir(d));) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                char **nn = realloc(names, (n + 1) * sizeof *nn);
                if (!nn || !(nn[n] = strdup(e->d_name))) {
                        names = nn ? nn : names;
                        r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                        break;
                }
                names = nn;
                n++;
        }
        closedir(d);
        /* names[0..moved) are in DIR; names[moved] is the one that failed. */
        for (; r == 0 && moved < n; moved++) {
                if (renameat2(tfd, names[moved], dfd, names[moved], RENAME_NOREPLACE) == 0)
                        continue;
                if (errno == EEXIST)
                        r = aidp_error_set(err, AIDP_EXIT_USAGE, EEXIST,
                                           "%s exists already (never replaced); nothing was "
                                           "written",
                                           names[moved]);
                else
                        r = aidp_error_errno(err, AIDP_EXIT_USAGE, errno, "moving %s into place",
                                             names[moved]);
                break;
        }
        for (size_t i = 0; r < 0 && i < moved; i++)
                renameat2(dfd, names[i], tfd, names[i], RENAME_NOREPLACE);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r == 0)
                fsync(dfd);
        return r;
}

/* A fresh private directory in DIR: DIR/.aidp-unseal-<random>. */
static int make_tmp(int dfd, char *name, size_t size, aidp_error *err)
{
        for (int tries = 0; tries < 16; tries++) {
                unsigned char rnd[6];
                if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "getrandom");
                snprintf(name, size, TMP_PREFIX "%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                         rnd[3], rnd[4], rnd[5]);
                if (mkdirat(dfd, name, 0700) == 0)
                        return 0;
                if (errno != EEXIST)
                        return aidp_error_errno(err, AIDP_EXIT_USAGE, errno,
                                                "creating a private directory in the output "
                                                "directory");
        }
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EEXIST, "no free temporary name");
}

static int worker_run(struct unseal_job *j, struct report *rep)
{
        aidp_error *err = &rep->err;
        if (mkdir(j->dir, 0700) == 0)
                rep->made_dir = true;
        else if (errno != EEXIST)
                return aidp_error_errno(err, AIDP_EXIT_USAGE, errno, "creating %s", j->dir);
        /* As the caller, never through a symlink in the last component. */
        _cleanup_close_ int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_USAGE, errno, "opening %s", j->dir);
        int r = make_tmp(dfd, rep->tmp, sizeof rep->tmp, err);
        if (r < 0)
                return r;
        struct report t = *rep;
        t.kind = 'T';
        send_report(j->report, &t);
        _cleanup_close_ int tfd =
                openat(dfd, rep->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_USAGE, errno, "opening %s", rep->tmp);
        j->o.interrupted = worker_stopped;
        if ((r = aidp_sealed_decrypt(j->s, tfd, &j->o, &rep->res, err)) < 0) {
                if (g_stop)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINTR,
                                              "unsealing into %s was interrupted; nothing was "
                                              "written there",
                                              j->dir);
                return r;
        }
        /* Every tag verified (and the digest): only now does DIR see it. */
        if ((r = move_up(dfd, tfd, rep->tmp, err)) < 0)
                return r;
        if (unlinkat(dfd, rep->tmp, AT_REMOVEDIR) == 0)
                rep->tmp[0] = '\0';
        if (rep->made_dir && rep->res.root == AIDP_ROOT_DIR)
                fchmod(dfd, rep->res.root_mode);
        return 0;
}

static int worker(void *arg)
{
        struct unseal_job *j = arg;
        struct report rep = {.kind = 'E'};
        set_handlers(worker_on_signal);
        /* After the credential change, which clears it: if the parent dies,
         * stop and clean up like for SIGTERM. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigset_t all;
        sigemptyset(&all);
        sigaddset(&all, SIGINT);
        sigaddset(&all, SIGTERM);
        sigaddset(&all, SIGHUP);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        if (getppid() != j->parent)
                g_stop = 1;
        rep.rc = worker_run(j, &rep);
        if (rep.rc < 0)
                remove_tmp(j->dir, rep.tmp, rep.made_dir);
        send_report(j->report, &rep);
        return rep.rc < 0 ? 1 : 0;
}

/* The worker died without its last word (SIGKILL): remove what it made, with
 * the caller's credentials. */
struct leftover {
        const char *dir;
        struct report t;
};

static int cleanup_after(void *arg)
{
        const struct leftover *l = arg;
        remove_tmp(l->dir, l->t.tmp, l->t.made_dir);
        return 0;
}

static int wait_child(pid_t pid)
{
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        return st;
}

int aidp_tool_unseal_to_dir(struct aidp_sealed *s, const struct aidp_tool_access *acc,
                            const char *dir, const struct aidp_sealed_opts *o,
                            struct aidp_sealed_result *res, aidp_error *err)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
        struct unseal_job j = {.s = s, .dir = dir, .o = *o, .parent = getpid(), .report = p[1]};
        /* Signals wait until the worker's pid is known: then they are
         * forwarded to it, and this process waits for its clean-up. */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        sigprocmask(SIG_BLOCK, &block, &old);
        pid_t pid = -1;
        int r = aidp_ascaller_spawn(&acc->who, worker, &j, &pid, err);
        close(p[1]);
        if (r < 0) {
                close(p[0]);
                sigprocmask(SIG_SETMASK, &old, NULL);
                return r;
        }
        g_worker = pid;
        set_handlers(parent_on_signal);
        sigprocmask(SIG_SETMASK, &old, NULL);
        struct report got = {0};
        struct leftover l = {.dir = dir};
        for (;;) {
                struct report m;
                ssize_t n = read(p[0], &m, sizeof m);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n != (ssize_t)sizeof m)
                        break;
                if (m.kind == 'T')
                        l.t = m;
                else if (m.kind == 'E')
                        got = m;
        }
        close(p[0]);
        int st = wait_child(pid);
        g_worker = 0;
        set_handlers(SIG_DFL);
        if (got.kind == 'E') {
                if (got.rc < 0) {
                        *err = got.err;
                        return got.rc;
                }
                *res = got.res;
                return 0;
        }
        /* Killed before its last word: its directory is still there. */
        pid_t c = -1;
        if (l.t.kind == 'T' && aidp_ascaller_spawn(&acc->who, cleanup_after, &l, &c, err) == 0)
                wait_child(c);
        return aidp_error_set(err, AIDP_EXIT_DATA, EINTR,
                              "unsealing into %s was stopped (%s %d); nothing was written there",
                              dir, WIFSIGNALED(st) ? "signal" : "status",
                              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}
