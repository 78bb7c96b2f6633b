#define _GNU_SOURCE
/* Root integration tests of column views at injection (issue 18,
 * docs/sealed-data.md "Views at injection"): a canary in a pii.direct column
 * the caller's view does not show never exists anywhere in the sandbox (every
 * tmpfs, the environment, the job's own memory read through /proc/self/mem);
 * malformed CSV and JSONL refuse the run before the job starts, naming
 * DATASET/PATH:ROW:COL, with the end record saying why; a schema label
 * changed in the sealed file is refused as tampering. */
#include <openssl/rand.h>

#include "common/exitcodes.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

#define AIDP_TOOL       AIDP_BINARY_DIR "/aidp"
#define AIDP_VIEW_PROBE AIDP_BINARY_DIR "/tests/helpers/view_probe"

static char *T;
static char keydir[4096], rundir[4096], logp[4096], keyp[4096];
static char canary[64];
static struct aidp_proc P;

static void put(const char *path, const char *text)
{
        write_all(path, (const uint8_t *)text, strlen(text));
        chmod(path, 0644);
}

/* DIR/src-NAME/<files...> sealed with schema.yaml (NULL: none) into T/NAME.sealed. */
static void seal_with_schema(const char *name, const char *schema, char *out)
{
        char src[4096], sch[4096];
        TEST_SNPRINTF(src, "%s/src-%s", T, name);
        TEST_SNPRINTF(sch, "%s/%s.schema.yaml", T, name);
        if (schema)
                put(sch, schema);
        snprintf(out, 4096, "%s/%s.sealed", T, name);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -n %s -k run-key -c confidential --key-dir %s "
                                  "%s%s -q",
                                  AIDP_TOOL, src, out, name, keydir, schema ? "--schema " : "",
                                  schema ? sch : ""),
                     0, "sealing %s", name);
}

static void src_file(const char *name, const char *rel, const char *text)
{
        char p[4096];
        TEST_SNPRINTF(p, "%s/src-%s", T, name);
        mkdir_p(p, 0755);
        TEST_SNPRINTF(p, "%s/src-%s/%s", T, name, rel);
        put(p, text);
}

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "run-key", &err), 0, "%s", err.msg);
        /* A canary nobody else could have written. */
        uint8_t r[12];
        cr_assert_eq(RAND_bytes(r, sizeof r), 1);
        int o = snprintf(canary, sizeof canary, "canary-");
        for (size_t i = 0; i < sizeof r; i++)
                o += snprintf(canary + o, sizeof canary - (size_t)o, "%02x", r[i]);
        char pol[4096];
        TEST_SNPRINTF(pol, "%s/policy", T);
        /* The tests role has no view: every labelled column is dropped (fail
         * closed), unlabelled ones pass. */
        aidp_test_policy_allow(pol, "nobody", NULL, NULL);
}

static void teardown(void)
{
        unsetenv("AIDP_POLICY_DIR");
        unsetenv("AIDP_LINEAGE_KEY");
        tmpdir_rm(T);
}

TestSuite(views, .init = setup, .fini = teardown, .timeout = 120);

