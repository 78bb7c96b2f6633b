/* One connection, in its own worker process (daemon.h): identify the peer,
 * read one request within the deadline, answer it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "supervisor/daemon/daemon.h"
#include "supervisor/daemon/proto.h"
#include "supervisor/daemon/registry.h"
#include "supervisor/daemon/runlog.h"

struct aidp_daemon_session {
        int sock;
        struct aidp_peer peer;
        const struct aidp_daemon_config *cfg;
        bool started;
        bool detached; /* the run's output goes to its log; the client is told and let go */
        char run_id[64];
        atomic_bool finished; /* the run is over: a disconnect now means nothing */
        bool exit_sent;       /* the client has its status (session_ended) */
        bool quiet;           /* the server was told (aidp_daemon_session_quiet) */
        /* A connection this worker accepted itself (pool.h): the line on
         * which the server says whether it may be served; -1 once answered
         * (or when the server accepted it and judged it then). */
        int verdict;
        pthread_t watcher;
        /* a detached run's log, fed by the relay thread from relay_r */
        int log_fd, relay_r;
        pthread_t relay;
        bool relaying;
        volatile int relay_stop;
        uint64_t dropped;
};

/* The server's word on a connection this worker accepted itself: its
 * limits (--max-clients, --max-clients-per-user) hold as for one it
 * accepted. Awaited before anything of a run or an answer exists. 0 or < 0
 * with err (the refusal to send the client). */
static int await_verdict(struct aidp_daemon_session *s, aidp_error *err)
{
        if (s->verdict < 0)
                return 0;
        json_object *m = NULL;
        aidp_error e2 = {0};
        int r = aidp_proto_recv_msg(s->verdict, -1, &m, &e2);
        close(s->verdict);
        s->verdict = -1;
        json_object *ok = NULL;
        const char *msg = NULL;
        bool yes = r > 0 && json_object_object_get_ex(m, "ok", &ok) &&
                   json_object_is_type(ok, json_type_boolean) && json_object_get_boolean(ok);
        if (r > 0)
                aidp_proto_get_str(m, "message", false, &msg, &e2);
        int rc = yes ? 0
                     : aidp_error_set(err, AIDP_EXIT_INTERNAL, EAGAIN, "%s",
                                      msg ? msg : "the daemon is stopping; try again");
        json_object_put(m);
        return rc;
}

/* Before the request is read: a connection the server refused is answered at
 * once, not after the request deadline (a client that holds connections open
 * without a request must not hold workers). The request, when it comes
 * first, is read first: the verdict is awaited later (await_verdict). */
static int refused_early(struct aidp_daemon_session *s, aidp_error *err)
{
        if (s->verdict < 0)
                return 0;
        struct pollfd p[2] = {{.fd = s->sock, .events = POLLIN},
                              {.fd = s->verdict, .events = POLLIN}};
        if (poll(p, 2, s->cfg->request_timeout_ms) <= 0 || !p[1].revents)
                return 0;
        return await_verdict(s, err);
}

const struct aidp_peer *aidp_daemon_session_peer(const struct aidp_daemon_session *s)
{
        return &s->peer;
}

/* The signals a client may forward: those a terminal or a scheduler sends a
 * foreground job. The run core passes them on to the job. */
static bool forwardable(int sig)
{
        return sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT ||
               sig == SIGWINCH || sig == SIGUSR1 || sig == SIGUSR2;
}

/* The client's side of a run in progress: its "signal" messages become our
 * own signals, and the end of its connection (or anything else on it) a
 * SIGTERM, which the run core answers like a scheduler's cancel: stop, shred,
 * end record. All signals are blocked in this thread, so they reach the run
 * core's signalfd. */
