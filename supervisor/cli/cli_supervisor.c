#define _GNU_SOURCE
#include "supervisor/cli/cli_supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "profiles/units.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/trust.h"
#include "supervisor/sandbox/procstate.h"
#include "supervisor/cli/cli_report.h"
#include "supervisor/cli/options.h"
#include "supervisor/run/cgready.h"
#include "supervisor/run/run.h"
#include "supervisor/sandbox/fdpass.h"
#include "supervisor/sealed/keymem.h"

#define U AIDP_TRUST_USER
#define A AIDP_TRUST_ADMIN

static void gc_report(const char *run_id, const char *what, void *arg)
{
        (void)arg;
        fprintf(stderr, "aidp-supervisor: gc: run %s aborted earlier: %s\n", run_id, what);
}

/* aidp-supervisor-test (honours the test hooks for admins), set by main. */
static bool g_test_build;
/* A limit the caller lowered that root here cannot raise back (procstate.h). */
static char g_crippled[256];

static bool crippled(const char *what)
{
        if (!g_crippled[0])
                return false;
        fprintf(stderr, "aidp-supervisor: error: %s: %s\n", what, g_crippled);
        return true;
}

static bool is_root(const char *what)
{
        if (geteuid() == 0)
                return true;
        fprintf(stderr,
                "aidp-supervisor: error: %s must run as root (use aidp-run, which calls it "
                "via sudo)\n",
                what);
        return false;
}

/* Exec-hook mode: the result on an fd the scheduler component holds, one JSON
 * object and a newline, then the fd is closed (end of result). */
static int write_result_fd(int fd, const struct aidp_run_result *r)
{
        json_object *o = aidp_cli_summary_json(r);
        int rc = json_object_to_fd(fd, o, JSON_C_TO_STRING_PLAIN);
        json_object_put(o);
        if (rc < 0 || write(fd, "\n", 1) != 1) {
                fprintf(stderr, "aidp-supervisor: error: writing the result to fd %d: %s\n", fd,
                        strerror(errno));
                close(fd);
                return -1;
        }
        close(fd);
        return 0;
}

/* A scheduler's id as lineage and the run id may carry it. */
static bool valid_sched_id(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63 || s[0] == '.' || s[0] == '-')
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* The run id, and the exec-hook options (all or nothing of what it needs),
 * after parsing. */
static int check_exec_hook(const struct aidp_cli_run *c, aidp_error *err)
{
        const struct aidp_run_opts *o = &c->o;
        /* An id the output sealing would refuse stops here, before gc, START
         * or the job (else the job runs and its output is shredded). */
        if (o->run_id && !aidp_run_id_valid(o->run_id))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "--run-id '%s': %s", o->run_id,
                                      AIDP_RUN_ID_RULE);
        if (c->exec_hook && (!o->user || !o->run_id))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--exec-hook needs --user and --run-id: the scheduler "
                                      "component names the identity and the run");
        if ((o->scheduler_job || o->scheduler_step) && !o->scheduler)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--job-id and --step-id need --scheduler");
        if (o->scheduler && !o->scheduler_job)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "--scheduler needs --job-id");
        const char *ids[][2] = {{"--scheduler", o->scheduler},
                                {"--job-id", o->scheduler_job},
                                {"--step-id", o->scheduler_step}};
        for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
                if (ids[i][1] && !valid_sched_id(ids[i][1]))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "%s '%s': expected 1-63 of A-Z a-z 0-9 . _ -",
                                              ids[i][0], ids[i][1]);
        if (c->result_fd && fcntl((int)c->result_fd, F_GETFL) < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EBADF,
                                      "--result-fd %llu: not an open file descriptor",
                                      (unsigned long long)c->result_fd);
        return 0;
}

/* Exec-hook mode: the job's variables are not the caller's word on who it is;
 * the scheduler component passed --user and the ids explicitly. */
static void drop_job_identity_env(void)
{
        static const char *const vars[] = {"SLURM_JOB_UID", "SLURM_JOB_GID", "SLURM_JOB_USER",
                                           "SLURM_JOB_ID",  "SUDO_UID",      "SUDO_GID",
                                           "SUDO_USER"};
        for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
                unsetenv(vars[i]);
}

bool aidp_cli_supervisor_test_build(void)
{
        return g_test_build;
}

/* After the run: its failure, its result line and its --summary; the status
 * to exit with. */
