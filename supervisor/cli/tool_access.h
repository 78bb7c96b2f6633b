#pragma once
/* `aidp unseal` and `aidp inspect` act for their caller (docs/security.md,
 * "aidp through sudo"). Root for a sudo user: the options and variables the
 * user may set are checked against the tables (options.h, env.c), the sealed
 * file is opened with the user's credentials (ascaller.h), the installed
 * access policy decides on the authenticated header (operation `unseal`, or
 * `inspect`) exactly as for a run, and what the user receives is written by a
 * process with the user's credentials (tool_unseal.c). Root for itself
 * (admin) and a user without sudo act with their own authority. */
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "residency/policy.h"
#include "supervisor/cli/options.h"
#include "supervisor/sandbox/ascaller.h"
#include "supervisor/sealed/sealed.h"

struct aidp_tool_access {
        enum aidp_caller_kind kind;
        uid_t uid;                /* the user's; 0 for an admin */
        bool for_user;            /* root acting for a sudo user: the policy decided */
        bool may_unseal;          /* the policy grants unseal (always without one) */
        struct aidp_ascaller who; /* the credentials files are opened and written with */
};

/* Identify the caller, open FILE as the caller, authenticate its header with
 * the key providers (keys_config/key_dir: admin-only for a sudo user) and,
 * for a sudo user, have the policy decide op. Errors: AIDP_EXIT_USAGE (a
 * refused option, variable or path), AIDP_EXIT_DENIED (the policy, or none
 * installed), AIDP_EXIT_DATA/CONFIG (the file or the keys). */
int aidp_tool_open_sealed(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *p,
                          const char *file, enum aidp_residency_op op, const char *keys_config,
                          const char *key_dir, struct aidp_tool_access *acc,
                          struct aidp_sealed **ret, aidp_error *err);

/* The access policy of policy_dir (NULL: /etc/aidp) decides op on header h
 * for uid (root for a sudo user, or an admin's --user): 0 allowed, -EACCES
 * denied (err: AIDP_EXIT_DENIED naming the rule; also when no policy is
 * installed), another < 0 for a bad policy file or an unknown user. */
int aidp_tool_decide(uid_t uid, enum aidp_residency_op op, const struct aidp_sealed_header *h,
                     const char *policy_dir, aidp_error *err);

/* A grant of detokenize on a dataset reverses that dataset's tokens only:
 * every token (DOMAIN~...) must be of a reversible (siv) domain under key_id
 * that some view of the policy in policy_dir (NULL: /etc/aidp) gives a
 * column of h's authenticated schema. Otherwise -EACCES (AIDP_EXIT_DENIED)
 * naming the token, so a user cannot name a dataset they may detokenize and
 * reverse another dataset's tokens with another key or domain. */
int aidp_tool_check_token_domains(const struct aidp_sealed_header *h, const char *policy_dir,
                                  const char *key_id, char *const *tokens, size_t n,
                                  aidp_error *err);

/* Decrypt s into DIR (created if missing, 0700) as acc->who: into a private
 * temporary directory inside DIR first, moved into place only after every
 * segment authenticated, never replacing an entry of DIR. SIGINT, SIGTERM
 * and SIGHUP stop it; whatever stops it (SIGKILL of either process included)
 * leaves no byte of the dataset in DIR. */
int aidp_tool_unseal_to_dir(struct aidp_sealed *s, const struct aidp_tool_access *acc,
                            const char *dir, const struct aidp_sealed_opts *o,
                            struct aidp_sealed_result *res, aidp_error *err);
