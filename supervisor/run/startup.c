#define _GNU_SOURCE
/* Steps 2 (start-rec) and 5 (start-sync) of docs/run-core.md: the lineage
 * store, the journal, the cgroup and START, and all the work that overlaps
 * start-up.
 *
 * Work taken off the critical path (docs/run-core.md, "Start-up time"):
 *   warm    a thread (aidp-warm), from the start while the run is resolved:
 *           OpenSSL's algorithm tables for START's HMAC; joined before pid 1
 *           is cloned.
 *   cgroup  right after resolve: the cgroup2 directory on the spot (pid 1 is
 *           cloned into it), then the limits (v2, on the spot) or the run's v1
 *           hierarchies through libcgroup in a helper process (aidp-cgroup)
 *           while the run is prepared, pid 1 is cloned and START written;
 *           collected at step 5, before the go.
 *   START   right after pid 1's clone (spawn.c, once the journal names pid 1),
 *           on a thread (aidp-start) that builds the event, writes the line
 *           and commits it (fdatasync, anchor: supervisor/lineage/
 *           lineage_append.c) while the run's thread lists the host's sockets
 *           and pid 1 builds its mounts; joined at step 5, before the go. On
 *           a daemon's zygote path the thread starts earlier, at the end of
 *           start-rec, beside prepare and the plan too (invariant 8).
 *
 * The invariants this overlap relies on (each is why-commented where it is
 * kept; a change to any of them must revisit this list):
 *  1. pid 1 is cloned (clone3, a raw system call) while other threads of the
 *     process may run (a daemon worker's own: the client's watcher, and
 *     START's thread made ahead while it idled, blocked on its eventfd until
 *     the run hands it START; none of the run's: the warm-up
 *     thread is joined before, and START's thread starts after, or on the
 *     zygote path, where this process clones nothing, is joined before a
 *     fallback clone: invariant 8). glibc does
 *     not know that the child has one thread, so from clone to execve pid 1
 *     and the job's vfork child call nothing of glibc that involves other
 *     threads: ids change through the raw setgroups/setresgid/setresuid system
 *     calls (glibc's wrappers signal every thread they know of and wait for
 *     them, forever), and the job starts with vfork (fork's handlers take every
 *     malloc arena lock and the stdio list lock, which a thread may have held
 *     at the moment of the clone). supervisor/sandbox/sandbox.c.
 *  2. No thread that is alive at the clone holds a lock pid 1 takes: pid 1
 *     mallocs in the main arena and uses no stdio (its privilege drop is prctl
 *     and capset, not libcgroup or libcap-ng). The warm-up thread uses stdio
 *     (OpenSSL reads its configuration file), so it is joined before the clone.
 *     Once pid 1 exists, what this process does (json-c, OpenSSL, stdio,
 *     malloc, START's thread) is its own: pid 1 is a separate process with its
 *     own copy of every lock, and nothing is cloned or forked while START's
 *     thread works (it is joined at step 5, or by aidp_run_start_late on a
 *     failure). A daemon's ready worker makes START's thread ahead: until its
 *     run hands it START it is blocked in read() on its eventfd, holding no
 *     lock, and may be alive at the ascaller and cgroup helper forks and a
 *     fallback clone, like the client's watcher thread. START's thread
 *     mallocs in its own arena, whose pages pid 1 never shared: the main
 *     arena's would each be a copy-on-write fault. The
 *     store's fsync thread (aidp-fsync, aidp_lineage_append_begin) still uses
 *     no stdio, no fork and no setuid and mallocs only in its own arena, for a
 *     caller that clones beside it.
 *  3. libcgroup writes through stdio, so it runs in a forked helper process,
 *     never on a thread: fork's handlers leave the child's locks usable. It
 *     dies with the supervisor (PR_SET_PDEATHSIG) and appends each directory to
 *     the journal's cgroups.log before it makes it, so gc knows every one.
 *  4. Every helper thread starts with all signals blocked: a SIGTERM reaches
 *     the supervisor's signalfd, never a helper thread's default action. The
 *     supervisor holds those signals from the end of resolve on, so a stop
 *     request during the overlap ends the run through teardown or
 *     aidp_run_startup_abort(), leaving nothing; one that came while START was
 *     written is taken at the end of step 5, before the go.
 *  5. Nothing of the job runs and no byte is decrypted before step 5: START is
 *     committed (durable and anchored) and the cgroup helper collected (the
 *     limits exist) before inject and the go. pid 1 waits for the go (and,
 *     before it, for the host socket list, which follows START's start). A run whose
 *     START cannot be written or committed does not start: it ends through
 *     teardown, which kills pid 1, and has no end record (a START that is not
 *     on record gets none: aidp_run_lineage_end). The journal exists before
 *     pid 1 does, so a crash between the clone and START leaves gc a journal:
 *     gc cleans up and appends its ABORT, the log's only record of that run
 *     (tests/priv/test_crash.c, AIDP_FAULT_STOP_AT=cloned). A run that fails
 *     before the clone gets its START then (aidp_run_start_late), so that its
 *     end record follows one, as before.
 *  6. START's commit is shared with other runs' appends (group commit,
 *     supervisor/lineage/lineage_commit.c): the log's locks are held only while
 *     a line is written or a sync runs, on open file descriptions, which pid 1
 *     does not inherit: the store is open at the clone, and pid 1 keeps only
 *     the fds its spec names.
 *  7. Every exit collects what runs in the background: the helper process is
 *     reaped by aidp_cgroup_finish_wait() or aidp_cgroup_destroy(), START's
 *     thread joined at step 5, before this process clones pid 1
 *     (aidp_run_start_before_clone) or by aidp_run_start_late() (before any
 *     end record), the warm-up thread joined by aidp_run_warm_stop().
 *  8. The zygote path (a daemon's worker that holds a zygote and the run's
 *     cgroup2 fd, the only case the zygote is used in): START's thread starts
 *     at the end of start-rec (aidp_run_start_early), after the cgroup
 *     helper's fork, and runs beside prepare, the plan's handover and pid 1's
 *     mounts. Invariants 1 and 2 are about a clone by this process: here pid
 *     1 is cloned by the zygote, another process that shares no page or lock
 *     with this one, so a thread of this process at that clone is harmless;
 *     and nothing else is forked or cloned while the thread lives (prepare
 *     makes mounts with fsopen/fsmount, the plan goes over a socket). What
 *     START reads (the run id, inputs, profile, cwd, caller, policy and
 *     views: all from resolve) is not written by the run's thread after
 *     start-rec. When the worker has to clone pid 1 itself after all (the
 *     zygote is gone, refuses the plan or is of another build), START's
 *     thread is joined first, so that invariant 1 holds as on the direct
 *     path; a START that failed then ends the run before any clone (no end
 *     record: nothing ran), and so does a stop request that came meanwhile
 *     (START then has its ABORT). START written and the zygote's answer lost
 *     (a pid 1 may exist): the run ends through teardown, START then FAIL. A
 *     crash after START and before the clone leaves gc a journal without pid
 *     1: gc removes the cgroup and appends the ABORT (the tmpfs mounts, held
 *     by this process alone, went with it). A direct `aidp-supervisor run`
 *     has no zygote and keeps the order above (its pid 1 is this process's
 *     clone). The warm-up thread need not be joined before the plan on this
 *     path, but a daemon's worker never has one (the server built the tables:
 *     warm.c), and it is joined before spawn for the fallback clone.
 * Tested by tests/priv/test_run_lineage.c (START's fsync held back 300 ms
 * while pid 1 builds its mounts; a START refused after the clone),
 * tests/priv/test_early_start.c (the zygote path: a crash and a stop request
 * after START and before the plan, a START refused beside the zygote's clone
 * and before the worker's own),
 * tests/priv/test_startup.c (a thread inside malloc and stdio across the clone)
 * and tests/priv/test_crash.c (the supervisor killed between the clone and
 * START, and while the helper makes the v1 hierarchies).
 *
 * -DAIDP_SERIAL_STARTUP=ON (CMake) builds a supervisor that does all of it
 * serially, with no thread and no helper process: the warm-up inline, START
 * appended and synced on the run's thread (after the clone as well), the cgroup
 * finished in the supervisor. Then none of the invariants above is needed,
 * which tells an overlap bug from another one. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/crypto.h"
#include "supervisor/sandbox/devnodes.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/run/cgready.h"
#include "supervisor/run/run_internal.h"
#include "supervisor/run/run_views.h"
#include "supervisor/run/warm.h"

#ifndef AIDP_SERIAL_STARTUP
#define AIDP_SERIAL_STARTUP 0
#endif

/* With every signal blocked (invariant 4). */
static bool thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        bool ok = pthread_create(t, NULL, fn, arg) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return ok;
}

