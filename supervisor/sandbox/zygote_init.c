#define _GNU_SOURCE
/* aidp-init as the zygote (zygote.h): one plan in, pid 1 cloned from this
 * small process, its pidfd out. Single-threaded and fresh from execve: none
 * of the invariants a clone of the worker needs (startup.c) apply here, and
 * pid 1 keeps them all the same (it runs sandbox.c unchanged). */
#include "supervisor/sandbox/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "supervisor/sandbox/clone_vm.h"
#include "supervisor/sandbox/codec/plan.h"
#include "supervisor/sandbox/mask_tree.h"
#include "supervisor/sandbox/nspin.h"
#include "supervisor/sandbox/fdpass.h"
#include "supervisor/sandbox/zygote_wire.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ  22 /* Linux 5.14 */
#define MADV_POPULATE_WRITE 23
#endif

/* This program's image, from the linker (static-pie). */
extern const char __ehdr_start[], __data_start[];

static void populate(const void *from, const void *to, int advice)
{
        uintptr_t a = (uintptr_t)from & ~(uintptr_t)4095, e = (uintptr_t)to;
        /* Bounded: a link order that put a large object in between would
         * cost more than the faults it saves. */
        if (e > a && e - a <= 2u << 20)
                (void)madvise((void *)a, e - a, advice);
}

/* The pages pid 1 will touch on every run, in one madvise
 * per range instead of a page fault per page (39 a run, each an exit on this
 * VM, 9 us at idle and far more under load). A clone gets none of the
 * zygote's page-table entries for this program's code and read-only data
 * (file pages: the kernel leaves them to faults, 16 pages at a time), and
 * every page it writes (stack, data, statics, the TLS block in the heap) is
 * a copy-on-write or fresh-page fault. The code and read-only data are
 * mapped whole (0.9 MB, in the page cache); of the writable pages only those
 * pid 1 writes every run: 64 KiB of stack below this frame (the mounts and
 * masks reach about 40), .data, the parts of the masks' state it writes, and
 * the TLS page. Only an optimisation (docs/run-core.md, "pid 1, faster"): a
 * page left out faults as before. */
static void prefault_image(void)
{
        populate(__ehdr_start, __data_start, MADV_POPULATE_READ);
        /* .data and the statics before the masks' state (18 MB, nearly all
         * of it untouched); those after it (with libc's, 160 KiB of which
         * pid 1 writes a few pages) cost more to populate than their faults. */
        populate(__data_start, &aidp_mask_state, MADV_POPULATE_WRITE);
        aidp_mask_prefault();
        populate(&errno, (char *)&errno + sizeof errno, MADV_POPULATE_WRITE);
}

/* pid 1 as a copy of this process (no clone_vm.h stack): in pid 1, its
 * first act. pid 1 on a stack of its own shares this process's memory: the
 * zygote populates the same pages while it waits for its plan, off the run's
 * path, and the stack comes faulted in (aidp_clone_vm_stack). */
static void prefault_pid1(void)
{
        uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
        prefault_image();
        populate((void *)(sp - 64 * 1024), (void *)(sp + 1), MADV_POPULATE_WRITE);
}

static void reply(int sock, pid_t pid, int errnum, const char *what, int pidfd)
{
        struct aidp_zygote_reply r = {.pid = pid, .errnum = errnum};
        aidp_text_printf(r.what, sizeof r.what, "%s", what);
        (void)aidp_fdpass_sendv(sock, &r, sizeof r, &pidfd, pidfd >= 0 ? 1 : 0);
}

/* Each received fd at the number the worker had it under; the zygote's own
 * socket and the fds as received are first moved above every such number.
 * fd 0-2 that the worker did not have are closed, as pid 1 would not have
 * them either. */
static int place_fds(int *sock, int *got, const struct aidp_plan *p)
{
        int top = 2;
        for (size_t i = 0; i < p->n_fds; i++)
                if (p->fds[i] > top)
                        top = p->fds[i];
        int base = top + 1;
        int s = fcntl(*sock, F_DUPFD_CLOEXEC, base);
        if (s < 0)
                return -errno;
        close(*sock);
        *sock = s;
        for (size_t i = 0; i < p->n_fds; i++) {
                int t = fcntl(got[i], F_DUPFD_CLOEXEC, base);
                if (t < 0)
                        return -errno;
                close(got[i]);
                got[i] = t;
        }
        for (size_t i = 0; i < p->n_fds; i++) {
                if (dup2(got[i], p->fds[i]) < 0)
                        return -errno;
                close(got[i]);
                got[i] = p->fds[i];
        }
        for (int fd = 0; fd <= 2; fd++) {
                bool have = false;
                for (size_t i = 0; i < p->n_fds; i++)
                        have |= p->fds[i] == fd;
                if (!have)
                        close(fd);
        }
        return 0;
}

