#define _GNU_SOURCE
/* Step 7 (job) of docs/run-core.md: the go to pid 1, then the job watched until
 * it ends: signals forwarded, wall time and the kill-after grace enforced, the
 * output relay pumped. Also the supervisor's hold on those signals. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/run/run_internal.h"
#include "supervisor/sandbox/fdpass.h"
#include "supervisor/sandbox/sandbox.h"

const int aidp_run_handled[AIDP_RUN_N_HANDLED] = {SIGINT,  SIGTERM, SIGHUP,   SIGQUIT,
                                                  SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD};

/* Learn mode: the child loads its filter and sends the listener; from then
 * on it blocks in each syscall until someone answers, so the listener is
 * handed to the caller's callback (which answers from a thread) before we
 * wait for execve. EOF means the child failed before seccomp: the error
 * pipe says why. */
static int receive_listener(struct run *r, aidp_error *err)
{
        char b;
        int fd;
        size_t n = 0;
        if (aidp_fdpass_recv(r->learn_sv[0], &b, &fd, 1, &n) <= 0)
                return 0;
        if (n != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EPROTO,
                                      "learn mode: no listener fd from the sandbox");
        return r->o->on_notify_fd(fd, r->o->notify_arg) < 0
                       ? aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                        "learn mode: listener callback failed")
                       : 0;
}

static void close_pair(int p[2])
{
        for (int i = 0; i < 2; i++)
                if (p[i] >= 0) {
                        close(p[i]);
                        p[i] = -1;
                }
}

/* pid 1 failed before it could take a message: say why it did, if it did. */
static int child_gone(struct run *r, int err_r, int errnum, const char *what, aidp_error *err)
{
        struct aidp_sandbox_report rep;
        ssize_t n;
        do
                n = read(err_r, &rep, sizeof rep);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof rep)
                return aidp_run_child_failure(&rep, err);
        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errnum, "%s", what);
}


