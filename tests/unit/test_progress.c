/* The progress of a long decryption or seal, as lines when stderr is no
 * terminal (a batch log): the start, every few seconds, and the end once. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/sealed/progress.h"

static void redirect(void)
{
        cr_redirect_stderr();
}

/* A small input is done at its first call; its caller reports the end again
 * (the injection's last segment, then the whole file): one line. */
Test(progress, a_small_input_prints_its_end_once, .init = redirect)
{
        struct aidp_progress_bar b;
        aidp_progress_bar_init(&b, "decrypting ward");
        cr_assert(b.lines, "stderr redirected to a file must give lines");
        aidp_progress_bar_draw(&b, 4096, 4096);
        aidp_progress_bar_draw(&b, 4096, 4096);
        fflush(stderr);
        cr_assert_stderr_eq_str("decrypting ward: 100%, 0.0 of 0.0 MiB, 0 MiB/s, done\n"
                                "" /* nothing more */);
}

/* A larger one: its start, then its end once, however often it is told. */
Test(progress, the_start_and_the_end_once, .init = redirect)
{
        struct aidp_progress_bar b;
        aidp_progress_bar_init(&b, "sealing");
        aidp_progress_bar_draw(&b, 0, 1048576);
        aidp_progress_bar_draw(&b, 524288, 1048576); /* within the line interval: quiet */
        aidp_progress_bar_draw(&b, 1048576, 1048576);
        aidp_progress_bar_draw(&b, 1048576, 1048576);
        fflush(stderr);
        FILE *f = cr_get_redirected_stderr();
        char line[256];
        int n = 0, done = 0;
        while (fgets(line, sizeof line, f)) {
                n++;
                done += strstr(line, ", done\n") != NULL;
                cr_assert(!strncmp(line, "sealing: ", 9), "%s", line);
        }
        cr_assert_eq(n, 2, "%d lines", n);
        cr_assert_eq(done, 1, "%d end lines", done);
}
