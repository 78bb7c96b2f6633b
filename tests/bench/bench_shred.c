/* Helper for scripts/bench-shred: fill a directory with FILES files of MIB
 * MiB each (a non-zero pattern), or time aidp's shred of it.
 *   bench_shred fill DIR FILES MIB
 *   bench_shred shred DIR THREADS
 *     -> prints "scrub_seconds bytes verified total_seconds": overwrite and
 *        verify, then the same plus removing the files (freeing the pages) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_charge.h"
#include "supervisor/sandbox/shred.h"

int main(int argc, char **argv)
{
        if (argc == 5 && !strcmp(argv[1], "fill")) {
                int files = atoi(argv[3]);
                size_t mib = (size_t)atoi(argv[4]);
                static unsigned char buf[1 << 20];
                for (size_t i = 0; i < sizeof buf; i++)
                        buf[i] = (unsigned char)(i * 131 + 7) | 1;
                /* Written from inside a run's memory cgroup, as the job
                 * writes its tmpfs: the pages are charged to it while
                 * dd and shred overwrite them. It is left and removed once
                 * filled (the pages stay charged to it until freed). */
                struct bench_charge ch;
                if (bench_charge_begin(&ch, "shred",
                                       (uint64_t)files * mib * 2 * 1048576 + (256ULL << 20)) < 0)
                        return 1;
                for (int f = 0; f < files; f++) {
                        char p[4096];
                        snprintf(p, sizeof p, "%s/f%03d", argv[2], f);
                        int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
                        if (fd < 0) {
                                perror(p);
                                return 1;
                        }
                        for (size_t m = 0; m < mib; m++)
                                if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
                                        perror(p);
                                        return 1;
                                }
                        close(fd);
                }
                bench_charge_destroy(&ch);
                return 0;
        }
        if (argc == 4 && !strcmp(argv[1], "shred")) {
                int dfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0) {
                        perror(argv[2]);
                        return 1;
                }
                struct aidp_shred_report rep;
                if (aidp_shred_tree(dfd, (unsigned)atoi(argv[3]), &rep) < 0)
                        return 1;
                printf("%.6f %llu %s %.6f\n", rep.scrub_seconds, (unsigned long long)rep.bytes,
                       rep.verified ? "verified" : "NOT-VERIFIED", rep.seconds);
                return rep.verified ? 0 : 1;
        }
        fprintf(stderr, "usage: bench_shred fill DIR FILES MIB | shred DIR THREADS\n");
        return 2;
}
