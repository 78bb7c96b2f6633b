#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "supervisor/sandbox/seccomp_load.h"

int aidp_seccomp_load(const struct aidp_bpf *b, unsigned flags)
{
        struct sock_fprog prog = {.len = (unsigned short)b->len, .filter = b->insns};
        if (b->len == 0 || b->len > BPF_MAXINSNS)
                return -E2BIG;
        /* With SECCOMP_FILTER_FLAG_NEW_LISTENER the result is the notify fd. */
        long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
        return r < 0 ? -errno : (int)r;
}
