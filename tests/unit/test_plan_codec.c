/* The zygote's plan codec (supervisor/sandbox/codec/plan.h): every field
 * round-trips, and bytes that are not a whole, bounded, consistent plan are
 * refused with an error naming the field. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/sandbox/codec/plan.h"

static char *argv_[] = {"/bin/sh", "-c", "echo 'a b'; exit 3", NULL};
static char *envp_[] = {"PATH=/usr/bin:/bin", "AIDP_RUN_ID=r1", NULL};
static struct aidp_bind binds_[] = {{.source = "/srv/in", .target = NULL, .writable = false},
                                    {.source = "/srv/out", .target = "/out2", .writable = true}};
static char *masked_[] = {"/etc/secret", "/var/x"};
static struct aidp_device devices_[] = {{.path = "/dev/nvidia0", .optional = true},
                                        {.path = "/dev/fuse", .optional = false}};
static struct sock_filter insns_[] = {
        {.code = 0x20, .jt = 0, .jf = 0, .k = 4},
        {.code = 0x15, .jt = 1, .jf = 2, .k = 0xc000003e},
        {.code = 0x06, .jt = 0, .jf = 0, .k = 0x7fff0000},
};
static int32_t trees_[] = {21, -1};

/* A plan with every field set, none to its zero value. */
static void full_plan(struct aidp_plan *p)
{
        *p = (struct aidp_plan){
                .argv = argv_,
                .argc = 3,
                .envp = envp_,
                .envc = 2,
                .cwd = "/home/u/work",
                .bind_cwd = true,
                .uid = 1234,
                .gid = 5678,
                .groups = {5678, 100, 27},
                .n_groups = 3,
                .hostname = "aidp",
                .caps = (1ULL << 13) | (1ULL << 40),
                .sigmask = (1ULL << 1) | (1ULL << 16),
                .has_profile = true,
                .bpf = {.insns = insns_, .len = 3},
                .seccomp_flags = 8,
                .mounts = {{.fd = 10, .target = "/tmp", .readonly = false},
                           {.fd = 11, .target = "/data", .readonly = true}},
                .n_mounts = 2,
                .sync_fd = 12,
                .err_fd = 13,
                .lifeline_fd = 14,
                .status_fd = 15,
                .stdin_fd = 16,
                .stdout_fd = 17,
                .stderr_fd = 18,
                .notify_fd_out = 19,
                .resolv_tree_fd = 20,
                .cwd_tree_fd = 22,
                .has_cwd_tree = true,
                .bind_tree_fds = trees_,
                .clone_flags = 0x40000000,
                .cgroup_fd = 23,
                .net_fd = 24,
                .ipc_fd = 25,
                .uts_fd = 26,
                .fds = {0,  1,  2,  10, 11, 12, 13, 14, 15, 16,
                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26},
                .n_fds = 20,
        };
        p->profile.binds = binds_;
        p->profile.n_binds = 2;
        p->profile.masked = masked_;
        p->profile.n_masked = 2;
        p->profile.devices = devices_;
        p->profile.n_devices = 2;
        p->profile.limits.rlimits[4] = (struct aidp_rlimit){.set = true, .soft = 0, .hard = 0};
        p->profile.limits.rlimits[7] =
                (struct aidp_rlimit){.set = true, .soft = 1024, .hard = UINT64_MAX};
        p->profile.limits.rlimits[15] = (struct aidp_rlimit){.set = false, .soft = 9, .hard = 9};
}

static void encode(const struct aidp_plan *p, uint8_t **b, size_t *len)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_plan_encode(p, b, len, &err), 0, "%s", err.msg);
}

/* in, encoded and decoded again into out. */
static void round_trip(const struct aidp_plan *in, struct aidp_plan *out)
{
        uint8_t *b;
        size_t len;
        encode(in, &b, &len);
        aidp_error err = {0};
        cr_assert_eq(aidp_plan_decode(b, len, out, &err), 0, "%s", err.msg);
        free(b);
}

