/* `aidp profile learn`: run a job under a filter that reports every system
 * call, then write an allowlist profile of what it used.
 *
 * The tool does not build the sandbox itself: it runs `aidp-supervisor learn`
 * (the binary next to this one, never one found through PATH) with one end of a
 * socket pair as --notify-fd. The supervisor runs the job like `run` and sends
 * the job's seccomp listener over that socket; this process answers every
 * notification with "continue" and records its number. So `aidp` links no part
 * of the run core. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <seccomp.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/io.h"
#include "common/path.h"
#include "profiles/profile_load.h"
#include "supervisor/cli/cli.h"
#include "supervisor/run/profile_env.h"
#include "supervisor/sandbox/fdpass.h"

extern char **environ;

#define PROG         "aidp profile learn"
#define LEARN_MAX_NR 1024

struct learn_cli {
        const char *out, *base, *name, *user;
        const char *run_id, *run_dir, *lineage; /* passed to aidp-supervisor learn */
};

#define LC(f) offsetof(struct learn_cli, f)

static const struct aidp_cli_opt learn_opts[] = {
        AIDP_CLI_OPT("output", 'o', AIDP_CLI_STRING, LC(out), "OUT.yaml",
                     "where the learned profile is written", AIDP_TRUST_USER),
        AIDP_CLI_OPT("base", 0, AIDP_CLI_STRING, LC(base), "NAME",
                     "profile to extend and run under (default: baseline)", AIDP_TRUST_USER),
        AIDP_CLI_OPT("name", 0, AIDP_CLI_STRING, LC(name), "NAME",
                     "the new profile's name (default: from OUT's file name)", AIDP_TRUST_USER),
        AIDP_CLI_OPT("user", 0, AIDP_CLI_STRING, LC(user), "NAME|UID[:GID]",
                     "identity of the job (as for aidp-supervisor run)", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("run-id", 0, AIDP_CLI_STRING, LC(run_id), "ID",
                     "the run's id (as for aidp-supervisor run)", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("run-dir", 0, AIDP_CLI_STRING, LC(run_dir), "DIR",
                     "run journals (as for aidp-supervisor run)", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("lineage", 0, AIDP_CLI_STRING, LC(lineage), "FILE",
                     "lineage log (as for aidp-supervisor run)", AIDP_TRUST_ADMIN),
        {0},
};

const struct aidp_cli_spec aidp_cli_profile_learn_spec = {
        .prog = PROG,
        .synopsis = "[--base NAME] [--name NAME] -o OUT.yaml -- CMD [ARGS...]",
        .about = "Run CMD in the sandbox (through aidp-supervisor learn, as root), record\n"
                 "its system calls and write an allowlist profile extending the base.\n"
                 "SIGINT, SIGTERM, SIGHUP or SIGQUIT stop the run as they stop\n"
                 "aidp-supervisor run (shred, ABORT in lineage); no profile is written then.",
        .opts = learn_opts,
        .in_order = true,
        .min_args = 1,
        .max_args = -1,
        .args = "CMD after the options (no command given)",
};

struct seen {
        unsigned char nr[LEARN_MAX_NR];
        unsigned long notifications;
};

/* Answer one notification with "continue" and record its syscall number. */
static void answer(int fd, struct seccomp_notif *req, struct seccomp_notif_resp *resp,
                   struct seen *s)
{
        memset(req, 0, sizeof *req);
        if (seccomp_notify_receive(fd, req) < 0)
                return; /* the caller died meanwhile */
        if (req->data.nr >= 0 && req->data.nr < LEARN_MAX_NR)
                s->nr[req->data.nr] = 1;
        s->notifications++;
        memset(resp, 0, sizeof *resp);
        resp->id = req->id;
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        seccomp_notify_respond(fd, resp); /* ENOENT: it died, fine */
}

/* The stop signals: held from before the supervisor starts, read from a
 * signalfd, so that a Ctrl-C or SIGTERM at any point (even before the job
 * starts) stops the run through the supervisor, which shreds and records the
 * ABORT, instead of killing this process and leaving the run behind. */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

struct stopper {
        int sfd;
        pid_t supervisor;
        int signal; /* the first stop signal received, 0 if none */
};

static int stopper_open(struct stopper *st, sigset_t *old)
{
        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < ARRAY_SIZE(stop_signals); i++)
                sigaddset(&set, stop_signals[i]);
        if (sigprocmask(SIG_BLOCK, &set, old) < 0)
                return -errno;
        /* A shell's background job ignores SIGINT and SIGQUIT: an ignored
         * signal would be discarded before the signalfd sees it. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        for (size_t i = 0; i < ARRAY_SIZE(stop_signals); i++)
                sigaction(stop_signals[i], &dfl, NULL);
        st->sfd = signalfd(-1, &set, SFD_CLOEXEC);
        return st->sfd < 0 ? -errno : 0;
}

/* A stop signal for us goes to the supervisor (our own child, by pid), once:
 * it stops the job as for aidp-supervisor run. A terminal's Ctrl-C (sent by
 * the kernel to the whole foreground group) already reached it. */
static void stopper_read(struct stopper *st)
{
        struct signalfd_siginfo si;
        if (read(st->sfd, &si, sizeof si) != sizeof si)
                return;
        if (!st->signal)
                st->signal = (int)si.ssi_signo;
        if (si.ssi_code != SI_KERNEL && st->supervisor > 0)
                kill(st->supervisor, (int)si.ssi_signo);
}

/* Until the supervisor sends the job's listener (1), or closes the socket
 * because the run ended before the job started (0). */
static int wait_listener(int sock, struct stopper *st, int *listener)
{
        for (;;) {
                struct pollfd pf[2] = {{.fd = sock, .events = POLLIN},
                                       {.fd = st->sfd, .events = POLLIN}};
                if (poll(pf, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return 0;
                }
                if (pf[1].revents)
                        stopper_read(st);
                if (pf[0].revents) {
                        char byte;
                        size_t n = 0;
                        return aidp_fdpass_recv(sock, &byte, listener, 1, &n) == 1 && n == 1;
                }
        }
}

/* The job blocks in each system call until it is answered, so this loop keeps
 * up for the whole run, stop signals included (the job must be answered until
 * it ends). It ends when the filter has no users left (POLLHUP) or the
 * supervisor closed its end of the socket (the run is over). */
static void learn_loop(int listener, int sock, struct stopper *st, struct seen *s)
{
        struct seccomp_notif *req = NULL;
        struct seccomp_notif_resp *resp = NULL;
        if (seccomp_notify_alloc(&req, &resp) < 0)
                return;
        for (;;) {
                struct pollfd pf[3] = {{.fd = listener, .events = POLLIN},
                                       {.fd = sock, .events = POLLIN},
                                       {.fd = st->sfd, .events = POLLIN}};
                int n = poll(pf, 3, -1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        break;
                if (pf[2].revents)
                        stopper_read(st);
                if (pf[0].revents & POLLIN) {
                        answer(listener, req, resp, s);
                        continue;
                }
                if ((pf[0].revents & (POLLHUP | POLLERR | POLLNVAL)) || pf[1].revents)
                        break;
        }
        seccomp_notify_free(req, resp);
}

/* aidp-supervisor in this binary's own directory: what was installed together. */
static int supervisor_path(char *out, size_t size, aidp_error *err)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "reading /proc/self/exe");
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "odd /proc/self/exe '%s'",
                                      self);
        *slash = '\0';
        if (aidp_path_join(out, size, self[0] ? self : "/", "aidp-supervisor") < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENAMETOOLONG,
                                      "path of aidp-supervisor too long");
        if (access(out, X_OK) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "aidp-supervisor next to this aidp (%s)", out);
        return 0;
}

/* Start `aidp-supervisor learn --notify-fd 3 ... -- CMD`, the socket as its fd 3,
 * with the signal mask this process had before it held the stop signals. */
static int spawn_supervisor(const struct learn_cli *c, char **cmd, int child_sock,
                            const sigset_t *mask, pid_t *pid, aidp_error *err)
{
        char sup[PATH_MAX];
        int r = supervisor_path(sup, sizeof sup, err);
        if (r < 0)
                return r;
        size_t ncmd = 0;
        while (cmd[ncmd])
                ncmd++;
        _cleanup_free_ char **args = calloc(ncmd + 18, sizeof *args);
        if (!args)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        size_t n = 0;
        args[n++] = sup;
        args[n++] = "learn";
        args[n++] = "--notify-fd";
        args[n++] = "3";
        args[n++] = "--profile";
        args[n++] = (char *)c->base;
        const char *pass[][2] = {{"--user", c->user},
                                 {"--run-id", c->run_id},
                                 {"--run-dir", c->run_dir},
                                 {"--lineage", c->lineage}};
        for (size_t i = 0; i < ARRAY_SIZE(pass); i++)
                if (pass[i][1]) {
                        args[n++] = (char *)pass[i][0];
                        args[n++] = (char *)pass[i][1];
                }
        args[n++] = "--";
        memcpy(args + n, cmd, ncmd * sizeof *args);
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&at);
        /* child_sock is never 3 (see learn_run), so dup2 clears close-on-exec */
        posix_spawn_file_actions_adddup2(&fa, child_sock, 3);
        posix_spawnattr_setsigmask(&at, mask);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
        r = posix_spawn(pid, sup, &fa, &at, args, environ);
        posix_spawnattr_destroy(&at);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, r, "starting %s", sup);
        return 0;
}

