/* Warm start: seccomp programs compiled once, by profile digest (warm.h). */
#define _GNU_SOURCE
#include "supervisor/run/warm.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.h"
#include "profiles/profile.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/run/profile_env.h"
#include "supervisor/run/run_policy.h"
#include "supervisor/sandbox/cgroup/cgroup.h"

struct bpf_entry {
        unsigned char digest[32];
        struct aidp_bpf bpf;
};

/* The server's, inherited by every worker it forks (copy on write). */
static struct bpf_entry *g_cache;
static size_t g_n;

static bool cached(const unsigned char digest[32])
{
        for (size_t i = 0; i < g_n; i++)
                if (!memcmp(g_cache[i].digest, digest, 32))
                        return true;
        return false;
}

static void warm_one(const char *name)
{
        struct aidp_profile p;
        aidp_error err = {0};
        /* As a user's run loads it: the digest is the one that run gets. */
        if (aidp_profile_host_load_library(name, true, &p, &err) < 0)
                return;
        static const unsigned char zero[32];
        struct aidp_bpf b = {0};
        struct bpf_entry *n = NULL;
        if (memcmp(p.digest, zero, 32) && !cached(p.digest) &&
            aidp_seccomp_compile(&p.seccomp, &b, &err) == 0 &&
            (n = realloc(g_cache, (g_n + 1) * sizeof *n))) {
                g_cache = n;
                memcpy(g_cache[g_n].digest, p.digest, 32);
                g_cache[g_n++].bpf = b;
                b = (struct aidp_bpf){0};
        }
        aidp_bpf_free(&b);
        aidp_profile_free(&p);
}

size_t aidp_run_warm_seccomp(void)
{
        struct aidp_profile_host h;
        aidp_error err = {0};
        if (aidp_profile_host_init(&h, true, &err) < 0)
                return g_n;
        for (size_t i = 0; i < AIDP_PROFILE_PATH_MAX_DIRS && h.dirs[i]; i++) {
                DIR *d = opendir(h.dirs[i]);
                for (struct dirent *e; d && (e = readdir(d));) {
                        size_t l = strlen(e->d_name);
                        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".yaml"))
                                continue;
                        char name[256];
                        if (l - 5 >= sizeof name)
                                continue;
                        memcpy(name, e->d_name, l - 5);
                        name[l - 5] = '\0';
                        warm_one(name);
                }
                if (d)
                        closedir(d);
        }
        aidp_profile_host_free(&h);
        return g_n;
}

bool aidp_run_warm_bpf(const unsigned char digest[32], struct aidp_bpf *out)
{
        for (size_t i = 0; i < g_n; i++) {
                if (memcmp(g_cache[i].digest, digest, 32))
                        continue;
                size_t sz = g_cache[i].bpf.len * sizeof *g_cache[i].bpf.insns;
                out->insns = malloc(sz ? sz : 1);
                if (!out->insns)
                        return false;
                memcpy(out->insns, g_cache[i].bpf.insns, sz);
                out->len = g_cache[i].bpf.len;
                return true;
        }
        return false;
}

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

static bool stat_same(const struct stat *a, const struct stat *b)
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
                    !stat_same(&a->f[i].l, &b->f[i].l) || !stat_same(&a->f[i].s, &b->f[i].s))
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

/* ---- the rest of the host ---- */

const char *aidp_run_warm_host(void)
{
        /* The name service modules are loaded at the first lookup. */
        struct passwd pw, *pwp = NULL;
        char buf[4096];
        if (getpwuid_r(0, &pw, buf, sizeof buf, &pwp) == 0 && pwp) {
                gid_t g[64];
                int n = 64;
                getgrouplist(pwp->pw_name, pwp->pw_gid, g, &n);
        }
        /* OpenSSL's provider tables (HMAC, SHA-256), which each run's
         * warm-up thread would otherwise build. */
        aidp_crypto_warm();
        aidp_run_warm_refresh();
        static char msg[sizeof(aidp_error){0}.msg + 64];
        aidp_error err = {0};
        if (aidp_cgroup_warm() < 0)
                return "libcgroup did not start (each run starts it)";
        if (aidp_lineage_key_preload(NULL, &err) < 0) {
                snprintf(msg, sizeof msg, "the lineage key: %s (each run loads it)", err.msg);
                return msg;
        }
        return NULL;
}
