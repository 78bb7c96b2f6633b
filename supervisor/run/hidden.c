#define _GNU_SOURCE
/* Paths the sandbox hides from the job (/home, /root and /run are masked;
 * /tmp is the run's own tmpfs), named so that a virtualenv, conda or pyenv
 * environment under $HOME does not fail with a bare "No such file or
 * directory" or silently run the system python3. Lexical only: the caller's
 * paths are never opened or stat'ed with root's authority. */
#include <stdio.h>
#include <string.h>

#include "common/path.h"
#include "supervisor/run/run_internal.h"

static const char *const hidden_tops[] = {"/home", "/root", "/run", "/tmp"};

/* Is path at or below dir (both absolute, no trailing slash on dir)? */
static bool below(const char *path, const char *dir)
{
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
                n--;
        return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0' || n == 1);
}

/* The directory to bind for path: the environment's root for a venv, conda
 * or pyenv interpreter (the parent of its bin/), otherwise path's own
 * directory (or path, for a directory on PATH). */
static void bind_for(const char *path, bool is_dir, char *out, size_t size)
{
        snprintf(out, size, "%s", path);
        char *bin = strstr(out, "/bin/");
        if (!bin && is_dir && strlen(out) >= 4 && !strcmp(out + strlen(out) - 4, "/bin"))
                bin = out + strlen(out) - 4;
        if (bin && bin != out) {
                *bin = '\0';
                return;
        }
        char *slash = strrchr(out, '/');
        if (!is_dir && slash && slash != out)
                *slash = '\0';
}

bool aidp_run_hidden_path(const struct run *r, const char *path, bool is_dir, char *hint,
                          size_t size)
{
        char abs[4096];
        if (!path || !path[0])
                return false;
        if (!strchr(path, '/'))
                return false; /* a bare name is looked up on the job's PATH */
        /* A path too long to judge gives no hint rather than a wrong one. */
        if (path[0] == '/' ? aidp_path_join(abs, sizeof abs, "/", path) < 0
                           : aidp_path_join(abs, sizeof abs, r->cwd, path) < 0)
                return false;
        const char *top = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(hidden_tops) && !top; i++)
                if (below(abs, hidden_tops[i]))
                        top = hidden_tops[i];
        if (!top)
                return false;
        /* Visible after all: bound by the profile or --ro-bind/--bind, or in
         * the working directory, which is bound at the same path. */
        for (size_t i = 0; i < r->profile.n_binds; i++) {
                const struct aidp_bind *b = &r->profile.binds[i];
                if (below(abs, b->target ? b->target : b->source))
                        return false;
        }
        if (r->profile.bind_cwd && strcmp(r->cwd, "/") && below(abs, r->cwd))
                return false;
        char dir[4096];
        bind_for(abs, is_dir, dir, sizeof dir);
        snprintf(hint, size,
                 "%s is under %s, which the sandbox hides from the job; bind it with "
                 "--ro-bind %s (a virtualenv, conda or pyenv environment: its whole directory)",
                 abs, top, dir);
        return true;
}

/* A PATH directory of a Python environment (the usual names of venv, conda,
 * pyenv, poetry and pipenv directories): where a bare `python3` resolves
 * differently inside. Other hidden PATH entries (~/.local/bin) are common and
 * mostly harmless, and not warned about. */
static bool python_env_dir(const char *dir)
{
        static const char *const marks[] = {"venv",   "virtualenvs", "conda",   "mamba",
                                            ".pyenv", "/envs/",      "pypoetry"};
        for (size_t i = 0; i < ARRAY_SIZE(marks); i++)
                if (strstr(dir, marks[i]))
                        return true;
        return false;
}

/* The first hidden path among the job's command, its PATH and, with words
 * (the job failed to run something), the words of its arguments
 * (`sh -c "~/venv/bin/python train.py"`). */
bool aidp_run_hidden_scan(const struct run *r, bool words, char *hint, size_t size)
{
        char **argv = r->o->argv;
        for (size_t i = 0; argv && argv[i] && (i == 0 || words); i++) {
                char buf[4096];
                snprintf(buf, sizeof buf, "%s", argv[i]);
                char *save = NULL;
                for (char *w = strtok_r(buf, " \t\n;&|()'\"=:", &save); w;
                     w = strtok_r(NULL, " \t\n;&|()'\"=:", &save))
                        if ((i == 0 || w[0] == '/') &&
                            aidp_run_hidden_path(r, w, false, hint, size))
                                return true;
        }
        bool bare = argv && argv[0] && !strchr(argv[0], '/');
        for (size_t i = 0; bare && i < r->n_env; i++) {
                if (strncmp(r->env[i], "PATH=", 5))
                        continue;
                char buf[4096];
                snprintf(buf, sizeof buf, "%s", r->env[i] + 5);
                char *save = NULL;
                for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save))
                        if (d[0] == '/' && python_env_dir(d) &&
                            aidp_run_hidden_path(r, d, true, hint, size))
                                return true;
        }
        return false;
}

int aidp_run_check_masked_binds(const struct run *r, size_t first_cli_bind, aidp_error *err)
{
        const struct aidp_profile *p = &r->profile;
        for (size_t m = 0; m < p->n_masked; m++) {
                const char *mask = p->masked[m];
                for (size_t i = first_cli_bind; i < p->n_binds; i++) {
                        const struct aidp_bind *b = &p->binds[i];
                        const char *target = b->target ? b->target : b->source;
                        /* The source too: a bind would show what the mask
                         * hides, at another path. */
                        if (below(b->source, mask))
                                return aidp_error_set(
                                        err, AIDP_EXIT_USAGE, EPERM,
                                        "%s %s: under %s, which profile %s masks: never shown "
                                        "to the job",
                                        b->writable ? "--bind" : "--ro-bind", b->source, mask,
                                        p->name);
                        if (below(target, mask))
                                return aidp_error_set(
                                        err, AIDP_EXIT_USAGE, EINVAL,
                                        "%s %s: %s is under %s, which profile %s masks: the job "
                                        "would not see it; bind it elsewhere (%s %s:/mnt/NAME)",
                                        b->writable ? "--bind" : "--ro-bind", b->source, target,
                                        mask, p->name, b->writable ? "--bind" : "--ro-bind",
                                        b->source);
                }
                if (p->bind_cwd && strcmp(r->cwd, "/") && below(r->cwd, mask))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "%s %s is under %s, which profile %s masks: the job "
                                              "could not enter it; choose one with --cwd DIR, or "
                                              "none with --no-cwd",
                                              aidp_run_cwd_label(r->o), r->cwd, mask, p->name);
        }
        return 0;
}
