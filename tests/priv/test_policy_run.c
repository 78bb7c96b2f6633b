#define _GNU_SOURCE
/* Root integration tests of the access and residency decision in a run: it is
 * made on the authenticated headers before anything is decrypted; a denial
 * exits 121 naming rule, dataset and attribute, starts nothing and leaves
 * nothing; lineage holds both the denials and the allowed runs' decisions. */
#include <pwd.h>
#include <time.h>

#include "common/exitcodes.h"
#include "policy_util.h"
#include "priv.h"
#include "lineage_util.h"
#include "runner.h"
#include "supervisor/lineage/lineage.h"
#include "tests/sealed_util.h"

static char *T;
static char keydir[4096], policydir[4096], rundir[4096], logp[4096], keyp[4096];
static char eu_data[4096], phi_data[4096];
static struct aidp_proc P;

static void seal_one(const char *name, enum aidp_classification c, const char *res, const char *reg,
                     const char *content, char *path_out)
{
        char src[4096], f[4096];
        TEST_SNPRINTF(src, "%s/src-%s", T, name);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/records.txt", src);
        write_all(f, (const uint8_t *)content, strlen(content));
        snprintf(path_out, 4096, "%s/%s.sealed", T, name);
        seal_tagged(src, path_out, keydir, "policy-key", name, c, res, reg);
}

static void put(const char *name, const char *text)
{
        char path[4096];
        TEST_SNPRINTF(path, "%s/%s", policydir, name);
        write_all(path, (const uint8_t *)text, strlen(text));
        chmod(path, 0644);
}

static const char residency_yaml[] = "apiVersion: aidp/v1\n"
                                     "kind: ResidencyPolicy\n"
                                     "residency:\n"
                                     "  eu: {regions: [\"eu-*\"]}\n"
                                     "  us: {regions: [\"us-*\"]}\n"
                                     "regulations:\n"
                                     "  phi: {zones: [hipaa]}\n"
                                     "classifications:\n"
                                     "  restricted: {profile: {network: none}}\n";

static const char access_yaml[] = "apiVersion: aidp/v1\n"
                                  "kind: AccessPolicy\n"
                                  "roles:\n"
                                  "  trainer:\n"
                                  "    operations: [run]\n"
                                  "    profiles: [\"*\"]\n"
                                  "    datasets: [\"*\"]\n"
                                  "    max_classification: regulated\n"
                                  "users:\n"
                                  "  nobody: {roles: [trainer]}\n";

static void host(const char *region, const char *zones)
{
        char y[512];
        TEST_SNPRINTF(y,
                      "apiVersion: aidp/v1\nkind: HostIdentity\nnode: test-node\nregion: %s\n"
                      "zones: [%s]\n",
                      region, zones);
        put("host.yaml", y);
}

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(policydir, "%s/policy", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        mkdir_p(policydir, 0755);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "policy-key", &err), 0, "%s", err.msg);
        seal_one("eu-data", AIDP_CLASS_INTERNAL, "eu", NULL, "eu-secret-5d1e\n", eu_data);
        seal_one("phi-data", AIDP_CLASS_RESTRICTED, "us", "phi", "phi-secret-c07b\n", phi_data);
        put("residency.yaml", residency_yaml);
        put("access.yaml", access_yaml);
        setenv("AIDP_POLICY_DIR", policydir, 1);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
        unsetenv("SUDO_UID");
        unsetenv("SLURM_JOB_UID");
        unsetenv("SLURM_JOB_USER");
}

static void teardown(void)
{
        aidp_test_policy_done(NULL);
        tmpdir_rm(T);
}

TestSuite(policy_run, .init = setup, .fini = teardown, .timeout = 120);

/* Run `cat /data/<name>/records.txt` for each input as `user`. */
static const char *job_name; /* --job-name, when set */

