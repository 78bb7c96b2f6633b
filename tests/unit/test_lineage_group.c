/* Group commit of lineage appends (docs/lineage.md, "Group commit"), with real
 * processes on a real file system (no root): concurrent appenders share their
 * fdatasyncs and lose nothing, a syncer killed while it holds the sync lock blocks
 * nobody, and records awaiting their commit stay within the bound. A failed
 * fdatasync needs a file system that fails it: tests/priv/test_lineage_group_commit.c. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lineage_util.h"
#include "runner.h"
#include "supervisor/lineage/lineage.h"

static char dir[256], log_path[300], key_path[300];

static void setup(void)
{
        /* Not /dev/shm: on tmpfs an fdatasync costs nothing and nothing groups. */
        snprintf(dir, sizeof dir, "/var/tmp/aidp-lineage-group.XXXXXX");
        cr_assert_not_null(aidp_test_mkdtemp(dir));
        snprintf(log_path, sizeof log_path, "%s/lineage.jsonl", dir);
        snprintf(key_path, sizeof key_path, "%s/lineage.key", dir);
}

TestSuite(lineage_group, .init = setup, .timeout = 180);

static struct aidp_lineage *open_store(bool serial)
{
        struct aidp_lineage_options o = {.path = log_path,
                                         .key_path = key_path,
                                         .syslog_socket = "/nonexistent/aidp-test-log",
                                         .create_key = true,
                                         .serial_commit = serial};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        if (aidp_lineage_open(&lg, &o, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                return NULL;
        }
        return lg;
}

static int append_one(struct aidp_lineage *lg, const char *job, aidp_error *e)
{
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START, id, NULL, job);
        aidp_lineage_set_host(ev, "node1", "eu-west");
        int r = aidp_lineage_append(lg, ev, e);
        json_object_put(ev);
        return r;
}

/* `aidp lineage verify` (the CLI) on the log: its exit status. */
static int cli_verify(void)
{
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s/aidp lineage verify -q --key %s %s", AIDP_BINARY_DIR,
                 key_path, log_path);
        int st = system(cmd);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static struct aidp_lineage_verify verify(void)
{
        struct aidp_lineage *lg = open_store(false);
        cr_assert_not_null(lg);
        struct aidp_lineage_verify v;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_verify_file(log_path, NULL, true, aidp_lineage_key(lg), &v, &e),
                     0, "%s", e.msg);
        aidp_lineage_free(lg);
        return v;
}

/* WRITERS processes append PER_WRITER records each, all at once; each reports how
 * many fdatasyncs of the log it made. The total, or -1 when a writer failed. */
static long run_writers(int writers, int per_writer, bool serial)
{
        aidp_lineage_free(open_store(false)); /* the key, made once */
        int pfd[2], go[2];
        cr_assert_eq(pipe(pfd), 0);
        cr_assert_eq(pipe(go), 0);
        pid_t pids[64];
        for (int w = 0; w < writers; w++) {
                pids[w] = fork();
                cr_assert_geq(pids[w], 0);
                if (pids[w] == 0) {
                        close(go[1]);
                        char c;
                        if (read(go[0], &c, 1) < 0) /* start together */
                                _exit(4);
                        struct aidp_lineage *lg = open_store(serial);
                        if (!lg)
                                _exit(2);
                        char job[32];
                        snprintf(job, sizeof job, "writer-%02d", w);
                        aidp_error e = {0};
                        for (int i = 0; i < per_writer; i++)
                                if (append_one(lg, job, &e) < 0) {
                                        fprintf(stderr, "writer %d: %s\n", w, e.msg);
                                        _exit(3);
                                }
                        uint64_t n = aidp_lineage_log_syncs();
                        if (write(pfd[1], &n, sizeof n) != sizeof n)
                                _exit(5);
                        aidp_lineage_free(lg);
                        _exit(0);
                }
        }
        close(pfd[1]);
        close(go[0]);
        close(go[1]); /* EOF: go */
        long total = 0;
        bool failed = false;
        for (int w = 0; w < writers; w++) {
                int st;
                cr_assert_eq(waitpid(pids[w], &st, 0), pids[w]);
                failed |= !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        uint64_t n;
        while (read(pfd[0], &n, sizeof n) == sizeof n)
                total += (long)n;
        close(pfd[0]);
        return failed ? -1 : total;
}

#define WRITERS    32
#define PER_WRITER 8

Test(lineage_group, concurrent_appenders_share_their_fdatasyncs_and_lose_nothing)
{
        long syncs = run_writers(WRITERS, PER_WRITER, false);
        cr_assert_geq(syncs, 0, "a writer failed");
        struct aidp_lineage_verify v = verify();
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, WRITERS * PER_WRITER);
        cr_assert_eq(v.anchor_lag, 0, "every append returned, so every record is committed");
        cr_assert_eq(cli_verify(), 0, "aidp lineage verify failed");
        /* Every writer's every record is there, whole. */
        size_t len;
        char *buf = aidp_test_slurp(log_path, &len);
        int count[WRITERS] = {0};
        for (char *p = buf; (p = strstr(p, "\"name\":\"writer-")); p++)
                count[atoi(p + strlen("\"name\":\"writer-"))]++;
        for (int w = 0; w < WRITERS; w++)
                cr_assert_eq(count[w], PER_WRITER, "writer %d: %d records", w, count[w]);
        free(buf);
        /* Shared: fewer log fdatasyncs than records (one per record without group
         * commit, as the serial test below shows). */
        cr_log_info("%d records, %ld log fdatasyncs", WRITERS * PER_WRITER, syncs);
        cr_assert_lt(syncs, WRITERS * PER_WRITER, "%ld fdatasyncs for %d records", syncs,
                     WRITERS * PER_WRITER);
        cr_assert_gt(syncs, 0);
}

