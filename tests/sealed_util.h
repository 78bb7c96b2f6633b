#pragma once
/* Helpers shared by the sealed-dataset tests (unit and priv): build trees,
 * seal them with the API, compare trees, mutate files. Header-only, static. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/sealed/codec/sealed_crypto.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/sealed.h"
#include "tests/tpath.h"

static const uint8_t TEST_KEK[32] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                     0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
                                     0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
                                     0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

__attribute__((unused)) static char *tmpdir_new(void)
{
        char *t = strdup("/tmp/aidp-sealed-test.XXXXXX");
        cr_assert(mkdtemp(t), "mkdtemp: %s", strerror(errno));
        return t;
}

/* A run's places in a new test directory (returned, 0755): KEYDIR = T/keys
 * holding the key run-key, RUNDIR = T/run, LOGP = T/lineage.jsonl and its
 * key KEYP = T/lineage.key (AIDP_LINEAGE_KEY). Each buffer holds PATH_MAX. */
#define RUN_PATH_MAX 4096
__attribute__((unused)) static char *run_dirs_new(char *keydir, char *rundir, char *logp,
                                                  char *keyp)
{
        char *t = tmpdir_new();
        chmod(t, 0755);
        const char *const name[] = {"keys", "run", "lineage.jsonl", "lineage.key"};
        char *const buf[] = {keydir, rundir, logp, keyp};
        for (size_t i = 0; i < 4; i++)
                cr_assert_lt(snprintf(buf[i], RUN_PATH_MAX, "%s/%s", t, name[i]), RUN_PATH_MAX);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "run-key", &err), 0, "%s", err.msg);
        return t;
}

__attribute__((unused)) static void tmpdir_rm(char *t)
{
        if (!t)
                return;
        /* chmod first: read-only directories would stop rm. */
        char cmd[4200];
        TEST_SNPRINTF(cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", t, t);
        if (system(cmd) != 0)
                fprintf(stderr, "warning: could not remove %s\n", t);
        free(t);
}

__attribute__((unused)) static void write_file(const char *path, uint64_t size, mode_t mode,
                                               unsigned seed)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
        uint8_t buf[65536];
        uint32_t x = seed * 2654435761u + 1;
        for (uint64_t off = 0; off < size;) {
                size_t n = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
                for (size_t i = 0; i < n; i++) {
                        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                        buf[i] = (uint8_t)x;
                }
                cr_assert_eq(write(fd, buf, n), (ssize_t)n);
                off += n;
        }
        cr_assert_eq(fchmod(fd, mode), 0);
        close(fd);
}

