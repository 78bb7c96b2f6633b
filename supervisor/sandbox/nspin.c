#define _GNU_SOURCE
#include "supervisor/sandbox/nspin.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sandbox/fdpass.h"

#ifndef NS_GET_MNTNS_ID
#define NS_GET_MNTNS_ID _IOR(0xb7, 0x5, uint64_t)
#endif
#ifndef NS_GET_ID
#define NS_GET_ID _IOR(0xb7, 0xd, uint64_t) /* any namespace type, Linux 6.18 */
#endif
#define ID_BATCH 4096 /* the kernel's COOKIE_LOCAL_BATCH */

static int ns_id(const char *path, unsigned long req, uint64_t *id)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, req, id) < 0)
                return -errno;
        return 0;
}

int aidp_nspin_order_begin(struct aidp_nspin_order *o)
{
        o->bound = false;
        o->made = 0;
        uint64_t floor, id;
        /* No NS_GET_ID (before 6.18): ids are one global sequence. */
        if (ns_id("/proc/thread-self/ns/uts", NS_GET_ID, &id) < 0 ||
            ns_id("/proc/thread-self/ns/mnt", NS_GET_MNTNS_ID, &floor) < 0)
                return 0;
        int cpu = sched_getcpu();
        cpu_set_t one;
        CPU_ZERO(&one);
        if (cpu < 0 || sched_getaffinity(0, sizeof o->old, &o->old) < 0)
                return -errno;
        CPU_SET(cpu, &one);
        /* Only this thread, only until the clone: every id below comes from
         * this CPU's batch, and so do the clone's. */
        if (sched_setaffinity(0, sizeof one, &one) < 0)
                return -errno;
        o->bound = true;
        _cleanup_close_ int uts = open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC);
        if (uts < 0)
                return -errno;
        int rc = 0;
        /* A batch has 4096 ids; the next batch is above every id handed out
         * so far, the caller's namespace's included. Each throwaway namespace
         * frees the one before. */
        for (unsigned i = 0; i < 2 * ID_BATCH + 2; i++) {
                if (unshare(CLONE_NEWUTS) < 0 ||
                    ns_id("/proc/thread-self/ns/uts", NS_GET_ID, &id) < 0) {
                        rc = -errno;
                        break;
                }
                o->made++;
                if (id > floor)
                        break;
        }
        /* Back into the thread's own UTS namespace (pid 1 gets a new one). */
        if (setns(uts, CLONE_NEWUTS) < 0 && rc == 0)
                rc = -errno;
        if (rc == 0 && id <= floor)
                rc = -EAGAIN;
        return rc;
}

void aidp_nspin_order_end(struct aidp_nspin_order *o)
{
        if (o->bound)
                sched_setaffinity(0, sizeof o->old, &o->old);
        o->bound = false;
}

/* The kernel refuses to bind a mount namespace whose id is not above the
 * caller's own namespace's (mnt_ns_loop). Since namespace ids come from
 * per-CPU batches (Linux 6.18), a newer namespace may have the lower id: in
 * the host's initial namespace (a low id) never, but in one the supervisor
 * was started in (Slurm's job_container/tmpfs) at random. True if that rule
 * refused the bind of ns. */
static bool refused_by_id_order(const char *ns)
{
        uint64_t self = 0, sandbox = 0;
        _cleanup_close_ int a = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int b = open(ns, O_RDONLY | O_CLOEXEC);
        if (a < 0 || b < 0 || ioctl(a, NS_GET_MNTNS_ID, &self) < 0 ||
            ioctl(b, NS_GET_MNTNS_ID, &sandbox) < 0)
                return false;
        return self >= sandbox;
}

int aidp_nspin_create(const char *path, pid_t pid, aidp_error *err)
{
        char ns[64];
        snprintf(ns, sizeof ns, "/proc/%d/ns/mnt", (int)pid);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "creating %s", path);
        /* A private mount to pin on: the run directory may sit on a shared
         * mount (systemd's /run), where an nsfs bind is refused (EINVAL). */
        if (mount(path, path, NULL, MS_BIND, NULL) < 0) {
                int e = errno;
                unlink(path);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "binding %s", path);
        }
        if (mount(NULL, path, NULL, MS_PRIVATE, NULL) < 0 ||
            mount(ns, path, NULL, MS_BIND, NULL) < 0) {
                int e = errno;
                aidp_nspin_release(path);
                if (e == EINVAL && refused_by_id_order(ns))
                        return 1; /* not pinned; the caller says so */
                /* pid is the caller's child, so the pid is not reused: no
                 * ns/mnt means it has exited (or is a zombie), and its
                 * namespace with it. */
                if (e == ENOENT && access(ns, F_OK) < 0 && errno == ENOENT)
                        return 2;
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e,
                                        "pinning the sandbox's mount namespace at %s", path);
        }
        return 0;
}

void aidp_nspin_release(const char *path)
{
        /* The namespace, then the private bind under it; at most those two,
         * never anything a lazy umount of a plain path could reach. */
        for (int i = 0; i < 2; i++)
                if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        break;
        unlink(path);
}

/* In the helper: one message per target, '1' with its writable clone or '0'. */
static _Noreturn void open_in_ns(int nsfd, const char *const *targets, size_t n, int sock)
{
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (setns(nsfd, CLONE_NEWNS) < 0)
                _exit(1);
        for (size_t i = 0; i < n; i++) {
                /* A detached clone of the tmpfs mount, made writable (the
                 * job's /data was read-only): writes reach the same pages. */
                int fd = open_tree(AT_FDCWD, targets[i],
                                   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
                struct mount_attr a = {.attr_clr = MOUNT_ATTR_RDONLY};
                if (fd >= 0 && mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
                        close(fd);
                        fd = -1;
                }
                if (aidp_fdpass_send(sock, fd >= 0 ? '1' : '0', &fd, fd >= 0 ? 1 : 0) < 0)
                        _exit(2);
                if (fd >= 0)
                        close(fd);
        }
        _exit(0);
}

int aidp_nspin_open_mounts(const char *path, const char *const *targets, size_t n, int *fds)
{
        for (size_t i = 0; i < n; i++)
                fds[i] = -1;
        _cleanup_close_ int nsfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (nsfd < 0)
                return -errno;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(sv[0]);
                close(sv[1]);
                return -e;
        }
        if (pid == 0) {
                close(sv[0]);
                open_in_ns(nsfd, targets, n, sv[1]);
        }
        close(sv[1]);
        int opened = 0;
        for (size_t i = 0; i < n; i++) {
                char byte;
                size_t got = 0;
                if (aidp_fdpass_recv(sv[0], &byte, &fds[i], 1, &got) != 1)
                        break;
                if (got == 1)
                        opened++;
                else
                        fds[i] = -1;
        }
        close(sv[0]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        return opened;
}
