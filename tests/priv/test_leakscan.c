#define _GNU_SOURCE
/* Root integration tests of the output leak scan (docs/sealed-data.md,
 * "Output leak scan"), end to end: the inputs are sealed with a schema whose
 * pii.direct columns (email, name) the caller's view nulls, so their raw
 * values go into the leak set while the real inputs are decrypted; the same
 * values also sit in pii.contact columns the view passes raw. The job reads
 * them from /data (received through that raw view) and writes them into
 * /out: raw in a binary model file, raw in a CSV, JSON-escaped in a JSON
 * log. The scan finds all three before /out is sealed and names them in the
 * summary and the lineage END facet aidp_leakscan (file, offset, label,
 * column; never the value). Under `leak_scan: quarantine` the output is
 * sealed under the admin-only quarantine key (the user's key cannot open it)
 * and the run fails; under `report` it is sealed as usual and the hits are
 * recorded. No test hook fills the set: every case here is a real run. */
#include <json-c/json.h>

#include "common/exitcodes.h"
#include "supervisor/run/run_lineage.h"
#include "priv.h"
#include "lineage_util.h"
#include "runner.h"
#include "tests/sealed_util.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"

static char *T;
static char keydir[4096], userkeys[4096], policydir[4096], rundir[4096], logp[4096], keyp[4096];
static char keyscfg[4096], outdir[4096], conf_data[4096], restr_data[4096];
static struct aidp_proc P;

#define EMAIL "alice.leak@example.org"
#define NAME  "Zo\xc3\xab O/Neil-ward7" /* JSON-escaped: Zo\u00eb O\/Neil-ward7 */

/* The view hides email and name (pii.direct: null) and passes contact and
 * display (pii.contact: raw), which hold the same values. */
static const char SCHEMA[] = "apiVersion: aidp/v1\nkind: Schema\nfiles:\n"
                             "  - pattern: \"*.csv\"\n    format: csv\n    columns:\n"
                             "      email: [pii.direct]\n      name: [pii.direct]\n"
                             "      contact: [pii.contact]\n      display: [pii.contact]\n";

/* The job takes contact and display from the one row it received and
 * writes them three ways: raw in a binary model file, raw in a CSV, and
 * JSON-escaped (ensure_ascii, json-c's \/) in a JSON log. It checks first
 * that the hidden columns arrived empty. */
static const char job[] =
        "f=$(echo /data/*/patients.csv) && row=$(sed -n 2p \"$f\") && "
        "[ \"$(echo \"$row\" | cut -d, -f2,3)\" = ',' ] && "
        "e=$(echo \"$row\" | cut -d, -f4) && n=$(echo \"$row\" | cut -d, -f5) && "
        "printf 'MODEL\\000\\001\\377 weights %s \\376\\n' \"$e\" > /out/model.bin && "
        "mkdir -p /out/tables && printf 'id,email\\n1,%s\\n' \"$e\" > /out/tables/data.csv && "
        "j=$(printf %s \"$n\" | sed -e 's,/,\\\\/,g' -e 's,\xc3\xab,\\\\u00eb,g') && "
        "printf '{\"step\": 3, \"name\": \"%s\"}\\n' \"$j\" > /out/log.json";

static void put(const char *path, const char *text);

static void seal_one(const char *name, const char *cls, const char *res, char *path_out)
{
        char src[4096], f[4096], sch[4096];
        TEST_SNPRINTF(src, "%s/src-%s", T, name);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/patients.csv", src);
        put(f, "id,email,name,contact,display\n1," EMAIL "," NAME "," EMAIL "," NAME "\n");
        TEST_SNPRINTF(sch, "%s/schema.yaml", T);
        put(sch, SCHEMA);
        snprintf(path_out, 4096, "%s/%s.sealed", T, name);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -n %s -k user-key -c %s %s%s --key-dir %s "
                                  "--schema %s -q",
                                  AIDP_TOOL, src, path_out, name, cls, res ? "-r " : "",
                                  res ? res : "", keydir, sch),
                     0, "sealing %s", name);
}

