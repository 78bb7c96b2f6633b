/* Warm start: the policy set loaded once in the server and handed to a
 * run only while its files are unchanged (warm.h). Its own file so that
 * the aidp tool, which shares run_policy.c, links no cgroup or sandbox
 * code (test aidp_tool_links_no_run_core). */
#define _GNU_SOURCE
#include "supervisor/run/warm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/run/run_policy.h"

/* ---- the policy set ---- */

/* What a cold load would read: the directory and the default files, each
 * by lstat (the name) and stat (what it leads to). Any difference at all
 * (inode, size, mode, owner, times, or a name that came or went) is a
 * change. */
static const char *const g_policy_names[] = {".", "host.yaml", "residency.yaml", "access.yaml"};
#define N_POLICY_NAMES (sizeof g_policy_names / sizeof *g_policy_names)

struct file_sig {
        int lerr, serr;
        struct stat l, s;
};

struct policy_sig {
        struct file_sig f[N_POLICY_NAMES];
};

static void sig_take(const char *dir, struct policy_sig *ret)
{
        memset(ret, 0, sizeof *ret);
        for (size_t i = 0; i < N_POLICY_NAMES; i++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", dir, g_policy_names[i]);
                struct file_sig *f = &ret->f[i];
                f->lerr = lstat(path, &f->l) < 0 ? errno : 0;
                f->serr = stat(path, &f->s) < 0 ? errno : 0;
                if (f->lerr)
                        memset(&f->l, 0, sizeof f->l);
                if (f->serr)
                        memset(&f->s, 0, sizeof f->s);
        }
}

bool aidp_run_warm_stat_same(const struct stat *a, const struct stat *b)
{
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_mode == b->st_mode &&
               a->st_uid == b->st_uid && a->st_gid == b->st_gid && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static bool sig_same(const struct policy_sig *a, const struct policy_sig *b)
{
        for (size_t i = 0; i < N_POLICY_NAMES; i++)
                if (a->f[i].lerr != b->f[i].lerr || a->f[i].serr != b->f[i].serr ||
                    !aidp_run_warm_stat_same(&a->f[i].l, &b->f[i].l) ||
                    !aidp_run_warm_stat_same(&a->f[i].s, &b->f[i].s))
                        return false;
        return true;
}

/* The server's cache, inherited by each worker. */
static struct {
        bool loaded; /* set holds what dir's files said at sig */
        char dir[1024];
        struct policy_sig sig;
        struct aidp_policy_set set;
} g_policy;

/* The directory a run would read, by the run's own rule. */
static const char *policy_dir(void)
{
        const char *d = aidp_run_root_directly() ? getenv(AIDP_POLICY_DIR_ENV) : NULL;
        return d && *d ? d : AIDP_POLICY_DIR_DEFAULT;
}

void aidp_run_warm_refresh(void)
{
        aidp_run_warm_profiles_refresh();
        const char *dir = policy_dir();
        struct policy_sig now;
        sig_take(dir, &now);
        if (g_policy.loaded && !strcmp(g_policy.dir, dir) && sig_same(&now, &g_policy.sig))
                return;
        aidp_policy_set_free(&g_policy.set);
        g_policy.loaded = false;
        /* The same load, with the same checks, as a cold run's
         * (aidp_run_policy_decide). */
        struct aidp_policy_sources src = {.dir = dir, .require_root_owned = true};
        aidp_error err = {0};
        if (aidp_policy_set_load(&src, &g_policy.set, &err) < 0)
                return;
        /* Changed while it was read: the next request tries again. */
        struct policy_sig after;
        sig_take(dir, &after);
        if (!sig_same(&now, &after)) {
                aidp_policy_set_free(&g_policy.set);
                return;
        }
        snprintf(g_policy.dir, sizeof g_policy.dir, "%s", dir);
        g_policy.sig = now;
        g_policy.loaded = true;
}

bool aidp_run_warm_policy_take(const char *dir, struct aidp_policy_set *ret)
{
        if (!g_policy.loaded || strcmp(g_policy.dir, dir))
                return false;
        struct policy_sig now;
        sig_take(dir, &now);
        if (!sig_same(&now, &g_policy.sig))
                return false;
        *ret = g_policy.set;
        g_policy.set = (struct aidp_policy_set){0};
        g_policy.loaded = false;
        return true;
}
