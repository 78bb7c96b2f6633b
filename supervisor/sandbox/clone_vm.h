#pragma once
/* clone3 whose child shares the caller's memory (CLONE_VM) and runs on a stack
 * of its own: what the zygote clones pid 1 with (zygote_init.c, docs/run-core.md,
 * "pid 1 shares the zygote's memory"). A fork costs this kind of VM-hosted
 * kernel ~0.4 ms of page-table work, then a fault per page the child writes;
 * a shared clone neither. The caller must not touch what the child uses
 * (its stack frame, its heap) once the child runs: the zygote answers and
 * _exits. */
#include <linux/sched.h>
#include <sys/types.h>

#define AIDP_CLONE_VM_STACK      (8u << 20)   /* the child's stack */
#define AIDP_CLONE_VM_STACK_WARM (256u << 10) /* its top, faulted in ahead */
#define AIDP_CLONE_VM_GUARD      (256u << 10) /* its bottom, PROT_NONE */

/* The child's stack: AIDP_CLONE_VM_STACK bytes mapped, AIDP_CLONE_VM_GUARD of
 * them at the bottom a guard, the top AIDP_CLONE_VM_STACK_WARM bytes faulted in now. NULL where
 * aidp_clone3_on_stack is not available (an architecture other than x86-64)
 * or the mapping failed: the caller then clones as before. */
void *aidp_clone_vm_stack(void);

/* clone3 with ca (ca->stack and ca->stack_size set by the caller); the child
 * calls fn(arg) on that stack and exits with its result, never returning
 * here. The child's pid, or -1 with errno (ENOSYS off x86-64). */
pid_t aidp_clone3_on_stack(struct clone_args *ca, int (*fn)(void *), void *arg);
