#pragma once
/* What a user caller may ask of a run (docs/security.md), checked in resolve:
 * limits only lowered, command-line binds outside the reserved paths, and
 * every caller-named path opened with the caller's credentials
 * (supervisor/sandbox/ascaller.c) and used only as an fd afterwards. */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"
#include "profiles/profile.h"
#include "supervisor/run/run.h"
#include "supervisor/sealed/inject.h"

struct aidp_run_caller_paths {
        int data[AIDP_RUN_MAX_DATA]; /* --data, O_RDONLY; taken by aidp_inject_open */
        int *bind_trees;             /* one per profile bind: a detached tree or -1 */
        size_t n_bind_trees;
        int cwd_tree; /* the working directory as a detached tree, or -1 */
        int output_dir;
};

void aidp_run_caller_paths_init(struct aidp_run_caller_paths *p);
void aidp_run_caller_paths_free(struct aidp_run_caller_paths *p);

/* Refuse --memory/--cpus/--pids/--timeout/--tmp-size/--rlimit above the
 * profile's own (AIDP_EXIT_USAGE, naming the option, both values in the units
 * a user writes, the profile's name and where to find one that allows more). */
int aidp_run_trust_limits(const struct aidp_limits *profile, const char *name,
                          const struct aidp_run_opts *o, aidp_error *err);

/* A command-line bind's source and target: absolute, clean, and neither a
 * reserved path (aidp_profile_bind_path_reserved) nor aidp's own state. */
int aidp_run_trust_bind(const struct aidp_run_bind *b, aidp_error *err);

/* Open, as uid/gid (the caller), every --data file, every command-line bind
 * (the last o->n_binds of n_binds_total profile binds), the working
 * directory (when cwd is not NULL) and --output-dir; binds and the working
 * directory become detached trees (open_tree(OPEN_TREE_CLONE)) made here, in
 * the supervisor's mount namespace. Errors name the option and the path,
 * never a file's content: AIDP_EXIT_USAGE. */
int aidp_run_open_caller_paths(const struct aidp_run_opts *o, uid_t uid, gid_t gid, const char *cwd,
                               size_t n_binds_total, struct aidp_run_caller_paths *ret,
                               aidp_error *err);

/* Exec-hook mode: the working directory (cwd, named by opt in messages)
 * opened as uid/gid (--user) and cloned into a detached tree, as for a user
 * caller; AIDP_EXIT_USAGE when that user cannot read and enter it. */
int aidp_run_open_cwd_as(const char *opt, uid_t uid, gid_t gid, const char *cwd, int *ret_tree,
                         aidp_error *err);

/* The same for a daemon request (o->peer): the caller opened every file
 * itself; each fd is checked as the caller (its kind and the access the use
 * needs, aidp_ascaller_check_fds) and its real path against the reserved
 * ones, then taken as aidp_run_open_caller_paths would have opened it. */
int aidp_run_take_peer_paths(const struct aidp_run_opts *o, const char *cwd, size_t n_binds_total,
                             struct aidp_run_caller_paths *ret, aidp_error *err);
