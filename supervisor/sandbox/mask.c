/* Masking paths of the sandbox's view (mask.h).
 *
 * Why an overlay and not a bind over the masked file: the kernel detaches a
 * mount whose mount point is unlinked, in every mount namespace (so that an
 * unprivileged namespace cannot pin a host file's name). A host that renames
 * a new /etc/shadow over the old one (useradd, passwd, dpkg) thereby removes
 * a bind over /etc/shadow from every running sandbox, and the new file shows
 * through. A mount can only be trusted to stay where the host cannot unlink
 * its mount point: on a mount's root, or on a file system of our own. So the
 * masked names go into a small tmpfs of pid 1's (the "layer"), and the mount
 * that holds them gets a read-only overlay on its root with that layer on
 * top. The overlay looks a masked name up in the layer first and stops
 * there; nothing the host does to its own directories changes that. The
 * mounts that sat below that mount's root (a bind into it, a host submount)
 * are cloned first and moved onto the overlay, where their mount points are
 * the overlay's own dentries, which no host unlink reaches either. */
#define _GNU_SOURCE
#include "supervisor/sandbox/mask.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
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
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sandbox/mask_tree.h"

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

/* The layer's directory in mask_src. */
#define LAYER_DIR "/layer"

#define S aidp_mask_state

enum mask_kind { KIND_NONE, KIND_BIND, KIND_LAYER };

/* path's parent directory into dir and its last component into name. */
static int split_path(const char *path, char dir[PATH_MAX], char name[NAME_MAX + 1])
{
        size_t len = strlen(path);
        if (len >= PATH_MAX)
                return -ENAMETOOLONG;
        memcpy(dir, path, len + 1);
        while (len > 1 && dir[len - 1] == '/')
                dir[--len] = '\0';
        char *slash = strrchr(dir, '/');
        if (!slash || !slash[1] || strlen(slash + 1) > NAME_MAX)
                return -EINVAL;
        strcpy(name, slash + 1);
        if (!strcmp(name, ".") || !strcmp(name, ".."))
                return -EINVAL;
        if (slash == dir)
                slash[1] = '\0';
        else
                *slash = '\0';
        return 0;
}

/* The parent directory of path inside root, resolved as the job will
 * (symlinks stay inside the root), and path's last component in name.
 * -errno; -ENOENT/-ENOTDIR when there is no such directory. */
static int open_parent(int root_fd, const char *path, char name[NAME_MAX + 1])
{
        char dir[PATH_MAX];
        int rc = split_path(path, dir, name);
        if (rc < 0)
                return rc;
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, root_fd, dir, &how, sizeof how);
        return fd < 0 ? -errno : fd;
}

/* 1 when the directory lives in a read-only mount, where the overlay goes:
 * the host's files (also on a host whose root is a tmpfs, as on diskless
 * nodes), a profile's read-only binds, the run's /data; 0 for the kernel's
 * own file systems and for writable mounts (the staging root, the run's
 * /tmp, a writable bind), which keep the bind; -errno. */
static int wanted(const struct statfs *sf)
{
        if (!(sf->f_flags & ST_RDONLY))
                return 0;
        switch (sf->f_type) {
        case PROC_SUPER_MAGIC:
        case SYSFS_MAGIC:
        case DEVPTS_SUPER_MAGIC: return 0;
        default: return 1;
        }
}

int aidp_mask_overlay_wanted(int fd)
{
        struct statfs sf;
        return fstatfs(fd, &sf) < 0 ? -errno : wanted(&sf);
}

/* The layer directory name below ldir for the host directory host (just
 * reached beneath the group's root): made with host's owner, mode and access
 * ACL, which are what the job sees of the merged directory (the overlay
 * checks the top layer's, never the host's); an existing one is kept. 1 and
 * *ret, 0 when name is a mask there (a file or a whiteout: nothing below it
 * shows), -errno. */
