/* Parser tests: every section read into the model, and a table of bad inputs
 * with the exact position and message each must produce. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include "profiles/internal.h"
#include "tests/unit/profile_testenv.h"

#define HDR "apiVersion: aidp/v1\nkind: Profile\nmetadata:\n  name: t\n"

static const struct aidp_sc_rule *rule_for(const struct aidp_sc_policy *p, const char *name)
{
        const struct aidp_sc_rule *r = NULL;
        aidp_profiles_sc_effect(p, name, &r);
        return r;
}

Test(profile_parse, defaults_without_sections)
{
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(load_text(HDR, NULL, 0, &p, NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(p.name, "t");
        cr_assert_str_eq(p.source, "p.yaml");
        cr_assert_eq(p.limits.memory_bytes, 4ULL << 30);
        cr_assert_eq(p.limits.cpu_millis, 2000);
        cr_assert_eq(p.network.mode, AIDP_NET_NONE);
        cr_assert_eq(p.n_capabilities, 0);
        cr_assert_eq(p.seccomp.default_action, AIDP_SC_ALLOW, "built-in baseline is a denylist");
        const struct aidp_sc_rule *r = rule_for(&p.seccomp, "mount");
        cr_assert(r && r->action == AIDP_SC_ERRNO && r->errno_ret == EPERM);
        cr_assert_eq(p.n_layers, 1);
        aidp_profile_free(&p);
}

Test(profile_parse, every_section)
{
        const char *y = HDR
                "  description: all of it\n"
                "limits:\n"
                "  memory: 8g\n"
                "  cpus: 500m\n"
                "  pids: 300\n"
                "  wallTime: 1h30m\n"
                "  tmpfs: {/tmp: 64Mi, /scratch: 2GB, /out: 1.5Gi, /data: auto}\n"
                "  rlimits:\n"
                "    nofile: {soft: 1024, hard: 4096}\n"
                "    stack: 8Mi\n"
                "    memlock: unlimited\n"
                "filesystem:\n"
                "  binds:\n"
                "    - {source: /srv/models, target: /models}\n"
                "    - {source: /srv/cache, writable: true}\n"
                "  masked: [/etc/secret]\n"
                "  bindCwd: false\n"
                "devices:\n"
                "  - /dev/fuse\n"
                "  - {path: /dev/nvidia0, optional: true}\n"
                "user: {mode: fixed, uid: 1000, gid: 1001, defaultUid: 65000, defaultGid: 65001}\n"
                "capabilities: [cap_net_bind_service, CAP_CHOWN]\n"
                "seccomp:\n"
                "  default: errno(EACCES)\n"
                "  style: allowlist\n"
                "  syscalls:\n"
                "    - {names: [read, write], action: allow}\n"
                "    - names: [ioctl]\n"
                "      action: allow\n"
                "      args: [{index: 1, op: ne, value: 0x5412}]\n"
                "    - names: [clone]\n"
                "      action: allow\n"
                "      args: [{index: 0, op: masked-eq, mask: 0x7e020000, value: 0}]\n"
                "    - {names: [ptrace], action: kill-process}\n"
                "network:\n"
                "  mode: egress\n"
                "  egress:\n"
                "    - {cidr: 10.0.0.0/8, ports: [443, 8000-8100], protocol: tcp, region: "
                "eu-west-1}\n"
                "    - {fqdn: PyPI.Internal.Example}\n"
                "    - {cidr: '2001:db8::1'}\n"
                "    - {fqdn: '*.Mirror.Example'}\n"
                "data: {data: /input, scratch: /work, out: /results}\n";
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(load_text(y, NULL, 0, &p, NULL, &err), 0, "%s", err.msg);
        cr_assert_str_eq(p.description, "all of it");
        cr_assert_eq(p.limits.memory_bytes, 8ULL << 30);
        cr_assert_eq(p.limits.cpu_millis, 500);
        cr_assert_eq(p.limits.pids, 300);
        cr_assert_eq(p.limits.wall_seconds, 5400);
        cr_assert_eq(p.limits.tmp_bytes, 64ULL << 20);
        cr_assert_eq(p.limits.scratch_bytes, 2000000000ULL); /* GB: decimal */
        cr_assert_eq(p.limits.out_bytes, 3ULL << 29);
        cr_assert_eq(p.limits.data_bytes, 0);
        cr_assert(p.limits.rlimits[RLIMIT_NOFILE].set);
        cr_assert_eq(p.limits.rlimits[RLIMIT_NOFILE].soft, 1024);
        cr_assert_eq(p.limits.rlimits[RLIMIT_NOFILE].hard, 4096);
        cr_assert_eq(p.limits.rlimits[RLIMIT_STACK].hard, 8ULL << 20);
        cr_assert_eq(p.limits.rlimits[RLIMIT_MEMLOCK].hard, UINT64_MAX);
        cr_assert(p.limits.rlimits[RLIMIT_CORE].set && p.limits.rlimits[RLIMIT_CORE].hard == 0,
                  "default core 0 kept");
        cr_assert_eq(p.n_binds, 2);
        cr_assert_str_eq(p.binds[0].source, "/srv/models");
        cr_assert_str_eq(p.binds[0].target, "/models");
        cr_assert_not(p.binds[0].writable);
        cr_assert_str_eq(p.binds[1].target, "/srv/cache");
        cr_assert(p.binds[1].writable);
        cr_assert_eq(p.n_masked, 1);
        cr_assert_not(p.bind_cwd);
        cr_assert_eq(p.n_devices, 2);
        cr_assert_str_eq(p.devices[0].path, "/dev/fuse");
        cr_assert(p.devices[1].optional);
        cr_assert_eq(p.user.mode, AIDP_USER_FIXED);
        cr_assert_eq(p.user.uid, 1000);
        cr_assert_eq(p.user.gid, 1001);
        cr_assert_eq(p.user.default_uid, 65000);
        cr_assert_eq(p.n_capabilities, 2);
        cr_assert_str_eq(p.capabilities[0], "CAP_NET_BIND_SERVICE");
        cr_assert_str_eq(p.capabilities[1], "CAP_CHOWN");
        cr_assert_eq(p.seccomp.default_action, AIDP_SC_ERRNO);
        cr_assert_eq(p.seccomp.default_errno, EACCES);
        /* the inherited baseline deny rules now equal... no: EPERM != EACCES, they stay */
        const struct aidp_sc_rule *r = rule_for(&p.seccomp, "read");
        cr_assert(r && r->action == AIDP_SC_ALLOW);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "ioctl", NULL),
                     AIDP_SC_EFFECT_CONDITIONAL);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "clone", NULL),
                     AIDP_SC_EFFECT_CONDITIONAL);
        for (size_t i = 0; i < p.seccomp.n_rules; i++)
                if (p.seccomp.rules[i].n_args && !strcmp(p.seccomp.rules[i].names[0], "clone")) {
                        cr_assert_eq(p.seccomp.rules[i].action, AIDP_SC_ALLOW,
                                     "the child's clone rule replaced the baseline's");
                        cr_assert_eq(p.seccomp.rules[i].args[0].op, AIDP_SC_OP_MASKED_EQ);
                        cr_assert_eq(p.seccomp.rules[i].args[0].value, 0x7e020000);
                        cr_assert_eq(p.seccomp.rules[i].args[0].value2, 0);
                }
        r = rule_for(&p.seccomp, "ptrace");
        cr_assert(r && r->action == AIDP_SC_KILL_PROCESS);
        cr_assert_eq(p.network.mode, AIDP_NET_EGRESS);
        cr_assert_eq(p.network.n_rules, 5, "two ports of the first rule + fqdn + v6 + *.suffix");
        cr_assert_str_eq(p.network.rules[4].fqdn, "*.mirror.example");
        cr_assert_str_eq(p.network.rules[0].cidr, "10.0.0.0/8");
        cr_assert_eq(p.network.rules[0].port_min, 443);
        cr_assert_eq(p.network.rules[1].port_min, 8000);
        cr_assert_eq(p.network.rules[1].port_max, 8100);
        cr_assert_eq(p.network.rules[0].protocol, IPPROTO_TCP);
        cr_assert_str_eq(p.network.rules[0].region, "eu-west-1");
        cr_assert_str_eq(p.network.rules[2].fqdn, "pypi.internal.example");
        cr_assert_eq(p.network.rules[2].port_min, 0);
        cr_assert_str_eq(p.network.rules[3].cidr, "2001:db8::1/128");
        cr_assert_str_eq(p.paths.data, "/input");
        cr_assert_str_eq(p.paths.scratch, "/work");
        cr_assert_str_eq(p.paths.out, "/results");
        aidp_profile_free(&p);
}

