#define _GNU_SOURCE
#include "supervisor/sandbox/tmpfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common/cleanup.h"

int aidp_tmpfs_create(const char *label, uint64_t size_bytes, unsigned mode, unsigned uid,
                      unsigned gid, struct aidp_tmpfs *out, aidp_error *err)
{
        memset(out, 0, sizeof *out);
        out->fd = -1;
        snprintf(out->label, sizeof out->label, "%s", label);
        if (size_bytes == 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "tmpfs %s: size must be > 0",
                                      label);

        _cleanup_close_ int fsfd = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: fsopen", label);
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)size_bytes);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "size", buf, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: size=%s", label,
                                        buf);
        snprintf(buf, sizeof buf, "%04o", mode & 07777);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "mode", buf, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: mode", label);
        snprintf(buf, sizeof buf, "%u", uid);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "uid", buf, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: uid", label);
        snprintf(buf, sizeof buf, "%u", gid);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "gid", buf, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: gid", label);
        /* noswap (Linux 6.4+) keeps plaintext pages out of swap. Older kernels
         * reject the key with EINVAL; that is reported, not fatal. */
        out->noswap = fsconfig(fsfd, FSCONFIG_SET_FLAG, "noswap", NULL, 0) == 0;
        if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: create", label);
        int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC,
                          MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (mfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: fsmount", label);
        out->fd = mfd;
        out->size = size_bytes;
        return 0;
}

void aidp_tmpfs_release(struct aidp_tmpfs *t)
{
        if (t->fd >= 0)
                close(t->fd);
        t->fd = -1;
}