static void *watch_client(void *arg)
{
        struct aidp_daemon_session *s = arg;
        for (;;) {
                json_object *m = NULL;
                aidp_error err = {0};
                int r = aidp_proto_recv_msg(s->sock, -1, &m, &err);
                const char *op = NULL;
                int64_t sig = 0;
                aidp_error e2 = {0};
                if (r > 0 && aidp_proto_get_str(m, "op", true, &op, &e2) == 0 && op &&
                    !strcmp(op, "signal") &&
                    aidp_proto_get_int(m, "signal", true, 1, 64, &sig, &e2) == 0 &&
                    forwardable((int)sig)) {
                        json_object_put(m);
                        kill(getpid(), (int)sig);
                        continue;
                }
                json_object_put(m);
                if (r > 0)
                        continue; /* an unknown message mid-run: ignored */
                if (!atomic_load(&s->finished))
                        kill(getpid(), SIGTERM);
                return NULL;
        }
}

/* A thread with every signal blocked: signals stay with the run core's
 * thread (its signalfd). 0 or an errno. */
static int thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int r = pthread_create(t, NULL, fn, arg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return r;
}

/* Made while the worker idles (aidp_daemon_session_ahead), each a part of
 * the request's path before (docs/run-core.md, "The worker segment"):
 *  - the client's watcher: pthread_create (the stack's mapping, its guard
 *    page, clone3) was about 0.2 ms. It waits on an eventfd for the session
 *    it is to watch; a worker that serves no run (ps, stop, logs, a refusal)
 *    never wakes it, and _exit ends it.
 *  - the registry entry's file (registry.h), about 0.15 ms to create: only
 *    written and renamed into place once the run is accepted; the server
 *    removes one that was never used when it reaps the worker. */
static struct {
        pthread_t tid;
        int wake; /* eventfd; -1: none ahead, or already handed its session */
        struct aidp_daemon_session *s;
        int reg; /* the registry entry's file; -1: none */
} g_ahead = {.wake = -1, .reg = -1};

static void *watch_ahead(void *arg)
{
        (void)arg;
        prctl(PR_SET_NAME, "aidp-watch"); /* ps, top and profilers tell the parts apart */
        uint64_t v;
        while (read(g_ahead.wake, &v, sizeof v) < 0 && errno == EINTR)
                ;
        struct aidp_daemon_session *s = __atomic_load_n(&g_ahead.s, __ATOMIC_ACQUIRE);
        return s ? watch_client(s) : NULL;
}

void aidp_daemon_session_ahead(const struct aidp_daemon_config *c)
{
        if (g_ahead.reg < 0) {
                int fd = aidp_registry_ahead(c->state_dir, getpid());
                g_ahead.reg = fd < 0 ? -1 : fd;
        }
        if (g_ahead.wake >= 0)
                return;
        g_ahead.wake = eventfd(0, EFD_CLOEXEC);
        if (g_ahead.wake >= 0 && thread_start(&g_ahead.tid, watch_ahead, NULL) != 0) {
                close(g_ahead.wake);
                g_ahead.wake = -1;
        }
}

void aidp_daemon_session_ahead_drop(const struct aidp_daemon_config *c)
{
        if (g_ahead.reg < 0)
                return;
        close(g_ahead.reg);
        g_ahead.reg = -1;
        aidp_registry_remove(c->state_dir, getpid());
}

/* The watcher of s from now on: the one made ahead, woken, or a new one. */
static int watcher_start(struct aidp_daemon_session *s)
{
        if (g_ahead.wake >= 0) {
                __atomic_store_n(&g_ahead.s, s, __ATOMIC_RELEASE);
                uint64_t one = 1;
                bool woken = write(g_ahead.wake, &one, sizeof one) == (ssize_t)sizeof one;
                /* the fd stays open: the thread may not have read it yet */
                g_ahead.wake = -1;
                if (woken) {
                        s->watcher = g_ahead.tid;
                        return 0;
                }
        }
        return thread_start(&s->watcher, watch_client, s);
}

