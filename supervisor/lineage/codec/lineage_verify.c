/* Stored-line format, anchor format and the chain verifier. Pure: bytes and a key
 * in, a verdict out; no file I/O, so the fuzzer drives it directly.
 *
 * Why the tag covers bytes and not a re-serialization: json-c does not promise a
 * byte-identical round trip (number formatting, escapes), so "parse, re-serialize,
 * MAC" would let some byte edits through. The writer MACs exactly the bytes it
 * serialized, then splices the tag in as the last member; the reader cuts the fixed
 * suffix off again and MACs the same bytes. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/hex.h"
#include "supervisor/lineage/codec/lineage_codec.h"
#include "supervisor/lineage/codec/lineage_mac.h"

#define TAG_OPEN       ",\"aidp_hmac\":\""
#define TAG_OPEN_LEN   (sizeof TAG_OPEN - 1)
#define TAG_SUFFIX_LEN (TAG_OPEN_LEN + AIDP_LINEAGE_HASH_HEX + 2) /* + `"}` */
#define PREV_OPEN      ",\"aidp_prev\":\""
#define PREV_OPEN_LEN  (sizeof PREV_OPEN - 1)
#define PREV_LEN       (PREV_OPEN_LEN + AIDP_LINEAGE_HASH_HEX + 1) /* + `"` */
#define SEQ_OPEN       ",\"aidp_seq\":"
#define SEQ_OPEN_LEN   (sizeof SEQ_OPEN - 1)
#define LOG_OPEN       ",\"aidp_log\":\""
#define LOG_OPEN_LEN   (sizeof LOG_OPEN - 1)
#define LOG_LEN        (LOG_OPEN_LEN + AIDP_LINEAGE_LOG_ID_HEX + 1)
#define ZERO_HASH      "0000000000000000000000000000000000000000000000000000000000000000"
#define ANCHOR_DOMAIN  "aidp-lineage-anchor-v1:"
#define ANCHOR_DOMAIN2 "aidp-lineage-anchor-v2:"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(json_tokener *, json_tokener_free)

static bool is_hex64(const char *s, size_t n)
{
        return n == AIDP_LINEAGE_HASH_HEX && aidp_hex_is_lower(s, n);
}

void aidp_lineage_hash_line(const char *line, size_t len, char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        /* On failure (only allocation inside OpenSSL) a hash that matches nothing. */
        if (aidp_lineage_sha256_hex(line, len, out) < 0) {
                memset(out, 'x', AIDP_LINEAGE_HASH_HEX);
                out[AIDP_LINEAGE_HASH_HEX] = '\0';
        }
}

static int hmac_hex(const unsigned char *key, const void *data, size_t len,
                    char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        return aidp_lineage_hmac_hex(key, data, len, out);
}

static bool is_log_id(const char *s, size_t n)
{
        return n == AIDP_LINEAGE_LOG_ID_HEX && aidp_hex_is_lower(s, n);
}

int aidp_lineage_log_id_new(char out[AIDP_LINEAGE_LOG_ID_HEX + 1])
{
        unsigned char b[AIDP_LINEAGE_LOG_ID_HEX / 2];
        if (RAND_bytes(b, sizeof b) != 1)
                return -EIO;
        aidp_hex_encode(b, sizeof b, out);
        return 0;
}

void aidp_lineage_strip_chain(json_object *ev)
{
        json_object_object_del(ev, "aidp_log");
        json_object_object_del(ev, "aidp_seq");
        json_object_object_del(ev, "aidp_prev");
        json_object_object_del(ev, "aidp_hmac");
}

char *aidp_lineage_record_format(json_object *ev, uint64_t seq, const char *prev_hex,
                                 const unsigned char key[AIDP_LINEAGE_KEY_LEN], size_t *len,
                                 aidp_error *err)
{
        return aidp_lineage_record_format_log(ev, NULL, seq, prev_hex, key, len, err);
}

