#define _GNU_SOURCE
/* Step 4 (spawn) of docs/run-core.md: pid 1 of the sandbox, cloned into the
 * run's cgroup, recorded in the journal. What pid 1 does is sandbox/sandbox.c. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/path.h"
#include "common/strv.h"
#include "supervisor/run/run_internal.h"
#include "supervisor/sandbox/fdpass.h"
#include "supervisor/sandbox/hostsock.h"
#include "supervisor/sandbox/nsready.h"
#include "supervisor/sandbox/creds.h"
#include "supervisor/sandbox/sandbox.h"
#include "supervisor/sandbox/zygote.h"

/* premade: the calling thread is inside the network, IPC and UTS namespaces
 * made ahead for this run (nsready.h), which the child inherits. */
static pid_t clone_sandbox(int *pidfd, int cgroup_fd, bool premade)
{
        uint64_t own = premade ? 0 : CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
        struct clone_args ca = {
                .flags = CLONE_NEWNS | CLONE_NEWPID | own | CLONE_PIDFD |
                         (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
                .pidfd = (uint64_t)(uintptr_t)pidfd,
                .exit_signal = SIGCHLD,
                .cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0,
        };
        return (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
}

int aidp_run_child_failure(const struct aidp_sandbox_report *rep, aidp_error *err)
{
        if (rep->stage == AIDP_STAGE_EXEC) {
                int st = rep->errnum == ENOENT ? AIDP_EXIT_NOT_FOUND : AIDP_EXIT_CANNOT_EXEC;
                return aidp_error_errno(err, st, rep->errnum, "cannot execute '%s'", rep->what);
        }
        if (rep->stage == AIDP_STAGE_CWD)
                return aidp_error_errno(err, AIDP_EXIT_CANNOT_EXEC, rep->errnum,
                                        "the job cannot enter its working directory %s in the "
                                        "sandbox (a path the profile masks, or one it does not "
                                        "show): choose one with --cwd DIR, or none with --no-cwd",
                                        rep->what);
        return aidp_error_errno(
                err, AIDP_EXIT_INTERNAL, rep->errnum, "sandbox setup failed at %s (%s)",
                aidp_sandbox_stage_name((enum aidp_sandbox_stage)rep->stage), rep->what);
}

/* The job user's supplementary groups, from the group database: behind sudo
 * or a scheduler this process has root's, not the caller's; for an admin's
 * --user NAME they are that user's. A uid without a passwd entry has none. */
static void job_groups(const struct run *r, struct aidp_sandbox_spec *spec)
{
        struct passwd pw, *pwp = NULL;
        char buf[4096];
        spec->n_groups = 0;
        if (getpwuid_r(r->uid, &pw, buf, sizeof buf, &pwp) != 0 || !pwp)
                return;
        int n = AIDP_SANDBOX_MAX_GROUPS;
        if (getgrouplist(pw.pw_name, r->gid, spec->groups, &n) < 0) {
                fprintf(stderr,
                        "aidp-supervisor: warning: %s is in %d groups; the job keeps the "
                        "first %d\n",
                        pw.pw_name, n, AIDP_SANDBOX_MAX_GROUPS);
                n = AIDP_SANDBOX_MAX_GROUPS;
        }
        /* Never root's group, even for a member of it: the job runs
         * unprivileged, and group 0 owns much of the host's configuration. */
        size_t k = 0;
        for (int i = 0; i < n; i++)
                if (spec->groups[i] != 0)
                        spec->groups[k++] = spec->groups[i];
        spec->n_groups = k;
}

/* What pid 1 is to build: the profile, the job, its fds and the run's mounts. */
static int fill_spec(struct run *r, const struct aidp_run_fds *f, const int relay_child[3],
                     struct aidp_sandbox_spec *spec, aidp_error *err)
{
        *spec = (struct aidp_sandbox_spec){
                .argv = r->o->argv,
                .envp = r->env,
                .cwd = r->cwd,
                .bind_cwd = r->profile.bind_cwd,
                .uid = r->uid,
                .gid = r->gid,
                .hostname = "aidp",
                .profile = &r->profile,
                .bpf = &r->bpf,
                .sync_fd = f->sync[0],
                .err_fd = f->err[1],
                .status_fd = f->status[1],
                .lifeline_fd = f->life[0],
                .stdin_fd = relay_child[2],
                .stdout_fd = relay_child[0],
                .stderr_fd = relay_child[1],
                .seccomp_flags = r->o->seccomp_flags,
                .notify_fd_out = r->o->on_notify_fd ? r->learn_sv[1] : -1,
                .bind_tree_fds = r->cp.bind_trees,
                .cwd_tree_fd = r->cp.cwd_tree,
                .has_cwd_tree = r->cp.cwd_tree >= 0,
                .resolv_tree_fd = aidp_run_net_resolv_tree(&r->net),
        };
        job_groups(r, spec);
        /* /data is read-only for the job (the mount, not the superblock: our
         * own fd stays writable for shred). */
        for (size_t i = 0; i < r->n_tmpfs && i < AIDP_SANDBOX_MAX_MOUNTS; i++)
                spec->mounts[spec->n_mounts++] = (struct aidp_sandbox_mount){
                        .fd = r->tmpfs[i].fd,
                        .target = aidp_run_tmpfs_target(r, &r->tmpfs[i]),
                        .readonly = !strcmp(r->tmpfs[i].label, "data")};
        /* The kept capabilities by number: pid 1 takes no names (creds.h). */
        const char *bad = "";
        if (aidp_creds_profile_caps(&r->profile, &spec->caps, &bad) < 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "capabilities: %s is not a capability", bad);
        return 0;
}

/* The mount fds pid 1 will hold, in the journal's memory before the clone:
 * what is allocated after it lands on pages the supervisor then shares with
 * pid 1, each a copy-on-write fault (docs/run-core.md, "Through the daemon").
 * Written with pid 1 (record_pid1); gc reaches them only through a pid 1. */
static void journal_mount_fds(struct run *r)
{
        for (size_t i = 0; i < r->n_tmpfs; i++)
                aidp_journal_add_fd(&r->journal, r->tmpfs[i].label,
                                    aidp_run_tmpfs_target(r, &r->tmpfs[i]), r->tmpfs[i].fd);
}

/* pid 1 exists: the journal names it and the mount fds it holds, so that gc can
 * reach the tmpfs through it if this supervisor dies from here on. */
static int record_pid1(struct run *r, pid_t pid, bool into_cgroup, aidp_error *err)
{
        aidp_journal_set_pid1(&r->journal, pid);
        int rc = aidp_journal_sync(&r->journal, err);
        /* Pin pid 1's mount namespace: if this supervisor and then pid 1 die,
         * the tmpfs mounts still live in it, for gc to overwrite (nspin.h).
         * The path is fixed in the journal directory, where gc looks. */
        if (rc == 0 &&
            aidp_path_join(r->nspin, sizeof r->nspin, r->journal.dir, AIDP_JOURNAL_NSPIN) < 0)
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENAMETOOLONG, "%s: path too long",
                                    r->journal.dir);
        if (rc == 0) {
                /* test builds: AIDP_FAULT_STOP_AT=pin (pid 1 may exit first) */
                aidp_run_fault_point("pin");
                rc = aidp_nspin_create(r->nspin, pid, err);
                if (rc != 0)
                        r->nspin[0] = '\0';
                if (rc == 2) {
                        /* pid 1 is gone already (it failed early): nothing
                         * to pin, and its own error, read at step 5, says
                         * why, not a pin that found no namespace. */
                        rc = 0;
                } else if (rc > 0) {
                        /* Refused for the namespaces' id order only
                         * (nspin.h): the supervisor still shreds the tmpfs;
                         * only gc after a crash of both loses its way in. */
                        fprintf(stderr, "aidp-supervisor: warning: the sandbox's mount namespace "
                                        "could not be pinned (the kernel refuses it from this "
                                        "mount namespace); gc cannot reach the tmpfs mounts if "
                                        "both the supervisor and the sandbox die\n");
                        rc = 0;
                }
        }
        /* No cgroup2 fd to clone into (v2 without one): move pid 1 by pid. */
        if (rc == 0 && !into_cgroup && aidp_cgroup_version_of(r->cg) == AIDP_CGROUP_V2)
                rc = aidp_cgroup_attach(r->cg, pid, false, err);
        return rc;
}

/* The host's unix sockets, as late as possible before the job, for pid 1 to
 * cover those its view shows (sandbox/hostsock.h): listed once pid 1's clone
 * is asked for, while pid 1 builds its mounts (listing them reads every
 * process's network namespace, milliseconds on a busy host). Through a
 * zygote, while it clones: its answer may wait until pid 1 stops building
 * (they share a CPU), and the listing needs no pid 1. */
static void list_host_sockets(void *arg)
{
        struct run *r = arg;
        if (r->host_sockets_listed)
                return;
        aidp_run_fault_point("hostsock"); /* test builds: a slow listing */
        int ns = aidp_hostsock_collect(&r->host_sockets);
        r->host_sockets_listed = ns < 0 ? ns : 1;
        r->n_host_sockets = ns < 0 ? 0 : (size_t)ns;
}

static void forget_host_sockets(struct run *r)
{
        aidp_strv_free(r->host_sockets);
        r->host_sockets = NULL;
        r->n_host_sockets = 0;
        r->host_sockets_listed = 0;
}

/* The list, sent to pid 1 ahead of the go. */
static int send_host_sockets(struct run *r, int sync_w, aidp_error *err)
{
        list_host_sockets(r);
        if (r->host_sockets_listed < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -r->host_sockets_listed,
                                        "listing the host's unix sockets");
        int e = aidp_hostsock_send(sync_w, r->host_sockets, r->n_host_sockets);
        /* pid 1 is gone: its report (or its exit) says why, at the go */
        if (e == -EPIPE || e == -ECONNRESET)
                return 0;
        if (e < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -e,
                                        "sending the host's unix sockets to the sandbox");
        return 0;
}

/* The namespaces made ahead, entered by the zygote instead of this process. */
static void close_ready(struct aidp_nsready *ready)
{
        if (!ready)
                return;
        int *ns[] = {&ready->net, &ready->ipc, &ready->uts};
        for (size_t i = 0; i < ARRAY_SIZE(ns); i++)
                aidp_run_close(ns[i]);
}

/* pid 1 cloned by this process (no zygote): inside the namespaces made
 * ahead when ready is given. 0 with *pid set, or -1 (*pid set when a pid 1
 * exists all the same). */
static int clone_here(struct run *r, const struct aidp_sandbox_spec *spec, int cgfd,
                      struct aidp_nsready *ready, const sigset_t *oldmask, pid_t *ret_pid,
                      aidp_error *err)
{
        /* The sandbox's namespaces get ids above this process's mount
         * namespace's, so that the pin below cannot be refused (nspin.h). */
        struct aidp_nspin_order order;
        int oe = aidp_nspin_order_begin(&order);
        if (oe < 0)
                fprintf(stderr, "aidp-supervisor: ordering namespace ids: %s\n", strerror(-oe));
        /* Only this thread enters the namespaces made ahead, only around the
         * clone; a set that cannot be entered is dropped and the clone makes
         * the namespaces as without it. */
        bool premade = ready && aidp_nsready_enter(ready) == 0;
        /* Other threads may run here (START's fsync): pid 1 relies on the
         * invariants listed in startup.c. */
        pid_t pid = clone_sandbox(&r->pidfd, cgfd, premade);
        int clone_errno = errno;
        aidp_nspin_order_end(&order); /* in pid 1 too: the job gets every CPU */
        if (pid == 0) {
                sigprocmask(SIG_SETMASK, oldmask, NULL);
                aidp_sandbox_child(spec);
        }
        if (cgfd >= 0)
                close(cgfd);
        int back = premade ? aidp_nsready_leave(ready) : 0;
        if (back < 0 && pid >= 0) {
                r->pid1 = pid;
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -back,
                                        "returning from the sandbox's namespaces");
        }
        if (pid < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, clone_errno,
                                        "clone3 (namespaces)");
        *ret_pid = pid;
        return 0;
}

