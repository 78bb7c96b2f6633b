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
 * wait for execve. EOF, or the error pipe first, means the child failed before
 * seccomp: the error pipe says why. A stop signal meanwhile ends the run here:
 * nothing answers the job yet, so it could not be stopped later. */
static int receive_listener(struct run *r, int err_r, int sfd, aidp_error *err)
{
        char b;
        int fd;
        size_t n = 0;
        for (;;) {
                struct pollfd pf[3] = {{.fd = r->learn_sv[0], .events = POLLIN},
                                       {.fd = err_r, .events = POLLIN},
                                       {.fd = sfd, .events = POLLIN}};
                if (poll(pf, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "poll");
                }
                if (pf[0].revents)
                        break;
                if (pf[1].revents)
                        return 0;
                struct signalfd_siginfo si;
                if (pf[2].revents && read(sfd, &si, sizeof si) == sizeof si &&
                    (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM || si.ssi_signo == SIGHUP ||
                     si.ssi_signo == SIGQUIT)) {
                        r->res->stop_signal = (int)si.ssi_signo;
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINTR,
                                              "learn mode: stopped by signal %u before the job "
                                              "started",
                                              si.ssi_signo);
                }
        }
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

/* pid 1's report of a failed step, if it wrote one before its error pipe
 * closed (an execve closes it without one). */
static bool read_report(int err_r, struct aidp_sandbox_report *rep)
{
        ssize_t n;
        do
                n = read(err_r, rep, sizeof *rep);
        while (n < 0 && errno == EINTR);
        return n == (ssize_t)sizeof *rep;
}

/* The go: the cgroup is complete, START durable, /data filled (steps 2 to 6).
 * pid 1 gets the v1 "tasks" files to move itself in before it starts the job.
 * Returns once the job has called execve. */
static int send_go(struct run *r, struct aidp_run_fds *f, int sfd, aidp_error *err)
{
        struct aidp_sandbox_report rep;
        int task_fds[AIDP_FDPASS_MAX];
        int ntask = aidp_cgroup_task_fds(r->cg, task_fds, ARRAY_SIZE(task_fds));
        if (ntask < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -ntask,
                                        "opening the run's cgroup");
        int sent = aidp_fdpass_send(f->sync[1], 'g', task_fds, (size_t)ntask);
        for (int i = 0; i < ntask; i++)
                close(task_fds[i]);
        if (sent < 0) {
                /* pid 1 failed before it could take the go: say why, if it did */
                if (read_report(f->err[0], &rep))
                        return aidp_run_child_failure(&rep, err);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -sent, "sandbox pid 1 (sync)");
        }
        aidp_run_close(&f->sync[1]);
        int rc;
        if (r->o->on_notify_fd && (rc = receive_listener(r, f->err[0], sfd, err)) < 0)
                return rc;
        if (read_report(f->err[0], &rep)) {
                int rc2 = aidp_run_child_failure(&rep, err);
                char hint[1024];
                if (rep.stage == AIDP_STAGE_EXEC &&
                    (aidp_run_hidden_path(r, rep.what, false, hint, sizeof hint) ||
                     aidp_run_hidden_scan(r, true, hint, sizeof hint))) {
                        size_t len = strlen(err->msg);
                        snprintf(err->msg + len, sizeof err->msg - len, "; %s", hint);
                }
                return rc2;
        }
        /* EOF: the job's execve closed the last copy of the error pipe. */
        r->res->started = true;
        return 0;
}

/* What the supervisor watches while the job runs. */
struct watch {
        struct run *r;
        int status_r, sfd, wall, grace, access;
        uint64_t kill_after; /* seconds (the profile's, or --kill-after) */
        int stops;
        bool grace_armed, killed;
};

static int signal_pid1(struct watch *w, int sig, const char *why, aidp_error *err);

/* When the access policy's granting time windows close (docs/policy.md, "Time
 * windows"), the run ends as at its wall time: SIGTERM, the kill-after grace,
 * SIGKILL, then the usual shred and a FAIL naming the reason. A real-time
 * timer, absolute: the window is a wall-clock instant. */
static int arm_access(struct watch *w, aidp_error *err)
{
        const struct aidp_run_policy *p = &w->r->policy;
        w->access = -1;
        if (!p->decided || !p->decision.until || p->decision.audit)
                return 0;
        w->access = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);
        struct itimerspec its = {
                .it_value = {.tv_sec = (time_t)(p->decision.until - p->clock_offset)}};
        if (w->access < 0 || timerfd_settime(w->access, TFD_TIMER_ABSTIME, &its, NULL) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "arming the end of the access policy's time window; the "
                                        "job does not start");
        return 0;
}

