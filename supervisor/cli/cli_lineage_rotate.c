/* aidp lineage rotate, and verify following a rotated log back through its
 * archives (docs/lineage.md, "Rotation"). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_lineage.h"
#include "supervisor/lineage/witness.h"

#define MAX_ARCHIVES 100000 /* a chain longer than this is taken for a loop */

/* ---- rotate ---------------------------------------------------------------------------- */

struct rotate_cli {
        const char *file, *key, *witnesses;
};
#define RC(f) offsetof(struct rotate_cli, f)

static const struct aidp_cli_opt rotate_opts[] = {
        AIDP_CLI_OPT("file", 'f', AIDP_CLI_STRING, RC(file), "FILE", "the lineage log",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("key", 'k', AIDP_CLI_STRING, RC(key), "FILE",
                     "HMAC key (default $" AIDP_LINEAGE_ENV_KEY " or " AIDP_LINEAGE_DEFAULT_KEY ")",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("witnesses", 0, AIDP_CLI_STRING, RC(witnesses), "FILE",
                     "the witnesses to publish the new log's first head to (default\n"
                     "$" AIDP_WITNESS_ENV_CONFIG " or " AIDP_WITNESS_DEFAULT_CONFIG ")",
                     AIDP_TRUST_ADMIN),
        {0},
};

static const struct aidp_cli_spec rotate_spec = {
        .prog = PROG " rotate",
        .synopsis = "[--file FILE] [--key FILE] [--witnesses FILE]",
        .about = "Archive the log and its anchor beside it as FILE.<log id> and start a new\n"
                 "log whose first record names the old log's last head; verify follows\n"
                 "the chain back. The old log must verify. See docs/lineage.md.",
        .opts = rotate_opts,
        .footer = AIDP_CLI_LINEAGE_FILE_HELP,
};

int aidp_cli_lineage_rotate(int argc, char **argv)
{
        struct rotate_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&rotate_spec, argc, argv, &c, &pa, &st))
                return st;
        struct aidp_lineage_options o = {
                .path = c.file,
                .key_path = c.key,
                .need_key = true,
                .publish_heads = true,
                .witness_config = c.witnesses,
        };
        aidp_error err = {0};
        struct aidp_lineage *lg = NULL;
        char *archive = NULL;
        if (aidp_lineage_open(&lg, &o, &err) < 0 || aidp_lineage_rotate(lg, &archive, &err) < 0) {
                aidp_lineage_free(lg);
                return aidp_cli_fail(PROG, &err);
        }
        printf("%s: rotated; the old log and its anchor are %s and %s" AIDP_LINEAGE_ANCHOR_SUFFIX
               "\n",
               aidp_lineage_path(lg), archive, archive);
        free(archive);
        aidp_lineage_free(lg);
        return 0;
}

/* ---- verify: following the links ------------------------------------------------------ */

/* The link in the first record of path. 1: one; 0: none (the first log, or a log
 * of an older aidp); -1: unreadable (err) or a malformed link (*why). */
static int first_link(const char *path, const unsigned char *key, struct aidp_lineage_link *l,
                      const char **why, aidp_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "opening lineage %s", path);
        _cleanup_free_ char *buf = NULL;
        size_t cap = 0;
        ssize_t n = getline(&buf, &cap, f);
        if (n <= 0 || buf[n - 1] != '\n')
                return 0; /* empty: verify had its say */
        struct aidp_lineage_record rec;
        json_object *ev = NULL;
        aidp_error perr = {0};
        if (aidp_lineage_record_parse(buf, (size_t)n - 1, key, &rec, &ev, &perr) < 0)
                return 0;
        int k = aidp_lineage_rotation_of(ev, l);
        json_object_put(ev);
        if (k < 0)
                *why = "its rotation link is malformed";
        else if (k > 0 && key && !aidp_lineage_head_mac_ok(&l->prev, key))
                *why = "its rotation link's MAC does not verify under the host key";
        return k < 0 || *why ? -1 : k;
}

__attribute__((format(printf, 2, 3))) static int broken(const char *path, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s: TAMPERED: broken rotation link: %s\n", path, msg);
        return AIDP_EXIT_FAILED;
}

