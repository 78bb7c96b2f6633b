#define _GNU_SOURCE
/* Steps 8 (teardown) and 10 (finish) of docs/run-core.md: collect /out, kill,
 * shred, pid 1, cgroups; and the journal, removed last. */
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/run/run_internal.h"

/* Keep the first failure of teardown: it goes on regardless, and reports it. */
static void keep_first(int *rc, aidp_error *err, int erc, const aidp_error *e)
{
        if (erc < 0 && *rc == 0) {
                *err = *e;
                *rc = erc;
        }
}

/* Whether the host has swap active now (/proc/swaps lists a device or
 * file below its header); true when that cannot be read. */
static bool host_has_swap(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/swaps", "re");
        char line[512];
        if (!f || !fgets(line, sizeof line, f))
                return true;
        return fgets(line, sizeof line, f) != NULL;
}

/* Resource use and OOM from the cgroup, before it is gone. Not a security
 * step, but never silent: a value the kernel did not tell is reported
 * unknown (null in the summary and lineage), never as 0, with the reason. */
static void read_stats(struct run *r)
{
        struct aidp_cgroup_stats st;
        aidp_error serr = {0};
        if (aidp_cgroup_stats(r->cg, &st, &serr) < 0) {
                aidp_text_printf(r->res->resources_error, sizeof r->res->resources_error, "%s",
                                 serr.msg);
                fprintf(stderr, "aidp-supervisor: run %s: reading its cgroup's statistics: %s\n",
                        r->res->run_id, serr.msg);
        }
        r->res->memory_peak_bytes = st.memory_peak_bytes;
        r->res->memory_peak_known = st.known & AIDP_CGROUP_STAT_MEMORY_PEAK;
        r->res->cpu_usec = st.cpu_usec;
        r->res->cpu_known = st.known & AIDP_CGROUP_STAT_CPU;
        r->res->oom_kills = st.oom_kills;
        if (st.known & AIDP_CGROUP_STAT_SWAP)
                r->res->job_swap = st.swap_off ? "off" : host_has_swap() ? "possible" : "no-device";
        if (st.oom_kills > 0)
                r->res->oom_killed = true;
}

/* What the output leak scan found, for the summary and lineage END. */
static void leak_result(struct run *r)
{
        const struct aidp_inject *d = &r->inject;
        struct aidp_run_result *res = r->res;
        res->leak_scanned = d->leak_scanned;
        res->leak = d->leak;
        res->leak_values = d->leak_values;
        res->leak_dropped = d->leak_dropped;
        res->leak_action = d->leak_quarantine ? "quarantine" : "report";
        res->leak_quarantined = d->quarantined && !r->collect_failed;
        snprintf(res->leak_key, sizeof res->leak_key, "%s", d->quarantine_key);
        if (d->leak_scanned && d->leak.hits)
                snprintf(res->leak_reason, sizeof res->leak_reason, "output leak scan: %llu hits",
                         (unsigned long long)d->leak.hits);
        res->leak_private = r->o->as_user || r->uid != 0;
        /* For a user, nothing in report mode (the hits are the security
         * team's, in lineage); a quarantine the run's outcome says. */
        if (d->leak_scanned && d->leak.hits && !res->leak_private)
                fprintf(stderr,
                        "aidp-supervisor: run %s: output leak scan: %llu hits in %llu files "
                        "(%s)%s%s\n",
                        res->run_id, (unsigned long long)d->leak.hits,
                        (unsigned long long)d->leak.files, res->leak_action,
                        res->leak_quarantined ? "; /out sealed under the quarantine key " : "",
                        res->leak_quarantined ? res->leak_key : "");
}

/* Collect: seal /out now that nothing can write it any more, and before shred
 * destroys it. */
static void collect_out(struct run *r)
{
        for (size_t i = 0; i < r->n_tmpfs; i++) {
                if (strcmp(r->tmpfs[i].label, "out"))
                        continue;
                char owner[64];
                struct passwd pw, *pwp = NULL;
                char pwbuf[1024];
                if (getpwuid_r(r->uid, &pw, pwbuf, sizeof pwbuf, &pwp) == 0 && pwp)
                        snprintf(owner, sizeof owner, "%s", pw.pw_name);
                else
                        snprintf(owner, sizeof owner, "uid %u", (unsigned)r->uid);
                if (aidp_inject_collect(&r->inject, r->tmpfs[i].fd, r->tmpfs[i].size,
                                        r->o->output_dir, r->res->run_id,
                                        r->output_key[0] ? r->output_key : r->o->output_key_id,
                                        owner, !r->o->quiet, &r->res->output, &r->collect_err) < 0)
                        r->collect_failed = true;
                else
                        r->res->has_output = true;
                leak_result(r);
        }
}

