#define _GNU_SOURCE
#include "supervisor/run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "common/cleanup.h"
#include "common/path.h"
#include "common/crypto.h"
#include "supervisor/run/caller.h"
#include "supervisor/sandbox/cgroup/cgroup.h"
#include "supervisor/run/profile_env.h"
#include "supervisor/sandbox/fdpass.h"
#include "supervisor/run/journal.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/sandbox/relay.h"
#include "supervisor/run/run_lineage.h"
#include "supervisor/run/run_policy.h"
#include "supervisor/sandbox/sandbox.h"
#include "profiles/seccomp_compile.h"
#include "supervisor/sandbox/tmpfs.h"

#define MiB (1024ULL * 1024)

/* Signals the supervisor takes over while the job runs; all are forwarded to
 * the sandbox's pid 1, which passes them to the job's process group. */
static const int handled[] = {SIGINT,  SIGTERM, SIGHUP,   SIGQUIT,
                              SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD};

struct run {
        const struct aidp_run_opts *o;
        struct aidp_run_result *res;
        struct aidp_profile profile;
        bool profile_loaded;
        /* who asked (resolved once, for the job's identity, the policy and
         * lineage); caller_rc < 0: not resolvable, caller_err says why */
        struct aidp_caller_identity caller;
        int caller_rc;
        aidp_error caller_err;
        uid_t uid;
        gid_t gid;
        char cwd[4096];
        struct aidp_bpf bpf;
        struct aidp_cgroup *cg;
        struct aidp_tmpfs tmpfs[4];
        size_t n_tmpfs;
        struct aidp_journal journal;
        bool journal_open;
        pid_t pid1;
        int pidfd;
        int learn_sv[2];     /* learn mode: the child sends the listener fd over [1] */
        char *dev_rules[64]; /* device cgroup allow lines of the profile's devices */
        const char *devices_allow[8 + 64 + 1]; /* the minimal /dev's lines, then dev_rules */
        struct aidp_cgroup_limits cg_limits;
        bool warm_thread; /* the warm-up thread runs (warm_tid) */
        pthread_t warm_tid;
        size_t n_cg_journaled; /* cgroup directories already in the journal */
        char **env;
        size_t n_env;
        struct timespec t0;
        struct aidp_run_lineage rl;
        struct aidp_inject inject;
        struct aidp_run_policy policy;
        aidp_error collect_err;
        bool collect_failed;
        int sync_w, err_r, status_r, life_w; /* the supervisor's ends of the sandbox pipes */
        struct aidp_relay relay[2];          /* the job's stdout and stderr (supervisor/relay.h) */
};

/* AIDP_TIMING=1: the time each phase took, with the CPU time and page faults of
 * the supervisor's threads in it, on stderr (scripts/bench-start). */
static void phase(struct run *r, const char *name)
{
        static struct timespec last;
        static struct rusage last_ru;
        if (!getenv("AIDP_TIMING"))
                return;
        struct timespec now;
        struct rusage ru;
        clock_gettime(CLOCK_MONOTONIC, &now);
        getrusage(RUSAGE_SELF, &ru);
        if (!last.tv_sec)
                last = r->t0;
        double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec - last_ru.ru_utime.tv_sec -
                              last_ru.ru_stime.tv_sec) *
                             1e3 +
                     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec - last_ru.ru_utime.tv_usec -
                              last_ru.ru_stime.tv_usec) /
                             1e3;
        fprintf(stderr, "aidp-supervisor: timing: %-10s %8.3f ms  cpu %6.3f ms  faults %4ld\n",
                name,
                (double)(now.tv_sec - last.tv_sec) * 1e3 +
                        (double)(now.tv_nsec - last.tv_nsec) / 1e6,
                cpu, ru.ru_minflt - last_ru.ru_minflt);
        last = now;
        last_ru = ru;
}

/* Fault injection for the crash tests: AIDP_FAULT_STOP_AT=start|inject|job|shred
 * stops the supervisor (SIGSTOP) at that point of a run, so a test can
 * SIGKILL it (or signal it) there and check what gc (or teardown) does.
 * Harmless outside tests: a stopped supervisor is all it can cause, and only
 * root sets a root process's env. */
static void fault_point(const char *where)
{
        const char *at = getenv("AIDP_FAULT_STOP_AT");
        if (at && !strcmp(at, where))
                raise(SIGSTOP);
}

extern char **environ;

/* The job runs as the caller the access policy decides on (supervisor/caller.c:
 * --user only when root runs the supervisor directly, else SUDO_UID, else the
 * scheduler's job user); root running it with none of these gets the
 * profile's unprivileged default. One resolution for both, so a sudoer cannot
 * be judged as themselves and run as someone else. --user takes NAME|UID[:GID]. */
static int resolve_identity(struct run *r, aidp_error *err)
{
        const struct aidp_user_policy *up = &r->profile.user;
        uid_t uid = up->default_uid;
        gid_t gid = up->default_gid;
        char name[256] = "";
        const char *group = NULL;
        if (r->o->user) {
                snprintf(name, sizeof name, "%s", r->o->user);
                char *colon = strchr(name, ':');
                if (colon) {
                        *colon = '\0';
                        group = colon + 1;
                }
        }
        r->caller_rc = aidp_caller_resolve_identity(r->o->user ? name : NULL, getuid(), environ,
                                                    &r->caller, &r->caller_err);
        if (up->mode == AIDP_USER_FIXED) {
                uid = up->uid;
                gid = up->gid;
        } else {
                if (r->caller_rc < 0) {
                        *err = r->caller_err;
                        return r->caller_rc;
                }
                const struct aidp_caller_identity *who = &r->caller;
                bool from_env = strcmp(who->source, "uid") != 0;
                if (from_env) {
                        uid = who->uid;
                        gid = who->gid;
                        if (gid == (gid_t)-1) {
                                /* a uid without a passwd entry: the sudo or scheduler gid */
                                const char *g =
                                        getenv(!strcmp(who->source, "SUDO_UID") ? "SUDO_GID"
                                                                                : "SLURM_JOB_GID");
                                gid = g ? (gid_t)strtoul(g, NULL, 10) : (gid_t)uid;
                        }
                }
                if (group) {
                        char *end;
                        errno = 0;
                        unsigned long g = strtoul(group, &end, 10);
                        if (*end || errno || end == group) {
                                struct group *gr = getgrnam(group);
                                if (!gr)
                                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                                              "--user %s: unknown group '%s'",
                                                              r->o->user, group);
                                g = gr->gr_gid;
                        }
                        gid = (gid_t)g;
                }
        }
        if ((uid == 0 || gid == 0) && !up->allow_root)
                return aidp_error_set(
                        err, AIDP_EXIT_USAGE, EPERM,
                        "refusing to run the job as root (uid %u gid %u): give --user", uid, gid);
        r->uid = uid;
        r->gid = gid;
        return 0;
}