static void spec_of(const struct aidp_plan *p, struct aidp_sandbox_spec *s)
{
        *s = (struct aidp_sandbox_spec){
                .argv = p->argv,
                .envp = p->envp,
                .cwd = p->cwd,
                .bind_cwd = p->bind_cwd,
                .uid = p->uid,
                .gid = p->gid,
                .n_groups = p->n_groups,
                .hostname = p->hostname,
                .caps = p->caps,
                .profile = p->has_profile ? &p->profile : NULL,
                .bpf = &p->bpf,
                .bind_tree_fds = p->bind_tree_fds,
                .cwd_tree_fd = p->cwd_tree_fd,
                .has_cwd_tree = p->has_cwd_tree,
                .n_mounts = p->n_mounts,
                .sync_fd = p->sync_fd,
                .err_fd = p->err_fd,
                .lifeline_fd = p->lifeline_fd,
                .stdin_fd = p->stdin_fd,
                .stdout_fd = p->stdout_fd,
                .stderr_fd = p->stderr_fd,
                .status_fd = p->status_fd,
                .seccomp_flags = p->seccomp_flags,
                .notify_fd_out = p->notify_fd_out,
                .resolv_tree_fd = p->resolv_tree_fd,
        };
        for (size_t i = 0; i < p->n_groups; i++)
                s->groups[i] = p->groups[i];
        for (size_t i = 0; i < p->n_mounts; i++)
                s->mounts[i] = (struct aidp_sandbox_mount){.fd = p->mounts[i].fd,
                                                           .target = p->mounts[i].target,
                                                           .readonly = p->mounts[i].readonly};
}

/* The namespaces made ahead (nsready.h), entered by this process for the
 * clone; their fds are closed (pid 1 would close them as unlisted). */
static int enter(int fd, int type, const char **what, const char *name)
{
        if (fd < 0)
                return 0;
        int rc = setns(fd, type) < 0 ? -errno : 0;
        close(fd);
        if (rc < 0)
                *what = name;
        return rc;
}

/* pid 1 shares this process's memory (CLONE_VM) instead of getting a copy
 * of it: a copy (fork) costs this VM-hosted kernel 0.4 ms of page-table work
 * at the clone, each page pid 1 then writes is a copy-on-write fault (about
 * 40 of them, 9 us each), and this process's exit tears the copies down
 * again; a shared clone costs 0.03-0.07 ms and none of that (measured with
 * scripts/bench-path and a clone3 loop, docs/run-core.md). Sound because this
 * process does nothing after the clone but send its answer and _exit: it
 * never returns from aidp_zygote_main or frees anything, so the plan and the
 * spec pid 1 reads (in this stack frame and on the heap) stay as they are,
 * and once it has exited pid 1 is the memory's only user. pid 1 runs on a
 * stack of its own (clone_vm.h), mapped and faulted in while the zygote waited. Its file
 * table, signal handlers and namespaces are its own as before (no
 * CLONE_FILES, CLONE_SIGHAND, CLONE_FS); CLONE_VM gives no rseq area to the
 * child (the kernel unregisters it). The TLS block is one until this
 * process exits: errno is written by whichever of the two has a call fail
 * (this process only if sending its answer fails, when the run fails
 * anyway), so a failure in each at the same moment could misname one's
 * error, and this process's exit zeroes the thread id glibc keeps there
 * (clear_child_tid): pid 1 uses no pthread or thread-id call of glibc (it
 * could not before either: its copy named the zygote's thread). Memory pid 1
 * takes before the zygote's exit is charged to the zygote's cgroup, after it
 * to pid 1's (the run's; the memory's owner moves to it), and what the zygote
 * populated for it stays the zygote's; the job's memory is its own after
 * execve, in the run's cgroup as before. */
struct child_start {
        const struct aidp_sandbox_spec *spec;
        sigset_t mask;
        struct aidp_nspin_order order; /* pid 1's own copy: the zygote's is not touched */
};

static int child_main(void *arg)
{
        struct child_start *c = arg;
        aidp_nspin_order_end(&c->order); /* the job gets every CPU */
        sigprocmask(SIG_SETMASK, &c->mask, NULL);
        aidp_sandbox_child(c->spec);
        return 127; /* not reached: pid 1 ends in init_loop */
}