/* Directories copied into the layers, for masks and hidden sockets: a host
 * user's sockets choose how many, so there is a bound (past it, sockets go
 * to the binds, which have theirs). */
#define LAYER_DIRS_MAX 20000
static unsigned g_layer_dirs;

static int layer_subdir(int ldir, const char *name, int host, int *ret)
{
        struct stat st;
        if (fstatat(ldir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (!S_ISDIR(st.st_mode))
                        return 0;
        } else if (errno != ENOENT) {
                return -errno;
        } else {
                static char acl[65536]; /* pid 1 is single-threaded */
                char hp[64], lp[64 + NAME_MAX];
                if (g_layer_dirs >= LAYER_DIRS_MAX)
                        return -E2BIG;
                g_layer_dirs++;
                snprintf(hp, sizeof hp, "/proc/self/fd/%d", host);
                ssize_t n = getxattr(hp, "system.posix_acl_access", acl, sizeof acl);
                if (n < 0 && errno != ENODATA && errno != EOPNOTSUPP)
                        return -errno;
                if (mkdirat(ldir, name, 0700) < 0 || fstat(host, &st) < 0 ||
                    fchownat(ldir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                snprintf(lp, sizeof lp, "/proc/self/fd/%d/%s", ldir, name);
                /* The ACL before the mode: a chmod then keeps the two in step,
                 * as the host's are. */
                if ((n > 0 && setxattr(lp, "system.posix_acl_access", acl, (size_t)n, 0) < 0) ||
                    fchmodat(ldir, name, st.st_mode & 07777, 0) < 0)
                        return -errno;
        }
        *ret = openat(ldir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return *ret < 0 ? -errno : 1;
}

/* One component beneath dir, by an O_PATH fd: no symlink, no magic link, no
 * mount crossed. */
static int beneath_one(int dir, const char *name)
{
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                          RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
        int fd = (int)syscall(SYS_openat2, dir, name, &how, sizeof how);
        return fd < 0 ? -errno : fd;
}

static int fd_path(int fd, char out[PATH_MAX])
{
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, out, PATH_MAX - 1);
        if (n < 0)
                return -errno;
        out[n] = '\0';
        return 0;
}

/* Where dir_fd's directory is, relative to g's mount root, comes from its
 * path now; the host may change that path at any moment (a directory renamed,
 * a symlink put in its place). So the layer's directories are made along a
 * walk from the group's own root that follows no symlink and crosses no
 * mount, each copying the host directory it reached, and the walk must end
 * on dir_fd's very directory: a walk led elsewhere is -ESTALE, and a
 * directory's attributes never come from another place. */
int aidp_mask_layer_dir(const struct aidp_mask_group *g, int dir_fd, int *ret)
{
        static char full[PATH_MAX], top[PATH_MAX];
        int rc = fd_path(dir_fd, full);
        if (rc == 0)
                rc = fd_path(g->root_fd, top);
        if (rc < 0)
                return rc;
        size_t tl = strcmp(top, "/") ? strlen(top) : 0;
        if (strncmp(full, top, tl) || (full[tl] != '/' && full[tl] != '\0'))
                return -ESTALE;
        _cleanup_close_ int host = fcntl(g->root_fd, F_DUPFD_CLOEXEC, 3);
        _cleanup_close_ int layer = fcntl(g->layer_fd, F_DUPFD_CLOEXEC, 3);
        if (host < 0 || layer < 0)
                return -errno;
        for (char *c = full + tl; *c;) {
                c += strspn(c, "/");
                size_t len = strcspn(c, "/");
                if (len == 0)
                        break;
                char name[NAME_MAX + 1];
                if (len > NAME_MAX)
                        return -ESTALE;
                memcpy(name, c, len);
                name[len] = '\0';
                c += len;
                int next = beneath_one(host, name);
                if (next < 0)
                        return next == -ENOMEM ? next : -ESTALE;
                close(host);
                host = next;
                int lnext = -1;
                rc = layer_subdir(layer, name, host, &lnext);
                if (rc <= 0)
                        return rc;
                close(layer);
                layer = lnext;
        }
        struct stat a, b;
        if (fstat(host, &a) < 0 || fstat(dir_fd, &b) < 0)
                return -errno;
        if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
                return -ESTALE;
        *ret = layer;
        layer = -1;
        return 1;
}

/* The mask itself, in the layer directory dir_fd: what was there stays there
 * with nothing readable in it (an empty mode-0 file, or a mode-0 directory
 * that is opaque, so nothing of the host's shows through it); a name that was
 * not there becomes a whiteout and stays absent, whatever the host makes. */
static int layer_entry(int dir_fd, const char *name, const struct stat *host, bool there)
{
        int rc;
        if (!there)
                rc = mknodat(dir_fd, name, S_IFCHR, makedev(0, 0));
        else if (S_ISDIR(host->st_mode))
                rc = mkdirat(dir_fd, name, 0);
        else
                rc = mknodat(dir_fd, name, S_IFREG, 0);
        if (rc < 0 && errno != EEXIST)
                return -errno;
        struct stat st;
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return 0; /* a file or whiteout: nothing below it shows */
        /* A directory, made here or already as the parent of a deeper mask. */
        _cleanup_close_ int d =
                openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d < 0)
                return -errno;
        if (fsetxattr(d, "trusted.overlay.opaque", "y", 1, 0) < 0 || fchmod(d, 0) < 0)
                return -errno;
        return 0;
}

/* The layer: a directory of mask_src's tmpfs, pid 1's own and never
 * reachable from the host. That tmpfs is read-only while the masks are
 * bound (each bind copies its flags) and is written only here, in between.
 * It is unmounted with the staging root's helpers (sandbox.c) and lives on
 * only in the overlays: a tmpfs of its own would cost an unmount, and with
 * it an RCU grace period, milliseconds on a busy host. */
static int set_writable(const char *mask_src, bool writable)
{
        struct mount_attr a = {.attr_set = writable ? 0 : MOUNT_ATTR_RDONLY,
                               .attr_clr = writable ? MOUNT_ATTR_RDONLY : 0};
        return mount_setattr(AT_FDCWD, mask_src, 0, &a, sizeof a) < 0 ? -errno : 0;
}

static int open_layer(const char *mask_src, char *dir, size_t len)
{
        if (snprintf(dir, len, "%s%s", mask_src, LAYER_DIR) >= (int)len)
                return -ENAMETOOLONG;
        int rc = set_writable(mask_src, true);
        if (rc < 0)
                return rc;
        if (mkdir(dir, 0700) < 0)
                return -errno;
        S.layer_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        /* One whiteout that every covered host socket's name links to
         * (hostsock.c): a name then costs a directory entry, no inode. Out
         * of every group's directory, so no overlay shows it. */
        if (S.layer_fd < 0 || mknodat(S.layer_fd, "wh", S_IFCHR, makedev(0, 0)) < 0)
                return -errno;
        return 0;
}

/* The root of the mount that holds dir_fd's directory, reached by ".." from
 * it: inside one mount ".." never leaves it, and stops being a way up only
 * at the mount's root. No path is walked from pid 1's root, where the host
 * could have put a symlink on the way (a group's mount may be a host user's,
 * a FUSE mount holding a socket). */
static int mount_root(int dir_fd, uint64_t id)
{
        int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        for (int depth = 0; fd >= 0 && depth < PATH_MAX / 2; depth++) {
                struct statx sx;
                if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID | AIDP_MASK_STATX_MNT_ID_UNIQUE,
                          &sx) < 0) {
                        int e = errno;
                        close(fd);
                        return -e;
                }
                if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || sx.stx_mnt_id != id) {
                        close(fd);
                        return -ESTALE;
                }
                if (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT)
                        return fd;
                int up = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                close(fd);
                fd = up;
        }
        return fd < 0 ? -errno : -ELOOP;
}

