/* aidp seal | unseal | inspect | keygen: the sealed-dataset tools. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <pwd.h>
#include <stddef.h>
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
#include "supervisor/cli/cli_schema.h"
#include "supervisor/cli/tool_access.h"
#include "supervisor/sealed/keys.h"
#include "supervisor/sealed/progress.h"
#include "supervisor/sealed/sealed.h"

static int usage_error(const char *cmd, const char *msg)
{
        char prog[64];
        snprintf(prog, sizeof prog, "aidp %s", cmd);
        return aidp_cli_usage_error(prog, "%s", msg);
}

static int fail(const char *cmd, const aidp_error *e)
{
        char prog[64];
        snprintf(prog, sizeof prog, "aidp %s", cmd);
        return aidp_cli_fail(prog, e);
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

/* The options of all four commands (each table takes what it needs). */
struct seal_cli {
        const char *out, *name, *version, *owner, *cls, *key_id, *keys_config, *key_dir, *schema;
        struct aidp_cli_list residency, regulation, derived_from;
        uint64_t threads, segment_size;
        bool skip_special, quiet, verify, json;
};

#define SC(f) offsetof(struct seal_cli, f)
#define U     AIDP_TRUST_USER
#define KEYS_OPTS                                                                                  \
        AIDP_CLI_OPT("keys-config", 0, AIDP_CLI_STRING, SC(keys_config), "FILE",                   \
                     "key provider config (default /etc/aidp/keys.yaml)", AIDP_TRUST_ADMIN),       \
                AIDP_CLI_OPT("key-dir", 0, AIDP_CLI_STRING, SC(key_dir), "DIR",                    \
                             "file provider key directory (default /etc/aidp/keys)",               \
                             AIDP_TRUST_ADMIN)
#define THREADS_OPT                                                                                \
        AIDP_CLI_OPT("threads", 'j', AIDP_CLI_UINT, SC(threads), "N",                              \
                     "worker threads (default: CPUs)", U, .max = 64, .expect = "a number 0-64")
#define QUIET_OPT                                                                                  \
        AIDP_CLI_OPT("quiet", 'q', AIDP_CLI_FLAG, SC(quiet), NULL, "print nothing on success", U)

static const struct aidp_cli_opt seal_opts[] = {
        AIDP_CLI_OPT("output", 'o', AIDP_CLI_STRING, SC(out), "OUT.sealed",
                     "the sealed file to write", U),
        AIDP_CLI_OPT("classification", 'c', AIDP_CLI_STRING, SC(cls), "CLASS",
                     "public|internal|confidential|restricted|regulated", U),
        AIDP_CLI_OPT("key-id", 'k', AIDP_CLI_STRING, SC(key_id), "ID",
                     "key-encryption key (file provider: KEY_DIR/ID)", U),
        AIDP_CLI_OPT("name", 'n', AIDP_CLI_STRING, SC(name), "NAME",
                     "dataset name (default: SRC's base name)", U),
        AIDP_CLI_OPT("version", 'V', AIDP_CLI_STRING, SC(version), "VER",
                     "dataset version (default: 1)", U),
        AIDP_CLI_OPT("owner", 'O', AIDP_CLI_STRING, SC(owner), "OWNER",
                     "owner (default: $SUDO_USER or the user)", U),
        AIDP_CLI_OPT("residency", 'r', AIDP_CLI_LIST, SC(residency), "TAGS",
                     "residency tags, repeatable or a,b", U),
        AIDP_CLI_OPT("regulation", 'g', AIDP_CLI_LIST, SC(regulation), "TAGS",
                     "regulation tags (phi, pci, ...)", U),
        THREADS_OPT,
        AIDP_CLI_OPT("segment-size", 0, AIDP_CLI_UINT, SC(segment_size), "BYTES",
                     "power of two, 4096..67108864 (default 1048576)", U,
                     .max = AIDP_SEALED_SEGMENT_MAX, .expect = "a number of bytes"),
        AIDP_CLI_OPT("skip-special", 0, AIDP_CLI_FLAG, SC(skip_special), NULL,
                     "skip symlinks/devices instead of failing", U),
        AIDP_CLI_OPT("schema", 0, AIDP_CLI_STRING, SC(schema), "FILE",
                     "schema.yaml: per file pattern its format and column labels\n"
                     "(sealed into the authenticated header; docs/views.md)",
                     U),
        AIDP_CLI_OPT("derived-from", 0, AIDP_CLI_LIST, SC(derived_from), "SEALED",
                     "SRC was unsealed from SEALED (repeatable): its header is\n"
                     "authenticated as for unseal, its classification and tags are\n"
                     "kept and its produced-by chain goes on (docs/sealed-data.md)",
                     U),
        KEYS_OPTS,
        QUIET_OPT,
        {0},
};

