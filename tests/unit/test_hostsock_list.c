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
        char *const *v = NULL;
        cr_assert_eq(aidp_hostsock_recv(sv[0], &v), 0);
        char go = 0;
        cr_assert_eq(recv(sv[0], &go, 1, 0), 1);
        cr_expect_eq(go, 'g');
        close(sv[0]);
        close(sv[1]);
}

/* More than one message's worth (32 KiB), from a child as the supervisor
 * does it, so the socket's buffer never has to hold it all. */
Test(hostsock_list, many_paths_arrive_whole_and_in_order)
{
        enum { N = 3000 };
        static char names[N][64];
        static char *paths[N];
        for (size_t i = 0; i < N; i++) {
                snprintf(names[i], sizeof names[i], "/run/user/%zu/some-service/socket.%zu", i, i);
                paths[i] = names[i];
        }
        int sv[2];
        pair(sv);
        pid_t p = fork();
        cr_assert_geq(p, 0);
        if (p == 0)
                _exit(aidp_hostsock_send(sv[1], paths, N) == 0 ? 0 : 1);
        close(sv[1]);
        char *const *v = NULL;
        cr_assert_eq(aidp_hostsock_recv(sv[0], &v), N);
        for (size_t i = 0; i < N; i++)
                cr_assert_str_eq(v[i], names[i]);
        int st;
        cr_assert_eq(waitpid(p, &st, 0), p);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(sv[0]);
}

Test(hostsock_list, a_closed_socket_is_the_supervisor_giving_up)
{
        int sv[2];
        pair(sv);
        close(sv[1]);
        char *const *v = NULL;
        cr_expect_eq(aidp_hostsock_recv(sv[0], &v), -EPIPE);
        close(sv[0]);
}

Test(hostsock_list, a_message_that_is_not_a_list_is_refused)
{
        int sv[2];
        pair(sv);
        cr_assert_eq(send(sv[1], "g", 1, 0), 1);
        char *const *v = NULL;
        cr_expect_eq(aidp_hostsock_recv(sv[0], &v), -EPROTO);
        close(sv[0]);
        close(sv[1]);
}