/* Fault point AIDP_FAULT_BUSY_AT_CLONE=1 (tests/priv/test_startup.c): the
 * warm-up thread is not joined before the clone but kept inside malloc and
 * stdio (its own FILE) until pid 1 exists, so a clone that would need a lock
 * a thread holds (invariant 1) hangs the run instead of passing unnoticed. */
static void busy_loop(struct run *r)
{
        FILE *f = fopen("/dev/null", "we");
        for (unsigned long n = 0; !atomic_load(&r->warm_stop); n++) {
                char *p = malloc(32 + n % 4000);
                if (f)
                        fprintf(f, "%lu %p %s\n", n, (void *)p, r->res->run_id);
                free(p);
                atomic_fetch_add(&r->warm_spins, 1);
        }
        if (f)
                fclose(f);
}

static void *warm_thread(void *arg)
{
        struct run *r = arg;
        prctl(PR_SET_NAME, "aidp-warm"); /* ps, top and profilers tell the parts apart */
        aidp_crypto_warm();
        if (r->warm_busy)
                busy_loop(r);
        return NULL;
}

void aidp_run_warm_begin(struct run *r)
{
        /* A daemon's worker inherits the tables (warm.h): no thread needed. */
        if (aidp_crypto_warmed())
                return;
        if (AIDP_SERIAL_STARTUP) {
                aidp_crypto_warm();
                return;
        }
        const char *busy = getenv("AIDP_FAULT_BUSY_AT_CLONE");
        r->warm_busy = busy && !strcmp(busy, "1");
        r->warm_thread = thread_start(&r->warm_tid, warm_thread, r);
}