static int on_access(struct watch *w, aidp_error *err)
{
        uint64_t x;
        if (read(w->access, &x, sizeof x) < 0)
                return 0;
        struct run *r = w->r;
        const struct aidp_decision *d = &r->policy.decision;
        r->res->access_expired = true;
        snprintf(r->res->access_rule, sizeof r->res->access_rule, "%s",
                 d->until_rule ? d->until_rule : "?");
        fprintf(stderr,
                "aidp-supervisor: run %s: the time window of access rule %s has closed; "
                "stopping it\n",
                r->res->run_id, r->res->access_rule);
        w->stops++;
        return signal_pid1(w, SIGTERM, "access window closed", err);
}

/* The signalfd and both timers, the wall time armed: before the go, so that a
 * job whose wall time cannot be enforced never starts. */
static int watch_open(struct watch *w, aidp_error *err)
{
        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < AIDP_RUN_N_HANDLED; i++)
                sigaddset(&set, aidp_run_handled[i]);
        w->sfd = signalfd(-1, &set, SFD_CLOEXEC);
        w->wall = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        w->grace = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        if (w->sfd < 0 || w->wall < 0 || w->grace < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "signalfd/timerfd");
        uint64_t secs = w->r->profile.limits.wall_seconds;
        struct itimerspec its = {.it_value = {.tv_sec = (time_t)secs}};
        if (secs && timerfd_settime(w->wall, 0, &its, NULL) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "arming the wall-time limit of %llus; the job does not "
                                        "start",
                                        (unsigned long long)secs);
        return arm_access(w, err);
}

static void watch_close(struct watch *w)
{
        if (!w->r->res->stop_signal) {
                /* A stop request that came with the job's own end (scancel signals
                 * the whole process tree at once) is still pending here. */
                static const int stop[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
                sigset_t pending;
                sigpending(&pending);
                for (size_t i = 0; i < ARRAY_SIZE(stop); i++)
                        if (sigismember(&pending, stop[i]))
                                w->r->res->stop_signal = stop[i];
        }
        aidp_run_close(&w->sfd);
        aidp_run_close(&w->wall);
        aidp_run_close(&w->grace);
        aidp_run_close(&w->access);
}

/* A signal to pid 1. pid 1 already gone (ESRCH) has ended the job (its status
 * pipe says so); any other failure leaves the job unchecked, so the run ends
 * here, through teardown, and fails. */
static int signal_pid1(struct watch *w, int sig, const char *why, aidp_error *err)
{
        if (kill(w->r->pid1, sig) < 0 && errno != ESRCH)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "signalling the sandbox's pid 1 (%s); the run is stopped",
                                        why);
        return 0;
}

/* Kill every process of the job now (pid 1 stays, holding the mounts). */
static int kill_job(struct watch *w, const char *why, aidp_error *err)
{
        if (w->killed)
                return 0;
        w->killed = true;
        w->r->res->killed_why = why; /* said in the summary (cli_report.c) */
        w->r->res->kill_after_seconds = w->kill_after;
        return signal_pid1(w, AIDP_SIG_KILL_JOB, why, err);
}

static int on_wall(struct watch *w, aidp_error *err)
{
        uint64_t x;
        if (read(w->wall, &x, sizeof x) < 0)
                return 0;
        struct run *r = w->r;
        r->res->timed_out = true;
        fprintf(stderr, "aidp-supervisor: run %s exceeded its wall time of %llus; stopping it\n",
                r->res->run_id, (unsigned long long)r->profile.limits.wall_seconds);
        w->stops++;
        return signal_pid1(w, SIGTERM, "wall time", err);
}

static int on_grace(struct watch *w, aidp_error *err)
{
        uint64_t x;
        if (read(w->grace, &x, sizeof x) < 0)
                return 0;
        return kill_job(w, "kill-after", err);
}

static int on_signal(struct watch *w, aidp_error *err)
{
        struct signalfd_siginfo si;
        if (read(w->sfd, &si, sizeof si) != sizeof si)
                return 0;
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD)
                return 0; /* pid 1 ends only through the status pipe or a kill */
        int rc = signal_pid1(w, sig, "forwarding a signal", err);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT)
                w->r->res->stop_signal = sig; /* cancelled from outside: an ABORT */
        if (rc == 0 && (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT))
                /* A second stop request does not wait. */
                if (++w->stops >= 2)
                        rc = kill_job(w, "second stop request", err);
        return rc;
}

/* The first stop request arms the kill-after grace. A grace that cannot be
 * armed would let the job outlive its stop: it is killed at once instead, and
 * the run fails. */
static int arm_grace(struct watch *w, aidp_error *err)
{
        if (!w->stops || w->grace_armed)
                return 0;
        w->grace_armed = true;
        struct itimerspec its = {.it_value = {.tv_sec = (time_t)w->kill_after}};
        if (timerfd_settime(w->grace, 0, &its, NULL) == 0)
                return 0;
        int e = errno;
        kill_job(w, "kill-after", err);
        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e,
                                "arming the kill-after timer of %llus; the job was killed at once",
                                (unsigned long long)w->kill_after);
}

