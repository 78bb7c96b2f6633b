#define _GNU_SOURCE
/* Root integration tests of what a run's sealed output keeps about the views
 * that produced it (issue 18, "Outputs keep the inputs' tags plus the view
 * that produced them"; docs/sealed-format.md record 15): the output's
 * authenticated header lists, per input, its name and digest and per column
 * the transform, key id and token domain, exactly as lineage START's
 * aidp_view facet does; a byte changed in that record is refused as
 * tampering; `aidp inspect` shows it (golden); an output derived from it
 * keeps the chain. A dataset unsealed, changed and sealed again with `aidp
 * seal --derived-from` keeps the chain and the next run's output continues
 * it; the named files' classification, tags and column labels are kept (a
 * lower --classification or a schema that unlabels a column is refused,
 * nothing written); a file the caller cannot read, cannot authenticate or
 * that was tampered with cannot be claimed. */
#include <json-c/json.h>
#include <openssl/crypto.h>

#include "common/exitcodes.h"
#include "lineage_util.h"
#include "policy_util.h"
#include "priv.h"
#include "runner.h"
#include "tests/sealed_util.h"

#define AIDP_TOOL AIDP_BINARY_DIR "/aidp"
#define GOLDEN    AIDP_SOURCE_DIR "/tests/data/sealed/inspect-produced.txt"

static char *T;
static char keydir[4096], keyscfg[4096], rundir[4096], logp[4096], keyp[4096], outdir[4096];
static char in_sealed[4096];
static struct aidp_proc P;

static void put(const char *path, const char *text)
{
        write_all(path, (const uint8_t *)text, strlen(text));
        chmod(path, 0644);
}

/* access.yaml: the user nobody's role sees pii.direct columns tokenized
 * (hmac, domain patient, key tok-1) and the name column dropped. */
