#pragma once
/* Caller trust (docs/security.md): who is asking, checked against the option
 * tables and the environment table (options.h, env.c) once, before anything
 * else happens (gc included): a user caller that asks for an admin-only
 * setting is refused with AIDP_EXIT_USAGE and nothing of the run exists yet. */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"
#include "supervisor/cli/options.h"

/* Who is asking. As root: a non-zero SUDO_UID makes the caller a user, and
 * that uid counts only when the supervisor's parent really is sudo (a
 * setuid-root binary named sudo); otherwise the variable came from somewhere
 * else (a job's environment passed on by a scheduler) and the run is refused.
 * Without it, root is an admin. *ret_uid: the user's uid (0 for admins). */
int aidp_trust_caller(char *const *envp, enum aidp_caller_kind *ret_kind, uid_t *ret_uid,
                      aidp_error *err);

/* Check every variable of envp against the environment table (env.c), then
 * remove from the process environment every variable the rest of the
 * supervisor would otherwise read but this caller may not set (identity
 * variables of the job, SUDO_* for admins), so no later getenv() sees them. */
int aidp_trust_check_env(enum aidp_caller_kind kind, bool test_build, char *const *envp,
                         aidp_error *err);

const char *aidp_trust_kind_name(enum aidp_caller_kind kind);

/* The whole check for one command: the caller's kind, every option used
 * (the command's option table, options.h) and the environment. */
int aidp_trust_check_command(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *p,
                             bool test_build, char *const *envp, enum aidp_caller_kind *ret_kind,
                             uid_t *ret_uid, aidp_error *err);

/* Open --summary: as root without following a symlink for an admin; created
 * new by the user (ascaller.c) for a user. */
int aidp_trust_open_summary(enum aidp_caller_kind kind, uid_t uid, const char *path, int *ret_fd,
                            aidp_error *err);

/* `aidp` run as root for a sudo user (SUDO_UID not 0): only `lineage verify`
 * and `lineage show` (root's own log, to stdout), `unseal` and `inspect`
 * (the user's files as the user, the access policy decides: tool_access.h),
 * version and help; anything else is refused with AIDP_EXIT_USAGE until it
 * opens the user's paths as the user (docs/security.md, known gaps). */
int aidp_trust_tool_check(int argc, char **argv, aidp_error *err);
