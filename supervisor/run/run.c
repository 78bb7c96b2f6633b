#define _GNU_SOURCE
/* One run, start to end: the phase list of docs/run-core.md ("Lifecycle") and
 * its orchestration. Each phase lives in its own file (run_internal.h lists
 * them); this file only orders them and decides which exit path a failure takes.
 * Every exit after START is written goes through teardown. */
#include "supervisor/run/run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/strv.h"
#include "profiles/units.h"
#include "supervisor/run/cgready.h"
#include "supervisor/run/run_internal.h"
#include "supervisor/run/run_plan.h"
#include "supervisor/run/run_views.h"

/* AIDP_TIMING=1: the time each phase took, with the CPU time and page faults of
 * the supervisor's threads in it, on stderr (scripts/bench-start). Counted
 * from the run's start (run_init), not from the process's: a daemon's worker
 * did other work before (its request), and a process may run several runs. */
static struct timespec g_phase_last;
static struct rusage g_phase_ru;

static void phase_start(const struct run *r)
{
        if (!getenv("AIDP_TIMING"))
                return;
        g_phase_last = r->t0;
        getrusage(RUSAGE_SELF, &g_phase_ru);
}

void aidp_run_phase(struct run *r, const char *name)
{
        (void)r;
        struct timespec *last = &g_phase_last;
        struct rusage *last_ru = &g_phase_ru;
        if (!getenv("AIDP_TIMING"))
                return;
        struct timespec now;
        struct rusage ru;
        clock_gettime(CLOCK_MONOTONIC, &now);
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec - last_ru->ru_utime.tv_sec -
                              last_ru->ru_stime.tv_sec) *
                             1e3 +
                     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec -
                              last_ru->ru_utime.tv_usec - last_ru->ru_stime.tv_usec) /
                             1e3;
        fprintf(stderr, "aidp-supervisor: timing: %-10s %8.3f ms  cpu %6.3f ms  faults %4ld\n",
                name,
                (double)(now.tv_sec - last->tv_sec) * 1e3 +
                        (double)(now.tv_nsec - last->tv_nsec) / 1e6,
                cpu, ru.ru_minflt - last_ru->ru_minflt);
        *last = now;
        *last_ru = ru;
}

/* Fault injection for the crash tests:
 * AIDP_FAULT_STOP_AT=start|charged|inject|job|shred|ended|reported|pin (and prepare;
 * cloned and planned in startup.c) stops the supervisor (SIGSTOP) at that point of a run, so a test can
 * SIGKILL it (or signal it) there and check what gc (or teardown) does.
 * Harmless outside tests: a stopped supervisor is all it can cause, and only
 * root sets a root process's env. */
void aidp_run_fault_point(const char *where)
{
        const char *at = getenv("AIDP_FAULT_STOP_AT");
        if (at && !strcmp(at, where))
                raise(SIGSTOP);
}

/* AIDP_FAULT_FAIL_AT=shred|release: the step reports a failure (test builds only, like
 * every AIDP_FAULT_ variable: supervisor/cli/env.c). */
bool aidp_run_fault_fail(const char *where)
{
        const char *at = getenv("AIDP_FAULT_FAIL_AT");
        return at && !strcmp(at, where);
}

/* A limit ended the job: what it was and how to change it, for the job's
 * user, who reads this and not the profile. */
static int limit_ended(struct aidp_run_result *res, int status, int errnum, const char *what,
                       const char *lim, const char *tail, const char *opt, aidp_error *err)
{
        res->exit_status = status;
        return aidp_error_set(err, status, errnum,
                              "job %s of %s%s: %s sets it, up to the profile's (`aidp profile "
                              "list` shows the profiles)",
                              what, lim, tail, opt);
}

