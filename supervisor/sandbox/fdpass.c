#define _GNU_SOURCE
#include "supervisor/sandbox/fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

union cmsg_buf {
        char buf[CMSG_SPACE(sizeof(int) * AIDP_FDPASS_MAX)];
        struct cmsghdr align;
};

int aidp_fdpass_send(int sock, char byte, const int *fds, size_t n)
{
        if (n > AIDP_FDPASS_MAX)
                return -E2BIG;
        union cmsg_buf cb;
        memset(&cb, 0, sizeof cb);
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (n > 0) {
                mh.msg_control = cb.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
        }
        ssize_t w;
        do
                w = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        return w == 1 ? 0 : w < 0 ? -errno : -EIO;
}

int aidp_fdpass_recv(int sock, char *byte, int *fds, size_t max, size_t *n)
{
        union cmsg_buf cb;
        struct iovec iov = {.iov_base = byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cb.buf,
                            .msg_controllen = sizeof cb.buf};
        ssize_t r;
        do
                r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (r < 0 && errno == EINTR);
        *n = 0;
        if (r <= 0)
                return r < 0 ? -errno : 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                        if (*n < max)
                                fds[(*n)++] = fd;
                        else
                                close(fd);
                }
        }
        return 1;
}
