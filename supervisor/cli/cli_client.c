/* aidp-run, the engineer's command, as a client of aidp-supervisor serve
 * (docs/protocol.md): it parses the options with run's own table, opens
 * every file it names itself (with its own credentials: the daemon never
 * opens a path a client names), passes them and its stdio as descriptors,
 * forwards the signals it gets and exits with the job's status. Also `aidp ps`
 * and `aidp stop RUN`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

static int open_files(const struct aidp_cli_run *c, const char *cwd, struct files *f)
{
        add_fd(f, 0, "stdin", false);
        add_fd(f, 1, "stdout", false);
        add_fd(f, 2, "stderr", false);
        for (size_t i = 0; i < c->o.n_data; i++)
                if (open_one(f, "--data", c->o.data[i], O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, "data",
                             true) < 0)
                        return -1;
        for (size_t i = 0; i < c->o.n_binds; i++)
                if (open_one(f, c->binds[i].writable ? "--bind" : "--ro-bind", c->binds[i].source,
                             O_PATH, 0, "binds", true) < 0)
                        return -1;
        if (cwd && open_one(f, "--cwd", cwd, O_PATH | O_DIRECTORY, 0, "cwd", false) < 0)
                return -1;
        if (c->o.output_dir && open_one(f, "--output-dir", c->o.output_dir, O_PATH | O_DIRECTORY, 0,
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

/* --socket PATH and --out DIR (= --output-dir DIR) are aidp-run's own; the
 * rest goes to the daemon as given. Returns the new argv (borrowed strings). */
static char **own_options(int argc, char **argv, const char **sock, bool *detach, int *ret_argc)
{
        char **out = calloc((size_t)argc + 3, sizeof *out);
        if (!out)
                return NULL;
        int n = 0;
        out[n++] = "run";
        bool job = false;
        for (int i = 1; i < argc; i++) {
                if (!job && !strcmp(argv[i], "--"))
                        job = true;
                if (!job && !strcmp(argv[i], "--socket") && i + 1 < argc) {
                        *sock = argv[++i];
                } else if (!job && !strncmp(argv[i], "--socket=", 9)) {
                        *sock = argv[i] + 9;
                } else if (!job && !strcmp(argv[i], "--detach")) {
                        *detach = true;
                } else if (!job && !strcmp(argv[i], "--out")) {
                        out[n++] = "--output-dir";
                } else if (!job && !strncmp(argv[i], "--out=", 6)) {
                        out[n++] = "--output-dir";
                        out[n++] = argv[i] + 6;
                } else {
                        out[n++] = argv[i];
                }
        }
        *ret_argc = n;
        return out;
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

static int send_run(int sock, char **av, int first_arg, int ac, struct files *f, bool detach)
{
        int n_opts = first_arg - 1;
        if (n_opts > 0 && !strcmp(av[first_arg - 1], "--"))
                n_opts--;
        json_object *m = aidp_proto_msg("request");
        json_object_object_add(m, "op", json_object_new_string("run"));
        json_object_object_add(m, "args", strv_json(av + 1, (size_t)n_opts));
        json_object_object_add(m, "argv", strv_json(av + first_arg, (size_t)(ac - first_arg)));
        size_t n_env = 0;
        while (environ[n_env])
                n_env++;
        json_object_object_add(m, "env", strv_json(environ, n_env));
        json_object_object_add(m, "fds", json_object_get(f->map));
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

int aidp_cli_run_client(int argc, char **argv)
{
        mark(T_MAIN);
        const char *sock_opt = NULL;
        bool detach = false;
        int ac = 0;
        _cleanup_free_ char **av = own_options(argc, argv, &sock_opt, &detach, &ac);
        if (!av)
                return AIDP_EXIT_INTERNAL;
        char cwd[PATH_MAX];
        /* The working directory goes as --cwd: the daemon's is not the caller's. */
        bool add_cwd = true;
        for (int i = 1; i < ac && strcmp(av[i], "--"); i++)
                if (!strcmp(av[i], "--no-cwd") || !strcmp(av[i], "--cwd") ||
                    !strncmp(av[i], "--cwd=", 6))
                        add_cwd = false;
        _cleanup_free_ char **full = calloc((size_t)ac + 3, sizeof *full);
        _cleanup_free_ char **pv = calloc((size_t)ac + 3, sizeof *pv);
        if (!full || !pv)
                return AIDP_EXIT_INTERNAL;
        int n = 0;
        full[n++] = av[0];
        if (add_cwd && getcwd(cwd, sizeof cwd)) {
                full[n++] = "--cwd";
                full[n++] = cwd;
        }
        for (int i = 1; i < ac; i++)
                full[n++] = av[i];
        /* run's parser splits SRC:DST in place: it gets copies */
        for (int i = 0; i < n; i++)
                if (!(pv[i] = strdup(full[i])))
                        return AIDP_EXIT_INTERNAL;
        struct aidp_cli_run c = {0};
        struct aidp_cli_parsed p;
        int status = AIDP_EXIT_INTERNAL;
        struct files f = {.map = json_object_new_object()};
        if (!aidp_cli_options(&aidp_cli_run_spec, n, pv, &c, &p, &status))
                goto out;
        aidp_cli_run_finish(&c, pv, &p);
        status = AIDP_EXIT_USAGE;
        if (open_files(&c, c.o.no_cwd ? NULL : c.o.cwd, &f) < 0)
                goto out;
        mark(T_FILES);
        int sock = aidp_cli_daemon_connect(aidp_cli_daemon_socket(sock_opt));
        mark(T_CONNECT);
        if (sock < 0) {
                if (!detach) /* sudo has no detached runs */
                        sudo_fallback(full, n);
                fprintf(stderr,
                        PROG ": error: cannot reach the aidp daemon at %s: %s\n"
                             "  (is it running? `systemctl start aidp.socket`; are you in the "
                             "group it serves? `ls -l %s`)\n",
                        aidp_cli_daemon_socket(sock_opt), strerror(-sock),
                        aidp_cli_daemon_socket(sock_opt));
                status = AIDP_EXIT_INTERNAL;
                goto out;
        }
        int sr = send_run(sock, full, p.first_arg, n, &f, detach);
        mark(T_SENT);
        status = sr < 0 && sr != -EPIPE && sr != -ECONNRESET ? AIDP_EXIT_INTERNAL : follow(sock);
        close(sock);
        print_timing();
out:
        for (size_t i = 3; i < f.n; i++)
                close(f.fds[i]);
        json_object_put(f.map);
        aidp_cli_list_free(&c.env);
        aidp_cli_list_free(&c.data);
        for (int i = 0; i < n; i++)
                free(pv[i]);
        return status;
}
