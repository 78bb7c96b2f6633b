#pragma once
/* Overwrite every byte of every file in the run's tmpfs mounts and verify the
 * overwrite by reading it back, through the supervisor's own (writable) mount
 * fds, after every process of the run is dead. The kernel does not zero freed
 * page-cache pages, so this overwrite is the only scrub the data gets. */
#include <stdbool.h>
#include <stdint.h>

#include "supervisor/sandbox/tmpfs.h"

struct aidp_shred_report {
        uint64_t files;
        uint64_t bytes;       /* overwritten and verified */
        uint64_t failures;    /* files that could not be opened, written or verified */
        bool verified;        /* every byte read back as zero */
        double seconds;       /* all of it: overwrite, verify, remove */
        double scrub_seconds; /* overwrite and verify (what scripts/bench-shred rates) */
        char first_failure[256];
};

/* Shred the tree under dirfd (a tmpfs mount fd or a directory in it) with
 * `threads` workers (0: one per online CPU, looked up only when there is
 * more than one range to overwrite). Files are emptied and removed
 * afterwards. A tmpfs whose only inode is its root and which holds no page
 * (fstatfs) is empty: reported verified with nothing overwritten, without a
 * walk. */
int aidp_shred_tree(int dirfd, unsigned threads, struct aidp_shred_report *rep);
