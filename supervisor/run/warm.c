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
        aidp_error err = {0};
        /* As a user's run loads it: the digest is the one that run gets. The
         * profile itself is kept too (warm_profile.c). */
        struct aidp_profile own = {0};
        const struct aidp_profile *p = aidp_run_warm_profile(name);
        bool owned = false;
        if (!p) {
                if (aidp_profile_host_load_library(name, true, &own, &err) < 0)
                        return;
                p = &own;
                owned = true;
        }
        static const unsigned char zero[32];
        struct aidp_bpf b = {0};
        struct bpf_entry *n = NULL;
        if (memcmp(p->digest, zero, 32) && !cached(p->digest) &&
            aidp_seccomp_compile(&p->seccomp, &b, &err) == 0 &&
            (n = realloc(g_cache, (g_n + 1) * sizeof *n))) {
                g_cache = n;
                memcpy(g_cache[g_n].digest, p->digest, 32);
                g_cache[g_n++].bpf = b;
                b = (struct aidp_bpf){0};
        }
        aidp_bpf_free(&b);
        if (owned)
                aidp_profile_free(&own);
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
