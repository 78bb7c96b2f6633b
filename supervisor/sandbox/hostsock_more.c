#define _GNU_SOURCE
/* The host sockets' candidates beyond the list (hostsock_more.h). */
#include "supervisor/sandbox/hostsock_more.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/strv.h"

/* Four of the chunks the list travels in (hostsock.c): a buffer's first size. */
#define FIRST (4 * 32768)

/* pid 1 takes its memory straight from the kernel: it was cloned from a
 * supervisor whose other threads may have held malloc's locks, and the host
 * decides how many sockets there are, so no fixed size fits. */
int aidp_hostsock_grow(void **p, size_t *cap, size_t need)
{
        if (need <= *cap)
                return 0;
        size_t nc = *cap ? *cap : FIRST;
        while (nc < need)
                if (__builtin_mul_overflow(nc, 2, &nc))
                        return -ENOMEM;
        void *q = *p ? mremap(*p, *cap, nc, MREMAP_MAYMOVE)
                     : mmap(NULL, nc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED)
                return -ENOMEM;
        *p = q;
        *cap = nc;
        return 0;
}

static void unmap(void *p, size_t cap)
{
        if (p)
                munmap(p, cap);
}

void aidp_hostsock_more_release(struct aidp_hostsock_more *m)
{
        unmap(m->u, m->u_cap);
        unmap(m->belows, m->belows_cap);
        *m = (struct aidp_hostsock_more){0};
}

/* The length of path's directory ("/a/b" of "/a/b/s.sock", "" of "/s"). */
static size_t dir_len(const char *path)
{
        const char *s = strrchr(path, '/');
        return s ? (size_t)(s - path) : 0;
}

/* The end of the run of paths from i on that share paths[i]'s directory. */
static size_t run_end(char *const *v, size_t n, size_t i)
{
        size_t dl = dir_len(v[i]);
        size_t j = i + 1;
        while (j < n && dir_len(v[j]) == dl && !memcmp(v[j], v[i], dl))
                j++;
        return j;
}

/* The host as pid 1 sees it before the pivot: its own root, except below
 * the directory its staging holder covers (mask_src, /tmp), reached through
 * an fd taken before that mount. */
struct host {
        const char *shadowed;
        size_t sl;
        int shadowed_fd;
};

/* path (len bytes, NUL-terminated there) for a lookup from *at in the
 * host's view: "" for the shadowed directory itself. */
static const char *host_rel(const struct host *h, const char *path, size_t len, int *at)
{
        *at = AT_FDCWD;
        if (h->shadowed_fd < 0 || len < h->sl || memcmp(path, h->shadowed, h->sl) ||
            (len > h->sl && path[h->sl] != '/'))
                return len ? path : "/";
        *at = h->shadowed_fd;
        return len > h->sl ? path + h->sl + 1 : "";
}

/* The directory of path (its first dl bytes) opened with flags in the
 * host's view: -1 when it cannot be. Resolved as the list's paths always
 * were (hostsock.c's enter_dir), without magic links; O_DIRECTORY, so no
 * device or FIFO is ever opened. An absolute symlink on the way is resolved
 * from pid 1's root, where the holder covers mask_src. */
static int open_dir(const struct host *h, const char *path, size_t dl, int flags)
{
        char dir[PATH_MAX];
        if (dl >= sizeof dir)
                return -1;
        memcpy(dir, path, dl);
        dir[dl] = '\0';
        struct open_how how = {.flags = (uint64_t)flags | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_NO_MAGICLINKS};
        int at;
        const char *rel = host_rel(h, dir, dl, &at);
        return (int)syscall(SYS_openat2, at, *rel ? rel : ".", &how, sizeof how);
}

/* The socket files of the directory of paths[from, to) (one directory),
 * when it no longer shows one of their names as a socket, pushed on found
 * as paths. */