static int run(const char *user, const char *run_id, const char *data1, const char *data2)
{
        char *argv[32];
        int n = 0;
        argv[n++] = AIDP_SUPERVISOR;
        argv[n++] = "run";
        if (job_name) {
                argv[n++] = "--job-name";
                argv[n++] = (char *)job_name;
        }
        argv[n++] = "--user";
        argv[n++] = (char *)user;
        argv[n++] = "--no-cwd";
        argv[n++] = "--run-dir";
        argv[n++] = rundir;
        argv[n++] = "--key-dir";
        argv[n++] = keydir;
        argv[n++] = "--lineage";
        argv[n++] = logp;
        argv[n++] = "--run-id";
        argv[n++] = (char *)run_id;
        if (data1) {
                argv[n++] = "--data";
                argv[n++] = (char *)data1;
        }
        if (data2) {
                argv[n++] = "--data";
                argv[n++] = (char *)data2;
        }
        argv[n++] = "--";
        argv[n++] = "/bin/sh";
        argv[n++] = "-c";
        argv[n++] = "cat /data/*/records.txt; echo JOB-RAN";
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

/* Nothing of a refused run exists: no job output, no journal, no cgroup. */
static void assert_nothing_started(const char *run_id)
{
        cr_assert_null(strstr(P.out, "JOB-RAN"), "the job ran: %s", P.out);
        cr_assert_null(strstr(P.out, "secret"), "plaintext reached the job: %s", P.out);
        char j[4200];
        TEST_SNPRINTF(j, "%s/%s", rundir, run_id);
        cr_assert_neq(access(j, F_OK), 0, "a journal exists for the refused run");
        cr_assert(!aidp_test_cgroup_exists(run_id), "a cgroup exists for the refused run");
}

Test(policy_run, eu_data_refused_on_us_east_1)
{
        AIDP_REQUIRE_ROOT();
        host("us-east-1", "hipaa");
        int st = run("nobody", "policy-eu-on-us", eu_data, NULL);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_assert(strstr(P.err, "run denied by residency rule residency.eu"), "%s", P.err);
        cr_assert(strstr(P.err, "dataset 'eu-data'"), "%s", P.err);
        cr_assert(strstr(P.err, "region: host region 'us-east-1' matches none of [eu-*]"), "%s",
                  P.err);
        assert_nothing_started("policy-eu-on-us");
}

Test(policy_run, eu_data_accepted_on_eu_west_1)
{
        AIDP_REQUIRE_ROOT();
        host("eu-west-1", "gdpr");
        int st = run("nobody", "policy-eu-on-eu", eu_data, NULL);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_assert(strstr(P.out, "eu-secret-5d1e\nJOB-RAN"), "%s", P.out);
}

Test(policy_run, phi_refused_without_the_hipaa_zone)
{
        AIDP_REQUIRE_ROOT();
        host("us-east-1", "soc2");
        int st = run("nobody", "policy-phi-nohipaa", phi_data, NULL);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_assert(strstr(P.err, "regulation rule regulations.phi"), "%s", P.err);
        cr_assert(strstr(P.err, "dataset 'phi-data'"), "%s", P.err);
        cr_assert(strstr(P.err, "zone: host test-node lacks compliance zone 'hipaa'"), "%s", P.err);
        assert_nothing_started("policy-phi-nohipaa");

        host("us-east-1", "soc2, hipaa");
        st = run("nobody", "policy-phi-hipaa", phi_data, NULL);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_assert(strstr(P.out, "phi-secret-c07b"), "%s", P.out);
}

Test(policy_run, user_outside_the_role_refused)
{
        AIDP_REQUIRE_ROOT();
        if (!getpwnam("daemon"))
                cr_skip_test("no 'daemon' account on this system");
        host("eu-west-1", "gdpr");
        int st = run("daemon", "policy-outsider", eu_data, NULL);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_assert(strstr(P.err, "run denied by access rule default"), "%s", P.err);
        cr_assert(strstr(P.err, "role: user 'daemon'"), "%s", P.err);
        cr_assert(strstr(P.err, "holds no role in the access policy: default deny"), "%s", P.err);
        assert_nothing_started("policy-outsider");
}

Test(policy_run, inputs_that_cannot_share_a_region_are_refused)
{
        AIDP_REQUIRE_ROOT();
        host("eu-west-1", "gdpr, hipaa");
        int st = run("nobody", "policy-mix", eu_data, phi_data);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        assert_nothing_started("policy-mix");
}

Test(policy_run, a_bad_policy_file_is_a_config_error_with_its_position)
{
        AIDP_REQUIRE_ROOT();
        host("eu-west-1", "gdpr");
        put("access.yaml", "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  r:\n"
                           "    operations: [run]\n    max_classification: secret\n");
        int st = run("nobody", "policy-bad-file", eu_data, NULL);
        cr_assert_eq(st, AIDP_EXIT_CONFIG, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_assert(strstr(P.err, "/access.yaml:6:25: roles.r.max_classification: unknown "
                                "classification 'secret'"),
                  "%s", P.err);
        assert_nothing_started("policy-bad-file");
}

Test(policy_run, a_policy_file_others_can_write_is_refused)
{
        AIDP_REQUIRE_ROOT();
        host("eu-west-1", "gdpr");
        char path[4200];
        TEST_SNPRINTF(path, "%s/access.yaml", policydir);
        chmod(path, 0666);
        int st = run("nobody", "policy-writable", eu_data, NULL);
        cr_assert_eq(st, AIDP_EXIT_CONFIG, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_assert(strstr(P.err, "must be owned by root and not writable by group or others"), "%s",
                  P.err);
}

/* Some decision entry of ev's aidp_policy facet has these values. */
static bool has_decision(json_object *ev, const char *subject, const char *decision,
                         const char *rule_prefix)
{
        json_object *ds = aidp_test_json_at(ev, "run.facets.aidp_policy.decisions");
        for (size_t i = 0; ds && i < json_object_array_length(ds); i++) {
                json_object *d = json_object_array_get_idx(ds, i);
                const char *s = aidp_test_json_str_or_null(d, "subject"),
                           *dec = aidp_test_json_str_or_null(d, "decision"),
                           *r = aidp_test_json_str_or_null(d, "rule");
                if (s && dec && r && !strcmp(s, subject) && !strcmp(dec, decision) &&
                    !strncmp(r, rule_prefix, strlen(rule_prefix)))
                        return true;
        }
        return false;
}

Test(policy_run, lineage_holds_both_decisions_with_reasons)
{
        AIDP_REQUIRE_ROOT();
        host("us-east-1", "hipaa");
        int st = run("nobody", "policy-lineage-deny", eu_data, NULL);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "%s", P.err);
        host("eu-west-1", "gdpr");
        job_name = "resnet-eu";
        st = run("nobody", "policy-lineage-allow", eu_data, NULL);
        job_name = NULL;
        cr_assert_eq(st, 0, "%s", P.err);

        json_object *ev[8] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(n, 3, "OTHER (denial), START, COMPLETE; got %zu", n);

        /* The denial: its own record, no START before it. */
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[0], "eventType"), "OTHER");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[0], "run.facets.aidp_run.runName"),
                         "policy-lineage-deny");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[0], "run.facets.aidp_run.outcome"),
                         "denied by policy");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[0], "run.facets.aidp_caller.user"),
                         "nobody");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[0], "run.facets.aidp_host.region"),
                         "us-east-1");
        cr_assert(has_decision(ev[0], "run", "deny", "residency.eu"));
        cr_assert(has_decision(ev[0], "dataset eu-data", "deny", "residency.eu ("));
        cr_assert(has_decision(ev[0], "dataset eu-data", "allow", "roles.trainer ("));
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[0], "run.facets.aidp_policy.trail.decision"),
                         "deny");
        json_object *reasons = aidp_test_json_at(ev[0], "run.facets.aidp_policy.trail.reasons");
        cr_assert_not_null(reasons);
        bool region_fail = false;
        for (size_t i = 0; i < json_object_array_length(reasons); i++) {
                json_object *r = json_object_array_get_idx(reasons, i);
                if (!strcmp(aidp_test_json_str_or_null(r, "result"), "fail") &&
                    !strcmp(aidp_test_json_str_or_null(r, "attribute"), "region") &&
                    !strcmp(aidp_test_json_str_or_null(r, "dataset"), "eu-data"))
                        region_fail = true;
        }
        cr_assert(region_fail);
        /* Named after the profile (none: baseline, the default), never the command (sh). */
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[0], "job.name"), "baseline");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "job.name"), "resnet-eu");
        /* Asked for, never read: in the aidp_requested facet, not in inputs. */
        json_object *in = aidp_test_json_at(ev[0], "inputs");
        cr_assert_eq(json_object_array_length(in), 0);
        json_object *req = aidp_test_json_at(ev[0], "run.facets.aidp_requested.inputs");
        cr_assert_not_null(req);
        cr_assert_eq(json_object_array_length(req), 1);
        cr_assert_str_eq(aidp_test_json_str_or_null(json_object_array_get_idx(req, 0), "name"),
                         "eu-data");
        aidp_error verr = {0};
        cr_assert_eq(aidp_lineage_event_check(ev[0], &verr), 0, "%s", verr.msg);

        /* The allowed run: the decision rides on its START. */
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "eventType"), "START");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "run.facets.aidp_run.runName"),
                         "policy-lineage-allow");
        cr_assert(json_object_get_boolean(
                aidp_test_json_at(ev[1], "run.facets.aidp_policy.enforced")));
        cr_assert(has_decision(ev[1], "run", "allow", "policy"));
        cr_assert(has_decision(ev[1], "dataset eu-data", "allow", "residency.eu ("));
        cr_assert(has_decision(ev[1], "dataset eu-data", "allow", "roles.trainer ("));
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "run.facets.aidp_policy.trail.decision"),
                         "allow");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "run.facets.aidp_host.region"),
                         "eu-west-1");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "run.facets.aidp_policy.caller.user"),
                         "nobody");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "run.facets.aidp_policy.caller.source"),
                         "--user");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[2], "eventType"), "COMPLETE");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