struct bad_case {
        const char *yaml;   /* after HDR unless it starts with '!' */
        unsigned line, col; /* 0 = no position expected */
        const char *msg;    /* substring of the message */
};

/* Lines are counted in the full text: HDR is 4 lines. */
static const struct bad_case bad[] = {
        {"!apiVersion: aidp/v2\nkind: Profile\nmetadata: {name: t}\n", 1, 13,
         "apiVersion: found 'aidp/v2', expected 'aidp/v1'"},
        {"!apiVersion: aidp/v1\nkind: Policy\nmetadata: {name: t}\n", 2, 7,
         "kind: found 'Policy', expected 'Profile'"},
        {"!apiVersion: aidp/v1\nkind: Profile\n", 1, 1,
         "metadata: found nothing, expected a mapping with name"},
        {"!apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: 'bad name'}\n", 3, 18,
         "metadata.name: found 'bad name'"},
        {"!- just\n- a list\n", 1, 1, "found a list, expected a mapping"},
        {"!", 1, 1, "found an empty file"},
        {"limts:\n  memory: 1Gi\n", 5, 1,
         "limts: unknown key 'limts', expected one of: apiVersion, kind, metadata, extends, "
         "limits"},
        {"limits:\n  memroy: 1Gi\n", 6, 3, "limits.memroy: unknown key 'memroy'"},
        {"limits:\n  memory: 8Gx\n", 6, 11,
         "limits.memory: found '8Gx', expected a size such as 8Gi"},
        {"limits:\n  memory: 1Gi\n  memory: 2Gi\n", 7, 3,
         "limits.memory: found the key 'memory' twice"},
        {"limits:\n  memory: [1]\n", 6, 11, "limits.memory: found a list, expected a size"},
        {"limits:\n  memory: 100\n", 6, 11, "expected at least 4Mi"},
        {"limits:\n  cpus: 0.0001\n", 6, 9, "limits.cpus: found '0.0001'"},
        {"limits:\n  cpus: 2x\n", 6, 9, "limits.cpus: found '2x', expected a cpu count"},
        {"limits:\n  wallTime: 2hours\n", 6, 13,
         "limits.wallTime: found '2hours', expected a duration"},
        {"limits:\n  wallTime: 30m2h\n", 6, 13, "limits.wallTime: found '30m2h'"},
        {"limits:\n  pids: -5\n", 6, 9, "limits.pids: found '-5'"},
        {"limits:\n  tmpfs: {/var: 1Gi}\n", 6, 11,
         "limits.tmpfs./var: unknown key '/var', expected one of: /tmp, /scratch, /out, /data, "
         "/dev/shm"},
        {"limits:\n  rlimits: {nofiles: 10}\n", 6, 13, "unknown rlimit 'nofiles'"},
        {"limits:\n  rlimits: {nofile: {soft: 10, hard: 5}}\n", 6, 28,
         "soft limit above the hard limit"},
        {"limits:\n  rlimits: {nofile: {soft: 10}}\n", 6, 21, "expected both soft and hard"},
        {"filesystem:\n  binds:\n    - {source: relative/path}\n", 7, 16,
         "filesystem.binds[0].source: found 'relative/path', expected an absolute path"},
        {"filesystem:\n  binds:\n    - {source: /a/../etc}\n", 7, 16,
         "expected an absolute path without '.', '..'"},
        {"filesystem:\n  binds:\n    - {source: /x, target: /proc/self}\n", 7, 28,
         "expected a path outside /, /proc, /dev, /sys"},
        {"filesystem:\n  binds:\n    - {source: /x, target: /out/x}\n", 0, 0,
         "filesystem.binds: found target '/out/x' overlapping the sandbox's own mount /out"},
        {"filesystem:\n  binds:\n    - {source: /x, writable: yes}\n", 7, 30,
         "found 'yes', expected true or false"},
        {"filesystem:\n  bindCwd: 1\n", 6, 12,
         "filesystem.bindCwd: found '1', expected true or false"},
        {"devices: [/etc/passwd]\n", 5, 11,
         "devices[0]: found '/etc/passwd', expected a character device path under /dev/"},
        {"devices: [{path: /dev/x, optinal: true}]\n", 5, 26,
         "devices[0].optinal: unknown key 'optinal'"},
        {"user: {mode: fixed, uid: 0, gid: 0}\n", 0, 0,
         "user: found uid/gid 0, expected an unprivileged id"},
        {"user: {mode: fixed, uid: 1000}\n", 0, 0, "found mode fixed without gid"},
        {"user: {mode: root}\n", 5, 14, "user.mode: found 'root', expected caller or fixed"},
        {"user: {uid: 4294967295}\n", 5, 13, "user.uid: found '4294967295', expected a numeric id"},
        {"capabilities: [CAP_SYS_ADMN]\n", 5, 16,
         "capabilities[0]: found 'CAP_SYS_ADMN', expected a capability name"},
        {"capabilities: CAP_SYS_ADMIN\n", 5, 15,
         "capabilities: found 'CAP_SYS_ADMIN', expected a list of capability names"},
        {"seccomp:\n  syscalls:\n    - {names: [mmap3], action: allow}\n", 7, 16,
         "seccomp.syscalls[0].names[0]: unknown syscall 'mmap3', expected a syscall name known to "
         "libseccomp"},
        {"seccomp:\n  syscalls:\n    - {names: [read], action: deny}\n", 7, 31,
         "seccomp.syscalls[0].action: found 'deny', expected allow, log, errno("},
        {"seccomp:\n  syscalls:\n    - {names: [read], action: errno(EFOO)}\n", 7, 31,
         "found 'errno(EFOO)'"},
        {"seccomp:\n  syscalls:\n    - {names: [read]}\n", 7, 7,
         "seccomp.syscalls[0].action: found nothing"},
        /* an error in an early list item is not lost by later good items */
        {"seccomp:\n  syscalls:\n    - {names: [read]}\n    - {names: [write], action: allow}\n", 7,
         7, "seccomp.syscalls[0].action: found nothing"},
        {"network:\n  mode: egress\n  egress: [{cidr: 10.0.0.0/8, ports: [0, 443]}]\n", 7, 39,
         "ports[0]: found '0'"},
        {"seccomp:\n  syscalls:\n    - {names: [], action: allow}\n", 7, 15,
         "found an empty list, expected at least one syscall name"},
        {"seccomp:\n  syscalls:\n    - {names: [read, read], action: allow}\n", 7, 22,
         "found 'read' twice in this rule"},
        {"seccomp:\n  syscalls:\n    - {names: [read], action: allow}\n    - {names: [write, "
         "read], "
         "action: errno(EPERM)}\n",
         8, 23,
         "seccomp.syscalls[1].names[1]: contradictory rules for 'read': also in "
         "seccomp.syscalls[0] "
         "(line 7)"},
        {"seccomp:\n  syscalls:\n    - {names: [socket], action: allow}\n    - {names: [socket], "
         "action: errno(EPERM), args: [{index: 0, op: eq, value: 16}]}\n",
         8, 16, "contradictory rules for 'socket'"},
        {"seccomp:\n  syscalls:\n    - {names: [socket], action: allow, args: [{index: 0, op: eq, "
         "value: 1}, {index: 0, op: eq, value: 2}]}\n",
         7, 77, "found a second condition on arg0"},
        {"seccomp:\n  syscalls:\n    - {names: [socket], action: allow, args: [{index: 6, op: eq, "
         "value: 1}]}\n",
         7, 55, "args[0].index: found '6', expected an argument index 0..5"},
        {"seccomp:\n  syscalls:\n    - {names: [socket], action: allow, args: [{index: 0, op: "
         "like, "
         "value: 1}]}\n",
         7, 62, "args[0].op: found 'like'"},
        {"seccomp:\n  syscalls:\n    - {names: [socket], action: allow, args: [{index: 0, op: eq, "
         "value: 1, mask: 3}]}\n",
         7, 82, "found a mask, expected it only with op: masked-eq"},
        {"seccomp:\n  syscalls:\n    - {names: [clone], action: allow, args: [{index: 0, op: "
         "masked-eq, mask: 1, value: 2}]}\n",
         7, 88, "found value bits outside the mask"},
        {"seccomp:\n  default: allow\n  style: allowlist\n", 6, 12,
         "seccomp.default: found 'allow' with style allowlist, expected a denying default"},
        {"seccomp:\n  style: whitelist\n", 6, 10,
         "seccomp.style: found 'whitelist', expected allowlist or denylist"},
        {"seccomp:\n  import: nope.json\n", 6, 11,
         "seccomp.import: found 'nope.json', which does not exist"},
        {"network: open\n", 5, 10, "network: found 'open', expected none or egress"},
        {"network:\n  mode: none\n  egress: [{cidr: 10.0.0.0/8}]\n", 7, 11,
         "found egress rules with mode none"},
        {"network:\n  mode: egress\n  egress: [{cidr: 10.0.0.1/8}]\n", 7, 19,
         "network.egress[0].cidr: found '10.0.0.1/8' with host bits set"},
        {"network:\n  mode: egress\n  egress: [{cidr: 10.0.0.0/33}]\n", 7, 19,
         "found '10.0.0.0/33', expected an IPv4 or IPv6 CIDR"},
        {"network:\n  mode: egress\n  egress: [{cidr: 300.1.1.1}]\n", 7, 19, "found '300.1.1.1'"},
        {"network:\n  mode: egress\n  egress: [{cidr: 10.0.0.0/8, ports: [0]}]\n", 7, 39,
         "network.egress[0].ports[0]: found '0', expected a port 1..65535"},
        {"network:\n  mode: egress\n  egress: [{cidr: 10.0.0.0/8, ports: [70000]}]\n", 7, 39,
         "found '70000'"},
        {"network:\n  mode: egress\n  egress: [{cidr: 10.0.0.0/8, ports: [9000-8000]}]\n", 7, 39,
         "found '9000-8000'"},
        {"network:\n  mode: egress\n  egress: [{cidr: 10.0.0.0/8, protocol: icmp}]\n", 7, 41,
         "protocol: found 'icmp', expected tcp, udp or any"},
        {"network:\n  mode: egress\n  egress: [{fqdn: 'a.*.example.com'}]\n", 7, 19,
         "expected a fully qualified host name"},
        {"network:\n  mode: egress\n  egress: [{fqdn: '*.com'}]\n", 7, 19,
         "expected a fully qualified host name"},
        {"network:\n  mode: egress\n  egress: [{fqdn: 'localhost'}]\n", 7, 19,
         "expected a fully qualified host name"},
        {"network:\n  mode: egress\n  egress: [{fqdn: a.example, cidr: 10.0.0.0/8}]\n", 7, 12,
         "found both cidr and fqdn, expected exactly one"},
        {"network:\n  mode: egress\n  egress: [{cidr: 10.0.0.0/8, region: EU_West}]\n", 7, 39,
         "region: found 'EU_West'"},
        {"data: {out: /scratch/out}\n", 0, 0, "data.out: found '/scratch/out' inside data.scratch"},
        {"data: {out: /usr/out}\n", 5, 13, "data.out: found '/usr/out', expected a path outside"},
        {"limits: &a {memory: 1Gi}\n", 5, 9, "YAML anchors (&a) are not supported"},
        {"limits: {memory: 1Gi\n", 6, 1, "YAML syntax"},
        {"limits:\n\tmemory: 1Gi\n", 6, 1, "YAML syntax"},
        {"extends: missing\n", 5, 10,
         "extends: parent profile 'missing' not found (looked in: lib/missing.yaml)"},
        {"extends: [ok, ../x/../gone.yaml]\n", 5, 15,
         "extends[1]: parent profile '../x/../gone.yaml' not found (looked in: ../gone.yaml)"},
        {"extends: 'a b'\n", 5, 10, "extends: found 'a b', expected a profile name"},
};

