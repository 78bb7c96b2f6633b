/* A compiled plan -> the run's two tables as libnftnl objects in one netlink
 * batch each (nftbatch.h). Rule for rule the same as netpolicy/render.c's
 * text, expression for expression what nft 1.0 makes of that text, so that
 * `nft list` shows the same ruleset either way (tests/priv/test_egress_nft.c
 * loads both and compares). The allow sets' elements are written straight
 * as netlink attributes: 10,000 of them take a few milliseconds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "netpolicy/apply/nftbatch.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set *, nftnl_set_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_chain *, nftnl_chain_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_table *, nftnl_table_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_udata_buf *, nftnl_udata_buf_free)

/* nft's datatype ids and set user data (nftables src/datatype.h, mnl.c):
 * the listing reads the key's type and byte order back from them. */
enum { TYPE_IPADDR = 7, TYPE_IP6ADDR = 8, TYPE_INET_SERVICE = 13, TYPE_ICMP6_TYPE = 29 };
enum { BYTEORDER_BIG_ENDIAN = 2, EXPR_PAYLOAD = 7, EXPR_CONCAT = 13 };
enum { TYPEOF_EXPR = 0, TYPEOF_DATA = 1, TYPEOF_PAYLOAD_DESC = 0, TYPEOF_PAYLOAD_TYPE = 1 };
enum { PROTO_ICMP6 = 14, ICMP6HDR_TYPE = 1 };
#define CONCAT_TYPE(a, b) ((a) << 6 | (b))
/* Every network namespace's loopback device has index 1. */
#define LOOPBACK_IFINDEX 1u
#define ELEMS_PER_MSG    512 /* a message's element list stays under 64 KiB */

static const char *const set_name[AIDP_NP_FAMILY_MAX][AIDP_NP_PROTO_MAX] = {
        {"allow4_tcp", "allow4_udp"},
        {"allow6_tcp", "allow6_udp"},
};
static const uint8_t l4num[AIDP_NP_PROTO_MAX] = {IPPROTO_TCP, IPPROTO_UDP};
static const uint8_t nfproto[AIDP_NP_FAMILY_MAX] = {NFPROTO_IPV4, NFPROTO_IPV6};
static const uint32_t daddr_off[AIDP_NP_FAMILY_MAX] = {16, 24}, saddr_off[] = {12, 8};
static const uint32_t alen[AIDP_NP_FAMILY_MAX] = {4, 16};

struct bld {
        struct aidp_np_batch *b;
        const struct aidp_netpolicy *np;
        const struct aidp_np_names *n;
        char table[220];
        uint32_t set_id;
        uint32_t ids[AIDP_NP_FAMILY_MAX][AIDP_NP_PROTO_MAX]; /* allow sets */
        uint32_t *fqdn_ids;                                  /* [2 * i + family] */
};

/* ---- expressions --------------------------------------------------------- */

static struct nftnl_expr *expr(struct nftnl_rule *r, const char *name)
{
        struct nftnl_expr *e = nftnl_expr_alloc(name);
        if (e)
                nftnl_rule_add_expr(r, e);
        return e;
}

static int meta(struct nftnl_rule *r, uint32_t key)
{
        struct nftnl_expr *e = expr(r, "meta");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
        return 0;
}

static int cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
        struct nftnl_expr *e = expr(r, "cmp");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
        return 0;
}

static int meta_is(struct nftnl_rule *r, uint32_t key, uint8_t v)
{
        return meta(r, key) < 0 ? -ENOMEM : cmp(r, NFT_CMP_EQ, &v, 1);
}

static int payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len, uint32_t dreg)
{
        struct nftnl_expr *e = expr(r, "payload");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
        return 0;
}

static int lookup(struct nftnl_rule *r, const char *set, uint32_t id)
{
        struct nftnl_expr *e = expr(r, "lookup");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, id);
        return 0;
}

static int verdict(struct nftnl_rule *r, int v, const char *chain)
{
        struct nftnl_expr *e = expr(r, "immediate");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)v);
        if (chain)
                nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
        return 0;
}

