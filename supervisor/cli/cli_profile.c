/* `aidp profile check|explain|diff|learn`: the security team's tools. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "profiles/profile_load.h"
#include "supervisor/cli/cli.h"
#include "supervisor/run/profile_env.h"
#include "supervisor/run/run.h"

#define PROG "aidp profile"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: aidp profile check [--strict] [--offline] FILE...\n"
                "       aidp profile explain [--offline] FILE|NAME\n"
                "       aidp profile diff [--offline] A B\n"
                "       aidp profile learn [--base NAME] [--name NAME] -o OUT.yaml -- CMD "
                "[ARGS...]\n"
                "\n"
                "check    load each profile, print errors and lint warnings; exit %d on errors,\n"
                "         with --strict also exit %d on warnings\n"
                "explain  the effective profile after `extends`, readable\n"
                "diff     what B loosens or tightens compared with A; exit %d when B loosens\n"
                "learn    run CMD in the sandbox, record its syscalls, write an allowlist profile\n"
                "\n"
                "--offline  do not check devices against this host\n"
                "Names are looked up in $AIDP_PROFILE_PATH, then the installed profile library.\n",
                AIDP_EXIT_CONFIG, AIDP_EXIT_FAILED, AIDP_EXIT_FAILED);
}

static int parse_common(int argc, char **argv, bool *strict, bool *offline, int *first)
{
        static const struct option opts[] = {
                {"strict", no_argument, NULL, 's'},
                {"offline", no_argument, NULL, 'O'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        optind = 1;
        int c;
        while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        if (!strict) {
                                fprintf(stderr, PROG " %s: --strict only applies to check\n",
                                        argv[0]);
                                return AIDP_EXIT_USAGE;
                        }
                        *strict = true;
                        break;
                case 'O': *offline = true; break;
                case 'h': usage(stdout); return -1;
                default: usage(stderr); return AIDP_EXIT_USAGE;
                }
        }
        *first = optind;
        return 0;
}

static void print_lints(const char *file, const struct aidp_lint_list *l, size_t *warnings)
{
        for (size_t i = 0; i < l->n; i++) {
                const struct aidp_lint *it = &l->items[i];
                printf("%s: %s: %s [%s]\n", it->where[0] ? it->where : file,
                       aidp_lint_level_name(it->level), it->msg, it->code);
                if (it->level == AIDP_LINT_WARNING)
                        (*warnings)++;
        }
}

static int cmd_check(int argc, char **argv)
{
        bool strict = false, offline = false;
        int first, rc = parse_common(argc, argv, &strict, &offline, &first);
        if (rc)
                return rc < 0 ? 0 : rc;
        if (first >= argc) {
                fprintf(stderr, PROG " check: expected at least one FILE\n");
                return AIDP_EXIT_USAGE;
        }
        size_t errors = 0, warnings_total = 0;
        for (int i = first; i < argc; i++) {
                struct aidp_profile p;
                struct aidp_lint_list lints = {0};
                aidp_error err = {0};
                size_t warnings = 0;
                if (aidp_profile_host_load(argv[i], !offline, &p, &lints, &err) < 0) {
                        fprintf(stderr, "%s: error: %s\n", argv[i], err.msg);
                        errors++;
                        aidp_lint_list_free(&lints);
                        continue;
                }
                print_lints(argv[i], &lints, &warnings);
                printf("%s: ok: profile %s, %zu warning%s\n", argv[i], p.name, warnings,
                       warnings == 1 ? "" : "s");
                warnings_total += warnings;
                aidp_lint_list_free(&lints);
                aidp_profile_free(&p);
        }
        if (errors)
                return AIDP_EXIT_CONFIG;
        if (strict && warnings_total) {
                fprintf(stderr, PROG " check: %zu warning%s and --strict\n", warnings_total,
                        warnings_total == 1 ? "" : "s");
                return AIDP_EXIT_FAILED;
        }
        return 0;
}

static int cmd_explain(int argc, char **argv)
{
        bool offline = false;
        int first, rc = parse_common(argc, argv, NULL, &offline, &first);
        if (rc)
                return rc < 0 ? 0 : rc;
        if (argc - first != 1) {
                fprintf(stderr, PROG " explain: expected one FILE or NAME\n");
                return AIDP_EXIT_USAGE;
        }
        struct aidp_profile_host h;
        struct aidp_profile p;
        aidp_error err = {0};
        if (aidp_profile_host_init(&h, !offline, &err) < 0)
                return aidp_cli_fail(PROG " explain", &err);
        if (aidp_profile_load(argv[first], &h.env, &p, NULL, &err) < 0) {
                aidp_profile_host_free(&h);
                return aidp_cli_fail(PROG " explain", &err);
        }
        _cleanup_free_ char *text = NULL;
        rc = aidp_profile_explain(&p, &h.env, &text, &err);
        aidp_profile_free(&p);
        aidp_profile_host_free(&h);
        if (rc < 0)
                return aidp_cli_fail(PROG " explain", &err);
        fputs(text, stdout);
        return 0;
}

static int cmd_diff(int argc, char **argv)
{
        bool offline = false;
        int first, rc = parse_common(argc, argv, NULL, &offline, &first);
        if (rc)
                return rc < 0 ? 0 : rc;
        if (argc - first != 2) {
                fprintf(stderr, PROG " diff: expected two profiles, A and B\n");
                return AIDP_EXIT_USAGE;
        }
        struct aidp_profile_host h;
        struct aidp_profile a, b;
        aidp_error err = {0};
        if (aidp_profile_host_init(&h, !offline, &err) < 0)
                return aidp_cli_fail(PROG " diff", &err);
        if (aidp_profile_load(argv[first], &h.env, &a, NULL, &err) < 0) {
                aidp_profile_host_free(&h);
                return aidp_cli_fail(PROG " diff", &err);
        }
        if (aidp_profile_load(argv[first + 1], &h.env, &b, NULL, &err) < 0) {
                aidp_profile_free(&a);
                aidp_profile_host_free(&h);
                return aidp_cli_fail(PROG " diff", &err);
        }
        _cleanup_free_ char *text = NULL;
        size_t loosen = 0;
        rc = aidp_profile_diff(&a, &b, &h.env, &text, &loosen, &err);
        aidp_profile_free(&a);
        aidp_profile_free(&b);
        aidp_profile_host_free(&h);
        if (rc < 0)
                return aidp_cli_fail(PROG " diff", &err);
        fputs(text, stdout);
        return loosen ? AIDP_EXIT_FAILED : 0;
}

/* ---- learn ---- */

