#pragma once
/* aidp-supervisor serve: a root daemon on a unix socket (docs/protocol.md).
 *
 * The server accepts connections and forks one worker process per connection
 * at once, so that a slow, malformed or hanging request, or a run that
 * crashes, never holds up another client. The worker identifies its peer from
 * the kernel (peer.h), reads one request within a deadline and answers it:
 * "run" through the caller's handler (the run core, wired in supervisor/cli),
 * "ps" and "stop" from the daemon's registry of running workers.
 *
 * While a run is under way its worker forwards the signals the client sends
 * (as "signal" messages) to itself, where the run core takes them as it takes
 * a terminal's; a client that disconnects is a SIGTERM: the run stops, shreds
 * and writes its end record as any stopped run does. */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "supervisor/daemon/peer.h"

struct aidp_daemon_session;

#define AIDP_DAEMON_PREFORK_DEFAULT 2

struct aidp_daemon_config {
        const char *socket_path; /* bound here unless listen_fd >= 0 */
        int listen_fd;           /* socket activation (LISTEN_FDS): -1 for none */
        gid_t group;             /* the socket's group (0660); has_group false: root only */
        bool has_group;
        int request_timeout_ms; /* for a whole request frame to arrive */
        unsigned max_workers;   /* connections served at once; more are refused */
        /* connections of one uid served at once (0: no limit of its own);
         * more from that uid are refused, so that one user's flood never
         * takes every worker from the others. A detached run no longer holds
         * its connection and does not count. */
        unsigned max_per_uid;
        const char *state_dir;     /* the registry of runs (root-owned, 0700) */
        const char *log_dir;       /* detached runs' logs (runlog.h; root-owned, 0700) */
        unsigned log_retention_s;  /* how long a log is kept after its run ended */
        uint64_t log_max;          /* one detached run's log, at most (runlog.h) */
        uint64_t log_max_per_user; /* one user's logs together, at most */
        /* idle workers forked ahead of their connection (pool.h): 0 the
         * default (AIDP_DAEMON_PREFORK_DEFAULT), < 0 none */
        int prefork;
        /* while runs are starting, the pool is refilled only after this long
         * without a new connection: 0 the default (AIDP_DAEMON_POOL_QUIET_MS) */
        int pool_quiet_ms;
        /* Serve one "run" request in the worker. fds are the request's (the
         * handler owns them). Returns the status to send as the client's
         * exit status, or < 0 with err for a refusal (sent as an error). */
        int (*run)(struct aidp_daemon_session *s, json_object *req, int *fds, size_t n_fds,
                   void *arg, aidp_error *err);
        /* In the server process, for each accepted connection, just before
         * its worker is forked (the warm state it inherits brought up to
         * date). May be NULL. */
        void (*before_fork)(void *arg);
        /* In an idle worker (pool.h), before it waits for its connection:
         * work for the run it will serve, done ahead (its cgroup). May be
         * NULL. */
        void (*while_idle)(void *arg);
        /* In an idle worker once it has the daemon's own scheduling back,
         * which threads it starts take: more work ahead (START's thread).
         * May be NULL. */
        void (*when_ready)(void *arg);
        /* In the server process, after a worker died of a signal (its run may
         * need gc). May be NULL. */
        void (*worker_crashed)(pid_t pid, int sig, void *arg);
        /* In a worker, once its peer is identified: whether that process
         * (its pid, still its own) is inside a run, in its cgroup. A run's
         * processes may not use the daemon: the job could start another run
         * with other limits or egress, or stop its user's runs. May be NULL. */
        bool (*peer_in_run)(pid_t pid, void *arg);
        void *arg;
};

/* The listening socket for c (bound and given its group and mode), or
 * c->listen_fd. */
int aidp_daemon_listen(const struct aidp_daemon_config *c, aidp_error *err);
/* Accept and serve until SIGTERM, SIGINT or SIGHUP. Runs in progress go on in
 * their workers (a restarted daemon does not end them). 0 or < 0. */
int aidp_daemon_serve(const struct aidp_daemon_config *c, int listen_fd, aidp_error *err);
/* The listening socket of socket activation (LISTEN_PID/LISTEN_FDS, one
 * stream socket at fd 3), or -1 when not socket-activated. */
int aidp_daemon_activation_fd(void);

/* ---- inside a worker, for the run handler ---- */

const struct aidp_peer *aidp_daemon_session_peer(const struct aidp_daemon_session *s);
/* Before _started: the run is to be detached (the request's "detach"). Its
 * log is made, the caller's (refused when the caller's logs would exceed
 * log_max_per_user), and the write end of a pipe that this worker drains into
 * it (at most log_max bytes) returned for the run's stdout and stderr;
 * _started then tells the client the run id and lets it go, and the run's end
 * is written beside the log instead of sent. fd or < 0 with err. */
int aidp_daemon_session_detach(struct aidp_daemon_session *s, const char *run_id, aidp_error *err);
/* The run is accepted under run_id: registered for ps/stop, the client told
 * ("started"), and from now on the client's signals and its disconnect reach
 * this process. 0 or < 0. */
int aidp_daemon_session_started(struct aidp_daemon_session *s, const char *run_id,
                                const char *command, aidp_error *err);

/* The run is over and on record (its end record durable): the client is
 * sent its exit status now, and its disconnect no longer stops anything; the
 * worker's own clean-up follows. Nothing for a detached run, whose status goes
 * beside its log once its output is drained. */
void aidp_daemon_session_ended(struct aidp_daemon_session *s, int status);
/* The client has its run's status (or the request is no run): nothing of
 * it waits on this worker any more, and the server is told so, once, so that
 * it may fork the pool's next idle worker without slowing a run down
 * (server.c). The fork then overlaps this worker's clean-up and exit and the
 * client's own exit. */
void aidp_daemon_session_quiet(struct aidp_daemon_session *s);
/* Before the worker's fds 0-2 become the client's: its stderr (the daemon's
 * own log) kept, so that what the clean-up after the status prints (a
 * failure left for gc) goes there instead of nowhere. */
void aidp_daemon_session_keep_log(void);

/* The write end of the server's notice pipe, or -1: a worker writes its pid
 * there when its run detached from the connection, and its negative when its
 * client has its status (aidp_daemon_session_quiet). */
int aidp_daemon_notice_fd(void);
/* In an idle worker, once it has the daemon's scheduling (the thread takes
 * it): the thread that will watch its client's connection during the run,
 * started now and woken by _started, and the file of its registry entry.
 * Without them (they could not be made), _started makes them. */
void aidp_daemon_session_ahead(const struct aidp_daemon_config *c);
/* What _ahead made and no run took, undone (the registry file removed). */
void aidp_daemon_session_ahead_drop(const struct aidp_daemon_config *c);
/* The worker's half of one connection (session.c); in the forked worker.
 * verdict: for a connection the worker accepted itself (pool.h), its line,
 * on which the server says whether it may be served; -1 when the server
 * accepted it and judged it already. */
__attribute__((noreturn)) void aidp_daemon_worker(const struct aidp_daemon_config *c, int conn,
                                                  int verdict);
