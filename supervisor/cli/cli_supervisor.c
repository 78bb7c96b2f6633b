#define _GNU_SOURCE
#include "supervisor/cli/cli_supervisor.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "profiles/units.h"
#include "supervisor/cli/cli.h"
#include "supervisor/run/run.h"

static const char run_usage[] =
        "usage: aidp-supervisor run [OPTIONS] -- CMD [ARGS...]\n"
        "\n"
        "Run CMD in a fresh sandbox; the job's exit status becomes ours.\n"
        "\n"
        "  --profile NAME|FILE     sandbox profile (docs/profiles.md; default: built-in baseline)\n"
        "  --user NAME|UID[:GID]   identity of the job, when root runs the supervisor\n"
        "                          directly (refused through sudo); default: the sudo\n"
        "                          user, then SLURM_JOB_UID, then nobody; never root\n"
        "  --memory SIZE           memory limit, e.g. 512Mi, 8Gi (default 4Gi)\n"
        "  --cpus N                cpu quota, e.g. 2, 1.5, 500m (default 2)\n"
        "  --pids N                process/thread limit (default 1024)\n"
        "  --timeout DURATION      wall time limit, e.g. 90s, 2h, 1h30m (default none)\n"
        "  --kill-after DURATION   SIGTERM-to-SIGKILL grace on timeout/stop (default 5s)\n"
        "  --tmp-size SIZE         size of the private /tmp and /dev/shm (default 256Mi)\n"
        "  --rlimit NAME=SOFT[:HARD]  resource limit, e.g. nofile=1024:4096, stack=8Mi,\n"
        "                          core=0 (the default); 'unlimited' allowed (repeatable)\n"
        "  --cwd DIR               working directory inside (default: the caller's)\n"
        "  --no-cwd                do not bind the working directory into the sandbox\n"
        "  --ro-bind SRC[:DST]     bind a host path read-only (repeatable)\n"
        "  --bind SRC[:DST]        bind a host path writable (repeatable; its writes\n"
        "                          reach the host and are not shredded)\n"
        "  --env NAME[=VALUE]      pass an environment variable (repeatable)\n"
        "  --keep-env              pass the whole environment (default: a safe subset)\n"
        "  --cgroup-parent PATH    parent cgroup (default: see docs/run-core.md)\n"
        "  --run-id ID             run id (default: a new UUID)\n"
        "  --run-dir DIR           run journals (default $AIDP_RUN_DIR or /run/aidp)\n"
        "  --summary FILE          write a JSON result for schedulers\n"
        "  --data FILE.sealed      sealed dataset, decrypted read-only at /data/<name>\n"
        "                          (repeatable; every segment authenticated first)\n"
        "  --output-dir DIR        seal /out into DIR/<run-id>.sealed at the end, with\n"
        "                          the inputs' highest classification and all their tags\n"
        "  --output-key-id ID      key for the sealed /out (default: the first input's)\n"
        "  --keys-config FILE      key provider config (default /etc/aidp/keys.yaml)\n"
        "  --key-dir DIR           file key provider directory (default /etc/aidp/keys)\n"
        "  --lineage FILE          lineage log (default $AIDP_LINEAGE_FILE or\n"
        "                          /var/lib/aidp/lineage.jsonl; key: $AIDP_LINEAGE_KEY or\n"
        "                          /etc/aidp/lineage.key, created on first use)\n"
        "  -q, --quiet             no run summary on stderr\n";

static const char main_usage[] =
        "usage: aidp-supervisor COMMAND ...\n"
        "\n"
        "  run [OPTIONS] -- CMD [ARGS...]   run a job in a sandbox (see run --help)\n"
        "  gc [--run-dir DIR]               clean up runs whose supervisor died\n"
        "  version                          print the version\n"
        "\n"
        "Exit statuses: the job's own (128+N for signal N); 119 bad config, 120 usage,\n"
        "121 denied by policy, 117 sealed data, 116 lineage, 118 out of memory,\n"
        "124 timeout, 125 supervisor failure, 126 cannot execute, 127 not found.\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "aidp-supervisor: error: ");
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n%s", run_usage);
        return AIDP_EXIT_USAGE;
}

