#define _GNU_SOURCE
/* Namespaces made ahead for pid 1 (nsready.h). */
#include "supervisor/sandbox/nsready.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"

static struct aidp_nsready g_ready = {-1, -1, -1, -1, -1, -1};

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void close_all(struct aidp_nsready *ns)
{
        int *fds[] = {&ns->net, &ns->ipc, &ns->uts, &ns->own_net, &ns->own_ipc, &ns->own_uts};
        for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
                close_fd(fds[i]);
}

static int open_own(struct aidp_nsready *ns)
{
        ns->own_net = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        ns->own_ipc = open("/proc/thread-self/ns/ipc", O_RDONLY | O_CLOEXEC);
        ns->own_uts = open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC);
        return ns->own_net < 0 || ns->own_ipc < 0 || ns->own_uts < 0 ? -errno : 0;
}

/* Back into the thread's own namespaces (the fds of them kept open). */
static int back_home(const struct aidp_nsready *ns)
{
        int rc = 0;
        if (setns(ns->own_net, CLONE_NEWNET) < 0)
                rc = -errno;
        if (setns(ns->own_ipc, CLONE_NEWIPC) < 0 && rc == 0)
                rc = -errno;
        if (setns(ns->own_uts, CLONE_NEWUTS) < 0 && rc == 0)
                rc = -errno;
        return rc;
}

/* In the new network namespace: its loopback up, as pid 1 would bring it. */
static int loopback_up(void)
{
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {0};
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        return ioctl(fd, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

int aidp_nsready_make(void)
{
        close_all(&g_ready);
        struct aidp_nsready ns = {-1, -1, -1, -1, -1, -1};
        int rc = open_own(&ns);
        /* Only this thread's namespaces change, and only until back_home:
         * the idle worker has no other thread and makes no socket meanwhile
         * but the loopback's. */
        if (rc == 0 && unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
                rc = -errno;
        if (rc == 0)
                rc = loopback_up();
        if (rc == 0) {
                ns.net = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                ns.ipc = open("/proc/thread-self/ns/ipc", O_RDONLY | O_CLOEXEC);
                ns.uts = open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC);
                if (ns.net < 0 || ns.ipc < 0 || ns.uts < 0)
                        rc = -errno;
        }
        int back = ns.own_net >= 0 && ns.own_ipc >= 0 && ns.own_uts >= 0 ? back_home(&ns) : 0;
        if (back < 0) {
                /* A worker stuck in a namespace of its own must not serve. */
                fprintf(stderr, "aidp-supervisor: leaving the namespaces made ahead: %s\n",
                        strerror(-back));
                _exit(1);
        }
        close_fd(&ns.own_net);
        close_fd(&ns.own_ipc);
        close_fd(&ns.own_uts);
        if (rc < 0) {
                close_all(&ns);
                return rc;
        }
        g_ready = ns;
        return 0;
}

bool aidp_nsready_take(struct aidp_nsready *ns)
{
        *ns = g_ready;
        g_ready = (struct aidp_nsready){-1, -1, -1, -1, -1, -1};
        return ns->net >= 0;
}

int aidp_nsready_enter(struct aidp_nsready *ns)
{
        int rc = open_own(ns);
        if (rc == 0 && setns(ns->net, CLONE_NEWNET) < 0)
                rc = -errno;
        if (rc == 0 && setns(ns->ipc, CLONE_NEWIPC) < 0)
                rc = -errno;
        if (rc == 0 && setns(ns->uts, CLONE_NEWUTS) < 0)
                rc = -errno;
        if (rc < 0) {
                int back = ns->own_net >= 0 && ns->own_ipc >= 0 && ns->own_uts >= 0 ? back_home(ns)
                                                                                    : 0;
                /* Half inside the sandbox's namespaces with no way back: this
                 * thread must do nothing more (its run is gc's, from the
                 * journal). */
                if (back < 0) {
                        fprintf(stderr,
                                "aidp-supervisor: returning from the namespaces made ahead: %s\n",
                                strerror(-back));
                        _exit(AIDP_EXIT_INTERNAL);
                }
                close_all(ns);
        }
        return rc;
}

int aidp_nsready_leave(struct aidp_nsready *ns)
{
        int rc = back_home(ns);
        close_all(ns);
        return rc;
}
