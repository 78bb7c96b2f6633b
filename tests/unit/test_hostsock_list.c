/* The host socket list from the supervisor to pid 1 over the sync socket
 * (supervisor/sandbox/hostsock.h): chunked, in order, ended, and the go after
 * it is still there to read. A socketpair, no root. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/sandbox/hostsock.h"

static void pair(int sv[2])
{
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

Test(hostsock_list, an_empty_list_then_the_go)
{
        int sv[2];
        pair(sv);
        cr_assert_eq(aidp_hostsock_send(sv[1], NULL, 0), 0);
        cr_assert_eq(send(sv[1], "g", 1, 0), 1);
        struct aidp_hostsock_list l;
        cr_assert_eq(aidp_hostsock_recv(sv[0], &l), 0);
        cr_expect_null(l.v[0]);
        aidp_hostsock_list_release(&l);
        char go = 0;
        cr_assert_eq(recv(sv[0], &go, 1, 0), 1);
        cr_expect_eq(go, 'g');
        close(sv[0]);
        close(sv[1]);
}

/* paths[0..n) from a child as the supervisor sends them (so the socket's
 * buffer never has to hold the whole list); all of them arrive, in order. */
static void send_and_check(char *const *paths, size_t n)
{
        int sv[2];
        pair(sv);
        pid_t p = fork();
        cr_assert_geq(p, 0);
        if (p == 0)
                _exit(aidp_hostsock_send(sv[1], paths, n) == 0 ? 0 : 1);
        close(sv[1]);
        struct aidp_hostsock_list l;
        cr_assert_eq(aidp_hostsock_recv(sv[0], &l), (int)n);
        cr_assert_eq(l.n, n);
        for (size_t i = 0; i < n; i++)
                cr_assert_str_eq(l.v[i], paths[i], "path %zu", i);
        cr_expect_null(l.v[n]);
        aidp_hostsock_list_release(&l);
        int st;
        cr_assert_eq(waitpid(p, &st, 0), p);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(sv[0]);
}

/* More than one message's worth (32 KiB). */
Test(hostsock_list, many_paths_arrive_whole_and_in_order)
{
        enum { N = 3000 };
        static char names[N][64];
        static char *paths[N];
        for (size_t i = 0; i < N; i++) {
                snprintf(names[i], sizeof names[i], "/run/user/%zu/some-service/socket.%zu", i, i);
                paths[i] = names[i];
        }
        send_and_check(paths, N);
}

/* Any host user can bind as many sockets as it likes: more than pid 1 once
 * had room for (16384 paths) must still arrive, or every run would fail. */
Test(hostsock_list, more_paths_than_any_fixed_table_arrive)
{
        enum { N = 20000 };
        static char names[N][48];
        static char *paths[N];
        for (size_t i = 0; i < N; i++) {
                snprintf(names[i], sizeof names[i], "/home/someone/s/%zu.sock", i);
                paths[i] = names[i];
        }
        send_and_check(paths, N);
}

/* ... and so must long paths past what a fixed buffer held (1 MiB): 2 MiB. */
Test(hostsock_list, long_paths_past_any_fixed_buffer_arrive)
{
        enum { N = 1024, LEN = 2047 };
        static char names[N][LEN + 1];
        static char *paths[N];
        for (size_t i = 0; i < N; i++) {
                memset(names[i], 'd', LEN);
                names[i][0] = '/';
                snprintf(names[i] + LEN - 12, 13, "/%06zu.sock", i);
                paths[i] = names[i];
        }
        send_and_check(paths, N);
}

Test(hostsock_list, a_closed_socket_is_the_supervisor_giving_up)
{
        int sv[2];
        pair(sv);
        close(sv[1]);
        struct aidp_hostsock_list l;
        cr_expect_eq(aidp_hostsock_recv(sv[0], &l), -EPIPE);
        cr_expect_null(l.v);
        close(sv[0]);
}

Test(hostsock_list, a_message_that_is_not_a_list_is_refused)
{
        int sv[2];
        pair(sv);
        cr_assert_eq(send(sv[1], "g", 1, 0), 1);
        struct aidp_hostsock_list l;
        cr_expect_eq(aidp_hostsock_recv(sv[0], &l), -EPROTO);
        cr_expect_null(l.v);
        close(sv[0]);
        close(sv[1]);
}
