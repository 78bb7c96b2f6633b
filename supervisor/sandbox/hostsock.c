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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "supervisor/sandbox/mask.h"
#include "supervisor/sandbox/hostsock_more.h"
#include "supervisor/sandbox/mask_tree.h"

/* Newer than Debian 12's kernel headers: the layout of ABI 6. */
struct hostsock_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
        uint64_t scoped;
};
#define HOSTSOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define HOSTSOCK_LANDLOCK_ABI_SCOPED        6

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose)

/* Test builds only (AIDP_FAULT_HOSTSOCK_GONE=PID; supervisor/cli/env.c: the
 * production binary refuses a run that sets it): process PID reads as gone
 * between its ns/net link and its table, as one that exits right there does
 * (tests/priv/test_hostsock.c). */
static bool fault_gone(const char *dir)
{
        const char *pid = getenv("AIDP_FAULT_HOSTSOCK_GONE");
        return pid && !strcmp(pid, dir);
}

/* One namespace's table: "Num RefCount Protocol Flags Type St Inode Path".
 * The path is the rest of the line after the seventh field (it may contain
 * spaces); abstract names start with '@' and are left out. dir is a process's
 * (or a thread's) directory in /proc. 1 when read, 0 when it is gone (the
 * table was not read), -errno. */
static int read_unix_table(int proc_fd, const char *dir, char ***v, size_t *n)
{
        char rel[2 * NAME_MAX + 16];
        snprintf(rel, sizeof rel, "%s/net/unix", dir);
        int fd = fault_gone(dir) ? -1 : openat(proc_fd, rel, O_RDONLY | O_CLOEXEC);
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
        return rc < 0 ? rc : 1;
}

/* A process's network namespace, as its link names it ("net:[4026531840]"):
 * readlink stops at the magic link, where a stat would follow it to an nsfs
 * inode and dentry (made, and freed again, for a namespace no fd holds). The
 * number is the namespace's inode, unique among live namespaces. false when
 * the process is gone. */
static bool net_ns_of(int proc_fd, const char *dir, unsigned long long *ino)
{
        char rel[2 * NAME_MAX + 16], link[64];
        snprintf(rel, sizeof rel, "%s/ns/net", dir);
        ssize_t n = readlinkat(proc_fd, rel, link, sizeof link - 1);
        if (n <= 0)
                return false;
        link[n] = '\0';
        return sscanf(link, "net:[%llu]", ino) == 1;
}

/* The walk's state: the namespaces whose table was read, by the inode their
 * ns/net link names, and the paths so far. */
struct walk {
        int proc_fd;
        unsigned long long seen[4096];
        size_t n_seen;
        char **v;
        size_t n;
};

/* The table of the namespace dir is in, unless it was read already. A
 * namespace counts as read only once its table was: a process that exits
 * between its link and its table leaves the namespace to its next process
 * (else a namespace whose first process comes and goes would never be read,
 * and its sockets never covered). Past the seen list's size, namespaces are
 * read again: slower, never missed. 1 read (or known), 0 gone, -errno. */
static int read_ns_of(struct walk *w, const char *dir)
{
        unsigned long long ino;
        if (!net_ns_of(w->proc_fd, dir, &ino))
                return 0;
        for (size_t i = 0; i < w->n_seen; i++)
                if (w->seen[i] == ino)
                        return 1;
        int rc = read_unix_table(w->proc_fd, dir, &w->v, &w->n);
        if (rc > 0 && w->n_seen < ARRAY_SIZE(w->seen))
                w->seen[w->n_seen++] = ino;
        return rc;
}

/* A process whose own ns/net link cannot be read: gone, or a thread-group
 * leader that exited (a zombie until its last thread ends) while another
 * thread lives on, maybe holding a listener in a namespace no other process
 * is in. Its threads' links name that namespace, and a thread's directory
 * has the table too. Only then: one more getdents64 per such process, none
 * for a live leader. 1 read (or known), 0 gone, -errno. */