#define LEARN_MAX_NR 1024

struct learn {
        int fd;
        pthread_t thread;
        bool started;
        atomic_bool stop;
        unsigned char seen[LEARN_MAX_NR];
        unsigned long notifications;
};

/* Answer every notification with "continue" and record its syscall number.
 * The job is blocked in the syscall until we answer, so this thread must
 * keep up for the whole run; it ends when the filter has no more users
 * (POLLHUP) or the run is over. */
static void *learn_loop(void *arg)
{
        struct learn *l = arg;
        struct seccomp_notif *req = NULL;
        struct seccomp_notif_resp *resp = NULL;
        if (seccomp_notify_alloc(&req, &resp) < 0)
                return NULL;
        while (!atomic_load(&l->stop)) {
                struct pollfd pf = {.fd = l->fd, .events = POLLIN};
                int n = poll(&pf, 1, 200);
                if (n < 0 && errno != EINTR)
                        break;
                if (n <= 0)
                        continue;
                if (pf.revents & POLLIN) {
                        memset(req, 0, sizeof *req);
                        if (seccomp_notify_receive(l->fd, req) < 0)
                                continue; /* the caller died meanwhile */
                        if (req->data.nr >= 0 && req->data.nr < LEARN_MAX_NR)
                                l->seen[req->data.nr] = 1;
                        l->notifications++;
                        memset(resp, 0, sizeof *resp);
                        resp->id = req->id;
                        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                        seccomp_notify_respond(l->fd, resp); /* ENOENT: it died, fine */
                        continue;
                }
                if (pf.revents & (POLLHUP | POLLERR | POLLNVAL))
                        break;
        }
        seccomp_notify_free(req, resp);
        return NULL;
}

static int learn_on_fd(int fd, void *arg)
{
        struct learn *l = arg;
        l->fd = fd;
        if (pthread_create(&l->thread, NULL, learn_loop, l) != 0) {
                close(fd);
                l->fd = -1;
                return -1;
        }
        l->started = true;
        return 0;
}

