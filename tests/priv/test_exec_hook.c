/* Exec-hook mode (docs/exec-hook.md), as a scheduler component uses it: identity
 * and run id only from the command line (the job's SLURM_JOB_* variables change
 * nothing), the scheduler's job and step in lineage as the OpenLineage parent
 * facet, the result as one JSON line on a file descriptor, and usage errors
 * (120) for incomplete or malformed hook options before anything runs. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "lineage_util.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"

static struct aidp_proc P;
static char dir[64] = "", logp[128], keyp[128], run_id[64], rundir[128];

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-exec-hook.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(logp, sizeof logp, "%s/lineage.jsonl", dir);
        snprintf(keyp, sizeof keyp, "%s/lineage.key", dir);
        snprintf(rundir, sizeof rundir, "%s/run", dir);
        snprintf(run_id, sizeof run_id, "slurm-77.3.%d", (int)getpid());
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
}

static void teardown(void)
{
        unsetenv("SLURM_JOB_UID");
        unsetenv("SLURM_JOB_USER");
        aidp_test_rm_tree(dir);
}

TestSuite(exec_hook, .init = setup, .fini = teardown, .timeout = 90);

/* aidp-supervisor run --exec-hook ... with extra options before "--". */
static int hook(const char *const *extra, const char *const *job)
{
        char *argv[48] = {AIDP_SUPERVISOR, "run", "--exec-hook", "--run-dir", rundir,
                          "--lineage",     logp,  "-q",          NULL};
        int n = 8;
        for (int i = 0; extra[i]; i++)
                argv[n++] = (char *)extra[i];
        argv[n++] = "--";
        for (int i = 0; job[i]; i++)
                argv[n++] = (char *)job[i];
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

Test(exec_hook, identity_and_ids_come_from_the_command_line_and_reach_lineage)
{
        AIDP_REQUIRE_ROOT();
        /* What a job could put in a scheduler's environment: never who it is. */
        setenv("SLURM_JOB_UID", "0", 1);
        setenv("SLURM_JOB_USER", "root", 1);
        char resp[128];
        snprintf(resp, sizeof resp, "%s/result.json", dir);
        int rfd = open(resp, O_WRONLY | O_CREAT | O_TRUNC, 0600); /* inherited: no CLOEXEC */
        cr_assert(rfd >= 3);
        char fdarg[32];
        snprintf(fdarg, sizeof fdarg, "--result-fd=%d", rfd);
        int st = hook((const char *[]){"--user=65534", "--run-id", run_id, "--scheduler=slurm",
                                       "--job-id=77", "--step-id=3", fdarg, NULL},
                      (const char *[]){"/bin/sh", "-c", "id -u", NULL});
        close(rfd);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        cr_assert_str_eq(P.out, "65534\n", "the job ran as '%s', not nobody", P.out);

        json_object *res = json_object_from_file(resp);
        cr_assert_not_null(res, "no JSON result on the fd");
        cr_assert_str_eq(aidp_test_json_str(res, "run_id"), run_id);
        cr_assert_eq(json_object_get_int(aidp_test_json_at(res, "exit_status")), 0);
        cr_assert(json_object_get_boolean(aidp_test_json_at(res, "shred.verified")));
        json_object_put(res);

        json_object *ev[8];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 2, "expected START and COMPLETE, got %zu", n);
        for (size_t i = 0; i < n; i++) {
                cr_assert_str_eq(aidp_test_json_str(ev[i], "run.facets.parent.job.namespace"),
                                 "slurm");
                cr_assert_str_eq(aidp_test_json_str(ev[i], "run.facets.parent.job.name"), "77.3");
                cr_assert_str_eq(aidp_test_json_str(ev[i], "run.facets.parent.root.job.name"),
                                 "77");
                cr_assert_str_eq(aidp_test_json_str(ev[i], "run.facets.aidp_run.runName"), run_id);
                json_object_put(ev[i]);
        }
        char cmd[512];
        snprintf(cmd, sizeof cmd, "python3 %s/tests/data/check_openlineage.py %s >/dev/null",
                 AIDP_SOURCE_DIR, logp);
        cr_assert_eq(system(cmd), 0, "lineage fails the OpenLineage 2-0-2 schemas");
}

/* The job's name in lineage: --job-name, else the scheduler's job name (the
 * job's SLURM_JOB_NAME, handed over as --env, only on the scheduler path), else
 * the profile; never the command. */
/* A fresh lineage log for each run of a test. */
static void new_log(void)
{
        static int n;
        snprintf(logp, sizeof logp, "%s/lineage-%d.jsonl", dir, ++n);
}

static const char *job_name_of(const char *const *extra)
{
        new_log();
        const char *base[24] = {"--user=65534",
                                "--run-id",
                                run_id,
                                "--scheduler=slurm",
                                "--job-id=77",
                                "--step-id=3",
                                "--env=SLURM_JOB_NAME=resnet-eu"};
        size_t n = 7;
        for (size_t i = 0; extra[i]; i++)
                base[n++] = extra[i];
        base[n] = NULL;
        int st = hook(base, (const char *[]){"/bin/true", NULL});
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        json_object *ev[4];
        size_t k = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(k, 2, "expected START and COMPLETE, got %zu", k);
        static char name[128];
        snprintf(name, sizeof name, "%s", aidp_test_json_str(ev[0], "job.name"));
        cr_assert_str_eq(aidp_test_json_str(ev[1], "job.name"), name);
        for (size_t i = 0; i < k; i++)
                json_object_put(ev[i]);
        return name;
}

