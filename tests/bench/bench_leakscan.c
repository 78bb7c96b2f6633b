/* scripts/bench-leakscan's worker: the leak scan over one file.
 *   bench_leakscan VALUES_FILE OUTPUT_FILE
 * VALUES_FILE: one hidden value a line. Prints one line of JSON: values,
 * bytes, hits, seconds (the scan alone, the file read through the page
 * cache in 1 MiB chunks as collect reads /out) and the seal time. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "views/leakscan.h"

/* CPU seconds of this process: on a loaded machine the wall time measures
 * the other tenants too. */
static double cpu(void)
{
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
        if (argc != 3) {
                fprintf(stderr, "usage: bench_leakscan VALUES_FILE OUTPUT_FILE\n");
                return 2;
        }
        struct aidp_leakset *s = NULL;
        aidp_error err = {0};
        if (aidp_leakset_new(0, &s, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
        }
        FILE *vf = fopen(argv[1], "re");
        if (!vf) {
                perror(argv[1]);
                return 1;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, vf)) > 0) {
                if (line[n - 1] == '\n')
                        line[--n] = '\0';
                aidp_leakset_add(s, "email", "pii.direct", line, (size_t)n);
        }
        free(line);
        fclose(vf);
        double t0 = now();
        if (aidp_leakset_seal(s, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
        }
        double t1 = now();
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                perror(argv[2]);
                return 1;
        }
        struct aidp_leak_report rep = {0};
        struct aidp_leakscan *sc = NULL;
        if (aidp_leakscan_begin(s, argv[2], &rep, &sc, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
        }
        static char buf[1 << 20];
        double t2 = now(), c2 = cpu();
        while ((n = read(fd, buf, sizeof buf)) > 0)
                aidp_leakscan_feed(sc, buf, (size_t)n);
        aidp_leakscan_end(sc);
        double t3 = now(), c3 = cpu();
        close(fd);
        printf("{\"values\": %zu, \"bytes\": %llu, \"hits\": %llu, \"seconds\": %.3f, "
               "\"cpu_seconds\": %.3f, \"seal_seconds\": %.3f}\n",
               aidp_leakset_count(s), (unsigned long long)rep.bytes, (unsigned long long)rep.hits,
               t3 - t2, c3 - c2, t1 - t0);
        aidp_leakset_free(s);
        return 0;
}
