#define _GNU_SOURCE
#include "supervisor/sandbox/sandbox.h"
#include "supervisor/sandbox/procstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/path.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "supervisor/sandbox/creds.h"
#include "supervisor/sandbox/devnodes.h"
#include "supervisor/sandbox/fdpass.h"
#include "supervisor/sandbox/hostsock.h"
#include "supervisor/sandbox/inroot.h"
#include "supervisor/sandbox/mask.h"

/* The new root is assembled in the child's private mount namespace on
 * STAGE_ROOT, below a tiny tmpfs on /tmp (the host's /tmp is only shadowed
 * there) that holds the mask source: the old root's one lazy unmount takes it
 * too (each unmount waits for an RCU grace period, on the path to the job). */
#define STAGE_DIR  "/tmp"
#define STAGE_ROOT STAGE_DIR "/root"
#define MASK_SRC   STAGE_DIR

const char *const aidp_sandbox_masked_paths[] = {
        "/etc/aidp",
        "/var/lib/aidp",
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/etc/sudoers.d",
        "/etc/ssh",
        "/etc/ssl/private",
        "/proc/kcore",
        "/proc/keys",
        "/proc/key-users",
        "/proc/sysrq-trigger",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
        "/proc/kallsyms",
        "/proc/kmsg",
        "/proc/kpagecount",
        "/proc/kpageflags",
        "/proc/kpagecgroup",
        "/proc/config.gz",
        "/proc/acpi",
        "/proc/scsi",
        "/proc/asound",
        "/proc/interrupts",
        "/sys/firmware",
        "/sys/kernel/debug",
        "/sys/kernel/tracing",
        "/sys/kernel/security",
        "/sys/devices/virtual/powercap",
        "/sys/fs/bpf",
        "/sys/kernel/mm",
        NULL,
};

/* Host top-level directories that never enter the sandbox: fresh instances
 * replace them (proc, dev, sys, tmp) or they are masked (the rest). */
static const char *const not_bound[] = {
        "proc", "dev", "sys", "tmp", "run", "home", "root", "lost+found", "media", "mnt", NULL,
};
/* Top-level masked directories: present but mode 0711 and empty, so nothing
 * can be listed while a bound working directory below stays reachable. */
static const char *const masked_top[] = {"run", "home", "root", NULL};

/* Read-only inside /proc even where readable. */
static const char *const proc_readonly[] = {"/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs",
                                            NULL};

const char *aidp_sandbox_stage_name(enum aidp_sandbox_stage st)
{
        switch (st) {
        case AIDP_STAGE_SYNC: return "waiting for the supervisor";
        case AIDP_STAGE_NAMESPACES: return "namespaces";
        case AIDP_STAGE_NETWORK: return "loopback";
        case AIDP_STAGE_MOUNTS: return "mounts";
        case AIDP_STAGE_PIVOT: return "pivot_root";
        case AIDP_STAGE_CREDENTIALS: return "credentials";
        case AIDP_STAGE_RLIMITS: return "rlimits";
        case AIDP_STAGE_SECCOMP: return "seccomp";
        case AIDP_STAGE_EXEC: return "exec";
        case AIDP_STAGE_INIT: return "sandbox init";
        case AIDP_STAGE_CGROUP: return "cgroup";
        case AIDP_STAGE_CWD: return "working directory";
        case AIDP_STAGE_MAX: break;
        }
        return "?";
}

static int g_err_fd = -1;
/* The job's Landlock ruleset, made by pid 1 before the go (hostsock.h). */
static int g_landlock_fd = -1;

__attribute__((noreturn)) static void die(enum aidp_sandbox_stage st, int errnum, const char *what)
{
        struct aidp_sandbox_report r = {.stage = st, .errnum = errnum};
        aidp_text_printf(r.what, sizeof r.what, "%s", what ? what : "");
        if (g_err_fd >= 0) {
                ssize_t n = write(g_err_fd, &r, sizeof r);
                (void)n;
        }
        _exit(st == AIDP_STAGE_EXEC ? (errnum == ENOENT ? 127 : 126) : 125);
}

#define CHECK(stage, expr, what)                                                                   \
        do {                                                                                       \
                if ((expr) < 0)                                                                    \
                        die(stage, errno, what);                                                   \
        } while (0)

/* out = a/b for a mount step. A path cut short would name another file, so
 * one that does not fit stops the sandbox, naming it, instead. */
