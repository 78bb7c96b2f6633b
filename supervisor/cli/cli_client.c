/* aidp-run, the engineer's command, as a client of aidp-supervisor serve
 * (docs/protocol.md): it parses the options with run's own table, opens
 * every file it names itself (with its own credentials: the daemon never
 * opens a path a client names), passes them and its stdio as descriptors,
 * forwards the signals it gets and exits with the job's status. Also `aidp ps`
 * and `aidp stop RUN`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_supervisor.h"
#include "supervisor/daemon/proto.h"

#define PROG "aidp-run"

/* The files of a request, opened by the client, in the order of the fds
 * object (docs/protocol.md). */
struct files {
        int fds[AIDP_PROTO_MAX_FDS];
        size_t n;
        json_object *map;
};

static int add_fd(struct files *f, int fd, const char *key, bool list)
{
        if (f->n >= AIDP_PROTO_MAX_FDS)
                return -E2BIG;
        json_object *idx = json_object_new_int((int)f->n);
        f->fds[f->n++] = fd;
        if (!list) {
                json_object_object_add(f->map, key, idx);
                return 0;
        }
        json_object *a;
        if (!json_object_object_get_ex(f->map, key, &a)) {
                a = json_object_new_array();
                json_object_object_add(f->map, key, a);
        }
        json_object_array_add(a, idx);
        return 0;
}

static int open_one(struct files *f, const char *opt, const char *path, int flags, mode_t mode,
                    const char *key, bool list)
{
        int fd = open(path, flags | O_CLOEXEC, mode);
        if (fd < 0) {
                fprintf(stderr, PROG ": error: %s %s: %s\n", opt, path, strerror(errno));
                return -1;
        }
        return add_fd(f, fd, key, list) < 0 ? -1 : 0;
}

/* How the user named what open_files opens and the daemon's messages name:
 * --out for --output-dir (unless they typed that), and the working
 * directory they did not name at all. */
struct labels {
        bool cwd_implicit;
        const char *output_dir;
};

/* A relative path where the job sees the path itself (a bind's source
 * without :DST, --cwd): the daemon takes absolute ones only; say which one
 * to give. True when refused (printed). */
static bool relative(const char *opt, const char *path, const char *dst)
{
        char real[PATH_MAX];
        if (path[0] == '/' || !realpath(path, real))
                return false; /* absolute, or not there: opening it says so */
        fprintf(stderr,
                PROG ": error: %s %s: a relative path; %s takes an absolute one: %s %s%s%s\n", opt,
                path, opt, opt, real, dst ? ":" : "", dst ? dst : "");
        return true;
}

static int open_files(const struct aidp_cli_run *c, const char *cwd, const struct labels *l,
                      struct files *f)
{
        add_fd(f, 0, "stdin", false);
        add_fd(f, 1, "stdout", false);
        add_fd(f, 2, "stderr", false);
        for (size_t i = 0; i < c->o.n_data; i++)
                if (open_one(f, "--data", c->o.data[i], O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, "data",
                             true) < 0)
                        return -1;
        for (size_t i = 0; i < c->o.n_binds; i++) {
                const char *opt = c->binds[i].writable ? "--bind" : "--ro-bind";
                const struct aidp_run_bind *b = &c->binds[i];
                if (relative(opt, b->source, b->target))
                        return -1;
                if (open_one(f, opt, c->binds[i].source, O_PATH, 0, "binds", true) < 0)
                        return -1;
        }
        if (cwd && l->cwd_implicit) {
                int fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0) {
                        fprintf(stderr,
                                PROG ": error: the working directory %s: %s\n"
                                     "  (it is bound into the sandbox: give --no-cwd, or --cwd "
                                     "DIR for another)\n",
                                cwd, strerror(errno));
                        return -1;
                }
                if (add_fd(f, fd, "cwd", false) < 0)
                        return -1;
        } else if (cwd && (relative("--cwd", cwd, NULL) ||
                           open_one(f, "--cwd", cwd, O_PATH | O_DIRECTORY, 0, "cwd", false) < 0)) {
                return -1;
        }
        if (c->o.output_dir && open_one(f, l->output_dir, c->o.output_dir, O_PATH | O_DIRECTORY, 0,
                                        "output_dir", false) < 0)
                return -1;
        /* New, never through a symlink: the daemon writes only into this fd. */
        if (c->o.summary_path &&
            open_one(f, "--summary", c->o.summary_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
                     0644, "summary", false) < 0)
                return -1;
        return 0;
}

