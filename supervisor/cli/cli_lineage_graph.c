/* aidp lineage graph: the log as a graph (DOT, or SVG/PNG/PDF through Graphviz). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_lineage.h"

extern char **environ;

/* ---- graph ------------------------------------------------------------------------------ */

static void dot_escape(FILE *f, const char *s)
{
        for (; s && *s; s++) {
                if (*s == '"' || *s == '\\')
                        fputc('\\', f);
                if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}

static void dataset_id(char *out, size_t n, json_object *ds)
{
        snprintf(out, n, "%s/%s", aidp_cli_json_str(ds, "namespace", NULL, NULL) ?: "",
                 aidp_cli_json_str(ds, "name", NULL, NULL) ?: "");
}

/* --dataset: the runs that read the dataset, what they wrote, the runs that read
 * that, and so on (where the data went), plus the runs that wrote the dataset itself
 * (where it came from). */
static void graph_select(const struct events *e, struct runs *rs, const char *dataset)
{
        _cleanup_(json_object_putp) json_object *reach = json_object_new_object();
        for (size_t i = 0; i < rs->n; i++)
                rs->r[i].selected = !dataset;
        if (!dataset)
                return;
        bool changed = true;
        while (changed) {
                changed = false;
                for (size_t i = 0; i < rs->n; i++) {
                        struct run *r = &rs->r[i];
                        if (r->selected)
                                continue;
                        bool hit = false;
                        for (size_t k = 0; k < r->n && !hit; k++) {
                                json_object *ev = e->ev[r->idx[k]], *arr;
                                static const char *const lists[] = {"inputs", "outputs"};
                                for (size_t l = 0; l < 2 && !hit; l++) {
                                        if (!json_object_object_get_ex(ev, lists[l], &arr))
                                                continue;
                                        for (size_t d = 0;
                                             d < json_object_array_length(arr) && !hit; d++) {
                                                json_object *ds = json_object_array_get_idx(arr, d);
                                                char id[1024];
                                                dataset_id(id, sizeof id, ds);
                                                hit = aidp_cli_dataset_matches(ds, dataset) ||
                                                      (l == 0 &&
                                                       json_object_object_get_ex(reach, id, NULL));
                                        }
                                }
                        }
                        if (!hit)
                                continue;
                        r->selected = true;
                        changed = true;
                        for (size_t k = 0; k < r->n; k++) {
                                json_object *arr;
                                if (!json_object_object_get_ex(e->ev[r->idx[k]], "outputs", &arr))
                                        continue;
                                for (size_t d = 0; d < json_object_array_length(arr); d++) {
                                        char id[1024];
                                        dataset_id(id, sizeof id,
                                                   json_object_array_get_idx(arr, d));
                                        json_object_object_add(reach, id, NULL);
                                }
                        }
                }
        }
}

static void graph_write(FILE *f, const struct events *e, const struct runs *rs)
{
        _cleanup_(json_object_putp) json_object *nodes = json_object_new_object();
        _cleanup_(json_object_putp) json_object *edges = json_object_new_object();
        fprintf(f, "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", "
                   "fontsize=10];\n");
        for (size_t i = 0; i < rs->n; i++) {
                const struct run *r = &rs->r[i];
                if (!r->selected)
                        continue;
                json_object *first = e->ev[r->idx[0]], *last = e->ev[r->idx[r->n - 1]];
                json_object *caller = NULL;
                for (size_t k = 0;
                     k < r->n && !(caller = aidp_cli_run_facet(e->ev[r->idx[k]], "aidp_caller"));
                     k++)
                        ;
                fprintf(f, "  \"run:");
                dot_escape(f, r->id);
                fprintf(f, "\" [shape=box, style=\"rounded,filled\", fillcolor=\"%s\", label=\"",
                        !strcmp(aidp_cli_json_str(last, "eventType", NULL, NULL) ?: "", "COMPLETE")
                                ? "#d9f2d9"
                        : !strcmp(aidp_cli_json_str(last, "eventType", NULL, NULL) ?: "", "START")
                                ? "#fff2cc"
                                : "#f4cccc");
                dot_escape(f, aidp_cli_json_str(first, "job", "name", NULL) ?: "?");
                fprintf(f, "\\nrun %.8s\\n", r->id);
                dot_escape(f, aidp_cli_json_str(last, "eventType", NULL, NULL) ?: "?");
                if (caller && aidp_cli_json_str(caller, "user", NULL, NULL)) {
                        fprintf(f, " by ");
                        dot_escape(f, aidp_cli_json_str(caller, "user", NULL, NULL));
                }
                fprintf(f, "\"];\n");
                static const char *const lists[] = {"inputs", "outputs"};
                for (size_t k = 0; k < r->n; k++)
                        for (size_t l = 0; l < 2; l++) {
                                json_object *arr;
                                if (!json_object_object_get_ex(e->ev[r->idx[k]], lists[l], &arr))
                                        continue;
                                for (size_t d = 0; d < json_object_array_length(arr); d++) {
                                        json_object *ds = json_object_array_get_idx(arr, d),
                                                    *facets, *fc;
                                        char id[1024], edge[1200];
                                        dataset_id(id, sizeof id, ds);
                                        if (!json_object_object_get_ex(nodes, id, NULL)) {
                                                json_object_object_add(nodes, id, NULL);
                                                fprintf(f, "  \"ds:");
                                                dot_escape(f, id);
                                                fprintf(f, "\" [shape=%s, label=\"",
                                                        l ? "note" : "ellipse");
                                                dot_escape(f, id);
                                                if (json_object_object_get_ex(ds, "facets",
                                                                              &facets)) {
                                                        if (json_object_object_get_ex(
                                                                    facets, "aidp_digest", &fc))
                                                                fprintf(f, "\\n%.12s...",
                                                                        aidp_cli_json_str(
                                                                                fc, "value", NULL,
                                                                                NULL)
                                                                                ?: "");
                                                        if (json_object_object_get_ex(
                                                                    facets, "aidp_classification",
                                                                    &fc) &&
                                                            aidp_cli_json_str(fc, "classification",
                                                                              NULL, NULL)) {
                                                                fprintf(f, "\\n[");
                                                                dot_escape(f,
                                                                           aidp_cli_json_str(
                                                                                   fc,
                                                                                   "classification",
                                                                                   NULL, NULL));
                                                                fprintf(f, "]");
                                                        }
                                                }
                                                fprintf(f, "\"];\n");
                                        }
                                        snprintf(edge, sizeof edge, "%zu %s %s", l, r->id, id);
                                        if (json_object_object_get_ex(edges, edge, NULL))
                                                continue;
                                        json_object_object_add(edges, edge, NULL);
                                        fprintf(f, "  \"%s", l ? "run:" : "ds:");
                                        dot_escape(f, l ? r->id : id);
                                        fprintf(f, "\" -> \"%s", l ? "ds:" : "run:");
                                        dot_escape(f, l ? id : r->id);
                                        fprintf(f, "\";\n");
                                }
                        }
        }
        fprintf(f, "}\n");
}

/* What -o writes, chosen by the file's extension: DOT as is, or a format Graphviz's
 * dot(1) renders. An extension not listed is refused before anything is read. */
static const struct graph_format {
        const char *ext, *dot_arg;
} graph_formats[] = {
        {".dot", NULL}, {".gv", NULL}, {".svg", "-Tsvg"}, {".png", "-Tpng"}, {".pdf", "-Tpdf"},
};

static const struct graph_format *graph_format_of(const char *out)
{
        const char *dot = strrchr(out, '.');
        if (!dot || strchr(dot, '/'))
                return NULL;
        for (size_t i = 0; i < sizeof graph_formats / sizeof graph_formats[0]; i++)
                if (!strcasecmp(dot, graph_formats[i].ext))
                        return &graph_formats[i];
        return NULL;
}

/* Render DOT through Graphviz's dot(1), run directly (no shell), DOT on its stdin and the
 * rendered bytes on its stdout, which is the file we opened: dot is never handed a path. */
static int render_dot(const struct events *e, const struct runs *rs, const char *fmt_arg,
                      int out_fd, const char *out, aidp_error *err)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
        char *args[] = {"dot", (char *)fmt_arg, NULL};
        pid_t pid;
        int r = posix_spawnp(&pid, "dot", &fa, NULL, args, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[0]);
        if (r != 0) {
                close(p[1]);
                if (r == ENOENT)
                        return aidp_error_set(
                                err, AIDP_EXIT_FAILED, ENOENT,
                                "Graphviz 'dot' is not installed: cannot write %s "
                                "(write DOT instead with -o FILE.dot, or install graphviz)",
                                out);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, r, "running dot");
        }
        FILE *f = fdopen(p[1], "w");
        if (!f) {
                close(p[1]);
        } else {
                graph_write(f, e, rs);
                fclose(f);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "waiting for dot");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EIO, "dot failed to write %s", out);
        return 0;
}

