/* A run request taken apart (serve_request.h). */
#define _GNU_SOURCE
#include "supervisor/cli/serve_request.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/options.h"
#include "supervisor/cli/trust.h"
#include "supervisor/daemon/proto.h"

static int fd_index(json_object *o, const char *key, const int *fds, size_t n, int *ret,
                    aidp_error *err)
{
        int64_t i = -1;
        *ret = -1;
        if (aidp_proto_get_int(o, key, false, 0, (int64_t)n - 1, &i, err) < 0)
                return -1;
        if (i >= 0)
                *ret = fds[i];
        return 0;
}

static int fd_list(json_object *o, const char *key, const int *fds, size_t n, int *ret, size_t max,
                   size_t *count, aidp_error *err)
{
        json_object *a = NULL;
        *count = 0;
        if (!json_object_object_get_ex(o, key, &a))
                return 0;
        if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > max)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "request: fds.%s must be an array of at most %zu indexes",
                                      key, max);
        for (size_t k = 0; k < json_object_array_length(a); k++) {
                json_object *v = json_object_array_get_idx(a, k);
                int64_t i = json_object_get_int64(v);
                if (!json_object_is_type(v, json_type_int) || i < 0 || (size_t)i >= n)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "request: fds.%s[%zu]: not an index of the %zu "
                                              "fds passed",
                                              key, k, n);
                ret[(*count)++] = fds[i];
        }
        return 0;
}

/* Each passed fd serves one use, but stdin, stdout and stderr may share one
 * (a terminal): a run closes or replaces its stdio (a detached run closes
 * the client's at once, and the fd number is reused for the daemon's log),
 * so an fd that is also the summary, a dataset, a bind source, the working
 * directory or the output directory would name something else by then. */
static int check_distinct(const struct aidp_serve_fds *f, aidp_error *err)
{
        struct {
                const char *what;
                int fd;
        } use[3 + 3 + AIDP_RUN_MAX_DATA + AIDP_CLI_MAX_BINDS];
        size_t n = 0;
        use[n++] = (typeof(use[0])){"stdin", f->in};
        use[n++] = (typeof(use[0])){"stdout", f->out};
        use[n++] = (typeof(use[0])){"stderr", f->err};
        use[n++] = (typeof(use[0])){"cwd", f->cwd};
        use[n++] = (typeof(use[0])){"output_dir", f->output_dir};
        use[n++] = (typeof(use[0])){"summary", f->summary};
        for (size_t i = 0; i < f->n_data; i++)
                use[n++] = (typeof(use[0])){"data", f->data[i]};
        for (size_t i = 0; i < f->n_binds; i++)
                use[n++] = (typeof(use[0])){"binds", f->binds[i]};
        for (size_t i = 3; i < n; i++)
                for (size_t k = 0; k < i; k++)
                        if (use[i].fd >= 0 && use[i].fd == use[k].fd)
                                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                                      "request: fds.%s and fds.%s are the same "
                                                      "descriptor: pass one for each use",
                                                      use[k].what, use[i].what);
        return 0;
}