static json_object *strv_json(char *const *v, size_t n)
{
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_string(v[i]));
        return a;
}

extern char **environ;

/* AIDP_TIMING=1 (the caller's own variable: it only prints to the caller's
 * stderr): where the client's part of a run's time goes, for
 * scripts/bench-start. Marks, each printed as the time since the previous. */
enum { T_MAIN, T_FILES, T_CONNECT, T_SENT, T_STARTED, T_EXIT, T_MAX };
static struct timespec g_t[T_MAX];

static void mark(int i)
{
        clock_gettime(CLOCK_MONOTONIC, &g_t[i]);
}

static void print_timing(void)
{
        static const char *const name[T_MAX] = {"",       "c-setup",   "c-connect",
                                                "c-send", "c-started", "c-run"};
        if (!getenv("AIDP_TIMING"))
                return;
        for (int i = 1; i < T_MAX; i++)
                if (g_t[i].tv_sec && g_t[i - 1].tv_sec)
                        fprintf(stderr, "aidp-run: timing: %-10s %8.3f ms\n", name[i],
                                (double)(g_t[i].tv_sec - g_t[i - 1].tv_sec) * 1e3 +
                                        (double)(g_t[i].tv_nsec - g_t[i - 1].tv_nsec) / 1e6);
}

/* Wait for the run's end, forwarding signals. Returns the exit status. */
static int follow(int sock)
{
        sigset_t set;
        sigemptyset(&set);
        const int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1, SIGUSR2};
        for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
                sigaddset(&set, fwd[i]);
        sigprocmask(SIG_BLOCK, &set, NULL);
        _cleanup_close_ int sfd = signalfd(-1, &set, SFD_CLOEXEC);
        int last_sig = 0;
        for (;;) {
                struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
                                      {.fd = sfd, .events = POLLIN}};
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        return AIDP_EXIT_INTERNAL;
                struct signalfd_siginfo si;
                if ((p[1].revents & POLLIN) && read(sfd, &si, sizeof si) == sizeof si) {
                        json_object *m = aidp_proto_msg("signal");
                        json_object_object_add(m, "op", json_object_new_string("signal"));
                        json_object_object_add(m, "signal", json_object_new_int((int)si.ssi_signo));
                        aidp_proto_send(sock, m, NULL, 0);
                        json_object_put(m);
                        if (si.ssi_signo != SIGWINCH)
                                last_sig = (int)si.ssi_signo;
                }
                if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                json_object *m = NULL;
                int fds[4];
                size_t n = 0;
                aidp_error err = {0};
                int r = aidp_proto_recv(sock, 30000, &m, fds, 4, &n, &err);
                for (size_t i = 0; i < n; i++)
                        close(fds[i]);
                if (r <= 0) {
                        if (last_sig)
                                return 128 + last_sig;
                        fprintf(stderr, PROG ": error: the daemon closed the connection%s%s\n",
                                r < 0 ? ": " : "", r < 0 ? err.msg : "");
                        return AIDP_EXIT_INTERNAL;
                }
                const char *type = NULL, *msg = NULL;
                int64_t st = AIDP_EXIT_INTERNAL;
                aidp_proto_get_str(m, "type", false, &type, &err);
                aidp_proto_get_int(m, "status", false, 0, 255, &st, &err);
                aidp_proto_get_str(m, "message", false, &msg, &err);
                json_object *dv = NULL;
                if (type && !strcmp(type, "started") &&
                    json_object_object_get_ex(m, "detached", &dv) && json_object_get_boolean(dv)) {
                        const char *id = NULL;
                        aidp_proto_get_str(m, "run_id", false, &id, &err);
                        /* The id alone on stdout, for scripts: RUN=$(aidp-run --detach ...) */
                        printf("%s\n", id ? id : "");
                        fprintf(stderr,
                                PROG ": detached; `aidp logs --follow %s` shows its output, "
                                     "`aidp stop %s` ends it\n",
                                id ? id : "", id ? id : "");
                        json_object_put(m);
                        return 0;
                }
                if (type && !strcmp(type, "started"))
                        mark(T_STARTED);
                bool end = type && (!strcmp(type, "exit") || !strcmp(type, "error"));
                if (end)
                        mark(T_EXIT);
                if (type && !strcmp(type, "error"))
                        fprintf(stderr, PROG ": error: %s\n", msg ? msg : "(no message)");
                json_object_put(m);
                if (end)
                        return (int)st;
        }
}