/* Before pid 1 is cloned (invariant 2): the warm-up thread is gone. */
void aidp_run_warm_end(struct run *r)
{
        if (!r->warm_thread)
                return;
        if (r->warm_busy) {
                /* the fault point: the thread stays, busy, across the clone */
                while (!atomic_load(&r->warm_spins))
                        sched_yield();
                r->warm_spins_at_clone = atomic_load(&r->warm_spins);
                return;
        }
        aidp_run_warm_stop(r);
}

/* After the clone, and on every exit before it. Idempotent. */
void aidp_run_warm_stop(struct run *r)
{
        if (!r->warm_thread)
                return;
        atomic_store(&r->warm_stop, true);
        pthread_join(r->warm_tid, NULL);
        r->warm_thread = false;
        if (r->warm_busy && r->warm_spins_at_clone)
                fprintf(stderr,
                        "aidp-supervisor: fault busy-at-clone: %lu malloc/stdio rounds on a "
                        "thread while pid 1 was cloned\n",
                        atomic_load(&r->warm_spins) - r->warm_spins_at_clone);
}

/* Device cgroup lines for the profile's devices ("c MAJ:MIN rwm"), found on
 * this host now; an optional device that is absent is skipped. */
static int device_rules(struct run *r, const char **out, size_t max, aidp_error *err)
{
        size_t n = 0;
        for (size_t i = 0; i < r->profile.n_devices; i++) {
                const struct aidp_device *d = &r->profile.devices[i];
                struct stat st;
                if (stat(d->path, &st) < 0) {
                        if (d->optional && errno == ENOENT)
                                continue;
                        return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "device %s", d->path);
                }
                if (!S_ISCHR(st.st_mode))
                        return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                              "device %s: not a character device", d->path);
                if (n + 1 >= max || n >= ARRAY_SIZE(r->dev_rules))
                        return aidp_error_set(err, AIDP_EXIT_CONFIG, E2BIG, "more than %zu devices",
                                              ARRAY_SIZE(r->dev_rules));
                if (asprintf(&r->dev_rules[n], "c %u:%u rwm", major(st.st_rdev),
                             minor(st.st_rdev)) < 0) {
                        r->dev_rules[n] = NULL;
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                }
                out[n] = r->dev_rules[n];
                n++;
        }
        out[n] = NULL;
        return 0;
}

