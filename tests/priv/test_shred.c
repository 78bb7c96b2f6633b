#define _GNU_SOURCE
/* Shred, seen from outside: every byte of every file in a detached tmpfs is
 * overwritten in place (checked through a descriptor kept open across the
 * shred, which still sees the same pages after the name is gone), holes are
 * not filled, nested trees and odd file types are handled, and the report
 * counts what it did. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "priv.h"
#include "runner.h"
#include "supervisor/sandbox/shred.h"
#include "supervisor/sandbox/tmpfs.h"

static void fill(int dirfd, const char *name, size_t size, unsigned char byte)
{
        int fd = openat(dirfd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert(fd >= 0);
        unsigned char buf[65536];
        memset(buf, byte, sizeof buf);
        for (size_t done = 0; done < size;) {
                size_t n = size - done < sizeof buf ? size - done : sizeof buf;
                cr_assert_eq(write(fd, buf, n), (ssize_t)n);
                done += n;
        }
        close(fd);
}

Test(shred, overwrites_every_byte_in_place_and_removes_the_tree, .timeout = 60)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_tmpfs t;
        aidp_error err = {0};
        cr_assert_eq(aidp_tmpfs_create("shredtest", 256ULL << 20, 0755, 0, 0, &t, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(mkdirat(t.fd, "a", 0755), 0);
        cr_assert_eq(mkdirat(t.fd, "a/b", 0700), 0);
        fill(t.fd, "big", (100ULL << 20) + 17, 0xA5); /* more than one 64 MiB work unit */
        fill(t.fd, "a/b/small", 4097, 0x5A);
        fill(t.fd, "a/empty", 0, 0);
        /* sparse: 1 MiB of data at 512 MiB offset would not fit if holes were filled */
        int sp = openat(t.fd, "sparse", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert(sp >= 0);
        unsigned char one[4096];
        memset(one, 0x77, sizeof one);
        cr_assert_eq(pwrite(sp, one, sizeof one, 512LL << 20), (ssize_t)sizeof one);
        close(sp);
        cr_assert_eq(symlinkat("big", t.fd, "link"), 0);
        cr_assert_eq(mkfifoat(t.fd, "fifo", 0600), 0);

        int keep_big = openat(t.fd, "big", O_RDONLY | O_CLOEXEC);
        int keep_small = openat(t.fd, "a/b/small", O_RDONLY | O_CLOEXEC);
        int keep_sparse = openat(t.fd, "sparse", O_RDONLY | O_CLOEXEC);
        cr_assert(keep_big >= 0 && keep_small >= 0 && keep_sparse >= 0);

        struct aidp_shred_report rep;
        cr_assert_eq(aidp_shred_tree(t.fd, 2, &rep), 0);
        cr_expect(rep.verified, "%s", rep.first_failure);
        cr_expect_eq(rep.failures, 0);
        cr_expect_eq(rep.files, 6, "files: %llu", (unsigned long long)rep.files);
        cr_expect_eq(rep.bytes, (100ULL << 20) + 17 + 4097 + 4096);

        /* The pages behind the names hold zeros now, not the data. */
        cr_expect(aidp_test_fd_all_zero(keep_big, (100LL << 20) + 17), "big was not overwritten");
        cr_expect(aidp_test_fd_all_zero(keep_small, 4097), "a/b/small was not overwritten");
        cr_expect(aidp_test_fd_all_zero(keep_sparse, 4096), "sparse head");
        unsigned char tail[4096];
        cr_expect_eq(pread(keep_sparse, tail, sizeof tail, 512LL << 20), (ssize_t)sizeof tail);
        cr_expect(aidp_test_fd_all_zero(keep_sparse, 0) && tail[0] == 0 && tail[4095] == 0,
                  "sparse data not overwritten");
        struct stat st;
        cr_expect_eq(fstat(keep_sparse, &st), 0);
        cr_expect_lt(st.st_blocks * 512, 1LL << 20, "the hole was filled (%lld bytes allocated)",
                     (long long)st.st_blocks * 512);
        /* and the tree is gone */
        cr_expect_neq(faccessat(t.fd, "big", F_OK, AT_SYMLINK_NOFOLLOW), 0);
        cr_expect_neq(faccessat(t.fd, "a", F_OK, AT_SYMLINK_NOFOLLOW), 0);
        cr_expect_neq(faccessat(t.fd, "link", F_OK, AT_SYMLINK_NOFOLLOW), 0);
        cr_expect_neq(faccessat(t.fd, "fifo", F_OK, AT_SYMLINK_NOFOLLOW), 0);
        close(keep_big);
        close(keep_small);
        close(keep_sparse);
        aidp_tmpfs_release(&t);
}

