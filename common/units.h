#pragma once
/* Human units shared by the CLI and the profile language. Pure. */
#include <stdint.h>

/* "512", "64k", "512M", "8G", "8Gi", "1.5Gi" (k/M/G/T and Ki/Mi/Gi/Ti are
 * powers of 1024; K/KB/MB/GB powers of 1000 are refused as ambiguous).
 * Returns 0 or -EINVAL/-ERANGE. */
int aidp_parse_size(const char *s, uint64_t *out);
/* "90", "90s", "15m", "2h", "1d", "1h30m" -> seconds. */
int aidp_parse_duration(const char *s, uint64_t *out);
/* "2", "1.5", "500m" -> millicpus. */
int aidp_parse_cpus(const char *s, uint64_t *out);