/* Write the graph to a temporary file beside OUT and rename it into place, so a failed
 * render leaves neither a half-written file nor a truncated old one. */
static int graph_to_file(const struct events *e, const struct runs *rs,
                         const struct graph_format *fmt, const char *out, aidp_error *err)
{
        size_t n = strlen(out) + sizeof ".XXXXXX";
        _cleanup_free_ char *tmp = malloc(n);
        if (!tmp)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        snprintf(tmp, n, "%s.XXXXXX", out);
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_FAILED, errno, "writing %s", out);
        int r = 0;
        if (fmt->dot_arg) {
                r = render_dot(e, rs, fmt->dot_arg, fd, out, err);
        } else {
                FILE *f = fdopen(dup(fd), "w");
                if (!f) {
                        r = aidp_error_errno(err, AIDP_EXIT_FAILED, errno, "writing %s", out);
                } else {
                        graph_write(f, e, rs);
                        if (fclose(f) != 0)
                                r = aidp_error_errno(err, AIDP_EXIT_FAILED, errno, "writing %s",
                                                     out);
                }
        }
        /* mkostemp creates 0600; give the file the mode fopen would have (umask applied). */
        mode_t mask = umask(0);
        umask(mask);
        if (r == 0 && fchmod(fd, 0666 & ~mask) < 0)
                r = aidp_error_errno(err, AIDP_EXIT_FAILED, errno, "writing %s", out);
        if (r == 0 && rename(tmp, out) < 0)
                r = aidp_error_errno(err, AIDP_EXIT_FAILED, errno, "writing %s", out);
        if (r < 0)
                unlink(tmp);
        return r;
}

