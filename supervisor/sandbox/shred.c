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
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"

#define CHUNK (64ULL << 20) /* work unit: a range of at most 64 MiB of one file */
#define BUF   (128U << 10)  /* one write+verify step: stays in the CPU cache */

/* The walk never builds a path: every file and directory is named by a file
 * handle (name_to_handle_at, about 12 bytes on tmpfs) and opened with
 * open_by_handle_at relative to the mount, so no depth or name length a job
 * can create (20 directories of 240-character names is over PATH_MAX) puts a
 * file out of reach, and at most two descriptors are open at a time. The
 * directories are kept in a heap array walked breadth first: no recursion a
 * deep tree could exhaust. Needs CAP_DAC_READ_SEARCH (the supervisor and gc
 * are root). */
struct range {
        size_t file; /* index into files */
        off_t off;
        off_t len;
};

struct job {
        int dirfd;
        struct file_handle **files; /* regular files holding data */
        char **names;               /* their names (in their directory), for messages */
        size_t n_files, cap_files, n_names, cap_names;
        struct file_handle **dirs; /* directories, parents first; [0] = NULL: the root */
        size_t n_dirs, cap_dirs;
        uint64_t entries; /* every non-directory entry seen (what the report counts) */
        struct range *ranges;
        size_t n_ranges, cap_ranges;
        atomic_size_t next;
        atomic_uint_fast64_t bytes;
        atomic_uint_fast64_t failures;
        pthread_mutex_t lock;
        char first_failure[256];
};