/* What each tmpfs holds now that the job is over, before collect and shred:
 * the memory parts of the summary, and which mount filled up. */
static void measure_mounts(struct run *r)
{
        struct aidp_run_result *res = r->res;
        res->n_mounts = 0;
        res->data_memory_bytes = res->tmpfs_memory_bytes = 0;
        for (size_t i = 0; i < r->n_tmpfs && i < AIDP_RUN_MAX_MOUNTS; i++) {
                struct aidp_run_mount *m = &res->mounts[res->n_mounts++];
                memset(m, 0, sizeof *m);
                snprintf(m->target, sizeof m->target, "%s", aidp_run_tmpfs_target(r, &r->tmpfs[i]));
                snprintf(m->label, sizeof m->label, "%s", r->tmpfs[i].label);
                m->size_bytes = r->tmpfs[i].size;
                m->noswap = r->tmpfs[i].noswap;
                struct statfs sf;
                if (fstatfs(r->tmpfs[i].fd, &sf) < 0)
                        continue;
                m->used_bytes = (uint64_t)(sf.f_blocks - sf.f_bfree) * (uint64_t)sf.f_bsize;
                /* tmpfs hands out whole pages: none left is a write refused */
                m->full = sf.f_bfree == 0 || (sf.f_files && sf.f_ffree == 0);
                if (!strcmp(r->tmpfs[i].label, "data"))
                        res->data_memory_bytes += m->used_bytes;
                else
                        res->tmpfs_memory_bytes += m->used_bytes;
        }
        uint64_t pages = res->data_memory_bytes + res->tmpfs_memory_bytes;
        res->process_memory_peak_bytes =
                res->memory_peak_bytes > pages ? res->memory_peak_bytes - pages : 0;
}

/* Our references to the run's tmpfs mounts once shredded, closed when this
 * process exits. Each mount is a detached one (fsmount): the close that drops
 * its last reference unmounts it, and the kernel waits an RCU grace period
 * for each such unmount (milliseconds on a busy host). Were they closed here,
 * pid 1's exit would drop the last references, one grace period per mount,
 * while teardown waits for it; held here, they go after the run has ended
 * (each run is a process of its own: the direct supervisor, or one daemon
 * worker, which replies to its client before it exits). Nothing is left in
 * them: shred has overwritten and checked every byte. */
static int g_spent[AIDP_SANDBOX_MAX_MOUNTS];
static size_t g_n_spent;

static void keep_spent(struct aidp_tmpfs *t)
{
        if (t->fd >= 0 && g_n_spent < ARRAY_SIZE(g_spent))
                g_spent[g_n_spent++] = t->fd;
        else
                aidp_tmpfs_release(t);
        t->fd = -1;
}

/* A process that runs a second run: the first run's mounts go now. */
static void close_spent(void)
{
        for (size_t i = 0; i < g_n_spent; i++)
                close(g_spent[i]);
        g_n_spent = 0;
}

/* Overwrite and verify every byte, through our own mount fds; our reference
 * to each mount is kept until the process exits (keep_spent). */
static void shred_all(struct run *r)
{
        struct aidp_shred_report *total = &r->res->shred;
        memset(total, 0, sizeof *total);
        total->verified = true;
        r->res->shredded_by = "supervisor";
        close_spent();
        for (size_t i = 0; i < r->n_tmpfs; i++) {
                struct aidp_shred_report one;
                if (i == 1)
                        aidp_run_fault_point("shred");
                /* 0: a worker per CPU, counted only for a mount with data */
                int e = aidp_shred_tree(r->tmpfs[i].fd, 0, &one);
                if (e < 0 && !one.first_failure[0])
                        snprintf(one.first_failure, sizeof one.first_failure,
                                 "listing the files: %s", strerror(-e));
                if (i == 0 && aidp_run_fault_fail("shred")) {
                        one.verified = false;
                        snprintf(one.first_failure, sizeof one.first_failure,
                                 "failure injected (AIDP_FAULT_FAIL_AT=shred)");
                }
                if (i < r->res->n_mounts) {
                        struct aidp_run_mount *m = &r->res->mounts[i];
                        m->files = one.files;
                        m->bytes = one.bytes;
                        m->verified = one.verified && e == 0;
                }
                total->files += one.files;
                total->bytes += one.bytes;
                total->failures += one.failures;
                total->seconds += one.seconds;
                total->scrub_seconds += one.scrub_seconds;
                /* Nobody asked to keep /out: what it held is gone now; the
                 * summary and lineage say how much. */
                if (!strcmp(r->tmpfs[i].label, "out") && !r->o->output_dir && r->res->started) {
                        r->res->out_discarded = true;
                        r->res->out_discarded_bytes = one.bytes;
                        r->res->out_discarded_files = one.files;
                }
                if (!one.verified || e < 0) {
                        total->verified = false;
                        if (!total->first_failure[0])
                                aidp_text_printf(total->first_failure, sizeof total->first_failure,
                                                 "%s: %s", r->tmpfs[i].label, one.first_failure);
                }
                keep_spent(&r->tmpfs[i]);
        }
        r->n_tmpfs = 0;
}

