#pragma once
/* Shared by dnsproxy.c (start, stop) and dnsproxy_loop.c (the process). */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netpolicy/apply/dnsproxy.h"
#include "netpolicy/apply/nftset.h"
#include "netpolicy/dns.h"
#include "netpolicy/hostnet.h"

#define PENDING_MAX     128  /* UDP queries waiting for upstream */
#define KNOWN_MAX       4096 /* set elements whose expiry the proxy remembers */
#define TCP_CLIENTS_MAX 16   /* served at once, each on its own thread */

struct pending {
        bool used;
        uint16_t up_id;
        unsigned up; /* the upstream asked now (index into proxy.up) */
        struct aidp_dns_query q;
        uint64_t match;
        struct sockaddr_in client;
        uint64_t deadline; /* of this upstream's try */
};

/* One configured resolver: a connected UDP socket, and its address for TCP. */
struct upstream {
        int fd;
        struct sockaddr_storage addr;
        socklen_t len;
};

struct known {
        unsigned rule;
        enum aidp_np_family family;
        uint8_t a[16];
        uint64_t expiry; /* CLOCK_MONOTONIC ms */
};

struct proxy {
        const struct aidp_netpolicy *np;
        int udp, tcp, stop; /* listening sockets, stop pipe */
        struct in_addr client;
        struct upstream up[AIDP_HOSTNET_MAX_RESOLVERS]; /* asked in this order */
        size_t n_up;
        uint64_t try_ms; /* one upstream's time before the next is asked */
        char host_table[210];
        /* Taken by the main loop and the TCP client threads around the set
         * writes (known[], both netlink sockets) and the denial counts. */
        pthread_mutex_t lock;
        atomic_int tcp_active;
        struct aidp_np_setconn *host, *sandbox;
        struct aidp_np_denials denials;
        struct pending pending[PENDING_MAX];
        struct known known[KNOWN_MAX];
};

void aidp_np_dnsproxy_loop(struct proxy *P);
