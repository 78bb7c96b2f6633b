/* libFuzzer harness for what `lineage verify --witness` and the supervisor read
 * of witnesses: head lines (JSON and syslog) and witnesses.yaml. Every line of
 * the input is parsed as a head; the whole input as a witness configuration; the
 * heads found are compared with a small fixed log. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/lineage/codec/lineage_witness.h"
#include "supervisor/lineage/witness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        struct aidp_lineage_head heads[64];
        size_t n = 0, off = 0;
        while (off < size) {
                const char *e = memchr(buf + off, '\n', size - off);
                size_t len = e ? (size_t)(e - (buf + off)) : size - off;
                struct aidp_lineage_head h;
                int r = aidp_lineage_head_parse(buf + off, len, &h);
                if (r > 0) {
                        /* A head that parses is well-formed. */
                        if (strlen(h.log) != AIDP_LINEAGE_LOG_ID_HEX || h.seq == 0 ||
                            strlen(h.hash) != AIDP_LINEAGE_HASH_HEX)
                                __builtin_trap();
                        if (n < 64)
                                heads[n++] = h;
                }
                off += len + 1;
        }
        static const char hashes[2][AIDP_LINEAGE_HASH_HEX + 1] = {
                "0000000000000000000000000000000000000000000000000000000000000001",
                "0000000000000000000000000000000000000000000000000000000000000002"};
        struct aidp_lineage_log_view lv = {
                .log = "00000000000000000000000000000001", .n = 2, .hashes = hashes};
        struct aidp_lineage_witness_result res;
        aidp_lineage_witness_compare(&lv, heads, n, NULL, &res);
        if (!res.reason[0])
                __builtin_trap();
        struct aidp_witness_set s;
        aidp_error err = {0};
        if (aidp_witness_parse("fuzz.yaml", buf, size, &s, &err) == 0)
                aidp_witness_set_free(&s);
        else if (!err.msg[0])
                __builtin_trap();
        return 0;
}
