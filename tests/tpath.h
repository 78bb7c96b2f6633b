#pragma once
/* snprintf into a fixed test buffer that fails the test when the text does
 * not fit: a path cut short would name another file. */
#include <criterion/criterion.h>
#include <stdio.h>

#define TEST_SNPRINTF(buf, ...)                                                                    \
        cr_assert(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf),                    \
                  "%s: text too long for its buffer", #buf)