/* No daemon: sudo, where the site has said so (docs/protocol.md). */
static int sudo_fallback(char **args, int n)
{
        if (access("/etc/aidp/sudo-fallback", F_OK) != 0)
                return -1;
        char self[PATH_MAX], sup[PATH_MAX + 32];
        ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
        if (l <= 0)
                return -1;
        self[l] = '\0';
        *strrchr(self, '/') = '\0';
        snprintf(sup, sizeof sup, "%s/aidp-supervisor", self);
        char **av = calloc((size_t)n + 4, sizeof *av);
        if (!av)
                return -1;
        int k = 0;
        av[k++] = "sudo";
        av[k++] = "--";
        av[k++] = sup;
        for (int i = 0; i < n; i++)
                av[k++] = args[i];
        execvp("sudo", av);
        free(av);
        return -1;
}

/* What the daemon's messages are to call what the user named otherwise
 * than run does ("labels", docs/protocol.md): --out, a working directory
 * never named. */
static json_object *labels_json(const struct labels *l)
{
        json_object *o = json_object_new_object();
        if (!strcmp(l->output_dir, AIDP_CLI_LABEL_OUT))
                json_object_object_add(o, "output_dir", json_object_new_string(AIDP_CLI_LABEL_OUT));
        if (l->cwd_implicit)
                json_object_object_add(o, "cwd", json_object_new_string(AIDP_CLI_LABEL_CWD));
        return o;
}

static int send_run(int sock, char **args, int n_args, char **job, int n_job, struct files *f,
                    const struct labels *l, bool detach)
{
        json_object *m = aidp_proto_msg("request");
        json_object_object_add(m, "op", json_object_new_string("run"));
        json_object_object_add(m, "args", strv_json(args, (size_t)n_args));
        json_object_object_add(m, "argv", strv_json(job, (size_t)n_job));
        size_t n_env = 0;
        while (environ[n_env])
                n_env++;
        json_object_object_add(m, "env", strv_json(environ, n_env));
        json_object_object_add(m, "fds", json_object_get(f->map));
        json_object_object_add(m, "labels", labels_json(l));
        if (detach)
                json_object_object_add(m, "detach", json_object_new_boolean(true));
        int r = aidp_proto_send(sock, m, f->fds, f->n);
        json_object_put(m);
        /* EPIPE: the daemon may have refused the connection before the
         * request went out (too many at once): its error is still to read. */
        if (r < 0 && r != -EPIPE && r != -ECONNRESET)
                fprintf(stderr, PROG ": error: sending the request: %s\n",
                        r == -EMSGSIZE ? "longer than a request may be (64 KiB: fewer --env?)"
                                       : strerror(-r));
        return r;
}

/* aidp-run's own options, after the whole of run's table: one parse finds
 * where the job's command starts exactly as run's parser (and so the daemon)
 * does, and which tokens before it are aidp-run's. */
struct client_cli {
        struct aidp_cli_run run; /* first: run's table's offsets hold here too */
        const char *socket;
        bool detach, version;
};

#define CL(f) offsetof(struct client_cli, f)

static const struct aidp_cli_opt own_opts[] = {
        AIDP_CLI_OPT("out", 0, AIDP_CLI_STRING, CL(run.o.output_dir), "DIR",
                     "seal /out into DIR/<run-id>.sealed at the end (run's\n"
                     "--output-dir); without it /out is shredded",
                     AIDP_TRUST_USER),
        AIDP_CLI_OPT("detach", 0, AIDP_CLI_FLAG, CL(detach), NULL,
                     "print the run's id and return; `aidp logs RUN` shows\n"
                     "its output, `aidp stop RUN` ends it",
                     AIDP_TRUST_USER),
        AIDP_CLI_OPT("socket", 0, AIDP_CLI_STRING, CL(socket), "PATH",
                     "the daemon's socket (default $AIDP_SOCKET or\n" AIDP_PROTO_SOCKET ")",
                     AIDP_TRUST_USER),
        AIDP_CLI_OPT("version", 0, AIDP_CLI_FLAG, CL(version), NULL, "print the version and exit",
                     AIDP_TRUST_USER),
        {0},
};

#define CLIENT_ABOUT                                                                               \
        "Run CMD in a fresh sandbox through the aidp daemon (aidp-supervisor serve);\n"            \
        "the job's exit status becomes aidp-run's. The options end at --, or at the\n"             \
        "first argument that is not an option: everything from CMD on is the job's\n"              \
        "own. Every file named here is opened by aidp-run, as you; the working\n"                  \
        "directory is bound into the sandbox read-only (--no-cwd: not), other host\n"              \
        "paths only with --ro-bind or --bind (your home is hidden). The job\n"                     \
        "writes to /scratch, /tmp and /out, all shredded when it ends: --out DIR\n"                \
        "keeps /out, sealed."

