#define _GNU_SOURCE
/* Root integration tests of what --dry-run's plan and a run's own report show
 * of a sealed input's header (docs/security.md, "What a caller sees of sealed
 * data"): a caller the policy denies sees the path they named and the failed
 * checks, nothing of the header (no content digest, name, classification,
 * tags, schema), in text and JSON; a caller whose input reaches the job
 * through a column view never sees the raw plaintext's content digest, only
 * what the job received; a caller given the plaintext sees its digest. */
#include <json-c/json.h>

#include "common/exitcodes.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"

static char *T;
static char keydir[RUN_PATH_MAX], rundir[RUN_PATH_MAX], logp[RUN_PATH_MAX], keyp[RUN_PATH_MAX];
static char poldir[RUN_PATH_MAX], ward[RUN_PATH_MAX], plain[RUN_PATH_MAX];
static struct aidp_proc P;

static const char *const SCHEMA_CSV = "apiVersion: aidp/v1\n"
                                      "kind: Schema\n"
                                      "files:\n"
                                      "  - pattern: \"*.csv\"\n"
                                      "    format: csv\n"
                                      "    columns:\n"
                                      "      name: [pii.direct]\n";

static void put(const char *path, const char *text)
{
        write_all(path, (const uint8_t *)text, strlen(text));
        chmod(path, 0644);
}

/* T/src-NAME/patients.csv sealed as dataset HEADER_NAME (with the schema or
 * without) into OUT, confidential, residency wardland, regulation wardreg. */
static void seal(const char *name, const char *header_name, bool schema, char *out)
{
        char src[RUN_PATH_MAX], f[RUN_PATH_MAX], sch[RUN_PATH_MAX];
        TEST_SNPRINTF(src, "%s/src-%s", T, name);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/patients.csv", src);
        put(f, "name,ward\nAda Lovelace,3\nAlan Turing,4\n");
        TEST_SNPRINTF(sch, "%s/schema.yaml", T);
        put(sch, SCHEMA_CSV);
        snprintf(out, RUN_PATH_MAX, "%s/%s.sealed", T, name);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -n %s -k run-key -c confidential -r wardland "
                                  "-g wardreg --key-dir %s %s%s -q",
                                  AIDP_TOOL, src, out, header_name, keydir,
                                  schema ? "--schema " : "", schema ? sch : ""),
                     0, "sealing %s", name);
}

static void setup(void)
{
        T = run_dirs_new(keydir, rundir, logp, keyp);
        TEST_SNPRINTF(poldir, "%s/policy", T);
        static const char *const res[] = {"wardland", NULL}, *const reg[] = {"wardreg", NULL};
        aidp_test_policy_allow(poldir, "nobody", res, reg);
        seal("ward-us", "ward-secret-name", true, ward);
        seal("plain-us", "plain-secret-name", false, plain);
}

static void teardown(void)
{
        aidp_test_policy_done(rundir);
        unsetenv("AIDP_LINEAGE_KEY");
        tmpdir_rm(T);
}

TestSuite(plan, .init = setup, .fini = teardown, .timeout = 120);

/* aidp-supervisor run as nobody, --data data, with --dry-run [--json] or for real. */
static int run(const char *data, bool dry, bool json)
{
        char *argv[32];
        int n = 0;
        const char *fixed[] = {
                AIDP_SUPERVISOR, "run",  "--user",    "65534", "--no-cwd", "--run-dir", rundir,
                "--key-dir",     keydir, "--lineage", logp,    "--data",   data};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
                argv[n++] = (char *)fixed[i];
        if (dry)
                argv[n++] = "--dry-run";
        if (json)
                argv[n++] = "--json";
        argv[n++] = "--";
        argv[n++] = "/bin/sh";
        argv[n++] = "-c";
        argv[n++] = "cat /data/*/patients.csv";
        argv[n] = NULL;
        return aidp_test_run(&P, argv);
}

/* Nothing that only the header says: its digest, name, classification,
 * tags, key, schema. */
static void no_header_in(const char *what, const char *out)
{
        static const char *const secret[] = {"hmac-sha256", "ward-secret-name", "confidential",
                                             "wardland",    "wardreg",          "datasetVersion",
                                             "run-key",     "pii.direct",       "patients.csv"};
        for (size_t i = 0; i < sizeof secret / sizeof *secret; i++)
                cr_expect_null(strstr(out, secret[i]), "%s shows '%s' of the header:\n%s", what,
                               secret[i], out);
}

