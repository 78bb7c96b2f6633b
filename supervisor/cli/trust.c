/* Caller trust: who is asking, and the check against the tables (docs/security.md). */
#define _GNU_SOURCE
#include "supervisor/cli/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "supervisor/run/caller.h"
#include "supervisor/sandbox/ascaller.h"

/* Read by the supervisor but never an identity unless the entry point says
 * so: removed from the environment before anything can read them. */
static const char *const job_identity_vars[] = {"SLURM_JOB_UID", "SLURM_JOB_USER", "SLURM_JOB_GID",
                                                NULL};
static const char *const sudo_vars[] = {"SUDO_UID", "SUDO_GID", "SUDO_USER", NULL};

const char *aidp_trust_kind_name(enum aidp_caller_kind kind)
{
        switch (kind) {
        case AIDP_CALLER_ADMIN: return "admin";
        case AIDP_CALLER_USER: return "user";
        case AIDP_CALLER_KIND_MAX: break;
        }
        return "?";
}

int aidp_trust_check_env(enum aidp_caller_kind kind, bool test_build, char *const *envp,
                         aidp_error *err)
{
        int r = aidp_cli_check_env(envp, AIDP_CLI_BIN_SUPERVISOR, kind, test_build, err);
        if (r < 0)
                return r;
        /* Identity comes from --user (admins) or sudo (users), never from a
         * variable a job can set. */
        for (const char *const *v = job_identity_vars; *v; v++)
                unsetenv(*v);
        if (kind == AIDP_CALLER_ADMIN)
                for (const char *const *v = sudo_vars; *v; v++)
                        unsetenv(*v);
        return 0;
}

/* Is our parent a setuid-root program named sudo? The kernel's /proc/PPID/exe
 * names the parent's executable; nobody but sudo itself can make a process
 * whose executable is that file run as our parent with SUDO_UID set. */
static bool parent_is_sudo(void)
{
        char link[64], exe[PATH_MAX];
        snprintf(link, sizeof link, "/proc/%d/exe", (int)getppid());
        ssize_t n = readlink(link, exe, sizeof exe - 1);
        if (n <= 0)
                return false;
        exe[n] = '\0';
        const char *base = strrchr(exe, '/');
        base = base ? base + 1 : exe;
        struct stat st;
        return !strcmp(base, "sudo") && stat(exe, &st) == 0 && st.st_uid == 0 &&
               (st.st_mode & S_ISUID) && !(st.st_mode & (S_IWGRP | S_IWOTH));
}

int aidp_trust_caller(char *const *envp, enum aidp_caller_kind *ret_kind, uid_t *ret_uid,
                      aidp_error *err)
{
        uid_t real = getuid();
        if (real != 0) {
                /* Installed setuid: the real uid is the caller's own. */
                *ret_kind = AIDP_CALLER_USER;
                *ret_uid = real;
                return 0;
        }
        const char *s = aidp_caller_env_get(envp, "SUDO_UID");
        uid_t su = 0;
        if (s && aidp_caller_parse_uid(s, &su) < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "SUDO_UID '%s' is not a uid",
                                      s);
        if (!s || su == 0) {
                *ret_kind = AIDP_CALLER_ADMIN;
                *ret_uid = 0;
                return 0;
        }
        /* Fail closed: a non-zero SUDO_UID never makes an admin, and it names
         * the caller only when sudo set it. */
        if (!parent_is_sudo())
                return aidp_error_set(
                        err, AIDP_EXIT_USAGE, EPERM,
                        "SUDO_UID=%s is set but aidp-supervisor was not started by sudo: the "
                        "identity of a job is never taken from its environment (a scheduler "
                        "passes it with --user and without SUDO_UID; docs/security.md)",
                        s);
        *ret_kind = AIDP_CALLER_USER;
        *ret_uid = su;
        return 0;
}

int aidp_trust_check_command(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *p,
                             bool test_build, char *const *envp, enum aidp_caller_kind *ret_kind,
                             uid_t *ret_uid, aidp_error *err)
{
        int r = aidp_trust_caller(envp, ret_kind, ret_uid, err);
        if (r < 0)
                return r;
        if ((r = aidp_cli_check_trust(spec, p, *ret_kind, test_build, err)) < 0)
                return r;
        return aidp_trust_check_env(*ret_kind, test_build, envp, err);
}

int aidp_trust_open_summary(enum aidp_caller_kind kind, uid_t uid, const char *path, int *ret_fd,
                            aidp_error *err)
{
        if (kind == AIDP_CALLER_ADMIN) {
                /* An admin names its own file; still never through a symlink. */
                int fd =
                        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                             0644);
                if (fd < 0)
                        return aidp_error_errno(err, AIDP_EXIT_USAGE, errno, "--summary %s", path);
                *ret_fd = fd;
                return 0;
        }
        /* A user's summary is the user's own file: created by the user, in a
         * directory the user may write, never replacing anything. */
        struct aidp_ascaller who;
        int r = aidp_ascaller_for_uid(uid, (gid_t)-1, &who, err);
        if (r < 0)
                return r;
        struct aidp_ascaller_req q = {.path = path, .how = AIDP_ASCALLER_CREATE};
        int fd, e;
        if ((r = aidp_ascaller_open(&who, &q, 1, &fd, &e, err)) < 0)
                return r;
        if (fd < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, e, "--summary %s: %s", path,
                                      aidp_ascaller_strerror(q.how, e));
        *ret_fd = fd;
        return 0;
}

int aidp_trust_tool_check(int argc, char **argv, aidp_error *err)
{
        const char *su = getenv("SUDO_UID");
        if (getuid() != 0 || !su || !strcmp(su, "0") || argc < 2)
                return 0;
        /* Root acting for a sudo user: every command but reading root's own
         * lineage log and unseal/inspect/detokenize (which open the user's
         * files as the user and ask the access policy, tool_access.h) would open, create
         * or send files the user names with root's authority (seal, profile
         * check /etc/shadow, profile learn --base, lineage graph -o, export
         * --url). */
        const char *cmd = argv[1], *sub = argc > 2 ? argv[2] : "";
        if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "help") ||
            !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "unseal") ||
            !strcmp(cmd, "inspect") || !strcmp(cmd, "detokenize") ||
            (!strcmp(cmd, "lineage") && (!strcmp(sub, "verify") || !strcmp(sub, "show"))))
                return 0;
        return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                              "'aidp %s' is not available through sudo (SUDO_UID=%s): it would "
                              "act on the paths you name with root's authority; run it as "
                              "yourself, or as root itself (docs/security.md)",
                              cmd, su);
}