static int parse_fds(json_object *req, const int *fds, size_t n, struct aidp_serve_fds *f,
                     aidp_error *err)
{
        json_object *o = NULL;
        if (!json_object_object_get_ex(req, "fds", &o) || !json_object_is_type(o, json_type_object))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "request: \"fds\" missing");
        if (fd_index(o, "stdin", fds, n, &f->in, err) < 0 ||
            fd_index(o, "stdout", fds, n, &f->out, err) < 0 ||
            fd_index(o, "stderr", fds, n, &f->err, err) < 0 ||
            fd_index(o, "cwd", fds, n, &f->cwd, err) < 0 ||
            fd_index(o, "output_dir", fds, n, &f->output_dir, err) < 0 ||
            fd_index(o, "summary", fds, n, &f->summary, err) < 0 ||
            fd_list(o, "data", fds, n, f->data, AIDP_RUN_MAX_DATA, &f->n_data, err) < 0 ||
            fd_list(o, "binds", fds, n, f->binds, AIDP_CLI_MAX_BINDS, &f->n_binds, err) < 0)
                return -1;
        if (f->in < 0 || f->out < 0 || f->err < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EBADF,
                                      "request: stdin, stdout and stderr must be passed");
        if (check_distinct(f, err) < 0)
                return -1;
        /* A directory (or an O_PATH fd, which may be one) given to the job
         * as its stdio is a way out of its mount namespace: through it the
         * job reaches and writes the host's tree (fchdir, openat,
         * /proc/self/fd/N/...). */
        const int io[3] = {f->in, f->out, f->err};
        static const char *const name[3] = {"stdin", "stdout", "stderr"};
        for (int i = 0; i < 3; i++) {
                struct stat st;
                int fl = fcntl(io[i], F_GETFL);
                if (fl < 0 || fstat(io[i], &st) < 0 || (fl & O_PATH) || S_ISDIR(st.st_mode))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EBADF,
                                              "request: %s must be a terminal, pipe, socket or "
                                              "file opened for I/O, not a directory or an O_PATH "
                                              "descriptor",
                                              name[i]);
        }
        return 0;
}

/* How the client's user named what the run's messages name ("labels",
 * docs/protocol.md): each one of a closed set, so a message says only
 * aidp's own words, never a client's. Absent: run's own. */
static int parse_labels(json_object *req, struct aidp_run_peer *pe, aidp_error *err)
{
        static const struct {
                const char *key, *words[2];
                size_t offset;
        } labels[] = {
                {"output_dir",
                 {"--output-dir", AIDP_CLI_LABEL_OUT},
                 offsetof(struct aidp_run_peer, output_dir_label)},
                {"cwd", {"--cwd", AIDP_CLI_LABEL_CWD}, offsetof(struct aidp_run_peer, cwd_label)},
        };
        json_object *o = NULL;
        if (!json_object_object_get_ex(req, "labels", &o))
                return 0;
        if (!json_object_is_type(o, json_type_object))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "request: \"labels\" must be an object");
        for (size_t i = 0; i < ARRAY_SIZE(labels); i++) {
                const char *v = NULL;
                if (aidp_proto_get_str(o, labels[i].key, false, &v, err) < 0)
                        return -1;
                if (!v)
                        continue;
                const char **dst = (const char **)((char *)pe + labels[i].offset);
                for (size_t w = 0; w < ARRAY_SIZE(labels[i].words) && !*dst; w++)
                        if (!strcmp(v, labels[i].words[w]))
                                *dst = labels[i].words[w];
                if (!*dst)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "request: labels.%s: \"%s\" or \"%s\"", labels[i].key,
                                              labels[i].words[0], labels[i].words[1]);
        }
        return 0;
}

/* The request's options, parsed by run's table and checked at the user level:
 * whatever an admin-only option would allow (--user, --run-id, --lineage,
 * ...) is refused here, before anything happens. */
static int parse_args(char **av, int ac, struct aidp_cli_run *c, bool root, aidp_error *err)
{
        struct aidp_cli_parsed p;
        int r = aidp_cli_parse(&aidp_cli_run_spec, ac, av, c, &p, err);
        if (r < 0)
                return r;
        if (r == 1)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--help is answered by "
                                      "aidp-run itself");
        if ((r = aidp_cli_check_trust(&aidp_cli_run_spec, &p, AIDP_CALLER_USER, false, err)) < 0) {
                /* Root connects as anyone may and is judged as a user: what it
                 * asked for is root's where root runs the supervisor itself. */
                if (root) {
                        char m[sizeof err->msg];
                        aidp_text_printf(m, sizeof m, "%s; as root, run the job with %s", err->msg,
                                         AIDP_RUN_AS_ROOT_HINT);
                        memcpy(err->msg, m, sizeof m);
                }
                return aidp_error_wrap(err, "through the daemon");
        }
        if (c->result_fd)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "--result-fd: not through the daemon (use --summary)");
        if (p.first_arg < 2 || strcmp(av[p.first_arg - 1], "--"))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "request: \"args\" holds an operand ('%s'); the job goes "
                                      "in \"argv\"",
                                      av[p.first_arg]);
        aidp_cli_run_finish(c, av, &p);
        return 0;
}

