/* /etc/aidp/network.yaml -> struct aidp_hostnet, and lease N -> addresses.
 * Parsed with the shared YAML walker (common/yaml.h), so errors read like a profile's:
 * file:line:col, key path, what was found and what was expected. */
#include "netpolicy/hostnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "netpolicy/internal.h"
#include "common/yaml.h"

void aidp_hostnet_free(struct aidp_hostnet *h)
{
        free(h->pool4);
        free(h->pool6);
        free(h->uplink);
        for (size_t i = 0; i < h->n_resolvers; i++)
                free(h->resolvers[i]);
        free(h->resolvers);
        free(h->source);
        memset(h, 0, sizeof *h);
}

static int pool(struct aidp_yaml *t, yaml_node_t *pools, const char *key, enum aidp_np_family want,
                unsigned max_plen, char **out, aidp_error *err)
{
        yaml_node_t *v = aidp_yaml_get(t, pools, key, NULL);
        if (!v)
                return 0;
        char path[32];
        snprintf(path, sizeof path, "pools.%s", key);
        const char *s;
        int rc = aidp_yaml_scalar(t, v, path, "a CIDR", &s, err);
        if (rc < 0)
                return rc;
        enum aidp_np_family f;
        aidp_u128 lo, hi;
        unsigned plen;
        if (!strchr(s, '/') || aidp_netpolicy_parse_cidr(s, &f, &lo, &hi, &plen) < 0 || f != want)
                return aidp_yaml_err(t, v, err, path, "found '%s', expected an %s CIDR", s,
                                     want == AIDP_NP_V4 ? "IPv4" : "IPv6");
        char back[64];
        uint8_t b[16];
        aidp_netpolicy_to_bytes(lo, f, b);
        inet_ntop(f == AIDP_NP_V4 ? AF_INET : AF_INET6, b, back, sizeof back);
        if (plen > max_plen)
                return aidp_yaml_err(t, v, err, path,
                                     "found '%s', expected a prefix of at most /%u "
                                     "(a lease takes four addresses)",
                                     s, max_plen);
        char canon[80];
        snprintf(canon, sizeof canon, "%s/%u", back, plen);
        if (!(*out = strdup(canon)))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "network configuration");
        return 0;
}

static int resolvers(struct aidp_yaml *t, yaml_node_t *v, struct aidp_hostnet *h, aidp_error *err)
{
        int rc =
                aidp_yaml_expect(t, v, YAML_SEQUENCE_NODE, "resolvers", "a list of addresses", err);
        if (rc < 0)
                return rc;
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (n > AIDP_HOSTNET_MAX_RESOLVERS)
                return aidp_yaml_err(t, v, err, "resolvers", "%zu resolvers, at most %u", n,
                                     AIDP_HOSTNET_MAX_RESOLVERS);
        if (!(h->resolvers = calloc(n + 1, sizeof *h->resolvers)))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "network configuration");
        for (size_t i = 0; i < n; i++) {
                yaml_node_t *it = aidp_yaml_node(t, v->data.sequence.items.start[i]);
                char path[32];
                snprintf(path, sizeof path, "resolvers[%zu]", i);
                const char *s;
                uint8_t b[16];
                if ((rc = aidp_yaml_scalar(t, it, path, "an address", &s, err)) < 0)
                        return rc;
                if (inet_pton(AF_INET, s, b) != 1 && inet_pton(AF_INET6, s, b) != 1)
                        return aidp_yaml_err(t, it, err, path, "found '%s', expected an IP address",
                                             s);
                if (!(h->resolvers[h->n_resolvers++] = strdup(s)))
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "resolvers");
        }
        return 0;
}

