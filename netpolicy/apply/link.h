#pragma once
/* veth, addresses and routes (link.c); used by apply.c. */
#include <stdbool.h>

#include "common/error.h"
#include "netpolicy/hostnet.h"

/* A veth pair host_if <-> sandbox_if, the latter created in netns_fd. */
int aidp_np_link_create(const char *host_if, const char *sandbox_if, int netns_fd, aidp_error *err);
/* Delete host_if (rollback of a failed apply); 0 when it is gone already. */
int aidp_np_link_delete(const char *host_if);
/* Bring ifname up with the lease's addresses of its end; the sandbox end also
 * gets default routes via the host end. Runs in the current namespace. */
int aidp_np_link_setup(const char *ifname, const struct aidp_hostnet_lease *l, bool sandbox_end,
                       aidp_error *err);
/* Wait up to timeout_ms for host_if to vanish (its namespace is being freed),
 * then delete it. 0 once it is gone. */
int aidp_np_link_gone(const char *host_if, int timeout_ms);
