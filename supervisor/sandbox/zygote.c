#define _GNU_SOURCE
/* The worker's side of the zygote (zygote.h): start it while idle, hand it
 * pid 1's plan at spawn. */
#include "supervisor/sandbox/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "common/path.h"
#include "supervisor/sandbox/codec/plan.h"
#include "supervisor/sandbox/fdpass.h"
#include "supervisor/sandbox/zygote_wire.h"

/* The program, opened once by the daemon (O_PATH), and the zygote made
 * ahead by this worker. A worker is one process serving one run: globals
 * like nsready.c's. */
static int g_program = -1;
static struct aidp_zygote g_zygote = {.pid = -1, .sock = -1};

int aidp_zygote_open_program(void)
{
        char self[PATH_MAX], dir[PATH_MAX], path[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
                return -errno;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash)
                return -ENOENT;
        *slash = '\0';
        snprintf(dir, sizeof dir, "%s", self[0] ? self : "/");
        if (aidp_path_join(path, sizeof path, dir, AIDP_ZYGOTE_PROGRAM) < 0)
                return -ENAMETOOLONG;
        int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* Run as root for every run: only a file that root alone could have
         * written (the daemon's own binary sits in the same directory). */
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & (S_IWGRP | S_IWOTH))) {
                close(fd);
                return -EPERM;
        }
        if (g_program >= 0)
                close(g_program);
        g_program = fd;
        return 0;
}

/* Kill the zygote (the worker's own child, not reaped yet: its pid is still
 * its own) and reap it. */
static void kill_reap(struct aidp_zygote *z)
{
        if (z->pid > 0) {
                kill(z->pid, SIGKILL);
                while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        z->pid = -1;
}

void aidp_zygote_drop(struct aidp_zygote *z)
{
        if (z->sock >= 0)
                close(z->sock);
        kill_reap(z);
        *z = (struct aidp_zygote){.pid = -1, .sock = -1};
}

int aidp_zygote_make(void)
{
        aidp_zygote_drop(&g_zygote);
        if (g_program < 0)
                return -ENOENT;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        /* vfork: no copy of this worker's page tables for a process that
         * only execs. The child makes system calls on its own stack: its
         * socket at 3, the program at 4 (close-on-exec: an ELF file runs
         * from it all the same), nothing else of the worker's above 2. */
        char *const argv[] = {AIDP_ZYGOTE_PROGRAM, NULL};
        char *const envp[] = {NULL};
        int prog = g_program;
        /* Every signal blocked across the vfork, as posix_spawn does: a
         * handler of the worker's run in the child would run on the
         * parent's stack and memory. The child puts back the worker's mask
         * only once no handler of the worker's is left in it. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pid_t pid = vfork();
        if (pid == 0) {
                for (int sig = 1; sig < NSIG; sig++) {
                        struct sigaction sa;
                        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL &&
                            sa.sa_handler != SIG_IGN) {
                                sa.sa_handler = SIG_DFL;
                                sa.sa_flags = 0;
                                sigaction(sig, &sa, NULL);
                        }
                }
                sigprocmask(SIG_SETMASK, &old, NULL);
                /* Both above 4 first: either may be 3 or 4 already (and
                 * dup2 onto itself would leave close-on-exec set). */
                int s = fcntl(sv[1], F_DUPFD, 5), x = fcntl(prog, F_DUPFD, 5);
                if (s < 0 || x < 0 || dup2(s, 3) < 0 || dup3(x, 4, O_CLOEXEC) < 0)
                        _exit(127);
                close_range(5, ~0U, 0);
                syscall(SYS_execveat, 4, "", argv, envp, AT_EMPTY_PATH);
                _exit(127);
        }
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(sv[1]);
        if (pid < 0) {
                close(sv[0]);
                return -e;
        }
        g_zygote = (struct aidp_zygote){.pid = pid, .sock = sv[0]};
        return 0;
}

bool aidp_zygote_take(struct aidp_zygote *z)
{
        *z = g_zygote;
        g_zygote = (struct aidp_zygote){.pid = -1, .sock = -1};
        return z->pid > 0;
}

/* Every wait on the zygote ends at a deadline or at the run's stop request
 * (SIGINT, SIGTERM, SIGHUP: held pending while the run is prepared, as
 * run.c's check_interrupted reads them), so that a zygote that stopped
 * answering (SIGSTOP, a debugger, the kernel stalling it) never holds the
 * worker and the client that waits for it. */
