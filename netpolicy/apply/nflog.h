#pragma once
/* NFLOG denials (nflog.c); used by apply.c. */
#include "common/error.h"
#include "netpolicy/netpolicy.h"

struct nl_sock;

/* Bind group in the current namespace; messages are counted into d. */
struct nl_sock *aidp_np_nflog_open(unsigned group, struct aidp_np_denials *d, aidp_error *err);
/* Count every message queued now; 0, or a libnl error < 0. */
int aidp_np_nflog_drain(struct nl_sock *sk);
void aidp_np_nflog_close(struct nl_sock *sk);