static const struct memfile lib[] = {
        {"lib/ok.yaml", "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: ok}\n"},
};

/* One loop rather than Criterion's parameterized tests: those hand the
 * table to a fresh process, where the string pointers in it are stale. */
Test(profile_parse, bad_input)
{
        size_t failures = 0;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                const struct bad_case *c = &bad[i];
                char yaml[4096];
                if (c->yaml[0] == '!')
                        snprintf(yaml, sizeof yaml, "%s", c->yaml + 1);
                else
                        snprintf(yaml, sizeof yaml, HDR "%s", c->yaml);
                struct aidp_profile p;
                aidp_error err = {0};
                int rc = load_text(yaml, lib, 1, &p, NULL, &err);
                bool ok = rc < 0 && err.status == AIDP_EXIT_CONFIG && strstr(err.msg, c->msg) &&
                          !p.name;
                if (ok && c->line) {
                        char pos[64];
                        snprintf(pos, sizeof pos, "p.yaml:%u:%u: ", c->line, c->col);
                        ok = !strncmp(err.msg, pos, strlen(pos)) && err.line == c->line &&
                             err.column == c->col;
                }
                if (!ok) {
                        cr_log_error("case %zu: %s\n  got:  rc=%d %s\n  want: %u:%u %s", i, c->yaml,
                                     rc, err.msg, c->line, c->col, c->msg);
                        failures++;
                }
                if (rc == 0)
                        aidp_profile_free(&p);
        }
        cr_assert_eq(failures, 0, "%zu of %zu bad inputs not reported as expected", failures,
                     sizeof bad / sizeof bad[0]);
}

