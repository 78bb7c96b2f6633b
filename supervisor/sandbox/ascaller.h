#pragma once
/* Open the paths a caller names with the caller's own credentials.
 *
 * aidp-supervisor runs as root for people who are not: a path given on the
 * command line (--data, --ro-bind/--bind, --cwd, --summary, --output-dir)
 * must reach only what its caller could reach. A helper process forked here
 * takes the caller's uid, gid and supplementary groups (setgroups,
 * setresgid, setresuid), opens each path without following a symlink in its
 * last component and without magic links (openat2 RESOLVE_NO_MAGICLINKS), and
 * sends the fds back over a socketpair (fdpass.c). Root then only ever uses
 * those fds (docs/security.md). */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

#define AIDP_ASCALLER_MAX_GROUPS 256

struct aidp_ascaller {
        uid_t uid;
        gid_t gid;
        gid_t groups[AIDP_ASCALLER_MAX_GROUPS]; /* supplementary groups */
        size_t n_groups;
};

enum aidp_ascaller_how {
        AIDP_ASCALLER_READ,         /* a regular file root will read for the caller: O_RDONLY */
        AIDP_ASCALLER_TREE,         /* a file or directory to bind read-only: O_PATH */
        AIDP_ASCALLER_TREE_RW,      /* the same, writable: the caller must be able to write it */
        AIDP_ASCALLER_DIR,          /* a directory to bind or work in: O_PATH | O_DIRECTORY */
        AIDP_ASCALLER_DIR_WRITABLE, /* a directory the caller may create files in: O_RDONLY */
        AIDP_ASCALLER_CREATE,       /* a new file, created by the caller (0644, never replaced) */
        AIDP_ASCALLER_HOW_MAX
};

struct aidp_ascaller_req {
        const char *path;
        enum aidp_ascaller_how how;
};

/* The caller's credentials from the user database (primary gid from passwd
 * unless gid != (gid_t)-1, supplementary groups from getgrouplist). A uid
 * without a passwd entry gets no supplementary groups. */
int aidp_ascaller_for_uid(uid_t uid, gid_t gid, struct aidp_ascaller *ret, aidp_error *err);

/* O_PATH checks no permission on the object itself, and a job may run as
 * another uid (a fixed-uid profile): the helper also proves, as the caller,
 * read access (and search for a directory, write for TREE_RW). */
/* Open every request as the caller: fds[i] >= 0 (close-on-exec) or -1 with
 * errnos[i] > 0 (ELOOP: a symlink; EINVAL: not a regular file / not a
 * directory; EEXIST: a file to create exists). Returns 0, or < 0 with err set
 * when the helper itself failed. */
int aidp_ascaller_open(const struct aidp_ascaller *who, const struct aidp_ascaller_req *reqs,
                       size_t n, int *fds, int *errnos, aidp_error *err);

/* The same proofs for files the caller opened itself and handed over as fds
 * (the daemon's clients, docs/protocol.md): in a helper with the caller's
 * credentials, each fd's object is checked as open_one checks a path's
 * (kind, and the access `how` needs, by faccessat2 on the fd; CREATE: a
 * regular file open for writing). errnos[i] is 0 when fds[i] passes. Returns
 * 0, or < 0 with err when the helper itself failed. */
int aidp_ascaller_check_fds(const struct aidp_ascaller *who, const int *fds,
                            const enum aidp_ascaller_how *how, size_t n, int *errnos,
                            aidp_error *err);

/* A message for errnos[i] of a request ("symlink refused", ...). Never quotes
 * the file's content. */
const char *aidp_ascaller_strerror(enum aidp_ascaller_how how, int errnum);

/* Run fn(arg) in a child process with the caller's credentials (groups, gid,
 * uid; when not root, with our own) and not dumpable, so that processes of
 * the caller's uid can signal it but neither ptrace it nor read its memory
 * (which may hold a data key). Unlike aidp_ascaller_open's helper it keeps
 * the parent's memory and fds: fn must use only what it was given. The child
 * exits with fn's return value (0..255); the caller waits for *ret_pid. */
int aidp_ascaller_spawn(const struct aidp_ascaller *who, int (*fn)(void *arg), void *arg,
                        pid_t *ret_pid, aidp_error *err);
