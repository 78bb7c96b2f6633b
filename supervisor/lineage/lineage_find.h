#pragma once
/* Looking a run up in its lineage log (gc: was the run's end recorded before its
 * supervisor died?). Reads the log backwards, from its last complete line to the
 * run's last START, so the cost is the records written since that run began. */
#include <stddef.h>
#include <stdint.h>

/* Whether the log at path holds an end record (COMPLETE, FAIL or ABORT) of the run
 * whose lineage runId is run_id, after that run's last START, where that START's
 * eventTime is not before not_before (epoch seconds; 0: any: a run id used again
 * later is then told apart from the earlier run of that id). A torn last line
 * (an append cut short) is not a record. 1: found, *type its eventType; 0: none
 * (or no such START in this log nor in the archives it continues); -errno when
 * the log cannot be read. A log whose first record links to an archive (`aidp
 * lineage rotate`) made after not_before, and without the run's START, is
 * followed into that archive (up to 4 archives back): a run under way during
 * the rotation has its START there and its end here. */
int aidp_lineage_find_end(const char *path, const char *run_id, int64_t not_before, char *type,
                          size_t type_len);