/* The archive link names, beside cur. */
static char *archive_of(const char *cur, const struct aidp_lineage_link *l)
{
        if (!strchr(cur, '/'))
                return strdup(l->file);
        char *dup = strdup(cur), *ret = NULL;
        if (dup && asprintf(&ret, "%s/%s", dirname(dup), l->file) < 0)
                ret = NULL;
        free(dup);
        return ret;
}

int aidp_cli_lineage_prior_logs(const char *path, const unsigned char *key,
                                char (**ret)[AIDP_LINEAGE_LOG_ID_HEX + 1], size_t *n)
{
        *ret = NULL;
        *n = 0;
        char *cur = strdup(path);
        while (cur && *n < MAX_ARCHIVES) {
                struct aidp_lineage_link l;
                const char *why = NULL;
                aidp_error err = {0};
                if (first_link(cur, key, &l, &why, &err) <= 0)
                        break;
                void *a = realloc(*ret, (*n + 1) * sizeof **ret);
                if (!a)
                        break;
                *ret = a;
                memcpy((*ret)[(*n)++], l.prev.log, AIDP_LINEAGE_LOG_ID_HEX + 1);
                char *next = archive_of(cur, &l);
                free(cur);
                cur = next;
        }
        free(cur);
        return 0;
}

/* One link: the archive must be the log the link names, whole: verified, of that
 * identity, ending at that record with that hash. */
static int check_link(const char *cur, const char *archive, const struct aidp_lineage_link *l,
                      const unsigned char *key, bool use_anchor, aidp_error *err)
{
        struct aidp_lineage_verify v;
        int r = aidp_lineage_verify_file(archive, NULL, use_anchor, key, &v, err);
        aidp_lineage_verify_release(&v);
        if (r < 0 && err->errnum == ENOENT)
                return broken(cur,
                              "record 1 names the archive %s (log %s, last record %" PRIu64
                              "), which is missing (--no-follow checks this log alone)",
                              archive, l->prev.log, l->prev.seq);
        if (r < 0)
                return aidp_cli_fail(PROG, err);
        if (v.bad_line)
                return broken(cur, "the archive %s it names does not verify: %s", archive,
                              v.reason);
        if (strcmp(v.log, l->prev.log) || v.records != l->prev.seq ||
            strcmp(v.last_hash, l->prev.hash))
                return broken(cur,
                              "record 1 names log %s ending at record %" PRIu64
                              " (hash %.16s…), but the archive %s is log %s ending at "
                              "record %" PRIu64 " (hash %.16s…): the archive was cut, "
                              "extended, rewritten or replaced",
                              l->prev.log, l->prev.seq, l->prev.hash, archive,
                              v.log[0] ? v.log : "(none)", v.records,
                              v.records ? v.last_hash : "-");
        return 0;
}

int aidp_cli_lineage_follow(const char *path, const unsigned char *key, bool use_anchor, bool quiet)
{
        _cleanup_free_ char *cur = strdup(path);
        uint64_t archives = 0, records = 0;
        for (; cur && archives < MAX_ARCHIVES; archives++) {
                struct aidp_lineage_link l;
                const char *why = NULL;
                aidp_error err = {0};
                int k = first_link(cur, key, &l, &why, &err);
                if (k < 0 && why)
                        return broken(cur, "record 1: %s", why);
                if (k < 0)
                        return aidp_cli_fail(PROG, &err);
                if (k == 0)
                        break;
                char *archive = archive_of(cur, &l);
                if (!archive)
                        break;
                int r = check_link(cur, archive, &l, key, use_anchor, &err);
                free(cur);
                cur = archive;
                if (r)
                        return r;
                records += l.prev.seq;
        }
        if (!cur) {
                fprintf(stderr, PROG ": out of memory\n");
                return AIDP_EXIT_INTERNAL;
        }
        if (archives >= MAX_ARCHIVES)
                return broken(path, "more than %d archives: the links loop", MAX_ARCHIVES);
        if (!quiet && archives)
                printf("%s: rotation: follows %" PRIu64 " archived log(s) back to %s, %" PRIu64
                       " record(s) more, every link and archive verified\n",
                       path, archives, cur, records);
        return 0;
}
