/* Helper for scripts/bench-start: the time of two things every aidp run does and
 * bwrap never does, each in a fresh process as in a run (libraries not yet
 * initialised), so that the start-up gap can be split into what aidp adds and
 * what it shares with the others.
 *   bench_start_parts cgroup NAME
 *     -> ms to create the run's cgroup (the run's default limits and device
 *        rules, libcgroup on v1) and to remove it again
 *   bench_start_parts lineage LOG KEY
 *     -> ms for a START and an end record, each durable (fdatasync and anchor) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crypto.h"
#include "common/error.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "supervisor/lineage/lineage.h"

static double now_ms(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cgroup_part(const char *name)
{
        /* The run's defaults (profiles/profile_defaults.c): 4 GiB, 2 cpus, 1024 pids
         * and the minimal /dev. */
        static const char *const devices[] = {"c 1:3 rwm", "c 1:5 rwm",   "c 1:7 rwm",
                                              "c 1:8 rwm", "c 1:9 rwm",   "c 5:0 rwm",
                                              "c 5:2 rwm", "c 136:* rwm", NULL};
        struct aidp_cgroup_limits lim = {.memory_bytes = 4ULL << 30,
                                         .cpu_millis = 2000,
                                         .pids = 1024,
                                         .devices_allow = devices};
        aidp_error err = {0};
        struct aidp_cgroup *cg = NULL;
        double t0 = now_ms();
        if (aidp_cgroup_create(NULL, name, &lim, &cg, &err) < 0) {
                fprintf(stderr, "bench_start_parts: %s\n", err.msg);
                return 1;
        }
        double t1 = now_ms();
        if (aidp_cgroup_destroy(cg, &err) < 0) {
                fprintf(stderr, "bench_start_parts: %s\n", err.msg);
                return 1;
        }
        printf("%.3f %.3f\n", t1 - t0, now_ms() - t1);
        return 0;
}

static int lineage_part(const char *log, const char *key)
{
        aidp_crypto_init();
        double t0 = now_ms();
        struct aidp_lineage_options lo = {.path = log, .key_path = key, .create_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error err = {0};
        if (aidp_lineage_open(&lg, &lo, &err) < 0) {
                fprintf(stderr, "bench_start_parts: %s\n", err.msg);
                return 1;
        }
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        enum aidp_lineage_event_type types[] = {AIDP_LINEAGE_START, AIDP_LINEAGE_COMPLETE};
        for (size_t i = 0; i < 2; i++) {
                json_object *ev = aidp_lineage_event_new(types[i], id, NULL, "true");
                int r = ev ? aidp_lineage_append(lg, ev, &err) : -1;
                json_object_put(ev);
                if (r < 0) {
                        fprintf(stderr, "bench_start_parts: %s\n", err.msg);
                        aidp_lineage_free(lg);
                        return 1;
                }
        }
        aidp_lineage_free(lg);
        printf("%.3f\n", now_ms() - t0);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 3 && !strcmp(argv[1], "cgroup"))
                return cgroup_part(argv[2]);
        if (argc == 4 && !strcmp(argv[1], "lineage"))
                return lineage_part(argv[2], argv[3]);
        fprintf(stderr, "usage: bench_start_parts cgroup NAME | lineage LOG KEY\n");
        return 2;
}
