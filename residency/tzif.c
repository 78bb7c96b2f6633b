/* TZif reader (RFC 8536): the UTC offset of a zone at an instant.
 *
 * Why a parser of our own: the only libc route to a zone's offset is
 * setenv("TZ") + tzset() + localtime_r(), and changing the environment while
 * other threads run is undefined in glibc (getenv in another thread may read
 * freed memory). The supervisor has threads, so it reads the zone file itself
 * and hands the bytes to this pure function.
 *
 * Layout of a file: a 44-byte header and a data block with 32-bit times
 * (version 1); versions 2 to 4 follow it with a second header, a block with
 * 64-bit times and a footer "\n<POSIX TZ string>\n" that describes every
 * instant after the last transition. Only the newest block is used (the
 * 32-bit one ends in 2038). Everything is bounds-checked before it is read:
 * the input is a file on disk, and this code runs in a root process. */
#include "residency/tzif.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define HDR_LEN 44

struct tzif_hdr {
        uint8_t version;
        uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

struct tzif_block {
        const uint8_t *times; /* timecnt big-endian times of tsize bytes */
        const uint8_t *idx;   /* timecnt indices into types */
        const uint8_t *types; /* typecnt records: int32 utoff, isdst, desigidx */
        uint32_t timecnt, typecnt, charcnt;
        unsigned tsize;
};

static uint32_t be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t time_at(const struct tzif_block *b, size_t i)
{
        const uint8_t *p = b->times + i * b->tsize;
        if (b->tsize == 4)
                return (int32_t)be32(p);
        return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static long utoff_of(const struct tzif_block *b, size_t type)
{
        return (int32_t)be32(b->types + type * 6);
}

static int read_header(const uint8_t *p, size_t len, struct tzif_hdr *h)
{
        if (len < HDR_LEN || memcmp(p, "TZif", 4))
                return -EINVAL;
        h->version = p[4];
        if (h->version != 0 && (h->version < '2' || h->version > '4'))
                return -EINVAL;
        uint32_t *c[] = {&h->isutcnt, &h->isstdcnt, &h->leapcnt,
                         &h->timecnt, &h->typecnt,  &h->charcnt};
        for (size_t i = 0; i < 6; i++) {
                *c[i] = be32(p + 20 + 4 * i);
                if (*c[i] > (1u << 24)) /* keeps every size below in 64 bits */
                        return -EINVAL;
        }
        /* RFC 8536 3.1: at least one type and one designation byte; the
         * indicator arrays are absent or one per type. */
        if (!h->typecnt || !h->charcnt || (h->isutcnt && h->isutcnt != h->typecnt) ||
            (h->isstdcnt && h->isstdcnt != h->typecnt))
                return -EINVAL;
        return 0;
}

static uint64_t block_len(const struct tzif_hdr *h, unsigned tsize)
{
        return (uint64_t)h->timecnt * (tsize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
               (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

/* Ascending transitions, indices that name a type, types that make sense. */
static int check_block(const struct tzif_block *b)
{
        for (size_t i = 0; i < b->timecnt; i++) {
                if (b->idx[i] >= b->typecnt)
                        return -EINVAL;
                if (i && time_at(b, i) <= time_at(b, i - 1))
                        return -EINVAL;
        }
        for (size_t i = 0; i < b->typecnt; i++) {
                const uint8_t *t = b->types + i * 6;
                long off = utoff_of(b, i);
                /* RFC 8536: -89999 .. 93599 (a day either way, roughly). */
                if (off < -89999 || off > 93599 || t[4] > 1 || t[5] >= b->charcnt)
                        return -EINVAL;
        }
        return 0;
}

static void block_at(const uint8_t *p, const struct tzif_hdr *h, unsigned tsize,
                     struct tzif_block *b)
{
        b->tsize = tsize;
        b->timecnt = h->timecnt;
        b->typecnt = h->typecnt;
        b->charcnt = h->charcnt;
        b->times = p;
        b->idx = p + (size_t)h->timecnt * tsize;
        b->types = b->idx + h->timecnt;
}

/* The newest data block and, for version 2 and later, the footer's TZ string
 * (*rule, *rule_len; empty when the file has none). */
static int locate(const uint8_t *buf, size_t len, struct tzif_block *b, const char **rule,
                  size_t *rule_len)
{
        struct tzif_hdr h;
        int rc = read_header(buf, len, &h);
        if (rc < 0)
                return rc;
        uint64_t l1 = block_len(&h, 4);
        if (l1 > len - HDR_LEN)
                return -EINVAL;
        *rule = NULL;
        *rule_len = 0;
        if (h.version == 0) {
                block_at(buf + HDR_LEN, &h, 4, b);
                return check_block(b);
        }
        const uint8_t *p2 = buf + HDR_LEN + l1;
        size_t left = len - HDR_LEN - (size_t)l1;
        struct tzif_hdr h2;
        if ((rc = read_header(p2, left, &h2)) < 0 || h2.version < '2')
                return -EINVAL;
        uint64_t l2 = block_len(&h2, 8);
        if (l2 > left - HDR_LEN)
                return -EINVAL;
        block_at(p2 + HDR_LEN, &h2, 8, b);
        const uint8_t *f = p2 + HDR_LEN + l2;
        size_t flen = left - HDR_LEN - (size_t)l2;
        if (flen < 2 || f[0] != '\n')
                return -EINVAL;
        const uint8_t *nl = memchr(f + 1, '\n', flen - 1);
        if (!nl)
                return -EINVAL;
        *rule = (const char *)f + 1;
        *rule_len = (size_t)(nl - f - 1);
        return check_block(b);
}

int aidp_residency_tzif_offset(const uint8_t *buf, size_t len, int64_t instant, long *ret)
{
        struct tzif_block b;
        const char *rule;
        size_t rule_len;
        int rc = locate(buf, len, &b, &rule, &rule_len);
        if (rc < 0)
                return rc;
        if (instant > AIDP_RESIDENCY_TZ_MAX_INSTANT || instant < -AIDP_RESIDENCY_TZ_MAX_INSTANT)
                return -ERANGE;
        /* Before the first transition (or with none): type 0 (RFC 8536 3.2). */
        if (b.timecnt == 0 || instant < time_at(&b, 0)) {
                *ret = utoff_of(&b, 0);
                return 0;
        }
        if (instant >= time_at(&b, b.timecnt - 1)) {
                if (rule_len)
                        return aidp_residency_tz_rule_offset(rule, rule_len, instant, ret);
                *ret = utoff_of(&b, b.idx[b.timecnt - 1]);
                return 0;
        }
        /* The last transition at or before the instant. */
        size_t lo = 0, hi = b.timecnt - 1; /* time_at(lo) <= instant < time_at(hi) */
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (time_at(&b, mid) <= instant)
                        lo = mid;
                else
                        hi = mid;
        }
        *ret = utoff_of(&b, b.idx[lo]);
        return 0;
}
