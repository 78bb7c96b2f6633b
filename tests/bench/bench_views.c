/* Helper for scripts/bench-views: generate a CSV dataset (files of 10
 * columns), then time, over the same files and threads, either a plain copy
 * (read + write into a tmpfs directory, as injection writes the plaintext)
 * or the viewer (read + view + write the viewed file), one file per task.
 *   bench_views gen DIR FILES MIB_PER_FILE
 *   bench_views copy|view SRC_DIR OUT_DIR THREADS
 * copy/view print "WALL_SECONDS CPU_SECONDS BYTES_IN BYTES_OUT". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "common/io.h"
#include "views/view.h"

#define BLOCK (1u << 20)

static const char *first[] = {"Alice", "Bob", "Carol", "Dmitri", "Eve", "Fatima", "Günter", "Hiro"};
static const char *last[] = {"Smith", "Jones", "Müller", "Rossi", "Tanaka", "Okafor", "Dubois"};
static const char *cities[] = {"Berlin", "Lyon", "Osaka", "Lagos", "Boston", "Porto"};

static uint32_t x = 12345;
static unsigned rnd(unsigned mod)
{
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        return x % mod;
}

static int gen(const char *dir, int files, long mib)
{
        char *buf = malloc(BLOCK + 4096);
        for (int f = 0; f < files; f++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/part-%02d.csv", dir, f);
                int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0)
                        return perror(path), 1;
                size_t len = (size_t)sprintf(buf, "id,name,email,birth_date,zip,age,diagnosis,"
                                                  "city,amount,note\n");
                long total = 0, want = mib << 20;
                for (long row = 0; total < want; row++) {
                        const char *fn = first[rnd(8)], *ln = last[rnd(7)];
                        unsigned v[14];
                        unsigned mods[14] = {10000, 90, 12, 28,   100000, 100,
                                             100,   10, 6,  5000, 100,    1000};
                        for (int k = 0; k < 12; k++)
                                v[k] = rnd(mods[k]);
                        len += (size_t)sprintf(buf + len,
                                               "%ld,%s %s,%s.%s%u@example.com,%u-%02u-%02u,%05u,%u,"
                                               "J%02u.%u,%s,%u.%02u,\"visit, follow-up %u\"\n",
                                               (long)f * 100000000L + row, fn, ln, fn, ln, v[0],
                                               1930 + v[1], 1 + v[2], 1 + v[3], v[4], v[5], v[6],
                                               v[7], cities[v[8]], v[9], v[10], v[11]);
                        if (len >= BLOCK || total + (long)len >= want) {
                                if (aidp_write_all(fd, buf, len) < 0)
                                        return perror(path), 1;
                                total += (long)len;
                                len = 0;
                        }
                }
                close(fd);
        }
        free(buf);
        return 0;
}

/* The view of the benchmark: name dropped, email tokenized (hmac), birth
 * date generalized to the year; the other 7 columns raw. */
static const char *const names[10] = {"id",  "name",      "email", "birth_date", "zip",
                                      "age", "diagnosis", "city",  "amount",     "note"};
static struct aidp_schema_column scols[10];
static struct aidp_schema_file sfile = {.pattern = (char *)"*.csv", .format = AIDP_VIEW_CSV};
static struct aidp_column_view cviews[10];
static struct aidp_file_view fview = {.file = &sfile, .columns = cviews, .n_columns = 10};
static struct aidp_token_key tkey = {.key_id = "bench"};
static struct aidp_token_keys tkeys = {.keys = &tkey, .n = 1};

static void set_up_view(void)
{
        for (int i = 0; i < 10; i++) {
                scols[i].name = (char *)names[i];
                cviews[i].column = names[i];
                cviews[i].x.kind = AIDP_XF_RAW;
        }
        sfile.columns = scols;
        sfile.n_columns = 10;
        cviews[1].x.kind = AIDP_XF_DROP;
        cviews[2].x = (struct aidp_xform){.kind = AIDP_XF_TOKENIZE,
                                          .mode = AIDP_TOK_HMAC,
                                          .domain = "patient",
                                          .key_id = "bench"};
        cviews[3].x = (struct aidp_xform){.kind = AIDP_XF_GENERALIZE, .gen = AIDP_GEN_DATE_YEAR};
        memset(tkey.key, 0x42, sizeof tkey.key);
}

