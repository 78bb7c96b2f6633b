#pragma once
/* The host sockets' candidates that the list alone does not name
 * (docs/security.md, "Host unix sockets add no mounts"):
 * - a socket renamed after its bind: the kernel's table keeps the name it
 *   was bound by (aidp's own daemon binds aidp.sock.PID.new and renames it
 *   to aidp.sock). Where a listed name is no socket any more, every socket
 *   file of that directory joins the list (the supervisor, while pid 1
 *   builds its mounts);
 * - a directory of sockets below a bind of a directory (pid 1, before
 *   hostsock.c's passes, in memory mapped for it: pid 1 may not call
 *   malloc): found by identity, the bound file's device and inode (fstat of
 *   the very fd that is bound) against each directory on the socket's
 *   directory's real path, never by how the bind's source was spelled
 *   (/var/run for /run, a path through a symlink, another bind mount of the
 *   same directory on the host). */
#include <stddef.h>

#include "supervisor/sandbox/hostsock.h"

/* Supervisor side (aidp_hostsock_collect): *paths (n of them, sorted) and
 * every socket file of each directory that no longer shows one of its
 * listed names as a socket, sorted, without duplicates (the list is
 * replaced). 0, or -ENOMEM. */
int aidp_hostsock_add_renamed(char ***paths, size_t *n);

/* The sockets paths[first, first + count) (one directory) are seen again
 * below bind `bind`, at its target followed by the string at `below` ("" or
 * "/x/y": the directory's path below the bind's root) and their names. */
struct aidp_hostsock_under {
        size_t first, count, bind;
        size_t below; /* an offset in more->belows */
};

struct aidp_hostsock_more {
        struct aidp_hostsock_under *u;
        size_t nu;
        char *belows; /* the belows, end to end */
        size_t belows_used;
        size_t u_cap, belows_cap;
};

/* pid 1: more from the n paths (sorted, as aidp_hostsock_recv gives them)
 * and the binds, each path looked up in pid 1's root except below `shadowed` (the
 * directory pid 1's staging holder covers), looked up from shadowed_fd (that
 * directory of the host, opened before the holder; -1: none): 0, or -ENOMEM
 * (more then holds nothing). A directory that cannot be named is left out
 * (its listed paths stay candidates where the job's view shows them). */
int aidp_hostsock_more_make(char *const *paths, size_t n, const struct aidp_hostsock_bind *binds,
                            size_t nb, const char *shadowed, int shadowed_fd,
                            struct aidp_hostsock_more *more);
void aidp_hostsock_more_release(struct aidp_hostsock_more *more);

/* *p grown to at least need bytes, by mmap/mremap (*cap is its size): 0 or
 * -ENOMEM. */
int aidp_hostsock_grow(void **p, size_t *cap, size_t need);