static int run_job(const char *const job[], const char *data)
{
        char *argv[40];
        int n = 0;
        const char *fixed[] = {
                AIDP_SUPERVISOR, "run",  "--user",    "65534", "--no-cwd", "--run-dir", rundir,
                "--key-dir",     keydir, "--lineage", logp,    "--data",   data,        "--"};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
                argv[n++] = (char *)fixed[i];
        for (int i = 0; job[i]; i++)
                argv[n++] = (char *)job[i];
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

static const char *const SCHEMA_CSV = "apiVersion: aidp/v1\n"
                                      "kind: Schema\n"
                                      "files:\n"
                                      "  - pattern: \"*.csv\"\n"
                                      "    format: csv\n"
                                      "    columns:\n"
                                      "      name: [pii.direct]\n";

/* A canary in every row's pii.direct column; the job (the probe) scans
 * every tmpfs, its environment and its own memory for it. tokenized: the
 * view tokenizes the column, and the tokens must be there instead. */
/* keys.yaml of the tests with token keys (policy_with_views) */
static char keyscfg[4096];

static int run_keys(const char *const job[], const char *const data[])
{
        char *argv[48];
        int n = 0;
        const char *fixed[] = {AIDP_SUPERVISOR, "run",       "--user", "65534",
                               "--no-cwd",      "--run-dir", rundir,   "--keys-config",
                               keyscfg,         "--lineage", logp};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
                argv[n++] = (char *)fixed[i];
        for (int i = 0; data[i]; i++) {
                argv[n++] = "--data";
                argv[n++] = (char *)data[i];
        }
        argv[n++] = "--";
        for (int i = 0; job[i]; i++)
                argv[n++] = (char *)job[i];
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

static void canary_probe(bool tokenized, bool schema)
{
        char csv[8192], in[4096];
        size_t o = (size_t)snprintf(csv, sizeof csv, "id,name,age\n");
        for (int i = 0; i < 50; i++)
                o += (size_t)snprintf(csv + o, sizeof csv - o, "%d,\"%s %d\",%d\n", i, canary, i,
                                      20 + i);
        src_file("patients", "patients.csv", csv);
        seal_with_schema("patients", schema ? SCHEMA_CSV : NULL, in);
        /* The probe gets the canary xor a random mask, so it never holds it. */
        size_t n = strlen(canary);
        uint8_t mask[64];
        cr_assert_eq(RAND_bytes(mask, (int)n), 1);
        char mhex[160] = "", chex[160] = "";
        for (size_t i = 0; i < n; i++) {
                mask[i] |= 1; /* never 0: no byte of the canary in the clear */
                snprintf(mhex + 2 * i, 3, "%02x", mask[i]);
                snprintf(chex + 2 * i, 3, "%02x", (uint8_t)(canary[i] ^ mask[i]));
        }
        const char *job[] = {AIDP_VIEW_PROBE, mhex, chex, tokenized ? "patient:" : "49,69", NULL};
        const char *data[] = {in, NULL};
        int st = tokenized ? run_keys(job, data) : run_job(job, in);
        cr_assert_eq(st, 0, "run failed: %s", P.err);
        if (!schema) {
                /* the control: without a view the probe does find it, in
                 * /data and in its own memory */
                cr_expect(strstr(P.out, "FOUND file /data/patients/patients.csv") &&
                                  strstr(P.out, "FOUND mem"),
                          "the probe missed the canary: %s", P.out);
                return;
        }
        cr_expect_null(strstr(P.out, "FOUND"), "the canary reached the sandbox: %s", P.out);
        cr_expect_null(strstr(P.out, "ERROR"), "%s", P.out);
        cr_expect(strstr(P.out, "SCANNED files=") != NULL, "%s", P.out);
        /* dropped: the unlabelled columns arrived (the last row: id 49, age
         * 69); tokenized: one token per row */
        cr_expect(strstr(P.out, tokenized ? "PREFIX 50\n" : "PREFIX 1\n") != NULL,
                  "what the view shows is missing: %s", P.out);
        /* START says how the dataset reached the job; the end record what it received. */
        json_object *ev[8];
        size_t k = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(k, 2);
        json_object *v0 = json_object_array_get_idx(
                aidp_test_json_at(ev[0], "run.facets.aidp_view.datasets"), 0);
        cr_expect_str_eq(aidp_test_json_str(v0, "injected"), "viewed", "%s",
                         json_object_to_json_string(ev[0]));
        json_object *col = json_object_array_get_idx(
                aidp_test_json_at(json_object_array_get_idx(aidp_test_json_at(v0, "files"), 0),
                                  "columns"),
                0);
        cr_expect_str_eq(aidp_test_json_str(col, "column"), "name");
        if (tokenized) {
                cr_expect_str_eq(aidp_test_json_str(col, "keyId"), "tok-1");
                cr_expect_str_eq(aidp_test_json_str(col, "domain"), "patient");
        } else {
                cr_expect_str_eq(aidp_test_json_str(col, "transform"), "drop");
        }
        json_object *in0 = json_object_array_get_idx(aidp_test_json_at(ev[1], "inputs"), 0);
        cr_expect(
                !strncmp(aidp_test_json_str(in0, "facets.aidp_view.receivedDigest"), "sha256:", 7),
                "%s", json_object_to_json_string(ev[1]));
        cr_expect_str_eq(aidp_test_json_str(in0, "facets.aidp_view.view"),
                         tokenized ? "research" : "-");
        for (size_t i = 0; i < k; i++)
                json_object_put(ev[i]);
}

static void canary_never_reaches_the_sandbox(bool tokenized)
{
        canary_probe(tokenized, true);
}

Test(views, a_canary_in_a_dropped_pii_direct_column_never_reaches_the_sandbox)
{
        AIDP_REQUIRE_ROOT();
        canary_never_reaches_the_sandbox(false);
}

Test(views, control_the_probe_finds_the_canary_in_a_dataset_without_a_view)
{
        AIDP_REQUIRE_ROOT();
        canary_probe(false, false);
}

/* A malformed file refuses the run before the job starts: exit 117, the
 * position, an end record that says why and a job that never started. */
static void expect_refused_before_the_job(const char *in, const char *where)
{
        const char *job[] = {"/bin/sh", "-c", "echo JOB-RAN", NULL};
        int st = run_job(job, in);
        cr_expect_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_expect_null(strstr(P.out, "JOB-RAN"), "the job ran: %s", P.out);
        cr_expect(strstr(P.err, where) != NULL, "no position %s in: %s", where, P.err);
        json_object *ev[8];
        size_t k = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_eq(k, 2, "expected START and an end record");
        cr_expect_str_eq(aidp_test_json_str(ev[1], "eventType"), "FAIL");
        cr_expect(strstr(aidp_test_json_str(ev[1], "run.facets.aidp_exit.reason"), where) != NULL,
                  "%s", json_object_to_json_string(ev[1]));
        cr_expect(
                !json_object_get_boolean(aidp_test_json_at(ev[1], "run.facets.aidp_exit.started")),
                "the job started");
        cr_expect(
                json_object_get_boolean(aidp_test_json_at(ev[1], "run.facets.aidp_shred.verified")),
                "/data not shredded and verified");
        for (size_t i = 0; i < k; i++)
                json_object_put(ev[i]);
}

Test(views, a_malformed_csv_refuses_the_run_before_the_job)
{
        AIDP_REQUIRE_ROOT();
        char in[4096];
        /* row 3 (the header is row 1) has a field too many */
        src_file("ragged", "a.csv", "id,name\n1,alice\n2,bob,extra\n3,carol\n");
        seal_with_schema("ragged", SCHEMA_CSV, in);
        expect_refused_before_the_job(in, "ragged/a.csv:3:");
}

Test(views, a_malformed_jsonl_refuses_the_run_before_the_job)
{
        AIDP_REQUIRE_ROOT();
        char in[4096];
        src_file("events", "e.jsonl",
                 "{\"patient\": {\"email\": \"a@example.org\"}}\n[1, 2]\n"
                 "{\"patient\": {\"email\": \"b@example.org\"}}\n");
        seal_with_schema("events",
                         "apiVersion: aidp/v1\nkind: Schema\nfiles:\n"
                         "  - pattern: \"*.jsonl\"\n    format: jsonl\n"
                         "    columns:\n      /patient/email: [pii.direct]\n",
                         in);
        expect_refused_before_the_job(in, "events/e.jsonl:2:");
}

Test(views, a_flipped_schema_label_is_refused_as_tampering)
{
        AIDP_REQUIRE_ROOT();
        char in[4096];
        src_file("flip", "a.csv", "id,name\n1,alice\n");
        seal_with_schema("flip", SCHEMA_CSV, in);
        /* pii.direct -> pii.dirfct in the header, same length. */
        size_t len = 0;
        uint8_t *b = read_all(in, &len);
        uint8_t *at = memmem(b, len, "pii.direct", 10);
        cr_assert_not_null(at, "the schema is not in the header");
        at[7] = 'f';
        write_all(in, b, len);
        free(b);
        const char *job[] = {"/bin/sh", "-c", "echo JOB-RAN", NULL};
        int st = run_job(job, in);
        cr_expect_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_expect_null(strstr(P.out, "JOB-RAN"));
        cr_expect(strstr(P.err, "flip") && strstr(P.err, "authentic"), "%s", P.err);
}
