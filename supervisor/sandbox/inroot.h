#pragma once
/* Mount points made inside the sandbox's new root while pid 1 still has the
 * host's root: each path is resolved as the job will see it
 * (openat2 RESOLVE_IN_ROOT), so a symlink on the way ("/var/run" -> "/run", or
 * one a caller made in a directory the view shows) leads to a place in the new
 * root, never to the host's root, where root would create the file. */
#include <stdbool.h>
#include <sys/types.h>

/* The mount point path (absolute, as the job names it) below root_fd: the
 * missing directories made (mode), the last component a directory (dir) or an
 * empty file (0644). An O_PATH fd of it (for move_mount with
 * MOVE_MOUNT_T_EMPTY_PATH), or -1 with errno. */
int aidp_inroot_make(int root_fd, const char *path, bool dir, mode_t mode);
/* Whether path, resolved in root_fd, is a directory now. */
bool aidp_inroot_is_dir(int root_fd, const char *path);
