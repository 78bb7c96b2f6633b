/* The zygote's plan as bytes (plan.h). Host byte order: the bytes never leave
 * the machine (a socketpair between a worker and the process it started). A
 * string is its length (u32), its bytes and a NUL, so that the decoded plan
 * points into its own copy of the bytes; only the arrays are allocated. */
#include "supervisor/sandbox/codec/plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"

struct wbuf {
        uint8_t *p;
        size_t len, cap;
        bool failed;
};

static void put(struct wbuf *w, const void *v, size_t n)
{
        if (w->failed)
                return;
        if (w->len + n > AIDP_PLAN_MAX_BYTES) {
                w->failed = true;
                return;
        }
        if (w->len + n > w->cap) {
                size_t cap = w->cap ? w->cap : 4096;
                while (cap < w->len + n)
                        cap *= 2;
                uint8_t *np = realloc(w->p, cap);
                if (!np) {
                        w->failed = true;
                        return;
                }
                w->p = np;
                w->cap = cap;
        }
        memcpy(w->p + w->len, v, n);
        w->len += n;
}

static void put_u8(struct wbuf *w, uint8_t v)
{
        put(w, &v, sizeof v);
}
static void put_u32(struct wbuf *w, uint32_t v)
{
        put(w, &v, sizeof v);
}
static void put_i32(struct wbuf *w, int32_t v)
{
        put(w, &v, sizeof v);
}
static void put_u64(struct wbuf *w, uint64_t v)
{
        put(w, &v, sizeof v);
}

static void put_str(struct wbuf *w, const char *s)
{
        size_t n = strlen(s);
        put_u32(w, (uint32_t)n);
        put(w, s, n + 1);
}

static void put_opt_str(struct wbuf *w, const char *s)
{
        put_u8(w, s != NULL);
        if (s)
                put_str(w, s);
}

/* The checks the decoder makes, made before encoding: a plan the zygote
 * would refuse is not sent (the worker clones pid 1 itself instead). */
static int check_bounds(const struct aidp_plan *p, aidp_error *err)
{
        const struct aidp_profile *pr = &p->profile;
        const char *what = NULL;
        if (p->argc == 0 || p->argc > AIDP_PLAN_MAX_STRINGS)
                what = "argv";
        else if (p->envc > AIDP_PLAN_MAX_STRINGS)
                what = "envp";
        else if (p->n_groups > AIDP_PLAN_MAX_GROUPS)
                what = "groups";
        else if (p->has_profile &&
                 (pr->n_binds > AIDP_PLAN_MAX_ITEMS || pr->n_masked > AIDP_PLAN_MAX_ITEMS ||
                  pr->n_devices > AIDP_PLAN_MAX_ITEMS))
                what = "profile";
        else if (p->bpf.len > AIDP_PLAN_MAX_INSNS)
                what = "seccomp program";
        else if (p->n_mounts > AIDP_PLAN_MAX_MOUNTS)
                what = "mounts";
        else if (p->n_fds > AIDP_PLAN_MAX_FDS)
                what = "fds";
        if (what)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, E2BIG, "plan: %s: too many", what);
        return 0;
}