char *aidp_lineage_record_format_log(json_object *ev, const char *log_id, uint64_t seq,
                                     const char *prev_hex,
                                     const unsigned char key[AIDP_LINEAGE_KEY_LEN], size_t *len,
                                     aidp_error *err)
{
        if (!is_hex64(prev_hex, strlen(prev_hex)) ||
            (log_id && !is_log_id(log_id, strlen(log_id)))) {
                aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "bad previous-line hash or log id");
                return NULL;
        }
        aidp_lineage_strip_chain(ev);
        if (log_id)
                json_object_object_add(ev, "aidp_log", json_object_new_string(log_id));
        json_object_object_add(ev, "aidp_seq", json_object_new_uint64(seq));
        json_object_object_add(ev, "aidp_prev", json_object_new_string(prev_hex));
        size_t n = 0;
        const char *s = json_object_to_json_string_length(
                ev, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        /* PLAIN output escapes control characters, so a raw newline would be a bug. */
        if (!s || n < 2 || s[0] != '{' || s[n - 1] != '}' || memchr(s, '\n', n) ||
            memchr(s, '\0', n)) {
                aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                               "event does not serialize to one line");
                return NULL;
        }
        if (n + TAG_SUFFIX_LEN + 1 > AIDP_LINEAGE_LINE_MAX) {
                aidp_error_set(err, AIDP_EXIT_LINEAGE, E2BIG,
                               "event is %zu bytes, more than the %d-byte record limit", n,
                               AIDP_LINEAGE_LINE_MAX);
                return NULL;
        }
        char tag[AIDP_LINEAGE_HASH_HEX + 1];
        if (hmac_hex(key, s, n, tag) < 0) {
                aidp_error_set(err, AIDP_EXIT_LINEAGE, EIO, "HMAC-SHA256 failed");
                return NULL;
        }
        size_t total = n - 1 + TAG_SUFFIX_LEN + 1;
        char *line = malloc(total + 1);
        if (!line) {
                aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                return NULL;
        }
        memcpy(line, s, n - 1);
        snprintf(line + n - 1, TAG_SUFFIX_LEN + 2, TAG_OPEN "%s\"}\n", tag);
        json_object_object_add(ev, "aidp_hmac", json_object_new_string(tag));
        *len = total;
        return line;
}

static int parse_object(const char *buf, size_t len, json_object **ret, const char **why)
{
        if (memchr(buf, '\0', len)) {
                *why = "contains a NUL byte";
                return -EINVAL;
        }
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new();
        if (!tok) {
                *why = "out of memory";
                return -ENOMEM;
        }
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
        if (!o || json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(o);
                *why = "is not valid JSON";
                return -EINVAL;
        }
        if ((size_t)json_tokener_get_parse_end(tok) != len) {
                json_object_put(o);
                *why = "has bytes after the JSON object";
                return -EINVAL;
        }
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                *why = "is not a JSON object";
                return -EINVAL;
        }
        *ret = o;
        return 0;
}

int aidp_lineage_record_parse(const char *line, size_t len, const unsigned char *key,
                              struct aidp_lineage_record *rec, json_object **ret_event,
                              aidp_error *err)
{
        if (len == 0)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL, "empty line");
        if (len > AIDP_LINEAGE_LINE_MAX)
                return aidp_error_set(err, AIDP_EXIT_FAILED, E2BIG, "line longer than %d bytes",
                                      AIDP_LINEAGE_LINE_MAX);
        const char *why = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        if (parse_object(line, len, &o, &why) < 0)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL, "record %s", why);
        /* The tag must be the last member, spelled exactly as the writer spells it. */
        if (len < TAG_SUFFIX_LEN + 2)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "record does not end with its aidp_hmac tag");
        const char *sfx = line + len - TAG_SUFFIX_LEN;
        if (memcmp(sfx, TAG_OPEN, TAG_OPEN_LEN) ||
            !is_hex64(sfx + TAG_OPEN_LEN, AIDP_LINEAGE_HASH_HEX) || line[len - 2] != '"' ||
            line[len - 1] != '}')
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "record does not end with its aidp_hmac tag");
        json_object *v;
        if (!json_object_object_get_ex(o, "aidp_seq", &v) ||
            !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "record has no valid aidp_seq");
        rec->seq = json_object_get_uint64(v);
        if (!json_object_object_get_ex(o, "aidp_prev", &v) ||
            !json_object_is_type(v, json_type_string) ||
            !is_hex64(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "record has no valid aidp_prev");
        memcpy(rec->prev, json_object_get_string(v), AIDP_LINEAGE_HASH_HEX + 1);
        rec->log[0] = '\0';
        if (json_object_object_get_ex(o, "aidp_log", &v)) {
                if (!json_object_is_type(v, json_type_string) ||
                    !is_log_id(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
                        return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                              "record has an invalid aidp_log");
                memcpy(rec->log, json_object_get_string(v), AIDP_LINEAGE_LOG_ID_HEX + 1);
        }
        if (!json_object_object_get_ex(o, "aidp_hmac", &v) ||
            !json_object_is_type(v, json_type_string) ||
            json_object_get_string_len(v) != AIDP_LINEAGE_HASH_HEX ||
            memcmp(json_object_get_string(v), sfx + TAG_OPEN_LEN, AIDP_LINEAGE_HASH_HEX))
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "record's aidp_hmac member is not its last member");
        if (key) {
                /* The MAC'd bytes: the line with the tag member cut out and '}' restored. */
                size_t n = len - TAG_SUFFIX_LEN;
                _cleanup_free_ char *body = malloc(n + 1);
                if (!body)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                memcpy(body, line, n);
                body[n] = '}';
                char want[AIDP_LINEAGE_HASH_HEX + 1];
                if (hmac_hex(key, body, n + 1, want) < 0)
                        return aidp_error_set(err, AIDP_EXIT_LINEAGE, EIO, "HMAC-SHA256 failed");
                if (CRYPTO_memcmp(want, sfx + TAG_OPEN_LEN, AIDP_LINEAGE_HASH_HEX))
                        return aidp_error_set(err, AIDP_EXIT_FAILED, EBADMSG,
                                              "authentication tag does not match (record edited, "
                                              "or written without this host's key)");
        }
        int r = aidp_lineage_event_check(o, err);
        if (r < 0)
                return aidp_error_wrap(err, "record is not an OpenLineage RunEvent");
        aidp_lineage_hash_line(line, len, rec->hash);
        if (ret_event)
                *ret_event = TAKE_PTR(o);
        return 0;
}