/* pid 1 through the zygote taken at start-rec (zygote.h): from it, sharing
 * no page with this process, inside the namespaces made ahead. 0 when it
 * cloned nothing and is gone (none, another build, refused the plan: this
 * process clones pid 1 then, as without one), pid 1's pid, or -1 with err
 * set. Only with the cgroup2 fd: a pid 1 cloned by a zygote whose answer is
 * lost is then in the run's cgroup, where teardown's kill and gc reach it;
 * without, the worker clones pid 1 itself and knows it. */
static pid_t zygote_clone(struct run *r, const struct aidp_sandbox_spec *spec, int cgfd,
                          const struct aidp_nsready *ready, const sigset_t *oldmask,
                          aidp_error *err)
{
        if (r->zyg.pid <= 0)
                return 0;
        if (cgfd < 0) {
                aidp_zygote_drop(&r->zyg);
                return 0;
        }
        struct aidp_zygote_clone zc = {
                .cgroup_fd = cgfd,
                .net = ready ? ready->net : -1,
                .ipc = ready ? ready->ipc : -1,
                .uts = ready ? ready->uts : -1,
                .mask = oldmask,
                .while_cloning = list_host_sockets,
                .arg = r,
        };
        aidp_error zerr = {0};
        aidp_run_start_fault_planned(r);
        pid_t pid = aidp_zygote_clone_pid1(&r->zyg, spec, &zc, &r->pidfd, &zerr);
        if (pid < 0)
                return aidp_error_set(err, zerr.status, zerr.errnum, "%s", zerr.msg);
        if (pid == 0)
                fprintf(stderr,
                        "aidp-supervisor: warning: %s; the worker clones the sandbox itself\n",
                        zerr.msg);
        return pid;
}