__attribute__((unused)) static void mkdir_p(const char *path, mode_t mode)
{
        cr_assert(mkdir(path, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
        chmod(path, mode);
}

/* The view tests' teardown: their file views, schema, directory and keys. */
__attribute__((unused)) static void views_teardown(struct aidp_file_view *fv, struct aidp_schema *s,
                                                   char *t, struct aidp_keys *k)
{
        for (size_t i = 0; i < s->n_files; i++)
                aidp_file_view_free(&fv[i]);
        aidp_schema_free(s);
        tmpdir_rm(t);
        aidp_keys_free(k);
}

__attribute__((unused)) static void keys_static(struct aidp_keys *k, const uint8_t kek[32])
{
        aidp_error err = {0};
        aidp_keys_init(k);
        cr_assert_eq(aidp_keys_set_static(k, kek, &err), 0, "%s", err.msg);
}

__attribute__((unused)) static void meta_default(struct aidp_sealed_meta *m, const char *name)
{
        memset(m, 0, sizeof *m);
        snprintf(m->name, sizeof m->name, "%s", name);
        strcpy(m->version, "1");
        strcpy(m->owner, "alice");
        strcpy(m->key_id, "test-kek");
        m->classification = AIDP_CLASS_CONFIDENTIAL;
        m->created_at = 1700000000;
}

/* Seal src (file or directory) into out_path. Returns the API's result. */
__attribute__((unused)) static int seal_path(const char *src, const char *out_path,
                                             const struct aidp_seal_params *p,
                                             const struct aidp_keys *k,
                                             struct aidp_seal_result *res, aidp_error *err)
{
        int sfd = open(src, O_RDONLY | O_CLOEXEC);
        cr_assert(sfd >= 0, "open %s: %s", src, strerror(errno));
        char *o1 = strdup(out_path), *o2 = strdup(out_path);
        char *slash = strrchr(o1, '/');
        *slash = '\0';
        int odfd = open(o1, O_RDONLY | O_DIRECTORY);
        cr_assert(odfd >= 0);
        const char *sbase = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
        int r = aidp_sealed_seal(sfd, sbase, p, k, odfd, strrchr(o2, '/') + 1, res, err);
        close(sfd);
        close(odfd);
        free(o1);
        free(o2);
        return r;
}

/* Seal src into out under key_id of the key directory keydir, with
 * meta_default's metadata named name and classification c, plus a residency
 * and a regulation tag when not NULL: the root tests' usual dataset. */
__attribute__((unused)) static void seal_tagged(const char *src, const char *out,
                                                const char *keydir, const char *key_id,
                                                const char *name, enum aidp_classification c,
                                                const char *res, const char *reg)
{
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, name);
        snprintf(p.meta.key_id, sizeof p.meta.key_id, "%s", key_id);
        aidp_error err = {0};
        if (c != AIDP_CLASS_MAX)
                p.meta.classification = c;
        if (res)
                cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, res, &err), 0);
        if (reg)
                cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, reg, &err), 0);
        cr_assert_eq(seal_path(src, out, &p, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
}

/* The same with meta_default's classification and no tags. */
__attribute__((unused)) static void seal_with_key_dir(const char *src, const char *out,
                                                      const char *keydir, const char *key_id,
                                                      const char *name)
{
        seal_tagged(src, out, keydir, key_id, name, AIDP_CLASS_MAX, NULL, NULL);
}

/* Open + decrypt into dir (created). dir NULL: verify only. */
__attribute__((unused)) static int unseal_path(const char *sealed, const char *dir,
                                               const struct aidp_keys *k, unsigned threads,
                                               struct aidp_sealed_result *res, aidp_error *err)
{
        struct aidp_sealed *s = NULL;
        int r = aidp_sealed_open(sealed, k, &s, err);
        if (r < 0)
                return r;
        int dfd = -1;
        if (dir) {
                mkdir(dir, 0700);
                dfd = open(dir, O_RDONLY | O_DIRECTORY);
                cr_assert(dfd >= 0);
        }
        struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
        o.threads = threads;
        r = aidp_sealed_decrypt(s, dfd, &o, res, err);
        if (dfd >= 0)
                close(dfd);
        aidp_sealed_close(s);
        return r;
}

/* Recursive comparison of names, types, modes, sizes and contents. */
__attribute__((unused)) static void assert_same_tree(const char *a, const char *b)
{
        struct stat sa, sb;
        cr_assert_eq(lstat(a, &sa), 0, "lstat %s", a);
        cr_assert_eq(lstat(b, &sb), 0, "lstat %s", b);
        cr_assert_eq(sa.st_mode & S_IFMT, sb.st_mode & S_IFMT, "type of %s", b);
        if (S_ISREG(sa.st_mode)) {
                cr_assert_eq(sa.st_mode & 07777, sb.st_mode & 07777, "mode of %s: %o vs %o", b,
                             sa.st_mode & 07777, sb.st_mode & 07777);
                cr_assert_eq(sa.st_size, sb.st_size, "size of %s", b);
                FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
                cr_assert(fa && fb);
                char ba[65536], bb[65536];
                size_t na, nb;
                do {
                        na = fread(ba, 1, sizeof ba, fa);
                        nb = fread(bb, 1, sizeof bb, fb);
                        cr_assert_eq(na, nb);
                        cr_assert(memcmp(ba, bb, na) == 0, "content of %s differs", b);
                } while (na > 0);
                fclose(fa);
                fclose(fb);
                return;
        }
        DIR *d = opendir(a);
        cr_assert(d);
        struct dirent *e;
        unsigned na = 0;
        while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                char pa[4096], pb[4096];
                TEST_SNPRINTF(pa, "%s/%s", a, e->d_name);
                TEST_SNPRINTF(pb, "%s/%s", b, e->d_name);
                assert_same_tree(pa, pb);
                struct stat x, y;
                lstat(pa, &x);
                lstat(pb, &y);
                cr_assert_eq(x.st_mode & 07777, y.st_mode & 07777, "mode of %s", pb);
                na++;
        }
        closedir(d);
        d = opendir(b);
        unsigned nb = 0;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        nb++;
        closedir(d);
        cr_assert_eq(na, nb, "%s and %s differ in entry count", a, b);
}

