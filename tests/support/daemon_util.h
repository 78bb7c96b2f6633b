#pragma once
/* What the daemon tests (tests/priv/test_daemon*.c) check after a run. */

/* The lineage record of run_id with this eventType ("ABORT", ...) in the log
 * at logp, waited for up to timeout_ms: a copy of its line, or NULL. */
char *aidp_test_wait_lineage(const char *logp, const char *run_id, const char *type,
                             int timeout_ms);
/* Nothing of the run is left: no journal in rundir (waited for a moment: it
 * goes right after the end record), no cgroup. Criterion expectations. */
void aidp_test_expect_run_gone(const char *rundir, const char *run_id);

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* aidp-supervisor serve --socket sock --group (gid's) --run-dir run_dir
 * [args...], in the foreground as a child that dies with the test, with the
 * "NAME=VALUE" strings of env set. Returns its pid once sock exists (with that
 * group, when wait is true; at once otherwise). */
pid_t aidp_test_daemon_spawn(const char *sock, gid_t gid, const char *run_dir,
                             const char *const *args, const char *const *env, bool wait);
/* The children of the daemon process daemon (its idle workers and the
 * workers serving): pid and start time (a pid alone could be reused), at
 * most max. Their count. */
struct aidp_test_kid {
        pid_t pid;
        unsigned long long start;
};
size_t aidp_test_daemon_children(pid_t daemon, struct aidp_test_kid *k, size_t max);
/* The sandbox's pid 1 among parent's children (a worker's): the one whose
 * innermost pid is 1, or 0. */
pid_t aidp_test_daemon_pid1_under(pid_t parent);
/* A child of pid in this state ('T' stopped, 'Z' a zombie), or 0. */
pid_t aidp_test_child_in_state(pid_t pid, char state);
/* SIGTERM, reaped, its socket removed. */
void aidp_test_daemon_stop(pid_t pid, const char *sock);

struct aidp_test_user;
struct aidp_proc;
/* In a child: become u (its uid, gid and only group), or _exit(99). */
void aidp_test_become(const struct aidp_test_user *u);
/* A connection to the daemon at sock, or _exit(98) (in a child). */
int aidp_test_daemon_connect(const char *sock);
/* A request of the test's own making, as u, in a child: request (JSON text,
 * its "v" and "type" added) sent to the daemon at sock with the fds that
 * files opens there as u (their count, or < 0: "cannot open"); then each
 * answer, "started" skipped, to answer (or, with answer NULL, the first as
 * "TYPE STATUS MESSAGE"), which writes what the test reads into line. What
 * was written, into res. */
void aidp_test_daemon_raw(const struct aidp_test_user *u, const char *sock, const char *request,
                          int (*files)(int *fds, size_t max, void *arg),
                          void (*answer)(void *r, const int *fds, size_t n, char *line, size_t size,
                                         void *arg),
                          void *arg, char *res, size_t size);
/* aidp-run --socket sock args... as u (setpriv), not waited for: p->pid is
 * the client. */
void aidp_test_daemon_client(struct aidp_proc *p, const struct aidp_test_user *u, const char *sock,
                             const char *const *args);
/* args[0] (aidp-run, or aidp and its command in args[1]) with --socket sock
 * and the rest of args, as u (setpriv): waited for (its exit status) when
 * wait is true, else started (0). */
int aidp_test_client_as(struct aidp_proc *p, const struct aidp_test_user *u, const char *sock,
                        bool wait, const char *const *args);

/* The daemon tests' common fixture (test_zygote.c, test_daemon_hostile.c,
 * test_early_start.c), as root: a fresh directory *dir (0755), the test user
 * u named by tag, and in the directory the daemon's socket and run directory
 * and, where logp is not NULL, the lineage log, its key and a policy
 * directory (made). sock has 100 bytes or more, each other path 1024. False when
 * anything could not be made. */
bool aidp_test_daemon_fixture(char **dir, const char *tag, struct aidp_test_user *u, char *sock,
                              char *rundir, char *logp, char *keyp, char *policy);
/* Its end: the daemon stopped, what its runs left collected (gc), the test
 * users and the directory removed. */
void aidp_test_daemon_fixture_end(pid_t *daemon, const char *sock, const char *rundir, char **dir);