/* pid 1 goes last, with the last references to the mounts. One that cannot
 * be killed or reaped may still hold them: the run fails, and says so. */
/* How long pid 1 may take to end once killed: its exit waits for every
 * process of its pid namespace, and one stuck in the kernel (D state) holds
 * it. Past that the worker stops waiting: the run fails or, after the status,
 * its journal is left for gc, and the message says so. */
#define PID1_END_MS 10000

static int end_pid1(struct run *r, aidp_error *err)
{
        int rc = 0;
        if (r->pid1 > 0) {
                if (kill(r->pid1, SIGKILL) < 0 && errno != ESRCH)
                        rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                              "killing the sandbox's pid 1 (%d)", (int)r->pid1);
                if (r->pidfd >= 0) {
                        struct pollfd pf = {.fd = r->pidfd, .events = POLLIN};
                        int p;
                        while ((p = poll(&pf, 1, PID1_END_MS)) < 0 && errno == EINTR)
                                ;
                        if (p == 0) {
                                if (rc == 0)
                                        rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, ETIMEDOUT,
                                                            "the sandbox's pid 1 (%d) did not end "
                                                            "within %d s of its kill",
                                                            (int)r->pid1, PID1_END_MS / 1000);
                                return rc;
                        }
                }
                pid_t w;
                while ((w = waitpid(r->pid1, NULL, 0)) < 0 && errno == EINTR)
                        ;
                if (w < 0 && rc == 0)
                        rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                              "reaping the sandbox's pid 1 (%d)", (int)r->pid1);
                r->pid1 = 0;
        }
        aidp_run_close(&r->pidfd);
        return rc;
}

static void *unpin_thread(void *arg)
{
        struct run *r = arg;
        prctl(PR_SET_NAME, "aidp-unpin"); /* ps, top and profilers tell the parts apart */
        aidp_nspin_release(r->nspin);
        return NULL;
}

/* 8.4 the pin of pid 1's mount namespace goes (the tmpfs mounts in it are
 * overwritten, pid 1 is reaped). Its two unmounts and the namespace's end
 * each wait for an RCU grace period; without egress they do so on a thread,
 * while the end record's fsyncs run, and the journal waits for it
 * (aidp_run_journal_finish: the pin's file is in the journal's directory).
 * With egress the network teardown that follows relies on the namespace
 * (which holds the network one) being gone: then here and now. The thread
 * starts with every signal blocked (startup.c, invariant 4) and makes only
 * system calls. */
static void unpin(struct run *r)
{
        if (!r->nspin[0])
                return;
        if (!r->net.applied) {
                sigset_t all, old;
                sigfillset(&all);
                /* Two umount2 calls and an unlink: a small stack will do
                 * (glibc's default maps 8 MiB for it). */
                pthread_attr_t at;
                bool sized = pthread_attr_init(&at) == 0;
                if (sized)
                        pthread_attr_setstacksize(&at, 64 * 1024);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                r->unpinning =
                        pthread_create(&r->unpin_tid, sized ? &at : NULL, unpin_thread, r) == 0;
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                if (sized)
                        pthread_attr_destroy(&at);
                if (r->unpinning)
                        return;
        }
        aidp_nspin_release(r->nspin);
        r->nspin[0] = '\0';
}

/* The pin is gone: its thread joined. Idempotent. */
static void unpin_wait(struct run *r)
{
        if (!r->unpinning)
                return;
        pthread_join(r->unpin_tid, NULL);
        r->unpinning = false;
        r->nspin[0] = '\0';
}

/* 8.6 the run's cgroups, and their `aidp` parent when it is empty. */
static int remove_cgroups(struct run *r, aidp_error *err)
{
        if (!r->cg)
                return 0;
        int rc = aidp_cgroup_destroy(r->cg, err) < 0 ? -EBUSY : 0;
        r->cg = NULL;
        return rc;
}

/* Step 8 up to what the end record reports: kill, collect, shred (8.0 to 8.3),
 * and with egress pid 1, the pin and the network (8.4, 8.5: the last denials
 * go into the end record, and the host side goes only once pid 1's namespace
 * has). The rest (aidp_run_teardown_release) comes after the client has its
 * status. Every part runs whatever failed before it; the first failure is
 * returned, and fails the run. */
