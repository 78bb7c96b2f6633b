#pragma once
/* The egress apply layer (docs/egress.md): turns a compiled plan into a
 * veth pair (libnl-route), a lease of addresses, two nftables rulesets
 * (libnftnl netlink batches, nftbatch.h) and an NFLOG socket for denials (libnl-nf). Root only.
 *
 * Everything it creates is named after the run or its lease and is the only
 * thing it ever removes: the host table aidp-<run-id>, the link aidph<lease>,
 * the lease file <lease_dir>/<lease>. The sandbox end of the veth lives in the
 * run's namespace and goes with it. */
#include <stdbool.h>

#include "common/error.h"
#include "netpolicy/hostnet.h"
#include "netpolicy/netpolicy.h"

#define AIDP_NP_SANDBOX_IF  "eth0" /* the sandbox end, inside the run's namespace */
#define AIDP_NP_NFLOG_GROUP 1      /* NFLOG groups are per namespace: no clash */

struct aidp_np_run;

/* Lease an address block, make the veth with one end in netns_fd (the run's
 * network namespace), address and route both ends, load the sandbox ruleset
 * inside the namespace and the host table here, and open the NFLOG socket in
 * the namespace. All or nothing: on failure what was made is removed. */
int aidp_netpolicy_apply(const struct aidp_netpolicy *np, const struct aidp_hostnet *hn,
                         const char *lease_dir, const char *run_id, int netns_fd,
                         struct aidp_np_run **ret, aidp_error *err);

const struct aidp_hostnet_lease *aidp_netpolicy_run_lease(const struct aidp_np_run *r);
const char *aidp_netpolicy_run_host_if(const struct aidp_np_run *r);
/* The address of the run's DNS proxy (its only resolver), NULL without one. */
const char *aidp_netpolicy_run_resolver(const struct aidp_np_run *r);
/* The NFLOG socket to poll for denials (-1 if none), and reading what is queued. */
int aidp_netpolicy_nflog_fd(const struct aidp_np_run *r);
int aidp_netpolicy_drain(struct aidp_np_run *r);
const struct aidp_np_denials *aidp_netpolicy_denials(const struct aidp_np_run *r);

/* Stop the run's DNS proxy (if any) and add what it refused to the denials.
 * Teardown does it too; call it first to read the denials before teardown. */
void aidp_netpolicy_dns_stop(struct aidp_np_run *r);
/* After the job: read the last denials, remove the host table, release the
 * lease, free r. The veth goes with the namespace. Returns < 0 if something
 * could not be removed (it stays for gc), r is freed anyway. */
int aidp_netpolicy_teardown(struct aidp_np_run *r, aidp_error *err);

/* gc of a run whose supervisor died: remove its host table if present and
 * release every lease that names it. */
int aidp_netpolicy_gc(const char *lease_dir, const char *run_id, aidp_error *err);

/* Lease files (lease.c). */
int aidp_np_lease_acquire(const char *lease_dir, const char *run_id, unsigned slots, unsigned *ret,
                          aidp_error *err);
int aidp_np_lease_release(const char *lease_dir, const char *run_id, unsigned index);
/* Release every lease naming run_id; before(index) runs ahead of each. */
int aidp_np_lease_release_run(const char *lease_dir, const char *run_id,
                              void (*before)(unsigned index, const char *run_id), aidp_error *err);

/* Run fn in the network namespace netns_fd on this thread, then come back. */
int aidp_np_in_netns(int netns_fd, int (*fn)(void *ctx, aidp_error *err), void *ctx,
                     aidp_error *err);