static void *relay_log(void *arg)
{
        struct aidp_daemon_session *s = arg;
        aidp_runlog_relay(s->relay_r, s->log_fd, s->cfg->log_max, &s->dropped, &s->relay_stop);
        return NULL;
}

/* Called with the log directory locked (detach): no other request of the
 * same user is checked between this and the new log's creation. */
static int log_budget(const struct aidp_daemon_session *s, aidp_error *err)
{
        const struct aidp_daemon_config *c = s->cfg;
        if (!c->log_max_per_user)
                return 0;
        /* A run still going counts as its full log: detached runs hold no
         * connection, and this is what bounds how many one user has. */
        uint64_t used = aidp_runlog_usage(c->log_dir, s->peer.uid, c->log_max);
        if (used + c->log_max <= c->log_max_per_user)
                return 0;
        return aidp_error_set(err, AIDP_EXIT_USAGE, EDQUOT,
                              "your detached runs' logs take %llu KiB, and a new one may take "
                              "%llu KiB more: over the %llu KiB one user may hold "
                              "(--log-max-per-user). Remove the logs of finished runs with "
                              "`aidp logs --rm RUN` (aidp ps lists the runs still going), or "
                              "wait until they expire",
                              (unsigned long long)(used / 1024),
                              (unsigned long long)(c->log_max / 1024),
                              (unsigned long long)(c->log_max_per_user / 1024));
}

int aidp_daemon_session_detach(struct aidp_daemon_session *s, const char *run_id, aidp_error *err)
{
        if (await_verdict(s, err) < 0)
                return -1;
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
        /* The budget's check and the new log, one user's request at a time. */
        int lock = open(s->cfg->log_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (lock >= 0)
                flock(lock, LOCK_EX);
        int fd = log_budget(s, err) < 0
                         ? -1
                         : aidp_runlog_create(s->cfg->log_dir, run_id, s->peer.uid, err);
        if (lock >= 0)
                close(lock);
        if (fd < 0) {
                close(p[0]);
                close(p[1]);
                return -1;
        }
        s->log_fd = fd;
        s->relay_r = p[0];
        /* The relay drains the pipe whatever the log's state: the job never
         * blocks on its output. */
        int r = thread_start(&s->relay, relay_log, s);
        if (r != 0) {
                close(p[0]);
                close(p[1]);
                close(fd);
                aidp_runlog_discard(s->cfg->log_dir, run_id);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, r, "pthread_create");
        }
        s->relaying = true;
        s->detached = true;
        snprintf(s->run_id, sizeof s->run_id, "%s", run_id);
        return p[1];
}

/* The run is over: this process lets go of the pipe (its stdout and stderr
 * were the pipe's), and the relay copies what is left and ends. */
static void relay_finish(struct aidp_daemon_session *s)
{
        if (!s->relaying)
                return;
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
                dup2(null, 1);
                dup2(null, 2);
                close(null);
        }
        __atomic_store_n(&s->relay_stop, 1, __ATOMIC_RELEASE);
        pthread_join(s->relay, NULL);
        s->relaying = false;
        close(s->relay_r);
        close(s->log_fd);
}

/* A detached run lets its client go: the connection is closed and the
 * server told that this worker no longer holds one (the per-uid limit). */
static void let_go(struct aidp_daemon_session *s)
{
        close(s->sock);
        s->sock = -1;
        pid_t self = getpid();
        int nfd = aidp_daemon_notice_fd();
        if (nfd >= 0 && write(nfd, &self, sizeof self) < 0) {
                /* the server counts this run as a connection until it ends */
        }
}

/* AIDP_TIMING=1 (the daemon's environment, admin-only): the worker's part
 * before its run, from the connection in hand to "started", in the format of
 * the run's phases (supervisor/run/run.c), on the client's stderr. */
static struct timespec g_intake;
static struct rusage g_intake_ru;

static void intake_start(void)
{
        if (!getenv("AIDP_TIMING"))
                return;
        clock_gettime(CLOCK_MONOTONIC, &g_intake);
        getrusage(RUSAGE_SELF, &g_intake_ru);
}

