#pragma once
/* String vectors (NULL-terminated, with a count). Every vector is
 * NULL-terminated and also carries its count, so the cleanup helper needs no
 * length and callers can index without scanning. */
#include <stdbool.h>
#include <stddef.h>

void aidp_strv_free(char **v);
static inline void aidp_strv_freep(char ***v)
{
        aidp_strv_free(*v);
}
/* Append a copy of s (or s itself with _take; s is freed on failure). */
int aidp_strv_push(char ***v, size_t *n, const char *s);
int aidp_strv_push_take(char ***v, size_t *n, char *s);
int aidp_strv_dup(char *const *v, size_t n, char ***ret);
bool aidp_strv_contains(char *const *v, size_t n, const char *s);
/* Sorted union without duplicates; *ret is NULL-terminated even when empty. */
int aidp_strv_union(char *const *a, size_t na, char *const *b, size_t nb, char ***ret,
                    size_t *ret_n);