int aidp_run_start_and_monitor(struct run *r, aidp_error *err)
{
        int rc = 0, sfd = -1, wall = -1, grace = -1;
        struct aidp_run_fds f = {{-1, r->sync_w}, {r->err_r, -1}, {r->status_r, -1}, {-1, -1}};
        r->sync_w = r->err_r = r->status_r = -1;
        /* Go: the cgroup is complete, START durable, /data filled. pid 1 gets
         * the v1 "tasks" files to move itself in before it starts the job. */
        int task_fds[AIDP_FDPASS_MAX];
        int ntask = aidp_cgroup_task_fds(r->cg, task_fds, ARRAY_SIZE(task_fds));
        if (ntask < 0) {
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, -ntask, "opening the run's cgroup");
                goto out;
        }
        int sent = aidp_fdpass_send(f.sync[1], 'g', task_fds, (size_t)ntask);
        for (int i = 0; i < ntask; i++)
                close(task_fds[i]);
        if (sent < 0) {
                rc = child_gone(r, f.err[0], -sent, "sandbox pid 1 (sync)", err);
                goto out;
        }
        close(f.sync[1]);
        f.sync[1] = -1;
        if (r->o->on_notify_fd && (rc = receive_listener(r, err)) < 0)
                goto out;
        struct aidp_sandbox_report rep;
        ssize_t n;
        do
                n = read(f.err[0], &rep, sizeof rep);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof rep) {
                rc = aidp_run_child_failure(&rep, err);
                goto out;
        }
        /* EOF: the job's execve closed the last copy of the error pipe. */
        r->res->started = true;
        aidp_run_fault_point("job");

        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < AIDP_RUN_N_HANDLED; i++)
                sigaddset(&set, aidp_run_handled[i]);
        sfd = signalfd(-1, &set, SFD_CLOEXEC);
        wall = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        grace = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        if (sfd < 0 || wall < 0 || grace < 0) {
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "signalfd/timerfd");
                goto out;
        }
        if (r->profile.limits.wall_seconds) {
                struct itimerspec its = {
                        .it_value = {.tv_sec = (time_t)r->profile.limits.wall_seconds}};
                timerfd_settime(wall, 0, &its, NULL);
        }
        unsigned kill_after = r->o->kill_after ? r->o->kill_after : 5;
        bool grace_armed = false, killed = false;
        int stops = 0;
        for (;;) {
                struct pollfd pf[8] = {
                        {.fd = f.status[0], .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                        {.fd = wall, .events = POLLIN},
                        {.fd = grace, .events = POLLIN},
                };
                for (int i = 0; i < 2; i++) {
                        short in = aidp_relay_want_in(&r->relay[i]);
                        short o = aidp_relay_want_out(&r->relay[i]);
                        pf[4 + 2 * i] =
                                (struct pollfd){.fd = in ? r->relay[i].from : -1, .events = in};
                        pf[5 + 2 * i] = (struct pollfd){.fd = o ? r->relay[i].to : -1, .events = o};
                }
                if (poll(pf, 8, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "poll");
                        break;
                }
                for (int i = 0; i < 2; i++) {
                        if (pf[4 + 2 * i].revents)
                                aidp_relay_on_readable(&r->relay[i]);
                        if (pf[5 + 2 * i].revents)
                                aidp_relay_on_writable(&r->relay[i]);
                }
                if (pf[0].revents) {
                        int32_t code;
                        if (read(f.status[0], &code, sizeof code) == sizeof code)
                                r->res->job_status = code;
                        else
                                r->res->job_status = -1; /* pid 1 died: killed with the cgroup */
                        break;
                }
                if (pf[2].revents) {
                        uint64_t x;
                        if (read(wall, &x, sizeof x) < 0)
                                continue;
                        r->res->timed_out = true;
                        fprintf(stderr,
                                "aidp-supervisor: run %s exceeded its wall time of %llus; stopping "
                                "it\n",
                                r->res->run_id, (unsigned long long)r->profile.limits.wall_seconds);
                        kill(r->pid1, SIGTERM);
                        stops++;
                }
                if (pf[3].revents) {
                        uint64_t x;
                        if (read(grace, &x, sizeof x) < 0)
                                continue;
                        if (!killed) {
                                kill(r->pid1, AIDP_SIG_KILL_JOB);
                                killed = true;
                        }
                }
                if (pf[1].revents) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof si) != sizeof si)
                                continue;
                        int sig = (int)si.ssi_signo;
                        if (sig == SIGCHLD)
                                continue; /* pid 1 ends only through the status pipe or a kill */
                        kill(r->pid1, sig);
                        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
                                /* A second stop request does not wait. */
                                if (++stops >= 2 && !killed) {
                                        kill(r->pid1, AIDP_SIG_KILL_JOB);
                                        killed = true;
                                }
                        }
                }
                if (stops && !grace_armed) {
                        struct itimerspec its = {.it_value = {.tv_sec = kill_after}};
                        timerfd_settime(grace, 0, &its, NULL);
                        grace_armed = true;
                }
        }
out:
        if (sfd >= 0)
                close(sfd);
        if (wall >= 0)
                close(wall);
        if (grace >= 0)
                close(grace);
        close_pair(f.sync);
        close_pair(f.err);
        close_pair(f.status);
        return rc;
}

/* Signals are taken over from the end of resolve (run.c), so a SIGTERM from
 * then on ends in teardown, not in the default action. */
void aidp_run_signals_take(struct aidp_run_signal_hold *h)
{
        sigemptyset(&h->set);
        for (size_t i = 0; i < AIDP_RUN_N_HANDLED; i++)
                sigaddset(&h->set, aidp_run_handled[i]);
        sigprocmask(SIG_BLOCK, &h->set, &h->old);
        /* An inherited SIG_IGN (a shell's background job ignores SIGINT and
         * SIGQUIT) would discard the signal before signalfd sees it. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        for (size_t i = 0; i < AIDP_RUN_N_HANDLED; i++)
                sigaction(aidp_run_handled[i], &dfl, &h->saved[i]);
        /* A reader of our stdout that goes away must not kill the
         * supervisor before it has shredded. */
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigaction(SIGPIPE, &ign, &h->saved_pipe);
}

/* Drain what arrived meanwhile (the run is over; it was answered by teardown or
 * the run never started), then restore. */
void aidp_run_signals_release(struct aidp_run_signal_hold *h)
{
        struct timespec zero = {0, 0};
        while (sigtimedwait(&h->set, NULL, &zero) > 0)
                ;
        for (size_t i = 0; i < AIDP_RUN_N_HANDLED; i++)
                sigaction(aidp_run_handled[i], &h->saved[i], NULL);
        sigaction(SIGPIPE, &h->saved_pipe, NULL);
        sigprocmask(SIG_SETMASK, &h->old, NULL);
}
