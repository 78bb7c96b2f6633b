#pragma once
/* Who is on the other end of a daemon connection, as the kernel says
 * (docs/protocol.md, "Identity"): uid, gid and pid from SO_PEERCRED, a pidfd
 * from SO_PEERPIDFD (pidfd_open on older kernels), and the supplementary
 * groups from /proc/PID/status read while that pidfd proves the pid still
 * names the same process. Nothing the client sends is part of it. */
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

#define AIDP_PEER_MAX_GROUPS 256

struct aidp_peer {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t groups[AIDP_PEER_MAX_GROUPS];
        size_t n_groups;
        int pidfd; /* -1 when the kernel gave none */
};

/* 0, or < 0 with err (AIDP_EXIT_DENIED when the peer cannot be identified:
 * it exited, or its credentials changed since it connected). Close
 * ret->pidfd with aidp_peer_release. */
int aidp_peer_identify(int sock, struct aidp_peer *ret, aidp_error *err);
void aidp_peer_release(struct aidp_peer *p);
