#pragma once
/* Generate, then apply (crun's libcrun_generate_seccomp / libcrun_apply_seccomp):
 * the BPF program is built by the supervisor before clone(), so the sandbox's
 * critical path only loads it. */
#include <linux/filter.h>
#include <stddef.h>

#include "common/error.h"
#include "profiles/seccomp_policy.h"

struct aidp_bpf {
        struct sock_filter *insns;
        size_t len;
};

/* Compile a policy for the native architecture with libseccomp's binary-tree
 * optimiser. Syscalls of any other architecture (i386 via int 0x80, x32 via
 * the x32 bit) fail with EPERM whatever the policy says. Unknown syscall names
 * are errors naming the rule. */
int aidp_seccomp_compile(const struct aidp_sc_policy *p, struct aidp_bpf *out, aidp_error *err);
void aidp_bpf_free(struct aidp_bpf *b);
/* The same filter as aidp_seccomp_compile, as libseccomp's PFC text (a
 * readable listing of the BPF program) in *text (caller frees). Needs no
 * privilege; the golden tests (tests/data/seccomp-pfc/) compare it. */
int aidp_seccomp_export_pfc(const struct aidp_sc_policy *p, char **text, aidp_error *err);