/* With no policy file at all, sealed data is refused for a user (before a
 * key is touched: nothing started) and lineage says why; a run without data
 * goes on, undecided, and its START record says so. */
Test(policy_run, no_policy_installed_refuses_sealed_data_and_runs_undecided_without)
{
        AIDP_REQUIRE_ROOT();
        char p[4200];
        TEST_SNPRINTF(p, "%s/access.yaml", policydir);
        unlink(p);
        TEST_SNPRINTF(p, "%s/residency.yaml", policydir);
        unlink(p);
        int st = run("nobody", "policy-none", eu_data, NULL);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        assert_nothing_started("policy-none");
        cr_assert(strstr(P.err, "sealed data needs a policy, and none is installed"), "%s", P.err);
        json_object *ev[4] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 1);
        cr_assert(!json_object_get_boolean(
                aidp_test_json_at(ev[0], "run.facets.aidp_policy.enforced")));
        cr_assert(has_decision(ev[0], "run", "deny", "default"));
        json_object_put(ev[0]);

        st = run("nobody", "policy-none-nodata", NULL, NULL);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 3);
        cr_assert(!json_object_get_boolean(
                aidp_test_json_at(ev[1], "run.facets.aidp_policy.enforced")));
        cr_assert(has_decision(ev[1], "run", "allow", "none"));
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);

        /* The policy the refusal shows, installed as it is, lets the run go. */
        st = run("nobody", "policy-none-again", eu_data, NULL);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "%s", P.err);
        size_t files = 0;
        for (char *f = strstr(P.err, "\n--- "); f && !strncmp(f, "\n--- ", 5); files++) {
                char path[4200];
                cr_assert_eq(sscanf(f, "\n--- %4199s", path), 1, "%s", P.err);
                char *body = strchr(f + 1, '\n') + 1, *stop = strstr(body, "\n---");
                cr_assert_not_null(stop, "%s", P.err);
                cr_assert(!strncmp(path, policydir, strlen(policydir)), "%s", path);
                char text[2048];
                TEST_SNPRINTF(text, "%.*s\n", (int)(stop - body), body);
                put(path + strlen(policydir) + 1, text);
                f = stop;
        }
        cr_assert_eq(files, 3, "three files: %s", P.err);
        st = run("nobody", "policy-as-shown", eu_data, NULL);
        cr_expect_eq(st, 0, "the policy the refusal shows refused: %s", P.err);
}