static const char ACCESS[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nviews:\n  research:\n"
                             "    labels:\n"
                             "      pii.direct: {tokenize: {mode: hmac, domain: patient, key: "
                             "tok-1}}\n"
                             "    columns:\n      name: drop\n"
                             "roles:\n  tests:\n    operations: [run]\n    profiles: [\"*\"]\n"
                             "    datasets: [\"*\"]\n    max_classification: regulated\n"
                             "    view: research\n"
                             "users:\n  nobody: {roles: [tests]}\n";

static const char SCHEMA[] = "apiVersion: aidp/v1\nkind: Schema\nfiles:\n"
                             "  - pattern: \"*.csv\"\n    format: csv\n    columns:\n"
                             "      email: [pii.direct]\n      name: [pii.direct]\n";

/* Run ids of this test's own (Criterion runs the tests side by side, and a
 * run's cgroup is named after its id): vo-1-PID, vo-2-PID. */
static char ID1[32], ID2[32], ID1_OUT[40];

static void setup(void)
{
        TEST_SNPRINTF(ID1, "vo-1-%d", (int)getpid());
        TEST_SNPRINTF(ID2, "vo-2-%d", (int)getpid());
        TEST_SNPRINTF(ID1_OUT, "%s-out", ID1);
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
        /* The input: patients.csv sealed with its schema. */
        char src[4096], p[4096], sch[4096];
        TEST_SNPRINTF(src, "%s/src", T);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(p, "%s/patients.csv", src);
        put(p, "email,name,age\nada@example.org,Ada,36\ngrace@example.org,Grace,45\n");
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

TestSuite(views_out, .init = setup, .fini = teardown, .timeout = 180);

/* A run as nobody over `data` sealing /out as OUTDIR/<run_id>.sealed. */
static void run(const char *run_id, const char *data)
{
        const char *const opts[] = {"--keys-config", keyscfg, "--lineage", logp,
                                    "--run-id",      run_id,  "--data",    data,
                                    "--output-dir",  outdir,  NULL};
        const char *const job[] = {"/bin/sh", "-c", "cat /data/*/* > /out/seen.txt", NULL};
        int st = aidp_test_run_job(&P, rundir, opts, job);
        cr_assert_eq(st, 0, "run %s: exit %d\n%s", run_id, st, P.err);
}

static void output_path(const char *run_id, char *out)
{
        int n = snprintf(out, 4096, "%s/%s.sealed", outdir, run_id);
        cr_assert(n > 0 && n < 4096);
}

/* The authenticated header of a sealed file (its key from keys.yaml). */
static struct aidp_sealed *open_header(const char *path, aidp_error *err)
{
        struct aidp_keys k;
        aidp_keys_init(&k);
        struct aidp_sealed *s = NULL;
        int r = aidp_keys_setup(keyscfg, NULL, &k, err);
        if (r == 0)
                r = aidp_sealed_open(path, &k, &s, err);
        aidp_keys_free(&k);
        return r == 0 ? s : NULL;
}

static json_object *steps_of(const char *path, uint16_t *version)
{
        aidp_error err = {0};
        struct aidp_sealed *s = open_header(path, &err);
        cr_assert_not_null(s, "%s: %s", path, err.msg);
        *version = aidp_sealed_header_of(s)->format_version;
        json_object *rec = aidp_sealed_produced_json(aidp_sealed_header_of(s));
        aidp_sealed_close(s);
        cr_assert_not_null(rec, "%s has no produced-by record", path);
        json_object *steps = json_object_get(json_object_object_get(rec, "steps"));
        json_object_put(rec);
        return steps;
}

static const char *str_at(json_object *o, const char *path)
{
        return aidp_test_json_str(o, path);
}

static json_object *column(json_object *input, size_t c)
{
        json_object *f = json_object_array_get_idx(json_object_object_get(input, "files"), 0);
        return json_object_array_get_idx(json_object_object_get(f, "columns"), c);
}

Test(views_out, the_outputs_header_lists_the_view_that_produced_it)
{
        AIDP_REQUIRE_ROOT();
        run(ID1, in_sealed);
        char out[4096];
        output_path(ID1, out);
        uint16_t version = 0;
        json_object *steps = steps_of(out, &version);
        cr_assert_eq(version, 4, "an output produced through views is format 4");
        cr_assert_eq(json_object_array_length(steps), 1);
        json_object *step = json_object_array_get_idx(steps, 0);
        cr_assert_str_eq(str_at(step, "run"), ID1);
        cr_assert_str_eq(str_at(step, "output"), ID1_OUT);
        json_object *in = json_object_array_get_idx(json_object_object_get(step, "inputs"), 0);
        cr_assert_str_eq(str_at(in, "dataset"), "pat");
        cr_assert_str_eq(str_at(in, "injected"), "viewed");
        /* The input's digest is the one its own authenticated header names. */
        aidp_error err = {0};
        struct aidp_sealed *s = open_header(in_sealed, &err);
        cr_assert_not_null(s, "%s", err.msg);
        char ref[AIDP_SEALED_DIGEST_REF_LEN + 1];
        aidp_sealed_digest_ref(aidp_sealed_header_of(s), ref);
        aidp_sealed_close(s);
        cr_assert_str_eq(str_at(in, "digest"), ref);
        json_object *email = column(in, 0), *name = column(in, 1);
        cr_assert_str_eq(str_at(email, "column"), "email");
        cr_assert_str_eq(str_at(email, "transform"), "tokenize(hmac, domain=patient, key=tok-1)");
        cr_assert_str_eq(str_at(email, "keyId"), "tok-1");
        cr_assert_str_eq(str_at(email, "domain"), "patient");
        cr_assert_str_eq(str_at(name, "transform"), "drop");
        /* The same content as lineage START's aidp_view facet (one encoder). */
        json_object *ev[4];
        size_t n = aidp_test_lineage_records(logp, keyp, ev, 4);
        cr_assert_geq(n, 1);
        json_object *facet = json_object_array_get_idx(
                aidp_test_json_at(ev[0], "run.facets.aidp_view.datasets"), 0);
        cr_assert_str_eq(json_object_to_json_string_ext(facet, JSON_C_TO_STRING_PLAIN),
                         json_object_to_json_string_ext(in, JSON_C_TO_STRING_PLAIN));
        for (size_t i = 0; i < n; i++)
                json_object_put(ev[i]);
        json_object_put(steps);
        /* The job saw tokens, not the emails. */
        cr_assert_eq(aidp_test_sh("%s unseal --keys-config %s -o %s/plain %s -q && grep -q "
                                  "'patient:' %s/plain/seen.txt && ! grep -q '@example.org' "
                                  "%s/plain/seen.txt",
                                  AIDP_TOOL, keyscfg, T, out, T, T),
                     0);
}

/* vo-1 over the input; vo-2 over vo-1's output (no schema, but a chain). */
static void derived_runs(char *first, char *second)
{
        run(ID1, in_sealed);
        output_path(ID1, first);
        run(ID2, first);
        output_path(ID2, second);
}

Test(views_out, a_derived_datasets_output_keeps_the_chain_of_views)
{
        AIDP_REQUIRE_ROOT();
        char first[4096], second[4096];
        derived_runs(first, second);
        uint16_t version = 0;
        json_object *steps = steps_of(second, &version);
        cr_assert_eq(version, 4);
        cr_assert_eq(json_object_array_length(steps), 2, "%s", json_object_to_json_string(steps));
        json_object *now = json_object_array_get_idx(steps, 0);
        json_object *before = json_object_array_get_idx(steps, 1);
        cr_assert_str_eq(str_at(now, "run"), ID2);
        json_object *in = json_object_array_get_idx(json_object_object_get(now, "inputs"), 0);
        cr_assert_str_eq(str_at(in, "dataset"), ID1_OUT);
        cr_assert_str_eq(str_at(in, "injected"), "sealed (no schema)");
        cr_assert_str_eq(str_at(before, "run"), ID1);
        json_object *pat = json_object_array_get_idx(json_object_object_get(before, "inputs"), 0);
        cr_assert_str_eq(str_at(column(pat, 0), "keyId"), "tok-1");
        json_object_put(steps);
}

/* The file with `from` replaced by `to` (same length) inside the header. */
static void edit_copy(const char *src, const char *dst, const char *from, const char *to)
{
        size_t len = 0;
        uint8_t *b = read_all(src, &len);
        uint8_t *at = memmem(b, len, from, strlen(from));
        cr_assert_not_null(at, "'%s' is not in the header", from);
        memcpy(at, to, strlen(to));
        write_all(dst, b, len);
        free(b);
}

/* aidp inspect [--json] PATH, its output in P. */
static int inspect(const char *path, bool json)
{
        char *argv[] = {AIDP_TOOL, "inspect", "--keys-config", keyscfg, (char *)path, NULL, NULL};
        if (json) {
                argv[4] = "--json";
                argv[5] = (char *)path;
        }
        return aidp_test_run(&P, argv);
}

static void expect_inspect_refused(const char *path, const char *needle)
{
        int st = inspect(path, false);
        cr_assert_eq(st, AIDP_EXIT_DATA, "inspect %s: exit %d\n%s%s", path, st, P.out, P.err);
        cr_assert(strstr(P.err, needle), "'%s' not in: %s", needle, P.err);
}

Test(views_out, a_changed_byte_in_the_produced_by_record_is_refused_as_tampering)
{
        AIDP_REQUIRE_ROOT();
        run(ID1, in_sealed);
        char out[4096], bad[4096];
        output_path(ID1, out);
        TEST_SNPRINTF(bad, "%s/tampered.sealed", T);
        /* Still a well-formed record (domain patient -> patienT): the header
         * tag catches it. */
        edit_copy(out, bad, "\"domain\":\"patient\"", "\"domain\":\"patienT\"");
        expect_inspect_refused(bad, "authentic");
        /* A record that no longer parses is refused by the codec itself. */
        edit_copy(out, bad, "{\"v\":1,\"steps\"", "[\"v\":1,\"steps\"");
        expect_inspect_refused(bad, "produced-by record");
        /* The run refuses the tampered file as an input, before the job. */
        edit_copy(out, bad, "\"domain\":\"patient\"", "\"domain\":\"patienT\"");
        const char *const opts[] = {"--keys-config", keyscfg, "--lineage", logp,
                                    "--data",        bad,     NULL};
        const char *const job[] = {"/bin/sh", "-c", "echo JOB-RAN", NULL};
        int st = aidp_test_run_job(&P, rundir, opts, job);
        cr_assert_eq(st, AIDP_EXIT_DATA, "exit %d: %s", st, P.err);
        cr_assert_null(strstr(P.out, "JOB-RAN"));
        cr_assert(strstr(P.err, "authentic"), "%s", P.err);
}

/* inspect's text with what differs between runs replaced: T's path, hex
 * digests, the creation time, the run ids' pid. */
static char *normalized_inspect(const char *path)
{
        int st = inspect(path, false);
        cr_assert_eq(st, 0, "inspect: exit %d\n%s", st, P.err);
        char tmp[4096];
        TEST_SNPRINTF(tmp, "%s/inspect.txt", T);
        write_all(tmp, (const uint8_t *)P.out, P.out_len);
        char cmd[8192];
        TEST_SNPRINTF(cmd,
                      "sed -e 's|%s|T|g' -e 's/[0-9a-f]\\{64\\}/HEX/g' "
                      "-e 's/^created-at: .*/created-at:     TIME/' -e 's/\\(vo-[12]\\)-%d/\\1/g' "
                      "'%s'",
                      T, (int)getpid(), tmp);
        FILE *f = popen(cmd, "r");
        cr_assert_not_null(f);
        char *buf = calloc(1, 1 << 16);
        size_t n = fread(buf, 1, (1 << 16) - 1, f);
        buf[n] = '\0';
        cr_assert_eq(pclose(f), 0);
        return buf;
}

Test(views_out, inspect_shows_the_views_that_produced_an_output)
{
        AIDP_REQUIRE_ROOT();
        char first[4096], second[4096];
        derived_runs(first, second);
        char *got = normalized_inspect(second);
        /* AIDP_UPDATE_GOLDEN=1 rewrites the golden from this output. */
        if (getenv("AIDP_UPDATE_GOLDEN"))
                write_all(GOLDEN, (const uint8_t *)got, strlen(got));
        size_t len = 0;
        char *want = (char *)read_all(GOLDEN, &len);
        char *w = strndup(want, len);
        cr_assert_str_eq(got, w, "aidp inspect differs from %s:\n%s", GOLDEN, got);
        free(w);
        free(want);
        free(got);
        /* --json: the steps under produced_by; null for a dataset without. */
        cr_assert_eq(inspect(second, true), 0, "%s", P.err);
        json_object *j = json_tokener_parse(P.out);
        cr_assert_not_null(j, "%s", P.out);
        json_object *steps = aidp_test_json_at(j, "produced_by");
        cr_assert_eq(json_object_array_length(steps), 2, "%s", P.out);
        cr_assert_str_eq(str_at(json_object_array_get_idx(steps, 1), "run"), ID1);
        json_object_put(j);
        cr_assert_eq(inspect(in_sealed, true), 0, "%s", P.err);
        j = json_tokener_parse(P.out);
        json_object *none = NULL;
        cr_assert(json_object_object_get_ex(j, "produced_by", &none) && !none, "%s", P.out);
        json_object_put(j);
}

/* ---- aidp seal --derived-from: a re-seal after unseal keeps the history
 * (docs/sealed-data.md, "Re-sealing a derived dataset") ---- */

static const char *step_str(json_object *steps, size_t i, const char *path)
{
        return aidp_test_json_str(json_object_array_get_idx(steps, i), path);
}

static struct aidp_sealed *header_ok(const char *path)
{
        aidp_error err = {0};
        struct aidp_sealed *s = open_header(path, &err);
        cr_assert_not_null(s, "%s: %s", path, err.msg);
        return s;
}

static void digest_of(const char *path, char ref[AIDP_SEALED_DIGEST_REF_LEN + 1])
{
        struct aidp_sealed *s = header_ok(path);
        aidp_sealed_digest_ref(aidp_sealed_header_of(s), ref);
        aidp_sealed_close(s);
}

static void run_out(const char *run_id, const char *data, char *out)
{
        run(run_id, data);
        output_path(run_id, out);
}

static bool exists(const char *path)
{
        return access(path, F_OK) == 0;
}

Test(views_out, a_reseal_after_unseal_keeps_the_chain_and_the_next_run_continues_it)
{
        AIDP_REQUIRE_ROOT();
        char out1[4096], fixed[4096], out2[4096];
        run_out("rs-1", in_sealed, out1);
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
        uint16_t version = 0;
        json_object *steps = steps_of(fixed, &version);
        cr_assert_eq(json_object_array_length(steps), 2, "%s", json_object_to_json_string(steps));
        cr_assert_str_eq(step_str(steps, 0, "output"), "fixed");
        cr_assert_str_eq(step_str(steps, 0, "sealedBy"), "root (uid 0)");
        cr_assert_null(aidp_test_json_str_or_null(json_object_array_get_idx(steps, 0), "run"));
        json_object *in = json_object_array_get_idx(
                aidp_test_json_at(json_object_array_get_idx(steps, 0), "inputs"), 0);
        char ref[AIDP_SEALED_DIGEST_REF_LEN + 1];
        digest_of(out1, ref);
        cr_assert_str_eq(aidp_test_json_str(in, "dataset"), "rs-1-out");
        cr_assert_str_eq(aidp_test_json_str(in, "digest"), ref);
        cr_assert_str_eq(aidp_test_json_str(in, "injected"), AIDP_SEALED_DERIVED_HOW);
        cr_assert_str_eq(step_str(steps, 1, "run"), "rs-1");
        json_object_put(steps);
        /* The output's classification, not the default of a fresh seal. */
        struct aidp_sealed *s = header_ok(fixed);
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
        run_out("rs-2", fixed, out2);
        steps = steps_of(out2, &version);
        cr_assert_eq(json_object_array_length(steps), 3, "%s", json_object_to_json_string(steps));
        cr_assert_str_eq(step_str(steps, 0, "run"), "rs-2");
        cr_assert_str_eq(step_str(steps, 1, "sealedBy"), "root (uid 0)");
        cr_assert_str_eq(step_str(steps, 2, "run"), "rs-1");
        json_object_put(steps);
}

/* T/NAME.sealed from a small file under run-key, with the classification
 * and tag options given. */
static void seal_plain(const char *name, const char *tags, char *out)
{
        char f[4096];
        TEST_SNPRINTF(f, "%s/%s.txt", T, name);
        put(f, "some data\n");
        snprintf(out, 4096, "%s/%s.sealed", T, name);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -n %s -q -k run-key --keys-config %s %s",
                                  AIDP_TOOL, f, out, name, keyscfg, tags),
                     0, "sealing %s", name);
}

