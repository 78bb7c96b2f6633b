#define _GNU_SOURCE
/* `aidp policy explain` and `aidp-supervisor run` give the same answer (issue
 * 15, 21): a table of host states (no files, each file missing, a dangling
 * symlink, not a regular file, a FIFO, malformed, not root-owned, writable by
 * the group) times inputs (tagged, untagged at each classification, none).
 * Each cell runs the supervisor and explain on the same policy directory and
 * compares their exit statuses; the fail-closed rules are asserted besides:
 * sealed data without any policy is refused (121), a policy file that is
 * there but cannot be trusted is an error (119), never "no policy". */
#include <sys/stat.h>
#include <time.h>

#include "common/exitcodes.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

static char *T;
static char keydir[4096], poldir[4096], rundir[4096], logp[4096], keyp[4096];
static struct aidp_proc P;

enum { D_NONE, D_EU, D_PHI, D_PUBLIC, D_INTERNAL, D_CONFIDENTIAL, D_RESTRICTED, D_REGULATED, N_D };
static const char *const data_names[N_D] = {"(none)",     "eu-internal", "phi-regulated",
                                            "public",     "internal",    "confidential",
                                            "restricted", "regulated"};
static char data_path[N_D][4096];

static void seal_one(int i, enum aidp_classification c, const char *res, const char *reg)
{
        char src[4096], f[4096];
        TEST_SNPRINTF(src, "%s/src-%s", T, data_names[i]);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/x.txt", src);
        write_all(f, (const uint8_t *)"x\n", 2);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, data_names[i]);
        strcpy(p.meta.key_id, "table-key");
        p.meta.classification = c;
        aidp_error err = {0};
        if (res)
                cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, res, &err), 0);
        if (reg)
                cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, reg, &err), 0);
        snprintf(data_path[i], sizeof data_path[i], "%s/%s.sealed", T, data_names[i]);
        cr_assert_eq(seal_path(src, data_path[i], &p, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
}

static const char host_yaml[] = "apiVersion: aidp/v1\nkind: HostIdentity\nnode: table\n"
                                "region: eu-west-1\njurisdiction: EU\nzones: [gdpr]\n";
static const char residency_yaml[] = "apiVersion: aidp/v1\nkind: ResidencyPolicy\n"
                                     "residency:\n  eu: {regions: [\"eu-*\"]}\n"
                                     "  us: {regions: [\"us-*\"]}\n"
                                     "regulations:\n  phi: {zones: [hipaa]}\n";
static const char access_yaml[] = "apiVersion: aidp/v1\nkind: AccessPolicy\n"
                                  "roles:\n  trainer:\n    operations: [run]\n"
                                  "    profiles: [\"*\"]\n    datasets: [\"*\"]\n"
                                  "    max_classification: regulated\n"
                                  "users:\n  nobody: {roles: [trainer]}\n";

enum file_state { F_ABSENT, F_VALID, F_DANGLING, F_DIR, F_FIFO, F_MALFORMED, F_NOT_ROOTS, F_GW };

struct host_state {
        const char *name;
        enum file_state host, residency, access;
        int expect; /* every cell's status, or -1: decided per input */
};

static const struct host_state states[] = {
        {"no files", F_ABSENT, F_ABSENT, F_ABSENT, -1},
        {"all three", F_VALID, F_VALID, F_VALID, -1},
        {"host.yaml missing", F_ABSENT, F_VALID, F_VALID, -1},
        {"residency.yaml missing", F_VALID, F_ABSENT, F_VALID, -1},
        {"access.yaml missing", F_VALID, F_VALID, F_ABSENT, AIDP_EXIT_DENIED},
        {"access.yaml dangling", F_VALID, F_VALID, F_DANGLING, AIDP_EXIT_CONFIG},
        {"residency.yaml dangling", F_VALID, F_DANGLING, F_VALID, AIDP_EXIT_CONFIG},
        {"host.yaml dangling, nothing else", F_DANGLING, F_ABSENT, F_ABSENT, AIDP_EXIT_CONFIG},
        {"host.yaml a directory", F_DIR, F_VALID, F_VALID, AIDP_EXIT_CONFIG},
        {"access.yaml a FIFO", F_VALID, F_VALID, F_FIFO, AIDP_EXIT_CONFIG},
        {"residency.yaml malformed", F_VALID, F_MALFORMED, F_VALID, AIDP_EXIT_CONFIG},
        {"access.yaml not root's", F_VALID, F_VALID, F_NOT_ROOTS, AIDP_EXIT_CONFIG},
        {"host.yaml group-writable", F_GW, F_VALID, F_VALID, AIDP_EXIT_CONFIG},
};

static void place(const char *name, enum file_state st, const char *text)
{
        char path[4200];
        TEST_SNPRINTF(path, "%s/%s", poldir, name);
        switch (st) {
        case F_ABSENT: return;
        case F_DANGLING: cr_assert_eq(symlink("/nonexistent/aidp-volume/p.yaml", path), 0); return;
        case F_DIR: cr_assert_eq(mkdir(path, 0755), 0); return;
        case F_FIFO: cr_assert_eq(mkfifo(path, 0644), 0); return;
        case F_MALFORMED:
                text = "apiVersion: aidp/v1\nkind: ResidencyPolicy\nresidency: [\n";
                break;
        case F_VALID:
        case F_NOT_ROOTS:
        case F_GW: break;
        }
        write_all(path, (const uint8_t *)text, strlen(text));
        cr_assert_eq(chmod(path, st == F_GW ? 0664 : 0644), 0);
        if (st == F_NOT_ROOTS)
                cr_assert_eq(chown(path, 65534, 65534), 0);
}

static void install(const struct host_state *s)
{
        char cmd[4200];
        TEST_SNPRINTF(cmd, "rm -rf %s", poldir);
        cr_assert_eq(system(cmd), 0);
        mkdir_p(poldir, 0755);
        cr_assert_eq(chmod(poldir, 0755), 0);
        place("host.yaml", s->host, host_yaml);
        place("residency.yaml", s->residency, residency_yaml);
        place("access.yaml", s->access, access_yaml);
}

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(poldir, "%s/policy", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "table-key", &err), 0, "%s", err.msg);
        seal_one(D_EU, AIDP_CLASS_INTERNAL, "eu", NULL);
        seal_one(D_PHI, AIDP_CLASS_REGULATED, "us", "phi");
        seal_one(D_PUBLIC, AIDP_CLASS_PUBLIC, NULL, NULL);
        seal_one(D_INTERNAL, AIDP_CLASS_INTERNAL, NULL, NULL);
        seal_one(D_CONFIDENTIAL, AIDP_CLASS_CONFIDENTIAL, NULL, NULL);
        seal_one(D_RESTRICTED, AIDP_CLASS_RESTRICTED, NULL, NULL);
        seal_one(D_REGULATED, AIDP_CLASS_REGULATED, NULL, NULL);
        setenv("AIDP_POLICY_DIR", poldir, 1);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
        unsetenv("SUDO_UID");
}

