#pragma once
/* Shared helpers for root integration tests. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

/* Skip with a reason when not root, except under CI where a skipped privileged
 * test would hide a broken suite (bubblewrap's BWRAP_MUST_WORK). */
#define AIDP_REQUIRE_ROOT()                                                                        \
        do {                                                                                       \
                if (geteuid() != 0) {                                                              \
                        if (getenv("CI"))                                                          \
                                cr_assert_fail("CI is set but not running as root");               \
                        cr_skip_test("needs root");                                                \
                }                                                                                  \
        } while (0)
