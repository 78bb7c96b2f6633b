/* aidp SPANK plugin: runs every task of a step that asks for it (--aidp-profile,
 * --aidp-data, --aidp-out) inside `aidp-supervisor run --exec-hook`, as the job's
 * user, with identity and ids taken from Slurm (spank_get_item), never from the
 * job's environment. Site guide: docs/slurm.md.
 *
 * The hand-over. Slurm forks one process per task (call it C) and, in C, calls
 * task_init_privileged as root before it drops to the user, sets up the task's
 * stdio and runs task_init (slurmstepd's mgr.c and task.c). Only root can start
 * the supervisor, and only after become_user does C hold the job's stdio. So C
 * forks a helper G at task_init_privileged and waits; G returns into Slurm,
 * which makes it the user, connects the task's stdin/stdout/stderr and calls
 * task_init, where G sends those fds, its working directory and the task's
 * environment to C over a socketpair and exits. C (still root, and the pid
 * slurmstepd waits for and signals) puts the fds on 0/1/2 and execs the
 * supervisor, whose exit status becomes the task's. G never reaches the job's
 * own execve, so nothing of the job runs outside the sandbox.
 *
 * Plugin arguments (plugstack.conf, written by the site's admin):
 *   supervisor=PATH   aidp-supervisor to run (default AIDP_SPANK_SUPERVISOR)
 *   run_dir=DIR       --run-dir for run and gc
 *   arg=ARG           one more argument for `run` (repeatable), e.g. arg=--lineage=FILE
 *   env=NAME=VALUE    environment of the supervisor (repeatable; it starts empty
 *                     but for PATH)
 *   quiet=1           no run summary on the job's stderr
 *   gc=0              do not run `aidp-supervisor gc` in the job epilog */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

SPANK_PLUGIN(aidp, 1);

#ifndef AIDP_SPANK_SUPERVISOR
#define AIDP_SPANK_SUPERVISOR "/usr/bin/aidp-supervisor"
#endif
#define MAX_ARGS               64
#define MAX_LIST               4096
#define MAX_ENV_BYTES          (1u << 20)
#define EXIT_SUPERVISOR_FAILED 125 /* aidp's "supervisor failure" */
#define EXIT_USAGE             120 /* aidp's "bad command line" */

/* Options of this step (set by the option callbacks, in every context). */
static char opt_profile[PATH_MAX];
static char opt_data[MAX_LIST]; /* comma-separated, in order */
static char opt_out[PATH_MAX];
static int n_data_flags;

/* Plugin arguments. */
static const char *supervisor = AIDP_SPANK_SUPERVISOR;
static const char *run_dir;
static const char *extra_args[MAX_ARGS];
static int n_extra_args;
static const char *sup_env[MAX_ARGS];
static int n_sup_env;
static bool quiet, run_gc = true;

/* G's end of the hand-over socket; -1 in every other process. */
static int handoff_fd = -1;

/* The list of --aidp-data values travels in one forwarded option value, so a
 * repeated flag is joined here (srun/sbatch) and handed on in the job's
 * environment; see data_list(). */
#define DATA_ENV "SPANK_AIDP_DATA"

static int set_value(char *dst, size_t size, const char *name, const char *arg)
{
        if (!arg || !*arg || strlen(arg) >= size) {
                slurm_error("aidp: --%s needs a value shorter than %zu bytes", name, size);
                return -1;
        }
        snprintf(dst, size, "%s", arg);
        return 0;
}

/* A library profile name only: a path would let the submitting user hand root a
 * profile file of their own (capabilities, binds). */
static int cb_profile(int val, const char *arg, int remote)
{
        size_t n = arg ? strlen(arg) : 0;
        if (n == 0 || n > 64 || arg[0] == '.' || arg[0] == '-' ||
            strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n ||
            (n > 5 && !strcmp(arg + n - 5, ".yaml"))) {
                slurm_error("aidp: --aidp-profile=%s: expected the name of an installed library "
                            "profile (such as strict-cpu-train), not a file",
                            arg ? arg : "");
                return -1;
        }
        return set_value(opt_profile, sizeof opt_profile, "aidp-profile", arg);
}

