#pragma once
/* The progress of sealing, unsealing and injection: an
 * aidp_sealed_progress_fn that draws a bar on stderr when it is a terminal,
 * or (lines) prints a line at the start, every few seconds and at the end,
 * for batch logs. */
#include <stdbool.h>
#include <stdint.h>

#define AIDP_PROGRESS_LINE_SECONDS 3

struct aidp_progress_bar {
        const char *label; /* "sealing", "decrypting NAME", ... */
        uint64_t start_ns; /* set on the first call */
        bool lines;        /* stderr is no terminal: progress lines, not a bar */
        uint64_t last_ns;  /* lines: when the last one was printed */
        bool ended;        /* the end ("done", or the bar's newline) was drawn */
};

/* A bar, or lines when stderr is not a terminal. */
void aidp_progress_bar_init(struct aidp_progress_bar *b, const char *label);

/* opaque: a struct aidp_progress_bar. Draws "\rLABEL [####....] PCT% MiB MiB/s"
 * and ends the line when done == total. */
void aidp_progress_bar_draw(void *opaque, uint64_t done, uint64_t total);
