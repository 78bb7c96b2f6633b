/* What the zygote (supervisor/sandbox/zygote.h) needs of the kernel, checked
 * here and in the VM of scripts/vm-test (kernel 6.1): a child of this process
 * clones a new pid namespace's init with CLONE_PARENT, sends its pidfd back
 * over a socket and exits; the init is then this process's child (its parent
 * pid is ours, wait4 reaps it with its status) and the pidfd reports its
 * exit. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/sandbox/fdpass.h"
#include "supervisor/sandbox/zygote_wire.h"
#include "tests/priv/priv.h"

/* The grandchild's parent pid, from /proc. */
static pid_t ppid_of(pid_t pid)
{
        char p[64], line[256];
        snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
        FILE *f = fopen(p, "re");
        pid_t pp = -1;
        while (f && fgets(line, sizeof line, f))
                if (!strncmp(line, "PPid:", 5))
                        pp = atoi(line + 5);
        if (f)
                fclose(f);
        return pp;
}

Test(vm_zygote, clone_parent_of_a_pid_namespace_init_makes_it_the_grandparents_child, .timeout = 60)
{
        AIDP_REQUIRE_ROOT();
        int sv[2], go[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
        pid_t z = fork();
        cr_assert_geq(z, 0);
        if (z == 0) {
                int pidfd = -1;
                struct clone_args ca = {
                        .flags = CLONE_PARENT | CLONE_NEWPID | CLONE_NEWNS | CLONE_PIDFD,
                        .pidfd = (uint64_t)(uintptr_t)&pidfd,
                        .exit_signal = 0,
                };
                pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
                if (pid == 0) {
                        /* init of its namespace, whose parent is outside it */
                        char b;
                        if (read(go[0], &b, 1) != 1)
                                _exit(9);
                        _exit(getpid() == 1 && getppid() == 0 ? 7 : 8);
                }
                struct aidp_zygote_reply r = {.pid = pid, .errnum = pid < 0 ? errno : 0};
                int e = aidp_fdpass_sendv(sv[1], &r, sizeof r, &pidfd, pid > 0 ? 1 : 0);
                _exit(e == 0 && pid > 0 ? 0 : 1);
        }
        close(sv[1]);
        struct aidp_zygote_reply r = {0};
        int pidfd = -1;
        size_t n = 0;
        cr_assert_eq(aidp_fdpass_recvv(sv[0], &r, sizeof r, &pidfd, 1, &n, true), 1);
        cr_assert_gt(r.pid, 0, "clone3(CLONE_PARENT | CLONE_NEWPID): %s", strerror(r.errnum));
        cr_assert_eq(n, 1, "no pidfd came with the reply");
        int st;
        cr_assert_eq(waitpid(z, &st, 0), z);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the cloning child: %#x", st);
        cr_expect_eq(ppid_of(r.pid), getpid(), "the init's parent is not this process");
        cr_assert_eq(write(go[1], "g", 1), 1);
        struct pollfd pf = {.fd = pidfd, .events = POLLIN};
        cr_expect_eq(poll(&pf, 1, 30000), 1, "the pidfd did not report the exit");
        cr_assert_eq(waitpid(r.pid, &st, 0), r.pid, "not reaped by this process: %s",
                     strerror(errno));
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 7, "the init's status: %#x", st);
        close(pidfd);
        close(sv[0]);
        close(go[0]);
        close(go[1]);
}