static int env_add(struct run *r, const char *kv)
{
        char **n = realloc(r->env, (r->n_env + 2) * sizeof *n);
        if (!n)
                return -ENOMEM;
        r->env = n;
        size_t klen = strcspn(kv, "=");
        for (size_t i = 0; i < r->n_env; i++) {
                if (!strncmp(r->env[i], kv, klen) && r->env[i][klen] == '=') {
                        char *d = strdup(kv);
                        if (!d)
                                return -ENOMEM;
                        free(r->env[i]);
                        r->env[i] = d;
                        return 0;
                }
        }
        r->env[r->n_env] = strdup(kv);
        if (!r->env[r->n_env])
                return -ENOMEM;
        r->env[++r->n_env] = NULL;
        return 0;
}

static bool env_passes(const char *kv)
{
        /* The supervisor's environment may hold credentials for key
         * providers; only names known to be harmless cross by default. */
        static const char *const exact[] = {"PATH",
                                            "TERM",
                                            "LANG",
                                            "TZ",
                                            "COLUMNS",
                                            "LINES",
                                            "CUDA_VISIBLE_DEVICES",
                                            "NVIDIA_VISIBLE_DEVICES",
                                            "OMP_NUM_THREADS",
                                            "PYTHONUNBUFFERED",
                                            "PYTHONHASHSEED",
                                            NULL};
        static const char *const prefix[] = {"LC_", "SLURM_", NULL};
        size_t klen = strcspn(kv, "=");
        for (const char *const *e = exact; *e; e++)
                if (strlen(*e) == klen && !strncmp(*e, kv, klen))
                        return true;
        for (const char *const *p = prefix; *p; p++)
                if (!strncmp(kv, *p, strlen(*p)))
                        return true;
        return false;
}

static int build_env(struct run *r, aidp_error *err)
{
        int rc = 0;
        for (char **e = environ; *e && rc == 0; e++)
                if (r->o->keep_env || env_passes(*e))
                        rc = env_add(r, *e);
        char buf[4200];
        if (rc == 0 && !getenv("PATH"))
                rc = env_add(r,
                             "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin");
        const char *fixed[][2] = {
                {"HOME", "/tmp"},
                {"TMPDIR", "/tmp"},
                {"AIDP_RUN_ID", r->res->run_id},
                {"AIDP_DATA_DIR", r->profile.paths.data},
                {"AIDP_SCRATCH_DIR", r->profile.paths.scratch},
                {"AIDP_OUT_DIR", r->profile.paths.out},
        };
        for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(fixed); i++) {
                snprintf(buf, sizeof buf, "%s=%s", fixed[i][0], fixed[i][1]);
                rc = env_add(r, buf);
        }
        for (size_t i = 0; rc == 0 && i < r->o->n_env_extra; i++) {
                const char *x = r->o->env_extra[i];
                if (strchr(x, '=')) {
                        rc = env_add(r, x);
                } else if (getenv(x)) {
                        snprintf(buf, sizeof buf, "%s=%s", x, getenv(x));
                        rc = env_add(r, buf);
                }
        }
        if (rc == 0 && !r->env)
                rc = env_add(r, "AIDP=1");
        if (rc < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "building the environment");
        return 0;
}

static void make_run_id(struct run *r)
{
        if (r->o->run_id && *r->o->run_id) {
                snprintf(r->res->run_id, sizeof r->res->run_id, "%s", r->o->run_id);
                return;
        }
        uuid_t u;
        uuid_generate_random(u);
        uuid_unparse_lower(u, r->res->run_id);
}

static int valid_run_id(const char *id)
{
        if (!*id || strlen(id) > 63 || id[0] == '.')
                return 0;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
                        return 0;
        return 1;
}

/* Learn mode (aidp profile learn): every syscall the profile lets run is
 * reported to the supervisor instead (seccomp user notification; the
 * supervisor answers "continue"), so what the job used can be recorded while
 * the profile's denials still hold. The one exception is the sendmsg that
 * hands the listener fd to the supervisor: it happens after the filter is
 * loaded and before anyone listens, so it is allowed on that socket only. */
