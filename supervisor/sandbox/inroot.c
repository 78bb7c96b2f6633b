/* Mount points made inside the new root (inroot.h). */
#define _GNU_SOURCE
#include "supervisor/sandbox/inroot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

static int open_in(int root_fd, const char *rel, int flags)
{
        struct open_how how = {.flags = (unsigned)flags | O_CLOEXEC,
                               .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
        return (int)syscall(SYS_openat2, root_fd, *rel ? rel : ".", &how, sizeof how);
}

/* The parent of rel's last component (rel is cut there for the call) and
 * that component. */
static int open_parent(int root_fd, char *rel, char **name)
{
        char *slash = strrchr(rel, '/');
        if (!slash) {
                *name = rel;
                return open_in(root_fd, "", O_PATH | O_DIRECTORY);
        }
        *slash = '\0';
        int fd = open_in(root_fd, rel, O_PATH | O_DIRECTORY);
        *slash = '/';
        *name = slash + 1;
        return fd;
}

int aidp_inroot_make(int root_fd, const char *path, bool dir, mode_t mode)
{
        char rel[PATH_MAX];
        while (*path == '/')
                path++;
        if (snprintf(rel, sizeof rel, "%s", path) >= (int)sizeof rel) {
                errno = ENAMETOOLONG;
                return -1;
        }
        size_t n = strlen(rel);
        while (n > 0 && rel[n - 1] == '/')
                rel[--n] = '\0';
        /* Each directory made in its parent, the parent opened by a
         * resolution that stays in the root: an existing symlink is
         * followed there, as the job would follow it. */
        for (size_t i = 1; i <= n; i++) {
                if (rel[i] != '/' && rel[i] != '\0')
                        continue;
                if (rel[i] == '\0' && !dir)
                        break;
                char save = rel[i];
                rel[i] = '\0';
                char *name;
                _cleanup_close_ int parent = open_parent(root_fd, rel, &name);
                int r = parent < 0 ? -1 : *name ? mkdirat(parent, name, mode) : 0;
                rel[i] = save;
                if (r < 0 && (parent < 0 || errno != EEXIST))
                        return -1;
        }
        if (dir)
                return open_in(root_fd, rel, O_PATH | O_DIRECTORY);
        int fd = open_in(root_fd, rel, O_PATH);
        if (fd >= 0 || errno != ENOENT || !n)
                return fd;
        /* Not there: made in its parent, never through a symlink (a
         * dangling one is refused: EEXIST). */
        char *name;
        _cleanup_close_ int parent = open_parent(root_fd, rel, &name);
        if (parent < 0)
                return -1;
        _cleanup_close_ int made =
                openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (made < 0)
                return -1;
        return open_in(root_fd, rel, O_PATH);
}

bool aidp_inroot_is_dir(int root_fd, const char *path)
{
        while (*path == '/')
                path++;
        _cleanup_close_ int fd = open_in(root_fd, path, O_PATH | O_DIRECTORY);
        return fd >= 0;
}
