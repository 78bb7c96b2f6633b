#pragma once
/* A run's egress network, step by step (docs/egress.md, docs/run-core.md):
 * resolve loads the host's network configuration and compiles the profile's
 * effective rules; prepare applies them once the sandbox's network
 * namespace exists and before the job is released; teardown reads the last
 * denials and removes what prepare made. Nothing happens for network: none. */
#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "netpolicy/apply/apply.h"
#include "profiles/profile.h"
#include "supervisor/run/journal.h"

/* Leases live beside the run journals; the dot keeps gc's journal scan off it. */
#define AIDP_RUN_LEASE_DIR ".leases"
/* the jobs' resolv.conf files, one per run id, root's 0700 */
#define AIDP_RUN_RESOLV_DIR ".resolv"

struct aidp_run_net {
        bool egress;
        struct aidp_netpolicy *plan;
        struct aidp_hostnet host;
        struct aidp_np_run *applied;
        struct aidp_np_denials denials; /* copied at teardown */
        /* The job's /etc/resolv.conf: a file written once the proxy's address
         * is known, and a detached mount of it for pid 1 (staged only). */
        bool staged;
        int resolv_fd, resolv_tree;
        char resolv_path[PATH_MAX]; /* <run dir>/.resolv/<run id>, unlinked at the end */
};

/* The host network configuration: $AIDP_NETWORK_CONFIG when root started the
 * supervisor directly (an admin), else /etc/aidp/network.yaml; root-owned. */
#define AIDP_NETWORK_CONFIG_ENV "AIDP_NETWORK_CONFIG"
/* hostnet_path NULL = /etc/aidp/network.yaml (root-owned). */
int aidp_run_net_resolve(struct aidp_run_net *n, const struct aidp_profile *p,
                         const char *hostnet_path, aidp_error *err);
/* Before pid 1 exists: the file that becomes the job's /etc/resolv.conf
 * (created in run_base, cloned as a detached mount, unlinked). */
int aidp_run_net_stage(struct aidp_run_net *n, const char *run_base, const char *run_id,
                       aidp_error *err);
/* The detached mount for pid 1's spec, or -1. */
int aidp_run_net_resolv_tree(const struct aidp_run_net *n);
/* Journal first (gc then knows to look), then apply into pid's namespace. */
int aidp_run_net_prepare(struct aidp_run_net *n, struct aidp_journal *j, const char *run_base,
                         const char *run_id, pid_t pid, aidp_error *err);
/* The NFLOG fd to poll while the job runs (-1: none), and reading it. */
int aidp_run_net_fd(const struct aidp_run_net *n);
void aidp_run_net_drain(struct aidp_run_net *n);
int aidp_run_net_teardown(struct aidp_run_net *n, aidp_error *err);
void aidp_run_net_free(struct aidp_run_net *n);
/* gc of a dead run whose journal names a network. */
int aidp_run_net_gc(const char *run_base, const char *run_id, aidp_error *err);
