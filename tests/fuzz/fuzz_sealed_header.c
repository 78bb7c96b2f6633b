/* libFuzzer harness: the sealed header parser (supervisor/sealed/codec/sealed_header.c).
 * Beyond "no crash": anything the decoder accepts must re-encode to exactly
 * the same bytes (the encoding is canonical), and the derived sizes must be
 * consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/sealed/codec/sealed_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct aidp_sealed_header *h = malloc(sizeof *h);
        aidp_error err = {0};
        size_t hl = 0;
        /* The length probe must agree with the full decoder on bad prefixes. */
        int lr = aidp_sealed_header_len(data, size, &hl, &err);
        if (aidp_sealed_header_decode(data, size, h, &err) == 0) {
                uint8_t *buf = malloc(AIDP_SEALED_PREFIX_LEN + AIDP_SEALED_BODY_MAX);
                int n = aidp_sealed_header_encode(
                        h, buf, AIDP_SEALED_PREFIX_LEN + AIDP_SEALED_BODY_MAX, &err);
                if (n < 0 || (size_t)n != h->header_len || memcmp(buf, data, (size_t)n) != 0)
                        abort();
                if (h->n_segments != aidp_sealed_segment_count(h->payload_len, h->segment_size) ||
                    h->file_size < h->payload_offset + h->payload_len)
                        abort();
                if (lr < 0)
                        abort();
                free(buf);
        } else if (err.msg[0] == '\0') {
                abort(); /* every refusal carries a message */
        }
        free(h);
        return 0;
}
