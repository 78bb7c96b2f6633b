/* Open caller-named paths with the caller's credentials (ascaller.h). */
#define _GNU_SOURCE
#include "supervisor/sandbox/ascaller.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "supervisor/sandbox/fdpass.h"

int aidp_ascaller_for_uid(uid_t uid, gid_t gid, struct aidp_ascaller *ret, aidp_error *err)
{
        memset(ret, 0, sizeof *ret);
        ret->uid = uid;
        ret->gid = gid;
        long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
        size_t size = sz > 0 ? (size_t)sz : 16384;
        _cleanup_free_ char *buf = malloc(size);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        struct passwd pw, *res = NULL;
        if (getpwuid_r(uid, &pw, buf, size, &res) != 0 || !res) {
                /* No name, no group list: the primary gid only. */
                if (ret->gid == (gid_t)-1)
                        ret->gid = (gid_t)uid;
                return 0;
        }
        if (ret->gid == (gid_t)-1)
                ret->gid = pw.pw_gid;
        int n = AIDP_ASCALLER_MAX_GROUPS;
        if (getgrouplist(pw.pw_name, ret->gid, ret->groups, &n) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, E2BIG,
                                      "user %s is in more than %d groups", pw.pw_name,
                                      AIDP_ASCALLER_MAX_GROUPS);
        ret->n_groups = (size_t)n;
        return 0;
}

static int prove_access(int fd, const struct stat *st, enum aidp_ascaller_how how);

static int open_one(const struct aidp_ascaller_req *q)
{
        /* Only the last component may not be a symlink (a user's own
         * symlinked directories are theirs to follow, with their own
         * permissions); magic links (/proc/PID/fd, /proc/PID/root) never. */
        struct open_how how = {.resolve = RESOLVE_NO_MAGICLINKS, .mode = 0};
        switch (q->how) {
        case AIDP_ASCALLER_READ: how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY; break;
        case AIDP_ASCALLER_TREE:
        case AIDP_ASCALLER_TREE_RW: how.flags = O_PATH; break;
        case AIDP_ASCALLER_DIR: how.flags = O_PATH | O_DIRECTORY; break;
        case AIDP_ASCALLER_DIR_WRITABLE: how.flags = O_RDONLY | O_DIRECTORY; break;
        case AIDP_ASCALLER_CREATE:
                how.flags = O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY;
                how.mode = 0644;
                break;
        case AIDP_ASCALLER_HOW_MAX: return -EINVAL;
        }
        how.flags |= O_NOFOLLOW | O_CLOEXEC;
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, q->path, &how, sizeof how);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        /* O_PATH | O_NOFOLLOW opens a symlink itself instead of failing. */
        if (S_ISLNK(st.st_mode)) {
                close(fd);
                return -ELOOP;
        }
        if (q->how == AIDP_ASCALLER_READ) {
                /* O_NONBLOCK kept a FIFO from hanging the open; anything but a
                 * regular file is refused. */
                if (!S_ISREG(st.st_mode) || fcntl(fd, F_SETFL, 0) < 0) {
                        close(fd);
                        return -EINVAL;
                }
        }
        int r = prove_access(fd, &st, q->how);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

/* As the caller (real = effective ids here), on the object itself: O_PATH
 * checks no permission, and a job may run as another uid. */
static int prove_access(int fd, const struct stat *st, enum aidp_ascaller_how how)
{
        int need = 0;
        switch (how) {
        case AIDP_ASCALLER_TREE: need = R_OK | (S_ISDIR(st->st_mode) ? X_OK : 0); break;
        case AIDP_ASCALLER_TREE_RW: need = R_OK | W_OK | (S_ISDIR(st->st_mode) ? X_OK : 0); break;
        case AIDP_ASCALLER_DIR: need = R_OK | X_OK; break;
        case AIDP_ASCALLER_DIR_WRITABLE: need = W_OK | X_OK; break;
        case AIDP_ASCALLER_READ:
        case AIDP_ASCALLER_CREATE:
        case AIDP_ASCALLER_HOW_MAX: break;
        }
        if (need && syscall(SYS_faccessat2, fd, "", need, AT_EMPTY_PATH) < 0)
                return -errno;
        return 0;
}

/* Become the caller: groups first, then gid, then uid (after setresuid we
 * could no longer change the others); not dumpable afterwards. Not root:
 * nothing to drop, the credentials are the caller's own already. */
static int become(const struct aidp_ascaller *who)
{
        if (geteuid() == 0) {
                if (setgroups(who->n_groups, who->groups) < 0 ||
                    setresgid(who->gid, who->gid, who->gid) < 0 ||
                    setresuid(who->uid, who->uid, who->uid) < 0)
                        return -1;
                if (who->uid != 0 && (setuid(0) == 0 || geteuid() == 0))
                        return -1; /* the switch did not stick */
        }
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        return 0;
}

/* The helper: the caller's credentials, then one message per request (the
 * errno as its byte, the fd with it when it opened). Never returns. */
__attribute__((noreturn)) static void helper(int sock, const struct aidp_ascaller *who,
                                             const struct aidp_ascaller_req *reqs, size_t n)
{
        /* Nothing of the supervisor's (keys, lineage, mount fds) may stay
         * open in a process that the caller's uid will own. */
        if (sock != 3 && (dup2(sock, 3) < 0 || (sock = 3) < 0))
                _exit(1);
        close_range(4, ~0U, 0);
        if (become(who) < 0)
                _exit(2);
        for (size_t i = 0; i < n; i++) {
                int fd = open_one(&reqs[i]);
                char byte = (char)(fd < 0 ? (-fd > 127 ? EIO : -fd) : 0);
                if (aidp_fdpass_send(sock, byte, &fd, fd < 0 ? 0 : 1) < 0)
                        _exit(4);
                if (fd >= 0)
                        close(fd);
        }
        _exit(0);
}

