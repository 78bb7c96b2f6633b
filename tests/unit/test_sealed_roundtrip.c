/* Round trips through aidp_sealed_seal / aidp_sealed_open / aidp_sealed_decrypt
 * with an in-process KEK. */
#include <signal.h>
#include <sys/wait.h>

#include "tests/sealed_util.h"

static char *T;
static struct aidp_keys K;

static void setup(void)
{
        T = tmpdir_new();
        keys_static(&K, TEST_KEK);
}

static void teardown(void)
{
        tmpdir_rm(T);
        aidp_keys_free(&K);
}

TestSuite(sealed_roundtrip, .init = setup, .fini = teardown, .timeout = 120);

static void path(char *out, const char *rel)
{
        snprintf(out, 4096, "%s/%s", T, rel);
}

/* Seal src, unseal into out, compare; returns the header. */
static struct aidp_sealed_header roundtrip(const char *src_rel, uint32_t seg, unsigned threads,
                                           struct aidp_sealed_result *res)
{
        char src[4096], sealed[4096], out[4096];
        path(src, src_rel);
        path(sealed, "x.sealed");
        path(out, "out");
        unlink(sealed);
        struct aidp_seal_params p = {.segment_size = seg, .threads = threads};
        meta_default(&p.meta, "ds");
        struct aidp_seal_result sr;
        aidp_error err = {0};
        cr_assert_eq(seal_path(src, sealed, &p, &K, &sr, &err), 0, "seal: %s", err.msg);
        cr_assert_eq(unseal_path(sealed, out, &K, threads, res, &err), 0, "unseal: %s", err.msg);
        struct stat st;
        cr_assert_eq(stat(src, &st), 0);
        if (S_ISDIR(st.st_mode)) {
                assert_same_tree(src, out);
        } else {
                char f[4096];
                TEST_SNPRINTF(f, "%s/%s", out, strrchr(src, '/') + 1);
                assert_same_tree(src, f);
                cr_assert_eq(count_entries(out), 1);
        }
        return sr.header;
}

Test(sealed_roundtrip, empty_file)
{
        char f[4096];
        path(f, "empty");
        write_file(f, 0, 0640, 1);
        struct aidp_sealed_result r;
        struct aidp_sealed_header h = roundtrip("empty", 0, 0, &r);
        cr_assert_eq(h.n_segments, 1);
        cr_assert_eq(r.n_files, 1);
        cr_assert_eq(r.bytes, 0);
        cr_assert_eq(r.root, AIDP_ROOT_FILE);
}

Test(sealed_roundtrip, empty_directory)
{
        char d[4096];
        path(d, "emptydir");
        mkdir_p(d, 0750);
        struct aidp_sealed_result r;
        roundtrip("emptydir", 0, 0, &r);
        cr_assert_eq(r.n_files + r.n_dirs, 0);
        cr_assert_eq(r.root, AIDP_ROOT_DIR);
        cr_assert_eq(r.root_mode, 0750);
}

Test(sealed_roundtrip, large_file_many_segments_threads)
{
        char f[4096];
        path(f, "big.bin");
        write_file(f, 5 * 1048576 + 12345, 0644, 2);
        for (unsigned threads = 1; threads <= 4; threads += 3) {
                char out[4096];
                path(out, "out");
                tmpdir_rm(strdup(out));
                struct aidp_sealed_result r;
                struct aidp_sealed_header h = roundtrip("big.bin", 65536, threads, &r);
                cr_assert_gt(h.n_segments, 80);
                cr_assert_eq(r.bytes, 5 * 1048576 + 12345);
        }
}

/* Payloads that end exactly on, one before, and one after a segment boundary:
 * the final segment is full, short, or a single byte. */
Test(sealed_roundtrip, exact_segment_multiples)
{
        const uint32_t S = 4096;
        /* Single file named "f": manifest = 20 + 14 + 1 bytes. */
        const uint64_t mlen = AIDP_TREE_PREFIX_LEN + AIDP_TREE_ENTRY_FIXED + 1;
        const uint64_t totals[] = {S, 2 * S, 7 * S, S - 1, S + 1, 3 * S - 1, 3 * S + 1};
        for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++) {
                char f[4096], out[4096];
                path(f, "f");
                path(out, "out");
                tmpdir_rm(strdup(out));
                write_file(f, totals[i] - mlen, 0600, (unsigned)i);
                struct aidp_sealed_result r;
                struct aidp_sealed_header h = roundtrip("f", S, 2, &r);
                cr_assert_eq(h.payload_len, totals[i]);
                cr_assert_eq(h.n_segments, (totals[i] + S - 1) / S, "payload %llu",
                             (unsigned long long)totals[i]);
                struct stat st;
                char sealed[4096];
                path(sealed, "x.sealed");
                stat(sealed, &st);
                cr_assert_eq((uint64_t)st.st_size,
                             h.payload_offset + h.payload_len + 16 * h.n_segments);
        }
}