static int walk(struct aidp_yaml *t, struct aidp_hostnet *h, aidp_error *err)
{
        static const char *const top[] = {"apiVersion", "kind",      "pools",
                                          "uplink",     "resolvers", NULL};
        static const char *const pool_keys[] = {"ipv4", "ipv6", NULL};
        yaml_node_t *root = aidp_yaml_root(t), *v;
        const char *s;
        int rc = aidp_yaml_check_keys(t, root, "", top, err);
        if (rc < 0)
                return rc;
        v = aidp_yaml_get(t, root, "apiVersion", NULL);
        if (!v || aidp_yaml_scalar(t, v, "apiVersion", "aidp/v1", &s, err) < 0 ||
            strcmp(s, "aidp/v1"))
                return aidp_yaml_err(t, v ? v : root, err, "apiVersion", "expected aidp/v1");
        v = aidp_yaml_get(t, root, "kind", NULL);
        if (!v || aidp_yaml_scalar(t, v, "kind", "Network", &s, err) < 0 || strcmp(s, "Network"))
                return aidp_yaml_err(t, v ? v : root, err, "kind", "expected Network");
        yaml_node_t *pools = aidp_yaml_get(t, root, "pools", NULL);
        if (!pools)
                return aidp_yaml_err(t, root, err, "pools",
                                     "missing, expected {ipv4: CIDR, ipv6: CIDR}");
        if ((rc = aidp_yaml_check_keys(t, pools, "pools", pool_keys, err)) < 0 ||
            (rc = pool(t, pools, "ipv4", AIDP_NP_V4, 30, &h->pool4, err)) < 0 ||
            (rc = pool(t, pools, "ipv6", AIDP_NP_V6, 126, &h->pool6, err)) < 0)
                return rc;
        if (!h->pool4)
                return aidp_yaml_err(t, pools, err, "pools.ipv4", "missing, expected an IPv4 CIDR");
        if ((v = aidp_yaml_get(t, root, "uplink", NULL))) {
                if ((rc = aidp_yaml_scalar(t, v, "uplink", "a link name", &s, err)) < 0)
                        return rc;
                if (!aidp_netpolicy_name_ok(s, 15))
                        return aidp_yaml_err(t, v, err, "uplink",
                                             "found '%s', expected a link name", s);
                if (!(h->uplink = strdup(s)))
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "uplink");
        }
        if ((v = aidp_yaml_get(t, root, "resolvers", NULL)))
                return resolvers(t, v, h, err);
        return 0;
}

int aidp_hostnet_parse(const char *file, const char *buf, size_t len, struct aidp_hostnet *ret,
                       aidp_error *err)
{
        struct aidp_yaml t = {0};
        struct aidp_hostnet h = {0};
        int rc = aidp_yaml_load(&t, file, "network configuration", buf, len, 0, err);
        if (rc >= 0)
                rc = walk(&t, &h, err);
        if (rc >= 0 && !(h.source = strdup(file)))
                rc = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "network configuration");
        aidp_yaml_free(&t);
        if (rc < 0) {
                aidp_hostnet_free(&h);
                return rc;
        }
        *ret = h;
        return 0;
}

static unsigned slots_of(const char *cidr)
{
        enum aidp_np_family f;
        aidp_u128 lo, hi;
        unsigned plen;
        if (!cidr || aidp_netpolicy_parse_cidr(cidr, &f, &lo, &hi, &plen) < 0)
                return 0;
        unsigned bits = (f == AIDP_NP_V4 ? 32 : 128) - plen - 2;
        return bits >= 16 ? AIDP_HOSTNET_MAX_SLOTS : 1u << bits;
}

unsigned aidp_hostnet_slots(const struct aidp_hostnet *h)
{
        unsigned n = slots_of(h->pool4);
        if (h->pool6 && slots_of(h->pool6) < n)
                n = slots_of(h->pool6);
        return n;
}

static void block_addr(const char *cidr, unsigned index, unsigned k, char *out, size_t len)
{
        enum aidp_np_family f;
        aidp_u128 lo, hi;
        uint8_t b[16];
        aidp_netpolicy_parse_cidr(cidr, &f, &lo, &hi, NULL);
        aidp_netpolicy_to_bytes(lo + (aidp_u128)index * 4 + k, f, b);
        inet_ntop(f == AIDP_NP_V4 ? AF_INET : AF_INET6, b, out, (socklen_t)len);
}

int aidp_hostnet_lease_addrs(const struct aidp_hostnet *h, unsigned index,
                             struct aidp_hostnet_lease *ret, aidp_error *err)
{
        if (index >= aidp_hostnet_slots(h))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ERANGE,
                                      "lease %u lies outside the pools of %s", index,
                                      h->source ? h->source : "the network configuration");
        struct aidp_hostnet_lease l = {.index = index};
        block_addr(h->pool4, index, 1, l.host4, sizeof l.host4);
        block_addr(h->pool4, index, 2, l.sandbox4, sizeof l.sandbox4);
        if (h->pool6) {
                block_addr(h->pool6, index, 1, l.host6, sizeof l.host6);
                block_addr(h->pool6, index, 2, l.sandbox6, sizeof l.sandbox6);
        }
        *ret = l;
        return 0;
}