static const struct aidp_cli_spec seal_spec = {
        .prog = "aidp seal",
        .synopsis = "SRC -o OUT.sealed --key-id ID --classification CLASS [OPTIONS]",
        .about = "Seal SRC, a file or a directory tree, into one authenticated, encrypted file.",
        .opts = seal_opts,
        .min_args = 1,
        .max_args = 1,
        .args = "SRC",
};

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

/* The command line into the dataset's metadata; a usage error when it does not fit. */
static int seal_meta(const struct seal_cli *c, struct aidp_seal_params *p, aidp_error *err)
{
        static const char *const missing[] = {"missing -o OUT.sealed", "missing --key-id",
                                              "missing --classification"};
        /* A derived dataset takes its inputs' classification by default. */
        const char *need[] = {c->out, c->key_id, c->derived_from.n ? "" : c->cls};
        for (size_t i = 0; i < ARRAY_SIZE(need); i++)
                if (!need[i])
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "%s", missing[i]);
        const struct {
                char *dst;
                size_t cap;
                const char *src, *what;
        } fields[] = {
                {p->meta.name, sizeof p->meta.name, c->name, "--name"},
                {p->meta.version, sizeof p->meta.version, c->version, "--version"},
                {p->meta.owner, sizeof p->meta.owner, c->owner, "--owner"},
                {p->meta.key_id, sizeof p->meta.key_id, c->key_id, "--key-id"},
        };
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
                if (fields[i].src && copy_field(fields[i].dst, fields[i].cap, fields[i].src) < 0)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "%s too long",
                                              fields[i].what);
        for (size_t i = 0; i < c->residency.n; i++)
                if (add_tags(&p->meta, AIDP_F_RESIDENCY, c->residency.v[i], err) < 0)
                        return -EINVAL;
        for (size_t i = 0; i < c->regulation.n; i++)
                if (add_tags(&p->meta, AIDP_F_REGULATION, c->regulation.v[i], err) < 0)
                        return -EINVAL;
        p->threads = (unsigned)c->threads;
        p->segment_size = (uint32_t)c->segment_size;
        p->skip_special = c->skip_special;
        return 0;
}

static void tags_line(const char (*tags)[AIDP_SEALED_TAG_MAX + 1], unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                printf("%s%s", i ? "," : "", tags[i]);
        printf("%s", n ? "" : "-");
}

/* What the new header kept from the files it was derived from. */
static void derived_text(const struct aidp_sealed_header *h)
{
        printf("derived: classification %s, residency ",
               aidp_sealed_class_name(h->meta.classification));
        tags_line(h->meta.residency, h->meta.n_residency);
        printf(", regulation ");
        tags_line(h->meta.regulation, h->meta.n_regulation);
        printf(" (the inputs' and the command line's); produced-by chain in the header "
               "(aidp inspect)\n");
}

