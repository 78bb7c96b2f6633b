/* Runs inside the sandbox: makes each named syscall with arguments the kernel
 * itself would reject with a known error, and prints NAME=OK or NAME=ERRNO.
 * So a seccomp denial (EPERM) is told apart from the kernel's own answer
 * (mount's EFAULT, unshare's EINVAL, ...), whatever the capabilities. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *name)
{
        if (!strcmp(name, "mount")) /* bad pointers: EFAULT before any permission check */
                return syscall(SYS_mount, (char *)1, (char *)1, (char *)1, 0UL, NULL);
        if (!strcmp(name, "unshare")) /* CSIGNAL bits are invalid: EINVAL */
                return syscall(SYS_unshare, 0x1UL);
        if (!strcmp(name, "ptrace")) /* an unknown request on ourselves: ESRCH/EIO */
                return syscall(SYS_ptrace, 0x7fffL, 0L, 0L, 0L);
        if (!strcmp(name, "sched_getaffinity")) /* zero-length mask: EINVAL */
                return syscall(SYS_sched_getaffinity, 0, 0UL, NULL);
        if (!strcmp(name, "keyctl")) /* unknown operation: EOPNOTSUPP */
                return syscall(SYS_keyctl, 0x7fffL, 0L, 0L, 0L, 0L);
        if (!strcmp(name, "io_uring_setup")) /* zero entries: EINVAL */
                return syscall(SYS_io_uring_setup, 0U, NULL);
        if (!strcmp(name, "personality")) /* query only */
                return syscall(SYS_personality, 0xffffffffUL);
        if (!strcmp(name, "socket_inet")) {
                long fd = socket(AF_INET, SOCK_STREAM, 0);
                if (fd >= 0)
                        close((int)fd);
                return fd < 0 ? -1 : 0;
        }
        if (!strcmp(name, "socket_netlink")) {
                long fd = socket(AF_NETLINK, SOCK_RAW, 0);
                if (fd >= 0)
                        close((int)fd);
                return fd < 0 ? -1 : 0;
        }
        if (!strcmp(name, "getpid"))
                return syscall(SYS_getpid) > 0 ? 0 : -1;
        errno = ENOTSUP;
        return -2;
}

int main(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                errno = 0;
                long r = call(argv[i]);
                if (r == -2) {
                        fprintf(stderr, "sc_probe: unknown check '%s'\n", argv[i]);
                        return 2;
                }
                if (r >= 0)
                        printf("%s=OK\n", argv[i]);
                else
                        printf("%s=%s\n", argv[i],
                               strerrorname_np(errno) ? strerrorname_np(errno) : "?");
                fflush(stdout);
        }
        return 0;
}
