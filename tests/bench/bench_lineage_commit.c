/* scripts/bench-lineage-commit: N processes append R records each to one lineage
 * log at once, with group commit (the default) or serial commit (each append holds
 * the log from its write to its anchor, as before group commit). Prints one line:
 *   records=... seconds=... records_per_s=... log_fdatasyncs=...
 *   bench_lineage_commit DIR APPENDERS RECORDS group|serial */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/lineage/lineage.h"

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One appender: R records like a run's START (host, input, profile). */
static int appender(const char *logp, const char *keyp, int records, bool serial, int out)
{
        struct aidp_lineage_options o = {.path = logp,
                                         .key_path = keyp,
                                         .syslog_socket = "/nonexistent/aidp-bench",
                                         .need_key = true,
                                         .serial_commit = serial};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        if (aidp_lineage_open(&lg, &o, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                return 2;
        }
        for (int i = 0; i < records; i++) {
                char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
                aidp_lineage_run_id_new(id);
                json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START, id, NULL, "train");
                aidp_lineage_set_host(ev, "node1", "eu-west-1");
                aidp_lineage_set_profile(ev, "gpu-train", "sha256:0123456789abcdef");
                aidp_lineage_add_input(ev, "aidp", "imagenet");
                int r = aidp_lineage_append(lg, ev, &e);
                json_object_put(ev);
                if (r < 0) {
                        fprintf(stderr, "%s\n", e.msg);
                        return 3;
                }
        }
        uint64_t n = aidp_lineage_log_syncs();
        aidp_lineage_free(lg);
        return write(out, &n, sizeof n) == sizeof n ? 0 : 4;
}

int main(int argc, char **argv)
{
        if (argc != 5) {
                fprintf(stderr, "usage: %s DIR APPENDERS RECORDS group|serial\n", argv[0]);
                return 2;
        }
        int n = atoi(argv[2]), records = atoi(argv[3]);
        bool serial = !strcmp(argv[4], "serial");
        char logp[4096], keyp[4096];
        snprintf(logp, sizeof logp, "%s/lineage-%s.jsonl", argv[1], argv[4]);
        snprintf(keyp, sizeof keyp, "%s/lineage.key", argv[1]);
        struct aidp_lineage_options o = {.path = logp, .key_path = keyp, .create_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        if (aidp_lineage_open(&lg, &o, &e) < 0) { /* the key, once */
                fprintf(stderr, "%s\n", e.msg);
                return 1;
        }
        aidp_lineage_free(lg);
        int res[2], go[2];
        if (pipe(res) < 0 || pipe(go) < 0)
                return 1;
        for (int i = 0; i < n; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        return 1;
                if (pid == 0) {
                        close(go[1]);
                        char c;
                        if (read(go[0], &c, 1) < 0)
                                _exit(5);
                        _exit(appender(logp, keyp, records, serial, res[1]));
                }
        }
        close(res[1]);
        close(go[0]);
        double t0 = now();
        close(go[1]); /* all start at once */
        int failed = 0, st;
        while (wait(&st) > 0)
                failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        double dt = now() - t0;
        uint64_t syncs = 0, s;
        while (read(res[0], &s, sizeof s) == sizeof s)
                syncs += s;
        if (failed) {
                fprintf(stderr, "%d appenders failed\n", failed);
                return 1;
        }
        printf("records=%d seconds=%.4f records_per_s=%.1f log_fdatasyncs=%llu\n", n * records, dt,
               (double)(n * records) / dt, (unsigned long long)syncs);
        return 0;
}
