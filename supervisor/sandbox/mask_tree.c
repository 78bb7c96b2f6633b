/* The mount table as pid 1 sees it, for mask.c (mask_tree.h). */
#define _GNU_SOURCE
#include "supervisor/sandbox/mask_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

#define S aidp_mask_state

struct aidp_mask_state aidp_mask_state;

const char *aidp_mask_pool(size_t off)
{
        return S.pool + off;
}

/* Linux 6.8's listmount and statmount, newer than Debian 12's headers. */
#ifndef SYS_statmount
#define SYS_statmount 457
#define SYS_listmount 458
#endif
#define MASK_STATMOUNT_MNT_BASIC 0x00000002U
#define MASK_STATMOUNT_MNT_POINT 0x00000010U

struct mask_mnt_id_req {
        uint32_t size, spare;
        uint64_t mnt_id, param;
};

struct mask_statmount {
        uint32_t size, spare1;
        uint64_t mask;
        uint32_t sb_dev_major, sb_dev_minor;
        uint64_t sb_magic;
        uint32_t sb_flags, fs_type;
        uint64_t mnt_id, mnt_parent_id;
        uint32_t mnt_id_old, mnt_parent_id_old;
        uint64_t mnt_attr, mnt_propagation, mnt_peer_group, mnt_master, propagate_from;
        uint32_t mnt_root, mnt_point;
        uint64_t spare2[50];
        char str[];
};

int aidp_mask_mount_id(int fd, uint64_t *ret)
{
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID | AIDP_MASK_STATX_MNT_ID_UNIQUE, &sx) < 0)
                return -errno;
        if (!(sx.stx_mask & (STATX_MNT_ID | AIDP_MASK_STATX_MNT_ID_UNIQUE)))
                return -ENOSYS;
        S.unique = sx.stx_mask & AIDP_MASK_STATX_MNT_ID_UNIQUE;
        *ret = sx.stx_mnt_id;
        return 0;
}

struct aidp_mask_group *aidp_mask_find_group(uint64_t mnt_id)
{
        /* Host sockets come sorted by path: mostly the group of the last. */
        if (S.last < S.n && S.g[S.last].mnt_id == mnt_id)
                return &S.g[S.last];
        for (size_t i = 0; i < S.n; i++)
                if (S.g[i].mnt_id == mnt_id) {
                        S.last = i;
                        return &S.g[i];
                }
        return NULL;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static void populate(const void *p, size_t len)
{
        uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095, e = (uintptr_t)p + len;
        (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
}

void aidp_mask_prefault(void)
{
        populate(&S.g[0], 8 * sizeof S.g[0]);
        populate(&S.n, sizeof S.n + 16 * sizeof S.c[0]);
        populate(S.pool, 4096);
        /* used and the buffer's first page (statmount's answers), then the
         * struct's small tail: layer_fd, last, unique, kind, fd. */
        populate(&S.used, sizeof S.used + 4096);
        populate(&S.layer_fd, sizeof S - offsetof(struct aidp_mask_state, layer_fd));
}

static long pool_add(const char *s)
{
        size_t len = strlen(s);
        if (S.used + len + 1 > AIDP_MASK_POOL_SIZE)
                return -1;
        memcpy(S.pool + S.used, s, len + 1);
        S.used += len + 1;
        return (long)(S.used - len - 1);
}

/* statmount of id into S.buf: its parent and mount point. */
static int stat_mount(uint64_t id, struct mask_statmount **ret)
{
        struct mask_mnt_id_req req = {.size = sizeof req,
                                      .mnt_id = id,
                                      .param = MASK_STATMOUNT_MNT_BASIC | MASK_STATMOUNT_MNT_POINT};
        struct mask_statmount *sm = (struct mask_statmount *)(void *)S.buf;
        if (syscall(SYS_statmount, &req, sm, sizeof S.buf, 0) < 0)
                return -errno;
        if ((sm->mask & (MASK_STATMOUNT_MNT_BASIC | MASK_STATMOUNT_MNT_POINT)) !=
                    (MASK_STATMOUNT_MNT_BASIC | MASK_STATMOUNT_MNT_POINT) ||
            sm->mnt_point >= sizeof S.buf - sizeof *sm)
                return -EIO;
        *ret = sm;
        return 0;
}

/* read_mountinfo's result from listmount and statmount: work in the number
 * of mounts below the groups', not in the number on the host. */
static int list_children(void)
{
        for (size_t gi = 0; gi < S.n; gi++) {
                struct aidp_mask_group *g = &S.g[gi];
                struct mask_statmount *sm;
                int rc = stat_mount(g->mnt_id, &sm);
                if (rc < 0)
                        return rc;
                long off = pool_add(sm->str + sm->mnt_point);
                if (off < 0)
                        return -E2BIG;
                g->point = (size_t)off;
                g->seen = true;
                uint64_t ids[128];
                struct mask_mnt_id_req req = {.size = sizeof req, .mnt_id = g->mnt_id};
                for (;;) {
                        long n = syscall(SYS_listmount, &req, ids, 128, 0);
                        if (n < 0)
                                return -errno;
                        for (long k = 0; k < n; k++) {
                                /* Some kernels list the whole subtree: only
                                 * the mounts right below are moved. */
                                rc = stat_mount(ids[k], &sm);
                                if (rc == -ENOENT)
                                        continue; /* gone meanwhile */
                                if (rc < 0)
                                        return rc;
                                if (sm->mnt_parent_id != g->mnt_id || ids[k] == g->mnt_id)
                                        continue;
                                if (S.nc == AIDP_MASK_MAX_CHILDREN ||
                                    (off = pool_add(sm->str + sm->mnt_point)) < 0)
                                        return -E2BIG;
                                S.c[S.nc++] =
                                        (struct aidp_mask_child){.group = gi, .point = (size_t)off};
                        }
                        if (n < 128)
                                break;
                        req.param = ids[n - 1];
                }
        }
        return 0;
}

/* Copy s (a mountinfo field: \ooo escapes for space, tab, newline and
 * backslash) into the pool; its offset, or -1 when the pool is full. */
static long pool_add_unescaped(const char *s, size_t len)
{
        size_t start = S.used;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3') {
                        c = (char)(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) |
                                   (s[i + 3] - '0'));
                        i += 3;
                }
                if (S.used + 2 > AIDP_MASK_POOL_SIZE)
                        return -1;
                S.pool[S.used++] = c;
        }
        S.pool[S.used++] = '\0';
        return (long)start;
}