static int renamed_in(char *const *paths, size_t from, size_t to, char ***found, size_t *nf)
{
        size_t dl = dir_len(paths[from]);
        const struct host h = {.shadowed = "", .shadowed_fd = -1};
        _cleanup_close_ int fd = open_dir(&h, paths[from], dl, O_RDONLY);
        if (fd < 0)
                return 0;
        bool gone = false;
        for (size_t i = from; i < to && !gone; i++) {
                struct stat st;
                gone = fstatat(fd, paths[i] + dl + 1, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                       !S_ISSOCK(st.st_mode);
        }
        char buf[4096] __attribute__((aligned(8)));
        long got;
        int rc = 0;
        while (gone && rc == 0 && (got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
                for (long off = 0; rc == 0 && off < got;) {
                        struct dirent64 *e = (struct dirent64 *)(void *)(buf + off);
                        off += e->d_reclen;
                        struct stat st;
                        if (e->d_type != DT_SOCK &&
                            (e->d_type != DT_UNKNOWN ||
                             fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                             !S_ISSOCK(st.st_mode)))
                                continue;
                        char path[PATH_MAX];
                        if (snprintf(path, sizeof path, "%.*s/%s", (int)dl, paths[from],
                                     e->d_name) < (int)sizeof path)
                                rc = aidp_strv_push(found, nf, path);
                }
        return rc;
}

int aidp_hostsock_add_renamed(char ***paths, size_t *n)
{
        char **found = NULL;
        size_t nf = 0;
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < *n;) {
                size_t j = run_end(*paths, *n, i);
                rc = renamed_in(*paths, i, j, &found, &nf);
                i = j;
        }
        char **all = NULL;
        size_t na = 0;
        if (rc == 0 && nf && aidp_strv_union(*paths, *n, found, nf, &all, &na) < 0)
                rc = -ENOMEM;
        aidp_strv_free(found);
        if (rc < 0 || !nf)
                return rc;
        aidp_strv_free(*paths);
        *paths = all;
        *n = na;
        return 0;
}

static int push_under(struct aidp_hostsock_more *m, size_t from, size_t to, size_t bind,
                      const char *below)
{
        size_t len = strlen(below) + 1;
        if (aidp_hostsock_grow((void **)&m->belows, &m->belows_cap, m->belows_used + len) < 0 ||
            aidp_hostsock_grow((void **)&m->u, &m->u_cap, (m->nu + 1) * sizeof *m->u) < 0)
                return -ENOMEM;
        memcpy(m->belows + m->belows_used, below, len);
        m->u[m->nu++] = (struct aidp_hostsock_under){
                .first = from, .count = to - from, .bind = bind, .below = m->belows_used};
        m->belows_used += len;
        return 0;
}

/* The directories on the last real path walked, from the top (the list is
 * sorted, so the next directory shares most of them): each one's end in
 * the path, device and inode. */
#define WALK_LEVELS 64
struct walked {
        char path[PATH_MAX];
        size_t n;
        struct {
                size_t end;
                dev_t dev;
                ino_t ino;
        } lv[WALK_LEVELS];
};

/* fstatat of real[0, end) in the host's view (its own names: no symlink on
 * the way to follow). */
static bool stat_prefix(const struct host *h, char *real, size_t end, struct stat *st)
{
        char c = real[end];
        real[end] = '\0';
        int at;
        const char *rel = host_rel(h, real, end, &at);
        bool ok = fstatat(at, rel, st, AT_SYMLINK_NOFOLLOW | (*rel ? 0 : AT_EMPTY_PATH)) == 0;
        real[end] = c;
        return ok;
}

/* The run v[from, to) below each directory bind whose bound directory is
 * its directory or one above it. Each directory on its real path (its fd's
 * link: no symlink, no "..") is compared with the bound ones by device and
 * inode; the names below a match are the rest of that path. A fstatat per
 * directory not shared with the last run's path. */
static int under_binds(const struct host *h, struct walked *w, struct aidp_hostsock_more *m,
                       char *const *v, size_t from, size_t to,
                       const struct aidp_hostsock_bind *binds, size_t nb)
{
        _cleanup_close_ int fd = open_dir(h, v[from], dir_len(v[from]), O_PATH);
        char link[64], real[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t len = fd < 0 ? -1 : readlink(link, real, sizeof real - 1);
        if (len <= 1 || real[0] != '/')
                return 0; /* gone, too long to name, or the root (never bound) */
        real[len] = '\0';
        bool same = true; /* so far the same directories as the last path */
        for (size_t end = 1, i = 0; end <= (size_t)len; end++) {
                if (real[end] != '/' && real[end] != '\0')
                        continue;
                struct stat st;
                same = same && i < w->n && w->lv[i].end == end && !memcmp(w->path, real, end);
                if (same) {
                        st.st_dev = w->lv[i].dev;
                        st.st_ino = w->lv[i].ino;
                } else {
                        bool ok = stat_prefix(h, real, end, &st);
                        if (i < WALK_LEVELS) {
                                w->lv[i].end = end;
                                w->lv[i].dev = ok ? st.st_dev : 0;
                                w->lv[i].ino = ok ? st.st_ino : 0;
                                w->n = i + 1;
                        }
                        if (!ok)
                                break;
                }
                for (size_t b = 0; b < nb; b++) {
                        if (binds[b].is_socket || binds[b].dev != st.st_dev ||
                            binds[b].ino != st.st_ino)
                                continue;
                        int rc = push_under(m, from, to, b, real + end);
                        if (rc < 0)
                                return rc;
                }
                i++;
        }
        memcpy(w->path, real, (size_t)len + 1);
        return 0;
}

int aidp_hostsock_more_make(char *const *paths, size_t n, const struct aidp_hostsock_bind *binds,
                            size_t nb, const char *shadowed, int shadowed_fd,
                            struct aidp_hostsock_more *m)
{
        *m = (struct aidp_hostsock_more){0};
        struct host h = {.shadowed = shadowed, .sl = strlen(shadowed), .shadowed_fd = shadowed_fd};
        int rc = 0;
        bool any_dir = false;
        for (size_t b = 0; b < nb; b++)
                any_dir |= !binds[b].is_socket;
        static struct walked w;
        w.n = 0;
        for (size_t i = 0; rc == 0 && any_dir && i < n;) {
                size_t j = run_end(paths, n, i);
                rc = under_binds(&h, &w, m, paths, i, j, binds, nb);
                i = j;
        }
        if (rc < 0)
                aidp_hostsock_more_release(m);
        return rc;
}
