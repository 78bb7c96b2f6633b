/* libFuzzer harness: OCI/Docker seccomp JSON import, resolved once without
 * capabilities and once with CAP_SYS_ADMIN on an old kernel. */
#include <stdint.h>
#include <stdlib.h>

#include "profiles/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char *caps[] = {"CAP_SYS_ADMIN"};
        struct aidp_profile_env env = {.kernel_major = 4, .kernel_minor = 4};
        for (size_t n_caps = 0; n_caps < 2; n_caps++) {
                struct aidp_sc_policy p;
                size_t skipped = 0;
                aidp_error err = {0};
                if (aidp_profiles_seccomp_json("fuzz.json", (const char *)data, size,
                                               n_caps ? &env : NULL, caps, n_caps, &p, &skipped,
                                               &err) == 0)
                        aidp_sc_policy_free(&p);
        }
        return 0;
}