#define CLIENT_FOOTER                                                                              \
        AIDP_CLI_UNITS_HELP                                                                        \
        "A limit (--memory, a size, --timeout, ...) may only lower the profile's own,\n"           \
        "which `aidp profile explain NAME` shows.\n"                                               \
        "\nEnvironment: AIDP_SOCKET, the daemon's socket when --socket is not given;\n"            \
        "the job gets a safe subset of yours (--env NAME=VALUE for more).\n"                       \
        "Exit status: the job's; 120 a usage error, 121 access denied, 124 timeout,\n"             \
        "125 the daemon could not be reached or failed (docs/protocol.md).\n"

/* Whether one of aidp-run's own options sets o's field: --out is its name
 * for --output-dir, which its help then leaves out (still accepted). */
static bool spelled_otherwise(const struct aidp_cli_opt *o)
{
        for (const struct aidp_cli_opt *w = own_opts; w->name; w++)
                if (w->offset == o->offset && w->kind == o->kind && o->kind == AIDP_CLI_STRING)
                        return true;
        return false;
}

/* The table aidp-run parses with (run's, then its own) and the one its
 * help shows: what a user may pass through the daemon (run's user-level
 * options but those naming a descriptor of this process, in the forms a
 * user may give: .user_arg, .user_help), then its own. */
struct client_tables {
        struct aidp_cli_opt all[AIDP_CLI_MAX_OPTS + 1], help[AIDP_CLI_MAX_OPTS + 1];
        size_t n_run; /* all[n_run + k] is own_opts[k] */
};

static void client_tables(struct client_tables *t)
{
        size_t n = 0, h = 0;
        for (const struct aidp_cli_opt *o = aidp_cli_run_spec.opts; o->name; o++) {
                t->all[n++] = *o;
                if (o->trust != AIDP_TRUST_USER || o->local || spelled_otherwise(o))
                        continue;
                t->help[h] = *o;
                if (o->user_arg)
                        t->help[h].arg = o->user_arg;
                if (o->user_help)
                        t->help[h].help = o->user_help;
                h++;
        }
        t->n_run = n;
        for (const struct aidp_cli_opt *o = own_opts; o->name; o++)
                t->all[n++] = t->help[h++] = *o;
        t->all[n] = t->help[h] = (struct aidp_cli_opt){0};
}

enum { OWN_OUT, OWN_DETACH, OWN_SOCKET, OWN_VERSION };

static size_t run_index(const char *name)
{
        size_t i = 0;
        while (aidp_cli_run_spec.opts[i].name && strcmp(aidp_cli_run_spec.opts[i].name, name))
                i++;
        return i;
}

/* The request's options: the tokens before the job's command, minus
 * aidp-run's own and the "--", --out DIR as --output-dir DIR; then "--" and
 * the job's command. fw[0] is "run" (for sudo). Returns the count; *ret_job
 * is the index of the command in fw. */
static int forward_args(const struct client_tables *t, int argc, char **argv, const int *at,
                        int first_arg, const char *cwd, char **fw, int *ret_job)
{
        int n = 0;
        fw[n++] = "run";
        if (cwd) {
                fw[n++] = "--cwd";
                fw[n++] = (char *)cwd;
        }
        bool own = false;
        for (int k = 1; k < first_arg; k++) {
                int w = at[k];
                if (w == AIDP_CLI_AT_END || (w == AIDP_CLI_AT_VALUE && own))
                        continue;
                if (w >= 0)
                        own = (size_t)w >= t->n_run;
                if (w >= 0 && (size_t)w == t->n_run + OWN_OUT) {
                        fw[n++] = "--output-dir";
                        char *eq = strchr(argv[k], '=');
                        if (eq)
                                fw[n++] = eq + 1;
                        own = false; /* its separate value goes on */
                        continue;
                }
                if (!own)
                        fw[n++] = argv[k];
        }
        fw[n++] = "--";
        *ret_job = n;
        for (int k = first_arg; k < argc; k++)
                fw[n++] = argv[k];
        fw[n] = NULL;
        return n;
}

