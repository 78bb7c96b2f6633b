/* `aidp policy check|explain` through the built binary: exit statuses,
 * golden explain output, JSON, default locations and error positions. */
#include <criterion/criterion.h>
#include "tests/tpath.h"

#include "common/exitcodes.h"
#include <json-c/json.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define D   "tests/data/policy"
#define POL "--policy-dir /nonexistent --policy " D "/residency.yaml --policy " D "/access.yaml"

/* Run `aidp ARGS` in the source tree (so paths in the output are relative);
 * stdout into *out, stderr into *errout; returns the exit status. */
static int aidp_env(const char *env, const char *args, char **out, char **errout)
{
        char errfile[] = "/tmp/aidp-cli-err-XXXXXX";
        int efd = mkstemp(errfile);
        cr_assert_geq(efd, 0);
        close(efd);
        char cmd[8192];
        TEST_SNPRINTF(cmd, "cd %s && env -u AIDP_POLICY_DIR %s %s/aidp %s 2>%s", AIDP_SOURCE_DIR,
                      env, AIDP_BINARY_DIR, args, errfile);
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        size_t cap = 1 << 16, len = 0;
        char *buf = malloc(cap);
        size_t k;
        while ((k = fread(buf + len, 1, cap - len - 1, p)) > 0)
                len += k;
        buf[len] = '\0';
        int st = pclose(p);
        FILE *e = fopen(errfile, "r");
        char *ebuf = calloc(1, 1 << 16);
        if (e) {
                size_t n = fread(ebuf, 1, (1 << 16) - 1, e);
                ebuf[n] = '\0';
                fclose(e);
        }
        unlink(errfile);
        *out = buf;
        if (errout)
                *errout = ebuf;
        else
                free(ebuf);
        cr_assert(WIFEXITED(st), "%s: did not exit", cmd);
        return WEXITSTATUS(st);
}

static int aidp(const char *args, char **out, char **errout)
{
        return aidp_env("", args, out, errout);
}