static int cb_out(int val, const char *arg, int remote)
{
        return set_value(opt_out, sizeof opt_out, "aidp-out", arg);
}

static int cb_data(int val, const char *arg, int remote)
{
        if (!arg || !*arg || arg[0] == ',') {
                slurm_error("aidp: --aidp-data needs FILE.sealed[,FILE.sealed...]");
                return -1;
        }
        if (remote) /* the value forwarded by srun/sbatch: the last flag only */
                return set_value(opt_data, sizeof opt_data, "aidp-data", arg);
        size_t len = strlen(opt_data);
        if (len + strlen(arg) + 2 > sizeof opt_data) {
                slurm_error("aidp: --aidp-data: the list is longer than %zu bytes",
                            sizeof opt_data);
                return -1;
        }
        snprintf(opt_data + len, sizeof opt_data - len, "%s%s", len ? "," : "", arg);
        if (++n_data_flags > 1)
                setenv(DATA_ENV, opt_data, 1);
        return 0;
}

static struct spank_option options[] = {
        {"aidp-profile", "NAME",
         "run each task in the aidp sandbox with this library profile (aidp-supervisor run "
         "--profile)",
         1, 0, cb_profile},
        {"aidp-data", "FILE.sealed",
         "sealed dataset decrypted read-only at /data/<name> inside the sandbox (repeatable, "
         "or a comma-separated list)",
         1, 0, cb_data},
        {"aidp-out", "DIR", "seal the sandbox's /out into DIR/<run-id>.sealed at the end", 1, 0,
         cb_out},
        SPANK_OPTIONS_TABLE_END,
};

/* Every hook gets the arguments again, and slurmd runs job_prolog/job_epilog in
 * a fresh process without init: parse them wherever they are needed. */
static int parse_plugin_args(int ac, char **av)
{
        supervisor = AIDP_SPANK_SUPERVISOR;
        run_dir = NULL;
        n_extra_args = n_sup_env = 0;
        quiet = false;
        run_gc = true;
        for (int i = 0; i < ac; i++) {
                const char *a = av[i];
                if (!strncmp(a, "supervisor=", 11) && a[11] == '/')
                        supervisor = a + 11;
                else if (!strncmp(a, "run_dir=", 8) && a[8] == '/')
                        run_dir = a + 8;
                else if (!strncmp(a, "arg=", 4) && a[4] && n_extra_args < MAX_ARGS)
                        extra_args[n_extra_args++] = a + 4;
                else if (!strncmp(a, "env=", 4) && strchr(a + 5, '=') && a[4] != '=' &&
                         n_sup_env < MAX_ARGS - 2)
                        sup_env[n_sup_env++] = a + 4;
                else if (!strcmp(a, "quiet=1"))
                        quiet = true;
                else if (!strcmp(a, "gc=0"))
                        run_gc = false;
                else {
                        slurm_error("aidp: plugstack.conf: unknown or invalid argument '%s' "
                                    "(see docs/slurm.md)",
                                    a);
                        return -1;
                }
        }
        return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
        if (parse_plugin_args(ac, av) < 0)
                return -1;
        spank_context_t ctx = spank_context();
        /* Registered here rather than in a static spank_options table: sbatch and
         * salloc ignore the table (spank.h, "allocator" mode). */
        if (ctx == S_CTX_LOCAL || ctx == S_CTX_REMOTE || ctx == S_CTX_ALLOCATOR)
                for (struct spank_option *o = options; o->name; o++)
                        if (spank_option_register(sp, o) != ESPANK_SUCCESS) {
                                slurm_error("aidp: cannot register --%s", o->name);
                                return -1;
                        }
        return 0;
}

