/* Runs inside the sandbox and checks, from there, what the kernel enforces.
 * usage: sandbox_probe CHECK [ARGS]; prints "ok ..." / "FAIL ..." lines and
 * exits 0 only when every assertion of the check held. Static-free C, only
 * libc, so it needs nothing outside the read-only root. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define EXPECT(cond, ...)                                                                          \
        do {                                                                                       \
                if (cond) {                                                                        \
                        printf("ok   ");                                                           \
                } else {                                                                           \
                        printf("FAIL ");                                                           \
                        failures++;                                                                \
                }                                                                                  \
                printf(__VA_ARGS__);                                                               \
                printf("\n");                                                                      \
        } while (0)

static long status_field(const char *name, int hex)
{
        FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        long v = -1;
        size_t n = strlen(name);
        while (f && fgets(line, sizeof line, f))
                if (!strncmp(line, name, n) && line[n] == ':')
                        v = strtol(line + n + 1, NULL, hex ? 16 : 10);
        if (f)
                fclose(f);
        return v;
}

static int check_status(void)
{
        static const char *const caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
                EXPECT(status_field(caps[i], 1) == 0, "%s is 0", caps[i]);
        EXPECT(status_field("NoNewPrivs", 0) == 1, "NoNewPrivs is 1");
        EXPECT(status_field("Seccomp", 0) == 2, "Seccomp is 2 (filter)");
        EXPECT(getuid() != 0 && geteuid() != 0 && getgid() != 0, "not root (uid %d gid %d)",
               getuid(), getgid());
        /* The job user's own groups only (uid 65534: its primary group at
         * most), none of root's. */
        gid_t g[64];
        int ng = getgroups(64, g);
        bool none_of_roots = ng >= 0;
        for (int i = 0; i < ng; i++)
                none_of_roots = none_of_roots && g[i] != 0 && g[i] == getgid();
        EXPECT(none_of_roots, "supplementary groups: the job user's only (%d)", ng);
        return 0;
}

static int check_pidns(void)
{
        EXPECT(getpid() != 1 && getppid() == 1, "child of pid 1 (pid %d ppid %d)", getpid(),
               getppid());
        DIR *d = opendir("/proc");
        struct dirent *e;
        int others = 0;
        while (d && (e = readdir(d))) {
                int pid = atoi(e->d_name);
                if (pid > 0 && pid != 1 && pid != getpid())
                        others++;
        }
        if (d)
                closedir(d);
        EXPECT(others == 0, "no other pid visible in /proc (%d found)", others);
        EXPECT(kill(1, 0) == 0 || errno == EPERM, "pid 1 is the sandbox init");
        return 0;
}

static int check_net(void)
{
        struct if_nameindex *ifs = if_nameindex();
        int n = 0, lo = 0;
        for (struct if_nameindex *i = ifs; i && i->if_index; i++, n++)
                if (!strcmp(i->if_name, "lo"))
                        lo = 1;
        if (ifs)
                if_freenameindex(ifs);
        EXPECT(n == 1 && lo, "only lo exists (%d interfaces)", n);
        /* a real connection over loopback */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        int ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 1) == 0 &&
                 getsockname(s, (struct sockaddr *)&a, &al) == 0;
        int c = socket(AF_INET, SOCK_STREAM, 0);
        ok = ok && connect(c, (struct sockaddr *)&a, sizeof a) == 0;
        EXPECT(ok, "loopback is up: connect() to 127.0.0.1 works");
        return 0;
}

static void expect_eperm(const char *name, long rc)
{
        int e = errno;
        EXPECT(rc == -1 && e == EPERM, "%s fails with EPERM (rc %ld, %s)", name, rc, strerror(e));
}