static int rlimit_value(const char *s, uint64_t *v)
{
        if (!strcmp(s, "unlimited") || !strcmp(s, "infinity")) {
                *v = UINT64_MAX;
                return 0;
        }
        return aidp_profiles_parse_size(s, v);
}

/* NAME=SOFT[:HARD]; HARD defaults to SOFT. */
static int parse_rlimit(const char *arg, struct aidp_rlimit *out)
{
        char buf[128];
        snprintf(buf, sizeof buf, "%s", arg);
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

static void gc_report(const char *run_id, const char *what, void *arg)
{
        (void)arg;
        fprintf(stderr, "aidp-supervisor: gc: run %s aborted earlier: %s\n", run_id, what);
}

static json_object *tag_list(const char *joined)
{
        json_object *a = json_object_new_array();
        char buf[sizeof((struct aidp_run_dataset *)0)->residency];
        snprintf(buf, sizeof buf, "%s", joined);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
                json_object_array_add(a, json_object_new_string(t));
        return a;
}

static json_object *dataset_json(const struct aidp_run_dataset *d)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(d->path));
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "version", json_object_new_string(d->version));
        json_object_object_add(o, "classification", json_object_new_string(d->classification));
        json_object_object_add(o, "residency", tag_list(d->residency));
        json_object_object_add(o, "regulation", tag_list(d->regulation));
        json_object_object_add(o, "key_id", json_object_new_string(d->key_id));
        json_object_object_add(o, "content_digest", json_object_new_string(d->digest));
        json_object_object_add(o, "payload_bytes", json_object_new_uint64(d->bytes));
        json_object_object_add(o, "files", json_object_new_uint64(d->files));
        return o;
}

static int write_summary(const char *path, const struct aidp_run_result *r)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "run_id", json_object_new_string(r->run_id));
        json_object_object_add(o, "exit_status", json_object_new_int(r->exit_status));
        json_object_object_add(o, "job_status", json_object_new_int(r->job_status));
        json_object_object_add(o, "started", json_object_new_boolean(r->started));
        json_object_object_add(o, "timed_out", json_object_new_boolean(r->timed_out));
        json_object_object_add(o, "oom_killed", json_object_new_boolean(r->oom_killed));
        json_object_object_add(o, "wall_seconds", json_object_new_double(r->wall_seconds));
        /* null: the cgroup could not tell (resources_error says why) */
        json_object_object_add(o, "cpu_seconds",
                               r->cpu_known ? json_object_new_double((double)r->cpu_usec / 1e6)
                                            : NULL);
        json_object_object_add(o, "memory_peak_bytes",
                               r->memory_peak_known ? json_object_new_uint64(r->memory_peak_bytes)
                                                    : NULL);
        if (r->resources_error[0])
                json_object_object_add(o, "resources_error",
                                       json_object_new_string(r->resources_error));
        json_object_object_add(o, "cgroup", json_object_new_string(r->cgroup_version));
        json_object_object_add(o, "tmpfs_noswap", json_object_new_boolean(r->noswap));
        json_object *s = json_object_new_object();
        json_object_object_add(s, "files", json_object_new_uint64(r->shred.files));
        json_object_object_add(s, "bytes", json_object_new_uint64(r->shred.bytes));
        json_object_object_add(s, "verified", json_object_new_boolean(r->shred.verified));
        json_object_object_add(s, "seconds", json_object_new_double(r->shred.seconds));
        json_object_object_add(o, "shred", s);
        json_object *in = json_object_new_array();
        for (size_t i = 0; i < r->n_inputs; i++)
                json_object_array_add(in, dataset_json(&r->inputs[i]));
        json_object_object_add(o, "inputs", in);
        if (r->has_output)
                json_object_object_add(o, "output", dataset_json(&r->output));
        int rc = json_object_to_file_ext(path, o, JSON_C_TO_STRING_PRETTY);
        json_object_put(o);
        if (rc < 0) {
                fprintf(stderr, "aidp-supervisor: error: writing summary %s: %s\n", path,
                        strerror(errno));
                return -1;
        }
        return 0;
}