int aidp_mask_group_of(int fd, struct aidp_mask_group **ret)
{
        uint64_t id;
        int rc = aidp_mask_mount_id(fd, &id);
        if (rc < 0)
                return rc;
        struct aidp_mask_group *g = aidp_mask_find_group(id);
        if (!g) {
                if (S.n == AIDP_MASK_MAX_GROUPS)
                        return -E2BIG;
                int root = mount_root(fd, id);
                if (root < 0)
                        return root;
                g = &S.g[S.n++];
                *g = (struct aidp_mask_group){.mnt_id = id, .root_fd = root, .layer_fd = -1};
        }
        *ret = g;
        return 0;
}

/* Each group's directory in the layer, with its root's owner, mode and ACL. */
static int open_groups(void)
{
        for (size_t i = 0; i < S.n; i++) {
                struct aidp_mask_group *g = &S.g[i];
                if (g->layer_fd >= 0)
                        continue; /* made before more's groups came */
                char name[32];
                snprintf(name, sizeof name, "%zu", i);
                int rc = layer_subdir(S.layer_fd, name, g->root_fd, &g->layer_fd);
                if (rc <= 0)
                        return rc < 0 ? rc : -EEXIST;
        }
        return 0;
}

/* One masked path of an overlaid mount into its group's layer. The parent is
 * looked up again if the host moved it meanwhile. */