Test(sealed_roundtrip, tree_with_modes)
{
        char p[4096];
        path(p, "tree");
        mkdir_p(p, 0755);
        const struct {
                const char *rel;
                int dir;
                mode_t mode;
                uint64_t size;
        } spec[] = {
                {"tree/a", 1, 0750, 0},
                {"tree/a/b", 1, 0700, 0},
                {"tree/a/b/deep.txt", 0, 0600, 100},
                {"tree/a-c", 0, 0644, 7000}, /* sorts between "a" and "a/..." */
                {"tree/a.d", 1, 0555, 0},    /* read-only directory with content */
                {"tree/empty-dir", 1, 0711, 0},
                {"tree/exec.sh", 0, 0755, 30},
                {"tree/sticky", 1, 01777, 0},
                {"tree/sticky/s", 0, 0444, 1},
                {"tree/zero", 0, 0640, 0},
                {"tree/big", 0, 0644, 300000},
                {"tree/sp ace ü", 0, 0600, 10},
        };
        for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
                path(p, spec[i].rel);
                if (spec[i].dir)
                        mkdir_p(p, 0700);
                else
                        write_file(p, spec[i].size, spec[i].mode, (unsigned)i);
        }
        path(p, "tree/a.d/inner");
        write_file(p, 5000, 0644, 99);
        for (size_t i = sizeof spec / sizeof spec[0]; i-- > 0;)
                if (spec[i].dir) {
                        path(p, spec[i].rel);
                        chmod(p, spec[i].mode);
                }
        struct aidp_sealed_result r;
        roundtrip("tree", 4096, 3, &r);
        cr_assert_eq(r.n_dirs, 5);
        cr_assert_eq(r.n_files, 8);
}