__attribute__((unused)) static unsigned count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        unsigned n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

/* Whole file (also /proc files, whose size is 0), NUL-terminated. */
__attribute__((unused)) static uint8_t *read_all(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        cr_assert(f, "fopen %s", path);
        size_t cap = 65536, n = 0;
        uint8_t *b = malloc(cap + 1);
        for (;;) {
                size_t r = fread(b + n, 1, cap - n, f);
                n += r;
                if (n < cap)
                        break;
                cap *= 2;
                b = realloc(b, cap + 1);
        }
        fclose(f);
        b[n] = '\0';
        *len = n;
        return b;
}

__attribute__((unused)) static void write_all(const char *path, const uint8_t *b, size_t len)
{
        FILE *f = fopen(path, "wb");
        cr_assert(f);
        cr_assert_eq(fwrite(b, 1, len, f), len);
        fclose(f);
}

/* A copy of a sealed file (kek: its file-provider KEK) whose header carries a
 * wrong content digest but is otherwise valid: header tag and every segment
 * re-encrypted under the real data key, so only the digest check can see it.
 * What a faulty sealer holding the data key could write. malloc'd. */
__attribute__((unused)) static uint8_t *forge_content_digest(const uint8_t *orig, size_t len,
                                                             const uint8_t kek[32])
{
        aidp_error err = {0};
        struct aidp_sealed_header H;
        cr_assert_eq(aidp_sealed_header_decode(orig, len, &H, &err), 0, "%s", err.msg);
        uint8_t dk[AIDP_SEALED_WRAPPED_MAX];
        cr_assert_eq(aidp_sealed_kwp_unwrap_buf(kek, H.wrapped_key, H.wrapped_key_len, dk, &err), 0,
                     "%s", err.msg);
        struct aidp_sealed_header h2 = H;
        h2.content_digest[5] ^= 0x20;
        uint8_t hb[AIDP_SEALED_PREFIX_LEN + AIDP_SEALED_BODY_MAX];
        int hl = aidp_sealed_header_encode(&h2, hb, sizeof hb, &err);
        cr_assert_eq((size_t)hl, H.header_len, "%s", err.msg);
        uint8_t *b = malloc(len);
        cr_assert(b);
        memcpy(b, orig, len);
        memcpy(b, hb, (size_t)hl);
        cr_assert_eq(aidp_sealed_header_tag(dk, hb, (size_t)hl, b + hl, &err), 0);
        EVP_CIPHER_CTX *dec = NULL, *enc = NULL;
        cr_assert_eq(aidp_sealed_seg_ctx(dk, false, &dec, &err), 0);
        cr_assert_eq(aidp_sealed_seg_ctx(dk, true, &enc, &err), 0);
        uint64_t S = H.segment_size;
        for (uint64_t i = 0; i < H.n_segments; i++) {
                uint8_t *seg = b + H.payload_offset + i * (S + 16);
                size_t n = i + 1 == H.n_segments ? (size_t)(H.payload_len - i * S) : (size_t)S;
                bool fin = i + 1 == H.n_segments;
                cr_assert_eq(aidp_sealed_seg_decrypt(dec, i, fin, H.header_digest, seg, n, seg + n),
                             0);
                cr_assert_eq(
                        aidp_sealed_seg_encrypt(enc, i, fin, h2.header_digest, seg, n, seg + n), 0);
        }
        EVP_CIPHER_CTX_free(dec);
        EVP_CIPHER_CTX_free(enc);
        OPENSSL_cleanse(dk, sizeof dk);
        return b;
}
