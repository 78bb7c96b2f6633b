#define _GNU_SOURCE
#include "profiles/seccomp_compile.h"

#include <errno.h>
#include <stdbool.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(scmp_filter_ctx, seccomp_release)

static uint32_t to_scmp_action(enum aidp_sc_action a, int errno_ret)
{
        switch (a) {
        case AIDP_SC_ALLOW: return SCMP_ACT_ALLOW;
        case AIDP_SC_ERRNO: return SCMP_ACT_ERRNO((uint16_t)errno_ret);
        case AIDP_SC_KILL_PROCESS: return SCMP_ACT_KILL_PROCESS;
        case AIDP_SC_KILL_THREAD: return SCMP_ACT_KILL_THREAD;
        case AIDP_SC_TRAP: return SCMP_ACT_TRAP;
        case AIDP_SC_LOG: return SCMP_ACT_LOG;
        case AIDP_SC_NOTIFY: return SCMP_ACT_NOTIFY;
        case AIDP_SC_ACTION_MAX: break;
        }
        return SCMP_ACT_KILL_PROCESS;
}

static enum scmp_compare to_scmp_op(enum aidp_sc_op op)
{
        switch (op) {
        case AIDP_SC_OP_EQ: return SCMP_CMP_EQ;
        case AIDP_SC_OP_NE: return SCMP_CMP_NE;
        case AIDP_SC_OP_LT: return SCMP_CMP_LT;
        case AIDP_SC_OP_LE: return SCMP_CMP_LE;
        case AIDP_SC_OP_GT: return SCMP_CMP_GT;
        case AIDP_SC_OP_GE: return SCMP_CMP_GE;
        case AIDP_SC_OP_MASKED_EQ: return SCMP_CMP_MASKED_EQ;
        case AIDP_SC_OP_MAX: break;
        }
        return _SCMP_CMP_MIN;
}

static int add_rule(scmp_filter_ctx ctx, const struct aidp_sc_rule *r, size_t ri,
                    uint32_t def_action, aidp_error *err)
{
        uint32_t act = to_scmp_action(r->action, r->errno_ret);
        /* libseccomp refuses a rule whose action equals the default. Such a
         * rule changes nothing, so it is skipped rather than failed. */
        if (act == def_action)
                return 0;
        struct scmp_arg_cmp cmp[6];
        if (r->n_args > 6)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "seccomp rule %zu: more than 6 argument conditions", ri);
        for (size_t i = 0; i < r->n_args; i++) {
                if (r->args[i].index > 5)
                        return aidp_error_set(
                                err, AIDP_EXIT_CONFIG, EINVAL,
                                "seccomp rule %zu: argument index %u out of range 0-5", ri,
                                r->args[i].index);
                cmp[i] = (struct scmp_arg_cmp){
                        .arg = r->args[i].index,
                        .op = to_scmp_op(r->args[i].op),
                        .datum_a = r->args[i].value,
                        .datum_b = r->args[i].value2,
                };
        }
        for (size_t n = 0; n < r->n_names; n++) {
                int nr = seccomp_syscall_resolve_name(r->names[n]);
                if (nr == __NR_SCMP_ERROR)
                        return aidp_error_set(
                                err, AIDP_EXIT_CONFIG, EINVAL,
                                "seccomp rule %zu: unknown syscall '%s' for this architecture", ri,
                                r->names[n]);
                /* Negative numbers are pseudo-syscalls that do not exist on the
                 * native arch (e.g. a 32-bit-only call); nothing to filter. */
                if (nr < 0)
                        continue;
                int rc = seccomp_rule_add_array(ctx, act, nr, (unsigned)r->n_args, cmp);
                if (rc == -EEXIST)
                        continue;
                if (rc < 0)
                        return aidp_error_errno(err, AIDP_EXIT_CONFIG, -rc,
                                                "seccomp rule %zu: adding '%s'", ri, r->names[n]);
        }
        return 0;
}

/* The libseccomp context for a policy: the one place that decides what the
 * filter contains, so the BPF that is loaded and the PFC text that the golden
 * tests compare cannot drift apart. */
static int build_ctx(const struct aidp_sc_policy *p, scmp_filter_ctx *ret, aidp_error *err)
{
        uint32_t def = to_scmp_action(p->default_action, p->default_errno);
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(def);
        if (!ctx)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "seccomp_init failed");
        /* Only the native arch is in the filter; every other arch's syscalls
         * hit the bad-arch action. For x86_64 libseccomp also routes x32
         * (syscall numbers with bit 30 set) there. */
        int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM));
        if (rc == 0)
                rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        if (rc == 0)
                rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc, "seccomp_attr_set");
        for (size_t i = 0; i < p->n_rules; i++) {
                rc = add_rule(ctx, &p->rules[i], i, def, err);
                if (rc < 0)
                        return rc;
        }
        *ret = TAKE_PTR(ctx);
        return 0;
}

/* libseccomp exports to an fd only; a memfd keeps the result off disk. The
 * whole export is read back into a fresh buffer (len bytes, NUL-terminated). */
static int export_to_buffer(scmp_filter_ctx ctx, bool pfc, char **ret, size_t *ret_len,
                            aidp_error *err)
{
        _cleanup_close_ int fd = memfd_create(pfc ? "aidp-pfc" : "aidp-bpf", MFD_CLOEXEC);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "memfd_create");
        int rc = pfc ? seccomp_export_pfc(ctx, fd) : seccomp_export_bpf(ctx, fd);
        if (rc < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, -rc, "seccomp_export_%s",
                                        pfc ? "pfc" : "bpf");
        struct stat st;
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "fstat seccomp export");
        if (st.st_size <= 0 || st.st_size > (64 << 20))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "seccomp export: bad size %lld",
                                      (long long)st.st_size);
        _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "reading seccomp export");
        buf[st.st_size] = '\0';
        *ret_len = (size_t)st.st_size;
        *ret = TAKE_PTR(buf);
        return 0;
}

int aidp_seccomp_compile(const struct aidp_sc_policy *p, struct aidp_bpf *out, aidp_error *err)
{
        memset(out, 0, sizeof *out);
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        int rc = build_ctx(p, &ctx, err);
        if (rc < 0)
                return rc;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        if ((rc = export_to_buffer(ctx, false, &buf, &len, err)) < 0)
                return rc;
        if (len % sizeof(struct sock_filter) != 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EIO, "seccomp export: bad size %zu",
                                      len);
        /* The kernel refuses a longer program (EINVAL from seccomp()): say so
         * here, where the profile is known, not as a failed start (125). */
        if (len / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, E2BIG,
                                      "the seccomp filter compiles to %zu BPF instructions; the "
                                      "kernel loads at most %d: fewer argument conditions or "
                                      "rules",
                                      len / sizeof(struct sock_filter), BPF_MAXINSNS);
        out->len = len / sizeof(struct sock_filter);
        out->insns = (struct sock_filter *)TAKE_PTR(buf);
        return 0;
}

int aidp_seccomp_export_pfc(const struct aidp_sc_policy *p, char **text, aidp_error *err)
{
        *text = NULL;
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        int rc = build_ctx(p, &ctx, err);
        if (rc < 0)
                return rc;
        size_t len = 0;
        return export_to_buffer(ctx, true, text, &len, err);
}

void aidp_bpf_free(struct aidp_bpf *b)
{
        free(b->insns);
        b->insns = NULL;
        b->len = 0;
}
