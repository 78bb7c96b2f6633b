#define _GNU_SOURCE
/* Root integration tests of `aidp seal --derived-from` (issue 18, "Outputs
 * keep the inputs' tags plus the view that produced them"; docs/sealed-data.md
 * "Re-sealing a derived dataset"): a run's output unsealed, changed and
 * sealed again keeps the produced-by chain in its authenticated header, and
 * the next run's output continues it; the named files' classification and
 * tags are kept (a lower --classification is refused, nothing is written);
 * a file the caller cannot read, cannot authenticate or that was tampered
 * with cannot be claimed. */
#include <json-c/json.h>

#include "common/exitcodes.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"

static char *T;
static char keydir[4096], keyscfg[4096], rundir[4096], logp[4096], keyp[4096], outdir[4096];
static char in_sealed[4096];
static struct aidp_proc P;

static void put(const char *path, const char *text)
{
        write_all(path, (const uint8_t *)text, strlen(text));
        chmod(path, 0644);
}

static const char ACCESS[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nviews:\n  research:\n"
                             "    labels:\n"
                             "      pii.direct: {tokenize: {mode: hmac, domain: patient, key: "
                             "tok-1}}\n"
                             "roles:\n  tests:\n    operations: [run]\n    profiles: [\"*\"]\n"
                             "    datasets: [\"*\"]\n    max_classification: regulated\n"
                             "    view: research\n"
                             "users:\n  nobody: {roles: [tests]}\n";

static const char SCHEMA[] = "apiVersion: aidp/v1\nkind: Schema\nfiles:\n"
                             "  - pattern: \"*.csv\"\n    format: csv\n    columns:\n"
                             "      email: [pii.direct]\n";

static void setup(void)
{
        T = tmpdir_new();
        chmod(T, 0755);
        TEST_SNPRINTF(keydir, "%s/keys", T);
        TEST_SNPRINTF(keyscfg, "%s/keys.yaml", T);
        TEST_SNPRINTF(rundir, "%s/run", T);
        TEST_SNPRINTF(logp, "%s/lineage.jsonl", T);
        TEST_SNPRINTF(keyp, "%s/lineage.key", T);
        TEST_SNPRINTF(outdir, "%s/out", T);
        mkdir_p(outdir, 0755);
        setenv("AIDP_LINEAGE_KEY", keyp, 1);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "run-key", &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_keys_generate(keydir, "tok-1", &err), 0, "%s", err.msg);
        char cfg[8192];
        TEST_SNPRINTF(cfg,
                      "provider: file\nkey_dir: %s\nkeys:\n  run-key: {purpose: kek}\n"
                      "  tok-1: {purpose: tokenize}\n",
                      keydir);
        put(keyscfg, cfg);
        char pol[4096];
        TEST_SNPRINTF(pol, "%s/policy", T);
        aidp_test_policy_allow(pol, "nobody", NULL, NULL);
        aidp_test_policy_access(pol, ACCESS);
        char src[4096], p[4096], sch[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(p, "%s/patients.csv", src);
        put(p, "email,age\nada@example.org,36\ngrace@example.org,45\n");
        TEST_SNPRINTF(sch, "%s/schema.yaml", T);
        put(sch, SCHEMA);
        TEST_SNPRINTF(in_sealed, "%s/pat.sealed", T);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -n pat -k run-key -c confidential "
                                  "--keys-config %s --schema %s -q",
                                  AIDP_TOOL, src, in_sealed, keyscfg, sch),
                     0);
}

static void teardown(void)
{
        aidp_test_policy_done(rundir);
        unsetenv("AIDP_LINEAGE_KEY");
        tmpdir_rm(T);
}

TestSuite(views_reseal, .init = setup, .fini = teardown, .timeout = 180);

static void run(const char *run_id, const char *data, char *out)
{
        const char *const opts[] = {"--keys-config", keyscfg, "--lineage", logp,
                                    "--run-id",      run_id,  "--data",    data,
                                    "--output-dir",  outdir,  NULL};
        const char *const job[] = {"/bin/sh", "-c", "cat /data/*/* > /out/seen.txt", NULL};
        int st = aidp_test_run_job(&P, rundir, opts, job);
        cr_assert_eq(st, 0, "run %s: exit %d\n%s", run_id, st, P.err);
        int n = snprintf(out, 4096, "%s/%s.sealed", outdir, run_id);
        cr_assert(n > 0 && n < 4096);
}

