/* Denials as the kernel reports them: an NFLOG socket bound, inside the run's
 * namespace, to the group its ruleset logs to (libnl-nf). */
#include <errno.h>
#include <netlink/netfilter/log.h>
#include <netlink/netfilter/log_msg.h>
#include <netlink/netfilter/nfnl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include "netpolicy/apply/nflog.h"

static void on_object(struct nl_object *obj, void *arg)
{
        int len = 0;
        const void *p = nfnl_log_msg_get_payload((struct nfnl_log_msg *)obj, &len);
        if (p && len > 0)
                aidp_netpolicy_denial_add(arg, p, (size_t)len);
        else
                aidp_netpolicy_denial_add(arg, NULL, 0);
}

static int on_msg(struct nl_msg *msg, void *arg)
{
        nl_msg_parse(msg, on_object, arg);
        return NL_OK;
}

struct nl_sock *aidp_np_nflog_open(unsigned group, struct aidp_np_denials *d, aidp_error *err)
{
        struct nl_sock *sk = nl_socket_alloc();
        struct nfnl_log *log = nfnl_log_alloc();
        int rc = -NLE_NOMEM;
        if (!sk || !log)
                goto fail;
        if ((rc = nfnl_connect(sk)) < 0)
                goto fail;
        /* Room for a burst of denials between two reads; beyond it the kernel
         * drops log messages (never packets) and the count is a lower bound. */
        nl_socket_set_buffer_size(sk, 1 << 20, 0);
        nfnl_log_set_group(log, (uint16_t)group);
        /* The headers are enough to name destination, port and protocol. */
        nfnl_log_set_copy_mode(log, NFNL_LOG_COPY_PACKET);
        nfnl_log_set_copy_range(log, 64);
        /* One message per packet, at once: the kernel's default batches up
         * to 100 for a second, and a batch pending when the run ends would be
         * lost with the socket. Denials are few by design. */
        nfnl_log_set_queue_threshold(log, 1);
        nfnl_log_set_flush_timeout(log, 1);
        if ((rc = nfnl_log_create(sk, log)) < 0)
                goto fail;
        nfnl_log_put(log);
        nl_socket_disable_seq_check(sk);
        nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_msg, d);
        nl_socket_set_nonblocking(sk);
        return sk;
fail:
        aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "binding NFLOG group %u: %s", group,
                       nl_geterror(rc));
        if (log)
                nfnl_log_put(log);
        nl_socket_free(sk);
        return NULL;
}

int aidp_np_nflog_drain(struct nl_sock *sk)
{
        struct nl_cb *cb = nl_socket_get_cb(sk);
        int rc = 0;
        /* Non-blocking: a read reports how many messages it parsed, 0 once
         * nothing is queued. ENOBUFS (the queue overflowed) is not an end; the
         * next read goes on with what is left. */
        for (int i = 0; i < 100000; i++) {
                rc = nl_recvmsgs_report(sk, cb);
                if (rc == -NLE_NOMEM)
                        continue;
                if (rc <= 0)
                        break;
        }
        nl_cb_put(cb);
        return rc == -NLE_AGAIN || rc > 0 ? 0 : rc;
}

void aidp_np_nflog_close(struct nl_sock *sk)
{
        nl_socket_free(sk);
}
