/* libFuzzer harness for the JSONL viewer (json-c): any bytes, whole and
 * chunked, must give the same output or the same error, never a crash. */
#include "fuzz_viewer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char *names[6] = {"/name", "/p/mrn", "/ssn/0", "/dob", "/age", "/a~1b"};
        static struct fz_file f;
        fz_check(fz_file_view(&f, AIDP_VIEW_JSONL, names), &fz_keys, data, size);
        return 0;
}