/* The supervisor ends a run when the time window that granted it closes:
 * SIGTERM, the kill-after grace, SIGKILL, shred, FAIL with the reason. The
 * test build's policy clock is shifted to 5 s before the window's end. */
Test(policy_run, a_run_ends_when_its_time_window_closes)
{
        AIDP_REQUIRE_ROOT();
        put("access.yaml", "apiVersion: aidp/v1\nkind: AccessPolicy\n"
                           "roles:\n  windowed:\n    operations: [run]\n"
                           "    profiles: [\"*\"]\n    datasets: [\"*\"]\n"
                           "    max_classification: regulated\n"
                           "    time_windows:\n      - hours: \"00:00-00:01\"\n"
                           "users:\n  nobody: {roles: [windowed]}\n");
        host("eu-west-1", "");
        time_t now = time(NULL);
        long long fake = (long long)(now / 86400) * 86400 + 55; /* 00:00:55Z: 5 s left */
        char off[32];
        snprintf(off, sizeof off, "%lld", fake - (long long)now);
        setenv("AIDP_FAULT_CLOCK_OFFSET", off, 1);
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "nobody",
                        "--no-cwd",
                        "--run-dir",
                        rundir,
                        "--key-dir",
                        keydir,
                        "--lineage",
                        logp,
                        "--run-id",
                        "policy-window",
                        "--kill-after",
                        "2",
                        "--data",
                        eu_data,
                        "--",
                        "/bin/sh",
                        "-c",
                        "trap '' TERM; echo READY; sleep 120; echo SURVIVED",
                        NULL};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int st = aidp_test_run(&P, argv);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        unsetenv("AIDP_FAULT_CLOCK_OFFSET");
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_assert(strstr(P.out, "READY"), "the job never ran: %s", P.err);
        cr_assert_null(strstr(P.out, "SURVIVED"));
        cr_assert(t1.tv_sec - t0.tv_sec < 60, "the run lasted %lds", (long)(t1.tv_sec - t0.tv_sec));
        cr_assert(strstr(P.err, "time window of access rule roles.windowed"), "%s", P.err);
        json_object *ev[4] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "eventType"), "FAIL");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "run.facets.aidp_exit.reason"),
                         "access window closed");
        cr_assert(json_object_get_int64(aidp_test_json_at(
                          ev[0], "run.facets.aidp_policy.trail.until")) == fake + 5);
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
        cr_assert(!aidp_test_cgroup_exists("policy-window"), "the run's cgroup is left");
}