/* pid 1, from the zygote or else cloned here, into the run's cgroup
 * (*into_cgroup: with CLONE_INTO_CGROUP). 0 with *ret_pid set, or -1 (with
 * r->pid1 set when a pid 1 exists all the same). */
static int clone_pid1(struct run *r, const struct aidp_sandbox_spec *spec, const sigset_t *oldmask,
                      pid_t *ret_pid, bool *into_cgroup, aidp_error *err)
{
        /* opened at start-rec when a zygote was taken (startup.c) */
        int cgfd = r->cgfd >= 0 ? r->cgfd : aidp_cgroup_open_fd(r->cg);
        r->cgfd = -1;
        *into_cgroup = cgfd >= 0;
        /* A daemon's worker may hold fresh network (its loopback up), IPC and
         * UTS namespaces made while it was idle: pid 1 is cloned inside them
         * rather than making its own (nsready.h). */
        struct aidp_nsready ready;
        struct aidp_nsready *rd = aidp_nsready_take(&ready) ? &ready : NULL;
        pid_t pid = zygote_clone(r, spec, cgfd, rd, oldmask, err);
        /* This process clones pid 1 (pid 0): START, if begun before the plan,
         * is joined first (no thread of the run at the clone), and a START
         * that failed ends the run here, before any clone. */
        int rc = pid == 0 ? aidp_run_start_before_clone(r, err) : pid < 0 ? (int)pid : 0;
        if (pid == 0 && rc == 0) {
                /* A list made while the zygote had the plan is listed again
                 * after this clone, as without a zygote. */
                forget_host_sockets(r);
                return clone_here(r, spec, cgfd, rd, oldmask, ret_pid, err);
        }
        if (cgfd >= 0)
                close(cgfd);
        close_ready(rd);
        *ret_pid = pid;
        return rc;
}

