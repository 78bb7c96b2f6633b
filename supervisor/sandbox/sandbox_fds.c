#define _GNU_SOURCE
/* pid 1's fds: everything but what the spec names is closed (sandbox.h). */
#include <stdlib.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/sandbox/sandbox.h"

static int cmp_int(const void *a, const void *b)
{
        int x = *(const int *)a, y = *(const int *)b;
        return (x > y) - (x < y);
}

/* pid 1 lives as long as the run and holds what it inherited: exactly the fds of
 * the spec (its ends of the pipes, the relay, the tmpfs mounts), none of the
 * supervisor's (its ends of the pipes, a log, a lock). The numbers stay as they
 * are: the journal names the tmpfs fds by number for gc. */
void aidp_sandbox_close_unlisted(const struct aidp_sandbox_spec *s)
{
        size_t nb = s->bind_tree_fds && s->profile ? s->profile->n_binds : 0;
        int keep[14 + AIDP_SANDBOX_MAX_MOUNTS + nb];
        size_t n = 0;
        const int fixed[] = {STDIN_FILENO, STDOUT_FILENO,    STDERR_FILENO, s->sync_fd,
                             s->err_fd,    s->lifeline_fd,   s->status_fd,  s->stdout_fd,
                             s->stderr_fd, s->notify_fd_out, s->stdin_fd,   s->resolv_tree_fd};
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
                keep[n++] = fixed[i];
        for (size_t i = 0; i < s->n_mounts; i++)
                keep[n++] = s->mounts[i].fd;
        /* The caller's binds and working directory, as detached trees. */
        for (size_t i = 0; i < nb; i++)
                keep[n++] = s->bind_tree_fds[i];
        keep[n++] = s->has_cwd_tree ? s->cwd_tree_fd : -1;
        qsort(keep, n, sizeof keep[0], cmp_int);
        unsigned next = 0;
        for (size_t i = 0; i < n; i++) {
                if (keep[i] < 0 || (unsigned)keep[i] < next)
                        continue;
                if ((unsigned)keep[i] > next)
                        close_range(next, (unsigned)keep[i] - 1, 0);
                next = (unsigned)keep[i] + 1;
        }
        close_range(next, ~0U, 0);
}
