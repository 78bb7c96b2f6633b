/* libFuzzer harness for the lineage line parser and verifier.
 *
 * Input: an optional anchor line, then a log. The first line is tried as an anchor;
 * when it parses, the rest is verified against it, otherwise the whole input is
 * verified as a log without an anchor. Every line is also parsed on its own with and
 * without the key. The key is fixed so that a corpus of real records (made with it)
 * reaches the tag, chain and anchor checks. */
#include <stdint.h>
#include <string.h>

#include "supervisor/lineage/lineage.h"

static const unsigned char key[AIDP_LINEAGE_KEY_LEN] = {
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        const char *nl = memchr(buf, '\n', size);
        struct aidp_lineage_anchor anchor;
        aidp_error err = {0};
        struct aidp_lineage_verify v;
        if (nl && aidp_lineage_anchor_parse(buf, (size_t)(nl - buf) + 1, key, &anchor, &err) == 0) {
                size_t off = (size_t)(nl - buf) + 1;
                aidp_lineage_verify_init(&v, key, &anchor);
                aidp_lineage_verify_buffer(&v, buf + off, size - off);
        } else {
                aidp_lineage_verify_init(&v, key, NULL);
                aidp_lineage_verify_buffer(&v, buf, size);
        }
        /* A verdict is always well-formed: a bad line names a reason. */
        if (v.bad_line && !v.reason[0])
                __builtin_trap();
        aidp_lineage_verify_init(&v, NULL, NULL);
        aidp_lineage_verify_buffer(&v, buf, size);

        size_t off = 0;
        while (off < size) {
                const char *e = memchr(buf + off, '\n', size - off);
                size_t n = e ? (size_t)(e - (buf + off)) : size - off;
                struct aidp_lineage_record rec;
                json_object *ev = NULL;
                if (aidp_lineage_record_parse(buf + off, n, key, &rec, &ev, &err) == 0) {
                        /* A record that parses is a valid RunEvent and re-serializes. */
                        aidp_lineage_strip_chain(ev);
                        if (aidp_lineage_event_check(ev, &err) != 0)
                                __builtin_trap();
                        json_object_put(ev);
                }
                aidp_lineage_record_parse(buf + off, n, NULL, &rec, NULL, &err);
                off += n + 1;
        }
        return 0;
}
