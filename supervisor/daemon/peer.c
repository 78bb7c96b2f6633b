/* The peer of a daemon connection (peer.h). */
#define _GNU_SOURCE
#include "supervisor/daemon/peer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

/* "Uid:\tR E S F" and "Groups:\tG G ..." of /proc/PID/status. */
static int read_status(pid_t pid, uid_t *real_uid, struct aidp_peer *p)
{
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        char *line = NULL;
        size_t cap = 0;
        bool have_uid = false, have_groups = false;
        while (getline(&line, &cap, f) > 0) {
                if (!strncmp(line, "Uid:", 4)) {
                        unsigned long u = strtoul(line + 4, NULL, 10);
                        *real_uid = (uid_t)u;
                        have_uid = true;
                } else if (!strncmp(line, "Groups:", 7)) {
                        char *s = line + 7, *end;
                        p->n_groups = 0;
                        for (;;) {
                                errno = 0;
                                unsigned long g = strtoul(s, &end, 10);
                                if (end == s || errno)
                                        break;
                                if (p->n_groups == AIDP_PEER_MAX_GROUPS) {
                                        free(line);
                                        return -E2BIG;
                                }
                                p->groups[p->n_groups++] = (gid_t)g;
                                s = end;
                        }
                        have_groups = true;
                }
        }
        free(line);
        return have_uid && have_groups ? 0 : -EIO;
}

int aidp_peer_identify(int sock, struct aidp_peer *ret, aidp_error *err)
{
        memset(ret, 0, sizeof *ret);
        ret->pidfd = -1;
        struct ucred uc;
        socklen_t len = sizeof uc;
        if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || uc.pid <= 0)
                return aidp_error_errno(err, AIDP_EXIT_DENIED, errno ? errno : ESRCH,
                                        "SO_PEERCRED");
        ret->pid = uc.pid;
        ret->uid = uc.uid;
        ret->gid = uc.gid;
        /* A pidfd names the process itself, not a number that may be reused:
         * the kernel's own since 6.5, else taken now (the connection is
         * still open, so the process is alive unless it passed the socket
         * on, which the uid check below catches). */
        int pfd = -1;
        len = sizeof pfd;
        if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pfd, &len) < 0 || pfd < 0)
                pfd = (int)syscall(SYS_pidfd_open, uc.pid, 0);
        if (pfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DENIED, errno,
                                        "the connecting process %d is gone", (int)uc.pid);
        ret->pidfd = pfd;
        uid_t real = (uid_t)-1;
        int r = read_status(uc.pid, &real, ret);
        /* Read, then prove: alive after the read means the pid was not
         * reused while /proc was read. */
        if (r == 0 && syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) < 0)
                r = -errno;
        if (r < 0 || real != uc.uid) {
                aidp_peer_release(ret);
                return aidp_error_set(err, AIDP_EXIT_DENIED, r < 0 ? -r : EPERM,
                                      "cannot identify the connecting process %d (%s)", (int)uc.pid,
                                      r < 0 ? strerror(-r) : "its uid changed since it connected");
        }
        return 0;
}

void aidp_peer_release(struct aidp_peer *p)
{
        if (p->pidfd >= 0)
                close(p->pidfd);
        p->pidfd = -1;
}