/* The same inputs as profile check loads them (going on after each error):
 * each still fails, with its error among those gathered and nothing loaded. */
Test(profile_parse, bad_input_gathered)
{
        size_t failures = 0;
        static struct aidp_profile_errors all;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                const struct bad_case *c = &bad[i];
                char yaml[4096];
                if (c->yaml[0] == '!')
                        snprintf(yaml, sizeof yaml, "%s", c->yaml + 1);
                else
                        snprintf(yaml, sizeof yaml, HDR "%s", c->yaml);
                struct memfs fs = {.files = lib, .n_files = 1};
                static const char *const search[] = {"lib"};
                struct aidp_profile_env env = memfs_env(&fs, search, 1);
                memset(&all, 0, sizeof all);
                env.errors = &all;
                struct aidp_profile p;
                aidp_error err = {0};
                int rc = aidp_profile_load_buffer("p.yaml", yaml, strlen(yaml), &env, &p, NULL,
                                                  &err);
                bool found = false;
                for (size_t k = 0; k < all.n && !found; k++)
                        found = strstr(all.items[k].msg, c->msg) != NULL;
                bool ok = rc < 0 && err.status == AIDP_EXIT_CONFIG && !p.name &&
                          (found || strstr(err.msg, c->msg));
                if (!ok) {
                        cr_log_error(
                                "case %zu: %s\n  got:  rc=%d %zu gathered, first %s\n  want: %s", i,
                                c->yaml, rc, all.n, err.msg, c->msg);
                        failures++;
                }
                if (rc == 0)
                        aidp_profile_free(&p);
        }
        cr_assert_eq(failures, 0, "%zu of %zu bad inputs not reported as expected", failures,
                     sizeof bad / sizeof bad[0]);
}