static int report(struct aidp_cli_run *c, int summary_fd, const char *prog,
                  const struct aidp_run_result *res, int rc, const aidp_error *err)
{
        /* A daemon's request: aidp-run parsed its options with this table
         * already, so what is refused here is a file, a limit or a key, which
         * 'Try aidp-run --help' would not help with. */
        if (rc < 0 && c->o.peer)
                fprintf(stderr, "%s: error: %s\n", prog, err->msg[0] ? err->msg : "unknown error");
        else if (rc < 0)
                aidp_cli_fail(prog, err);
        if (c->dry_run)
                return res->exit_status;
        aidp_cli_print_result(res, &c->o);
        int status = res->exit_status;
        if (c->o.summary_path && res->run_id[0] &&
            aidp_cli_write_summary(summary_fd, c->o.summary_path, res) < 0 && status == 0)
                status = AIDP_EXIT_INTERNAL;
        return status;
}

/* The report made as soon as the run is over and on record (run.h,
 * on_ended), and handed to done: a daemon's worker tells its client then,
 * not after the rest of its clean-up. */
struct early {
        struct aidp_cli_run *c;
        int summary_fd;
        const char *prog;
        void (*done)(int status, void *arg);
        void *arg;
        bool reported;
        int status;
};

static void report_early(const struct aidp_run_result *res, int rc, const aidp_error *err,
                         void *arg)
{
        struct early *e = arg;
        e->status = report(e->c, e->summary_fd, e->prog, res, rc, err);
        e->reported = true;
        /* The report is on the caller's files before the status is sent. */
        fflush(stdout);
        fflush(stderr);
        if (e->done)
                e->done(e->status, e->arg);
}

static int run_and_report(struct aidp_cli_run *c, int summary_fd, const char *prog,
                          struct aidp_run_result *res, void (*done)(int status, void *arg),
                          void *arg)
{
        json_object *plan = NULL;
        char *policy = NULL;
        if (c->dry_run) {
                c->o.plan = &plan;
                c->o.plan_policy = &policy;
        }
        struct early e = {.c = c, .summary_fd = summary_fd, .prog = prog, .done = done, .arg = arg};
        c->o.on_ended = report_early;
        c->o.ended_arg = &e;
        aidp_error err = {0};
        int rc = aidp_run_execute(&c->o, res, &err);
        c->o.on_ended = NULL;
        if (plan) {
                aidp_cli_print_plan(plan, policy, c->json, stdout);
                json_object_put(plan);
        }
        free(policy);
        /* Refused before its START record, or a dry run: reported now. */
        return e.reported ? e.status : report(c, summary_fd, prog, res, rc, &err);
}

int aidp_cli_run_and_report(struct aidp_cli_run *c, int summary_fd,
                            void (*ended)(int status, void *arg), void *arg)
{
        struct aidp_run_result res;
        int st = run_and_report(c, summary_fd, "aidp-run", &res, ended, arg);
        /* The daemon's worker ends with _exit: the plan must be out first. */
        fflush(stdout);
        return st;
}

/* Exec-hook mode: the scheduler's name for the job (sbatch -J), from the job's
 * environment the scheduler component handed over (--env), names the job in
 * lineage when --job-name does not. It is a label, never an identity; outside
 * exec-hook mode a SLURM_JOB_NAME is the caller's own variable and names nothing.
 * A name with control characters, or longer than lineage keeps, is ignored. */
static void scheduler_job_name(struct aidp_cli_run *c)
{
        static const char var[] = "SLURM_JOB_NAME=";
        if (!c->exec_hook || c->o.job_name || !c->o.scheduler || strcmp(c->o.scheduler, "slurm"))
                return;
        const char *name = NULL; /* the last one, as the job sees it */
        for (size_t i = 0; i < c->env.n; i++)
                if (!strncmp(c->env.v[i], var, sizeof var - 1))
                        name = c->env.v[i] + sizeof var - 1;
        if (!name)
                return;
        size_t n = strlen(name);
        bool ok = n > 0 && n < 128;
        for (const char *p = name; ok && *p; p++)
                ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
        if (ok)
                c->o.job_name = name;
}

