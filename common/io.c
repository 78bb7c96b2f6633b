#include "common/io.h"

#include <errno.h>
#include <unistd.h>

/* The one loop over short counts and EINTR; off < 0: at the file position. */
static ssize_t read_loop(int fd, void *buf, size_t len, off_t off)
{
        char *p = buf;
        size_t got = 0;
        while (got < len) {
                ssize_t n = off < 0 ? read(fd, p + got, len - got)
                                    : pread(fd, p + got, len - got, off + (off_t)got);
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

static int write_loop(int fd, const void *buf, size_t len, off_t off)
{
        const char *p = buf;
        size_t done = 0;
        while (done < len) {
                ssize_t n = off < 0 ? write(fd, p + done, len - done)
                                    : pwrite(fd, p + done, len - done, off + (off_t)done);
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

int aidp_write_all(int fd, const void *buf, size_t len)
{
        return write_loop(fd, buf, len, -1);
}

ssize_t aidp_read_all(int fd, void *buf, size_t len)
{
        return read_loop(fd, buf, len, -1);
}

ssize_t aidp_pread_all(int fd, void *buf, size_t len, off_t off)
{
        return off < 0 ? -EINVAL : read_loop(fd, buf, len, off);
}

int aidp_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
        return off < 0 ? -EINVAL : write_loop(fd, buf, len, off);
}
