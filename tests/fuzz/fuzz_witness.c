/* libFuzzer harness for what `lineage verify --witness` and the supervisor read
 * of witnesses: head lines (JSON, syslog, exported OpenLineage events) and
 * witnesses.yaml. Every line of the input is parsed as a head, and as an event
 * for its rotation link and TPM binding; the whole input as a witness
 * configuration; the heads found are compared with a small fixed log, and the
 * TPM comparison runs on numbers taken from the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/lineage/codec/lineage_witness.h"
#include "supervisor/lineage/witness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_object *json_tokenizer_one(const char *s, size_t len)
{
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return NULL;
        json_object *o = json_tokener_parse_ex(tok, s, (int)len);
        json_tokener_free(tok);
        return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        struct aidp_lineage_head heads[64] = {0};
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
                json_object *ev =
                        len && buf[off] == '{' ? json_tokenizer_one(buf + off, len) : NULL;
                if (ev) {
                        struct aidp_lineage_link l;
                        /* a link that parses names a plain file */
                        if (aidp_lineage_rotation_of(ev, &l) == 1 &&
                            (strchr(l.file, '/') || !l.file[0] || !strcmp(l.file, "..")))
                                __builtin_trap();
                        uint32_t ix;
                        uint64_t c;
                        if (aidp_lineage_tpm_binding_of(ev, &ix, &c) == 1 && c == 0)
                                __builtin_trap();
                        json_object_put(ev);
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
        if (size >= 24) {
                uint64_t v[3];
                memcpy(v, data, sizeof v);
                aidp_lineage_tpm_compare(v[0] % 8, v[1] % 8, v[2] % 32, v[0] & 1, v[2] >> 32, &res);
                if (!res.reason[0])
                        __builtin_trap();
        }
        struct aidp_witness_set s;
        aidp_error err = {0};
        if (aidp_witness_parse("fuzz.yaml", buf, size, &s, &err) == 0)
                aidp_witness_set_free(&s);
        else if (!err.msg[0])
                __builtin_trap();
        return 0;
}