static int mask_in_layer(int root_fd, const char *path, int cached)
{
        for (int attempt = 0; attempt < 100; attempt++) {
                char name[NAME_MAX + 1], parent[PATH_MAX];
                _cleanup_close_ int pfd = -1;
                if (attempt == 0 && cached >= 0) {
                        pfd = cached;
                        cached = -1;
                        if (split_path(path, parent, name) < 0)
                                return -EINVAL;
                } else
                        pfd = open_parent(root_fd, path, name);
                if (pfd == -ENOENT || pfd == -ENOTDIR)
                        return 0;
                if (pfd < 0)
                        return pfd;
                int rc = aidp_mask_overlay_wanted(pfd);
                if (rc < 0)
                        return rc;
                if (rc == 0)
                        return -ESTALE; /* it moved out of the mount meanwhile */
                uint64_t id;
                struct aidp_mask_group *g =
                        aidp_mask_mount_id(pfd, &id) == 0 ? aidp_mask_find_group(id) : NULL;
                if (!g)
                        return -ESTALE;
                _cleanup_close_ int dir = -1;
                rc = aidp_mask_layer_dir(g, pfd, &dir);
                if (rc == -ESTALE)
                        continue; /* moved meanwhile: look it up again */
                if (rc <= 0)
                        return rc; /* 0: below another mask, hidden with it */
                struct stat host;
                bool there = fstatat(pfd, name, &host, AT_SYMLINK_NOFOLLOW) == 0;
                if (!there && errno != ENOENT)
                        return -errno;
                return layer_entry(dir, name, &host, there);
        }
        return -ESTALE;
}

static const char *nth_path(const char *const *paths, size_t n_paths, char *const *extra, size_t i)
{
        return i < n_paths ? paths[i] : extra[i - n_paths];
}

/* Which way each path is masked, and the group of each path in a mount the
 * overlay is for. statfs by the host's path first, one call for most
 * (/proc, /sys), then, for a read-only mount of host files, the parent as
 * the job will resolve it. */
