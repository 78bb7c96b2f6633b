/* Caller identity resolution (supervisor side: it reads the user database). */
#include "supervisor/run/caller.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "residency/decide.h"
#include "common/strv.h"

const char *aidp_caller_env_get(char *const *envp, const char *name)
{
        size_t n = strlen(name);
        for (char *const *e = envp; e && *e; e++)
                if (!strncmp(*e, name, n) && (*e)[n] == '=')
                        return *e + n + 1;
        return NULL;
}

int aidp_caller_parse_uid(const char *s, uid_t *ret)
{
        if (!s || !*s || *s < '0' || *s > '9')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        /* (uid_t)-1 means "no uid" to the kernel: never a valid caller. */
        if (errno || *end || v >= (unsigned long)(uid_t)-1)
                return -EINVAL;
        *ret = (uid_t)v;
        return 0;
}

/* getpw*_r with a growing buffer. found = false when there is no entry. */
static int lookup_pw(const char *name, uid_t uid, struct passwd *pw, char **buf, bool *found,
                     aidp_error *err)
{
        size_t size = 1024;
        for (;;) {
                struct passwd *res = NULL;
                char *nb = realloc(*buf, size);
                if (!nb)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                *buf = nb;
                int r = name ? getpwnam_r(name, pw, *buf, size, &res)
                             : getpwuid_r(uid, pw, *buf, size, &res);
                if (r == ERANGE && size < (1u << 20)) {
                        size *= 2;
                        continue;
                }
                if (r != 0 && r != ENOENT && r != ESRCH)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, r,
                                                "reading the user database");
                *found = res != NULL;
                return 0;
        }
}

static int group_name(gid_t gid, char **ret, aidp_error *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 1024;
        for (;;) {
                struct group gr, *res = NULL;
                char *nb = realloc(buf, size);
                if (!nb)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                buf = nb;
                int r = getgrgid_r(gid, &gr, buf, size, &res);
                if (r == ERANGE && size < (1u << 20)) {
                        size *= 2;
                        continue;
                }
                if (r != 0 && r != ENOENT && r != ESRCH)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, r,
                                                "reading the group database");
                char num[32];
                snprintf(num, sizeof num, "%u", (unsigned)gid);
                *ret = strdup(res ? res->gr_name : num);
                if (!*ret)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                return 0;
        }
}

int aidp_caller_fill_groups(struct aidp_caller_identity *c, aidp_error *err)
{
        if (c->groups_resolved)
                return 0;
        if (!c->user) {
                /* A uid without a passwd entry has no group list to look up. */
                c->groups_resolved = true;
                return 0;
        }
        int n = 32;
        _cleanup_free_ gid_t *gids = NULL;
        for (;;) {
                gid_t *ng = realloc(gids, (size_t)n * sizeof *ng);
                if (!ng)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                gids = ng;
                int want = n;
                if (getgrouplist(c->user, c->gid, gids, &want) >= 0) {
                        n = want;
                        break;
                }
                if (want <= n || want > 65536)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                              "getgrouplist(%s) failed", c->user);
                n = want;
        }
        for (int i = 0; i < n; i++) {
                char *name = NULL;
                int r = group_name(gids[i], &name, err);
                if (r < 0)
                        return r;
                if (aidp_strv_contains(c->groups, c->n_groups, name)) {
                        free(name);
                        continue;
                }
                if (aidp_strv_push_take(&c->groups, &c->n_groups, name) < 0)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        c->groups_resolved = true;
        return 0;
}

/* Name and primary gid of uid (or of the name given). */
static int fill_from_db(struct aidp_caller_identity *c, const char *name, aidp_error *err)
{
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        bool found = false;
        int r = lookup_pw(name, c->uid, &pw, &buf, &found, err);
        if (r < 0)
                return r;
        if (!found) {
                if (name)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, ENOENT,
                                              "--user %s: no such user", name);
                /* A uid without a name: the decision denies it, with a reason. */
                c->gid = (gid_t)-1;
                return 0;
        }
        c->uid = pw.pw_uid;
        c->gid = pw.pw_gid;
        if (!(c->user = strdup(pw.pw_name)))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

int aidp_caller_resolve_identity(const char *opt_user, uid_t real_uid, char *const *envp,
                                 struct aidp_caller_identity *ret, aidp_error *err)
{
        struct aidp_caller_identity c = {.uid = real_uid, .source = "uid"};
        const char *sudo_uid = aidp_caller_env_get(envp, "SUDO_UID");
        const char *slurm_uid = aidp_caller_env_get(envp, "SLURM_JOB_UID");
        const char *slurm_user = aidp_caller_env_get(envp, "SLURM_JOB_USER");
        const char *name = NULL;
        int r;

