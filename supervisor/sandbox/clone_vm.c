#define _GNU_SOURCE
/* A clone that shares the caller's memory, on a stack of its own (clone_vm.h). */
#include "supervisor/sandbox/clone_vm.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc has no clone3 wrapper that takes a function, and the child of the raw
 * system call would resume on the new stack in the middle of the caller's
 * frame: the switch is made here, and the child uses nothing of that frame.
 * fn and arg travel in r12 and r13, which the system call leaves alone. */
pid_t aidp_clone3_on_stack(struct clone_args *ca, int (*fn)(void *), void *arg)
{
#if defined(__x86_64__)
        register long rax __asm__("rax") = SYS_clone3;
        register void *rdi __asm__("rdi") = ca;
        register long rsi __asm__("rsi") = (long)sizeof *ca;
        register void *r12 __asm__("r12") = (void *)fn;
        register void *r13 __asm__("r13") = arg;
        __asm__ volatile("syscall\n\t"
                         "test %%rax, %%rax\n\t"
                         "jnz 1f\n\t"
                         /* the child: rsp is the stack's top, 16-byte aligned */
                         "xor %%ebp, %%ebp\n\t"
                         "mov %%r13, %%rdi\n\t"
                         "call *%%r12\n\t"
                         "mov %%eax, %%edi\n\t"
                         "mov $60, %%eax\n\t" /* SYS_exit */
                         "syscall\n\t"
                         "hlt\n"
                         "1:\n\t"
                         : "+r"(rax)
                         : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13)
                         : "rcx", "r11", "memory");
        if (rax < 0) {
                errno = (int)-rax;
                return -1;
        }
        return (pid_t)rax;
#else
        (void)ca, (void)fn, (void)arg;
        errno = ENOSYS;
        return -1;
#endif
}

/* Mapped here, while the caller (an idle zygote) has time; a kernel without
 * MADV_POPULATE_WRITE (5.14) gets the writes. */
void *aidp_clone_vm_stack(void)
{
#if defined(__x86_64__)
        uint8_t *lo = mmap(NULL, AIDP_CLONE_VM_STACK, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
        if (lo == MAP_FAILED)
                return NULL;
        /* A guard wider than any frame pid 1 has (the build does not rely on
         * -fstack-clash-protection): an overflow faults here. */
        if (mprotect(lo, AIDP_CLONE_VM_GUARD, PROT_NONE) < 0) {
                munmap(lo, AIDP_CLONE_VM_STACK);
                return NULL;
        }
        uint8_t *warm = lo + AIDP_CLONE_VM_STACK - AIDP_CLONE_VM_STACK_WARM;
        if (madvise(warm, AIDP_CLONE_VM_STACK_WARM, MADV_POPULATE_WRITE) < 0)
                for (size_t off = 0; off < AIDP_CLONE_VM_STACK_WARM; off += 4096)
                        ((volatile uint8_t *)warm)[off] = 0;
        return lo;
#else
        return NULL;
#endif
}
