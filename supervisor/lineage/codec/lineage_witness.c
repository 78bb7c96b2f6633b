/* Chain heads and the witness comparison: lineage_witness.h. */
#define _GNU_SOURCE
#include "supervisor/lineage/codec/lineage_witness.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"

#define HEAD_DOMAIN "aidp-lineage-head-v1:"

static int head_mac(const struct aidp_lineage_head *h, const unsigned char *key,
                    char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        char msg[192];
        int n = snprintf(msg, sizeof msg, HEAD_DOMAIN "%s:%" PRIu64 ":%s", h->log, h->seq, h->hash);
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen = 0;
        if (n < 0 || (size_t)n >= sizeof msg ||
            !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, AIDP_LINEAGE_KEY_LEN,
                       (const unsigned char *)msg, (size_t)n, mac, sizeof mac, &maclen) ||
            maclen != 32)
                return -EIO;
        aidp_hex_encode(mac, 32, out);
        return 0;
}

int aidp_lineage_head_sign(struct aidp_lineage_head *h,
                           const unsigned char key[AIDP_LINEAGE_KEY_LEN])
{
        return head_mac(h, key, h->mac);
}

bool aidp_lineage_head_mac_ok(const struct aidp_lineage_head *h,
                              const unsigned char key[AIDP_LINEAGE_KEY_LEN])
{
        char want[AIDP_LINEAGE_HASH_HEX + 1];
        return head_mac(h, key, want) == 0 &&
               CRYPTO_memcmp(want, h->mac, AIDP_LINEAGE_HASH_HEX) == 0;
}