Test(lineage_group, serial_commit_syncs_once_per_record)
{
        long syncs = run_writers(4, 4, true);
        cr_assert_eq(syncs, 16, "%ld", syncs);
        struct aidp_lineage_verify v = verify();
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 16);
}

/* Whether some process holds the log's sync lock (lineage_commit.c: an OFD lock
 * on one byte at 2^62). */
static bool sync_lock_held(void)
{
        int fd = open(log_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        struct flock fl = {
                .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)1 << 62, .l_len = 1};
        bool held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
        close(fd);
        return held;
}

static void sleep_ms(long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static pid_t spawn_appender(const char *job, const char *delay_ms)
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (delay_ms)
                        setenv("AIDP_FAULT_SYNC_DELAY_MS", delay_ms, 1);
                struct aidp_lineage *lg = open_store(false);
                aidp_error e = {0};
                if (!lg || append_one(lg, job, &e) < 0) {
                        fprintf(stderr, "%s: %s\n", job, e.msg);
                        _exit(3);
                }
                aidp_lineage_free(lg);
                _exit(0);
        }
        return pid;
}

Test(lineage_group, a_syncer_killed_holding_the_sync_lock_blocks_nobody)
{
        struct aidp_lineage *lg = open_store(false);
        aidp_error e = {0};
        cr_assert_eq(append_one(lg, "first", &e), 0, "%s", e.msg);
        aidp_lineage_free(lg);
        /* The syncer: its record written, the sync lock taken, then held back. */
        pid_t syncer = spawn_appender("syncer", "60000");
        for (int i = 0; i < 1000 && !sync_lock_held(); i++)
                sleep_ms(10);
        cr_assert(sync_lock_held(), "the syncer never took the sync lock");
        pid_t others[3];
        for (int i = 0; i < 3; i++)
                others[i] = spawn_appender("waiter", NULL);
        sleep_ms(300); /* they queue on the sync lock */
        for (int i = 0; i < 3; i++)
                cr_assert_eq(waitpid(others[i], NULL, WNOHANG), 0,
                             "a waiter finished while the syncer held the lock");
        cr_assert_eq(kill(syncer, SIGKILL), 0);
        cr_assert_eq(waitpid(syncer, NULL, 0), syncer);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < 3; i++) {
                int st;
                cr_assert_eq(waitpid(others[i], &st, 0), others[i]);
                cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "waiter %d failed", i);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cr_assert_lt(t1.tv_sec - t0.tv_sec, 20, "the waiters were held up");
        /* The killed syncer's record was written but never committed by it: the
         * waiters' group commit covered it (as a crash after the write would). */
        struct aidp_lineage_verify v = verify();
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 5);
        cr_assert_eq(v.anchor_lag, 0);
        cr_assert_eq(cli_verify(), 0);
}

Test(lineage_group, records_awaiting_their_commit_stay_within_the_bound)
{
        const int n = AIDP_LINEAGE_UNCOMMITTED_MAX + 8;
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                /* Each commit is held back while later appends pile up behind it. */
                setenv("AIDP_FAULT_SYNC_DELAY_MS", "400", 1);
                struct aidp_lineage *lg = open_store(false);
                struct aidp_lineage_pending *p[AIDP_LINEAGE_UNCOMMITTED_MAX + 8];
                json_object *ev[AIDP_LINEAGE_UNCOMMITTED_MAX + 8];
                aidp_error e = {0};
                for (int i = 0; i < n; i++) {
                        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
                        aidp_lineage_run_id_new(id);
                        ev[i] = aidp_lineage_event_new(AIDP_LINEAGE_START, id, NULL, "pile");
                        if (aidp_lineage_append_begin(lg, ev[i], &p[i], &e) < 0) {
                                fprintf(stderr, "%d: %s\n", i, e.msg);
                                _exit(3);
                        }
                }
                struct aidp_lineage_verify v;
                if (aidp_lineage_verify_file(log_path, NULL, true, aidp_lineage_key(lg), &v, &e) <
                            0 ||
                    v.bad_line || v.anchor_lag > AIDP_LINEAGE_UNCOMMITTED_MAX) {
                        fprintf(stderr, "mid-way: %s (lag %llu)\n", v.reason,
                                (unsigned long long)v.anchor_lag);
                        _exit(4);
                }
                for (int i = 0; i < n; i++) {
                        if (aidp_lineage_append_commit(p[i], &e) < 0) {
                                fprintf(stderr, "%d: %s\n", i, e.msg);
                                _exit(5);
                        }
                        json_object_put(ev[i]);
                }
                aidp_lineage_free(lg);
                _exit(0);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the appender failed (%d)", st);
        struct aidp_lineage_verify v = verify();
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, (uint64_t)n);
        cr_assert_eq(v.anchor_lag, 0);
}
