/* A run request of the daemon's protocol (docs/protocol.md) taken apart into
 * a run's options, before anything of the run happens: its fds by index, its
 * environment, its options parsed by run's own table and checked at the user
 * level, its labels. Hostile input: any user who may connect writes it
 * (tests/fuzz/fuzz_serve_request.c). */
#ifndef AIDP_CLI_SERVE_REQUEST_H
#define AIDP_CLI_SERVE_REQUEST_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "supervisor/cli/cli_supervisor.h"
#include "supervisor/daemon/peer.h"
#include "supervisor/run/run.h"

struct aidp_serve_fds {
        int in, out, err, cwd, output_dir, summary;
        int owned_in, owned_log; /* a detached run's /dev/null and log, or -1 */
        int data[AIDP_RUN_MAX_DATA], binds[AIDP_CLI_MAX_BINDS];
        size_t n_data, n_binds;
};

struct aidp_serve_request {
        struct aidp_serve_fds f;
        struct aidp_cli_run c; /* c.o.peer points at peer below */
        struct aidp_run_peer peer;
        char **args, **job, **env, **av;
        size_t n_env;
        int ac;
};

/* Parse req, whose fds (n of them, still the caller's to close) came with
 * it, for the peer pe. 0, or -1 with err set (exit status and a message that
 * names the request's item). *q is set up either way and freed with
 * aidp_serve_request_free; it must not move once parsed. */
int aidp_serve_request_parse(json_object *req, const int *fds, size_t n, const struct aidp_peer *pe,
                             struct aidp_serve_request *q, aidp_error *err);
/* Whether the request asks for a detached run. */
bool aidp_serve_request_detached(json_object *req);
void aidp_serve_request_free(struct aidp_serve_request *q);

#endif
