#pragma once
/* Subcommands of the `aidp` tool. Each returns an exit status (common/exitcodes.h)
 * and prints its own errors once, to stderr. One file per command family:
 * supervisor/cli_<name>.c. */
#include "supervisor/cli/options.h"

/* The `aidp` tool: dispatches to the commands below (supervisor/cli/cli_common.c). */
int aidp_cli_main(int argc, char **argv);

/* Print an aidp_error once, prefixed with the program name, and return its status;
 * a usage error (AIDP_EXIT_USAGE) gets the line pointing to PROG --help. */
struct aidp_error;
int aidp_cli_fail(const char *prog, const struct aidp_error *err);

/* supervisor/cli_lineage.c: aidp lineage verify|show|graph|export */
int aidp_cli_lineage(int argc, char **argv);
/* supervisor/cli_policy.c: aidp policy check|explain */
int aidp_cli_policy(int argc, char **argv);
/* supervisor/cli_profile.c: aidp profile list|check|explain|diff|learn */
int aidp_cli_profile(int argc, char **argv);
/* supervisor/cli/cli_profile_list.c: aidp profile list */
int aidp_cli_profile_list(int argc, char **argv);
/* supervisor/cli/cli_learn.c: aidp profile learn (runs aidp-supervisor learn) */
int aidp_cli_profile_learn(int argc, char **argv);
/* seal, unseal, inspect, keygen (supervisor/cli_seal.c); dispatches on argv[0]. */
int aidp_cli_seal(int argc, char **argv);
/* supervisor/cli/cli_client.c: aidp-run (a client of aidp-supervisor serve),
 * aidp ps, aidp stop */
int aidp_cli_run_client(int argc, char **argv);
/* A run request's "labels" (docs/protocol.md): what aidp-run's user typed
 * where the daemon's messages would name run's option, the only words a
 * daemon accepts besides run's own ("--output-dir", "--cwd"). */
#define AIDP_CLI_LABEL_OUT "--out"
#define AIDP_CLI_LABEL_CWD "the working directory"
int aidp_cli_ps(int argc, char **argv);
/* supervisor/cli/cli_ps.c: the daemon's socket (--socket, else $AIDP_SOCKET,
 * else /run/aidp/aidp.sock) and a connection to it (fd or -errno) */
const char *aidp_cli_daemon_socket(const char *opt);
int aidp_cli_daemon_connect(const char *path);
/* "PROG: error: cannot reach the aidp daemon at PATH" (r: connect's -errno)
 * and a hint: `systemctl start aidp.socket` for the default socket only. */
void aidp_cli_daemon_unreachable(const char *prog, const char *opt, int r);
int aidp_cli_stop(int argc, char **argv);
/* aidp logs [--follow] RUN: a detached run's output (docs/protocol.md). */
int aidp_cli_logs(int argc, char **argv);
/* Key memory for the whole process (supervisor/sealed/keymem.h): init before
 * OpenSSL starts (not dumpable, no core, allocator hooked), enable after. */
void aidp_cli_keymem_init(void);
void aidp_cli_keymem_enable(void);
/* detokenize (supervisor/cli/cli_detokenize.c): siv tokens back into values,
 * policy-checked and recorded in lineage. */
int aidp_cli_detokenize(int argc, char **argv);
/* keygen (supervisor/cli/cli_keygen.c): the key file and its purpose in keys.yaml. */
int aidp_cli_keygen(int argc, char **argv);
