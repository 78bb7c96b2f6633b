/* A compiled plan -> nft rulesets as text (docs/egress.md shows them). Pure:
 * the text is built in memory. It is the readable form, for goldens, debugging
 * and the benchmark's tools side; the apply layer loads the same rules as
 * libnftnl batches (netpolicy/apply/nftrules.c, which must list the same:
 * tests/priv/test_egress_nft.c). */
#define _GNU_SOURCE
#include "netpolicy/netpolicy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

static const char *const set_name[AIDP_NP_FAMILY_MAX][AIDP_NP_PROTO_MAX] = {
        {"allow4_tcp", "allow4_udp"},
        {"allow6_tcp", "allow6_udp"},
};
static const char *const addr_type[AIDP_NP_FAMILY_MAX] = {"ipv4_addr", "ipv6_addr"};
static const char *const daddr[AIDP_NP_FAMILY_MAX] = {"ip daddr", "ip6 daddr"};
static const char *const l4[AIDP_NP_PROTO_MAX] = {"tcp", "udp"};

/* Neighbour discovery must reach the gateway or IPv6 cannot work at all; it
 * carries no data off the link. */
#define ND_ACCEPT                                                                                  \
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept"

bool aidp_netpolicy_name_ok(const char *s, size_t max)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_'))
                        return false;
        }
        return true;
}

/* Prefix length if [lo, hi] is exactly one CIDR block, else -1. */
static int prefix_of(const uint8_t *lo, const uint8_t *hi, size_t len)
{
        size_t bit = 0;
        while (bit < len * 8) {
                uint8_t m = (uint8_t)(0x80u >> (bit % 8));
                if ((lo[bit / 8] & m) != (hi[bit / 8] & m))
                        break;
                bit++;
        }
        for (size_t b = bit; b < len * 8; b++) {
                uint8_t m = (uint8_t)(0x80u >> (b % 8));
                if ((lo[b / 8] & m) || !(hi[b / 8] & m))
                        return -1;
        }
        return (int)bit;
}

static void put_range(FILE *f, enum aidp_np_family fam, const struct aidp_np_range *r)
{
        char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
        int af = fam == AIDP_NP_V4 ? AF_INET : AF_INET6;
        size_t len = fam == AIDP_NP_V4 ? 4 : 16;
        inet_ntop(af, r->lo, a, sizeof a);
        int plen = prefix_of(r->lo, r->hi, len);
        if (plen == (int)len * 8) {
                fputs(a, f);
        } else if (plen >= 0) {
                fprintf(f, "%s/%d", a, plen);
        } else {
                inet_ntop(af, r->hi, b, sizeof b);
                fprintf(f, "%s-%s", a, b);
        }
}

static void put_set(FILE *f, const struct aidp_np_set *s, enum aidp_np_family fam,
                    enum aidp_np_proto p)
{
        fprintf(f, "\tset %s {\n\t\ttype %s . inet_service\n\t\tflags interval\n", set_name[fam][p],
                addr_type[fam]);
        fputs("\t\telements = {", f);
        const char *sep = " ";
        for (size_t i = 0; i < s->n_ranges; i++) {
                const struct aidp_np_range *r = &s->ranges[i];
                for (size_t k = 0; k < r->n_ports; k++) {
                        fputs(sep, f);
                        put_range(f, fam, r);
                        if (r->ports[k].lo == r->ports[k].hi)
                                fprintf(f, " . %u", r->ports[k].lo);
                        else
                                fprintf(f, " . %u-%u", r->ports[k].lo, r->ports[k].hi);
                        sep = ",\n\t\t\t     ";
                }
        }
        fputs(" }\n\t}\n", f);
}

