/* aidp-supervisor serve: the daemon aidp-run talks to (docs/protocol.md). The
 * server and the wire are supervisor/daemon; here a request becomes a run:
 * parsed with run's own option table, checked at the user level, its files
 * taken from the fds the client passed, its identity from the kernel. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_supervisor.h"
#include "supervisor/cli/serve_request.h"
#include "supervisor/cli/trust.h"
#include "supervisor/daemon/daemon.h"
#include "supervisor/daemon/proto.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/run/cgready.h"
#include "supervisor/run/journal.h"
#include "supervisor/run/run.h"
#include "supervisor/run/warm.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "supervisor/sandbox/nsready.h"
#include "supervisor/sandbox/zygote.h"
#include "supervisor/sealed/keymem.h"

extern char **environ;

struct serve_cli {
        const char *socket, *group, *run_dir, *lineage, *keys_config, *key_dir;
        uint64_t timeout, max_clients, max_per_user, log_retention, log_max, log_max_user;
        char state_dir[4096], log_dir[4096];
        bool made_run_dir; /* this start created it */
};

#define SV(f) offsetof(struct serve_cli, f)
static const struct aidp_cli_opt serve_opts[] = {
        AIDP_CLI_OPT("socket", 0, AIDP_CLI_STRING, SV(socket), "PATH",
                     "listen here (default " AIDP_PROTO_SOCKET "; not with\n"
                     "socket activation, which hands over the socket)",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("group", 0, AIDP_CLI_STRING, SV(group), "GROUP",
                     "who may connect (socket 0660 root:GROUP; default root only)",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("request-timeout", 0, AIDP_CLI_DURATION, SV(timeout), "DURATION",
                     "for a client's whole request to arrive (default 10s)", AIDP_TRUST_ADMIN,
                     .min = 1, .max = 3600),
        AIDP_CLI_OPT("max-clients", 0, AIDP_CLI_UINT, SV(max_clients), "N",
                     "connections served at once (default 256)", AIDP_TRUST_ADMIN, .min = 1,
                     .max = 65536),
        AIDP_CLI_OPT("max-clients-per-user", 0, AIDP_CLI_UINT, SV(max_per_user), "N",
                     "connections of one user served at once, so that one user's\n"
                     "flood leaves room for the others (default 64); detached runs\n"
                     "do not count",
                     AIDP_TRUST_ADMIN, .min = 1, .max = 65536),
        AIDP_CLI_OPT("log-retention", 0, AIDP_CLI_DURATION, SV(log_retention), "DURATION",
                     "how long a detached run's log is kept after the run ended,\n"
                     "then shredded (default 1h)",
                     AIDP_TRUST_ADMIN, .min = 1, .max = 30 * 86400),
        AIDP_CLI_OPT("log-max", 0, AIDP_CLI_SIZE, SV(log_max), "SIZE",
                     "the most a detached run's log holds (default 16M): it keeps\n"
                     "the newest output, after a line saying how much was dropped",
                     AIDP_TRUST_ADMIN, .min = 65536, .expect = "a size such as 16M (at least 64K)"),
        AIDP_CLI_OPT("log-max-per-user", 0, AIDP_CLI_SIZE, SV(log_max_user), "SIZE",
                     "the most one user's detached logs hold together (default\n"
                     "256M); a detached run that could exceed it is refused",
                     AIDP_TRUST_ADMIN, .min = 4096, .expect = "a size such as 256M (at least 4K)"),
        AIDP_CLI_OPT("run-dir", 0, AIDP_CLI_STRING, SV(run_dir), "DIR",
                     "run journals, and the daemon's registry in DIR/.daemon\n"
                     "(default $AIDP_RUN_DIR in the test build, or /run/aidp)",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("lineage", 0, AIDP_CLI_STRING, SV(lineage), "FILE",
                     "lineage log of every run (as run --lineage)", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("keys-config", 0, AIDP_CLI_STRING, SV(keys_config), "FILE",
                     "key provider config of every run (as run --keys-config;\n"
                     "default /etc/aidp/keys.yaml)",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("key-dir", 0, AIDP_CLI_STRING, SV(key_dir), "DIR",
                     "file key provider directory of every run (as run --key-dir;\n"
                     "default /etc/aidp/keys)",
                     AIDP_TRUST_ADMIN),
        {0},
};

const struct aidp_cli_spec aidp_cli_serve_spec = {
        .prog = "aidp-supervisor serve",
        .synopsis = "[--socket PATH] [--group GROUP] [OPTIONS]",
        .about = "Serve aidp-run's requests on a unix socket, in the foreground (systemd:\n"
                 "aidp.socket + aidp.service). Each request runs in its own process as\n"
                 "`run` would for the connecting user: identity from the kernel, user-level\n"
                 "options only, files opened by the client and passed as descriptors.",
        .opts = serve_opts,
};

static struct serve_cli g_serve;

/* ---- one request ---- */

static int stdio_from(const struct aidp_serve_fds *f, aidp_error *err)
{
        /* From here the run's own messages and the job's output go to the
         * client's files, as a run started from its shell would (the
         * daemon's log kept for after the status). */
        aidp_daemon_session_keep_log();
        if (dup2(f->in, 0) < 0 || dup2(f->out, 1) < 0 || dup2(f->err, 2) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "dup2");
        return 0;
}

static void new_run_id(char id[40])
{
        /* The id the worker's ready cgroup is named after (cgready.h). */
        if (aidp_run_cgready_id(id, 40))
                return;
        uuid_t u;
        uuid_generate_random(u);
        uuid_unparse_lower(u, id);
}

/* --detach: the job's stdin is /dev/null, its stdout and stderr (and the
 * run's own messages) the run's log, which `aidp logs` serves the caller
 * (supervisor/daemon/runlog.h). The client's stdio fds are not used. */
static int detach_stdio(struct aidp_daemon_session *s, struct aidp_serve_fds *f, const char *id,
                        bool dry_run, aidp_error *err)
{
        if (dry_run)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--dry-run prints the plan: not with --detach");
        int log = aidp_daemon_session_detach(s, id, err);
        if (log < 0)
                return -1;
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0) {
                close(log);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "/dev/null");
        }
        /* The request's fds are closed with the others at the end; these
         * replace them for stdio_from and are closed there too. */
        f->in = null;
        f->out = log;
        f->err = log;
        f->owned_in = null;
        f->owned_log = log;
        return 0;
}

/* The run is over and on record: its client hears its status now. */
static void run_ended(int status, void *arg)
{
        aidp_daemon_session_ended(arg, status);
}

static int execute(struct aidp_daemon_session *s, struct aidp_cli_run *c, const char *id,
                   int summary_fd, const char *job0, aidp_error *err)
{
        /* The daemon names the run (run ids are admin-only for callers). */
        c->o.run_id = id;
        if (aidp_daemon_session_started(s, id, job0, err) < 0)
                return -1;
        return aidp_cli_run_and_report(c, summary_fd, run_ended, s);
}

/* Whether this worker has locked its copies of the server's key pages
 * (keymem.h: fork does not pass the lock on). An idle worker does it while
 * it waits; a worker forked at accept before its run. A mapping that cannot
 * be locked stays usable, as in the server without RLIMIT_MEMLOCK room. */
static bool relocked;

static void relock_keys(void)
{
        if (relocked)
                return;
        relocked = true;
        /* Every mapping the worker has, locked on fault, in one call: a
         * superset of the key mappings. aidp_keymem_relock finds those in
         * /proc/self/smaps, whose read walks the page tables of every
         * mapping to count its pages: about 1 ms of CPU per run (a burst of
         * 32 clients, docs/run-core.md), where this takes a few dozen
         * microseconds. On fault, so nothing is copied or read in now. The
         * lock is not passed on: pid 1 is cloned without CLONE_VM (the
         * kernel drops VM_LOCKED from the copied mappings) and the job is
         * exec'd. Refused (no CAP_IPC_LOCK and an RLIMIT_MEMLOCK below the
         * worker's size), the key mappings alone are locked, as before. */
        if (mlockall(MCL_CURRENT | MCL_ONFAULT) == 0)
                return;
        int r = aidp_keymem_relock();
        if (r < 0)
                fprintf(stderr,
                        "aidp-supervisor serve: worker %d: key pages not locked again (%s); "
                        "they stay out of cores but may be swapped\n",
                        (int)getpid(), strerror(-r));
}

static int serve_run(struct aidp_daemon_session *s, json_object *req, int *fds, size_t n, void *arg,
                     aidp_error *err)
{
        (void)arg;
        struct aidp_serve_request q;
        int st = -1;
        relock_keys();
        if (aidp_serve_request_parse(req, fds, n, aidp_daemon_session_peer(s), &q, err) < 0)
                goto out;
        struct aidp_cli_run *c = &q.c;
        struct aidp_serve_fds *f = &q.f;
        c->o.as_user = true;
        c->o.run_dir = g_serve.run_dir;
        c->o.lineage_path = g_serve.lineage;
        /* The daemon's, never a request's (admin-only: refused in args). */
        c->o.keys_config = g_serve.keys_config;
        c->o.key_dir = g_serve.key_dir;
        char id[40];
        new_run_id(id);
        if (aidp_serve_request_detached(req)) {
                int given[3] = {f->in, f->out, f->err};
                if (detach_stdio(s, f, id, c->dry_run, err) < 0)
                        goto out;
                /* The client's stdio is let go now: a caller that reads
                 * the run id from a pipe ($(aidp-run --detach ...)) must see
                 * its end. */
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; k < 3; k++)
                                if (fds[i] >= 0 && fds[i] == given[k]) {
                                        close(fds[i]);
                                        fds[i] = -1;
                                }
        }
        if (stdio_from(f, err) < 0)
                goto out;
        st = execute(s, c, id, f->summary, q.job[0], err);
out:
        for (size_t i = 0; i < n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        if (q.f.owned_in >= 0)
                close(q.f.owned_in);
        if (q.f.owned_log >= 0)
                close(q.f.owned_log);
        aidp_serve_request_free(&q);
        return st;
}

/* ---- the daemon ---- */

static void gc_report(const char *run_id, const char *what, void *arg)
{
        (void)arg;
        fprintf(stderr, "aidp-supervisor serve: gc: run %s: %s\n", run_id, what);
}

static void sweep_report(const char *path, void *arg)
{
        (void)arg;
        fprintf(stderr, "aidp-supervisor serve: gc: removed ready cgroup %s (its maker is gone)\n",
                path);
}

/* A worker died of a signal: its run, if it had begun, is left to gc. In a
 * child, so that the accept loop goes on. */
static void worker_crashed(pid_t pid, int sig, void *arg)
{
        (void)arg;
        /* Stopped before its run took the signals over (the run core handles
         * them from before anything of the run exists): nothing to recover. */
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
                return;
        fprintf(stderr, "aidp-supervisor serve: worker %d died of signal %d; gc\n", (int)pid, sig);
        pid_t g = fork();
        if (g == 0) {
                aidp_error err = {0};
                _exit(aidp_run_gc(g_serve.run_dir, gc_report, NULL, &err) < 0 ? 1 : 0);
        }
}

static void refresh_warm(void *arg)
{
        (void)arg;
        aidp_run_warm_refresh();
        /* The heap's free pages back to the kernel before each fork: a
         * worker would otherwise map them and its prefault copy them (about
         * 280 of the server's 590 KiB of heap after a few runs), for memory
         * it may never use; what it does use comes as fresh pages. */
        malloc_trim(0);
}

/* Whether name (a cgroup path's component) is a run's: a run id with its
 * journal directory under dir. */
static bool journal_of(const char *dir, const char *name)
{
        char p[PATH_MAX];
        struct stat st;
        return name[0] != '.' && aidp_run_id_valid(name) &&
               snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && lstat(p, &st) == 0 &&
               S_ISDIR(st.st_mode);
}

/* A process inside a run is in the run's cgroup (or one below it), whose
 * name is the run's id: on cgroup2 and on each v1 hierarchy alike. Its
 * journal directory is in this daemon's run directory, or in the default one
 * (a run of aidp-supervisor run, through sudo or a scheduler). A job cannot
 * leave its cgroup. */
static bool peer_in_run(pid_t pid, void *arg)
{
        (void)arg;
        char p[64], line[4096];
        snprintf(p, sizeof p, "/proc/%d/cgroup", (int)pid);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f)
                return false;
        const char *dirs[] = {aidp_journal_run_dir(g_serve.run_dir), AIDP_RUN_DIR_DEFAULT};
        while (fgets(line, sizeof line, f)) {
                char *path = strchr(line, ':');
                path = path ? strchr(path + 1, ':') : NULL;
                if (!path)
                        continue;
                path[strcspn(path, "\n")] = '\0';
                char *save = NULL;
                for (char *c = strtok_r(path + 1, "/", &save); c; c = strtok_r(NULL, "/", &save))
                        for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
                                if (journal_of(dirs[i], c))
                                        return true;
        }
        return false;
}

/* In an idle worker: the cgroup of the run it will serve, made ahead. */
static void make_ready(void *arg)
{
        (void)arg;
        relock_keys();
        aidp_lineage_key_warm_fork(g_serve.lineage);
        aidp_run_cgready_make(g_serve.run_dir);
        aidp_run_warm_tmpfs_ahead();
        /* and the sandbox's network, IPC and UTS namespaces (nsready.h); a
         * worker without them clones them as a cold run does */
        (void)aidp_nsready_make();
        /* and the zygote pid 1 is cloned from (zygote.h) */
        (void)aidp_zygote_make();
}

/* In an idle worker back at the daemon's scheduling: START's thread. */
static void ready_ahead(void *arg)
{
        (void)arg;
        aidp_run_warm_start_thread();
}

static void *no_work(void *arg)
{
        return arg;
}

/* Threads started and joined before any worker is forked: glibc binds its
 * calls into ld.so lazily (_dl_allocate_tls and the like, under
 * pthread_create's allocate_stack), so the first thread of every worker's run
 * (the client's watcher) did that binding again, writing libc's GOT, about
 * 0.5 ms per run. Twice: the second takes the first one's stack from glibc's
 * cache, which a worker's first thread does too (the workers inherit that
 * cache), and that path binds calls of its own. */
static void bind_thread_start(void)
{
        for (int i = 0; i < 2; i++) {
                pthread_t t;
                if (pthread_create(&t, NULL, no_work, NULL) == 0)
                        pthread_join(t, NULL);
        }
}

/* Whether the mode bits let members of gid search the directory. An ACL that
 * grants more is not seen here: hence a warning, never a refusal. */
static bool group_searches(const struct stat *st, gid_t gid)
{
        return (st->st_mode & S_IXOTH) || ((st->st_mode & S_IXGRP) && st->st_gid == gid);
}

/* A socket for a group (0660 root:GROUP) is of use only if the group can
 * search every directory above it. The run directory is aidp's: one that is
 * root's and 0700 (this start made it, or an earlier aidp or aidp.socket
 * with DirectoryMode=0700 did) becomes 0711, search without listing, which is
 * all a client needs; what it holds stays 0700 each (docs/security.md). Any
 * other directory is the admin's: never changed, only named at start-up. */
static void socket_reach(const struct aidp_daemon_config *cfg, int lfd, const struct serve_cli *c)
{
        struct sockaddr_un a = {0};
        socklen_t alen = sizeof a;
        char dir[sizeof a.sun_path + 1];
        if (cfg->listen_fd >= 0) {
                if (getsockname(lfd, (struct sockaddr *)&a, &alen) < 0 || a.sun_family != AF_UNIX ||
                    alen <= offsetof(struct sockaddr_un, sun_path) || !a.sun_path[0])
                        return; /* an abstract socket has no directory */
                snprintf(dir, sizeof dir, "%.*s", (int)sizeof a.sun_path, a.sun_path);
        } else {
                snprintf(dir, sizeof dir, "%s", cfg->socket_path);
        }
        struct stat ss, ds, rs, ls;
        if (stat(dir, &ss) < 0 || ss.st_gid == 0 || !(ss.st_mode & S_IWGRP))
                return; /* root's alone: 0700 above it is right */
        char *slash = strrchr(dir, '/');
        if (!slash)
                snprintf(dir, sizeof dir, ".");
        else
                slash[slash == dir] = '\0';
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &ds) == 0 && !group_searches(&ds, ss.st_gid) && ds.st_uid == 0 &&
            (ds.st_mode & 07777) == 0700 && stat(c->run_dir, &rs) == 0 && rs.st_dev == ds.st_dev &&
            rs.st_ino == ds.st_ino && lstat(dir, &ls) == 0 && S_ISDIR(ls.st_mode) &&
            fchmod(fd, 0711) == 0 && !c->made_run_dir)
                fprintf(stderr,
                        "aidp-supervisor serve: %s: mode 0700 (an earlier aidp's) is now 0711, so "
                        "that the socket's group can reach the socket; what it holds stays 0700\n",
                        dir);
        /* every directory up to /, as a client's connect walks them */
        for (;;) {
                struct stat st;
                if (stat(dir, &st) == 0 && !group_searches(&st, ss.st_gid)) {
                        struct group *g = getgrgid(ss.st_gid);
                        fprintf(stderr,
                                "aidp-supervisor serve: warning: the socket's group %s cannot "
                                "reach the socket: %s is mode %04o uid %u gid %u (needs o+x, or "
                                "g+x and that group); left as it is\n",
                                g ? g->gr_name : "?", dir, (unsigned)(st.st_mode & 07777),
                                (unsigned)st.st_uid, (unsigned)st.st_gid);
                        return;
                }
                char *up = strrchr(dir, '/');
                if (!up || up == dir)
                        break;
                *up = '\0';
        }
}