struct job {
        const char *src, *out;
        bool view;
        char (*files)[256];
        int n_files;
        atomic_int next;
        atomic_long in, outb;
        atomic_int failed;
};

static int write_fd(void *opaque, const void *buf, size_t len, aidp_error *err)
{
        int fd = *(int *)opaque;
        int r = aidp_write_all(fd, buf, len);
        return r < 0 ? aidp_error_set(err, AIDP_EXIT_INTERNAL, -r, "write") : 0;
}

static int one_file(struct job *j, const char *name, char *buf)
{
        char sp[4096], op[4096];
        snprintf(sp, sizeof sp, "%s/%s", j->src, name);
        snprintf(op, sizeof op, "%s/%s", j->out, name);
        int in = open(sp, O_RDONLY | O_CLOEXEC),
            out = open(op, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (in < 0 || out < 0)
                return -1;
        struct aidp_viewer *v = NULL;
        aidp_error err = {0};
        if (j->view && aidp_viewer_new(&fview, &tkeys, name, write_fd, NULL, &out, &v, &err) < 0)
                return fprintf(stderr, "%s\n", err.msg), -1;
        ssize_t n;
        while ((n = read(in, buf, BLOCK)) > 0) {
                atomic_fetch_add(&j->in, n);
                int r = j->view ? aidp_viewer_feed(v, buf, (size_t)n, &err)
                                : aidp_write_all(out, buf, (size_t)n);
                if (r < 0)
                        return fprintf(stderr, "%s: %s\n", name, err.msg), -1;
        }
        if (j->view) {
                if (aidp_viewer_finish(v, &err) < 0)
                        return fprintf(stderr, "%s: %s\n", name, err.msg), -1;
                aidp_viewer_free(v);
        }
        atomic_fetch_add(&j->outb, lseek(out, 0, SEEK_CUR));
        close(in);
        close(out);
        return n < 0 ? -1 : 0;
}

static void *worker(void *arg)
{
        struct job *j = arg;
        char *buf = malloc(BLOCK);
        int i;
        while ((i = atomic_fetch_add(&j->next, 1)) < j->n_files)
                if (one_file(j, j->files[i], buf) < 0)
                        atomic_store(&j->failed, 1);
        free(buf);
        return NULL;
}

static int run(const char *mode, const char *src, const char *out, int threads)
{
        static char files[256][256];
        struct job j = {.src = src, .out = out, .view = !strcmp(mode, "view"), .files = files};
        DIR *d = opendir(src);
        struct dirent *e;
        while (d && (e = readdir(d)) && j.n_files < 256)
                if (e->d_name[0] != '.')
                        snprintf(files[j.n_files++], 256, "%s", e->d_name);
        if (d)
                closedir(d);
        set_up_view();
        pthread_t t[64];
        if (threads < 1 || threads > 64)
                threads = 1;
        double c0 = bench_cpu(), w0 = bench_now();
        for (int i = 0; i < threads; i++)
                pthread_create(&t[i], NULL, worker, &j);
        for (int i = 0; i < threads; i++)
                pthread_join(t[i], NULL);
        double w = bench_now() - w0, c = bench_cpu() - c0;
        if (j.failed)
                return 1;
        printf("%.4f %.4f %ld %ld\n", w, c, (long)j.in, (long)j.outb);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 5 && !strcmp(argv[1], "gen"))
                return gen(argv[2], atoi(argv[3]), atol(argv[4]));
        if (argc == 5 && (!strcmp(argv[1], "copy") || !strcmp(argv[1], "view")))
                return run(argv[1], argv[2], argv[3], atoi(argv[4]));
        fprintf(stderr, "usage: bench_views gen DIR FILES MIB | copy|view SRC OUT THREADS\n");
        return 2;
}
