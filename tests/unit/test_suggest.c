/* "Did you mean" (common/suggest.h): the closest candidate within a typo's
 * distance, none for a word too far from all of them or equal to one. */
#include <criterion/criterion.h>
#include <stddef.h>

#include "common/suggest.h"

static const char *const keys[] = {"limits", "filesystem", "devices", "user", "seccomp", "network"};

static const char *best(const char *word)
{
        static struct aidp_suggest s;
        return aidp_suggest_table(&s, word, keys, sizeof keys / sizeof *keys, sizeof *keys);
}

Test(suggest, typos_find_the_word)
{
        cr_assert_str_eq(best("limts"), "limits");     /* deletion */
        cr_assert_str_eq(best("seccompp"), "seccomp"); /* insertion */
        cr_assert_str_eq(best("netwrok"), "network");  /* swap of neighbours */
        cr_assert_str_eq(best("filesystm"), "filesystem");
        cr_assert_str_eq(best("usr"), "user");
        cr_assert_str_eq(best("Devices"), "devices"); /* case only */
}

Test(suggest, nothing_close_or_the_word_itself_gives_nothing)
{
        cr_assert_null(best("gpu"));
        cr_assert_null(best("timeout"));
        cr_assert_null(best("limits"));
        cr_assert_null(best(""));
}

Test(suggest, text_names_the_suggestion)
{
        struct aidp_suggest s;
        char buf[96];
        aidp_suggest_table(&s, "devics", keys, sizeof keys / sizeof *keys, sizeof *keys);
        cr_assert_str_eq(aidp_suggest_text(&s, buf, sizeof buf), " (did you mean 'devices'?)");
        aidp_suggest_table(&s, "zzz", keys, sizeof keys / sizeof *keys, sizeof *keys);
        cr_assert_str_eq(aidp_suggest_text(&s, buf, sizeof buf), "");
}
