#pragma once
/* Runs aidp-supervisor from a root integration test and captures its output. */
#include <stdbool.h>
#include <sys/types.h>

/* The test build (honours AIDP_LINEAGE_FILE, AIDP_FAULT_*, ... for admins);
 * the trust tests run the production binary. */
#define AIDP_SUPERVISOR      AIDP_BINARY_DIR "/aidp-supervisor-test"
#define AIDP_SUPERVISOR_PROD AIDP_BINARY_DIR "/aidp-supervisor"
/* A lineage log for runs of the production binary (admin: --lineage). */
#define AIDP_PROD_LINEAGE AIDP_BINARY_DIR "/test-lineage/prod.jsonl"
#define AIDP_PROBE        AIDP_BINARY_DIR "/tests/helpers/sandbox_probe"

struct aidp_proc {
        pid_t pid;
        int out_fd, err_fd; /* read ends */
        /* What does not fit is read and dropped: the child never gets
         * SIGPIPE from a full buffer (a 64K detached log and its marker). */
        char out[1 << 17], err[65536];
        int status; /* exit status (128+N for signal N) */
        size_t out_len, err_len;
};

/* Start argv (NULL-terminated) with stdout/stderr captured. */
int aidp_test_spawn(struct aidp_proc *p, char *const argv[]);
/* Read until a line containing `needle` arrived on stdout (or timeout_ms). */
bool aidp_test_wait_output(struct aidp_proc *p, const char *needle, int timeout_ms);
/* Collect the rest of the output and the exit status. */
int aidp_test_finish(struct aidp_proc *p);
/* Reap a process that was killed, without waiting for its output to end
 * (the sandbox's pid 1 may still hold the pipes). */
int aidp_test_reap(struct aidp_proc *p);
/* Run `aidp-supervisor gc --run-dir run_dir` (test clean-up after a failure). */
void aidp_test_gc(const char *run_dir);
/* system() of a printf-formatted command: its exit status, -1 if it did not exit. */
int aidp_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* spawn + finish */
int aidp_test_run(struct aidp_proc *p, char *const argv[]);
/* aidp-supervisor run --user 65534 --no-cwd --run-dir RUN_DIR OPTS... -- JOB...
 * (opts may be NULL; both NULL-terminated), as aidp_test_run. */
int aidp_test_run_job(struct aidp_proc *p, const char *run_dir, const char *const opts[],
                      const char *const job[]);
/* true if a directory with this name exists anywhere under /sys/fs/cgroup (depth <= 8) */
bool aidp_test_cgroup_exists(const char *name);
/* how many such directories (one per hierarchy the run's cgroup is in) */
int aidp_test_cgroup_count(const char *name);
/* Whether the first size bytes read through fd (pread) are all zero (false
 * when fewer can be read). */
bool aidp_test_fd_all_zero(int fd, off_t size);
/* number of lines in /proc/self/mountinfo (the whole host's: other engineers'
 * runs change it; compare aidp_test_mounts_of instead) */
int aidp_test_mount_count(void);
/* The mounts of this test's own objects: lines of /proc/self/mountinfo that
 * name one of names (NULL-terminated: the test's directories, run ids) in
 * their mount point, root or source. */
int aidp_test_mounts_of(const char *const *names);
/* Remove a test's own temporary directory and everything below it (no symlink
 * is followed). */
void aidp_test_rm_tree(const char *dir);
/* mkdtemp(tmpl) whose directory is removed (aidp_test_rm_tree) when the
 * process that made it exits, also after a failed assertion ended the test
 * early (Criterion's worker exits normally then). NULL on failure. */
char *aidp_test_mkdtemp(char *tmpl);
/* The state letter of a process (R, S, T, Z, ...) from /proc/PID/stat, 0 if gone. */
char aidp_test_proc_state(pid_t pid);
/* Wait (30 s at most) until pid is stopped (state T): false if it never was. */
bool aidp_test_wait_stopped(pid_t pid);
/* pid of a host process whose comm is `comm`, or 0 */
pid_t aidp_test_find_comm(const char *comm);
/* Is path the production supervisor, aidp-run or sudo (no test variables)? */
bool aidp_test_is_production(const char *path);
