#define _GNU_SOURCE
/* Host unix sockets kept out of the sandbox (hostsock.h). */
#include "supervisor/sandbox/hostsock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/landlock.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/strv.h"

/* Newer than Debian 12's kernel headers: the layout of ABI 6. */
struct hostsock_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
        uint64_t scoped;
};
#define HOSTSOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define HOSTSOCK_LANDLOCK_ABI_SCOPED        6

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose)
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

/* One namespace's table: "Num RefCount Protocol Flags Type St Inode Path".
 * The path is the rest of the line after the seventh field (it may contain
 * spaces); abstract names start with '@' and are left out. */
static int read_unix_table(int proc_fd, const char *pid, char ***v, size_t *n)
{
        char rel[NAME_MAX + 16];
        snprintf(rel, sizeof rel, "%s/net/unix", pid);
        int fd = openat(proc_fd, rel, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0; /* the process is gone */
        _cleanup_(fclosep) FILE *f = fdopen(fd, "re");
        if (!f) {
                close(fd);
                return -ENOMEM;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int rc = 0;
        while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
                if (line[len - 1] == '\n')
                        line[--len] = '\0';
                char *p = line;
                for (int field = 0; field < 7 && p; field++) {
                        p += strspn(p, " ");
                        p = strchr(p, ' ');
                }
                if (!p || p[1] != '/')
                        continue;
                rc = aidp_strv_push(v, n, p + 1);
        }
        free(line);
        return rc;
}

int aidp_hostsock_collect(char ***ret)
{
        _cleanup_close_ int proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (proc_fd < 0)
                return -errno;
        int dup_fd = fcntl(proc_fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return -errno;
        _cleanup_(closedirp) DIR *d = fdopendir(dup_fd);
        if (!d) {
                close(dup_fd);
                return -errno;
        }
        /* Namespaces already read, by inode of their ns/net file. */
        ino_t seen[4096];
        size_t n_seen = 0;
        _cleanup_(aidp_strv_freep) char **v = NULL;
        size_t n = 0;
        int rc = 0;
        struct dirent *e;
        while (rc == 0 && (e = readdir(d))) {
                if (e->d_name[0] < '1' || e->d_name[0] > '9')
                        continue;
                char rel[NAME_MAX + 16];
                struct stat st;
                snprintf(rel, sizeof rel, "%s/ns/net", e->d_name);
                if (fstatat(proc_fd, rel, &st, 0) < 0)
                        continue;
                bool known = false;
                for (size_t i = 0; i < n_seen && !known; i++)
                        known = seen[i] == st.st_ino;
                if (known)
                        continue;
                if (n_seen < sizeof seen / sizeof seen[0])
                        seen[n_seen++] = st.st_ino;
                rc = read_unix_table(proc_fd, e->d_name, &v, &n);
        }
        if (rc < 0)
                return rc;
        size_t nu = 0;
        if (aidp_strv_union(v, n, NULL, 0, ret, &nu) < 0)
                return -ENOMEM;
        return (int)nu;
}

/* The list travels in messages of at most CHUNK bytes: 'P' and NUL-terminated
 * paths, then 'E' alone. */
#define CHUNK 32768

int aidp_hostsock_send(int sock, char *const *paths, size_t n)
{
        static char msg[CHUNK];
        size_t used = 1;
        msg[0] = 'P';
        for (size_t i = 0; i <= n; i++) {
                size_t len = i < n ? strlen(paths[i]) + 1 : 0;
                if (len >= CHUNK)
                        continue; /* no path is that long (PATH_MAX) */
                if ((i == n && used > 1) || used + len > CHUNK) {
                        if (send(sock, msg, used, MSG_NOSIGNAL) < 0)
                                return -errno;
                        used = 1;
                }
                memcpy(msg + used, i < n ? paths[i] : "", len);
                used += len;
        }
        return send(sock, "E", 1, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* pid 1 takes its memory straight from the kernel (mmap, mremap): it was
 * cloned from a supervisor whose other threads may have held malloc's locks,
 * and the host decides how many sockets there are, so no fixed size fits. */
static int grow(void **p, size_t *cap, size_t need)
{
        if (need <= *cap)
                return 0;
        size_t nc = *cap ? *cap : 4 * CHUNK;
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

void aidp_hostsock_list_release(struct aidp_hostsock_list *l)
{
        if (l->buf)
                munmap(l->buf, l->buf_cap);
        if (l->v)
                munmap(l->v, l->v_cap);
        *l = (struct aidp_hostsock_list){0};
}

/* The received paths lie end to end in l->buf[0, used): point l->v at each. */
static int index_paths(struct aidp_hostsock_list *l, size_t used)
{
        size_t n = 0;
        for (size_t off = 0; off < used; off += strlen(l->buf + off) + 1)
                n++;
        if (grow((void **)&l->v, &l->v_cap, (n + 1) * sizeof *l->v) < 0)
                return -ENOMEM;
        size_t i = 0;
        for (size_t off = 0; off < used; off += strlen(l->buf + off) + 1)
                l->v[i++] = l->buf + off;
        l->v[n] = NULL;
        l->n = n;
        return 0;
}

static int recv_list(int sock, struct aidp_hostsock_list *l)
{
        size_t used = 0;
        for (;;) {
                if (grow((void **)&l->buf, &l->buf_cap, used + CHUNK) < 0)
                        return -ENOMEM;
                ssize_t k = recv(sock, l->buf + used, CHUNK, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EPIPE; /* the supervisor gave up */
                char *m = l->buf + used;
                if (m[0] == 'E')
                        return index_paths(l, used);
                if (m[0] != 'P' || m[k - 1] != '\0')
                        return -EPROTO;
                /* Paths only, end to end: the 'P' goes. */
                memmove(m, m + 1, (size_t)k - 1);
                used += (size_t)k - 1;
        }
}

int aidp_hostsock_recv(int sock, struct aidp_hostsock_list *l)
{
        *l = (struct aidp_hostsock_list){0};
        int rc = recv_list(sock, l);
        if (rc < 0) {
                aidp_hostsock_list_release(l);
                return rc;
        }
        return (int)l->n;
}

/* Cover path if it shows a socket in the job's view. 1: covered, 0: nothing
 * there (or not a socket), -errno. */
static int cover_one(int root_fd, const char *mask_file, const char *path)
{
        /* Resolved as the job will resolve it after pivot_root: symlinks
         * (/var/run -> /run) inside the new root. */
        struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                               .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
        if (fd < 0)
                return 0; /* not in the job's view */
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                close(fd);
                return 0;
        }
        /* A detached clone of the empty file, moved onto the socket through
         * the fd that resolved it: connect() then needs write permission on
         * a mode-0 file (EACCES), and nothing in the sandbox can unmount it
         * (no CAP_SYS_ADMIN, and mount is refused). */
        int m = open_tree(AT_FDCWD, mask_file, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        int rc = m < 0 ? -1
                       : move_mount(m, "", fd, "",
                                    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
        int e = errno;
        if (m >= 0)
                close(m);
        close(fd);
        return rc < 0 ? -e : 1;
}

/* Is path the target of a bind of a socket file (allowed explicitly)? */
static bool allowed_at(const char *path, const struct aidp_hostsock_bind *binds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (binds[i].is_socket && !strcmp(binds[i].target, path))
                        return true;
        return false;
}

int aidp_hostsock_cover(int root_fd, const char *mask_file, char *const *paths, size_t n,
                        const struct aidp_hostsock_bind *binds, size_t n_binds, const char **failed)
{
        static char image[PATH_MAX]; /* pid 1 is single-threaded */
        int covered = 0;
        for (size_t i = 0; i < n; i++) {
                /* The host path itself, then its image under each bind of a
                 * directory above it (source/x/s.sock at target/x/s.sock). */
                for (size_t b = 0; b <= n_binds; b++) {
                        const char *p = paths[i];
                        if (b < n_binds) {
                                const struct aidp_hostsock_bind *bd = &binds[b];
                                size_t sl = strlen(bd->source);
                                if (bd->is_socket || strncmp(p, bd->source, sl) || p[sl] != '/')
                                        continue;
                                int k = snprintf(image, sizeof image, "%s%s", bd->target, p + sl);
                                if (k < 0 || (size_t)k >= sizeof image)
                                        continue; /* no such path can exist */
                                p = image;
                        }
                        if (allowed_at(p, binds, n_binds))
                                continue;
                        int rc = cover_one(root_fd, mask_file, p);
                        if (rc < 0) {
                                *failed = paths[i];
                                return rc;
                        }
                        covered += rc;
                }
        }
        return covered;
}

int aidp_hostsock_cover_view(const char *root, const char *mask_dir,
                             const struct aidp_profile *profile, const struct stat *bind_st,
                             char *const *paths, size_t n, const char **failed)
{
        size_t nb = profile ? profile->n_binds : 0;
        struct aidp_hostsock_bind binds[nb ? nb : 1];
        for (size_t i = 0; i < nb; i++) {
                const struct aidp_bind *b = &profile->binds[i];
                binds[i] = (struct aidp_hostsock_bind){.source = b->source,
                                                       .target = b->target ? b->target : b->source,
                                                       .is_socket = S_ISSOCK(bind_st[i].st_mode)};
        }
        static char mask_file[PATH_MAX];
        if (snprintf(mask_file, sizeof mask_file, "%s/f", mask_dir) >= (int)sizeof mask_file) {
                *failed = mask_dir;
                return -ENAMETOOLONG;
        }
        int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0) {
                *failed = root;
                return -errno;
        }
        int rc = aidp_hostsock_cover(rfd, mask_file, paths, n, binds, nb, failed);
        close(rfd);
        return rc;
}

int aidp_hostsock_cover_sent(int sync_fd, const char *root, const char *mask_dir,
                             const struct aidp_profile *profile, const struct stat *bind_st,
                             const char **failed)
{
        struct aidp_hostsock_list l;
        int n = aidp_hostsock_recv(sync_fd, &l);
        if (n < 0) {
                *failed = "receiving the host's unix sockets";
                return n;
        }
        int rc = aidp_hostsock_cover_view(root, mask_dir, profile, bind_st, l.v, l.n, failed);
        /* *failed may point into the list, which goes back to the kernel:
         * pages charged to the run's cgroup for as long as pid 1 lives. */
        static char failed_copy[PATH_MAX];
        if (rc < 0) {
                snprintf(failed_copy, sizeof failed_copy, "%s", *failed);
                *failed = failed_copy;
        }
        aidp_hostsock_list_release(&l);
        return rc;
}

int aidp_hostsock_scope_abstract(void)
{
        long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        if (abi < HOSTSOCK_LANDLOCK_ABI_SCOPED)
                return 0; /* no Landlock (ENOSYS, EOPNOTSUPP) or no scoping yet */
        struct hostsock_ruleset_attr attr = {.scoped = HOSTSOCK_SCOPE_ABSTRACT_UNIX_SOCKET};
        int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
        if (fd < 0)
                return -errno;
        /* Needs no_new_privs (set with the credentials' drop). */
        int rc = (int)syscall(SYS_landlock_restrict_self, fd, 0);
        int e = errno;
        close(fd);
        return rc < 0 ? -e : 1;
}
