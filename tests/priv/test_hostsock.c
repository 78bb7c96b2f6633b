#define _GNU_SOURCE
/* The supervisor's list of the host's unix sockets (hostsock.c,
 * aidp_hostsock_collect) reads each network namespace's table through one of
 * its processes. A namespace must not be lost because the process it is
 * first seen through is gone by the time its table is opened, nor because
 * the thread-group leader it would be seen through has exited while another
 * thread of it holds the listener. Each socket lives in a throwaway network
 * namespace (the host's own is never changed). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/strv.h"
#include "priv.h"
#include "supervisor/sandbox/hostsock.h"

static char dir[64] = "/tmp/aidp-hostsock-XXXXXX", sock[128];
static pid_t kids[2] = {-1, -1};

static void setup(void)
{
        cr_assert_not_null(mkdtemp(dir));
        snprintf(sock, sizeof sock, "%s/ns.sock", dir);
}

static void teardown(void)
{
        for (int i = 1; i >= 0; i--)
                if (kids[i] > 0)
                        kill(kids[i], SIGKILL);
        if (kids[0] > 0)
                waitpid(kids[0], NULL, 0);
        unlink(sock);
        rmdir(dir);
        unsetenv("AIDP_FAULT_HOSTSOCK_GONE");
}

TestSuite(hostsock, .init = setup, .fini = teardown, .timeout = 30);

/* In a network namespace of its own, a listener on sock; -1 on failure. */
static int listen_in_own_netns(void)
{
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        memcpy(a.sun_path, sock, strlen(sock));
        int fd = -1;
        if (unshare(CLONE_NEWNET) < 0 || (fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
            bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1) < 0)
                return -1;
        return fd;
}

/* kids[0]: a child listening on sock in a network namespace of its own,
 * which then goes on as body says (writing to w); the pipe's read end. */
static int start(void (*body)(int w))
{
        int p[2];
        cr_assert_eq(pipe(p), 0);
        kids[0] = fork();
        cr_assert_geq(kids[0], 0);
        if (kids[0] == 0) {
                close(p[0]);
                if (listen_in_own_netns() < 0)
                        _exit(1);
                body(p[1]);
                _exit(1);
        }
        close(p[1]);
        return p[0];
}

static bool listed(void)
{
        char **v = NULL;
        int n = aidp_hostsock_collect(&v);
        cr_assert_geq(n, 0, "collect: %s", strerror(-n));
        bool found = false;
        for (int i = 0; i < n && !found; i++)
                found = !strcmp(v[i], sock);
        aidp_strv_free(v);
        return found;
}

/* The namespace's first process forks a second and says its pid. */
static void second_process(int w)
{
        pid_t b = fork();
        if (b == 0) {
                for (;;)
                        pause();
        }
        if (b < 0 || write(w, &b, sizeof b) != sizeof b)
                _exit(1);
        for (;;)
                pause();
}

/* The namespace's first process (lowest pid, first in /proc) reads as gone
 * between its ns/net link and its table (AIDP_FAULT_HOSTSOCK_GONE, as one
 * that exits right there): the namespace is read through its second. */
Test(hostsock, a_namespace_whose_first_process_is_gone_is_read_through_the_next)
{
        AIDP_REQUIRE_ROOT();
        int r = start(second_process);
        cr_assert_eq(read(r, &kids[1], sizeof kids[1]), (ssize_t)sizeof kids[1],
                     "the namespace's processes did not start");
        close(r);
        /* /proc lists by pid: the first is the one that "goes". */
        cr_assert_gt(kids[1], kids[0], "pids wrapped between the two; run again");
        cr_assert(listed(), "not listed at all");
        char pid[16];
        snprintf(pid, sizeof pid, "%d", (int)kids[0]);
        setenv("AIDP_FAULT_HOSTSOCK_GONE", pid, 1);
        cr_expect(listed(), "its first process gone: the namespace was never read");
}

static void *hold(void *fd)
{
        (void)fd;
        for (;;)
                pause();
        return NULL;
}

/* A second thread holds the listener; the leader exits alone. */
static void leader_exits(int w)
{
        pthread_t t;
        if (pthread_create(&t, NULL, hold, NULL) != 0 || write(w, "r", 1) != 1)
                _exit(1);
        syscall(SYS_exit, 0); /* this thread only */
}

/* A thread-group leader that exited (a zombie until its last thread ends):
 * its ns/net link cannot be read, its other thread's can. */
Test(hostsock, a_namespace_held_by_a_thread_of_an_exited_leader_is_read)
{
        AIDP_REQUIRE_ROOT();
        int p = start(leader_exits);
        char r;
        cr_assert_eq(read(p, &r, 1), 1, "the listener did not start");
        close(p);
        char link[64], target[64];
        snprintf(link, sizeof link, "/proc/%d/ns/net", (int)kids[0]);
        bool gone = false;
        for (int i = 0; i < 2000 && !gone; i++) {
                gone = readlink(link, target, sizeof target) < 0;
                if (!gone)
                        nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
        }
        cr_assert(gone, "the leader's ns/net link is still there");
        cr_expect(listed(), "the exited leader's namespace was never read");
}