int aidp_ascaller_open(const struct aidp_ascaller *who, const struct aidp_ascaller_req *reqs,
                       size_t n, int *fds, int *errnos, aidp_error *err)
{
        for (size_t i = 0; i < n; i++) {
                fds[i] = -1;
                errnos[i] = EIO;
        }
        if (n == 0)
                return 0;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "socketpair");
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(sv[0]);
                close(sv[1]);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "fork (caller helper)");
        }
        if (pid == 0) {
                close(sv[0]);
                helper(sv[1], who, reqs, n);
        }
        close(sv[1]);
        size_t got = 0;
        for (; got < n; got++) {
                char byte = 0;
                int fd = -1;
                size_t k = 0;
                int r = aidp_fdpass_recv(sv[0], &byte, &fd, 1, &k);
                if (r <= 0)
                        break;
                if (byte == 0 && k == 1) {
                        fds[got] = fd;
                        errnos[got] = 0;
                } else {
                        if (k == 1)
                                close(fd);
                        errnos[got] = byte > 0 ? byte : EIO;
                }
        }
        close(sv[0]);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (got < n || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                for (size_t i = 0; i < n; i++)
                        if (fds[i] >= 0) {
                                close(fds[i]);
                                fds[i] = -1;
                        }
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                      "the helper opening paths as uid %u failed (%s %d)",
                                      (unsigned)who->uid, WIFSIGNALED(st) ? "signal" : "status",
                                      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
        return 0;
}

int aidp_ascaller_spawn(const struct aidp_ascaller *who, int (*fn)(void *arg), void *arg,
                        pid_t *ret_pid, aidp_error *err)
{
        pid_t pid = fork();
        if (pid < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "fork (caller process)");
        if (pid == 0) {
                if (become(who) < 0)
                        _exit(AIDP_EXIT_INTERNAL);
                int r = fn(arg);
                _exit(r < 0 || r > 255 ? AIDP_EXIT_INTERNAL : r);
        }
        *ret_pid = pid;
        return 0;
}

/* The checks of open_one on an fd the caller opened: nothing about the
 * path, everything about the object. */
static int check_fd(int fd, enum aidp_ascaller_how how)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISLNK(st.st_mode))
                return -ELOOP;
        int fl = fcntl(fd, F_GETFL);
        if (how == AIDP_ASCALLER_READ &&
            (!S_ISREG(st.st_mode) || (fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY))
                return -EINVAL;
        /* The caller opened it for reading: proof enough, but a passed-on fd
         * may have been opened by someone else; the caller must read it too. */
        if (how == AIDP_ASCALLER_READ && syscall(SYS_faccessat2, fd, "", R_OK, AT_EMPTY_PATH) < 0)
                return -errno;
        if ((how == AIDP_ASCALLER_DIR || how == AIDP_ASCALLER_DIR_WRITABLE) && !S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (how == AIDP_ASCALLER_CREATE &&
            (!S_ISREG(st.st_mode) || (fl & O_PATH) || (fl & O_ACCMODE) == O_RDONLY))
                return -EBADF;
        return prove_access(fd, &st, how);
}

int aidp_ascaller_check_fds(const struct aidp_ascaller *who, const int *fds,
                            const enum aidp_ascaller_how *how, size_t n, int *errnos,
                            aidp_error *err)
{
        for (size_t i = 0; i < n; i++)
                errnos[i] = EIO;
        if (n == 0)
                return 0;
        if (n > 255)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG, "too many files");
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(p[0]);
                close(p[1]);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "fork (caller helper)");
        }
        if (pid == 0) {
                close(p[0]);
                if (become(who) < 0)
                        _exit(2);
                unsigned char res[255];
                for (size_t i = 0; i < n; i++) {
                        int r = check_fd(fds[i], how[i]);
                        res[i] = (unsigned char)(r == 0 ? 0 : -r > 255 ? EIO : -r);
                }
                _exit(write(p[1], res, n) == (ssize_t)n ? 0 : 4);
        }
        close(p[1]);
        unsigned char res[255];
        ssize_t got = 0;
        while ((got = read(p[0], res, n)) < 0 && errno == EINTR)
                ;
        close(p[0]);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (got != (ssize_t)n || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                      "the helper checking files as uid %u failed",
                                      (unsigned)who->uid);
        for (size_t i = 0; i < n; i++)
                errnos[i] = res[i];
        return 0;
}

const char *aidp_ascaller_strerror(enum aidp_ascaller_how how, int errnum)
{
        switch (errnum) {
        case ELOOP: return "a symlink (refused: the path must name the file itself)";
        case EINVAL: return how == AIDP_ASCALLER_READ ? "not a regular file" : "invalid path";
        case EEXIST: return "exists already (never replaced)";
        case EACCES:
        case EPERM: return "permission denied for the calling user";
        case ENOTDIR: return "not a directory";
        case EXDEV: return "a magic link (/proc/PID/...) refused";
        case EBADF: return "not opened for writing";
        default: return strerror(errnum);
        }
}
