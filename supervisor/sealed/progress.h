#pragma once
/* The terminal progress bar of sealing, unsealing and injection: an
 * aidp_sealed_progress_fn that draws on stderr. Callers install it only when
 * stderr is a terminal. */
#include <stdint.h>

struct aidp_progress_bar {
        const char *label; /* "sealing", "decrypting NAME", ... */
        uint64_t start_ns; /* set on the first call */
};

/* opaque: a struct aidp_progress_bar. Draws "\rLABEL [####....] PCT% MiB MiB/s"
 * and ends the line when done == total. */
void aidp_progress_bar_draw(void *opaque, uint64_t done, uint64_t total);