static int write_file_atomic(const char *path, const char *text, aidp_error *err)
{
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "creating %s", tmp);
        size_t len = strlen(text), off = 0;
        while (off < len) {
                ssize_t w = write(fd, text + off, len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0) {
                        int e = errno;
                        close(fd);
                        unlink(tmp);
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "writing %s", tmp);
                }
                off += (size_t)w;
        }
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
                int e = errno;
                unlink(tmp);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "writing %s", path);
        }
        return 0;
}

static int cmd_learn(int argc, char **argv)
{
        static const struct option opts[] = {
                {"output", required_argument, NULL, 'o'}, {"base", required_argument, NULL, 'b'},
                {"name", required_argument, NULL, 'n'},   {"user", required_argument, NULL, 'u'},
                {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
        };
        const char *out = NULL, *base = "baseline", *name = NULL, *user = NULL;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'o': out = optarg; break;
                case 'b': base = optarg; break;
                case 'n': name = optarg; break;
                case 'u': user = optarg; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return AIDP_EXIT_USAGE;
                }
        }
        if (!out || optind >= argc) {
                fprintf(stderr, PROG " learn: expected -o OUT.yaml and -- CMD\n");
                return AIDP_EXIT_USAGE;
        }
        if (geteuid() != 0) {
                fprintf(stderr, PROG " learn: must run as root (it builds a sandbox)\n");
                return AIDP_EXIT_USAGE;
        }
        char namebuf[64];
        if (!name) {
                /* OUT's file name without .yaml, made a valid profile name */
                const char *b = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
                snprintf(namebuf, sizeof namebuf, "%s", b);
                char *dot = strstr(namebuf, ".y");
                if (dot)
                        *dot = '\0';
                for (char *p = namebuf; *p; p++)
                        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
                                *p = '-';
                if (!namebuf[0] || !isalnum((unsigned char)namebuf[0]))
                        snprintf(namebuf, sizeof namebuf, "learned");
                name = namebuf;
        }
        struct learn *l = calloc(1, sizeof *l);
        if (!l)
                return AIDP_EXIT_INTERNAL;
        l->fd = -1;
        struct aidp_run_opts o = {
                .profile = base,
                .user = user,
                .argv = argv + optind,
                .quiet = true,
                .seccomp_flags = SECCOMP_FILTER_FLAG_NEW_LISTENER,
                .on_notify_fd = learn_on_fd,
                .notify_arg = l,
        };
        struct aidp_run_result res;
        aidp_error err = {0};
        int rc = aidp_run_execute(&o, &res, &err);
        atomic_store(&l->stop, true);
        if (l->started)
                pthread_join(l->thread, NULL);
        if (l->fd >= 0)
                close(l->fd);
        if (rc < 0) {
                free(l);
                return aidp_cli_fail(PROG " learn", &err);
        }
        int nrs[LEARN_MAX_NR];
        size_t n = 0;
        for (int i = 0; i < LEARN_MAX_NR; i++)
                if (l->seen[i])
                        nrs[n++] = i;
        unsigned long notes = l->notifications;
        free(l);
        struct aidp_profile_host h;
        _cleanup_free_ char *yaml = NULL;
        if (aidp_profile_host_init(&h, false, &err) < 0)
                return aidp_cli_fail(PROG " learn", &err);
        rc = aidp_profile_write_allowlist(name, base, nrs, n, &h.env, &yaml, &err);
        aidp_profile_host_free(&h);
        if (rc < 0 || write_file_atomic(out, yaml, &err) < 0)
                return aidp_cli_fail(PROG " learn", &err);
        fprintf(stderr, PROG " learn: %s: %zu syscalls from %lu calls; the job exited %d%s\n", out,
                n, notes, res.exit_status,
                res.exit_status ? " (the profile covers only what ran)" : "");
        return res.exit_status;
}

int aidp_cli_profile(int argc, char **argv)
{
        if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? AIDP_EXIT_USAGE : 0;
        }
        if (!strcmp(argv[1], "check"))
                return cmd_check(argc - 1, argv + 1);
        if (!strcmp(argv[1], "explain"))
                return cmd_explain(argc - 1, argv + 1);
        if (!strcmp(argv[1], "diff"))
                return cmd_diff(argc - 1, argv + 1);
        if (!strcmp(argv[1], "learn"))
                return cmd_learn(argc - 1, argv + 1);
        fprintf(stderr, PROG ": unknown subcommand '%s'\n", argv[1]);
        usage(stderr);
        return AIDP_EXIT_USAGE;
}
