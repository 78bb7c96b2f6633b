/* Detached tmpfs (supervisor/sandbox/tmpfs.c) on kernel 6.18 here and 6.1 in the VM:
 * `noswap` is used where the kernel has it (6.4+) and on older kernels its
 * absence is detected and reported through .noswap = false, never a failure.
 * The mount itself must work the same on both. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <linux/magic.h>

#include "common/cleanup.h"
#include "supervisor/sandbox/tmpfs.h"
#include "tests/priv/priv.h"

static bool kernel_at_least(int major, int minor)
{
        struct utsname u;
        int ma = 0, mi = 0;
        cr_assert_eq(uname(&u), 0);
        cr_assert_eq(sscanf(u.release, "%d.%d", &ma, &mi), 2);
        return ma > major || (ma == major && mi >= minor);
}

static struct aidp_tmpfs t = {.fd = -1};

static void release(void)
{
        aidp_tmpfs_release(&t);
}

TestSuite(vm_tmpfs, .fini = release, .timeout = 30);

Test(vm_tmpfs, noswap_is_detected_and_the_mount_works_without_it)
{
        AIDP_REQUIRE_ROOT();
        aidp_error err = {0};
        int rc = aidp_tmpfs_create("scratch", 256 * 1024, 0700, 0, 0, &t, &err);
        cr_assert_eq(rc, 0, "tmpfs on this kernel must work with or without noswap: %s", err.msg);
        fprintf(stderr, "vm_tmpfs: noswap %s\n",
                t.noswap ? "in effect" : "unsupported by this kernel");
        cr_assert_eq(t.noswap, kernel_at_least(6, 4), "noswap detection does not match the kernel");
        if (getenv("AIDP_VM"))
                cr_assert(!t.noswap, "kernel 6.1 has no tmpfs noswap");

        struct statfs s;
        cr_assert_eq(fstatfs(t.fd, &s), 0);
        cr_assert_eq(s.f_type, TMPFS_MAGIC);
        struct stat st;
        cr_assert_eq(fstat(t.fd, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0700);

        /* The size limit holds: 256 KiB fit no 512 KiB file. */
        _cleanup_close_ int f = openat(t.fd, "blob", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(f, 0, "create in the detached tmpfs: %s", strerror(errno));
        char buf[4096];
        memset(buf, 0xa5, sizeof buf);
        size_t written = 0;
        int werr = 0;
        for (int i = 0; i < 128; i++) {
                ssize_t n = write(f, buf, sizeof buf);
                if (n < 0) {
                        werr = errno;
                        break;
                }
                written += (size_t)n;
        }
        cr_assert_eq(werr, ENOSPC, "writing past the size should fail with ENOSPC (wrote %zu)",
                     written);
        cr_assert_leq(written, 256 * 1024);
}

Test(vm_tmpfs, zero_size_is_refused)
{
        AIDP_REQUIRE_ROOT();
        aidp_error err = {0};
        cr_assert_lt(aidp_tmpfs_create("data", 0, 0700, 0, 0, &t, &err), 0);
        cr_assert(strstr(err.msg, "size") != NULL, "message: %s", err.msg);
        cr_assert_eq(t.fd, -1);
}
