/* Resolving manifest paths beneath the destination (or source) directory fd:
 * sealed_internal.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sealed/sealed_internal.h"

/* Every path below dirfd is resolved beneath it, never through a symlink or
 * onto another mount: a hostile manifest cannot reach outside the tmpfs. */
int aidp_sealed_open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
                .mode = (flags & O_CREAT) ? mode : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                           RESOLVE_NO_XDEV,
        };
        int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        return fd < 0 ? -errno : fd;
}

/* Parent directory fd and base name of a manifest path. */
int aidp_sealed_open_parent(int dirfd, const char *path, const char **base)
{
        const char *slash = strrchr(path, '/');
        if (!slash) {
                *base = path;
                int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
                return fd < 0 ? -errno : fd;
        }
        _cleanup_free_ char *parent = strndup(path, (size_t)(slash - path));
        if (!parent)
                return -ENOMEM;
        *base = slash + 1;
        return aidp_sealed_open_beneath(dirfd, parent, O_PATH | O_DIRECTORY, 0);
}
