/* libFuzzer harness for the DNS proxy's message handling (netpolicy/dns.c).
 * The first byte picks the role of the rest: a query from the job (parsed,
 * matched against a plan, answered with an rcode, re-asked upstream), or an
 * upstream answer to a fixed question (checked, filtered and rebuilt). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netpolicy/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct aidp_netpolicy *the_plan(void)
{
        static struct aidp_netpolicy *np;
        static struct aidp_egress_rule rules[] = {
                {.fqdn = "web.allowed.example", .port_min = 443, .port_max = 443},
                {.fqdn = "*.wild.example"},
                {.cidr = "10.7.0.0/16"},
        };
        if (!np) {
                struct aidp_network net = {.mode = AIDP_NET_EGRESS, .rules = rules, .n_rules = 3};
                aidp_error err = {0};
                if (aidp_netpolicy_compile(&net, &np, &err) < 0)
                        abort();
        }
        return np;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        /* A private copy, exactly size - 1 bytes, so ASan sees any overread. */
        uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
        if (!buf)
                return 0;
        memcpy(buf, data + 1, size - 1);
        struct aidp_netpolicy *np = the_plan();
        uint8_t *out = NULL;
        size_t olen = 0;
        struct aidp_dns_query q;
        if (data[0] & 1) {
                int rc = aidp_dns_parse_query(buf, size - 1, &q);
                if (rc != -EBADMSG) {
                        (void)aidp_netpolicy_fqdn_match(np, q.name);
                        if (aidp_dns_reply_rcode(&q, AIDP_DNS_REFUSED, rc < 0, &out, &olen) == 0)
                                free(out);
                        out = NULL;
                        if (rc == 0 && aidp_dns_make_query(&q, 0x1234, &out, &olen) == 0)
                                free(out);
                }
        } else {
                memset(&q, 0, sizeof q);
                strcpy(q.name, data[0] & 2 ? "web.allowed.example" : "x.wild.example");
                q.qtype = data[0] & 4 ? AIDP_DNS_TYPE_AAAA : AIDP_DNS_TYPE_A;
                q.has_question = true;
                q.id = 7;
                struct aidp_dns_result *res = malloc(sizeof *res);
                if (res && aidp_dns_filter_answer(np, &q, (uint16_t)(data[0] << 8 | 0x42), buf,
                                                  size - 1, res, &out, &olen) == 0)
                        free(out);
                free(res);
        }
        free(buf);
        return 0;
}
