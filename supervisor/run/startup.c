#define _GNU_SOURCE
/* Steps 2 (start-rec) and 5 (start-sync) of docs/run-core.md: the journal, the
 * cgroup and START, and every piece of work that overlaps start-up (the
 * warm-up thread, START's fsync thread, the cgroup helper process). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "common/cleanup.h"
#include "common/crypto.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/run/run_internal.h"

/* Device cgroup lines for the profile's devices ("c MAJ:MIN rwm"), found on
 * this host now; an optional device that is absent is skipped. */
static int device_rules(struct run *r, const char **out, size_t max, aidp_error *err)
{
        size_t n = 0;
        for (size_t i = 0; i < r->profile.n_devices; i++) {
                const struct aidp_device *d = &r->profile.devices[i];
                struct stat st;
                if (stat(d->path, &st) < 0) {
                        if (d->optional && errno == ENOENT)
                                continue;
                        return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "device %s", d->path);
                }
                if (!S_ISCHR(st.st_mode))
                        return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                              "device %s: not a character device", d->path);
                if (n + 1 >= max || n >= ARRAY_SIZE(r->dev_rules))
                        return aidp_error_set(err, AIDP_EXIT_CONFIG, E2BIG, "more than %zu devices",
                                              ARRAY_SIZE(r->dev_rules));
                if (asprintf(&r->dev_rules[n], "c %u:%u rwm", major(st.st_rdev),
                             minor(st.st_rdev)) < 0) {
                        r->dev_rules[n] = NULL;
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                }
                out[n] = r->dev_rules[n];
                n++;
        }
        out[n] = NULL;
        return 0;
}

/* With every signal blocked: a SIGTERM must reach the supervisor's signalfd,
 * not end the process on a helper thread. */
static bool thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        bool ok = pthread_create(t, NULL, fn, arg) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return ok;
}

/* Work taken off the critical path (docs/run-core.md, "Start-up time"):
 *   warm    a thread, from the start while the run is resolved: OpenSSL's
 *           algorithm tables for START's HMAC. Joined before pid 1 is cloned.
 *   cgroup  right after resolve: the cgroup2 directory here (pid 1 is cloned
 *           into it), then the limits (v2, on the spot) or the run's v1
 *           hierarchies through libcgroup (about 1.5 ms with its start-up) in a
 *           helper process while START is written, the run prepared and pid 1
 *           builds its mounts (aidp_cgroup_finish_start); collected before the go. */
static void *warm_thread(void *arg)
{
        (void)arg;
        prctl(PR_SET_NAME, "aidp-warm"); /* ps, top and profilers tell the parts apart */
        aidp_crypto_warm();
        return NULL;
}

void aidp_run_warm_begin(struct run *r)
{
        r->warm_thread = thread_start(&r->warm_tid, warm_thread, NULL);
}

void aidp_run_warm_end(struct run *r)
{
        if (r->warm_thread) {
                pthread_join(r->warm_tid, NULL);
                r->warm_thread = false;
        }
}

/* The run journal, before anything of the run exists: with where its lineage
 * goes, so that gc records an ABORT in that log if this supervisor dies before
 * the end record, and a cgroups.log that has each cgroup before it is made. */
int aidp_run_journal_begin(struct run *r, aidp_error *err)
{
        char job[128];
        aidp_run_lineage_job_name(r->o, job, sizeof job);
        int rc = aidp_journal_create(r->o->run_dir, r->res->run_id,
                                     aidp_lineage_path_for(r->o->lineage_path), job, &r->journal,
                                     err);
        if (rc == 0)
                r->journal_open = true;
        return rc;
}

int aidp_run_cgroup_begin(struct run *r, aidp_error *err)
{
        const struct aidp_limits *l = &r->profile.limits;
        static const char *const minimal_dev[] = {
                "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm",
        };
        _Static_assert(ARRAY_SIZE(minimal_dev) + ARRAY_SIZE(r->dev_rules) + 1 ==
                               ARRAY_SIZE(r->devices_allow),
                       "devices_allow size");
        /* The minimal /dev plus exactly the profile's devices; all else denied. */
        memcpy(r->devices_allow, minimal_dev, sizeof minimal_dev);
        int rc = device_rules(r, r->devices_allow + ARRAY_SIZE(minimal_dev),
                              ARRAY_SIZE(r->dev_rules) + 1, err);
        if (rc < 0)
                return rc;
        r->cg_limits = (struct aidp_cgroup_limits){
                .memory_bytes = l->memory_bytes,
                .cpu_millis = l->cpu_millis,
                .pids = l->pids,
                .devices_allow = r->devices_allow,
        };
        rc = aidp_cgroup_begin(r->o->cgroup_parent, r->res->run_id,
                               aidp_journal_cgroup_log(&r->journal), &r->cg, err);
        if (rc < 0)
                return rc;
        snprintf(r->res->cgroup_version, sizeof r->res->cgroup_version, "%s",
                 aidp_cgroup_version_name(aidp_cgroup_version_of(r->cg)));
        return aidp_cgroup_finish_start(r->cg, &r->cg_limits, err);
}

/* The cgroup's outcome, once its helper is done. Idempotent. */
int aidp_run_cgroup_end(struct run *r, aidp_error *err)
{
        return r->cg ? aidp_cgroup_finish_wait(r->cg, err) : 0;
}

/* Add the cgroup directories made since the last call to the journal. */
void aidp_run_journal_cgroups(struct run *r)
{
        const char *paths[8];
        size_t n = aidp_cgroup_paths(r->cg, paths, ARRAY_SIZE(paths));
        for (size_t i = r->n_cg_journaled; i < n; i++)
                aidp_journal_add(&r->journal, "cgroup", paths[i]);
        r->n_cg_journaled = n;
}

