/* aidp lineage export: the selected events as OpenLineage (stdout or POST to a URL),
 * all of them or, with --incremental, only those not sent before to the same place. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_lineage.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all)

static size_t discard(char *p, size_t size, size_t n, void *u)
{
        (void)p;
        (void)u;
        return size * n;
}

/* ---- the chain head of each event (docs/lineage.md, "Witnesses") ----------------------- */

/* The host key, to sign each event's head: then the consumer of the export is a
 * witness. Without it (a reader who may not read the key) the events go out
 * without heads, said once on stderr. */
static bool load_head_key(const char *given, unsigned char key[AIDP_LINEAGE_KEY_LEN])
{
        const char *path = given ? given : getenv(AIDP_LINEAGE_ENV_KEY);
        if (!path || !path[0])
                path = AIDP_LINEAGE_DEFAULT_KEY;
        aidp_error err = {0};
        if (aidp_lineage_key_load(path, false, key, &err) == 0)
                return true;
        fprintf(stderr,
                PROG ": note: %s; the events go out without their chain head "
                     "(facet " AIDP_LINEAGE_HEAD_FACET "), so the export is no witness\n",
                err.msg);
        return false;
}

/* Each selected event gains its record's head, signed. */
static void add_heads(struct events *e, const unsigned char key[AIDP_LINEAGE_KEY_LEN])
{
        for (size_t i = 0; i < e->n; i++) {
                struct aidp_lineage_head *h = &e->head[i];
                /* A log of an older aidp has no identity to publish a head under. */
                if (h->log[0] && aidp_lineage_head_sign(h, key) == 0)
                        aidp_lineage_set_head_facet(e->ev[i], h);
        }
}

/* ---- --incremental: what was sent, per destination ------------------------------------- */

/* The state file beside the log, LOG.export-state, one JSON object: for each
 * destination (the URL, or "-" for stdout) the log line of the last event sent there,
 * with that event's runId, eventType and eventTime to notice a log that was replaced. */
struct export_state {
        char path[4096];
        const char *dest;
        json_object *root;
        uint64_t line; /* events up to this line were sent to dest */
};

static void state_free(struct export_state *st)
{
        json_object_put(st->root);
        st->root = NULL;
}

static json_object *event_mark(json_object *ev, uint64_t line)
{
        json_object *m = json_object_new_object();
        json_object_object_add(m, "line", json_object_new_uint64(line));
        static const char *const keys[] = {"eventType", "eventTime"};
        for (size_t i = 0; i < 2; i++)
                json_object_object_add(
                        m, keys[i],
                        json_object_new_string(aidp_cli_json_str(ev, keys[i], NULL, NULL) ?: ""));
        json_object_object_add(m, "runId", json_object_new_string(aidp_cli_run_id(ev)));
        return m;
}

/* Read the state; it is refused unless it is a regular file of this user (root, for the
 * system log) that nobody else can read or write: its line numbers decide what is sent. */
static int state_load(struct export_state *st, const char *log, const char *dest,
                      const struct events *e, aidp_error *err)
{
        memset(st, 0, sizeof *st);
        st->dest = dest;
        if ((size_t)snprintf(st->path, sizeof st->path, "%s.export-state", log) >= sizeof st->path)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG, "%s: path too long", log);
        _cleanup_close_ int fd = open(st->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT) {
                st->root = json_object_new_object();
                return st->root ? 0
                                : aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "%s", st->path);
        if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 077))
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EPERM,
                                      "%s must be a regular file owned by uid %u with mode 0600 "
                                      "(uid %u, mode %04o)",
                                      st->path, (unsigned)geteuid(), (unsigned)sb.st_uid,
                                      (unsigned)(sb.st_mode & 07777));
        char buf[1 << 16];
        ssize_t n = aidp_read_all(fd, buf, sizeof buf - 1);
        if (n < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, (int)-n, "reading %s", st->path);
        buf[n] = '\0';
        st->root = json_tokener_parse(buf);
        json_object *mine, *v;
        if (!st->root || !json_object_is_type(st->root, json_type_object))
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EINVAL,
                                      "%s is not an export state (remove it to export everything "
                                      "again)",
                                      st->path);
        if (!json_object_object_get_ex(st->root, dest, &mine))
                return 0;
        if (!json_object_object_get_ex(mine, "line", &v))
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EINVAL, "%s: %s has no line",
                                      st->path, dest);
        st->line = (uint64_t)json_object_get_uint64(v);
        /* The event recorded as last sent must still be on that line of this log. */
        for (size_t i = 0; i < e->n; i++) {
                if (e->line[i] != st->line)
                        continue;
                _cleanup_(json_object_putp) json_object *m = event_mark(e->ev[i], st->line);
                if (json_object_equal(m, mine))
                        return 0;
                break;
        }
        return aidp_error_set(err, AIDP_EXIT_LINEAGE, ESTALE,
                              "%s: line %" PRIu64 " of %s is not the event last exported to %s "
                              "(was the log replaced?); remove the state file to export "
                              "everything again",
                              st->path, st->line, log, dest);
}

