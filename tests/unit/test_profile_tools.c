/* explain (golden files), lint, diff, the learned-allowlist writer, and the
 * `aidp profile` command's exit statuses. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "profiles/internal.h"
#include "tests/unit/profile_testenv.h"

/* Golden files: tests/data/explain/<name>.txt. AIDP_UPDATE_GOLDEN=1 rewrites
 * them (review the diff before committing). Paths are relative to the
 * source tree so the output does not depend on where it is checked out. */
static const struct {
        const char *ref, *golden;
} golden[] = {
        {"baseline", "baseline.txt"},
        {"strict-cpu-train", "strict-cpu-train.txt"},
        {"gpu-train", "gpu-train.txt"},
        {"egress-example", "egress-example.txt"},
        {"tests/data/profiles/kitchen-sink.yaml", "kitchen-sink.txt"},
};

static struct aidp_profile_env source_env(struct memfs *fs)
{
        static const char *const search[] = {"profiles"};
        fs->real_dir = ".";
        return memfs_env(fs, search, 1);
}

static void init(void)
{
        cr_assert_eq(chdir(AIDP_SOURCE_DIR), 0);
}

static char *read_all(const char *path)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        char *b = calloc(1, 1 << 20);
        size_t n = fread(b, 1, (1 << 20) - 1, f);
        b[n] = '\0';
        fclose(f);
        return b;
}

Test(profile_tools, explain_matches_golden_files, .init = init)
{
        struct memfs fs = {0};
        struct aidp_profile_env env = source_env(&fs);
        bool update = getenv("AIDP_UPDATE_GOLDEN") != NULL;
        for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
                struct aidp_profile p;
                aidp_error err = {0};
                cr_assert_eq(aidp_profile_load(golden[i].ref, &env, &p, NULL, &err), 0, "%s: %s",
                             golden[i].ref, err.msg);
                char *text = NULL;
                cr_assert_eq(aidp_profile_explain(&p, &env, &text, &err), 0);
                char path[512];
                snprintf(path, sizeof path, "tests/data/explain/%s", golden[i].golden);
                if (update) {
                        FILE *f = fopen(path, "w");
                        cr_assert_not_null(f);
                        fputs(text, f);
                        fclose(f);
                }
                char *want = read_all(path);
                cr_assert_not_null(want, "missing golden file %s (run with AIDP_UPDATE_GOLDEN=1)",
                                   path);
                cr_assert_str_eq(text, want, "%s differs from %s", golden[i].ref, path);
                free(want);
                free(text);
                aidp_profile_free(&p);
        }
}

Test(profile_tools, shipped_profiles_are_clean, .init = init)
{
        static const char *const names[] = {"baseline", "strict-cpu-train", "gpu-train",
                                            "egress-example"};
        struct memfs fs = {0};
        struct aidp_profile_env env = source_env(&fs);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                struct aidp_profile p;
                struct aidp_lint_list l = {0};
                aidp_error err = {0};
                cr_assert_eq(aidp_profile_load(names[i], &env, &p, &l, &err), 0, "%s: %s", names[i],
                             err.msg);
                for (size_t j = 0; j < l.n; j++)
                        cr_assert_neq(l.items[j].level, AIDP_LINT_WARNING, "%s: %s", names[i],
                                      l.items[j].msg);
                cr_assert_eq(p.network.mode,
                             strcmp(names[i], "egress-example") ? AIDP_NET_NONE : AIDP_NET_EGRESS);
                cr_assert_eq(p.n_capabilities, 0);
                /* the namespace and ptrace doors are shut in all of them */
                const char *closed[] = {"unshare", "mount", "ptrace", "setns", "bpf", "keyctl"};
                for (size_t k = 0; k < sizeof closed / sizeof closed[0]; k++) {
                        const struct aidp_sc_rule *r;
                        enum aidp_sc_effect e = aidp_profiles_sc_effect(&p.seccomp, closed[k], &r);
                        enum aidp_sc_action a = e == AIDP_SC_EFFECT_UNCONDITIONAL
                                                        ? r->action
                                                        : p.seccomp.default_action;
                        cr_assert(e != AIDP_SC_EFFECT_CONDITIONAL && !aidp_profiles_sc_permits(a),
                                  "%s: %s is allowed", names[i], closed[k]);
                }
                aidp_lint_list_free(&l);
                aidp_profile_free(&p);
        }
}