/* Detached runs' output and the journals live in the run directory: on a
 * tmpfs (/run/aidp is) they never reach a disk, and in a directory only root
 * lists nobody sees which runs there are. Told, not refused (a test's or a
 * site's own choice). */
static void warn_run_dir(const char *dir)
{
        struct statfs fs;
        struct stat st;
        if (statfs(dir, &fs) == 0 && fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC)
                fprintf(stderr,
                        "aidp-supervisor serve: warning: --run-dir %s is not a tmpfs: detached "
                        "runs' output and the run journals reach a disk there\n",
                        dir);
        if (stat(dir, &st) == 0 && (st.st_mode & S_IROTH))
                fprintf(stderr,
                        "aidp-supervisor serve: warning: --run-dir %s is listable by everyone "
                        "(mode %04o): anyone sees its entries; 0700 or 0711 keeps them root's\n",
                        dir, (unsigned)(st.st_mode & 07777));
}

static int serve_setup(struct serve_cli *c, struct aidp_daemon_config *cfg, aidp_error *err)
{
        if (!c->run_dir) {
                const char *e = aidp_cli_supervisor_test_build() ? getenv("AIDP_RUN_DIR") : NULL;
                c->run_dir = e && *e ? e : "/run/aidp";
        }
        /* 0700: the group's way in to a socket kept here is opened once the
         * socket is there (socket_reach), and only that far. */
        c->made_run_dir = mkdir(c->run_dir, 0700) == 0;
        if (!c->made_run_dir && errno != EEXIST)
                return aidp_error_errno(err, AIDP_EXIT_USAGE, errno, "--run-dir %s", c->run_dir);
        warn_run_dir(c->run_dir);
        if (snprintf(c->state_dir, sizeof c->state_dir, "%s/.daemon", c->run_dir) >=
                    (int)sizeof c->state_dir ||
            snprintf(c->log_dir, sizeof c->log_dir, "%s/.logs", c->run_dir) >=
                    (int)sizeof c->log_dir)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG, "--run-dir: too long");
        *cfg = (struct aidp_daemon_config){
                .socket_path = c->socket ? c->socket : AIDP_PROTO_SOCKET,
                .listen_fd = c->socket ? -1 : aidp_daemon_activation_fd(),
                .request_timeout_ms = (int)(c->timeout ? c->timeout : 10) * 1000,
                .max_workers = c->max_clients ? (unsigned)c->max_clients : 256,
                .max_per_uid = c->max_per_user ? (unsigned)c->max_per_user : 64,
                .state_dir = c->state_dir,
                .log_dir = c->log_dir,
                .log_retention_s = c->log_retention ? (unsigned)c->log_retention : 3600,
                .log_max = c->log_max ? c->log_max : 16u << 20,
                .log_max_per_user = c->log_max_user ? c->log_max_user : 256u << 20,
                .run = serve_run,
                .worker_crashed = worker_crashed,
                .peer_in_run = peer_in_run,
                .before_fork = refresh_warm,
                .while_idle = make_ready,
                .when_ready = ready_ahead,
        };
        /* Tests take the pool's quiet-time refill out of the way, so that
         * what refills it while runs go is seen alone (test_warm_start.c). */
        const char *q =
                aidp_cli_supervisor_test_build() ? getenv("AIDP_FAULT_POOL_QUIET_MS") : NULL;
        if (q && *q)
                cfg->pool_quiet_ms = atoi(q);
        if (c->group) {
                struct group *g = getgrnam(c->group);
                if (!g)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, ENOENT,
                                              "--group %s: no such group", c->group);
                cfg->group = g->gr_gid;
                cfg->has_group = true;
        }
        return 0;
}