static void teardown(void)
{
        aidp_test_policy_done(NULL);
        tmpdir_rm(T);
}

TestSuite(policy_table, .init = setup, .fini = teardown, .timeout = 600);

static int run_status(int d)
{
        char *argv[24];
        int n = 0;
        argv[n++] = AIDP_SUPERVISOR;
        argv[n++] = "run";
        argv[n++] = "-q";
        argv[n++] = "--user";
        argv[n++] = "nobody";
        argv[n++] = "--no-cwd";
        argv[n++] = "--run-dir";
        argv[n++] = rundir;
        argv[n++] = "--key-dir";
        argv[n++] = keydir;
        argv[n++] = "--lineage";
        argv[n++] = logp;
        if (d != D_NONE) {
                argv[n++] = "--data";
                argv[n++] = data_path[d];
        }
        argv[n++] = "--";
        argv[n++] = "true";
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

static int explain_status(int d)
{
        char *argv[16];
        int n = 0;
        argv[n++] = AIDP_BINARY_DIR "/aidp";
        argv[n++] = "policy";
        argv[n++] = "explain";
        argv[n++] = "--user";
        argv[n++] = "nobody";
        argv[n++] = "--key-dir";
        argv[n++] = keydir;
        if (d != D_NONE) {
                argv[n++] = "--data";
                argv[n++] = data_path[d];
        }
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

/* What a host with every file valid decides, per input. */
static int expected_valid(const struct host_state *s, int d)
{
        bool host = s->host == F_VALID, res = s->residency == F_VALID;
        if (d == D_EU)
                return host && res ? 0 : AIDP_EXIT_DENIED; /* eu on an eu host needs both */
        if (d == D_PHI)
                return AIDP_EXIT_DENIED; /* us data on an eu host; no hipaa zone */
        if (d == D_RESTRICTED || d == D_REGULATED)
                return AIDP_EXIT_DENIED; /* untagged: require_residency_from restricted */
        return 0;
}

Test(policy_table, explain_and_the_run_agree_and_fail_closed)
{
        AIDP_REQUIRE_ROOT();
        for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
                const struct host_state *s = &states[i];
                install(s);
                for (int d = 0; d < N_D; d++) {
                        int ex = explain_status(d);
                        char ex_out[512];
                        snprintf(ex_out, sizeof ex_out, "%.250s%.250s", P.out, P.err);
                        int rn = run_status(d);
                        cr_expect_eq(rn, ex,
                                     "%s, input %s: run exits %d, explain %d\nrun: %s\n"
                                     "explain: %s",
                                     s->name, data_names[d], rn, ex, P.err, ex_out);
                        int want = s->expect;
                        if (want < 0 && s->host == F_ABSENT && s->residency == F_ABSENT &&
                            s->access == F_ABSENT)
                                want = d == D_NONE ? 0 : AIDP_EXIT_DENIED;
                        else if (want < 0)
                                want = expected_valid(s, d);
                        cr_expect_eq(rn, want, "%s, input %s: run exits %d, expected %d\n%s",
                                     s->name, data_names[d], rn, want, P.err);
                        if (want == AIDP_EXIT_CONFIG)
                                cr_expect(strstr(P.err, poldir), "%s: error names no file: %s",
                                          s->name, P.err);
                }
        }
}
