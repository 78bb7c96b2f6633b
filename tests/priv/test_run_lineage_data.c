#define _GNU_SOURCE
/* A run with sealed data in lineage: START names each input with its content digest,
 * classification and tags from the authenticated header; COMPLETE adds the sealed
 * /out as an output with its digest; the graph draws dataset -> run -> artifact. */
#include "common/exitcodes.h"
#include "priv.h"
#include "lineage_util.h"
#include "runner.h"
#include "policy_util.h"
#include "supervisor/lineage/lineage.h"
#include "tests/sealed_util.h"

static char *T;
static char keydir[4096], outdir[4096], in1[4096], logp[4096], lkey[4096], run_id[64];
static struct aidp_proc P;

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(outdir, "%s/outputs", T);
        TEST_SNPRINTF(logp, "%s/lineage/lineage.jsonl", T);
        TEST_SNPRINTF(lkey, "%s/lineage/lineage.key", T);
        TEST_SNPRINTF(run_id, "aidp-test-lineage-data-%d", (int)getpid());
        setenv("AIDP_LINEAGE_KEY", lkey, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
        mkdir_p(outdir, 0755);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "run-key", &err), 0, "%s", err.msg);
        char src[4096], f[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/src/train.csv", T);
        write_file(f, 4096, 0644, 3);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, "patients");
        strcpy(p.meta.key_id, "run-key");
        p.meta.classification = AIDP_CLASS_CONFIDENTIAL;
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, "eu", &err), 0);
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, "phi", &err), 0);
        TEST_SNPRINTF(in1, "%s/patients.sealed", T);
        cr_assert_eq(seal_path(src, in1, &p, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);
        /* Sealed data is decrypted only under an installed policy. */
        TEST_SNPRINTF(src, "%s/policy", T);
        aidp_test_policy_allow(src, "nobody", (const char *const[]){"eu", NULL},
                               (const char *const[]){"phi", NULL});
}

static void teardown(void)
{
        aidp_test_policy_done(NULL);
        tmpdir_rm(T);
}

TestSuite(run_lineage_data, .init = setup, .fini = teardown, .timeout = 120);

static void expect_input(json_object *ev)
{
        json_object *ins = aidp_test_json_at(ev, "inputs");
        cr_assert_eq(json_object_array_length(ins), 1, "%s", json_object_to_json_string(ev));
        json_object *ds = json_object_array_get_idx(ins, 0);
        cr_assert_str_eq(aidp_test_json_str(ds, "name"), "patients");
        cr_assert_eq(strlen(aidp_test_json_str(ds, "facets.aidp_digest.value")), 64, "%s",
                     json_object_to_json_string(ds));
        cr_assert_str_eq(aidp_test_json_str(ds, "facets.aidp_classification.classification"),
                         "confidential");
        json_object *tags = aidp_test_json_at(ds, "facets.aidp_classification.tags");
        cr_assert_eq(json_object_array_length(tags), 2);
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(tags, 0)), "eu");
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(tags, 1)), "phi");
}

Test(run_lineage_data, inputs_and_sealed_output_are_recorded_with_digests_and_tags)
{
        AIDP_REQUIRE_ROOT();
        char *argv[] = {AIDP_SUPERVISOR,
                        "run",
                        "--user",
                        "65534",
                        "--no-cwd",
                        "-q",
                        "--run-id",
                        run_id,
                        "--key-dir",
                        keydir,
                        "--data",
                        in1,
                        "--output-dir",
                        outdir,
                        "--lineage",
                        logp,
                        "--",
                        "/bin/sh",
                        "-c",
                        "wc -c /data/patients/train.csv > /out/n",
                        NULL};
        int st = aidp_test_run(&P, argv);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_key_load(lkey, false, key, &e), 0, "%s", e.msg);
        struct aidp_lineage_verify v;
        cr_assert_eq(aidp_lineage_verify_file(logp, NULL, true, key, &v, &e), 0, "%s", e.msg);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 2);
        FILE *f = fopen(logp, "re");
        char *line = NULL;
        size_t cap = 0;
        json_object *ev[2];
        for (int i = 0; i < 2; i++) {
                ssize_t n = getline(&line, &cap, f);
                struct aidp_lineage_record rec;
                cr_assert_eq(aidp_lineage_record_parse(line, (size_t)n - 1, key, &rec, &ev[i], &e),
                             0);
        }
        free(line);
        fclose(f);
        cr_assert_str_eq(aidp_test_json_str(ev[0], "eventType"), "START");
        cr_assert_str_eq(aidp_test_json_str(ev[1], "eventType"), "COMPLETE");
        expect_input(ev[0]);
        expect_input(ev[1]);
        json_object *outs = aidp_test_json_at(ev[1], "outputs");
        cr_assert_eq(json_object_array_length(outs), 1, "%s", json_object_to_json_string(ev[1]));
        json_object *out = json_object_array_get_idx(outs, 0);
        char want[128];
        TEST_SNPRINTF(want, "%s-out", run_id);
        cr_assert_str_eq(aidp_test_json_str(out, "name"), want);
        cr_assert_eq(strlen(aidp_test_json_str(out, "facets.aidp_digest.value")), 64);
        /* Tags are inherited by the output. */
        cr_assert_str_eq(aidp_test_json_str(out, "facets.aidp_classification.classification"),
                         "confidential");
        json_object_put(ev[0]);
        json_object_put(ev[1]);

        /* The auditor's graph: patients -> run -> output. */
        char *g[] = {AIDP_BINARY_DIR "/aidp",
                     "lineage",
                     "graph",
                     "--file",
                     logp,
                     "--dataset",
                     "patients",
                     NULL};
        cr_assert_eq(aidp_test_run(&P, g), 0, "%s", P.err);
        cr_assert(strstr(P.out, "\"ds:aidp/patients\" -> \"run:"), "%s", P.out);
        TEST_SNPRINTF(want, "\" -> \"ds:aidp/%s-out\";", run_id);
        cr_assert(strstr(P.out, want), "%s", P.out);
}