static int learn_policy(struct run *r, aidp_error *err)
{
        struct aidp_sc_policy *p = &r->profile.seccomp;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r->learn_sv) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "socketpair");
        if (p->default_action == AIDP_SC_ALLOW || p->default_action == AIDP_SC_LOG)
                p->default_action = AIDP_SC_NOTIFY;
        for (size_t i = 0; i < p->n_rules; i++)
                if (p->rules[i].action == AIDP_SC_ALLOW || p->rules[i].action == AIDP_SC_LOG)
                        p->rules[i].action = AIDP_SC_NOTIFY;
        static const char *const sendmsg_name[] = {"sendmsg"};
        struct aidp_sc_arg a = {.index = 0, .op = AIDP_SC_OP_EQ, .value = (uint64_t)r->learn_sv[1]};
        struct aidp_sc_rule rule = {.names = (char **)sendmsg_name,
                                    .n_names = 1,
                                    .action = AIDP_SC_ALLOW,
                                    .args = &a,
                                    .n_args = 1};
        if (aidp_sc_policy_add(p, &rule) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
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

static int add_cli_bind(struct aidp_profile *p, const struct aidp_run_bind *b, aidp_error *err)
{
        const char *opt = b->writable ? "--bind" : "--ro-bind";
        if (!aidp_path_is_clean_abs(b->source) || (b->target && !aidp_path_is_clean_abs(b->target)))
                return aidp_error_set(
                        err, AIDP_EXIT_USAGE, EINVAL,
                        "%s %s%s%s: paths must be absolute, without '.', '..' or '//'", opt,
                        b->source, b->target ? ":" : "", b->target ? b->target : "");
        struct stat st;
        if (stat(b->source, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_USAGE, errno, "%s %s", opt, b->source);
        struct aidp_bind *n = realloc(p->binds, (p->n_binds + 1) * sizeof *n);
        if (!n)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        p->binds = n;
        n[p->n_binds] = (struct aidp_bind){.source = strdup(b->source),
                                           .target = b->target ? strdup(b->target) : NULL,
                                           .writable = b->writable};
        if (!n[p->n_binds].source || (b->target && !n[p->n_binds].target))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        p->n_binds++;
        return 0;
}

static int resolve(struct run *r, aidp_error *err)
{
        const struct aidp_run_opts *o = r->o;
        if (!o->argv || !o->argv[0])
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "no command given (usage: run [OPTIONS] -- CMD [ARGS])");
        make_run_id(r);
        if (!valid_run_id(r->res->run_id))
                return aidp_error_set(
                        err, AIDP_EXIT_USAGE, EINVAL,
                        "run id '%s': only letters, digits, '-', '_' and '.' (at most 63)",
                        r->res->run_id);
        int rc;
        if (o->profile) {
                rc = aidp_profile_host_load(o->profile, true, &r->profile, NULL, err);
                if (rc < 0) {
                        if (!err->status)
                                err->status = AIDP_EXIT_CONFIG;
                        return aidp_error_wrap(err, "loading profile %s", o->profile);
                }
        } else if ((rc = aidp_profile_init_defaults(&r->profile)) < 0) {
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        r->profile_loaded = true;
        struct aidp_limits *l = &r->profile.limits;
        if (o->memory_bytes)
                l->memory_bytes = o->memory_bytes;
        if (o->cpu_millis)
                l->cpu_millis = o->cpu_millis;
        if (o->pids)
                l->pids = o->pids;
        if (o->timeout_seconds)
                l->wall_seconds = o->timeout_seconds;
        if (o->tmp_bytes)
                l->tmp_bytes = o->tmp_bytes;
        for (int i = 0; i < AIDP_RLIMIT_SLOTS; i++)
                if (o->rlimits[i].set)
                        l->rlimits[i] = o->rlimits[i];
        for (size_t i = 0; i < o->n_binds; i++) {
                rc = add_cli_bind(&r->profile, &o->binds[i], err);
                if (rc < 0)
                        return rc;
        }
        if (o->no_cwd)
                r->profile.bind_cwd = false;
        if (o->cwd)
                snprintf(r->cwd, sizeof r->cwd, "%s", o->cwd);
        else if (!getcwd(r->cwd, sizeof r->cwd))
                snprintf(r->cwd, sizeof r->cwd, "/");
        if (r->cwd[0] != '/')
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--cwd %s: must be an absolute path", r->cwd);
        rc = resolve_identity(r, err);
        if (rc < 0)
                return rc;
        /* Sealed inputs: headers authenticated now, before anything is
         * created, so a policy decision can rest on their tags. No payload
         * byte is decrypted here. */
        if (o->n_data || o->output_dir) {
                if (o->output_dir && !o->n_data && !o->output_key_id)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "--output-dir without --data needs --output-key-id");
                struct stat ost;
                if (o->output_dir && (stat(o->output_dir, &ost) < 0 || !S_ISDIR(ost.st_mode)))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, ENOTDIR,
                                              "--output-dir %s: not a directory", o->output_dir);
                rc = aidp_inject_open(&r->inject, o->data, o->n_data, o->keys_config, o->key_dir,
                                      r->res->inputs, err);
                if (rc < 0)
                        return rc;
                r->res->n_inputs = o->n_data;
        }
        /* Access and residency: decided on the authenticated headers, before
         * prepare decrypts anything. A denial ends the run here. */
        rc = aidp_run_policy_decide(&r->policy, r->caller_rc == 0 ? &r->caller : NULL,
                                    &r->caller_err, &r->profile, &r->inject, err);
        if (rc < 0)
                return rc;
        if (o->on_notify_fd && (rc = learn_policy(r, err)) < 0)
                return rc;
        /* Egress enforcement (veth + nftables) does not exist yet; failing
         * closed, the job gets loopback only, and the caller is told. */
        r->res->egress_unenforced = r->profile.network.mode == AIDP_NET_EGRESS;
        /* Generate before clone: the sandbox's critical path only loads it. */
        rc = aidp_seccomp_compile(&r->profile.seccomp, &r->bpf, err);
        if (rc < 0)
                return aidp_error_wrap(err, "compiling the seccomp filter");
        return build_env(r, err);
}

static int add_tmpfs(struct run *r, const char *label, uint64_t size, unsigned mode, uid_t uid,
                     gid_t gid, aidp_error *err)
{
        struct aidp_tmpfs *t = &r->tmpfs[r->n_tmpfs];
        int rc = aidp_tmpfs_create(label, size, mode, uid, gid, t, err);
        if (rc < 0)
                return rc;
        r->n_tmpfs++;
        if (!t->noswap)
                r->res->noswap = false;
        return 0;
}

/* With every signal blocked: a SIGTERM must reach the supervisor's signalfd,
 * not end the process on a helper thread. */
static bool thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        bool ok = pthread_create(t, NULL, fn, arg) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return ok;
}

/* Work taken off the critical path (docs/run-core.md, "Start-up time"):
 *   warm    a thread, from the start while the run is resolved: OpenSSL's
 *           algorithm tables for START's HMAC. Joined before pid 1 is cloned.
 *   cgroup  right after resolve: the cgroup2 directory here (pid 1 is cloned
 *           into it), then the limits (v2, on the spot) or the run's v1
 *           hierarchies through libcgroup (about 1.5 ms with its start-up) in a
 *           helper process while START is written, the run prepared and pid 1
 *           builds its mounts (aidp_cgroup_finish_start); collected before the go. */
