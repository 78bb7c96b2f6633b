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
#include "supervisor/lineage/codec/lineage_mac.h"

#define HEAD_DOMAIN "aidp-lineage-head-v1:"

static int head_msg(const struct aidp_lineage_head *h, char msg[192])
{
        int n = snprintf(msg, 192, HEAD_DOMAIN "%s:%" PRIu64 ":%s", h->log, h->seq, h->hash);
        return n < 0 || n >= 192 ? -EIO : n;
}

static int head_mac(const struct aidp_lineage_head *h, const unsigned char *key,
                    char out[AIDP_LINEAGE_HASH_HEX + 1])
{
        char msg[192];
        int n = head_msg(h, msg);
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen = 0;
        if (n < 0 ||
            !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, AIDP_LINEAGE_KEY_LEN,
                       (const unsigned char *)msg, (size_t)n, mac, sizeof mac, &maclen) ||
            maclen != 32)
                return -EIO;
        aidp_hex_encode(mac, 32, out);
        return 0;
}

/* The same with a keyed context made once (the comparison checks every head). */
static bool head_mac_ok_with(struct aidp_lineage_mac *m, const struct aidp_lineage_head *h)
{
        char msg[192], want[AIDP_LINEAGE_HASH_HEX + 1];
        int n = head_msg(h, msg);
        return n > 0 && aidp_lineage_mac_hex(m, msg, (size_t)n, NULL, 0, want) == 0 &&
               CRYPTO_memcmp(want, h->mac, AIDP_LINEAGE_HASH_HEX) == 0;
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
        /* Digits only: strtoull would skip leading spaces and take a sign,
         * so " 0" was a seq of 0 (a witness compare then indexed seen[-1]). */
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
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

/* A head line as aidp_lineage_head_json writes it, read by position (a witness
 * file holds one per record: verify reads them all). false: another spelling,
 * for the JSON parser. */
static bool scan_json(const char *line, size_t len, struct aidp_lineage_head *h)
{
        static const char p1[] = "{\"log\":\"", p2[] = "\",\"seq\":", p3[] = ",\"hash\":\"",
                          p4[] = "\",\"mac\":\"", p5[] = "\"}";
        const size_t fixed = sizeof p1 + sizeof p2 + sizeof p3 + sizeof p4 + sizeof p5 - 5 +
                             AIDP_LINEAGE_LOG_ID_HEX + 2 * AIDP_LINEAGE_HASH_HEX;
        if (len <= fixed || len > fixed + 19)
                return false;
        const char *c = line;
        if (memcmp(c, p1, sizeof p1 - 1) ||
            !copy_hex(h->log, c + sizeof p1 - 1, AIDP_LINEAGE_LOG_ID_HEX, AIDP_LINEAGE_LOG_ID_HEX))
                return false;
        c += sizeof p1 - 1 + AIDP_LINEAGE_LOG_ID_HEX;
        if (memcmp(c, p2, sizeof p2 - 1))
                return false;
        c += sizeof p2 - 1;
        size_t nd = len - fixed;
        if (!parse_seq(c, nd, &h->seq))
                return false;
        c += nd;
        if (memcmp(c, p3, sizeof p3 - 1) ||
            !copy_hex(h->hash, c + sizeof p3 - 1, AIDP_LINEAGE_HASH_HEX, AIDP_LINEAGE_HASH_HEX))
                return false;
        c += sizeof p3 - 1 + AIDP_LINEAGE_HASH_HEX;
        if (memcmp(c, p4, sizeof p4 - 1) ||
            !copy_hex(h->mac, c + sizeof p4 - 1, AIDP_LINEAGE_HASH_HEX, AIDP_LINEAGE_HASH_HEX))
                return false;
        c += sizeof p4 - 1 + AIDP_LINEAGE_HASH_HEX;
        return memcmp(c, p5, sizeof p5 - 1) == 0;
}

static bool head_members(json_object *o, struct aidp_lineage_head *h);

static int parse_json(const char *line, size_t len, struct aidp_lineage_head *h)
{
        if (scan_json(line, len, h))
                return 1;
        memset(h, 0, sizeof *h);
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *o = json_tokener_parse_ex(tok, line, (int)len);
        bool whole = o && json_tokener_get_error(tok) == json_tokener_success &&
                     (size_t)json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        int r = -EINVAL;
        if (whole && json_object_is_type(o, json_type_object)) {
                /* An exported OpenLineage event carries its head as a run facet. */
                json_object *run;
                if (json_object_object_get_ex(o, "eventType", NULL) &&
                    json_object_object_get_ex(o, "run", &run))
                        r = aidp_lineage_head_of_event(o, h);
                else
                        r = head_members(o, h) ? 1 : -EINVAL;
        }
        json_object_put(o);
        return r;
}

/* log, seq, hash and mac members of o, well-formed. */
static bool head_members(json_object *o, struct aidp_lineage_head *h)
{
        json_object *log, *seq, *hash, *mac;
        if (!json_object_object_get_ex(o, "log", &log) ||
            !json_object_object_get_ex(o, "seq", &seq) ||
            !json_object_object_get_ex(o, "hash", &hash) ||
            !json_object_object_get_ex(o, "mac", &mac) ||
            !json_object_is_type(seq, json_type_int) || json_object_get_int64(seq) < 1 ||
            !json_object_is_type(log, json_type_string) ||
            !json_object_is_type(hash, json_type_string) ||
            !json_object_is_type(mac, json_type_string) ||
            !copy_hex(h->log, json_object_get_string(log), AIDP_LINEAGE_LOG_ID_HEX,
                      (size_t)json_object_get_string_len(log)) ||
            !copy_hex(h->hash, json_object_get_string(hash), AIDP_LINEAGE_HASH_HEX,
                      (size_t)json_object_get_string_len(hash)) ||
            !copy_hex(h->mac, json_object_get_string(mac), AIDP_LINEAGE_HASH_HEX,
                      (size_t)json_object_get_string_len(mac)))
                return false;
        h->seq = json_object_get_uint64(seq);
        return true;
}

static void put_head(json_object *f, const struct aidp_lineage_head *h)
{
        json_object_object_add(f, "log", json_object_new_string(h->log));
        json_object_object_add(f, "seq", json_object_new_uint64(h->seq));
        json_object_object_add(f, "hash", json_object_new_string(h->hash));
        json_object_object_add(f, "mac", json_object_new_string(h->mac));
}

void aidp_lineage_set_head_facet(json_object *ev, const struct aidp_lineage_head *h)
{
        json_object *f = aidp_lineage_run_facet(ev, AIDP_LINEAGE_HEAD_FACET);
        if (f)
                put_head(f, h);
}

static json_object *run_facet_of(json_object *ev, const char *name)
{
        json_object *run, *facets, *f;
        if (!json_object_object_get_ex(ev, "run", &run) ||
            !json_object_object_get_ex(run, "facets", &facets) ||
            !json_object_object_get_ex(facets, name, &f))
                return NULL;
        return f;
}

int aidp_lineage_head_of_event(json_object *ev, struct aidp_lineage_head *h)
{
        memset(h, 0, sizeof *h);
        json_object *f = run_facet_of(ev, AIDP_LINEAGE_HEAD_FACET);
        if (!f)
                return 0;
        return json_object_is_type(f, json_type_object) && head_members(f, h) ? 1 : -EINVAL;
}

void aidp_lineage_set_rotation(json_object *ev, const struct aidp_lineage_link *l)
{
        json_object *f = aidp_lineage_run_facet(ev, AIDP_LINEAGE_ROTATION_FACET);
        json_object *prev = json_object_new_object();
        if (!f || !prev) {
                json_object_put(prev);
                return;
        }
        put_head(prev, &l->prev);
        json_object_object_add(prev, "file", json_object_new_string(l->file));
        json_object_object_add(f, "previous", prev);
}

int aidp_lineage_rotation_of(json_object *ev, struct aidp_lineage_link *l)
{
        memset(l, 0, sizeof *l);
        json_object *f = run_facet_of(ev, AIDP_LINEAGE_ROTATION_FACET), *prev, *file;
        if (!f)
                return 0;
        if (!json_object_object_get_ex(f, "previous", &prev) ||
            !json_object_is_type(prev, json_type_object) || !head_members(prev, &l->prev) ||
            !json_object_object_get_ex(prev, "file", &file) ||
            !json_object_is_type(file, json_type_string))
                return -EINVAL;
        const char *name = json_object_get_string(file);
        size_t n = (size_t)json_object_get_string_len(file);
        /* A name in the log's own directory, nothing a path could climb out with. */
        if (n == 0 || n > AIDP_LINEAGE_ARCHIVE_NAME_MAX || memchr(name, '/', n) ||
            memchr(name, '\0', n) || !strcmp(name, ".") || !strcmp(name, ".."))
                return -EINVAL;
        memcpy(l->file, name, n + 1);
        return 1;
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

static bool is_prior(const struct aidp_lineage_log_view *lv, const char *log)
{
        for (size_t i = 0; i < lv->nprior; i++)
                if (!strcmp(lv->prior[i], log))
                        return true;
        return false;
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
        struct aidp_lineage_mac *m = key ? aidp_lineage_mac_new(key) : NULL;
        if (!authentic || !seen || (key && !m)) {
                r->verdict = AIDP_WITNESS_SILENT;
                snprintf(r->reason, sizeof r->reason, "out of memory");
                goto out;
        }
        size_t nauth = 0, nprior = 0;
        uint64_t rewritten = 0;
        for (size_t i = 0; i < n; i++) {
                if (key && !head_mac_ok_with(m, &heads[i])) {
                        r->forged++;
                        continue;
                }
                authentic[i] = true;
                nauth++;
                if (lv->log[0] && is_prior(lv, heads[i].log))
                        nprior++;
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
        } else if (r->heads == 0 && nprior == nauth) {
                r->verdict = AIDP_WITNESS_SILENT;
                snprintf(r->reason, sizeof r->reason,
                         "the witness holds no head of this log yet, only of the log(s) it "
                         "follows by rotation (checked along the rotation links): rollback of "
                         "this log cannot be excluded");
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
        aidp_lineage_mac_free(m);
        free(authentic);
        free(seen);
}

/* ---- the TPM counter witness ------------------------------------------------------------ */

void aidp_lineage_set_tpm_binding(json_object *ev, uint32_t nv_index, uint64_t counter)
{
        json_object *f = aidp_lineage_run_facet(ev, AIDP_LINEAGE_TPM_FACET);
        char ix[16];
        snprintf(ix, sizeof ix, "0x%08" PRIx32, nv_index);
        if (!f)
                return;
        json_object_object_add(f, "nvIndex", json_object_new_string(ix));
        json_object_object_add(f, "counter", json_object_new_uint64(counter));
}

int aidp_lineage_tpm_binding_of(json_object *ev, uint32_t *nv_index, uint64_t *counter)
{
        json_object *f = run_facet_of(ev, AIDP_LINEAGE_TPM_FACET), *ix, *c;
        if (!f)
                return 0;
        if (!json_object_object_get_ex(f, "nvIndex", &ix) ||
            !json_object_is_type(ix, json_type_string) ||
            !json_object_object_get_ex(f, "counter", &c) ||
            !json_object_is_type(c, json_type_int) || json_object_get_int64(c) < 1)
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long v = strtoul(json_object_get_string(ix), &end, 16);
        if (errno || *end || v > UINT32_MAX)
                return -EINVAL;
        *nv_index = (uint32_t)v;
        *counter = json_object_get_uint64(c);
        return 1;
}

void aidp_lineage_tpm_compare(uint64_t records, uint64_t bound_seq, uint64_t bound, bool readable,
                              uint64_t counter, struct aidp_lineage_witness_result *r)
{
        memset(r, 0, sizeof *r);
        r->last_seen = bound_seq;
        if (!readable && bound_seq) {
                r->verdict = AIDP_WITNESS_SUBSTITUTED;
                r->first_affected = bound_seq;
                snprintf(r->reason, sizeof r->reason,
                         "the TPM counter was never incremented, but record %" PRIu64
                         " binds %" PRIu64 ": the NV index was redefined, or the log was made "
                         "against another TPM (substituted)",
                         bound_seq, bound);
        } else if (!readable || (records > 0 && bound_seq == 0 && counter == 0)) {
                r->verdict = AIDP_WITNESS_SILENT;
                snprintf(r->reason, sizeof r->reason,
                         "the TPM counter was never incremented%s: rollback of this log cannot be "
                         "excluded",
                         records ? " and no record binds it" : "");
        } else if (records == 0) {
                r->verdict = AIDP_WITNESS_EMPTIED;
                r->first_affected = 1;
                snprintf(r->reason, sizeof r->reason,
                         "emptied log: the log has no records, but the TPM counter stands at "
                         "%" PRIu64 " (records were committed; the log was emptied or replaced "
                         "and its anchor removed)",
                         counter);
        } else if (bound_seq == 0) {
                r->verdict = AIDP_WITNESS_SUBSTITUTED;
                r->first_affected = 1;
                snprintf(r->reason, sizeof r->reason,
                         "substituted log: no record of this log binds the TPM counter, which "
                         "stands at %" PRIu64 " (another log took this one's place)",
                         counter);
        } else if (counter > bound) {
                r->verdict = AIDP_WITNESS_ROLLBACK;
                r->first_affected = bound_seq + 1;
                snprintf(r->reason, sizeof r->reason,
                         "rollback: the TPM counter stands at %" PRIu64 ", but the last record "
                         "binding it (record %" PRIu64 " of %" PRIu64 ") says %" PRIu64 ": %" PRIu64
                         " committed record(s) after record %" PRIu64
                         " are missing (the log and its anchor were restored from an older "
                         "copy or cut)",
                         counter, bound_seq, records, bound, counter - bound, bound_seq);
        } else if (counter + 1 < bound) {
                r->verdict = AIDP_WITNESS_SUBSTITUTED;
                r->first_affected = bound_seq;
                snprintf(r->reason, sizeof r->reason,
                         "the TPM counter stands at %" PRIu64 ", below the %" PRIu64
                         " that record %" PRIu64 " binds: the log was made against another TPM "
                         "or NV index (substituted), or the index was redefined",
                         counter, bound, bound_seq);
        } else {
                r->verdict = AIDP_WITNESS_CONFIRMED;
                r->heads = 1;
                r->unseen = records - bound_seq + (counter + 1 == bound);
                if (r->unseen) {
                        r->gap_from = counter + 1 == bound ? bound_seq : bound_seq + 1;
                        r->gap_to = records;
                }
                if (counter == bound)
                        snprintf(r->reason, sizeof r->reason,
                                 "the TPM counter (%" PRIu64 ") confirms the log up to record "
                                 "%" PRIu64,
                                 counter, bound_seq);
                else
                        snprintf(r->reason, sizeof r->reason,
                                 "the TPM counter (%" PRIu64 ") is one short of what record "
                                 "%" PRIu64 " binds: its increment never reached the TPM (it "
                                 "was down, or the supervisor stopped first); no record is "
                                 "missing",
                                 counter, bound_seq);
        }
}