Test(sealed_roundtrip, setid_bits_are_not_kept)
{
        char p[4096], out[4096];
        path(p, "s");
        mkdir_p(p, 0755);
        path(p, "s/suid");
        write_file(p, 10, 04755, 1);
        chmod(p, 06755);
        char sealed[4096];
        path(sealed, "x.sealed");
        struct aidp_seal_params sp = {0};
        meta_default(&sp.meta, "s");
        aidp_error err = {0};
        path(p, "s");
        cr_assert_eq(seal_path(p, sealed, &sp, &K, NULL, &err), 0, "%s", err.msg);
        path(out, "out");
        cr_assert_eq(unseal_path(sealed, out, &K, 1, NULL, &err), 0, "%s", err.msg);
        struct stat st;
        path(p, "out/suid");
        cr_assert_eq(stat(p, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0755);
}

Test(sealed_roundtrip, verify_only_writes_nothing)
{
        char f[4096], sealed[4096];
        path(f, "v");
        write_file(f, 100000, 0644, 3);
        path(sealed, "v.sealed");
        struct aidp_seal_params sp = {.segment_size = 4096};
        meta_default(&sp.meta, "v");
        aidp_error err = {0};
        cr_assert_eq(seal_path(f, sealed, &sp, &K, NULL, &err), 0, "%s", err.msg);
        struct aidp_sealed_result r;
        cr_assert_eq(unseal_path(sealed, NULL, &K, 2, &r, &err), 0, "%s", err.msg);
        cr_assert_eq(r.bytes, 100000);
        cr_assert_eq(count_entries(T), 2);
}

static uint64_t last_done, last_total, calls;
static void progress(void *o, uint64_t done, uint64_t total)
{
        (void)o;
        cr_assert_geq(done, last_done);
        last_done = done, last_total = total;
        calls++;
}

Test(sealed_roundtrip, progress_reaches_total)
{
        char f[4096], sealed[4096], out[4096];
        path(f, "p");
        write_file(f, 2000000, 0644, 4);
        path(sealed, "p.sealed");
        struct aidp_seal_params sp = {.segment_size = 65536};
        meta_default(&sp.meta, "p");
        aidp_error err = {0};
        cr_assert_eq(seal_path(f, sealed, &sp, &K, NULL, &err), 0, "%s", err.msg);
        struct aidp_sealed *s = NULL;
        cr_assert_eq(aidp_sealed_open(sealed, &K, &s, &err), 0, "%s", err.msg);
        path(out, "out");
        mkdir(out, 0700);
        int dfd = open(out, O_RDONLY | O_DIRECTORY);
        struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
        o.progress = progress;
        cr_assert_eq(aidp_sealed_decrypt(s, dfd, &o, NULL, &err), 0, "%s", err.msg);
        cr_assert_geq(calls, 1);
        cr_assert_eq(last_done, aidp_sealed_header_of(s)->payload_len);
        cr_assert_eq(last_total, last_done);
        close(dfd);
        aidp_sealed_close(s);
}

Test(sealed_roundtrip, special_files_refused_or_skipped)
{
        char d[4096], l[4096], sealed[4096];
        path(d, "sp");
        mkdir_p(d, 0755);
        path(l, "sp/link");
        cr_assert_eq(symlink("/etc/passwd", l), 0);
        path(l, "sp/real");
        write_file(l, 5, 0644, 1);
        path(sealed, "sp.sealed");
        struct aidp_seal_params sp = {0};
        meta_default(&sp.meta, "sp");
        aidp_error err = {0};
        cr_assert_lt(seal_path(d, sealed, &sp, &K, NULL, &err), 0);
        cr_assert(strstr(err.msg, "link"), "%s", err.msg);
        cr_assert_eq(access(sealed, F_OK), -1, "no output left on failure");
        sp.skip_special = true;
        struct aidp_seal_result res;
        cr_assert_eq(seal_path(d, sealed, &sp, &K, &res, &err), 0, "%s", err.msg);
        cr_assert_eq(res.n_skipped, 1);
        cr_assert_eq(res.n_files, 1);
}

Test(sealed_roundtrip, seal_never_replaces_output)
{
        char f[4096], sealed[4096];
        path(f, "f");
        write_file(f, 5, 0644, 1);
        path(sealed, "f.sealed");
        write_file(sealed, 3, 0644, 2);
        struct aidp_seal_params sp = {0};
        meta_default(&sp.meta, "f");
        aidp_error err = {0};
        cr_assert_lt(seal_path(f, sealed, &sp, &K, NULL, &err), 0);
        cr_assert_eq(err.errnum, EEXIST, "%s", err.msg);
        struct stat st;
        stat(sealed, &st);
        cr_assert_eq(st.st_size, 3);
        cr_assert_eq(count_entries(T), 2, "temporary output removed");
}

Test(sealed_roundtrip, unseal_never_overwrites)
{
        char f[4096], sealed[4096], out[4096];
        path(f, "f");
        write_file(f, 5000, 0644, 1);
        path(sealed, "f.sealed");
        struct aidp_seal_params sp = {0};
        meta_default(&sp.meta, "f");
        aidp_error err = {0};
        cr_assert_eq(seal_path(f, sealed, &sp, &K, NULL, &err), 0, "%s", err.msg);
        path(out, "out");
        mkdir_p(out, 0700);
        path(f, "out/f");
        write_file(f, 7, 0600, 5);
        cr_assert_lt(unseal_path(sealed, out, &K, 1, NULL, &err), 0);
        cr_assert_eq(err.errnum, EEXIST, "%s", err.msg);
        struct stat st;
        stat(f, &st);
        cr_assert_eq(st.st_size, 7, "existing file untouched");
}

Test(sealed_roundtrip, header_carries_meta)
{
        char f[4096], sealed[4096];
        path(f, "m");
        write_file(f, 10, 0644, 1);
        path(sealed, "m.sealed");
        struct aidp_seal_params sp = {0};
        meta_default(&sp.meta, "imagenet");
        strcpy(sp.meta.version, "2024-06");
        sp.meta.classification = AIDP_CLASS_REGULATED;
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_meta_add_tag(&sp.meta, AIDP_F_RESIDENCY, "eu", &err), 0);
        cr_assert_eq(aidp_sealed_meta_add_tag(&sp.meta, AIDP_F_RESIDENCY, "de", &err), 0);
        cr_assert_eq(aidp_sealed_meta_add_tag(&sp.meta, AIDP_F_REGULATION, "phi", &err), 0);
        cr_assert_eq(seal_path(f, sealed, &sp, &K, NULL, &err), 0, "%s", err.msg);
        struct aidp_sealed *s = NULL;
        cr_assert_eq(aidp_sealed_open(sealed, &K, &s, &err), 0, "%s", err.msg);
        const struct aidp_sealed_header *h = aidp_sealed_header_of(s);
        cr_assert_str_eq(h->meta.name, "imagenet");
        cr_assert_str_eq(h->meta.version, "2024-06");
        cr_assert_str_eq(h->meta.owner, "alice");
        cr_assert_eq(h->meta.created_at, 1700000000);
        cr_assert_eq(h->meta.classification, AIDP_CLASS_REGULATED);
        cr_assert_eq(h->meta.n_residency, 2);
        cr_assert_str_eq(h->meta.residency[0], "de");
        cr_assert_str_eq(h->meta.residency[1], "eu");
        cr_assert_str_eq(h->meta.regulation[0], "phi");
        cr_assert_eq(h->key_wrap, AIDP_WRAP_AES256_KWP);
        cr_assert_eq(h->wrapped_key_len, 40);
        aidp_sealed_close(s);
}