Test(plan_codec, every_field_round_trips)
{
        struct aidp_plan in, out;
        full_plan(&in);
        round_trip(&in, &out);
        cr_assert_eq(out.argc, 3);
        for (size_t i = 0; i < 3; i++)
                cr_expect_str_eq(out.argv[i], argv_[i]);
        cr_expect_null(out.argv[3]);
        cr_assert_eq(out.envc, 2);
        for (size_t i = 0; i < 2; i++)
                cr_expect_str_eq(out.envp[i], envp_[i]);
        cr_expect_null(out.envp[2]);
        cr_expect_str_eq(out.cwd, "/home/u/work");
        cr_expect(out.bind_cwd);
        cr_expect_eq(out.uid, 1234);
        cr_expect_eq(out.gid, 5678);
        cr_assert_eq(out.n_groups, 3);
        cr_expect_arr_eq(out.groups, in.groups, sizeof in.groups[0] * 3);
        cr_expect_str_eq(out.hostname, "aidp");
        cr_expect_eq(out.caps, in.caps);
        cr_expect_eq(out.sigmask, in.sigmask);
        cr_assert(out.has_profile);
        cr_expect_arr_eq(out.profile.limits.rlimits, in.profile.limits.rlimits,
                         sizeof in.profile.limits.rlimits);
        cr_assert_eq(out.profile.n_binds, 2);
        for (size_t i = 0; i < 2; i++) {
                cr_expect_str_eq(out.profile.binds[i].source, binds_[i].source);
                cr_expect_eq(out.profile.binds[i].writable, binds_[i].writable);
        }
        cr_expect_null(out.profile.binds[0].target);
        cr_expect_str_eq(out.profile.binds[1].target, "/out2");
        cr_assert_eq(out.profile.n_masked, 2);
        for (size_t i = 0; i < 2; i++)
                cr_expect_str_eq(out.profile.masked[i], masked_[i]);
        cr_assert_eq(out.profile.n_devices, 2);
        for (size_t i = 0; i < 2; i++) {
                cr_expect_str_eq(out.profile.devices[i].path, devices_[i].path);
                cr_expect_eq(out.profile.devices[i].optional, devices_[i].optional);
        }
        cr_assert_eq(out.bpf.len, 3);
        cr_expect_arr_eq(out.bpf.insns, insns_, sizeof insns_);
        cr_expect_eq(out.seccomp_flags, 8);
        cr_assert_eq(out.n_mounts, 2);
        for (size_t i = 0; i < 2; i++) {
                cr_expect_eq(out.mounts[i].fd, in.mounts[i].fd);
                cr_expect_str_eq(out.mounts[i].target, in.mounts[i].target);
                cr_expect_eq(out.mounts[i].readonly, in.mounts[i].readonly);
        }
        int32_t fi[] = {in.sync_fd,        in.err_fd,      in.lifeline_fd, in.status_fd,
                        in.stdin_fd,       in.stdout_fd,   in.stderr_fd,   in.notify_fd_out,
                        in.resolv_tree_fd, in.cwd_tree_fd, in.cgroup_fd,   in.net_fd,
                        in.ipc_fd,         in.uts_fd};
        int32_t fo[] = {out.sync_fd,        out.err_fd,      out.lifeline_fd, out.status_fd,
                        out.stdin_fd,       out.stdout_fd,   out.stderr_fd,   out.notify_fd_out,
                        out.resolv_tree_fd, out.cwd_tree_fd, out.cgroup_fd,   out.net_fd,
                        out.ipc_fd,         out.uts_fd};
        cr_expect_arr_eq(fo, fi, sizeof fi);
        cr_expect(out.has_cwd_tree);
        cr_assert_not_null(out.bind_tree_fds);
        cr_expect_arr_eq(out.bind_tree_fds, trees_, sizeof trees_);
        cr_expect_eq(out.clone_flags, in.clone_flags);
        cr_assert_eq(out.n_fds, in.n_fds);
        cr_expect_arr_eq(out.fds, in.fds, sizeof in.fds[0] * in.n_fds);
        aidp_plan_free(&out);
}

/* A plan with no profile, no optional string, no fd but the four pid 1 needs. */
static void minimal_plan(struct aidp_plan *p)
{
        static char *a[] = {"true", NULL};
        *p = (struct aidp_plan){.argv = a,
                                .argc = 1,
                                .sync_fd = 3,
                                .err_fd = 4,
                                .lifeline_fd = 5,
                                .status_fd = 6,
                                .fds = {3, 4, 5, 6},
                                .n_fds = 4};
        int32_t *none[] = {&p->stdin_fd,       &p->stdout_fd,   &p->stderr_fd, &p->notify_fd_out,
                           &p->resolv_tree_fd, &p->cwd_tree_fd, &p->cgroup_fd, &p->net_fd,
                           &p->ipc_fd,         &p->uts_fd};
        for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
                *none[i] = -1;
}

Test(plan_codec, a_minimal_plan_round_trips)
{
        struct aidp_plan in, out;
        minimal_plan(&in);
        round_trip(&in, &out);
        cr_expect_str_eq(out.argv[0], "true");
        cr_expect_null(out.envp[0]);
        cr_expect_null(out.cwd);
        cr_expect_null(out.hostname);
        cr_expect_not(out.has_profile);
        cr_expect_null(out.bind_tree_fds);
        cr_expect_eq(out.stdout_fd, -1);
        aidp_plan_free(&out);
}

