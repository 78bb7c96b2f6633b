/* Adding addresses to a run's fqdn sets with libnftnl/libmnl: one netlink
 * batch per DNS answer, no ruleset text to parse, so the DNS proxy adds
 * little to a lookup (scripts/bench-egress). */
#include "netpolicy/apply/nftset.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct aidp_np_setconn {
        struct mnl_socket *nl;
        unsigned portid;
        uint32_t seq;
};

struct aidp_np_setconn *aidp_np_setconn_open(void)
{
        struct aidp_np_setconn *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        c->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
        if (!c->nl || mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                aidp_np_setconn_close(c);
                return NULL;
        }
        /* A lost answer must not stall the proxy. */
        struct timeval tv = {1, 0};
        setsockopt(mnl_socket_get_fd(c->nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        c->portid = mnl_socket_get_portid(c->nl);
        c->seq = (uint32_t)time(NULL);
        return c;
}

void aidp_np_setconn_close(struct aidp_np_setconn *c)
{
        if (!c)
                return;
        if (c->nl)
                mnl_socket_close(c->nl);
        free(c);
}

static struct nftnl_set *elem_set(const char *table, const char *set, const uint8_t *addr,
                                  size_t alen, uint64_t timeout_ms)
{
        struct nftnl_set *s = nftnl_set_alloc();
        struct nftnl_set_elem *e = nftnl_set_elem_alloc();
        if (!s || !e) {
                nftnl_set_free(s);
                nftnl_set_elem_free(e);
                return NULL;
        }
        nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
        nftnl_set_set_str(s, NFTNL_SET_NAME, set);
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, addr, (uint32_t)alen);
        if (timeout_ms)
                nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
        nftnl_set_elem_add(s, e);
        return s;
}

static int put_msg(struct mnl_nlmsg_batch *b, uint16_t type, uint16_t flags, uint32_t seq,
                   const struct aidp_np_set_op *op, bool with_timeout)
{
        struct nftnl_set *s =
                elem_set(op->table, op->set, op->addr, op->alen, with_timeout ? op->timeout_ms : 0);
        if (!s)
                return -ENOMEM;
        struct nlmsghdr *nlh =
                nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), type, NFPROTO_INET, flags, seq);
        nftnl_set_elems_nlmsg_build_payload(nlh, s);
        nftnl_set_free(s);
        mnl_nlmsg_batch_next(b);
        return 0;
}

/* Read until the batch's last message is acknowledged; the first error. */
static int wait_ack(struct aidp_np_setconn *c, uint32_t last)
{
        char buf[MNL_SOCKET_BUFFER_SIZE];
        int first = 0;
        for (;;) {
                ssize_t n = mnl_socket_recvfrom(c->nl, buf, sizeof buf);
                if (n < 0)
                        return first ? first : -errno;
                for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
                     mnl_nlmsg_ok(h, (int)n); h = mnl_nlmsg_next(h, (int *)&n)) {
                        if (h->nlmsg_type != NLMSG_ERROR)
                                continue;
                        const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
                        if (e->error && !first)
                                first = e->error;
                        if (h->nlmsg_seq == last)
                                return first;
                }
        }
}

static int send_batch(struct aidp_np_setconn *c, const struct aidp_np_set_op *ops, size_t n,
                      bool replace)
{
        /* Two messages per op at most, each well under 256 bytes. */
        size_t size = (n * 2 + 2) * 256 + MNL_SOCKET_BUFFER_SIZE;
        char *buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, size);
        nftnl_batch_begin(mnl_nlmsg_batch_current(b), c->seq++);
        mnl_nlmsg_batch_next(b);
        int rc = 0;
        uint32_t last = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
                /* Deleting first renews the timeout on kernels whose "add"
                 * leaves an existing element's expiry as it was. */
                if (replace && ops[i].live)
                        rc = put_msg(b, NFT_MSG_DELSETELEM, 0, c->seq++, &ops[i], false);
                last = c->seq;
                if (rc == 0)
                        rc = put_msg(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK, c->seq++,
                                     &ops[i], true);
        }
        nftnl_batch_end(mnl_nlmsg_batch_current(b), c->seq++);
        mnl_nlmsg_batch_next(b);
        if (rc == 0 &&
            mnl_socket_sendto(c->nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0)
                rc = -errno;
        mnl_nlmsg_batch_stop(b);
        free(buf);
        return rc < 0 ? rc : wait_ack(c, last);
}

int aidp_np_set_add(struct aidp_np_setconn *c, const struct aidp_np_set_op *ops, size_t n)
{
        if (n == 0)
                return 0;
        int rc = send_batch(c, ops, n, true);
        /* An element we thought live had expired meanwhile: the batch was
         * refused whole; add without deleting. */
        if (rc == -ENOENT)
                rc = send_batch(c, ops, n, false);
        return rc;
}

int aidp_np_setconn_fd(const struct aidp_np_setconn *c)
{
        return c ? mnl_socket_get_fd(c->nl) : -1;
}