int aidp_zygote_main(int sock)
{
        struct aidp_zygote_hello h;
        int got[AIDP_PLAN_MAX_FDS];
        size_t n = 0;
        /* The namespaces' ids above the worker's mount namespace's (this
         * process's too), for the pin the worker makes (nspin.h): ordered
         * now, while the worker waits for its connection, not on the run's
         * path. The binding to this CPU holds until the clone, so the ids
         * of the namespaces it makes come from the same, higher batch. */
        /* Which build this is, for the worker to check before it hands
         * over a plan: pid 1 runs this program's copy of sandbox.c. */
        struct aidp_zygote_greeting g = {.magic = AIDP_ZYGOTE_GREETING};
        memcpy(g.build, AIDP_BUILD_ID, sizeof g.build);
        if (aidp_fdpass_sendv(sock, &g, sizeof g, NULL, 0) < 0)
                return 0;
        struct aidp_nspin_order order;
        (void)aidp_nspin_order_begin(&order);
        void *stack = aidp_clone_vm_stack();
        if (stack)
                prefault_image(); /* pid 1 will share these pages */
        /* The worker's end closes when it exits unserved: nothing to do. */
        if (aidp_fdpass_recvv(sock, &h, sizeof h, got, AIDP_PLAN_MAX_FDS, &n, true) != 1)
                return 0;
        if (h.magic != AIDP_ZYGOTE_HELLO || h.len > AIDP_PLAN_MAX_BYTES) {
                reply(sock, -1, EPROTO, "not a plan", -1);
                return 1;
        }
        _cleanup_free_ uint8_t *buf = malloc(h.len ? h.len : 1);
        size_t none = 0;
        if (!buf || aidp_fdpass_recvv(sock, buf, h.len, NULL, 0, &none, true) != 1)
                return 1; /* the worker gave up: it clones pid 1 itself */
        struct aidp_plan p;
        aidp_error err = {0};
        if (aidp_plan_decode(buf, h.len, &p, &err) < 0) {
                reply(sock, -1, EPROTO, err.msg, -1);
                return 1;
        }
        if (n != p.n_fds) {
                reply(sock, -1, EPROTO, "the plan's fds did not all come", -1);
                return 1;
        }
        int e = place_fds(&sock, got, &p);
        if (e < 0) {
                reply(sock, -1, -e, "placing pid 1's fds", -1);
                return 1;
        }
        struct aidp_sandbox_spec spec;
        spec_of(&p, &spec);
        sigset_t mask;
        sigemptyset(&mask);
        for (int sig = 1; sig <= 64; sig++)
                if (p.sigmask >> (sig - 1) & 1)
                        sigaddset(&mask, sig);
        const char *what = "";
        e = enter(p.net_fd, CLONE_NEWNET, &what, "network namespace");
        if (e == 0)
                e = enter(p.ipc_fd, CLONE_NEWIPC, &what, "IPC namespace");
        if (e == 0)
                e = enter(p.uts_fd, CLONE_NEWUTS, &what, "UTS namespace");
        if (e < 0) {
                reply(sock, -1, -e, what, -1);
                return 1;
        }
        /* CLONE_PARENT: pid 1 is the worker's child, as if the worker had
         * cloned it (its exit signal is this process's own, SIGCHLD). Only
         * the namespaces the plan names are made; a bad flag is refused. */
        uint64_t own = p.clone_flags & (CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS);
        int pidfd = -1;
        struct clone_args ca = {
                .flags = CLONE_PARENT | CLONE_NEWNS | CLONE_NEWPID | own | CLONE_PIDFD |
                         (p.cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
                .pidfd = (uint64_t)(uintptr_t)&pidfd,
                .exit_signal = 0,
                .cgroup = p.cgroup_fd >= 0 ? (uint64_t)p.cgroup_fd : 0,
        };
        if (stack) {
                /* pid 1 shares this process's memory (clone_vm.h): from
                 * here on this process only answers and exits. */
                static struct child_start c;
                c = (struct child_start){.spec = &spec, .mask = mask, .order = order};
                ca.flags |= CLONE_VM;
                ca.stack = (uint64_t)(uintptr_t)stack;
                ca.stack_size = AIDP_CLONE_VM_STACK;
                pid_t pid = aidp_clone3_on_stack(&ca, child_main, &c);
                if (pid < 0)
                        reply(sock, -1, errno, "clone3 (namespaces)", -1);
                else
                        reply(sock, pid, 0, "", pidfd);
                _exit(pid < 0);
        }
        pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
        int clone_errno = errno;
        if (pid == 0)
                prefault_pid1();
        aidp_nspin_order_end(&order); /* in pid 1 too: the job gets every CPU */
        if (pid == 0) {
                sigprocmask(SIG_SETMASK, &mask, NULL);
                aidp_sandbox_child(&spec);
        }
        if (pid < 0) {
                reply(sock, -1, clone_errno, "clone3 (namespaces)", -1);
                return 1;
        }
        reply(sock, pid, 0, "", pidfd);
        return 0;
}
