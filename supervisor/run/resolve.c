#define _GNU_SOURCE
/* Step 1 of docs/run-core.md: resolve. Everything a run is decided on, before
 * anything of it exists: run id, profile and CLI overrides, the job's identity,
 * authenticated sealed headers, the access and residency decision, the seccomp
 * program, the job's environment. A failure here leaves nothing behind. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "common/cleanup.h"
#include "common/path.h"
#include "profiles/seccomp_compile.h"
#include "supervisor/run/profile_env.h"
#include "supervisor/run/run_internal.h"
#include "supervisor/run/run_views.h"
#include "supervisor/run/warm.h"
#include "supervisor/sandbox/creds.h"
#include "supervisor/sealed/codec/sealed_format.h"

extern char **environ;

/* The job runs as the caller the access policy decides on (supervisor/run/caller.c:
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
        const struct aidp_run_peer *peer = r->o->peer;
        r->caller_rc = peer ? aidp_caller_from_peer(peer->uid, peer->gid, peer->groups,
                                                    peer->n_groups, &r->caller, &r->caller_err)
                            : aidp_caller_resolve_identity(r->o->user ? name : NULL, getuid(),
                                                           environ, &r->caller, &r->caller_err);
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
        /* A daemon's client has no --user to give: the job is its own. */
        if ((uid == 0 || gid == 0) && !up->allow_root)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "refusing to run the job as root (uid %u gid %u): %s", uid,
                                      gid,
                                      peer ? "through the daemon a job runs as the user who "
                                             "connects; as root, run it with " AIDP_RUN_AS_ROOT_HINT
                                           : "give --user");
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
        /* A daemon's client: its own environment, through the same filter. */
        char *const *base = r->o->peer ? r->o->peer->env : environ;
        for (char *const *e = base; e && *e && rc == 0; e++)
                if (r->o->keep_env || env_passes(*e))
                        rc = env_add(r, *e);
        char buf[4200];
        if (rc == 0 && !aidp_caller_env_get(base, "PATH"))
                rc = env_add(r,
                             "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin");
        /* HOME and TMPDIR first, for --env to change; aidp's own last, so
         * that nothing before (--keep-env, --env) stands in their place. */
        const char *fixed[][2] = {
                {"HOME", "/tmp"},
                {"TMPDIR", "/tmp"},
                {"AIDP_RUN_ID", r->res->run_id},
                {"AIDP_DATA_DIR", r->profile.paths.data},
                {"AIDP_SCRATCH_DIR", r->profile.paths.scratch},
                {"AIDP_OUT_DIR", r->profile.paths.out},
        };
        for (size_t i = 0; rc == 0 && i < 2; i++) {
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
        for (size_t i = 2; rc == 0 && i < ARRAY_SIZE(fixed); i++) {
                snprintf(buf, sizeof buf, "%s=%s", fixed[i][0], fixed[i][1]);
                rc = env_add(r, buf);
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

bool aidp_run_id_valid(const char *id)
{
        size_t n = strlen(id);
        if (n == 0 || n > 63 ||
            strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789-_.") != n)
                return false;
        /* The output is sealed as "<id>-out": the id must make a name that
         * sealing accepts (a letter or digit first), or the job would run and
         * its output be shredded at the end. */
        char name[AIDP_SEALED_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s-out", id);
        return aidp_sealed_valid_name(name);
}

/* Learn mode (aidp profile learn): every syscall the profile lets run is
 * reported to the supervisor instead (seccomp user notification; the
 * supervisor answers "continue"), so what the job used can be recorded while
 * the profile's denials still hold. The one exception is the sendmsg that
 * hands the listener fd to the supervisor: it happens after the filter is
 * loaded and before anyone listens, so it is allowed on that socket only. */
static int learn_policy(struct run *r, aidp_error *err)
{
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r->learn_sv) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "socketpair");
        if (aidp_sc_policy_learn(&r->profile.seccomp, r->learn_sv[1]) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

/* A user's --data, binds, working directory and --output-dir, opened with the
 * user's own credentials; from here on root uses only the fds. */
static int open_caller_paths(struct run *r, aidp_error *err)
{
        if (r->caller_rc < 0) {
                *err = r->caller_err;
                return r->caller_rc;
        }
        const struct aidp_run_opts *o = r->o;
        const char *cwd = r->profile.bind_cwd ? r->cwd : NULL;
        int rc = o->peer ? aidp_run_take_peer_paths(o, cwd, r->profile.n_binds, &r->cp, err)
                         : aidp_run_open_caller_paths(o, r->caller.uid, r->caller.gid, cwd,
                                                      r->profile.n_binds, &r->cp, err);
        if (rc < 0)
                return rc;
        r->inject.caller_fds = r->cp.data;
        if (r->cp.output_dir >= 0) {
                r->inject.output_dir_fd = r->cp.output_dir;
                r->inject.has_output_dir_fd = true;
                r->cp.output_dir = -1;
                r->inject.chown_output = true;
                r->inject.output_uid = r->caller.uid;
                r->inject.output_gid = r->caller.gid == (gid_t)-1 ? r->gid : r->caller.gid;
        }
        return 0;
}

/* Exec-hook mode: root runs for --user, and the working directory (the
 * scheduler's, or --cwd) is that user's to open, never root's to resolve. */
static int open_hook_cwd(struct run *r, aidp_error *err)
{
        if (!r->profile.bind_cwd)
                return 0;
        if (r->caller_rc < 0) {
                *err = r->caller_err;
                return r->caller_rc;
        }
        return aidp_run_open_cwd_as(aidp_run_cwd_label(r->o), r->caller.uid, r->caller.gid, r->cwd,
                                    &r->cp.cwd_tree, err);
}

static int add_cli_bind(struct aidp_profile *p, const struct aidp_run_bind *b, bool as_user,
                        aidp_error *err)
{
        const char *opt = b->writable ? "--bind" : "--ro-bind";
        if (!aidp_path_is_clean_abs(b->source) || (b->target && !aidp_path_is_clean_abs(b->target)))
                return aidp_error_set(
                        err, AIDP_EXIT_USAGE, EINVAL,
                        "%s %s%s%s: paths must be absolute, without '.', '..' or '//'", opt,
                        b->source, b->target ? ":" : "", b->target ? b->target : "");
        int rc = aidp_run_trust_bind(b, err); /* reserved paths, for every caller */
        if (rc < 0)
                return rc;
        /* A user's source is opened later, as the user (run_trust.c); root
         * never looks it up for them. */
        struct stat st;
        if (!as_user && stat(b->source, &st) < 0)
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

/* CLI overrides of the profile's limits (0 = keep the profile's). */
static void apply_cli_limits(struct aidp_limits *l, const struct aidp_run_opts *o)
{
        const struct {
                uint64_t from, *to;
        } over[] = {
                {o->memory_bytes, &l->memory_bytes},
                {o->cpu_millis, &l->cpu_millis},
                {o->pids, &l->pids},
                {o->timeout_seconds, &l->wall_seconds},
                {o->tmp_bytes, &l->tmp_bytes},
                {o->scratch_bytes, &l->scratch_bytes},
                {o->out_bytes, &l->out_bytes},
                {o->shm_bytes, &l->shm_bytes},
                {o->kill_after, &l->kill_after_seconds},
        };
        for (size_t i = 0; i < ARRAY_SIZE(over); i++)
                if (over[i].from)
                        *over[i].to = over[i].from;
        for (int i = 0; i < AIDP_RLIMIT_SLOTS; i++)
                if (o->rlimits[i].set)
                        l->rlimits[i] = o->rlimits[i];
}

/* Generate before clone: the sandbox's critical path only loads it. A warm
 * daemon compiled the library's already (warm.h); learn mode changed this
 * profile's actions, so never for it. */
static int compile_filter(struct run *r, aidp_error *err)
{
        static const unsigned char zero[32];
        if (!r->o->on_notify_fd && memcmp(r->profile.digest, zero, sizeof zero) &&
            aidp_run_warm_bpf(r->profile.digest, &r->bpf))
                return 0;
        int rc = aidp_seccomp_compile(&r->profile.seccomp, &r->bpf, err);
        if (rc < 0)
                return aidp_error_wrap(err, "compiling the seccomp filter");
        return 0;
}

/* The key /out is sealed under is the policy's decision, not the order of
 * --data: --output-key-id may only name the same key (a run without inputs
 * names it; no decision then). Refused before anything of the run exists. */
static int output_key(struct run *r, aidp_error *err)
{
        const struct aidp_decision *d = &r->policy.decision;
        const char *asked = r->o->output_key_id;
        if (!r->policy.decided)
                return 0;
        /* What a leak scan hit does (access.yaml leak_scan); audit: report. */
        r->inject.leak_quarantine = d->leak_action == AIDP_LEAK_QUARANTINE && !d->audit;
        int rc = aidp_inject_check_quarantine(&r->inject, err);
        if (rc < 0 || !d->output_key)
                return rc;
        if (asked && strcmp(asked, d->output_key) && !d->audit)
                return aidp_error_set(err, AIDP_EXIT_DENIED, EACCES,
                                      "--output-key-id %s: outputs of these inputs are sealed "
                                      "under key %s (%s); omit the option",
                                      asked, d->output_key, d->output_key_rule);
        if (asked && d->audit)
                return 0; /* enforcement: audit: the decision is recorded, not applied */
        if (strlen(d->output_key) >= sizeof r->output_key)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENAMETOOLONG,
                                      "output key id %s: too long", d->output_key);
        snprintf(r->output_key, sizeof r->output_key, "%s", d->output_key);
        return 0;
}

/* The working directory the job starts in: --cwd, else the caller's own (a
 * daemon's peer: "/", never the daemon's). */
static int resolve_cwd(struct run *r, aidp_error *err)
{
        const struct aidp_run_opts *o = r->o;
        if (o->cwd && strlen(o->cwd) >= sizeof r->cwd)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG, "--cwd %s: path too long",
                                      o->cwd);
        if (o->cwd)
                snprintf(r->cwd, sizeof r->cwd, "%s", o->cwd);
        else if (o->peer)
                snprintf(r->cwd, sizeof r->cwd, "/"); /* never the daemon's own */
        else if (!getcwd(r->cwd, sizeof r->cwd))
                snprintf(r->cwd, sizeof r->cwd, "/");
        if (r->cwd[0] != '/')
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--cwd %s: must be an absolute path", r->cwd);
        return 0;
}

/* Without --profile, the shipped library profile `baseline`, never the
 * weaker built-in defaults: lineage then names a profile with a digest, as
 * for every other run. Users run installed library profiles only
 * (docs/security.md). */
static int load_profile(struct run *r, aidp_error *err)
{
        const struct aidp_run_opts *o = r->o;
        const char *pname = o->profile ? o->profile : AIDP_DEFAULT_PROFILE;
        int rc;
        /* A warm daemon's worker takes the library profile its server loaded,
         * while every file of it is unchanged (warm.h); else it is loaded
         * here, with the same checks. */
        if ((o->as_user || !o->profile) && !aidp_profile_ref_is_path(pname) &&
            aidp_run_warm_profile_take(pname, &r->profile))
                rc = 0;
        else
                rc = o->as_user || !o->profile
                             ? aidp_profile_host_load_library(pname, true, &r->profile, err)
                             : aidp_profile_host_load(pname, true, &r->profile, NULL, err);
        if (rc < 0) {
                if (!err->status)
                        err->status = AIDP_EXIT_CONFIG;
                return aidp_error_wrap(err, "loading profile %s%s", pname,
                                       o->profile ? "" : " (the default; name one with --profile)");
        }
        r->profile_loaded = true;
        /* Lineage and policy name a profile by how it was chosen (its library
         * name, or "file:PATH" for an admin's file) plus its digest, never by
         * the metadata.name its author wrote into it. */
        char *n = NULL;
        if (asprintf(&n, "%s%s", aidp_profile_ref_is_path(pname) ? "file:" : "", pname) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        free(r->profile.name);
        r->profile.name = n;
        /* A capability this kernel lacks is a bad profile here, named, not
         * pid 1's bare EPERM from capset after the clone. */
        int last = aidp_creds_kernel_last_cap();
        if (last < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -last,
                                        "reading /proc/sys/kernel/cap_last_cap");
        return aidp_creds_check_profile(&r->profile, pname, last, err);
}

/* A quarantined output (an output leak scan found values a view hides in it,
 * docs/sealed-data.md) is for an admin's eyes, as `aidp unseal` has it: no
 * run decrypts one for a job that is not root's own, whatever the policy
 * grants on its tags and whatever its enforcement mode. Decided on the
 * authenticated header's key id, before any payload byte, and recorded in
 * lineage as a denial. */
static int refuse_quarantined(struct run *r, aidp_error *err)
{
        if (!r->o->as_user && r->uid == 0)
                return 0;
        for (size_t i = 0; i < r->inject.n; i++) {
                const struct aidp_sealed_header *h = aidp_inject_header(&r->inject, i);
                if (!aidp_keys_is_quarantine(&r->inject.keys, h->meta.key_id))
                        continue;
                char msg[256];
                snprintf(msg, sizeof msg,
                         "%s is a quarantined output, sealed under the quarantine key %s (an "
                         "output leak scan found hidden values in it): only an admin reads it, "
                         "with aidp unseal",
                         r->o->data[i], h->meta.key_id);
                if (aidp_residency_decision_refuse(&r->policy.decision, AIDP_CHECK_DENY,
                                                   "quarantine", h->meta.name, "key", msg) < 0)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        return aidp_residency_decision_to_error(&r->policy.decision, err);
}

/* A failure of the sealed inputs themselves (117: tampered, truncated, another
 * key, a manifest that does not authenticate) is an audited event like a
 * denial (run.c records it); rc passes through. */
static int inputs_refused(struct run *r, int rc, const aidp_error *err)
{
        if (rc < 0 && err->status == AIDP_EXIT_DATA && r->o->n_data)
                r->inputs_refused = true;
        return rc;
}

int aidp_run_resolve(struct run *r, aidp_error *err)
{
        const struct aidp_run_opts *o = r->o;
        if (!o->argv || !o->argv[0])
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "no command given (usage: run [OPTIONS] -- CMD [ARGS])");
        make_run_id(r);
        if (!aidp_run_id_valid(r->res->run_id))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL, "run id '%s': %s",
                                      r->res->run_id, AIDP_RUN_ID_RULE);
        int rc = load_profile(r, err);
        if (rc < 0)
                return rc;
        if (o->as_user &&
            (rc = aidp_run_trust_limits(&r->profile.limits, r->profile.name, o, err)) < 0)
                return rc;
        apply_cli_limits(&r->profile.limits, o);
        size_t first_cli_bind = r->profile.n_binds;
        for (size_t i = 0; i < o->n_binds; i++) {
                rc = add_cli_bind(&r->profile, &o->binds[i], o->as_user, err);
                if (rc < 0)
                        return rc;
        }
        if (o->no_cwd)
                r->profile.bind_cwd = false;
        if ((rc = resolve_cwd(r, err)) < 0 ||
            (rc = aidp_run_check_masked_binds(r, first_cli_bind, err)) < 0)
                return rc;
        rc = resolve_identity(r, err);
        if (rc < 0)
                return rc;
        if (o->as_user && (rc = open_caller_paths(r, err)) < 0)
                return rc;
        if (!o->as_user && o->exec_hook && (rc = open_hook_cwd(r, err)) < 0)
                return rc;
        if (o->as_user && o->n_data &&
            (rc = aidp_run_policy_require_for_data(r->caller.user, err)) < 0)
                return rc;
        /* Sealed inputs: headers authenticated now, before anything is
         * created, so a policy decision can rest on their tags. No payload
         * byte is decrypted here. */
        if (o->n_data || o->output_dir) {
                if (o->output_dir && !o->n_data && !o->output_key_id)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                              "%s without --data needs --output-key-id (the "
                                              "key to seal /out with: there is no input's "
                                              "to inherit)",
                                              aidp_run_output_dir_label(o));
                struct stat ost;
                if (o->output_dir && !o->as_user &&
                    (stat(o->output_dir, &ost) < 0 || !S_ISDIR(ost.st_mode)))
                        return aidp_error_set(err, AIDP_EXIT_USAGE, ENOTDIR,
                                              "%s %s: not a directory",
                                              aidp_run_output_dir_label(o), o->output_dir);
                rc = inputs_refused(r,
                                    aidp_inject_open(&r->inject, o->data, o->n_data, o->keys_config,
                                                     o->key_dir, r->res->inputs, err),
                                    err);
                if (rc < 0)
                        return rc;
                char out_name[AIDP_SEALED_NAME_MAX + 1];
                snprintf(out_name, sizeof out_name, "%s-out", r->res->run_id);
                if (o->output_dir && (rc = aidp_inject_check_output_key(
                                              &r->inject, o->output_key_id, out_name, err)) < 0)
                        return rc;
                r->res->n_inputs = o->n_data;
        }
        /* Access and residency: decided on the authenticated headers, before
         * prepare decrypts anything. A denial ends the run here. */
        rc = aidp_run_policy_decide(&r->policy, r->caller_rc == 0 ? &r->caller : NULL,
                                    &r->caller_err, &r->profile, &r->inject, err);
        if (rc == 0 && r->policy.decided)
                rc = refuse_quarantined(r, err);
        /* Column views: resolved and their token keys loaded now, so a
         * missing key refuses the run before START and before decryption.
         * Both read each input's manifest: its segments are decrypted and
         * authenticated here, in the supervisor's locked memory, before
         * START (docs/sealed-data.md, "Before START"). */
        if (rc == 0)
                rc = inputs_refused(r, aidp_run_views_resolve(r, err), err);
        if (rc == 0)
                rc = inputs_refused(r, aidp_run_check_data_fits(r, err), err);
        if (rc < 0)
                return rc;
        snprintf(r->res->policy_audit, sizeof r->res->policy_audit, "%s", r->policy.audit_msg);
        if (o->output_dir && (rc = output_key(r, err)) < 0)
                return rc;
        if (o->on_notify_fd && (rc = learn_policy(r, err)) < 0)
                return rc;
        /* egress: the host's pools and the rules left after the residency
         * decision, compiled now so that a bad configuration stops the run
         * before anything of it exists (docs/egress.md) */
        const char *netcfg = aidp_run_root_directly() ? getenv(AIDP_NETWORK_CONFIG_ENV) : NULL;
        rc = aidp_run_net_resolve(&r->net, &r->profile, netcfg && *netcfg ? netcfg : NULL, err);
        if (rc < 0)
                return rc;
        r->res->egress = r->net.egress;
        if ((rc = compile_filter(r, err)) < 0)
                return rc;
        return build_env(r, err);
}