/* ---- anchor ----------------------------------------------------------------------- */

static int anchor_mac(const struct aidp_lineage_anchor *a, const unsigned char *key,
                      char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        char msg[192];
        int n = a->log[0] ? snprintf(msg, sizeof msg, ANCHOR_DOMAIN2 "%s:%" PRIu64 ":%s", a->log,
                                     a->seq, a->hash)
                          : snprintf(msg, sizeof msg, ANCHOR_DOMAIN "%" PRIu64 ":%s", a->seq,
                                     a->hash);
        return hmac_hex(key, msg, (size_t)n, out);
}

char *aidp_lineage_anchor_format(const struct aidp_lineage_anchor *a,
                                 const unsigned char key[AIDP_LINEAGE_KEY_LEN], size_t *len)
{
        char mac[AIDP_LINEAGE_HASH_HEX + 1];
        if (anchor_mac(a, key, mac) < 0)
                return NULL;
        char *s = NULL;
        int n = a->log[0] ? asprintf(&s,
                                     "{\"log\":\"%s\",\"seq\":%" PRIu64
                                     ",\"hash\":\"%s\",\"hmac\":\"%s\"}\n",
                                     a->log, a->seq, a->hash, mac)
                          : asprintf(&s, "{\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"hmac\":\"%s\"}\n",
                                     a->seq, a->hash, mac);
        if (n < 0)
                return NULL;
        *len = (size_t)n;
        return s;
}

int aidp_lineage_anchor_parse(const char *buf, size_t len, const unsigned char *key,
                              struct aidp_lineage_anchor *a, aidp_error *err)
{
        /* One line; the store pads it with spaces to a fixed size. */
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
                len--;
        if (len == 0 || len > 4096)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL, "anchor is empty or too long");
        const char *why = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        if (parse_object(buf, len, &o, &why) < 0)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL, "anchor %s", why);
        json_object *seq, *hash, *mac;
        if (!json_object_object_get_ex(o, "seq", &seq) ||
            !json_object_is_type(seq, json_type_int) || json_object_get_int64(seq) < 0 ||
            !json_object_object_get_ex(o, "hash", &hash) ||
            !json_object_is_type(hash, json_type_string) ||
            !is_hex64(json_object_get_string(hash), (size_t)json_object_get_string_len(hash)) ||
            !json_object_object_get_ex(o, "hmac", &mac) ||
            !json_object_is_type(mac, json_type_string) ||
            json_object_get_string_len(mac) != AIDP_LINEAGE_HASH_HEX)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "anchor lacks seq, hash or hmac");
        struct aidp_lineage_anchor tmp = {.seq = json_object_get_uint64(seq)};
        memcpy(tmp.hash, json_object_get_string(hash), AIDP_LINEAGE_HASH_HEX + 1);
        json_object *log;
        if (json_object_object_get_ex(o, "log", &log)) {
                if (!json_object_is_type(log, json_type_string) ||
                    !is_log_id(json_object_get_string(log),
                               (size_t)json_object_get_string_len(log)))
                        return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                              "anchor has an invalid log id");
                memcpy(tmp.log, json_object_get_string(log), AIDP_LINEAGE_LOG_ID_HEX + 1);
        }
        if (key) {
                char want[AIDP_LINEAGE_HASH_HEX + 1];
                if (anchor_mac(&tmp, key, want) < 0)
                        return aidp_error_set(err, AIDP_EXIT_LINEAGE, EIO, "HMAC-SHA256 failed");
                if (CRYPTO_memcmp(want, json_object_get_string(mac), AIDP_LINEAGE_HASH_HEX))
                        return aidp_error_set(err, AIDP_EXIT_FAILED, EBADMSG,
                                              "anchor's authentication tag does not match");
        }
        *a = tmp;
        return 0;
}