static void path_join(char *out, size_t len, const char *a, const char *b)
{
        if (aidp_path_join(out, len, a, b) < 0)
                die(AIDP_STAGE_MOUNTS, ENAMETOOLONG, b);
}

static int mkdir_p(const char *path, mode_t mode)
{
        char tmp[PATH_MAX];
        if (strlen(path) >= sizeof tmp) {
                errno = ENAMETOOLONG;
                return -1;
        }
        strcpy(tmp, path);
        for (char *p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                        return -1;
                *p = '/';
        }
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                return -1;
        return 0;
}

/* Attach a clone of src (a path, or the mount fd itself when src_path is "")
 * at dst with the given attributes. The clone is detached until move_mount,
 * so its attributes are set before anything inside can see it. */
static int attach_clone(int src_dirfd, const char *src_path, const char *dst, uint64_t attr,
                        bool recursive)
{
        unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
        if (!*src_path)
                flags |= AT_EMPTY_PATH;
        _cleanup_close_ int fd = open_tree(src_dirfd, src_path, flags);
        if (fd < 0)
                return -1;
        if (attr) {
                struct mount_attr a = {.attr_set = attr};
                if (mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a,
                                  sizeof a) < 0)
                        return -1;
        }
        return move_mount(fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH);
}

/* Place a clone of one of the supervisor's detached tmpfs mounts at dst. The
 * supervisor keeps the original (writable) for injection and shred. Kernels
 * before 6.x refuse to clone a mount that is not attached anywhere (EINVAL);
 * there the original is attached briefly, cloned from its path, and
 * detached again, which leaves the supervisor's fd pointing at it as before. */
static int attach_tmpfs(const char *root, int mnt_fd, const char *dst, uint64_t attr)
{
        if (attach_clone(mnt_fd, "", dst, attr, false) == 0)
                return 0;
        if (errno != EINVAL)
                return -1;
        char tmp[PATH_MAX];
        path_join(tmp, sizeof tmp, root, "/.aidp-attach");
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
                return -1;
        int rc = move_mount(mnt_fd, "", AT_FDCWD, tmp, MOVE_MOUNT_F_EMPTY_PATH);
        if (rc == 0) {
                rc = attach_clone(AT_FDCWD, tmp, dst, attr, false);
                int e = errno;
                umount2(tmp, MNT_DETACH);
                errno = e;
        }
        int e = errno;
        rmdir(tmp);
        errno = e;
        return rc;
}

static bool in_list(const char *const *list, const char *s)
{
        for (; *list; list++)
                if (!strcmp(*list, s))
                        return true;
        return false;
}

static const uint64_t RO = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

/* egress: the run's DNS proxy, the job's only resolver, read-only (docs/egress.md). */
static void attach_resolv(const char *root, const struct aidp_sandbox_spec *s)
{
        if (s->resolv_tree_fd < 0)
                return;
        char p[PATH_MAX];
        struct stat st;
        path_join(p, sizeof p, root, "/etc/resolv.conf");
        if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode))
                die(AIDP_STAGE_MOUNTS, ENOENT, "/etc/resolv.conf is not a regular file");
        struct mount_attr a = {.attr_set = RO | MOUNT_ATTR_NOEXEC};
        CHECK(AIDP_STAGE_MOUNTS, mount_setattr(s->resolv_tree_fd, "", AT_EMPTY_PATH, &a, sizeof a),
              "/etc/resolv.conf");
        CHECK(AIDP_STAGE_MOUNTS,
              move_mount(s->resolv_tree_fd, "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH),
              "/etc/resolv.conf");
}

/* One top-level entry of the host root: a directory is bound read-only (with
 * its submounts), a symlink (merged /usr: bin -> usr/bin) is recreated. */
