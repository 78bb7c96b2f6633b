/* libFuzzer harness for the TZif reader (residency/tzif.c) and the POSIX TZ
 * string parser of its footer (residency/tz_rule.c). The first byte picks
 * what the rest is; a few instants (far past, the epoch, now-ish, far future,
 * out of range) are looked up, so every branch of the lookup runs. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "residency/tzif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const int64_t instants[] = {INT64_MIN,  -4000000000LL, 0,
                                           1700000000, 4102444800LL,  AIDP_RESIDENCY_TZ_MAX_INSTANT,
                                           INT64_MAX};
        if (size < 1)
                return 0;
        /* A private copy, exactly size bytes, so ASan sees any overread. */
        uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
        if (!buf)
                return 0;
        for (size_t i = 1; i < size; i++)
                buf[i - 1] = data[i];
        for (size_t i = 0; i < sizeof instants / sizeof instants[0]; i++) {
                long off = 0;
                int rc = data[0] & 1 ? aidp_residency_tz_rule_offset((const char *)buf, size - 1,
                                                                     instants[i], &off)
                                     : aidp_residency_tzif_offset(buf, size - 1, instants[i], &off);
                if (rc == 0 && (off < -200000 || off > 200000))
                        abort(); /* an offset no zone can have */
                if (rc != 0 && rc != -EINVAL && rc != -ERANGE)
                        abort();
        }
        free(buf);
        return 0;
}