static void *warm_thread(void *arg)
{
        (void)arg;
        prctl(PR_SET_NAME, "aidp-warm"); /* ps, top and profilers tell the parts apart */
        aidp_crypto_warm();
        return NULL;
}

static void warm_begin(struct run *r)
{
        r->warm_thread = thread_start(&r->warm_tid, warm_thread, NULL);
}

static void warm_end(struct run *r)
{
        if (r->warm_thread) {
                pthread_join(r->warm_tid, NULL);
                r->warm_thread = false;
        }
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

static int cgroup_begin(struct run *r, aidp_error *err)
{
        const struct aidp_limits *l = &r->profile.limits;
        static const char *const minimal_dev[] = {
                "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm",
        };
        _Static_assert(ARRAY_SIZE(minimal_dev) + ARRAY_SIZE(r->dev_rules) + 1 ==
                               ARRAY_SIZE(r->devices_allow),
                       "devices_allow size");
        /* The minimal /dev plus exactly the profile's devices; all else denied. */
        memcpy(r->devices_allow, minimal_dev, sizeof minimal_dev);
        int rc = device_rules(r, r->devices_allow + ARRAY_SIZE(minimal_dev),
                              ARRAY_SIZE(r->dev_rules) + 1, err);
        if (rc < 0)
                return rc;
        r->cg_limits = (struct aidp_cgroup_limits){
                .memory_bytes = l->memory_bytes,
                .cpu_millis = l->cpu_millis,
                .pids = l->pids,
                .devices_allow = r->devices_allow,
        };
        rc = aidp_cgroup_begin(r->o->cgroup_parent, r->res->run_id,
                               aidp_journal_cgroup_log(&r->journal), &r->cg, err);
        if (rc < 0)
                return rc;
        snprintf(r->res->cgroup_version, sizeof r->res->cgroup_version, "%s",
                 aidp_cgroup_version_name(aidp_cgroup_version_of(r->cg)));
        return aidp_cgroup_finish_start(r->cg, &r->cg_limits, err);
}

/* The cgroup's outcome, once its helper is done. Idempotent. */
static int cgroup_end(struct run *r, aidp_error *err)
{
        return r->cg ? aidp_cgroup_finish_wait(r->cg, err) : 0;
}

/* Add the cgroup directories made since the last call to the journal. */
static void journal_cgroups(struct run *r)
{
        const char *paths[8];
        size_t n = aidp_cgroup_paths(r->cg, paths, ARRAY_SIZE(paths));
        for (size_t i = r->n_cg_journaled; i < n; i++)
                aidp_journal_add(&r->journal, "cgroup", paths[i]);
        r->n_cg_journaled = n;
}

static int prepare(struct run *r, aidp_error *err)
{
        const struct aidp_limits *l = &r->profile.limits;
        /* The cgroup2 directory made so far (cgroup_begin); its v1 hierarchies
         * follow once the helper is done (cgroups.log has them all already). */
        journal_cgroups(r);

        r->res->noswap = true;
        int rc = add_tmpfs(r, "tmp", l->tmp_bytes ? l->tmp_bytes : 256 * MiB, 01777, 0, 0, err);
        if (rc == 0)
                rc = add_tmpfs(r, "scratch", l->scratch_bytes ? l->scratch_bytes : 1024 * MiB, 0755,
                               r->uid, r->gid, err);
        if (rc == 0)
                rc = add_tmpfs(r, "out", l->out_bytes ? l->out_bytes : 1024 * MiB, 0755, r->uid,
                               r->gid, err);
        if (rc < 0)
                return rc;
        if (r->inject.n) {
                /* /data: sized from the manifests unless the profile says,
                 * filled and authenticated completely before the job exists. */
                uint64_t need = 0;
                rc = aidp_inject_required_bytes(&r->inject, &need, err);
                if (rc < 0)
                        return rc;
                uint64_t size = l->data_bytes ? l->data_bytes : need + need / 64 + MiB;
                rc = add_tmpfs(r, "data", size, 0755, 0, 0, err);
                if (rc < 0)
                        return rc;
        }
        return aidp_journal_sync(&r->journal, err);
}

/* Decrypt every input into /data, authenticating every segment, after the
 * sandbox's pid 1 exists: it holds the tmpfs too, so if this supervisor dies
 * half-way, gc can still reach the plaintext and overwrite it. */
static int inject(struct run *r, aidp_error *err)
{
        for (size_t i = 0; i < r->n_tmpfs; i++) {
                if (strcmp(r->tmpfs[i].label, "data"))
                        continue;
                int rc = aidp_inject_decrypt(&r->inject, r->tmpfs[i].fd, r->uid, r->gid,
                                             !r->o->quiet, r->res->inputs, err);
                if (rc < 0)
                        return rc;
        }
        fault_point("inject");
        return 0;
}

static pid_t clone_sandbox(int *pidfd, int cgroup_fd)
{
        struct clone_args ca = {
                .flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET |
                         CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
                .pidfd = (uint64_t)(uintptr_t)pidfd,
                .exit_signal = SIGCHLD,
                .cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0,
        };
        return (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
}

static int report_child_failure(struct run *r, const struct aidp_sandbox_report *rep,
                                aidp_error *err)
{
        if (rep->stage == AIDP_STAGE_EXEC) {
                int st = rep->errnum == ENOENT ? AIDP_EXIT_NOT_FOUND : AIDP_EXIT_CANNOT_EXEC;
                return aidp_error_errno(err, st, rep->errnum, "cannot execute '%s'", rep->what);
        }
        return aidp_error_errno(
                err, AIDP_EXIT_INTERNAL, rep->errnum, "sandbox setup failed at %s (%s)",
                aidp_sandbox_stage_name((enum aidp_sandbox_stage)rep->stage), rep->what);
}

struct fds {
        int sync[2], err[2], status[2], life[2];
};

/* Learn mode: the child loads its filter and sends the listener; from then
 * on it blocks in each syscall until someone answers, so the listener is
 * handed to the caller's callback (which answers from a thread) before we
 * wait for execve. EOF means the child failed before seccomp: the error
 * pipe says why. */
static int receive_listener(struct run *r, aidp_error *err)
{
        char b;
        int fd;
        size_t n = 0;
        if (aidp_fdpass_recv(r->learn_sv[0], &b, &fd, 1, &n) <= 0)
                return 0;
        if (n != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EPROTO,
                                      "learn mode: no listener fd from the sandbox");
        return r->o->on_notify_fd(fd, r->o->notify_arg) < 0
                       ? aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO,
                                        "learn mode: listener callback failed")
                       : 0;
}

static void close_pair(int p[2])
{
        for (int i = 0; i < 2; i++)
                if (p[i] >= 0) {
                        close(p[i]);
                        p[i] = -1;
                }
}

/* pid 1 failed before it could take a message: say why it did, if it did. */
static int child_gone(struct run *r, int err_r, int errnum, const char *what, aidp_error *err)
{
        struct aidp_sandbox_report rep;
        ssize_t n;
        do
                n = read(err_r, &rep, sizeof rep);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof rep)
                return report_child_failure(r, &rep, err);
        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errnum, "%s", what);
}

