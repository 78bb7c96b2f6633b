/* `extends`: merge rules, cycles, missing parents, diamonds. */
#include <criterion/criterion.h>
#include <sys/resource.h>

#include "profiles/internal.h"
#include "tests/unit/profile_testenv.h"

#define HDR(n) "apiVersion: aidp/v1\nkind: Profile\nmetadata:\n  name: " n "\n"

static const struct memfile lib[] = {
        {"lib/base.yaml",
         HDR("base") "limits: {memory: 2Gi, pids: 100, rlimits: {nofile: 64}}\n"
                     "filesystem:\n  binds:\n    - {source: /srv/a, target: /a}\n    - {source: "
                     "/srv/b, target: /b}\n  masked: [/etc/m1]\n"
                     "devices: [/dev/fuse]\n"
                     "capabilities: [CAP_CHOWN]\n"
                     "seccomp:\n  syscalls:\n    - {names: [ptrace, kcmp], action: kill-process}\n"
                     "network:\n  mode: egress\n  egress: [{cidr: 10.0.0.0/8, ports: [443]}]\n"},
        {"lib/mid.yaml",
         HDR("mid") "extends: base\nlimits: {memory: 3Gi}\ncapabilities: [CAP_KILL]\n"},
        {"lib/other.yaml", HDR("other") "extends: base\nlimits: {pids: 200}\n"},
        {"lib/loop-a.yaml", HDR("loop-a") "extends: loop-b\n"},
        {"lib/loop-b.yaml", HDR("loop-b") "extends: loop-c\n"},
        {"lib/loop-c.yaml", HDR("loop-c") "extends: loop-a\n"},
        {"lib/self.yaml", HDR("self") "extends: ./self.yaml\n"},
        {"lib/broken.yaml", HDR("broken") "limits: {memory: lots}\n"},
        {"lib/bad-parent.yaml", HDR("bad-parent") "extends: nowhere\n"},
        {"lib/dir/rel.yaml", HDR("rel") "extends: ../base.yaml\nlimits: {cpus: 3}\n"},
        {"lib/docker.json",
         "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
         "{\"names\": [\"read\", \"write\", \"exit_group\"], \"action\": \"SCMP_ACT_ALLOW\"},"
         "{\"names\": [\"mount\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"caps\": "
         "[\"CAP_SYS_ADMIN\"]}}]}"},
        {"lib/imp.yaml", HDR("imp") "seccomp: {import: docker.json}\n"},
};

static int load(const char *yaml, struct aidp_profile *p, struct aidp_lint_list *l, aidp_error *err)
{
        return load_text(yaml, lib, sizeof lib / sizeof lib[0], p, l, err);
}

