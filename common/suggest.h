#pragma once
/* "Did you mean": the candidate closest to a misspelt word, by edit distance
 * (insertions, deletions, substitutions and swaps of neighbours; case
 * ignored), kept only when it is close enough to be a typo. Feed the
 * candidates one by one (a fixed table or a library's list alike). */
#include <stddef.h>

#define AIDP_SUGGEST_MAX 64 /* longer candidates are not considered */

struct aidp_suggest {
        const char *word;
        char best[AIDP_SUGGEST_MAX];
        unsigned dist; /* of best; UINT_MAX while there is none */
};

void aidp_suggest_init(struct aidp_suggest *s, const char *word);
void aidp_suggest_add(struct aidp_suggest *s, const char *candidate);
/* The best candidate when it is at most 1 edit away (words up to 4
 * characters), 2 (up to 8) or 3 (longer), and not the word itself (a word
 * that differs only in case gets its right spelling); else NULL. */
const char *aidp_suggest_result(const struct aidp_suggest *s);
/* The same over a table of n entries `stride` bytes apart whose first member
 * is the name (a NULL name is skipped). */
const char *aidp_suggest_table(struct aidp_suggest *s, const char *word, const void *table,
                               size_t n, size_t stride);
/* " (did you mean 'X'?)" into buf (empty when there is no suggestion), to end a
 * message with; returns buf. */
const char *aidp_suggest_text(const struct aidp_suggest *s, char *buf, size_t size);
