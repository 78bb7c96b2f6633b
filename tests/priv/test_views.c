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
static char keydir[RUN_PATH_MAX], rundir[RUN_PATH_MAX], logp[RUN_PATH_MAX], keyp[RUN_PATH_MAX];
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
        T = run_dirs_new(keydir, rundir, logp, keyp);
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
        /* The whole memory was read: no region left out (the probe is never
         * sanitized, so no shadow of terabytes to skip; tests/CMakeLists.txt). */
        cr_expect(strstr(P.out, " skipped-regions=0\n") != NULL, "%s", P.out);
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

/* ---- views from the access policy: tokens (access.yaml `views:`) ---- */

static char polydir[4096];

/* keys.yaml with run-key (kek) and tok-1 (tokenize); access.yaml giving the
 * tests role the view `research` (and `detokenize` when asked), and a role
 * `plain` without detokenize for the user `daemon`. */
static void policy_with_views(const char *view_yaml, bool detokenize)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "tok-1", &err), 0, "%s", err.msg);
        TEST_SNPRINTF(keyscfg, "%s/keys.yaml", T);
        char buf[2048];
        TEST_SNPRINTF(buf,
                      "provider: file\nkey_dir: %s\nkeys:\n  run-key: {purpose: kek}\n"
                      "  tok-1: {purpose: tokenize}\n  lin-1: {purpose: lineage}\n",
                      keydir);
        put(keyscfg, buf);
        TEST_SNPRINTF(polydir, "%s/policy", T);
        char acc[4096];
        TEST_SNPRINTF(acc,
                      "apiVersion: aidp/v1\nkind: AccessPolicy\nviews:\n  research:\n%s"
                      "roles:\n  tests:\n    operations: [run%s]\n    profiles: [\"*\"]\n"
                      "    datasets: [\"*\"]\n    max_classification: regulated\n"
                      "    view: research\n"
                      "  plain:\n    operations: [run]\n    profiles: [\"*\"]\n"
                      "    datasets: [\"*\"]\n    max_classification: regulated\n"
                      "    view: research\n"
                      "users:\n  nobody: {roles: [tests]}\n  daemon: {roles: [plain]}\n",
                      view_yaml, detokenize ? ", detokenize" : "");
        aidp_test_policy_access(polydir, acc);
}

static const char *const JOIN_VIEW = "    labels:\n"
                                     "      pii.direct: {tokenize: {mode: hmac, domain: patient, "
                                     "key: tok-1}}\n"
                                     "    columns:\n"
                                     "      contact: {tokenize: {mode: hmac, domain: billing, "
                                     "key: tok-1}}\n";