static void fail(struct job *j, const char *name, const char *what, int e)
{
        atomic_fetch_add(&j->failures, 1);
        pthread_mutex_lock(&j->lock);
        if (!j->first_failure[0])
                snprintf(j->first_failure, sizeof j->first_failure, "%.120s: %s: %s", name, what,
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

/* A handle for dfd/name (never following a symlink), or NULL with errno. */
static struct file_handle *handle_of(int dfd, const char *name)
{
        struct file_handle *h = malloc(sizeof *h + MAX_HANDLE_SZ);
        if (!h)
                return NULL;
        h->handle_bytes = MAX_HANDLE_SZ;
        int mount_id;
        if (name_to_handle_at(dfd, name, h, &mount_id, 0) < 0) {
                int e = errno;
                free(h);
                errno = e;
                return NULL;
        }
        return h;
}

/* Directory i of the walk (0 is the mount's root), opened for listing. */
static int open_dir(const struct job *j, size_t i)
{
        if (i == 0)
                return openat(j->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return open_by_handle_at(j->dirfd, j->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The data ranges of one regular file (holes hold nothing to scrub, and
 * writing into them would allocate new pages). */
static int add_ranges(struct job *j, int dfd, const char *name, const struct stat *st)
{
        struct file_handle *h = handle_of(dfd, name);
        if (!h) {
                fail(j, name, "file handle", errno);
                return 0;
        }
        size_t idx = j->n_files;
        char *nm = strdup(name);
        int rc = nm ? push((void ***)&j->names, &j->n_names, &j->cap_names, sizeof nm, &nm)
                    : -ENOMEM;
        if (rc == 0)
                rc = push((void ***)&j->files, &j->n_files, &j->cap_files, sizeof h, &h);
        if (rc < 0) {
                if (j->n_names > j->n_files)
                        j->n_names--;
                free(nm);
                free(h);
                return rc;
        }
        int f = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (f < 0) {
                fail(j, name, "open", errno);
                return 0;
        }
        off_t pos = 0;
        while (pos < st->st_size && rc == 0) {
                off_t data = lseek(f, pos, SEEK_DATA);
                if (data < 0) {
                        /* ENXIO: only a hole is left. Anything else would
                         * skip data unseen: a failure. */
                        if (errno != ENXIO)
                                fail(j, name, "find data", errno);
                        break;
                }
                off_t hole = lseek(f, data, SEEK_HOLE);
                if (hole < 0)
                        hole = st->st_size; /* overwrite to the end: more, never less */
                for (off_t o = data; o < hole && rc == 0; o += (off_t)CHUNK) {
                        struct range r = {.file = idx,
                                          .off = o,
                                          .len = hole - o < (off_t)CHUNK ? hole - o : (off_t)CHUNK};
                        rc = push((void ***)&j->ranges, &j->n_ranges, &j->cap_ranges, sizeof r, &r);
                }
                pos = hole;
        }
        close(f);
        return rc;
}

/* List directory i: subdirectories are appended to the walk, files with data
 * get their ranges. */
static int list_dir(struct job *j, size_t i)
{
        int fd = open_dir(j, i);
        if (fd < 0) {
                fail(j, "(directory)", "open", errno);
                return 0;
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                fail(j, "(directory)", "fdopendir", errno);
                return 0;
        }
        struct dirent *e;
        int rc = 0;
        /* readdir ends with NULL on an error too: a file it did not list would
         * not be overwritten, so the error is a failure of the shred. */
        while (rc == 0 && (errno = 0, e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        fail(j, e->d_name, "stat", errno);
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        struct file_handle *h = handle_of(dirfd(d), e->d_name);
                        if (!h) {
                                fail(j, e->d_name, "file handle", errno);
                                continue;
                        }
                        rc = push((void ***)&j->dirs, &j->n_dirs, &j->cap_dirs, sizeof h, &h);
                        if (rc < 0)
                                free(h);
                        continue;
                }
                j->entries++;
                if (S_ISREG(st.st_mode) && st.st_size > 0)
                        rc = add_ranges(j, dirfd(d), e->d_name, &st);
        }
        if (rc == 0 && errno != 0)
                fail(j, "(directory)", "list", errno);
        closedir(d);
        return rc;
}

/* Every directory, breadth first from the root: the array is the queue. */
static int collect(struct job *j)
{
        struct file_handle *root = NULL;
        int rc = push((void ***)&j->dirs, &j->n_dirs, &j->cap_dirs, sizeof root, &root);
        for (size_t i = 0; rc == 0 && i < j->n_dirs; i++)
                rc = list_dir(j, i);
        return rc;
}

/* Empty directory i: its files, and its subdirectories (already emptied:
 * they come later in the walk, and removal goes backwards). */
static void empty_dir(struct job *j, size_t i)
{
        int fd = open_dir(j, i);
        if (fd < 0) {
                if (errno != ESTALE && errno != ENOENT)
                        fail(j, "(directory)", "open to remove", errno);
                return;
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                fail(j, "(directory)", "fdopendir", errno);
                return;
        }
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                char *s = strdup(e->d_name);
                if (!s || push((void ***)&names, &n, &cap, sizeof s, &s) < 0) {
                        free(s);
                        fail(j, e->d_name, "remove", ENOMEM);
                        break;
                }
        }
        /* Unlinking while reading the directory could skip entries. */
        for (size_t k = 0; k < n; k++) {
                if (unlinkat(dirfd(d), names[k], 0) < 0 &&
                    (errno != EISDIR || unlinkat(dirfd(d), names[k], AT_REMOVEDIR) < 0) &&
                    errno != ENOENT)
                        fail(j, names[k], "remove", errno);
                free(names[k]);
        }
        free(names);
        closedir(d);
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

/* Overwrite [off, off+len) of f with zeros and read each step back while it
 * is still in the CPU cache: pwrite and pread of 128 KiB steps from buffers
 * that stay in the cache. A shared mapping (memset through the page cache)
 * was measured 4 to 7 times slower than this on the 6.18 test hosts: every
 * page costs a fault there, where pwrite/pread copy whole folios
 * (scripts/bench-shred, docs/run-core.md). */
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
        /* The buffers only once there is something to overwrite: most of a
         * run's mounts are empty at its end, and 256 KiB zeroed for each
         * would cost more than the rest of their shred. */
        unsigned char *zero = NULL, *back = NULL;
        size_t i;
        while ((i = atomic_fetch_add(&j->next, 1)) < j->n_ranges) {
                const struct range *r = &j->ranges[i];
                const char *p = j->names[r->file];
                if (!zero && !back) {
                        zero = calloc(1, BUF);
                        back = malloc(BUF);
                }
                if (!zero || !back) {
                        fail(j, p, "overwrite buffer", ENOMEM);
                        continue;
                }
                int f = open_by_handle_at(j->dirfd, j->files[r->file], O_RDWR | O_CLOEXEC);
                if (f < 0) {
                        fail(j, p, "open for overwrite", errno);
                        continue;
                }
                if (scrub_rw(j, p, f, r->off, r->len, zero, back) == 0)
                        atomic_fetch_add(&j->bytes, (uint64_t)r->len);
                close(f);
        }
        free(zero);
        free(back);
        return NULL;
}

static void job_free(struct job *j)
{
        for (size_t i = 0; i < j->n_files; i++) {
                free(j->files[i]);
                free(j->names[i]);
        }
        free(j->names);
        for (size_t i = 0; i < j->n_dirs; i++)
                free(j->dirs[i]);
        free(j->files);
        free(j->dirs);
        free(j->ranges);
        pthread_mutex_destroy(&j->lock);
}

/* A tmpfs (the mount's root, or a directory in it) that holds no inode but
 * its root and no page: nothing to overwrite or remove. Every file, directory,
 * link or socket takes an inode of the file system's count, every byte of
 * data a page; the kernel's own counters say so, with no listing (two opens
 * and two 32 KiB directory buffers per mount, most of a run's five mounts
 * being empty at its end). An unlimited inode count (nr_inodes=0) tells
 * nothing: the walk then decides. */
static bool empty_tmpfs(int dirfd)
{
        struct statfs sf;
        return fstatfs(dirfd, &sf) == 0 && sf.f_type == TMPFS_MAGIC && sf.f_files > 0 &&
               sf.f_files - sf.f_ffree <= 1 && sf.f_blocks == sf.f_bfree;
}

int aidp_shred_tree(int dirfd, unsigned threads, struct aidp_shred_report *rep)
{
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        memset(rep, 0, sizeof *rep);
        if (empty_tmpfs(dirfd)) {
                rep->verified = true;
                clock_gettime(CLOCK_MONOTONIC, &t1);
                rep->seconds =
                        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
                return 0;
        }
        /* A mount fd (fsmount) is an O_PATH one, which open_by_handle_at
         * does not take: a real descriptor of the same root directory. */
        struct job j = {.dirfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
        pthread_mutex_init(&j.lock, NULL);
        atomic_init(&j.next, 0);
        atomic_init(&j.bytes, 0);
        atomic_init(&j.failures, 0);
        int rc = j.dirfd < 0 ? -errno : collect(&j);
        if (rc == 0) {
                if (threads == 0 && j.n_ranges > 1) {
                        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
                        threads = ncpu > 0 ? (unsigned)ncpu : 1;
                }
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
        /* Remove what was scrubbed, deepest directories first (the walk
         * listed parents first), the root's entries last. */
        for (size_t i = j.n_dirs; i-- > 0;)
                empty_dir(&j, i);
        rep->files = j.entries;
        rep->bytes = atomic_load(&j.bytes);
        rep->failures = atomic_load(&j.failures);
        rep->verified = rc == 0 && rep->failures == 0;
        snprintf(rep->first_failure, sizeof rep->first_failure, "%s", j.first_failure);
        job_free(&j);
        if (j.dirfd >= 0)
                close(j.dirfd);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        rep->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        return rc;
}