int aidp_lineage_head_json(const struct aidp_lineage_head *h, char *buf, size_t size)
{
        int n = snprintf(buf, size,
                         "{\"log\":\"%s\",\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"mac\":\"%s\"}\n",
                         h->log, h->seq, h->hash, h->mac);
        return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

static bool copy_hex(char *dst, const char *src, size_t want, size_t len)
{
        if (len != want || !aidp_hex_is_lower(src, len))
                return false;
        memcpy(dst, src, len);
        dst[len] = '\0';
        return true;
}

static bool parse_seq(const char *s, size_t len, uint64_t *out)
{
        char buf[24];
        if (len == 0 || len >= sizeof buf || s[0] == '0')
                return false;
        memcpy(buf, s, len);
        buf[len] = '\0';
        char *end;
        errno = 0;
        unsigned long long v = strtoull(buf, &end, 10);
        if (errno || *end || buf[0] == '-' || buf[0] == '+')
                return false;
        *out = v;
        return true;
}

static int parse_json(const char *line, size_t len, struct aidp_lineage_head *h)
{
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *o = json_tokener_parse_ex(tok, line, (int)len);
        bool whole = o && json_tokener_get_error(tok) == json_tokener_success &&
                     (size_t)json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        json_object *log, *seq, *hash, *mac;
        int r = -EINVAL;
        if (whole && json_object_is_type(o, json_type_object) &&
            json_object_object_get_ex(o, "log", &log) &&
            json_object_object_get_ex(o, "seq", &seq) &&
            json_object_object_get_ex(o, "hash", &hash) &&
            json_object_object_get_ex(o, "mac", &mac) && json_object_is_type(seq, json_type_int) &&
            json_object_get_int64(seq) >= 1 && json_object_is_type(log, json_type_string) &&
            json_object_is_type(hash, json_type_string) &&
            json_object_is_type(mac, json_type_string) &&
            copy_hex(h->log, json_object_get_string(log), AIDP_LINEAGE_LOG_ID_HEX,
                     (size_t)json_object_get_string_len(log)) &&
            copy_hex(h->hash, json_object_get_string(hash), AIDP_LINEAGE_HASH_HEX,
                     (size_t)json_object_get_string_len(hash)) &&
            copy_hex(h->mac, json_object_get_string(mac), AIDP_LINEAGE_HASH_HEX,
                     (size_t)json_object_get_string_len(mac))) {
                h->seq = json_object_get_uint64(seq);
                r = 1;
        }
        json_object_put(o);
        return r;
}

/* PARAM="value" inside the SD element [elem, end); the values of a head are hex
 * or digits, so they hold no escaped characters. */
static bool sd_param(const char *elem, const char *end, const char *name, const char **v,
                     size_t *vlen)
{
        char pat[16];
        int pn = snprintf(pat, sizeof pat, " %s=\"", name);
        const char *p = memmem(elem, (size_t)(end - elem), pat, (size_t)pn);
        if (!p)
                return false;
        p += pn;
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
                return false;
        *v = p;
        *vlen = (size_t)(q - p);
        return true;
}

static int parse_syslog(const char *line, size_t len, struct aidp_lineage_head *h)
{
        static const char mark[] = AIDP_LINEAGE_HEAD_MARK;
        const char *e = memmem(line, len, mark, sizeof mark - 1);
        if (!e)
                return 0;
        e += sizeof AIDP_LINEAGE_HEAD_MSGID; /* at '[' */
        const char *end = memchr(e, ']', len - (size_t)(e - line));
        if (!end)
                return -EINVAL;
        const char *v;
        size_t vl;
        if (!sd_param(e, end, "log", &v, &vl) ||
            !copy_hex(h->log, v, AIDP_LINEAGE_LOG_ID_HEX, vl) ||
            !sd_param(e, end, "seq", &v, &vl) || !parse_seq(v, vl, &h->seq) ||
            !sd_param(e, end, "hash", &v, &vl) ||
            !copy_hex(h->hash, v, AIDP_LINEAGE_HASH_HEX, vl) || !sd_param(e, end, "mac", &v, &vl) ||
            !copy_hex(h->mac, v, AIDP_LINEAGE_HASH_HEX, vl))
                return -EINVAL;
        return 1;
}

int aidp_lineage_head_parse(const char *line, size_t len, struct aidp_lineage_head *h)
{
        memset(h, 0, sizeof *h);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;
        if (len == 0 || memchr(line, '\0', len))
                return len == 0 ? 0 : -EINVAL;
        if (line[0] == '{')
                return parse_json(line, len, h);
        return parse_syslog(line, len, h);
}

bool aidp_lineage_witness_alarm(enum aidp_lineage_witness_verdict v)
{
        return v != AIDP_WITNESS_CONFIRMED && v != AIDP_WITNESS_SILENT;
}

/* The first stretch of records no head of this log covers, and how many. */
static void find_gaps(const bool *seen, uint64_t n, struct aidp_lineage_witness_result *r)
{
        bool first_open = false;
        for (uint64_t i = 0; i < n; i++) {
                if (seen[i]) {
                        first_open = false;
                        continue;
                }
                r->unseen++;
                if (!r->gap_from) {
                        r->gap_from = r->gap_to = i + 1;
                        first_open = true;
                } else if (first_open) {
                        r->gap_to = i + 1;
                }
        }
}

/* The highest record the witness saw of any log: what a substituted or emptied
 * log is measured against. */
static const struct aidp_lineage_head *latest_other(const struct aidp_lineage_head *heads, size_t n,
                                                    const bool *authentic)
{
        const struct aidp_lineage_head *best = NULL;
        for (size_t i = 0; i < n; i++)
                if (authentic[i] && (!best || heads[i].seq > best->seq))
                        best = &heads[i];
        return best;
}

void aidp_lineage_witness_compare(const struct aidp_lineage_log_view *lv,
                                  const struct aidp_lineage_head *heads, size_t n,
                                  const unsigned char *key, struct aidp_lineage_witness_result *r)
{
        memset(r, 0, sizeof *r);
        bool *authentic = calloc(n ? n : 1, sizeof *authentic);
        bool *seen = calloc(lv->n ? lv->n : 1, sizeof *seen);
        if (!authentic || !seen) {
                r->verdict = AIDP_WITNESS_SILENT;
                snprintf(r->reason, sizeof r->reason, "out of memory");
                goto out;
        }
        size_t nauth = 0;
        uint64_t rewritten = 0;
        for (size_t i = 0; i < n; i++) {
                if (key && !aidp_lineage_head_mac_ok(&heads[i], key)) {
                        r->forged++;
                        continue;
                }
                authentic[i] = true;
                nauth++;
                if (!lv->log[0] || strcmp(heads[i].log, lv->log))
                        continue;
                r->heads++;
                if (heads[i].seq > r->last_seen)
                        r->last_seen = heads[i].seq;
                if (heads[i].seq > lv->n)
                        continue;
                seen[heads[i].seq - 1] = true;
                if (strcmp(heads[i].hash, lv->hashes[heads[i].seq - 1]) &&
                    (!rewritten || heads[i].seq < rewritten))
                        rewritten = heads[i].seq;
        }
        find_gaps(seen, lv->n, r);
        const struct aidp_lineage_head *other = latest_other(heads, n, authentic);
        if (nauth == 0) {
                r->verdict = AIDP_WITNESS_SILENT;
                snprintf(r->reason, sizeof r->reason,
                         "the witness holds no authentic head%s: rollback of this log cannot be "
                         "excluded",
                         r->forged ? " (only heads with a wrong MAC)" : "");
        } else if (lv->n == 0) {
                r->verdict = AIDP_WITNESS_EMPTIED;
                r->first_affected = 1;
                snprintf(r->reason, sizeof r->reason,
                         "emptied log: the log has no records, but the witness saw log %s up to "
                         "record %" PRIu64 " (the log was emptied or replaced and its anchor "
                         "removed); records 1-%" PRIu64 " are missing",
                         other->log, other->seq, other->seq);
        } else if (r->heads == 0) {
                r->verdict = AIDP_WITNESS_SUBSTITUTED;
                r->first_affected = 1;
                snprintf(r->reason, sizeof r->reason,
                         "substituted log: the witness never saw this log (%s); it saw log %s up "
                         "to record %" PRIu64 " (the log was replaced by another log, possibly "
                         "signed with the same host key)",
                         lv->log[0] ? lv->log : "a log without identity", other->log, other->seq);
        } else if (rewritten) {
                r->verdict = AIDP_WITNESS_REWRITTEN;
                r->first_affected = rewritten;
                snprintf(r->reason, sizeof r->reason,
                         "record %" PRIu64 " differs from the one the witness saw (the log was "
                         "rewritten from that record on, or replaced by an older fork of it)",
                         rewritten);
        } else if (r->last_seen > lv->n) {
                r->verdict = AIDP_WITNESS_ROLLBACK;
                r->first_affected = lv->n + 1;
                snprintf(r->reason, sizeof r->reason,
                         "rollback: the witness saw record %" PRIu64 " of this log, but the log "
                         "ends at record %" PRIu64 ": records %" PRIu64 "-%" PRIu64
                         " are missing (the log and its anchor were restored from an older copy "
                         "or cut)",
                         r->last_seen, lv->n, lv->n + 1, r->last_seen);
        } else {
                r->verdict = AIDP_WITNESS_CONFIRMED;
                snprintf(r->reason, sizeof r->reason,
                         "%" PRIu64 " head(s) of this log confirmed, the last for record %" PRIu64,
                         r->heads, r->last_seen);
        }
out:
        free(authentic);
        free(seen);
}