/* The output key is the policy's: outputs of an internal and a restricted
 * input are sealed under the restricted input's key although it came second,
 * recorded in lineage; --output-key-id naming another key is refused before
 * anything starts. */
Test(policy_run, outputs_are_sealed_under_the_key_the_policy_decides)
{
        AIDP_REQUIRE_ROOT();
        host("eu-west-1", "");
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "restricted-key", &err), 0, "%s", err.msg);
        char src[4096], f[4096], sealed[4096], outdir[4096];
        TEST_SNPRINTF(src, "%s/src-eu-restricted", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/records.txt", src);
        write_all(f, (const uint8_t *)"r\n", 2);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, "eu-restricted");
        strcpy(p.meta.key_id, "restricted-key");
        p.meta.classification = AIDP_CLASS_RESTRICTED;
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, "eu", &err), 0);
        TEST_SNPRINTF(sealed, "%s/eu-restricted.sealed", T);
        cr_assert_eq(seal_path(src, sealed, &p, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
        TEST_SNPRINTF(outdir, "%s/out", T);
        mkdir_p(outdir, 0755);

        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "nobody",
                        "--no-cwd",
                        "--run-dir",
                        rundir,
                        "--key-dir",
                        keydir,
                        "--lineage",
                        logp,
                        "--run-id",
                        "policy-okey",
                        "--data",
                        eu_data,
                        "--data",
                        sealed,
                        "--output-dir",
                        outdir,
                        "--",
                        "/bin/sh",
                        "-c",
                        "echo result > /out/r",
                        NULL};
        int st = aidp_test_run(&P, argv);
        cr_assert_eq(st, 0, "exit %d\n%s", st, P.err);
        json_object *ev[4] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(
                aidp_test_json_str_or_null(ev[0], "run.facets.aidp_policy.trail.output_key"),
                "restricted-key");
        json_object *outs = aidp_test_json_at(ev[1], "outputs");
        cr_assert_eq(json_object_array_length(outs), 1);
        cr_assert_str_eq(aidp_test_json_str_or_null(json_object_array_get_idx(outs, 0),
                                                    "facets.aidp_digest.keyId"),
                         "restricted-key");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);

        char *other[] = {AIDP_SUPERVISOR,
                         "run",
                         "--user",
                         "nobody",
                         "--no-cwd",
                         "--run-dir",
                         rundir,
                         "--key-dir",
                         keydir,
                         "--lineage",
                         logp,
                         "--run-id",
                         "policy-okey-2",
                         "--data",
                         eu_data,
                         "--data",
                         sealed,
                         "--output-dir",
                         outdir,
                         "--output-key-id",
                         "policy-key",
                         "--",
                         "/bin/sh",
                         "-c",
                         "echo JOB-RAN",
                         NULL};
        st = aidp_test_run(&P, other);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s", st, P.err);
        cr_assert(strstr(P.err, "sealed under key restricted-key"), "%s", P.err);
        assert_nothing_started("policy-okey-2");
}
