/* The accept loop of aidp-supervisor serve (daemon.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "supervisor/daemon/daemon.h"
#include "supervisor/daemon/pool.h"
#include "supervisor/daemon/proto.h"
#include "supervisor/daemon/registry.h"
#include "supervisor/daemon/runlog.h"

int aidp_daemon_activation_fd(void)
{
        const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
        if (!pid || !n || strtol(pid, NULL, 10) != (long)getpid() || strtol(n, NULL, 10) != 1)
                return -1;
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
                return -1;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        fcntl(3, F_SETFD, FD_CLOEXEC);
        return 3;
}

int aidp_daemon_listen(const struct aidp_daemon_config *c, aidp_error *err)
{
        if (c->listen_fd >= 0)
                return c->listen_fd;
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        char tmp[sizeof a.sun_path + 32];
        if (snprintf(tmp, sizeof tmp, "%s.%d.new", c->socket_path, (int)getpid()) >=
            (int)sizeof a.sun_path)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG, "--socket %s: too long",
                                      c->socket_path);
        strcpy(a.sun_path, tmp);
        /* A stale socket of a previous instance is replaced; anything else
         * at that path is the admin's and left alone. */
        struct stat st;
        if (lstat(c->socket_path, &st) == 0 && !S_ISSOCK(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EEXIST,
                                      "--socket %s: exists and is not a socket", c->socket_path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "socket");
        /* Bound 0600 (umask) under a name of its own, opened to the group,
         * listening, and only then renamed into place: no moment in which
         * anyone else could connect, and none in which the path is there but
         * refuses connections (a client racing the daemon's start got
         * ECONNREFUSED between bind and listen). */
        unlink(tmp);
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *)&a, sizeof a);
        umask(old);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "bind %s", tmp);
        if ((c->has_group && (chown(tmp, 0, c->group) < 0 || chmod(tmp, 0660) < 0)) ||
            listen(fd, SOMAXCONN) < 0 || rename(tmp, c->socket_path) < 0) {
                int e = errno;
                unlink(tmp);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "%s: group, mode and listen",
                                        c->socket_path);
        }
        return TAKE_FD(fd);
}

static int signals_fd(sigset_t *old)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, old);
        return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* The workers of this server and whose connection each holds (the peer's uid
 * from SO_PEERCRED at accept, for the per-uid limit). */
struct worker {
        pid_t pid;
        uid_t uid;
        bool holds; /* counted against its uid (not a detached run) */
        /* counted against --max-clients: a live connection the server let it
         * serve. A worker that took a connection itself and was refused it
         * (serve_lines) is not: it only tells its client why and ends. */
        bool live;
        /* its client has its status (or its run was detached, or it serves
         * no run): past what a fork of the server would slow down */
        bool quiet;
};

struct workers {
        struct worker *w;
        size_t n, cap;
};

static unsigned count_uid(const struct workers *ws, uid_t uid)
{
        unsigned n = 0;
        for (size_t i = 0; i < ws->n; i++)
                n += ws->w[i].holds && ws->w[i].uid == uid;
        return n;
}

/* Returns whether pid was a worker counted against --max-clients. */
static bool forget(struct workers *ws, pid_t pid, bool only_release)
{
        for (size_t i = 0; i < ws->n; i++) {
                if (ws->w[i].pid != pid)
                        continue;
                bool live = ws->w[i].live;
                if (only_release)
                        ws->w[i].holds = false;
                else
                        ws->w[i] = ws->w[--ws->n];
                return live;
        }
        return false;
}

/* Workers write their pid to the notice pipe when they detach their run,
 * and its negative once their client has its status (session.c). */
static void read_notices(int fd, struct workers *ws)
{
        pid_t pid;
        while (read(fd, &pid, sizeof pid) == sizeof pid) {
                if (pid > 0)
                        forget(ws, pid, true);
                for (size_t i = 0; i < ws->n; i++)
                        if (ws->w[i].pid == (pid > 0 ? pid : -pid))
                                ws->w[i].quiet = true;
        }
}

/* Connections being served whose client waits for its run. */
static unsigned busy(const struct workers *ws)
{
        unsigned n = 0;
        for (size_t i = 0; i < ws->n; i++)
                n += ws->w[i].live && !ws->w[i].quiet;
        return n;
}