/* The authenticated header of a sealed file (its key from keys.yaml). */
static struct aidp_sealed *open_header(const char *path)
{
        struct aidp_keys k;
        aidp_keys_init(&k);
        struct aidp_sealed *s = NULL;
        aidp_error err = {0};
        int r = aidp_keys_setup(keyscfg, NULL, &k, &err);
        if (r == 0)
                r = aidp_sealed_open(path, &k, &s, &err);
        aidp_keys_free(&k);
        cr_assert_eq(r, 0, "%s: %s", path, err.msg);
        return s;
}

static json_object *steps_of(const char *path)
{
        struct aidp_sealed *s = open_header(path);
        cr_assert_eq(aidp_sealed_header_of(s)->format_version, 4);
        json_object *rec = aidp_sealed_produced_json(aidp_sealed_header_of(s));
        aidp_sealed_close(s);
        cr_assert_not_null(rec, "%s has no produced-by record", path);
        json_object *steps = json_object_get(json_object_object_get(rec, "steps"));
        json_object_put(rec);
        return steps;
}

static const char *str_at(json_object *steps, size_t i, const char *path)
{
        return aidp_test_json_str(json_object_array_get_idx(steps, i), path);
}

static void digest_of(const char *path, char ref[AIDP_SEALED_DIGEST_REF_LEN + 1])
{
        struct aidp_sealed *s = open_header(path);
        aidp_sealed_digest_ref(aidp_sealed_header_of(s), ref);
        aidp_sealed_close(s);
}

static bool exists(const char *path)
{
        return access(path, F_OK) == 0;
}

Test(views_reseal, a_reseal_after_unseal_keeps_the_chain_and_the_next_run_continues_it)
{
        AIDP_REQUIRE_ROOT();
        char out1[4096], fixed[4096], out2[4096];
        run("rs-1", in_sealed, out1);
        /* The user's round trip: unseal, change, seal again. */
        cr_assert_eq(aidp_test_sh("%s unseal --keys-config %s -o %s/plain %s -q && "
                                  "echo corrected >> %s/plain/seen.txt",
                                  AIDP_TOOL, keyscfg, T, out1, T),
                     0);
        TEST_SNPRINTF(fixed, "%s/fixed.sealed", T);
        cr_assert_eq(aidp_test_sh("%s seal %s/plain -o %s -n fixed -k run-key "
                                  "--keys-config %s --derived-from %s -q",
                                  AIDP_TOOL, T, fixed, keyscfg, out1),
                     0, "re-seal without --classification failed");
        json_object *steps = steps_of(fixed);
        cr_assert_eq(json_object_array_length(steps), 2, "%s", json_object_to_json_string(steps));
        cr_assert_str_eq(str_at(steps, 0, "output"), "fixed");
        cr_assert_str_eq(str_at(steps, 0, "sealedBy"), "root (uid 0)");
        cr_assert_null(aidp_test_json_str_or_null(json_object_array_get_idx(steps, 0), "run"));
        json_object *in = json_object_array_get_idx(
                aidp_test_json_at(json_object_array_get_idx(steps, 0), "inputs"), 0);
        char ref[AIDP_SEALED_DIGEST_REF_LEN + 1];
        digest_of(out1, ref);
        cr_assert_str_eq(aidp_test_json_str(in, "dataset"), "rs-1-out");
        cr_assert_str_eq(aidp_test_json_str(in, "digest"), ref);
        cr_assert_str_eq(aidp_test_json_str(in, "injected"), AIDP_SEALED_DERIVED_HOW);
        cr_assert_str_eq(str_at(steps, 1, "run"), "rs-1");
        json_object_put(steps);
        /* The output's classification, not the default of a fresh seal. */
        struct aidp_sealed *s = open_header(fixed);
        cr_assert_eq(aidp_sealed_header_of(s)->meta.classification, AIDP_CLASS_CONFIDENTIAL);
        aidp_sealed_close(s);
        /* aidp inspect shows the re-seal and the run before it. */
        char *argv[] = {AIDP_TOOL, "inspect", "--keys-config", keyscfg, fixed, NULL};
        cr_assert_eq(aidp_test_run(&P, argv), 0, "%s", P.err);
        cr_assert(strstr(P.out, "produced-by:    2 steps, newest first\n"
                                "  sealed again by root (uid 0) (aidp seal --derived-from) -> "
                                "fixed\n    input rs-1-out (hmac-sha256:"),
                  "%s", P.out);
        cr_assert(strstr(P.out, "  run rs-1 -> rs-1-out\n"), "%s", P.out);
        /* A run over the re-sealed file keeps all of it. */
        run("rs-2", fixed, out2);
        steps = steps_of(out2);
        cr_assert_eq(json_object_array_length(steps), 3, "%s", json_object_to_json_string(steps));
        cr_assert_str_eq(str_at(steps, 0, "run"), "rs-2");
        cr_assert_str_eq(str_at(steps, 1, "sealedBy"), "root (uid 0)");
        cr_assert_str_eq(str_at(steps, 2, "run"), "rs-1");
        json_object_put(steps);
}