/* ---- the fast path of verify (lineage_codec.h, "Streaming verifier") --------------- */

/* The record's chain members read by position from its end, where the writer put
 * them: [,"aidp_log":"<32 hex>"],"aidp_seq":N,"aidp_prev":"<64 hex>","aidp_hmac":"<64 hex>"}
 * (seq, prev and log filled; the tag neither checked nor the line hashed). A
 * member of that name deeper in the object cannot stand there: its object's '}'
 * would. *tag: where the tag member starts. */
static int chain_members(const char *line, size_t len, struct aidp_lineage_record *rec,
                         const char **tag)
{
        if (len < TAG_SUFFIX_LEN + PREV_LEN + SEQ_OPEN_LEN + 2 || line[0] != '{' ||
            memchr(line, '\0', len))
                return 0;
        const char *sfx = line + len - TAG_SUFFIX_LEN;
        if (memcmp(sfx, TAG_OPEN, TAG_OPEN_LEN) ||
            !is_hex64(sfx + TAG_OPEN_LEN, AIDP_LINEAGE_HASH_HEX) || line[len - 2] != '"' ||
            line[len - 1] != '}')
                return 0;
        const char *pv = sfx - PREV_LEN;
        if (memcmp(pv, PREV_OPEN, PREV_OPEN_LEN) || pv[PREV_LEN - 1] != '"' ||
            !is_hex64(pv + PREV_OPEN_LEN, AIDP_LINEAGE_HASH_HEX))
                return 0;
        const char *d = pv;
        while (d > line && d[-1] >= '0' && d[-1] <= '9' && pv - d < 19)
                d--;
        if (d == pv || *d == '0' || (size_t)(d - line) < SEQ_OPEN_LEN + 1 ||
            memcmp(d - SEQ_OPEN_LEN, SEQ_OPEN, SEQ_OPEN_LEN))
                return 0;
        uint64_t seq = 0;
        for (const char *c = d; c < pv; c++)
                seq = seq * 10 + (uint64_t)(*c - '0'); /* 19 digits at most: no overflow */
        if (seq > INT64_MAX)
                return 0;
        const char *lg = d - SEQ_OPEN_LEN - LOG_LEN;
        rec->log[0] = '\0';
        if (lg > line && !memcmp(lg, LOG_OPEN, LOG_OPEN_LEN) && lg[LOG_LEN - 1] == '"' &&
            is_log_id(lg + LOG_OPEN_LEN, AIDP_LINEAGE_LOG_ID_HEX)) {
                memcpy(rec->log, lg + LOG_OPEN_LEN, AIDP_LINEAGE_LOG_ID_HEX);
                rec->log[AIDP_LINEAGE_LOG_ID_HEX] = '\0';
        }
        rec->seq = seq;
        memcpy(rec->prev, pv + PREV_OPEN_LEN, AIDP_LINEAGE_HASH_HEX);
        rec->prev[AIDP_LINEAGE_HASH_HEX] = '\0';
        *tag = sfx;
        return 1;
}

int aidp_lineage_line_chain(const char *line, size_t len, struct aidp_lineage_record *rec)
{
        const char *tag;
        struct aidp_lineage_record r = {0};
        if (chain_members(line, len, &r, &tag) != 1)
                return 0;
        aidp_lineage_hash_line(line, len, r.hash);
        *rec = r;
        return 1;
}

/* The same, then its tag checked and its line hashed. 1: done; 0: not in that
 * shape, or the tag does not match (the full parse then says why). */
