#pragma once
/* Throwaway network namespaces for the egress tests. The test process first
 * moves itself into a fresh namespace that stands in for the host
 * (aidp_test_fake_host); every peer and sandbox is a child in a further
 * namespace. Nothing here ever acts on the machine's own network namespace,
 * and traffic goes only to loopback and to these namespaces' addresses. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* unshare this process's network namespace, bring lo up, and turn on
 * forwarding there (it is ours). Returns 0 or -errno. */
int aidp_test_fake_host(void);

/* A child in a new network namespace with lo up; it runs body(arg) (or
 * sleeps when NULL) once the parent calls aidp_test_ns_go. */
struct aidp_test_ns {
        pid_t pid;
        int go_fd;
};
int aidp_test_ns_start(struct aidp_test_ns *ns, void (*body)(void *arg), void *arg);
void aidp_test_ns_go(struct aidp_test_ns *ns);
/* SIGKILL and reap it (its namespace goes with it). */
void aidp_test_ns_stop(struct aidp_test_ns *ns);
/* An O_RDONLY fd of its network namespace. */
int aidp_test_ns_fd(const struct aidp_test_ns *ns);
/* Run a shell command (ip, nft) inside its namespace; the exit status. */
int aidp_test_ns_sh(const struct aidp_test_ns *ns, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* A veth between the stand-in host (hp0) and peer (pp0), both up, with the
 * addresses of each NULL-terminated list ("192.0.2.1/24", "fd00:2::1/64").
 * 0, or the failing command's status. */
int aidp_test_peer_link(const struct aidp_test_ns *peer, const char *const host_addrs[],
                        const char *const peer_addrs[]);
/* The same with links hp<n> / pp<n>, for a second peer. */
int aidp_test_peer_link_n(const struct aidp_test_ns *peer, int n, const char *const host_addrs[],
                          const char *const peer_addrs[]);

/* Become Debian's dnsmasq, in the foreground and as root (so that the
 * parent-death signal stays), with no configuration and no upstream: it
 * listens on `listen` ("198.51.100.53" or a comma-separated list) and knows
 * only the records of `extra` ("--host-record=NAME,ADDR", "--cname=...",
 * other options; NULL-terminated, at most 200). A body for aidp_test_ns_start. */
__attribute__((noreturn)) void aidp_test_exec_dnsmasq(const char *listen,
                                                      const char *const extra[]);

/* Echo servers: TCP and UDP on [::] (dual-stack) at each port of ports[]. */
struct aidp_test_servers {
        uint16_t tcp[8], udp[8];
};
void aidp_test_serve(void *servers); /* a body for aidp_test_ns_start */

/* Probe from inside a namespace: connect (TCP) or send (UDP) to addr:port,
 * exchange "ping", within timeout_ms. */
enum aidp_test_probe {
        AIDP_PROBE_OK,      /* connected and echoed */
        AIDP_PROBE_REFUSED, /* refused (reset, unreachable, EPERM) */
        AIDP_PROBE_TIMEOUT,
        AIDP_PROBE_ERROR,
};
enum aidp_test_probe aidp_test_probe(const struct aidp_test_ns *ns, bool tcp, const char *addr,
                                     uint16_t port, int timeout_ms, double *elapsed_ms);
