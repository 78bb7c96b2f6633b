/* libFuzzer harness for the daemon's run request as a worker takes it apart
 * (supervisor/cli/serve_request.c): the input is the request's JSON text, as
 * any user who may connect writes it; it comes with four fds (three of
 * /dev/null, one directory), as a client's SCM_RIGHTS would bring them, from
 * a user who is not root. Where it parses, the run's options must agree with
 * the fds it was given: every --data and bind has its fd, each one of those
 * passed, no fd serves two uses (but stdio), and the job has a command. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/cli/serve_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_FDS 4

static bool passed(int fd, const int *fds)
{
        for (size_t i = 0; i < N_FDS; i++)
                if (fds[i] == fd)
                        return true;
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static int fds[N_FDS] = {-1, -1, -1, -1};
        if (fds[0] < 0) {
                for (size_t i = 0; i < N_FDS - 1; i++)
                        fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
                fds[N_FDS - 1] = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return 0;
        json_object *req = json_tokener_parse_ex(tok, (const char *)data, (int)size);
        json_tokener_free(tok);
        if (!req)
                return 0;
        struct aidp_peer pe = {
                .uid = 1000, .gid = 1000, .groups = {1000}, .n_groups = 1, .pidfd = -1};
        struct aidp_serve_request q;
        aidp_error err = {0};
        int rc = aidp_serve_request_parse(req, fds, N_FDS, &pe, &q, &err);
        if (rc == 0) {
                if (q.c.o.n_data != q.f.n_data || q.c.o.n_binds != q.f.n_binds || !q.job ||
                    !q.job[0] || q.c.o.peer != &q.peer)
                        abort();
                for (size_t i = 0; i < q.f.n_data; i++)
                        if (!passed(q.f.data[i], fds))
                                abort();
                for (size_t i = 0; i < q.f.n_binds; i++)
                        if (!passed(q.f.binds[i], fds))
                                abort();
                if (!passed(q.f.in, fds) || !passed(q.f.out, fds) || !passed(q.f.err, fds))
                        abort();
                /* one use per fd beyond stdio (serve_request.c, check_distinct) */
                int other[3 + N_FDS * 2];
                size_t n = 0;
                int single[] = {q.f.cwd, q.f.output_dir, q.f.summary};
                for (size_t i = 0; i < 3; i++)
                        if (single[i] >= 0)
                                other[n++] = single[i];
                for (size_t i = 0; i < q.f.n_data && n < sizeof other / sizeof *other; i++)
                        other[n++] = q.f.data[i];
                for (size_t i = 0; i < q.f.n_binds && n < sizeof other / sizeof *other; i++)
                        other[n++] = q.f.binds[i];
                for (size_t i = 0; i < n; i++) {
                        if (other[i] == q.f.in || other[i] == q.f.out || other[i] == q.f.err)
                                abort();
                        for (size_t k = 0; k < i; k++)
                                if (other[i] == other[k])
                                        abort();
                }
        } else if (!err.msg[0] || !err.status) {
                abort(); /* a refusal always says why, with its own status */
        }
        (void)aidp_serve_request_detached(req);
        aidp_serve_request_free(&q);
        json_object_put(req);
        return 0;
}
