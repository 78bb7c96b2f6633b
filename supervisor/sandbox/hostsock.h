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
 * shows is covered by an empty file before the job starts. */
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "profiles/profile.h"

/* Supervisor side, before the clone: the paths of the pathname unix sockets
 * bound in every network namespace of the host (from /proc/PID/net/unix, one
 * reading per namespace), sorted, without duplicates, NULL-terminated. Only
 * absolute paths: a socket bound by a relative name names no path we can
 * resolve. Returns the count, or -errno. */
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

/* A bind as the covering sees it: a socket under `source` on the host is
 * also visible under `target`; a bind whose source is itself a socket makes
 * that socket reachable at `target` (the way a profile allows one). */
struct aidp_hostsock_bind {
        const char *source, *target;
        bool is_socket;
};

/* pid 1, in the staging root (root_fd) once every mount and bind is in place:
 * each host socket path, and its image under each bind whose source holds
 * it, that resolves inside that root (as the job would resolve it,
 * RESOLVE_IN_ROOT) to a socket gets a clone of mask_file (mode 0: connect
 * fails with EACCES) mounted over it, except at the target of a bind of that
 * very socket. No allocation (pid 1 may not call malloc). Returns the number
 * covered, or -errno with *failed naming the path. */
int aidp_hostsock_cover(int root_fd, const char *mask_file, char *const *paths, size_t n,
                        const struct aidp_hostsock_bind *binds, size_t n_binds,
                        const char **failed);

/* aidp_hostsock_cover for pid 1's staging root `root`: the profile's binds
 * (bind_st: their sources' stat, for which of them is a socket) and the mask
 * directory's unreadable file (mask_dir/f). */
int aidp_hostsock_cover_view(const char *root, const char *mask_dir,
                             const struct aidp_profile *profile, const struct stat *bind_st,
                             char *const *paths, size_t n, const char **failed);

/* aidp_hostsock_cover_view for the paths aidp_hostsock_recv gets from
 * sync_fd: -EPIPE when the supervisor closed it instead. */
int aidp_hostsock_cover_sent(int sync_fd, const char *root, const char *mask_dir,
                             const struct aidp_profile *profile, const struct stat *bind_st,
                             const char **failed);

/* In the job, after no_new_privs and before seccomp: a Landlock domain scoped
 * against abstract unix sockets made outside it. Returns 1 if applied, 0 when
 * the kernel's Landlock lacks scoping (before 6.12) or is disabled (the
 * network namespace still hides the host's abstract sockets), or -errno. */
int aidp_hostsock_scope_abstract(void);
