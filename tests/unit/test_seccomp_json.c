/* Import of OCI/Docker seccomp JSON, with Docker's own default profile as it is. */
#include <criterion/criterion.h>
#include <seccomp.h>
#include <stdio.h>

#include "profiles/internal.h"
#include "tests/unit/profile_testenv.h"

/* shared/ sits beside the clone (CI) or two levels up (a worktree). */
static const char *const fixtures[] = {
        AIDP_SOURCE_DIR "/../shared/fixtures/docker-default-seccomp.json",
        AIDP_SOURCE_DIR "/../../shared/fixtures/docker-default-seccomp.json",
};

static char *slurp(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "cannot open %s", path);
        char *b = malloc(1 << 20);
        *len = fread(b, 1, (1 << 20) - 1, f);
        b[*len] = '\0';
        fclose(f);
        return b;
}

static const char *fixture_path(void)
{
        /* The shared fixture, or the identical copy kept with the tests. */
        for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
                FILE *f = fopen(fixtures[i], "rb");
                if (f) {
                        fclose(f);
                        return fixtures[i];
                }
        }
        return AIDP_SOURCE_DIR "/tests/data/seccomp/docker-default-seccomp.json";
}

static enum aidp_sc_action effect(const struct aidp_sc_policy *p, const char *name, int *e)
{
        const struct aidp_sc_rule *r;
        enum aidp_sc_effect ef = aidp_profiles_sc_effect(p, name, &r);
        if (ef == AIDP_SC_EFFECT_UNCONDITIONAL) {
                *e = r->errno_ret;
                return r->action;
        }
        if (ef == AIDP_SC_EFFECT_CONDITIONAL)
                return AIDP_SC_ACTION_MAX; /* marker: depends on arguments */
        *e = p->default_errno;
        return p->default_action;
}

static void import(const char *caps[], size_t n_caps, unsigned kmaj, unsigned kmin, uint32_t arch,
                   struct aidp_sc_policy *out, size_t *skipped)
{
        size_t len;
        char *buf = slurp(fixture_path(), &len);
        struct aidp_profile_env env = {.arch = arch, .kernel_major = kmaj, .kernel_minor = kmin};
        aidp_error err = {0};
        int rc = aidp_profiles_seccomp_json("docker.json", buf, len, &env, (char *const *)caps,
                                            n_caps, out, skipped, &err);
        free(buf);
        cr_assert_eq(rc, 0, "%s", err.msg);
}

Test(seccomp_json, docker_default_without_capabilities)
{
        struct aidp_sc_policy p;
        size_t skipped;
        int e = 0;
        import(NULL, 0, 6, 1, SCMP_ARCH_X86_64, &p, &skipped);
        cr_assert_eq(p.default_action, AIDP_SC_ERRNO);
        cr_assert_eq(p.default_errno, EPERM);
        cr_assert_eq(effect(&p, "read", &e), AIDP_SC_ALLOW);
        cr_assert_eq(effect(&p, "arch_prctl", &e), AIDP_SC_ALLOW, "amd64-only rule included");
        cr_assert_eq(effect(&p, "ptrace", &e), AIDP_SC_ALLOW, "minKernel 4.8 satisfied");
        cr_assert_eq(effect(&p, "mount", &e), AIDP_SC_ERRNO, "CAP_SYS_ADMIN not kept");
        cr_assert_eq(effect(&p, "unshare", &e), AIDP_SC_ERRNO);
        cr_assert_eq(effect(&p, "reboot", &e), AIDP_SC_ERRNO);
        cr_assert_eq(effect(&p, "bpf", &e), AIDP_SC_ERRNO);
        cr_assert_eq(effect(&p, "clone", &e), AIDP_SC_ACTION_MAX,
                     "clone allowed only without namespace flags");
        cr_assert_eq(effect(&p, "clone3", &e), AIDP_SC_ERRNO);
        cr_assert_eq(e, ENOSYS);
        cr_assert_eq(effect(&p, "socket", &e), AIDP_SC_ACTION_MAX);
        cr_assert_eq(effect(&p, "chown32", &e), AIDP_SC_ERRNO, "x86 name skipped on x86_64");
        cr_assert_gt(skipped, 0);
        for (size_t i = 0; i < p.n_rules; i++)
                for (size_t j = 0; j < p.rules[i].n_names; j++)
                        cr_assert_geq(
                                aidp_profiles_syscall_nr(SCMP_ARCH_X86_64, p.rules[i].names[j]), 0,
                                "%s kept though not on x86_64", p.rules[i].names[j]);
        cr_assert_null(aidp_profiles_sc_contradiction(&p));
        aidp_sc_policy_free(&p);
}

Test(seccomp_json, docker_default_resolves_caps_arch_and_kernel)
{
        struct aidp_sc_policy p;
        size_t skipped;
        int e = 0;
        const char *admin[] = {"CAP_SYS_ADMIN"};
        import(admin, 1, 6, 1, SCMP_ARCH_X86_64, &p, &skipped);
        cr_assert_eq(effect(&p, "mount", &e), AIDP_SC_ALLOW, "includes caps CAP_SYS_ADMIN");
        cr_assert_eq(effect(&p, "clone", &e), AIDP_SC_ALLOW,
                     "excludes caps: the guarded clone rule is dropped, the plain one kept");
        cr_assert_eq(effect(&p, "clone3", &e), AIDP_SC_ALLOW);
        aidp_sc_policy_free(&p);

        import(NULL, 0, 4, 4, SCMP_ARCH_X86_64, &p, &skipped);
        cr_assert_eq(effect(&p, "ptrace", &e), AIDP_SC_ERRNO, "minKernel 4.8 not met on 4.4");
        aidp_sc_policy_free(&p);

        import(NULL, 0, 6, 1, SCMP_ARCH_AARCH64, &p, &skipped);
        cr_assert_eq(effect(&p, "arch_prctl", &e), AIDP_SC_ERRNO, "no arch_prctl on arm64");
        cr_assert_eq(aidp_profiles_syscall_nr(SCMP_ARCH_AARCH64, "open"), -2);
        aidp_sc_policy_free(&p);
}