static char *golden(const char *name)
{
        char path[4096];
        TEST_SNPRINTF(path, "%s/%s/golden/%s", AIDP_SOURCE_DIR, D, name);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        char *buf = calloc(1, 1 << 16);
        size_t n = fread(buf, 1, (1 << 16) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

/* The goldens name users who must not exist locally (their groups would
 * change the trail). */
static void need_unknown_users(void)
{
        if (getpwnam("alice") || getpwnam("bob"))
                cr_skip_test("this machine has a user alice or bob; goldens assume none");
}

static void expect_golden(const char *args, int status, const char *name)
{
        char *out, *err;
        need_unknown_users();
        cr_assert_eq(aidp(args, &out, &err), status, "aidp %s\nstdout:\n%s\nstderr:\n%s", args, out,
                     err);
        char *want = golden(name);
        cr_assert_str_eq(out, want, "aidp %s: output differs from %s", args, name);
        free(want);
        free(out);
        free(err);
}

Test(cli_policy, explain_eu_data_refused_on_a_us_host)
{
        expect_golden("policy explain --user alice --profile gpu-train " POL " --host " D
                      "/host-us.yaml --data " D "/ds-imagenet-eu.yaml --at 2024-05-01T10:00:00Z",
                      121, "explain-eu-on-us.txt");
}

Test(cli_policy, explain_eu_data_accepted_on_an_eu_host)
{
        expect_golden("policy explain --user alice --profile gpu-train " POL " --host " D
                      "/host-eu.yaml --data " D "/ds-imagenet-eu.yaml --at 2024-05-01T10:00:00Z",
                      0, "explain-eu-on-eu.txt");
}

Test(cli_policy, explain_phi_refused_without_hipaa)
{
        expect_golden("policy explain --user bob --profile gpu-train " POL " --host " D
                      "/host-us-nohipaa.yaml --data " D
                      "/ds-phi-notes.yaml --at 2024-05-01T14:00:00Z",
                      121, "explain-phi-without-hipaa.txt");
}

Test(cli_policy, explain_mixed_inputs_and_egress)
{
        expect_golden("policy explain --user alice --profile gpu-train --network egress "
                      "--egress 10.0.0.0/8=eu-west-1 --egress 203.0.113.0/24=us-east-1 "
                      "--egress pypi.example " POL " --host " D "/host-eu.yaml --data " D
                      "/ds-imagenet-eu.yaml --data " D "/ds-phi-notes.yaml --at @1714557600",
                      121, "explain-mixed-egress.txt");
}

Test(cli_policy, explain_inline_facts_time_zone_and_json)
{
        char *out;
        /* Saturday 03:00 in Berlin is inside night-batch's Friday 22:00-06:00 window. */
        int st = aidp("policy explain --user erin --group batch-users --profile batch "
                      "--network none " POL " --host " D "/host-eu.yaml --dataset-facts "
                      "name=imagenet-eu,classification=internal,residency=eu "
                      "--at 2024-05-04T03:00:00+02:00 --json",
                      &out, NULL);
        cr_assert_eq(st, 0, "%s", out);
        struct json_object *j = json_tokener_parse(out), *v;
        cr_assert_not_null(j, "%s", out);
        cr_assert(json_object_object_get_ex(j, "decision", &v));
        cr_assert_str_eq(json_object_get_string(v), "allow");
        cr_assert(json_object_object_get_ex(j, "time", &v));
        cr_assert_eq(json_object_get_int64(v), 1714784400);
        json_object_put(j);
        free(out);

        /* Saturday 21:00 is not: Friday's night ended at 06:00, Saturday's starts at 22:00. */
        st = aidp(
                "policy explain --user erin --group batch-users --profile batch --network none " POL
                " --host " D "/host-eu.yaml --dataset-facts "
                "name=imagenet-eu,classification=internal,residency=eu "
                "--at 2024-05-04T19:00:00Z",
                &out, NULL);
        cr_assert_eq(st, 121, "%s", out);
        cr_assert(strstr(out, "FAIL access         roles.night-batch"), "%s", out);
        cr_assert(strstr(out, "sat 21:00 Europe/Berlin is outside fri,sat 22:00-06:00"), "%s", out);
        free(out);
}

Test(cli_policy, explain_user_outside_every_role)
{
        char *out;
        int st = aidp("policy explain --user aidp-nobody-here --profile gpu-train " POL " --host " D
                      "/host-eu.yaml --data " D "/ds-imagenet-eu.yaml --at @1714557600",
                      &out, NULL);
        cr_assert_eq(st, 121);
        cr_assert(strstr(out,
                         "FAIL access         default (role): user 'aidp-nobody-here' (groups: "
                         "none) holds no role in the access policy: default deny"),
                  "%s", out);
        free(out);
}

Test(cli_policy, explain_reads_the_default_directory_from_the_environment)
{
        char dir[] = "/tmp/aidp-policy-dir-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char cmd[1024];
        TEST_SNPRINTF(cmd,
                      "cp %s/" D "/host-eu.yaml %s/host.yaml && cp %s/" D "/residency.yaml %s/ && "
                      "cp %s/" D "/access.yaml %s/",
                      AIDP_SOURCE_DIR, dir, AIDP_SOURCE_DIR, dir, AIDP_SOURCE_DIR, dir);
        cr_assert_eq(system(cmd), 0);
        char args[2048];
        TEST_SNPRINTF(args,
                      "policy explain --user alice --profile gpu-train --policy-dir %s --data " D
                      "/ds-imagenet-eu.yaml --at @1714557600",
                      dir);
        char *out;
        int st = aidp(args, &out, NULL);
        char rm[1100];
        TEST_SNPRINTF(rm, "rm -rf %s", dir);
        cr_assert_eq(system(rm), 0);
        cr_assert_eq(st, 0, "%s", out);
        cr_assert(strstr(out, "on gpu-eu-07 (region eu-west-1)"), "%s", out);
        cr_assert(strstr(out, "/residency.yaml:7]"), "%s", out);
        free(out);
}

Test(cli_policy, explain_without_an_access_policy_denies)
{
        char *out;
        int st = aidp("policy explain --user alice --policy-dir /nonexistent --host " D
                      "/host-eu.yaml --at @1714557600",
                      &out, NULL);
        cr_assert_eq(st, 121, "%s", out);
        cr_assert(strstr(out, "no access policy is installed: default deny"), "%s", out);
        free(out);
}

Test(cli_policy, explain_usage_and_config_errors)
{
        char *out, *err;
        cr_assert_eq(aidp("policy explain --profile x", &out, &err), 120);
        cr_assert(strstr(err, "--user is required"), "%s", err);
        free(out);
        free(err);
        cr_assert_eq(aidp("policy explain --user a --at yesterday", &out, &err), 120);
        cr_assert(strstr(err, "--at 'yesterday'"), "%s", err);
        free(out);
        free(err);
        cr_assert_eq(aidp("policy explain --user a --policy " D "/ds-phi-notes.yaml", &out, &err),
                     119);
        cr_assert(strstr(err, "a DatasetFacts is not a policy"), "%s", err);
        free(out);
        free(err);
        cr_assert_eq(aidp("policy explain --user a --policy-dir /nonexistent --policy " D
                          "/access.yaml --policy " D "/access.yaml",
                          &out, &err),
                     119);
        cr_assert(strstr(err, "a second AccessPolicy (the first is " D "/access.yaml)"), "%s", err);
        free(out);
        free(err);
        cr_assert_eq(aidp("policy explain --user a --dataset-facts name=x", &out, &err), 120);
        cr_assert(strstr(err, "name and classification are required"), "%s", err);
        free(out);
        free(err);
        cr_assert_eq(aidp("policy bogus", &out, &err), 120);
        free(out);
        free(err);
}

Test(cli_policy, check_valid_and_invalid_files)
{
        char *out, *err;
        cr_assert_eq(aidp("policy check " D "/host-eu.yaml " D "/residency.yaml " D "/access.yaml",
                          &out, &err),
                     0, "%s", err);
        cr_assert(strstr(out, D "/access.yaml: ok: AccessPolicy (4 roles, 4 users, 3 groups, 2 "
                                "deny rules)"),
                  "%s", out);
        cr_assert(strstr(out, D "/host-eu.yaml: ok: HostIdentity (node gpu-eu-07, region "
                                "eu-west-1, zones [gdpr])"),
                  "%s", out);
        free(out);
        free(err);

        char bad[] = "/tmp/aidp-bad-policy-XXXXXX";
        int fd = mkstemp(bad);
        cr_assert_geq(fd, 0);
        static const char y[] = "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  r:\n"
                                "    operations: [run]\n    max_clasification: internal\n";
        cr_assert_eq(write(fd, y, sizeof y - 1), (ssize_t)(sizeof y - 1));
        close(fd);
        char args[512];
        TEST_SNPRINTF(args, "policy check " D "/host-eu.yaml %s", bad);
        int st = aidp(args, &out, &err);
        unlink(bad);
        cr_assert_eq(st, 1, "check reports problems with status 1");
        cr_assert(strstr(out, "host-eu.yaml: ok"), "the valid file is still reported: %s", out);
        char want[512];
        TEST_SNPRINTF(want, "%s:6:5: roles.r.max_clasification: unknown key 'max_clasification'",
                      bad);
        cr_assert(strstr(err, want), "%s", err);
        free(out);
        free(err);

        cr_assert_eq(aidp("policy check /nonexistent/x.yaml", &out, &err), 1);
        cr_assert(strstr(err, "/nonexistent/x.yaml: No such file or directory"), "%s", err);
        free(out);
        free(err);
}

static void write_policy(const char *path, const char *text, mode_t mode)
{
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f, "%s", path);
        fputs(text, f);
        cr_assert_eq(fclose(f), 0);
        cr_assert_eq(chmod(path, mode), 0);
}

/* A misspelt zone would make every run fail at resolve: check refuses it at its
 * position, the defaulted UTC and real zones pass. */
Test(cli_policy, check_refuses_a_time_zone_missing_from_the_tz_database)
{
        char dir[] = "/tmp/aidp-tz-XXXXXX", path[64], args[128];
        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/a.yaml", dir);
        write_policy(path,
                     "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  r:\n"
                     "    operations: [run]\n    time_windows:\n      - hours: \"08:00-18:00\"\n"
                     "        time_zone: Europe/Berlin\n      - hours: \"08:00-18:00\"\n"
                     "        time_zone: Europe/Berln\n",
                     0644);
        snprintf(args, sizeof args, "policy check %s", path);
        char *out, *err;
        cr_assert_eq(aidp(args, &out, &err), 1, "%s", out);
        char want[256];
        snprintf(want, sizeof want, "%s:10:20: time zone 'Europe/Berln' is not in the tz database",
                 path);
        cr_assert(strstr(err, want), "%s", err);
        free(out);
        free(err);
        write_policy(path,
                     "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  r:\n"
                     "    operations: [run]\n    time_windows:\n      - hours: \"08:00-18:00\"\n"
                     "      - time_zone: America/New_York\n",
                     0644);
        cr_assert_eq(aidp(args, &out, &err), 0, "%s", err);
        free(out);
        free(err);
        unlink(path);
        rmdir(dir);
}

/* Installed files (the policy directory) that someone other than root could write are
 * refused by the supervisor, so check refuses them too; a draft elsewhere is warned. */
Test(cli_policy, check_refuses_installed_files_root_alone_cannot_trust)
{
        char dir[] = "/tmp/aidp-poldir-XXXXXX", path[64], env[96], args[128];
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_eq(chmod(dir, 0755), 0);
        snprintf(path, sizeof path, "%s/access.yaml", dir);
        snprintf(env, sizeof env, "AIDP_POLICY_DIR=%s", dir);
        write_policy(path, "apiVersion: aidp/v1\nkind: AccessPolicy\n", 0644);
        char *out, *err;
        struct {
                mode_t file, dir;
                int status;
        } cases[] = {
                {0644, 0755, 0}, {0664, 0755, 1}, {0646, 0755, 1}, {0644, 0775, 1}, {0644, 0777, 1},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                cr_assert_eq(chmod(path, cases[i].file), 0);
                cr_assert_eq(chmod(dir, cases[i].dir), 0);
                /* Not root: the files are the test user's, which alone is refused. */
                int want = geteuid() == 0 ? cases[i].status : 1;
                for (int explicit = 0; explicit < 2; explicit ++) {
                        snprintf(args, sizeof args, "policy check%s%s", explicit ? " " : "",
                                 explicit ? path : "");
                        int st = aidp_env(env, args, &out, &err);
                        cr_assert_eq(st, want, "mode %04o dir %04o: %s", cases[i].file,
                                     cases[i].dir, err);
                        if (want)
                                cr_assert(strstr(err, "must be owned by root and not writable "
                                                      "by group or others"),
                                          "%s", err);
                        free(out);
                        free(err);
                }
        }
        /* The same file as a draft outside the policy directory: a warning, status 0. */
        cr_assert_eq(chmod(dir, 0755), 0);
        cr_assert_eq(chmod(path, 0666), 0);
        snprintf(args, sizeof args, "policy check %s", path);
        cr_assert_eq(aidp(args, &out, &err), 0, "%s", err);
        cr_assert(strstr(err, "warning:") && strstr(err, "refuses it once installed"), "%s", err);
        free(out);
        free(err);
        unlink(path);
        rmdir(dir);
}

/* A sealed input: its authenticated header supplies the facts. */
#include "tests/sealed_util.h"

Test(cli_policy, explain_takes_facts_from_an_authenticated_sealed_header)
{
        char *t = tmpdir_new();
        char keydir[4096], src[4096], sealed[4096], f[4096];
        TEST_SNPRINTF(keydir, "%s/keys", t);
        TEST_SNPRINTF(src, "%s/clinical-notes", t);
        TEST_SNPRINTF(sealed, "%s/notes.sealed", t);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/a.txt", src);
        write_all(f, (const uint8_t *)"x\n", 2);
        aidp_error err = {0};
        cr_assert_eq(aidp_keys_generate(keydir, "k1", &err), 0, "%s", err.msg);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, "phi-notes");
        strcpy(p.meta.key_id, "k1");
        p.meta.classification = AIDP_CLASS_RESTRICTED;
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_RESIDENCY, "us", &err), 0);
        cr_assert_eq(aidp_sealed_meta_add_tag(&p.meta, AIDP_F_REGULATION, "phi", &err), 0);
        cr_assert_eq(seal_path(src, sealed, &p, &k, NULL, &err), 0, "%s", err.msg);
        aidp_keys_free(&k);

        char args[8192], *out, *errs;
        TEST_SNPRINTF(args,
                      "policy explain --user bob --profile gpu-train " POL " --host " D
                      "/host-us-nohipaa.yaml --data %s --key-dir %s --at 2024-05-01T14:00:00Z",
                      sealed, keydir);
        int st = aidp(args, &out, &errs);
        cr_assert_eq(st, 121, "%s\n%s", out, errs);
        cr_assert(strstr(out, "input phi-notes@1: restricted, residency [us], regulations [phi]"),
                  "%s", out);
        cr_assert(strstr(out, "FAIL regulation     regulations.phi"), "%s", out);
        cr_assert(strstr(out, "  columns of phi-notes: the dataset has no schema: every column is "
                              "passed raw\n"),
                  "%s", out);
        free(out);
        free(errs);

        /* Without the key the header cannot be authenticated: no facts, no decision. */
        TEST_SNPRINTF(args, "policy explain --user bob " POL " --data %s --key-dir %s/nokeys",
                      sealed, t);
        st = aidp(args, &out, &errs);
        cr_assert_eq(st, AIDP_EXIT_DATA, "%s\n%s", out, errs);
        cr_assert_str_eq(out, "");
        free(out);
        free(errs);
        tmpdir_rm(t);
}

