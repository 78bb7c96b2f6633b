#pragma once
/* A run's rulesets as nftables netlink batches built with libnftnl/libmnl
 * (nftbatch.c, nftrules.c): no ruleset text is parsed on the way to the
 * kernel, which was most of the time a large allowlist took through
 * libnftables (docs/egress.md, "Benchmark"). A batch is one transaction: the
 * kernel applies all of it or nothing. */
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "netpolicy/netpolicy.h"

struct aidp_np_batch;

/* The sandbox's table "aidp" and the host's table "aidp-<run id>", the same
 * rules netpolicy/render.c prints as text (a root test loads both ways and
 * compares the kernel's listings). */
int aidp_np_batch_sandbox(const struct aidp_netpolicy *np, const struct aidp_np_names *n,
                          struct aidp_np_batch **ret, aidp_error *err);
int aidp_np_batch_host(const struct aidp_netpolicy *np, const struct aidp_np_names *n,
                       struct aidp_np_batch **ret, aidp_error *err);

/* Send the batch over a fresh netfilter socket in the calling thread's
 * network namespace and wait for every acknowledgement. An error names the
 * object the kernel refused. */
int aidp_np_batch_send(const struct aidp_np_batch *b, aidp_error *err);
void aidp_np_batch_free(struct aidp_np_batch *b);

/* Delete table inet aidp-<run id>; 0 when it does not exist. Only that
 * table, by name: never a flush. */
int aidp_np_nft_delete_host(const char *run_id, aidp_error *err);

/* Building blocks shared by nftrules.c (not for other callers). */
struct nlmsghdr;
struct aidp_np_batch *aidp_np_batch_new(void);
/* Room for one message of up to `room` bytes; NULL when out of memory.
 * `what` names the object in errors ("set allow4_tcp"). */
struct nlmsghdr *aidp_np_batch_msg(struct aidp_np_batch *b, uint16_t type, uint16_t flags,
                                   size_t room, const char *what);
/* Close the message begun last (its length is final). */
void aidp_np_batch_msg_done(struct aidp_np_batch *b);
/* Begin and end markers around the messages. */
int aidp_np_batch_open(struct aidp_np_batch *b);
int aidp_np_batch_close(struct aidp_np_batch *b);
