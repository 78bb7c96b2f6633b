/* aidp_smaps_line (common/smaps.h): the smaps walk that the worker pool's
 * prefault and the key pages' relock share. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/smaps.h"

static const char *const smaps[] = {
        "55d0c0000000-55d0c0021000 r--p 00000000 fe:01 1234   /usr/bin/x\n",
        "Size:                132 kB\n",
        "VmFlags: rd mr mw me dw sd \n",
        "7f0000000000-7f0000004000 rw-p 00000000 00:00 0 \n",
        "Rss:                   8 kB\n",
        "VmFlags: rd wr mr mw me ac sd dd lo \n",
        /* a flags line with no header before it: never a mapping */
        "VmFlags: rd wr \n",
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0    [vsyscall]\n",
        "VmFlags: ex \n",
};

Test(smaps, each_block_is_reported_once_at_its_flags_line)
{
        struct aidp_smaps_map m = {0};
        unsigned long lo[4];
        char perms[4][5], flags[4][64];
        size_t n = 0;
        for (size_t i = 0; i < sizeof smaps / sizeof *smaps; i++)
                if (aidp_smaps_line(&m, smaps[i])) {
                        cr_assert_lt(n, 4);
                        lo[n] = m.lo;
                        memcpy(perms[n], m.perms, 5);
                        snprintf(flags[n], sizeof flags[n], "%s", m.vmflags);
                        cr_assert_gt(m.hi, m.lo);
                        n++;
                }
        cr_assert_eq(n, 3);
        cr_assert_eq(lo[0], 0x55d0c0000000UL);
        cr_assert_str_eq(perms[0], "r--p");
        cr_assert_eq(lo[1], 0x7f0000000000UL);
        cr_assert_str_eq(perms[1], "rw-p");
        cr_assert(strstr(flags[1], " dd") && strstr(flags[1], " lo"), "%s", flags[1]);
        cr_assert_str_eq(perms[2], "--xp");
        cr_assert_str_eq(flags[2], " ex \n");
}

Test(smaps, the_header_gives_the_inode_and_the_start_of_the_name)
{
        static const char *const lines[] = {
                "55d0c0000000-55d0c0021000 r--p 00000000 fe:01 1234   /usr/bin/x\n",
                "VmFlags: rd \n",
                "7f0000000000-7f0000004000 rw-p 00000000 00:00 0 \n",
                "VmFlags: rd wr \n",
                "55d0c1000000-55d0c1200000 rw-p 00000000 00:00 0                  [heap]\n",
                "VmFlags: rd wr \n",
                "7f0000010000-7f0000011000 rw-p 00002000 fe:01 99 "
                "/usr/lib/x86_64-linux-gnu/libc.so.6\n",
                "VmFlags: rd wr \n",
        };
        const unsigned long ino[] = {1234, 0, 0, 99};
        const char *const name[] = {"/usr/bin/x", "", "[heap]", "/usr/lib/x86_64"};
        struct aidp_smaps_map m = {0};
        size_t n = 0;
        for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
                if (aidp_smaps_line(&m, lines[i])) {
                        cr_assert_lt(n, 4);
                        cr_expect_eq(m.inode, ino[n], "mapping %zu: inode %lu", n, m.inode);
                        cr_expect_str_eq(m.name, name[n], "mapping %zu", n);
                        n++;
                }
        cr_assert_eq(n, 4);
}