Test(profile_parse, positions_of_merged_items_in_late_errors)
{
        /* Errors found on the effective profile still point at the item. */
        const char *y = HDR "filesystem:\n  binds:\n    - {source: /x, target: /tmp/x}\n";
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_lt(load_text(y, NULL, 0, &p, NULL, &err), 0);
        cr_assert(strstr(err.msg, "p.yaml:7:7: filesystem.binds: found target '/tmp/x'"), "%s",
                  err.msg);
}

Test(profile_parse, other_arch_names_are_dropped_with_a_note)
{
        const char *y = HDR "seccomp:\n  syscalls:\n    - {names: [chown32, vm86], action: "
                            "errno(EPERM)}\n    - {names: [open, chown32], action: errno(EPERM)}\n";
        struct aidp_profile p;
        struct aidp_lint_list l = {0};
        aidp_error err = {0};
        cr_assert_eq(load_text(y, NULL, 0, &p, &l, &err), 0, "%s", err.msg);
        const struct aidp_sc_rule *r = rule_for(&p.seccomp, "open");
        cr_assert(r && r->action == AIDP_SC_ERRNO);
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "chown32", NULL), AIDP_SC_EFFECT_DEFAULT);
        const struct aidp_lint *n = find_lint(&l, "seccomp-other-arch");
        cr_assert(n && n->level == AIDP_LINT_NOTE);
        cr_assert_str_eq(n->where, "p.yaml:7:16");
        aidp_lint_list_free(&l);
        aidp_profile_free(&p);
}

