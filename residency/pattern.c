/* The one matcher of every pattern field of the access policy (docs/policy.md,
 * "Patterns"): users, groups, profiles, datasets and key ids of roles and deny
 * rules are fnmatch(3) globs. Region patterns are not: they are names or
 * prefixes (aidp_residency_region_match), so that whether two inputs' regions
 * intersect stays decidable. */
#include <fnmatch.h>
#include <string.h>

#include "residency/policy.h"

bool aidp_residency_glob_match(const char *pattern, const char *s, bool casefold)
{
        return fnmatch(pattern, s, casefold ? FNM_CASEFOLD : 0) == 0;
}

bool aidp_residency_glob_any(char *const *patterns, size_t n, const char *s, bool casefold)
{
        for (size_t i = 0; i < n; i++)
                if (aidp_residency_glob_match(patterns[i], s, casefold))
                        return true;
        return false;
}

bool aidp_residency_has_glob(const char *s)
{
        return strpbrk(s, "*?[") != NULL;
}