Test(views, datasets_tokenized_in_one_domain_join_and_across_domains_do_not)
{
        AIDP_REQUIRE_ROOT();
        policy_with_views(JOIN_VIEW, false);
        char a[4096], b[4096], c[4096];
        src_file("pa", "p.csv", "email,n\nalice@example.org,pa-1\nbob@example.org,pa-2\n");
        src_file("vb", "v.csv", "email,n\nbob@example.org,vb-1\nalice@example.org,vb-2\n");
        src_file("bc", "b.csv", "contact,n\nalice@example.org,bc-1\n");
        const char *sch = "apiVersion: aidp/v1\nkind: Schema\nfiles:\n  - pattern: \"*.csv\"\n"
                          "    format: csv\n    columns:\n      email: [pii.direct]\n";
        const char *sch_c = "apiVersion: aidp/v1\nkind: Schema\nfiles:\n  - pattern: \"*.csv\"\n"
                            "    format: csv\n    columns:\n      contact: [pii.direct]\n";
        seal_with_schema("pa", sch, a);
        seal_with_schema("vb", sch, b);
        seal_with_schema("bc", sch_c, c);
        const char *job[] = {"/bin/sh", "-c",
                             "for f in /data/*/*.csv; do sed \"s|^|${f#/data/}:|\" \"$f\"; done",
                             NULL};
        const char *data[] = {a, b, c, NULL};
        int st = run_keys(job, data);
        cr_assert_eq(st, 0, "run failed: %s", P.err);
        cr_expect_null(strstr(P.out, "@example.org"), "a raw email reached the job: %s", P.out);
        /* rows are "TOKEN,n": look tokens up by the unlabelled column */
        char ta[128], tb[128], tc[128], tb2[128];
        const char *ra = strstr(P.out, ",pa-1"), *rb = strstr(P.out, ",vb-2"),
                   *rc = strstr(P.out, ",bc-1"), *rb2 = strstr(P.out, ",vb-1");
        cr_assert(ra && rb && rc && rb2, "%s", P.out);
        for (const char **r = (const char *[]){ra, rb, rc, rb2, NULL}; *r; r++) {
                /* the line is "DS/FILE.csv:TOKEN,n" */
                const char *s = *r;
                while (s > P.out && s[-1] != '\n')
                        s--;
                s = strchr(s, ':') + 1;
                char *dst = *r == ra ? ta : *r == rb ? tb : *r == rc ? tc : tb2;
                snprintf(dst, 128, "%.*s", (int)(*r - s), s);
        }
        cr_expect(!strncmp(ta, "patient:", 8), "token %s", ta);
        cr_expect_str_eq(ta, tb, "alice's tokens differ across datasets of one domain");
        cr_expect_str_neq(ta, tb2, "alice and bob have one token");
        cr_expect(!strncmp(tc, "billing:", 8), "token %s", tc);
        cr_expect_str_neq(ta + 8, tc + 8, "one value tokenized alike in two domains");
}

Test(views, a_token_key_missing_or_of_another_purpose_refuses_the_run_before_decryption)
{
        AIDP_REQUIRE_ROOT();
        policy_with_views("    labels:\n      pii.direct: {tokenize: {mode: hmac, domain: p, "
                          "key: lin-1}}\n",
                          false);
        char in[4096];
        src_file("k", "a.csv", "name,n\nalice,1\n");
        seal_with_schema("k", SCHEMA_CSV, in);
        const char *job[] = {"/bin/sh", "-c", "echo JOB-RAN", NULL};
        const char *data[] = {in, NULL};
        int st = run_keys(job, data);
        cr_expect_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_expect_null(strstr(P.out, "JOB-RAN"));
        cr_expect(strstr(P.err, "token key lin-1") && strstr(P.err, "purpose lineage"), "%s",
                  P.err);
}

static const char *const SIV_VIEW = "    labels:\n"
                                    "      pii.direct: {tokenize: {mode: siv, domain: patient, "
                                    "key: tok-1}}\n";

/* The records of the lineage log the aidp tool wrote, with facet aidp_detokenize. */
static size_t detok_records(json_object **ev, size_t max)
{
        json_object *all[16];
        size_t n = aidp_test_lineage_records(logp, keyp, all, 16), k = 0;
        for (size_t i = 0; i < n; i++) {
                if (k < max && aidp_test_json_at(all[i], "run.facets.aidp_detokenize"))
                        ev[k++] = all[i];
                else
                        json_object_put(all[i]);
        }
        return k;
}