/* iifname/oifname "name" (16 bytes, zero-padded), eq or neq. */
static int ifname_is(struct nftnl_rule *r, uint32_t key, const char *name, uint32_t op)
{
        char v[IFNAMSIZ] = {0};
        snprintf(v, sizeof v, "%s", name);
        return meta(r, key) < 0 ? -ENOMEM : cmp(r, op, v, sizeof v);
}

/* ct state established,related */
static int ct_est(struct nftnl_rule *r)
{
        struct nftnl_expr *ct = expr(r, "ct");
        if (!ct)
                return -ENOMEM;
        nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
        nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
        struct nftnl_expr *bw = expr(r, "bitwise");
        if (!bw)
                return -ENOMEM;
        uint32_t mask = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED), z = 0;
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_LEN, 4);
        nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
        nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_XOR, &z, 4);
        return cmp(r, NFT_CMP_NEQ, &z, 4);
}

/* th dport PORT or LO-HI (big endian, compared as bytes). */
static int dport(struct nftnl_rule *r, struct aidp_np_ports p)
{
        uint16_t lo = htons(p.lo), hi = htons(p.hi);
        if (payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1) < 0)
                return -ENOMEM;
        if (p.lo == p.hi)
                return cmp(r, NFT_CMP_EQ, &lo, 2);
        return cmp(r, NFT_CMP_GTE, &lo, 2) < 0 ? -ENOMEM : cmp(r, NFT_CMP_LTE, &hi, 2);
}

static int reject(struct nftnl_rule *r, uint32_t type, uint8_t code)
{
        struct nftnl_expr *e = expr(r, "reject");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, type);
        nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, code);
        return 0;
}

static int counter(struct nftnl_rule *r)
{
        struct nftnl_expr *e = expr(r, "counter");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_PACKETS, 0);
        nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_BYTES, 0);
        return 0;
}

/* ---- objects ------------------------------------------------------------- */

static int put_rule(struct bld *B, struct nftnl_rule *r, const char *chain)
{
        char what[64];
        snprintf(what, sizeof what, "a rule of chain %s", chain);
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, B->table);
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
        struct nlmsghdr *h =
                aidp_np_batch_msg(B->b, NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE, 4096, what);
        if (!h)
                return -ENOMEM;
        nftnl_rule_nlmsg_build_payload(h, r);
        aidp_np_batch_msg_done(B->b);
        return 0;
}

static struct nftnl_rule *rule_new(void)
{
        return nftnl_rule_alloc();
}

static int put_chain(struct bld *B, const char *name, const char *type, int hook, int prio,
                     int policy)
{
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        if (!c)
                return -ENOMEM;
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, B->table);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        if (type) {
                nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
                nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
                nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
                nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, (uint32_t)policy);
        }
        char what[64];
        snprintf(what, sizeof what, "chain %s", name);
        struct nlmsghdr *h = aidp_np_batch_msg(B->b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, 1024, what);
        if (!h)
                return -ENOMEM;
        nftnl_chain_nlmsg_build_payload(h, c);
        aidp_np_batch_msg_done(B->b);
        return 0;
}

static int put_table(struct bld *B)
{
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();
        if (!t)
                return -ENOMEM;
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, B->table);
        nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
        char what[240];
        snprintf(what, sizeof what, "table %s", B->table);
        /* EXCL: a table of this name left by anyone is an error, never
         * something to add our rules to. */
        struct nlmsghdr *h =
                aidp_np_batch_msg(B->b, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, 512, what);
        if (!h)
                return -ENOMEM;
        nftnl_table_nlmsg_build_payload(h, t);
        aidp_np_batch_msg_done(B->b);
        return 0;
}

/* The set's user data as nft writes it: key byte order, and for the typed
 * keys nft declares with typeof-style data, that expression. */
enum set_kind { SET_ALLOW, SET_FQDN, SET_ND };

