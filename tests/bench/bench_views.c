/* Helper for scripts/bench-views: generate a CSV dataset (files of 10
 * columns), then time either
 *   - the injection of a sealed copy of it (aidp_sealed_decrypt into a fresh
 *     detached tmpfs, charged to a memory cgroup as in a run), with the
 *     benchmark's view or raw (plain injection: the same code path, no
 *     view), or
 *   - the viewer alone over the plaintext files (read + view + write), or a
 *     plain copy of them, one file per task (for profiling).
 *   bench_views gen DIR FILES MIB_PER_FILE
 *   bench_views inject view|leak|raw FILE.sealed KEYDIR THREADS [VIEW_BLOCK]
 * (leak: the view and, as in a run, every hidden value into the output leak
 * scan's set; the set is built, not sealed or scanned)
 *   bench_views copy|view SRC_DIR OUT_DIR THREADS
 * Each prints "WALL_SECONDS CPU_SECONDS BYTES_IN BYTES_OUT". */
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

#include "bench_charge.h"
#include "bench_clock.h"
#include "common/io.h"
#include "supervisor/sandbox/tmpfs.h"
#include "supervisor/sealed/codec/sealed_format.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/sealed.h"
#include "views/leakscan.h"
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

/* The benchmark's view, resolved against the schema the dataset was sealed
 * with (its 3 labelled columns; the 7 others are raw), as a run does. */
static struct aidp_file_view sealed_fv;
static int sealed_view(const struct aidp_sealed *s, struct aidp_schema *schema,
                       struct aidp_sealed_view *sv)
{
        aidp_error err = {0};
        if (aidp_sealed_header_schema(aidp_sealed_header_of(s), schema, &err) != 1 ||
            schema->n_files != 1)
                return fprintf(stderr, "bench_views: no schema: %s\n", err.msg), -1;
        set_up_view();
        static struct aidp_view_rule rules[3];
        for (int i = 0; i < 3; i++)
                rules[i] = (struct aidp_view_rule){.match = (char *)names[i + 1],
                                                   .x = cviews[i + 1].x};
        struct aidp_view v = {.name = (char *)"bench", .columns = rules, .n_columns = 3};
        const struct aidp_view *vs[] = {&v};
        if (aidp_view_resolve(vs, 1, &schema->files[0], &sealed_fv, &err) < 0)
                return fprintf(stderr, "bench_views: %s\n", err.msg), -1;
        *sv = (struct aidp_sealed_view){
                .dataset = "bench", .schema = schema, .files = &sealed_fv, .keys = &tkeys};
        return 0;
}

static void leak_hidden(void *opaque, const char *column, const char *label, const void *value,
                        size_t len)
{
        (void)aidp_leakset_add(opaque, column, label, value, len);
}

static void leak_hidden_many(void *opaque, const struct aidp_view_hidden *v, size_t n)
{
        (void)aidp_leakset_add_many(opaque, v, n);
}

static int inject(bool view, bool leak, const char *sealed, const char *keydir, int threads,
                  size_t block)
{
        aidp_error err = {0};
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_sealed *s = NULL;
        uint64_t need = 0;
        if (aidp_sealed_open(sealed, &k, &s, &err) < 0 ||
            aidp_sealed_required_bytes(s, &need, &err) < 0)
                return fprintf(stderr, "bench_views: %s\n", err.msg), 1;
        struct aidp_schema schema = {0};
        struct aidp_sealed_view sv;
        if (view && sealed_view(s, &schema, &sv) < 0)
                return 1;
        struct aidp_leakset *ls = NULL;
        if (leak && aidp_leakset_new(0, &ls, &err) < 0)
                return fprintf(stderr, "bench_views: %s\n", err.msg), 1;
        if (leak) {
                sv.hidden = leak_hidden;
                sv.hidden_many = leak_hidden_many;
                sv.hidden_opaque = ls;
        }
        struct aidp_tmpfs t;
        if (aidp_tmpfs_create("data", need + (need >> 6) + (1 << 20), 0755, 0, 0, &t, &err) < 0)
                return fprintf(stderr, "bench_views: tmpfs: %s\n", err.msg), 1;
        struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
        o.threads = (unsigned)threads;
        o.view = view ? &sv : NULL;
        o.view_block = block;
        struct bench_charge ch;
        if (bench_charge_begin(&ch, "views", 2 * need + (256ULL << 20)) < 0)
                return 1;
        struct aidp_sealed_result res = {0};
        double c0 = bench_cpu(), t0 = bench_now();
        int r = aidp_sealed_decrypt(s, t.fd, &o, &res, &err);
        double t1 = bench_now(), c1 = bench_cpu();
        bench_charge_leave(&ch);
        if (r < 0)
                return fprintf(stderr, "bench_views: decrypt: %s\n", err.msg), 1;
        printf("%.6f %.6f %llu %llu\n", t1 - t0, c1 - c0, (unsigned long long)res.bytes,
               (unsigned long long)(view ? res.viewed_bytes : res.bytes));
        aidp_sealed_close(s);
        aidp_keys_free(&k);
        aidp_tmpfs_release(&t); /* the pages go before their cgroup */
        bench_charge_destroy(&ch);
        if (leak)
                fprintf(stderr, "bench_views: %zu values in the leak set\n",
                        aidp_leakset_count(ls));
        aidp_leakset_free(ls);
        if (view) {
                aidp_file_view_free(&sealed_fv);
                aidp_schema_free(&schema);
        }
        return 0;
}

int main(int argc, char **argv)
{
        if ((argc == 6 || argc == 7) && !strcmp(argv[1], "inject") &&
            (!strcmp(argv[2], "view") || !strcmp(argv[2], "leak") || !strcmp(argv[2], "raw")))
                return inject(strcmp(argv[2], "raw") != 0, !strcmp(argv[2], "leak"), argv[3],
                              argv[4], atoi(argv[5]), argc == 7 ? strtoull(argv[6], NULL, 10) : 0);
        if (argc == 5 && !strcmp(argv[1], "gen"))
                return gen(argv[2], atoi(argv[3]), atol(argv[4]));
        if (argc == 5 && (!strcmp(argv[1], "copy") || !strcmp(argv[1], "view")))
                return run(argv[1], argv[2], argv[3], atoi(argv[4]));
        fprintf(stderr, "usage: bench_views gen DIR FILES MIB | inject view|leak|raw FILE.sealed "
                        "KEYDIR THREADS | copy|view SRC OUT THREADS\n");
        return 2;
}