static void put_sets(FILE *f, const struct aidp_netpolicy *np)
{
        for (int fam = 0; fam < AIDP_NP_FAMILY_MAX; fam++)
                for (int p = 0; p < AIDP_NP_PROTO_MAX; p++)
                        if (np->sets[fam][p].n_ranges)
                                put_set(f, &np->sets[fam][p], fam, p);
        /* Filled at run time by the DNS proxy, each address with its TTL. */
        for (size_t i = 0; i < np->n_fqdns; i++)
                for (int fam = 0; fam < AIDP_NP_FAMILY_MAX; fam++)
                        fprintf(f,
                                "\tset " AIDP_NP_FQDN_SET_FMT
                                " {\n\t\ttype %s\n\t\tflags timeout\n\t}\n",
                                fam == AIDP_NP_V4 ? 4 : 6, i, addr_type[fam]);
}

static void put_fqdn_accepts(FILE *f, const struct aidp_netpolicy *np)
{
        for (size_t i = 0; i < np->n_fqdns; i++) {
                const struct aidp_np_fqdn *q = &np->fqdns[i];
                for (int fam = 0; fam < AIDP_NP_FAMILY_MAX; fam++) {
                        for (int p = 0; p < AIDP_NP_PROTO_MAX; p++) {
                                if (!q->proto[p])
                                        continue;
                                fprintf(f, "\t\t%s @" AIDP_NP_FQDN_SET_FMT " %s", daddr[fam],
                                        fam == AIDP_NP_V4 ? 4 : 6, i, l4[p]);
                                if (q->ports.lo == 0 && q->ports.hi == 65535)
                                        fputs(" dport 0-65535 accept\n", f);
                                else if (q->ports.lo == q->ports.hi)
                                        fprintf(f, " dport %u accept\n", q->ports.lo);
                                else
                                        fprintf(f, " dport %u-%u accept\n", q->ports.lo,
                                                q->ports.hi);
                        }
                }
        }
}

static void put_accepts(FILE *f, const struct aidp_netpolicy *np, const char *match)
{
        for (int fam = 0; fam < AIDP_NP_FAMILY_MAX; fam++)
                for (int p = 0; p < AIDP_NP_PROTO_MAX; p++)
                        if (np->sets[fam][p].n_ranges)
                                fprintf(f, "\t\t%s%s . %s dport @%s accept\n", match, daddr[fam],
                                        l4[p], set_name[fam][p]);
        put_fqdn_accepts(f, np);
}

/* The run's resolver: the DNS proxy on the host end of its link, UDP and TCP
 * port 53; DNS to any other address is refused like any other packet. */
static void put_proxy(FILE *f, const struct aidp_np_names *n, const char *match)
{
        if (!n->proxy_v4)
                return;
        for (int p = 0; p < AIDP_NP_PROTO_MAX; p++)
                fprintf(f, "\t\t%sip daddr %s %s dport 53 accept\n", match, n->proxy_v4, l4[p]);
}

/* Fast failure: a reset for TCP, administratively prohibited for the rest, so
 * a job fails at once instead of waiting for a timeout. */
static void put_reject(FILE *f, const char *match)
{
        fprintf(f, "\t\t%smeta l4proto tcp reject with tcp reset\n", match);
        fprintf(f, "\t\t%sreject with icmpx type admin-prohibited\n", match);
}

static int finish(FILE *f, char **buf, char **ret, aidp_error *err)
{
        bool bad = ferror(f) != 0;
        if (fclose(f) != 0 || bad) {
                free(*buf);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "rendering the ruleset");
        }
        *ret = *buf;
        return 0;
}

int aidp_netpolicy_render_sandbox(const struct aidp_netpolicy *np, const struct aidp_np_names *n,
                                  char **ret, aidp_error *err)
{
        unsigned char a[4];
        if (n->proxy_v4 && inet_pton(AF_INET, n->proxy_v4, a) != 1)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "DNS proxy address '%s' is not an IPv4 address", n->proxy_v4);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "rendering the ruleset");
        fputs("table inet aidp {\n", f);
        put_sets(f, np);
        fputs("\tchain output {\n\t\ttype filter hook output priority filter; policy drop;\n"
              "\t\toif \"lo\" accept\n\t\tct state established,related accept\n\t\t" ND_ACCEPT "\n",
              f);
        put_proxy(f, n, "");
        put_accepts(f, np, "");
        fprintf(f, "\t\tlog group %u\n", n->nflog_group);
        put_reject(f, "");
        fputs("\t}\n}\n", f);
        return finish(f, &buf, ret, err);
}

