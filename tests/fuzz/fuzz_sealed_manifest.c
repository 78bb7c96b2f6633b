/* libFuzzer harness: the tree manifest parser (supervisor/sealed/codec/sealed_manifest.c).
 * Accepted manifests must re-encode identically and have offsets that stay
 * within the stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/sealed/codec/sealed_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct aidp_tree t = {0};
        aidp_error err = {0};
        if (aidp_tree_decode(data, size, &t, &err) == 0) {
                uint8_t *buf = NULL;
                if (aidp_tree_encode(&t, &buf, &err) < 0 || t.manifest_len != size ||
                    memcmp(buf, data, size) != 0)
                        abort();
                for (size_t i = 0; i < t.n; i++)
                        if (t.entries[i].offset < t.manifest_len ||
                            t.entries[i].offset + t.entries[i].size > t.stream_len)
                                abort();
                free(buf);
                aidp_tree_free(&t);
        } else if (err.msg[0] == '\0') {
                abort();
        }
        return 0;
}