static void intake_print(const char *what, const char *name)
{
        struct timespec now;
        struct rusage ru;
        clock_gettime(CLOCK_MONOTONIC, &now);
        getrusage(RUSAGE_SELF, &ru);
        const struct rusage *a = &g_intake_ru;
        double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec - a->ru_utime.tv_sec -
                              a->ru_stime.tv_sec) *
                             1e3 +
                     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec - a->ru_utime.tv_usec -
                              a->ru_stime.tv_usec) /
                             1e3;
        fprintf(stderr, "aidp-supervisor: %s: %-10s %8.3f ms  cpu %6.3f ms  faults %4ld\n", what,
                name,
                (double)(now.tv_sec - g_intake.tv_sec) * 1e3 +
                        (double)(now.tv_nsec - g_intake.tv_nsec) / 1e6,
                cpu, ru.ru_minflt - a->ru_minflt);
}

static void intake_done(void)
{
        if (!g_intake.tv_sec || !getenv("AIDP_TIMING"))
                return;
        intake_print("timing", "intake");
}

/* And the worker's whole part, from the connection in hand to the status
 * (its threads included; what lies between the phases too). Not a phase:
 * scripts/bench-start sums those. */
static void worker_done(void)
{
        if (!g_intake.tv_sec || !getenv("AIDP_TIMING"))
                return;
        intake_print("worker", "to-status");
}

int aidp_daemon_session_started(struct aidp_daemon_session *s, const char *run_id,
                                const char *command, aidp_error *err)
{
        if (await_verdict(s, err) < 0)
                return -1;
        int r = aidp_registry_add(s->cfg->state_dir, getpid(), g_ahead.reg, s->peer.uid, run_id,
                                  command, s->detached);
        g_ahead.reg = -1;
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "registering run %s", run_id);
        if (!s->detached)
                intake_done();
        json_object *m = aidp_proto_msg("started");
        json_object_object_add(m, "run_id", json_object_new_string(run_id));
        if (s->detached)
                json_object_object_add(m, "detached", json_object_new_boolean(true));
        r = aidp_proto_send(s->sock, m, NULL, 0);
        json_object_put(m);
        if (s->detached) {
                /* The run goes on whether or not the client heard of it:
                 * its id is in `aidp ps`. */
                s->started = true;
                let_go(s);
                return 0;
        }
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "the client went away");
        if ((r = watcher_start(s)) != 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, r, "pthread_create");
        s->started = true;
        return 0;
}

static void send_exit(struct aidp_daemon_session *s, int status)
{
        json_object *m = aidp_proto_msg("exit");
        json_object_object_add(m, "status", json_object_new_int(status));
        aidp_proto_send(s->sock, m, NULL, 0);
        json_object_put(m);
        s->exit_sent = true;
}

void aidp_daemon_session_quiet(struct aidp_daemon_session *s)
{
        if (s->quiet)
                return;
        s->quiet = true;
        /* Its negative pid: what of this run a fork of the server would slow
         * down is over (server.c, refill). A notice that cannot be written
         * leaves the server waiting for this worker's end. */
        pid_t over = -getpid();
        int nfd = aidp_daemon_notice_fd();
        if (nfd >= 0 && write(nfd, &over, sizeof over) < 0) {
                /* as before this notice existed */
        }
}

static int g_daemon_log = -1;

void aidp_daemon_session_keep_log(void)
{
        if (g_daemon_log < 0)
                g_daemon_log = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
}