/* Clone the sandbox's pid 1 straight into the run's cgroup: CLONE_INTO_CGROUP
 * for the cgroup2 group (v2, or v1's tracking group), and on v1 pid 1 moves
 * itself into each controller's hierarchy first thing. It builds its mounts
 * and then waits for the go from start_and_monitor(). */
static int spawn(struct run *r, sigset_t *oldmask, aidp_error *err)
{
        struct fds f = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
        int rc = 0;
        /* sync: a socket, so that the go can carry the v1 "tasks" fds */
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f.sync) < 0 ||
            pipe2(f.err, O_CLOEXEC) < 0 || pipe2(f.status, O_CLOEXEC) < 0 ||
            pipe2(f.life, O_CLOEXEC) < 0) {
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "pipe");
                goto out;
        }
        struct aidp_sandbox_spec spec = {
                .argv = r->o->argv,
                .envp = r->env,
                .cwd = r->cwd,
                .bind_cwd = r->profile.bind_cwd,
                .uid = r->uid,
                .gid = r->gid,
                .hostname = "aidp",
                .profile = &r->profile,
                .bpf = &r->bpf,
                .sync_fd = f.sync[0],
                .err_fd = f.err[1],
                .status_fd = f.status[1],
                .lifeline_fd = f.life[0],
                .seccomp_flags = r->o->seccomp_flags,
                .notify_fd_out = r->o->on_notify_fd ? r->learn_sv[1] : -1,
        };
        const char *targets[] = {"/tmp", r->profile.paths.scratch, r->profile.paths.out};
        for (size_t i = 0; i < r->n_tmpfs && i < ARRAY_SIZE(targets); i++)
                spec.mounts[spec.n_mounts++] = (struct aidp_sandbox_mount){
                        .fd = r->tmpfs[i].fd, .target = targets[i], .readonly = false};
        /* /data is read-only for the job (the mount, not the superblock: our
         * own fd stays writable for shred). */
        for (size_t i = ARRAY_SIZE(targets); i < r->n_tmpfs; i++)
                if (!strcmp(r->tmpfs[i].label, "data"))
                        spec.mounts[spec.n_mounts++] =
                                (struct aidp_sandbox_mount){.fd = r->tmpfs[i].fd,
                                                            .target = r->profile.paths.data,
                                                            .readonly = true};

        int relay_child[2] = {-1, -1};
        for (int i = 0; i < 2; i++) {
                int e = aidp_relay_setup(&r->relay[i], i + 1, &relay_child[i]);
                if (e < 0) {
                        rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, -e, "output relay");
                        goto out;
                }
        }
        spec.stdout_fd = relay_child[0];
        spec.stderr_fd = relay_child[1];

        r->pidfd = -1;
        int cgfd = aidp_cgroup_open_fd(r->cg);
        /* No other thread lives here but START's fsync, which takes no lock
         * pid 1 needs (sandbox.h). */
        pid_t pid = clone_sandbox(&r->pidfd, cgfd);
        int clone_errno = errno;
        if (cgfd >= 0 && pid != 0)
                close(cgfd);
        if (pid < 0) {
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, clone_errno, "clone3 (namespaces)");
                for (int i = 0; i < 2; i++)
                        if (relay_child[i] >= 0)
                                close(relay_child[i]);
                goto out;
        }
        if (pid == 0) {
                sigprocmask(SIG_SETMASK, oldmask, NULL);
                aidp_sandbox_child(&spec);
        }
        r->pid1 = pid;
        for (int i = 0; i < 2; i++)
                if (relay_child[i] >= 0)
                        close(relay_child[i]);
        if (r->learn_sv[1] >= 0) {
                close(r->learn_sv[1]);
                r->learn_sv[1] = -1;
        }
        close(f.sync[0]);
        f.sync[0] = -1;
        close(f.err[1]);
        f.err[1] = -1;
        close(f.status[1]);
        f.status[1] = -1;
        close(f.life[0]);
        f.life[0] = -1;
        aidp_journal_set_pid1(&r->journal, pid);
        for (size_t i = 0; i < r->n_tmpfs; i++)
                aidp_journal_add_fd(&r->journal, r->tmpfs[i].label, r->tmpfs[i].fd);
        rc = aidp_journal_sync(&r->journal, err);
        /* No cgroup2 fd to clone into (v2 without one): move pid 1 by pid. */
        if (rc == 0 && cgfd < 0 && aidp_cgroup_version_of(r->cg) == AIDP_CGROUP_V2)
                rc = aidp_cgroup_attach(r->cg, pid, false, err);
out:
        if (f.sync[0] >= 0)
                close(f.sync[0]);
        if (f.err[1] >= 0)
                close(f.err[1]);
        if (f.status[1] >= 0)
                close(f.status[1]);
        if (f.life[0] >= 0)
                close(f.life[0]);
        r->sync_w = f.sync[1];
        r->err_r = f.err[0];
        r->status_r = f.status[0];
        r->life_w = f.life[1];
        return rc;
}