static int seal_run(const struct seal_cli *c, const struct aidp_cli_parsed *pa, const char *src,
                    struct aidp_seal_params *pp)
{
        struct aidp_seal_params p = *pp;
        aidp_error err = {0};
        const char *out = c->out, *cls = c->cls, *keys_config = c->keys_config,
                   *key_dir = c->key_dir;
        bool quiet = c->quiet;
        if (cls && aidp_sealed_class_parse(cls, &p.meta.classification) < 0)
                return usage_error("seal", "--classification must be one of public, internal, "
                                           "confidential, restricted, regulated");
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
        _cleanup_free_ uint8_t *schema = NULL, *produced = NULL, *kept_schema = NULL;
        if (c->schema && aidp_cli_read_schema(c->schema, &schema, &p.schema_len, &err) < 0)
                return fail("seal", &err);
        p.schema = schema;
        if (c->derived_from.n &&
            aidp_cli_derived_from(&seal_spec, pa, &c->derived_from, keys_config, key_dir,
                                  cls != NULL, &p, &produced, &kept_schema, &err) < 0)
                return fail("seal", &err);
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
                        char dg[AIDP_SEALED_DIGEST_REF_LEN + 1];
                        aidp_sealed_digest_ref(&res.header, dg);
                        printf("sealed %s -> %s: dataset %s version %s, %llu files, %llu dirs, "
                               "%llu payload bytes%s\ncontent-digest: %s\n",
                               src, out, res.header.meta.name, res.header.meta.version,
                               (unsigned long long)res.n_files, (unsigned long long)res.n_dirs,
                               (unsigned long long)res.header.payload_len,
                               res.n_skipped ? " (special files skipped)" : "", dg);
                        if (c->derived_from.n)
                                derived_text(&res.header);
                }
        }
        aidp_keys_free(&keys);
        return rc;
}

static int cmd_seal(int argc, char **argv)
{
        struct seal_cli c = {0};
        struct aidp_cli_parsed pa;
        struct aidp_seal_params p = {0};
        aidp_error err = {0};
        int st;
        if (!aidp_cli_options(&seal_spec, argc, argv, &c, &pa, &st))
                goto done;
        st = AIDP_EXIT_USAGE;
        if (seal_meta(&c, &p, &err) < 0) {
                st = usage_error("seal", err.msg);
                goto done;
        }
        st = seal_run(&c, &pa, argv[pa.first_arg], &p);
done:
        aidp_cli_list_free(&c.residency);
        aidp_cli_list_free(&c.regulation);
        aidp_cli_list_free(&c.derived_from);
        return st;
}

static const struct aidp_cli_opt unseal_opts[] = {
        AIDP_CLI_OPT("output", 'o', AIDP_CLI_STRING, SC(out), "DIR",
                     "created if missing; the sealed file or tree appears in it;\n"
                     "existing entries are never overwritten",
                     U),
        AIDP_CLI_OPT("verify-only", 0, AIDP_CLI_FLAG, SC(verify), NULL,
                     "authenticate every segment, write nothing", U),
        THREADS_OPT,
        KEYS_OPTS,
        QUIET_OPT,
        {0},
};

static const struct aidp_cli_spec unseal_spec = {
        .prog = "aidp unseal",
        .synopsis = "FILE.sealed -o DIR [OPTIONS]\nFILE.sealed --verify-only",
        .about = "Decrypt and authenticate a sealed dataset.",
        .opts = unseal_opts,
        .min_args = 1,
        .max_args = 1,
        .args = "FILE.sealed",
};

static int unseal_run(const struct seal_cli *c, const struct aidp_cli_parsed *pa, const char *file)
{
        struct aidp_sealed_opts o = AIDP_SEALED_OPTS_DEFAULT;
        o.threads = (unsigned)c->threads;
        bool verify = c->verify;
        aidp_error err = {0};
        struct aidp_tool_access acc;
        _cleanup_(aidp_sealed_closep) struct aidp_sealed *s = NULL;
        /* The caller's file, the caller's policy decision (tool_access.h). */
        if (aidp_tool_open_sealed(&unseal_spec, pa, file, AIDP_OP_UNSEAL, c->keys_config,
                                  c->key_dir, &acc, &s, &err) < 0)
                return fail("unseal", &err);
        struct aidp_progress_bar b = {.label = verify ? "verifying" : "unsealing"};
        if (!c->quiet && isatty(2)) {
                o.progress = aidp_progress_bar_draw;
                o.progress_opaque = &b;
        }
        struct aidp_sealed_result res;
        if ((verify ? aidp_sealed_decrypt(s, -1, &o, &res, &err)
                    : aidp_tool_unseal_to_dir(s, &acc, c->out, &o, &res, &err)) < 0)
                return fail("unseal", &err);
        if (!c->quiet)
                printf("%s %s: dataset %s, %llu files, %llu dirs, %llu bytes, every segment "
                       "authenticated, content digest verified\n",
                       verify ? "verified" : "unsealed", file, aidp_sealed_header_of(s)->meta.name,
                       (unsigned long long)res.n_files, (unsigned long long)res.n_dirs,
                       (unsigned long long)res.bytes);
        return 0;
}