/* The run journal, before anything of the run exists: with where its lineage
 * goes, so that gc records an ABORT in that log if this supervisor dies before
 * the end record, and a cgroups.log that has each cgroup before it is made. */
static int journal_begin(struct run *r, aidp_error *err)
{
        char job[128];
        aidp_run_lineage_job_name(r->o, job, sizeof job);
        int rc = aidp_journal_create(r->o->run_dir, r->res->run_id,
                                     aidp_lineage_path_for(r->o->lineage_path), job, &r->journal,
                                     err);
        if (rc == 0)
                r->journal_open = true;
        return rc;
}

/* The cgroup2 directory here and now (pid 1 is cloned into it), the rest in
 * the background. */
static int cgroup_begin(struct run *r, aidp_error *err)
{
        const struct aidp_limits *l = &r->profile.limits;
        _Static_assert(AIDP_DEVNODES_ALLOW_N + ARRAY_SIZE(r->dev_rules) + 1 ==
                               ARRAY_SIZE(r->devices_allow),
                       "devices_allow size");
        /* The minimal /dev (devnodes.h) plus exactly the profile's devices;
         * all else denied. */
        memcpy(r->devices_allow, aidp_devnodes_allow,
               AIDP_DEVNODES_ALLOW_N * sizeof aidp_devnodes_allow[0]);
        int rc = device_rules(r, r->devices_allow + AIDP_DEVNODES_ALLOW_N,
                              ARRAY_SIZE(r->dev_rules) + 1, err);
        if (rc < 0)
                return rc;
        r->cg_limits = (struct aidp_cgroup_limits){
                .memory_bytes = l->memory_bytes,
                .cpu_millis = l->cpu_millis,
                .pids = l->pids,
                .devices_allow = r->devices_allow,
        };
        /* cgroups.log first: each directory of the run is named there before
         * it is made or taken, so that gc can remove it whenever the
         * supervisor dies. Without it no cgroup is made nor taken (a ready
         * one stays the worker's): journal.json names them only later. */
        int log = aidp_journal_cgroup_log(&r->journal);
        if (log < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -log,
                                        "cgroup: the run journal's cgroups.log could not be "
                                        "opened (no cgroup is made without it)");
        /* A daemon's worker may hold the run's cgroup made ahead (cgready.h):
         * then only the limits are left, written here, before anything of the
         * job exists. */
        r->cg = aidp_run_cgready_take(r->res->run_id, r->o->cgroup_parent);
        if (r->cg) {
                /* The journal names its directories now (cgroups.log). The
                 * ready record stays, held, until the run is over (run_free):
                 * removing it here made ext4 free its files on the run's
                 * path, which waits for the journal's running transaction
                 * (another run's lineage fsync). Both naming the cgroup is
                 * the case gc already knows: a record's gc only removes an
                 * empty cgroup, the journal's the run's. */
                rc = aidp_cgroup_adopt(r->cg, log, &r->cg_limits, err);
                snprintf(r->res->cgroup_version, sizeof r->res->cgroup_version, "%s",
                         aidp_cgroup_version_name(aidp_cgroup_version_of(r->cg)));
                return rc;
        }
        rc = aidp_cgroup_begin(r->o->cgroup_parent, r->res->run_id, log, &r->cg, err);
        if (rc < 0)
                return rc;
        snprintf(r->res->cgroup_version, sizeof r->res->cgroup_version, "%s",
                 aidp_cgroup_version_name(aidp_cgroup_version_of(r->cg)));
        /* v1: the run's hierarchies through libcgroup, in a helper process
         * while the run goes on (invariant 3); serially: here and now. */
        return AIDP_SERIAL_STARTUP ? aidp_cgroup_finish(r->cg, &r->cg_limits, err)
                                   : aidp_cgroup_finish_start(r->cg, &r->cg_limits, err);
}

