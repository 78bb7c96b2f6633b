/* Edit distance for "did you mean" (common/suggest.h). */
#include "common/suggest.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Optimal string alignment distance, case-insensitive; words longer than
 * AIDP_SUGGEST_MAX count as far apart. */
static unsigned distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        if (la >= AIDP_SUGGEST_MAX || lb >= AIDP_SUGGEST_MAX)
                return UINT_MAX;
        unsigned d[AIDP_SUGGEST_MAX + 1][AIDP_SUGGEST_MAX + 1];
        for (size_t i = 0; i <= la; i++)
                d[i][0] = (unsigned)i;
        for (size_t j = 0; j <= lb; j++)
                d[0][j] = (unsigned)j;
        for (size_t i = 1; i <= la; i++)
                for (size_t j = 1; j <= lb; j++) {
                        int ca = tolower((unsigned char)a[i - 1]),
                            cb = tolower((unsigned char)b[j - 1]);
                        unsigned best = d[i - 1][j - 1] + (ca != cb);
                        if (d[i - 1][j] + 1 < best)
                                best = d[i - 1][j] + 1;
                        if (d[i][j - 1] + 1 < best)
                                best = d[i][j - 1] + 1;
                        if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                            tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                                best = d[i - 2][j - 2] + 1;
                        d[i][j] = best;
                }
        return d[la][lb];
}

void aidp_suggest_init(struct aidp_suggest *s, const char *word)
{
        s->word = word ? word : "";
        s->best[0] = '\0';
        s->dist = UINT_MAX;
}

void aidp_suggest_add(struct aidp_suggest *s, const char *candidate)
{
        if (!candidate || strlen(candidate) >= sizeof s->best)
                return;
        unsigned d = distance(s->word, candidate);
        if (d < s->dist) {
                s->dist = d;
                memcpy(s->best, candidate, strlen(candidate) + 1);
        }
}

const char *aidp_suggest_result(const struct aidp_suggest *s)
{
        size_t n = strlen(s->word);
        unsigned max = n <= 4 ? 1 : n <= 8 ? 2 : 3;
        if (s->dist > max || !strcmp(s->best, s->word))
                return NULL;
        return s->best;
}

const char *aidp_suggest_table(struct aidp_suggest *s, const char *word, const void *table,
                               size_t n, size_t stride)
{
        aidp_suggest_init(s, word);
        for (size_t i = 0; i < n; i++)
                aidp_suggest_add(s, *(const char *const *)((const char *)table + i * stride));
        return aidp_suggest_result(s);
}

const char *aidp_suggest_text(const struct aidp_suggest *s, char *buf, size_t size)
{
        const char *r = aidp_suggest_result(s);
        if (!r || snprintf(buf, size, " (did you mean '%s'?)", r) >= (int)size)
                buf[0] = '\0';
        return buf;
}