/* Record that events up to line `line` (the event ev) went to dest: a new file beside
 * the old one, synced, then renamed over it, so a crash leaves the old or the new state. */
static int state_save(struct export_state *st, json_object *ev, uint64_t line, aidp_error *err)
{
        json_object_object_add(st->root, st->dest, event_mark(ev, line));
        st->line = line;
        char tmp[sizeof st->path + 8];
        snprintf(tmp, sizeof tmp, "%s.XXXXXX", st->path);
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "writing %s", st->path);
        size_t len = 0;
        const char *text =
                json_object_to_json_string_length(st->root, JSON_C_TO_STRING_PLAIN, &len);
        if (aidp_write_all(fd, text, len) < 0 || aidp_write_all(fd, "\n", 1) < 0 || fsync(fd) < 0 ||
            rename(tmp, st->path) < 0) {
                int e = errno;
                unlink(tmp);
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, e, "writing %s", st->path);
        }
        return 0;
}

/* The events to send, in log order: of a selected run, and after the state's line. */
static bool event_wanted(const struct events *e, const struct runs *rs, size_t i, uint64_t after)
{
        if (e->line[i] <= after)
                return false;
        const char *id = aidp_cli_run_id(e->ev[i]);
        for (size_t j = 0; j < rs->n; j++)
                if (rs->r[j].selected && !strcmp(rs->r[j].id, id))
                        return true;
        return false;
}

