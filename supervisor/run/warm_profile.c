/* Warm start: library profiles loaded once in the server and handed to a
 * run only while every file the load asked for is unchanged (warm.h). */
#define _GNU_SOURCE
#include "supervisor/run/warm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "supervisor/run/profile_env.h"
#include "supervisor/run/run.h"

/* One file of a load, as a cold load would find it: the name (lstat: the
 * library read refuses a symlink) and its directory (stat: its owner and
 * mode are checked too). A file asked for and not found is recorded too: a
 * file that appears in an earlier library directory would be read instead. */
struct file_sig {
        int lerr, derr;
        struct stat l, d;
};

struct entry {
        char name[256];
        struct aidp_profile profile;
        struct aidp_profile_trace trace;
        struct file_sig sig[AIDP_PROFILE_TRACE_MAX];
        bool taken; /* handed to this worker's run (take): no longer the cache's */
};

/* The server's, inherited by every worker it forks (copy on write). */
static struct entry *g_profiles;
static size_t g_n;

static void sig_of(const char *path, struct file_sig *f)
{
        memset(f, 0, sizeof *f);
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
                *(slash == dir ? slash + 1 : slash) = '\0';
        f->lerr = lstat(path, &f->l) < 0 ? errno : 0;
        f->derr = stat(slash ? dir : ".", &f->d) < 0 ? errno : 0;
        if (f->lerr)
                memset(&f->l, 0, sizeof f->l);
        if (f->derr)
                memset(&f->d, 0, sizeof f->d);
}

static bool entry_fresh(const struct entry *e)
{
        for (size_t i = 0; i < e->trace.n; i++) {
                struct file_sig now;
                sig_of(e->trace.paths[i], &now);
                if (now.lerr != e->sig[i].lerr || now.derr != e->sig[i].derr ||
                    !aidp_run_warm_stat_same(&now.l, &e->sig[i].l) ||
                    !aidp_run_warm_stat_same(&now.d, &e->sig[i].d))
                        return false;
        }
        return true;
}

static void entry_drop(size_t i)
{
        aidp_profile_free(&g_profiles[i].profile);
        g_profiles[i] = g_profiles[--g_n];
}

/* Load name as a user's run would (library files only, devices checked)
 * and keep it, unless it expanded devices (what /dev holds may change
 * between runs) or changed while it was read. */
static bool load_one(const char *name, struct entry *e)
{
        memset(e, 0, sizeof *e);
        if (strlen(name) >= sizeof e->name)
                return false;
        snprintf(e->name, sizeof e->name, "%s", name);
        aidp_error err = {0};
        if (aidp_profile_host_load_library_traced(name, &e->profile, &e->trace, &err) < 0)
                return false;
        bool keep = !e->trace.devices && !e->trace.overflow && e->trace.n > 0;
        for (size_t i = 0; keep && i < e->trace.n; i++)
                sig_of(e->trace.paths[i], &e->sig[i]);
        /* Signatures taken after the read: a file changed in between may have
         * been read in its old form. Checked once more: the same now. */
        if (keep && !entry_fresh(e))
                keep = false;
        if (!keep)
                aidp_profile_free(&e->profile);
        return keep;
}

const struct aidp_profile *aidp_run_warm_profile(const char *name)
{
        for (size_t i = 0; i < g_n; i++)
                if (!g_profiles[i].taken && !strcmp(g_profiles[i].name, name))
                        return &g_profiles[i].profile;
        struct entry *n = realloc(g_profiles, (g_n + 1) * sizeof *n);
        if (!n)
                return NULL;
        g_profiles = n;
        if (!load_one(name, &g_profiles[g_n]))
                return NULL;
        return &g_profiles[g_n++].profile;
}

void aidp_run_warm_profiles_refresh(void)
{
        for (size_t i = 0; i < g_n;) {
                if (g_profiles[i].taken || entry_fresh(&g_profiles[i])) {
                        i++;
                        continue;
                }
                char name[256];
                snprintf(name, sizeof name, "%s", g_profiles[i].name);
                entry_drop(i);
                aidp_run_warm_profile(name);
        }
}

bool aidp_run_warm_profile_take(const char *name, struct aidp_profile *ret)
{
        for (size_t i = 0; i < g_n; i++) {
                if (g_profiles[i].taken || strcmp(g_profiles[i].name, name))
                        continue;
                if (!entry_fresh(&g_profiles[i])) {
                        entry_drop(i);
                        return false;
                }
                /* Taken over, not copied: this worker serves one run, and
                 * the server's copy is its own (fork). The entry stays in
                 * its place, marked: moving the last one into it copied
                 * about 42 KiB (its trace and signatures) on the request's
                 * path, 0.16 ms of CPU per run here. */
                *ret = g_profiles[i].profile;
                g_profiles[i].taken = true;
                return true;
        }
        return false;
}

const struct aidp_profile *aidp_run_warm_profile_peek(const char *name)
{
        for (size_t i = 0; i < g_n; i++)
                if (!g_profiles[i].taken && !strcmp(g_profiles[i].name, name))
                        return &g_profiles[i].profile;
        return NULL;
}