int aidp_netpolicy_names_check(const struct aidp_np_names *n, aidp_error *err)
{
        if (!aidp_netpolicy_name_ok(n->run_id, 200))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "run id '%s' cannot name an nftables table",
                                      n->run_id ? n->run_id : "");
        if (!aidp_netpolicy_name_ok(n->host_if, 15) ||
            (n->uplink && !aidp_netpolicy_name_ok(n->uplink, 15)))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "link name '%s' or uplink '%s' is not a plain link name",
                                      n->host_if ? n->host_if : "",
                                      n->uplink ? n->uplink : "(any)");
        unsigned char a[16];
        if ((n->sandbox_v4 && inet_pton(AF_INET, n->sandbox_v4, a) != 1) ||
            (n->sandbox_v6 && inet_pton(AF_INET6, n->sandbox_v6, a) != 1) ||
            (n->proxy_v4 && inet_pton(AF_INET, n->proxy_v4, a) != 1))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "sandbox address '%s' / '%s' is not an address",
                                      n->sandbox_v4 ? n->sandbox_v4 : "",
                                      n->sandbox_v6 ? n->sandbox_v6 : "");
        return 0;
}

static void put_nat(FILE *f, const struct aidp_np_names *n)
{
        if (!n->sandbox_v4 && !n->sandbox_v6)
                return;
        /* The input interface is unknown in postrouting, so the run's traffic
         * is told by its source address, which only this run's lease holds. */
        fputs("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; "
              "policy accept;\n",
              f);
        char out[64];
        if (n->uplink)
                snprintf(out, sizeof out, "oifname \"%s\"", n->uplink);
        else
                snprintf(out, sizeof out, "oifname != \"%s\"", n->host_if);
        if (n->sandbox_v4)
                fprintf(f, "\t\tip saddr %s %s masquerade\n", n->sandbox_v4, out);
        if (n->sandbox_v6)
                fprintf(f, "\t\tip6 saddr %s %s masquerade\n", n->sandbox_v6, out);
        fputs("\t}\n", f);
}

int aidp_netpolicy_render_host(const struct aidp_netpolicy *np, const struct aidp_np_names *n,
                               char **ret, aidp_error *err)
{
        int rc = aidp_netpolicy_names_check(n, err);
        if (rc < 0)
                return rc;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "rendering the ruleset");
        const char *h = n->host_if;
        fprintf(f, "table inet aidp-%s {\n", n->run_id);
        put_sets(f, np);
        /* Base chains accept by default and act only on this run's link: a
         * drop here would be final for the whole host. */
        fprintf(f,
                "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
                "\t\tiifname \"%s\" jump egress\n"
                "\t\toifname \"%s\" ct state established,related accept\n"
                "\t\toifname \"%s\" counter drop\n\t}\n",
                h, h, h);
        fprintf(f,
                "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
                "\t\tiifname \"%s\" " ND_ACCEPT "\n",
                h);
        char m[40];
        snprintf(m, sizeof m, "iifname \"%s\" ", h);
        put_proxy(f, n, m);
        fprintf(f, "\t\tiifname \"%s\" jump egress\n\t}\n", h);
        fputs("\tchain egress {\n\t\tct state established,related accept\n", f);
        put_accepts(f, np, "");
        fputs("\t\tcounter\n", f);
        put_reject(f, "");
        fputs("\t}\n", f);
        put_nat(f, n);
        fputs("}\n", f);
        return finish(f, &buf, ret, err);
}

int aidp_netpolicy_render_host_delete(const char *run_id, char **ret, aidp_error *err)
{
        if (!aidp_netpolicy_name_ok(run_id, 200))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                      "run id '%s' cannot name an nftables table",
                                      run_id ? run_id : "");
        if (asprintf(ret, "delete table inet aidp-%s\n", run_id) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "rendering the ruleset");
        return 0;
}
