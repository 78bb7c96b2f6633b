/* libFuzzer harness for the CSV viewer (libcsv): any bytes, whole and
 * chunked, must give the same output or the same error, never a crash. */
#include "fuzz_viewer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char *names[6] = {"name", "mrn", "ssn", "dob", "age", "email"};
        static struct fz_file f;
        fz_check(fz_file_view(&f, AIDP_VIEW_CSV, names), &fz_keys, data, size);
        return 0;
}