        if (real_uid != 0) {
                /* Not root: the environment is the caller's own, so it proves nothing. */
                if (opt_user)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                              "--user is only honoured when root runs the "
                                              "supervisor");
        } else if (opt_user) {
                /* Through sudo, --user would let any sudoer pick an identity. */
                uid_t su;
                if (sudo_uid && (aidp_caller_parse_uid(sudo_uid, &su) < 0 || su != 0))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                              "--user is only honoured when root runs the "
                                              "supervisor directly, not through sudo "
                                              "(SUDO_UID=%s)",
                                              sudo_uid);
                c.source = "--user";
                if (aidp_caller_parse_uid(opt_user, &c.uid) < 0)
                        name = opt_user;
        } else if (sudo_uid) {
                c.source = "SUDO_UID";
                if (aidp_caller_parse_uid(sudo_uid, &c.uid) < 0)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "SUDO_UID '%s' is not a uid", sudo_uid);
        } else if (slurm_uid) {
                c.source = "SLURM_JOB_UID";
                if (aidp_caller_parse_uid(slurm_uid, &c.uid) < 0)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "SLURM_JOB_UID '%s' is not a uid", slurm_uid);
        } else if (slurm_user) {
                c.source = "SLURM_JOB_USER";
                name = slurm_user;
        }

        r = fill_from_db(&c, name, err);
        if (r < 0) {
                if (name && !strcmp(c.source, "SLURM_JOB_USER"))
                        aidp_error_set(err, AIDP_EXIT_DENIED, ENOENT,
                                       "SLURM_JOB_USER '%s' is not in the user database", name);
                aidp_caller_free(&c);
                return r;
        }
        if (slurm_uid && slurm_user && !strcmp(c.source, "SLURM_JOB_UID") &&
            (!c.user || strcmp(c.user, slurm_user))) {
                r = aidp_error_set(err, AIDP_EXIT_DENIED, EPERM,
                                   "SLURM_JOB_UID %u is '%s' in the user database, but "
                                   "SLURM_JOB_USER is '%s'",
                                   (unsigned)c.uid, c.user ? c.user : "(no name)", slurm_user);
                aidp_caller_free(&c);
                return r;
        }
        if (!c.groups && !(c.groups = calloc(1, sizeof *c.groups))) {
                aidp_caller_free(&c);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        *ret = c;
        return 0;
}

int aidp_caller_from_peer(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
                          struct aidp_caller_identity *ret, aidp_error *err)
{
        struct aidp_caller_identity c = {.uid = uid, .source = "SO_PEERCRED"};
        int r = fill_from_db(&c, NULL, err);
        c.uid = uid;
        c.gid = gid; /* the process's own, not the database's */
        if (r == 0 && !(c.groups = calloc(1, sizeof *c.groups)))
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t i = 0; r == 0 && i <= n_groups; i++) {
                char *name = NULL;
                if ((r = group_name(i == n_groups ? gid : groups[i], &name, err)) < 0)
                        break;
                if (aidp_strv_contains(c.groups, c.n_groups, name))
                        free(name);
                else if (aidp_strv_push_take(&c.groups, &c.n_groups, name) < 0)
                        r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        if (r < 0) {
                aidp_caller_free(&c);
                return r;
        }
        c.groups_resolved = true;
        *ret = c;
        return 0;
}

int aidp_caller_resolve(const char *opt_user, uid_t real_uid, char *const *envp,
                        struct aidp_caller_identity *ret, aidp_error *err)
{
        int r = aidp_caller_resolve_identity(opt_user, real_uid, envp, ret, err);
        if (r == 0 && (r = aidp_caller_fill_groups(ret, err)) < 0)
                aidp_caller_free(ret);
        return r;
}

void aidp_caller_free(struct aidp_caller_identity *c)
{
        if (!c)
                return;
        free(c->user);
        aidp_strv_free(c->groups);
        memset(c, 0, sizeof *c);
}

void aidp_caller_view(const struct aidp_caller_identity *c, struct aidp_caller *ret)
{
        memset(ret, 0, sizeof *ret);
        ret->user = c->user;
        ret->uid = (int64_t)c->uid;
        ret->groups = (const char *const *)c->groups;
        ret->n_groups = c->n_groups;
}