struct zwait {
        int sig;          /* signalfd of the stop requests, or -1 */
        int64_t deadline; /* CLOCK_MONOTONIC, ms */
};

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void zwait_open(struct zwait *w)
{
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigaddset(&stop, SIGHUP);
        /* Polled, never read: a pending request stays for check_interrupted.
         * Without it (out of fds), the deadline alone bounds the wait. */
        w->sig = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
        w->deadline = now_ms() + AIDP_ZYGOTE_DEADLINE_MS;
}

static void zwait_close(struct zwait *w)
{
        if (w->sig >= 0)
                close(w->sig);
        w->sig = -1;
}

/* Until fd has ev: 0, -ETIMEDOUT at the deadline, -EINTR at a stop request. */
static int zwait_for(const struct zwait *w, int fd, short ev)
{
        for (bool last = false; !last;) {
                /* Past the deadline, one look still: what is there already
                 * (the answer that came while the caller was busy) counts. */
                int64_t left = w->deadline - now_ms();
                last = left <= 0;
                struct pollfd pf[2] = {{.fd = fd, .events = ev}, {.fd = w->sig, .events = POLLIN}};
                int n = poll(pf, w->sig >= 0 ? 2 : 1, last ? 0 : (int)left);
                if (n < 0 && errno != EINTR)
                        return -errno;
                if (n > 0 && w->sig >= 0 && (pf[1].revents & POLLIN))
                        return -EINTR;
                /* POLLHUP, POLLERR: the call that follows says what. */
                if (n > 0 && pf[0].revents)
                        return 0;
        }
        return -ETIMEDOUT;
}

static const char *zwait_why(int e)
{
        return e == -ETIMEDOUT ? "the zygote did not answer in time"
               : e == -EINTR   ? "a stop request came while the zygote cloned"
                               : "waiting for the zygote";
}

/* The plan's bytes, a part at a time as the zygote reads them (the socket is
 * non-blocking: a plan may be far larger than its buffer). */
static int send_bounded(const struct zwait *w, int sock, const uint8_t *p, size_t len)
{
        while (len > 0) {
                int e = zwait_for(w, sock, POLLOUT);
                if (e < 0)
                        return e;
                ssize_t n = send(sock, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* The zygote's greeting, sent as it started: only a zygote of this build
 * clones pid 1 (pid 1 runs aidp-init's copy of sandbox.c; an older aidp-init
 * left beside a newer daemon would run every sandbox the old way). 0, or
 * -1 with err set (nothing handed over: the caller clones pid 1 itself). */
static int check_build(const struct zwait *w, int sock, aidp_error *err)
{
        const char *mine = AIDP_BUILD_ID;
        /* Test builds only (AIDP_FAULT_ZYGOTE_BUILD_ID=ID; supervisor/cli/
         * env.c refuses AIDP_FAULT_* in the production binary): this
         * worker's id, as if the daemon were another build. */
        const char *fault = getenv("AIDP_FAULT_ZYGOTE_BUILD_ID");
        if (fault && *fault)
                mine = fault;
        struct aidp_zygote_greeting g = {0};
        size_t n = 0;
        int e = zwait_for(w, sock, POLLIN);
        if (e == 0)
                e = aidp_fdpass_recvv(sock, &g, sizeof g, NULL, 0, &n, true);
        if (e <= 0) {
                if (e == -ETIMEDOUT || e == -EINTR)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, -e, "%s", zwait_why(e));
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e < 0 ? -e : EPIPE,
                                        "the zygote's greeting");
        }
        if (g.magic != AIDP_ZYGOTE_GREETING)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EPROTO,
                                      "the zygote sent no greeting (an aidp-init of another "
                                      "build?)");
        if (strlen(mine) != sizeof g.build || memcmp(g.build, mine, sizeof g.build) != 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EPROTO,
                                      "%s is build %.64s, this daemon is build %s: not used",
                                      AIDP_ZYGOTE_PROGRAM, g.build, mine);
        return 0;
}

/* fd, if open, as one to place at its own number in pid 1. */
static void add_fd(struct aidp_plan *p, int fd)
{
        if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                return;
        for (size_t i = 0; i < p->n_fds; i++)
                if (p->fds[i] == fd)
                        return;
        if (p->n_fds < AIDP_PLAN_MAX_FDS)
                p->fds[p->n_fds++] = fd;
        else
                p->n_fds = AIDP_PLAN_MAX_FDS + 1; /* the encoder refuses it */
}

static uint64_t mask_bits(const sigset_t *m)
{
        uint64_t bits = 0;
        for (int sig = 1; m && sig <= 64; sig++)
                if (sigismember(m, sig) == 1)
                        bits |= 1ULL << (sig - 1);
        return bits;
}

