#define _GNU_SOURCE
#include "supervisor/sandbox/shred.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"

#define CHUNK (64ULL << 20) /* work unit: a range of at most 64 MiB of one file */
#define BUF   (64U << 10)   /* one write+verify step: stays in the CPU cache */

struct range {
        size_t file; /* index into paths */
        off_t off;
        off_t len;
};

struct job {
        int dirfd;
        char **paths; /* relative to dirfd */
        size_t n_paths, cap_paths;
        char **dirs; /* directories, parents first */
        size_t n_dirs, cap_dirs;
        struct range *ranges;
        size_t n_ranges, cap_ranges;
        atomic_size_t next;
        atomic_uint_fast64_t bytes;
        atomic_uint_fast64_t failures;
        pthread_mutex_t lock;
        char first_failure[256];
};

static void fail(struct job *j, const char *path, const char *what, int e)
{
        atomic_fetch_add(&j->failures, 1);
        pthread_mutex_lock(&j->lock);
        if (!j->first_failure[0])
                snprintf(j->first_failure, sizeof j->first_failure, "%s: %s: %s", path, what,
                         strerror(e));
        pthread_mutex_unlock(&j->lock);
}

static int push(void ***arr, size_t *n, size_t *cap, size_t elem, void *item)
{
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                void *p = realloc(*arr, nc * elem);
                if (!p)
                        return -ENOMEM;
                *arr = p;
                *cap = nc;
        }
        memcpy((char *)*arr + *n * elem, item, elem);
        (*n)++;
        return 0;
}

/* Collect files and the data ranges in them (holes hold nothing to scrub,
 * and writing into them would allocate new pages). */