static int cmd_run(int argc, char **argv)
{
        _cleanup_close_ int summary_fd = -1;
        struct aidp_cli_run c = {0};
        struct aidp_cli_parsed p;
        int status;
        if (!aidp_cli_options(&aidp_cli_run_spec, argc, argv, &c, &p, &status))
                goto out;
        aidp_cli_run_finish(&c, argv, &p);
        aidp_error herr = {0};
        if (check_exec_hook(&c, &herr) < 0) {
                status = aidp_cli_usage_fail(aidp_cli_run_spec.prog, &herr);
                goto out;
        }
        status = AIDP_EXIT_USAGE;
        if (!is_root("run") || crippled("run"))
                goto out;
        /* Trust first: nothing (gc included) runs for a caller who asked for
         * more than it may (docs/security.md). */
        enum aidp_caller_kind kind;
        uid_t caller_uid;
        aidp_error terr = {0};
        if (aidp_trust_check_command(&aidp_cli_run_spec, &p, g_test_build, environ, &kind,
                                     &caller_uid, &terr) < 0 ||
            (c.o.summary_path &&
             aidp_trust_open_summary(kind, caller_uid, c.o.summary_path, &summary_fd, &terr) < 0)) {
                status = aidp_cli_fail(aidp_cli_run_spec.prog, &terr);
                goto out;
        }
        c.o.as_user = kind == AIDP_CALLER_USER;
        c.o.exec_hook = c.exec_hook;
        /* Exec-hook mode (admin-only, checked just above): the job's variables
         * are not the caller's word on who it is. */
        if (c.exec_hook)
                drop_job_identity_env();
        scheduler_job_name(&c);
        aidp_error gerr = {0};
        aidp_run_gc(c.o.run_dir, gc_report, NULL, &gerr);

        struct aidp_run_result res;
        status = run_and_report(&c, summary_fd, aidp_cli_run_spec.prog, &res, NULL, NULL);
        if (c.result_fd && write_result_fd((int)c.result_fd, &res) < 0 && res.exit_status == 0)
                status = AIDP_EXIT_INTERNAL;
out:
        aidp_cli_list_free(&c.env);
        aidp_cli_list_free(&c.data);
        return status;
}

/* ---- gc ---- */

struct gc_cli {
        const char *run_dir;
};

static const struct aidp_cli_opt gc_opts[] = {
        AIDP_CLI_OPT("run-dir", 0, AIDP_CLI_STRING, offsetof(struct gc_cli, run_dir), "DIR",
                     "run journals (default $AIDP_RUN_DIR or /run/aidp)", A),
        {0},
};

const struct aidp_cli_spec aidp_cli_gc_spec = {
        .prog = "aidp-supervisor gc",
        .synopsis = "[--run-dir DIR]",
        .about = "Clean up runs whose supervisor died (shred, end record), as each run's start "
                 "does.",
        .opts = gc_opts,
};

static void sweep_report(const char *path, void *arg)
{
        (void)arg;
        fprintf(stderr, "aidp-supervisor: gc: removed ready cgroup %s (its maker is gone)\n", path);
}

static int cmd_gc(int argc, char **argv)
{
        struct gc_cli c = {0};
        struct aidp_cli_parsed p;
        int status;
        if (!aidp_cli_options(&aidp_cli_gc_spec, argc, argv, &c, &p, &status))
                return status;
        if (!is_root("gc") || crippled("gc"))
                return AIDP_EXIT_USAGE;
        aidp_error err = {0};
        enum aidp_caller_kind kind;
        uid_t caller_uid;
        if (aidp_trust_check_command(&aidp_cli_gc_spec, &p, g_test_build, environ, &kind,
                                     &caller_uid, &err) < 0)
                return aidp_cli_fail("aidp-supervisor", &err);
        int n = aidp_run_gc(c.run_dir, gc_report, NULL, &err);
        if (n < 0)
                return aidp_cli_fail("aidp-supervisor", &err);
        /* Ready cgroups whose record went with a deleted run directory. */
        int swept = aidp_run_cgready_sweep(c.run_dir, sweep_report, NULL);
        printf("gc: %d run(s) cleaned\n", n);
        if (swept > 0)
                printf("gc: %d ready cgroup(s) of gone workers removed\n", swept);
        return 0;
}

/* ---- learn: the run core for `aidp profile learn` ---- */

struct learn_cli {
        const char *profile, *user, *lineage;
        uint64_t notify_fd;
        const char *run_id, *run_dir; /* as for run */
};

static const struct aidp_cli_opt learn_opts[] = {
        AIDP_CLI_OPT("notify-fd", 0, AIDP_CLI_UINT, offsetof(struct learn_cli, notify_fd), "FD",
                     "unix socket the job's seccomp listener is sent over", U, .min = 3,
                     .max = 1023),
        AIDP_CLI_OPT("profile", 0, AIDP_CLI_STRING, offsetof(struct learn_cli, profile),
                     "NAME|FILE", "the base profile (default: baseline)", U),
        AIDP_CLI_OPT("user", 0, AIDP_CLI_STRING, offsetof(struct learn_cli, user), "NAME|UID[:GID]",
                     "identity of the job (as for run)", A),
        AIDP_CLI_OPT("run-id", 0, AIDP_CLI_STRING, offsetof(struct learn_cli, run_id), "ID",
                     "run id (as for run)", A),
        AIDP_CLI_OPT("run-dir", 0, AIDP_CLI_STRING, offsetof(struct learn_cli, run_dir), "DIR",
                     "run journals (as for run)", A),
        AIDP_CLI_OPT("lineage", 0, AIDP_CLI_STRING, offsetof(struct learn_cli, lineage), "FILE",
                     "lineage log (as for run)", A),
        {0},
};

