/* What the store last verified or wrote itself, by its bytes (lineage_internal.h,
 * "memo").
 *
 * An append reads the anchor and the log's last line several times: the tail
 * check, then the commit's state checks and the group sync (lineage_commit.c),
 * then the next append's tail check; each read was a json-c parse and an HMAC
 * (docs/run-core.md, "Start-up time"). The memo keeps the exact bytes of the
 * last anchor block and the last record line that passed those checks (or that
 * this store wrote with its key, which pass them by construction), with what
 * they say. A read whose bytes are the same bytes is answered from the memo:
 * the checks are a function of the bytes and the key alone, so they would find
 * the same. Any other bytes (a rewritten, cut, tampered or rotated file) are
 * checked in full, and replace the memo only once they pass. Nothing about the
 * file (inode, size, time) is trusted: the bytes are always read again.
 *
 * The buffers are allocated with the store: the fsync thread, which must malloc
 * only in its own arena (supervisor/run/startup.c), allocates nothing for it.
 * A line longer than the buffer is never kept. */
#define _GNU_SOURCE
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/lineage/codec/lineage_codec.h"
#include "supervisor/lineage/codec/lineage_mac.h"
#include "supervisor/lineage/lineage_internal.h"

#define MEMO_LINE_MAX 16384

struct aidp_lineage_memo {
        pthread_mutex_t mu;
        size_t anchor_len; /* 0: none */
        char anchor_bytes[AIDP_LINEAGE_ANCHOR_SIZE];
        struct aidp_lineage_anchor anchor;
        size_t line_len; /* 0: none */
        char line_bytes[MEMO_LINE_MAX];
        struct aidp_lineage_record line;
};

static _Atomic uint64_t g_hits;

uint64_t aidp_lineage_memo_hits(void)
{
        return atomic_load(&g_hits);
}

/* The memo a daemon's idle worker filled before its request
 * (aidp_lineage_key_warm_fork), and which key it checked the bytes with: the
 * key's SHA-256, not a copy of the key (the zygote and pid 1 are forked from
 * the worker after this). */
static struct {
        struct aidp_lineage_memo *memo;
        char key_id[AIDP_LINEAGE_HASH_HEX + 1];
} g_warm;

struct aidp_lineage_memo *aidp_lineage_memo_new(void)
{
        struct aidp_lineage_memo *m = calloc(1, sizeof *m);
        if (m)
                pthread_mutex_init(&m->mu, NULL);
        return m;
}

void aidp_lineage_memo_free(struct aidp_lineage_memo *m)
{
        if (!m)
                return;
        pthread_mutex_destroy(&m->mu);
        free(m);
}

/* The memo's answer for these bytes: true and *out filled when they are the
 * kept bytes. */
static bool recall(struct aidp_lineage_memo *m, const char *kept, const size_t *kept_len,
                   const void *kept_val, const char *buf, size_t len, void *out, size_t size)
{
        if (!m || len == 0)
                return false;
        pthread_mutex_lock(&m->mu);
        bool same = *kept_len == len && memcmp(kept, buf, len) == 0;
        if (same)
                memcpy(out, kept_val, size);
        pthread_mutex_unlock(&m->mu);
        if (same)
                atomic_fetch_add(&g_hits, 1);
        return same;
}

static void keep(struct aidp_lineage_memo *m, char *kept, size_t *kept_len, size_t max,
                 void *kept_val, const char *buf, size_t len, const void *val, size_t size)
{
        if (!m)
                return;
        pthread_mutex_lock(&m->mu);
        if (len > 0 && len <= max) {
                memcpy(kept, buf, len);
                memcpy(kept_val, val, size);
                *kept_len = len;
        } else {
                *kept_len = 0; /* never a stale answer for other bytes */
        }
        pthread_mutex_unlock(&m->mu);
}

void aidp_lineage_memo_anchor(const struct aidp_lineage *lg, const char *buf, size_t len,
                              const struct aidp_lineage_anchor *a)
{
        struct aidp_lineage_memo *m = lg->memo;
        if (m)
                keep(m, m->anchor_bytes, &m->anchor_len, sizeof m->anchor_bytes, &m->anchor, buf,
                     len, a, sizeof *a);
}

int aidp_lineage_anchor_check(const struct aidp_lineage *lg, const char *buf, size_t len,
                              struct aidp_lineage_anchor *a, aidp_error *err)
{
        struct aidp_lineage_memo *m = lg->memo;
        if (m && recall(m, m->anchor_bytes, &m->anchor_len, &m->anchor, buf, len, a, sizeof *a))
                return 0;
        int r = aidp_lineage_anchor_parse(buf, len, lg->key, a, err);
        if (r == 0)
                aidp_lineage_memo_anchor(lg, buf, len, a);
        return r;
}

void aidp_lineage_memo_line(const struct aidp_lineage *lg, const char *line, size_t len,
                            const struct aidp_lineage_record *rec)
{
        struct aidp_lineage_memo *m = lg->memo;
        if (m)
                keep(m, m->line_bytes, &m->line_len, sizeof m->line_bytes, &m->line, line, len, rec,
                     sizeof *rec);
}

int aidp_lineage_line_check(const struct aidp_lineage *lg, const char *line, size_t len,
                            struct aidp_lineage_record *rec, aidp_error *err)
{
        struct aidp_lineage_memo *m = lg->memo;
        if (m && recall(m, m->line_bytes, &m->line_len, &m->line, line, len, rec, sizeof *rec))
                return 0;
        int r = aidp_lineage_record_scan(line, len, lg->key, rec, err);
        if (r == 0)
                aidp_lineage_memo_line(lg, line, len, rec);
        return r;
}

void aidp_lineage_memo_keep_warm(struct aidp_lineage *lg)
{
        if (!lg->memo || !lg->have_key)
                return;
        char id[AIDP_LINEAGE_HASH_HEX + 1];
        if (aidp_lineage_sha256_hex(lg->key, sizeof lg->key, id) < 0)
                return;
        struct aidp_lineage_memo *old = g_warm.memo;
        g_warm.memo = lg->memo;
        memcpy(g_warm.key_id, id, sizeof id);
        lg->memo = NULL;
        aidp_lineage_memo_free(old);
}

void aidp_lineage_memo_adopt_warm(struct aidp_lineage *lg)
{
        struct aidp_lineage_memo *w = g_warm.memo, *m = lg->memo;
        char id[AIDP_LINEAGE_HASH_HEX + 1];
        /* What was checked with another key says nothing under this one. */
        if (!w || !m || !lg->have_key || aidp_lineage_sha256_hex(lg->key, sizeof lg->key, id) < 0 ||
            CRYPTO_memcmp(g_warm.key_id, id, sizeof id))
                return;
        pthread_mutex_lock(&w->mu);
        pthread_mutex_lock(&m->mu);
        m->anchor_len = w->anchor_len;
        memcpy(m->anchor_bytes, w->anchor_bytes, w->anchor_len);
        m->anchor = w->anchor;
        m->line_len = w->line_len;
        memcpy(m->line_bytes, w->line_bytes, w->line_len);
        m->line = w->line;
        pthread_mutex_unlock(&m->mu);
        pthread_mutex_unlock(&w->mu);
}
