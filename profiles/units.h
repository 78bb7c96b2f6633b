#pragma once
/* Human units, shared by the profile language and every command line, so
 * "8G" means the same everywhere. Sizes follow docker, systemd and Slurm:
 * K/M/G/T/P (any case, with or without "i" or "iB") are powers of 1024, so
 * 8G = 8g = 8Gi = 8GiB = 8589934592; KB/MB/GB/TB/PB (any case) are powers of
 * 1000, so 8GB = 8000000000. Fractions must be exact (1.5G). Pure; implemented
 * in profiles/units.c. Return 0 or -EINVAL/-ERANGE. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int aidp_profiles_parse_size(const char *s, uint64_t *out);     /* bytes */
int aidp_profiles_parse_cpu(const char *s, uint64_t *out);      /* "1.5", "500m" -> millicpus */
int aidp_profiles_parse_duration(const char *s, uint64_t *out); /* "90", "2h", "1h30m" -> seconds */
int aidp_profiles_parse_uint(const char *s, bool hex_ok, uint64_t *out);
/* The reverse, as a user writes them: "4 GiB", "256 MiB", "1h30m". */
void aidp_profiles_fmt_size(char *buf, size_t n, uint64_t bytes);
void aidp_profiles_fmt_duration(char *buf, size_t n, uint64_t secs);
/* rlimit name ("nofile", "RLIMIT_NOFILE") -> RLIMIT_* index; -1 if unknown. */
int aidp_profiles_rlimit_parse(const char *s);
const char *aidp_profiles_rlimit_name(int r);