void aidp_daemon_session_ended(struct aidp_daemon_session *s, int status)
{
        if (s->detached || s->exit_sent || s->sock < 0)
                return;
        /* First: the client closes its end once it has its status, and the
         * watcher must not take that for a disconnect mid-run. */
        atomic_store(&s->finished, true);
        worker_done();
        send_exit(s, status);
        aidp_daemon_session_quiet(s);
        /* The client's terminal or files are no longer this worker's to
         * write to (nor a pipe whose reader has gone, which would be a
         * SIGPIPE): what the clean-up might print (a failure it leaves to gc)
         * goes to the daemon's own log. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                for (int fd = 0; fd < 3; fd++)
                        dup2(fd == STDERR_FILENO && g_daemon_log >= 0 ? g_daemon_log : null, fd);
                close(null);
        }
}

static int do_ps(struct aidp_daemon_session *s)
{
        json_object *m = aidp_proto_msg("ps");
        json_object_object_add(
                m, "runs", aidp_registry_list(s->cfg->state_dir, s->peer.uid, s->peer.uid == 0));
        int r = aidp_proto_send(s->sock, m, NULL, 0);
        json_object_put(m);
        return r < 0 ? AIDP_EXIT_INTERNAL : 0;
}

static int do_stop(struct aidp_daemon_session *s, json_object *req)
{
        const char *id = NULL;
        aidp_error err = {0};
        if (aidp_proto_get_str(req, "run_id", true, &id, &err) < 0) {
                aidp_proto_send_error(s->sock, AIDP_EXIT_USAGE, err.msg);
                return AIDP_EXIT_USAGE;
        }
        pid_t pid;
        uid_t uid;
        char msg[256];
        /* Another user's run is reported as no run at all: which runs exist
         * is theirs to know. */
        if (aidp_registry_find(s->cfg->state_dir, id, &pid, &uid) < 0 ||
            (s->peer.uid != 0 && uid != s->peer.uid)) {
                snprintf(msg, sizeof msg,
                         "no run %.64s of yours is in progress (aidp ps lists them; how a "
                         "detached one ended: aidp logs %.64s)",
                         id, id);
                aidp_proto_send_error(s->sock, AIDP_EXIT_USAGE, msg);
                return AIDP_EXIT_USAGE;
        }
        /* The pidfd first, then the entry again: while it exists the worker
         * has not been reaped, so the pidfd is of our worker. */
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        pid_t again;
        if (pfd < 0 || aidp_registry_find(s->cfg->state_dir, id, &again, &uid) < 0 ||
            again != pid || syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0) < 0) {
                if (pfd >= 0)
                        close(pfd);
                snprintf(msg, sizeof msg, "run %.64s ended meanwhile", id);
                aidp_proto_send_error(s->sock, AIDP_EXIT_USAGE, msg);
                return AIDP_EXIT_USAGE;
        }
        close(pfd);
        json_object *m = aidp_proto_msg("stopping");
        json_object_object_add(m, "run_id", json_object_new_string(id));
        aidp_proto_send(s->sock, m, NULL, 0);
        json_object_put(m);
        return 0;
}

static int do_run(struct aidp_daemon_session *s, json_object *req, int *fds, size_t n)
{
        aidp_error err = {0};
        int st = s->cfg->run(s, req, fds, n, s->cfg->arg, &err);
        atomic_store(&s->finished, true);
        if (s->detached && s->started) {
                /* Nobody to answer: the status goes beside the log. */
                int status = st < 0 ? (err.status ? err.status : AIDP_EXIT_INTERNAL) : st;
                if (st < 0)
                        fprintf(stderr, "aidp-supervisor: %s\n", err.msg);
                relay_finish(s);
                aidp_runlog_ended(s->cfg->log_dir, s->run_id, status, s->dropped);
                return status;
        }
        relay_finish(s);
        if (s->detached)
                aidp_runlog_discard(s->cfg->log_dir, s->run_id);
        if (st < 0) {
                aidp_proto_send_error(s->sock, err.status ? err.status : AIDP_EXIT_INTERNAL,
                                      err.msg);
                return err.status ? err.status : AIDP_EXIT_INTERNAL;
        }
        if (!s->exit_sent)
                send_exit(s, st);
        return st;
}

