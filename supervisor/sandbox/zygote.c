#define _GNU_SOURCE
/* The worker's side of the zygote (zygote.h): start it while idle, hand it
 * pid 1's plan at spawn. */
#include "supervisor/sandbox/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

static void drop(struct aidp_zygote *z)
{
        if (z->sock >= 0)
                close(z->sock);
        if (z->pid > 0) {
                kill(z->pid, SIGKILL);
                while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        *z = (struct aidp_zygote){.pid = -1, .sock = -1};
}

int aidp_zygote_make(void)
{
        drop(&g_zygote);
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
        pid_t pid = vfork();
        if (pid == 0) {
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
        if (aidp_plan_encode(&p, &bytes, &len, err) < 0)
                goto out;
        int fds[AIDP_PLAN_MAX_FDS];
        for (size_t i = 0; i < p.n_fds; i++)
                fds[i] = p.fds[i];
        struct aidp_zygote_hello h = {.magic = AIDP_ZYGOTE_HELLO, .len = (uint32_t)len};
        int e = aidp_fdpass_sendv(z->sock, &h, sizeof h, fds, p.n_fds);
        if (e < 0) {
                /* Gone before the plan (killed, out of memory): nothing
                 * was cloned. */
                aidp_error_errno(err, AIDP_EXIT_INTERNAL, -e, "handing the plan to the zygote");
                goto out;
        }
        e = aidp_fdpass_sendv(z->sock, bytes, len, NULL, 0);
        if (e < 0) {
                /* It clones only once it has the whole plan. */
                aidp_error_errno(err, AIDP_EXIT_INTERNAL, -e, "handing the plan to the zygote");
                goto out;
        }
        struct aidp_zygote_reply rep = {0};
        size_t n = 0;
        int got = aidp_fdpass_recvv(z->sock, &rep, sizeof rep, pidfd, 1, &n, true);
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
                /* It took the plan, or part of it, and ended without a
                 * word: a pid 1 it may have cloned is in the run's cgroup. */
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, got < 0 ? -got : EPIPE,
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
        close(z->sock);
        z->sock = -1;
        return rep.pid;
out:
        /* It exits at the end of its line, if it has not already. */
        close(z->sock);
        z->sock = -1;
        aidp_zygote_reap(z);
        return rc;
}

void aidp_zygote_reap(struct aidp_zygote *z)
{
        if (z->pid > 0)
                while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        z->pid = -1;
}