/* ["run", args..., "--", argv...] */
static char **request_argv(json_object *req, int *ac, char ***args, char ***job, aidp_error *err)
{
        size_t na, nj;
        if (aidp_proto_get_strv(req, "args", 4096, args, &na, err) < 0 ||
            aidp_proto_get_strv(req, "argv", 4096, job, &nj, err) < 0)
                return NULL;
        if (nj == 0) {
                aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "request: \"argv\": no command");
                return NULL;
        }
        char **av = calloc(na + nj + 3, sizeof *av);
        if (!av)
                return NULL;
        size_t k = 0;
        av[k++] = "run";
        for (size_t i = 0; i < na; i++)
                av[k++] = (*args)[i];
        av[k++] = "--";
        for (size_t i = 0; i < nj; i++)
                av[k++] = (*job)[i];
        *ac = (int)k;
        return av;
}

static int check_summary(int fd, aidp_error *err)
{
        struct stat st;
        int fl = fcntl(fd, F_GETFL);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (fl & O_PATH) ||
            (fl & O_ACCMODE) == O_RDONLY)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EBADF,
                                      "--summary: pass the new file open for writing");
        return 0;
}

int aidp_serve_request_parse(json_object *req, const int *fds, size_t n, const struct aidp_peer *pe,
                             struct aidp_serve_request *q, aidp_error *err)
{
        *q = (struct aidp_serve_request){.f = {.owned_in = -1, .owned_log = -1}};
        struct aidp_serve_fds *f = &q->f;
        struct aidp_cli_run *c = &q->c;
        if (parse_fds(req, fds, n, f, err) < 0 ||
            aidp_proto_get_strv(req, "env", 4096, &q->env, &q->n_env, err) < 0 ||
            !(q->av = request_argv(req, &q->ac, &q->args, &q->job, err)) ||
            parse_args(q->av, q->ac, c, pe->uid == 0, err) < 0)
                return -1;
        if (f->n_data != c->o.n_data || f->n_binds != c->o.n_binds)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EBADF,
                                      "request: %zu --data and %zu binds, but %zu and %zu fds",
                                      c->o.n_data, c->o.n_binds, f->n_data, f->n_binds);
        q->peer = (struct aidp_run_peer){.uid = pe->uid,
                                         .gid = pe->gid,
                                         .groups = pe->groups,
                                         .n_groups = pe->n_groups,
                                         .env = q->env,
                                         .data_fds = f->data,
                                         .bind_fds = f->binds,
                                         .cwd_fd = f->cwd,
                                         .output_dir_fd = f->output_dir};
        c->o.peer = &q->peer;
        if (parse_labels(req, &q->peer, err) < 0 ||
            (c->o.summary_path && check_summary(f->summary, err) < 0))
                return -1;
        if (c->o.output_dir && f->output_dir < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EBADF, "%s %s: no fd passed",
                                      aidp_run_output_dir_label(&c->o), c->o.output_dir);
        return 0;
}

bool aidp_serve_request_detached(json_object *req)
{
        json_object *v = NULL;
        return json_object_object_get_ex(req, "detach", &v) && json_object_get_boolean(v);
}

void aidp_serve_request_free(struct aidp_serve_request *q)
{
        aidp_cli_list_free(&q->c.env);
        aidp_cli_list_free(&q->c.data);
        free(q->av);
        aidp_proto_strv_free(q->args);
        aidp_proto_strv_free(q->job);
        aidp_proto_strv_free(q->env);
        q->av = q->args = q->job = q->env = NULL;
}