static int cmd_unseal(int argc, char **argv)
{
        struct seal_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&unseal_spec, argc, argv, &c, &pa, &st))
                return st;
        if (!c.out && !c.verify)
                return usage_error("unseal", "missing -o DIR (or --verify-only)");
        return unseal_run(&c, &pa, argv[pa.first_arg]);
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

static const struct aidp_cli_opt inspect_opts[] = {
        AIDP_CLI_OPT("json", 0, AIDP_CLI_FLAG, SC(json), NULL, "print the header as JSON", U),
        KEYS_OPTS,
        {0},
};

static const struct aidp_cli_spec inspect_spec = {
        .prog = "aidp inspect",
        .synopsis = "[--json] FILE.sealed",
        .about = "Prints the header after authenticating it with the dataset's key;\n"
                 "the payload is not decrypted.",
        .opts = inspect_opts,
        .min_args = 1,
        .max_args = 1,
        .args = "FILE.sealed",
};

static int cmd_inspect(int argc, char **argv)
{
        struct seal_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&inspect_spec, argc, argv, &c, &pa, &st))
                return st;
        const char *file = argv[pa.first_arg];
        bool json = c.json;
        aidp_error err = {0};
        struct aidp_tool_access acc;
        _cleanup_(aidp_sealed_closep) struct aidp_sealed *s = NULL;
        if (aidp_tool_open_sealed(&inspect_spec, &pa, file, AIDP_OP_INSPECT, c.keys_config,
                                  c.key_dir, &acc, &s, &err) < 0)
                return fail("inspect", &err);
        /* The content digest is a function of the plaintext: only for a
         * caller who may unseal it (tool_access.h). */
        bool digest = acc.may_unseal;
        const struct aidp_sealed_header *h = aidp_sealed_header_of(s);
        const struct aidp_sealed_meta *m = &h->meta;
        char when[64], dg[AIDP_SEALED_DIGEST_REF_LEN + 1], hd[AIDP_SHA256_REF_LEN + 1];
        iso_time(m->created_at, when, sizeof when);
        aidp_sealed_digest_ref(h, dg);
        aidp_sha256_ref(h->header_digest, hd);
        if (json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(file));
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
                json_object_object_add(o, "content_digest",
                                       digest ? json_object_new_string(dg) : NULL);
                json_object_object_add(o, "header_digest", json_object_new_string(hd));
                json_object_object_add(o, "schema", aidp_cli_schema_json(h));
                json_object_object_add(o, "produced_by", aidp_cli_produced_json(h));
                json_object_object_add(o, "authenticated", json_object_new_boolean(1));
                printf("%s\n",
                       json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
                return 0;
        }
        printf("%-16s%s\n", "file:", file);
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
        printf("%-16s%s\n", "content-digest:",
               digest ? dg : "(withheld: the access policy grants you inspect, not unseal)");
        printf("%-16s%s\n", "header-digest:", hd);
        aidp_cli_schema_text(h);
        aidp_cli_produced_text(h);
        return 0;
}

int aidp_cli_seal(int argc, char **argv)
{
        if (!strcmp(argv[0], "seal"))
                return cmd_seal(argc, argv);
        if (!strcmp(argv[0], "unseal"))
                return cmd_unseal(argc, argv);
        if (!strcmp(argv[0], "inspect"))
                return cmd_inspect(argc, argv);
        if (!strcmp(argv[0], "keygen"))
                return aidp_cli_keygen(argc, argv);
        fprintf(stderr, "aidp: error: unknown sealed-data command '%s'\n", argv[0]);
        return AIDP_EXIT_USAGE;
}