static bool active(void)
{
        return opt_profile[0] || opt_data[0] || opt_out[0];
}

/* Repeated --aidp-data flags were joined by srun/sbatch into the job's
 * environment; srun and sbatch forward only the last flag's value as the
 * option. The joined list is used when it ends in that value (the job was
 * submitted with it), otherwise the forwarded value alone. Both come from the
 * submitting user and choose only which of their datasets to ask for; the
 * policy decides on them like on any other request. */
static void data_list(spank_t sp, char *out, size_t size)
{
        char joined[MAX_LIST];
        snprintf(out, size, "%s", opt_data);
        if (!opt_data[0] || spank_getenv(sp, DATA_ENV, joined, sizeof joined) != ESPANK_SUCCESS)
                return;
        size_t jl = strlen(joined), dl = strlen(opt_data);
        if (jl > dl && !strcmp(joined + jl - dl, opt_data) && joined[jl - dl - 1] == ',')
                snprintf(out, size, "%s", joined);
}

static void step_name(uint32_t step, char *buf, size_t size)
{
        /* Slurm's reserved step ids (slurm.h). */
        if (step == SLURM_BATCH_SCRIPT)
                snprintf(buf, size, "batch");
        else if (step == SLURM_EXTERN_CONT)
                snprintf(buf, size, "extern");
        else if (step == SLURM_INTERACTIVE_STEP)
                snprintf(buf, size, "interactive");
        else
                snprintf(buf, size, "%u", step);
}

/* ---- C: receive the task's stdio from G, then exec the supervisor ---- */

/* What G sends: this header, then env_len bytes of NUL-separated NAME=VALUE
 * entries. Its fds: stdin, stdout, stderr, the working directory, then one per
 * dataset and the output directory, all opened by G as the job's user. */
struct handoff_hdr {
        uint64_t env_len;
        uint32_t n_data, has_out;
};
#define FD_CWD      3
#define FD_DATA     4
#define MAX_DATA    16 /* aidp-supervisor's limit of --data inputs */
#define MAX_HANDOFF (FD_DATA + MAX_DATA + 1)

struct handoff {
        struct handoff_hdr hdr;
        int fds[MAX_HANDOFF];
        int n_fds;
        char *env;
        size_t env_len;
};

static int read_full(int fd, void *buf, size_t n)
{
        size_t got = 0;
        while (got < n) {
                ssize_t r = read(fd, (char *)buf + got, n - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return -1;
                got += (size_t)r;
        }
        return 0;
}

static int receive_handoff(int fd, struct handoff *h)
{
        struct iovec iov = {.iov_base = &h->hdr, .iov_len = sizeof h->hdr};
        union {
                char buf[CMSG_SPACE(sizeof h->fds)];
                struct cmsghdr align;
        } u;
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = u.buf,
                             .msg_controllen = sizeof u.buf};
        ssize_t r;
        do
                r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
        while (r < 0 && errno == EINTR);
        if (r != (ssize_t)sizeof h->hdr)
                return -1;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            (msg.msg_flags & MSG_CTRUNC) || c->cmsg_len < CMSG_LEN(0))
                return -1;
        h->n_fds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(h->fds, CMSG_DATA(c), (size_t)h->n_fds * sizeof(int));
        if (h->hdr.n_data > MAX_DATA || h->hdr.has_out > 1 ||
            h->n_fds != FD_DATA + (int)h->hdr.n_data + (int)h->hdr.has_out ||
            h->hdr.env_len > MAX_ENV_BYTES)
                return -1;
        h->env_len = (size_t)h->hdr.env_len;
        if (!(h->env = malloc(h->env_len + 1)) || read_full(fd, h->env, h->env_len) < 0)
                return -1;
        h->env[h->env_len] = '\0';
        return 0;
}

