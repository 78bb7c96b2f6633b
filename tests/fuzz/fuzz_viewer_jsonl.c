/* libFuzzer harness for the JSONL viewer (json-c): any bytes, whole and
 * chunked, must give the same output or the same error, never a crash. */
#include "fuzz_viewer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char *names[6] = {"/name", "/p/mrn", "/ssn/0", "/dob", "/age", "/a~1b"};
        static struct aidp_schema_column cols[6];
        static struct aidp_schema_file file;
        static struct aidp_column_view cv[6];
        static struct aidp_file_view fv;
        if (!fv.n_columns) {
                fz_set_xforms();
                for (size_t i = 0; i < 6; i++) {
                        cols[i].name = names[i];
                        cv[i].column = names[i];
                        cv[i].x = fz_xforms[i];
                }
                file = (struct aidp_schema_file){.pattern = (char *)"*.jsonl",
                                                 .format = AIDP_VIEW_JSONL,
                                                 .columns = cols,
                                                 .n_columns = 6};
                fv = (struct aidp_file_view){.file = &file, .columns = cv, .n_columns = 6};
        }
        fz_check(&fv, &fz_keys, data, size);
        return 0;
}
