#define _GNU_SOURCE
/* The worker-zygote wire (zygote_wire.h). */
#include "supervisor/sandbox/zygote_wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/sandbox/codec/plan.h"

union cmsg_space {
        char buf[CMSG_SPACE(sizeof(int) * AIDP_PLAN_MAX_FDS)];
        struct cmsghdr align;
};

int aidp_zygote_send(int sock, const void *buf, size_t len, const int *fds, size_t n)
{
        if (n > AIDP_PLAN_MAX_FDS)
                return -E2BIG;
        union cmsg_space cb;
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
                n = 0; /* sent with the first bytes */
                p += w;
                len -= (size_t)w;
        }
        return 0;
}

static void close_all(int *fds, size_t *n)
{
        for (size_t i = 0; i < *n; i++)
                close(fds[i]);
        *n = 0;
}

int aidp_zygote_recv(int sock, void *buf, size_t len, int *fds, size_t max, size_t *n)
{
        union cmsg_space cb;
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
                                if (*n < max)
                                        fds[(*n)++] = fd;
                                else {
                                        close(fd);
                                        too_many = true;
                                }
                        }
                }
                got += (size_t)r;
        }
        if (too_many) {
                close_all(fds, n);
                return -EMSGSIZE;
        }
        return 1;
}