Test(profile_tools, lint_reports_the_risky_parts_with_positions)
{
        const char *y =
                "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: risky}\n"
                "limits: {memory: unlimited, pids: unlimited, rlimits: {core: unlimited}}\n"
                "filesystem:\n  binds:\n    - {source: /srv/x, target: /x, writable: true}\n"
                "capabilities: [CAP_SYS_ADMIN]\n"
                "user: {allowRoot: true}\n"
                "seccomp:\n  syscalls:\n    - {names: [ptrace], action: allow}\n    - {names: "
                "[clone3], action: allow}\n"
                "    - {names: [getpid], action: allow}\n"
                "network:\n  mode: egress\n  egress:\n    - {cidr: 0.0.0.0/0, ports: [443]}\n    - "
                "{fqdn: a.example}\n";
        struct aidp_profile p;
        struct aidp_lint_list l = {0};
        aidp_error err = {0};
        cr_assert_eq(load_text(y, NULL, 0, &p, &l, &err), 0, "%s", err.msg);
        static const struct {
                const char *code, *where;
        } want[] = {
                {"capability-granted", "p.yaml:8:16"},
                {"writable-bind", "p.yaml:7:7"},
                {"egress-wide-open", "p.yaml:18:7"},
                {"egress-any-port", "p.yaml:19:7"},
                {"no-memory-limit", "p.yaml:4:18"},
                {"no-pids-limit", "p.yaml:4:35"},
                {"core-dumps", "p.yaml:4:56"},
                {"allow-root", "p.yaml:9:19"},
                {"seccomp-ptrace-allowed", "p.yaml:12:16"},
                {"seccomp-clone3-allowed", "p.yaml:13:16"},
                {"seccomp-redundant-rule", "p.yaml:12:7"},
                {"seccomp-denylist", ""},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
                const struct aidp_lint *it = find_lint(&l, want[i].code);
                cr_assert_not_null(it, "no %s lint", want[i].code);
                cr_assert_str_eq(it->where, want[i].where, "%s", want[i].code);
        }
        cr_assert_eq(find_lint(&l, "capability-granted")->level, AIDP_LINT_WARNING);
        cr_assert_eq(find_lint(&l, "seccomp-denylist")->level, AIDP_LINT_NOTE);
        aidp_lint_list_free(&l);
        aidp_profile_free(&p);
}

static bool has_line(const char *text, const char *line)
{
        size_t n = strlen(line);
        for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (!strncmp(p, line, n) && (p[n] == '\n' || p[n] == '\0'))
                        return true;
        return false;
}