/* One line of mountinfo: "ID PARENT MAJ:MIN ROOT POINT ...". */
static int mountinfo_line(char *line)
{
        char *f[5];
        size_t len[5];
        char *p = line;
        for (int i = 0; i < 5; i++) {
                f[i] = p;
                p = strchr(p, ' ');
                if (!p)
                        return 0;
                len[i] = (size_t)(p - f[i]);
                p++;
        }
        uint64_t id = strtoull(f[0], NULL, 10), parent = strtoull(f[1], NULL, 10);
        struct aidp_mask_group *g = aidp_mask_find_group(id), *pg = aidp_mask_find_group(parent);
        if (!g && (!pg || parent == id))
                return 0;
        long off = pool_add_unescaped(f[4], len[4]);
        if (off < 0)
                return -E2BIG;
        if (g) {
                g->seen = true;
                g->point = (size_t)off;
        } else {
                if (S.nc == AIDP_MASK_MAX_CHILDREN)
                        return -E2BIG;
                S.c[S.nc++] =
                        (struct aidp_mask_child){.group = (size_t)(pg - S.g), .point = (size_t)off};
        }
        return 0;
}

/* Each group's mount point, and the mounts right below each group's mount,
 * from pid 1's own mountinfo (the host's mounts and the staging root's). */
int aidp_mask_read_tree(void)
{
        if (S.unique)
                return list_children();
        _cleanup_close_ int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t have = 0;
        for (;;) {
                ssize_t n = read(fd, S.buf + have, sizeof S.buf - 1 - have);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                have += (size_t)n;
                S.buf[have] = '\0';
                char *line = S.buf, *nl;
                while ((nl = strchr(line, '\n'))) {
                        *nl = '\0';
                        int rc = mountinfo_line(line);
                        if (rc < 0)
                                return rc;
                        line = nl + 1;
                }
                have = (size_t)(S.buf + have - line);
                if (n == 0)
                        break;
                if (have == sizeof S.buf - 1)
                        return -E2BIG; /* a line longer than the buffer */
                memmove(S.buf, line, have);
        }
        for (size_t i = 0; i < S.n; i++)
                if (!S.g[i].seen)
                        return -ESTALE;
        return 0;
}