static int scan_record(struct aidp_lineage_mac *m, const char *line, size_t len,
                       struct aidp_lineage_record *rec)
{
        const char *sfx;
        struct aidp_lineage_record r = {0};
        if (chain_members(line, len, &r, &sfx) != 1)
                return 0;
        /* The MAC'd bytes: the line up to the tag member, and the '}' it displaced. */
        char want[AIDP_LINEAGE_HASH_HEX + 1];
        if (aidp_lineage_mac_hex(m, line, (size_t)(sfx - line), "}", 1, want) < 0 ||
            CRYPTO_memcmp(want, sfx + TAG_OPEN_LEN, AIDP_LINEAGE_HASH_HEX) ||
            aidp_lineage_mac_sha256(m, line, len, r.hash) < 0)
                return 0;
        *rec = r;
        return 1;
}

int aidp_lineage_record_scan(const char *line, size_t len, const unsigned char *key,
                             struct aidp_lineage_record *rec, aidp_error *err)
{
        struct aidp_lineage_mac *m = key ? aidp_lineage_mac_new(key) : NULL;
        int r = m ? scan_record(m, line, len, rec) : 0;
        aidp_lineage_mac_free(m);
        return r == 1 ? 0 : aidp_lineage_record_parse(line, len, key, rec, NULL, err);
}

/* One record, the fast way when it can be, else the full parse. */
static int read_record(struct aidp_lineage_verify *v, const char *line, size_t len,
                       struct aidp_lineage_record *rec, aidp_error *e)
{
        if (v->key && !v->mac)
                v->mac = aidp_lineage_mac_new(v->key); /* NULL: the full parse only */
        if (v->mac && scan_record(v->mac, line, len, rec) == 1)
                return 0;
        return aidp_lineage_record_parse(line, len, v->key, rec, NULL, e);
}

/* ---- verifier --------------------------------------------------------------------- */

void aidp_lineage_verify_init(struct aidp_lineage_verify *v, const unsigned char *key,
                              const struct aidp_lineage_anchor *anchor)
{
        memset(v, 0, sizeof *v);
        v->key = key;
        if (anchor) {
                v->has_anchor = true;
                v->anchor = *anchor;
        }
        memcpy(v->prev, ZERO_HASH, sizeof v->prev);
}

__attribute__((format(printf, 2, 3))) static bool bad(struct aidp_lineage_verify *v,
                                                      const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->reason, sizeof v->reason, fmt, ap);
        va_end(ap);
        v->bad_line = v->line_no;
        return false;
}

bool aidp_lineage_verify_line(struct aidp_lineage_verify *v, const char *line, size_t len,
                              bool terminated)
{
        if (v->bad_line || v->torn_tail)
                return false;
        v->line_no++;
        uint64_t n = v->line_no;
        if (!terminated) {
                /* A line without '\n' can only be the last one. Past the anchored record
                 * it is an append that died before its fsync returned: never committed,
                 * so not a record. Anywhere else it is a record cut short. */
                if (v->has_anchor && v->records >= v->anchor.seq &&
                    (v->anchor_seen || v->anchor.seq == 0)) {
                        v->torn_tail = true;
                        return true;
                }
                return bad(v, "line %" PRIu64 ": truncated record (the line has no end)", n);
        }
        struct aidp_lineage_record rec;
        aidp_error e = {0};
        if (read_record(v, line, len, &rec, &e) < 0)
                return bad(v, "line %" PRIu64 ": %s", n, e.msg);
        if (n == 1)
                memcpy(v->log, rec.log, sizeof v->log);
        else if (strcmp(rec.log, v->log)) {
                if (!rec.log[0] || !v->log[0])
                        return bad(v,
                                   "line %" PRIu64 ": mixes records with and without a log "
                                   "identity (a record of another log was inserted)",
                                   n);
                return bad(v,
                           "line %" PRIu64 ": the record belongs to log %s, not to this log "
                           "(%s): a record of another log was inserted or replayed",
                           n, rec.log, v->log);
        }
        if (rec.seq != n)
                return bad(v,
                           "line %" PRIu64 ": sequence number %" PRIu64 " where %" PRIu64
                           " was expected (a record was deleted, inserted or reordered)",
                           n, rec.seq, n);
        if (strcmp(rec.prev, v->prev)) {
                if (n == 1)
                        return bad(v, "line 1: the chain does not start here (records were cut "
                                      "from the start of the log)");
                return bad(v,
                           "line %" PRIu64 ": previous-line hash does not match line %" PRIu64
                           " (that line was changed, or records were deleted, inserted or "
                           "reordered)",
                           n, n - 1);
        }
        if (v->has_anchor && rec.seq == v->anchor.seq) {
                if (strcmp(rec.hash, v->anchor.hash))
                        return bad(v,
                                   "line %" PRIu64 ": does not match the anchor's hash of "
                                   "record %" PRIu64 " (the record was replaced)",
                                   n, rec.seq);
                v->anchor_seen = true;
        }
        memcpy(v->prev, rec.hash, sizeof v->prev);
        memcpy(v->last_hash, rec.hash, sizeof v->last_hash);
        if (v->collect) {
                if (v->records == v->hashes_cap) {
                        uint64_t cap = v->hashes_cap ? 2 * v->hashes_cap : 4096;
                        void *h = realloc(v->hashes, cap * sizeof *v->hashes);
                        if (!h)
                                return bad(v, "line %" PRIu64 ": out of memory", n);
                        v->hashes = h;
                        v->hashes_cap = cap;
                }
                memcpy(v->hashes[v->records], rec.hash, sizeof *v->hashes);
        }
        v->records++;
        return true;
}