static int set_udata(struct nftnl_set *s, enum set_kind kind)
{
        _cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(256);
        if (!u)
                return -ENOMEM;
        nftnl_udata_put_u32(u, NFTNL_UDATA_SET_KEYBYTEORDER,
                            kind == SET_ALLOW ? 0 : BYTEORDER_BIG_ENDIAN);
        if (kind != SET_FQDN) {
                struct nftnl_udata *t = nftnl_udata_nest_start(u, NFTNL_UDATA_SET_KEY_TYPEOF);
                nftnl_udata_put_u32(u, TYPEOF_EXPR, kind == SET_ALLOW ? EXPR_CONCAT : EXPR_PAYLOAD);
                struct nftnl_udata *d = nftnl_udata_nest_start(u, TYPEOF_DATA);
                if (kind == SET_ND) {
                        nftnl_udata_put_u32(u, TYPEOF_PAYLOAD_DESC, PROTO_ICMP6);
                        nftnl_udata_put_u32(u, TYPEOF_PAYLOAD_TYPE, ICMP6HDR_TYPE);
                }
                nftnl_udata_nest_end(u, d);
                nftnl_udata_nest_end(u, t);
        }
        nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
        return 0;
}

static int put_set(struct bld *B, const char *name, uint32_t flags, uint32_t key_type,
                   uint32_t key_len, enum set_kind kind, uint32_t *ret_id)
{
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
        if (!s)
                return -ENOMEM;
        uint32_t id = ++B->set_id;
        nftnl_set_set_str(s, NFTNL_SET_TABLE, B->table);
        nftnl_set_set_str(s, NFTNL_SET_NAME, name);
        nftnl_set_set_u32(s, NFTNL_SET_FLAGS, flags);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, key_len);
        nftnl_set_set_u32(s, NFTNL_SET_ID, id);
        if (kind == SET_ALLOW) {
                uint8_t fields[NFT_REG32_COUNT] = {(uint8_t)(key_len - 4), 2};
                nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, fields, sizeof fields);
        }
        if (kind == SET_ND)
                nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, 3);
        if (set_udata(s, kind) < 0)
                return -ENOMEM;
        char what[64];
        snprintf(what, sizeof what, "set %s", name);
        struct nlmsghdr *h = aidp_np_batch_msg(B->b, NFT_MSG_NEWSET, NLM_F_CREATE, 1024, what);
        if (!h)
                return -ENOMEM;
        nftnl_set_nlmsg_build_payload(h, s);
        aidp_np_batch_msg_done(B->b);
        *ret_id = id;
        return 0;
}

/* The elements of one message: set name and id, then the list. */
static struct nlmsghdr *elems_msg(struct bld *B, const char *set, uint32_t id, size_t room,
                                  struct nlattr **list)
{
        char what[64];
        snprintf(what, sizeof what, "elements of set %s", set);
        struct nlmsghdr *h = aidp_np_batch_msg(B->b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, room, what);
        if (!h)
                return NULL;
        mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_TABLE, B->table);
        mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_SET, set);
        mnl_attr_put_u32(h, NFTA_SET_ELEM_LIST_SET_ID, htonl(id));
        *list = mnl_attr_nest_start(h, NFTA_SET_ELEM_LIST_ELEMENTS);
        return h;
}

static void put_key(struct nlmsghdr *h, uint16_t type, const void *v, size_t len)
{
        struct nlattr *k = mnl_attr_nest_start(h, type);
        mnl_attr_put(h, NFTA_DATA_VALUE, len, v);
        mnl_attr_nest_end(h, k);
}