Test(cli_policy, explain_restricts_a_library_profiles_egress_to_the_region)
{
        char *out;
        int st = aidp("policy explain --user alice --profile egress-example " POL " --host " D
                      "/host-eu.yaml --data " D "/ds-imagenet-eu.yaml --at @1714557600 --json",
                      &out, NULL);
        need_unknown_users();
        /* trainer does not list egress-example: denied, but the egress verdicts stand. */
        cr_assert_eq(st, 121, "%s", out);
        struct json_object *j = json_tokener_parse(out), *kept;
        cr_assert_not_null(j, "%s", out);
        cr_assert(json_object_object_get_ex(j, "egress_kept", &kept), "%s", out);
        /* The loader gives one rule per port range: pypi 443, metrics 4317 and
         * 9090-9091, object store 443. */
        cr_assert_eq(json_object_array_length(kept), 4);
        cr_assert(!json_object_get_boolean(json_object_array_get_idx(kept, 0)),
                  "pypi mirror has no region: dropped");
        for (size_t i = 1; i < 4; i++)
                cr_assert(json_object_get_boolean(json_object_array_get_idx(kept, i)),
                          "rule %zu is in eu-west-1: kept", i);
        json_object_put(j);
        free(out);
}

/* With no policy file at all, explain answers what a run gets: a run without
 * data is not decided (0), sealed data is refused (121). A profile the library
 * does not know fails as the run would (119), unless --network describes it. */
