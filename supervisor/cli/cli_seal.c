/* aidp seal | unseal | inspect | keygen: the sealed-dataset tools. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/hex.h"
#include "supervisor/cli/cli.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/progress.h"
#include "supervisor/sealed/sealed.h"

static int usage_error(const char *cmd, const char *msg)
{
        fprintf(stderr, "aidp %s: error: %s\nRun 'aidp %s --help' for usage.\n", cmd, msg, cmd);
        return AIDP_EXIT_USAGE;
}

static int fail(const char *cmd, const aidp_error *e)
{
        char prog[64];
        snprintf(prog, sizeof prog, "aidp %s", cmd);
        return aidp_cli_fail(prog, e);
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *ret)
{
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || v > max || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static void iso_time(uint64_t t, char *out, size_t cap)
{
        time_t tt = (time_t)t;
        struct tm tm;
        if (gmtime_r(&tt, &tm))
                strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
        else
                snprintf(out, cap, "%llu", (unsigned long long)t);
}

enum { OPT_KEYS_CONFIG = 256, OPT_KEY_DIR, OPT_SEGMENT, OPT_SKIP, OPT_VERIFY, OPT_JSON };

static int add_tags(struct aidp_sealed_meta *m, enum aidp_sealed_field which, const char *arg,
                    aidp_error *err)
{
        _cleanup_free_ char *copy = strdup(arg);
        char *save = NULL;
        if (!copy)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int r = aidp_sealed_meta_add_tag(m, which, t, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const char *default_owner(void)
{
        const char *s = getenv("SUDO_USER");
        if (s && *s)
                return s;
        struct passwd *pw = getpwuid(getuid());
        return pw ? pw->pw_name : "root";
}

static int copy_field(char *dst, size_t cap, const char *src)
{
        if (strlen(src) >= cap)
                return -1;
        memcpy(dst, src, strlen(src) + 1);
        return 0;
}

static int cmd_seal(int argc, char **argv)
{
        static const struct option opts[] = {
                {"output", required_argument, NULL, 'o'},
                {"name", required_argument, NULL, 'n'},
                {"version", required_argument, NULL, 'V'},
                {"owner", required_argument, NULL, 'O'},
                {"classification", required_argument, NULL, 'c'},
                {"residency", required_argument, NULL, 'r'},
                {"regulation", required_argument, NULL, 'g'},
                {"key-id", required_argument, NULL, 'k'},
                {"threads", required_argument, NULL, 'j'},
                {"segment-size", required_argument, NULL, OPT_SEGMENT},
                {"keys-config", required_argument, NULL, OPT_KEYS_CONFIG},
                {"key-dir", required_argument, NULL, OPT_KEY_DIR},
                {"skip-special", no_argument, NULL, OPT_SKIP},
                {"quiet", no_argument, NULL, 'q'},
                {"help", no_argument, NULL, 'h'},
                {0}};
        struct aidp_seal_params p = {0};
        aidp_error err = {0};
        const char *out = NULL, *keys_config = NULL, *key_dir = NULL, *cls = NULL;
        bool quiet = false;
        int c;
        while ((c = getopt_long(argc, argv, "o:n:V:O:c:r:g:k:j:qh", opts, NULL)) != -1) {
                unsigned long long v = 0;
                switch (c) {
                case 'o': out = optarg; break;
                case 'n':
                        if (copy_field(p.meta.name, sizeof p.meta.name, optarg) < 0)
                                return usage_error("seal", "--name too long");
                        break;
                case 'V':
                        if (copy_field(p.meta.version, sizeof p.meta.version, optarg) < 0)
                                return usage_error("seal", "--version too long");
                        break;
                case 'O':
                        if (copy_field(p.meta.owner, sizeof p.meta.owner, optarg) < 0)
                                return usage_error("seal", "--owner too long");
                        break;
                case 'c': cls = optarg; break;
                case 'r':
                case 'g':
                        if (add_tags(&p.meta, c == 'r' ? AIDP_F_RESIDENCY : AIDP_F_REGULATION,
                                     optarg, &err) < 0)
                                return usage_error("seal", err.msg);
                        break;
                case 'k':
                        if (copy_field(p.meta.key_id, sizeof p.meta.key_id, optarg) < 0)
                                return usage_error("seal", "--key-id too long");
                        break;
                case 'j':
                        if (parse_uint(optarg, 64, &v) < 0)
                                return usage_error("seal", "--threads wants a number 0-64");
                        p.threads = (unsigned)v;
                        break;
                case OPT_SEGMENT:
                        if (parse_uint(optarg, AIDP_SEALED_SEGMENT_MAX, &v) < 0)
                                return usage_error("seal",
                                                   "--segment-size wants a number of bytes");
                        p.segment_size = (uint32_t)v;
                        break;
                case OPT_KEYS_CONFIG: keys_config = optarg; break;
                case OPT_KEY_DIR: key_dir = optarg; break;
                case OPT_SKIP: p.skip_special = true; break;
                case 'q': quiet = true; break;
                case 'h':
                        printf("usage: aidp seal SRC -o OUT.sealed --key-id ID --classification "
                               "CLASS [options]\n"
                               "  SRC                  a file or a directory tree\n"
                               "  -c, --classification public|internal|confidential|restricted|"
                               "regulated\n"
                               "  -k, --key-id ID      key-encryption key (file provider: "
                               "KEY_DIR/ID)\n"
                               "  -n, --name NAME      dataset name (default: SRC's base name)\n"
                               "  -V, --version VER    dataset version (default: 1)\n"
                               "  -O, --owner OWNER    owner (default: $SUDO_USER or the user)\n"
                               "  -r, --residency TAGS residency tags, repeatable or a,b\n"
                               "  -g, --regulation TAGS regulation tags (phi, pci, ...)\n"
                               "  -j, --threads N      worker threads (default: CPUs)\n"
                               "      --segment-size B power of two, 4096..67108864 (default "
                               "1048576)\n"
                               "      --skip-special   skip symlinks/devices instead of failing\n"
                               "      --keys-config F  key provider config (default "
                               "/etc/aidp/keys.yaml)\n"
                               "      --key-dir D      file provider key directory\n");
                        return 0;
                default: return usage_error("seal", "unknown option");
                }
        }
        if (optind != argc - 1)
                return usage_error("seal", "want exactly one SRC");
        if (!out)
                return usage_error("seal", "missing -o OUT.sealed");
        if (!cls)
                return usage_error("seal", "missing --classification");
        if (aidp_sealed_class_parse(cls, &p.meta.classification) < 0)
                return usage_error("seal", "--classification must be one of public, internal, "
                                           "confidential, restricted, regulated");
        if (!p.meta.key_id[0])
                return usage_error("seal", "missing --key-id");
        const char *src = argv[optind];
        _cleanup_free_ char *src_copy = strdup(src), *out_copy1 = strdup(out),
                            *out_copy2 = strdup(out);
        if (!src_copy || !out_copy1 || !out_copy2)
                return AIDP_EXIT_INTERNAL;
        char *src_base = basename(src_copy);
        if (!p.meta.name[0] && copy_field(p.meta.name, sizeof p.meta.name, src_base) < 0)
                return usage_error("seal", "SRC name too long for a dataset name; use --name");
        if (!p.meta.version[0])
                strcpy(p.meta.version, "1");
        if (!p.meta.owner[0] && copy_field(p.meta.owner, sizeof p.meta.owner, default_owner()) < 0)
                return usage_error("seal", "owner name too long; use --owner");
        if (aidp_sealed_meta_check(&p.meta, &err) < 0)
                return usage_error("seal", err.msg);

        struct aidp_keys keys;
        aidp_keys_init(&keys);
        if (aidp_keys_setup(keys_config, key_dir, &keys, &err) < 0) {
                aidp_keys_free(&keys);
                return fail("seal", &err);
        }
        _cleanup_close_ int src_fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_close_ int out_dir = open(dirname(out_copy1), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc = 0;
        if (src_fd < 0) {
                aidp_error_errno(&err, AIDP_EXIT_DATA, errno, "%s", src);
                rc = fail("seal", &err);
        } else if (out_dir < 0) {
                aidp_error_errno(&err, AIDP_EXIT_USAGE, errno, "output directory of %s", out);
                rc = fail("seal", &err);
        } else {
                struct aidp_progress_bar b = {.label = "sealing"};
                if (!quiet && isatty(2)) {
                        p.progress = aidp_progress_bar_draw;
                        p.progress_opaque = &b;
                }
                struct aidp_seal_result res;
                if (aidp_sealed_seal(src_fd, src_base, &p, &keys, out_dir, basename(out_copy2),
                                     &res, &err) < 0) {
                        rc = fail("seal", &err);
                } else if (!quiet) {
                        char dg[AIDP_SHA256_REF_LEN + 1];
                        aidp_sha256_ref(res.header.content_digest, dg);
                        printf("sealed %s -> %s: dataset %s version %s, %llu files, %llu dirs, "
                               "%llu payload bytes%s\ncontent-digest: %s\n",
                               src, out, res.header.meta.name, res.header.meta.version,
                               (unsigned long long)res.n_files, (unsigned long long)res.n_dirs,
                               (unsigned long long)res.header.payload_len,
                               res.n_skipped ? " (special files skipped)" : "", dg);
                }
        }
        aidp_keys_free(&keys);
        return rc;
}

static int cmd_unseal(int argc, char **argv)
{
        static const struct option opts[] = {
                {"output", required_argument, NULL, 'o'},
                {"threads", required_argument, NULL, 'j'},
                {"verify-only", no_argument, NULL, OPT_VERIFY},
                {"keys-config", required_argument, NULL, OPT_KEYS_CONFIG},
                {"key-dir", required_argument, NULL, OPT_KEY_DIR},
                {"quiet", no_argument, NULL, 'q'},
                {"help", no_argument, NULL, 'h'},
                {0}};
        struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
        o.verify_digest = true; /* offline tool: the thorough check */
        const char *out = NULL, *keys_config = NULL, *key_dir = NULL;
        bool verify = false, quiet = false;
        aidp_error err = {0};
        int c;
        while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
                unsigned long long v = 0;
                switch (c) {
                case 'o': out = optarg; break;
                case 'j':
                        if (parse_uint(optarg, 64, &v) < 0)
                                return usage_error("unseal", "--threads wants a number 0-64");
                        o.threads = (unsigned)v;
                        break;
                case OPT_VERIFY: verify = true; break;
                case OPT_KEYS_CONFIG: keys_config = optarg; break;
                case OPT_KEY_DIR: key_dir = optarg; break;
                case 'q': quiet = true; break;
                case 'h':
                        printf("usage: aidp unseal FILE.sealed -o DIR [options]\n"
                               "       aidp unseal FILE.sealed --verify-only\n"
                               "  -o, --output DIR     created if missing; the sealed file or "
                               "tree appears in it;\n"
                               "                       existing entries are never overwritten\n"
                               "      --verify-only    authenticate every segment, write "
                               "nothing\n"
                               "  -j, --threads N      worker threads (default: CPUs)\n"
                               "      --keys-config F, --key-dir D   as for aidp seal\n");
                        return 0;
                default: return usage_error("unseal", "unknown option");
                }
        }
        if (optind != argc - 1)
                return usage_error("unseal", "want exactly one FILE.sealed");
        if (!out && !verify)
                return usage_error("unseal", "missing -o DIR (or --verify-only)");
        struct aidp_keys keys;
        aidp_keys_init(&keys);
        _cleanup_(aidp_sealed_closep) struct aidp_sealed *s = NULL;
        int rc = 0;
        bool made_dir = false;
        _cleanup_close_ int dfd = -1;
        if (aidp_keys_setup(keys_config, key_dir, &keys, &err) < 0 ||
            aidp_sealed_open(argv[optind], &keys, &s, &err) < 0) {
                rc = fail("unseal", &err);
                goto out;
        }
        if (!verify) {
                if (mkdir(out, 0700) == 0)
                        made_dir = true;
                else if (errno != EEXIST) {
                        aidp_error_errno(&err, AIDP_EXIT_USAGE, errno, "creating %s", out);
                        rc = fail("unseal", &err);
                        goto out;
                }
                dfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (dfd < 0) {
                        aidp_error_errno(&err, AIDP_EXIT_USAGE, errno, "opening %s", out);
                        rc = fail("unseal", &err);
                        goto out;
                }
        }
        struct aidp_progress_bar b = {.label = verify ? "verifying" : "unsealing"};
        if (!quiet && isatty(2)) {
                o.progress = aidp_progress_bar_draw;
                o.progress_opaque = &b;
        }
        struct aidp_sealed_result res;
        if (aidp_sealed_decrypt(s, dfd, &o, &res, &err) < 0) {
                if (made_dir)
                        rmdir(out);
                rc = fail("unseal", &err);
                goto out;
        }
        if (made_dir && res.root == AIDP_ROOT_DIR)
                fchmod(dfd, res.root_mode);
        if (!quiet)
                printf("%s %s: dataset %s, %llu files, %llu dirs, %llu bytes, every segment "
                       "authenticated, content digest verified\n",
                       verify ? "verified" : "unsealed", argv[optind],
                       aidp_sealed_header_of(s)->meta.name, (unsigned long long)res.n_files,
                       (unsigned long long)res.n_dirs, (unsigned long long)res.bytes);
