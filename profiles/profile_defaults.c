#include "profiles/profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define GiB (1024ULL * 1024 * 1024)
#define MiB (1024ULL * 1024)

int aidp_profile_init_defaults(struct aidp_profile *p)
{
        memset(p, 0, sizeof *p);
        p->limits.memory_bytes = 4 * GiB;
        p->limits.cpu_millis = 2000;
        p->limits.pids = 1024;
        p->limits.kill_after_seconds = 5;
        p->limits.tmp_bytes = 256 * MiB;
        p->limits.scratch_bytes = 1 * GiB;
        p->limits.out_bytes = 1 * GiB;
        /* No core dumps: a core of a training job is a plaintext copy of its data. */
        p->limits.rlimits[RLIMIT_CORE] = (struct aidp_rlimit){.set = true, .soft = 0, .hard = 0};
        p->user.mode = AIDP_USER_CALLER;
        p->user.default_uid = 65534;
        p->user.default_gid = 65534;
        p->network.mode = AIDP_NET_NONE;
        p->bind_cwd = true;
        p->name = strdup("default");
        p->paths.data = strdup("/data");
        p->paths.scratch = strdup("/scratch");
        p->paths.out = strdup("/out");
        if (!p->name || !p->paths.data || !p->paths.scratch || !p->paths.out ||
            aidp_sc_policy_baseline(&p->seccomp) < 0) {
                aidp_profile_free(p);
                return -ENOMEM;
        }
        return 0;
}

void aidp_profile_free(struct aidp_profile *p)
{
        if (!p)
                return;
        free(p->name);
        free(p->source);
        for (size_t i = 0; i < p->n_binds; i++) {
                free(p->binds[i].source);
                free(p->binds[i].target);
        }
        free(p->binds);
        for (size_t i = 0; i < p->n_masked; i++)
                free(p->masked[i]);
        free(p->masked);
        for (size_t i = 0; i < p->n_devices; i++)
                free(p->devices[i].path);
        free(p->devices);
        for (size_t i = 0; i < p->n_capabilities; i++)
                free(p->capabilities[i]);
        free(p->capabilities);
        aidp_sc_policy_free(&p->seccomp);
        for (size_t i = 0; i < p->network.n_rules; i++) {
                free(p->network.rules[i].cidr);
                free(p->network.rules[i].fqdn);
                free(p->network.rules[i].region);
        }
        free(p->network.rules);
        free(p->paths.data);
        free(p->paths.scratch);
        free(p->paths.out);
        free(p->description);
        for (size_t i = 0; i < p->n_layers; i++)
                free(p->layers[i]);
        free(p->layers);
        free(p->seccomp_import);
        memset(p, 0, sizeof *p);
}