int aidp_plan_encode(const struct aidp_plan *p, uint8_t **out, size_t *len, aidp_error *err)
{
        if (check_bounds(p, err) < 0)
                return -1;
        struct wbuf w = {0};
        put_u32(&w, AIDP_PLAN_MAGIC);
        put_u32(&w, AIDP_PLAN_VERSION);
        put_u32(&w, (uint32_t)p->argc);
        for (size_t i = 0; i < p->argc; i++)
                put_str(&w, p->argv[i]);
        put_u32(&w, (uint32_t)p->envc);
        for (size_t i = 0; i < p->envc; i++)
                put_str(&w, p->envp[i]);
        put_opt_str(&w, p->cwd);
        put_u8(&w, p->bind_cwd);
        put_u32(&w, p->uid);
        put_u32(&w, p->gid);
        put_u32(&w, (uint32_t)p->n_groups);
        for (size_t i = 0; i < p->n_groups; i++)
                put_u32(&w, p->groups[i]);
        put_opt_str(&w, p->hostname);
        put_u64(&w, p->caps);
        put_u64(&w, p->sigmask);
        put_u8(&w, p->has_profile);
        if (p->has_profile) {
                const struct aidp_profile *pr = &p->profile;
                for (size_t r = 0; r < AIDP_RLIMIT_SLOTS; r++) {
                        put_u8(&w, pr->limits.rlimits[r].set);
                        put_u64(&w, pr->limits.rlimits[r].soft);
                        put_u64(&w, pr->limits.rlimits[r].hard);
                }
                put_u32(&w, (uint32_t)pr->n_binds);
                for (size_t i = 0; i < pr->n_binds; i++) {
                        put_str(&w, pr->binds[i].source);
                        put_opt_str(&w, pr->binds[i].target);
                        put_u8(&w, pr->binds[i].writable);
                }
                put_u32(&w, (uint32_t)pr->n_masked);
                for (size_t i = 0; i < pr->n_masked; i++)
                        put_str(&w, pr->masked[i]);
                put_u32(&w, (uint32_t)pr->n_devices);
                for (size_t i = 0; i < pr->n_devices; i++) {
                        put_str(&w, pr->devices[i].path);
                        put_u8(&w, pr->devices[i].optional);
                }
        }
        put_u32(&w, (uint32_t)p->bpf.len);
        for (size_t i = 0; i < p->bpf.len; i++) {
                const struct sock_filter *f = &p->bpf.insns[i];
                put(&w, &f->code, sizeof f->code);
                put_u8(&w, f->jt);
                put_u8(&w, f->jf);
                put_u32(&w, f->k);
        }
        put_u32(&w, p->seccomp_flags);
        put_u32(&w, (uint32_t)p->n_mounts);
        for (size_t i = 0; i < p->n_mounts; i++) {
                put_i32(&w, p->mounts[i].fd);
                put_str(&w, p->mounts[i].target);
                put_u8(&w, p->mounts[i].readonly);
        }
        const int32_t fixed[] = {
                p->sync_fd,   p->err_fd,    p->lifeline_fd,   p->status_fd,      p->stdin_fd,
                p->stdout_fd, p->stderr_fd, p->notify_fd_out, p->resolv_tree_fd, p->cwd_tree_fd,
                p->cgroup_fd, p->net_fd,    p->ipc_fd,        p->uts_fd};
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
                put_i32(&w, fixed[i]);
        put_u8(&w, p->has_cwd_tree);
        bool trees = p->has_profile && p->bind_tree_fds;
        put_u8(&w, trees);
        for (size_t i = 0; trees && i < p->profile.n_binds; i++)
                put_i32(&w, p->bind_tree_fds[i]);
        put_u64(&w, p->clone_flags);
        put_u32(&w, (uint32_t)p->n_fds);
        for (size_t i = 0; i < p->n_fds; i++)
                put_i32(&w, p->fds[i]);
        if (w.failed) {
                free(w.p);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, E2BIG,
                                      "plan: more than %u bytes, or out of memory",
                                      AIDP_PLAN_MAX_BYTES);
        }
        *out = w.p;
        *len = w.len;
        return 0;
}

/* ---- decoding ---- */

struct rbuf {
        uint8_t *p; /* the plan's own copy: strings point into it */
        size_t len, off;
        const char *field; /* what is being read, for the error */
        aidp_error *err;
        bool failed;
};

static bool fail(struct rbuf *r, const char *why)
{
        if (!r->failed)
                aidp_error_set(r->err, AIDP_EXIT_INTERNAL, EPROTO, "plan: %s: %s", r->field, why);
        r->failed = true;
        return false;
}

static bool take(struct rbuf *r, void *v, size_t n)
{
        if (r->failed)
                return false;
        if (n > r->len - r->off)
                return fail(r, "cut short");
        memcpy(v, r->p + r->off, n);
        r->off += n;
        return true;
}

static uint8_t get_u8(struct rbuf *r)
{
        uint8_t v = 0;
        take(r, &v, sizeof v);
        return v;
}

static bool get_bool(struct rbuf *r)
{
        uint8_t v = get_u8(r);
        if (v > 1)
                fail(r, "not a boolean");
        return v == 1;
}

static uint32_t get_u32(struct rbuf *r)
{
        uint32_t v = 0;
        take(r, &v, sizeof v);
        return v;
}

static uint64_t get_u64(struct rbuf *r)
{
        uint64_t v = 0;
        take(r, &v, sizeof v);
        return v;
}

/* A count, at most max. */
static size_t get_count(struct rbuf *r, size_t max)
{
        uint32_t n = get_u32(r);
        if (n > max) {
                fail(r, "too many");
                return 0;
        }
        return n;
}

/* A string in place: its bytes, no NUL among them, and the NUL after. */
static char *get_str(struct rbuf *r, size_t max)
{
        uint32_t n = get_u32(r);
        if (r->failed)
                return NULL;
        if (n > max || (size_t)n >= r->len - r->off) {
                fail(r, n > max ? "too long" : "cut short");
                return NULL;
        }
        char *s = (char *)r->p + r->off;
        if (s[n] != '\0' || memchr(s, '\0', n)) {
                fail(r, "not a string");
                return NULL;
        }
        r->off += (size_t)n + 1;
        return s;
}

static char *get_opt_str(struct rbuf *r, size_t max)
{
        return get_bool(r) ? get_str(r, max) : NULL;
}