Test(views_out, a_reseal_keeps_tags_and_refuses_a_lower_classification)
{
        AIDP_REQUIRE_ROOT();
        char tagged[4096], low[4096], kept[4096], higher[4096];
        seal_plain("tagged", "-c restricted -r eu -g phi", tagged);
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
        struct aidp_sealed *s = header_ok(kept);
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
        s = header_ok(higher);
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
Test(views_out, a_reseal_keeps_the_inputs_column_labels)
{
        AIDP_REQUIRE_ROOT();
        char plain[4096], carried[4096], dropped[4096], more[4096], sch[4096];
        TEST_SNPRINTF(plain, "%s/src/patients.csv", T);
        TEST_SNPRINTF(carried, "%s/carried.sealed", T);
        cr_assert_eq(aidp_test_sh("%s seal %s -o %s -k run-key --keys-config %s "
                                  "--derived-from %s -q",
                                  AIDP_TOOL, plain, carried, keyscfg, in_sealed),
                     0);
        struct aidp_sealed *a = header_ok(carried), *b = header_ok(in_sealed);
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
        run_out("rs-l", carried, out);
        TEST_SNPRINTF(seen, "%s/seen-l", T);
        cr_assert_eq(aidp_test_sh("%s unseal --keys-config %s -o %s %s -q && grep -q 'patient:' "
                                  "%s/seen.txt && ! grep -q '@example.org' %s/seen.txt",
                                  AIDP_TOOL, keyscfg, seen, out, seen, seen),
                     0, "the re-sealed dataset's email column reached the job raw");
        /* A schema that no longer labels email: refused, nothing written. */
        TEST_SNPRINTF(sch, "%s/unlabelled.yaml", T);
        put(sch, "apiVersion: aidp/v1\nkind: Schema\nfiles:\n  - pattern: \"*.csv\"\n"
                 "    format: csv\n    columns:\n      email: []\n      name: [pii.direct]\n");
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
                 "      name: [pii.direct]\n      age: [pii.quasi]\n");
        TEST_SNPRINTF(more, "%s/more.sealed", T);
        argv[4] = more;
        st = aidp_test_run(&P, argv);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
}

/* A user sealing as themselves (their own authority; aidp through sudo
 * still refuses seal) may name only files they can read and whose header
 * they can authenticate: with the installed file provider's root-only keys,
 * no header at all, so nothing can be claimed. */
Test(views_out, a_reseal_cannot_claim_a_file_the_user_cannot_read_or_authenticate)
{
        AIDP_REQUIRE_ROOT();
        char theirs[4096], work[4096], out[4096], src[4096];
        seal_plain("theirs", "-c confidential", theirs);
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