/* T/NAME.sealed from a small file, with extra seal options. */
static void seal_plain(const char *name, const char *opts, char *out)
{
        char f[4096];
        TEST_SNPRINTF(f, "%s/%s.txt", T, name);
        put(f, "some data\n");
        snprintf(out, 4096, "%s/%s.sealed", T, name);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -n %s -q %s", AIDP_TOOL, f, out, name, opts), 0,
                     "sealing %s", name);
}

Test(views_reseal, tags_are_kept_and_a_lower_classification_is_refused)
{
        AIDP_REQUIRE_ROOT();
        char opts[8192], tagged[4096], low[4096], kept[4096], higher[4096];
        TEST_SNPRINTF(opts, "-k run-key --keys-config %s -c restricted -r eu -g phi", keyscfg);
        seal_plain("tagged", opts, tagged);
        /* Asking for less than the input's classification: refused, no file. */
        TEST_SNPRINTF(low, "%s/low.sealed", T);
        char *argv[] = {AIDP_TOOL, "seal",           tagged,          "-o",    low,
                        "-k",      "run-key",        "--keys-config", keyscfg, "-c",
                        "public",  "--derived-from", tagged,          NULL};
        int st = aidp_test_run(&P, argv);
        cr_assert_eq(st, AIDP_EXIT_USAGE, "exit %d: %s", st, P.err);
        cr_assert(strstr(P.err, "--classification public is lower than restricted"), "%s", P.err);
        cr_assert(!exists(low), "a refused re-seal left %s", low);
        /* No classification: the input's. Tags: the input's and the new ones. */
        TEST_SNPRINTF(kept, "%s/kept.sealed", T);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -k run-key --keys-config %s -r us "
                                  "--derived-from %s -q",
                                  AIDP_TOOL, tagged, kept, keyscfg, tagged),
                     0);
        struct aidp_sealed *s = open_header(kept);
        const struct aidp_sealed_meta *m = &aidp_sealed_header_of(s)->meta;
        cr_assert_eq(m->classification, AIDP_CLASS_RESTRICTED);
        cr_assert_eq(m->n_residency, 2);
        cr_assert_str_eq(m->residency[0], "eu");
        cr_assert_str_eq(m->residency[1], "us");
        cr_assert_eq(m->n_regulation, 1);
        cr_assert_str_eq(m->regulation[0], "phi");
        aidp_sealed_close(s);
        /* A higher classification given is kept. */
        TEST_SNPRINTF(higher, "%s/higher.sealed", T);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -k run-key --keys-config %s -c regulated "
                                  "--derived-from %s -q",
                                  AIDP_TOOL, tagged, higher, keyscfg, tagged),
                     0);
        s = open_header(higher);
        cr_assert_eq(aidp_sealed_header_of(s)->meta.classification, AIDP_CLASS_REGULATED);
        aidp_sealed_close(s);
        /* The input's history is the source of the tags: a copy with a tag
         * changed in its header is refused as tampering, nothing written. */
        char bad[4096], out[4096];
        TEST_SNPRINTF(bad, "%s/bad.sealed", T);
        size_t len = 0;
        uint8_t *b = read_all(tagged, &len);
        uint8_t *at = memmem(b, 200, "phi", 3);
        cr_assert_not_null(at);
        at[2] = 'x';
        write_all(bad, b, len);
        free(b);
        TEST_SNPRINTF(out, "%s/from-bad.sealed", T);
        st = aidp_test_sh("%s seal %s -o %s -k run-key --keys-config %s --derived-from %s -q",
                          AIDP_TOOL, tagged, out, keyscfg, bad);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d", st);
        cr_assert(!exists(out));
}

/* A dataset sealed with a schema keeps its column labels through a
 * re-seal: without --schema the input's is carried, a --schema that drops
 * a label is refused (a column without labels would reach every run raw),
 * one that keeps them and adds more is taken. */
