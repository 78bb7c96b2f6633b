/* aidp ps and aidp stop: ask the daemon (docs/protocol.md) about the caller's
 * runs; and the socket both these and aidp-run connect to. Linked into `aidp`,
 * so nothing here reaches the run core. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"
#include "supervisor/daemon/proto.h"

const char *aidp_cli_daemon_socket(const char *opt)
{
        const char *e = getenv("AIDP_SOCKET");
        return opt ? opt : e && *e ? e : AIDP_PROTO_SOCKET;
}

int aidp_cli_daemon_connect(const char *path)
{
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof a.sun_path)
                return -ENAMETOOLONG;
        strcpy(a.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

void aidp_cli_daemon_unreachable(const char *prog, const char *opt, int r)
{
        const char *path = aidp_cli_daemon_socket(opt);
        fprintf(stderr, "%s: error: cannot reach the aidp daemon at %s: %s\n", prog, path,
                strerror(-r));
        /* systemd's unit serves the default socket only: for another, the
         * admin who started that daemon knows how. */
        if (!strcmp(path, AIDP_PROTO_SOCKET))
                fprintf(stderr,
                        "  (is it running? `systemctl start aidp.socket`; are you in the group "
                        "it serves? `ls -l %s`)\n",
                        path);
        else
                fprintf(stderr,
                        "  (is a daemon serving %s? are you in the group it serves? `ls -l %s`)\n",
                        path, path);
}

/* ---- aidp ps, aidp stop, aidp logs ---- */

struct ps_cli {
        const char *socket;
        bool json, follow, rm;
};

#define SOCKET_OPT                                                                                 \
        AIDP_CLI_OPT("socket", 0, AIDP_CLI_STRING, offsetof(struct ps_cli, socket), "PATH",        \
                     "the daemon's socket (default $AIDP_SOCKET or " AIDP_PROTO_SOCKET ")",        \
                     AIDP_TRUST_USER)

static const struct aidp_cli_opt ps_opts[] = {
        SOCKET_OPT,
        AIDP_CLI_OPT("json", 0, AIDP_CLI_FLAG, offsetof(struct ps_cli, json), NULL,
                     "one JSON array", AIDP_TRUST_USER),
        {0},
};

static const struct aidp_cli_opt stop_opts[] = {
        SOCKET_OPT,
        AIDP_CLI_OPT("json", 0, AIDP_CLI_FLAG, offsetof(struct ps_cli, json), NULL,
                     "one JSON object: {\"run_id\": RUN-ID, \"stopping\": true}", AIDP_TRUST_USER),
        {0},
};

static const struct aidp_cli_opt logs_opts[] = {
        SOCKET_OPT,
        AIDP_CLI_OPT("follow", 'f', AIDP_CLI_FLAG, offsetof(struct ps_cli, follow), NULL,
                     "keep printing until the run ends; then exit with its status",
                     AIDP_TRUST_USER),
        AIDP_CLI_OPT("rm", 0, AIDP_CLI_FLAG, offsetof(struct ps_cli, rm), NULL,
                     "shred the log of a run that ended now, instead of printing it",
                     AIDP_TRUST_USER),
        {0},
};

static const struct aidp_cli_spec logs_spec = {
        .prog = "aidp logs",
        .synopsis = "[--follow | --rm] [--socket PATH] RUN-ID",
        .about = "The output (stdout and stderr) of a run started with `aidp-run --detach`: yours\n"
                 "(root: any). Kept while the run goes on and for a while after it ended\n"
                 "(aidp-supervisor serve --log-retention), then shredded; --rm shreds it now.\n"
                 "A log holds at most --log-max of the daemon (16M by default): past it, a\n"
                 "marker line, and the rest of the output is dropped.",
        .opts = logs_opts,
        .min_args = 1,
        .max_args = 1,
        .args = "one RUN-ID",
};

static const struct aidp_cli_spec ps_spec = {
        .prog = "aidp ps",
        .synopsis = "[--json] [--socket PATH]",
        .about = "The runs in progress through the daemon: yours (root: everyone's).",
        .opts = ps_opts,
};

static const struct aidp_cli_spec stop_spec = {
        .prog = "aidp stop",
        .synopsis = "[--json] [--socket PATH] RUN-ID",
        .about = "Stop a run of yours (root: any): SIGTERM to the job, then shred and the end\n"
                 "record, as Ctrl-C would.",
        .opts = stop_opts,
        .min_args = 1,
        .max_args = 1,
        .args = "one RUN-ID",
};

