/* run's option table (aidp_cli_run_spec) and what the parsed options become:
 * shared by aidp-supervisor run, the daemon (cli_serve.c) and the aidp-run
 * client (cli_client.c). Its own file so that the client links only this
 * and the wire, not the run core and its libraries: every library a process
 * maps is start-up time, and aidp-run starts once per job. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "profiles/profile_load.h"
#include "profiles/units.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_supervisor.h"
#include "supervisor/cli/options.h"
#include "supervisor/cli/trust.h"

/* ---- run: the option table ---- */

/* A scheduler hands over a task's whole environment as --env values. */
#define AIDP_CLI_MAX_ENV 4096

static int rlimit_value(const char *s, uint64_t *v)
{
        if (!strcmp(s, "unlimited") || !strcmp(s, "infinity")) {
                *v = UINT64_MAX;
                return 0;
        }
        return aidp_profiles_parse_size(s, v);
}

/* --rlimit NAME=SOFT[:HARD]; HARD defaults to SOFT. */
static int parse_rlimit(const char *arg, void *dest, aidp_error *err)
{
        struct aidp_rlimit *out = ((struct aidp_cli_run *)dest)->o.rlimits;
        char buf[128];
        if (snprintf(buf, sizeof buf, "%s", arg) >= (int)sizeof buf)
                return -EINVAL;
        char *eq = strchr(buf, '=');
        if (!eq)
                return -EINVAL;
        *eq = '\0';
        int r = aidp_profiles_rlimit_parse(buf);
        if (r < 0 || r >= AIDP_RLIMIT_SLOTS)
                return -EINVAL;
        char *colon = strchr(eq + 1, ':');
        if (colon)
                *colon = '\0';
        uint64_t soft, hard;
        if (rlimit_value(eq + 1, &soft) < 0 ||
            rlimit_value(colon ? colon + 1 : eq + 1, &hard) < 0 || soft > hard)
                return -EINVAL;
        out[r] = (struct aidp_rlimit){.set = true, .soft = soft, .hard = hard};
        return 0;
}

static void trim_slashes(char *p)
{
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/')
                p[--n] = '\0';
}

/* --ro-bind/--bind SRC[:DST], kept in the order given (a later bind may sit
 * inside an earlier one). The paths are checked by the run core. */
static int add_bind(const char *arg, void *dest, bool writable, aidp_error *err)
{
        struct aidp_cli_run *c = dest;
        const char *opt = writable ? "--bind" : "--ro-bind";
        if (c->o.n_binds >= AIDP_CLI_MAX_BINDS || !*arg || arg[0] == ':')
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "%s '%s': expected SRC[:DST] (at most %d binds)", opt, arg,
                                      AIDP_CLI_MAX_BINDS);
        char *colon = strchr(arg, ':');
        if (colon)
                *colon = '\0'; /* argv is ours to split */
        /* "DIR/" as a shell completes it; every other unclean path is refused
         * by the run core's one rule (aidp_path_is_clean_abs) */
        trim_slashes((char *)arg);
        if (colon)
                trim_slashes(colon + 1);
        c->binds[c->o.n_binds++] = (struct aidp_run_bind){
                .source = arg, .target = colon ? colon + 1 : NULL, .writable = writable};
        return 0;
}

static int parse_ro_bind(const char *arg, void *dest, aidp_error *err)
{
        return add_bind(arg, dest, false, err);
}

static int parse_bind(const char *arg, void *dest, aidp_error *err)
{
        return add_bind(arg, dest, true, err);
}

static int parse_env(const char *arg, void *dest, aidp_error *err)
{
        struct aidp_cli_list *l = &((struct aidp_cli_run *)dest)->env;
        if (l->n >= AIDP_CLI_MAX_ENV || !*arg || arg[0] == '=')
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--env '%s': expected NAME or NAME=VALUE (at most %d)", arg,
                                      AIDP_CLI_MAX_ENV);
        /* AIDP_* in the job is aidp's word to the job (its run id, where its
         * data, scratch and output are): nobody else's to set, the admin's
         * neither. Here, where both run and the daemon's requests parse. */
        if (!strncmp(arg, "AIDP_", 5))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "--env %.*s: AIDP_* variables are aidp's own in the job "
                                      "(AIDP_RUN_ID, AIDP_DATA_DIR, ...), never passed",
                                      (int)strcspn(arg, "="), arg);
        const char **v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (!v)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        v[l->n++] = arg;
        l->v = v;
        return 0;
}

