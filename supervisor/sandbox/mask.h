#pragma once
/* Masking paths of the sandbox's view (sandbox.c; docs/security.md, "Masked
 * paths"). pid 1 only: no allocation (it is a clone3 copy of a process that
 * may have threads), static buffers instead. */
#include <stddef.h>

/* Bind mask_src/f (a file) or mask_src/d (a directory) over the file at p,
 * unless nothing (or a symlink) is there. 0, or -1 with errno. */
int aidp_mask_bind(const char *mask_src, const char *p);

/* More names to hide with the masks (hostsock.c's host unix sockets), in
 * three steps of aidp_mask_view, each 0 or -errno with *failed set:
 * - groups: once the masks are sorted, make the group (mask_tree.h) of each
 *   mount that is to get an overlay for them;
 * - layer: with the layer writable and each group's directory in it open,
 *   put the names in;
 * - after: once the overlays and the masks' binds are in place, whatever
 *   the overlays could not take.
 * root_fd: the staging root. */
struct aidp_mask_more {
        int (*groups)(void *ctx, int root_fd, const char **failed);
        int (*layer)(void *ctx, int root_fd, const char **failed);
        int (*after)(void *ctx, int root_fd, const char **failed);
        void *ctx;
};

/* Hide each of paths (NULL-terminated) and extra (n_extra of them) in the
 * staging root `root`, each resolved as the job will resolve it (symlinks
 * inside the root), once every mount and bind is in place:
 * - in a read-only mount (the host root's directories, a profile's
 *   read-only binds, the working directory, /data), the mount's root gets
 *   a private read-only overlay whose top layer holds the masked names: an
 *   empty mode-0 file or opaque directory for a name that is there, a
 *   whiteout for one that is not. Nothing the host does to its files reaches
 *   that layer, so a file renamed over, removed and made again, or made
 *   later stays hidden; the mounts below are moved onto the overlay.
 * - elsewhere (/proc, /sys, writable mounts: the staging root itself, the
 *   run's /tmp, writable binds) the bind of aidp_mask_bind, as before.
 * mask_src: the root of a read-only tmpfs mount of its own holding the
 * unreadable d and f for the binds; the overlays' layer is made in it too,
 * with the mount writable meanwhile.
 * more: NULL, or more names (above).
 * Returns 0, or -errno with *failed naming the path. */
int aidp_mask_view(const char *root, const char *mask_src, const char *const *paths,
                   char *const *extra, size_t n_extra, const struct aidp_mask_more *more,
                   const char **failed);

/* aidp_mask_view in two steps, so that pid 1 does what does not depend on
 * more's names while it waits for them (the host's socket list, hostsock.h):
 * begin sorts the paths and puts the masks' own names into the layer (the
 * layer's tmpfs is writable until finish); finish adds more's groups and
 * names, makes the overlays, binds the rest and calls more's after. Either
 * returns 0 or -errno with *failed set; after a failed begin there is
 * nothing to finish. abort drops what begin kept, for a caller that does not
 * go on to finish. */
int aidp_mask_view_begin(const char *root, const char *mask_src, const char *const *paths,
                         char *const *extra, size_t n_extra, const char **failed);
int aidp_mask_view_finish(const struct aidp_mask_more *more, const char **failed);
void aidp_mask_view_abort(void);
