/* generalize (views/view.h): dates to year or month, numbers to buckets,
 * a prefix of N characters, bands. A value the rule cannot read becomes
 * null, never passes through raw. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views/views_internal.h"

static bool digits(const char *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (v[i] < '0' || v[i] > '9')
                        return false;
        return true;
}

/* ISO 8601 "YYYY-MM-DD", optionally followed by a time ("T..." or " ..."),
 * or "YYYY-MM" alone. */
static bool read_date(const char *v, size_t n, int *month)
{
        if (n < 7 || !digits(v, 4) || v[4] != '-' || !digits(v + 5, 2))
                return false;
        *month = (v[5] - '0') * 10 + (v[6] - '0');
        if (*month < 1 || *month > 12)
                return false;
        if (n == 7)
                return true;
        if (n < 10 || v[7] != '-' || !digits(v + 8, 2))
                return false;
        int day = (v[8] - '0') * 10 + (v[9] - '0');
        if (day < 1 || day > 31)
                return false;
        if (n == 10)
                return true;
        if (v[10] != 'T' && v[10] != 't' && v[10] != ' ')
                return false;
        /* a time: HH:MM at least; the rest (seconds, fraction, zone) is dropped anyway */
        return n >= 16 && digits(v + 11, 2) && v[13] == ':' && digits(v + 14, 2);
}

/* The whole value is a finite number (leading/trailing blanks refused). */
static bool read_number(const char *v, size_t n, double *out)
{
        char tmp[64];
        if (n == 0 || n >= sizeof tmp)
                return false;
        memcpy(tmp, v, n);
        tmp[n] = 0;
        if (!(tmp[0] == '-' || tmp[0] == '+' || tmp[0] == '.' || (tmp[0] >= '0' && tmp[0] <= '9')))
                return false;
        char *end;
        *out = strtod(tmp, &end);
        return *end == 0 && isfinite(*out);
}

static int put_text(struct aidp_vbuf *out, const char *pre, double a, const char *mid, double b,
                    const char *post)
{
        char buf[96];
        int w = mid ? snprintf(buf, sizeof buf, "%s%.15g%s%.15g%s", pre, a, mid, b, post)
                    : snprintf(buf, sizeof buf, "%s%.15g%s", pre, a, post);
        if (w < 0 || (size_t)w >= sizeof buf)
                return -1;
        return aidp_vbuf_put(out, buf, (size_t)w);
}

/* "[lo,hi)" with lo = floor(v / width) * width. */
static int number_bucket(const struct aidp_xform *x, double v, struct aidp_vbuf *out)
{
        double lo = floor(v / x->width) * x->width;
        /* -0 reads badly: "[-0,10)" */
        if (lo == 0)
                lo = 0;
        return put_text(out, "[", lo, ",", lo + x->width, ")");
}

/* "lo-hi" for lo <= v < hi; "<first" below the first edge, "last+" from the last. */
static int band(const struct aidp_xform *x, double v, struct aidp_vbuf *out)
{
        if (x->n_bands == 0)
                return -1;
        if (v < x->bands[0])
                return put_text(out, "<", x->bands[0], NULL, 0, "");
        for (size_t i = 0; i + 1 < x->n_bands; i++)
                if (v < x->bands[i + 1])
                        return put_text(out, "", x->bands[i], "-", x->bands[i + 1], "");
        return put_text(out, "", x->bands[x->n_bands - 1], NULL, 0, "+");
}

int aidp_xform_generalize(const struct aidp_xform *x, const char *v, size_t n,
                          struct aidp_vbuf *out, bool *is_null)
{
        int month;
        double d;
        *is_null = false;
        switch (x->gen) {
        case AIDP_GEN_DATE_YEAR:
        case AIDP_GEN_DATE_MONTH:
                if (!read_date(v, n, &month))
                        break;
                return aidp_vbuf_put(out, v, x->gen == AIDP_GEN_DATE_YEAR ? 4 : 7);
        case AIDP_GEN_NUMBER:
                if (!(x->width > 0) || !read_number(v, n, &d))
                        break;
                return number_bucket(x, d, out) < 0 ? -1 : 0;
        case AIDP_GEN_BANDS:
                if (!read_number(v, n, &d))
                        break;
                return band(x, d, out) < 0 ? -1 : 0;
        case AIDP_GEN_PREFIX: {
                size_t i = 0, k = x->keep;
                while (k-- && i < n)
                        i += aidp_views_utf8_len((uint8_t)v[i]);
                return aidp_vbuf_put(out, v, i < n ? i : n);
        }
        }
        *is_null = true;
        return 0;
}
