#define _GNU_SOURCE
/* Steps 3 (prepare) and 6 (inject) of docs/run-core.md: the run's detached
 * tmpfs mounts, and the sealed inputs decrypted into /data once pid 1 holds them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/run/run_internal.h"

#define MiB (1024ULL * 1024)

static int add_tmpfs(struct run *r, const char *label, uint64_t size, unsigned mode, uid_t uid,
                     gid_t gid, aidp_error *err)
{
        /* size=0 would make the tmpfs unlimited: refused, never defaulted */
        if (!size)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "tmpfs %s: no size", label);
        struct aidp_tmpfs *t = &r->tmpfs[r->n_tmpfs];
        int rc = aidp_tmpfs_create(label, size, mode, uid, gid, t, err);
        if (rc < 0)
                return rc;
        r->n_tmpfs++;
        if (!t->noswap)
                r->res->noswap = false;
        return 0;
}

int aidp_run_prepare(struct run *r, aidp_error *err)
{
        const struct aidp_limits *l = &r->profile.limits;
        /* The cgroup2 directory made so far (cgroup_begin); its v1 hierarchies
         * follow once the helper is done (cgroups.log has them all already). */
        aidp_run_journal_cgroups(r);

        r->res->noswap = true;
        /* The sizes are the profile's (its defaults: profiles/profile_defaults.c). */
        int rc = add_tmpfs(r, "tmp", l->tmp_bytes, 01777, 0, 0, err);
        if (rc == 0)
                rc = add_tmpfs(r, "scratch", l->scratch_bytes, 0755, r->uid, r->gid, err);
        if (rc == 0)
                rc = add_tmpfs(r, "out", l->out_bytes, 0755, r->uid, r->gid, err);
        if (rc < 0)
                return rc;
        char hint[1024];
        if (!r->o->quiet && aidp_run_hidden_scan(r, false, hint, sizeof hint))
                fprintf(stderr, "aidp-supervisor: warning: %s\n", hint);
        if (!r->o->output_dir && !r->o->quiet)
                fprintf(stderr,
                        "aidp-supervisor: warning: no --output-dir: whatever the job writes to "
                        "/out is shredded when it ends; keep it with `aidp-run --out DIR`\n");
        if (r->inject.n) {
                /* /data: sized from the manifests unless the profile says,
                 * filled and authenticated completely before the job exists. */
                uint64_t need = 0;
                rc = aidp_inject_required_bytes(&r->inject, &need, err);
                if (rc < 0)
                        return rc;
                /* sized from the inputs: their plaintext, plus 1/64 and 1 MiB
                 * for the file system's own blocks and directories */
                uint64_t size = l->data_bytes ? l->data_bytes : need + need / 64 + MiB;
                rc = add_tmpfs(r, "data", size, 0755, 0, 0, err);
                if (rc < 0)
                        return rc;
        }
        return aidp_journal_sync(&r->journal, err);
}

/* Decrypt every input into /data, authenticating every segment, after the
 * sandbox's pid 1 exists: it holds the tmpfs too, so if this supervisor dies
 * half-way, gc can still reach the plaintext and overwrite it. */
int aidp_run_inject(struct run *r, aidp_error *err)
{
        for (size_t i = 0; i < r->n_tmpfs; i++) {
                if (strcmp(r->tmpfs[i].label, "data"))
                        continue;
                int rc = aidp_inject_decrypt(&r->inject, r->tmpfs[i].fd, r->uid, r->gid,
                                             !r->o->quiet, r->res->inputs, err);
                if (rc < 0)
                        return rc;
        }
        aidp_run_fault_point("inject");
        return 0;
}