Test(profile_merge, child_overrides_scalars_and_extends_lists)
{
        struct aidp_profile p;
        aidp_error err = {0};
        const char *y = HDR(
                "child") "extends: mid\n"
                         "limits: {pids: 50}\n"
                         "filesystem:\n  binds:\n    - {source: /srv/b2, target: /b, writable: "
                         "true}\n    - {source: /srv/c, target: /c}\n  masked: [/etc/m1, /etc/m2]\n"
                         "devices: [{path: /dev/fuse, optional: true}, /dev/net/tun]\n";
        cr_assert_eq(load(y, &p, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(p.limits.memory_bytes, 3ULL << 30, "from mid");
        cr_assert_eq(p.limits.pids, 50, "own");
        cr_assert_eq(p.limits.rlimits[RLIMIT_NOFILE].hard, 64, "from base");
        cr_assert_eq(p.n_binds, 3, "binds keyed by target");
        cr_assert_str_eq(p.binds[1].target, "/b");
        cr_assert_str_eq(p.binds[1].source, "/srv/b2", "child replaced the parent's /b");
        cr_assert(p.binds[1].writable);
        cr_assert_eq(p.n_masked, 2, "masked: union without duplicates");
        cr_assert_eq(p.n_devices, 2);
        cr_assert(p.devices[0].optional, "device entry replaced");
        cr_assert_eq(p.n_capabilities, 2, "capabilities: union");
        cr_assert_eq(p.network.mode, AIDP_NET_EGRESS, "network inherited");
        cr_assert_eq(p.network.n_rules, 1);
        cr_assert_eq(p.n_layers, 3);
        cr_assert_str_eq(p.layers[0], "base");
        cr_assert_str_eq(p.layers[1], "mid");
        cr_assert_str_eq(p.layers[2], "child");
        cr_assert_str_eq(p.name, "child");
        aidp_profile_free(&p);
}

Test(profile_merge, a_child_takes_over_each_syscall_it_names)
{
        struct aidp_profile p;
        aidp_error err = {0};
        /* base kills ptrace and kcmp; the child says only ptrace: kcmp keeps
         * base's rule, ptrace gets the child's, with no contradiction. */
        const char *y = HDR("child") "extends: base\nseccomp:\n  syscalls:\n    - {names: "
                                     "[ptrace], action: errno(EPERM)}\n"
                                     "    - {names: [mount], action: allow}\n";
        cr_assert_eq(load(y, &p, NULL, &err), 0, "%s", err.msg);
        const struct aidp_sc_rule *r;
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "ptrace", &r),
                     AIDP_SC_EFFECT_UNCONDITIONAL);
        cr_assert_eq(r->action, AIDP_SC_ERRNO);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "kcmp", &r), AIDP_SC_EFFECT_UNCONDITIONAL);
        cr_assert_eq(r->action, AIDP_SC_KILL_PROCESS);
        /* mount: the baseline denied it; allow equals the default and the rule
         * disappears, which means allowed. */
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "mount", NULL), AIDP_SC_EFFECT_DEFAULT);
        cr_assert_eq(p.seccomp.default_action, AIDP_SC_ALLOW);
        aidp_profile_free(&p);
}

