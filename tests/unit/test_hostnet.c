/* /etc/aidp/network.yaml and the address plan of a lease (netpolicy/hostnet.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "netpolicy/hostnet.h"

static int parse(const char *y, struct aidp_hostnet *h, aidp_error *err)
{
        return aidp_hostnet_parse("network.yaml", y, strlen(y), h, err);
}

#define HDR "apiVersion: aidp/v1\nkind: Network\n"

Test(hostnet, pools_uplink_resolvers_and_lease_addresses)
{
        struct aidp_hostnet h;
        aidp_error err = {0};
        cr_assert_eq(parse(HDR "pools: {ipv4: 10.213.0.0/16, ipv6: 'fd00:a1d9::/64'}\n"
                               "uplink: eth0\nresolvers: [10.0.0.53, 'fd00::53']\n",
                           &h, &err),
                     0, "%s", err.msg);
        cr_expect_str_eq(h.pool4, "10.213.0.0/16");
        cr_expect_str_eq(h.pool6, "fd00:a1d9::/64");
        cr_expect_str_eq(h.uplink, "eth0");
        cr_assert_eq(h.n_resolvers, 2);
        cr_expect_str_eq(h.resolvers[1], "fd00::53");
        cr_expect_eq(aidp_hostnet_slots(&h), 16384);
        struct aidp_hostnet_lease l;
        cr_assert_eq(aidp_hostnet_lease_addrs(&h, 3, &l, &err), 0);
        cr_expect_str_eq(l.host4, "10.213.0.13");
        cr_expect_str_eq(l.sandbox4, "10.213.0.14");
        cr_expect_str_eq(l.host6, "fd00:a1d9::d");
        cr_expect_str_eq(l.sandbox6, "fd00:a1d9::e");
        cr_expect_lt(aidp_hostnet_lease_addrs(&h, 16384, &l, &err), 0);
        aidp_hostnet_free(&h);
}

Test(hostnet, small_pool_limits_the_slots_and_ipv6_is_optional)
{
        struct aidp_hostnet h;
        aidp_error err = {0};
        cr_assert_eq(parse(HDR "pools:\n  ipv4: 192.168.77.0/29\n", &h, &err), 0, "%s", err.msg);
        cr_expect_null(h.pool6);
        cr_expect_eq(aidp_hostnet_slots(&h), 2);
        struct aidp_hostnet_lease l;
        cr_assert_eq(aidp_hostnet_lease_addrs(&h, 1, &l, &err), 0);
        cr_expect_str_eq(l.sandbox4, "192.168.77.6");
        cr_expect_str_eq(l.sandbox6, "");
        aidp_hostnet_free(&h);
}

Test(hostnet, errors_name_the_position_and_item)
{
        static const struct {
                const char *yaml, *want;
        } cases[] = {
                {HDR "pools: {ipv4: 10.0.0.0/31}\n",
                 "network.yaml:3:15: pools.ipv4: found "
                 "'10.0.0.0/31', expected a prefix of at most /30"},
                {HDR "pools: {ipv4: 'fd00::/64'}\n",
                 "pools.ipv4: found 'fd00::/64', expected an IPv4 CIDR"},
                {HDR "pools: {ipv6: 'fd00::/64'}\n", "pools.ipv4: missing"},
                {HDR "pools: {ipv4: 10.0.0.0/16}\nuplink: 'eth0; x'\n", "uplink: found 'eth0; x'"},
                {HDR "pools: {ipv4: 10.0.0.0/16}\nresolvers: [dns.example]\n",
                 "resolvers[0]: found 'dns.example', expected an IP address"},
                {HDR "pools: {ipv4: 10.0.0.0/16}\nresolvers: [10.0.0.1, 10.0.0.2, 10.0.0.3, "
                     "10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8, 10.0.0.9]\n",
                 "resolvers: 9 resolvers, at most 8"},
                {HDR "pools: {ipv4: 10.0.0.0/16}\nuplnk: eth0\n", "uplnk"},
                {"apiVersion: aidp/v1\nkind: Profile\npools: {ipv4: 10.0.0.0/16}\n", "kind"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct aidp_hostnet h;
                aidp_error err = {0};
                cr_expect_lt(parse(cases[i].yaml, &h, &err), 0, "%s", cases[i].yaml);
                cr_expect_eq(err.status, AIDP_EXIT_CONFIG, "%s", err.msg);
                cr_expect(strstr(err.msg, cases[i].want), "%s\nwant: %s", err.msg, cases[i].want);
        }
}
