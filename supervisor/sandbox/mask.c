/* Masking one path of the sandbox's view (mask.h). */
#define _GNU_SOURCE
#include "supervisor/sandbox/mask.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>

int aidp_mask_bind(const char *mask_src, const char *p)
{
        char src[PATH_MAX];
        for (int attempt = 0;; attempt++) {
                struct stat st;
                if (lstat(p, &st) < 0 || S_ISLNK(st.st_mode))
                        return 0; /* nothing there to hide */
                if (snprintf(src, sizeof src, "%s/%s", mask_src, S_ISDIR(st.st_mode) ? "d" : "f") >=
                    (int)sizeof src) {
                        errno = ENAMETOOLONG;
                        return -1;
                }
                /* A plain bind: one call, and the copy keeps the source's
                 * read-only and noexec (checked from inside by
                 * tests/helpers/probe). */
                if (mount(src, p, NULL, MS_BIND, NULL) == 0)
                        return 0;
                /* ENOENT for a path that is there: the host replaced the file
                 * (useradd writes /etc/shadow+ and renames it over
                 * /etc/shadow) between the mount's lookup and its lock, which
                 * refuses a dentry that was renamed over. Look it up again. */
                if (errno != ENOENT || attempt >= 100)
                        return -1;
        }
}