/* One request, one answer. */
static json_object *ask_keep(const char *sock_opt, json_object *req, const char *prog, int *status,
                             int *ret_sock, int *ret_fd)
{
        int sock = aidp_cli_daemon_connect(aidp_cli_daemon_socket(sock_opt));
        if (sock < 0) {
                aidp_cli_daemon_unreachable(prog, sock_opt, sock);
                *status = AIDP_EXIT_INTERNAL;
                return NULL;
        }
        json_object *m = NULL;
        int fds[4];
        size_t n = 0;
        aidp_error err = {0};
        /* A failed send is not the end: the daemon may have refused the
         * connection with an error frame (too many at once), still to read. */
        (void)aidp_proto_send(sock, req, NULL, 0);
        if (aidp_proto_recv(sock, 30000, &m, fds, 4, &n, &err) <= 0) {
                fprintf(stderr, "%s: error: no answer from the daemon %s\n", prog, err.msg);
                *status = AIDP_EXIT_INTERNAL;
        }
        for (size_t i = 0; i < n; i++) {
                if (i == 0 && ret_fd && m)
                        *ret_fd = fds[i];
                else
                        close(fds[i]);
        }
        if (ret_sock && m)
                *ret_sock = sock;
        else
                close(sock);
        const char *type = NULL, *msg = NULL;
        if (m && aidp_proto_get_str(m, "type", false, &type, &err) == 0 && type &&
            !strcmp(type, "error")) {
                int64_t st = AIDP_EXIT_INTERNAL;
                aidp_proto_get_int(m, "status", false, 0, 255, &st, &err);
                aidp_proto_get_str(m, "message", false, &msg, &err);
                fprintf(stderr, "%s: error: %s\n", prog, msg ? msg : "");
                *status = (int)st;
                json_object_put(m);
                if (ret_sock && *ret_sock >= 0) {
                        close(*ret_sock);
                        *ret_sock = -1;
                }
                if (ret_fd && *ret_fd >= 0) {
                        close(*ret_fd);
                        *ret_fd = -1;
                }
                return NULL;
        }
        return m;
}

static json_object *ask(const char *sock_opt, json_object *req, const char *prog, int *status)
{
        return ask_keep(sock_opt, req, prog, status, NULL, NULL);
}

int aidp_cli_ps(int argc, char **argv)
{
        struct ps_cli c = {0};
        struct aidp_cli_parsed p;
        int status;
        if (!aidp_cli_options(&ps_spec, argc, argv, &c, &p, &status))
                return status;
        json_object *req = aidp_proto_msg("request");
        json_object_object_add(req, "op", json_object_new_string("ps"));
        json_object *m = ask(c.socket, req, ps_spec.prog, &status);
        json_object_put(req);
        if (!m)
                return status;
        json_object *runs = NULL;
        json_object_object_get_ex(m, "runs", &runs);
        if (c.json) {
                printf("%s\n", json_object_to_json_string_ext(runs, JSON_C_TO_STRING_PLAIN));
        } else {
                printf("%-36s %8s %8s %s\n", "RUN", "UID", "PID", "COMMAND");
                for (size_t i = 0; runs && i < json_object_array_length(runs); i++) {
                        json_object *r = json_object_array_get_idx(runs, i), *v;
                        const char *f[4] = {"run_id", "uid", "pid", "command"};
                        const char *s[4];
                        for (int k = 0; k < 4; k++)
                                s[k] = json_object_object_get_ex(r, f[k], &v)
                                               ? json_object_get_string(v)
                                               : "";
                        bool det = json_object_object_get_ex(r, "detached", &v) &&
                                   json_object_get_boolean(v);
                        printf("%-36s %8s %8s %s%s\n", s[0], s[1], s[2], s[3],
                               det ? "  (detached: aidp logs)" : "");
                }
        }
        json_object_put(m);
        return 0;
}

int aidp_cli_stop(int argc, char **argv)
{
        struct ps_cli c = {0};
        struct aidp_cli_parsed p;
        int status;
        if (!aidp_cli_options(&stop_spec, argc, argv, &c, &p, &status))
                return status;
        json_object *req = aidp_proto_msg("request");
        json_object_object_add(req, "op", json_object_new_string("stop"));
        json_object_object_add(req, "run_id", json_object_new_string(argv[p.first_arg]));
        json_object *m = ask(c.socket, req, stop_spec.prog, &status);
        json_object_put(req);
        if (!m)
                return status;
        json_object_put(m);
        if (!c.json) {
                printf("stopping %s\n", argv[p.first_arg]);
                return 0;
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "run_id", json_object_new_string(argv[p.first_arg]));
        json_object_object_add(o, "stopping", json_object_new_boolean(true));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return 0;
}

