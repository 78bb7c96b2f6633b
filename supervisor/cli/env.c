/* The one table of environment variables read by `aidp` and `aidp-supervisor`
 * (options.h), with the trust level a caller needs to set them. A root process
 * trusts no variable of a user caller, and the supervisor none of an admin's
 * either, since a scheduler may hand it a job's environment: configuration
 * (paths of the policy, profiles, lineage, keys, runs) is read only by the test
 * build (admins of the production binary use --lineage, --run-dir, ...), as
 * are the test hooks; AIDP_TIMING only prints (docs/security.md);
 * what a user may set is its own identity as sudo recorded it and what passes
 * into the job's environment (docs/security.md). */
#include <errno.h>
#include <string.h>

#include "common/exitcodes.h"
#include "supervisor/cli/options.h"

#define BOTH (AIDP_CLI_BIN_AIDP | AIDP_CLI_BIN_SUPERVISOR)
#define SUP  AIDP_CLI_BIN_SUPERVISOR
#define AIDP AIDP_CLI_BIN_AIDP

const struct aidp_cli_env aidp_cli_env_table[] = {
        /* configuration: where aidp finds what decides and records a run */
        {"AIDP_POLICY_DIR", false, BOTH, AIDP_TRUST_TEST_BUILD, "supervisor/run/policy_load.c",
         "policy directory instead of /etc/aidp"},
        {"AIDP_PROFILE_PATH", false, BOTH, AIDP_TRUST_TEST_BUILD, "supervisor/run/profile_env.c",
         "profile search path before the installed library"},
        {"AIDP_LINEAGE_FILE", false, BOTH, AIDP_TRUST_TEST_BUILD, "supervisor/lineage/lineage.c",
         "lineage log instead of /var/lib/aidp/lineage.jsonl"},
        {"AIDP_LINEAGE_KEY", false, BOTH, AIDP_TRUST_TEST_BUILD, "supervisor/lineage/lineage.c",
         "lineage HMAC key instead of /etc/aidp/lineage.key"},
        {"AIDP_SYSLOG_SOCKET", false, BOTH, AIDP_TRUST_TEST_BUILD, "supervisor/lineage/seclog.c",
         "syslog socket for security events instead of /dev/log"},
        {"AIDP_WITNESS_CONFIG", false, BOTH, AIDP_TRUST_TEST_BUILD, "supervisor/lineage/witness.c",
         "lineage witness configuration instead of /etc/aidp/witnesses.yaml"},
        {"AIDP_KEYS_CONFIG", false, BOTH, AIDP_TRUST_TEST_BUILD, "supervisor/sealed/keys.c",
         "key provider configuration instead of /etc/aidp/keys.yaml"},
        {"AIDP_KEY_DIR", false, BOTH, AIDP_TRUST_TEST_BUILD, "supervisor/sealed/keys.c",
         "file key provider directory instead of /etc/aidp/keys"},
        {"AIDP_NETWORK_CONFIG", false, SUP, AIDP_TRUST_TEST_BUILD, "supervisor/run/resolve.c",
         "egress host configuration instead of /etc/aidp/network.yaml"},
        {"AIDP_RUN_DIR", false, SUP, AIDP_TRUST_TEST_BUILD, "supervisor/run/journal.c",
         "run journals instead of /run/aidp (gc trusts what is there)"},
        {"LISTEN_PID", false, SUP, AIDP_TRUST_ADMIN, "supervisor/daemon/server.c",
         "socket activation: serve takes the listening socket systemd passed (fd 3)"},
        {"LISTEN_FDS", false, SUP, AIDP_TRUST_ADMIN, "supervisor/daemon/server.c",
         "socket activation, with LISTEN_PID"},
        {"AIDP_SOCKET", false, AIDP, AIDP_TRUST_USER, "supervisor/cli/cli_ps.c",
         "the daemon's socket for aidp ps/stop and aidp-run (a client's own choice)"},
        {"TZDIR", false, BOTH, AIDP_TRUST_ADMIN, "supervisor/run/policy_clock.c",
         "time zone data the access policy's time rules are judged with"},
        /* identity: who is asking */
        {"SUDO_UID", false, SUP, AIDP_TRUST_USER, "supervisor/run/caller.c",
         "the sudo caller's uid; counts only for the sudo entry point"},
        {"SUDO_GID", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c",
         "the sudo caller's gid, with SUDO_UID"},
        {"SUDO_USER", false, AIDP, AIDP_TRUST_USER, "supervisor/cli/cli_seal.c",
         "default owner of a sealed dataset"},
        {"SLURM_JOB_UID", false, SUP, AIDP_TRUST_ADMIN, "supervisor/run/caller.c",
         "the job's uid, passed by the scheduler's root component"},
        {"SLURM_JOB_GID", false, SUP, AIDP_TRUST_ADMIN, "supervisor/run/run.c",
         "the job's gid, with SLURM_JOB_UID"},
        {"SLURM_JOB_USER", false, SUP, AIDP_TRUST_ADMIN, "supervisor/run/caller.c",
         "the job's user name, checked against SLURM_JOB_UID"},
        {"SLURM_JOB_ID", false, SUP, AIDP_TRUST_ADMIN, "supervisor/run/run_lineage.c",
         "the scheduler job recorded in lineage"},
        {"SLURM_JOB_NAME", false, SUP, AIDP_TRUST_USER, "supervisor/cli/cli_supervisor.c",
         "passed to the job; names nothing (in exec-hook mode the job's --env value names "
         "the job in lineage)"},
        /* test hooks: the production binary must not honour them */
        {"AIDP_FAULT_", true, SUP, AIDP_TRUST_TEST_BUILD,
         "supervisor/run/run.c, lineage_commit.c, run_policy.c, sandbox/mask.c, hostsock.c, "
         "creds_names.c, zygote.c, cli_serve.c, cgroup_fs.c, cgroup.c, journal.c",
         "fault injection (AIDP_FAULT_STOP_AT, AIDP_FAULT_FAIL_AT, AIDP_FAULT_SYNC_DELAY_MS, "
         "AIDP_FAULT_MASK_CHILD, AIDP_FAULT_HOSTSOCK_GONE, AIDP_FAULT_CAP_LAST_CAP, "
         "AIDP_FAULT_ZYGOTE_ANSWER_LOST, AIDP_FAULT_ZYGOTE_BUILD_ID), the policy clock "
         "(AIDP_FAULT_CLOCK_OFFSET) and the daemon pool's quiet time "
         "(AIDP_FAULT_POOL_QUIET_MS)"},
        {"AIDP_TIMING", false, SUP, AIDP_TRUST_ADMIN, "supervisor/run/run.c",
         "per-phase start-up timing on stderr (scripts/bench-start)"},
        /* the job's environment: passed into the sandbox, never read otherwise */
        {"SLURM_", true, SUP, AIDP_TRUST_USER, "supervisor/run/run.c",
         "passed to the job (other SLURM_* variables)"},
        {"LC_", true, SUP, AIDP_TRUST_USER, "supervisor/run/run.c", "passed to the job"},
        {"PATH", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c",
         "passed to the job (a default when unset)"},
        {"TERM", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c", "passed to the job"},
        {"LANG", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c", "passed to the job"},
        {"TZ", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c", "passed to the job"},
        {"COLUMNS", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c", "passed to the job"},
        {"LINES", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c", "passed to the job"},
        {"CUDA_VISIBLE_DEVICES", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c",
         "passed to the job"},
        {"NVIDIA_VISIBLE_DEVICES", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c",
         "passed to the job"},
        {"OMP_NUM_THREADS", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c",
         "passed to the job"},
        {"PYTHONUNBUFFERED", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c",
         "passed to the job"},
        {"PYTHONHASHSEED", false, SUP, AIDP_TRUST_USER, "supervisor/run/run.c",
         "passed to the job"},
        {0},
};

static bool env_matches(const struct aidp_cli_env *e, const char *name, size_t len)
{
        size_t n = strlen(e->name);
        if (e->prefix)
                return len >= n && !strncmp(name, e->name, n);
        return len == n && !strncmp(name, e->name, n);
}

/* Exact entries win over prefixes (SLURM_JOB_UID over SLURM_). */
static const struct aidp_cli_env *find_len(const char *name, size_t len)
{
        const struct aidp_cli_env *prefix = NULL;
        for (const struct aidp_cli_env *e = aidp_cli_env_table; e->name; e++) {
                if (!env_matches(e, name, len))
                        continue;
                if (!e->prefix)
                        return e;
                if (!prefix || strlen(e->name) > strlen(prefix->name))
                        prefix = e;
        }
        return prefix;
}

const struct aidp_cli_env *aidp_cli_env_find(const char *name)
{
        return find_len(name, strlen(name));
}

int aidp_cli_check_env(char *const *envp, unsigned binary, enum aidp_caller_kind kind,
                       bool test_build, aidp_error *err)
{
        for (char *const *kv = envp; kv && *kv; kv++) {
                size_t len = strcspn(*kv, "=");
                const struct aidp_cli_env *e = find_len(*kv, len);
                if (!e || !(e->binaries & binary) ||
                    aidp_cli_trust_allows(e->trust, kind, test_build))
                        continue;
                return aidp_error_set(err, AIDP_EXIT_USAGE, EPERM,
                                      "environment variable %.*s is %s: %s", (int)len, *kv,
                                      e->trust == AIDP_TRUST_TEST_BUILD
                                              ? "a test hook (test build and admin only)"
                                              : "admin-only",
                                      e->help);
        }
        return 0;
}
