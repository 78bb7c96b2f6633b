#pragma once
/* Shared by dnsproxy.c (start, stop) and dnsproxy_loop.c (the process). */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netpolicy/apply/dnsproxy.h"
#include "netpolicy/apply/nftset.h"
#include "netpolicy/dns.h"

#define PENDING_MAX 128  /* UDP queries waiting for upstream */
#define KNOWN_MAX   4096 /* set elements whose expiry the proxy remembers */

struct pending {
        bool used;
        uint16_t up_id;
        struct aidp_dns_query q;
        uint64_t match;
        struct sockaddr_in client;
        uint64_t deadline;
};

struct known {
        unsigned rule;
        enum aidp_np_family family;
        uint8_t a[16];
        uint64_t expiry; /* CLOCK_MONOTONIC ms */
};

struct proxy {
        const struct aidp_netpolicy *np;
        int udp, tcp, up, stop; /* listening sockets, upstream (connected), stop pipe */
        struct in_addr client;
        struct sockaddr_storage up_addr;
        socklen_t up_len;
        char host_table[210];
        struct aidp_np_setconn *host, *sandbox;
        struct aidp_np_denials denials;
        struct pending pending[PENDING_MAX];
        struct known known[KNOWN_MAX];
};

void aidp_np_dnsproxy_loop(struct proxy *P);