/* "address . port" ranges, [lo . plo, hi . phi], in chunks of ELEMS_PER_MSG. */
static int put_allow_elems(struct bld *B, int fam, int p)
{
        const struct aidp_np_set *s = &B->np->sets[fam][p];
        size_t alen_f = alen[fam], klen = alen_f + 4, in_msg = 0;
        struct nlmsghdr *h = NULL;
        struct nlattr *list = NULL;
        for (size_t i = 0; i < s->n_ranges; i++) {
                const struct aidp_np_range *r = &s->ranges[i];
                for (size_t k = 0; k < r->n_ports; k++) {
                        if (!h && !(h = elems_msg(B, set_name[fam][p], B->ids[fam][p],
                                                  ELEMS_PER_MSG * (klen * 2 + 32), &list)))
                                return -ENOMEM;
                        uint8_t lo[20] = {0}, hi[20] = {0};
                        uint16_t plo = htons(r->ports[k].lo), phi = htons(r->ports[k].hi);
                        memcpy(lo, r->lo, alen_f);
                        memcpy(lo + alen_f, &plo, 2);
                        memcpy(hi, r->hi, alen_f);
                        memcpy(hi + alen_f, &phi, 2);
                        struct nlattr *e = mnl_attr_nest_start(h, NFTA_LIST_ELEM);
                        put_key(h, NFTA_SET_ELEM_KEY, lo, klen);
                        put_key(h, NFTA_SET_ELEM_KEY_END, hi, klen);
                        mnl_attr_nest_end(h, e);
                        if (++in_msg == ELEMS_PER_MSG) {
                                mnl_attr_nest_end(h, list);
                                aidp_np_batch_msg_done(B->b);
                                h = NULL;
                                in_msg = 0;
                        }
                }
        }
        if (h) {
                mnl_attr_nest_end(h, list);
                aidp_np_batch_msg_done(B->b);
        }
        return 0;
}