/* Wait (following) until the run has ended or the client went away. 1 with
 * *status when it ended, 0 when the client left. */
static int wait_ended(struct aidp_daemon_session *s, const char *id, int *status)
{
        for (;;) {
                if (aidp_runlog_status(s->cfg->log_dir, id, status, NULL) == 1)
                        return 1;
                pid_t pid;
                uid_t uid;
                /* Gone from the registry without a status: its worker died
                 * (gc recorded the run's end). */
                if (aidp_registry_find(s->cfg->state_dir, id, &pid, &uid) < 0 &&
                    aidp_runlog_status(s->cfg->log_dir, id, status, NULL) != 1) {
                        *status = AIDP_EXIT_INTERNAL;
                        return 1;
                }
                struct pollfd p = {.fd = s->sock, .events = POLLIN};
                if (poll(&p, 1, 100) > 0)
                        return 0; /* anything from the client, or its end: it is done */
        }
}

/* `aidp logs --rm`: the caller's log (checked by the caller) shredded, unless
 * its run is still going. */
static int remove_log(struct aidp_daemon_session *s, const char *id)
{
        pid_t pid;
        uid_t uid;
        if (aidp_registry_find(s->cfg->state_dir, id, &pid, &uid) == 0) {
                char msg[256];
                snprintf(msg, sizeof msg,
                         "run %.64s is still going: its log stays while it runs (aidp stop "
                         "%.64s ends it)",
                         id, id);
                aidp_proto_send_error(s->sock, AIDP_EXIT_USAGE, msg);
                return AIDP_EXIT_USAGE;
        }
        aidp_runlog_remove(s->cfg->log_dir, id);
        json_object *m = aidp_proto_msg("removed");
        json_object_object_add(m, "run_id", json_object_new_string(id));
        aidp_proto_send(s->sock, m, NULL, 0);
        json_object_put(m);
        return 0;
}

static int do_logs(struct aidp_daemon_session *s, json_object *req)
{
        const char *id = NULL;
        aidp_error err = {0};
        json_object *fv = NULL;
        bool follow = json_object_object_get_ex(req, "follow", &fv) && json_object_get_boolean(fv);
        if (aidp_proto_get_str(req, "run_id", true, &id, &err) < 0) {
                aidp_proto_send_error(s->sock, AIDP_EXIT_USAGE, err.msg);
                return AIDP_EXIT_USAGE;
        }
        int fd = aidp_runlog_open(s->cfg->log_dir, id, s->peer.uid);
        if (fd < 0) {
                char msg[256];
                snprintf(msg, sizeof msg,
                         "no detached run %.64s of yours has a log (aidp ps; a log is kept "
                         "for a while after its run ends, then shredded)",
                         id);
                aidp_proto_send_error(s->sock, AIDP_EXIT_USAGE, msg);
                return AIDP_EXIT_USAGE;
        }
        int status = 0;
        uint64_t dropped = 0;
        bool ended = aidp_runlog_status(s->cfg->log_dir, id, &status, &dropped) == 1;
        json_object *rv = NULL;
        if (json_object_object_get_ex(req, "rm", &rv) && json_object_get_boolean(rv)) {
                close(fd);
                return remove_log(s, id);
        }
        json_object *m = aidp_proto_msg("log");
        json_object_object_add(m, "run_id", json_object_new_string(id));
        json_object_object_add(m, "ended", json_object_new_boolean(ended));
        if (ended) {
                json_object_object_add(m, "status", json_object_new_int(status));
                json_object_object_add(m, "dropped", json_object_new_int64((int64_t)dropped));
        }
        int r = aidp_proto_send(s->sock, m, &fd, 1);
        json_object_put(m);
        close(fd);
        if (r < 0 || ended || !follow || wait_ended(s, id, &status) == 0)
                return 0;
        m = aidp_proto_msg("exit");
        json_object_object_add(m, "status", json_object_new_int(status));
        if (aidp_runlog_status(s->cfg->log_dir, id, &status, &dropped) == 1)
                json_object_object_add(m, "dropped", json_object_new_int64((int64_t)dropped));
        aidp_proto_send(s->sock, m, NULL, 0);
        json_object_put(m);
        return 0;
}

