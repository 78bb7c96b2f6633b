#pragma once
/* Workers forked ahead of their connection (daemon.h): the server keeps a few
 * idle workers, each waiting on a line of its own for the one connection it
 * will serve, so that a request finds its process made (the fork, and the
 * copies copy-on-write would make during the run, happened while nobody
 * waited). An idle worker holds no connection, no peer and no request: it
 * learns who it serves from the connection it is handed, exactly as a worker
 * forked at accept does, serves that one connection and exits; none is ever
 * handed a second one.
 *
 * The pool is off a run's critical path: the server refills it only when no
 * connection came for a moment or no run is starting (its job not started
 * yet: server.c), one fork at a time, and an idle worker makes its pages its
 * own at SCHED_IDLE, stops when its connection arrives and serves with the
 * server's scheduling.
 *
 * Nor is the server on a request's path once a worker is ready: a worker
 * whose copies are made takes the server's scheduling back and says so
 * ("ready"); the server answers "accept", stops accepting itself while it has
 * such a worker, and never hands that worker a connection. The worker then
 * accepts on the listening socket itself and tells the server whose
 * connection it took ("taken", SO_PEERCRED's uid); the server counts it as it
 * counts its own accepts (--max-clients, --max-clients-per-user) and answers
 * on the line whether the worker may serve it ("verdict"); the worker waits
 * for that before anything of a run or an answer exists (session.c). */
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "supervisor/daemon/daemon.h"

#define AIDP_DAEMON_POOL_MAX        8
#define AIDP_DAEMON_POOL_MAX_DEATHS 16
/* While runs are starting, the pool is refilled only after this long without
 * a new connection (server.c); as soon as none is. */
#define AIDP_DAEMON_POOL_QUIET_MS 100

struct aidp_daemon_idle {
        pid_t pid;
        int ctl;    /* the server's end of the worker's line; -1 once it ended */
        bool ready; /* let accept on the listening socket: never handed one */
};

struct aidp_daemon_pool {
        struct aidp_daemon_idle idle[AIDP_DAEMON_POOL_MAX];
        size_t n, want;
        pid_t dead[AIDP_DAEMON_POOL_MAX]; /* taken out of the pool, not reaped yet */
        size_t n_dead;
        unsigned idle_deaths; /* idle workers that died waiting */
        int policy;           /* the server's scheduling, a worker's for its run */
        struct sched_param param;
};

/* An empty pool that wants `want` idle workers, serving with the calling
 * process's scheduling. */
void aidp_daemon_pool_init(struct aidp_daemon_pool *p, size_t want);
/* Whether conn's peer hung up (or shut its writing down) without sending
 * anything: such a connection asks nothing and costs no worker (a flood of
 * connect-and-close). One that sent its request first is served. */
bool aidp_daemon_peer_gone(int conn);

/* Whether the server forks the pool's next worker now (0) or in how many
 * ms: it waits while busy clients wait for their runs and a connection
 * came less than quiet_ms ago, but never once it has waited quiet_ms
 * (since_accept, waited: ms since the last connection and since the pool
 * first lacked a worker). server.c, refill. */
int aidp_daemon_pool_refill_wait(unsigned busy, int64_t since_accept, int64_t waited, int quiet_ms);
/* Fork one idle worker when the pool holds fewer than p->want. The child
 * closes close_fds (the server's own) and every other idle worker's line and
 * takes the signal mask old. 1 when the pool still wants more (call again),
 * 0 when full, -errno (the pool then holds fewer). */
int aidp_daemon_pool_fill(struct aidp_daemon_pool *p, const struct aidp_daemon_config *c,
                          const int *close_fds, size_t n_close, int lfd, const sigset_t *old);
/* Hand conn to an idle worker that was not let accept (it leaves the pool,
 * its scheduling restored): its pid, or -1 when there is none. The caller
 * still closes its own copy of conn. */
pid_t aidp_daemon_pool_dispatch(struct aidp_daemon_pool *p, int conn);
/* Idle workers let accept on the listening socket themselves: while there is
 * one, the server does not accept. */
size_t aidp_daemon_pool_ready(const struct aidp_daemon_pool *p);
/* Read what idle worker i wrote on its line. "ready" is answered "accept";
 * a line that ended is closed (its worker is reaped later). 1 when it took a
 * connection itself ("taken"): it has left the pool, and *pid, the peer's
 * *uid and its *line are the caller's, who answers with _verdict. Else 0. */
int aidp_daemon_pool_message(struct aidp_daemon_pool *p, size_t i, pid_t *pid, uid_t *uid,
                             int *line);
/* Answer a worker that took a connection itself: serve it (refusal NULL) or
 * send its client this refusal. Closes line. */
void aidp_daemon_pool_verdict(int line, const char *refusal);
/* A child ended: true when it was an idle worker (then it served nobody, and
 * is forgotten), false for a worker that held a connection. */
bool aidp_daemon_pool_reaped(struct aidp_daemon_pool *p, pid_t pid);
/* Close the server's ends of the idle workers' lines (they exit) and empty
 * the pool; in a forked worker, so that only the server holds them. */
void aidp_daemon_pool_close_lines(struct aidp_daemon_pool *p);
/* The server stops: every idle worker is told (its line closed) and reaped. */
void aidp_daemon_pool_stop(struct aidp_daemon_pool *p);
/* Make every private writable mapping of this process its own now
 * (MADV_POPULATE_WRITE), instead of one copy-on-write fault at a time;
 * stops early once stop_fd is readable (or hung up; -1: never). */
void aidp_daemon_prefault(int stop_fd);
/* In the server, before it forks workers: the pages of its anonymous private
 * memory that hold only zeros (libcgroup zeroes its 820 KiB mount table and
 * fills a few entries) are given back (MADV_DONTNEED). They read as zeros
 * still, but each fork no longer maps them nor each idle worker's prefault
 * copies them. Nothing is done while the process has another thread, which
 * could write a page between its check and its drop. */
void aidp_daemon_drop_zero_pages(void);
/* Make the stack a run reaches below the caller's frame present now (zeros),
 * in one call instead of a fault per page during the run. */
void aidp_daemon_stack_ahead(void);