/* The run's result: exit status and error, from the run and its teardown. */
static int outcome(struct run *r, int rc, aidp_error *err, int trc, const aidp_error *terr)
{
        struct aidp_run_result *res = r->res;
        if (rc < 0) {
                res->exit_status = err->status;
                return rc;
        }
        /* Sealing /out failed: the job's results are lost, say so. */
        if (r->collect_failed) {
                *err = r->collect_err;
                res->exit_status = err->status ? err->status : AIDP_EXIT_DATA;
                return -(err->errnum ? err->errnum : EIO);
        }
        /* A quarantined output: sealed, but not for the user (the policy's
         * leak_scan), so the run did not deliver. */
        if (res->leak_quarantined) {
                res->exit_status = AIDP_EXIT_DENIED;
                if (res->leak_private)
                        return aidp_error_set(err, AIDP_EXIT_DENIED, EACCES,
                                              "/out is quarantined: the output leak scan found "
                                              "values the run's view hides in it; it is sealed "
                                              "under the admin-only key %s (access policy "
                                              "leak_scan), and an admin has the details in "
                                              "lineage",
                                              res->leak_key);
                return aidp_error_set(err, AIDP_EXIT_DENIED, EACCES,
                                      "%s; /out is quarantined: sealed under the admin-only key "
                                      "%s (access policy leak_scan)",
                                      res->leak_reason, res->leak_key);
        }
        if (trc < 0) {
                *err = *terr;
                res->exit_status = AIDP_EXIT_INTERNAL;
                return trc;
        }
        if (res->access_expired) {
                res->exit_status = AIDP_EXIT_DENIED;
                return aidp_error_set(err, AIDP_EXIT_DENIED, ETIME,
                                      "the time window of access rule %s closed: the job was "
                                      "stopped",
                                      res->access_rule);
        }
        char lim[32];
        if (res->timed_out) {
                aidp_profiles_fmt_duration(lim, sizeof lim, r->profile.limits.wall_seconds);
                return limit_ended(res, AIDP_EXIT_TIMEOUT, ETIME, "exceeded its wall time", lim,
                                   " and was stopped", "--timeout", err);
        }
        if (res->oom_killed && res->job_status != 0) {
                aidp_profiles_fmt_size(lim, sizeof lim, r->profile.limits.memory_bytes);
                return limit_ended(res, AIDP_EXIT_OOM, ENOMEM, "was killed by the memory limit",
                                   lim, " (out of memory in its cgroup)", "--memory", err);
        }
        res->exit_status = res->job_status >= 0 ? res->job_status : AIDP_EXIT_INTERNAL;
        if (res->job_status < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ECHILD,
                                      "the sandbox ended without a job status");
        return 0;
}

static void run_free(struct run *r)
{
        /* A ready cgroup this run did not take (a dry run, a refusal, a run
         * given its own id or parent) is removed with it; the record of one
         * it took goes now, after the status (startup.c, cgroup_begin). */
        aidp_run_cgready_drop();
        aidp_run_policy_free(&r->policy);
        if (r->caller_rc == 0)
                aidp_caller_free(&r->caller);
        aidp_inject_free(&r->inject);
        aidp_run_caller_paths_free(&r->cp);
        for (size_t i = 0; i < r->n_env; i++)
                free(r->env[i]);
        free(r->env);
        aidp_bpf_free(&r->bpf);
        aidp_strv_free(r->host_sockets);
        for (size_t i = 0; i < 2; i++)
                if (r->learn_sv[i] >= 0)
                        close(r->learn_sv[i]);
        for (size_t i = 0; i < ARRAY_SIZE(r->dev_rules); i++)
                free(r->dev_rules[i]);
        aidp_run_lineage_close(&r->rl);
        /* a zygote taken at start-rec that the run did not get to use */
        aidp_zygote_drop(&r->zyg);
        aidp_run_close(&r->cgfd);
        aidp_run_net_free(&r->net);
        if (r->profile_loaded)
                aidp_profile_free(&r->profile);
}

static void run_init(struct run *r, const struct aidp_run_opts *o, struct aidp_run_result *res)
{
        memset(res, 0, sizeof *res);
        res->job_status = -1;
        *r = (struct run){.o = o,
                          .res = res,
                          .pidfd = -1,
                          .learn_sv = {-1, -1},
                          .sync_w = -1,
                          .err_r = -1,
                          .status_r = -1,
                          .life_w = -1,
                          .zyg = {.pid = -1, .sock = -1},
                          .cgfd = -1,
                          .caller_rc = -ENOENT};
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        phase_start(r);
        r->journal.lifeline_w = -1;
        r->journal.cgroup_log = -1;
        aidp_run_caller_paths_init(&r->cp);
        aidp_relay_init(&r->relay[0]);
        aidp_relay_init(&r->relay[1]);
}