Test(profile_parse, style_alone_sets_the_default)
{
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(load_text(HDR "seccomp: {style: allowlist}\n", NULL, 0, &p, NULL, &err), 0,
                     "%s", err.msg);
        cr_assert_eq(p.seccomp.default_action, AIDP_SC_ERRNO);
        cr_assert_eq(p.seccomp.default_errno, EPERM);
        /* the baseline's EPERM rules now equal the default and are gone; its
         * ENOSYS answer for clone3 is not and stays */
        cr_assert_eq(aidp_profiles_sc_effect(&p.seccomp, "mount", NULL), AIDP_SC_EFFECT_DEFAULT);
        const struct aidp_sc_rule *r = rule_for(&p.seccomp, "clone3");
        cr_assert(r && r->errno_ret == ENOSYS);
        aidp_profile_free(&p);
        cr_assert_eq(load_text(HDR "seccomp: {reset: true, style: denylist, default: log}\n", NULL,
                               0, &p, NULL, &err),
                     0, "%s", err.msg);
        cr_assert_eq(p.seccomp.default_action, AIDP_SC_LOG);
        cr_assert_eq(p.seccomp.n_rules, 0);
        aidp_profile_free(&p);
}

Test(profile_parse, devices_are_expanded_and_checked)
{
        static const char *const devs[] = {"/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl",
                                           "/dev/fuse", NULL};
        struct memfs fs = {.devices = devs};
        struct aidp_profile_env env = memfs_env(&fs, NULL, 0);
        const char *y = HDR "devices:\n  - /dev/nvidia[0-9]*\n  - {path: /dev/nvidia-uvm, "
                            "optional: true}\n  - /dev/fuse\n";
        struct aidp_profile p;
        struct aidp_lint_list l = {0};
        aidp_error err = {0};
        cr_assert_eq(aidp_profile_load_buffer("p.yaml", y, strlen(y), &env, &p, &l, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(p.n_devices, 3);
        cr_assert_str_eq(p.devices[0].path, "/dev/nvidia0");
        cr_assert_str_eq(p.devices[1].path, "/dev/nvidia1");
        cr_assert_str_eq(p.devices[2].path, "/dev/fuse");
        const struct aidp_lint *n = find_lint(&l, "device-missing-optional");
        cr_assert(n && strstr(n->msg, "/dev/nvidia-uvm"));
        cr_assert_str_eq(n->where, "p.yaml:7:12");
        aidp_lint_list_free(&l);
        aidp_profile_free(&p);

        const char *kvm = HDR "devices:\n  - /dev/kvm\n";
        cr_assert_lt(aidp_profile_load_buffer("p.yaml", kvm, strlen(kvm), &env, &p, NULL, &err), 0);
        cr_assert(strstr(err.msg,
                         "p.yaml:6:5: devices: found no character device matching '/dev/kvm'"),
                  "%s", err.msg);
}

Test(profile_parse, digest_is_order_independent_and_content_sensitive)
{
        struct aidp_profile a, b, c;
        aidp_error err = {0};
        cr_assert_eq(load_text(HDR "capabilities: [CAP_CHOWN, CAP_KILL]\nseccomp:\n  syscalls:\n   "
                                   " - {names: [mount, bpf], action: kill-process}\n",
                               NULL, 0, &a, NULL, &err),
                     0, "%s", err.msg);
        cr_assert_eq(
                load_text(
                        "metadata: {name: other}\nkind: Profile\napiVersion: aidp/v1\nseccomp:\n  "
                        "syscalls:\n    - {names: [bpf], action: kill-process}\n    - {names: "
                        "[mount], action: kill-process}\ncapabilities: [kill, chown]\n",
                        NULL, 0, &b, NULL, &err),
                0, "%s", err.msg);
        cr_assert_eq(load_text(HDR "capabilities: [CAP_CHOWN, CAP_KILL]\nseccomp:\n  syscalls:\n   "
                                   " - {names: [mount, bpf], action: kill-thread}\n",
                               NULL, 0, &c, NULL, &err),
                     0, "%s", err.msg);
        cr_assert_eq(memcmp(a.digest, b.digest, 32), 0, "same effective profile, same digest");
        cr_assert_neq(memcmp(a.digest, c.digest, 32), 0);
        aidp_profile_free(&a);
        aidp_profile_free(&b);
        aidp_profile_free(&c);
}

/* /dev/shm has a size of its own (issue 14), shown by explain and in the
 * digest; without one it is as large as /tmp. */
Test(profile_parse, dev_shm_size_is_a_profile_setting)
{
        const char *y = HDR "limits:\n  tmpfs: {/tmp: 64Mi, /dev/shm: 2Gi}\n";
        struct aidp_profile p, q;
        aidp_error err = {0};
        cr_assert_eq(load_text(y, NULL, 0, &p, NULL, &err), 0, "%s", err.msg);
        cr_expect_eq(p.limits.shm_bytes, 2ULL << 30);
        cr_expect_eq(aidp_profile_shm_bytes(&p), 2ULL << 30);
        char *text = NULL;
        cr_assert_eq(aidp_profile_explain(&p, NULL, &text, &err), 0, "%s", err.msg);
        cr_expect(strstr(text, "/dev/shm     tmpfs 2 GiB, writable"), "%s", text);
        free(text);
        cr_assert_eq(load_text(HDR "limits:\n  tmpfs: {/tmp: 64Mi}\n", NULL, 0, &q, NULL, &err), 0,
                     "%s", err.msg);
        cr_expect_eq(q.limits.shm_bytes, 0);
        cr_expect_eq(aidp_profile_shm_bytes(&q), 64ULL << 20, "/dev/shm is not as large as /tmp");
        cr_expect_neq(memcmp(p.digest, q.digest, sizeof p.digest), 0,
                      "the size is not in the digest");
        aidp_profile_free(&p);
        aidp_profile_free(&q);
}