int aidp_run_teardown(struct run *r, aidp_error *err)
{
        int rc = 0;
        aidp_error e = {0};
        /* 8.0 pid 1's end begins now when its mount namespace is pinned:
         * the pin keeps the tmpfs mounts reachable for gc should this
         * supervisor die during shred (gc's path after a crash of both), so
         * pid 1 need not hold them, and its exit (its pid namespace, its
         * files) runs on another CPU while this process shreds; it is reaped
         * at 8.4. Unpinned, pid 1 holds them until shred is done. */
        if (r->pid1 > 0 && r->nspin[0])
                kill(r->pid1, SIGKILL);
        aidp_run_cgroup_end(r, &e); /* a run that failed before step 5 has not collected it */
        if (r->cg)
                read_stats(r);
        /* 8.1 every process of the run but pid 1, which (unpinned) keeps
         * holding the tmpfs mounts: if this supervisor dies during shred, gc
         * can still reach them through it. A process that survives could
         * write while shred runs: the run fails (shred still goes on, and the
         * cgroup's removal below kills again). */
        if (r->cg) {
                int k = aidp_cgroup_kill_except(r->cg, r->pid1);
                if (k < 0)
                        keep_first(&rc, err,
                                   aidp_error_errno(&e, AIDP_EXIT_INTERNAL, -k,
                                                    "killing the run's processes before shred"),
                                   &e);
        }
        /* Copy out what the job wrote but nobody has read yet: after shred,
         * pages it spliced into a pipe would read as zeros. */
        for (int i = 0; i < 2; i++)
                aidp_relay_drain(&r->relay[i]);
        measure_mounts(r);
        /* 8.2 collect */
        if (r->o->output_dir && r->res->started)
                collect_out(r);
        /* 8.3 shred */
        shred_all(r);
        /* 8.4 and 8.5 with egress: pid 1, the pin (its namespace keeps the
         * network one alive), then the host table and lease (the veth goes
         * with pid 1's namespace); the last denials are read first */
        if (r->net.applied) {
                keep_first(&rc, err, end_pid1(r, &e), &e);
                unpin(r);
                aidp_error e2 = {0};
                keep_first(&rc, err, aidp_run_net_teardown(&r->net, &e2), &e2);
                r->res->denials = r->net.denials;
        }
        /* Without egress pid 1 is reaped after the status: killed now
         * (unpinned, it held the mounts until here), its exit runs on
         * another CPU while the end record is written. */
        else if (r->pid1 > 0)
                kill(r->pid1, SIGKILL);
        if (!r->res->shred.verified && rc == 0)
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "shred not verified: %s",
                                    r->res->shred.first_failure);
        return rc;
}

/* Step 8, the rest, once the end record is durable and the client has its
 * status (docs/run-core.md, "The tail after the status"): 8.4 pid 1 reaped
 * (its exit waits for RCU grace periods; nothing of it holds run data after
 * shred) and the pin dropped on a thread, 8.6 the cgroups (a few rmdirs that
 * sleep). Every part runs whatever failed before it; the first failure is
 * returned: the journal then stays for gc, which finds the end record and
 * adds none. */
int aidp_run_teardown_release(struct run *r, aidp_error *err)
{
        int rc = 0;
        aidp_error e = {0};
        keep_first(&rc, err, end_pid1(r, &e), &e);
        unpin(r);
        keep_first(&rc, err, remove_cgroups(r, &e), &e);
        if (rc == 0 && aidp_run_fault_fail("release"))
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EBUSY,
                                    "failure injected (AIDP_FAULT_FAIL_AT=release)");
        return rc;
}

/* Step 10: the journal last, after the end record: while it exists, gc can finish this
 * work and record the run's ABORT. */
void aidp_run_journal_finish(struct run *r, bool done)
{
        unpin_wait(r);
        if (!r->journal_open)
                return;
        if (r->journal.lifeline_w >= 0)
                close(r->journal.lifeline_w);
        r->journal.lifeline_w = -1;
        if (done)
                aidp_journal_remove(&r->journal);
        else
                aidp_journal_close(&r->journal);
        r->journal_open = false;
}

/* What teardown will release, named for the shred report in lineage. */
size_t aidp_run_removed_list(struct run *r, char **out, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < r->n_tmpfs && n < max; i++)
                if (asprintf(&out[n], "tmpfs %s", r->tmpfs[i].label) >= 0)
                        n++;
        if (r->cg) {
                const char *paths[8];
                size_t np = aidp_cgroup_paths(r->cg, paths, ARRAY_SIZE(paths));
                for (size_t i = 0; i < np && n < max; i++)
                        if (asprintf(&out[n], "cgroup %s", paths[i]) >= 0)
                                n++;
        }
        if (r->nspin[0] && n < max && asprintf(&out[n], "mount namespace pin %s", r->nspin) >= 0)
                n++;
        if (r->journal_open && n < max && asprintf(&out[n], "journal %s", r->journal.dir) >= 0)
                n++;
        return n;
}
