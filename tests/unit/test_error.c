#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/error.h"

Test(error, wrap_prepends_context_outermost_first)
{
        aidp_error e = {0};
        int rc = aidp_error_set(&e, AIDP_EXIT_CONFIG, EINVAL, "unknown syscall '%s'", "mmap3");
        cr_assert_eq(rc, -EINVAL);
        aidp_error_wrap(&e, "seccomp.syscalls[%d].names[0]", 3);
        aidp_error_wrap(&e, "loading profile %s", "gpu-train");
        cr_assert_str_eq(
                e.msg,
                "loading profile gpu-train: seccomp.syscalls[3].names[0]: unknown syscall 'mmap3'");
        cr_assert_eq(e.status, AIDP_EXIT_CONFIG);
}

Test(error, set_at_names_file_line_column)
{
        aidp_error e = {0};
        aidp_error_set_at(&e, AIDP_EXIT_CONFIG, "p.yaml", 3, 7, "limits.memory: bad unit '8Gx'");
        cr_assert_str_eq(e.msg, "p.yaml:3:7: limits.memory: bad unit '8Gx'");
        cr_assert_eq(e.line, 3);
        cr_assert_eq(e.column, 7);
}

Test(error, errno_appends_strerror)
{
        aidp_error e = {0};
        int rc = aidp_error_errno(&e, AIDP_EXIT_INTERNAL, ENOENT, "open %s", "/x");
        cr_assert_eq(rc, -ENOENT);
        cr_assert(strstr(e.msg, "No such file") != NULL);
}