int aidp_cli_run_client(int argc, char **argv)
{
        mark(T_MAIN);
        struct client_tables t;
        client_tables(&t);
        const struct aidp_cli_spec spec = {
                .prog = PROG,
                .synopsis = "[OPTIONS] [--] CMD [ARGS...]",
                .about = CLIENT_ABOUT,
                .opts = t.all,
                .footer = CLIENT_FOOTER,
                .in_order = true,
                .max_args = -1,
        };
        struct aidp_cli_spec help = spec;
        help.opts = t.help;
        /* run's parser splits SRC:DST in place: it gets copies, the
         * request the tokens as given */
        _cleanup_free_ char **pv = calloc((size_t)argc + 1, sizeof *pv);
        _cleanup_free_ int *at = calloc((size_t)argc + 1, sizeof *at);
        /* each --out=DIR becomes two entries (--output-dir, DIR); "run",
         * --cwd DIR, "--" and the NULL besides */
        _cleanup_free_ char **fw = calloc(2 * (size_t)argc + 8, sizeof *fw);
        if (!pv || !at || !fw)
                return AIDP_EXIT_INTERNAL;
        for (int i = 0; i < argc; i++)
                if (!(pv[i] = strdup(argv[i])))
                        goto oom;
        struct client_cli c = {0};
        struct aidp_cli_parsed p;
        struct files f = {.map = json_object_new_object()};
        aidp_error err = {0};
        int status = AIDP_EXIT_USAGE;
        int r = aidp_cli_parse_at(&spec, argc, pv, &c, &p, at, &err);
        if (r > 0) {
                aidp_cli_help(&help, stdout);
                status = 0;
                goto out;
        }
        if (r < 0) {
                status = aidp_cli_fail(PROG, &err);
                goto out;
        }
        if (c.version) {
                printf("aidp-run %s\n", AIDP_VERSION);
                status = 0;
                goto out;
        }
        if (p.n_args == 0) {
                status = aidp_cli_usage_error(PROG, "missing %s", aidp_cli_run_spec.args);
                goto out;
        }
        if (p.count[t.n_run + OWN_OUT] && p.count[run_index("output-dir")]) {
                status = aidp_cli_usage_error(PROG, "--out and --output-dir: give one of them");
                goto out;
        }
        /* Else ignored: a user asking for JSON would get the run's text. */
        if (c.run.json && !c.run.dry_run) {
                status = aidp_cli_usage_error(PROG, "--json is --dry-run's plan as JSON; a run's "
                                                    "result as JSON: --summary FILE");
                goto out;
        }
        aidp_cli_run_finish(&c.run, pv, &p);
        /* The working directory goes as --cwd: the daemon's is not the caller's. */
        char cwd[PATH_MAX];
        bool add_cwd = !c.run.o.cwd && !c.run.o.no_cwd && getcwd(cwd, sizeof cwd);
        if (add_cwd)
                c.run.o.cwd = cwd;
        int job = 0;
        int n = forward_args(&t, argc, argv, at, p.first_arg, add_cwd ? cwd : NULL, fw, &job);
        struct labels l = {.cwd_implicit = add_cwd,
                           /* --out is aidp-run's word, also where no
                            * option was given ("keep it with --out DIR") */
                           .output_dir = p.count[run_index("output-dir")] ? "--output-dir"
                                                                          : AIDP_CLI_LABEL_OUT};
        if (open_files(&c.run, c.run.o.no_cwd ? NULL : c.run.o.cwd, &l, &f) < 0)
                goto out;
        mark(T_FILES);
        int sock = aidp_cli_daemon_connect(aidp_cli_daemon_socket(c.socket));
        mark(T_CONNECT);
        if (sock < 0) {
                if (!c.detach) /* sudo has no detached runs */
                        sudo_fallback(fw, n);
                aidp_cli_daemon_unreachable(PROG, c.socket, sock);
                status = AIDP_EXIT_INTERNAL;
                goto out;
        }
        int sr = send_run(sock, fw + 1, job - 2, fw + job, n - job, &f, &l, c.detach);
        mark(T_SENT);
        status = sr < 0 && sr != -EPIPE && sr != -ECONNRESET ? AIDP_EXIT_INTERNAL : follow(sock);
        close(sock);
        print_timing();
out:
        for (size_t i = 3; i < f.n; i++)
                close(f.fds[i]);
        json_object_put(f.map);
        aidp_cli_list_free(&c.run.env);
        aidp_cli_list_free(&c.run.data);
        for (int i = 0; i < argc; i++)
                free(pv[i]);
        return status;
oom:
        for (int i = 0; i < argc; i++)
                free(pv[i]);
        return AIDP_EXIT_INTERNAL;
}
