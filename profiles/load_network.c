/* Phase 2 of loading a profile: the network section.
 *
 * `network: none` or `network: {mode: egress, egress: [...]}`. Each egress
 * rule names exactly one destination (a CIDR or a host name) with optional
 * ports, protocol and region; a rule with several ports becomes one rule per
 * port or range. Destinations are canonicalised here (CIDR text from
 * inet_ntop, host names lower-cased) so that equal rules are merged and the
 * profile digest does not depend on spelling. A CIDR with host bits set is
 * refused: it almost always is a typo in the prefix length, and the firewall
 * would silently widen it. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/load_internal.h"

static int parse_cidr(const char *s, char *canon, size_t n)
{
        char addr[64];
        const char *sl = strchr(s, '/');
        size_t al = sl ? (size_t)(sl - s) : strlen(s);
        if (al == 0 || al >= sizeof addr)
                return -EINVAL;
        memcpy(addr, s, al);
        addr[al] = '\0';
        unsigned char bytes[16];
        int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(fam, addr, bytes) != 1)
                return -EINVAL;
        unsigned maxp = fam == AF_INET ? 32 : 128, prefix = maxp;
        if (sl) {
                uint64_t v;
                if (aidp_profiles_parse_uint(sl + 1, false, &v) < 0 || v > maxp)
                        return -ERANGE;
                prefix = (unsigned)v;
        }
        /* Host bits set ("10.1.2.3/8") usually means a typo in the prefix. */
        for (unsigned bit = prefix; bit < maxp; bit++)
                if (bytes[bit / 8] & (0x80 >> (bit % 8)))
                        return -EDOM;
        char txt[INET6_ADDRSTRLEN];
        inet_ntop(fam, bytes, txt, sizeof txt);
        snprintf(canon, n, "%s/%u", txt, prefix);
        return 0;
}

static bool valid_fqdn(const char *s)
{
        /* "*.suffix": any name strictly below suffix (the DNS proxy's match). */
        if (!strncmp(s, "*.", 2))
                s += 2;
        size_t len = strlen(s);
        if (len == 0 || len > 253 || !strchr(s, '.'))
                return false;
        const char *p = s;
        while (*p) {
                const char *e = strchr(p, '.');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                if (l == 0 || l > 63 || p[0] == '-' || p[l - 1] == '-')
                        return false;
                for (size_t i = 0; i < l; i++)
                        if (!isalnum((unsigned char)p[i]) && p[i] != '-')
                                return false;
                p += l;
                if (*p == '.')
                        p++;
                if (e && !*p)
                        return false; /* trailing dot */
        }
        /* An all-numeric last label would be an IP address in disguise. */
        const char *last = strrchr(s, '.') + 1;
        for (const char *q = last; *q; q++)
                if (!isdigit((unsigned char)*q))
                        return true;
        return false;
}

static bool valid_region(const char *s)
{
        size_t l = strlen(s);
        if (l == 0 || l > 63 || !isalnum((unsigned char)s[0]))
                return false;
        for (size_t i = 0; i < l; i++)
                if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
                        return false;
        return true;
}

static int port_spec(const char *s, uint16_t *lo, uint16_t *hi)
{
        const char *dash = strchr(s, '-');
        uint64_t a, b;
        if (dash) {
                char first[16];
                size_t l = (size_t)(dash - s);
                if (l == 0 || l >= sizeof first)
                        return -EINVAL;
                memcpy(first, s, l);
                first[l] = '\0';
                if (aidp_profiles_parse_uint(first, false, &a) < 0 ||
                    aidp_profiles_parse_uint(dash + 1, false, &b) < 0)
                        return -EINVAL;
        } else {
                if (aidp_profiles_parse_uint(s, false, &a) < 0)
                        return -EINVAL;
                b = a;
        }
        if (a < 1 || b > 65535 || a > b)
                return -ERANGE;
        *lo = (uint16_t)a;
        *hi = (uint16_t)b;
        return 0;
}

static bool same_rule(const struct aidp_egress_rule *a, const struct aidp_egress_rule *b)
{
        return !strcmp(a->cidr ? a->cidr : "", b->cidr ? b->cidr : "") &&
               !strcmp(a->fqdn ? a->fqdn : "", b->fqdn ? b->fqdn : "") &&
               !strcmp(a->region ? a->region : "", b->region ? b->region : "") &&
               a->port_min == b->port_min && a->port_max == b->port_max &&
               a->protocol == b->protocol;
}