Test(cli_policy, explain_without_any_policy_matches_the_run)
{
        char *out, *err;
        cr_assert_eq(aidp("policy explain --user aidp-nobody-here --policy-dir /nonexistent "
                          "--at @1714557600",
                          &out, &err),
                     0, "%s%s", out, err);
        cr_assert(strstr(out, "ALLOW") && strstr(out, "not decided"), "%s", out);
        free(out);
        free(err);
        cr_assert_eq(aidp("policy explain --user aidp-nobody-here --policy-dir /nonexistent "
                          "--dataset-facts name=x,classification=regulated --at @1714557600",
                          &out, &err),
                     121, "%s%s", out, err);
        cr_assert(strstr(out, "sealed data is not decrypted without one"), "%s", out);
        free(out);
        free(err);
        cr_assert_eq(aidp("policy explain --user a --profile no-such-profile-x " POL, &out, &err),
                     119, "%s%s", out, err);
        cr_assert(strstr(err, "no-such-profile-x") && strstr(err, "--network"), "%s", err);
        free(out);
        free(err);
}

/* Views (issue 18): the shipped example passes with its keys.yaml; a token key
 * keys.yaml does not declare with purpose tokenize is an error (every run
 * through the view would be refused); an unused view is a warning. */
Test(cli_policy, check_validates_the_views_token_keys)
{
        char *out, *err;
        cr_assert_eq(aidp("policy check --keys-config examples/policy/keys.yaml "
                          "examples/policy/access.yaml",
                          &out, &err),
                     0, "%s", err);
        cr_assert(strstr(out, "examples/policy/access.yaml: ok: AccessPolicy (5 roles, 5 users, 3 "
                              "groups, 2 deny rules, 1 views)"),
                  "%s", out);
        free(out);
        free(err);

        char dir[] = "/tmp/aidp-views-XXXXXX", pol[64], keys[64], args[256];
        cr_assert_not_null(mkdtemp(dir));
        snprintf(pol, sizeof pol, "%s/access.yaml", dir);
        snprintf(keys, sizeof keys, "%s/keys.yaml", dir);
        write_policy(keys,
                     "provider: file\nkeys:\n  tok: {purpose: tokenize}\n  kek: {purpose: kek}\n",
                     0644);
        write_policy(
                pol,
                "apiVersion: aidp/v1\nkind: AccessPolicy\nviews:\n"
                "  a:\n    labels:\n"
                "      pii.direct: {tokenize: {mode: hmac, domain: d, key: tok}}\n"
                "  b:\n    columns:\n"
                "      email: {tokenize: {mode: siv, domain: d, key: kek}}\n"
                "      ssn: {tokenize: {mode: hmac, domain: d, key: nokey}}\n"
                "  unused: {labels: {phi: raw}}\n"
                "roles:\n  r: {operations: [run], view: a}\n  s: {operations: [run], view: b}\n",
                0644);
        snprintf(args, sizeof args, "policy check --keys-config %s %s", keys, pol);
        cr_assert_eq(aidp(args, &out, &err), 1, "%s", out);
        char want[512];
        snprintf(want, sizeof want,
                 "%s:7: views.b.columns.email: key 'kek' has purpose kek in %s, expected tokenize",
                 pol, keys);
        cr_assert(strstr(err, want), "%s", err);
        snprintf(want, sizeof want,
                 "%s:7: views.b.columns.ssn: key 'nokey' is not declared in %s (add it with: "
                 "aidp keygen nokey --purpose tokenize)",
                 pol, keys);
        cr_assert(strstr(err, want), "%s", err);
        snprintf(want, sizeof want, "warning: %s:11: views.unused: no role uses this view", pol);
        cr_assert(strstr(err, want), "%s", err);
        cr_assert_null(strstr(err, "views.a."), "key tok is fine: %s", err);
        free(out);
        free(err);

        /* Fixed keys: the warning alone does not fail the check. */
        write_policy(keys,
                     "provider: file\nkeys:\n  tok: {purpose: tokenize}\n"
                     "  kek: {purpose: tokenize}\n  nokey: {purpose: tokenize}\n",
                     0644);
        cr_assert_eq(aidp(args, &out, &err), 0, "%s", err);
        cr_assert(strstr(err, "views.unused: no role uses this view"), "%s", err);
        free(out);
        free(err);

        /* The exec provider's token keys are checked the same way (their
         * purpose in keys.yaml), and the provider is not run to do it. */
        write_policy(keys,
                     "provider: exec\nexec:\n  command: [/nonexistent/aidp-kms]\nkeys:\n"
                     "  tok: {purpose: tokenize}\n  kek: {purpose: kek}\n"
                     "  nokey: {purpose: tokenize}\n",
                     0644);
        cr_assert_eq(aidp(args, &out, &err), 1, "%s", out);
        snprintf(want, sizeof want,
                 "%s:7: views.b.columns.email: key 'kek' has purpose kek in %s, expected tokenize",
                 pol, keys);
        cr_assert(strstr(err, want), "%s", err);
        cr_assert_null(strstr(err, "aidp-kms"), "the provider was run: %s", err);
        cr_assert_null(strstr(err, "views.b.columns.ssn"), "%s", err);
        free(out);
        free(err);

        /* A role naming a view that does not exist: position and suggestion. */
        write_policy(pol,
                     "apiVersion: aidp/v1\nkind: AccessPolicy\nviews:\n"
                     "  research: {labels: {phi: raw}}\n"
                     "roles:\n  r: {operations: [run], view: reserch}\n",
                     0644);
        cr_assert_eq(aidp(args, &out, &err), 1, "%s", out);
        snprintf(want, sizeof want,
                 "%s:6:32: roles.r.view: unknown view 'reserch' (not under views:) (did you mean "
                 "'research'?)",
                 pol);
        cr_assert(strstr(err, want), "%s", err);
        free(out);
        free(err);
        unlink(pol);
        unlink(keys);
        rmdir(dir);
}