bool aidp_lineage_verify_finish(struct aidp_lineage_verify *v)
{
        aidp_lineage_mac_free(v->mac);
        v->mac = NULL;
        if (v->bad_line)
                return false;
        if (v->has_anchor && v->records > 0 && v->anchor.log[0] && strcmp(v->anchor.log, v->log)) {
                v->line_no = 1;
                return bad(v,
                           "the anchor belongs to log %s, but this log is %s (the log or its "
                           "anchor was replaced)",
                           v->anchor.log, v->log[0] ? v->log : "one without an identity");
        }
        if (v->has_anchor) {
                if (v->records < v->anchor.seq) {
                        v->line_no = v->records + 1;
                        return bad(v,
                                   "line %" PRIu64 ": missing: the log ends after %" PRIu64
                                   " record(s) but the anchor records %" PRIu64 " (%" PRIu64
                                   " record(s) cut from the end)",
                                   v->records + 1, v->records, v->anchor.seq,
                                   v->anchor.seq - v->records);
                }
                v->anchor_lag = v->records - v->anchor.seq;
                /* Appends commit in groups (docs/lineage.md, "Group commit"), so up to
                 * AIDP_LINEAGE_UNCOMMITTED_MAX records may wait for their commit, and a
                 * crash can leave them; never more. */
                if (v->anchor_lag > AIDP_LINEAGE_UNCOMMITTED_MAX) {
                        v->line_no = v->anchor.seq + AIDP_LINEAGE_UNCOMMITTED_MAX + 1;
                        return bad(v,
                                   "line %" PRIu64 ": the anchor is %" PRIu64
                                   " records behind the log, more than the %d that may await "
                                   "their commit (an older anchor was put back, or records "
                                   "were appended without the lock)",
                                   v->line_no, v->anchor_lag, AIDP_LINEAGE_UNCOMMITTED_MAX);
                }
        }
        if (v->torn_tail)
                snprintf(v->reason, sizeof v->reason,
                         "line %" PRIu64 ": incomplete last line of an append that was "
                         "interrupted before it was committed (not a record; the next append "
                         "removes it)",
                         v->line_no);
        else if (v->anchor_lag > 0)
                snprintf(v->reason, sizeof v->reason,
                         "the last %" PRIu64 " record(s) are past the anchor: appends whose "
                         "commit is under way, or an anchor update interrupted by a crash "
                         "(the next append brings it up to date)",
                         v->anchor_lag);
        return true;
}

void aidp_lineage_verify_release(struct aidp_lineage_verify *v)
{
        aidp_lineage_mac_free(v->mac);
        v->mac = NULL;
        free(v->hashes);
        v->hashes = NULL;
        v->hashes_cap = 0;
}

bool aidp_lineage_verify_buffer(struct aidp_lineage_verify *v, const char *buf, size_t len)
{
        size_t off = 0;
        while (off < len) {
                const char *nl = memchr(buf + off, '\n', len - off);
                size_t n = nl ? (size_t)(nl - (buf + off)) : len - off;
                if (!aidp_lineage_verify_line(v, buf + off, n, nl != NULL))
                        break;
                off += n + 1;
        }
        return aidp_lineage_verify_finish(v);
}
