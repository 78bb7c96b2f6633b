/* Whether a profile reference names a file rather than a library profile:
 * its own object, so that run's option table (aidp-run's too, linked
 * static-pie and started once per job) can tell the two apart for the trust
 * of --profile's value without linking the loader and libyaml. */
#include <stdbool.h>
#include <string.h>

#include "profiles/load_internal.h"
#include "profiles/profile_load.h"

bool aidp_ld_is_path_ref(const char *s)
{
        size_t l = strlen(s);
        return strchr(s, '/') || (l > 5 && !strcmp(s + l - 5, ".yaml")) ||
               (l > 4 && !strcmp(s + l - 4, ".yml"));
}

bool aidp_profile_ref_is_path(const char *ref)
{
        return aidp_ld_is_path_ref(ref);
}