/* A range that cannot be mapped (here: no address space left for a 64 MiB
 * window) is overwritten and verified with pwrite and pread instead. */
Test(shred, falls_back_to_write_and_read_when_a_range_cannot_be_mapped, .timeout = 60)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_tmpfs t;
        aidp_error err = {0};
        cr_assert_eq(aidp_tmpfs_create("shredmap", 128ULL << 20, 0755, 0, 0, &t, &err), 0, "%s",
                     err.msg);
        fill(t.fd, "big", (70ULL << 20) + 5, 0xC3);
        int keep = openat(t.fd, "big", O_RDONLY | O_CLOEXEC);
        cr_assert(keep >= 0);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                /* Room for the worker's buffers, not for a 64 MiB mapping. */
                FILE *f = fopen("/proc/self/statm", "re");
                unsigned long pages = 0;
                if (!f || fscanf(f, "%lu", &pages) != 1)
                        _exit(3);
                fclose(f);
                struct rlimit rl = {.rlim_cur = pages * 4096 + (16UL << 20),
                                    .rlim_max = pages * 4096 + (16UL << 20)};
                if (setrlimit(RLIMIT_AS, &rl) < 0)
                        _exit(4);
                void *probe = mmap(NULL, 64UL << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (probe != MAP_FAILED)
                        _exit(5); /* the limit does not bite: the test proves nothing */
                struct aidp_shred_report rep;
                if (aidp_shred_tree(t.fd, 1, &rep) < 0)
                        _exit(6);
                _exit(rep.verified && rep.bytes == (70ULL << 20) + 5 ? 0 : 7);
        }
        int st = 0;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st), "the shredding child died (signal %d)", WTERMSIG(st));
        cr_assert_eq(WEXITSTATUS(st), 0, "child status %d", WEXITSTATUS(st));
        cr_expect(aidp_test_fd_all_zero(keep, (70LL << 20) + 5), "big was not overwritten");
        close(keep);
        aidp_tmpfs_release(&t);
}

/* 20 nested directories of 240-character names put the file 4,800 bytes deep,
 * past PATH_MAX: the walk reaches it anyway (no path is ever built), overwrites
 * it in place and removes the whole tree. */
Test(shred, reaches_files_deeper_than_path_max, .timeout = 60)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_tmpfs t;
        aidp_error err = {0};
        cr_assert_eq(aidp_tmpfs_create("shreddeep", 16ULL << 20, 0755, 0, 0, &t, &err), 0, "%s",
                     err.msg);
        char name[241];
        memset(name, 'd', 240);
        name[240] = '\0';
        int dfd = dup(t.fd);
        for (int i = 0; i < 20; i++) {
                cr_assert_eq(mkdirat(dfd, name, 0755), 0, "level %d: %s", i, strerror(errno));
                int nfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                cr_assert_geq(nfd, 0);
                close(dfd);
                dfd = nfd;
        }
        fill(dfd, "deep", 3 * 4096 + 5, 0xEE);
        int keep = openat(dfd, "deep", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(keep, 0);
        close(dfd);
        struct aidp_shred_report rep;
        cr_assert_eq(aidp_shred_tree(t.fd, 2, &rep), 0);
        cr_expect(rep.verified, "%s", rep.first_failure);
        cr_expect_eq(rep.files, 1);
        cr_expect_eq(rep.bytes, 3 * 4096 + 5);
        cr_expect(aidp_test_fd_all_zero(keep, 3 * 4096 + 5), "the deep file was not overwritten");
        cr_expect_neq(faccessat(t.fd, name, F_OK, AT_SYMLINK_NOFOLLOW), 0,
                      "the tree is still there");
        close(keep);
        aidp_tmpfs_release(&t);
}