static int add_egress(struct aidp_network *net, const struct aidp_egress_rule *r)
{
        for (size_t i = 0; i < net->n_rules; i++)
                if (same_rule(&net->rules[i], r))
                        return 0;
        struct aidp_egress_rule *nr = realloc(net->rules, (net->n_rules + 1) * sizeof *nr);
        if (!nr)
                return -ENOMEM;
        net->rules = nr;
        struct aidp_egress_rule *d = &nr[net->n_rules];
        memset(d, 0, sizeof *d);
        d->port_min = r->port_min;
        d->port_max = r->port_max;
        d->protocol = r->protocol;
        if ((r->cidr && !(d->cidr = strdup(r->cidr))) ||
            (r->fqdn && !(d->fqdn = strdup(r->fqdn))) ||
            (r->region && !(d->region = strdup(r->region)))) {
                free(d->cidr);
                free(d->fqdn);
                free(d->region);
                return -ENOMEM;
        }
        net->n_rules++;
        return 0;
}

/* The rule's destination: exactly one of cidr or fqdn, canonicalised into
 * canon (CIDR) or a lower-cased copy in *fq (host name) that r points at. */
static int egress_dest(struct loader *ld, ytree *t, ynode *n, const char *path,
                       struct aidp_egress_rule *r, char *canon, size_t canon_len, char **fq)
{
        char p[160];
        const char *s;
        int rc;
        ynode *cn = aidp_yaml_get(t, n, "cidr", NULL);
        ynode *fn = aidp_yaml_get(t, n, "fqdn", NULL);
        if (!!cn == !!fn)
                return YERR(t, n, path, "found %s, expected exactly one of cidr or fqdn",
                            cn ? "both cidr and fqdn" : "neither cidr nor fqdn");
        if (cn) {
                PATHF(p, "%s.cidr", path);
                if ((rc = aidp_yaml_scalar(t, cn, p, "a CIDR such as 10.0.0.0/8", &s, ld->err)) < 0)
                        return rc;
                rc = parse_cidr(s, canon, canon_len);
                if (rc == -EDOM)
                        return YERR(t, cn, p,
                                    "found '%s' with host bits set, expected a network address "
                                    "(e.g. 10.0.0.0/8)",
                                    s);
                if (rc < 0)
                        return YERR(t, cn, p,
                                    "found '%s', expected an IPv4 or IPv6 CIDR such as 10.0.0.0/8 "
                                    "or 2001:db8::/32",
                                    s);
                r->cidr = canon;
        } else {
                PATHF(p, "%s.fqdn", path);
                if ((rc = aidp_yaml_scalar(t, fn, p, "a host name", &s, ld->err)) < 0)
                        return rc;
                if (!valid_fqdn(s))
                        return YERR(t, fn, p,
                                    "found '%s', expected a fully qualified host name such as "
                                    "pypi.internal.example or *.suffix (no other wildcard, no "
                                    "trailing dot)",
                                    s);
                if (!(*fq = strdup(s)))
                        return aidp_ld_oom(ld->err);
                for (char *q = *fq; *q; q++)
                        *q = (char)tolower((unsigned char)*q);
                r->fqdn = *fq;
        }
        return 0;
}