/* Seal a small tree as DATASET with the schema of SCHEMA_YAML (NULL: none)
 * under key k1 of T/keys; returns the sealed file's path (static). */
static const char *seal_with_schema(const char *t, const char *dataset, const char *schema_yaml)
{
        static char sealed[4096];
        char keydir[4096], src[4096], f[4096];
        TEST_SNPRINTF(keydir, "%s/keys", t);
        TEST_SNPRINTF(src, "%s/%s", t, dataset);
        TEST_SNPRINTF(sealed, "%s/%s.sealed", t, dataset);
        mkdir_p(src, 0755);
        TEST_SNPRINTF(f, "%s/patients", src);
        mkdir_p(f, 0755);
        TEST_SNPRINTF(f, "%s/patients/a.csv", src);
        write_all(f, (const uint8_t *)"name,visit\nx,1\n", 15);
        aidp_error err = {0};
        struct stat st;
        if (stat(keydir, &st) < 0)
                cr_assert_eq(aidp_keys_generate(keydir, "k1", &err), 0, "%s", err.msg);
        struct aidp_keys k;
        aidp_keys_init(&k);
        snprintf(k.dir, sizeof k.dir, "%s", keydir);
        struct aidp_seal_params p = {0};
        meta_default(&p.meta, dataset);
        strcpy(p.meta.key_id, "k1");
        p.meta.classification = AIDP_CLASS_INTERNAL;
        struct aidp_schema schema = {0};
        uint8_t *enc = NULL;
        if (schema_yaml) {
                char path[4096];
                TEST_SNPRINTF(path, "%s/%s", AIDP_SOURCE_DIR, schema_yaml);
                size_t len;
                uint8_t *y = read_all(path, &len);
                cr_assert_eq(aidp_schema_parse_yaml((const char *)y, len, path, &schema, &err), 0,
                             "%s", err.msg);
                free(y);
                cr_assert_eq(aidp_schema_encode(&schema, &enc, &p.schema_len, &err), 0, "%s",
                             err.msg);
                p.schema = enc;
        }
        cr_assert_eq(seal_path(src, sealed, &p, &k, NULL, &err), 0, "%s", err.msg);
        free(enc);
        aidp_schema_free(&schema);
        aidp_keys_free(&k);
        return sealed;
}

