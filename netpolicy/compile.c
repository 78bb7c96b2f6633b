/* Effective egress rules -> a plan of disjoint address ranges with merged
 * port ranges per family and transport (netpolicy.h). Pure. */
#include "netpolicy/netpolicy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "netpolicy/internal.h"

typedef aidp_u128 u128;

struct item {
        u128 lo, hi;
        struct aidp_np_ports ports;
};

struct items {
        struct item *v;
        size_t n, cap;
};

static int push_item(struct items *it, const struct item *x)
{
        if (it->n == it->cap) {
                size_t cap = it->cap ? it->cap * 2 : 16;
                struct item *v = realloc(it->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                it->v = v;
                it->cap = cap;
        }
        it->v[it->n++] = *x;
        return 0;
}

static u128 max_of(enum aidp_np_family f)
{
        return f == AIDP_NP_V4 ? (u128)0xffffffffu : ~(u128)0;
}

void aidp_netpolicy_to_bytes(u128 a, enum aidp_np_family f, uint8_t out[16])
{
        memset(out, 0, 16);
        size_t len = f == AIDP_NP_V4 ? 4 : 16;
        for (size_t i = 0; i < len; i++)
                out[len - 1 - i] = (uint8_t)(a >> (8 * i));
}

int aidp_netpolicy_parse_cidr(const char *cidr, enum aidp_np_family *f, u128 *lo, u128 *hi,
                              unsigned *ret_plen)
{
        char addr[INET6_ADDRSTRLEN + 1];
        const char *slash = strchr(cidr, '/');
        size_t alen = slash ? (size_t)(slash - cidr) : strlen(cidr);
        if (alen >= sizeof addr)
                return -EINVAL;
        memcpy(addr, cidr, alen);
        addr[alen] = '\0';
        uint8_t buf[16];
        size_t len;
        if (inet_pton(AF_INET, addr, buf) == 1) {
                *f = AIDP_NP_V4;
                len = 4;
        } else if (inet_pton(AF_INET6, addr, buf) == 1) {
                *f = AIDP_NP_V6;
                len = 16;
        } else {
                return -EINVAL;
        }
        unsigned bits = (unsigned)len * 8, plen = bits;
        if (slash) {
                char *end;
                unsigned long v = strtoul(slash + 1, &end, 10);
                if (*end || end == slash + 1 || v > bits)
                        return -EINVAL;
                plen = (unsigned)v;
        }
        u128 a = 0;
        for (size_t i = 0; i < len; i++)
                a = (a << 8) | buf[i];
        u128 host = plen == bits ? 0 : plen == 0 ? max_of(*f) : (((u128)1 << (bits - plen)) - 1);
        *lo = a & ~host;
        *hi = (a & ~host) | host;
        if (ret_plen)
                *ret_plen = plen;
        return 0;
}

static int cmp_item_lo(const void *a, const void *b)
{
        const struct item *x = a, *y = b;
        return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp_u128(const void *a, const void *b)
{
        const u128 *x = a, *y = b;
        return *x < *y ? -1 : *x > *y;
}

static int cmp_ports(const void *a, const void *b)
{
        const struct aidp_np_ports *x = a, *y = b;
        return x->lo != y->lo ? (x->lo < y->lo ? -1 : 1) : (x->hi > y->hi) - (x->hi < y->hi);
}

/* Sort and merge overlapping or adjacent port ranges in place; returns the count. */
static size_t merge_ports(struct aidp_np_ports *p, size_t n)
{
        if (n == 0)
                return 0;
        qsort(p, n, sizeof *p, cmp_ports);
        size_t w = 0;
        for (size_t i = 1; i < n; i++) {
                if ((unsigned)p[i].lo <= (unsigned)p[w].hi + 1) {
                        if (p[i].hi > p[w].hi)
                                p[w].hi = p[i].hi;
                } else {
                        p[++w] = p[i];
                }
        }
        return w + 1;
}

static bool same_ports(const struct aidp_np_range *r, const struct aidp_np_ports *p, size_t n)
{
        return r->n_ports == n && memcmp(r->ports, p, n * sizeof *p) == 0;
}

static int push_range(struct aidp_np_set *s, size_t *cap, enum aidp_np_family f, u128 lo, u128 hi,
                      const struct aidp_np_ports *p, size_t n)
{
        if (s->n_ranges == *cap) {
                size_t c = *cap ? *cap * 2 : 8;
                struct aidp_np_range *v = realloc(s->ranges, c * sizeof *v);
                if (!v)
                        return -ENOMEM;
                s->ranges = v;
                *cap = c;
        }
        struct aidp_np_range *r = &s->ranges[s->n_ranges];
        r->ports = malloc(n * sizeof *p);
        if (!r->ports)
                return -ENOMEM;
        memcpy(r->ports, p, n * sizeof *p);
        r->n_ports = n;
        aidp_netpolicy_to_bytes(lo, f, r->lo);
        aidp_netpolicy_to_bytes(hi, f, r->hi);
        s->n_ranges++;
        return 0;
}

/* Sweep over the elementary segments cut by every range's start and end: each
 * segment is covered whole by the active items, whose ports are merged; equal
 * neighbours are joined. The result is disjoint, as interval sets require. */
static int sweep(struct items *it, enum aidp_np_family f, struct aidp_np_set *out)
{
        if (it->n == 0)
                return 0;
        qsort(it->v, it->n, sizeof *it->v, cmp_item_lo);
        _cleanup_free_ u128 *b = malloc(2 * it->n * sizeof *b);
        _cleanup_free_ size_t *active = malloc(it->n * sizeof *active);
        _cleanup_free_ struct aidp_np_ports *ports = malloc(it->n * sizeof *ports);
        if (!b || !active || !ports)
                return -ENOMEM;
        size_t nb = 0, na = 0, next = 0, cap = 0;
        u128 max = max_of(f), prev_hi = 0;
        bool have_prev = false;
        for (size_t i = 0; i < it->n; i++) {
                b[nb++] = it->v[i].lo;
                if (it->v[i].hi != max)
                        b[nb++] = it->v[i].hi + 1;
        }
        qsort(b, nb, sizeof *b, cmp_u128);
        for (size_t k = 0; k < nb; k++) {
                if (k > 0 && b[k] == b[k - 1])
                        continue;
                u128 s = b[k], e = max;
                for (size_t j = k + 1; j < nb; j++) {
                        if (b[j] != s) {
                                e = b[j] - 1;
                                break;
                        }
                }
                while (next < it->n && it->v[next].lo <= s)
                        active[na++] = next++;
                size_t w = 0;
                for (size_t a = 0; a < na; a++)
                        if (it->v[active[a]].hi >= s)
                                active[w++] = active[a];
                na = w;
                if (na == 0) {
                        have_prev = false;
                        continue;
                }
                for (size_t a = 0; a < na; a++)
                        ports[a] = it->v[active[a]].ports;
                size_t np = merge_ports(ports, na);
                struct aidp_np_range *last = out->n_ranges ? &out->ranges[out->n_ranges - 1] : NULL;
                if (have_prev && last && prev_hi + 1 == s && same_ports(last, ports, np)) {
                        aidp_netpolicy_to_bytes(e, f, last->hi);
                } else if (push_range(out, &cap, f, s, e, ports, np) < 0) {
                        return -ENOMEM;
                }
                prev_hi = e;
                have_prev = true;
        }
        return 0;
}

static int add_fqdn(struct aidp_netpolicy *np, const struct aidp_egress_rule *r,
                    struct aidp_np_ports ports)
{
        struct aidp_np_fqdn *v = realloc(np->fqdns, (np->n_fqdns + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        np->fqdns = v;
        struct aidp_np_fqdn *q = &v[np->n_fqdns];
        memset(q, 0, sizeof *q);
        if (!(q->name = strdup(r->fqdn)))
                return -ENOMEM;
        q->ports = ports;
        q->proto[AIDP_NP_TCP] = r->protocol != IPPROTO_UDP;
        q->proto[AIDP_NP_UDP] = r->protocol != IPPROTO_TCP;
        np->n_fqdns++;
        return 0;
}

static int gather(const struct aidp_network *net, struct aidp_netpolicy *np,
                  struct items it[AIDP_NP_FAMILY_MAX][AIDP_NP_PROTO_MAX], aidp_error *err)
{
        for (size_t i = 0; i < net->n_rules; i++) {
                const struct aidp_egress_rule *r = &net->rules[i];
                struct aidp_np_ports ports = {r->port_min, r->port_max};
                if (r->port_min == 0 && r->port_max == 0)
                        ports = (struct aidp_np_ports){0, 65535};
                if (ports.lo > ports.hi)
                        return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                              "egress[%zu]: port range %u-%u is reversed", i,
                                              ports.lo, ports.hi);
                if (r->protocol != 0 && r->protocol != IPPROTO_TCP && r->protocol != IPPROTO_UDP)
                        return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                              "egress[%zu]: protocol %d is neither tcp nor udp", i,
                                              r->protocol);
                if (r->fqdn) {
                        if (add_fqdn(np, r, ports) < 0)
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "egress");
                        continue;
                }
                enum aidp_np_family f;
                struct item x = {.ports = ports};
                if (!r->cidr || aidp_netpolicy_parse_cidr(r->cidr, &f, &x.lo, &x.hi, NULL) < 0)
                        return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                              "egress[%zu]: '%s' is not a CIDR", i,
                                              r->cidr ? r->cidr : "(none)");
                for (int p = 0; p < AIDP_NP_PROTO_MAX; p++) {
                        int want = p == AIDP_NP_TCP ? IPPROTO_TCP : IPPROTO_UDP;
                        if ((r->protocol == 0 || r->protocol == want) &&
                            push_item(&it[f][p], &x) < 0)
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "egress");
                }
        }
        return 0;
}