/* A refusal with its decision: the policy's facets only once it decided (a
 * header that did not authenticate leaves nothing to decide on). */
static void annotate_refusal(const void *arg, json_object *ev)
{
        const struct run *r = arg;
        if (r->policy.decided)
                aidp_run_annotate(r, ev);
}

/* A denial is an audited event too, though no run starts; so is a refusal
 * for the sealed inputs themselves (a tampered file, another key), which
 * the policy may have allowed. The run's status stays the refusal's. */
static void record_denial(struct run *r, aidp_error *err)
{
        bool denied = r->policy.decided && !r->policy.decision.allow;
        if (!denied && !r->inputs_refused)
                return;
        const struct aidp_caller_identity *who = r->caller_rc == 0 ? &r->caller : NULL;
        aidp_error lerr = {0};
        int rc = denied ? aidp_run_lineage_denied(r->o, r->res, who, aidp_run_annotate, r, &lerr)
                        : aidp_run_lineage_refused(r->o, r->res, r->inject.n, who, annotate_refusal,
                                                   r, err, &lerr);
        if (rc < 0) {
                size_t len = strlen(err->msg);
                snprintf(err->msg + len, sizeof err->msg - len,
                         " (and the %s could not be recorded in lineage: %s)",
                         denied ? "denial" : "refusal", lerr.msg);
        }
}

/* A stop request that arrived while the run was prepared ends it before the job. */
int aidp_run_check_interrupted(aidp_error *err)
{
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM) ||
            sigismember(&pending, SIGHUP))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINTR,
                                      "interrupted before the job started");
        return 0;
}

/* Steps 3 to 7: from prepare to the end of the job. Every exit from here goes
 * through teardown (run_end). */
static int run_network(struct run *r, aidp_error *err)
{
        int rc = aidp_run_net_prepare(&r->net, &r->journal, aidp_journal_run_dir(r->o->run_dir),
                                      r->res->run_id, r->pid1, err);
        if (rc == 0 && r->net.applied)
                snprintf(r->res->egress_addr, sizeof r->res->egress_addr, "%s",
                         aidp_netpolicy_run_lease(r->net.applied)->sandbox4);
        return rc;
}

static int run_job(struct run *r, const sigset_t *oldmask, aidp_error *err)
{
        /* before prepare: no pid 1, no START yet (test builds:
         * AIDP_FAULT_STOP_AT=prepare) */
        aidp_run_fault_point("prepare");
        int rc = aidp_run_prepare(r, err);
        if (rc == 0)
                rc = aidp_run_check_interrupted(err);
        aidp_run_phase(r, "prepare");
        /* pid 1 is cloned while the cgroup helper may still run, and START
         * is written right after, or already is on a daemon's zygote path
         * (startup.c lists what that relies on); the warm-up thread is gone
         * first, for a clone by this process. */
        aidp_run_warm_end(r);
        if (rc == 0)
                rc = aidp_run_net_stage(&r->net, aidp_journal_run_dir(r->o->run_dir),
                                        r->res->run_id, err);
        if (rc == 0)
                rc = aidp_run_spawn(r, oldmask, err);
        aidp_run_warm_stop(r);
        aidp_run_phase(r, "spawn");
        if (rc == 0)
                rc = aidp_run_startup_commit(r, err);
        /* a stop request while START was written ends the run before the job */
        if (rc == 0)
                rc = aidp_run_check_interrupted(err);
        aidp_run_phase(r, "start-sync");
        /* egress: pid 1's namespace exists and the job is not released yet */
        if (rc == 0)
                rc = run_network(r, err);
        aidp_run_phase(r, "network");
        if (rc == 0)
                rc = aidp_run_inject(r, err);
        aidp_run_phase(r, "inject");
        if (rc == 0)
                rc = aidp_run_start_and_monitor(r, err);
        aidp_run_phase(r, "job");
        /* 126/127: the job's shell could not run something; a path the
         * sandbox hides is the usual cause (a virtualenv under $HOME). */
        char hint[1024];
        if (rc == 0 && (r->res->job_status == 126 || r->res->job_status == 127) &&
            aidp_run_hidden_scan(r, true, hint, sizeof hint))
                fprintf(stderr, "aidp-supervisor: the job exited %d (cannot run a command): %s\n",
                        r->res->job_status, hint);
        return rc;
}