/* pid 1's spec as a plan, its fds at their numbers in this worker. The
 * profile's strings are the worker's; only the plan's arrays are copied. */
static void plan_of(const struct aidp_sandbox_spec *s, const struct aidp_zygote_clone *c,
                    struct aidp_plan *p)
{
        size_t argc = 0, envc = 0;
        while (s->argv[argc])
                argc++;
        while (s->envp && s->envp[envc])
                envc++;
        *p = (struct aidp_plan){
                .argv = (char **)s->argv,
                .argc = argc,
                .envp = (char **)s->envp,
                .envc = envc,
                .cwd = (char *)s->cwd,
                .bind_cwd = s->bind_cwd,
                .uid = s->uid,
                .gid = s->gid,
                .n_groups = s->n_groups,
                .hostname = (char *)s->hostname,
                .caps = s->caps,
                .sigmask = mask_bits(c->mask),
                .has_profile = s->profile != NULL,
                .bpf = s->bpf ? *s->bpf : (struct aidp_bpf){0},
                .seccomp_flags = s->seccomp_flags,
                .n_mounts = s->n_mounts,
                .sync_fd = s->sync_fd,
                .err_fd = s->err_fd,
                .lifeline_fd = s->lifeline_fd,
                .status_fd = s->status_fd,
                .stdin_fd = s->stdin_fd,
                .stdout_fd = s->stdout_fd,
                .stderr_fd = s->stderr_fd,
                .notify_fd_out = s->notify_fd_out,
                .resolv_tree_fd = s->resolv_tree_fd,
                .cwd_tree_fd = s->has_cwd_tree ? s->cwd_tree_fd : -1,
                .has_cwd_tree = s->has_cwd_tree,
                .bind_tree_fds = s->profile ? (int32_t *)s->bind_tree_fds : NULL,
                .clone_flags = c->net >= 0 ? 0 : CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS,
                .cgroup_fd = c->cgroup_fd,
                .net_fd = c->net,
                .ipc_fd = c->ipc,
                .uts_fd = c->uts,
        };
        memcpy(p->groups, s->groups, sizeof s->groups[0] * s->n_groups);
        if (s->profile)
                p->profile = *s->profile;
        for (size_t i = 0; i < s->n_mounts; i++)
                p->mounts[i] = (struct aidp_plan_mount){.fd = s->mounts[i].fd,
                                                        .target = (char *)s->mounts[i].target,
                                                        .readonly = s->mounts[i].readonly};
        /* The worker's stdio first: pid 1 keeps fd 0-2 where the spec names
         * no replacement, as a clone of the worker would. */
        for (int fd = 0; fd <= 2; fd++)
                add_fd(p, fd);
        const int fixed[] = {s->sync_fd,
                             s->err_fd,
                             s->lifeline_fd,
                             s->status_fd,
                             s->stdin_fd,
                             s->stdout_fd,
                             s->stderr_fd,
                             s->notify_fd_out,
                             s->resolv_tree_fd,
                             p->cwd_tree_fd,
                             c->cgroup_fd,
                             c->net,
                             c->ipc,
                             c->uts};
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
                add_fd(p, fixed[i]);
        for (size_t i = 0; i < s->n_mounts; i++)
                add_fd(p, s->mounts[i].fd);
        for (size_t i = 0; p->bind_tree_fds && i < s->profile->n_binds; i++)
                add_fd(p, s->bind_tree_fds[i]);
}