/* Variables of the job that the sandbox sets itself or that belong to aidp. */
static bool job_var_kept(const char *kv)
{
        static const char *const drop[] = {"HOME=", "TMPDIR=", "AIDP_", DATA_ENV "=", NULL};
        if (!strchr(kv, '=') || kv[0] == '=')
                return false;
        for (const char *const *d = drop; *d; d++)
                if (!strncmp(kv, *d, strlen(*d)))
                        return false;
        return true;
}

struct argv_buf {
        char **v;
        size_t n, cap;
};

static int push(struct argv_buf *a, const char *s)
{
        if (a->n + 2 > a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 128;
                char **nv = realloc(a->v, cap * sizeof *nv);
                if (!nv)
                        return -1;
                a->v = nv;
                a->cap = cap;
        }
        if (!(a->v[a->n] = strdup(s)))
                return -1;
        a->v[++a->n] = NULL;
        return 0;
}

__attribute__((format(printf, 2, 3))) static int pushf(struct argv_buf *a, const char *fmt, ...)
{
        char *buf = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&buf, fmt, ap); /* a job's variable may be long */
        va_end(ap);
        if (n < 0)
                return -1;
        int rc = push(a, buf);
        free(buf);
        return rc;
}

static int build_argv(spank_t sp, const struct handoff *h, struct argv_buf *a)
{
        uid_t uid;
        uint32_t job, step, task = 0;
        int argc = 0;
        char **argv = NULL;
        if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS ||
            spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
            spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS ||
            spank_get_item(sp, S_TASK_GLOBAL_ID, &task) != ESPANK_SUCCESS ||
            spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 1)
                return -1;
        char sname[32];
        step_name(step, sname, sizeof sname);
        /* Identity and ids from Slurm itself (root's view of the step). */
        int rc = push(a, supervisor);
        rc |= push(a, "run");
        rc |= push(a, "--exec-hook");
        rc |= pushf(a, "--user=%u", (unsigned)uid);
        rc |= pushf(a, "--run-id=slurm-%u.%s.%u", job, sname, task);
        rc |= push(a, "--scheduler=slurm");
        rc |= pushf(a, "--job-id=%u", job);
        rc |= pushf(a, "--step-id=%s", sname);
        if (run_dir)
                rc |= pushf(a, "--run-dir=%s", run_dir);
        if (quiet)
                rc |= push(a, "--quiet");
        if (opt_profile[0])
                rc |= pushf(a, "--profile=%s", opt_profile);
        /* Datasets and the output directory as G opened them, as the user: root
         * reaches them only through these fds, never by the user's path. */
        for (uint32_t i = 0; i < h->hdr.n_data; i++)
                rc |= pushf(a, "--data=/proc/self/fd/%d", h->fds[FD_DATA + i]);
        if (h->hdr.has_out)
                rc |= pushf(a, "--output-dir=/proc/self/fd/%d", h->fds[FD_DATA + h->hdr.n_data]);
        for (int i = 0; i < n_extra_args; i++)
                rc |= push(a, extra_args[i]);
        /* The job's environment reaches the job only, as --env values: the
         * supervisor's own environment is the admin's (plugin env= arguments). */
        for (const char *e = h->env; e < h->env + h->env_len; e += strlen(e) + 1)
                if (job_var_kept(e))
                        rc |= pushf(a, "--env=%s", e);
        rc |= push(a, "--");
        for (int i = 0; i < argc; i++)
                rc |= push(a, argv[i]);
        return rc ? -1 : 0;
}

/* The supervisor's environment: the admin's (plugstack.conf env=), never the
 * job's or slurmstepd's. */