/* Step 9: the end record, with signals still held so that a late SIGTERM cannot
 * cut it short. Returns the run's result; *lrc_out says whether the end is on
 * record. */
static int end_record(struct run *r, int rc, char **removed, size_t n_removed, int *lrc_out,
                      aidp_error *err)
{
        struct aidp_run_result *res = r->res;
        aidp_error lerr = {0};
        int lrc = aidp_run_lineage_end(&r->rl, res->run_id, res, rc, err,
                                       (const char *const *)removed, n_removed, &lerr);
        *lrc_out = lrc;
        aidp_run_phase(r, "end-rec");
        /* The end record is on disk, the journal not gone yet (test
         * builds: AIDP_FAULT_STOP_AT=ended; a crash here must not make gc
         * add an ABORT after it). */
        if (lrc == 0)
                aidp_run_fault_point("ended");
        if (lrc < 0) {
                /* The run happened but its end is not on record: say so loudly. The
                 * journal stays, so the next gc records an ABORT for it. */
                if (rc == 0) {
                        *err = lerr;
                        aidp_error_wrap(err, "the job finished with status %d but",
                                        res->exit_status);
                        res->exit_status = AIDP_EXIT_LINEAGE;
                        return -EIO;
                }
                aidp_error_wrap(err, "%s; the run", lerr.msg);
        }
        return rc;
}

/* After the status: pid 1 reaped, the pin and the cgroups gone (teardown.c),
 * then 10, the journal, last. Teardown that left something for gc after the
 * end record was written: the journal says so, and gc cleans up without an
 * ABORT after it. */
static void release(struct run *r, int rc, int trc, int lrc)
{
        /* The client has its status; pid 1, the pin, the cgroups and the
         * journal are still there (test builds: AIDP_FAULT_STOP_AT=reported;
         * gc finishes the work and adds no ABORT). */
        aidp_run_fault_point("reported");
        aidp_error rerr = {0};
        int rrc = aidp_run_teardown_release(r, &rerr);
        aidp_run_phase(r, "release");
        if (rrc < 0)
                fprintf(stderr, "aidp-supervisor: run %s: %s; left for gc\n", r->res->run_id,
                        rerr.msg);
        if (lrc == 0 && (trc < 0 || rrc < 0) && r->journal_open) {
                aidp_error jerr = {0};
                aidp_journal_set_ended(&r->journal, rc == 0 ? "COMPLETE" : "FAIL");
                if (aidp_journal_sync(&r->journal, &jerr) < 0)
                        fprintf(stderr, "aidp-supervisor: run %s: %s\n", r->res->run_id, jerr.msg);
        }
        /* 10: the journal goes last; it stays for gc if anything is left. */
        aidp_run_journal_finish(r, trc == 0 && lrc == 0 && rrc == 0);
}

/* Steps 8 to 10: teardown, the outcome, the end record, the status to whoever
 * waits for it, then the rest of teardown and the journal. */
