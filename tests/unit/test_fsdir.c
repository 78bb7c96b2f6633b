#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsdir.h"

static char top[64];

static void setup(void)
{
        snprintf(top, sizeof top, "/tmp/aidp-fsdir.XXXXXX");
        cr_assert_not_null(mkdtemp(top));
}

static void teardown(void)
{
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
        cr_expect_eq(system(cmd), 0);
}

static mode_t mode_of(const char *p)
{
        struct stat st;
        cr_assert_eq(lstat(p, &st), 0, "%s: %s", p, strerror(errno));
        cr_assert(S_ISDIR(st.st_mode), "%s is not a directory", p);
        return st.st_mode & 07777;
}

Test(fsdir, creates_missing_parents_with_exact_modes_despite_umask, .init = setup, .fini = teardown)
{
        mode_t old = umask(077);
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/etc/aidp/keys", top);
        cr_assert_eq(aidp_mkdir_p(p, 0700, 0755), 0);
        umask(old);
        cr_expect_eq(mode_of(p), 0700);
        snprintf(p, sizeof p, "%s/etc/aidp", top);
        cr_expect_eq(mode_of(p), 0755);
        snprintf(p, sizeof p, "%s/etc", top);
        cr_expect_eq(mode_of(p), 0755);
}

Test(fsdir, leaves_existing_directories_alone_and_is_idempotent, .init = setup, .fini = teardown)
{
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/var", top);
        cr_assert_eq(mkdir(p, 0750), 0);
        cr_assert_eq(chmod(p, 0750), 0);
        snprintf(p, sizeof p, "%s/var/lib/aidp/", top);
        cr_assert_eq(aidp_mkdir_p(p, 0700, 0755), 0);
        cr_assert_eq(aidp_mkdir_p(p, 0700, 0755), 0);
        snprintf(p, sizeof p, "%s/var", top);
        cr_expect_eq(mode_of(p), 0750, "an admin's existing directory keeps its mode");
}

Test(fsdir, refuses_a_file_or_a_symlink_on_the_way, .init = setup, .fini = teardown)
{
        char p[PATH_MAX], q[PATH_MAX];
        snprintf(p, sizeof p, "%s/file", top);
        int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        snprintf(q, sizeof q, "%s/file/sub", top);
        cr_expect_eq(aidp_mkdir_p(q, 0700, 0755), -ENOTDIR);

        /* a symlink planted as a component is not followed */
        snprintf(p, sizeof p, "%s/target", top);
        cr_assert_eq(mkdir(p, 0700), 0);
        snprintf(q, sizeof q, "%s/link", top);
        cr_assert_eq(symlink(p, q), 0);
        snprintf(q, sizeof q, "%s/link/aidp", top);
        int r = aidp_mkdir_p(q, 0700, 0755);
        cr_expect(r == -ELOOP || r == -ENOTDIR, "followed a symlink: %d", r);
        snprintf(p, sizeof p, "%s/target/aidp", top);
        cr_expect_neq(access(p, F_OK), 0, "created through the symlink");
}

Test(fsdir, refuses_empty_and_overlong_paths)
{
        cr_expect_eq(aidp_mkdir_p("", 0700, 0755), -EINVAL);
        char *long_path = malloc(PATH_MAX + 16);
        memset(long_path, 'a', PATH_MAX + 15);
        long_path[0] = '/';
        long_path[PATH_MAX + 15] = '\0';
        cr_expect_eq(aidp_mkdir_p(long_path, 0700, 0755), -ENAMETOOLONG);
        free(long_path);
}

Test(fsdir, a_relative_path_starts_at_the_working_directory, .init = setup, .fini = teardown)
{
        char old[PATH_MAX];
        cr_assert_not_null(getcwd(old, sizeof old));
        cr_assert_eq(chdir(top), 0);
        int r = aidp_mkdir_p("keys/sub", 0700, 0755);
        cr_assert_eq(chdir(old), 0);
        cr_assert_eq(r, 0);
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/keys/sub", top);
        cr_expect_eq(mode_of(p), 0700);
}
