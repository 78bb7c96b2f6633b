#pragma once
/* The UTC offset of a time zone at an instant, from the zone's TZif data
 * (RFC 8536, versions 1 to 4), without touching the process environment.
 *
 * glibc offers zone lookups only through the TZ environment variable and
 * tzset(), which are undefined while other threads run; the supervisor has
 * threads. libc has no API that takes a zone as an argument, so this small
 * reader exists. It is pure: the caller reads the file. */
#include <stddef.h>
#include <stdint.h>

/* Instants further than this from the epoch (about 31 million years) are
 * refused with -ERANGE: the calendar arithmetic stays far from overflow. */
#define AIDP_RESIDENCY_TZ_MAX_INSTANT 1000000000000000LL

/* The offset in seconds east of UTC (Berlin in summer: 7200) that the zone
 * whose TZif file is buf[0..len) has at `instant` (seconds since the epoch):
 * from the transition table, or, after its last transition, from the footer's
 * POSIX TZ string (version 2 and later). Returns 0, or -EINVAL when the data
 * is not a well-formed TZif file, -ERANGE when the instant is too far away
 * to compute. */
int aidp_residency_tzif_offset(const uint8_t *buf, size_t len, int64_t instant, long *ret);

/* The offset at `instant` for a POSIX TZ string as found in a TZif footer
 * ("CET-1CEST,M3.5.0,M10.5.0/3", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0").
 * Returns 0, -EINVAL or -ERANGE. */
int aidp_residency_tz_rule_offset(const char *rule, size_t len, int64_t instant, long *ret);