out:
        aidp_keys_free(&keys);
        return rc;
}

static json_object *tags_json(const char (*tags)[AIDP_SEALED_TAG_MAX + 1], unsigned n)
{
        json_object *a = json_object_new_array();
        for (unsigned i = 0; i < n; i++)
                json_object_array_add(a, json_object_new_string(tags[i]));
        return a;
}

static void tags_text(const char *label, const char (*tags)[AIDP_SEALED_TAG_MAX + 1], unsigned n)
{
        printf("%-16s", label);
        if (n == 0)
                printf("-");
        for (unsigned i = 0; i < n; i++)
                printf("%s%s", i ? ", " : "", tags[i]);
        printf("\n");
}

static const char *wrap_name(enum aidp_key_wrap w)
{
        switch (w) {
        case AIDP_WRAP_AES256_KWP: return "aes-256-kwp";
        case AIDP_WRAP_EXTERNAL: return "external";
        case AIDP_WRAP_NONE:
        case AIDP_WRAP_MAX: break;
        }
        return "?";
}

static int cmd_inspect(int argc, char **argv)
{
        static const struct option opts[] = {
                {"json", no_argument, NULL, OPT_JSON},
                {"keys-config", required_argument, NULL, OPT_KEYS_CONFIG},
                {"key-dir", required_argument, NULL, OPT_KEY_DIR},
                {"help", no_argument, NULL, 'h'},
                {0}};
        const char *keys_config = NULL, *key_dir = NULL;
        bool json = false;
        aidp_error err = {0};
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case OPT_JSON: json = true; break;
                case OPT_KEYS_CONFIG: keys_config = optarg; break;
                case OPT_KEY_DIR: key_dir = optarg; break;
                case 'h':
                        printf("usage: aidp inspect [--json] FILE.sealed\n"
                               "Prints the header after authenticating it with the dataset's "
                               "key;\nthe payload is not decrypted.\n");
                        return 0;
                default: return usage_error("inspect", "unknown option");
                }
        }
        if (optind != argc - 1)
                return usage_error("inspect", "want exactly one FILE.sealed");
        struct aidp_keys keys;
        aidp_keys_init(&keys);
        _cleanup_(aidp_sealed_closep) struct aidp_sealed *s = NULL;
        if (aidp_keys_setup(keys_config, key_dir, &keys, &err) < 0 ||
            aidp_sealed_open(argv[optind], &keys, &s, &err) < 0) {
                aidp_keys_free(&keys);
                return fail("inspect", &err);
        }
        aidp_keys_free(&keys);
        const struct aidp_sealed_header *h = aidp_sealed_header_of(s);
        const struct aidp_sealed_meta *m = &h->meta;
        char when[64], dg[AIDP_SHA256_REF_LEN + 1], hd[AIDP_SHA256_REF_LEN + 1];
        iso_time(m->created_at, when, sizeof when);
        aidp_sha256_ref(h->content_digest, dg);
        aidp_sha256_ref(h->header_digest, hd);
        if (json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(argv[optind]));
                json_object_object_add(o, "format_version", json_object_new_int(h->format_version));
                json_object_object_add(o, "name", json_object_new_string(m->name));
                json_object_object_add(o, "version", json_object_new_string(m->version));
                json_object_object_add(o, "owner", json_object_new_string(m->owner));
                json_object_object_add(o, "created_at", json_object_new_string(when));
                json_object_object_add(o, "created_at_epoch",
                                       json_object_new_int64((int64_t)m->created_at));
                json_object_object_add(
                        o, "classification",
                        json_object_new_string(aidp_sealed_class_name(m->classification)));
                json_object_object_add(o, "residency", tags_json(m->residency, m->n_residency));
                json_object_object_add(o, "regulation", tags_json(m->regulation, m->n_regulation));
                json_object_object_add(o, "key_id", json_object_new_string(m->key_id));
                json_object_object_add(o, "key_wrap",
                                       json_object_new_string(wrap_name(h->key_wrap)));
                json_object_object_add(o, "segment_size", json_object_new_int64(h->segment_size));
                json_object_object_add(o, "segments",
                                       json_object_new_int64((int64_t)h->n_segments));
                json_object_object_add(o, "payload_bytes",
                                       json_object_new_int64((int64_t)h->payload_len));
                json_object_object_add(o, "content_digest", json_object_new_string(dg));
                json_object_object_add(o, "header_digest", json_object_new_string(hd));
                json_object_object_add(o, "authenticated", json_object_new_boolean(1));
                printf("%s\n",
                       json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
                return 0;
        }
        printf("%-16s%s\n", "file:", argv[optind]);
        printf("%-16s%s (authenticated with key %s; payload not decrypted)\n", "header:", "ok",
               m->key_id);
        printf("%-16s%u\n", "format-version:", h->format_version);
        printf("%-16s%s\n", "dataset:", m->name);
        printf("%-16s%s\n", "version:", m->version);
        printf("%-16s%s\n", "owner:", m->owner);
        printf("%-16s%s\n", "created-at:", when);
        printf("%-16s%s\n", "classification:", aidp_sealed_class_name(m->classification));
        tags_text("residency:", m->residency, m->n_residency);
        tags_text("regulation:", m->regulation, m->n_regulation);
        printf("%-16s%s\n", "key-id:", m->key_id);
        printf("%-16s%s\n", "key-wrap:", wrap_name(h->key_wrap));
        printf("%-16s%u bytes x %llu segments\n", "segments:", h->segment_size,
               (unsigned long long)h->n_segments);
        printf("%-16s%llu\n", "payload-bytes:", (unsigned long long)h->payload_len);
        printf("%-16s%s\n", "content-digest:", dg);
        printf("%-16s%s\n", "header-digest:", hd);
        return 0;
}

