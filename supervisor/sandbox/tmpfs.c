#define _GNU_SOURCE
#include "supervisor/sandbox/tmpfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Made ahead by a daemon's idle worker (aidp_tmpfs_ahead): whole mounts of
 * the likeliest sizes, owned by root, and file system contexts with only
 * what does not depend on the run set (docs/run-core.md, "The worker
 * segment"). A run takes one only when it is exactly what it would make. */
#define AHEAD_MAX 8
static struct ahead {
        int fd; /* a mount (size > 0) or an fs context (size 0); -1: taken */
        uint64_t size;
        unsigned mode;
        bool noswap;
} g_ahead[AHEAD_MAX];
static size_t g_n_ahead;

/* fsopen, the mode and noswap: the parts of a tmpfs that do not depend on
 * its size or owner. The context's fd, or -1 (errno). */
static int context_open(unsigned mode, bool *noswap)
{
        int fsfd = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return -1;
        char buf[32];
        snprintf(buf, sizeof buf, "%04o", mode & 07777);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "mode", buf, 0) < 0) {
                int e = errno;
                close(fsfd);
                errno = e;
                return -1;
        }
        /* noswap (Linux 6.4+) keeps plaintext pages out of swap. Older kernels
         * reject the key with EINVAL; that is reported, not fatal. */
        *noswap = fsconfig(fsfd, FSCONFIG_SET_FLAG, "noswap", NULL, 0) == 0;
        return fsfd;
}

/* The rest on a context: size, owner, the superblock and its detached
 * mount. The mount's fd, or -1 with err. */
static int context_mount(int fsfd, const char *label, uint64_t size_bytes, unsigned uid,
                         unsigned gid, aidp_error *err)
{
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)size_bytes);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "size", buf, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: size=%s", label,
                                        buf);
        snprintf(buf, sizeof buf, "%u", uid);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "uid", buf, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: uid", label);
        snprintf(buf, sizeof buf, "%u", gid);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "gid", buf, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: gid", label);
        if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: create", label);
        int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC,
                          MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (mfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "tmpfs %s: fsmount", label);
        return mfd;
}

void aidp_tmpfs_ahead(uint64_t size_bytes, unsigned mode)
{
        if (g_n_ahead == AHEAD_MAX)
                return;
        struct ahead a = {.fd = -1, .size = size_bytes, .mode = mode & 07777};
        _cleanup_close_ int fsfd = context_open(a.mode, &a.noswap);
        if (fsfd < 0)
                return;
        if (size_bytes) {
                aidp_error err = {0};
                a.fd = context_mount(fsfd, "ahead", size_bytes, 0, 0, &err);
        } else {
                a.fd = TAKE_FD(fsfd);
        }
        if (a.fd >= 0)
                g_ahead[g_n_ahead++] = a;
}

/* One made ahead for this tmpfs: a whole mount (root's, this size and mode)
 * or else a context of this mode. Its fd, or -1. */
static int take_ahead(uint64_t size_bytes, unsigned mode, unsigned uid, unsigned gid, bool *mount,
                      bool *noswap)
{
        size_t ctx = AHEAD_MAX;
        for (size_t i = 0; i < g_n_ahead; i++) {
                struct ahead *a = &g_ahead[i];
                if (a->fd < 0 || a->mode != (mode & 07777))
                        continue;
                if (a->size && a->size == size_bytes && uid == 0 && gid == 0) {
                        *mount = true;
                        *noswap = a->noswap;
                        return TAKE_FD(a->fd);
                }
                if (!a->size && ctx == AHEAD_MAX)
                        ctx = i;
        }
        if (ctx == AHEAD_MAX)
                return -1;
        *mount = false;
        *noswap = g_ahead[ctx].noswap;
        return TAKE_FD(g_ahead[ctx].fd);
}

int aidp_tmpfs_create(const char *label, uint64_t size_bytes, unsigned mode, unsigned uid,
                      unsigned gid, struct aidp_tmpfs *out, aidp_error *err)
{
        memset(out, 0, sizeof *out);
        out->fd = -1;
        snprintf(out->label, sizeof out->label, "%s", label);
        if (size_bytes == 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "tmpfs %s: size must be > 0",
                                      label);
        bool whole = false;
        int fd = take_ahead(size_bytes, mode, uid, gid, &whole, &out->noswap);
        if (whole) {
                out->fd = fd;
                out->size = size_bytes;
                return 0;
        }
        _cleanup_close_ int fsfd = fd >= 0 ? fd : context_open(mode, &out->noswap);
        if (fsfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "tmpfs %s: fsopen (mode %04o)", label, mode & 07777);
        int mfd = context_mount(fsfd, label, size_bytes, uid, gid, err);
        if (mfd < 0)
                return -1;
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