static int start_and_monitor(struct run *r, aidp_error *err)
{
        int rc = 0, sfd = -1, wall = -1, grace = -1;
        struct fds f = {{-1, r->sync_w}, {r->err_r, -1}, {r->status_r, -1}, {-1, -1}};
        r->sync_w = r->err_r = r->status_r = -1;
        /* Go: the cgroup is complete, START durable, /data filled. pid 1 gets
         * the v1 "tasks" files to move itself in before it starts the job. */
        int task_fds[AIDP_FDPASS_MAX];
        int ntask = aidp_cgroup_task_fds(r->cg, task_fds, ARRAY_SIZE(task_fds));
        if (ntask < 0) {
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, -ntask, "opening the run's cgroup");
                goto out;
        }
        int sent = aidp_fdpass_send(f.sync[1], 'g', task_fds, (size_t)ntask);
        for (int i = 0; i < ntask; i++)
                close(task_fds[i]);
        if (sent < 0) {
                rc = child_gone(r, f.err[0], -sent, "sandbox pid 1 (sync)", err);
                goto out;
        }
        close(f.sync[1]);
        f.sync[1] = -1;
        if (r->o->on_notify_fd && (rc = receive_listener(r, err)) < 0)
                goto out;
        struct aidp_sandbox_report rep;
        ssize_t n;
        do
                n = read(f.err[0], &rep, sizeof rep);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof rep) {
                rc = report_child_failure(r, &rep, err);
                goto out;
        }
        /* EOF: the job's execve closed the last copy of the error pipe. */
        r->res->started = true;
        fault_point("job");

        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < ARRAY_SIZE(handled); i++)
                sigaddset(&set, handled[i]);
        sfd = signalfd(-1, &set, SFD_CLOEXEC);
        wall = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        grace = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        if (sfd < 0 || wall < 0 || grace < 0) {
                rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "signalfd/timerfd");
                goto out;
        }
        if (r->profile.limits.wall_seconds) {
                struct itimerspec its = {
                        .it_value = {.tv_sec = (time_t)r->profile.limits.wall_seconds}};
                timerfd_settime(wall, 0, &its, NULL);
        }
        unsigned kill_after = r->o->kill_after ? r->o->kill_after : 5;
        bool grace_armed = false, killed = false;
        int stops = 0;
        for (;;) {
                struct pollfd pf[8] = {
                        {.fd = f.status[0], .events = POLLIN},
                        {.fd = sfd, .events = POLLIN},
                        {.fd = wall, .events = POLLIN},
                        {.fd = grace, .events = POLLIN},
                };
                for (int i = 0; i < 2; i++) {
                        short in = aidp_relay_want_in(&r->relay[i]);
                        short o = aidp_relay_want_out(&r->relay[i]);
                        pf[4 + 2 * i] =
                                (struct pollfd){.fd = in ? r->relay[i].from : -1, .events = in};
                        pf[5 + 2 * i] = (struct pollfd){.fd = o ? r->relay[i].to : -1, .events = o};
                }
                if (poll(pf, 8, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "poll");
                        break;
                }
                for (int i = 0; i < 2; i++) {
                        if (pf[4 + 2 * i].revents)
                                aidp_relay_on_readable(&r->relay[i]);
                        if (pf[5 + 2 * i].revents)
                                aidp_relay_on_writable(&r->relay[i]);
                }
                if (pf[0].revents) {
                        int32_t code;
                        if (read(f.status[0], &code, sizeof code) == sizeof code)
                                r->res->job_status = code;
                        else
                                r->res->job_status = -1; /* pid 1 died: killed with the cgroup */
                        break;
                }
                if (pf[2].revents) {
                        uint64_t x;
                        if (read(wall, &x, sizeof x) < 0)
                                continue;
                        r->res->timed_out = true;
                        fprintf(stderr,
                                "aidp-supervisor: run %s exceeded its wall time of %llus; stopping "
                                "it\n",
                                r->res->run_id, (unsigned long long)r->profile.limits.wall_seconds);
                        kill(r->pid1, SIGTERM);
                        stops++;
                }
                if (pf[3].revents) {
                        uint64_t x;
                        if (read(grace, &x, sizeof x) < 0)
                                continue;
                        if (!killed) {
                                kill(r->pid1, AIDP_SIG_KILL_JOB);
                                killed = true;
                        }
                }
                if (pf[1].revents) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof si) != sizeof si)
                                continue;
                        int sig = (int)si.ssi_signo;
                        if (sig == SIGCHLD)
                                continue; /* pid 1 ends only through the status pipe or a kill */
                        kill(r->pid1, sig);
                        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
                                /* A second stop request does not wait. */
                                if (++stops >= 2 && !killed) {
                                        kill(r->pid1, AIDP_SIG_KILL_JOB);
                                        killed = true;
                                }
                        }
                }
                if (stops && !grace_armed) {
                        struct itimerspec its = {.it_value = {.tv_sec = kill_after}};
                        timerfd_settime(grace, 0, &its, NULL);
                        grace_armed = true;
                }
        }
out:
        if (sfd >= 0)
                close(sfd);
        if (wall >= 0)
                close(wall);
        if (grace >= 0)
                close(grace);
        close_pair(f.sync);
        close_pair(f.err);
        close_pair(f.status);
        return rc;
}