static void put(const char *path, const char *text)
{
        write_all(path, (const uint8_t *)text, strlen(text));
        chmod(path, 0644);
}

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(userkeys, "%s/user-keys", T);
        TEST_SNPRINTF(policydir, "%s/policy", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        TEST_SNPRINTF(keyscfg, "%s/keys.yaml", T);
        TEST_SNPRINTF(outdir, "%s/out", T);
        mkdir_p(policydir, 0755);
        mkdir_p(outdir, 0755);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "user-key", &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_keys_generate(keydir, "quarantine-key", &err), 0, "%s", err.msg);
        /* The user's key alone, as a user holding only it would have it. */
        cr_assert_eq(aidp_test_sh("mkdir -m 0700 '%s' && cp -p '%s/user-key' '%s/'", userkeys,
                                  keydir, userkeys),
                     0);
        char cfg[8192];
        TEST_SNPRINTF(cfg, "key_dir: %s\nkeys:\n  quarantine-key: {purpose: quarantine}\n", keydir);
        put(keyscfg, cfg);
        seal_one("conf-data", "confidential", NULL, conf_data);
        seal_one("restr-data", "restricted", "eu", restr_data);
        char path[4096];
        TEST_SNPRINTF(path, "%s/host.yaml", policydir);
        put(path, "apiVersion: aidp/v1\nkind: HostIdentity\nnode: test-node\nregion: eu-west-1\n"
                  "zones: []\n");
        TEST_SNPRINTF(path, "%s/residency.yaml", policydir);
        put(path, "apiVersion: aidp/v1\nkind: ResidencyPolicy\nresidency:\n"
                  "  eu: {regions: [\"eu-*\"]}\n");
        TEST_SNPRINTF(path, "%s/access.yaml", policydir);
        put(path, "apiVersion: aidp/v1\n"
                  "kind: AccessPolicy\n"
                  "views:\n"
                  "  research:\n"
                  "    labels: {pii.direct: null, pii.contact: raw}\n"
                  "roles:\n"
                  "  trainer:\n"
                  "    operations: [run]\n"
                  "    profiles: [\"*\"]\n"
                  "    datasets: [\"*\"]\n"
                  "    max_classification: regulated\n"
                  "    view: research\n"
                  "users:\n"
                  "  nobody: {roles: [trainer]}\n"
                  "leak_scan: {default: report, restricted: quarantine}\n");
        setenv("AIDP_POLICY_DIR", policydir, 1);
        setenv("AIDP_KEYS_CONFIG", keyscfg, 1);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
        unsetenv("SUDO_UID");
        unsetenv("SLURM_JOB_UID");
        unsetenv("SLURM_JOB_USER");
}

static void teardown(void)
{
        unsetenv("AIDP_POLICY_DIR");
        unsetenv("AIDP_KEYS_CONFIG");
        tmpdir_rm(T);
}

TestSuite(leakscan, .init = setup, .fini = teardown, .timeout = 120);

static int run(const char *run_id, const char *data, const char *summary)
{
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "nobody",
                        "--no-cwd",
                        "--run-dir",
                        rundir,
                        "--lineage",
                        logp,
                        "--run-id",
                        (char *)run_id,
                        "--data",
                        (char *)data,
                        "--output-dir",
                        outdir,
                        "--summary",
                        (char *)summary,
                        "--",
                        "/bin/sh",
                        "-c",
                        (char *)job,
                        NULL};
        return aidp_test_run(&P, argv);
}

/* The END record's aidp_leakscan facet names all three files and both
 * columns, and holds no value. */
static json_object *check_facet(json_object *end, uint64_t *hits)
{
        json_object *f = aidp_test_json_at(end, "run.facets.aidp_leakscan");
        cr_assert(f, "no aidp_leakscan facet: %s", json_object_to_json_string(end));
        const char *text = json_object_to_json_string(f);
        cr_assert(!strstr(text, EMAIL) && !strstr(text, "Neil"), "a value in lineage: %s", text);
        *hits = (uint64_t)json_object_get_int64(aidp_test_json_at(f, "hits"));
        cr_assert_eq(json_object_get_int64(aidp_test_json_at(f, "files")), 3, "%s", text);
        json_object *pl = NULL; /* the label has dots: no path lookup */
        cr_assert(
                json_object_object_get_ex(aidp_test_json_at(f, "hitsPerLabel"), "pii.direct", &pl),
                "%s", text);
        cr_assert_eq(json_object_get_int64(pl), 3, "%s", text);
        json_object *ex = aidp_test_json_at(f, "examples");
        bool model = false, csv = false, log = false, name = false;
        for (size_t i = 0; i < json_object_array_length(ex); i++) {
                json_object *e = json_object_array_get_idx(ex, i);
                const char *file = aidp_test_json_str_or_null(e, "file");
                const char *col = aidp_test_json_str_or_null(e, "column");
                model |= !strcmp(file, "model.bin") && !strcmp(col, "email") &&
                         json_object_get_int64(aidp_test_json_at(e, "offset")) == 17;
                csv |= !strcmp(file, "tables/data.csv") && !strcmp(col, "email");
                log |= !strcmp(file, "log.json") && !strcmp(col, "name");
                name |= !strcmp(aidp_test_json_str_or_null(e, "label"), "pii.direct");
        }
        cr_assert(model && csv && log && name, "%s", text);
        return f;
}

