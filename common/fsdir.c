#define _GNU_SOURCE
#include "common/fsdir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

/* One component below the open directory `at`: created if missing with
 * exactly `mode`, then opened without following a symlink, so a component
 * swapped for a link while we walk is refused (ENOTDIR/ELOOP), not followed. */
static int step(int at, const char *name, mode_t mode)
{
        if (mkdirat(at, name, mode) == 0) {
                /* mkdir is subject to the umask; the mode is a promise. */
                if (fchmodat(at, name, mode, 0) < 0)
                        return -errno;
        } else if (errno != EEXIST) {
                return -errno;
        }
        int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int aidp_mkdir_p(const char *dir, mode_t mode, mode_t parent_mode)
{
        if (!dir || !*dir)
                return -EINVAL;
        char buf[PATH_MAX];
        size_t len = strlen(dir);
        if (len >= sizeof buf)
                return -ENAMETOOLONG;
        memcpy(buf, dir, len + 1);
        while (len > 1 && buf[len - 1] == '/')
                buf[--len] = '\0';
        /* A relative path (an admin's `aidp keygen --key-dir keys`) starts at
         * the working directory. */
        bool abs = buf[0] == '/';
        _cleanup_close_ int at = open(abs ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (at < 0)
                return -errno;
        char *p = abs ? buf + 1 : buf;
        while (*p) {
                char *slash = strchr(p, '/');
                bool last = !slash;
                if (slash)
                        *slash = '\0';
                if (*p) {
                        int fd = step(at, p, last ? mode : parent_mode);
                        if (fd < 0)
                                return fd;
                        close(at);
                        at = fd;
                }
                if (last)
                        break;
                p = slash + 1;
        }
        return 0;
}
