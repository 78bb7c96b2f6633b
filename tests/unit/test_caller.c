/* Caller identity precedence (supervisor/run/caller.c). The environment and the
 * real uid are passed in, so no root is needed; root and nobody are the
 * accounts every system has. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "residency/decide.h"
#include "supervisor/run/caller.h"

static bool has_group(const struct aidp_caller_identity *c, const char *g)
{
        for (size_t i = 0; i < c->n_groups; i++)
                if (!strcmp(c->groups[i], g))
                        return true;
        return false;
}

Test(caller, root_without_hints_is_root)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        char *env[] = {"PATH=/usr/bin", NULL};
        cr_assert_eq(aidp_caller_resolve(NULL, 0, env, &c, &err), 0, "%s", err.msg);
        cr_assert_str_eq(c.user, "root");
        cr_assert_eq(c.uid, 0);
        cr_assert_str_eq(c.source, "uid");
        cr_assert(has_group(&c, "root"), "groups from the database");
        aidp_caller_free(&c);
}

Test(caller, identity_first_and_groups_only_on_demand)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        char *env[] = {"PATH=/usr/bin", NULL};
        cr_assert_eq(aidp_caller_resolve_identity(NULL, 0, env, &c, &err), 0, "%s", err.msg);
        cr_assert_str_eq(c.user, "root");
        cr_assert_not(c.groups_resolved);
        cr_assert_eq(c.n_groups, 0, "no group lookup until asked");
        cr_assert_not_null(c.groups, "an empty list, not NULL");
        cr_assert_eq(aidp_caller_fill_groups(&c, &err), 0, "%s", err.msg);
        cr_assert(c.groups_resolved);
        cr_assert(has_group(&c, "root"));
        size_t n = c.n_groups;
        cr_assert_eq(aidp_caller_fill_groups(&c, &err), 0, "%s", err.msg);
        cr_assert_eq(c.n_groups, n, "a second call adds nothing");
        aidp_caller_free(&c);

        /* A uid without a passwd entry: nothing to look up, and no error. */
        char *sudo[] = {"SUDO_UID=4000321", NULL};
        cr_assert_eq(aidp_caller_resolve_identity(NULL, 0, sudo, &c, &err), 0, "%s", err.msg);
        cr_assert_null(c.user);
        cr_assert_eq(aidp_caller_fill_groups(&c, &err), 0, "%s", err.msg);
        cr_assert_eq(c.n_groups, 0);
        aidp_caller_free(&c);
}

Test(caller, user_option_when_root_runs_directly)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        char *env[] = {"SLURM_JOB_UID=0", NULL};
        cr_assert_eq(aidp_caller_resolve("nobody", 0, env, &c, &err), 0, "%s", err.msg);
        cr_assert_str_eq(c.user, "nobody");
        cr_assert_eq(c.uid, 65534);
        cr_assert_str_eq(c.source, "--user", "--user wins over the scheduler");
        aidp_caller_free(&c);
        cr_assert_eq(aidp_caller_resolve("65534", 0, NULL, &c, &err), 0, "%s", err.msg);
        cr_assert_str_eq(c.user, "nobody", "a numeric --user is a uid");
        aidp_caller_free(&c);
}

Test(caller, user_option_refused_through_sudo)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        char *env[] = {"SUDO_UID=1000", NULL};
        cr_assert_eq(aidp_caller_resolve("root", 0, env, &c, &err), -EPERM);
        cr_assert_eq(err.status, AIDP_EXIT_USAGE);
        cr_assert(strstr(err.msg, "not through sudo"), "%s", err.msg);
        char *env0[] = {"SUDO_UID=0", NULL};
        cr_assert_eq(aidp_caller_resolve("nobody", 0, env0, &c, &err), 0, "root's own sudo");
        cr_assert_str_eq(c.user, "nobody");
        aidp_caller_free(&c);
}

Test(caller, user_option_refused_for_non_root)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        cr_assert_eq(aidp_caller_resolve("root", 65534, NULL, &c, &err), -EPERM);
        cr_assert_eq(err.status, AIDP_EXIT_USAGE);
}

Test(caller, non_root_ignores_the_environment)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        char *env[] = {"SUDO_UID=0", "SLURM_JOB_UID=0", NULL};
        cr_assert_eq(aidp_caller_resolve(NULL, 65534, env, &c, &err), 0, "%s", err.msg);
        cr_assert_eq(c.uid, 65534);
        cr_assert_str_eq(c.user, "nobody");
        cr_assert_str_eq(c.source, "uid");
        aidp_caller_free(&c);
}

Test(caller, sudo_uid_before_the_scheduler)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        char *env[] = {"SLURM_JOB_UID=0", "SUDO_UID=65534", NULL};
        cr_assert_eq(aidp_caller_resolve(NULL, 0, env, &c, &err), 0, "%s", err.msg);
        cr_assert_eq(c.uid, 65534);
        cr_assert_str_eq(c.source, "SUDO_UID");
        aidp_caller_free(&c);
        char *bad[] = {"SUDO_UID=12ab", NULL};
        cr_assert_lt(aidp_caller_resolve(NULL, 0, bad, &c, &err), 0);
        cr_assert(strstr(err.msg, "SUDO_UID '12ab' is not a uid"), "%s", err.msg);
}

Test(caller, scheduler_job_user)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        char *env[] = {"SLURM_JOB_UID=65534", "SLURM_JOB_USER=nobody", NULL};
        cr_assert_eq(aidp_caller_resolve(NULL, 0, env, &c, &err), 0, "%s", err.msg);
        cr_assert_eq(c.uid, 65534);
        cr_assert_str_eq(c.source, "SLURM_JOB_UID");
        aidp_caller_free(&c);

        char *mismatch[] = {"SLURM_JOB_UID=65534", "SLURM_JOB_USER=root", NULL};
        cr_assert_lt(aidp_caller_resolve(NULL, 0, mismatch, &c, &err), 0);
        cr_assert_eq(err.status, AIDP_EXIT_DENIED);
        cr_assert(strstr(err.msg, "SLURM_JOB_USER is 'root'"), "%s", err.msg);

        char *name_only[] = {"SLURM_JOB_USER=nobody", NULL};
        cr_assert_eq(aidp_caller_resolve(NULL, 0, name_only, &c, &err), 0, "%s", err.msg);
        cr_assert_eq(c.uid, 65534);
        aidp_caller_free(&c);
}

Test(caller, uid_without_a_name_is_resolved_but_nameless)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        char *env[] = {"SUDO_UID=3999999", NULL};
        cr_assert_eq(aidp_caller_resolve(NULL, 0, env, &c, &err), 0, "%s", err.msg);
        cr_assert_null(c.user, "the decision denies a nameless caller");
        cr_assert_eq(c.uid, 3999999);
        struct aidp_caller view;
        aidp_caller_view(&c, &view);
        cr_assert_null(view.user);
        cr_assert_eq(view.uid, 3999999);
        aidp_caller_free(&c);
}

Test(caller, unknown_user_option)
{
        struct aidp_caller_identity c;
        aidp_error err = {0};
        cr_assert_eq(aidp_caller_resolve("no-such-user-aidp", 0, NULL, &c, &err), -ENOENT);
        cr_assert(strstr(err.msg, "--user no-such-user-aidp: no such user"), "%s", err.msg);
}