static int wait_status(pid_t pid, struct stopper *st)
{
        int ws;
        for (;;) {
                /* stop signals still go to the supervisor while it tears down */
                struct pollfd pf = {.fd = st->sfd, .events = POLLIN};
                pid_t w = waitpid(pid, &ws, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR)
                        return AIDP_EXIT_INTERNAL;
                if (poll(&pf, 1, 100) > 0)
                        stopper_read(st);
        }
        return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* Run the job through the supervisor, answering its notifications. *got says
 * whether the job started (a listener came); the result is the supervisor's
 * exit status (the job's own once it ran). */
static int learn_run(const struct learn_cli *c, char **cmd, struct seen *s, bool *got,
                     struct stopper *st, const sigset_t *mask, aidp_error *err)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "socketpair");
        _cleanup_close_ int mine = sv[0];
        _cleanup_close_ int theirs = fcntl(sv[1], F_DUPFD_CLOEXEC, 4);
        close(sv[1]);
        if (theirs < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "dup");
        pid_t pid;
        int r = spawn_supervisor(c, cmd, theirs, mask, &pid, err);
        if (r < 0)
                return r;
        st->supervisor = pid;
        if (st->signal) /* a stop that came before the supervisor existed */
                kill(pid, st->signal);
        close(TAKE_FD(theirs)); /* EOF on mine once the supervisor is gone */
        int listener = -1;
        *got = wait_listener(mine, st, &listener);
        if (*got) {
                learn_loop(listener, mine, st, s);
                close(listener);
        }
        return wait_status(pid, st);
}