Test(profile_merge, network_none_in_a_child_drops_inherited_egress)
{
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(load(HDR("child") "extends: base\nnetwork: none\n", &p, NULL, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(p.network.mode, AIDP_NET_NONE);
        cr_assert_eq(p.network.n_rules, 0);
        aidp_profile_free(&p);
        const char *more = HDR(
                "child") "extends: base\nnetwork:\n  mode: egress\n  egress: [{fqdn: a.example, "
                         "ports: [80]}, {cidr: 10.0.0.0/8, ports: [443]}]\n";
        cr_assert_eq(load(more, &p, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(p.network.n_rules, 2, "union without the duplicate");
        aidp_profile_free(&p);
}

Test(profile_merge, diamond_merges_the_common_parent_once)
{
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(load(HDR("d") "extends: [mid, other]\n", &p, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(p.n_layers, 4);
        cr_assert_str_eq(p.layers[0], "base");
        cr_assert_str_eq(p.layers[1], "mid");
        cr_assert_str_eq(p.layers[2], "other");
        cr_assert_str_eq(p.layers[3], "d");
        cr_assert_eq(p.limits.memory_bytes, 3ULL << 30);
        cr_assert_eq(p.limits.pids, 200, "later parent wins");
        aidp_profile_free(&p);
}

Test(profile_merge, relative_parent_paths_resolve_from_the_file)
{
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(load(HDR("r") "extends: lib/dir/rel.yaml\n", &p, NULL, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(p.limits.cpu_millis, 3000);
        cr_assert_eq(p.limits.memory_bytes, 2ULL << 30);
        aidp_profile_free(&p);
}

Test(profile_merge, cycles_are_errors)
{
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_lt(load(HDR("c") "extends: loop-a\n", &p, NULL, &err), 0);
        cr_assert_eq(err.status, AIDP_EXIT_CONFIG);
        cr_assert(strstr(err.msg, "lib/loop-c.yaml:5:10: extends: extends cycle: lib/loop-a.yaml "
                                  "-> lib/loop-b.yaml -> lib/loop-c.yaml -> lib/loop-a.yaml"),
                  "%s", err.msg);
        cr_assert_lt(load(HDR("c") "extends: self\n", &p, NULL, &err), 0);
        cr_assert(strstr(err.msg, "extends cycle: lib/self.yaml -> lib/self.yaml"), "%s", err.msg);
        /* a file extending itself directly */
        cr_assert_lt(load(HDR("c") "extends: p.yaml\n", &p, NULL, &err), 0);
        cr_assert(strstr(err.msg, "p.yaml:5:10: extends: extends cycle: p.yaml -> p.yaml"), "%s",
                  err.msg);
}

Test(profile_merge, missing_and_broken_parents_are_errors_with_both_positions)
{
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_lt(load(HDR("c") "extends: [base, bad-parent]\n", &p, NULL, &err), 0);
        cr_assert(strstr(err.msg,
                         "lib/bad-parent.yaml:5:10: extends: parent profile 'nowhere' not found"),
                  "%s", err.msg);
        cr_assert(strstr(err.msg, "in parent 'bad-parent' (p.yaml:5:17)"), "%s", err.msg);
        cr_assert_lt(load(HDR("c") "extends: [bad-parent, base]\n", &p, NULL, &err), 0,
                     "a later good parent does not hide the error");
        cr_assert(strstr(err.msg, "parent profile 'nowhere' not found"), "%s", err.msg);
        cr_assert_lt(load(HDR("c") "extends: broken\n", &p, NULL, &err), 0);
        cr_assert(strstr(err.msg, "lib/broken.yaml:5:18: limits.memory: found 'lots'"), "%s",
                  err.msg);
        cr_assert_str_eq(err.file, "lib/broken.yaml", "the position is the parent's");
        cr_assert_eq(err.line, 5);
}

Test(profile_merge, import_resolves_against_the_final_capabilities)
{
        struct aidp_profile p;
        aidp_error err = {0};
        const struct aidp_sc_rule *r;
        cr_assert_eq(load(HDR("c") "extends: imp\n", &p, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(p.seccomp.default_action, AIDP_SC_ERRNO);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "mount", NULL), AIDP_SC_EFFECT_DEFAULT,
                     "no CAP_SYS_ADMIN: mount denied");
        cr_assert_str_eq(p.seccomp_import, "lib/docker.json");
        aidp_profile_free(&p);
        /* The child grants CAP_SYS_ADMIN after the parent imported: the
         * import is resolved for the capabilities the sandbox really keeps. */
        cr_assert_eq(load(HDR("c") "extends: imp\ncapabilities: [CAP_SYS_ADMIN]\n", &p, NULL, &err),
                     0, "%s", err.msg);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "mount", &r),
                     AIDP_SC_EFFECT_UNCONDITIONAL);
        cr_assert_eq(r->action, AIDP_SC_ALLOW);
        aidp_profile_free(&p);
}

Test(profile_merge, load_by_name_uses_the_search_path_in_order)
{
        static const struct memfile files[] = {
                {"first/x.yaml", HDR("x-first") ""},
                {"second/x.yaml", HDR("x-second") ""},
                {"second/y.yaml", HDR("y") ""},
        };
        static const char *const search[] = {"first", "second"};
        struct memfs fs = {.files = files, .n_files = 3};
        struct aidp_profile_env env = memfs_env(&fs, search, 2);
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(aidp_profile_load("x", &env, &p, NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(p.name, "x-first");
        cr_assert_str_eq(p.source, "first/x.yaml");
        aidp_profile_free(&p);
        cr_assert_eq(aidp_profile_load("y", &env, &p, NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(p.source, "second/y.yaml");
        aidp_profile_free(&p);
        cr_assert_eq(aidp_profile_load("second/y.yaml", &env, &p, NULL, &err), 0, "%s", err.msg);
        aidp_profile_free(&p);
        cr_assert_lt(aidp_profile_load("z", &env, &p, NULL, &err), 0);
        cr_assert_str_eq(
                err.msg,
                "profile 'z' not found in the library (looked in: first/z.yaml, second/z.yaml; "
                "'aidp profile list' shows the profiles there)");
        cr_assert_eq(err.status, AIDP_EXIT_CONFIG);
        cr_assert_lt(aidp_profile_load("../etc/passwd", &env, &p, NULL, &err), 0);
        cr_assert_lt(aidp_profile_load("bad name", &env, &p, NULL, &err), 0);
        cr_assert(strstr(err.msg, "expected a library name"), "%s", err.msg);
}