static int read_ns_of_threads(struct walk *w, const char *pid)
{
        char rel[NAME_MAX + 16];
        snprintf(rel, sizeof rel, "%s/task", pid);
        _cleanup_close_ int fd = openat(w->proc_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        char buf[4096] __attribute__((aligned(8)));
        long got;
        int rc = 0;
        while (rc >= 0 && (got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
                for (long off = 0; rc >= 0 && off < got;) {
                        struct dirent64 *e = (struct dirent64 *)(void *)(buf + off);
                        off += e->d_reclen;
                        char dir[2 * NAME_MAX + 16];
                        if (e->d_name[0] < '1' || e->d_name[0] > '9' || !strcmp(e->d_name, pid))
                                continue;
                        snprintf(dir, sizeof dir, "%s/task/%s", pid, e->d_name);
                        int r = read_ns_of(w, dir);
                        rc = r < 0 ? r : rc | r;
                }
        }
        return rc;
}

/* Every process's network namespace, each one's table read once. The
 * directory is read with getdents64 into a buffer on the stack, not through
 * opendir, whose fresh 32 KiB buffer is pages a daemon's worker writes after
 * pid 1's clone: copy-on-write faults (docs/run-core.md, "Start-up time"). */
int aidp_hostsock_collect(char ***ret)
{
        struct walk w = {.proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
        if (w.proc_fd < 0)
                return -errno;
        int rc = 0;
        char buf[8192] __attribute__((aligned(8)));
        long got = 0;
        while (rc >= 0 && (got = syscall(SYS_getdents64, w.proc_fd, buf, sizeof buf)) > 0) {
                for (long off = 0; rc >= 0 && off < got;) {
                        struct dirent64 *e = (struct dirent64 *)(void *)(buf + off);
                        off += e->d_reclen;
                        if (e->d_name[0] < '1' || e->d_name[0] > '9')
                                continue; /* not a process: "self", "sys", ... */
                        rc = read_ns_of(&w, e->d_name);
                        if (rc == 0)
                                rc = read_ns_of_threads(&w, e->d_name);
                }
        }
        if (rc >= 0 && got < 0)
                rc = -errno;
        close(w.proc_fd);
        size_t nu = 0;
        if (rc >= 0 && aidp_strv_union(w.v, w.n, NULL, 0, ret, &nu) < 0)
                rc = -ENOMEM;
        aidp_strv_free(w.v);
        /* Sockets renamed since their bind (hostsock_more.h): here, while
         * pid 1 builds its mounts, in the supervisor's own view. */
        if (rc >= 0 && aidp_hostsock_add_renamed(ret, &nu) < 0) {
                aidp_strv_free(*ret);
                *ret = NULL;
                rc = -ENOMEM;
        }
        return rc < 0 ? rc : (int)nu;
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
        if (aidp_hostsock_grow((void **)&l->v, &l->v_cap, (n + 1) * sizeof *l->v) < 0)
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
                if (aidp_hostsock_grow((void **)&l->buf, &l->buf_cap, used + CHUNK) < 0)
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

/* pid 1's covering (hostsock.h). Three passes over the candidates (each host
 * path, then its image under each bind of a directory above it:
 * hostsock_more.h), each as aidp_mask_view's hook; the candidates come
 * sorted by directory, so each pass opens a directory once for all the
 * sockets in it. */
struct cover {
        char *const *paths;
        size_t n;
        const struct aidp_hostsock_under *under;
        size_t nu;
        const char *belows;
        const struct aidp_hostsock_bind *binds;
        size_t nb;
        const char *mask_file;
        size_t bound;     /* covers made by a bind */
        const char *host; /* the host path of the current candidate */
        /* The directory of the last candidate, in the job's view. */
        char dir[PATH_MAX];
        size_t dl;
        bool have;
        int dir_fd;   /* O_PATH, or -1: no such directory */
        int layer_fd; /* its directory in the layer, or -1 */
        bool decided; /* layer pass: layer_fd is what it will be */
        bool grouped; /* groups pass: its mount has its group */
        char image[PATH_MAX];
        /* Where each socket bind's target leads in the job's view, for the
         * current pass (allowed_here); NULL when there is no socket bind. */
        struct place *allowed;
};

/* A file as the job reaches it: the mount it is on and its inode there. */
struct place {
        uint64_t mnt, ino;
        uint32_t major, minor;
        bool ok;
};

static bool place_of(int dfd, const char *name, int flags, struct place *pl)
{
        struct statx sx;
        *pl = (struct place){0};
        if (statx(dfd, name, flags | AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_MNT_ID, &sx) < 0 ||
            !(sx.stx_mask & STATX_MNT_ID))
                return false;
        *pl = (struct place){.mnt = sx.stx_mnt_id,
                             .ino = sx.stx_ino,
                             .major = sx.stx_dev_major,
                             .minor = sx.stx_dev_minor,
                             .ok = true};
        return true;
}

/* Where the socket binds' targets lead in the staging root now, resolved as
 * the job resolves them (symlinks stay inside the root): each is its bind's
 * mount of the host socket. Taken again for each pass, as the passes change
 * the mounts. */
static void allowed_places(struct cover *c, int root_fd)
{
        for (size_t i = 0; c->allowed && i < c->nb; i++) {
                c->allowed[i] = (struct place){0};
                if (!c->binds[i].is_socket)
                        continue;
                struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                                       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
                _cleanup_close_ int fd =
                        (int)syscall(SYS_openat2, root_fd, c->binds[i].target, &how, sizeof how);
                if (fd >= 0)
                        place_of(fd, "", AT_EMPTY_PATH, &c->allowed[i]);
        }
}

/* Does name in the candidate's directory lead to where a socket bind put
 * its socket? The same mount and inode: the bind's target itself, however
 * the path to it is spelled (a symlink such as /var/run -> /run between the
 * host's name for the socket and the profile's). Not the same socket seen
 * elsewhere (its host path in the read-only view is another mount): that
 * stays covered. */
static bool allowed_here(const struct cover *c, const char *name)
{
        struct place pl;
        if (!c->allowed || !place_of(c->dir_fd, name, 0, &pl))
                return false;
        for (size_t i = 0; i < c->nb; i++)
                if (c->allowed[i].ok && c->allowed[i].mnt == pl.mnt &&
                    c->allowed[i].ino == pl.ino && c->allowed[i].major == pl.major &&
                    c->allowed[i].minor == pl.minor)
                        return true;
        return false;
}

/* Is path the target of a bind of a socket file (allowed explicitly)? By
 * its spelling: the quick test; allowed_here decides by where it leads. */
static bool allowed_at(const char *path, const struct aidp_hostsock_bind *binds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (binds[i].is_socket && !strcmp(binds[i].target, path))
                        return true;
        return false;
}

/* The image of host path i below a bind (u: its directory is below the
 * bind's root): target/below/name. NULL when there is none, or it is the
 * target of a bind of a socket (reachable on purpose). */
static const char *image(struct cover *c, const struct aidp_hostsock_under *u, size_t i)
{
        const char *p = c->paths[i];
        int k = snprintf(c->image, sizeof c->image, "%s%s%s", c->binds[u->bind].target,
                         c->belows + u->below, strrchr(p, '/'));
        if (k < 0 || (size_t)k >= sizeof c->image)
                return NULL; /* no such path can exist */
        return allowed_at(c->image, c->binds, c->nb) ? NULL : c->image;
}

static void leave_dir(struct cover *c)
{
        if (c->dir_fd >= 0)
                close(c->dir_fd);
        if (c->layer_fd >= 0)
                close(c->layer_fd);
        c->dir_fd = c->layer_fd = -1;
        c->have = c->decided = c->grouped = false;
}

/* c->dir_fd: path's directory, resolved as the job will resolve it after
 * pivot_root (symlinks such as /var/run -> /run stay inside the new root),
 * kept while the candidates stay in it; name: path's last component. 1 when
 * that directory is there, 0 when not (nothing to cover), -errno. */
static int enter_dir(struct cover *c, int root_fd, const char *path, char name[NAME_MAX + 1])
{
        const char *slash = strrchr(path, '/');
        if (!slash || !slash[1] || strlen(slash + 1) > NAME_MAX || !strcmp(slash + 1, ".."))
                return 0;
        strcpy(name, slash + 1);
        size_t dl = (size_t)(slash - path);
        if (c->have && dl == c->dl && !memcmp(c->dir, path, dl))
                return c->dir_fd >= 0;
        leave_dir(c);
        memcpy(c->dir, path, dl);
        c->dir[dl] = '\0';
        c->dl = dl;
        c->have = true;
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
        c->dir_fd = (int)syscall(SYS_openat2, root_fd, dl ? c->dir : "/", &how, sizeof how);
        if (c->dir_fd >= 0)
                return 1;
        switch (errno) {
        case ENOENT:
        case ENOTDIR:
        case ELOOP:
        case ENAMETOOLONG:
        case EACCES: return 0; /* not in the job's view */
        default: return -errno;
        }
}

static bool is_socket(int dir_fd, const char *name)
{
        struct stat st;
        return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode);
}

typedef int (*cover_fn)(struct cover *c, const char *name, const char **failed);

/* fn for candidate p (of host path i) if its directory is in the job's view. */
static int one(struct cover *c, int root_fd, const char *p, size_t i, cover_fn fn,
               const char **failed)
{
        static char name[NAME_MAX + 1];
        if (!p)
                return 0;
        *failed = c->host = c->paths[i];
        int rc = enter_dir(c, root_fd, p, name);
        if (rc > 0 && !allowed_here(c, name))
                rc = fn(c, name, failed);
        return rc;
}

/* fn for each candidate: the host paths, then their images below each bind
 * in turn. */
static int each(struct cover *c, int root_fd, cover_fn fn, const char **failed)
{
        int rc = 0;
        leave_dir(c);
        allowed_places(c, root_fd);
        for (size_t i = 0; i < c->n && rc >= 0; i++) {
                const char *p = c->paths[i];
                rc = one(c, root_fd, allowed_at(p, c->binds, c->nb) ? NULL : p, i, fn, failed);
        }
        for (size_t b = 0; b < c->nb && rc >= 0; b++)
                for (size_t k = 0; k < c->nu && rc >= 0; k++) {
                        const struct aidp_hostsock_under *u = &c->under[k];
                        for (size_t i = u->first;
                             u->bind == b && i < u->first + u->count && rc >= 0; i++)
                                rc = one(c, root_fd, image(c, u, i), i, fn, failed);
                }
        leave_dir(c);
        return rc < 0 ? rc : 0;
}

/* Groups pass: the mount of each directory that shows a socket, if it is to
 * get an overlay, gets its group. Past the groups' limit, the rest are left
 * to the binds of the last pass. */
static int group_one(struct cover *c, const char *name, const char **failed)
{
        (void)failed;
        if (c->grouped || !is_socket(c->dir_fd, name))
                return 0;
        c->grouped = true;
        int rc = aidp_mask_overlay_wanted(c->dir_fd);
        struct aidp_mask_group *g;
        if (rc > 0)
                rc = aidp_mask_group_of(c->dir_fd, &g);
        /* A mount that cannot have its group (too deep, moved, too many):
         * its sockets are left to the binds, never the run failed. */
        return rc < 0 && rc != -ENOMEM ? 0 : rc;
}

/* Layer pass: a socket in a directory of a group's mount becomes a link to
 * the layer's one whiteout, at its name in the group's layer. A directory
 * the host moved meanwhile, or whose mount has no group, is left to the
 * binds of the last pass. */
static int layer_one(struct cover *c, const char *name, const char **failed)
{
        (void)failed;
        /* Only a directory that really shows a socket is copied into the
         * layer (the list may name paths whose socket is gone). */
        if (!is_socket(c->dir_fd, name))
                return 0;
        if (!c->decided) {
                c->decided = true;
                uint64_t id;
                struct aidp_mask_group *g =
                        aidp_mask_mount_id(c->dir_fd, &id) == 0 ? aidp_mask_find_group(id) : NULL;
                if (!g || aidp_mask_overlay_wanted(c->dir_fd) != 1)
                        return 0;
                int fd = -1;
                int rc = -ESTALE;
                /* A host renaming in a loop makes the walk miss now and then:
                 * a few tries before its sockets go to the bounded binds. */
                for (int t = 0; t < 8 && rc == -ESTALE; t++)
                        rc = aidp_mask_layer_dir(g, c->dir_fd, &fd);
                if (rc == -ENOMEM)
                        return rc;
                /* Anything else (moved, too deep, too many directories): the
                 * binds of the last pass, never the run failed. */
                c->layer_fd = rc > 0 ? fd : -1;
        }
        if (c->layer_fd < 0)
                return 0;
        if (linkat(aidp_mask_state.layer_fd, "wh", c->layer_fd, name, 0) < 0 && errno != EEXIST &&
            errno != ENOSPC && errno != EMLINK)
                return -errno;
        return 0; /* out of room in the layer: left to the binds */
}

/* Last pass, through the overlays: a socket still there (in a writable
 * bind, or left over above) gets the mode-0 file bound over it, by an fd
 * that reached it beneath its directory, without symlinks. connect() then
 * needs write permission on a mode-0 file (EACCES), and nothing in the
 * sandbox can unmount it (no CAP_SYS_ADMIN, and mount is refused). Each is
 * a mount, so there is a limit: past it the run stops, naming the directory,
 * rather than let a host user's sockets fill the mount table. */
static int bind_one(struct cover *c, const char *name, const char **failed)
{
        struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                          RESOLVE_NO_MAGICLINKS};
        _cleanup_close_ int fd = (int)syscall(SYS_openat2, c->dir_fd, name, &how, sizeof how);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
                return 0;
        if (++c->bound > AIDP_HOSTSOCK_MAX_BINDS) {
                static char why[2 * PATH_MAX + 160];
                int hl = (int)(strrchr(c->host, '/') - c->host);
                snprintf(why, sizeof why,
                         "%s (on the host %.*s): more than %d host unix sockets to cover in "
                         "writable mounts, a mount each (docs/security.md)",
                         c->dir, hl, c->host, AIDP_HOSTSOCK_MAX_BINDS);
                *failed = why;
                return -EMLINK;
        }
        int m = open_tree(AT_FDCWD, c->mask_file, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        int rc = m < 0 ? -1
                       : move_mount(m, "", fd, "",
                                    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
        int e = errno;
        if (m >= 0)
                close(m);
        return rc < 0 ? -e : 0;
}

static int pass_groups(void *ctx, int root_fd, const char **failed)
{
        return each(ctx, root_fd, group_one, failed);
}

static int pass_layer(void *ctx, int root_fd, const char **failed)
{
        return each(ctx, root_fd, layer_one, failed);
}

static int pass_binds(void *ctx, int root_fd, const char **failed)
{
        return each(ctx, root_fd, bind_one, failed);
}

/* aidp_mask_view_finish with the host sockets as its more names, once
 * aidp_mask_view_begin did the masks' own part. */
static int cover_finish(const char *mask_src, char *const *paths, size_t n,
                        const struct aidp_hostsock_view *view, const char **failed)
{
        const struct aidp_hostsock_bind *binds = view->binds;
        size_t n_binds = view->n_binds;
        static struct cover c;
        static char mask_file[PATH_MAX];
        if (snprintf(mask_file, sizeof mask_file, "%s/f", mask_src) >= (int)sizeof mask_file) {
                aidp_mask_view_abort();
                *failed = mask_src;
                return -ENAMETOOLONG;
        }
        bool any_socket = false;
        for (size_t i = 0; i < n_binds; i++)
                any_socket |= binds[i].is_socket;
        /* pid 1 before the job: the places live as long as this call. */
        _cleanup_free_ struct place *allowed = any_socket ? calloc(n_binds, sizeof *allowed) : NULL;
        if (any_socket && !allowed) {
                aidp_mask_view_abort();
                *failed = "the allowed sockets' places";
                return -ENOMEM;
        }
        /* The directories below the binds: before the passes, in the host's
         * own view (pid 1's root). */
        static struct aidp_hostsock_more found;
        if (aidp_hostsock_more_make(paths, n, binds, n_binds, mask_src, view->shadowed_fd, &found) <
            0) {
                aidp_mask_view_abort();
                *failed = "the host sockets' candidates";
                return -ENOMEM;
        }
        c = (struct cover){.paths = paths,
                           .n = n,
                           .under = found.u,
                           .nu = found.nu,
                           .belows = found.belows,
                           .binds = binds,
                           .nb = n_binds,
                           .mask_file = mask_file,
                           .dir_fd = -1,
                           .layer_fd = -1,
                           .allowed = allowed};
        struct aidp_mask_more more = {pass_groups, pass_layer, pass_binds, &c};
        int rc = aidp_mask_view_finish(&more, failed);
        leave_dir(&c);
        c.allowed = NULL;
        /* *failed may name a path of the list, whose memory goes back to
         * the kernel. */
        static char failed_copy[2 * PATH_MAX + 160];
        if (rc < 0) {
                snprintf(failed_copy, sizeof failed_copy, "%s", *failed);
                *failed = failed_copy;
        }
        aidp_hostsock_more_release(&found);
        return rc;
}

int aidp_hostsock_mask_view(const char *root, const char *mask_src, const char *const *masked,
                            char *const *extra, size_t n_extra, char *const *paths, size_t n,
                            const struct aidp_hostsock_view *view, const char **failed)
{
        int rc = aidp_mask_view_begin(root, mask_src, masked, extra, n_extra, failed);
        return rc < 0 ? rc : cover_finish(mask_src, paths, n, view, failed);
}

int aidp_hostsock_mask_sent(int sync_fd, const char *root, const char *mask_src,
                            const char *const *masked, const struct aidp_profile *profile,
                            const struct aidp_hostsock_view *view, const char **failed)
{
        /* The masks' own part first: it does not depend on the list, which
         * the supervisor may still be collecting (docs/run-core.md, "pid 1,
         * faster"). */
        int rc = aidp_mask_view_begin(root, mask_src, masked, profile ? profile->masked : NULL,
                                      profile ? profile->n_masked : 0, failed);
        if (rc < 0)
                return rc == -EPIPE ? -EIO : rc;
        struct aidp_hostsock_list l;
        int n = aidp_hostsock_recv(sync_fd, &l);
        if (n < 0) {
                aidp_mask_view_abort();
                *failed = "receiving the host's unix sockets";
                return n;
        }
        /* *failed comes back as a copy: the list goes back to the kernel
         * (pages charged to the run's cgroup for as long as pid 1 lives). */
        rc = cover_finish(mask_src, l.v, l.n, view, failed);
        aidp_hostsock_list_release(&l);
        /* -EPIPE means the supervisor is gone, only from the receive. */
        return rc == -EPIPE ? -EIO : rc;
}

int aidp_hostsock_scope_prepare(int *fd)
{
        *fd = -1;
        long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        if (abi < HOSTSOCK_LANDLOCK_ABI_SCOPED)
                return 0; /* no Landlock (ENOSYS, EOPNOTSUPP) or no scoping yet */
        struct hostsock_ruleset_attr attr = {.scoped = HOSTSOCK_SCOPE_ABSTRACT_UNIX_SOCKET};
        int r = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
        if (r < 0)
                return -errno;
        *fd = r;
        return 1;
}

int aidp_hostsock_scope_enforce(int fd)
{
        if (fd < 0)
                return 0;
        /* Needs no_new_privs (set with the credentials' drop). */
        int rc = (int)syscall(SYS_landlock_restrict_self, fd, 0);
        int e = errno;
        close(fd);
        return rc < 0 ? -e : 1;
}