/* A bare --env NAME copies NAME from the supervisor's own (root's) environment. */
static enum aidp_trust_level env_trust(const char *arg)
{
        return strchr(arg, '=') ? AIDP_TRUST_USER : AIDP_TRUST_ADMIN;
}

/* A profile file (a path, or a name ending .yaml/.yml) is the admin's: a
 * user runs installed library profiles, by name (docs/security.md; the run
 * core refuses it again when it loads one). */
static enum aidp_trust_level profile_trust(const char *arg)
{
        return aidp_profile_ref_is_path(arg) ? AIDP_TRUST_ADMIN : AIDP_TRUST_USER;
}

#define RUN(f) offsetof(struct aidp_cli_run, f)
#define U      AIDP_TRUST_USER
#define A      AIDP_TRUST_ADMIN

/* Every option of `aidp-supervisor run`, with the trust level a caller needs
 * (docs/security.md); .limit: a user may only lower the profile's value. */
static const struct aidp_cli_opt run_opts[] = {
        AIDP_CLI_OPT("profile", 0, AIDP_CLI_STRING, RUN(o.profile), "NAME|FILE",
                     "sandbox profile (docs/profiles.md; default: the library's\n"
                     "baseline); a FILE is admin only",
                     U, .trust_of = profile_trust, .user_arg = "NAME",
                     .user_help = "an installed library profile (aidp profile list;\n"
                                  "default: baseline)"),
        AIDP_CLI_OPT("user", 0, AIDP_CLI_STRING, RUN(o.user), "NAME|UID[:GID]",
                     "identity of the job, when root runs the supervisor\n"
                     "directly (refused through sudo); default: the sudo\n"
                     "user, then SLURM_JOB_UID, then nobody; never root",
                     A),
        AIDP_CLI_OPT("memory", 0, AIDP_CLI_SIZE, RUN(o.memory_bytes), "SIZE",
                     "memory limit, e.g. 512M, 8G (default 4G)", U, .min = 4096,
                     .expect = "a size such as 512M or 8G (at least 4K)", .limit = true),
        AIDP_CLI_OPT("cpus", 0, AIDP_CLI_CPU, RUN(o.cpu_millis), "N",
                     "cpu quota, e.g. 2, 1.5, 500m (default 2)", U, .min = 1, .limit = true),
        AIDP_CLI_OPT("pids", 0, AIDP_CLI_UINT, RUN(o.pids), "N",
                     "process/thread limit (default 1024)", U, .min = 1,
                     .expect = "a positive integer", .limit = true),
        AIDP_CLI_OPT("timeout", 0, AIDP_CLI_DURATION, RUN(o.timeout_seconds), "DURATION",
                     "wall time limit, e.g. 90s, 2h, 1h30m (default: the\n"
                     "profile's, 24h for baseline)",
                     U, .min = 1, .limit = true),
        AIDP_CLI_OPT("kill-after", 0, AIDP_CLI_DURATION, RUN(kill_after), "DURATION",
                     "SIGTERM-to-SIGKILL grace on timeout/stop (default 5s)", U, .min = 1,
                     .max = 3600, .expect = "a duration of 1s to 1h", .limit = true),
        AIDP_CLI_OPT("tmp-size", 0, AIDP_CLI_SIZE, RUN(o.tmp_bytes), "SIZE",
                     "size of the private /tmp (and /dev/shm unless --shm-size; default 256M)", U,
                     .min = 4096, .expect = "a size such as 256M (at least 4K)", .limit = true),
        AIDP_CLI_OPT("scratch-size", 0, AIDP_CLI_SIZE, RUN(o.scratch_bytes), "SIZE",
                     "size of /scratch (default 1G)", U, .min = 4096,
                     .expect = "a size such as 1G (at least 4K)", .limit = true),
        AIDP_CLI_OPT("out-size", 0, AIDP_CLI_SIZE, RUN(o.out_bytes), "SIZE",
                     "size of /out (default 1G)", U, .min = 4096,
                     .expect = "a size such as 1G (at least 4K)", .limit = true),
        AIDP_CLI_OPT("shm-size", 0, AIDP_CLI_SIZE, RUN(o.shm_bytes), "SIZE",
                     "size of /dev/shm (default: as /tmp)", U, .min = 4096,
                     .expect = "a size such as 256M (at least 4K)", .limit = true),
        AIDP_CLI_OPT(
                "rlimit", 0, AIDP_CLI_CUSTOM, 0, "NAME=SOFT[:HARD]",
                "resource limit, e.g. nofile=1024:4096, stack=8M,\n"
                "core=0 (the default); 'unlimited' allowed (repeatable)",
                U, .limit = true, .parse = parse_rlimit,
                .expect =
                        "NAME=SOFT[:HARD] with NAME one of as, core, cpu, data, fsize, locks, "
                        "memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, "
                        "stack and values such as 1024, 8M or unlimited (soft <= hard)"),
        AIDP_CLI_OPT("cwd", 0, AIDP_CLI_STRING, RUN(o.cwd), "DIR",
                     "working directory inside (default: the caller's)", U),
        AIDP_CLI_OPT("no-cwd", 0, AIDP_CLI_FLAG, RUN(o.no_cwd), NULL,
                     "do not bind the working directory into the sandbox", U),
        AIDP_CLI_OPT("ro-bind", 0, AIDP_CLI_CUSTOM, 0, "SRC[:DST]",
                     "bind a host path read-only (repeatable)", U, .parse = parse_ro_bind),
        AIDP_CLI_OPT("bind", 0, AIDP_CLI_CUSTOM, 0, "SRC[:DST]",
                     "bind a host path writable (repeatable; its writes\n"
                     "reach the host and are not shredded)",
                     U, .parse = parse_bind),
        AIDP_CLI_OPT("env", 0, AIDP_CLI_CUSTOM, 0, "NAME[=VALUE]",
                     "pass an environment variable (repeatable; a bare\n"
                     "NAME copies the supervisor's own: admin only)",
                     U, .parse = parse_env, .trust_of = env_trust, .user_arg = "NAME=VALUE",
                     .user_help = "set a variable in the job's environment (repeatable)"),
        AIDP_CLI_OPT("keep-env", 0, AIDP_CLI_FLAG, RUN(o.keep_env), NULL,
                     "pass the whole environment (default: a safe subset)", A),
        AIDP_CLI_OPT("cgroup-parent", 0, AIDP_CLI_STRING, RUN(o.cgroup_parent), "PATH",
                     "parent cgroup (default: see docs/run-core.md)", A),
        AIDP_CLI_OPT("run-id", 0, AIDP_CLI_STRING, RUN(o.run_id), "ID",
                     "run id (default: a new UUID)", A),
        AIDP_CLI_OPT("run-dir", 0, AIDP_CLI_STRING, RUN(o.run_dir), "DIR",
                     "run journals (default $AIDP_RUN_DIR or /run/aidp)", A),
        AIDP_CLI_OPT("summary", 0, AIDP_CLI_STRING, RUN(o.summary_path), "FILE",
                     "write a JSON result for schedulers", U,
                     .user_help = "write the run's result as JSON to FILE, a new file"),
        AIDP_CLI_OPT("result-fd", 0, AIDP_CLI_UINT, RUN(result_fd), "N",
                     "write the same JSON result as one line to descriptor N", U, .min = 3,
                     .max = INT_MAX, .expect = "an open file descriptor >= 3", .local = true),
        AIDP_CLI_OPT("exec-hook", 0, AIDP_CLI_FLAG, RUN(exec_hook), NULL,
                     "non-interactive mode for a root scheduler component\n"
                     "(docs/exec-hook.md): --user and --run-id required; the\n"
                     "SLURM_JOB_* and SUDO_* variables are ignored",
                     A),
        AIDP_CLI_OPT("scheduler", 0, AIDP_CLI_STRING, RUN(o.scheduler), "NAME",
                     "the scheduler that started the run (e.g. slurm)", A),
        AIDP_CLI_OPT("job-id", 0, AIDP_CLI_STRING, RUN(o.scheduler_job), "ID",
                     "its job id; lineage records it (and --step-id) as\n"
                     "the OpenLineage parent run facet",
                     A),
        AIDP_CLI_OPT("step-id", 0, AIDP_CLI_STRING, RUN(o.scheduler_step), "ID", "its step id", A),
        AIDP_CLI_OPT("data", 0, AIDP_CLI_LIST, RUN(data), "FILE.sealed",
                     "sealed dataset, decrypted read-only at /data/<name>\n"
                     "(repeatable; every segment authenticated first)",
                     U, .max = AIDP_RUN_MAX_DATA),
        AIDP_CLI_OPT("job-name", 0, AIDP_CLI_STRING, RUN(o.job_name), "NAME",
                     "the job's name in lineage (default: in --exec-hook mode\n"
                     "with --scheduler slurm, SLURM_JOB_NAME of the job's\n"
                     "--env; else the profile's name)",
                     U, .user_help = "the job's name in lineage (default: the profile's name)"),
        AIDP_CLI_OPT("output-dir", 0, AIDP_CLI_STRING, RUN(o.output_dir), "DIR",
                     "seal /out into DIR/<run-id>.sealed at the end, with\n"
                     "the inputs' highest classification and all their tags;\n"
                     "without it /out is shredded (aidp-run: --out DIR)",
                     U),
        AIDP_CLI_OPT("output-key-id", 0, AIDP_CLI_STRING, RUN(o.output_key_id), "ID",
                     "key for the sealed /out (default: the first input's)", U),
        AIDP_CLI_OPT("keys-config", 0, AIDP_CLI_STRING, RUN(o.keys_config), "FILE",
                     "key provider config (default /etc/aidp/keys.yaml)", A),
        AIDP_CLI_OPT("key-dir", 0, AIDP_CLI_STRING, RUN(o.key_dir), "DIR",
                     "file key provider directory (default /etc/aidp/keys)", A),
        AIDP_CLI_OPT("lineage", 0, AIDP_CLI_STRING, RUN(o.lineage_path), "FILE",
                     "lineage log (default $AIDP_LINEAGE_FILE or\n"
                     "/var/lib/aidp/lineage.jsonl; key: $AIDP_LINEAGE_KEY or\n"
                     "/etc/aidp/lineage.key, created on first use)",
                     A),
        AIDP_CLI_OPT("quiet", 'q', AIDP_CLI_FLAG, RUN(o.quiet), NULL, "no run summary on stderr",
                     U),
        AIDP_CLI_OPT("dry-run", 0, AIDP_CLI_FLAG, RUN(dry_run), NULL,
                     "resolve and print the plan (profile with its digest,\n"
                     "datasets with their authenticated tags, network rules,\n"
                     "the policy decision and its reasons); run nothing",
                     U),
        AIDP_CLI_OPT("json", 0, AIDP_CLI_FLAG, RUN(json), NULL, "--dry-run's plan as JSON", U),
        {0},
};

const struct aidp_cli_spec aidp_cli_run_spec = {
        .prog = "aidp-supervisor run",
        .synopsis = "[OPTIONS] -- CMD [ARGS...]",
        .about = "Run CMD in a fresh sandbox; the job's exit status becomes ours.",
        .opts = run_opts,
        .footer = AIDP_CLI_UNITS_HELP,
        .in_order = true,
        .min_args = 1,
        .max_args = -1,
        .args = "CMD after the options (no command given)",
};

void aidp_cli_run_finish(struct aidp_cli_run *c, char **argv, const struct aidp_cli_parsed *p)
{
        c->o.kill_after = (unsigned)c->kill_after;
        c->o.env_extra = (char **)c->env.v;
        c->o.n_env_extra = c->env.n;
        c->o.data = c->data.v;
        c->o.n_data = c->data.n;
        c->o.binds = c->binds;
        c->o.argv = argv + p->first_arg;
}
