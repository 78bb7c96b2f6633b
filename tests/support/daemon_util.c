/* What the daemon tests check after a run (daemon_util.h). */
#define _GNU_SOURCE
#include "daemon_util.h"

#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lineage_util.h"
#include "runner.h"

char *aidp_test_wait_lineage(const char *logp, const char *run_id, const char *type, int timeout_ms)
{
        char needle[96];
        snprintf(needle, sizeof needle, "\"eventType\":\"%s\"", type);
        for (int t = 0; t < timeout_ms; t += 100) {
                size_t len = 0;
                char *all = aidp_test_slurp(logp, &len);
                char *sv = NULL;
                for (char *line = all ? strtok_r(all, "\n", &sv) : NULL; line;
                     line = strtok_r(NULL, "\n", &sv))
                        if (strstr(line, run_id) && strstr(line, needle)) {
                                char *r = strdup(line);
                                free(all);
                                return r;
                        }
                free(all);
                usleep(100000);
        }
        return NULL;
}

void aidp_test_expect_run_gone(const char *rundir, const char *run_id)
{
        char j[4200];
        snprintf(j, sizeof j, "%s/%s", rundir, run_id);
        struct stat st;
        /* The journal goes right after the end record (docs/run-core.md,
         * step 10): the end record may be read a moment before. */
        for (int t = 0; t < 100 && stat(j, &st) == 0; t++)
                usleep(50000);
        cr_expect_neq(stat(j, &st), 0, "the run's journal %s is left", j);
        cr_expect(!aidp_test_cgroup_exists(run_id), "the run's cgroup is left");
}
