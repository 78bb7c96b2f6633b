#pragma once
/* Who is asking: the identity the access policy decides on.
 *
 * Precedence (docs/policy.md): when the supervisor's real uid is not 0 the
 * caller is that uid and the environment is not trusted. As root: --user
 * when root runs the supervisor directly (not through sudo for another
 * user); else SUDO_UID (sudo); else the scheduler's job user (SLURM_JOB_UID,
 * cross-checked with SLURM_JOB_USER); else root itself. Groups come from the
 * system user database (getpwuid_r/getgrouplist), never from the caller.
 * aidp-supervisor's trust check (supervisor/cli/trust.c) runs first and
 * removes SLURM_JOB_* always, and SUDO_* unless sudo itself started it, so in
 * a run only --user (admin) and a proven SUDO_UID (user) reach this code. */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

struct aidp_caller;

struct aidp_caller_identity {
        char *user; /* NULL when the uid has no passwd entry */
        uid_t uid;
        gid_t gid;
        char **groups; /* group names (NULL-terminated); numeric when unnamed */
        size_t n_groups;
        bool groups_resolved; /* groups filled in (aidp_caller_fill_groups) */
        const char *source;   /* "--user", "SUDO_UID", "SLURM_JOB_UID", "uid" */
};

/* Resolve from the option, the real uid and an environment (normally
 * `environ`; tests pass their own). Errors: AIDP_EXIT_USAGE for a --user that
 * may not be used or names nobody, AIDP_EXIT_DENIED for inconsistent
 * scheduler variables. */
int aidp_caller_resolve(const char *opt_user, uid_t real_uid, char *const *envp,
                        struct aidp_caller_identity *ret, aidp_error *err);
/* The same without the groups (groups stays an empty list): getgrouplist asks
 * every source in nsswitch.conf, which can cost more than the rest of a run's
 * start-up, so a run looks the groups up only when a policy needs them. */
int aidp_caller_resolve_identity(const char *opt_user, uid_t real_uid, char *const *envp,
                                 struct aidp_caller_identity *ret, aidp_error *err);
/* A daemon's peer (supervisor/daemon/peer.h): uid and gid from the kernel,
 * the name from the user database, the groups those the kernel listed for
 * the process (named from the group database). source "SO_PEERCRED". */
int aidp_caller_from_peer(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
                          struct aidp_caller_identity *ret, aidp_error *err);
/* Look up c's groups if that has not been done yet. Idempotent. */
int aidp_caller_fill_groups(struct aidp_caller_identity *c, aidp_error *err);
void aidp_caller_free(struct aidp_caller_identity *c);
/* The decision's view of the identity (borrows its strings). */
void aidp_caller_view(const struct aidp_caller_identity *c, struct aidp_caller *ret);

/* NAME's value in envp, or NULL. */
const char *aidp_caller_env_get(char *const *envp, const char *name);
/* A decimal uid (never (uid_t)-1, which means "no uid"): 0 or -EINVAL. */
int aidp_caller_parse_uid(const char *s, uid_t *ret);
