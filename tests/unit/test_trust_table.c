/* The trust levels the supervisor enforces (options.h, env.c, trust.c):
 * which caller may use which option or variable, in which build. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/exitcodes.h"
#include "supervisor/cli/cli_supervisor.h"
#include "supervisor/cli/trust.h"

static const enum aidp_caller_kind U = AIDP_CALLER_USER, A = AIDP_CALLER_ADMIN;

static const struct aidp_cli_opt *opt(const char *name)
{
        for (const struct aidp_cli_opt *o = aidp_cli_run_spec.opts; o->name; o++)
                if (!strcmp(o->name, name))
                        return o;
        return NULL;
}

Test(trust_table, admin_only_run_options)
{
        const char *admin[] = {"run-dir", "lineage", "cgroup-parent", "keys-config",
                               "key-dir", "run-id",  "user",          "keep-env"};
        for (size_t i = 0; i < sizeof admin / sizeof admin[0]; i++) {
                const struct aidp_cli_opt *o = opt(admin[i]);
                cr_assert(o, "%s", admin[i]);
                cr_expect_eq(o->trust, AIDP_TRUST_ADMIN, "%s", admin[i]);
                cr_expect(!aidp_cli_trust_allows(o->trust, U, true), "%s", admin[i]);
                cr_expect(aidp_cli_trust_allows(o->trust, A, false), "%s", admin[i]);
        }
        const char *user[] = {"memory", "data", "ro-bind", "bind", "summary", "output-dir", "cwd"};
        for (size_t i = 0; i < sizeof user / sizeof user[0]; i++)
                cr_expect_eq(opt(user[i])->trust, AIDP_TRUST_USER, "%s", user[i]);
}

/* A root process may be handed a job's environment: configuration and test
 * hooks are read only by the test build, and only for admins. */
Test(trust_table, configuration_variables_only_in_the_test_build)
{
        const char *vars[] = {"AIDP_FAULT_STOP_AT", "AIDP_LINEAGE_FILE", "AIDP_LINEAGE_KEY",
                              "AIDP_POLICY_DIR",    "AIDP_PROFILE_PATH", "AIDP_RUN_DIR",
                              "AIDP_KEYS_CONFIG",   "AIDP_KEY_DIR",      "AIDP_SYSLOG_SOCKET"};
        for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
                const struct aidp_cli_env *e = aidp_cli_env_find(vars[i]);
                cr_assert(e, "%s", vars[i]);
                cr_expect_eq(e->trust, AIDP_TRUST_TEST_BUILD, "%s", vars[i]);
                cr_expect(aidp_cli_trust_allows(e->trust, A, true));
                cr_expect(!aidp_cli_trust_allows(e->trust, A, false));
                cr_expect(!aidp_cli_trust_allows(e->trust, U, true));
        }
        cr_expect_eq(aidp_cli_env_find("AIDP_TIMING")->trust, AIDP_TRUST_ADMIN);
}

Test(trust_table, job_identity_variables_are_dropped)
{
        char *env[] = {"SLURM_JOB_UID=0", "SUDO_UID=0", NULL};
        setenv("SLURM_JOB_UID", "0", 1);
        setenv("SLURM_JOB_USER", "root", 1);
        setenv("SUDO_UID", "0", 1);
        aidp_error err = {0};
        cr_assert_eq(aidp_trust_check_env(A, false, env, &err), 0, "%s", err.msg);
        cr_expect_null(getenv("SLURM_JOB_UID"));
        cr_expect_null(getenv("SLURM_JOB_USER"));
        cr_expect_null(getenv("SUDO_UID"), "an admin's SUDO_UID survived");
        char *bad[] = {"AIDP_POLICY_DIR=/tmp", NULL};
        cr_expect_lt(aidp_trust_check_env(A, false, bad, &err), 0);
        cr_expect_eq(err.status, AIDP_EXIT_USAGE);
        cr_expect(strstr(err.msg, "AIDP_POLICY_DIR"), "%s", err.msg);
}
