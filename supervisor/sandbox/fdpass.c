#define _GNU_SOURCE
#include "supervisor/sandbox/fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

union cmsg_buf {
        char buf[CMSG_SPACE(sizeof(int) * AIDP_FDPASS_MAX_MANY)];
        struct cmsghdr align;
};

int aidp_fdpass_sendv(int sock, const void *buf, size_t len, const int *fds, size_t n)
{
        if (n > AIDP_FDPASS_MAX_MANY)
                return -E2BIG;
        union cmsg_buf cb;
        memset(&cb, 0, sizeof cb);
        const char *p = buf;
        while (len > 0) {
                struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
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
                ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return w < 0 ? -errno : -EIO;
                n = 0; /* gone with the first bytes */
                p += w;
                len -= (size_t)w;
        }
        return 0;
}

int aidp_fdpass_send(int sock, char byte, const int *fds, size_t n)
{
        if (n > AIDP_FDPASS_MAX)
                return -E2BIG;
        return aidp_fdpass_sendv(sock, &byte, 1, fds, n);
}

static void close_all(int *fds, size_t *n)
{
        for (size_t i = 0; i < *n; i++)
                close(fds[i]);
        *n = 0;
}

int aidp_fdpass_recvv(int sock, void *buf, size_t len, int *fds, size_t max, size_t *n, bool strict)
{
        union cmsg_buf cb;
        char *p = buf;
        size_t got = 0;
        bool too_many = false;
        *n = 0;
        while (got < len) {
                struct iovec iov = {.iov_base = p + got, .iov_len = len - got};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = cb.buf,
                                    .msg_controllen = sizeof cb.buf};
                ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0) {
                        int e = r < 0 ? -errno : got ? -EPIPE : 0;
                        close_all(fds, n);
                        return e;
                }
                too_many |= (mh.msg_flags & MSG_CTRUNC) != 0;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                                if (*n < max) {
                                        fds[(*n)++] = fd;
                                } else {
                                        close(fd);
                                        too_many = true;
                                }
                        }
                }
                got += (size_t)r;
        }
        if (strict && too_many) {
                close_all(fds, n);
                return -EMSGSIZE;
        }
        return 1;
}

int aidp_fdpass_recv(int sock, char *byte, int *fds, size_t max, size_t *n)
{
        return aidp_fdpass_recvv(sock, byte, 1, fds, max, n, false);
}
