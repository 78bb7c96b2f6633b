/* Counting denied packets by destination (netpolicy.h). Pure: the apply layer
 * hands over each NFLOG payload, which starts at the IP header. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "netpolicy/netpolicy.h"

static const char *proto_name(uint8_t p)
{
        switch (p) {
        case IPPROTO_TCP: return "tcp";
        case IPPROTO_UDP: return "udp";
        case IPPROTO_ICMP: return "icmp";
        case IPPROTO_ICMPV6: return "icmpv6";
        default: return NULL;
        }
}

void aidp_netpolicy_denial_str(const struct aidp_np_denial *k, char *buf, size_t len)
{
        const char *p = proto_name(k->proto);
        char pn[16];
        if (!p) {
                snprintf(pn, sizeof pn, "proto-%u", k->proto);
                p = pn;
        }
        bool v6 = strchr(k->dst, ':') != NULL;
        if (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP)
                snprintf(buf, len, v6 ? "%s [%s]:%u" : "%s %s:%u", p, k->dst, k->port);
        else
                snprintf(buf, len, "%s %s", p, k->dst);
}

/* Destination, protocol and port of a packet; false if it is not readable. */
static bool key_of(const uint8_t *pkt, size_t len, struct aidp_np_denial *k)
{
        size_t l4;
        memset(k, 0, sizeof *k);
        if (len >= 20 && pkt[0] >> 4 == 4) {
                l4 = (size_t)(pkt[0] & 0x0f) * 4;
                k->proto = pkt[9];
                inet_ntop(AF_INET, pkt + 16, k->dst, sizeof k->dst);
                /* a later fragment carries no port */
                if (((pkt[6] & 0x1f) | pkt[7]) != 0)
                        l4 = len;
        } else if (len >= 40 && pkt[0] >> 4 == 6) {
                /* extension headers are not followed: the port reads as 0 */
                l4 = 40;
                k->proto = pkt[6];
                inet_ntop(AF_INET6, pkt + 24, k->dst, sizeof k->dst);
        } else {
                return false;
        }
        if ((k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP) && len >= l4 + 4)
                k->port = (uint16_t)(pkt[l4 + 2] << 8 | pkt[l4 + 3]);
        return true;
}

void aidp_netpolicy_denial_add(struct aidp_np_denials *d, const uint8_t *pkt, size_t len)
{
        struct aidp_np_denial k;
        d->total++;
        if (!key_of(pkt, len, &k)) {
                d->other++;
                return;
        }
        if (d->n_examples < AIDP_NP_DENIAL_EXAMPLES) {
                char s[80];
                aidp_netpolicy_denial_str(&k, s, sizeof s);
                /* an example line for the record: cut short is harmless */
                aidp_text_printf(d->examples[d->n_examples++], sizeof d->examples[0], "%s len %zu",
                                 s, len);
        }
        for (size_t i = 0; i < d->n_keys; i++) {
                struct aidp_np_denial *x = &d->keys[i];
                if (x->proto == k.proto && x->port == k.port && !strcmp(x->dst, k.dst)) {
                        x->count++;
                        return;
                }
        }
        if (d->n_keys == AIDP_NP_DENIAL_KEYS) {
                d->other++;
                return;
        }
        k.count = 1;
        d->keys[d->n_keys++] = k;
}

void aidp_netpolicy_dns_denial_add(struct aidp_np_denials *d, const char *name, const char *why)
{
        d->dns_total++;
        for (size_t i = 0; i < d->n_dns; i++) {
                if (!strncmp(d->dns[i].name, name, sizeof d->dns[i].name - 1) &&
                    !strcmp(d->dns[i].why, why)) {
                        d->dns[i].count++;
                        return;
                }
        }
        if (d->n_dns == AIDP_NP_DNS_KEYS) {
                d->dns_other++;
                return;
        }
        struct aidp_np_dns_denial *k = &d->dns[d->n_dns++];
        snprintf(k->name, sizeof k->name, "%s", name);
        snprintf(k->why, sizeof k->why, "%s", why);
        k->count = 1;
}