Test(profile_tools, diff_says_what_loosens_and_tightens, .init = init)
{
        struct memfs fs = {0};
        struct aidp_profile_env env = source_env(&fs);
        struct aidp_profile a, b;
        aidp_error err = {0};
        cr_assert_eq(aidp_profile_load("strict-cpu-train", &env, &a, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(
                aidp_profile_load("tests/data/profiles/kitchen-sink.yaml", &env, &b, NULL, &err), 0,
                "%s", err.msg);
        char *text;
        size_t loosen;
        cr_assert_eq(aidp_profile_diff(&a, &b, &env, &text, &loosen, &err), 0);
        static const char *const lines[] = {
                "loosen limits.memory: 8 GiB -> 12 GiB",
                "tighten limits.cpus(m): 4000 -> 1500",
                "tighten limits.pids: 512 -> 256",
                "tighten limits.wallTime(s): 43200 -> 5400",
                "change limits.tmpfs./data: auto -> 20 GiB",
                "loosen limits.rlimits.nofile: 4096 -> 8192",
                "change limits.rlimits.stack: inherited -> unlimited",
                "loosen filesystem.binds /cache (from /srv/cache, writable): absent -> present",
                "tighten filesystem.masked /etc/machine-id: absent -> present",
                "tighten filesystem.bindCwd: yes -> no",
                "loosen devices /dev/fuse: absent -> present",
                "loosen capabilities CAP_NET_BIND_SERVICE: absent -> present",
                "change user.mode: caller -> fixed 2000:2000",
                "change seccomp.ptrace: errno(EPERM) -> kill-process",
                "loosen seccomp.mlockall: errno(EPERM) -> log",
                "loosen network.mode: none -> egress",
                "loosen network.egress udp 0.0.0.0/0 port any region eu-west-1: absent -> present",
                "change data.out: /out -> /results",
        };
        for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
                cr_assert(has_line(text, lines[i]), "missing line '%s' in:\n%s", lines[i], text);
        size_t count = 0;
        for (const char *p = text; (p = strstr(p, "loosen ")); p++)
                if (p == text || p[-1] == '\n')
                        count++;
        cr_assert_eq(loosen, count);
        free(text);
        /* no difference: empty text */
        cr_assert_eq(aidp_profile_diff(&a, &a, &env, &text, &loosen, &err), 0);
        cr_assert_str_eq(text, "");
        cr_assert_eq(loosen, 0);
        free(text);
        aidp_profile_free(&a);
        aidp_profile_free(&b);
}

Test(profile_tools, learned_allowlist_loads_and_allows_exactly_what_was_seen, .init = init)
{
        int nrs[] = {
                seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, "write"),
                seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, "read"),
                seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, "clone"),
                seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, "clone3"),
                seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, "read"),
        };
        struct memfs fs = {0};
        struct aidp_profile_env env = source_env(&fs);
        char *yaml;
        aidp_error err = {0};
        cr_assert_eq(aidp_profile_write_allowlist("learned", "baseline", nrs, 5, &env, &yaml, &err),
                     0, "%s", err.msg);
        struct aidp_profile p;
        struct aidp_lint_list l = {0};
        cr_assert_eq(
                aidp_profile_load_buffer("learned.yaml", yaml, strlen(yaml), &env, &p, &l, &err), 0,
                "%s\n%s", err.msg, yaml);
        cr_assert_eq(p.seccomp.default_action, AIDP_SC_ERRNO);
        const struct aidp_sc_rule *r;
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "read", &r), AIDP_SC_EFFECT_UNCONDITIONAL);
        cr_assert_eq(r->action, AIDP_SC_ALLOW);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "write", &r),
                     AIDP_SC_EFFECT_UNCONDITIONAL);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "clone", NULL),
                     AIDP_SC_EFFECT_CONDITIONAL);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "clone3", &r),
                     AIDP_SC_EFFECT_UNCONDITIONAL);
        cr_assert_eq(r->errno_ret, ENOSYS);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "getpid", NULL), AIDP_SC_EFFECT_DEFAULT,
                     "never seen: denied");
        cr_assert_eq(p.seccomp.n_rules, 3);
        cr_assert_eq(p.n_layers, 2);
        for (size_t j = 0; j < l.n; j++)
                cr_assert_neq(l.items[j].level, AIDP_LINT_WARNING, "%s", l.items[j].msg);
        aidp_lint_list_free(&l);
        aidp_profile_free(&p);
        free(yaml);
        /* clone3 alone (glibc's first choice), or clone alone: both rules,
         * because clone3 must answer ENOSYS for libc to use clone */
        const char *single[] = {"clone3", "clone"};
        for (size_t i = 0; i < 2; i++) {
                int nr[] = {seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, single[i])};
                cr_assert_eq(aidp_profile_write_allowlist("l3", NULL, nr, 1, &env, &yaml, &err), 0,
                             "%s", err.msg);
                cr_assert_eq(aidp_profile_load_buffer("l3.yaml", yaml, strlen(yaml), &env, &p, NULL,
                                                      &err),
                             0, "%s", err.msg);
                cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "clone", NULL),
                             AIDP_SC_EFFECT_CONDITIONAL);
                cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "clone3", &r),
                             AIDP_SC_EFFECT_UNCONDITIONAL);
                cr_assert_eq(r->errno_ret, ENOSYS);
                aidp_profile_free(&p);
                free(yaml);
        }
}