static int cmd_run(int argc, char **argv)
{
        enum {
                O_PROFILE = 255,
                O_USER = 256,
                O_MEMORY,
                O_CPUS,
                O_PIDS,
                O_TIMEOUT,
                O_KILL_AFTER,
                O_TMP,
                O_CWD,
                O_NO_CWD,
                O_ENV,
                O_KEEP_ENV,
                O_CGPARENT,
                O_RUN_ID,
                O_RUN_DIR,
                O_SUMMARY,
                O_LINEAGE,
                O_RLIMIT,
                O_RO_BIND,
                O_BIND,
                O_DATA,
                O_OUTPUT_DIR,
                O_OUTPUT_KEY,
                O_KEYS_CONFIG,
                O_KEY_DIR
        };
        static const struct option opts[] = {
                {"profile", required_argument, NULL, O_PROFILE},
                {"user", required_argument, NULL, O_USER},
                {"memory", required_argument, NULL, O_MEMORY},
                {"cpus", required_argument, NULL, O_CPUS},
                {"pids", required_argument, NULL, O_PIDS},
                {"timeout", required_argument, NULL, O_TIMEOUT},
                {"kill-after", required_argument, NULL, O_KILL_AFTER},
                {"tmp-size", required_argument, NULL, O_TMP},
                {"cwd", required_argument, NULL, O_CWD},
                {"no-cwd", no_argument, NULL, O_NO_CWD},
                {"env", required_argument, NULL, O_ENV},
                {"keep-env", no_argument, NULL, O_KEEP_ENV},
                {"cgroup-parent", required_argument, NULL, O_CGPARENT},
                {"run-id", required_argument, NULL, O_RUN_ID},
                {"run-dir", required_argument, NULL, O_RUN_DIR},
                {"summary", required_argument, NULL, O_SUMMARY},
                {"lineage", required_argument, NULL, O_LINEAGE},
                {"rlimit", required_argument, NULL, O_RLIMIT},
                {"ro-bind", required_argument, NULL, O_RO_BIND},
                {"bind", required_argument, NULL, O_BIND},
                {"data", required_argument, NULL, O_DATA},
                {"output-dir", required_argument, NULL, O_OUTPUT_DIR},
                {"output-key-id", required_argument, NULL, O_OUTPUT_KEY},
                {"keys-config", required_argument, NULL, O_KEYS_CONFIG},
                {"key-dir", required_argument, NULL, O_KEY_DIR},
                {"quiet", no_argument, NULL, 'q'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct aidp_run_opts o = {0};
        char *envs[256];
        struct aidp_run_bind binds[64];
        const char *datas[AIDP_RUN_MAX_DATA];
        uint64_t v;
        int c;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
                switch (c) {
                case O_PROFILE: o.profile = optarg; break;
                case O_USER: o.user = optarg; break;
                case O_MEMORY:
                        if (aidp_profiles_parse_size(optarg, &v) < 0 || v < 4096)
                                return usage_error(
                                        "--memory '%s': expected a size such as 512Mi or 8Gi",
                                        optarg);
                        o.memory_bytes = v;
                        break;
                case O_CPUS:
                        if (aidp_profiles_parse_cpu(optarg, &v) < 0)
                                return usage_error(
                                        "--cpus '%s': expected a number such as 2, 1.5 or 500m",
                                        optarg);
                        o.cpu_millis = v;
                        break;
                case O_PIDS: {
                        char *end;
                        errno = 0;
                        unsigned long long n = strtoull(optarg, &end, 10);
                        if (*end || errno || n == 0 || optarg[0] == '-')
                                return usage_error("--pids '%s': expected a positive integer",
                                                   optarg);
                        o.pids = n;
                        break;
                }
                case O_TIMEOUT:
                        if (aidp_profiles_parse_duration(optarg, &v) < 0 || v == 0)
                                return usage_error("--timeout '%s': expected a duration such as "
                                                   "90s, 2h, 1h30m",
                                                   optarg);
                        o.timeout_seconds = v;
                        break;
                case O_KILL_AFTER:
                        if (aidp_profiles_parse_duration(optarg, &v) < 0 || v == 0 || v > 3600)
                                return usage_error(
                                        "--kill-after '%s': expected a duration of 1s to 1h",
                                        optarg);
                        o.kill_after = (unsigned)v;
                        break;
                case O_TMP:
                        if (aidp_profiles_parse_size(optarg, &v) < 0 || v < 4096)
                                return usage_error("--tmp-size '%s': expected a size such as 256Mi",
                                                   optarg);
                        o.tmp_bytes = v;
                        break;
                case O_CWD: o.cwd = optarg; break;
                case O_NO_CWD: o.no_cwd = true; break;
                case O_ENV:
                        if (o.n_env_extra >= 256 || !*optarg || optarg[0] == '=')
                                return usage_error("--env '%s': expected NAME or NAME=VALUE",
                                                   optarg);
                        envs[o.n_env_extra++] = optarg;
                        break;
                case O_KEEP_ENV: o.keep_env = true; break;
                case O_CGPARENT: o.cgroup_parent = optarg; break;
                case O_RUN_ID: o.run_id = optarg; break;
                case O_RUN_DIR: o.run_dir = optarg; break;
                case O_SUMMARY: o.summary_path = optarg; break;
                case O_LINEAGE: o.lineage_path = optarg; break;
                case O_RO_BIND:
                case O_BIND: {
                        if (o.n_binds >= 64 || !*optarg || optarg[0] == ':')
                                return usage_error("%s '%s': expected SRC[:DST] (at most 64)",
                                                   c == O_BIND ? "--bind" : "--ro-bind", optarg);
                        char *colon = strchr(optarg, ':');
                        if (colon)
                                *colon = '\0';
                        binds[o.n_binds++] =
                                (struct aidp_run_bind){.source = optarg,
                                                       .target = colon ? colon + 1 : NULL,
                                                       .writable = c == O_BIND};
                        break;
                }
                case O_RLIMIT:
                        if (parse_rlimit(optarg, o.rlimits) < 0)
                                return usage_error(
                                        "--rlimit '%s': expected NAME=SOFT[:HARD] with NAME one of "
                                        "as, core, cpu, data, fsize, locks, memlock, msgqueue, "
                                        "nice, "
                                        "nofile, nproc, rss, rtprio, rttime, sigpending, stack and "
                                        "values such as 1024, 8Mi or unlimited (soft <= hard)",
                                        optarg);
                        break;
                case O_DATA:
                        if (o.n_data >= AIDP_RUN_MAX_DATA)
                                return usage_error("at most %d --data inputs", AIDP_RUN_MAX_DATA);
                        datas[o.n_data++] = optarg;
                        break;
                case O_OUTPUT_DIR: o.output_dir = optarg; break;
                case O_OUTPUT_KEY: o.output_key_id = optarg; break;
                case O_KEYS_CONFIG: o.keys_config = optarg; break;
                case O_KEY_DIR: o.key_dir = optarg; break;
                case 'q': o.quiet = true; break;
                case 'h': fputs(run_usage, stdout); return 0;
                case '?':
                default:
                        if (optopt)
                                return usage_error("unknown or incomplete option '-%c'", optopt);
                        return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
                }
        }
        o.env_extra = envs;
        o.binds = binds;
        o.data = datas;
        if (optind >= argc)
                return usage_error("%s", "no command given");
        o.argv = argv + optind;
        if (geteuid() != 0) {
                fprintf(stderr, "aidp-supervisor: error: must run as root (use aidp-run, which "
                                "calls it via sudo)\n");
                return AIDP_EXIT_USAGE;
        }
        aidp_error gerr = {0};
        aidp_run_gc(o.run_dir, gc_report, NULL, &gerr);

        struct aidp_run_result res;
        aidp_error err = {0};
        int rc = aidp_run_execute(&o, &res, &err);
        if (res.egress_unenforced && res.started)
                fprintf(stderr,
                        "aidp-supervisor: warning: the profile allows egress, which this version "
                        "does not enforce yet; the job had loopback only\n");
        if (rc < 0)
                fprintf(stderr, "aidp-supervisor: error: %s\n", err.msg);
        char cpu[32] = "unknown", mem[32] = "unknown";
        if (res.cpu_known)
                snprintf(cpu, sizeof cpu, "%.2fs", (double)res.cpu_usec / 1e6);
        if (res.memory_peak_known)
                snprintf(mem, sizeof mem, "%llu MiB",
                         (unsigned long long)(res.memory_peak_bytes >> 20));
        if (!o.quiet && res.started && res.resources_error[0])
                fprintf(stderr, "aidp-supervisor: warning: run usage unknown: %s\n",
                        res.resources_error);
        if (!o.quiet && res.started)
                fprintf(stderr,
                        "aidp-supervisor: run %s: exit %d, wall %.2fs, cpu %s, peak memory %s, "
                        "cgroup %s; shred: %llu files, %llu bytes, verified %s%s\n",
                        res.run_id, res.exit_status, res.wall_seconds, cpu, mem, res.cgroup_version,
                        (unsigned long long)res.shred.files, (unsigned long long)res.shred.bytes,
                        res.shred.verified ? "yes" : "NO",
                        res.noswap ? ""
                                   : "; tmpfs noswap unsupported by this kernel (data could reach "
                                     "swap)");
        if (!o.quiet) {
                for (size_t i = 0; i < res.n_inputs && res.started; i++)
                        fprintf(stderr, "aidp-supervisor: input %s %s (%s%s%s%s%s): %s\n",
                                res.inputs[i].name, res.inputs[i].version,
                                res.inputs[i].classification,
                                res.inputs[i].residency[0] ? "; " : "", res.inputs[i].residency,
                                res.inputs[i].regulation[0] ? "; " : "", res.inputs[i].regulation,
                                res.inputs[i].digest);
                if (res.has_output)
                        fprintf(stderr, "aidp-supervisor: output %s (%s%s%s%s%s): %s\n",
                                res.output.path, res.output.classification,
                                res.output.residency[0] ? "; " : "", res.output.residency,
                                res.output.regulation[0] ? "; " : "", res.output.regulation,
                                res.output.digest);
        }
        if (o.summary_path && res.run_id[0] && write_summary(o.summary_path, &res) < 0 &&
            res.exit_status == 0)
                return AIDP_EXIT_INTERNAL;
        return res.exit_status;
}

static int cmd_gc(int argc, char **argv)
{
        const char *dir = NULL;
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--run-dir") && i + 1 < argc)
                        dir = argv[++i];
                else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                        puts("usage: aidp-supervisor gc [--run-dir DIR]");
                        return 0;
                } else {
                        fprintf(stderr, "aidp-supervisor: error: gc: unknown argument '%s'\n",
                                argv[i]);
                        return AIDP_EXIT_USAGE;
                }
        }
        aidp_error err = {0};
        int n = aidp_run_gc(dir, gc_report, NULL, &err);
        if (n < 0)
                return aidp_cli_fail("aidp-supervisor", &err);
        printf("gc: %d run(s) cleaned\n", n);
        return 0;
}

int aidp_supervisor_main(int argc, char **argv)
{
        if (argc < 2) {
                fputs(main_usage, stderr);
                return AIDP_EXIT_USAGE;
        }
        const char *cmd = argv[1];
        if (!strcmp(cmd, "run"))
                return cmd_run(argc - 1, argv + 1);
        if (!strcmp(cmd, "gc"))
                return cmd_gc(argc - 1, argv + 1);
        if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
                puts("aidp-supervisor 0.1.0");
                return 0;
        }
        if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
                fputs(main_usage, stdout);
                return 0;
        }
        fprintf(stderr, "aidp-supervisor: error: unknown command '%s'\n%s", cmd, main_usage);
        return AIDP_EXIT_USAGE;
}