static const struct aidp_cli_opt graph_opts[] = {
        AIDP_CLI_LINEAGE_FILE_OPT,
        AIDP_CLI_LINEAGE_DATASET_OPT,
        AIDP_CLI_OPT("output", 'o', AIDP_CLI_STRING, LC(out), "OUT.EXT",
                     "write to OUT by its extension: .dot (DOT), or .svg, .png, .pdf\n"
                     "rendered by Graphviz's dot (default: DOT on stdout)",
                     AIDP_TRUST_USER),
        {0},
};

static const struct aidp_cli_spec graph_spec = {
        .prog = "aidp lineage graph",
        .synopsis = "[--file FILE] [--dataset NAME] [-o OUT.dot|.svg|.png|.pdf]",
        .about = "The runs and datasets of the log as a graph; with --dataset, where that\n"
                 "dataset came from and everywhere it went.",
        .opts = graph_opts,
        .footer = AIDP_CLI_LINEAGE_FILE_HELP,
};

int aidp_cli_lineage_graph(int argc, char **argv)
{
        struct lineage_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&graph_spec, argc, argv, &c, &pa, &st))
                return st;
        const char *file = c.file, *dataset = c.dataset, *out = c.out;
        const struct graph_format *fmt = out ? graph_format_of(out) : NULL;
        if (out && !fmt)
                return aidp_cli_usage_error(graph_spec.prog,
                                            "cannot write '%s': -o takes a file ending in .dot, "
                                            ".gv, .svg, .png or .pdf",
                                            out);
        const char *path = aidp_cli_lineage_path(file);
        aidp_error err = {0};
        struct events e = {0};
        struct runs rs = {0};
        int status = 0;
        if (aidp_cli_lineage_read(path, &e, &rs, &err) < 0) {
                status = aidp_cli_fail(PROG, &err);
                goto out;
        }
        graph_select(&e, &rs, dataset);
        if (out) {
                if (graph_to_file(&e, &rs, fmt, out, &err) < 0)
                        status = aidp_cli_fail(PROG, &err);
        } else {
                graph_write(stdout, &e, &rs);
        }
out:
        aidp_cli_runs_free(&rs);
        aidp_cli_events_free(&e);
        return status;
}