static int cmd_keygen(int argc, char **argv)
{
        static const struct option opts[] = {
                {"key-dir", required_argument, NULL, OPT_KEY_DIR},
                {"keys-config", required_argument, NULL, OPT_KEYS_CONFIG},
                {"help", no_argument, NULL, 'h'},
                {0}};
        const char *keys_config = NULL, *key_dir = NULL;
        aidp_error err = {0};
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case OPT_KEY_DIR: key_dir = optarg; break;
                case OPT_KEYS_CONFIG: keys_config = optarg; break;
                case 'h':
                        printf("usage: aidp keygen KEY-ID [--key-dir DIR]\n"
                               "Creates DIR/KEY-ID (default /etc/aidp/keys) holding a random "
                               "32-byte key-encryption key,\nmode 0400; never overwrites. Run "
                               "as root: the file provider only accepts root-owned keys.\n");
                        return 0;
                default: return usage_error("keygen", "unknown option");
                }
        }
        if (optind != argc - 1)
                return usage_error("keygen", "want exactly one KEY-ID");
        struct aidp_keys keys;
        aidp_keys_init(&keys);
        int r = aidp_keys_setup(keys_config, key_dir, &keys, &err);
        if (r == 0)
                r = aidp_keys_generate(keys.dir, argv[optind], &err);
        if (r < 0) {
                aidp_keys_free(&keys);
                return fail("keygen", &err);
        }
        printf("created key %s in %s (mode 0400)\n", argv[optind], keys.dir);
        if (geteuid() != 0)
                fprintf(stderr, "aidp keygen: warning: not root: the file provider refuses "
                                "keys not owned by root\n");
        aidp_keys_free(&keys);
        return 0;
}

int aidp_cli_seal(int argc, char **argv)
{
        optind = 1;
        if (!strcmp(argv[0], "seal"))
                return cmd_seal(argc, argv);
        if (!strcmp(argv[0], "unseal"))
                return cmd_unseal(argc, argv);
        if (!strcmp(argv[0], "inspect"))
                return cmd_inspect(argc, argv);
        if (!strcmp(argv[0], "keygen"))
                return cmd_keygen(argc, argv);
        fprintf(stderr, "aidp: error: unknown sealed-data command '%s'\n", argv[0]);
        return AIDP_EXIT_USAGE;
}