/* The cgroup's outcome, once its helper is done. Idempotent. */
int aidp_run_cgroup_end(struct run *r, aidp_error *err)
{
        return r->cg ? aidp_cgroup_finish_wait(r->cg, err) : 0;
}

/* Add the cgroup directories made since the last call to the journal. */
void aidp_run_journal_cgroups(struct run *r)
{
        const char *paths[8];
        size_t n = aidp_cgroup_paths(r->cg, paths, ARRAY_SIZE(paths));
        for (size_t i = r->n_cg_journaled; i < n; i++)
                aidp_journal_add(&r->journal, "cgroup", paths[i]);
        r->n_cg_journaled = n;
}

/* Step 2: the lineage store opened (a store that cannot be used refuses the
 * run before anything of it exists), the journal, then the cgroup (invariant 3). */
int aidp_run_startup_begin(struct run *r, aidp_error *err)
{
        int rc = aidp_run_lineage_open(&r->rl, r->o, err);
        if (rc == 0)
                rc = journal_begin(r, err);
        if (rc == 0)
                rc = cgroup_begin(r, err);
        /* last: START's thread may start now (invariant 8), after the cgroup
         * helper's fork */
        if (rc == 0)
                aidp_run_start_early(r);
        return rc;
}

/* START, durable on return: written and committed by the calling thread. */
static int start_append(struct run *r, aidp_error *err)
{
        return aidp_run_lineage_start(&r->rl, r->res, &r->profile, r->cwd,
                                      r->caller_rc == 0 ? &r->caller : NULL, r->uid, r->gid,
                                      aidp_run_annotate, r, false, err);
}

/* START on its own thread: the event built, the line written and committed
 * (fdatasync and anchor) there, in that thread's malloc arena, whose pages
 * pid 1 never shared, rather than in the main arena's, each first write to
 * which after the clone is a copy-on-write fault. */
static void *start_thread(void *arg)
{
        struct run *r = arg;
        prctl(PR_SET_NAME, "aidp-start"); /* ps, top and profilers tell the parts apart */
        r->start_rc = start_append(r, &r->start_err);
        return NULL;
}

/* START's thread made ahead (aidp_run_warm_start_thread): a daemon's idle
 * worker starts it once it has the daemon's scheduling (which the thread
 * takes), and the run hands it its START instead of a pthread_create, 0.13
 * ms of the request's path (docs/run-core.md, "The worker segment"). Until
 * then it waits on an eventfd and holds no lock, like the client's watcher
 * (invariants 1 and 2 are about threads that may hold one); a worker whose
 * run never hands it a START ends it with its _exit. */
static struct {
        pthread_t tid;
        int wake; /* eventfd; -1: none (not made, or handed its run) */
        struct run *r;
} g_start_ahead = {.wake = -1};

/* The thread's eventfd is its argument, never re-read from g_start_ahead
 * (which the run sets to -1 as it hands over): the run is stored before the
 * eventfd is written, so a read that returns has it. The eventfd is closed
 * here once read: the run's thread wrote it and no longer uses it. A thread
 * that ends without writing START leaves start_rc as the handover set it, a
 * failure (start_thread_begin), never a START taken as written. */
static void *start_ahead_main(void *arg)
{
        int fd = (int)(intptr_t)arg;
        prctl(PR_SET_NAME, "aidp-start");
        uint64_t v;
        ssize_t n;
        while ((n = read(fd, &v, sizeof v)) < 0 && errno == EINTR)
                ;
        if (n != (ssize_t)sizeof v)
                return NULL; /* start_rc stays the handover's failure */
        close(fd);
        /* test builds: AIDP_FAULT_FAIL_AT=start-ahead, a thread that ends
         * without writing START (the run must fail, not go on without it) */
        if (aidp_run_fault_fail("start-ahead"))
                return NULL;
        struct run *r = __atomic_load_n(&g_start_ahead.r, __ATOMIC_ACQUIRE);
        return r ? start_thread(r) : NULL;
}