/* ps, stop, logs: the requests that are no run. */
static int serve_query(struct aidp_daemon_session *s, const char *op, json_object *req)
{
        if (!strcmp(op, "ps"))
                return do_ps(s);
        if (!strcmp(op, "stop"))
                return do_stop(s, req);
        if (!strcmp(op, "logs"))
                return do_logs(s, req);
        char msg[128];
        snprintf(msg, sizeof msg, "unknown op \"%.32s\" (run, ps, stop, logs)", op);
        aidp_proto_send_error(s->sock, AIDP_EXIT_USAGE, msg);
        return AIDP_EXIT_USAGE;
}

static int serve_one(struct aidp_daemon_session *s)
{
        aidp_error err = {0};
        if (aidp_peer_identify(s->sock, &s->peer, &err) < 0) {
                aidp_proto_send_error(s->sock, err.status, err.msg);
                return err.status;
        }
        /* Judged on the pid, then proven still its own (its pidfd): a
         * process inside a run is refused whatever it asks. */
        bool in_run = s->cfg->peer_in_run && s->cfg->peer_in_run(s->peer.pid, s->cfg->arg);
        if (in_run ||
            (s->peer.pidfd >= 0 && syscall(SYS_pidfd_send_signal, s->peer.pidfd, 0, NULL, 0) < 0)) {
                aidp_proto_send_error(
                        s->sock, AIDP_EXIT_DENIED,
                        in_run ? "a process inside an aidp run cannot use the daemon (a job "
                                 "starts, lists and stops no runs)"
                               : "the connecting process is gone");
                return AIDP_EXIT_DENIED;
        }
        if (refused_early(s, &err) < 0) {
                aidp_proto_send_error(s->sock, err.status, err.msg);
                return err.status;
        }
        json_object *req = NULL;
        int fds[AIDP_PROTO_MAX_FDS];
        size_t n = 0;
        int r = aidp_proto_recv(s->sock, s->cfg->request_timeout_ms, &req, fds, AIDP_PROTO_MAX_FDS,
                                &n, &err);
        if (r <= 0) {
                if (r < 0)
                        aidp_proto_send_error(s->sock, err.status, err.msg);
                return AIDP_EXIT_USAGE;
        }
        const char *op = NULL;
        int st;
        if (aidp_proto_get_str(req, "op", true, &op, &err) < 0) {
                aidp_proto_send_error(s->sock, err.status, err.msg);
                st = AIDP_EXIT_USAGE;
        } else if (!strcmp(op, "run")) {
                st = do_run(s, req, fds, n);
                n = 0; /* the handler took them */
        } else if (await_verdict(s, &err) < 0) {
                aidp_proto_send_error(s->sock, err.status, err.msg);
                st = err.status;
        } else {
                /* Not a run: nothing of it is a start-up that a fork of the
                 * server would slow down (a `logs --follow` may last), told
                 * once the server has counted this connection (the verdict). */
                aidp_daemon_session_quiet(s);
                st = serve_query(s, op, req);
        }
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        json_object_put(req);
        return st;
}

void aidp_daemon_worker(const struct aidp_daemon_config *c, int conn, int verdict)
{
        intake_start();
        struct aidp_daemon_session s = {.sock = conn,
                                        .cfg = c,
                                        .peer.pidfd = -1,
                                        .log_fd = -1,
                                        .relay_r = -1,
                                        .verdict = verdict};
        int st = serve_one(&s);
        aidp_peer_release(&s.peer);
        aidp_daemon_session_ahead_drop(c); /* no run used it (ps, a refusal) */
        /* The watcher may still block on the socket: the process ends it. */
        _exit(st & 0xff);
}