pid_t aidp_zygote_clone_pid1(struct aidp_zygote *z, const struct aidp_sandbox_spec *spec,
                             const struct aidp_zygote_clone *c, int *pidfd, aidp_error *err)
{
        /* The run's scheduling (the zygote was started by an idle worker,
         * at SCHED_IDLE): pid 1 and the job inherit it from the zygote. */
        struct sched_param sp;
        int pol = sched_getscheduler(0);
        if (pol >= 0 && sched_getparam(0, &sp) == 0)
                (void)sched_setscheduler(z->pid, pol, &sp);
        struct aidp_plan p;
        plan_of(spec, c, &p);
        _cleanup_free_ uint8_t *bytes = NULL;
        size_t len = 0;
        pid_t rc = 0;
        int e = 0;
        struct zwait w;
        zwait_open(&w);
        if (aidp_plan_encode(&p, &bytes, &len, err) < 0)
                goto out;
        int fds[AIDP_PLAN_MAX_FDS];
        for (size_t i = 0; i < p.n_fds; i++)
                fds[i] = p.fds[i];
        e = check_build(&w, z->sock, err);
        if (e < 0)
                goto out;
        struct aidp_zygote_hello h = {.magic = AIDP_ZYGOTE_HELLO, .len = (uint32_t)len};
        /* The hello is a few bytes into an empty socket: once writable, it
         * goes whole. */
        e = zwait_for(&w, z->sock, POLLOUT);
        if (e == 0)
                e = aidp_fdpass_sendv(z->sock, &h, sizeof h, fds, p.n_fds);
        /* It clones only once it has the whole plan: a failed send, a
         * deadline or a stop request before then leaves nothing cloned. */
        if (e == 0 && fcntl(z->sock, F_SETFL, O_NONBLOCK) < 0)
                e = -errno;
        if (e == 0)
                e = send_bounded(&w, z->sock, bytes, len);
        if (e < 0) {
                /* Gone before the plan (killed, out of memory), or stuck. */
                if (e == -ETIMEDOUT || e == -EINTR)
                        aidp_error_set(err, AIDP_EXIT_INTERNAL, -e, "%s", zwait_why(e));
                else
                        aidp_error_errno(err, AIDP_EXIT_INTERNAL, -e,
                                         "handing the plan to the zygote");
                goto out;
        }
        /* The caller's own work meanwhile (the host's sockets: longer on a
         * host with very many) is not the zygote's: its deadline starts
         * again after it. */
        if (c->while_cloning) {
                c->while_cloning(c->arg);
                w.deadline = now_ms() + AIDP_ZYGOTE_DEADLINE_MS;
        }
        struct aidp_zygote_reply rep = {0};
        size_t n = 0;
        /* The reply is one small message, sent whole once the clone is done. */
        int got = zwait_for(&w, z->sock, POLLIN);
        bool stuck = got < 0;
        if (!stuck)
                got = aidp_fdpass_recvv(z->sock, &rep, sizeof rep, pidfd, 1, &n, true);
        /* Test builds only (AIDP_FAULT_ZYGOTE_ANSWER_LOST=1; supervisor/cli/
         * env.c refuses AIDP_FAULT_* in the production binary): the answer
         * of a zygote that did clone pid 1 is lost, as if it had died right
         * after the clone (tests/priv/test_zygote.c). */
        if (got > 0 && getenv("AIDP_FAULT_ZYGOTE_ANSWER_LOST")) {
                if (n == 1)
                        close(*pidfd);
                *pidfd = -1;
                got = 0;
        }
        if (got <= 0) {
                /* It took the plan and ended, or stopped answering, without
                 * a word: a pid 1 it may have cloned is in the run's cgroup
                 * (the caller uses a zygote only with the cgroup2 fd). */
                rc = stuck ? aidp_error_set(err, AIDP_EXIT_INTERNAL, -got,
                                            "%s; a sandbox it may have cloned dies with the "
                                            "run's cgroup (nothing ran: try again; if it "
                                            "repeats, the daemon's log says more, tell its admin)",
                                            zwait_why(got))
                           : aidp_error_errno(err, AIDP_EXIT_INTERNAL, got < 0 ? -got : EPIPE,
                                              "the zygote ended without cloning the sandbox");
                goto out;
        }
        rep.what[sizeof rep.what - 1] = '\0';
        if (rep.pid > 0 && n != 1) {
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EPROTO,
                                    "the zygote cloned the sandbox but sent no pidfd");
                goto out;
        }
        if (rep.pid <= 0) {
                if (n == 1)
                        close(*pidfd);
                *pidfd = -1;
                aidp_error_errno(err, AIDP_EXIT_INTERNAL, rep.errnum, "the zygote: %s", rep.what);
                goto out;
        }
        /* It exits once it has answered: reaped later (aidp_zygote_reap),
         * off the path to pid 1's mounts. */
        zwait_close(&w);
        close(z->sock);
        z->sock = -1;
        return rep.pid;
out:
        /* Whatever it was doing: nothing of it is needed any more, and a
         * zygote that stopped answering would never exit on its own. */
        zwait_close(&w);
        close(z->sock);
        z->sock = -1;
        kill_reap(z);
        return rc;
}

void aidp_zygote_reap(struct aidp_zygote *z)
{
        if (z->pid <= 0)
                return;
        /* It exits once it has answered; one stopped before its exit is
         * killed at the deadline or at a stop request. */
        struct zwait w;
        zwait_open(&w);
        int pfd = (int)syscall(SYS_pidfd_open, z->pid, 0);
        if (pfd >= 0) {
                (void)zwait_for(&w, pfd, POLLIN);
                close(pfd);
        }
        zwait_close(&w);
        kill_reap(z);
}
