/* What the zygote (supervisor/sandbox/zygote.h) needs of the kernel, checked
 * here and in the VM of scripts/vm-test (kernel 6.1): a child of this process
 * clones a new pid namespace's init with CLONE_PARENT, sends its pidfd back
 * over a socket and exits; the init is then this process's child (its parent
 * pid is ours, wait4 reaps it with its status) and the pidfd reports its
 * exit. And the clone the zygote makes, sharing its memory on a stack of its
 * own (clone_vm.h): one memory (the init's write shows in the cloning child),
 * and the init reads the cloning child's heap and stack frame after that
 * child has exited. */
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

#include "supervisor/sandbox/clone_vm.h"
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

/* The cloning child of both tests, with its reply socket and the init's go. */
static pid_t fork_cloner(int sv[2], int go[2])
{
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
        pid_t z = fork();
        cr_assert_geq(z, 0);
        return z;
}

/* The test's side of both: the cloning child z answers over sv[0] (the init's
 * pid and pidfd), exits, and is reaped; the init, this process's child, gets
 * the go and is reaped. Returns the init's wait status. */
static int parent_side(pid_t z, int sv0, int go1, const char *what)
{
        struct aidp_zygote_reply r = {0};
        int pidfd = -1;
        size_t n = 0;
        cr_assert_eq(aidp_fdpass_recvv(sv0, &r, sizeof r, &pidfd, 1, &n, true), 1);
        cr_assert_gt(r.pid, 0, "%s: %s", what, strerror(r.errnum));
        cr_assert_eq(n, 1, "no pidfd came with the reply");
        int st;
        cr_assert_eq(waitpid(z, &st, 0), z);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "the cloning child: %#x (3: the init's write did not show: not one memory)", st);
        cr_expect_eq(ppid_of(r.pid), getpid(), "the init's parent is not this process");
        cr_assert_eq(write(go1, "g", 1), 1);
        struct pollfd pf = {.fd = pidfd, .events = POLLIN};
        cr_expect_eq(poll(&pf, 1, 30000), 1, "the pidfd did not report the exit");
        cr_assert_eq(waitpid(r.pid, &st, 0), r.pid, "not reaped by this process: %s",
                     strerror(errno));
        close(pidfd);
        return st;
}

Test(vm_zygote, clone_parent_of_a_pid_namespace_init_makes_it_the_grandparents_child, .timeout = 60)
{
        AIDP_REQUIRE_ROOT();
        int sv[2], go[2];
        pid_t z = fork_cloner(sv, go);
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
        int st = parent_side(z, sv[0], go[1], "clone3(CLONE_PARENT | CLONE_NEWPID)");
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 7, "the init's status: %#x", st);
        close(sv[0]);
        close(go[0]);
        close(go[1]);
}

/* What the init of the shared clone checks: the cloning child's heap and stack
 * frame, read once that child has exited (the go comes after its reaping). */
struct shared_start {
        const unsigned char *heap; /* 4096 bytes of i * 7 */
        const unsigned *frame;     /* 0xa1d9 in the cloning child's frame */
        int go;
        int seen; /* set by the init: the cloning child sees it */
};

static int shared_init(void *arg)
{
        struct shared_start *s = arg;
        __atomic_store_n(&s->seen, 1, __ATOMIC_SEQ_CST);
        char b;
        if (read(s->go, &b, 1) != 1)
                return 9;
        for (unsigned i = 0; i < 4096; i++)
                if (s->heap[i] != (unsigned char)(i * 7))
                        return 5;
        if (*s->frame != 0xa1d9)
                return 6;
        return getpid() == 1 && getppid() == 0 ? 7 : 8;
}

Test(vm_zygote, a_clone_sharing_the_memory_outlives_the_process_that_made_it, .timeout = 60)
{
        AIDP_REQUIRE_ROOT();
        int sv[2], go[2];
        pid_t z = fork_cloner(sv, go);
        if (z == 0) {
                unsigned frame = 0xa1d9;
                unsigned char *heap = malloc(4096);
                void *stack = aidp_clone_vm_stack();
                if (!heap || !stack)
                        _exit(2);
                for (unsigned i = 0; i < 4096; i++)
                        heap[i] = (unsigned char)(i * 7);
                static struct shared_start s;
                s = (struct shared_start){.heap = heap, .frame = &frame, .go = go[0]};
                int pidfd = -1;
                struct clone_args ca = {
                        .flags = CLONE_VM | CLONE_PARENT | CLONE_NEWPID | CLONE_NEWNS | CLONE_PIDFD,
                        .pidfd = (uint64_t)(uintptr_t)&pidfd,
                        .exit_signal = 0,
                        .stack = (uint64_t)(uintptr_t)stack,
                        .stack_size = AIDP_CLONE_VM_STACK,
                };
                pid_t pid = aidp_clone3_on_stack(&ca, shared_init, &s);
                struct aidp_zygote_reply r = {.pid = pid, .errnum = pid < 0 ? errno : 0};
                /* one memory: what the init writes shows here */
                for (int i = 0; pid > 0 && i < 5000 && !__atomic_load_n(&s.seen, __ATOMIC_SEQ_CST);
                     i++)
                        usleep(1000);
                int e = aidp_fdpass_sendv(sv[1], &r, sizeof r, &pidfd, pid > 0 ? 1 : 0);
                _exit(e == 0 && pid > 0 ? (__atomic_load_n(&s.seen, __ATOMIC_SEQ_CST) ? 0 : 3) : 1);
        }
        close(sv[1]);
        int st = parent_side(z, sv[0], go[1], "clone3(CLONE_VM | CLONE_PARENT | CLONE_NEWPID)");
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 7,
                  "the init's status: %#x (5: the heap, 6: the stack frame changed)", st);
        close(sv[0]);
        close(go[0]);
        close(go[1]);
}