/* OUT's file name without .yaml, made a valid profile name. */
static void name_from_output(const char *out, char *name, size_t size)
{
        const char *b = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
        snprintf(name, size, "%s", b);
        char *dot = strstr(name, ".y");
        if (dot)
                *dot = '\0';
        for (char *p = name; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
                        *p = '-';
        if (!name[0] || !isalnum((unsigned char)name[0]))
                snprintf(name, size, "learned");
}

static int write_file_atomic(const char *path, const char *text, aidp_error *err)
{
        char tmp[PATH_MAX];
        if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG, "%s: path too long",
                                      path);
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "creating %s", tmp);
        int r = aidp_write_all(fd, text, strlen(text));
        if (r == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0))
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r, "writing %s", path);
        }
        return 0;
}

static int write_profile(const struct learn_cli *c, const struct seen *s, size_t *n,
                         aidp_error *err)
{
        int nrs[LEARN_MAX_NR];
        *n = 0;
        for (int i = 0; i < LEARN_MAX_NR; i++)
                if (s->nr[i])
                        nrs[(*n)++] = i;
        struct aidp_profile_host h;
        _cleanup_free_ char *yaml = NULL;
        if (aidp_profile_host_init(&h, false, err) < 0)
                return -1;
        int r = aidp_profile_write_allowlist(c->name, c->base, nrs, *n, &h.env, &yaml, err);
        aidp_profile_host_free(&h);
        if (r < 0)
                return r;
        return write_file_atomic(c->out, yaml, err);
}

int aidp_cli_profile_learn(int argc, char **argv)
{
        struct learn_cli c = {.base = "baseline"};
        struct aidp_cli_parsed p;
        int status;
        if (!aidp_cli_options(&aidp_cli_profile_learn_spec, argc, argv, &c, &p, &status))
                return status;
        if (!c.out)
                return aidp_cli_usage_error(PROG, "missing -o OUT.yaml");
        if (geteuid() != 0) {
                fprintf(stderr, PROG ": must run as root (it builds a sandbox)\n");
                return AIDP_EXIT_USAGE;
        }
        char namebuf[64];
        if (!c.name) {
                name_from_output(c.out, namebuf, sizeof namebuf);
                c.name = namebuf;
        }
        struct seen *s = calloc(1, sizeof *s);
        if (!s)
                return AIDP_EXIT_INTERNAL;
        aidp_error err = {0};
        bool got = false;
        size_t n = 0;
        struct stopper st = {.sfd = -1};
        sigset_t mask;
        if (stopper_open(&st, &mask) < 0) {
                fprintf(stderr, PROG ": error: holding the stop signals: %s\n", strerror(errno));
                free(s);
                return AIDP_EXIT_INTERNAL;
        }
        status = learn_run(&c, argv + p.first_arg, s, &got, &st, &mask, &err);
        if (status < 0)
                status = aidp_cli_fail(PROG, &err);
        else if (st.signal)
                fprintf(stderr,
                        PROG ": stopped by SIG%s; the run was ended (shred, ABORT in lineage) and "
                             "no profile was written\n",
                        sigabbrev_np(st.signal) ?: "?");
        else if (got && write_profile(&c, s, &n, &err) < 0)
                status = aidp_cli_fail(PROG, &err);
        else if (got)
                fprintf(stderr, PROG ": %s: %zu syscalls from %lu calls; the job exited %d%s\n",
                        c.out, n, s->notifications, status,
                        status ? " (the profile covers only what ran)" : "");
        if (st.signal && status == 0)
                status = 128 + st.signal; /* stopped: never a success */
        close(st.sfd);
        free(s);
        return status;
}