Test(views_reseal, a_reseal_keeps_the_inputs_column_labels)
{
        AIDP_REQUIRE_ROOT();
        char plain[4096], carried[4096], dropped[4096], more[4096], sch[4096];
        TEST_SNPRINTF(plain, "%s/src/patients.csv", T);
        TEST_SNPRINTF(carried, "%s/carried.sealed", T);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -k run-key --keys-config %s "
                                  "--derived-from %s -q",
                                  AIDP_TOOL, plain, carried, keyscfg, in_sealed),
                     0);
        struct aidp_sealed *a = open_header(carried), *b = open_header(in_sealed);
        const struct aidp_sealed_header *ha = aidp_sealed_header_of(a),
                                        *hb = aidp_sealed_header_of(b);
        cr_assert_eq(ha->format_version, 4);
        cr_assert(ha->schema_len == hb->schema_len &&
                          !memcmp(ha->schema, hb->schema, ha->schema_len),
                  "the input's schema was not carried");
        aidp_sealed_close(a);
        aidp_sealed_close(b);
        /* So a run still sees the column through the role's view: tokens. */
        char out[4096], seen[4096];
        run("rs-l", carried, out);
        TEST_SNPRINTF(seen, "%s/seen-l", T);
        cr_assert_eq(aidp_test_sh("%s unseal --keys-config %s -o %s %s -q && grep -q 'patient:' "
                                  "%s/seen.txt && ! grep -q '@example.org' %s/seen.txt",
                                  AIDP_TOOL, keyscfg, seen, out, seen, seen),
                     0, "the re-sealed dataset's email column reached the job raw");
        /* A schema that no longer labels email: refused, nothing written. */
        TEST_SNPRINTF(sch, "%s/unlabelled.yaml", T);
        put(sch, "apiVersion: aidp/v1\nkind: Schema\nfiles:\n  - pattern: \"*.csv\"\n"
                 "    format: csv\n    columns:\n      email: []\n");
        TEST_SNPRINTF(dropped, "%s/dropped.sealed", T);
        char *argv[] = {AIDP_TOOL, "seal",           plain,           "-o",    dropped,
                        "-k",      "run-key",        "--keys-config", keyscfg, "--schema",
                        sch,       "--derived-from", in_sealed,       NULL};
        int st = aidp_test_run(&P, argv);
        cr_assert_eq(st, AIDP_EXIT_USAGE, "exit %d: %s", st, P.err);
        cr_assert(strstr(P.err, "--schema drops label pii.direct of column email"), "%s", P.err);
        cr_assert(!exists(dropped));
        /* Keeping every label and adding one is fine. */
        TEST_SNPRINTF(sch, "%s/more.yaml", T);
        put(sch, "apiVersion: aidp/v1\nkind: Schema\nfiles:\n  - pattern: \"*.csv\"\n"
                 "    format: csv\n    columns:\n      email: [pii.direct]\n"
                 "      age: [pii.quasi]\n");
        TEST_SNPRINTF(more, "%s/more.sealed", T);
        argv[4] = more;
        st = aidp_test_run(&P, argv);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
}

/* A user sealing as themselves (their own authority; aidp through sudo
 * still refuses seal) may name only files they can read and whose header
 * they can authenticate: with the installed file provider's root-only keys,
 * no header at all, so nothing can be claimed. */
Test(views_reseal, a_user_cannot_claim_a_file_they_cannot_read_or_authenticate)
{
        AIDP_REQUIRE_ROOT();
        char theirs[4096], work[4096], out[4096], src[4096], opts[8192];
        TEST_SNPRINTF(opts, "-k run-key --keys-config %s -c confidential", keyscfg);
        seal_plain("theirs", opts, theirs);
        TEST_SNPRINTF(work, "%s/work", T);
        mkdir_p(work, 0755);
        cr_assert_eq(aidp_test_sh("chown 65534:65534 %s", work), 0);
        TEST_SNPRINTF(src, "%s/theirs.txt", T);
        TEST_SNPRINTF(out, "%s/claimed.sealed", work);
        char *argv[] = {"/usr/bin/setpriv",
                        "--reuid=65534",
                        "--regid=65534",
                        "--clear-groups",
                        AIDP_TOOL,
                        "seal",
                        src,
                        "-o",
                        out,
                        "-k",
                        "run-key",
                        "--keys-config",
                        keyscfg,
                        "--derived-from",
                        theirs,
                        NULL};
        /* Not readable by the user (root's 0600 file). */
        cr_assert_eq(chmod(theirs, 0600), 0);
        int st = aidp_test_run(&P, argv);
        cr_assert_neq(st, 0);
        cr_assert(strstr(P.err, "--derived-from") && strstr(P.err, "ermission denied"),
                  "exit %d: %s", st, P.err);
        cr_assert(!exists(out));
        /* Readable, but its header needs a key only root holds. */
        cr_assert_eq(chmod(theirs, 0644), 0);
        st = aidp_test_run(&P, argv);
        cr_assert_neq(st, 0);
        cr_assert(strstr(P.err, "--derived-from"), "%s", P.err);
        cr_assert(!exists(out));
}