int aidp_netpolicy_compile(const struct aidp_network *net, struct aidp_netpolicy **ret,
                           aidp_error *err)
{
        struct items it[AIDP_NP_FAMILY_MAX][AIDP_NP_PROTO_MAX] = {0};
        struct aidp_netpolicy *np = calloc(1, sizeof *np);
        int rc = np ? 0 : aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "egress plan");
        if (rc == 0 && net->mode == AIDP_NET_EGRESS)
                rc = gather(net, np, it, err);
        for (int f = 0; rc == 0 && f < AIDP_NP_FAMILY_MAX; f++) {
                for (int p = 0; rc == 0 && p < AIDP_NP_PROTO_MAX; p++) {
                        if (sweep(&it[f][p], f, &np->sets[f][p]) < 0)
                                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "egress");
                        for (size_t i = 0; rc == 0 && i < np->sets[f][p].n_ranges; i++)
                                np->n_elements += np->sets[f][p].ranges[i].n_ports;
                }
        }
        for (int f = 0; f < AIDP_NP_FAMILY_MAX; f++)
                for (int p = 0; p < AIDP_NP_PROTO_MAX; p++)
                        free(it[f][p].v);
        if (rc == 0 && np->n_fqdns > AIDP_NP_MAX_FQDNS)
                rc = aidp_error_set(err, AIDP_EXIT_CONFIG, E2BIG,
                                    "egress: %zu fqdn rules, at most %u allowed", np->n_fqdns,
                                    AIDP_NP_MAX_FQDNS);
        if (rc == 0 && np->n_elements > AIDP_NP_MAX_ELEMENTS)
                rc = aidp_error_set(err, AIDP_EXIT_CONFIG, E2BIG,
                                    "egress: %zu set elements after merging, at most %u allowed",
                                    np->n_elements, AIDP_NP_MAX_ELEMENTS);
        if (rc < 0) {
                aidp_netpolicy_free(np);
                return rc;
        }
        *ret = np;
        return 0;
}

void aidp_netpolicy_free(struct aidp_netpolicy *np)
{
        if (!np)
                return;
        for (int f = 0; f < AIDP_NP_FAMILY_MAX; f++) {
                for (int p = 0; p < AIDP_NP_PROTO_MAX; p++) {
                        struct aidp_np_set *s = &np->sets[f][p];
                        for (size_t i = 0; i < s->n_ranges; i++)
                                free(s->ranges[i].ports);
                        free(s->ranges);
                }
        }
        for (size_t i = 0; i < np->n_fqdns; i++)
                free(np->fqdns[i].name);
        free(np->fqdns);
        free(np);
}