Test(exec_hook, the_job_is_named_by_job_name_else_the_schedulers_name_else_the_profile)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_str_eq(job_name_of((const char *[]){NULL}), "resnet-eu");
        cr_assert_str_eq(job_name_of((const char *[]){"--job-name=nightly", NULL}), "nightly");
        /* A name with a control character is not taken: the profile names the job. */
        cr_assert_str_eq(job_name_of((const char *[]){"--env=SLURM_JOB_NAME=a\nb",
                                                      "--profile=" AIDP_SOURCE_DIR
                                                      "/profiles/strict-cpu-train.yaml",
                                                      NULL}),
                         "strict-cpu-train");
        /* Outside exec-hook mode the caller's own SLURM_JOB_NAME names nothing. */
        new_log();
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "-q",
                        "--user=65534",
                        "--run-dir",
                        rundir,
                        "--lineage",
                        logp,
                        "--env=SLURM_JOB_NAME=resnet-eu",
                        "--profile=" AIDP_SOURCE_DIR "/profiles/strict-cpu-train.yaml",
                        "--",
                        "/bin/true",
                        NULL};
        setenv("SLURM_JOB_NAME", "from-the-environment", 1);
        int st = aidp_test_run(&P, argv);
        unsetenv("SLURM_JOB_NAME");
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        json_object *ev[4];
        size_t k = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(k, 2);
        cr_assert_str_eq(aidp_test_json_str(ev[0], "job.name"), "strict-cpu-train");
        for (size_t i = 0; i < k; i++)
                json_object_put(ev[i]);
}

Test(exec_hook, incomplete_or_malformed_hook_options_are_usage_errors)
{
        AIDP_REQUIRE_ROOT();
        const char *const *bad[] = {
                (const char *[]){"--run-id=x", NULL},   /* no --user */
                (const char *[]){"--user=65534", NULL}, /* no --run-id */
                (const char *[]){"--user=65534", "--run-id=x", "--job-id=1", NULL},
                (const char *[]){"--user=65534", "--run-id=x", "--scheduler=slurm", NULL},
                (const char *[]){"--user=65534", "--run-id=x", "--scheduler=slurm", "--job-id=1;rm",
                                 NULL},
                (const char *[]){"--user=65534", "--run-id=x", "--result-fd=987", NULL},
                (const char *[]){"--user=65534", "--run-id=x", "--result-fd=1", NULL},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                int st = hook(bad[i], (const char *[]){"/bin/true", NULL});
                cr_expect_eq(st, AIDP_EXIT_USAGE, "case %zu: exit %d: %s", i, st, P.err);
                cr_expect(strstr(P.err, "error:"), "case %zu: no message: %s", i, P.err);
        }
        cr_assert_eq(access(logp, F_OK), -1, "a refused hook wrote lineage");
}

/* The job's working directory is opened with --user's credentials, like every
 * other path the job names (issue 17): a directory behind one that user
 * cannot enter is refused, not bound by root for them, whether it is the
 * scheduler's working directory (getcwd) or --cwd. */
Test(exec_hook, working_directory_is_opened_as_the_job_user)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_test_user u;
        cr_assert_eq(aidp_test_user_create("h", &u), 0, "%s", aidp_test_users_why());
        /* dir is mkdtemp's 0700 root directory: u cannot pass it. */
        char inner[160], secret[200], uid[64], id2[80], mine[200];
        snprintf(inner, sizeof inner, "%s/inner", dir);
        cr_assert_eq(mkdir(inner, 0755), 0);
        snprintf(secret, sizeof secret, "%s/SECRET", inner);
        int fd = open(secret, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "HOOK-SECRET\n", 12), 12);
        close(fd);
        snprintf(uid, sizeof uid, "--user=%u", (unsigned)u.uid);
        const char *cat[] = {"/bin/cat", "SECRET", NULL};
        cr_assert_eq(chdir(inner), 0);
        int st = hook((const char *[]){uid, "--run-id", run_id, NULL}, cat);
        cr_assert_eq(chdir("/"), 0);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "exit %d: %s%s", st, P.out, P.err);
        cr_expect(strstr(P.err, "working directory") && strstr(P.err, "permission denied"), "%s",
                  P.err);
        cr_expect(!strstr(P.out, "HOOK-SECRET"), "root bound a directory the user cannot reach");
        snprintf(id2, sizeof id2, "%s-cwd", run_id);
        st = hook((const char *[]){uid, "--run-id", id2, "--cwd", inner, NULL}, cat);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "--cwd: exit %d: %s%s", st, P.out, P.err);
        cr_expect(strstr(P.err, "--cwd") != NULL, "%s", P.err);
        cr_expect(!strstr(P.out, "HOOK-SECRET"), "root bound --cwd for the user");
        /* The user's own directory works, and the job sees it. */
        snprintf(mine, sizeof mine, "%s/SECRET", u.home);
        cr_assert_eq(aidp_test_write_as(&u, mine, "USER-OWN\n", 0600), 0);
        cr_assert_eq(chdir(u.home), 0);
        snprintf(id2, sizeof id2, "%s-own", run_id);
        st = hook((const char *[]){uid, "--run-id", id2, NULL}, cat);
        cr_assert_eq(chdir("/"), 0);
        cr_expect_eq(st, 0, "exit %d: %s", st, P.err);
        cr_expect_str_eq(P.out, "USER-OWN\n", "%s", P.err);
        aidp_test_users_cleanup();
}
