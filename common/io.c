#include "common/io.h"

#include <errno.h>
#include <unistd.h>

int aidp_write_all(int fd, const void *buf, size_t len)
{
        const char *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

ssize_t aidp_read_all(int fd, void *buf, size_t len)
{
        char *p = buf;
        size_t got = 0;
        while (got < len) {
                ssize_t n = read(fd, p + got, len - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

ssize_t aidp_pread_all(int fd, void *buf, size_t len, off_t off)
{
        char *p = buf;
        size_t got = 0;
        while (got < len) {
                ssize_t n = pread(fd, p + got, len - got, off + (off_t)got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

int aidp_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
        const char *p = buf;
        size_t done = 0;
        while (done < len) {
                ssize_t n = pwrite(fd, p + done, len - done, off + (off_t)done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                done += (size_t)n;
        }
        return 0;
}