static void bind_root_entry(const char *root, const struct aidp_sandbox_spec *s, const char *name,
                            unsigned char type)
{
        char dst[PATH_MAX], src[PATH_MAX];
        path_join(dst, sizeof dst, root, name);
        path_join(src, sizeof src, "/", name);
        /* The entry's type from the directory; lstat only where the file
         * system does not say. */
        struct stat st = {.st_mode = type == DT_DIR ? S_IFDIR : type == DT_LNK ? S_IFLNK : 0};
        if (type == DT_UNKNOWN && lstat(src, &st) < 0)
                return;
        if (S_ISLNK(st.st_mode)) {
                char target[PATH_MAX];
                ssize_t n = readlink(src, target, sizeof target - 1);
                if (n < 0)
                        return;
                target[n] = '\0';
                CHECK(AIDP_STAGE_MOUNTS, symlink(target, dst), dst);
                return;
        }
        if (!S_ISDIR(st.st_mode))
                return;
        bool skip = in_list(not_bound, name);
        /* A data mount point that shadows a host directory of the same name
         * (/data on a host that has one) replaces it. */
        for (size_t i = 0; i < s->n_mounts && !skip; i++)
                if (!strcmp(s->mounts[i].target + 1, name))
                        skip = true;
        CHECK(AIDP_STAGE_MOUNTS, mkdir(dst, in_list(masked_top, name) ? 0711 : 0755), dst);
        if (skip)
                return;
        CHECK(AIDP_STAGE_MOUNTS, attach_clone(AT_FDCWD, src, dst, RO, true), src);
}

/* The host root's top-level entries, read with getdents64 into a buffer on
 * this stack: opendir's malloc'ed 32 KiB buffer is pages written after the
 * clone, each a copy-on-write or fresh-page fault (docs/run-core.md, "Spawn
 * and job phases"). */
static void bind_host_root(const char *root, const struct aidp_sandbox_spec *s)
{
        _cleanup_close_ int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                die(AIDP_STAGE_MOUNTS, errno, "/");
        char buf[4096] __attribute__((aligned(8)));
        long got;
        while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
                for (long off = 0; off < got;) {
                        struct dirent64 *e = (struct dirent64 *)(void *)(buf + off);
                        off += e->d_reclen;
                        if (e->d_name[0] != '.')
                                bind_root_entry(root, s, e->d_name, e->d_type);
                }
        }
        if (got < 0)
                die(AIDP_STAGE_MOUNTS, errno, "/");
}