/* A path pid 1 resolves: absolute, as the worker's always are. */
static char *get_path(struct rbuf *r)
{
        char *s = get_str(r, AIDP_PLAN_MAX_PATH);
        if (s && s[0] != '/') {
                fail(r, "not an absolute path");
                return NULL;
        }
        return s;
}

static int32_t get_i32(struct rbuf *r)
{
        int32_t v = 0;
        take(r, &v, sizeof v);
        return v;
}

static void *get_array(struct rbuf *r, size_t n, size_t size)
{
        if (r->failed)
                return NULL;
        void *a = calloc(n + 1, size);
        if (!a)
                fail(r, "out of memory");
        return a;
}

static char **get_strv(struct rbuf *r, size_t *n, const char *field)
{
        r->field = field;
        *n = get_count(r, AIDP_PLAN_MAX_STRINGS);
        char **v = get_array(r, *n, sizeof *v);
        for (size_t i = 0; v && i < *n && !r->failed; i++)
                v[i] = get_str(r, AIDP_PLAN_MAX_STRING);
        return v;
}

static void get_profile(struct rbuf *r, struct aidp_profile *pr)
{
        r->field = "rlimits";
        for (size_t i = 0; i < AIDP_RLIMIT_SLOTS; i++) {
                struct aidp_rlimit *l = &pr->limits.rlimits[i];
                l->set = get_bool(r);
                l->soft = get_u64(r);
                l->hard = get_u64(r);
        }
        r->field = "binds";
        pr->n_binds = get_count(r, AIDP_PLAN_MAX_ITEMS);
        pr->binds = get_array(r, pr->n_binds, sizeof *pr->binds);
        for (size_t i = 0; pr->binds && i < pr->n_binds && !r->failed; i++) {
                pr->binds[i].source = get_path(r);
                pr->binds[i].target = get_bool(r) ? get_path(r) : NULL;
                pr->binds[i].writable = get_bool(r);
        }
        r->field = "masked";
        pr->n_masked = get_count(r, AIDP_PLAN_MAX_ITEMS);
        pr->masked = get_array(r, pr->n_masked, sizeof *pr->masked);
        for (size_t i = 0; pr->masked && i < pr->n_masked && !r->failed; i++)
                pr->masked[i] = get_path(r);
        r->field = "devices";
        pr->n_devices = get_count(r, AIDP_PLAN_MAX_ITEMS);
        pr->devices = get_array(r, pr->n_devices, sizeof *pr->devices);
        for (size_t i = 0; pr->devices && i < pr->n_devices && !r->failed; i++) {
                pr->devices[i].path = get_path(r);
                pr->devices[i].optional = get_bool(r);
        }
}

/* An fd field: -1, or one of the placed numbers. */
static bool placed(const struct aidp_plan *p, int32_t fd)
{
        for (size_t i = 0; i < p->n_fds; i++)
                if (p->fds[i] == fd)
                        return true;
        return fd == -1;
}

/* Every fd field names a placed fd, and no number is placed twice. */
static void check_fds(struct rbuf *r, struct aidp_plan *p)
{
        r->field = "fds";
        for (size_t i = 0; i < p->n_fds; i++) {
                if (p->fds[i] < 0 || p->fds[i] > AIDP_PLAN_MAX_FD)
                        fail(r, "fd number out of range");
                for (size_t j = 0; j < i; j++)
                        if (p->fds[j] == p->fds[i])
                                fail(r, "fd number placed twice");
        }
        const int32_t fixed[] = {
                p->sync_fd,   p->err_fd,    p->lifeline_fd,   p->status_fd,      p->stdin_fd,
                p->stdout_fd, p->stderr_fd, p->notify_fd_out, p->resolv_tree_fd, p->cwd_tree_fd,
                p->cgroup_fd, p->net_fd,    p->ipc_fd,        p->uts_fd};
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
                if (!placed(p, fixed[i]))
                        fail(r, "an fd field names no placed fd");
        for (size_t i = 0; i < p->n_mounts; i++)
                if (p->mounts[i].fd < 0 || !placed(p, p->mounts[i].fd))
                        fail(r, "a mount's fd is not placed");
        for (size_t i = 0; p->bind_tree_fds && i < p->profile.n_binds; i++)
                if (!placed(p, p->bind_tree_fds[i]))
                        fail(r, "a bind's tree is not placed");
        /* pid 1 needs these to report and to be told the go */
        if (p->sync_fd < 0 || p->err_fd < 0 || p->lifeline_fd < 0 || p->status_fd < 0)
                fail(r, "sync, err, lifeline or status fd missing");
        if (p->has_cwd_tree && p->cwd_tree_fd < 0)
                fail(r, "the working directory's tree is missing");
}

