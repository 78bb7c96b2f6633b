#include "supervisor/sealed/progress.h"

#include <stdio.h>
#include <time.h>

void aidp_progress_bar_draw(void *opaque, uint64_t done, uint64_t total)
{
        struct aidp_progress_bar *b = opaque;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        if (!b->start_ns)
                b->start_ns = now;
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