static void supervisor_env(char *envp[MAX_ARGS + 2])
{
        int n = 0;
        envp[n++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (int i = 0; i < n_sup_env; i++)
                envp[n++] = (char *)sup_env[i];
        envp[n] = NULL;
}

static void reset_signals(void)
{
        /* slurmstepd blocks signals and forked C with that mask: as Slurm does for a
         * task (mgr.c _unblock_signals), drop what is pending and start clean, so the
         * supervisor gets SIGTERM from scancel. */
        for (int s = 1; s < NSIG; s++) {
                if (s == SIGKILL || s == SIGSTOP)
                        continue;
                signal(s, SIG_IGN);
                signal(s, SIG_DFL);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
}

static void fail_to_job(const char *what)
{
        dprintf(STDERR_FILENO, "aidp: slurm task: %s: %s\n", what, strerror(errno));
}

/* In C. Returns only if G died before handing over (then exits with its status). */
static void run_supervisor(spank_t sp, int fd, pid_t g)
{
        struct handoff h = {.n_fds = 0};
        int ok = receive_handoff(fd, &h);
        close(fd);
        int st = 0;
        while (waitpid(g, &st, 0) < 0 && errno == EINTR)
                ;
        if (ok < 0) {
                /* G died inside Slurm before task_init (Slurm logged why). */
                slurm_error("aidp: task did not reach task_init; not started");
                _exit(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : EXIT_SUPERVISOR_FAILED);
        }
        for (int i = 0; i < 3; i++)
                if (dup2(h.fds[i], i) < 0)
                        _exit(EXIT_SUPERVISOR_FAILED);
        /* The job's working directory as the user opened it: the supervisor binds
         * its own working directory into the sandbox. */
        if (fchdir(h.fds[FD_CWD]) < 0) {
                fail_to_job("entering the working directory");
                _exit(EXIT_SUPERVISOR_FAILED);
        }
        for (int i = 0; i < FD_DATA; i++)
                if (h.fds[i] > 2)
                        close(h.fds[i]);
        /* The supervisor opens them through /proc/self/fd: keep them across exec. */
        for (int i = FD_DATA; i < h.n_fds; i++)
                if (fcntl(h.fds[i], F_SETFD, 0) < 0)
                        _exit(EXIT_SUPERVISOR_FAILED);
        struct argv_buf a = {0};
        if (build_argv(sp, &h, &a) < 0) {
                errno = ENOMEM;
                fail_to_job("building the supervisor's command line");
                _exit(EXIT_SUPERVISOR_FAILED);
        }
        char *envp[MAX_ARGS + 2];
        supervisor_env(envp);
        reset_signals();
        execve(supervisor, a.v, envp);
        fail_to_job(supervisor);
        _exit(errno == ENOENT ? 127 : 126);
}

int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
        if (spank_context() != S_CTX_REMOTE || !active())
                return 0;
        if (parse_plugin_args(ac, av) < 0)
                return -1;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                slurm_error("aidp: socketpair: %m");
                return -1;
        }
        pid_t g = fork();
        if (g < 0) {
                slurm_error("aidp: fork: %m");
                close(sv[0]);
                close(sv[1]);
                return -1;
        }
        if (g == 0) {
                /* G: back into Slurm, which makes it the user and connects stdio. */
                close(sv[0]);
                handoff_fd = sv[1];
                return 0;
        }
        close(sv[1]);
        run_supervisor(sp, sv[0], g);
        _exit(EXIT_SUPERVISOR_FAILED); /* not reached */
}

/* In G, as the job's user, with the task's stdio on 0/1/2. */
__attribute__((format(printf, 2, 3))) static void refuse(int status, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        dprintf(STDERR_FILENO, "aidp: ");
        vdprintf(STDERR_FILENO, fmt, ap);
        dprintf(STDERR_FILENO, "\n");
        va_end(ap);
        _exit(status);
}