struct bad_json {
        const char *json;
        const char *msg;
};

static const struct bad_json bad[] = {
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\",\n \"syscalls\": [}", "x.json:2:15: JSON syntax"},
        {"[1, 2]", "(top level): found an array, expected an object"},
        {"{\"syscalls\": []}", "defaultAction: found nothing"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"extra\": 1}",
         "(top level): unknown key 'extra'"},
        {"{\"defaultAction\": \"SCMP_ACT_BLOCK\"}", "defaultAction: found 'SCMP_ACT_BLOCK'"},
        {"{\"defaultAction\": \"SCMP_ACT_TRACE\"}", "needs a tracer"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 0}",
         "expected an errno number 1..4095"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"action\": "
         "\"SCMP_ACT_ERRNO\"}]}",
         "syscalls[0]: found no names"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [1], \"action\": "
         "\"SCMP_ACT_ERRNO\"}]}",
         "syscalls[0].names[0]: found a number, expected a string"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], "
         "\"action\": "
         "\"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 7, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
         "syscalls[0].args[0].index: found 7"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], "
         "\"action\": "
         "\"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": -1, \"op\": "
         "\"SCMP_CMP_EQ\"}]}]}",
         "value: found -1"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], "
         "\"action\": "
         "\"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, \"value\": 1, \"op\": "
         "\"SCMP_CMP_LIKE\"}]}]}",
         "op: found 'SCMP_CMP_LIKE'"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], "
         "\"action\": "
         "\"SCMP_ACT_ERRNO\", \"includes\": {\"caps\": [\"CAP_NOPE\"]}}]}",
         "includes.caps[0]: found 'CAP_NOPE'"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], "
         "\"action\": "
         "\"SCMP_ACT_ERRNO\", \"includes\": {\"minKernel\": \"four\"}}]}",
         "minKernel: found 'four'"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\"], "
         "\"action\": "
         "\"SCMP_ACT_ERRNO\"}, {\"names\": [\"read\"], \"action\": \"SCMP_ACT_KILL\"}]}",
         "contradictory rules for 'read'"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\"} {}", "x.json:1:37: JSON syntax"},
        {"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"/run/agent.sock\"}",
         "listenerPath: found a seccomp agent"},
};

Test(seccomp_json, bad_input)
{
        size_t failures = 0;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct aidp_sc_policy p;
                aidp_error err = {0};
                int rc = aidp_profiles_seccomp_json("x.json", bad[i].json, strlen(bad[i].json),
                                                    NULL, NULL, 0, &p, NULL, &err);
                if (rc == 0 || !strstr(err.msg, bad[i].msg) || err.status != AIDP_EXIT_CONFIG) {
                        cr_log_error("case %zu: %s\n  got:  rc=%d %s\n  want: %s", i, bad[i].json,
                                     rc, err.msg, bad[i].msg);
                        failures++;
                }
                if (rc == 0)
                        aidp_sc_policy_free(&p);
        }
        cr_assert_eq(failures, 0);
}

Test(seccomp_json, docker_import_explained)
{
        /* A profile importing the fixture as it is, then adjusting it. */
        const char *path = fixture_path();
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: docker}\n"
                 "seccomp:\n  import: %s\n  syscalls:\n    - {names: [ptrace], action: "
                 "errno(EPERM)}\n",
                 path);
        struct memfs fs = {.real_dir = "/"};
        struct aidp_profile_env env = memfs_env(&fs, NULL, 0);
        struct aidp_profile p;
        struct aidp_lint_list l = {0};
        aidp_error err = {0};
        cr_assert_eq(
                aidp_profile_load_buffer("docker.yaml", yaml, strlen(yaml), &env, &p, &l, &err), 0,
                "%s", err.msg);
        char *text = NULL;
        cr_assert_eq(aidp_profile_explain(&p, &env, &text, &err), 0);
        cr_assert(strstr(text, "  style       allowlist\n  default     errno(EPERM)\n  imported    "
                               "docker-default-seccomp.json\n"),
                  "%s", text);
        cr_assert(strstr(text, "    allow            "), "%s", text);
        cr_assert(strstr(text, "    errno(ENOSYS)    1 syscall\n"), "%s", text);
        cr_assert(strstr(text, "    allow clone if arg0 & 0x7e020000 == 0x0\n"), "%s", text);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "ptrace", NULL), AIDP_SC_EFFECT_DEFAULT,
                     "the adjustment took ptrace out of the import's allow rule (errno(EPERM) is "
                     "the default)");
        cr_assert_null(strstr(text, " ptrace "), "%s", text);
        const struct aidp_lint *n = find_lint(&l, "import-skipped-names");
        cr_assert(n && strstr(n->msg, "syscall names skipped"));
        for (size_t i = 0; i < l.n; i++)
                cr_assert_null(strstr(l.items[i].msg, "ptrace is"), "ptrace no longer allowed: %s",
                               l.items[i].msg);
        cr_assert(find_lint(&l, "seccomp-ptrace-allowed"), "process_vm_readv etc. still are");
        free(text);
        aidp_lint_list_free(&l);
        aidp_profile_free(&p);
}