static void setup_dev(const char *root, const struct aidp_sandbox_spec *s)
{
        char dev[PATH_MAX], p[PATH_MAX];
        path_join(dev, sizeof dev, root, "/dev");
        /* Not nodev: this is the one place device nodes live; only the nodes
         * bound below exist in it. */
        CHECK(AIDP_STAGE_MOUNTS,
              mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536"), dev);
        /* Made here (pid 1 is root on the host): one call per node where a
         * bind from the host's /dev takes five. umask would clear bits of 0666. */
        mode_t um = umask(0);
        /* The minimal /dev's table, which the device cgroup allows too. */
        for (size_t i = 0; i < ARRAY_SIZE(aidp_devnodes); i++) {
                const struct aidp_devnode *d = &aidp_devnodes[i];
                path_join(p, sizeof p, dev, d->name);
                CHECK(AIDP_STAGE_MOUNTS, mknod(p, S_IFCHR | 0666, makedev(d->major, d->minor)), p);
        }
        umask(um);
        const struct aidp_profile *pr = s->profile;
        for (size_t i = 0; pr && i < pr->n_devices; i++) {
                const char *dp = pr->devices[i].path;
                if (access(dp, F_OK) < 0)
                        continue; /* optional devices that this host lacks */
                path_join(p, sizeof p, root, dp);
                _cleanup_close_ int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
                CHECK(AIDP_STAGE_MOUNTS, fd, p);
                CHECK(AIDP_STAGE_MOUNTS,
                      attach_clone(AT_FDCWD, dp, p, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false),
                      dp);
        }
        path_join(p, sizeof p, dev, "pts");
        CHECK(AIDP_STAGE_MOUNTS, mkdir(p, 0755), p);
        CHECK(AIDP_STAGE_MOUNTS,
              mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC,
                    "newinstance,ptmxmode=0666,mode=0620"),
              p);
        path_join(p, sizeof p, dev, "ptmx");
        CHECK(AIDP_STAGE_MOUNTS, symlink("pts/ptmx", p), p);
        path_join(p, sizeof p, dev, "shm");
        CHECK(AIDP_STAGE_MOUNTS, mkdir(p, 01777), p);
        /* Only the mount point: /dev/shm is one of the supervisor's tmpfs
         * mounts (noswap, shredded), attached with the others below. A
         * tmpfs made here would be out of the supervisor's reach. */
        bool have_shm = false;
        for (size_t i = 0; i < s->n_mounts; i++)
                have_shm |= !strcmp(s->mounts[i].target, "/dev/shm");
        if (!have_shm)
                die(AIDP_STAGE_MOUNTS, EINVAL, "/dev/shm: no tmpfs of the supervisor for it");
        static const char *const links[][2] = {
                {"/proc/self/fd", "fd"},
                {"/proc/self/fd/0", "stdin"},
                {"/proc/self/fd/1", "stdout"},
                {"/proc/self/fd/2", "stderr"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
                path_join(p, sizeof p, dev, links[i][1]);
                CHECK(AIDP_STAGE_MOUNTS, symlink(links[i][0], p), p);
        }
        /* Nothing can be added to /dev from inside. */
        struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
        CHECK(AIDP_STAGE_MOUNTS, mount_setattr(AT_FDCWD, dev, 0, &a, sizeof a), dev);
}

/* The holder (STAGE_DIR): a tiny tmpfs with an unreadable directory and
 * file, cloned over every masked path (a non-root job without capabilities
 * gets EACCES), and the mount point of the staging root. It stays attached
 * (older kernels cannot clone from a detached mount) until the old root's
 * unmount takes it away; nothing of it is inside the new root. No inode
 * limit: the masks' layer in it links a name per hidden host socket
 * (hostsock.c), and tmpfs counts each link against it. */
static void make_holder(void)
{
        CHECK(AIDP_STAGE_MOUNTS,
              mount("tmpfs", STAGE_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=4096,nr_inodes=0,mode=0700"),
              STAGE_DIR);
        CHECK(AIDP_STAGE_MOUNTS, mkdir(MASK_SRC "/d", 0), MASK_SRC "/d");
        int f = open(MASK_SRC "/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0);
        CHECK(AIDP_STAGE_MOUNTS, f, MASK_SRC "/f");
        close(f);
        CHECK(AIDP_STAGE_MOUNTS, mkdir(STAGE_ROOT, 0755), STAGE_ROOT);
        /* Read-only and noexec here once: each clone of d or f copies the
         * flags, which saves a mount_setattr per masked path. (Mounting on
         * STAGE_ROOT needs no write access to the holder.) */
        struct mount_attr a = {.attr_set = RO | MOUNT_ATTR_NOEXEC};
        CHECK(AIDP_STAGE_MOUNTS, mount_setattr(AT_FDCWD, STAGE_DIR, 0, &a, sizeof a), STAGE_DIR);
}

/* Each profile bind's source as a detached clone (the tree opened with the
 * caller's credentials when the spec carries one) with its flags already set
 * (nosuid, nodev, read-only unless writable), and its stat, for setup_mounts
 * to move into place once the staging root exists. The stat is the bound
 * file's own (fstat of the fd the clone is made from): what the host
 * sockets' covering knows the bind by (hostsock.h), however its source was
 * spelled. */
static void open_binds(const struct aidp_sandbox_spec *s, const struct aidp_profile *bp, size_t nb,
                       int *bind_fds, struct stat *bind_st)
{
        for (size_t i = 0; i < nb; i++) {
                const struct aidp_bind *b = &bp->binds[i];
                int tree = s->bind_tree_fds ? s->bind_tree_fds[i] : -1;
                /* A profile's (root's) source is looked up once. */
                _cleanup_close_ int src = tree >= 0 ? -1 : open(b->source, O_PATH | O_CLOEXEC);
                int fd = tree >= 0 ? tree : src;
                if (fd < 0 || fstat(fd, &bind_st[i]) < 0)
                        die(AIDP_STAGE_MOUNTS, errno, b->source);
                bind_fds[i] = tree >= 0 ? tree
                                        : open_tree(src, "",
                                                    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                                                            AT_RECURSIVE | AT_EMPTY_PATH);
                CHECK(AIDP_STAGE_MOUNTS, bind_fds[i], b->source);
                struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                   (b->writable ? 0 : MOUNT_ATTR_RDONLY)};
                CHECK(AIDP_STAGE_MOUNTS,
                      mount_setattr(bind_fds[i], "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a),
                      b->source);
        }
}

/* The supervisor gave up (or died) before the job started. Keep holding the
 * tmpfs mount fds until it, or gc, has overwritten them and kills this process. */
__attribute__((noreturn)) static void hold_mounts(void)
{
        for (;;)
                pause();
}

/* The caller's working directory and the binds, moved into place in the
 * staging root; each one's file, for the host sockets' covering, in hb (room
 * for the binds and the working directory): returns how many. */
static size_t place_binds(const char *root, const struct aidp_sandbox_spec *s, int cwd_fd,
                          int *bind_fds, const struct stat *bind_st, struct aidp_hostsock_bind *hb)
{
        /* The caller's working directory and binds land where the job will
         * see their paths: made and resolved inside the new root (inroot.h),
         * so that a symlink on the way never leads root to create a mount
         * point on the host (the host's root is still this process's). */
        _cleanup_close_ int root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        CHECK(AIDP_STAGE_MOUNTS, root_fd, root);
        size_t nhb = 0;
        /* Already visible when its top-level directory is bound. */
        if (cwd_fd >= 0 && !aidp_inroot_is_dir(root_fd, s->cwd)) {
                struct stat cst;
                CHECK(AIDP_STAGE_MOUNTS, fstat(cwd_fd, &cst), s->cwd);
                hb[nhb++] = (struct aidp_hostsock_bind){
                        .target = s->cwd, .dev = cst.st_dev, .ino = cst.st_ino};
                _cleanup_close_ int at = aidp_inroot_make(root_fd, s->cwd, true, 0711);
                CHECK(AIDP_STAGE_MOUNTS, at, s->cwd);
                CHECK(AIDP_STAGE_MOUNTS,
                      move_mount(cwd_fd, "", at, "",
                                 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
                      s->cwd);
        }

        const struct aidp_profile *pr = s->profile;
        for (size_t i = 0; pr && i < pr->n_binds; i++) {
                const struct aidp_bind *b = &pr->binds[i];
                const char *target = b->target ? b->target : b->source;
                hb[nhb++] = (struct aidp_hostsock_bind){.target = target,
                                                        .dev = bind_st[i].st_dev,
                                                        .ino = bind_st[i].st_ino,
                                                        .is_socket = S_ISSOCK(bind_st[i].st_mode)};
                _cleanup_close_ int at =
                        aidp_inroot_make(root_fd, target, S_ISDIR(bind_st[i].st_mode), 0755);
                CHECK(AIDP_STAGE_MOUNTS, at, target);
                CHECK(AIDP_STAGE_MOUNTS,
                      move_mount(bind_fds[i], "", at, "",
                                 MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
                      b->source);
                close(bind_fds[i]);
                bind_fds[i] = -1;
        }
        return nhb;
}

static void setup_mounts(const struct aidp_sandbox_spec *s)
{
        /* Nothing done in this namespace may propagate back to the host. */
        CHECK(AIDP_STAGE_MOUNTS, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "/");

        /* Clone the working directory before the staging mount shadows /tmp:
         * the caller may well be working below the host's /tmp. */
        _cleanup_close_ int cwd_fd = -1;
        if (s->bind_cwd && s->cwd && strcmp(s->cwd, "/")) {
                cwd_fd = s->has_cwd_tree
                                 ? s->cwd_tree_fd
                                 : open_tree(AT_FDCWD, s->cwd,
                                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
                CHECK(AIDP_STAGE_MOUNTS, cwd_fd, s->cwd);
                struct mount_attr a = {.attr_set = RO};
                CHECK(AIDP_STAGE_MOUNTS,
                      mount_setattr(cwd_fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a),
                      s->cwd);
        }
        /* Profile binds are opened now for the same reason. */
        const struct aidp_profile *bp = s->profile;
        size_t nb = bp ? bp->n_binds : 0;
        int bind_fds[nb ? nb : 1];
        struct stat bind_st[nb ? nb : 1];
        open_binds(s, bp, nb, bind_fds, bind_st);
        /* The host's /tmp, for the host sockets' covering to look up the
         * host paths below it that the holder covers from here on. */
        _cleanup_close_ int host_tmp = open(STAGE_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
        const char *root = STAGE_ROOT;
        make_holder();
        CHECK(AIDP_STAGE_MOUNTS,
              mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1048576"), root);
        bind_host_root(root, s);

        char p[PATH_MAX];
        path_join(p, sizeof p, root, "/proc");
        CHECK(AIDP_STAGE_MOUNTS, mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
              p);
        for (const char *const *r = proc_readonly; *r; r++) {
                path_join(p, sizeof p, root, *r);
                if (access(p, F_OK) == 0)
                        CHECK(AIDP_STAGE_MOUNTS,
                              attach_clone(AT_FDCWD, p, p, RO | MOUNT_ATTR_NOEXEC, true), *r);
        }
        /* A fresh sysfs shows this network namespace's devices only. */
        path_join(p, sizeof p, root, "/sys");
        CHECK(AIDP_STAGE_MOUNTS,
              mount("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), p);
        setup_dev(root, s);

        for (size_t i = 0; i < s->n_mounts; i++) {
                path_join(p, sizeof p, root, s->mounts[i].target);
                CHECK(AIDP_STAGE_MOUNTS, mkdir_p(p, 0755), p);
                uint64_t attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
                if (s->mounts[i].readonly)
                        attr |= MOUNT_ATTR_RDONLY;
                CHECK(AIDP_STAGE_MOUNTS, attach_tmpfs(root, s->mounts[i].fd, p, attr),
                      s->mounts[i].target);
        }
        attach_resolv(root, s);

        struct aidp_hostsock_bind hb[nb + 1];
        size_t nhb = place_binds(root, s, cwd_fd, bind_fds, bind_st, hb);

        /* Masks that no host rename undoes (mask.h), and the host sockets the
         * view shows, hidden in the same overlays (hostsock.h): the
         * supervisor listed them while this process built the mounts above
         * and put the masks' own names in their layer. */
        const char *failed = "";
        struct aidp_hostsock_view view = {.binds = hb, .n_binds = nhb, .shadowed_fd = host_tmp};
        int hs = aidp_hostsock_mask_sent(s->sync_fd, root, MASK_SRC, aidp_sandbox_masked_paths, bp,
                                         &view, &failed);
        if (hs == -EPIPE)
                hold_mounts();
        if (hs < 0)
                die(AIDP_STAGE_MOUNTS, -hs, failed);

        /* The skeleton itself (mount points, symlinks) becomes read-only. */
        struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
        CHECK(AIDP_STAGE_MOUNTS, mount_setattr(AT_FDCWD, root, 0, &a, sizeof a), root);

        /* pivot_root(".", ".") stacks the old root under the new one; the
         * lazy unmount then drops every host mount from this namespace, and
         * the holder with the mask source. */
        CHECK(AIDP_STAGE_PIVOT, chdir(root), root);
        CHECK(AIDP_STAGE_PIVOT, syscall(SYS_pivot_root, ".", "."), "pivot_root");
        CHECK(AIDP_STAGE_PIVOT, umount2(".", MNT_DETACH), "old root");
        CHECK(AIDP_STAGE_PIVOT, chdir("/"), "/");
}

static void loopback_up(void)
{
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHECK(AIDP_STAGE_NETWORK, fd, "socket");
        struct ifreq ifr = {0};
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        CHECK(AIDP_STAGE_NETWORK, ioctl(fd, SIOCGIFFLAGS, &ifr), "lo");
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        CHECK(AIDP_STAGE_NETWORK, ioctl(fd, SIOCSIFFLAGS, &ifr), "lo");
}

/* Into the job's identity, or stop naming the step (creds.h). */
__attribute__((noreturn)) static void credentials_failed(int errnum, const char *what)
{
        die(AIDP_STAGE_CREDENTIALS, errnum, what);
}

static void drop_credentials(const struct aidp_sandbox_spec *s)
{
        aidp_sandbox_drop_credentials(s, credentials_failed);
}

static void apply_rlimits(const struct aidp_sandbox_spec *s)
{
        if (!s->profile)
                return;
        for (int r = 0; r < AIDP_RLIMIT_SLOTS && r < RLIM_NLIMITS; r++) {
                const struct aidp_rlimit *l = &s->profile->limits.rlimits[r];
                if (!l->set)
                        continue;
                struct rlimit rl = {
                        .rlim_cur = l->soft == UINT64_MAX ? RLIM_INFINITY : l->soft,
                        .rlim_max = l->hard == UINT64_MAX ? RLIM_INFINITY : l->hard,
                };
                if (setrlimit(r, &rl) < 0)
                        die(AIDP_STAGE_RLIMITS, errno, "setrlimit");
        }
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH};

__attribute__((noreturn)) static void exec_job(const struct aidp_sandbox_spec *s,
                                               const sigset_t *orig)
{
        /* Own process group, so pid 1 can forward a signal to the job and
         * every worker it forks, as a terminal would. */
        setpgid(0, 0);
        /* Nothing but stdin/stdout/stderr crosses execve. */
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                signal(forwarded[i], SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        aidp_procstate_for_job(); /* SIGPIPE, SIGXFSZ: the supervisor ignores them */
        /* The job starts with no signal blocked, whatever the caller had. */
        (void)orig;
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (s->cwd && chdir(s->cwd) < 0)
                die(AIDP_STAGE_CWD, errno, s->cwd);
        /* Abstract unix sockets from outside the job's own Landlock domain
         * are out of reach (where the kernel has the scope; hostsock.h). */
        int ll = aidp_hostsock_scope_enforce(g_landlock_fd);
        if (ll < 0)
                die(AIDP_STAGE_SECCOMP, -ll, "landlock");
        /* Seccomp last: with an allowlist it would block the steps above. */
        int rc = aidp_seccomp_load(s->bpf, s->seccomp_flags);
        if (rc < 0)
                die(AIDP_STAGE_SECCOMP, -rc, "load");
        if (s->seccomp_flags && s->notify_fd_out >= 0) {
                /* learn mode: hand the listener to the supervisor */
                int sent = aidp_fdpass_send(s->notify_fd_out, 'n', &rc, 1);
                if (sent < 0)
                        die(AIDP_STAGE_SECCOMP, -sent, "sending listener");
                close(rc);
                close(s->notify_fd_out);
        }
        execvpe(s->argv[0], s->argv, s->envp);
        die(AIDP_STAGE_EXEC, errno, s->argv[0]);
}

/* pid 1 of the sandbox: reaps every orphan, forwards signals to the job's
 * process group, and exits with the job's status (128+N for signal N). When
 * it exits the kernel kills whatever is left in the pid namespace.
 *
 * If the supervisor dies (lifeline EOF), pid 1 kills every job process but
 * stays alive itself: its mount namespace keeps the run's tmpfs mounts, so
 * `aidp-supervisor gc` can still overwrite the plaintext before it is freed. */
__attribute__((noreturn)) static void init_loop(pid_t job, int lifeline, int status_fd)
{
        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                sigaddset(&set, forwarded[i]);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, AIDP_SIG_KILL_JOB);
        int sfd = signalfd(-1, &set, SFD_CLOEXEC);
        if (sfd < 0)
                _exit(125);
        signal(SIGPIPE, SIG_IGN);
        bool orphaned = false, done = false;
        for (;;) {
                struct pollfd pf[2] = {{.fd = sfd, .events = POLLIN},
                                       {.fd = orphaned ? -1 : lifeline, .events = POLLIN}};
                if (poll(pf, 2, -1) < 0)
                        continue;
                if (pf[1].revents) {
                        orphaned = true;
                        kill(-1, SIGKILL);
                }
                if (!pf[0].revents)
                        continue;
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) != sizeof si)
                        continue;
                if ((int)si.ssi_signo == AIDP_SIG_KILL_JOB) {
                        kill(-1, SIGKILL); /* every process of the namespace but this one */
                        continue;
                }
                if (si.ssi_signo != SIGCHLD) {
                        if (!orphaned && !done)
                                kill(-job, (int)si.ssi_signo);
                        continue;
                }
                int status;
                pid_t p;
                while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
                        if (p != job || done)
                                continue;
                        int32_t code = WIFEXITED(status)     ? WEXITSTATUS(status)
                                       : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                                             : 125;
                        /* Orphans die with the job. pid 1 itself stays: it
                         * holds the tmpfs mounts until they are shredded. */
                        kill(-1, SIGKILL);
                        done = true;
                        /* Without a supervisor nobody reads this; pid 1 must
                         * stay (holding the mounts for gc), so a failed write
                         * is ignored, and SIGPIPE is ignored below. */
                        if (!orphaned && write(status_fd, &code, sizeof code) != sizeof code)
                                orphaned = true;
                }
        }
}

void aidp_sandbox_child(const struct aidp_sandbox_spec *s)
{
        g_err_fd = s->err_fd;
        prctl(PR_SET_NAME, "aidp-init");
        aidp_sandbox_close_unlisted(s);
        /* The output relay's pipes become this process's (and so the job's)
         * stdout and stderr; /dev/null its stdin where the caller's could be
         * written through (relay.h). */
        if (s->stdin_fd > 2 && dup2(s->stdin_fd, STDIN_FILENO) < 0)
                die(AIDP_STAGE_INIT, errno, "stdin");
        if (s->stdout_fd > 2 && dup2(s->stdout_fd, STDOUT_FILENO) < 0)
                die(AIDP_STAGE_INIT, errno, "stdout");
        if (s->stderr_fd > 2 && dup2(s->stderr_fd, STDERR_FILENO) < 0)
                die(AIDP_STAGE_INIT, errno, "stderr");
        if (s->hostname)
                CHECK(AIDP_STAGE_NAMESPACES, sethostname(s->hostname, strlen(s->hostname)),
                      "hostname");
        loopback_up();
        /* Built while the supervisor finishes the cgroup and makes START
         * durable; nothing of the job runs before the go. */
        setup_mounts(s);
        /* While the supervisor finishes START and the cgroup, what does not
         * depend on the go and changes nothing the job gets: the bounding set
         * (it limits only what an execve gains, not what pid 1 holds for the
         * steps below: creds.h) and the job's Landlock ruleset (inert until
         * the job enforces it). */
        aidp_sandbox_drop_bounding(s, credentials_failed);
        int ll = aidp_hostsock_scope_prepare(&g_landlock_fd);
        if (ll < 0)
                die(AIDP_STAGE_SECCOMP, -ll, "landlock");
        /* The go: one byte once the run's cgroup is complete, START durable
         * and /data filled, carrying the v1 "tasks" fds. */
        int cg_fds[AIDP_FDPASS_MAX];
        size_t n_cg = 0;
        char go;
        if (aidp_fdpass_recv(s->sync_fd, &go, cg_fds, AIDP_FDPASS_MAX, &n_cg) != 1)
                hold_mounts();
        close(s->sync_fd);
        /* Into the run's v1 hierarchies (the cgroup2 group it was cloned
         * into already holds it): moving itself costs no RCU grace period
         * (supervisor/cgroup.h). */
        int cg = aidp_cgroup_join_self(cg_fds, n_cg);
        if (cg < 0)
                die(AIDP_STAGE_CGROUP, -cg, "joining the run's cgroup");
        /* Now in the run's cgroup: a cgroup namespace rooted there hides the
         * host's hierarchy. */
        CHECK(AIDP_STAGE_NAMESPACES, unshare(CLONE_NEWCGROUP), "cgroup namespace");
        /* A new session without a controlling terminal: the job cannot push
         * input into the caller's terminal (TIOCSTI) and terminal signals
         * reach it only through the supervisor. */
        CHECK(AIDP_STAGE_INIT, setsid(), "setsid");
        /* rlimits while still root: raising a hard limit (memlock for GPU
         * DMA) needs CAP_SYS_RESOURCE, which drop_credentials takes away.
         * The job inherits them over fork and execve. */
        apply_rlimits(s);
        drop_credentials(s);
        CHECK(AIDP_STAGE_INIT, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable");

        sigset_t all, orig;
        sigemptyset(&all);
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                sigaddset(&all, forwarded[i]);
        sigaddset(&all, SIGCHLD);
        sigaddset(&all, AIDP_SIG_KILL_JOB);
        sigprocmask(SIG_BLOCK, &all, &orig);

        /* vfork, not fork: no copy of the supervisor's page tables, and none
         * of glibc's fork handlers, which would take locks (malloc arenas)
         * that a supervisor thread may have held when pid 1 was cloned. pid 1
         * sleeps until the job's execve; exec_job only makes system calls on
         * its own stack and never returns. */
        pid_t job = vfork();
        if (job < 0)
                die(AIDP_STAGE_INIT, errno, "vfork");
        if (job == 0)
                exec_job(s, &orig);
        /* Only the job's copy of err_fd may remain: its close-on-exec then
         * tells the supervisor the job is running. */
        close(s->err_fd);
        g_err_fd = -1;
        if (g_landlock_fd >= 0)
                close(g_landlock_fd);
        /* pid 1 keeps its inherited fds: among them the tmpfs mount fds,
         * which gc reopens through /proc/<pid>/fd if the supervisor dies. */
        init_loop(job, s->lifeline_fd, s->status_fd);
}
