#pragma once
/* Unprivileged test users and a sudoers drop-in for the caller-trust tests
 * (tests/priv/test_trust.c). Users are named "aidpt<pid><tag>"; the drop-in
 * is /etc/sudoers.d/aidp-test-<pid>. Both are removed by
 * aidp_test_users_cleanup(), and any left by a test process that died (its
 * pid no longer runs) are removed by the next aidp_test_user_create(). */
#include <stdbool.h>
#include <sys/types.h>

#include "runner.h"

struct aidp_test_user {
        char name[32];
        uid_t uid;
        gid_t gid;
        char home[128]; /* /var/tmp/<name>-XXXXXX (mkdtemp), 0700, owned by the user */
};

/* useradd (own group, no login shell) + a private home. 0 or -1. */
int aidp_test_user_create(const char *tag, struct aidp_test_user *u);
/* u joins the group gid (usermod -aG, again while another holds the lock). */
int aidp_test_user_join(const struct aidp_test_user *u, gid_t gid);
/* Let u run `<binary> run *` (and nothing else) as root through sudo, as
 * README's set-up says (any other binary: with any arguments; "BINARY ARGS"
 * with a space: exactly that); u may pass fds with `sudo -C N`. Checked with
 * visudo before it is installed. Call once per binary. */
int aidp_test_sudoers_allow(const struct aidp_test_user *u, const char *binary);
/* Why the last user or group change failed ("useradd exit 9: ..."), for a
 * test's message when its set-up could not make its users. */
const char *aidp_test_users_why(void);
/* Remove every user and drop-in this process made. Safe to call twice. */
void aidp_test_users_cleanup(void);

/* Run argv as u (setpriv: u's uid, gid and groups); with sudo, argv is
 * prefixed with `sudo -n --`. stdout/stderr captured as aidp_test_run. */
int aidp_test_run_as(struct aidp_proc *p, const struct aidp_test_user *u, bool sudo,
                     char *const argv[]);
/* Run fn(arg) in a child process with u's uid and gid (files the user makes
 * are the user's own). 0 when fn returned 0, else -1. */
int aidp_test_as_user(const struct aidp_test_user *u, int (*fn)(const char *a, const char *b),
                      const char *a, const char *b);
int aidp_test_do_symlink(const char *target, const char *link);
int aidp_test_do_mkdir(const char *path, const char *unused);
int aidp_test_do_mkfifo(const char *path, const char *unused);
/* Write a file as u (content, mode): the user's own file. 0 or -1. */
int aidp_test_write_as(const struct aidp_test_user *u, const char *path, const char *content,
                       mode_t mode);