/* Shred and remove everything of the run, in the documented order. */
static int teardown(struct run *r, aidp_error *err)
{
        int rc = 0;
        aidp_error cerr = {0};
        cgroup_end(r, &cerr); /* prepare may have failed before it joined */
        if (r->cg) {
                struct aidp_cgroup_stats st;
                aidp_cgroup_stats(r->cg, &st);
                r->res->memory_peak_bytes = st.memory_peak_bytes;
                r->res->cpu_usec = st.cpu_usec;
                if (st.oom_kills > 0)
                        r->res->oom_killed = true;
        }
        /* 1. every process of the run but pid 1, which keeps holding the
         * tmpfs mounts: if this supervisor dies during shred, gc can still
         * reach them through it. */
        if (r->cg)
                aidp_cgroup_kill_except(r->cg, r->pid1);
        /* Copy out what the job wrote but nobody has read yet: after shred,
         * pages it spliced into a pipe would read as zeros. */
        for (int i = 0; i < 2; i++)
                aidp_relay_drain(&r->relay[i]);
        /* 1b. collect: seal /out now that nothing can write it any more, and
         * before shred destroys it. */
        if (r->o->output_dir && r->res->started) {
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
                                                r->o->output_key_id, owner, &r->res->output,
                                                &r->collect_err) < 0)
                                r->collect_failed = true;
                        else
                                r->res->has_output = true;
                }
        }
        /* 2. overwrite and verify every byte, through our own mount fds */
        struct aidp_shred_report *total = &r->res->shred;
        memset(total, 0, sizeof *total);
        total->verified = true;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        for (size_t i = 0; i < r->n_tmpfs; i++) {
                struct aidp_shred_report one;
                if (i == 1)
                        fault_point("shred");
                aidp_shred_tree(r->tmpfs[i].fd, ncpu > 0 ? (unsigned)ncpu : 1, &one);
                total->files += one.files;
                total->bytes += one.bytes;
                total->failures += one.failures;
                total->seconds += one.seconds;
                total->scrub_seconds += one.scrub_seconds;
                if (!one.verified) {
                        total->verified = false;
                        if (!total->first_failure[0])
                                snprintf(total->first_failure, sizeof total->first_failure,
                                         "%s: %s", r->tmpfs[i].label, one.first_failure);
                }
                /* 3. release our reference to the mount */
                aidp_tmpfs_release(&r->tmpfs[i]);
        }
        r->n_tmpfs = 0;
        /* pid 1 goes last, with the last references to the mounts */
        if (r->pid1 > 0) {
                kill(r->pid1, SIGKILL);
                waitpid(r->pid1, NULL, 0);
                r->pid1 = 0;
        }
        if (r->pidfd >= 0) {
                close(r->pidfd);
                r->pidfd = -1;
        }
        /* 4. cgroups */
        if (r->cg) {
                aidp_error e2 = {0};
                if (aidp_cgroup_destroy(r->cg, &e2) < 0 && rc == 0) {
                        *err = e2;
                        rc = -EBUSY;
                }
                r->cg = NULL;
        }
        if (!total->verified && rc == 0)
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "shred not verified: %s",
                                    total->first_failure);
        return rc;
}

/* 5. the journal last, after the end record: while it exists, gc can finish this
 * work and record the run's ABORT. */
static void journal_finish(struct run *r, bool done)
{
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
static size_t removed_list(struct run *r, char **out, size_t max)
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
        if (r->journal_open && n < max && asprintf(&out[n], "journal %s", r->journal.dir) >= 0)
                n++;
        return n;
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
        if (trc < 0) {
                *err = *terr;
                res->exit_status = AIDP_EXIT_INTERNAL;
                return trc;
        }
        if (res->timed_out) {
                res->exit_status = AIDP_EXIT_TIMEOUT;
                return aidp_error_set(err, AIDP_EXIT_TIMEOUT, ETIME,
                                      "job exceeded its wall time and was stopped");
        }
        if (res->oom_killed && res->job_status != 0) {
                res->exit_status = AIDP_EXIT_OOM;
                return aidp_error_set(
                        err, AIDP_EXIT_OOM, ENOMEM,
                        "job was killed by the memory limit (out of memory in its cgroup)");
        }
        res->exit_status = res->job_status >= 0 ? res->job_status : AIDP_EXIT_INTERNAL;
        if (res->job_status < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ECHILD,
                                      "the sandbox ended without a job status");
        return 0;
}

static void run_free(struct run *r)
{
        aidp_run_policy_free(&r->policy);
        if (r->caller_rc == 0)
                aidp_caller_free(&r->caller);
        aidp_inject_free(&r->inject);
        for (size_t i = 0; i < r->n_env; i++)
                free(r->env[i]);
        free(r->env);
        aidp_bpf_free(&r->bpf);
        for (size_t i = 0; i < 2; i++)
                if (r->learn_sv[i] >= 0)
                        close(r->learn_sv[i]);
        for (size_t i = 0; i < ARRAY_SIZE(r->dev_rules); i++)
                free(r->dev_rules[i]);
        aidp_run_lineage_close(&r->rl);
        if (r->profile_loaded)
                aidp_profile_free(&r->profile);
}

/* The supervisor's hold on the signals it handles, from the moment anything of a
 * run may exist (its cgroup) until the run is over. */
struct signal_hold {
        sigset_t set, old;
        struct sigaction saved[ARRAY_SIZE(handled)], saved_pipe;
};

static void signals_take(struct signal_hold *h)
{
        sigemptyset(&h->set);
        for (size_t i = 0; i < ARRAY_SIZE(handled); i++)
                sigaddset(&h->set, handled[i]);
        sigprocmask(SIG_BLOCK, &h->set, &h->old);
        /* An inherited SIG_IGN (a shell's background job ignores SIGINT and
         * SIGQUIT) would discard the signal before signalfd sees it. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        for (size_t i = 0; i < ARRAY_SIZE(handled); i++)
                sigaction(handled[i], &dfl, &h->saved[i]);
        /* A reader of our stdout that goes away must not kill the
         * supervisor before it has shredded. */
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigaction(SIGPIPE, &ign, &h->saved_pipe);
}

/* Drain what arrived meanwhile (the run is over; it was answered by teardown or
 * the run never started), then restore. */
static void signals_release(struct signal_hold *h)
{
        struct timespec zero = {0, 0};
        while (sigtimedwait(&h->set, NULL, &zero) > 0)
                ;
        for (size_t i = 0; i < ARRAY_SIZE(handled); i++)
                sigaction(handled[i], &h->saved[i], NULL);
        sigaction(SIGPIPE, &h->saved_pipe, NULL);
        sigprocmask(SIG_SETMASK, &h->old, NULL);
}