/* Reap every worker that ended; its registry entry goes before its pid is
 * released (waitid WNOWAIT first), so that `stop` never signals a process
 * that reused the pid. So do its notices: one written just before it ended
 * is read while the pid is still its own. */
static unsigned reap(const struct aidp_daemon_config *c, unsigned workers, struct workers *ws,
                     struct aidp_daemon_pool *pool, int notice_r)
{
        for (;;) {
                siginfo_t si = {0};
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
                        return workers;
                read_notices(notice_r, ws);
                /* An idle worker of the pool served nobody: nothing to undo. */
                if (aidp_daemon_pool_reaped(pool, si.si_pid)) {
                        /* (but the registry file it made ahead) */
                        aidp_registry_remove(c->state_dir, si.si_pid);
                        waitpid(si.si_pid, NULL, 0);
                        continue;
                }
                aidp_registry_remove(c->state_dir, si.si_pid);
                /* Only a live connection's worker frees a place: not a
                 * refused one (never counted), nor another child (gc's). */
                if (forget(ws, si.si_pid, false) && workers)
                        workers--;
                waitpid(si.si_pid, NULL, 0);
                if ((si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) && c->worker_crashed)
                        c->worker_crashed(si.si_pid, si.si_status, c->arg);
        }
}

/* The fds a worker must not keep: the listening socket, the signalfd and the
 * notice pipe's read end. */
struct server_fds {
        int lfd, sfd, notice_r;
        struct aidp_daemon_pool *pool;
};

/* Why a connection of uid may not be served now, or NULL: the same limits
 * whether the server accepted it or an idle worker did (pool.h). */
static const char *refusal(const struct aidp_daemon_config *c, const struct workers *ws,
                           unsigned workers, uid_t uid, char *msg, size_t size)
{
        if (workers >= c->max_workers)
                return "the daemon serves as many clients as it may; try again";
        if (c->max_per_uid && count_uid(ws, uid) >= c->max_per_uid) {
                snprintf(msg, size,
                         "you have %u connections to the daemon open at once, the most one user "
                         "may (--max-clients-per-user); wait for one of them to end, or use "
                         "--detach for long runs",
                         c->max_per_uid);
                return msg;
        }
        return NULL;
}

static int reserve(struct workers *ws)
{
        if (ws->n < ws->cap)
                return 0;
        size_t cap = ws->cap ? ws->cap * 2 : 64;
        struct worker *w = realloc(ws->w, cap * sizeof *w);
        if (!w)
                return -ENOMEM;
        ws->w = w;
        ws->cap = cap;
        return 0;
}

static void spawn_worker(const struct aidp_daemon_config *c, const struct server_fds *sf,
                         const sigset_t *old, int conn, unsigned *workers, struct workers *ws)
{
        if (aidp_daemon_peer_gone(conn))
                return;
        /* The uid from the kernel (the worker identifies its peer fully). */
        struct ucred cr = {0};
        socklen_t len = sizeof cr;
        if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
                return;
        char msg[256];
        const char *why = refusal(c, ws, *workers, cr.uid, msg, sizeof msg);
        if (why || reserve(ws) < 0) {
                aidp_proto_send_error(conn, AIDP_EXIT_INTERNAL,
                                      why ? why : "the daemon is out of memory");
                return;
        }
        /* A worker forked ahead (pool.h), else one forked now. */
        pid_t pid = aidp_daemon_pool_dispatch(sf->pool, conn);
        if (pid < 0) {
                if (c->before_fork)
                        c->before_fork(c->arg);
                pid = fork();
        }
        if (pid < 0) {
                aidp_proto_send_error(conn, AIDP_EXIT_INTERNAL, "the daemon cannot fork");
                return;
        }
        if (pid == 0) {
                close(sf->lfd);
                close(sf->sfd);
                close(sf->notice_r);
                aidp_daemon_pool_close_lines(sf->pool);
                sigprocmask(SIG_SETMASK, old, NULL);
                /* No pooled worker was free (a burst): the stack its run
                 * reaches, made present in one call, as a pooled one has
                 * it (not the server's pages: copying them ahead costs
                 * about what their faults do, docs/run-core.md). */
                aidp_daemon_stack_ahead();
                aidp_daemon_worker(c, conn, -1);
        }
        ws->w[ws->n++] = (struct worker){.pid = pid, .uid = cr.uid, .holds = true, .live = true};
        (*workers)++;
}