/* Everything the log holds now, to stdout. false when stdout failed. */
static bool copy_out(int fd)
{
        char buf[65536];
        for (;;) {
                /* Past the hole of a log that wrapped (its dropped head):
                 * ENXIO when nothing more is written yet. */
                off_t at = lseek(fd, 0, SEEK_CUR);
                if (at >= 0 && lseek(fd, at, SEEK_DATA) < 0)
                        return errno == ENXIO;
                ssize_t k = read(fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k == 0 || errno == EAGAIN;
                for (ssize_t off = 0; off < k;) {
                        ssize_t w = write(1, buf + off, (size_t)(k - off));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                return false;
                        off += w;
                }
        }
}

static void note_dropped(int64_t dropped)
{
        if (dropped)
                fprintf(stderr,
                        "aidp logs: %lld bytes of the run's output were dropped (the "
                        "daemon's --log-max); the log's marker line says which\n",
                        (long long)dropped);
}

/* --follow: print what the run writes until the daemon says it ended. */
static int follow_log(int sock, int fd)
{
        for (;;) {
                if (!copy_out(fd))
                        return AIDP_EXIT_INTERNAL;
                struct pollfd p = {.fd = sock, .events = POLLIN};
                int r = poll(&p, 1, 200);
                if (r < 0 && errno != EINTR)
                        return AIDP_EXIT_INTERNAL;
                if (r <= 0)
                        continue;
                json_object *m = NULL;
                int fds[4];
                size_t n = 0;
                aidp_error err = {0};
                r = aidp_proto_recv(sock, 30000, &m, fds, 4, &n, &err);
                for (size_t i = 0; i < n; i++)
                        close(fds[i]);
                int64_t st = AIDP_EXIT_INTERNAL, dropped = 0;
                if (r > 0) {
                        aidp_proto_get_int(m, "status", false, 0, 255, &st, &err);
                        aidp_proto_get_int(m, "dropped", false, 0, INT64_MAX, &dropped, &err);
                }
                json_object_put(m);
                copy_out(fd);
                note_dropped(dropped);
                if (r <= 0)
                        fprintf(stderr, "aidp logs: error: the daemon closed the connection\n");
                return (int)st;
        }
}

int aidp_cli_logs(int argc, char **argv)
{
        struct ps_cli c = {0};
        struct aidp_cli_parsed p;
        int status;
        if (!aidp_cli_options(&logs_spec, argc, argv, &c, &p, &status))
                return status;
        json_object *req = aidp_proto_msg("request");
        json_object_object_add(req, "op", json_object_new_string("logs"));
        json_object_object_add(req, "run_id", json_object_new_string(argv[p.first_arg]));
        json_object_object_add(req, "follow", json_object_new_boolean(c.follow));
        if (c.rm)
                json_object_object_add(req, "rm", json_object_new_boolean(true));
        int sock = -1, fd = -1;
        json_object *m = ask_keep(c.socket, req, logs_spec.prog, &status, &sock, &fd);
        json_object_put(req);
        if (!m)
                return status;
        if (c.rm) {
                json_object_put(m);
                if (fd >= 0)
                        close(fd);
                close(sock);
                printf("removed the log of %s\n", argv[p.first_arg]);
                return 0;
        }
        json_object *v = NULL;
        bool ended = json_object_object_get_ex(m, "ended", &v) && json_object_get_boolean(v);
        int64_t st = 0, dropped = 0;
        aidp_error err = {0};
        aidp_proto_get_int(m, "status", false, 0, 255, &st, &err);
        aidp_proto_get_int(m, "dropped", false, 0, INT64_MAX, &dropped, &err);
        json_object_put(m);
        note_dropped(dropped);
        if (fd < 0) {
                fprintf(stderr, "aidp logs: error: the daemon sent no log\n");
                close(sock);
                return AIDP_EXIT_INTERNAL;
        }
        int rc;
        if (!c.follow) {
                rc = copy_out(fd) ? 0 : AIDP_EXIT_INTERNAL;
                /* On stderr, after the output: how it ended (with -q the log
                 * does not say), or how to see the rest. */
                if (rc == 0 && ended)
                        fprintf(stderr, "aidp logs: run %s ended with status %d\n",
                                argv[p.first_arg], (int)st);
                else if (rc == 0)
                        fprintf(stderr,
                                "aidp logs: run %s is still going (aidp logs --follow %s: "
                                "the rest, then its status)\n",
                                argv[p.first_arg], argv[p.first_arg]);
        } else if (ended)
                rc = copy_out(fd) ? (int)st : AIDP_EXIT_INTERNAL;
        else
                rc = follow_log(sock, fd);
        close(fd);
        close(sock);
        return rc;
}
