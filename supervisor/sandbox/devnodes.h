#pragma once
/* The minimal /dev of every run, in one table: the nodes pid 1 makes
 * (sandbox.c) and the device cgroup's allow list (the run's cgroup limits)
 * both come from it, so a node cannot be made without being allowed, nor
 * allowed without being listed here. Numbers from the kernel's
 * Documentation/admin-guide/devices.txt. */
#include <stddef.h>

/* X(name under /dev, major, minor): character devices pid 1 makes with mknod. */
#define AIDP_DEVNODES_MADE(X)                                                                      \
        X("null", 1, 3)                                                                            \
        X("zero", 1, 5)                                                                            \
        X("full", 1, 7)                                                                            \
        X("random", 1, 8)                                                                          \
        X("urandom", 1, 9)                                                                         \
        X("tty", 5, 0)
/* X(what, major, minor): nodes the run's own devpts instance provides
 * (/dev/pts/ptmx, linked as /dev/ptmx, and the terminals it allocates). */
#define AIDP_DEVNODES_DEVPTS(X)                                                                    \
        X("pts/ptmx", 5, 2)                                                                        \
        X("pts/*", 136, *)

struct aidp_devnode {
        const char *name; /* under /dev */
        unsigned major, minor;
};

#define AIDP_DEVNODE_COUNT_(n, ma, mi) +1
enum {
        /* the nodes pid 1 makes */
        AIDP_DEVNODES_N = 0 AIDP_DEVNODES_MADE(AIDP_DEVNODE_COUNT_),
        /* the allow lines, without the terminating NULL */
        AIDP_DEVNODES_ALLOW_N =
                0 AIDP_DEVNODES_MADE(AIDP_DEVNODE_COUNT_) AIDP_DEVNODES_DEVPTS(AIDP_DEVNODE_COUNT_),
};

extern const struct aidp_devnode aidp_devnodes[AIDP_DEVNODES_N];
/* "c MAJOR:MINOR rwm" for every node of the table, NULL-terminated. */
extern const char *const aidp_devnodes_allow[AIDP_DEVNODES_ALLOW_N + 1];
