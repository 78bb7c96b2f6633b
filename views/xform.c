/* Transforms of one value (views/view.h): restrictiveness, descriptions,
 * and the dispatcher over tokenize (token.c), mask (here) and generalize
 * (xform_generalize.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "views/views_internal.h"

int aidp_xform_rank(const struct aidp_xform *x)
{
        switch (x->kind) {
        case AIDP_XF_DROP: return 5;
        case AIDP_XF_NULL: return 4;
        case AIDP_XF_TOKENIZE: return 3;
        case AIDP_XF_MASK: return 2;
        case AIDP_XF_GENERALIZE: return 1;
        case AIDP_XF_RAW: return 0;
        }
        return 5; /* unknown: as restrictive as it gets */
}

static void describe_bands(const struct aidp_xform *x, char *buf, size_t len)
{
        size_t used = (size_t)snprintf(buf, len, "generalize(bands:");
        for (size_t i = 0; i < x->n_bands && used < len; i++)
                used += (size_t)snprintf(buf + used, len - used, "%s%g", i ? "," : "", x->bands[i]);
        if (used < len)
                snprintf(buf + used, len - used, ")");
}

static void describe_generalize(const struct aidp_xform *x, char *buf, size_t len)
{
        switch (x->gen) {
        case AIDP_GEN_DATE_YEAR: aidp_text_printf(buf, len, "generalize(date:year)"); return;
        case AIDP_GEN_DATE_MONTH: aidp_text_printf(buf, len, "generalize(date:month)"); return;
        case AIDP_GEN_NUMBER: aidp_text_printf(buf, len, "generalize(number:%g)", x->width); return;
        case AIDP_GEN_PREFIX: aidp_text_printf(buf, len, "generalize(prefix:%u)", x->keep); return;
        case AIDP_GEN_BANDS: describe_bands(x, buf, len); return;
        }
        aidp_text_printf(buf, len, "generalize(?)");
}

void aidp_xform_describe(const struct aidp_xform *x, char *buf, size_t len)
{
        if (!buf || !len)
                return;
        switch (x->kind) {
        case AIDP_XF_RAW: aidp_text_printf(buf, len, "raw"); return;
        case AIDP_XF_DROP: aidp_text_printf(buf, len, "drop"); return;
        case AIDP_XF_NULL: aidp_text_printf(buf, len, "null"); return;
        case AIDP_XF_TOKENIZE:
                aidp_text_printf(buf, len, "tokenize(%s, domain=%s, key=%s)",
                                 x->mode == AIDP_TOK_SIV ? "siv" : "hmac", x->domain, x->key_id);
                return;
        case AIDP_XF_MASK:
                if (x->mask_with[0])
                        aidp_text_printf(buf, len, "mask(keep_first=%u, keep_last=%u, with=\"%s\")",
                                         x->keep_first, x->keep_last, x->mask_with);
                else
                        aidp_text_printf(buf, len, "mask(keep_first=%u, keep_last=%u, char='%c')",
                                         x->keep_first, x->keep_last,
                                         x->mask_char ? x->mask_char : '*');
                return;
        case AIDP_XF_GENERALIZE: describe_generalize(x, buf, len); return;
        }
        aidp_text_printf(buf, len, "unknown");
}

/* Characters (code points) of a UTF-8 value; a stray byte counts as one. */
static size_t utf8_chars(const char *v, size_t n)
{
        size_t c = 0;
        for (size_t i = 0; i < n; c++)
                i += aidp_views_utf8_len((uint8_t)v[i]);
        return c;
}

/* Byte offset of the k-th character. */
static size_t utf8_offset(const char *v, size_t n, size_t k)
{
        size_t i = 0;
        while (k-- && i < n)
                i += aidp_views_utf8_len((uint8_t)v[i]);
        return i < n ? i : n;
}

/* Keep the first keep_first and last keep_last characters, one mask
 * character for each other one, or the fixed replacement for all of them
 * (mask_with: then the length is hidden too). A value too short to hide
 * anything is masked whole: "keep the last 4" of "123" must not give "123". */
int aidp_xform_mask(const struct aidp_xform *x, const char *v, size_t n, struct aidp_vbuf *out)
{
        char mc = x->mask_char ? x->mask_char : '*';
        size_t chars = utf8_chars(v, n);
        size_t kf = x->keep_first, kl = x->keep_last;
        if ((size_t)kf + kl >= chars)
                kf = kl = 0;
        size_t head = utf8_offset(v, n, kf), tail = utf8_offset(v, n, chars - kl);
        size_t with = strlen(x->mask_with);
        int r = aidp_vbuf_reserve(out, head + (with ? with : chars - kf - kl) + (n - tail));
        if (r < 0)
                return r;
        aidp_vbuf_put(out, v, head);
        if (with && n > 0)
                aidp_vbuf_put(out, x->mask_with, with);
        for (size_t i = 0; !with && i < chars - kf - kl; i++)
                out->p[out->len++] = mc;
        return aidp_vbuf_put(out, v + tail, n - tail);
}

int aidp_xform_apply(const struct aidp_xform *x, struct aidp_token_col *tok, const char *v,
                     size_t n, struct aidp_vbuf *out, bool *is_null, aidp_error *err)
{
        *is_null = false;
        int r = 0;
        switch (x->kind) {
        case AIDP_XF_TOKENIZE: return aidp_token_make(tok, v, n, out, err);
        case AIDP_XF_MASK: r = aidp_xform_mask(x, v, n, out); break;
        case AIDP_XF_GENERALIZE: r = aidp_xform_generalize(x, v, n, out, is_null); break;
        case AIDP_XF_NULL:
        case AIDP_XF_DROP: *is_null = true; return 0;
        case AIDP_XF_RAW: r = aidp_vbuf_put(out, v, n); break;
        }
        if (r < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}