static int post_events(const struct events *e, const struct runs *rs, const char *url,
                       struct export_state *st, aidp_error *err)
{
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                      "libcurl initialization failed");
        _cleanup_(curl_easy_cleanupp) CURL *h = curl_easy_init();
        _cleanup_(curl_slist_free_allp) struct curl_slist *hdr =
                curl_slist_append(NULL, "Content-Type: application/json");
        if (!h || !hdr)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        char cerr[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(h, CURLOPT_URL, url);
        /* Lineage goes where the operator said, nowhere else: no redirects, only HTTP(S). */
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        size_t sent = 0;
        /* Log order, not run order: a consumer replays events as they happened, and the
         * incremental state is one line number. */
        for (size_t idx = 0; idx < e->n; idx++) {
                if (!event_wanted(e, rs, idx, st ? st->line : 0))
                        continue;
                size_t len = 0;
                const char *body = json_object_to_json_string_length(
                        e->ev[idx], JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
                CURLcode cc = curl_easy_perform(h);
                long code = 0;
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
                if (cc != CURLE_OK)
                        return aidp_error_set(
                                err, AIDP_EXIT_FAILED, EIO,
                                "POST of line %" PRIu64 " to %s: %s (%zu event(s) sent before)",
                                e->line[idx], url, cerr[0] ? cerr : curl_easy_strerror(cc), sent);
                if (code < 200 || code > 299)
                        return aidp_error_set(err, AIDP_EXIT_FAILED, EIO,
                                              "POST of line %" PRIu64
                                              " to %s: HTTP %ld (%zu event(s) sent before)",
                                              e->line[idx], url, code, sent);
                sent++;
                /* After each accepted event: a failure later resends nothing sent. */
                if (st && state_save(st, e->ev[idx], e->line[idx], err) < 0)
                        return aidp_error_wrap(err, "%zu event(s) sent", sent);
        }
        fprintf(stderr, PROG ": exported %zu event(s) to %s\n", sent, url);
        return 0;
}

static const struct aidp_cli_opt export_opts[] = {
        AIDP_CLI_LINEAGE_FILE_OPT,
        AIDP_CLI_LINEAGE_RUN_OPT,
        AIDP_CLI_LINEAGE_DATASET_OPT,
        AIDP_CLI_LINEAGE_USER_OPT,
        AIDP_CLI_LINEAGE_SINCE_OPT,
        AIDP_CLI_LINEAGE_UNTIL_OPT,
        AIDP_CLI_OPT("incremental", 'i', AIDP_CLI_FLAG, LC(incremental), NULL,
                     "only the events not sent before to the same URL (or stdout);\n"
                     "what was sent is kept in FILE.export-state",
                     AIDP_TRUST_USER),
        AIDP_CLI_OPT("key", 'k', AIDP_CLI_STRING, LC(key), "FILE",
                     "the host key that signs each event's chain head (default\n"
                     "$" AIDP_LINEAGE_ENV_KEY " or " AIDP_LINEAGE_DEFAULT_KEY ")",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("url", 'u', AIDP_CLI_STRING, LC(url), "URL",
                     "POST each event to an OpenLineage endpoint (default: JSON lines\n"
                     "on stdout)",
                     AIDP_TRUST_USER),
        {0},
};

static const struct aidp_cli_spec export_spec = {
        .prog = "aidp lineage export",
        .synopsis = "[--file FILE] [--key FILE] " AIDP_CLI_LINEAGE_FILTER_SYNOPSIS " [--url URL]\n"
                    "[--file FILE] [--key FILE] --incremental [--url URL]",
        .about = "The events of the selected runs as OpenLineage, in log order, each with\n"
                 "its record's chain head (facet " AIDP_LINEAGE_HEAD_FACET ") when the host key\n"
                 "can be read: `aidp lineage verify --witness` takes the exported events.",
        .opts = export_opts,
        .footer = AIDP_CLI_LINEAGE_FILE_HELP,
};

int aidp_cli_lineage_export(int argc, char **argv)
{
        struct lineage_cli c = {0};
        struct aidp_cli_parsed pa;
        int ust;
        if (!aidp_cli_options(&export_spec, argc, argv, &c, &pa, &ust))
                return ust;
        const char *file = c.file, *url = c.url;
        if (url && strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
                return aidp_cli_usage_error(export_spec.prog,
                                            "--url must be an http:// or https:// URL, got '%s'",
                                            url);
        /* One line number per destination records what was sent: a filter would leave
         * events behind that line unsent for ever. */
        if (c.incremental && (c.run || c.dataset || c.user || c.has_since || c.has_until))
                return aidp_cli_usage_error(export_spec.prog,
                                            "--incremental sends every new event: it takes no "
                                            "--run, --dataset, --user, --since or --until");
        const char *path = aidp_cli_lineage_path(file);
        aidp_error err = {0};
        struct events e = {0};
        struct runs rs = {0};
        struct export_state st = {0};
        int status = 0;
        if (aidp_cli_lineage_read(path, &e, &rs, &err) < 0 ||
            (c.incremental && state_load(&st, path, url ? url : "-", &e, &err) < 0)) {
                status = aidp_cli_fail(PROG, &err);
                goto out;
        }
        aidp_cli_runs_select(&e, &rs, &c);
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        if (load_head_key(c.key, key))
                add_heads(&e, key);
        OPENSSL_cleanse(key, sizeof key);
        if (url) {
                if (post_events(&e, &rs, url, c.incremental ? &st : NULL, &err) < 0)
                        status = aidp_cli_fail(PROG, &err);
        } else {
                size_t last = SIZE_MAX;
                for (size_t i = 0; i < e.n; i++) {
                        if (!event_wanted(&e, &rs, i, st.line))
                                continue;
                        printf("%s\n", json_object_to_json_string_ext(
                                               e.ev[i], JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE));
                        last = i;
                }
                /* Recorded only once stdout took every line. */
                if (fflush(stdout) != 0 || ferror(stdout)) {
                        aidp_error_errno(&err, AIDP_EXIT_FAILED, errno, "writing stdout");
                        status = aidp_cli_fail(PROG, &err);
                } else if (c.incremental && last != SIZE_MAX &&
                           state_save(&st, e.ev[last], e.line[last], &err) < 0) {
                        status = aidp_cli_fail(PROG, &err);
                }
        }
        if (status == 0 && e.skipped)
                status = AIDP_EXIT_FAILED;
out:
        state_free(&st);
        aidp_cli_runs_free(&rs);
        aidp_cli_events_free(&e);
        return status;
}
