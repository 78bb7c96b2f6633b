/* libFuzzer harness for the schema: schema.yaml through the parser, then the
 * header encoding round trip (decode(encode(s)) encodes the same bytes);
 * and the input as header bytes: what decodes must be exactly canonical. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "views/view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct aidp_schema *s)
{
        uint8_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        aidp_error err = {0};
        if (aidp_schema_encode(s, &a, &na, &err) < 0)
                return; /* too large for the header: refused, fine */
        struct aidp_schema d;
        if (aidp_schema_decode(a, na, &d, &err) < 0)
                abort(); /* what encode writes must decode */
        if (aidp_schema_encode(&d, &b, &nb, &err) < 0 || na != nb || memcmp(a, b, na))
                abort();
        for (size_t i = 0; i < d.n_files; i++)
                (void)aidp_schema_match(&d, d.files[i].pattern);
        /* The re-seal label check (a schema shadowing its own labelled entry
         * may refuse itself, so only that it terminates cleanly). */
        char msg[512];
        (void)aidp_schema_keeps_labels(s, &d, msg, sizeof msg);
        aidp_schema_free(&d);
        free(a);
        free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct aidp_schema s;
        aidp_error err = {0};
        if (aidp_schema_parse_yaml((const char *)data, size, "fuzz.yaml", &s, &err) == 0) {
                round_trip(&s);
                aidp_schema_free(&s);
        }
        if (aidp_schema_decode(data, size, &s, &err) == 0) {
                uint8_t *a = NULL;
                size_t na = 0;
                if (aidp_schema_encode(&s, &a, &na, &err) < 0 || na != size ||
                    memcmp(a, data, size))
                        abort();
                free(a);
                aidp_schema_free(&s);
        }
        return 0;
}