/* The summary of a user's run (the job runs as nobody) says whether /out
 * was quarantined and where the details are, never a count, a file, an
 * offset or a column: those would tell the job's author which of the
 * values it wrote is one its view hides. */
static void read_summary(const char *path, bool *quarantined)
{
        json_object *s = json_object_from_file(path);
        cr_assert(s, "summary %s", path);
        json_object *l = aidp_test_json_at(s, "leak_scan");
        cr_assert(l, "no leak_scan in %s", json_object_to_json_string(s));
        const char *text = json_object_to_json_string(l);
        cr_assert_str_eq(aidp_test_json_str_or_null(l, "details"), "lineage", "%s", text);
        static const char *const never[] = {"hits",           "files",    "bytes",
                                            "hits_per_label", "examples", "values"};
        for (size_t i = 0; i < sizeof never / sizeof *never; i++)
                cr_assert_not(json_object_object_get_ex(l, never[i], NULL),
                              "the user's summary has %s: %s", never[i], text);
        *quarantined = json_object_get_boolean(aidp_test_json_at(l, "quarantined"));
        json_object_put(s);
}

static int open_output(const char *run_id, const char *dir, bool with_config, aidp_error *err)
{
        char sealed[4096];
        TEST_SNPRINTF(sealed, "%s/%s.sealed", outdir, run_id);
        struct aidp_keys k;
        aidp_keys_init(&k);
        int r = 0;
        if (with_config)
                r = aidp_keys_setup(keyscfg, dir, &k, err);
        else
                snprintf(k.dir, sizeof k.dir, "%s", dir);
        char plain[4096];
        TEST_SNPRINTF(plain, "%s/plain-%s-%d", T, run_id, with_config);
        if (r == 0)
                r = unseal_path(sealed, plain, &k, 1, NULL, err);
        aidp_keys_free(&k);
        if (r == 0) { /* the output is what the job wrote */
                char f[4096];
                TEST_SNPRINTF(f, "%s/model.bin", plain);
                cr_assert_eq(aidp_test_sh("grep -q '" EMAIL "' '%s'", f), 0, "%s",
                             (aidp_test_sh("ls -lR '%s' >&2", plain), f));
        }
        return r;
}

Test(leakscan, report_mode_seals_normally_and_records_the_hits)
{
        AIDP_REQUIRE_ROOT();
        char summary[4096];
        TEST_SNPRINTF(summary, "%s/summary-report.json", T);
        int st = run("leak-report", conf_data, summary);
        cr_assert_eq(st, 0, "exit %d\n%s", st, P.err);
        cr_assert_null(strstr(P.err, "leak scan"), "the user is told of hits: %s", P.err);
        uint64_t hits = 0;
        bool q = true;
        read_summary(summary, &q);
        cr_assert_not(q);
        json_object *ev[4] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "eventType"), "COMPLETE");
        json_object *f = check_facet(ev[1], &hits);
        cr_assert_eq(hits, 3);
        cr_assert_str_eq(aidp_test_json_str_or_null(f, "action"), "report");
        cr_assert_not(json_object_get_boolean(aidp_test_json_at(f, "quarantined")));
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
        aidp_error err = {0};
        cr_assert_eq(open_output("leak-report", userkeys, false, &err), 0,
                     "the user's key opens a reported output: %s", err.msg);
}

Test(leakscan, quarantine_seals_under_the_admin_key_and_fails_the_run)
{
        AIDP_REQUIRE_ROOT();
        char summary[4096];
        TEST_SNPRINTF(summary, "%s/summary-q.json", T);
        int st = run("leak-quarantine", restr_data, summary);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s", st, P.err);
        cr_assert(strstr(P.err, "/out is quarantined: the output leak scan found values the "
                                "run's view hides in it"),
                  "%s", P.err);
        cr_assert(strstr(P.err, "an admin has the details in lineage"), "%s", P.err);
        cr_assert_null(strstr(P.err, "hits"), "a count told to the user: %s", P.err);
        uint64_t hits = 0;
        bool q = false;
        read_summary(summary, &q);
        cr_assert(q);
        json_object *ev[4] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "eventType"), "FAIL");
        cr_assert_str_eq(aidp_test_json_str_or_null(ev[1], "run.facets.aidp_exit.reason"),
                         "output leak scan: 3 hits");
        json_object *f = check_facet(ev[1], &hits);
        cr_assert_str_eq(aidp_test_json_str_or_null(f, "quarantineKey"), "quarantine-key");
        json_object *outs = aidp_test_json_at(ev[1], "outputs");
        cr_assert_eq(json_object_array_length(outs), 1);
        cr_assert_str_eq(aidp_test_json_str_or_null(json_object_array_get_idx(outs, 0),
                                                    "facets.aidp_digest.keyId"),
                         "quarantine-key");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
        aidp_error err = {0};
        int r = open_output("leak-quarantine", userkeys, false, &err);
        cr_assert_lt(r, 0, "the user's key opened a quarantined output");
        cr_assert_eq(err.errnum, ENOKEY, "%s", err.msg);
        cr_assert_eq(open_output("leak-quarantine", keydir, true, &err), 0,
                     "the admin's quarantine key: %s", err.msg);
}

