/* The accept loop of aidp-supervisor serve (daemon.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "supervisor/daemon/daemon.h"
#include "supervisor/daemon/proto.h"
#include "supervisor/daemon/registry.h"

int aidp_daemon_activation_fd(void)
{
        const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
        if (!pid || !n || strtol(pid, NULL, 10) != (long)getpid() || strtol(n, NULL, 10) != 1)
                return -1;
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
                return -1;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        fcntl(3, F_SETFD, FD_CLOEXEC);
        return 3;
}

int aidp_daemon_listen(const struct aidp_daemon_config *c, aidp_error *err)
{
        if (c->listen_fd >= 0)
                return c->listen_fd;
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(c->socket_path) >= sizeof a.sun_path)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG, "--socket %s: too long",
                                      c->socket_path);
        strcpy(a.sun_path, c->socket_path);
        /* A stale socket of a previous instance is replaced; anything else
         * at that path is the admin's and left alone. */
        struct stat st;
        if (lstat(c->socket_path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EEXIST,
                                              "--socket %s: exists and is not a socket",
                                              c->socket_path);
                unlink(c->socket_path);
        }
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "socket");
        /* Bound 0600 (umask) and only then opened to the group: no moment in
         * which anyone else could connect. */
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *)&a, sizeof a);
        umask(old);
        if (r < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "bind %s", c->socket_path);
        if (c->has_group &&
            (chown(c->socket_path, 0, c->group) < 0 || chmod(c->socket_path, 0660) < 0))
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s: group and mode",
                                        c->socket_path);
        if (listen(fd, 128) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "listen");
        return TAKE_FD(fd);
}

static int signals_fd(sigset_t *old)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, old);
        return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Reap every worker that ended; its registry entry goes before its pid is
 * released (waitid WNOWAIT first), so that `stop` never signals a process
 * that reused the pid. */
static unsigned reap(const struct aidp_daemon_config *c, unsigned workers)
{
        for (;;) {
                siginfo_t si = {0};
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
                        return workers;
                aidp_registry_remove(c->state_dir, si.si_pid);
                waitpid(si.si_pid, NULL, 0);
                if (workers)
                        workers--;
                if ((si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) && c->worker_crashed)
                        c->worker_crashed(si.si_pid, si.si_status, c->arg);
        }
}

static void spawn_worker(const struct aidp_daemon_config *c, int lfd, int sfd, const sigset_t *old,
                         int conn, unsigned *workers)
{
        if (*workers >= c->max_workers) {
                aidp_proto_send_error(conn, AIDP_EXIT_INTERNAL,
                                      "the daemon serves as many clients as it may; try again");
                return;
        }
        if (c->before_fork)
                c->before_fork(c->arg);
        pid_t pid = fork();
        if (pid < 0) {
                aidp_proto_send_error(conn, AIDP_EXIT_INTERNAL, "the daemon cannot fork");
                return;
        }
        if (pid == 0) {
                close(lfd);
                close(sfd);
                sigprocmask(SIG_SETMASK, old, NULL);
                aidp_daemon_worker(c, conn);
        }
        (*workers)++;
}

int aidp_daemon_serve(const struct aidp_daemon_config *c, int lfd, aidp_error *err)
{
        sigset_t old;
        _cleanup_close_ int sfd = signals_fd(&old);
        if (sfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "signalfd");
        if (aidp_registry_init(c->state_dir, err) < 0)
                return -1;
        unsigned workers = 0;
        for (;;) {
                struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "poll");
                }
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        bool stop = false;
                        while (read(sfd, &si, sizeof si) == sizeof si)
                                stop |= si.ssi_signo != SIGCHLD;
                        workers = reap(c, workers);
                        if (stop)
                                break;
                }
                if (p[0].revents & POLLIN) {
                        int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (conn < 0)
                                continue;
                        spawn_worker(c, lfd, sfd, &old, conn, &workers);
                        close(conn);
                }
        }
        sigprocmask(SIG_SETMASK, &old, NULL);
        return 0;
}