int aidp_cli_serve(int argc, char **argv)
{
        struct aidp_cli_parsed p;
        int status;
        if (!aidp_cli_options(&aidp_cli_serve_spec, argc, argv, &g_serve, &p, &status))
                return status;
        aidp_error err = {0};
        enum aidp_caller_kind kind;
        uid_t caller_uid;
        if (geteuid() != 0 ||
            aidp_trust_check_command(&aidp_cli_serve_spec, &p, aidp_cli_supervisor_test_build(),
                                     environ, &kind, &caller_uid, &err) < 0 ||
            kind != AIDP_CALLER_ADMIN) {
                if (!err.msg[0])
                        aidp_error_set(&err, AIDP_EXIT_USAGE, EPERM,
                                       "serve is root's (a system service), not a user's");
                return aidp_cli_fail(aidp_cli_serve_spec.prog, &err);
        }
        struct aidp_daemon_config cfg;
        if (serve_setup(&g_serve, &cfg, &err) < 0)
                return aidp_cli_fail(aidp_cli_serve_spec.prog, &err);
        /* Runs a previous instance left behind (it crashed or was killed)
         * are recovered before new ones start; live ones are left alone. */
        aidp_error gerr = {0};
        aidp_run_gc(g_serve.run_dir, gc_report, NULL, &gerr);
        /* and ready cgroups of a killed daemon whose run directory went */
        aidp_run_cgready_sweep(g_serve.run_dir, sweep_report, NULL);
        /* Warm start: every library profile's filter compiled once, here,
         * and the host's state loaded (warm.h); each worker forked from now
         * on inherits them. */
        size_t warm = aidp_run_warm_seccomp();
        const char *cold = aidp_run_warm_host();
        bind_thread_start();
        /* The zygote's program, opened once: what root runs for every
         * run's pid 1 is never a file replaced on disk later (zygote.h). */
        int zg = aidp_zygote_open_program();
        if (zg < 0)
                fprintf(stderr,
                        "aidp-supervisor serve: no zygote (%s beside this binary: %s); "
                        "workers clone the sandbox's pid 1 themselves\n",
                        AIDP_ZYGOTE_PROGRAM, strerror(-zg));
        if (cold)
                fprintf(stderr, "aidp-supervisor serve: not warm: %s\n", cold);
        int lfd = aidp_daemon_listen(&cfg, &err);
        if (lfd < 0)
                return aidp_cli_fail(aidp_cli_serve_spec.prog, &err);
        socket_reach(&cfg, lfd, &g_serve);
        fprintf(stderr, "aidp-supervisor serve: listening on %s (%zu library filters compiled)\n",
                cfg.listen_fd >= 0 ? "the socket systemd passed" : cfg.socket_path, warm);
        int rc = aidp_daemon_serve(&cfg, lfd, &err);
        /* The ready cgroups of its idle workers (gone now) and of workers
         * that end in a moment, then the cgroup parents it kept go with it
         * (where no run is left). */
        aidp_run_cgready_gc(g_serve.run_dir, 2000);
        aidp_cgroup_unwarm();
        if (rc < 0)
                return aidp_cli_fail(aidp_cli_serve_spec.prog, &err);
        close(lfd);
        if (cfg.listen_fd < 0)
                unlink(cfg.socket_path);
        return 0;
}
