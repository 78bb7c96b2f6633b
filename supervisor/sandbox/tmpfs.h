#pragma once
/* Detached tmpfs mounts: created with fsopen/fsconfig/fsmount and never
 * attached to any host path. The supervisor keeps the mount fd for the whole
 * run (to inject data and, at the end, to overwrite every byte); the sandbox
 * gets a clone of it (open_tree OPEN_TREE_CLONE) that it moves into place. */
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

struct aidp_tmpfs {
        int fd;         /* O_CLOEXEC mount fd; its root directory is the tmpfs root */
        uint64_t size;  /* bytes */
        bool noswap;    /* the kernel accepted "noswap" (6.4+) */
        char label[32]; /* "data", "scratch", "out", "tmp": for messages */
};

/* size_bytes > 0. Mount flags nosuid,nodev,noexec; noswap when the kernel
 * supports it (else .noswap is false and the caller reports it). The root
 * directory gets mode `mode` and is owned by uid:gid. */
int aidp_tmpfs_create(const char *label, uint64_t size_bytes, unsigned mode, unsigned uid,
                      unsigned gid, struct aidp_tmpfs *out, aidp_error *err);
/* In a daemon's idle worker, ahead of its run: a tmpfs of this size and mode
 * owned by root (size > 0), or a context with only this mode and noswap set
 * (size 0), kept for aidp_tmpfs_create, which takes one only when it is
 * exactly what it would make (the same size, mode and owner; a context for
 * the same mode). Nothing when it cannot be made. */
void aidp_tmpfs_ahead(uint64_t size_bytes, unsigned mode);
/* Close the supervisor's fd. The memory is freed once no mount references it. */
void aidp_tmpfs_release(struct aidp_tmpfs *t);