Test(plan, a_denied_dry_run_shows_nothing_of_the_header_in_text_or_json)
{
        AIDP_REQUIRE_ROOT();
        /* nobody holds no role now: the access policy denies every run */
        aidp_test_policy_access(poldir, "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n"
                                        "  other:\n    operations: [run]\n    profiles: [\"*\"]\n"
                                        "    datasets: [\"*\"]\n"
                                        "    max_classification: regulated\n"
                                        "users:\n  daemon: {roles: [other]}\n");
        int st = run(ward, true, false);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        no_header_in("the denied plan", P.out);
        /* what the caller named, and every failed check, one a line */
        cr_expect(strstr(P.out, ward) != NULL, "%s", P.out);
        cr_expect(strstr(P.out, "\n    DENY: run by user nobody") != NULL, "%s", P.out);
        cr_expect(strstr(P.out, "\n      FAIL access         default (role): user 'nobody'") !=
                          NULL,
                  "%s", P.out);
        cr_expect_null(strstr(P.out, " PASS "), "a passed check in a denied plan:\n%s", P.out);

        st = run(ward, true, true);
        cr_assert_eq(st, AIDP_EXIT_DENIED, "exit %d\n%s\n%s", st, P.out, P.err);
        no_header_in("the denied plan (--json)", P.out);
        json_object *o = json_tokener_parse(P.out), *v = NULL;
        cr_assert_not_null(o, "%s", P.out);
        json_object *in =
                json_object_array_get_idx(json_object_object_get_ex(o, "inputs", &v) ? v : NULL, 0);
        cr_assert_not_null(in, "%s", P.out);
        cr_expect(json_object_object_get_ex(in, "name", &v) &&
                          !strcmp(json_object_get_string(v), ward),
                  "%s", P.out);
        cr_expect(!json_object_object_get_ex(in, "facets", &v), "%s", P.out);
        json_object_put(o);
}

/* The view's caller: neither the plan nor the run's report (stderr,
 * --summary) shows the plaintext's digest; the run shows what the job
 * received. */
Test(plan, a_caller_given_a_view_sees_the_digest_of_what_the_job_received_only)
{
        AIDP_REQUIRE_ROOT();
        int st = run(ward, true, true);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect_null(strstr(P.out, "hmac-sha256"), "the plan shows the plaintext's digest:\n%s",
                       P.out);
        cr_expect(strstr(P.out, "\"injected\":\"viewed\"") != NULL ||
                          strstr(P.out, "\"injected\": \"viewed\"") != NULL,
                  "%s", P.out);
        st = run(ward, true, false);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect_null(strstr(P.out, "hmac-sha256"), "%s", P.out);
        cr_expect(strstr(P.out, "\n    ALLOW: run by user nobody") != NULL, "%s", P.out);

        st = run(ward, false, false);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        /* the job got the view: the pii.direct column dropped */
        cr_expect(strstr(P.out, "Ada") == NULL && strstr(P.out, "ward\n3\n4\n") != NULL, "%s",
                  P.out);
        cr_expect_null(strstr(P.err, "hmac-sha256"), "the run shows the plaintext's digest:\n%s",
                       P.err);
        cr_expect(strstr(P.err, "ward-secret-name 1 (confidential; wardland; wardreg): through a "
                                "view\n") != NULL,
                  "%s", P.err);
        cr_expect(strstr(P.err, "seen through view - (1 files viewed): received sha256:") != NULL,
                  "%s", P.err);
        /* root's lineage names the view the input reached the job through */
        char *show[] = {AIDP_TOOL, "lineage", "show", "--file", logp, NULL};
        cr_assert_eq(aidp_test_run(&P, show), 0, "%s", P.err);
        cr_expect(strstr(P.out, "input     aidp/ward-secret-name  hmac-sha256:") != NULL, "%s",
                  P.out);
        cr_expect(strstr(P.out, "  view: none (labelled columns dropped)\n") != NULL, "%s", P.out);
}

/* The control: a caller given the plaintext (no schema) sees its digest. */
Test(plan, a_caller_given_the_plaintext_sees_its_digest)
{
        AIDP_REQUIRE_ROOT();
        int st = run(plain, true, true);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "hmac-sha256:") != NULL, "%s", P.out);
        st = run(plain, true, false);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "plain-secret-name (") != NULL, "%s", P.out);
        cr_expect(strstr(P.out, ", content hmac-sha256:") != NULL, "%s", P.out);
        st = run(plain, false, false);
        cr_assert_eq(st, 0, "exit %d\n%s\n%s", st, P.out, P.err);
        cr_expect(strstr(P.out, "Ada Lovelace") != NULL, "%s", P.out);
        cr_expect(strstr(P.err, "(confidential; wardland; wardreg): hmac-sha256:") != NULL, "%s",
                  P.err);
}
