#include "common/strv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

void aidp_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

int aidp_strv_push_take(char ***v, size_t *n, char *s)
{
        if (!s)
                return -ENOMEM;
        char **nv = realloc(*v, (*n + 2) * sizeof *nv);
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        nv[(*n)++] = s;
        nv[*n] = NULL;
        *v = nv;
        return 0;
}

int aidp_strv_push(char ***v, size_t *n, const char *s)
{
        return aidp_strv_push_take(v, n, strdup(s));
}

int aidp_strv_dup(char *const *v, size_t n, char ***ret)
{
        _cleanup_(aidp_strv_freep) char **out = calloc(n + 1, sizeof *out);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(out[i] = strdup(v[i])))
                        return -ENOMEM;
        *ret = TAKE_PTR(out);
        return 0;
}

bool aidp_strv_contains(char *const *v, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(v[i], s))
                        return true;
        return false;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int aidp_strv_union(char *const *a, size_t na, char *const *b, size_t nb, char ***ret,
                    size_t *ret_n)
{
        _cleanup_free_ char **all = calloc(na + nb + 1, sizeof *all);
        if (!all)
                return -ENOMEM;
        if (na)
                memcpy(all, a, na * sizeof *all);
        if (nb)
                memcpy(all + na, b, nb * sizeof *all);
        qsort(all, na + nb, sizeof *all, cmp_str);

        _cleanup_(aidp_strv_freep) char **out = calloc(na + nb + 1, sizeof *out);
        if (!out)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < na + nb; i++) {
                if (n > 0 && !strcmp(out[n - 1], all[i]))
                        continue;
                if (!(out[n++] = strdup(all[i])))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(out);
        *ret_n = n;
        return 0;
}