void aidp_run_warm_start_thread(void)
{
        if (AIDP_SERIAL_STARTUP || g_start_ahead.wake >= 0)
                return;
        g_start_ahead.wake = eventfd(0, EFD_CLOEXEC);
        if (g_start_ahead.wake >= 0 && !thread_start(&g_start_ahead.tid, start_ahead_main,
                                                     (void *)(intptr_t)g_start_ahead.wake)) {
                close(g_start_ahead.wake);
                g_start_ahead.wake = -1;
        }
}

/* START's thread for r: the one made ahead, woken, or a new one. Until the
 * thread has written START, its result is a failure: one that ended without
 * writing it fails the run at start_join instead of passing for done. */
static bool start_thread_begin(struct run *r)
{
        if (g_start_ahead.wake >= 0) {
                int fd = g_start_ahead.wake;
                g_start_ahead.wake = -1; /* the thread has its own copy of fd */
                r->start_rc = aidp_error_set(&r->start_err, AIDP_EXIT_LINEAGE, EPIPE,
                                             "START's thread ended without writing START");
                __atomic_store_n(&g_start_ahead.r, r, __ATOMIC_RELEASE);
                uint64_t one = 1;
                if (write(fd, &one, sizeof one) == (ssize_t)sizeof one) {
                        r->start_tid = g_start_ahead.tid;
                        return true;
                }
                /* Not woken: it stays blocked on fd (open: its own) until
                 * _exit; START goes to a new thread. */
                __atomic_store_n(&g_start_ahead.r, NULL, __ATOMIC_RELEASE);
                r->start_rc = 0;
                r->start_err = (aidp_error){0};
        }
        return thread_start(&r->start_tid, start_thread, r);
}

/* START, right after pid 1's clone (spawn.c calls it once pid 1 is in the
 * journal): on a thread while this one lists the host's sockets and pid 1
 * builds its mounts; committed at step 5 (invariant 5). A START that cannot be
 * written fails the run: teardown kills pid 1 before any go. */
int aidp_run_start_record(struct run *r, aidp_error *err)
{
        /* pid 1 exists, START is not written unless it was begun before the
         * plan (test builds: AIDP_FAULT_STOP_AT=cloned; on the direct path gc
         * finds a journal and no START) */
        aidp_run_fault_point("cloned");
        if (r->start_begun)
                return 0; /* begun at the end of start-rec (aidp_run_start_early) */
        r->start_begun = true;
        if (!AIDP_SERIAL_STARTUP && (r->start_thread = start_thread_begin(r)))
                return 0;
        return start_append(r, err);
}

/* START's thread joined, and its result: that of a thread joined before
 * stays the answer. Idempotent. */
static int start_join(struct run *r, aidp_error *err)
{
        if (r->start_thread) {
                pthread_join(r->start_tid, NULL);
                r->start_thread = false;
        }
        if (r->start_rc < 0)
                *err = r->start_err;
        return r->start_rc;
}

/* The zygote path (invariant 8): at the end of start-rec, with the journal
 * and the cgroup made, a worker that holds a zygote and the run's cgroup2 fd
 * (the zygote is used only with it: spawn.c) begins START on its thread now,
 * beside prepare, the plan and pid 1's mounts, instead of after the clone:
 * pid 1 is then cloned by the zygote, another process, so no thread of this
 * one is at a clone. Without either, START follows the clone as on the
 * direct path. */
void aidp_run_start_early(struct run *r)
{
        if (!aidp_zygote_take(&r->zyg) || AIDP_SERIAL_STARTUP)
                return;
        r->cgfd = aidp_cgroup_open_fd(r->cg);
        /* Not with witnesses: their publishing threads may outlive START's
         * (a slow TPM, a file witness past its timeout), and joining START's
         * before a fallback clone would not join them. START then follows
         * the clone, as on the direct path (the zygote is still used). */
        if (r->cgfd < 0 || aidp_lineage_has_witnesses(r->rl.lg))
                return;
        r->start_begun = r->start_thread = start_thread_begin(r);
}

