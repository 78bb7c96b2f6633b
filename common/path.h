#pragma once
/* Path helpers shared by every layer. Pure: strings in, strings out. */
#include <stdbool.h>
#include <stddef.h>

/* The longest path aidp accepts where a path is checked for cleanliness. */
#define AIDP_PATH_CLEAN_MAX 1024

/* An absolute path with no "." or ".." component, no doubled or trailing slash
 * ("/" itself is clean), at most AIDP_PATH_CLEAN_MAX bytes. The one rule for
 * paths from profiles and from the command line. */
bool aidp_path_is_clean_abs(const char *path);

/* out = a "/" b, with exactly one slash between them (a may end in '/', b may
 * start with one). 0, or -ENAMETOOLONG when it does not fit in size bytes
 * (out is then the empty string, never a truncated path). */
int aidp_path_join(char *out, size_t size, const char *a, const char *b);
