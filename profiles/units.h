#pragma once
/* Human units, shared by the profile language and every command line, so
 * "8G" means the same everywhere: k/M/G/T/P are powers of 1000, Ki/Mi/Gi/Ti/Pi
 * powers of 1024 (Kubernetes' convention); fractions must be exact. Pure;
 * implemented in profiles/util.c. Return 0 or -EINVAL/-ERANGE. */
#include <stdbool.h>
#include <stdint.h>

int aidp_profiles_parse_size(const char *s, uint64_t *out);     /* bytes */
int aidp_profiles_parse_cpu(const char *s, uint64_t *out);      /* "1.5", "500m" -> millicpus */
int aidp_profiles_parse_duration(const char *s, uint64_t *out); /* "90", "2h", "1h30m" -> seconds */
int aidp_profiles_parse_uint(const char *s, bool hex_ok, uint64_t *out);
/* rlimit name ("nofile", "RLIMIT_NOFILE") -> RLIMIT_* index; -1 if unknown. */
int aidp_profiles_rlimit_parse(const char *s);
const char *aidp_profiles_rlimit_name(int r);
