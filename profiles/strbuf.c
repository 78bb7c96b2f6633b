/* The growable string of profiles/ (internal.h): its own file, so that what
 * needs only it and the units (units.c; aidp-run's option parser) links no
 * seccomp or capability library. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/internal.h"

#pragma GCC diagnostic ignored "-Wformat-nonliteral"

void aidp_profiles_sb_printf(struct aidp_sb *b, const char *fmt, ...)
{
        if (b->oom)
                return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->oom = true;
                return;
        }
        if (b->len + (size_t)n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + (size_t)n + 1)
                        cap *= 2;
                char *s = realloc(b->s, cap);
                if (!s) {
                        b->oom = true;
                        return;
                }
                b->s = s;
                b->cap = cap;
        }
        va_start(ap, fmt);
        vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

char *aidp_profiles_sb_take(struct aidp_sb *b)
{
        if (b->oom) {
                aidp_profiles_sb_free(b);
                return NULL;
        }
        char *s = b->s ? b->s : strdup("");
        memset(b, 0, sizeof *b);
        return s;
}

void aidp_profiles_sb_free(struct aidp_sb *b)
{
        free(b->s);
        memset(b, 0, sizeof *b);
}