static int check_seccomp(void)
{
        char buf[64];
        struct iovec iov = {buf, sizeof buf};
        errno = 0;
        expect_eperm("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
        expect_eperm("umount2", umount2("/tmp", MNT_DETACH));
        expect_eperm("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
        expect_eperm("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
        int nsfd = open("/proc/self/ns/uts", O_RDONLY);
        expect_eperm("setns", setns(nsfd, 0));
        expect_eperm("ptrace", ptrace(PTRACE_TRACEME, 0, NULL, NULL));
        expect_eperm("process_vm_readv", process_vm_readv(getppid(), &iov, 1, &iov, 1, 0));
        expect_eperm("process_vm_writev", process_vm_writev(getppid(), &iov, 1, &iov, 1, 0));
        expect_eperm("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
        expect_eperm("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
        expect_eperm("init_module", syscall(SYS_init_module, buf, 0, ""));
        expect_eperm("finit_module", syscall(SYS_finit_module, -1, "", 0));
        expect_eperm("delete_module", syscall(SYS_delete_module, "x", 0));
        expect_eperm("bpf", syscall(SYS_bpf, 0, NULL, 0));
        expect_eperm("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
        expect_eperm("keyctl",
                     syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
        expect_eperm("add_key",
                     syscall(SYS_add_key, "user", "x", "y", 1, KEY_SPEC_SESSION_KEYRING));
        expect_eperm("request_key", syscall(SYS_request_key, "user", "x", NULL, 0));
        expect_eperm("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, buf, 0));
        expect_eperm("name_to_handle_at",
                     syscall(SYS_name_to_handle_at, AT_FDCWD, "/", buf, buf, 0));
        expect_eperm("userfaultfd", syscall(SYS_userfaultfd, 0));
        expect_eperm("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
        expect_eperm("swapon", syscall(SYS_swapon, "/x", 0));
        expect_eperm("swapoff", syscall(SYS_swapoff, "/x"));
        expect_eperm("acct", syscall(SYS_acct, NULL));
        struct timeval tv = {0, 0};
        expect_eperm("settimeofday", syscall(SYS_settimeofday, &tv, NULL));
        struct timespec ts = {0, 0};
        expect_eperm("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
        /* x32: the same syscall number with bit 30 set */
        expect_eperm("x32 getpid", syscall(0x40000000 | SYS_getpid));
#if defined(__x86_64__)
        /* i386 ABI through int 0x80: getpid is 20 there */
        /* In a child: a kernel without IA32 emulation (ia32_emulation=0, or
         * built without it) answers int 0x80 with SIGSEGV before seccomp sees
         * it, which leaves nothing to filter; seccomp itself would answer
         * EPERM, or SIGSYS if it killed. */
        pid_t c = fork();
        if (c == 0) {
                long r;
                __asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");
                _exit(r == -EPERM ? 0 : 1);
        }
        int ws = 0;
        waitpid(c, &ws, 0);
        if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGSEGV)
                printf("ok   i386 ABI absent on this kernel (int 0x80 -> SIGSEGV)\n");
        else
                EXPECT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
                       "i386 getpid via int 0x80 fails with EPERM (wait status %#x)", ws);
#endif
        EXPECT(getpid() > 0, "ordinary syscalls still work");
        return 0;
}

static int unreadable(const char *p)
{
        errno = 0;
        int fd = open(p, O_RDONLY);
        if (fd >= 0) {
                char b;
                ssize_t n = read(fd, &b, 1);
                close(fd);
                struct stat st;
                if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
                        return 0;
                if (n > 0)
                        return 0;
                /* opened a directory: listing must fail */
                DIR *d = opendir(p);
                if (d) {
                        struct dirent *e;
                        int entries = 0;
                        while ((e = readdir(d)))
                                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                                        entries++;
                        closedir(d);
                        return entries == 0 && n <= 0;
                }
                return n <= 0;
        }
        return errno == EACCES || errno == ENOENT || errno == EPERM;
}

static int check_masked(int argc, char **argv)
{
        static const char *const paths[] = {"/etc/aidp",
                                            "/var/lib/aidp",
                                            "/root",
                                            "/home",
                                            "/run",
                                            "/proc/kcore",
                                            "/proc/keys",
                                            "/proc/sysrq-trigger",
                                            "/proc/timer_list",
                                            "/etc/shadow",
                                            "/sys/firmware",
                                            NULL};
        for (const char *const *p = paths; *p; p++)
                EXPECT(unreadable(*p), "%s is unreadable", *p);
        for (int i = 0; i < argc; i++)
                EXPECT(unreadable(argv[i]), "%s is unreadable", argv[i]);
        /* /etc's masks are names in the top layer of a read-only overlay on
         * /etc (mask.c), which no host rename over /etc/shadow undoes, not
         * binds over the host's files. */
        struct statfs sf;
        EXPECT(statfs("/etc", &sf) == 0 && sf.f_type == OVERLAYFS_SUPER_MAGIC &&
                       (sf.f_flags & ST_RDONLY),
               "/etc is a read-only overlay");
        /* The others are read-only, noexec binds of the same small tmpfs. */
        FILE *mi = fopen("/proc/self/mountinfo", "re");
        EXPECT(mi != NULL, "/proc/self/mountinfo readable");
        char line[4096];
        int masks = 0;
        while (mi && fgets(line, sizeof line, mi)) {
                char root[1024], point[1024], opts[1024];
                if (sscanf(line, "%*d %*d %*s %1023s %1023s %1023s", root, point, opts) != 3)
                        continue;
                if (strcmp(root, "/d") && strcmp(root, "/f"))
                        continue;
                masks++;
                char o[1026];
                snprintf(o, sizeof o, ",%s,", opts);
                EXPECT(strstr(o, ",ro,") && strstr(o, ",noexec,"), "mask %s is ro,noexec (%s)",
                       point, opts);
        }
        if (mi)
                fclose(mi);
        EXPECT(masks >= 4, "masks found in mountinfo (%d)", masks);
        return 0;
}

static int check_fs(void)
{
        errno = 0;
        EXPECT(mkdir("/aidp-probe", 0755) < 0 && errno == EROFS, "/ is read-only (%s)",
               strerror(errno));
        errno = 0;
        int fd = open("/usr/aidp-probe", O_CREAT | O_WRONLY, 0644);
        EXPECT(fd < 0 && errno == EROFS, "/usr is read-only (%s)", strerror(errno));
        errno = 0;
        fd = open("/etc/aidp-probe", O_CREAT | O_WRONLY, 0644);
        EXPECT(fd < 0 && errno == EROFS, "/etc is read-only (%s)", strerror(errno));
        errno = 0;
        fd = open("/dev/aidp-probe", O_CREAT | O_WRONLY, 0644);
        EXPECT(fd < 0, "/dev cannot be written (%s)", strerror(errno));
        const char *rw[] = {"/tmp/probe", "/scratch/probe", "/out/probe", "/dev/shm/probe"};
        for (size_t i = 0; i < 4; i++) {
                fd = open(rw[i], O_CREAT | O_WRONLY, 0644);
                EXPECT(fd >= 0 && write(fd, "x", 1) == 1, "%s is writable", rw[i]);
                if (fd >= 0)
                        close(fd);
        }
        static const char *const devs[] = {"/dev/null",   "/dev/zero",    "/dev/full",
                                           "/dev/random", "/dev/urandom", NULL};
        for (const char *const *d = devs; *d; d++) {
                fd = open(*d, O_RDWR);
                EXPECT(fd >= 0, "%s opens", *d);
                if (fd >= 0)
                        close(fd);
        }
        struct stat st;
        EXPECT(stat("/dev/pts/ptmx", &st) == 0 && stat("/dev/shm", &st) == 0,
               "/dev/pts and /dev/shm exist");
        EXPECT(stat("/dev/sda", &st) < 0 && stat("/dev/vda", &st) < 0 && stat("/dev/mem", &st) < 0,
               "no disk or memory devices");
        return 0;
}

static int memhog(void)
{
        /* touch memory until the cgroup's OOM killer ends us */
        for (;;) {
                char *p = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                               -1, 0);
                if (p == MAP_FAILED)
                        return 3;
                memset(p, 0xa5, 16 << 20);
        }
}

static int forkbomb(int limit)
{
        int made = 0, eagain = 0;
        pid_t kids[4096];
        for (int i = 0; i < limit * 4 && i < 4096; i++) {
                pid_t p = fork();
                if (p == 0) {
                        pause();
                        _exit(0);
                }
                if (p < 0) {
                        eagain = errno == EAGAIN;
                        break;
                }
                kids[made++] = p;
        }
        EXPECT(eagain, "fork stopped with EAGAIN after %d children", made);
        EXPECT(made < limit, "fewer than %d processes were created", limit);
        for (int i = 0; i < made; i++)
                kill(kids[i], SIGKILL);
        while (wait(NULL) > 0)
                ;
        return 0;
}

static volatile sig_atomic_t got[65];

static void on_sig(int s)
{
        got[s]++;
}

static int signals(void)
{
        /* Block first and wait with sigsuspend: a signal that arrives right
         * after "ready" must not be lost before the wait starts. */
        int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
        sigset_t block, empty;
        sigemptyset(&block);
        sigemptyset(&empty);
        for (size_t i = 0; i < 5; i++) {
                signal(sigs[i], on_sig);
                sigaddset(&block, sigs[i]);
        }
        sigprocmask(SIG_BLOCK, &block, NULL);
        printf("ready\n");
        fflush(stdout);
        for (;;) {
                for (int s = 1; s < 65; s++)
                        while (got[s] > 0) {
                                got[s]--;
                                printf("got %s\n", sigabbrev_np(s));
                                fflush(stdout);
                                if (s == SIGINT || s == SIGTERM || s == SIGHUP)
                                        return 0;
                        }
                sigsuspend(&empty);
        }
}

static int orphan(const char *tag)
{
        pid_t p = fork();
        if (p == 0) {
                setsid();
                if (fork() == 0) {
                        prctl(PR_SET_NAME, tag);
                        for (;;)
                                pause();
                }
                _exit(0);
        }
        waitpid(p, NULL, 0);
        printf("orphan started\n");
        return 0;
}

/* Write a marker into a file on the sandbox's tmpfs and sendfile(2) it to
 * stdout: into a pipe that moves page references, not bytes. */
static int sendfile_out(const char *dir)
{
        char path[256];
        snprintf(path, sizeof path, "%s/sendfile-marker", dir);
        int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
        if (fd < 0)
                return 3;
        const char msg[] = "MARKER-0123456789abcdef\n";
        if (write(fd, msg, sizeof msg - 1) != (ssize_t)sizeof msg - 1)
                return 3;
        off_t off = 0;
        if (sendfile(1, fd, &off, sizeof msg - 1) != (ssize_t)sizeof msg - 1)
                return 4;
        return 0;
}

/* deep DIR: 20 nested directories of 240-character names under DIR (past
 * PATH_MAX, each entered by a relative chdir) and a 5000-byte file at the
 * bottom. */
static int deep(const char *dir)
{
        char name[241];
        memset(name, 'n', 240);
        name[240] = '\0';
        if (chdir(dir) < 0)
                return 3;
        for (int i = 0; i < 20; i++)
                if (mkdir(name, 0755) < 0 || chdir(name) < 0)
                        return 4;
        int fd = open("deep", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        char buf[5000];
        memset(buf, 'x', sizeof buf);
        if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || close(fd) < 0)
                return 5;
        return 0;
}

int main(int argc, char **argv)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc < 2) {
                fprintf(stderr,
                        "usage: sandbox_probe status|pidns|net|seccomp|masked|fs|memhog|forkbomb "
                        "N|signals|orphan TAG|sleep N|exit N|deep DIR\n");
                return 2;
        }
        const char *c = argv[1];
        if (!strcmp(c, "status"))
                check_status();
        else if (!strcmp(c, "pidns"))
                check_pidns();
        else if (!strcmp(c, "net"))
                check_net();
        else if (!strcmp(c, "seccomp"))
                check_seccomp();
        else if (!strcmp(c, "masked"))
                check_masked(argc - 2, argv + 2);
        else if (!strcmp(c, "fs"))
                check_fs();
        else if (!strcmp(c, "memhog"))
                return memhog();
        else if (!strcmp(c, "forkbomb") && argc > 2)
                forkbomb(atoi(argv[2]));
        else if (!strcmp(c, "signals"))
                return signals();
        else if (!strcmp(c, "orphan") && argc > 2)
                return orphan(argv[2]);
        else if (!strcmp(c, "sleep") && argc > 2)
                sleep((unsigned)atoi(argv[2]));
        else if (!strcmp(c, "sendfile") && argc > 2)
                return sendfile_out(argv[2]);
        else if (!strcmp(c, "exit") && argc > 2)
                return atoi(argv[2]);
        else if (!strcmp(c, "deep") && argc > 2)
                return deep(argv[2]);
        else {
                fprintf(stderr, "unknown check %s\n", c);
                return 2;
        }
        return failures ? 1 : 0;
}
