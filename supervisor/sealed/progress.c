#include "supervisor/sealed/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

void aidp_progress_bar_init(struct aidp_progress_bar *b, const char *label)
{
        *b = (struct aidp_progress_bar){.label = label, .lines = !isatty(2)};
}

/* Batch logs: whole lines, at the start, every few seconds and at the end. */
static void draw_line(struct aidp_progress_bar *b, uint64_t now, uint64_t done, uint64_t total)
{
        bool first = !b->last_ns;
        if (!first && done != total &&
            now - b->last_ns < AIDP_PROGRESS_LINE_SECONDS * 1000000000ull)
                return;
        b->last_ns = now;
        double secs = (double)(now - b->start_ns) / 1e9;
        fprintf(stderr, "%s: %3u%%, %.1f of %.1f MiB, %.0f MiB/s%s\n", b->label,
                total ? (unsigned)(done * 100 / total) : 100, (double)done / 1048576.0,
                (double)total / 1048576.0, secs > 0 ? (double)done / 1048576.0 / secs : 0.0,
                done == total ? ", done" : "");
        fflush(stderr);
}

void aidp_progress_bar_draw(void *opaque, uint64_t done, uint64_t total)
{
        struct aidp_progress_bar *b = opaque;
        /* The end once: a small input is done at its first call, and its
         * caller reports the end again. */
        if (b->ended)
                return;
        b->ended = done == total;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        if (!b->start_ns)
                b->start_ns = now;
        if (b->lines) {
                draw_line(b, now, done, total);
                return;
        }
        double secs = (double)(now - b->start_ns) / 1e9;
        unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
        char fill[31];
        unsigned n = pct * 30 / 100;
        for (unsigned i = 0; i < 30; i++)
                fill[i] = i < n ? '#' : '.';
        fill[30] = '\0';
        fprintf(stderr, "\r%s [%s] %3u%% %8.1f MiB %6.0f MiB/s", b->label, fill, pct,
                (double)done / 1048576.0, secs > 0 ? (double)done / 1048576.0 / secs : 0.0);
        if (done == total)
                fputc('\n', stderr);
        fflush(stderr);
}
