/* Helper for scripts/bench-inject: time one injection into a fresh detached
 * tmpfs (fsopen/fsmount, never attached to a path), either by aidp's
 * decryptor or by a plain copy of the plaintext tree. Prints wall and CPU
 * seconds of the injection alone. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_charge.h"
#include "bench_clock.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/sealed.h"
#include "supervisor/sandbox/tmpfs.h"

static int die(const char *what, const aidp_error *e)
{
        fprintf(stderr, "bench_inject: %s: %s\n", what, e ? e->msg : strerror(errno));
        return 1;
}

/* What cp does: copy_file_range per file (in-kernel), read/write fallback. */
static int copy_tree(int src, int dst)
{
        DIR *d = fdopendir(dup(src));
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                struct stat st;
                fstatat(src, e->d_name, &st, AT_SYMLINK_NOFOLLOW);
                if (S_ISDIR(st.st_mode)) {
                        mkdirat(dst, e->d_name, st.st_mode & 07777);
                        int s2 = openat(src, e->d_name, O_RDONLY | O_DIRECTORY);
                        int d2 = openat(dst, e->d_name, O_RDONLY | O_DIRECTORY);
                        if (copy_tree(s2, d2) < 0)
                                return -1;
                        close(s2);
                        close(d2);
                        continue;
                }
                int in = openat(src, e->d_name, O_RDONLY);
                int out = openat(dst, e->d_name, O_WRONLY | O_CREAT | O_EXCL, st.st_mode & 07777);
                if (in < 0 || out < 0)
                        return -1;
                off_t left = st.st_size;
                while (left > 0) {
                        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
                        if (n <= 0) {
                                static char buf[1 << 20];
                                n = read(in, buf, sizeof buf);
                                if (n <= 0 || write(out, buf, (size_t)n) != n)
                                        return -1;
                        }
                        left -= n;
                }
                close(in);
                close(out);
        }
        closedir(d);
        return 0;
}

int main(int argc, char **argv)
{
        aidp_error err = {0};
        struct aidp_tmpfs t;
        if (argc == 5 && !strcmp(argv[1], "decrypt")) {
                struct aidp_keys k;
                aidp_keys_init(&k);
                snprintf(k.dir, sizeof k.dir, "%s", argv[3]);
                struct aidp_sealed *s = NULL;
                if (aidp_sealed_open(argv[2], &k, &s, &err) < 0)
                        return die("open", &err);
                uint64_t need = 0;
                if (aidp_sealed_required_bytes(s, &need, &err) < 0)
                        return die("size", &err);
                if (aidp_tmpfs_create("data", need + (need >> 6) + (1 << 20), 0755, 0, 0, &t,
                                      &err) < 0)
                        return die("tmpfs", &err);
                struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
                o.threads = (unsigned)atoi(argv[4]);
                /* as a run does: decrypted from inside the run's memory cgroup */
                struct bench_charge ch;
                if (bench_charge_begin(&ch, "inject", 2 * need + (256ULL << 20)) < 0)
                        return 1;
                double c0 = bench_cpu(), t0 = bench_now();
                if (aidp_sealed_decrypt(s, t.fd, &o, NULL, &err) < 0)
                        return die("decrypt", &err);
                double t1 = bench_now(), c1 = bench_cpu();
                bench_charge_leave(&ch);
                printf("%.6f %.6f\n", t1 - t0, c1 - c0);
                aidp_sealed_close(s);
                aidp_keys_free(&k);
                aidp_tmpfs_release(&t); /* the pages go before their cgroup */
                bench_charge_destroy(&ch);
                return 0;
        } else if (argc == 4 && !strcmp(argv[1], "copy")) {
                int src = open(argv[2], O_RDONLY | O_DIRECTORY);
                if (src < 0)
                        return die(argv[2], NULL);
                uint64_t size = strtoull(argv[3], NULL, 10);
                if (aidp_tmpfs_create("data", size, 0755, 0, 0, &t, &err) < 0)
                        return die("tmpfs", &err);
                int dst = openat(t.fd, ".", O_RDONLY | O_DIRECTORY);
                double c0 = bench_cpu(), t0 = bench_now();
                if (copy_tree(src, dst) < 0)
                        return die("copy", NULL);
                double t1 = bench_now(), c1 = bench_cpu();
                printf("%.6f %.6f\n", t1 - t0, c1 - c0);
                close(dst);
                close(src);
        } else {
                fprintf(stderr, "usage: bench_inject decrypt FILE.sealed KEYDIR THREADS\n"
                                "       bench_inject copy SRCDIR TMPFS_BYTES\n");
                return 2;
        }
        aidp_tmpfs_release(&t);
        return 0;
}