Test(leakscan, a_quarantine_policy_without_a_quarantine_key_refuses_before_the_job)
{
        AIDP_REQUIRE_ROOT();
        char cfg[8192], summary[4096];
        TEST_SNPRINTF(cfg, "key_dir: %s\n", keydir);
        put(keyscfg, cfg);
        TEST_SNPRINTF(summary, "%s/summary-nokey.json", T);
        int st = run("leak-nokey", restr_data, summary);
        cr_assert_eq(st, AIDP_EXIT_CONFIG, "exit %d\n%s", st, P.err);
        cr_assert(strstr(P.err, "declares no key with purpose quarantine"), "%s", P.err);
        cr_assert_eq(access(outdir, F_OK), 0);
        char sealed[4096];
        TEST_SNPRINTF(sealed, "%s/leak-nokey.sealed", outdir);
        cr_assert_neq(access(sealed, F_OK), 0, "nothing sealed");
}

/* A quarantined output given back as --data: decrypted into /data it would
 * give the user every hidden value the scan found. Refused before any
 * payload byte, whatever the policy grants on its tags, and on record. */
Test(leakscan, a_quarantined_output_is_never_a_users_input)
{
        AIDP_REQUIRE_ROOT();
        char summary[4096], sealed[4096];
        TEST_SNPRINTF(summary, "%s/summary-q1.json", T);
        int st = run("leak-q1", restr_data, summary);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s", st, P.err);
        TEST_SNPRINTF(sealed, "%s/leak-q1.sealed", outdir);
        cr_assert_eq(access(sealed, F_OK), 0, "no quarantined output: %s", P.err);
        /* Without --output-dir (with one, the quarantine key, the input's,
         * is refused as the output's key before this check). */
        char *argv[] = {
                AIDP_SUPERVISOR, "run",       "--user",  "nobody",   "--no-cwd",      "--run-dir",
                rundir,          "--lineage", logp,      "--run-id", "leak-q2",       "--data",
                sealed,          "--",        "/bin/sh", "-c",       "cat /data/*/*", NULL};
        st = aidp_test_run(&P, argv);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s", st, P.err);
        cr_assert(strstr(P.err, "is a quarantined output, sealed under the quarantine key "
                                "quarantine-key"),
                  "%s", P.err);
        cr_assert_null(strstr(P.out, EMAIL), "the job ran on it: %s", P.out);
        json_object *ev[4] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_eq(n, 3, "START and FAIL of leak-q1, then the denial");
        const char *text = json_object_to_json_string(ev[2]);
        cr_assert(strstr(text, "denied by policy") && strstr(text, "quarantine"), "%s", text);
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

/* The summary of root's own run keeps the details; a user's has none
 * (read_summary above checks the runs). */
Test(leakscan_json, details_only_where_the_job_is_roots_own)
{
        struct aidp_run_result res = {.leak_scanned = true, .leak_action = "report"};
        res.leak.hits = 2;
        res.leak.files = 1;
        res.leak.n_examples = 1;
        snprintf(res.leak.examples[0].file, sizeof res.leak.examples[0].file, "g.txt");
        res.leak.examples[0].offset = 357708;
        for (int priv = 0; priv < 2; priv++) {
                res.leak_private = priv;
                json_object *s = aidp_run_leak_json(&res, false);
                json_object *l = aidp_run_leak_json(&res, true);
                const char *st = json_object_to_json_string(s);
                cr_assert_eq(json_object_object_get_ex(s, "examples", NULL), !priv, "%s", st);
                cr_assert_eq(json_object_object_get_ex(s, "hits", NULL), !priv, "%s", st);
                cr_assert_eq(!!strstr(st, "357708"), !priv, "%s", st);
                /* lineage, the security team's, has them either way */
                cr_assert(strstr(json_object_to_json_string(l), "357708"));
                json_object_put(s);
                json_object_put(l);
        }
}