Test(sealed_roundtrip, max_bytes_refuses_sparse_giants)
{
        char d[4096], f[4096], sealed[4096];
        path(d, "sparse");
        mkdir_p(d, 0755);
        path(f, "sparse/huge");
        int fd = open(f, O_WRONLY | O_CREAT, 0644);
        cr_assert_eq(ftruncate(fd, 50LL << 30), 0);
        close(fd);
        path(sealed, "sparse.sealed");
        struct aidp_seal_params sp = {.max_bytes = 1 << 20};
        meta_default(&sp.meta, "sparse");
        aidp_error err = {0};
        cr_assert_lt(seal_path(d, sealed, &sp, &K, NULL, &err), 0);
        cr_assert_eq(err.errnum, EFBIG, "%s", err.msg);
        cr_assert(strstr(err.msg, "sparse"), "%s", err.msg);
        cr_assert_eq(access(sealed, F_OK), -1);
}

/* A file that grows while it is sealed is refused, naming it; nothing is
 * left. (Its first part alone would look like a complete dataset.) */
Test(sealed_roundtrip, growing_file_is_refused)
{
        char f[4096], sealed[4096];
        path(f, "growing.log");
        write_file(f, 8 << 20, 0644, 5);
        path(sealed, "growing.sealed");
        pid_t w = fork();
        cr_assert_geq(w, 0);
        if (w == 0) {
                int fd = open(f, O_WRONLY | O_APPEND | O_CLOEXEC);
                for (;;) {
                        if (fd < 0 || write(fd, "x", 1) != 1)
                                _exit(1);
                        usleep(100);
                }
        }
        struct stat st0, st;
        cr_assert_eq(stat(f, &st0), 0);
        for (int i = 0; i < 2000; i++) {
                cr_assert_eq(stat(f, &st), 0);
                if (st.st_size > st0.st_size)
                        break;
                usleep(1000);
        }
        struct aidp_seal_params sp = {.segment_size = 65536, .threads = 1};
        meta_default(&sp.meta, "growing");
        aidp_error err = {0};
        int rc = seal_path(f, sealed, &sp, &K, NULL, &err);
        kill(w, SIGKILL);
        waitpid(w, NULL, 0);
        cr_assert_gt(st.st_size, st0.st_size, "the writer never wrote");
        cr_assert_lt(rc, 0, "a growing file was sealed");
        cr_assert_eq(err.status, AIDP_EXIT_DATA);
        cr_assert(strstr(err.msg, "growing.log") && strstr(err.msg, "grew"), "%s", err.msg);
        cr_assert_eq(access(sealed, F_OK), -1, "no output left on failure");
}

/* /proc files report size 0 and have content: refused with the file named,
 * never sealed as empty. A really empty file still seals. */
Test(sealed_roundtrip, proc_file_with_size_zero_is_refused)
{
        char sealed[4096];
        path(sealed, "status.sealed");
        struct stat st;
        cr_assert_eq(stat("/proc/self/status", &st), 0);
        cr_assert_eq(st.st_size, 0, "this kernel reports a size for /proc files");
        struct aidp_seal_params sp = {0};
        meta_default(&sp.meta, "status");
        aidp_error err = {0};
        cr_assert_lt(seal_path("/proc/self/status", sealed, &sp, &K, NULL, &err), 0);
        cr_assert_eq(err.status, AIDP_EXIT_DATA);
        cr_assert(strstr(err.msg, "status") && strstr(err.msg, "size is 0"), "%s", err.msg);
        cr_assert_eq(access(sealed, F_OK), -1, "no output left on failure");
        /* A really empty file in a tree still seals (the same check runs at
         * walk time for every zero-size entry). */
        char d[4096], e[4096];
        path(d, "tree0");
        mkdir_p(d, 0755);
        path(e, "tree0/empty");
        write_file(e, 0, 0644, 1);
        path(sealed, "tree0.sealed");
        cr_assert_eq(seal_path(d, sealed, &sp, &K, NULL, &err), 0, "%s", err.msg);
}