static int run_end(struct run *r, int rc, aidp_error *err)
{
        /* The lifeline stays open until teardown is done: pid 1 must not
         * mistake a normal teardown for a dead supervisor. */
        r->journal.lifeline_w = r->life_w;
        r->life_w = -1;
        int *ends[] = {&r->sync_w, &r->err_r, &r->status_r};
        for (size_t i = 0; i < ARRAY_SIZE(ends); i++)
                if (*ends[i] >= 0) {
                        close(*ends[i]);
                        *ends[i] = -1;
                }
        /* The cgroup helper's directories (a run that failed early has not
         * collected them yet), so that the end record names them all. */
        aidp_error cgerr = {0};
        aidp_run_cgroup_end(r, &cgerr);
        char *removed[16];
        size_t n_removed = aidp_run_removed_list(r, removed, ARRAY_SIZE(removed));
        aidp_error terr = {0};
        int trc = aidp_run_teardown(r, &terr);
        aidp_run_phase(r, "teardown");
        /* A run stopped from outside (Ctrl-C, scancel, a daemon client that
         * went away) may have a reader that will never read again: its end
         * record waits for that reader 5 s at most. A normal end waits for a
         * slow reader (`| less`) as long as it takes. */
        int stall_ms = r->res->stop_signal ? 5000 : -1;
        for (int i = 0; i < 2; i++)
                aidp_relay_finish(&r->relay[i], stall_ms);
        aidp_run_late_stop(r);
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        r->res->wall_seconds =
                (double)(t1.tv_sec - r->t0.tv_sec) + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e9;
        rc = outcome(r, rc, err, trc, &terr);
        /* A run that failed before its START (prepare, the clone) */
        aidp_run_start_late(r, err);
        int lrc;
        rc = end_record(r, rc, removed, n_removed, &lrc, err);
        /* The run is over and on record, shred done: whoever waits for its
         * status (a daemon's client) need not wait for pid 1's exit, the
         * cgroups' removal nor the journal's (docs/run-core.md, "The tail
         * after the status"). */
        if (r->o->on_ended)
                r->o->on_ended(r->res, rc, err, r->o->ended_arg);
        release(r, rc, trc, lrc);
        for (size_t i = 0; i < n_removed; i++)
                free(removed[i]);
        return rc;
}

/* --dry-run: the plan after resolve (the START record, unwritten), and nothing
 * else: no journal, cgroup, mount or lineage record. */
static int dry_run(struct run *r, int rc, aidp_error *err)
{
        bool denied = rc < 0 && r->policy.decided && !r->policy.decision.allow;
        *r->o->plan = NULL;
        if (rc == 0 || denied) {
                json_object *ev = aidp_run_lineage_start_event(
                        r->o, r->res, &r->profile, r->cwd, r->caller_rc == 0 ? &r->caller : NULL,
                        r->uid, r->gid, aidp_run_annotate, r);
                if (ev) {
                        json_object_object_add(ev, "dryRun", json_object_new_boolean(true));
                        aidp_run_plan_redact(ev, r->res, denied);
                }
                if (ev && r->o->plan_policy)
                        *r->o->plan_policy = aidp_run_plan_policy_text(&r->policy, denied);
                *r->o->plan = ev;
                if (!ev && rc == 0)
                        rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        aidp_run_warm_stop(r);
        run_free(r);
        r->res->exit_status = rc < 0 ? err->status : 0;
        return rc;
}

/* The phase list (docs/run-core.md, "Lifecycle"). */
int aidp_run_execute(const struct aidp_run_opts *o, struct aidp_run_result *res, aidp_error *err)
{
        struct run r;
        run_init(&r, o, res);
        aidp_run_warm_begin(&r);
        /* 1 */
        int rc = aidp_run_resolve(&r, err);
        if (o->plan)
                return dry_run(&r, rc, err);
        /* From the cgroup on, something of the run exists: signals are taken
         * over now, so a SIGTERM from here on ends in teardown (nothing of the
         * run left), not in the default action. */
        struct aidp_run_signal_hold sig;
        bool holding = rc == 0;
        if (holding)
                aidp_run_signals_take(&sig);
        aidp_run_phase(&r, "resolve");
        /* 2: the lineage store, the journal, the cgroup (finished in the
         * background); START follows pid 1's clone (step 4, startup.c) */
        if (rc == 0)
                rc = aidp_run_startup_begin(&r, err);
        else
                record_denial(&r, err);
        aidp_run_phase(&r, "start-rec");
        if (rc < 0) {
                /* Nothing of the run ran: undo the start-up, no teardown. */
                aidp_run_startup_abort(&r, err);
                if (holding)
                        aidp_run_signals_release(&sig);
                run_free(&r);
                res->exit_status = err->status;
                return rc;
        }
        /* 3 to 7 */
        rc = run_job(&r, &sig.old, err);
        /* 8 to 10 */
        rc = run_end(&r, rc, err);
        aidp_run_signals_release(&sig);
        run_free(&r);
        aidp_run_phase(&r, "finish");
        return rc;
}