const struct aidp_cli_spec aidp_cli_learn_spec = {
        .prog = "aidp-supervisor learn",
        .synopsis = "--notify-fd FD [--profile NAME] [--user USER] -- CMD [ARGS...]",
        .about = "Run CMD like run, with a seccomp filter that reports every system call:\n"
                 "its listener goes over FD (SCM_RIGHTS) to the caller, `aidp profile learn`,\n"
                 "which answers the notifications and writes the profile.",
        .opts = learn_opts,
        .in_order = true,
        .min_args = 1,
        .max_args = -1,
        .args = "CMD after the options (no command given)",
};

/* The run core hands over the listener; it goes to `aidp` and our copy closes,
 * so only the tool answers notifications. */
static int send_listener(int fd, void *arg)
{
        int r = aidp_fdpass_send(*(int *)arg, 'L', &fd, 1);
        close(fd);
        return r < 0 ? -1 : 0;
}

static int cmd_learn(int argc, char **argv)
{
        struct learn_cli c = {.profile = "baseline"};
        struct aidp_cli_parsed p;
        int status;
        if (!aidp_cli_options(&aidp_cli_learn_spec, argc, argv, &c, &p, &status))
                return status;
        if (!is_root("learn") || crippled("learn"))
                return AIDP_EXIT_USAGE;
        /* Trust first, as for run: learn runs a job with root's authority, so
         * a user (sudo) gets a library profile, their own identity and no
         * configuration from the environment (docs/security.md). */
        enum aidp_caller_kind kind;
        uid_t caller_uid;
        aidp_error terr = {0};
        if (aidp_trust_check_command(&aidp_cli_learn_spec, &p, g_test_build, environ, &kind,
                                     &caller_uid, &terr) < 0)
                return aidp_cli_fail(aidp_cli_learn_spec.prog, &terr);
        struct stat st;
        int sock = (int)c.notify_fd;
        if (!c.notify_fd || fstat(sock, &st) < 0 || !S_ISSOCK(st.st_mode))
                return aidp_cli_usage_error(aidp_cli_learn_spec.prog,
                                            "--notify-fd: expected an open unix socket");
        struct aidp_run_opts o = {
                .profile = c.profile,
                .user = c.user,
                .lineage_path = c.lineage,
                .as_user = kind == AIDP_CALLER_USER,
                .argv = argv + p.first_arg,
                .quiet = true,
                .seccomp_flags = SECCOMP_FILTER_FLAG_NEW_LISTENER,
                .on_notify_fd = send_listener,
                .notify_arg = &sock,
                .run_id = c.run_id,
                .run_dir = c.run_dir,
        };
        struct aidp_run_result res;
        aidp_error err = {0};
        int rc = aidp_run_execute(&o, &res, &err);
        close(sock); /* end of stream: the tool stops waiting for a listener */
        if (rc < 0)
                return aidp_cli_fail("aidp-supervisor learn", &err);
        return res.exit_status;
}

static const struct aidp_cli_cmd commands[] = {
        {"run", cmd_run, "run a job in a sandbox (see run --help)"},
        {"gc", cmd_gc, "clean up runs whose supervisor died"},
        {"serve", aidp_cli_serve, "the daemon aidp-run talks to (docs/protocol.md)"},
        {"learn", cmd_learn, "run a job reporting its system calls (for aidp profile learn)"},
        {NULL, NULL, NULL},
};

static const struct aidp_cli_group group = {
        .prog = "aidp-supervisor",
        .version = "aidp-supervisor " AIDP_VERSION,
        .cmds = commands,
        .footer = "Exit statuses: the job's own (128+N for signal N); 119 bad config, 120 usage,\n"
                  "121 denied by policy, 117 sealed data, 116 lineage, 118 out of memory,\n"
                  "124 timeout, 125 supervisor failure, 126 cannot execute, 127 not found.\n",
};

int aidp_supervisor_main(int argc, char **argv, bool test_build)
{
        g_test_build = test_build;
        /* Whatever the caller's shell set (rlimits, blocked or ignored
         * signals, umask, nice) is not ours to inherit. */
        if (aidp_procstate_reset(g_crippled, sizeof g_crippled) == 0)
                g_crippled[0] = '\0';
        /* Test build only: a core the test can search for key bytes. */
        if (test_build && getenv("AIDP_FAULT_DUMPABLE"))
                aidp_keymem_test_dumpable();
        return aidp_cli_dispatch(&group, argc, argv);
}
