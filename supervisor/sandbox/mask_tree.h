#pragma once
/* mask.c's state, and the mount table as pid 1 sees it (mask_tree.c): the
 * mount of a directory, and the mounts right below each mount that gets an
 * overlay. Private to mask*.c and hostsock.c (whose covers of host sockets
 * go into the same overlays). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIDP_MASK_MAX_PATHS 1024
#define AIDP_MASK_MAX_FDS   64
/* Mounts that get an overlay: those with a mask, and those with a host
 * socket in the job's view (hostsock.c), of which a host user with FUSE
 * mounts may make many. Past this, a socket is covered by a bind instead
 * (hostsock.h's limit). Two fds each while pid 1 masks. */
#define AIDP_MASK_MAX_GROUPS 1024
/* As many mounts as a mount namespace may hold (fs.mount-max's default):
 * a host with many mounts below /var or /etc (a user's FUSE mounts, a
 * node's pod volumes) must not stop runs. Untouched, the arrays cost no
 * memory (bss). */
#define AIDP_MASK_MAX_CHILDREN 100000
#define AIDP_MASK_POOL_SIZE    (16 << 20)

/* One mount that holds masked names, and the overlay it gets. */
struct aidp_mask_group {
        uint64_t mnt_id;
        bool seen;    /* found in mountinfo */
        size_t point; /* its mount point in pid 1's view, in pool */
        int root_fd;  /* O_PATH: the mount's root */
        int layer_fd; /* O_PATH: the group's directory in the layer */
};

/* A mount directly below a group's mount: moved onto the overlay. */
struct aidp_mask_child {
        size_t group, point;
};

/* pid 1 may not allocate (mask.h): one static state. */
struct aidp_mask_state {
        struct aidp_mask_group g[AIDP_MASK_MAX_GROUPS];
        size_t n;
        struct aidp_mask_child c[AIDP_MASK_MAX_CHILDREN];
        size_t nc;
        char pool[AIDP_MASK_POOL_SIZE];
        size_t used;
        char buf[65536] __attribute__((aligned(8)));
        int layer_fd; /* O_PATH: the layer's directory, with the whiteout "wh" */
        size_t last;  /* the group aidp_mask_find_group found last */
        bool unique;  /* mount ids are 64-bit unique ones: listmount works */
        unsigned char kind[AIDP_MASK_MAX_PATHS]; /* enum mask_kind */
        int fd[AIDP_MASK_MAX_FDS];               /* the parent of path i, for the first MAX_FDS */
};
extern struct aidp_mask_state aidp_mask_state;

/* statx: the 64-bit unique mount id (Linux 6.8). */
#define AIDP_MASK_STATX_MNT_ID_UNIQUE 0x00004000U

/* The id of the mount fd lives in: the 64-bit unique one where the kernel
 * has it (6.8, with listmount), else the one mountinfo shows. */
int aidp_mask_mount_id(int fd, uint64_t *ret);
struct aidp_mask_group *aidp_mask_find_group(uint64_t mnt_id);
/* Each group's mount point, and the mounts right below each group's mount
 * (listmount and statmount, else pid 1's mountinfo). 0 or -errno. */
int aidp_mask_read_tree(void);
/* pid 1 of a zygote, first thing after the clone (zygote_init.c): the
 * pages of this state that pid 1 writes on every run (the first groups and
 * children, the pool's start, the buffer and the per-path arrays) made its
 * own in one madvise each, where each would take a page fault: a fresh or
 * copy-on-write page fault costs an exit on this VM. Only an optimisation:
 * a kernel without MADV_POPULATE_WRITE (before 5.14) faults them as before. */
void aidp_mask_prefault(void);
/* A string of the pool. */
const char *aidp_mask_pool(size_t off);

/* For hostsock.c, between aidp_mask_view's steps (mask.h's hooks). */
/* 1 when dir_fd's directory is in a mount that gets an overlay (a
 * read-only one, not /proc or /sys), 0 when not, -errno. */
int aidp_mask_overlay_wanted(int dir_fd);
/* The group of the mount that holds dir_fd's directory, made on first use
 * (before the tree is read). -E2BIG past AIDP_MASK_MAX_GROUPS. */
int aidp_mask_group_of(int dir_fd, struct aidp_mask_group **ret);
/* An O_PATH fd of the directory in g's layer that stands for dir_fd's
 * directory (in g's mount), made with each host directory's owner, mode and
 * access ACL on the way; 0 when a mask already hides that directory (fd
 * not set); -ESTALE when the host moved it meanwhile; -errno. */
int aidp_mask_layer_dir(const struct aidp_mask_group *g, int dir_fd, int *ret);
/* The overlays of every group (mask_overlay.c), deeper mounts first, so
 * that a shallower group moves them, overlay and all, onto its own; each
 * group's layer directory and the tree (aidp_mask_read_tree) ready. 0, or
 * -errno with *failed naming the mount point or child. */
int aidp_mask_build_overlays(const char **failed);