/* In G, as the user: open what the user named, with the user's rights. */
static int open_user_paths(spank_t sp, int *fds, uint32_t *n_data, uint32_t *has_out)
{
        char data[MAX_LIST];
        data_list(sp, data, sizeof data);
        *n_data = *has_out = 0;
        int n = FD_DATA;
        for (char *save = NULL, *d = strtok_r(data, ",", &save); d;
             d = strtok_r(NULL, ",", &save)) {
                if (*n_data >= MAX_DATA)
                        refuse(EXIT_USAGE, "--aidp-data: at most %d datasets", MAX_DATA);
                /* O_NONBLOCK: a FIFO must not hang the task. */
                int fd = open(d, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0)
                        refuse(EXIT_USAGE, "--aidp-data=%s: %s", d, strerror(errno));
                if (!S_ISREG(st.st_mode))
                        refuse(EXIT_USAGE, "--aidp-data=%s: not a regular file", d);
                fds[n++] = fd;
                (*n_data)++;
        }
        if (opt_out[0]) {
                int fd = open(opt_out, O_PATH | O_DIRECTORY | O_CLOEXEC);
                /* Checked on the fd: the directory root will write into is one this
                 * user may write to. */
                if (fd < 0 || faccessat(fd, "", W_OK | X_OK, AT_EMPTY_PATH) < 0)
                        refuse(EXIT_USAGE, "--aidp-out=%s: %s", opt_out, strerror(errno));
                fds[n++] = fd;
                *has_out = 1;
        }
        return n;
}

/* In G, as the job's user, with the task's stdio on 0/1/2. */
int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
        if (handoff_fd < 0)
                return 0;
        char **env = NULL;
        int fds[MAX_HANDOFF] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, -1};
        fds[FD_CWD] = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fds[FD_CWD] < 0 || spank_get_item(sp, S_JOB_ENV, &env) != ESPANK_SUCCESS)
                refuse(EXIT_SUPERVISOR_FAILED, "cannot read the task's directory or environment");
        struct handoff_hdr hdr = {0};
        int n = open_user_paths(sp, fds, &hdr.n_data, &hdr.has_out);
        for (char **e = env; e && *e; e++)
                hdr.env_len += strlen(*e) + 1;
        union {
                char buf[CMSG_SPACE(sizeof fds)];
                struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof u);
        struct iovec iov = {.iov_base = &hdr, .iov_len = sizeof hdr};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = u.buf,
                             .msg_controllen = CMSG_SPACE((size_t)n * sizeof(int))};
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
        if (hdr.env_len > MAX_ENV_BYTES || sendmsg(handoff_fd, &msg, MSG_NOSIGNAL) != sizeof hdr)
                _exit(EXIT_SUPERVISOR_FAILED);
        for (char **e = env; e && *e; e++) {
                size_t len = strlen(*e) + 1, off = 0;
                while (off < len) {
                        ssize_t w = send(handoff_fd, *e + off, len - off, MSG_NOSIGNAL);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                _exit(EXIT_SUPERVISOR_FAILED);
                        off += (size_t)w;
                }
        }
        /* Done: the task runs in C's supervisor. G never execs the job. */
        _exit(0);
}

/* slurmd, as root, at the end of every job (also cancelled or failed ones):
 * clean up runs whose supervisor died (SIGKILL after KillWait, node trouble). */
int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
        if (parse_plugin_args(ac, av) < 0)
                return -1;
        if (!run_gc)
                return 0;
        pid_t pid = fork();
        if (pid < 0) {
                slurm_error("aidp: job epilog: fork: %m");
                return -1;
        }
        if (pid == 0) {
                char *argv[5] = {(char *)supervisor, "gc", NULL, NULL, NULL};
                if (run_dir) {
                        argv[2] = "--run-dir";
                        argv[3] = (char *)run_dir;
                }
                char *envp[MAX_ARGS + 2];
                supervisor_env(envp);
                int null = open("/dev/null", O_RDWR);
                if (null >= 0)
                        dup2(null, STDIN_FILENO);
                execve(supervisor, argv, envp);
                _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                slurm_error("aidp: job epilog: %s gc failed (status 0x%x)", supervisor, st);
                return -1;
        }
        return 0;
}
