#pragma once
/* Whole reads and writes over short counts and EINTR. */
#include <stddef.h>
#include <sys/types.h>

/* 0, or -errno (-EIO when nothing more could be written). */
int aidp_write_all(int fd, const void *buf, size_t len);
/* The bytes read before end of file or len, or -errno. */
ssize_t aidp_read_all(int fd, void *buf, size_t len);

/* The same at an offset, leaving the file position alone (pread/pwrite). */
ssize_t aidp_pread_all(int fd, void *buf, size_t len, off_t off);
int aidp_pwrite_all(int fd, const void *buf, size_t len, off_t off);
