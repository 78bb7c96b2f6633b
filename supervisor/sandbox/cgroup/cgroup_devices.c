#define _GNU_SOURCE
/* The device allowlist on cgroup v2: there is no devices.allow file there,
 * only a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup. The
 * program is generated from the same "c MAJOR:MINOR ACCESS" lines the v1
 * devices controller takes (crun does the same, libbpf is not needed for a
 * program this small), loaded with bpf(2) and attached to the run's cgroup;
 * it goes away with the cgroup. */
#include "supervisor/sandbox/cgroup/cgroup_devices.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

#define MAX_RULES 128
#define ANY       UINT32_MAX

struct dev_rule {
        uint32_t type;   /* BPF_DEVCG_DEV_CHAR or _BLOCK */
        uint32_t major;  /* ANY for '*' */
        uint32_t minor;  /* ANY for '*' */
        uint32_t access; /* BPF_DEVCG_ACC_* bits */
};

static int parse_number(const char *s, const char **end, uint32_t *out)
{
        if (*s == '*') {
                *out = ANY;
                *end = s + 1;
                return 0;
        }
        char *e;
        errno = 0;
        unsigned long v = strtoul(s, &e, 10);
        if (e == s || errno || v > 0xFFFFFFFEUL)
                return -EINVAL;
        *out = (uint32_t)v;
        *end = e;
        return 0;
}

/* "c 1:3 rwm", "b 8:* r", "c *:* m" */
static int parse_rule(const char *line, struct dev_rule *r)
{
        const char *s = line;
        if ((*s != 'c' && *s != 'b') || s[1] != ' ')
                return -EINVAL;
        r->type = *s == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK;
        s += 2;
        if (parse_number(s, &s, &r->major) < 0 || *s++ != ':' ||
            parse_number(s, &s, &r->minor) < 0 || *s++ != ' ')
                return -EINVAL;
        r->access = 0;
        for (; *s; s++) {
                switch (*s) {
                case 'r': r->access |= BPF_DEVCG_ACC_READ; break;
                case 'w': r->access |= BPF_DEVCG_ACC_WRITE; break;
                case 'm': r->access |= BPF_DEVCG_ACC_MKNOD; break;
                default: return -EINVAL;
                }
        }
        return r->access ? 0 : -EINVAL;
}

/* Minimal instruction builders (the kernel's are not in the uapi headers). */
static struct bpf_insn ldx_w(int dst, int src, int16_t off)
{
        return (struct bpf_insn){
                .code = BPF_LDX | BPF_W | BPF_MEM, .dst_reg = dst, .src_reg = src, .off = off};
}
static struct bpf_insn alu_imm(int op, int dst, int32_t imm)
{
        return (struct bpf_insn){.code = BPF_ALU | op | BPF_K, .dst_reg = dst, .imm = imm};
}
static struct bpf_insn mov_reg(int dst, int src)
{
        return (struct bpf_insn){.code = BPF_ALU | BPF_MOV | BPF_X, .dst_reg = dst, .src_reg = src};
}
static struct bpf_insn mov_imm(int dst, int32_t imm)
{
        return (struct bpf_insn){.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = dst, .imm = imm};
}
static struct bpf_insn jne_imm(int dst, int32_t imm, int16_t off)
{
        return (struct bpf_insn){
                .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = dst, .off = off, .imm = imm};
}
static struct bpf_insn exit_insn(void)
{
        return (struct bpf_insn){.code = BPF_JMP | BPF_EXIT};
}

/* r2 = type, r3 = access, r4 = major, r5 = minor; per rule a block that jumps
 * to the next block on any mismatch and returns 1 on a match; the end
 * returns 0 (deny). */
static size_t generate(const struct dev_rule *rules, size_t n, struct bpf_insn *p)
{
        size_t i = 0;
        p[i++] = ldx_w(2, 1, 0); /* access_type */
        p[i++] = mov_reg(3, 2);
        p[i++] = alu_imm(BPF_AND, 2, 0xFFFF); /* type */
        p[i++] = alu_imm(BPF_RSH, 3, 16);     /* access */
        p[i++] = ldx_w(4, 1, 4);              /* major */
        p[i++] = ldx_w(5, 1, 8);              /* minor */
        for (size_t k = 0; k < n; k++) {
                const struct dev_rule *r = &rules[k];
                size_t len = 1 + (r->major != ANY) + (r->minor != ANY) + 3 + 2;
                size_t start = i;
                /* offsets are relative to the next instruction; the block's
                 * end is start + len */
#define SKIP() ((int16_t)(start + len - (i + 1)))
                p[i] = jne_imm(2, (int32_t)r->type, 0);
                p[i].off = SKIP();
                i++;
                if (r->major != ANY) {
                        p[i] = jne_imm(4, (int32_t)r->major, 0);
                        p[i].off = SKIP();
                        i++;
                }
                if (r->minor != ANY) {
                        p[i] = jne_imm(5, (int32_t)r->minor, 0);
                        p[i].off = SKIP();
                        i++;
                }
                /* every requested access bit must be allowed */
                p[i++] = mov_reg(6, 3);
                p[i++] = alu_imm(BPF_AND, 6, (int32_t)~r->access);
                p[i] = jne_imm(6, 0, 0);
                p[i].off = SKIP();
                i++;
#undef SKIP
                p[i++] = mov_imm(0, 1);
                p[i++] = exit_insn();
        }
        p[i++] = mov_imm(0, 0);
        p[i++] = exit_insn();
        return i;
}

int aidp_cgroup_devices_attach(int cgroup_fd, const char *const *allow, aidp_error *err)
{
        struct dev_rule rules[MAX_RULES];
        size_t n = 0;
        for (; allow[n]; n++) {
                if (n >= MAX_RULES)
                        return aidp_error_set(err, AIDP_EXIT_CONFIG, E2BIG,
                                              "more than %d device rules", MAX_RULES);
                if (parse_rule(allow[n], &rules[n]) < 0)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL,
                                              "bad device rule '%s'", allow[n]);
        }
        struct bpf_insn prog[8 + MAX_RULES * 10];
        size_t len = generate(rules, n, prog);
        char log[4096] = "";
        union bpf_attr a;
        memset(&a, 0, sizeof a);
        a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        a.insns = (uint64_t)(uintptr_t)prog;
        a.insn_cnt = (uint32_t)len;
        a.license = (uint64_t)(uintptr_t) "GPL";
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = sizeof log;
        a.log_level = 1;
        _cleanup_close_ int pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
        if (pfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "cgroup v2: loading the device program%s%s",
                                        log[0] ? ": " : "", log);
        memset(&a, 0, sizeof a);
        a.target_fd = (uint32_t)cgroup_fd;
        a.attach_bpf_fd = (uint32_t)pfd;
        a.attach_type = BPF_CGROUP_DEVICE;
        if (syscall(SYS_bpf, BPF_PROG_ATTACH, &a, sizeof a) < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno,
                                        "cgroup v2: attaching the device program");
        return 0;
}
