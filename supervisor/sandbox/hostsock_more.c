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
        unmap(m->v, m->v_cap);
        unmap(m->u, m->u_cap);
        unmap(m->found, m->found_cap);
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
        int at = AT_FDCWD;
        const char *rel = dl ? dir : "/";
        if (h->shadowed_fd >= 0 && dl >= h->sl && !memcmp(dir, h->shadowed, h->sl) &&
            (dir[h->sl] == '/' || dir[h->sl] == '\0')) {
                at = h->shadowed_fd;
                rel = dir[h->sl] ? dir + h->sl + 1 : ".";
        }
        return (int)syscall(SYS_openat2, at, rel, &how, sizeof how);
}

/* Is name one of the names of the run v[from, to) (sorted: one directory,
 * so by name)? */
static bool listed(char *const *v, size_t from, size_t to, size_t dl, const char *name)
{
        while (from < to) {
                size_t mid = from + (to - from) / 2;
                int c = strcmp(v[mid] + dl + 1, name);
                if (!c)
                        return true;
                if (c < 0)
                        from = mid + 1;
                else
                        to = mid;
        }
        return false;
}

static int push_found(struct aidp_hostsock_more *m, const char *dir, size_t dl, const char *name)
{
        size_t len = dl + 1 + strlen(name) + 1;
        if (len > PATH_MAX)
                return 0; /* no such path can be named */
        if (aidp_hostsock_grow((void **)&m->found, &m->found_cap, m->found_used + len) < 0)
                return -ENOMEM;
        char *p = m->found + m->found_used;
        memcpy(p, dir, dl);
        p[dl] = '/';
        strcpy(p + dl + 1, name);
        m->found_used += len;
        return 0;
}

/* A run whose directory no longer shows one of its names as a socket: that
 * socket was renamed (or removed), so each socket file in the directory that
 * the run does not name is a candidate as well. The common case (every name
 * there) costs a fstatat a name. */
static int renamed_in(const struct host *h, struct aidp_hostsock_more *m, char *const *v,
                      size_t from, size_t to)
{
        size_t dl = dir_len(v[from]);
        _cleanup_close_ int fd = open_dir(h, v[from], dl, O_RDONLY);
        if (fd < 0)
                return 0;
        bool gone = false;
        for (size_t i = from; i < to && !gone; i++) {
                struct stat st;
                gone = fstatat(fd, v[i] + dl + 1, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
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
                        if (!listed(v, from, to, dl, e->d_name))
                                rc = push_found(m, v[from], dl, e->d_name);
                }
        return rc;
}

/* more->v: the list's paths, then those found. */
static int with_found(const struct host *h, struct aidp_hostsock_more *m, char *const *paths,
                      size_t n)
{
        for (size_t i = 0; i < n;) {
                size_t j = run_end(paths, n, i);
                int rc = renamed_in(h, m, paths, i, j);
                if (rc < 0)
                        return rc;
                i = j;
        }
        size_t nf = 0;
        for (size_t off = 0; off < m->found_used; off += strlen(m->found + off) + 1)
                nf++;
        if (aidp_hostsock_grow((void **)&m->v, &m->v_cap, (n + nf + 1) * sizeof *m->v) < 0)
                return -ENOMEM;
        memcpy(m->v, paths, n * sizeof *m->v);
        m->n = n;
        for (size_t off = 0; off < m->found_used; off += strlen(m->found + off) + 1)
                m->v[m->n++] = m->found + off;
        m->v[m->n] = NULL;
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

/* The run v[from, to) below each directory bind whose bound directory is
 * its directory or one above it. From the directory up through "..", as
 * many levels as its real path (its fd's link: no symlink, no "..") has
 * names, each compared with the bound ones by device and inode; the names
 * below a match are the last ones of that path. */
static int under_binds(const struct host *h, struct aidp_hostsock_more *m, size_t from, size_t to,
                       const struct aidp_hostsock_bind *binds, size_t nb)
{
        int fd = open_dir(h, m->v[from], dir_len(m->v[from]), O_PATH);
        char link[64], real[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t len = fd < 0 ? -1 : readlink(link, real, sizeof real - 1);
        int rc = 0;
        /* real: "/a/b/c"; below: where the names under level k start */
        size_t below = len > 1 && real[0] == '/' ? (size_t)len : 0;
        if (below)
                real[below] = '\0';
        while (rc == 0 && below > 0) {
                struct stat st;
                if (fstat(fd, &st) < 0)
                        break;
                for (size_t b = 0; rc == 0 && b < nb; b++)
                        if (!binds[b].is_socket && binds[b].dev == st.st_dev &&
                            binds[b].ino == st.st_ino)
                                rc = push_under(m, from, to, b, real + below);
                while (below > 0 && real[--below] != '/')
                        ;
                int up = below ? openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
                close(fd);
                fd = up;
                if (below && fd < 0)
                        break;
        }
        if (fd >= 0)
                close(fd);
        return rc;
}

int aidp_hostsock_more_make(char *const *paths, size_t n, const struct aidp_hostsock_bind *binds,
                            size_t nb, const char *shadowed, int shadowed_fd,
                            struct aidp_hostsock_more *m)
{
        *m = (struct aidp_hostsock_more){0};
        struct host h = {.shadowed = shadowed, .sl = strlen(shadowed), .shadowed_fd = shadowed_fd};
        int rc = with_found(&h, m, paths, n);
        bool any_dir = false;
        for (size_t b = 0; b < nb; b++)
                any_dir |= !binds[b].is_socket;
        for (size_t i = 0; rc == 0 && any_dir && i < m->n;) {
                size_t j = run_end(m->v, m->n, i);
                rc = under_binds(&h, m, i, j, binds, nb);
                i = j;
        }
        if (rc < 0)
                aidp_hostsock_more_release(m);
        return rc;
}
