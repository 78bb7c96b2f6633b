/* The masks' overlays (mask.h): each group's layer over its mount's root,
 * the mounts that were below that root moved onto it (mask.c's opening
 * comment says why). Split from mask.c; the state is mask_tree.h's. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sandbox/mask_tree.h"

#define S aidp_mask_state

/* Whether a mount point rel (below a group's root) is at or below a masked
 * name of its layer: such a mount stays hidden with it. */
static bool under_mask(int layer_fd, const char *rel)
{
        char pre[PATH_MAX];
        size_t len = strlen(rel);
        if (len >= sizeof pre)
                return true;
        for (size_t i = 1; i <= len; i++) {
                if (rel[i] != '/' && rel[i] != '\0')
                        continue;
                memcpy(pre, rel, i);
                pre[i] = '\0';
                struct stat st;
                if (fstatat(layer_fd, pre, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return false;
                if (!S_ISDIR(st.st_mode) || (st.st_mode & 07777) == 0)
                        return true;
        }
        return false;
}

/* rel beneath dir, by an O_PATH fd: no symlink, no magic link, no ".."
 * out of it. -errno when it does not lead there. */
static int beneath(int dir, const char *rel)
{
        struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                          RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, dir, rel, &how, sizeof how);
        return fd < 0 ? -errno : fd;
}

/* A clone of the mount below g's root at rel. The listing named it by a
 * path, and the host may have changed that path since (a directory renamed,
 * a symlink put in its place): a path walked from pid 1's root could lead
 * to any host mount, writable ones too. So the walk starts at the group's
 * own root, follows no symlink and stays beneath it; what it reaches must
 * be the root of a mount other than the group's. Such a mount hangs in the
 * new root below the group's mount, where the job would see it anyway.
 * -ENOENT: nothing is mounted there now (the host changed the path). */
static void fault_child_gone(const struct aidp_mask_group *g, const char *rel);

static int clone_child(const struct aidp_mask_group *g, const char *rel)
{
        _cleanup_close_ int at = beneath(g->root_fd, rel);
        if (at == -ENOENT || at == -ELOOP || at == -EXDEV || at == -ENOTDIR)
                return -ENOENT;
        if (at < 0)
                return at;
        struct statx sx;
        if (statx(at, "", AT_EMPTY_PATH, STATX_MNT_ID | AIDP_MASK_STATX_MNT_ID_UNIQUE, &sx) < 0)
                return -errno;
        uint64_t id = sx.stx_mnt_id;
        if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
                return -ENOSYS;
        if (!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) || id == g->mnt_id)
                return -ENOENT;
        fault_child_gone(g, rel);
        int fd = open_tree(at, "",
                           AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        return fd < 0 ? -errno : fd;
}

/* The mount below g's root at rel, cloned and moved to rel beneath the
 * overlay mnt. The target too by fd, beneath the overlay and without
 * symlinks: a symlink the host put on the path would lead the move out of
 * the new root. A path that no longer leads there shows nothing. */
static int move_child_once(const struct aidp_mask_group *g, int mnt, const char *rel)
{
        _cleanup_close_ int c = clone_child(g, rel);
        if (c == -ENOENT)
                return 0; /* its mount point is gone: nothing showed there */
        if (c < 0)
                return c;
        _cleanup_close_ int t = beneath(mnt, rel);
        if (t < 0)
                return 0;
        if (move_mount(c, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return -errno;
        return 0;
}

/* Test builds only (AIDP_FAULT_MASK_CHILD=DIR; supervisor/cli/env.c: the
 * production binary refuses a run that sets it): the mount at DIR/m is
 * resolved but not cloned yet when pid 1 meets the test at the FIFO DIR/fifo
 * and waits (5 s at most) until the host has removed that mount, which is
 * what another run's end does at a random moment (move_child below). */
static void fault_child_gone(const struct aidp_mask_group *g, const char *rel)
{
        static bool done;
        const char *dir = getenv("AIDP_FAULT_MASK_CHILD");
        char want[PATH_MAX], fifo[PATH_MAX], self[PATH_MAX];
        size_t rl = strlen(rel), wl;
        if (done || !dir || snprintf(want, sizeof want, "%s/m", dir) >= (int)sizeof want ||
            snprintf(fifo, sizeof fifo, "%s/fifo", dir) >= (int)sizeof fifo ||
            snprintf(self, sizeof self, "/%s", rel) >= (int)sizeof self ||
            (wl = strlen(want)) < rl + 1 || strcmp(want + wl - rl - 1, self))
                return;
        done = true;
        struct timespec ms = {0, 1000 * 1000};
        int fd = -1;
        for (int i = 0; i < 5000 && fd < 0; i++)
                if ((fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
                        nanosleep(&ms, NULL);
        if (fd < 0 || write(fd, "m", 1) != 1) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        close(fd);
        struct stat st;
        for (int i = 0; i < 5000 && fstatat(g->root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0; i++)
                nanosleep(&ms, NULL);
}

/* The host may remove the mount while it is cloned or moved: every run pins
 * its sandbox's namespace on a file of its run directory (nspin.h) and
 * unlinks that file at its end, and the kernel then detaches the mounts on
 * it in every namespace, this one too. The clone then fails with EINVAL (a
 * detached mount), the move with ENOENT. Looked up again, the mount is gone
 * and nothing showed there; a failure that persists is a real one. Without
 * this, a run ending at that moment failed another run's start at "mounts". */
static int move_child(const struct aidp_mask_group *g, int mnt, const char *rel)
{
        int rc = 0;
        for (int tries = 0; tries < 3; tries++)
                if ((rc = move_child_once(g, mnt, rel)) == 0)
                        return 0;
        return rc;
}

/* The read-only overlay of a group: its layer over its mount's root, put on
 * that root; the mounts that were below the root moved onto it. */
static int build_overlay(size_t gi, const char **failed)
{
        struct aidp_mask_group *g = &S.g[gi];
        const char *point = aidp_mask_pool(g->point);
        size_t pl = strlen(point);
        *failed = point;
        int rc = 0;
        struct statfs sf = {0};
        _cleanup_close_ int fs = fsopen("overlay", FSOPEN_CLOEXEC);
        _cleanup_close_ int mnt = -1;
        char lower[80];
        snprintf(lower, sizeof lower, "/proc/self/fd/%d:/proc/self/fd/%d", g->layer_fd, g->root_fd);
        if (rc == 0 && (fs < 0 || fstatfs(g->root_fd, &sf) < 0 ||
                        fsconfig(fs, FSCONFIG_SET_STRING, "source", "aidp-mask", 0) < 0 ||
                        fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir", lower, 0) < 0 ||
                        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0))
                rc = -errno;
        /* Read-only (no upper layer), and no more than the mount it covers
         * allowed: nosuid, nodev, noexec where that one was. */
        unsigned attr = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if (rc == 0 && (sf.f_flags & ST_NOEXEC))
                attr |= MOUNT_ATTR_NOEXEC;
        if (rc == 0 && (mnt = fsmount(fs, FSMOUNT_CLOEXEC, attr)) < 0)
                rc = -errno;
        /* On the mount's root itself: a mount point the host cannot unlink
         * while the directory has anything in it. */
        if (rc == 0 && move_mount(mnt, "", g->root_fd, "",
                                  MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                rc = -errno;
        /* The mounts that were below the root, one by one onto the overlay:
         * the group's root fd still reaches them under it (a walk from a
         * directory fd starts on that fd's mount, not on what covers it). A
         * deeper group's overlay, made first, comes with its mount. */
        for (size_t i = 0; i < S.nc && rc == 0; i++) {
                const char *cp = aidp_mask_pool(S.c[i].point);
                if (S.c[i].group != gi || strncmp(cp, point, pl) || cp[pl] != '/' ||
                    under_mask(g->layer_fd, cp + pl + 1))
                        continue;
                rc = move_child(g, mnt, cp + pl + 1);
                if (rc < 0)
                        *failed = cp;
        }
        return rc;
}

/* The overlays of every group: deeper mounts first, so that a shallower
 * group moves them, overlay and all, onto its own. */
int aidp_mask_build_overlays(const char **failed)
{
        bool done[AIDP_MASK_MAX_GROUPS] = {false};
        for (size_t k = 0; k < S.n; k++) {
                size_t best = 0, best_depth = 0;
                bool any = false;
                for (size_t i = 0; i < S.n; i++) {
                        size_t d = 0;
                        for (const char *c = aidp_mask_pool(S.g[i].point); *c; c++)
                                d += *c == '/';
                        if (!done[i] && (!any || d > best_depth)) {
                                best = i;
                                best_depth = d;
                                any = true;
                        }
                }
                done[best] = true;
                int rc = build_overlay(best, failed);
                if (rc < 0)
                        return rc;
        }
        return 0;
}