/* Clone the sandbox's pid 1 straight into the run's cgroup: CLONE_INTO_CGROUP
 * for the cgroup2 group (v2, or v1's tracking group), and on v1 pid 1 moves
 * itself into each controller's hierarchy first thing. It builds its mounts
 * and then waits for the go (monitor.c). */
int aidp_run_spawn(struct run *r, const sigset_t *oldmask, aidp_error *err)
{
        struct aidp_run_fds f = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
        int relay_child[3] = {-1, -1, -1}; /* stdout, stderr, stdin */
        int rc = 0;
        /* sync: a socket, so that the go can carry the v1 "tasks" fds */
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f.sync) < 0 ||
            pipe2(f.err, O_CLOEXEC) < 0 || pipe2(f.status, O_CLOEXEC) < 0 ||
            pipe2(f.life, O_CLOEXEC) < 0) {
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
                goto out;
        }
        for (int i = 0; i < 2; i++) {
                int e = aidp_relay_setup(&r->relay[i], i + 1, &relay_child[i]);
                if (e < 0) {
                        rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, -e, "output relay");
                        goto out;
                }
        }
        relay_child[2] = aidp_relay_stdin_for_job();
        if (relay_child[2] < -1) {
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, -relay_child[2], "/dev/null");
                goto out;
        }
        struct aidp_sandbox_spec spec;
        rc = fill_spec(r, &f, relay_child, &spec, err);
        if (rc < 0)
                goto out;
        r->pidfd = -1;
        journal_mount_fds(r);
        pid_t pid = -1;
        bool into_cgroup = false;
        rc = clone_pid1(r, &spec, oldmask, &pid, &into_cgroup, err);
        if (rc < 0)
                goto out;
        r->pid1 = pid;
        aidp_run_close(&r->learn_sv[1]);
        rc = record_pid1(r, pid, into_cgroup, err);
out:;
        /* pid 1's ends, ours no more: closed before the list is sent, so
         * that a pid 1 that died before reading it makes the send fail
         * (EPIPE) instead of blocking on a socket this process still held
         * both ends of. */
        int *theirs[] = {&relay_child[0], &relay_child[1], &relay_child[2], &f.sync[0],
                         &f.err[1],       &f.status[1],    &f.life[0]};
        for (size_t i = 0; i < ARRAY_SIZE(theirs); i++)
                aidp_run_close(theirs[i]);
        /* START, on its thread (startup.c), while the host's sockets are
         * listed and pid 1 builds its mounts; begun already on the zygote
         * path. */
        if (rc == 0 && r->pid1 > 0)
                rc = aidp_run_start_record(r, err);
        if (rc == 0 && r->pid1 > 0)
                rc = send_host_sockets(r, f.sync[1], err);
        /* The zygote that cloned pid 1 has exited by now (it did once it
         * had answered); reaped here, not on the way to pid 1's mounts. One
         * a run that failed before its plan did not use is killed. */
        if (r->pid1 > 0)
                aidp_zygote_reap(&r->zyg);
        else
                aidp_zygote_drop(&r->zyg);
        r->sync_w = f.sync[1];
        r->err_r = f.err[0];
        r->status_r = f.status[0];
        r->life_w = f.life[1];
        return rc;
}
