/* The detached-run log ring (aidp_runlog_relay) holds at most its cap in
 * every path, also when hole punching stops working after the ring's start
 * moved past the cap and the log goes on flat. fallocate is wrapped at link
 * time (-Wl,--wrap=fallocate, tests/CMakeLists.txt) so the punch fails on
 * cue; the log is a memfd (shmem frees a file's head). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/daemon/runlog.h"

int __real_fallocate(int fd, int mode, off_t off, off_t len);

/* Punches at or after this offset fail as on a file system without them. */
static off_t punch_fails_from = INT64_MAX;
static unsigned punches_failed;

int __wrap_fallocate(int fd, int mode, off_t off, off_t len);
int __wrap_fallocate(int fd, int mode, off_t off, off_t len)
{
        if ((mode & FALLOC_FL_PUNCH_HOLE) && off >= punch_fails_from) {
                punches_failed++;
                errno = EOPNOTSUPP;
                return -1;
        }
        return __real_fallocate(fd, mode, off, len);
}

#define MAX   (64u << 10)
#define TOTAL (1u << 20)

static int wfd;

static void *writer(void *arg)
{
        (void)arg;
        static char chunk[4000]; /* not page sized: the ring's ends fall anywhere */
        for (size_t i = 0; i < sizeof chunk; i++)
                chunk[i] = (char)('a' + i % 26);
        for (size_t n = 0; n < TOTAL;) {
                size_t k = TOTAL - n < sizeof chunk ? TOTAL - n : sizeof chunk;
                ssize_t w = write(wfd, chunk, k);
                if (w <= 0)
                        break;
                n += (size_t)w;
        }
        close(wfd);
        return NULL;
}

/* Relays TOTAL bytes into a fresh memfd capped at MAX; the log's fd. */
static int relay(uint64_t *dropped)
{
        int log = memfd_create("aidp-runlog-test", MFD_CLOEXEC);
        cr_assert_geq(log, 0, "memfd_create: %s", strerror(errno));
        int p[2];
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        wfd = p[1];
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, writer, NULL), 0);
        int stop = 0;
        aidp_runlog_relay(p[0], log, MAX, dropped, &stop);
        pthread_join(t, NULL);
        close(p[0]);
        return log;
}

/* Bytes the log holds: from its first byte not zero (a partly punched page
 * is zeroed, not freed) to its end, and in blocks. */
static void expect_held_under_cap(int log, uint64_t dropped)
{
        struct stat st;
        cr_assert_eq(fstat(log, &st), 0);
        off_t first = lseek(log, 0, SEEK_DATA);
        cr_assert_geq(first, 0, "SEEK_DATA: %s", strerror(errno));
        for (char c = 0; first < st.st_size && pread(log, &c, 1, first) == 1 && c == 0;)
                first++;
        uint64_t span = (uint64_t)(st.st_size - first);
        cr_expect_leq(span, MAX, "the log holds %llu bytes [%lld, %lld), over its cap %u",
                      (unsigned long long)span, (long long)first, (long long)st.st_size, MAX);
        cr_expect_leq((uint64_t)st.st_blocks * 512, MAX + 2 * 4096, "%lld blocks",
                      (long long)st.st_blocks);
        cr_expect_geq(dropped, TOTAL - MAX, "dropped %llu", (unsigned long long)dropped);
        cr_expect_leq(dropped, TOTAL, "dropped %llu", (unsigned long long)dropped);
        /* the log says it is full at its end */
        static const char tail[] = "the rest of the run's output is dropped]\n";
        char buf[sizeof tail - 1];
        cr_assert_eq(pread(log, buf, sizeof buf, st.st_size - (off_t)sizeof buf),
                     (ssize_t)sizeof buf);
        cr_expect(memcmp(buf, tail, sizeof buf) == 0, "log ends with %.*s", (int)sizeof buf, buf);
}

Test(runlog_ring, punch_failing_after_head_passed_the_cap_keeps_the_cap)
{
        punch_fails_from = MAX; /* the ring's head past max - 84 first */
        punches_failed = 0;
        uint64_t dropped = 0;
        int log = relay(&dropped);
        cr_assert_gt(punches_failed, 0, "the ring never went flat: the test proves nothing");
        expect_held_under_cap(log, dropped);
        close(log);
}

Test(runlog_ring, flat_from_the_start_keeps_the_cap)
{
        punch_fails_from = 0; /* the probe fails: no ring at all */
        punches_failed = 0;
        uint64_t dropped = 0;
        int log = relay(&dropped);
        cr_assert_gt(punches_failed, 0);
        expect_held_under_cap(log, dropped);
        close(log);
}