int aidp_run_execute(const struct aidp_run_opts *o, struct aidp_run_result *res, aidp_error *err)
{
        memset(res, 0, sizeof *res);
        res->job_status = -1;
        struct run r = {.o = o,
                        .res = res,
                        .pidfd = -1,
                        .learn_sv = {-1, -1},
                        .sync_w = -1,
                        .err_r = -1,
                        .status_r = -1,
                        .life_w = -1,
                        .caller_rc = -ENOENT};
        clock_gettime(CLOCK_MONOTONIC, &r.t0);
        r.journal.lifeline_w = -1;
        r.journal.cgroup_log = -1;

        aidp_relay_init(&r.relay[0]);
        aidp_relay_init(&r.relay[1]);
        warm_begin(&r);
        int rc = resolve(&r, err);
        /* From the cgroup on, something of the run exists: signals are taken
         * over now, so a SIGTERM from here on ends in teardown (nothing of the
         * run left), not in the default action. */
        struct signal_hold sig;
        bool holding = rc == 0;
        if (holding)
                signals_take(&sig);
        /* The journal, the cgroup2 directory, and the rest of the cgroup in the
         * background. */
        if (rc == 0)
                rc = journal_begin(&r, err);
        if (rc == 0)
                rc = cgroup_begin(&r, err);
        phase(&r, "resolve");
        /* 2. START, written before the journal, the mounts or the sandbox exist
         * (the cgroup is made alongside); its fsync completes on a thread and it
         * is committed below, before the job can start or any byte is
         * decrypted: a run that cannot be recorded does not start (and nothing
         * of it is left). */
        if (rc == 0)
                rc = aidp_run_lineage_start(&r.rl, o, res, &r.profile,
                                            r.caller_rc == 0 ? &r.caller : NULL, r.uid, r.gid,
                                            aidp_run_policy_annotate, &r.policy, err);
        else if (r.policy.decided && !r.policy.decision.allow) {
                /* A denial is an audited event too, though no run starts. */
                aidp_error lerr = {0};
                if (aidp_run_lineage_denied(o, res, r.caller_rc == 0 ? &r.caller : NULL,
                                            aidp_run_policy_annotate, &r.policy, &lerr) < 0) {
                        size_t len = strlen(err->msg);
                        snprintf(err->msg + len, sizeof err->msg - len,
                                 " (and the denial could not be recorded in lineage: %s)",
                                 lerr.msg);
                }
        }
        phase(&r, "start-rec");
        if (rc == 0)
                fault_point("start");
        if (rc < 0) {
                warm_end(&r);
                bool clean = true;
                if (r.cg) {
                        aidp_error cerr = {0};
                        clean = aidp_cgroup_destroy(r.cg, &cerr) == 0;
                        r.cg = NULL;
                }
                /* Kept for gc if a cgroup could not be removed. */
                journal_finish(&r, clean);
                if (holding)
                        signals_release(&sig);
                run_free(&r);
                res->exit_status = err->status;
                return rc;
        }
        /* From here on every exit goes through teardown. */
        rc = prepare(&r, err);
        if (rc == 0) {
                sigset_t pending;
                sigpending(&pending);
                if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM) ||
                    sigismember(&pending, SIGHUP))
                        rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, EINTR,
                                            "interrupted before the job started");
        }
        phase(&r, "prepare");
        /* pid 1 is cloned while START's fsync may still run; the warm-up thread
         * is gone first (it uses stdio, whose locks pid 1 needs: sandbox.h). */
        warm_end(&r);
        if (rc == 0)
                rc = spawn(&r, &sig.old, err);
        phase(&r, "spawn");
        /* While pid 1 builds its mounts: START made durable, the cgroup
         * finished and recorded in the journal. */
        if (rc == 0)
                rc = aidp_run_lineage_start_commit(&r.rl, res->run_id, err);
        if (rc == 0 && (rc = cgroup_end(&r, err)) == 0) {
                /* cgroups.log had each directory before it was made; only
                 * without it must journal.json be rewritten for them. */
                journal_cgroups(&r);
                if (r.journal.cgroup_log < 0)
                        rc = aidp_journal_sync(&r.journal, err);
        }
        phase(&r, "start-sync");
        if (rc == 0)
                rc = inject(&r, err);
        phase(&r, "inject");
        if (rc == 0)
                rc = start_and_monitor(&r, err);
        phase(&r, "job");
        /* The lifeline stays open until teardown is done: pid 1 must not
         * mistake a normal teardown for a dead supervisor. */
        r.journal.lifeline_w = r.life_w;
        r.life_w = -1;
        if (r.sync_w >= 0)
                close(r.sync_w);
        if (r.err_r >= 0)
                close(r.err_r);
        if (r.status_r >= 0)
                close(r.status_r);
        /* The cgroup helper's directories (a run that failed early has not
         * collected them yet), so that the end record names them all. */
        aidp_error cgerr = {0};
        cgroup_end(&r, &cgerr);
        char *removed[16];
        size_t n_removed = removed_list(&r, removed, ARRAY_SIZE(removed));
        aidp_error terr = {0};
        int trc = teardown(&r, &terr);
        phase(&r, "teardown");
        for (int i = 0; i < 2; i++)
                aidp_relay_finish(&r.relay[i]);
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        res->wall_seconds =
                (double)(t1.tv_sec - r.t0.tv_sec) + (double)(t1.tv_nsec - r.t0.tv_nsec) / 1e9;
        rc = outcome(&r, rc, err, trc, &terr);
        /* 7. the end record, with signals still held so a late SIGTERM cannot cut
         * it short; then the journal goes. */
        aidp_error lerr = {0};
        int lrc = aidp_run_lineage_end(&r.rl, res->run_id, res, rc, err,
                                       (const char *const *)removed, n_removed, &lerr);
        phase(&r, "end-rec");
        journal_finish(&r, trc == 0 && lrc == 0);
        for (size_t i = 0; i < n_removed; i++)
                free(removed[i]);
        signals_release(&sig);
        run_free(&r);
        phase(&r, "finish");
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