Test(plan_codec, every_cut_short_plan_is_refused)
{
        struct aidp_plan in, out;
        full_plan(&in);
        uint8_t *b;
        size_t len;
        encode(&in, &b, &len);
        for (size_t n = 0; n < len; n++) {
                aidp_error err = {0};
                cr_assert_eq(aidp_plan_decode(b, n, &out, &err), -1, "%zu of %zu bytes", n, len);
                cr_expect(strstr(err.msg, "plan: ") == err.msg, "%s", err.msg);
                cr_expect_null(out.own);
        }
        aidp_error err = {0};
        uint8_t *more = malloc(len + 1);
        memcpy(more, b, len);
        more[len] = 0;
        cr_expect_eq(aidp_plan_decode(more, len + 1, &out, &err), -1);
        cr_expect_str_eq(err.msg, "plan: end: bytes after the plan");
        free(more);
        free(b);
}

/* Encoded, then the bytes changed: each refused with its field named. */
static void refused(void (*change)(struct aidp_plan *), const char *msg)
{
        struct aidp_plan in, out;
        full_plan(&in);
        change(&in);
        uint8_t *b;
        size_t len;
        encode(&in, &b, &len);
        aidp_error err = {0};
        cr_expect_eq(aidp_plan_decode(b, len, &out, &err), -1, "accepted: %s", msg);
        cr_expect_str_eq(err.msg, msg);
        free(b);
}

static void unplaced_sync(struct aidp_plan *p)
{
        p->sync_fd = 99;
}
static void twice(struct aidp_plan *p)
{
        p->fds[1] = p->fds[0];
}
static void no_status(struct aidp_plan *p)
{
        p->status_fd = -1;
}
static void unplaced_mount(struct aidp_plan *p)
{
        p->mounts[1].fd = 98;
}
static void unplaced_tree(struct aidp_plan *p)
{
        trees_[1] = 97;
}
static struct aidp_bind relative_[] = {{.source = "srv", .target = NULL, .writable = false},
                                       {.source = "/srv/out", .target = "/out2", .writable = true}};
static void relative_bind(struct aidp_plan *p)
{
        p->profile.binds = relative_;
}
static void high_fd(struct aidp_plan *p)
{
        p->fds[p->n_fds - 1] = AIDP_PLAN_MAX_FD + 1;
        p->uts_fd = AIDP_PLAN_MAX_FD + 1;
}
static void no_argv(struct aidp_plan *p)
{
        p->argc = 0;
}

Test(plan_codec, inconsistent_plans_are_refused_naming_the_field)
{
        refused(unplaced_sync, "plan: fds: an fd field names no placed fd");
        refused(twice, "plan: fds: fd number placed twice");
        refused(no_status, "plan: fds: sync, err, lifeline or status fd missing");
        refused(unplaced_mount, "plan: fds: a mount's fd is not placed");
        refused(unplaced_tree, "plan: fds: a bind's tree is not placed");
        trees_[1] = -1;
        refused(relative_bind, "plan: binds: not an absolute path");
        refused(high_fd, "plan: fds: fd number out of range");
        struct aidp_plan p;
        full_plan(&p);
        no_argv(&p);
        uint8_t *b = NULL;
        size_t len;
        aidp_error err = {0};
        cr_expect_eq(aidp_plan_encode(&p, &b, &len, &err), -1);
        cr_expect_str_eq(err.msg, "plan: argv: too many");
}

/* Counts past their bound, a string with a NUL in it, a boolean that is
 * neither: patched into the bytes of a valid plan. */
Test(plan_codec, out_of_bounds_bytes_are_refused)
{
        struct aidp_plan in, out;
        minimal_plan(&in);
        uint8_t *b;
        size_t len;
        encode(&in, &b, &len);
        /* magic, version, argc (12 bytes), then argv[0]: length 4, "true", NUL */
        aidp_error err = {0};
        uint32_t big = AIDP_PLAN_MAX_STRINGS + 1;
        uint8_t *c = malloc(len);
        memcpy(c, b, len);
        memcpy(c + 8, &big, 4);
        cr_expect_eq(aidp_plan_decode(c, len, &out, &err), -1);
        cr_expect_str_eq(err.msg, "plan: argv: too many");
        memcpy(c, b, len);
        c[17] = '\0';
        cr_expect_eq(aidp_plan_decode(c, len, &out, &err), -1);
        cr_expect_str_eq(err.msg, "plan: argv: not a string");
        memcpy(c, b, len);
        c[20] = 'x';
        cr_expect_eq(aidp_plan_decode(c, len, &out, &err), -1);
        cr_expect_str_eq(err.msg, "plan: argv: not a string");
        /* envc (4 bytes at 21), then cwd's presence: a boolean */
        memcpy(c, b, len);
        c[25] = 2;
        cr_expect_eq(aidp_plan_decode(c, len, &out, &err), -1);
        cr_expect_str_eq(err.msg, "plan: cwd: not a boolean");
        memcpy(c, b, len);
        c[0] ^= 1;
        cr_expect_eq(aidp_plan_decode(c, len, &out, &err), -1);
        cr_expect_str_eq(err.msg, "plan: header: not a plan of this version");
        free(c);
        free(b);
}
