#pragma once
/* What the files of views/ share and nobody else needs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "views/view.h"

/* [a-z0-9][a-z0-9._-]*, at most max bytes: labels and token domains. */
bool aidp_views_is_name(const char *s, size_t max);
bool aidp_views_is_label(const char *s);
/* An fnmatch glob on a path inside a dataset: relative, no "..", no empty
 * component, printable. */
bool aidp_views_is_pattern(const char *s);
/* RFC 6901 pointer, non-empty ("/a/b", "~0" and "~1" the only escapes). */
bool aidp_views_is_pointer(const char *s);
/* Well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF).
 * Returns the byte offset of the first bad sequence, or len when all good. */
size_t aidp_views_utf8_check(const uint8_t *s, size_t len);
/* Byte length of the UTF-8 sequence starting with lead byte c (1 for a bad one). */
static inline size_t aidp_views_utf8_len(uint8_t c)
{
        return c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
}

/* Check the invariants of a schema whoever built it (the YAML parser or the
 * header decoder): limits, names, labels sorted and unique, no column twice
 * in a file. Fills msg on failure. */
int aidp_schema_check(const struct aidp_schema *s, char *msg, size_t len);
void aidp_schema_sort_labels(struct aidp_schema_column *c);

#define AIDP_SCHEMA_INPUT_MAX (1u << 20)
