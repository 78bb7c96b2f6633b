#pragma once
/* The /proc/PID/smaps format, parsed one line at a time (pure: the caller
 * reads the file). A mapping's block starts with its header line
 * ("lo-hi perms offset dev inode path") and ends with its "VmFlags:" line. */
#include <stdbool.h>

struct aidp_smaps_map {
        unsigned long lo, hi; /* [lo, hi) */
        char perms[5];        /* "rw-p" */
        unsigned long inode;  /* 0: no file behind it (anonymous, [heap], [stack]);
                               * ULONG_MAX when the header had none */
        char name[16];        /* the path's first 15 bytes: "[heap]", "" when none */
        const char *vmflags;  /* the flags after "VmFlags:" (" rd wr mr ...": each
                               * preceded by a space), into the caller's line */
};

/* Feed the next line (m zeroed before the first). True when it ended a
 * mapping's block: m then describes that mapping until the next call. A
 * block without a header (a cut file) is never reported. */
bool aidp_smaps_line(struct aidp_smaps_map *m, const char *line);
