#pragma once
/* For the injection and shred benchmarks: the tmpfs pages are charged to a
 * run's memory cgroup, as in a real run (supervisor/run/prepare.c): a fresh
 * cgroup with a memory limit, entered for the timed step with
 * aidp_cgroup_charge_begin and left with _end. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "supervisor/sandbox/cgroup/cgroup.h"

struct bench_charge {
        struct aidp_cgroup *cg;
        int back;
};

static inline int bench_charge_begin(struct bench_charge *c, const char *what, uint64_t limit)
{
        char name[64];
        snprintf(name, sizeof name, "aidp-bench-%s-%d", what, (int)getpid());
        struct aidp_cgroup_limits lim = {.memory_bytes = limit, .pids = 4096};
        aidp_error err = {0};
        c->back = -1;
        if (aidp_cgroup_create(NULL, name, &lim, &c->cg, &err) < 0 ||
            aidp_cgroup_charge_begin(c->cg, &c->back, &err) < 0) {
                fprintf(stderr, "bench: cgroup: %s\n", err.msg);
                return -1;
        }
        return 0;
}

/* Leave the cgroup (its pages stay charged to it until freed). */
static inline void bench_charge_leave(struct bench_charge *c)
{
        aidp_cgroup_charge_end(&c->back);
}

static inline void bench_charge_destroy(struct bench_charge *c)
{
        aidp_cgroup_charge_end(&c->back);
        aidp_error err = {0};
        if (c->cg)
                aidp_cgroup_destroy(c->cg, &err);
        c->cg = NULL;
}
