/* For crash::pinned_from_a_mount_namespace_above_its_cpu: starts a program in a
 * mount namespace whose id is above every id the CPU it runs on hands out next,
 * as a supervisor started in a Slurm job container can find itself on Linux
 * 6.18 (namespace ids come from per-CPU batches of 4096).
 *   nsorder_exec CPU_NEW CPU_RUN PROGRAM [ARG...]
 * On CPU_NEW it makes throwaway UTS namespaces until that CPU took a fresh
 * batch (the newest), then its own mount namespace (private propagation, so
 * nothing reaches the host's table); then it binds itself to CPU_RUN, checks
 * that the next id there is below its namespace's, and execs PROGRAM there.
 * Exit 3: the order could not be made (CPU_RUN took a newer batch meanwhile). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#define NS_GET_ID _IOR(0xb7, 0xd, uint64_t)

static uint64_t id_of(const char *p)
{
        uint64_t id = 0;
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, NS_GET_ID, &id) < 0) {
                perror(p);
                exit(2);
        }
        close(fd);
        return id;
}

static void bind_cpu(int cpu)
{
        cpu_set_t s;
        CPU_ZERO(&s);
        CPU_SET(cpu, &s);
        if (sched_setaffinity(0, sizeof s, &s) < 0) {
                perror("sched_setaffinity");
                exit(2);
        }
}

int main(int argc, char **argv)
{
        if (argc < 4) {
                fprintf(stderr, "usage: nsorder_exec CPU_NEW CPU_RUN PROGRAM [ARG...]\n");
                return 2;
        }
        bind_cpu(atoi(argv[1]));
        /* A whole batch: whatever was left of the CPU's, then a fresh one. */
        for (int i = 0; i < 4097; i++)
                if (unshare(CLONE_NEWUTS) < 0) {
                        perror("unshare(CLONE_NEWUTS)");
                        return 2;
                }
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                perror("mount namespace");
                return 2;
        }
        uint64_t mnt = id_of("/proc/self/ns/mnt");
        bind_cpu(atoi(argv[2]));
        if (unshare(CLONE_NEWUTS) < 0)
                return 2;
        uint64_t next = id_of("/proc/self/ns/uts");
        fprintf(stderr, "nsorder_exec: mount namespace %llu, next id on cpu %s: %llu\n",
                (unsigned long long)mnt, argv[2], (unsigned long long)next);
        if (next > mnt)
                return 3;
        execv(argv[3], argv + 3);
        perror(argv[3]);
        return 127;
}