static int parse_egress_rule(struct loader *ld, ytree *t, ynode *n, const char *path,
                             struct aidp_network *net)
{
        static const char *const keys[] = {"cidr", "fqdn", "ports", "protocol", "region", NULL};
        int rc = aidp_yaml_check_keys(t, n, path, keys, ld->err);
        if (rc < 0)
                return rc;
        char p[160], canon[64];
        const char *s;
        struct aidp_egress_rule r = {0};
        _cleanup_free_ char *fq = NULL;
        if ((rc = egress_dest(ld, t, n, path, &r, canon, sizeof canon, &fq)) < 0)
                return rc;
        ynode *rn = aidp_yaml_get(t, n, "region", NULL);
        if (rn) {
                PATHF(p, "%s.region", path);
                if ((rc = aidp_yaml_scalar(t, rn, p, "a region tag such as eu-west-1", &s,
                                           ld->err)) < 0)
                        return rc;
                if (!valid_region(s))
                        return YERR(t, rn, p,
                                    "found '%s', expected a region tag of lower-case letters, "
                                    "digits and '-' such as eu-west-1",
                                    s);
                r.region = (char *)s;
        }
        ynode *pn = aidp_yaml_get(t, n, "protocol", NULL);
        if (pn) {
                PATHF(p, "%s.protocol", path);
                if ((rc = aidp_yaml_scalar(t, pn, p, "tcp, udp or any", &s, ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "tcp"))
                        r.protocol = 6;
                else if (!strcmp(s, "udp"))
                        r.protocol = 17;
                else if (!strcmp(s, "any"))
                        r.protocol = 0;
                else
                        return YERR(t, pn, p, "found '%s', expected tcp, udp or any", s);
        }
        ynode *ports = aidp_yaml_get(t, n, "ports", NULL);
        if (!ports) {
                if ((rc = add_egress(net, &r)) < 0)
                        return aidp_ld_oom(ld->err);
                aidp_ld_origin_set(ld, t, n, "egress:%zu", net->n_rules - 1);
                return 0;
        }
        PATHF(p, "%s.ports", path);
        if ((rc = aidp_ld_expect_list(ld, t, ports, p,
                                      "a list of ports or ranges such as [443, 8000-8100]")) < 0)
                return rc;
        if (ports->data.sequence.items.top == ports->data.sequence.items.start)
                return YERR(
                        t, ports, p,
                        "found an empty list, expected ports (leave ports out to allow any port)");
        {
                ynode *item;
                FOREACH_ITEM(t, ports, i, item)
                {
                        char ip[192];
                        PATHF(ip, "%s[%zu]", p, i);
                        if ((rc = aidp_yaml_scalar(t, item, ip, "a port or range", &s, ld->err)) <
                            0)
                                return rc;
                        if (port_spec(s, &r.port_min, &r.port_max) < 0)
                                return YERR(t, item, ip,
                                            "found '%s', expected a port 1..65535 or a range such "
                                            "as 8000-8100",
                                            s);
                        if ((rc = add_egress(net, &r)) < 0)
                                return aidp_ld_oom(ld->err);
                        aidp_ld_origin_set(ld, t, n, "egress:%zu", net->n_rules - 1);
                }
        }
        return 0;
}

static void egress_clear(struct aidp_network *net)
{
        for (size_t i = 0; i < net->n_rules; i++) {
                free(net->rules[i].cidr);
                free(net->rules[i].fqdn);
                free(net->rules[i].region);
        }
        free(net->rules);
        net->rules = NULL;
        net->n_rules = 0;
}

int aidp_ld_apply_network(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        const char *s;
        int rc;
        ynode *mode = n, *eg = NULL;
        if (n->type == YAML_MAPPING_NODE) {
                static const char *const keys[] = {"mode", "egress", NULL};
                if ((rc = aidp_yaml_check_keys(t, n, "network", keys, ld->err)) < 0)
                        return rc;
                mode = aidp_yaml_get(t, n, "mode", NULL);
                eg = aidp_yaml_get(t, n, "egress", NULL);
                if (!mode)
                        return YERR(t, n, "network.mode", "found nothing, expected none or egress");
        }
        const char *mp = n->type == YAML_MAPPING_NODE ? "network.mode" : "network";
        if ((rc = aidp_yaml_scalar(t, mode, mp, "none or egress", &s, ld->err)) < 0)
                return rc;
        if (!strcmp(s, "none")) {
                if (eg)
                        return YERR(t, eg, "network.egress",
                                    "found egress rules with mode none, expected mode: egress");
                p->network.mode = AIDP_NET_NONE;
                egress_clear(&p->network);
                aidp_ld_origin_set(ld, t, mode, "network.mode");
                return 0;
        }
        if (strcmp(s, "egress"))
                return YERR(t, mode, mp, "found '%s', expected none or egress", s);
        p->network.mode = AIDP_NET_EGRESS;
        aidp_ld_origin_set(ld, t, mode, "network.mode");
        if (!eg)
                return 0;
        if ((rc = aidp_ld_expect_list(ld, t, eg, "network.egress",
                                      "a list of {cidr|fqdn, ports, protocol, region}")) < 0)
                return rc;
        {
                ynode *item;
                FOREACH_ITEM(t, eg, i, item)
                {
                        char path[64];
                        PATHF(path, "network.egress[%zu]", i);
                        if ((rc = parse_egress_rule(ld, t, item, path, &p->network)) < 0)
                                ITEM_FAIL(rc);
                }
        }
        return 0;
}