static int run(const char *cmd)
{
        int st = system(cmd);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(profile_tools, cli_exit_statuses, .init = init)
{
        char cmd[2048];
        const char *aidp = AIDP_BINARY_DIR "/aidp";
        snprintf(cmd, sizeof cmd, "%s profile check profiles/*.yaml >/dev/null", aidp);
        cr_assert_eq(run(cmd), 0);
        snprintf(cmd, sizeof cmd, "%s profile check --strict profiles/*.yaml >/dev/null", aidp);
        cr_assert_eq(run(cmd), 0, "shipped profiles have no warnings");
        snprintf(cmd, sizeof cmd,
                 "%s profile check tests/data/profiles/kitchen-sink.yaml >/dev/null", aidp);
        cr_assert_eq(run(cmd), 0, "warnings alone do not fail");
        snprintf(cmd, sizeof cmd,
                 "%s profile check --strict tests/data/profiles/kitchen-sink.yaml >/dev/null 2>&1",
                 aidp);
        cr_assert_eq(run(cmd), AIDP_EXIT_FAILED);
        snprintf(cmd, sizeof cmd,
                 "%s profile check profiles/baseline.yaml tests/data/profiles/bad-unit.yaml 2>&1 | "
                 "grep -q 'bad-unit.yaml:6:11: limits.memory: found'",
                 aidp);
        cr_assert_eq(run(cmd), 0, "error printed with its position");
        snprintf(cmd, sizeof cmd,
                 "%s profile check profiles/baseline.yaml tests/data/profiles/bad-unit.yaml "
                 ">/dev/null 2>&1",
                 aidp);
        cr_assert_eq(run(cmd), AIDP_EXIT_CONFIG);
        snprintf(cmd, sizeof cmd, "%s profile diff strict-cpu-train egress-example >/dev/null",
                 aidp);
        cr_assert_eq(run(cmd), AIDP_EXIT_FAILED, "egress loosens");
        snprintf(cmd, sizeof cmd, "%s profile diff egress-example strict-cpu-train >/dev/null",
                 aidp);
        cr_assert_eq(run(cmd), 0, "only tightens");
        snprintf(cmd, sizeof cmd, "%s profile explain nope >/dev/null 2>&1", aidp);
        cr_assert_eq(run(cmd), AIDP_EXIT_CONFIG);
        snprintf(cmd, sizeof cmd, "%s profile frobnicate >/dev/null 2>&1", aidp);
        cr_assert_eq(run(cmd), AIDP_EXIT_USAGE);
        snprintf(cmd, sizeof cmd,
                 "AIDP_PROFILE_PATH=tests/data/profiles %s profile explain kitchen-sink | grep -q "
                 "'^profile     kitchen-sink$'",
                 aidp);
        cr_assert_eq(run(cmd), 0, "AIDP_PROFILE_PATH is searched");
}

/* The whole output of a shell command (at most 64 KiB), and its status. */
static int capture(const char *cmd, char *out, size_t len)
{
        FILE *f = popen(cmd, "r");
        cr_assert_not_null(f, "%s", cmd);
        size_t n = fread(out, 1, len - 1, f);
        out[n] = '\0';
        int st = pclose(f);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_object *listed(json_object *arr, const char *name)
{
        json_object *hit = NULL;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *e = json_object_array_get_idx(arr, i), *n;
                if (json_object_object_get_ex(e, "name", &n) &&
                    !strcmp(json_object_get_string(n), name)) {
                        cr_assert_null(hit, "%s listed twice", name);
                        hit = e;
                }
        }
        return hit;
}

static const char *str_of(json_object *o, const char *key)
{
        json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* aidp profile list: each name a run can give --profile, once, with the
 * limits and file the loader gives it; one that does not load says why. */
Test(profile_tools, list_names_each_profile_with_its_limits, .init = init)
{
        static char out[65536];
        const char *aidp = AIDP_BINARY_DIR "/aidp";
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "AIDP_PROFILE_PATH=tests/data/profiles %s profile list --json",
                 aidp);
        cr_assert_eq(capture(cmd, out, sizeof out), 0, "%s", out);
        json_object *arr = json_tokener_parse(out);
        cr_assert(json_object_is_type(arr, json_type_array), "not a JSON array: %s", out);
        json_object *k = listed(arr, "kitchen-sink"), *v;
        cr_assert_not_null(k, "%s", out);
        cr_assert(json_object_object_get_ex(k, "memory_bytes", &v));
        cr_expect_eq(json_object_get_uint64(v), 12ull << 30);
        cr_assert(json_object_object_get_ex(k, "cpu_millis", &v));
        cr_expect_eq(json_object_get_uint64(v), 1500);
        cr_expect_str_eq(str_of(k, "network"), "egress");
        cr_expect(strstr(str_of(k, "source"), "tests/data/profiles/kitchen-sink.yaml"), "%s",
                  str_of(k, "source"));
        json_object *b = listed(arr, "baseline");
        cr_assert_not_null(b, "the library's own profiles are listed too: %s", out);
        cr_expect(strstr(str_of(b, "source"), "profiles/baseline.yaml"));
        json_object *bad = listed(arr, "bad-unit");
        cr_assert_not_null(bad);
        cr_expect(str_of(bad, "error") && strstr(str_of(bad, "error"), "bad-unit.yaml:6:11"),
                  "the load error with its position: %s", str_of(bad, "error"));
        json_object_put(arr);
        snprintf(cmd, sizeof cmd, "AIDP_PROFILE_PATH=tests/data/profiles %s profile list", aidp);
        cr_assert_eq(capture(cmd, out, sizeof out), 0, "%s", out);
        cr_expect(strstr(out, "\nkitchen-sink "), "%s", out);
        const char *line = strstr(out, "\nkitchen-sink ");
        cr_expect(line && strstr(line, "12 GiB") && strstr(line, "1.5 ") && strstr(line, "egress"),
                  "the text form: %s", out);
        cr_expect(strstr(out, "\nbad-unit ") && strstr(out, "not usable here: "), "%s", out);
        snprintf(cmd, sizeof cmd, "%s profile list extra >/dev/null 2>&1", aidp);
        cr_expect_eq(run(cmd), AIDP_EXIT_USAGE);
}