/* What the idle workers wrote on their lines (pool.h): "ready" is answered
 * by the pool; a connection a worker took itself is judged here, with the
 * limits of spawn_worker, and counted from now on like one the server
 * accepted. A refused one is not counted, as one the server refuses itself
 * is not: its worker only tells its client why and ends, and a burst of
 * refused clients (one user past --max-clients-per-user) must not take the
 * places of other users' connections until those workers are reaped. Its pid
 * is still remembered, so that its end frees nothing. Returns whether any
 * was taken. */
static bool serve_lines(const struct aidp_daemon_config *c, struct aidp_daemon_pool *pool,
                        unsigned *workers, struct workers *ws)
{
        struct pollfd f[AIDP_DAEMON_POOL_MAX];
        pid_t pids[AIDP_DAEMON_POOL_MAX];
        size_t n = 0;
        for (size_t i = 0; i < pool->n; i++)
                if (pool->idle[i].ctl >= 0) {
                        f[n] = (struct pollfd){.fd = pool->idle[i].ctl, .events = POLLIN};
                        pids[n++] = pool->idle[i].pid;
                }
        if (n == 0 || poll(f, n, 0) <= 0)
                return false;
        bool took = false;
        for (size_t k = 0; k < n; k++) {
                if (!f[k].revents)
                        continue;
                /* By pid: a message may have moved the others. */
                for (size_t i = 0; i < pool->n; i++) {
                        if (pool->idle[i].pid != pids[k] || pool->idle[i].ctl < 0)
                                continue;
                        pid_t pid;
                        uid_t uid;
                        int line;
                        if (aidp_daemon_pool_message(pool, i, &pid, &uid, &line) == 1) {
                                char msg[256];
                                const char *why = refusal(c, ws, *workers, uid, msg, sizeof msg);
                                if (reserve(ws) < 0)
                                        why = why ? why : "the daemon is out of memory";
                                else
                                        ws->w[ws->n++] = (struct worker){.pid = pid,
                                                                         .uid = uid,
                                                                         .holds = why == NULL,
                                                                         .live = why == NULL};
                                if (!why)
                                        (*workers)++;
                                aidp_daemon_pool_verdict(line, why);
                                took = true;
                        }
                        break;
                }
        }
        return took;
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pool is refilled off the runs' critical path: a fork right after a
 * dispatch (and the new worker's page copies) took CPU from the run that
 * had just started, its client and its pid 1, on a machine with few cores;
 * one during the job took it from the job's exit, the end record and the
 * status. So a worker is forked only when no client waits for its run
 * (`busy`: served connections whose client has no status yet), or when no
 * connection came for the quiet time (AIDP_DAEMON_POOL_QUIET_MS: a long
 * job, a slow start-up), and a refill never waits longer than that quiet
 * time. The replacement is forked as the client has its
 * status, while the worker cleans up and the client exits; a client's next
 * run, back to back, finds the pool's other worker ready meanwhile
 * (docs/protocol.md, "Workers forked ahead"). One fork per turn of the
 * loop, so that a connection arriving meanwhile waits for one fork at most.
 * Under a burst the pool stays empty and workers are forked at accept,
 * without copies ahead. Returns poll's timeout. */
static int refill(const struct aidp_daemon_config *c, const struct server_fds *sf,
                  const sigset_t *old, unsigned busy, int64_t last_accept)
{
        const int own_fds[] = {sf->sfd, sf->notice_r};
        struct aidp_daemon_pool *pool = sf->pool;
        /* Since when a refill waits: never longer than the quiet time,
         * whatever the traffic (a long run and a trickle of connections, or
         * a client that never reads its status, would otherwise hold the
         * pool empty for as long as they last). */
        static int64_t waiting_since;
        if (pool->n >= pool->want) {
                waiting_since = 0;
                return 60 * 1000;
        }
        int quiet_ms = c->pool_quiet_ms > 0 ? c->pool_quiet_ms : AIDP_DAEMON_POOL_QUIET_MS;
        int64_t now = now_ms(), quiet = now - last_accept;
        if (!waiting_since)
                waiting_since = now;
        int wait = aidp_daemon_pool_refill_wait(busy, quiet, now - waiting_since, quiet_ms);
        if (wait > 0)
                return wait;
        waiting_since = now;
        /* A pool that cannot be filled (out of processes) leaves the fork
         * to accept time; tried again after the quiet time. */
        int r = aidp_daemon_pool_fill(pool, c, own_fds, ARRAY_SIZE(own_fds), sf->lfd, old);
        return r == 1 ? 0 : r == 0 ? 60 * 1000 : quiet_ms;
}

/* Detached runs' logs past their retention are shredded: at start, and
 * once a minute when idle. */
static void sweep_logs(const struct aidp_daemon_config *c)
{
        static struct timespec last;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!c->log_dir || (last.tv_sec && now.tv_sec - last.tv_sec < 60))
                return;
        last = now;
        aidp_runlog_sweep(c->log_dir, c->state_dir, c->log_retention_s);
}

static int g_notice_w = -1;

int aidp_daemon_notice_fd(void)
{
        return g_notice_w;
}

int aidp_daemon_serve(const struct aidp_daemon_config *c, int lfd, aidp_error *err)
{
        sigset_t old;
        _cleanup_close_ int sfd = signals_fd(&old);
        if (sfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "signalfd");
        /* Non-blocking: idle workers accept on it too (pool.h), and a
         * connection another took meanwhile is an EAGAIN, not a wait. */
        int fl = fcntl(lfd, F_GETFL);
        if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "listening socket");
        if (aidp_registry_init(c->state_dir, err) < 0 ||
            (c->log_dir && aidp_runlog_init(c->log_dir, err) < 0))
                return -1;
        /* Each pid a worker writes arrives whole (a write of at most
         * PIPE_BUF bytes is atomic), and about 16K of them fit: not a packet
         * pipe, whose every write takes a whole buffer of the 16. */
        int np[2];
        if (pipe2(np, O_CLOEXEC | O_NONBLOCK) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
        _cleanup_close_ int notice_r = np[0];
        g_notice_w = np[1];
        /* Before the first fork: what every worker would map and copy for
         * nothing (pool.h; this process has one thread). */
        aidp_daemon_drop_zero_pages();
        struct aidp_daemon_pool pool;
        aidp_daemon_pool_init(&pool, c->prefork < 0 ? 0
                                     : c->prefork   ? (size_t)c->prefork
                                                    : AIDP_DAEMON_PREFORK_DEFAULT);
        struct server_fds sf = {.lfd = lfd, .sfd = sfd, .notice_r = notice_r, .pool = &pool};
        struct workers ws = {0};
        unsigned workers = 0;
        sweep_logs(c);
        int64_t last_accept = INT64_MIN / 2;
        for (;;) {
                int wait = refill(c, &sf, &old, busy(&ws), last_accept);
                /* The listening socket, the signals, the notices, and the
                 * idle workers' lines. While a worker may accept itself, the
                 * server does not: the connection is its. */
                struct pollfd p[3 + AIDP_DAEMON_POOL_MAX] = {
                        {.fd = aidp_daemon_pool_ready(&pool) ? -1 : lfd, .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                        {.fd = notice_r, .events = POLLIN}};
                size_t n_p = 3;
                for (size_t i = 0; i < pool.n; i++)
                        if (pool.idle[i].ctl >= 0)
                                p[n_p++] =
                                        (struct pollfd){.fd = pool.idle[i].ctl, .events = POLLIN};
                int n = poll(p, n_p, wait);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        free(ws.w);
                        aidp_daemon_pool_stop(&pool);
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "poll");
                }
                sweep_logs(c);
                /* Lines first: a worker that took a connection and already
                 * ended is then reaped as the server's, not as an idle one. */
                if (serve_lines(c, &pool, &workers, &ws))
                        last_accept = now_ms();
                if (p[2].revents)
                        read_notices(notice_r, &ws);
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        bool stop = false;
                        while (read(sfd, &si, sizeof si) == sizeof si)
                                stop |= si.ssi_signo != SIGCHLD;
                        serve_lines(c, &pool, &workers, &ws);
                        workers = reap(c, workers, &ws, &pool, notice_r);
                        if (stop)
                                break;
                }
                /* A worker made ready meanwhile takes it instead. */
                if ((p[0].revents & POLLIN) && !aidp_daemon_pool_ready(&pool)) {
                        int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (conn < 0)
                                continue;
                        last_accept = now_ms();
                        spawn_worker(c, &sf, &old, conn, &workers, &ws);
                        close(conn);
                }
        }
        free(ws.w);
        aidp_daemon_pool_stop(&pool);
        close(g_notice_w);
        g_notice_w = -1;
        sigprocmask(SIG_SETMASK, &old, NULL);
        return 0;
}
