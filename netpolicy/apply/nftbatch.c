/* nftables netlink batches (nftbatch.h): a growing buffer of messages between
 * a begin and an end marker, sent at once and acknowledged message by
 * message. */
#define _GNU_SOURCE
#include "netpolicy/apply/nftbatch.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/cleanup.h"

struct label {
        uint32_t seq;
        char what[64];
};

struct aidp_np_batch {
        char *buf;
        size_t len, cap, cur; /* cur: offset of the message being built */
        uint32_t seq;
        struct label *labels; /* one per acknowledged message */
        size_t n_labels, cap_labels;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mnl_socket *, mnl_socket_close)

struct aidp_np_batch *aidp_np_batch_new(void)
{
        struct aidp_np_batch *b = calloc(1, sizeof *b);
        if (b)
                b->seq = 1;
        return b;
}

void aidp_np_batch_free(struct aidp_np_batch *b)
{
        if (!b)
                return;
        free(b->buf);
        free(b->labels);
        free(b);
}

static int reserve(struct aidp_np_batch *b, size_t room)
{
        if (b->cap - b->len >= room)
                return 0;
        size_t cap = b->cap ? b->cap : 65536;
        while (cap - b->len < room)
                cap *= 2;
        char *p = realloc(b->buf, cap);
        if (!p)
                return -ENOMEM;
        /* Netlink attributes are padded; the padding must be zero. */
        memset(p + b->cap, 0, cap - b->cap);
        b->buf = p;
        b->cap = cap;
        return 0;
}

static int add_label(struct aidp_np_batch *b, uint32_t seq, const char *what)
{
        if (b->n_labels == b->cap_labels) {
                size_t cap = b->cap_labels ? b->cap_labels * 2 : 32;
                struct label *v = realloc(b->labels, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                b->labels = v;
                b->cap_labels = cap;
        }
        struct label *l = &b->labels[b->n_labels++];
        l->seq = seq;
        snprintf(l->what, sizeof l->what, "%s", what);
        return 0;
}

struct nlmsghdr *aidp_np_batch_msg(struct aidp_np_batch *b, uint16_t type, uint16_t flags,
                                   size_t room, const char *what)
{
        if (reserve(b, room + MNL_NLMSG_HDRLEN + 64) < 0 || add_label(b, b->seq, what) < 0)
                return NULL;
        b->cur = b->len;
        /* Every message is acknowledged, so that the reply says which one
         * the kernel refused and when the whole batch is done. */
        return nftnl_nlmsg_build_hdr(b->buf + b->len, type, NFPROTO_INET, flags | NLM_F_ACK,
                                     b->seq++);
}

void aidp_np_batch_msg_done(struct aidp_np_batch *b)
{
        const struct nlmsghdr *h = (const struct nlmsghdr *)(b->buf + b->cur);
        b->len += NLMSG_ALIGN(h->nlmsg_len);
}

static int marker(struct aidp_np_batch *b, bool begin)
{
        if (reserve(b, 256) < 0)
                return -ENOMEM;
        struct nlmsghdr *h = begin ? nftnl_batch_begin(b->buf + b->len, b->seq++)
                                   : nftnl_batch_end(b->buf + b->len, b->seq++);
        b->len += NLMSG_ALIGN(h->nlmsg_len);
        return 0;
}

int aidp_np_batch_open(struct aidp_np_batch *b)
{
        return marker(b, true);
}

int aidp_np_batch_close(struct aidp_np_batch *b)
{
        return marker(b, false);
}

static const char *label_of(const struct aidp_np_batch *b, uint32_t seq)
{
        for (size_t i = 0; i < b->n_labels; i++)
                if (b->labels[i].seq == seq)
                        return b->labels[i].what;
        return "a message";
}

static struct mnl_socket *open_nf(size_t sndbuf, aidp_error *err)
{
        struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
        if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                int e = errno;
                if (nl)
                        mnl_socket_close(nl);
                aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "netfilter netlink socket");
                return NULL;
        }
        int fd = mnl_socket_get_fd(nl), one = 1;
        /* Errors carry only the header of the refused message, not a copy of
         * a 30 KiB element list. */
        mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof one);
        /* The batch goes in one sendmsg: the send buffer must hold it (root
         * may exceed wmem_max, as nft itself does). */
        int size = sndbuf > (1u << 30) ? (1 << 30) : (int)sndbuf;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
                setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        struct timeval tv = {10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        return nl;
}

/* Read one acknowledgement per labelled message; the first error wins. */
static int read_acks(struct mnl_socket *nl, const struct aidp_np_batch *b, aidp_error *err)
{
        char buf[MNL_SOCKET_BUFFER_SIZE];
        size_t acked = 0;
        int first = 0;
        uint32_t first_seq = 0;
        while (acked < b->n_labels) {
                ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
                if (n < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                                "waiting for the kernel's answer to the ruleset");
                int left = (int)n;
                for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(h, left);
                     h = mnl_nlmsg_next(h, &left)) {
                        if (h->nlmsg_type != NLMSG_ERROR)
                                continue;
                        const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
                        acked++;
                        if (e->error && !first) {
                                first = e->error;
                                first_seq = h->nlmsg_seq;
                        }
                }
        }
        if (first)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -first,
                                        "loading the nftables ruleset: %s", label_of(b, first_seq));
        return 0;
}

int aidp_np_batch_send(const struct aidp_np_batch *b, aidp_error *err)
{
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = open_nf(b->len + 65536, err);
        if (!nl)
                return -EIO;
        if (mnl_socket_sendto(nl, b->buf, b->len) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "sending the nftables ruleset (%zu bytes)", b->len);
        return read_acks(nl, b, err);
}

int aidp_np_nft_delete_host(const char *run_id, aidp_error *err)
{
        if (!aidp_netpolicy_name_ok(run_id, 200))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "run id '%s' cannot name an nftables table",
                                      run_id ? run_id : "");
        char name[220];
        snprintf(name, sizeof name, "aidp-%s", run_id);
        struct aidp_np_batch *b = aidp_np_batch_new();
        struct nftnl_table *t = nftnl_table_alloc();
        int rc = b && t ? aidp_np_batch_open(b) : -ENOMEM;
        struct nlmsghdr *h = rc == 0 ? aidp_np_batch_msg(b, NFT_MSG_DELTABLE, 0, 512, name) : NULL;
        if (h) {
                nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
                nftnl_table_nlmsg_build_payload(h, t);
                aidp_np_batch_msg_done(b);
                rc = aidp_np_batch_close(b);
        } else if (rc == 0) {
                rc = -ENOMEM;
        }
        if (t)
                nftnl_table_free(t);
        if (rc == 0)
                rc = aidp_np_batch_send(b, err);
        else
                aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "deleting %s", name);
        aidp_np_batch_free(b);
        /* Only this run's table, by its name; gone already is fine. */
        if (rc == -ENOENT && err)
                aidp_error_clear(err);
        return rc == -ENOENT ? 0 : rc;
}