/* A tree as wide as it is deep (here 3,000 levels, and files at every level)
 * is walked without recursion: nothing a job can nest exhausts the stack. */
Test(shred, walks_a_very_deep_tree_without_recursion, .timeout = 120)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_tmpfs t;
        aidp_error err = {0};
        cr_assert_eq(aidp_tmpfs_create("shreddeeper", 64ULL << 20, 0755, 0, 0, &t, &err), 0, "%s",
                     err.msg);
        int dfd = dup(t.fd);
        for (int i = 0; i < 3000; i++) {
                fill(dfd, "f", 10, 0x11);
                cr_assert_eq(mkdirat(dfd, "d", 0755), 0, "level %d", i);
                int nfd = openat(dfd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                cr_assert_geq(nfd, 0);
                close(dfd);
                dfd = nfd;
        }
        close(dfd);
        struct aidp_shred_report rep;
        cr_assert_eq(aidp_shred_tree(t.fd, 2, &rep), 0);
        cr_expect(rep.verified, "%s", rep.first_failure);
        cr_expect_eq(rep.files, 3000);
        cr_expect_eq(rep.bytes, 30000);
        cr_expect_neq(faccessat(t.fd, "d", F_OK, AT_SYMLINK_NOFOLLOW), 0,
                      "the tree is still there");
        aidp_tmpfs_release(&t);
}

/* A tmpfs that holds nothing but its root is reported empty and verified at
 * once (the kernel's inode and page counts, no walk); anything in it, even
 * an empty file or an empty directory, takes an inode and gets the walk,
 * which removes it. */
Test(shred, an_empty_tmpfs_is_verified_at_once_and_anything_in_one_is_walked)
{
        AIDP_REQUIRE_ROOT();
        struct aidp_tmpfs t;
        aidp_error err = {0};
        cr_assert_eq(aidp_tmpfs_create("shredempty", 8ULL << 20, 0755, 0, 0, &t, &err), 0, "%s",
                     err.msg);
        struct aidp_shred_report rep;
        cr_assert_eq(aidp_shred_tree(t.fd, 0, &rep), 0);
        cr_expect(rep.verified && rep.files == 0 && rep.bytes == 0 && rep.failures == 0);
        fill(t.fd, "e", 0, 0);
        cr_assert_eq(aidp_shred_tree(t.fd, 0, &rep), 0);
        cr_expect(rep.verified, "%s", rep.first_failure);
        cr_expect_eq(rep.files, 1, "an empty file was not listed: %llu",
                     (unsigned long long)rep.files);
        cr_expect_neq(faccessat(t.fd, "e", F_OK, AT_SYMLINK_NOFOLLOW), 0, "e was not removed");
        cr_assert_eq(mkdirat(t.fd, "d", 0700), 0);
        cr_assert_eq(aidp_shred_tree(t.fd, 0, &rep), 0);
        cr_expect(rep.verified);
        cr_expect_neq(faccessat(t.fd, "d", F_OK, AT_SYMLINK_NOFOLLOW), 0, "d was not removed");
        /* Data, with threads = 0 (one worker per CPU): overwritten. */
        fill(t.fd, "x", 3 * 4096 + 5, 0x3C);
        int keep = openat(t.fd, "x", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(keep, 0);
        cr_assert_eq(aidp_shred_tree(t.fd, 0, &rep), 0);
        cr_expect(rep.verified && rep.files == 1 && rep.bytes == 3 * 4096 + 5);
        cr_expect(aidp_test_fd_all_zero(keep, 3 * 4096 + 5), "x was not overwritten");
        close(keep);
        /* Empty again once the walk removed it all. */
        cr_assert_eq(aidp_shred_tree(t.fd, 0, &rep), 0);
        cr_expect(rep.verified && rep.files == 0);
        aidp_tmpfs_release(&t);
}
