/* What the kernel under the tests provides, checked the same way on this
 * machine (cgroup v1, kernel 6.18) and in the VM of scripts/vm-test (pure
 * cgroup v2, kernel 6.1). Each test reports what it found and asserts that it
 * matches the kernel version; with AIDP_VM=1 (set by the VM's /init) it also
 * asserts that the VM is what docs/vm-tests.md promises, so a broken VM image
 * cannot pass silently. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/landlock.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "common/cleanup.h"
#include "tests/priv/priv.h"

static bool in_vm(void)
{
        const char *v = getenv("AIDP_VM");
        return v && strcmp(v, "1") == 0;
}

static void kernel_version(int *major, int *minor)
{
        struct utsname u;
        cr_assert_eq(uname(&u), 0);
        cr_assert_eq(sscanf(u.release, "%d.%d", major, minor), 2, "release '%s'", u.release);
}

static bool kernel_at_least(int major, int minor)
{
        int ma, mi;
        kernel_version(&ma, &mi);
        return ma > major || (ma == major && mi >= minor);
}

/* Whole-word match in a space-separated list such as cgroup.controllers. */
static bool has_word(const char *list, const char *word)
{
        size_t n = strlen(word);
        for (const char *p = strstr(list, word); p; p = strstr(p + 1, word)) {
                bool start = p == list || p[-1] == ' ';
                bool end = p[n] == '\0' || p[n] == ' ' || p[n] == '\n';
                if (start && end)
                        return true;
        }
        return false;
}

static long fs_magic(const char *path)
{
        struct statfs s;
        if (statfs(path, &s) < 0)
                return -errno;
        return (long)s.f_type;
}

Test(vm_kernel, release_is_supported)
{
        struct utsname u;
        int ma, mi;
        cr_assert_eq(uname(&u), 0);
        kernel_version(&ma, &mi);
        fprintf(stderr, "vm_kernel: kernel %s\n", u.release);
        /* 6.1 (Debian 12) is the oldest kernel aidp is tested on. */
        cr_assert(kernel_at_least(6, 1), "kernel %s is older than 6.1", u.release);
        if (in_vm())
                cr_assert(ma == 6 && mi == 1, "the VM should boot kernel 6.1, got %s", u.release);
}

Test(vm_kernel, cgroup_hierarchy_has_memory_cpu_pids)
{
        long magic = fs_magic("/sys/fs/cgroup");
        cr_assert_gt(magic, 0, "statfs /sys/fs/cgroup: %s", strerror((int)-magic));
        if (magic == CGROUP2_SUPER_MAGIC) {
                char buf[512] = "";
                _cleanup_fclose_ FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "re");
                cr_assert_not_null(f);
                cr_assert_not_null(fgets(buf, sizeof(buf), f));
                fprintf(stderr, "vm_kernel: cgroup v2 unified, controllers: %s", buf);
                for (const char *c = "memory\0cpu\0pids\0"; *c; c += strlen(c) + 1)
                        cr_assert(has_word(buf, c), "controller %s not available: %s", c, buf);
        } else {
                /* v1: each controller is its own cgroup mount under a tmpfs. */
                cr_assert(!in_vm(), "the VM should mount cgroup2 at /sys/fs/cgroup");
                cr_assert_eq(magic, TMPFS_MAGIC, "/sys/fs/cgroup is neither cgroup2 nor a tmpfs");
                fprintf(stderr, "vm_kernel: cgroup v1 (/sys/fs/cgroup is a tmpfs)\n");
                for (const char *c = "memory\0cpu\0pids\0"; *c; c += strlen(c) + 1) {
                        char path[64];
                        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", c);
                        cr_assert_eq(fs_magic(path), CGROUP_SUPER_MAGIC,
                                     "%s is not a cgroup v1 mount", path);
                }
        }
        if (in_vm()) {
                /* cgroup_no_v1=all: no v1 hierarchy may be mounted at all. */
                char line[512];
                _cleanup_fclose_ FILE *m = fopen("/proc/self/mounts", "re");
                cr_assert_not_null(m);
                while (fgets(line, sizeof(line), m))
                        cr_assert(!strstr(line, " cgroup "), "v1 hierarchy mounted: %s", line);
        }
}

/* tmpfs `noswap` arrived in 6.4. aidp asks for it so decrypted data never
 * reaches swap; on older kernels it must detect the refusal (EINVAL from
 * fsconfig, before any mount exists) and report it instead of failing. */
Test(vm_kernel, tmpfs_noswap_matches_kernel_version)
{
        AIDP_REQUIRE_ROOT();
        _cleanup_close_ int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        cr_assert_geq(fs, 0, "fsopen tmpfs: %s", strerror(errno));
        int r = fsconfig(fs, FSCONFIG_SET_FLAG, "noswap", NULL, 0);
        int err = r < 0 ? errno : 0;
        bool expected = kernel_at_least(6, 4);
        fprintf(stderr, "vm_kernel: tmpfs noswap %s (%s)\n", r == 0 ? "accepted" : "refused",
                r == 0 ? "ok" : strerror(err));
        if (expected)
                cr_assert_eq(r, 0, "kernel >= 6.4 refused noswap: %s", strerror(err));
        else
                cr_assert_eq(err, EINVAL, "kernel < 6.4 should refuse noswap with EINVAL, got %s",
                             r == 0 ? "success" : strerror(err));
        if (in_vm())
                cr_assert_neq(r, 0, "kernel 6.1 in the VM accepted noswap");
}

/* Run fn in a forked child; its exit status is the result. */
static int in_child(int (*fn)(void))
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
                _exit(fn());
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int try_userns(void)
{
        return unshare(CLONE_NEWUSER) == 0 ? 0 : 1;
}

/* A throwaway table in a throwaway network namespace: proves nf_tables (a
 * module in Debian's 6.1, loaded by the VM's /init) without touching the
 * machine's own ruleset. */
static int try_nftables(void)
{
        if (unshare(CLONE_NEWNET) < 0)
                return 2;
        struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!nft)
                return 3;
        nft_ctx_buffer_output(nft);
        nft_ctx_buffer_error(nft);
        int r = nft_run_cmd_from_buffer(nft,
                                        "add table inet aidp_probe\n"
                                        "add chain inet aidp_probe out { type filter hook output "
                                        "priority 0; policy drop; }\n"
                                        "add rule inet aidp_probe out oif lo accept\n");
        if (r == 0)
                r = nft_run_cmd_from_buffer(nft, "list table inet aidp_probe");
        if (r != 0)
                fprintf(stderr, "vm_kernel: nft: %s\n", nft_ctx_get_error_buffer(nft));
        else if (!strstr(nft_ctx_get_output_buffer(nft), "oif \"lo\" accept"))
                r = 4;
        nft_ctx_free(nft);
        return r == 0 ? 0 : 1;
}

Test(vm_kernel, sandbox_kernel_features)
{
        AIDP_REQUIRE_ROOT();
        unsigned int action = SECCOMP_RET_ERRNO;
        cr_assert_eq(syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action), 0,
                     "seccomp filters unavailable: %s", strerror(errno));
        long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        fprintf(stderr, "vm_kernel: landlock ABI %ld\n", abi);
        cr_assert_geq(abi, 1, "landlock unavailable: %s", strerror(errno));
        cr_assert_eq(in_child(try_userns), 0, "user namespaces unavailable");
        cr_assert_eq(fs_magic("/proc/self/ns/cgroup") >= 0, true, "no cgroup namespaces");
        cr_assert_eq(in_child(try_nftables), 0, "nf_tables unusable in a fresh netns");
}