static int collect(struct job *j, const char *rel)
{
        int fd =
                openat(j->dirfd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                fail(j, rel, "open dir", errno);
                return 0;
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                fail(j, rel, "fdopendir", errno);
                return 0;
        }
        struct dirent *e;
        int rc = 0;
        /* readdir ends with NULL on an error too: a file it did not list would
         * not be overwritten, so the error is a failure of the shred. */
        while (rc == 0 && (errno = 0, e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                char *p = NULL;
                if (asprintf(&p, "%s%s%s", rel, *rel ? "/" : "", e->d_name) < 0) {
                        rc = -ENOMEM;
                        break;
                }
                struct stat st;
                if (fstatat(j->dirfd, p, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        fail(j, p, "stat", errno);
                        free(p);
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        rc = push((void ***)&j->dirs, &j->n_dirs, &j->cap_dirs, sizeof(char *), &p);
                        if (rc == 0)
                                rc = collect(j, p);
                        continue;
                }
                size_t idx = j->n_paths;
                rc = push((void ***)&j->paths, &j->n_paths, &j->cap_paths, sizeof(char *), &p);
                if (rc < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
                        continue;
                int f = openat(j->dirfd, p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (f < 0) {
                        fail(j, p, "open", errno);
                        continue;
                }
                off_t pos = 0;
                while (pos < st.st_size && rc == 0) {
                        off_t data = lseek(f, pos, SEEK_DATA);
                        if (data < 0) {
                                /* ENXIO: only a hole is left. Anything else
                                 * would skip data unseen: a failure. */
                                if (errno != ENXIO)
                                        fail(j, p, "find data", errno);
                                break;
                        }
                        off_t hole = lseek(f, data, SEEK_HOLE);
                        if (hole < 0)
                                hole = st.st_size; /* overwrite to the end: more, never less */
                        for (off_t o = data; o < hole && rc == 0; o += (off_t)CHUNK) {
                                struct range r = {.file = idx,
                                                  .off = o,
                                                  .len = hole - o < (off_t)CHUNK ? hole - o
                                                                                 : (off_t)CHUNK};
                                rc = push((void ***)&j->ranges, &j->n_ranges, &j->cap_ranges,
                                          sizeof r, &r);
                        }
                        pos = hole;
                }
                close(f);
        }
        if (rc == 0 && errno != 0)
                fail(j, rel, "list", errno);
        closedir(d);
        return rc;
}

static bool all_zero(const unsigned char *b, size_t n)
{
        /* OR-accumulate whole words (the compiler vectorises this loop);
         * buffers come from malloc, so they are word-aligned. */
        uint64_t acc = 0;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
                uint64_t w;
                memcpy(&w, b + i, 8);
                acc |= w;
        }
        for (; i < n; i++)
                acc |= b[i];
        return acc == 0;
}

/* Overwrite [off, off+len) of f through a shared mapping and check it while the
 * step is still in the CPU cache. Writing through the page cache mapping costs
 * a page-table entry per page, where pwrite and pread each cost a trip through
 * the file system per page: about twice as fast (scripts/bench-shred).
 * -errno when the range cannot be mapped (the caller falls back); 1 when the
 * check found a non-zero byte; 0 when done. */
static int scrub_mapped(int f, off_t off, off_t len)
{
        unsigned char *m =
                mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, f, off);
        if (m == MAP_FAILED)
                return -errno;
        int rc = 0;
        for (size_t s = 0; s < (size_t)len && rc == 0; s += BUF) {
                size_t n = (size_t)len - s < BUF ? (size_t)len - s : BUF;
                memset(m + s, 0, n);
                /* The check must read the memory, not the compiler's idea of it. */
                __asm__ __volatile__("" ::: "memory");
                if (!all_zero(m + s, n))
                        rc = 1;
        }
        munmap(m, (size_t)len);
        return rc;
}

/* The same with pwrite and pread, for a range that cannot be mapped. */
static int scrub_rw(struct job *j, const char *p, int f, off_t off, off_t len, unsigned char *zero,
                    unsigned char *back)
{
        for (off_t o = off; o < off + len;) {
                size_t n = (size_t)(off + len - o) < BUF ? (size_t)(off + len - o) : BUF;
                int w = aidp_pwrite_all(f, zero, n, o);
                if (w < 0) {
                        fail(j, p, "overwrite", -w);
                        return -1;
                }
                ssize_t got = aidp_pread_all(f, back, n, o);
                if (got != (ssize_t)n || !all_zero(back, n)) {
                        fail(j, p, "verify", got < 0 ? (int)-got : EIO);
                        return -1;
                }
                o += (off_t)n;
        }
        return 0;
}

static void *worker(void *arg)
{
        struct job *j = arg;
        unsigned char *zero = NULL, *back = NULL; /* only for scrub_rw */
        long page = sysconf(_SC_PAGESIZE);
        size_t i;
        while ((i = atomic_fetch_add(&j->next, 1)) < j->n_ranges) {
                const struct range *r = &j->ranges[i];
                const char *p = j->paths[r->file];
                int f = openat(j->dirfd, p, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (f < 0) {
                        fail(j, p, "open for overwrite", errno);
                        continue;
                }
                /* Ranges start on a page (SEEK_DATA is page-granular on tmpfs)
                 * and end there or at the end of the file. */
                int rc = page > 0 && r->off % page == 0 ? scrub_mapped(f, r->off, r->len) : -EINVAL;
                if (rc == 1) {
                        fail(j, p, "verify", EIO);
                } else if (rc < 0) {
                        if (!zero)
                                zero = calloc(1, BUF);
                        if (!back)
                                back = malloc(BUF);
                        if (zero && back)
                                rc = scrub_rw(j, p, f, r->off, r->len, zero, back);
                        else
                                fail(j, p, "overwrite buffer", ENOMEM);
                }
                if (rc == 0)
                        atomic_fetch_add(&j->bytes, (uint64_t)r->len);
                close(f);
        }
        free(zero);
        free(back);
        return NULL;
}

int aidp_shred_tree(int dirfd, unsigned threads, struct aidp_shred_report *rep)
{
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        memset(rep, 0, sizeof *rep);
        struct job j = {.dirfd = dirfd};
        pthread_mutex_init(&j.lock, NULL);
        atomic_init(&j.next, 0);
        atomic_init(&j.bytes, 0);
        atomic_init(&j.failures, 0);
        int rc = collect(&j, "");
        if (rc == 0) {
                if (threads < 1)
                        threads = 1;
                if (threads > 16)
                        threads = 16;
                if (threads > j.n_ranges)
                        threads = j.n_ranges ? (unsigned)j.n_ranges : 1;
                pthread_t tid[16];
                unsigned started = 0;
                for (unsigned t = 1; t < threads; t++)
                        if (pthread_create(&tid[started], NULL, worker, &j) == 0)
                                started++;
                worker(&j);
                for (unsigned t = 0; t < started; t++)
                        pthread_join(tid[t], NULL);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rep->scrub_seconds =
                (double)(ts.tv_sec - t0.tv_sec) + (double)(ts.tv_nsec - t0.tv_nsec) / 1e9;
        /* Remove what was scrubbed: files first, then directories deepest
         * first (they were collected parents first). */
        for (size_t i = 0; i < j.n_paths; i++) {
                if (unlinkat(dirfd, j.paths[i], 0) < 0 && errno != ENOENT)
                        fail(&j, j.paths[i], "unlink", errno);
                free(j.paths[i]);
        }
        for (size_t i = j.n_dirs; i-- > 0;) {
                if (unlinkat(dirfd, j.dirs[i], AT_REMOVEDIR) < 0 && errno != ENOENT)
                        fail(&j, j.dirs[i], "rmdir", errno);
                free(j.dirs[i]);
        }
        rep->files = j.n_paths;
        rep->bytes = atomic_load(&j.bytes);
        rep->failures = atomic_load(&j.failures);
        rep->verified = rc == 0 && rep->failures == 0;
        snprintf(rep->first_failure, sizeof rep->first_failure, "%s", j.first_failure);
        free(j.paths);
        free(j.dirs);
        free(j.ranges);
        pthread_mutex_destroy(&j.lock);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        rep->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        return rc;
}