static int classify(int root_fd, const char *root, const char *const *paths, size_t n_paths,
                    char *const *extra, size_t n_extra, const char **failed)
{
        if (n_paths + n_extra > AIDP_MASK_MAX_PATHS)
                return -E2BIG;
        for (size_t i = 0; i < n_paths + n_extra; i++) {
                const char *path = nth_path(paths, n_paths, extra, i);
                *failed = path;
                S.kind[i] = KIND_NONE;
                char dir[PATH_MAX], name[NAME_MAX + 1], p[PATH_MAX];
                int rc = split_path(path, dir, name);
                if (rc < 0)
                        return rc;
                if (snprintf(p, sizeof p, "%s%s", root, dir) >= (int)sizeof p)
                        return -ENAMETOOLONG;
                struct statfs sf;
                if (statfs(p, &sf) < 0) {
                        if (errno == ENOENT || errno == ENOTDIR)
                                continue; /* nothing there to hide */
                        return -errno;
                }
                S.kind[i] = KIND_BIND;
                if (!wanted(&sf))
                        continue;
                int pfd = open_parent(root_fd, path, name);
                if (pfd == -ENOENT || pfd == -ENOTDIR) {
                        S.kind[i] = KIND_NONE;
                        continue;
                }
                if (pfd < 0)
                        return pfd;
                struct aidp_mask_group *g;
                if ((rc = aidp_mask_overlay_wanted(pfd)) == 1 &&
                    (rc = aidp_mask_group_of(pfd, &g)) == 0) {
                        S.kind[i] = KIND_LAYER;
                        if (i < AIDP_MASK_MAX_FDS) {
                                S.fd[i] = pfd;
                                continue;
                        }
                }
                close(pfd);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

/* A bind over each path outside the overlays, once they are made: a bind
 * over a mount's root then lands on its overlay, not under it. /proc, /sys,
 * the staging root, the run's writable tmpfs, a writable bind: only the
 * kernel and the run change the first ones, and the host's changes to a
 * writable bind are the known gap (docs/security.md). */
static int bind_pass(const char *root, const char *mask_src, const char *const *paths,
                     size_t n_paths, char *const *extra, size_t n_extra, const char **failed)
{
        for (size_t i = 0; i < n_paths + n_extra; i++) {
                if (S.kind[i] != KIND_BIND)
                        continue;
                const char *path = nth_path(paths, n_paths, extra, i);
                *failed = path;
                char p[PATH_MAX];
                if (snprintf(p, sizeof p, "%s%s", root, path) >= (int)sizeof p)
                        return -ENAMETOOLONG;
                if (aidp_mask_bind(mask_src, p) < 0)
                        return -errno;
        }
        return 0;
}

/* What aidp_mask_view_begin leaves for aidp_mask_view_finish (pid 1 is
 * single-threaded and may not allocate: static). */
static struct {
        int root_fd;
        const char *root, *mask_src;
        const char *const *paths;
        size_t n_paths;
        char *const *extra;
        size_t n_extra;
        bool layer_open;
} V = {.root_fd = -1};

/* The masks' own layer entries, in every group their paths made. */
static int masks_in_layer(const char **failed)
{
        *failed = V.mask_src;
        char layer[PATH_MAX];
        int rc = open_layer(V.mask_src, layer, sizeof layer);
        V.layer_open = true;
        if (rc == 0)
                rc = open_groups();
        for (size_t i = 0; i < V.n_paths + V.n_extra && rc == 0; i++) {
                if (S.kind[i] != KIND_LAYER)
                        continue;
                *failed = nth_path(V.paths, V.n_paths, V.extra, i);
                int cached = i < AIDP_MASK_MAX_FDS ? S.fd[i] : -1;
                if (i < AIDP_MASK_MAX_FDS)
                        S.fd[i] = -1;
                rc = mask_in_layer(V.root_fd, *failed, cached);
        }
        return rc;
}

/* The rest of the groups' work, once more's groups are known: the mount
 * tree below every group, the layer directories of groups more added,
 * more's names, the overlays; the layer's tmpfs read-only again. */
static int overlay_groups(const struct aidp_mask_more *more, const char **failed)
{
        *failed = "/proc/self/mountinfo";
        int rc = aidp_mask_read_tree();
        if (rc == 0 && !V.layer_open) {
                char layer[PATH_MAX];
                *failed = V.mask_src;
                rc = open_layer(V.mask_src, layer, sizeof layer);
                V.layer_open = true;
        }
        if (rc == 0) {
                *failed = V.mask_src;
                rc = open_groups();
        }
        if (rc == 0 && more)
                rc = more->layer(more->ctx, V.root_fd, failed);
        if (rc == 0)
                rc = aidp_mask_build_overlays(failed);
        return rc;
}

static void close_groups(void)
{
        for (size_t i = 0; i < S.n; i++) {
                if (S.g[i].root_fd >= 0)
                        close(S.g[i].root_fd);
                if (S.g[i].layer_fd >= 0)
                        close(S.g[i].layer_fd);
                S.g[i].root_fd = S.g[i].layer_fd = -1;
        }
        if (S.layer_fd >= 0)
                close(S.layer_fd);
        S.layer_fd = -1;
}

/* Every fd of the groups and the cached parents, and the layer's tmpfs
 * read-only again if it was made writable. rc: the result so far. */
static int close_view(int rc, const char **failed)
{
        close_groups();
        for (size_t i = 0; i < AIDP_MASK_MAX_FDS; i++) {
                if (S.fd[i] >= 0)
                        close(S.fd[i]);
                S.fd[i] = -1;
        }
        if (V.layer_open) {
                V.layer_open = false;
                int ro = set_writable(V.mask_src, false);
                if (ro < 0 && rc == 0) {
                        rc = ro;
                        *failed = V.mask_src;
                }
        }
        return rc;
}

int aidp_mask_view_begin(const char *root, const char *mask_src, const char *const *paths,
                         char *const *extra, size_t n_extra, const char **failed)
{
        S.n = S.nc = S.used = S.last = 0;
        S.layer_fd = -1;
        for (size_t i = 0; i < AIDP_MASK_MAX_FDS; i++)
                S.fd[i] = -1;
        size_t n_paths = 0;
        while (paths[n_paths])
                n_paths++;
        if (V.root_fd >= 0)
                close(V.root_fd);
        V = (typeof(V)){.root = root,
                        .mask_src = mask_src,
                        .paths = paths,
                        .n_paths = n_paths,
                        .extra = extra,
                        .n_extra = n_extra,
                        .root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)};
        *failed = root;
        if (V.root_fd < 0)
                return -errno;
        int rc = classify(V.root_fd, root, paths, n_paths, extra, n_extra, failed);
        if (rc == 0 && S.n > 0)
                rc = masks_in_layer(failed);
        if (rc < 0)
                aidp_mask_view_abort();
        return rc;
}

void aidp_mask_view_abort(void)
{
        const char *ignored;
        (void)close_view(0, &ignored);
        if (V.root_fd >= 0)
                close(V.root_fd);
        V.root_fd = -1;
}

int aidp_mask_view_finish(const struct aidp_mask_more *more, const char **failed)
{
        int rc = V.root_fd < 0 ? -EBADF : 0;
        if (rc == 0 && more)
                rc = more->groups(more->ctx, V.root_fd, failed);
        if (rc == 0 && S.n > 0)
                rc = overlay_groups(more, failed);
        rc = close_view(rc, failed);
        if (rc == 0)
                rc = bind_pass(V.root, V.mask_src, V.paths, V.n_paths, V.extra, V.n_extra, failed);
        if (rc == 0 && more)
                rc = more->after(more->ctx, V.root_fd, failed);
        if (V.root_fd >= 0)
                close(V.root_fd);
        V.root_fd = -1;
        return rc;
}

int aidp_mask_view(const char *root, const char *mask_src, const char *const *paths,
                   char *const *extra, size_t n_extra, const struct aidp_mask_more *more,
                   const char **failed)
{
        int rc = aidp_mask_view_begin(root, mask_src, paths, extra, n_extra, failed);
        return rc < 0 ? rc : aidp_mask_view_finish(more, failed);
}