Test(views, detokenize_round_trips_for_an_authorised_role_and_is_refused_and_recorded_for_others)
{
        AIDP_REQUIRE_ROOT();
        policy_with_views(SIV_VIEW, true);
        char in[4096];
        src_file("dt", "a.csv", "name,n\nAlice Example,1\n");
        seal_with_schema("dt", SCHEMA_CSV, in);
        const char *job[] = {"/bin/sh", "-c", "cat /data/dt/a.csv", NULL};
        const char *data[] = {in, NULL};
        cr_assert_eq(run_keys(job, data), 0, "%s", P.err);
        const char *at = strstr(P.out, "patient~");
        cr_assert_not_null(at, "no siv token: %s", P.out);
        char tok[256];
        snprintf(tok, sizeof tok, "%.*s", (int)strcspn(at, ",\r\n"), at);
        setenv("AIDP_LINEAGE_FILE", logp, 1);
        /* nobody's role grants detokenize */
        char *ok[] = {AIDP_TOOL,      "detokenize",    "--data", in,       "--key",
                      "tok-1",        "--keys-config", keyscfg,  "--user", "nobody",
                      "--policy-dir", polydir,         tok,      NULL};
        int st = aidp_test_run(&P, ok);
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect_str_eq(P.out, "Alice Example\n");
        /* daemon's does not */
        char *no[] = {AIDP_TOOL,      "detokenize",    "--data", in,       "--key",
                      "tok-1",        "--keys-config", keyscfg,  "--user", "daemon",
                      "--policy-dir", polydir,         tok,      NULL};
        st = aidp_test_run(&P, no);
        cr_expect_eq(st, AIDP_EXIT_DENIED, "exit %d: %s", st, P.err);
        cr_expect_null(strstr(P.out, "Alice"), "%s", P.out);
        unsetenv("AIDP_LINEAGE_FILE");
        json_object *ev[4];
        size_t n = detok_records(ev, 4);
        cr_assert_eq(n, 2, "expected two detokenize records");
        cr_expect_str_eq(aidp_test_json_str(ev[0], "run.facets.aidp_detokenize.decision"), "allow");
        cr_expect_str_eq(aidp_test_json_str(ev[0], "run.facets.aidp_detokenize.user"), "nobody");
        cr_expect_str_eq(aidp_test_json_str(ev[0], "run.facets.aidp_detokenize.keyId"), "tok-1");
        cr_expect_eq(
                json_object_get_int(aidp_test_json_at(ev[0], "run.facets.aidp_detokenize.count")),
                1);
        cr_expect_str_eq(aidp_test_json_str(ev[1], "run.facets.aidp_detokenize.decision"), "deny");
        cr_expect_str_eq(aidp_test_json_str(ev[1], "run.facets.aidp_detokenize.user"), "daemon");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

/* A grant of detokenize on a dataset reverses that dataset's own tokens
 * only: naming a dataset without tokens (no schema) or a token of another
 * domain is refused (121), whichever key the caller names. */
Test(views, detokenize_reverses_only_the_named_datasets_own_token_domains)
{
        AIDP_REQUIRE_ROOT();
        policy_with_views(SIV_VIEW, true);
        char in[4096], other[4096];
        src_file("dx", "a.csv", "name,n\nBob Example,1\n");
        seal_with_schema("dx", SCHEMA_CSV, in);
        src_file("plainset", "b.txt", "nothing labelled here\n");
        seal_with_schema("plainset", NULL, other);
        const char *job[] = {"/bin/sh", "-c", "cat /data/dx/a.csv", NULL};
        const char *data[] = {in, NULL};
        cr_assert_eq(run_keys(job, data), 0, "%s", P.err);
        const char *at = strstr(P.out, "patient~");
        cr_assert_not_null(at, "no siv token: %s", P.out);
        char tok[256], forged[300];
        snprintf(tok, sizeof tok, "%.*s", (int)strcspn(at, ",\r\n"), at);
        snprintf(forged, sizeof forged, "visit%s", strchr(tok, '~'));
        setenv("AIDP_LINEAGE_FILE", logp, 1);
        /* the token is dx's, the dataset named is one without tokens */
        char *wrong_set[] = {AIDP_TOOL,      "detokenize",    "--data", other,    "--key",
                             "tok-1",        "--keys-config", keyscfg,  "--user", "nobody",
                             "--policy-dir", polydir,         tok,      NULL};
        int st = aidp_test_run(&P, wrong_set);
        cr_expect_eq(st, AIDP_EXIT_DENIED, "exit %d: %s", st, P.err);
        cr_expect_null(strstr(P.out, "Bob"), "%s", P.out);
        cr_expect(strstr(P.err, "not a reversible token domain"), "%s", P.err);
        /* dx named, but a domain none of its views tokenizes into */
        char *wrong_dom[] = {AIDP_TOOL,      "detokenize",    "--data", in,       "--key",
                             "tok-1",        "--keys-config", keyscfg,  "--user", "nobody",
                             "--policy-dir", polydir,         forged,   NULL};
        st = aidp_test_run(&P, wrong_dom);
        cr_expect_eq(st, AIDP_EXIT_DENIED, "exit %d: %s", st, P.err);
        cr_expect(strstr(P.err, "domain 'visit'"), "%s", P.err);
        /* and the dataset's own token still reverses */
        char *ok[] = {AIDP_TOOL,      "detokenize",    "--data", in,       "--key",
                      "tok-1",        "--keys-config", keyscfg,  "--user", "nobody",
                      "--policy-dir", polydir,         tok,      NULL};
        st = aidp_test_run(&P, ok);
        unsetenv("AIDP_LINEAGE_FILE");
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect_str_eq(P.out, "Bob Example\n");
        json_object *ev[4];
        size_t n = detok_records(ev, 4);
        cr_expect_eq(n, 3, "every attempt is recorded");
        if (n >= 2)
                cr_expect_str_eq(aidp_test_json_str(ev[0], "run.facets.aidp_detokenize.decision"),
                                 "deny");
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

/* The view feeds the output leak scan: a raw value of a tokenized column
 * that reaches /out anyway (here the job knows it from elsewhere and writes
 * it into a binary model file) is found before /out is sealed, named in the
 * summary, and never copied into the report. */
Test(views, a_raw_value_of_a_tokenized_column_written_to_out_is_caught_by_the_leak_scan)
{
        AIDP_REQUIRE_ROOT();
        static const char *const MAIL = "grace.hopper.leak@example.org";
        policy_with_views(SIV_VIEW, false);
        char in[4096], out[4096], summary[4096], job_sh[1024];
        char rows[256];
        TEST_SNPRINTF(rows, "name,n\n%s,1\nother.person@example.org,2\n", MAIL);
        src_file("lk", "a.csv", rows);
        seal_with_schema("lk", SCHEMA_CSV, in);
        TEST_SNPRINTF(out, "%s/out-lk", T);
        mkdir_p(out, 0777);
        chmod(out, 0777);
        TEST_SNPRINTF(summary, "%s/summary-lk.json", T);
        TEST_SNPRINTF(job_sh,
                      "grep -q 'patient~' /data/lk/a.csv && ! grep -q '%s' /data/lk/a.csv && "
                      "printf 'WEIGHTS\\000\\001%s\\002' > /out/model.bin",
                      MAIL, MAIL);
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "65534",
                        "--no-cwd",
                        "--run-dir",
                        rundir,
                        "--keys-config",
                        keyscfg,
                        "--lineage",
                        logp,
                        "--data",
                        in,
                        "--output-dir",
                        out,
                        "--summary",
                        summary,
                        "--",
                        "/bin/sh",
                        "-c",
                        job_sh,
                        NULL};
        int st = aidp_test_run(&P, argv);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        /* The details are the security team's: lineage END's facet (the
         * user's summary says only that the scan ran, test_leakscan.c). */
        json_object *ev[8] = {0};
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 8);
        cr_assert_geq(n, 2);
        json_object *f = aidp_test_json_at(ev[n - 1], "run.facets.aidp_leakscan");
        const char *text = json_object_to_json_string(f);
        cr_expect_geq(json_object_get_int64(aidp_test_json_at(f, "hits")), 1, "%s", text);
        cr_expect(strstr(text, "model.bin") && strstr(text, "pii.direct"), "%s", text);
        cr_expect_null(strstr(text, MAIL), "the value itself in the report: %s", text);
        json_object *sj = json_object_from_file(summary);
        cr_assert(sj, "summary %s", summary);
        const char *stext = json_object_to_json_string(aidp_test_json_at(sj, "leak_scan"));
        cr_expect_null(strstr(stext, "model.bin"), "where the hit was, told the user: %s", stext);
        json_object_put(sj);
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
}

Test(views, a_canary_in_a_tokenized_pii_direct_column_never_reaches_the_sandbox)
{
        AIDP_REQUIRE_ROOT();
        policy_with_views(JOIN_VIEW, false);
        canary_never_reaches_the_sandbox(true);
}