/* Until pid 1 reports the job's status (or dies). The output relay is pumped
 * all along. */
static int watch_loop(struct watch *w, aidp_error *err)
{
        struct run *r = w->r;
        for (;;) {
                struct pollfd pf[10] = {
                        {.fd = w->status_r, .events = POLLIN},
                        {.fd = w->sfd, .events = POLLIN},
                        {.fd = w->wall, .events = POLLIN},
                        {.fd = w->grace, .events = POLLIN},
                };
                pf[9] = (struct pollfd){.fd = w->access, .events = POLLIN};
                /* denials, counted as they come so that a burst never
                 * overflows the NFLOG socket */
                pf[8] = (struct pollfd){.fd = aidp_run_net_fd(&r->net), .events = POLLIN};
                for (int i = 0; i < 2; i++) {
                        short in = aidp_relay_want_in(&r->relay[i]);
                        short o = aidp_relay_want_out(&r->relay[i]);
                        pf[4 + 2 * i] =
                                (struct pollfd){.fd = in ? r->relay[i].from : -1, .events = in};
                        pf[5 + 2 * i] = (struct pollfd){.fd = o ? r->relay[i].to : -1, .events = o};
                }
                if (poll(pf, 10, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "poll");
                }
                if (pf[8].revents)
                        aidp_run_net_drain(&r->net);
                for (int i = 0; i < 2; i++) {
                        if (pf[4 + 2 * i].revents)
                                aidp_relay_on_readable(&r->relay[i]);
                        if (pf[5 + 2 * i].revents)
                                aidp_relay_on_writable(&r->relay[i]);
                }
                if (pf[0].revents) {
                        int32_t code;
                        if (read(w->status_r, &code, sizeof code) == sizeof code)
                                r->res->job_status = code;
                        else
                                r->res->job_status = -1; /* pid 1 died: killed with the cgroup */
                        clock_gettime(CLOCK_MONOTONIC, &r->job_end);
                        return 0;
                }
                int rc = 0;
                if (pf[2].revents)
                        rc = on_wall(w, err);
                if (rc == 0 && pf[9].revents)
                        rc = on_access(w, err);
                if (rc == 0 && pf[3].revents)
                        rc = on_grace(w, err);
                if (rc == 0 && pf[1].revents)
                        rc = on_signal(w, err);
                if (rc == 0)
                        rc = arm_grace(w, err);
                if (rc < 0)
                        return rc;
        }
}

/* Step 7: the go, then the job until it ends. */
int aidp_run_start_and_monitor(struct run *r, aidp_error *err)
{
        struct aidp_run_fds f = {{-1, r->sync_w}, {r->err_r, -1}, {r->status_r, -1}, {-1, -1}};
        r->sync_w = r->err_r = r->status_r = -1;
        struct watch w = {.r = r,
                          .status_r = f.status[0],
                          .sfd = -1,
                          .wall = -1,
                          .grace = -1,
                          .access = -1,
                          .kill_after = r->profile.limits.kill_after_seconds};
        int rc = watch_open(&w, err);
        if (rc == 0)
                rc = send_go(r, &f, w.sfd, err);
        if (rc == 0) {
                aidp_run_fault_point("job");
                rc = watch_loop(&w, err);
        }
        watch_close(&w);
        int *ends[] = {&f.sync[1], &f.err[0], &f.status[0]};
        for (size_t i = 0; i < ARRAY_SIZE(ends); i++)
                aidp_run_close(ends[i]);
        return rc;
}

static long ms_since(const struct timespec *t)
{
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (long)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* scancel (proctrack/linuxproc) and a node's shutdown signal the whole process
 * tree at once: the job may die of its copy, and pid 1 report it, before the
 * supervisor's own copy is even sent. That run was stopped from outside (an
 * ABORT), not a job that failed. The signals are still blocked here (held until
 * the end record), so a late one waits, pending, to be taken. */
void aidp_run_late_stop(struct run *r)
{
        struct aidp_run_result *res = r->res;
        if (res->stop_signal || !res->started || res->timed_out || res->access_expired)
                return;
        sigset_t stop;
        sigemptyset(&stop);
        int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                sigaddset(&stop, sigs[i]);
        /* Only a job that died of a signal (or whose pid 1 died) waits: one that
         * exited by itself is not what a stop request looks like. */
        bool by_signal = res->job_status > 128 || res->job_status < 0;
        for (;;) {
                long left = 0;
                if (by_signal && (r->job_end.tv_sec || r->job_end.tv_nsec))
                        left = AIDP_RUN_STOP_WINDOW_MS - ms_since(&r->job_end);
                struct timespec ts = {left > 0 ? left / 1000 : 0,
                                      left > 0 ? (left % 1000) * 1000000 : 0};
                int sig = sigtimedwait(&stop, NULL, &ts);
                if (sig > 0) {
                        res->stop_signal = sig;
                        return;
                }
                if (errno != EINTR)
                        return;
        }
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
