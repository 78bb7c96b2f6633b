#pragma once
/* UTC offsets of the access policy's time zones at one instant, from the
 * system tz database (/usr/share/zoneinfo, read by residency/tzif.c; the
 * environment is never touched). The pure decision takes them as input; see
 * residency/decide.h. */
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "residency/decide.h"
#include "residency/policy.h"

struct aidp_policy_clock {
        struct aidp_zone_offset *zones; /* zone strings borrowed from the policy */
        size_t n_zones;
};

/* Resolve every zone the policy names for `epoch`. A zone missing from the tz
 * database (/usr/share/zoneinfo; $TZDIR is ignored, the caller does not choose
 * what root reads) is a configuration error rather than a silent fallback to
 * UTC. Thread-safe. */
int aidp_policy_clock_resolve(const struct aidp_access_policy *ap, int64_t epoch,
                              struct aidp_policy_clock *ret, aidp_error *err);
/* The same with the database in `dir` (tests). */
int aidp_policy_clock_resolve_in(const char *dir, const struct aidp_access_policy *ap,
                                 int64_t epoch, struct aidp_policy_clock *ret, aidp_error *err);
/* Every time zone the policy names exists in the tz database and is a valid TZif file
 * (what resolve needs at run time); the error names the file:line:col of the zone. */
int aidp_policy_clock_check_zones(const struct aidp_access_policy *ap, aidp_error *err);
int aidp_policy_clock_check_zones_in(const char *dir, const struct aidp_access_policy *ap,
                                     aidp_error *err);
void aidp_policy_clock_free(struct aidp_policy_clock *c);
/* Fill the decision's time input from a resolved clock (borrows). */
void aidp_policy_clock_view(const struct aidp_policy_clock *c, int64_t epoch,
                            struct aidp_residency_time *ret);
