#define _GNU_SOURCE
/* Marked cgroups (cgroup.h, aidp_cgroup_mark / aidp_cgroup_sweep_marked):
 * a ready cgroup carries its maker on itself, so that it can be found and
 * judged when nothing else names it any more (its record's run directory
 * deleted). The mark is a "trusted." extended attribute: kernfs keeps those
 * on cgroup directories on v1 and v2 alike, and only CAP_SYS_ADMIN in the
 * initial user namespace can set one, so no user, not even one with a
 * delegated subtree, can make a cgroup look like ours. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "supervisor/sandbox/cgroup/cgroup_internal.h"

#define CG_MARK "trusted.aidp.ready"
/* How deep under a hierarchy's root an "aidp" parent is looked for (the
 * supervisor's own cgroup + "/aidp"; systemd nests a few levels). */
#define SWEEP_MAX_DEPTH 12

void cgfs_mark_dirs(const struct aidp_cgroup *cg, const char *mark)
{
        if (!mark)
                return;
        for (size_t i = 0; i < cg->n_dirs; i++)
                if (!cg->dirs[i].gone)
                        (void)setxattr(cg->dirs[i].path, CG_MARK, mark, strlen(mark), 0);
}

/* A ready cgroup taken by a run is the run's own: its mark goes, so that no
 * sweep (whatever it makes of the maker) ever takes it for a ready one. */
void cgfs_unmark_dirs(const struct aidp_cgroup *cg)
{
        for (size_t i = 0; i < cg->n_dirs; i++)
                if (!cg->dirs[i].gone)
                        (void)removexattr(cg->dirs[i].path, CG_MARK);
}

struct sweep {
        bool (*orphan)(const char *mark, void *arg);
        void (*removed)(const char *path, void *arg);
        void *arg;
        int n;
};

/* A cgroup directory is a directory, not a control file or a symlink. */
static bool is_dir(int dfd, const struct dirent *e)
{
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
                return false;
        if (e->d_type != DT_UNKNOWN)
                return e->d_type == DT_DIR;
        struct stat st;
        return fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* The marked children of an "aidp" parent (pfd) whose maker is gone: rmdir
 * alone, never a kill. A cgroup with a process in it (a run's) cannot be
 * removed (EBUSY), so the kernel itself keeps whatever is in use. */
static int sweep_parent(int pfd, const char *ppath, struct sweep *s)
{
        DIR *d = fdopendir(pfd);
        if (!d) {
                close(pfd);
                return 0;
        }
        int removed = 0;
        for (struct dirent *e; (e = readdir(d));) {
                if (!is_dir(dirfd(d), e))
                        continue;
                int cfd = openat(dirfd(d), e->d_name,
                                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (cfd < 0)
                        continue;
                char mark[PATH_MAX + 128];
                struct stat st;
                ssize_t n = fgetxattr(cfd, CG_MARK, mark, sizeof mark - 1);
                bool root = fstat(cfd, &st) == 0 && st.st_uid == 0;
                close(cfd);
                if (n <= 0 || !root)
                        continue;
                mark[n] = '\0';
                if (!s->orphan(mark, s->arg) || unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0)
                        continue;
                removed++;
                char path[PATH_MAX];
                if (s->removed && cgfs_path(path, sizeof path, "%s/%s", ppath, e->d_name) == 0)
                        s->removed(path, s->arg);
        }
        closedir(d);
        return removed;
}

/* Below one cgroup directory (dfd, at path): every "aidp" parent, down to
 * SWEEP_MAX_DEPTH. An "aidp" parent that the sweep emptied goes too, as a
 * run's end removes it (a maker retries when it went between its mkdirs). */
static void sweep_tree(int dfd, const char *path, int depth, struct sweep *s)
{
        DIR *d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return;
        }
        for (struct dirent *e; (e = readdir(d));) {
                if (!is_dir(dirfd(d), e))
                        continue;
                char sub[PATH_MAX];
                if (cgfs_path(sub, sizeof sub, "%s/%s", path, e->d_name) < 0)
                        continue;
                int fd = openat(dirfd(d), e->d_name,
                                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        continue;
                /* A subtree delegated to a user (its directories theirs) holds
                 * no ready cgroup of ours, and may be as wide and deep as that
                 * user likes: not entered. */
                struct stat st;
                if (fstat(fd, &st) < 0 || st.st_uid != 0) {
                        close(fd);
                        continue;
                }
                if (!strcmp(e->d_name, "aidp")) {
                        int n = sweep_parent(fd, sub, s);
                        s->n += n;
                        if (n > 0)
                                (void)unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
                } else if (depth < SWEEP_MAX_DEPTH)
                        sweep_tree(fd, sub, depth + 1, s);
                else
                        close(fd);
        }
        closedir(d);
}

static bool on_cgroupfs(const char *path)
{
        struct statfs f;
        return statfs(path, &f) == 0 &&
               (f.f_type == CGROUP2_SUPER_MAGIC || f.f_type == CGROUP_SUPER_MAGIC);
}

int aidp_cgroup_sweep_marked(bool (*orphan)(const char *mark, void *arg),
                             void (*removed)(const char *path, void *arg), void *arg)
{
        struct sweep s = {.orphan = orphan, .removed = removed, .arg = arg};
        int root = open(CG_ROOT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
                return 0;
        /* Pure v2: the hierarchy is mounted on /sys/fs/cgroup itself. */
        if (on_cgroupfs(CG_ROOT)) {
                sweep_tree(root, CG_ROOT, 0, &s);
                return s.n;
        }
        /* v1 (and a hybrid's cgroup2 on "unified"): one hierarchy per
         * directory of the tmpfs; the co-mount aliases are symlinks, skipped. */
        DIR *d = fdopendir(root);
        if (!d) {
                close(root);
                return 0;
        }
        for (struct dirent *e; (e = readdir(d));) {
                char h[PATH_MAX];
                if (!is_dir(dirfd(d), e) || cgfs_path(h, sizeof h, CG_ROOT "/%s", e->d_name) < 0 ||
                    !on_cgroupfs(h))
                        continue;
                int fd = openat(dirfd(d), e->d_name,
                                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0)
                        sweep_tree(fd, h, 0, &s);
        }
        closedir(d);
        return s.n;
}
