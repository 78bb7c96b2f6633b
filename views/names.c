/* Names the views layer accepts: labels, token domains, file patterns, JSON
 * pointers, and the UTF-8 check the viewer and the masks share. */
#include <string.h>

#include "views/views_internal.h"

bool aidp_views_is_name(const char *s, size_t max)
{
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
                return false;
        for (size_t i = 1; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                      c == '-'))
                        return false;
        }
        return true;
}

bool aidp_views_is_label(const char *s)
{
        return aidp_views_is_name(s, AIDP_VIEW_LABEL_MAX);
}

bool aidp_views_is_pattern(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 1024 || s[0] == '/' || s[n - 1] == '/')
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        const char *p = s;
        while (*p) {
                const char *e = strchr(p, '/');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                p += l + (e ? 1 : 0);
        }
        return true;
}

bool aidp_views_is_pointer(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 1024 || s[0] != '/')
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] == '~' && s[i + 1] != '0' && s[i + 1] != '1')
                        return false;
        return aidp_views_utf8_check((const uint8_t *)s, n) == n;
}

size_t aidp_views_utf8_check(const uint8_t *s, size_t len)
{
        size_t i = 0;
        while (i < len) {
                /* ASCII runs, 8 bytes at a time: most data is ASCII. */
                while (len - i >= 8) {
                        uint64_t w;
                        memcpy(&w, s + i, 8);
                        if (w & UINT64_C(0x8080808080808080))
                                break;
                        i += 8;
                }
                if (i >= len)
                        break;
                uint8_t c = s[i];
                if (c < 0x80) {
                        i++;
                        continue;
                }
                size_t n;
                uint32_t cp, min;
                if ((c & 0xe0) == 0xc0) {
                        n = 2, cp = c & 0x1f, min = 0x80;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 3, cp = c & 0x0f, min = 0x800;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 4, cp = c & 0x07, min = 0x10000;
                } else {
                        return i;
                }
                if (len - i < n)
                        return i;
                for (size_t k = 1; k < n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return i;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return i;
                i += n;
        }
        return len;
}
