#pragma once
/* Elements with timeouts in a run's fqdn sets (nftset.c), through
 * libnftnl/libmnl. A connection is a netfilter netlink socket bound to the
 * network namespace it was opened in. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aidp_np_setconn;

struct aidp_np_set_op {
        const char *table; /* "aidp" or "aidp-<run id>", family inet */
        const char *set;   /* "fqdn4_0" ... */
        uint8_t addr[16];
        size_t alen; /* 4 or 16 */
        uint64_t timeout_ms;
        bool live; /* added before and not yet expired: renew it */
};

struct aidp_np_setconn *aidp_np_setconn_open(void);
void aidp_np_setconn_close(struct aidp_np_setconn *c);
/* All ops in one transaction. 0 or -errno. */
int aidp_np_set_add(struct aidp_np_setconn *c, const struct aidp_np_set_op *ops, size_t n);
/* The netlink socket's fd (to keep it across close_range). */
int aidp_np_setconn_fd(const struct aidp_np_setconn *c);
