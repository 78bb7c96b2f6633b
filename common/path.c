/* Path helpers (path.h). */
#include "common/path.h"

#include <errno.h>
#include <string.h>

bool aidp_path_is_clean_abs(const char *s)
{
        if (!s || s[0] != '/' || strlen(s) > AIDP_PATH_CLEAN_MAX)
                return false;
        if (!strcmp(s, "/"))
                return true;
        for (const char *p = s; *p;) {
                if (*p != '/')
                        return false;
                p++;
                size_t l = strcspn(p, "/");
                if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                p += l;
        }
        return true;
}

int aidp_path_join(char *out, size_t size, const char *a, const char *b)
{
        size_t la = strlen(a);
        while (la > 0 && a[la - 1] == '/')
                la--;
        while (*b == '/')
                b++;
        size_t lb = strlen(b);
        /* a "/" b NUL; a = "/" keeps its slash (la is 0 then) */
        if (size == 0 || la + 1 + lb + 1 > size) {
                if (size)
                        out[0] = '\0';
                return -ENAMETOOLONG;
        }
        memmove(out, a, la);
        out[la] = '/';
        memcpy(out + la + 1, b, lb + 1);
        return 0;
}