/* explain --data X.sealed: the per-column view from the schema in the
 * authenticated header, for each role's view (golden), and as JSON. */
Test(cli_policy, explain_shows_the_per_column_view_of_a_sealed_schema)
{
        need_unknown_users();
        if (getpwnam("dana") || getpwnam("erin"))
                cr_skip_test("this machine has a user dana or erin; the goldens assume none");
        char *t = tmpdir_new();
        const char *sealed =
                seal_with_schema(t, "cohort-a", "tests/data/policy/schema-cohort.yaml");
        char args[8192], *out, *errs;
        const char *pol = "--policy-dir /nonexistent --policy " D "/residency.yaml --policy " D
                          "/access-views.yaml --host " D "/host-eu.yaml";
        TEST_SNPRINTF(args,
                      "policy explain --user dana --profile gpu-train %s --data %s --key-dir "
                      "%s/keys --at 2024-05-01T10:00:00Z",
                      pol, sealed, t);
        cr_assert_eq(aidp(args, &out, &errs), 0, "%s\n%s", out, errs);
        /* the temporary path varies: compare from the first input line on */
        char *from = strstr(out, "  input cohort-a");
        cr_assert_not_null(from, "%s", out);
        char *want = golden("explain-views.txt");
        cr_assert_str_eq(from, want, "differs from explain-views.txt:\n%s", from);
        free(want);
        free(out);
        free(errs);

        /* a role without a view: every labelled column dropped */
        TEST_SNPRINTF(args,
                      "policy explain --user erin --profile gpu-train %s --data %s --key-dir "
                      "%s/keys --at 2024-05-01T10:00:00Z",
                      pol, sealed, t);
        cr_assert_eq(aidp(args, &out, &errs), 0, "%s\n%s", out, errs);
        cr_assert(strstr(out, "    name                 [pii.direct] -> drop: no granting role has "
                              "a view: labelled columns are dropped\n"),
                  "%s", out);
        cr_assert(strstr(out, "    visit                [-] -> raw: unlabelled: passed as is\n"),
                  "%s", out);
        free(out);
        free(errs);

        TEST_SNPRINTF(args,
                      "policy explain --json --user dana --profile gpu-train %s --data %s "
                      "--key-dir %s/keys --at 2024-05-01T10:00:00Z",
                      pol, sealed, t);
        cr_assert_eq(aidp(args, &out, &errs), 0, "%s\n%s", out, errs);
        struct json_object *j = json_tokener_parse(out);
        cr_assert_not_null(j, "%s", out);
        struct json_object *c0 = json_object_array_get_idx(json_object_object_get(j, "columns"), 0);
        cr_assert_str_eq(json_object_get_string(json_object_object_get(c0, "dataset")), "cohort-a");
        struct json_object *f0 = json_object_array_get_idx(json_object_object_get(c0, "files"), 0);
        struct json_object *name =
                json_object_array_get_idx(json_object_object_get(f0, "columns"), 0);
        cr_expect_str_eq(json_object_get_string(json_object_object_get(name, "transform")),
                         "tokenize(hmac, domain=patient, key=host-tokens)");
        cr_expect_str_eq(json_object_get_string(json_object_object_get(name, "role")),
                         "researcher");
        struct json_object *ds =
                json_object_array_get_idx(json_object_object_get(j, "datasets"), 0);
        cr_expect_eq(json_object_array_length(json_object_object_get(ds, "views")), 2);
        json_object_put(j);
        free(out);
        free(errs);
        tmpdir_rm(t);
}
