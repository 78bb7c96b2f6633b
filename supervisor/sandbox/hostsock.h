#pragma once
/* Host unix sockets the job must not reach (docs/sandbox.md, "Unix sockets").
 *
 * The job's network namespace already hides every abstract socket of the
 * host (abstract names belong to a network namespace); Landlock's
 * LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (ABI 6, Linux 6.12) adds that the job
 * cannot connect to an abstract socket that anything outside its own domain
 * made. Pathname sockets are files: the read-only host view does not stop a
 * connect(2) (it needs write permission on the socket inode, not a writable
 * mount), so every bound pathname socket of the host that the job's view
 * shows is hidden before the job starts: in the masks' overlays where it can
 * be, so that no number of host sockets adds a mount (docs/security.md,
 * "Host unix sockets"). */
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "profiles/profile.h"

/* Supervisor side, before the clone: the paths of the pathname unix sockets
 * bound in every network namespace of the host (from /proc/PID/net/unix, one
 * reading per namespace), sorted, without duplicates, NULL-terminated. Only
 * absolute paths: a socket bound by a relative name names no path we can
 * resolve. With them, the socket files of a directory that no longer shows
 * one of its listed names as a socket (renamed since the bind:
 * hostsock_more.h). Returns the count, or -errno. */
int aidp_hostsock_collect(char ***ret);

/* Supervisor side, after the clone (pid 1 builds its mounts meanwhile): the
 * collected paths to pid 1 over the sync socket (SOCK_SEQPACKET), ahead of
 * the go. 0 or -errno. */
int aidp_hostsock_send(int sock, char *const *paths, size_t n);

/* pid 1: the paths aidp_hostsock_send sent, however many the host has, in
 * memory mapped for them (pid 1 may not call malloc): v[0..n) and a NULL. */
struct aidp_hostsock_list {
        char **v;
        size_t n;
        char *buf; /* the paths, end to end */
        size_t buf_cap, v_cap;
};

/* Returns the count with *l filled (aidp_hostsock_list_release it), -EPIPE
 * when the supervisor closed the socket instead, -EPROTO for a message that
 * is not part of a list, or -errno (*l then holds nothing). */
int aidp_hostsock_recv(int sock, struct aidp_hostsock_list *l);
void aidp_hostsock_list_release(struct aidp_hostsock_list *l);

/* A bind as the covering sees it: the file it bound, by the device and inode
 * that fstat gives for the very fd that is bound (never by its source's
 * spelling: /var/run for /run, a symlink or another bind mount on the way),
 * and where the job sees it. A host socket in that directory or below it is
 * visible below `target` too; a bind whose file is itself a socket makes
 * that socket reachable at `target` (the way a profile allows one). */
struct aidp_hostsock_bind {
        const char *target;
        dev_t dev;
        ino_t ino;
        bool is_socket;
};

/* Every bind of the job's view (the profile's, the command line's, the
 * working directory), and the host directory pid 1's staging holder covers
 * in pid 1's namespace (at mask_src): host paths below it are looked up from
 * shadowed_fd, that directory opened before the holder (-1: none). */
struct aidp_hostsock_view {
        const struct aidp_hostsock_bind *binds;
        size_t n_binds;
        int shadowed_fd;
};

/* At most this many host sockets are covered by a bind (a mount each): those
 * outside the read-only mounts, in a writable bind. */
#define AIDP_HOSTSOCK_MAX_BINDS 1000

/* pid 1, in the staging root `root` once every mount and bind is in place:
 * the masks (aidp_mask_view with masked, extra, n_extra) and the host
 * sockets together. Each host socket path, and its image under each bind
 * whose source holds it, that resolves inside the root (as the job would
 * resolve it, RESOLVE_IN_ROOT) to a socket is hidden, except at the target
 * of a bind of that very socket (the images: below each bind by identity,
 * hostsock_more.h):
 * - in a read-only mount, as a whiteout at its name in the top layer of the
 *   overlay that mount gets for its masks (mask.h): one overlay per mount
 *   whatever the number of sockets, each a link to one whiteout (a
 *   directory entry, no mount, no inode);
 * - elsewhere (a writable bind, where an overlay would make the bind
 *   read-only), a bind of the mode-0 mask_src/f over it (connect: EACCES),
 *   at most AIDP_HOSTSOCK_MAX_BINDS of them: past that, -EMLINK with *failed
 *   naming the directory.
 * No malloc (pid 1 may not call it; what it needs is mapped). 0, or -errno with *failed
 * naming the path. */
int aidp_hostsock_mask_view(const char *root, const char *mask_src, const char *const *masked,
                            char *const *extra, size_t n_extra, char *const *paths, size_t n,
                            const struct aidp_hostsock_view *view, const char **failed);

/* aidp_hostsock_mask_view for the paths aidp_hostsock_recv gets from sync_fd
 * and the profile's masks. The masks' own part (aidp_mask_view_begin) comes before
 * the receive, while the supervisor may still be collecting the list; the
 * result is the same as with the list in hand first. -EPIPE only when the
 * supervisor closed the socket instead of sending the list. */
int aidp_hostsock_mask_sent(int sync_fd, const char *root, const char *mask_src,
                            const char *const *masked, const struct aidp_profile *profile,
                            const struct aidp_hostsock_view *view, const char **failed);

/* pid 1, before the go: the Landlock ruleset scoped against abstract unix
 * sockets made outside its domain, made ahead (docs/run-core.md, "pid 1,
 * faster"); a ruleset restricts nothing until a process enforces it. 1 with
 * *fd set, 0 when the kernel's Landlock lacks scoping (before 6.12) or is
 * disabled (the network namespace still hides the host's abstract sockets;
 * *fd is -1), or -errno. */
int aidp_hostsock_scope_prepare(int *fd);

/* In the job, after no_new_privs and before seccomp: the job enters that
 * domain, and fd is closed. 1 if applied, 0 for fd -1, or -errno. */
int aidp_hostsock_scope_enforce(int fd);
