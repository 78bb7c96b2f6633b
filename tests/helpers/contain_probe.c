/* Runs inside the sandbox for tests/priv/test_contain.c and test_canary.c and
 * reports what the kernel lets it do, one line per attempt:
 *   contain_probe unix PATH|@NAME...  "reachable X" / "unreachable X: errno"
 *   contain_probe stdio               what fds 0-2 are, and whether stdout
 *                                     can be truncated or seeked
 *   contain_probe unix-seq PREFIX FROM N  connect(2) to each datagram socket
 *                                     PREFIX-<FROM..FROM+N-1, 6 digits>.sock:
 *                                     "seq reachable R unreachable U (first: E)",
 *                                     then "mounts M below B": the lines of
 *                                     the job's /proc/self/mountinfo, and
 *                                     those on PREFIX's directory or below
 *   contain_probe vsock               "vsock errno N" / "vsock allowed"
 *   contain_probe deep DIR N LEN      N nested directories of LEN-character
 *                                     names below DIR (beyond PATH_MAX), and
 *                                     stdin copied into a file "deep" there
 * Only libc, so it needs nothing outside the read-only root. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void try_unix(const char *name)
{
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        size_t n = strlen(name);
        if (n >= sizeof a.sun_path) {
                printf("unreachable %s: name too long\n", name);
                return;
        }
        memcpy(a.sun_path, name, n);
        if (name[0] == '@')
                a.sun_path[0] = '\0'; /* abstract */
        socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                printf("unreachable %s: socket: %s\n", name, strerror(errno));
                return;
        }
        if (connect(fd, (struct sockaddr *)&a, len) == 0) {
                /* Prove it: the test's listener answers "pong". A peer that
                 * closes at once (a daemon refusing) is reachable all the
                 * same: no SIGPIPE. */
                char buf[16] = "";
                ssize_t r =
                        send(fd, "ping", 4, MSG_NOSIGNAL) == 4 ? read(fd, buf, sizeof buf - 1) : -1;
                printf("reachable %s: %s\n", name, r > 0 ? buf : "(no answer)");
        } else {
                printf("unreachable %s: %s\n", name, strerror(errno));
        }
        close(fd);
}

static int unix_seq(const char *prefix, size_t from, size_t n)
{
        size_t reach = 0, unreach = 0;
        char first[128] = "none";
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return 3;
        for (size_t i = from; i < from + n; i++) {
                struct sockaddr_un a = {.sun_family = AF_UNIX};
                int k = snprintf(a.sun_path, sizeof a.sun_path, "%s-%06zu.sock", prefix, i);
                if (k < 0 || (size_t)k >= sizeof a.sun_path)
                        return 2;
                if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
                        reach++;
                        /* connected: a new socket for the next one */
                        close(fd);
                        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                        if (fd < 0)
                                return 3;
                } else if (unreach++ == 0) {
                        snprintf(first, sizeof first, "%s", strerror(errno));
                }
        }
        close(fd);
        printf("seq reachable %zu unreachable %zu (first: %s)\n", reach, unreach, first);
        /* The mounts of the job's view, and those on the sockets' directory
         * or below it (mount points are the fifth field). */
        size_t dl = (size_t)(strrchr(prefix, '/') - prefix), lines = 0, below = 0;
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char *line = NULL;
        size_t cap = 0;
        while (f && getline(&line, &cap, f) > 0) {
                lines++;
                char *p = line;
                for (int field = 0; field < 4 && p; field++)
                        if ((p = strchr(p, ' ')))
                                p++;
                if (p && !strncmp(p, prefix, dl) && (p[dl] == ' ' || p[dl] == '/'))
                        below++;
        }
        free(line);
        if (f)
                fclose(f);
        printf("mounts %zu below %zu\n", lines, below);
        return 0;
}

static void fd_kind(int fd)
{
        struct stat st;
        char link[256] = "";
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0)
                link[n] = '\0';
        if (fstat(fd, &st) < 0) {
                printf("fd %d closed\n", fd);
                return;
        }
        const char *k = S_ISFIFO(st.st_mode)   ? "pipe"
                        : S_ISREG(st.st_mode)  ? "file"
                        : S_ISCHR(st.st_mode)  ? "chr"
                        : S_ISSOCK(st.st_mode) ? "socket"
                                               : "other";
        printf("fd %d %s %s\n", fd, k, link);
}

static int stdio(void)
{
        for (int fd = 0; fd < 3; fd++)
                fd_kind(fd);
        /* What a job would do to its caller's log through its stdout. */
        printf("seek-stdout %s\n", lseek(1, 0, SEEK_SET) < 0 ? strerror(errno) : "done");
        printf("truncate-stdout %s\n", ftruncate(1, 0) < 0 ? strerror(errno) : "done");
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", 1);
        FILE *f = fopen(p, "r+");
        printf("reopen-stdout %s\n", f ? "done" : strerror(errno));
        if (f)
                fclose(f);
        printf("job-output-line\n");
        return 0;
}

/* Each level made and entered relative to the one above (openat), so the
 * kernel never sees the whole path. */
static int deep(const char *dir, int levels, int len)
{
        char name[256];
        if (len < 1 || len > 255)
                return 2;
        memset(name, 'd', (size_t)len);
        name[len] = '\0';
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; fd >= 0 && i < levels; i++) {
                if (mkdirat(fd, name, 0700) < 0 && errno != EEXIST)
                        return 3;
                int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                close(fd);
                fd = sub;
        }
        int out = fd >= 0 ? openat(fd, "deep", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
        if (out < 0)
                return 4;
        char buf[4096];
        ssize_t n;
        while ((n = read(0, buf, sizeof buf)) > 0)
                if (write(out, buf, (size_t)n) != n)
                        return 5;
        close(out);
        close(fd);
        printf("deep %d levels of %d\n", levels, len);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 5 && !strcmp(argv[1], "deep"))
                return deep(argv[2], atoi(argv[3]), atoi(argv[4]));
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc >= 3 && !strcmp(argv[1], "unix")) {
                for (int i = 2; i < argc; i++)
                        try_unix(argv[i]);
                return 0;
        }
        if (argc == 5 && !strcmp(argv[1], "unix-seq"))
                return unix_seq(argv[2], strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10));
        if (argc == 2 && !strcmp(argv[1], "stdio"))
                return stdio();
        if (argc == 2 && !strcmp(argv[1], "vsock")) {
                int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
                if (fd < 0)
                        printf("vsock errno %d %s\n", errno, strerror(errno));
                else
                        printf("vsock allowed\n");
                return 0;
        }
        fprintf(stderr, "usage: contain_probe unix PATH...|unix-seq PREFIX FROM N|stdio|vsock|deep "
                        "DIR N LEN\n");
        return 2;
}