static int put_sets(struct bld *B)
{
        for (int fam = 0; fam < AIDP_NP_FAMILY_MAX; fam++) {
                uint32_t atype = fam == AIDP_NP_V4 ? TYPE_IPADDR : TYPE_IP6ADDR;
                for (int p = 0; p < AIDP_NP_PROTO_MAX; p++) {
                        if (!B->np->sets[fam][p].n_ranges)
                                continue;
                        if (put_set(B, set_name[fam][p], NFT_SET_INTERVAL | NFT_SET_CONCAT,
                                    CONCAT_TYPE(atype, TYPE_INET_SERVICE), alen[fam] + 4, SET_ALLOW,
                                    &B->ids[fam][p]) < 0 ||
                            put_allow_elems(B, fam, p) < 0)
                                return -ENOMEM;
                }
        }
        /* Filled at run time by the DNS proxy, each address with its TTL. */
        for (size_t i = 0; i < B->np->n_fqdns; i++) {
                for (int fam = 0; fam < AIDP_NP_FAMILY_MAX; fam++) {
                        char name[32];
                        snprintf(name, sizeof name, AIDP_NP_FQDN_SET_FMT, fam == AIDP_NP_V4 ? 4 : 6,
                                 i);
                        if (put_set(B, name, NFT_SET_TIMEOUT,
                                    fam == AIDP_NP_V4 ? TYPE_IPADDR : TYPE_IP6ADDR, alen[fam],
                                    SET_FQDN, &B->fqdn_ids[2 * i + (size_t)fam]) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

/* icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit }:
 * an anonymous constant set, as nft makes it. */
static int nd_set(struct bld *B, uint32_t *ret_id)
{
        if (put_set(B, "__set%d", NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, TYPE_ICMP6_TYPE, 1, SET_ND,
                    ret_id) < 0)
                return -ENOMEM;
        struct nlattr *list;
        struct nlmsghdr *h = elems_msg(B, "__set%d", *ret_id, 512, &list);
        if (!h)
                return -ENOMEM;
        static const uint8_t types[] = {135, 136, 133};
        for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
                struct nlattr *e = mnl_attr_nest_start(h, NFTA_LIST_ELEM);
                put_key(h, NFTA_SET_ELEM_KEY, &types[i], 1);
                mnl_attr_nest_end(h, e);
        }
        mnl_attr_nest_end(h, list);
        aidp_np_batch_msg_done(B->b);
        return 0;
}

/* ---- rules --------------------------------------------------------------- */

/* Each rule may start with "iifname <host_if>" (host input chain). */
static int start(struct nftnl_rule *r, const char *iif)
{
        return iif ? ifname_is(r, NFT_META_IIFNAME, iif, NFT_CMP_EQ) : 0;
}

static int rule_nd(struct bld *B, const char *chain, const char *iif)
{
        uint32_t id;
        if (nd_set(B, &id) < 0)
                return -ENOMEM;
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = rule_new();
        if (!r || start(r, iif) < 0 || meta_is(r, NFT_META_NFPROTO, NFPROTO_IPV6) < 0 ||
            meta_is(r, NFT_META_L4PROTO, IPPROTO_ICMPV6) < 0 ||
            payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1) < 0 ||
            lookup(r, "__set%d", id) < 0 || verdict(r, NF_ACCEPT, NULL) < 0)
                return -ENOMEM;
        return put_rule(B, r, chain);
}

/* ip daddr <proxy> tcp|udp dport 53 accept */
static int rules_proxy(struct bld *B, const char *chain, const char *iif)
{
        if (!B->n->proxy_v4)
                return 0;
        struct in_addr a;
        if (inet_pton(AF_INET, B->n->proxy_v4, &a) != 1)
                return -EINVAL;
        for (int p = 0; p < AIDP_NP_PROTO_MAX; p++) {
                _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = rule_new();
                if (!r || start(r, iif) < 0 || meta_is(r, NFT_META_NFPROTO, NFPROTO_IPV4) < 0 ||
                    payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1) < 0 ||
                    cmp(r, NFT_CMP_EQ, &a, 4) < 0 || meta_is(r, NFT_META_L4PROTO, l4num[p]) < 0 ||
                    dport(r, (struct aidp_np_ports){53, 53}) < 0 ||
                    verdict(r, NF_ACCEPT, NULL) < 0 || put_rule(B, r, chain) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* ip daddr . tcp dport @allow4_tcp accept, ...; then the fqdn sets. */
static int rules_accept(struct bld *B, const char *chain)
{
        for (int fam = 0; fam < AIDP_NP_FAMILY_MAX; fam++) {
                for (int p = 0; p < AIDP_NP_PROTO_MAX; p++) {
                        if (!B->np->sets[fam][p].n_ranges)
                                continue;
                        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = rule_new();
                        /* The port goes right after the address: register 9
                         * is the second 32-bit word, register 2 the fifth. */
                        uint32_t preg = fam == AIDP_NP_V4 ? NFT_REG32_01 : NFT_REG_2;
                        if (!r || meta_is(r, NFT_META_NFPROTO, nfproto[fam]) < 0 ||
                            meta_is(r, NFT_META_L4PROTO, l4num[p]) < 0 ||
                            payload(r, NFT_PAYLOAD_NETWORK_HEADER, daddr_off[fam], alen[fam],
                                    NFT_REG_1) < 0 ||
                            payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, preg) < 0 ||
                            lookup(r, set_name[fam][p], B->ids[fam][p]) < 0 ||
                            verdict(r, NF_ACCEPT, NULL) < 0 || put_rule(B, r, chain) < 0)
                                return -ENOMEM;
                }
        }
        for (size_t i = 0; i < B->np->n_fqdns; i++) {
                const struct aidp_np_fqdn *q = &B->np->fqdns[i];
                for (int fam = 0; fam < AIDP_NP_FAMILY_MAX; fam++) {
                        char name[32];
                        snprintf(name, sizeof name, AIDP_NP_FQDN_SET_FMT, fam == AIDP_NP_V4 ? 4 : 6,
                                 i);
                        for (int p = 0; p < AIDP_NP_PROTO_MAX; p++) {
                                if (!q->proto[p])
                                        continue;
                                _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = rule_new();
                                if (!r || meta_is(r, NFT_META_NFPROTO, nfproto[fam]) < 0 ||
                                    payload(r, NFT_PAYLOAD_NETWORK_HEADER, daddr_off[fam],
                                            alen[fam], NFT_REG_1) < 0 ||
                                    lookup(r, name, B->fqdn_ids[2 * i + (size_t)fam]) < 0 ||
                                    meta_is(r, NFT_META_L4PROTO, l4num[p]) < 0 ||
                                    dport(r, q->ports) < 0 || verdict(r, NF_ACCEPT, NULL) < 0 ||
                                    put_rule(B, r, chain) < 0)
                                        return -ENOMEM;
                        }
                }
        }
        return 0;
}

/* Fast failure: a reset for TCP, administratively prohibited for the rest. */
static int rules_reject(struct bld *B, const char *chain)
{
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *t = rule_new();
        if (!t || meta_is(t, NFT_META_L4PROTO, IPPROTO_TCP) < 0 ||
            reject(t, NFT_REJECT_TCP_RST, 0) < 0 || put_rule(B, t, chain) < 0)
                return -ENOMEM;
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *x = rule_new();
        if (!x || reject(x, NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_ADMIN_PROHIBITED) < 0)
                return -ENOMEM;
        return put_rule(B, x, chain);
}

static int simple(struct bld *B, const char *chain, int (*body)(struct nftnl_rule *r, void *arg),
                  void *arg)
{
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = rule_new();
        if (!r || body(r, arg) < 0)
                return -ENOMEM;
        return put_rule(B, r, chain);
}

static int body_lo(struct nftnl_rule *r, void *arg)
{
        (void)arg;
        uint32_t lo = LOOPBACK_IFINDEX;
        return meta(r, NFT_META_OIF) < 0 || cmp(r, NFT_CMP_EQ, &lo, 4) < 0
                       ? -ENOMEM
                       : verdict(r, NF_ACCEPT, NULL);
}

static int body_est(struct nftnl_rule *r, void *oif)
{
        if (oif && ifname_is(r, NFT_META_OIFNAME, oif, NFT_CMP_EQ) < 0)
                return -ENOMEM;
        return ct_est(r) < 0 ? -ENOMEM : verdict(r, NF_ACCEPT, NULL);
}

static int body_log(struct nftnl_rule *r, void *group)
{
        struct nftnl_expr *e = expr(r, "log");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, (uint16_t) * (unsigned *)group);
        return 0;
}

static int body_jump(struct nftnl_rule *r, void *iif)
{
        return ifname_is(r, NFT_META_IIFNAME, iif, NFT_CMP_EQ) < 0 ? -ENOMEM
                                                                   : verdict(r, NFT_JUMP, "egress");
}

static int body_drop_to(struct nftnl_rule *r, void *oif)
{
        return ifname_is(r, NFT_META_OIFNAME, oif, NFT_CMP_EQ) < 0 || counter(r) < 0
                       ? -ENOMEM
                       : verdict(r, NF_DROP, NULL);
}

static int body_counter(struct nftnl_rule *r, void *arg)
{
        (void)arg;
        return counter(r);
}

/* ip saddr <sandbox> oifname "<uplink>" masquerade (or oifname != host_if) */
static int rule_masq(struct bld *B, int fam, const char *addr)
{
        uint8_t a[16];
        if (inet_pton(fam == AIDP_NP_V4 ? AF_INET : AF_INET6, addr, a) != 1)
                return -EINVAL;
        const char *out = B->n->uplink ? B->n->uplink : B->n->host_if;
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = rule_new();
        if (!r || meta_is(r, NFT_META_NFPROTO, nfproto[fam]) < 0 ||
            payload(r, NFT_PAYLOAD_NETWORK_HEADER, saddr_off[fam], alen[fam], NFT_REG_1) < 0 ||
            cmp(r, NFT_CMP_EQ, a, alen[fam]) < 0 ||
            ifname_is(r, NFT_META_OIFNAME, out, B->n->uplink ? NFT_CMP_EQ : NFT_CMP_NEQ) < 0 ||
            !expr(r, "masq"))
                return -ENOMEM;
        return put_rule(B, r, "postrouting");
}

static int sandbox_body(struct bld *B)
{
        const char *c = "output";
        unsigned group = B->n->nflog_group;
        int rc;
        if ((rc = put_table(B)) < 0 || (rc = put_sets(B)) < 0 ||
            (rc = put_chain(B, c, "filter", NF_INET_LOCAL_OUT, 0, NF_DROP)) < 0 ||
            (rc = simple(B, c, body_lo, NULL)) < 0 || (rc = simple(B, c, body_est, NULL)) < 0 ||
            (rc = rule_nd(B, c, NULL)) < 0 || (rc = rules_proxy(B, c, NULL)) < 0 ||
            (rc = rules_accept(B, c)) < 0 || (rc = simple(B, c, body_log, &group)) < 0)
                return rc;
        return rules_reject(B, c);
}

static int host_body(struct bld *B)
{
        /* Base chains accept by default and act only on this run's link: a
         * drop in any base chain would be final for the whole host. */
        void *h = (void *)B->n->host_if;
        bool nat = B->n->sandbox_v4 || B->n->sandbox_v6;
        int rc;
        if ((rc = put_table(B)) < 0 || (rc = put_sets(B)) < 0 ||
            (rc = put_chain(B, "forward", "filter", NF_INET_FORWARD, 0, NF_ACCEPT)) < 0 ||
            (rc = put_chain(B, "input", "filter", NF_INET_LOCAL_IN, 0, NF_ACCEPT)) < 0 ||
            (rc = put_chain(B, "egress", NULL, 0, 0, 0)) < 0 ||
            (nat &&
             (rc = put_chain(B, "postrouting", "nat", NF_INET_POST_ROUTING, 100, NF_ACCEPT)) < 0))
                return rc;
        if ((rc = simple(B, "forward", body_jump, h)) < 0 ||
            (rc = simple(B, "forward", body_est, h)) < 0 ||
            (rc = simple(B, "forward", body_drop_to, h)) < 0 || (rc = rule_nd(B, "input", h)) < 0 ||
            (rc = rules_proxy(B, "input", h)) < 0 || (rc = simple(B, "input", body_jump, h)) < 0 ||
            (rc = simple(B, "egress", body_est, NULL)) < 0 ||
            (rc = rules_accept(B, "egress")) < 0 ||
            (rc = simple(B, "egress", body_counter, NULL)) < 0 ||
            (rc = rules_reject(B, "egress")) < 0)
                return rc;
        /* The input interface is unknown in postrouting, so the run's traffic
         * is told by its source address, which only this run's lease holds. */
        if (B->n->sandbox_v4 && (rc = rule_masq(B, AIDP_NP_V4, B->n->sandbox_v4)) < 0)
                return rc;
        if (B->n->sandbox_v6 && (rc = rule_masq(B, AIDP_NP_V6, B->n->sandbox_v6)) < 0)
                return rc;
        return 0;
}

static int build(const struct aidp_netpolicy *np, const struct aidp_np_names *n, bool host,
                 struct aidp_np_batch **ret, aidp_error *err)
{
        struct bld B = {.np = np, .n = n};
        int rc = host ? aidp_netpolicy_names_check(n, err) : 0;
        if (rc < 0)
                return rc;
        snprintf(B.table, sizeof B.table, host ? "aidp-%s" : "aidp", n->run_id);
        B.b = aidp_np_batch_new();
        B.fqdn_ids = calloc(2 * np->n_fqdns + 1, sizeof *B.fqdn_ids);
        rc = B.b && B.fqdn_ids ? aidp_np_batch_open(B.b) : -ENOMEM;
        if (rc == 0)
                rc = host ? host_body(&B) : sandbox_body(&B);
        if (rc == 0)
                rc = aidp_np_batch_close(B.b);
        free(B.fqdn_ids);
        if (rc < 0) {
                aidp_np_batch_free(B.b);
                return rc == -ENOMEM
                               ? aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "nftables batch")
                               : aidp_error_set(err, AIDP_EXIT_INTERNAL, -rc,
                                                "nftables batch for %s: bad address", B.table);
        }
        *ret = B.b;
        return 0;
}

int aidp_np_batch_sandbox(const struct aidp_netpolicy *np, const struct aidp_np_names *n,
                          struct aidp_np_batch **ret, aidp_error *err)
{
        return build(np, n, false, ret, err);
}

int aidp_np_batch_host(const struct aidp_netpolicy *np, const struct aidp_np_names *n,
                       struct aidp_np_batch **ret, aidp_error *err)
{
        return build(np, n, true, ret, err);
}
