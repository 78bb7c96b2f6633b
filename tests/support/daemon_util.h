#pragma once
/* What the daemon tests (tests/priv/test_daemon*.c) check after a run. */

/* The lineage record of run_id with this eventType ("ABORT", ...) in the log
 * at logp, waited for up to timeout_ms: a copy of its line, or NULL. */
char *aidp_test_wait_lineage(const char *logp, const char *run_id, const char *type,
                             int timeout_ms);
/* Nothing of the run is left: no journal in rundir (waited for a moment: it
 * goes right after the end record), no cgroup. Criterion expectations. */
void aidp_test_expect_run_gone(const char *rundir, const char *run_id);
