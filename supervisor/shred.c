#define _GNU_SOURCE
#include "supervisor/shred.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

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
        while (rc == 0 && (e = readdir(d))) {
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
                        if (data < 0)
                                break; /* ENXIO: only a hole is left */
                        off_t hole = lseek(f, data, SEEK_HOLE);
                        if (hole < 0)
                                hole = st.st_size;
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

static void *worker(void *arg)
{
        struct job *j = arg;
        unsigned char *zero = calloc(1, BUF), *back = malloc(BUF);
        if (!zero || !back) {
                free(zero);
                free(back);
                fail(j, "-", "worker buffer", ENOMEM);
                return NULL;
        }
        size_t i;
        while ((i = atomic_fetch_add(&j->next, 1)) < j->n_ranges) {
                const struct range *r = &j->ranges[i];
                const char *p = j->paths[r->file];
                int f = openat(j->dirfd, p, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (f < 0) {
                        fail(j, p, "open for overwrite", errno);
                        continue;
                }
                /* Write a step, then read it back while it is still in the
                 * CPU cache: verifying costs far less than a second pass over
                 * the whole file would. (Mapping the pages and checking them
                 * in place measured slower: populating and tearing down the
                 * page tables costs more than the copy it saves.) */
                bool ok = true;
                for (off_t o = r->off; ok && o < r->off + r->len;) {
                        size_t n = (size_t)(r->off + r->len - o) < BUF
                                           ? (size_t)(r->off + r->len - o)
                                           : BUF;
                        ssize_t w = pwrite(f, zero, n, o);
                        if (w <= 0) {
                                fail(j, p, "overwrite", w < 0 ? errno : EIO);
                                ok = false;
                                break;
                        }
                        ssize_t got = pread(f, back, (size_t)w, o);
                        if (got != w || !all_zero(back, (size_t)got)) {
                                fail(j, p, "verify", got < 0 ? errno : EIO);
                                ok = false;
                                break;
                        }
                        o += w;
                }
                if (ok)
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