static void decode_body(struct rbuf *r, struct aidp_plan *p)
{
        r->field = "header";
        if (get_u32(r) != AIDP_PLAN_MAGIC || get_u32(r) != AIDP_PLAN_VERSION)
                fail(r, "not a plan of this version");
        p->argv = get_strv(r, &p->argc, "argv");
        if (!r->failed && p->argc == 0)
                fail(r, "empty");
        p->envp = get_strv(r, &p->envc, "envp");
        r->field = "cwd";
        p->cwd = get_bool(r) ? get_path(r) : NULL;
        p->bind_cwd = get_bool(r);
        r->field = "ids";
        p->uid = get_u32(r);
        p->gid = get_u32(r);
        r->field = "groups";
        p->n_groups = get_count(r, AIDP_PLAN_MAX_GROUPS);
        for (size_t i = 0; i < p->n_groups; i++)
                p->groups[i] = get_u32(r);
        r->field = "hostname";
        p->hostname = get_opt_str(r, 64); /* HOST_NAME_MAX */
        r->field = "capabilities";
        p->caps = get_u64(r);
        p->sigmask = get_u64(r);
        r->field = "profile";
        p->has_profile = get_bool(r);
        if (p->has_profile)
                get_profile(r, &p->profile);
        r->field = "seccomp program";
        p->bpf.len = get_count(r, AIDP_PLAN_MAX_INSNS);
        p->bpf.insns = get_array(r, p->bpf.len, sizeof *p->bpf.insns);
        for (size_t i = 0; p->bpf.insns && i < p->bpf.len && !r->failed; i++) {
                struct sock_filter *f = &p->bpf.insns[i];
                take(r, &f->code, sizeof f->code);
                f->jt = get_u8(r);
                f->jf = get_u8(r);
                f->k = get_u32(r);
        }
        p->seccomp_flags = get_u32(r);
        r->field = "mounts";
        p->n_mounts = get_count(r, AIDP_PLAN_MAX_MOUNTS);
        for (size_t i = 0; i < p->n_mounts && !r->failed; i++) {
                p->mounts[i].fd = get_i32(r);
                p->mounts[i].target = get_path(r);
                p->mounts[i].readonly = get_bool(r);
        }
        r->field = "fd fields";
        int32_t *fixed[] = {&p->sync_fd,        &p->err_fd,      &p->lifeline_fd, &p->status_fd,
                            &p->stdin_fd,       &p->stdout_fd,   &p->stderr_fd,   &p->notify_fd_out,
                            &p->resolv_tree_fd, &p->cwd_tree_fd, &p->cgroup_fd,   &p->net_fd,
                            &p->ipc_fd,         &p->uts_fd};
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
                *fixed[i] = get_i32(r);
        p->has_cwd_tree = get_bool(r);
        r->field = "bind trees";
        if (get_bool(r)) {
                if (!p->has_profile)
                        fail(r, "without a profile");
                p->bind_tree_fds = get_array(r, p->profile.n_binds, sizeof *p->bind_tree_fds);
                for (size_t i = 0; p->bind_tree_fds && i < p->profile.n_binds; i++)
                        p->bind_tree_fds[i] = get_i32(r);
        }
        r->field = "clone flags";
        p->clone_flags = get_u64(r);
        r->field = "fds";
        p->n_fds = get_count(r, AIDP_PLAN_MAX_FDS);
        for (size_t i = 0; i < p->n_fds; i++)
                p->fds[i] = get_i32(r);
        if (!r->failed && r->off != r->len) {
                r->field = "end";
                fail(r, "bytes after the plan");
        }
        if (!r->failed)
                check_fds(r, p);
}

int aidp_plan_decode(const uint8_t *buf, size_t len, struct aidp_plan *p, aidp_error *err)
{
        *p = (struct aidp_plan){0};
        if (len > AIDP_PLAN_MAX_BYTES)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, E2BIG, "plan: more than %u bytes",
                                      AIDP_PLAN_MAX_BYTES);
        struct rbuf r = {.len = len, .err = err, .field = "plan"};
        r.p = malloc(len ? len : 1);
        if (!r.p)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "plan: out of memory");
        if (len)
                memcpy(r.p, buf, len);
        p->own = r.p;
        decode_body(&r, p);
        if (r.failed) {
                aidp_plan_free(p);
                return -1;
        }
        return 0;
}

void aidp_plan_free(struct aidp_plan *p)
{
        if (!p->own)
                return; /* an encoder's plan points at its caller's data */
        free(p->argv);
        free(p->envp);
        free(p->profile.binds);
        free(p->profile.masked);
        free(p->profile.devices);
        free(p->bpf.insns);
        free(p->bind_tree_fds);
        free(p->own);
        *p = (struct aidp_plan){0};
}