/* Test builds: AIDP_FAULT_STOP_AT=planned stops the worker right before it
 * hands the plan to its zygote, with START durable (in this fault only, its
 * thread is joined first): a crash here leaves a journal without pid 1 and a
 * START on record, for gc to end with its ABORT. */
void aidp_run_start_fault_planned(struct run *r)
{
        const char *at = getenv("AIDP_FAULT_STOP_AT");
        if (!at || strcmp(at, "planned"))
                return;
        aidp_error jerr = {0};
        (void)start_join(r, &jerr); /* a failure is start_rc's, for step 5 */
        aidp_run_fault_point("planned");
}

/* This process is about to clone pid 1 itself (no zygote, or one that
 * refused or is of another build) and START was begun early: no thread of
 * the run may be alive at that clone (invariants 1 and 2), so START's thread
 * is joined here. A START that failed ends the run before any clone, as a
 * START failure (no end record); a stop request that came meanwhile (the
 * zygote's waits end at one) ends it too, before the clone, START then on
 * record with its ABORT. */
int aidp_run_start_before_clone(struct run *r, aidp_error *err)
{
        if (!r->start_begun)
                return 0; /* START follows the clone */
        int rc = start_join(r, err);
        return rc < 0 ? rc : aidp_run_check_interrupted(err);
}

/* A run that failed before its START was due (in prepare, or at the clone):
 * START now, durable on the spot, so that the end record this supervisor
 * writes follows a START as for any run that got that far. Nothing of the
 * job ran. Not every end record has its START: a supervisor that dies
 * between the clone and START leaves gc an ABORT with none before it
 * (docs/lineage.md; fault point `cloned`, tests/priv/test_crash.c). */
void aidp_run_start_late(struct run *r, aidp_error *err)
{
        aidp_error jerr = {0};
        (void)start_join(r, &jerr); /* failed: start_failed says so */
        if (r->rl.start_written || r->rl.start_failed)
                return;
        aidp_error lerr = {0};
        if (start_append(r, &lerr) < 0) {
                size_t len = strlen(err->msg);
                snprintf(err->msg + len, sizeof err->msg - len,
                         " (and the run could not be recorded in lineage: %s)", lerr.msg);
        }
}

/* Step 5, while pid 1 builds its mounts: START made durable, the cgroup
 * finished and recorded in the journal. */
int aidp_run_startup_commit(struct run *r, aidp_error *err)
{
        int rc = start_join(r, err);
        if (rc == 0)
                rc = aidp_run_lineage_start_commit(&r->rl, r->res->run_id, err);
        /* START is on record; the cgroup helper may still run (test builds:
         * AIDP_FAULT_STOP_AT=start) */
        if (rc == 0)
                aidp_run_fault_point("start");
        if (rc == 0)
                rc = aidp_run_cgroup_end(r, err);
        if (rc < 0)
                return rc;
        /* cgroups.log had each directory before it was made (cgroup_begin
         * fails without it): journal.json takes them at its next rewrite. */
        aidp_run_journal_cgroups(r);
        return 0;
}

/* A run that failed before prepare: nothing of it ran, so no teardown; what
 * start-up made is undone. A cgroup that cannot be removed keeps the journal
 * for gc, and err says so. */
void aidp_run_startup_abort(struct run *r, aidp_error *err)
{
        aidp_run_warm_stop(r);
        bool clean = true;
        if (r->cg) {
                aidp_error cerr = {0};
                clean = aidp_cgroup_destroy(r->cg, &cerr) == 0;
                r->cg = NULL;
                if (!clean) {
                        size_t len = strlen(err->msg);
                        snprintf(err->msg + len, sizeof err->msg - len,
                                 " (and the run's cgroup could not be removed, left for gc: %s)",
                                 cerr.msg);
                }
        }
        aidp_run_journal_finish(r, clean);
}
