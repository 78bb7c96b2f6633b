/* libFuzzer harness for the zygote's plan codec (supervisor/sandbox/codec/
 * plan.h), the bytes a zygote running as root decodes: any input is either
 * refused with an error, or decodes to a plan whose fd fields all name placed
 * fds and which encodes to exactly the same bytes again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/sandbox/codec/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct aidp_plan p;
        aidp_error err = {0};
        if (aidp_plan_decode(data, size, &p, &err) < 0) {
                if (strncmp(err.msg, "plan: ", 6))
                        __builtin_trap();
                return 0;
        }
        if (p.argc == 0 || !p.argv[0] || p.argv[p.argc] || p.envp[p.envc] ||
            p.n_fds > AIDP_PLAN_MAX_FDS || p.sync_fd < 0 || p.status_fd < 0)
                __builtin_trap();
        uint8_t *again = NULL;
        size_t len = 0;
        if (aidp_plan_encode(&p, &again, &len, &err) < 0 || len != size ||
            memcmp(again, data, size))
                __builtin_trap();
        free(again);
        aidp_plan_free(&p);
        return 0;
}
