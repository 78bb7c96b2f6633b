/* The views layer's byte buffer: it holds plaintext values and rows, so it is
 * wiped before its memory is given back or reused. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "views/views_internal.h"

int aidp_vbuf_reserve(struct aidp_vbuf *b, size_t more)
{
        if (b->cap - b->len >= more)
                return 0;
        if (more > SIZE_MAX / 2 - b->len)
                return -ENOMEM;
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < more)
                cap *= 2;
        /* Not realloc: the old block would be freed unwiped. */
        char *p = malloc(cap);
        if (!p)
                return -ENOMEM;
        if (b->p) {
                memcpy(p, b->p, b->len);
                OPENSSL_cleanse(b->p, b->cap);
                free(b->p);
        }
        b->p = p;
        b->cap = cap;
        return 0;
}

int aidp_vbuf_put(struct aidp_vbuf *b, const void *p, size_t n)
{
        if (n == 0)
                return 0;
        int r = aidp_vbuf_reserve(b, n);
        if (r < 0)
                return r;
        memcpy(b->p + b->len, p, n);
        b->len += n;
        return 0;
}

void aidp_vbuf_clear(struct aidp_vbuf *b)
{
        if (b->p && b->len)
                OPENSSL_cleanse(b->p, b->len);
        b->len = 0;
}

void aidp_vbuf_free(struct aidp_vbuf *b)
{
        if (b->p) {
                OPENSSL_cleanse(b->p, b->cap);
                free(b->p);
        }
        memset(b, 0, sizeof *b);
}
