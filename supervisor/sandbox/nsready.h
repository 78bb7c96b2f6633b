#pragma once
/* The sandbox's network, IPC and UTS namespaces made ahead of the run, by a
 * daemon's idle worker while it waits for its connection (docs/run-core.md,
 * "Through the daemon"): a fresh network namespace (setup_net, half a
 * millisecond of the clone's CPU) with its loopback up, and fresh IPC and UTS
 * namespaces, held by fd. pid 1 is cloned inside them (aidp_nsready_enter,
 * clone3, aidp_nsready_leave) instead of with CLONE_NEWNET, CLONE_NEWIPC and
 * CLONE_NEWUTS. Each set is used by one pid 1 at most: taking it forgets it,
 * and a worker serves one run. */
#include <stdbool.h>

/* In the idle worker: make the set (a set made before is closed first). The
 * calling thread's own namespaces are kept. 0 or -errno (then the run clones
 * its namespaces as before). */
int aidp_nsready_make(void);

struct aidp_nsready {
        int net, ipc, uts; /* -1: none */
        int own_net, own_ipc, own_uts;
};

/* Take the set made ahead, if any (false: none; the run uses CLONE_NEW*). */
bool aidp_nsready_take(struct aidp_nsready *ns);
/* Move the calling thread into the set, keeping fds of its own namespaces:
 * the clone that follows inherits them. 0 or -errno (then the thread is back
 * in its own and the set is closed). */
int aidp_nsready_enter(struct aidp_nsready *ns);
/* Back into the thread's own namespaces; every fd closed. 0 or -errno (the
 * thread could not get back: the caller must not go on). */
int aidp_nsready_leave(struct aidp_nsready *ns);
