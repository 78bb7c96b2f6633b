/* views/ view parsing (access.yaml's `views:` entries, through the strict
 * walker) and resolution against a schema file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/yaml.h"
#include "views/view.h"

/* Parse views.NAME of yaml; returns the status, *out filled on success. */
static int parse(const char *yaml, const char *name, struct aidp_view *out, aidp_error *err)
{
        struct aidp_yaml y = {0};
        int r = aidp_yaml_load(&y, "access.yaml", "policy", yaml, strlen(yaml), 0, err);
        cr_assert_eq(r, 0, "%s", err->msg);
        yaml_node_t *views = aidp_yaml_get(&y, aidp_yaml_root(&y), "views", NULL);
        yaml_node_t *node = aidp_yaml_get(&y, views, name, NULL);
        cr_assert_not_null(node);
        char path[64];
        snprintf(path, sizeof path, "views.%s", name);
        r = aidp_view_parse_node(&y, node, path, name, out, err);
        aidp_yaml_free(&y);
        return r;
}

static const char research[] =
        "views:\n"
        "  research:\n"
        "    labels:\n"
        "      pii.direct: {tokenize: {mode: hmac, domain: patient, key: tok-1}}\n"
        "      pii.quasi: drop\n"
        "      phi: raw\n"
        "      \"secret*\": null\n"
        "    columns:\n"
        "      birth_date: {generalize: {date: year}}\n"
        "      zip: {generalize: {prefix: 3}}\n"
        "      age: {generalize: {bands: [0, 18, 40, 65]}}\n"
        "      weight: {generalize: {number: 10}}\n"
        "      ssn: {mask: {keep_last: 4, char: \"#\"}}\n"
        "      visit: {generalize: {date: month}}\n"
        "      mrn: {tokenize: {mode: siv, domain: mrn, key: tok-2}}\n"
        "      card: {mask: {keep_last: 4, with: \"XXXX-\"}}\n";

Test(view, parses_every_form)
{
        struct aidp_view v;
        aidp_error err = {0};
        cr_assert_eq(parse(research, "research", &v, &err), 0, "%s", err.msg);
        cr_assert_str_eq(v.name, "research");
        cr_assert_eq(v.n_labels, 4);
        cr_assert_eq(v.n_columns, 8);
        char buf[128];
        const char *want_l[] = {"tokenize(hmac, domain=patient, key=tok-1)", "drop", "raw", "null"};
        for (size_t i = 0; i < 4; i++) {
                aidp_xform_describe(&v.labels[i].x, buf, sizeof buf);
                cr_assert_str_eq(buf, want_l[i]);
        }
        cr_assert_str_eq(v.labels[3].match, "secret*");
        const char *want_c[] = {"generalize(date:year)",
                                "generalize(prefix:3)",
                                "generalize(bands:0,18,40,65)",
                                "generalize(number:10)",
                                "mask(keep_first=0, keep_last=4, char='#')",
                                "generalize(date:month)",
                                "tokenize(siv, domain=mrn, key=tok-2)",
                                "mask(keep_first=0, keep_last=4, with=\"XXXX-\")"};
        for (size_t i = 0; i < 8; i++) {
                aidp_xform_describe(&v.columns[i].x, buf, sizeof buf);
                cr_assert_str_eq(buf, want_c[i]);
        }
        cr_assert_str_eq(v.columns[4].match, "ssn");
        aidp_view_free(&v);
}

static void expect_error(const char *body, const char *want)
{
        char yaml[2048];
        snprintf(yaml, sizeof yaml, "views:\n  v:\n%s", body);
        struct aidp_view v;
        aidp_error err = {0};
        cr_assert_lt(parse(yaml, "v", &v, &err), 0, "accepted: %s", body);
        cr_assert_eq(err.status, AIDP_EXIT_CONFIG);
        cr_assert_not_null(strstr(err.msg, want), "got '%s', want '%s'", err.msg, want);
}

Test(view, errors_name_position_and_item)
{
        expect_error("    labels:\n      pii: scramble\n",
                     "access.yaml:4:12: views.v.labels.pii: found 'scramble', expected raw, drop");
        expect_error("    labels:\n      pii: {tokenize: {mode: md5, domain: d, key: k}}\n",
                     "access.yaml:4:30: views.v.labels.pii.tokenize.mode: found 'md5', expected "
                     "hmac or siv");
        expect_error("    labels:\n      pii: {tokenize: {mode: hmac, key: k}}\n",
                     "views.v.labels.pii.tokenize: missing key 'domain'");
        expect_error("    labels:\n      pii: {tokenize: {mode: hmac, domain: Bad, key: k}}\n",
                     "access.yaml:4:44: views.v.labels.pii.tokenize.domain: found 'Bad'");
        expect_error("    labels:\n      PII: drop\n",
                     "access.yaml:4:7: views.v.labels.PII: found 'PII', expected a label");
        expect_error("    columns:\n      a: {mask: {keep_last: -1}}\n",
                     "views.v.columns.a.mask.keep_last: found '-1', expected a whole number");
        expect_error("    columns:\n      a: {mask: {char: \"**\"}}\n",
                     "views.v.columns.a.mask.char: found '**'");
        expect_error("    columns:\n      a: {mask: {char: \"#\", with: \"--\"}}\n",
                     "access.yaml:4:17: views.v.columns.a.mask: 'char' and 'with' exclude each "
                     "other");
        expect_error("    columns:\n      a: {mask: {with: \"\"}}\n",
                     "views.v.columns.a.mask.with: expected 1 to 32 bytes of UTF-8 text");
        expect_error("    columns:\n      a: {mask: {with: \"a\\tb\"}}\n",
                     "views.v.columns.a.mask.with: expected 1 to 32 bytes");
        expect_error("    columns:\n      a: {mask: {with: '\"x'}}\n",
                     "views.v.columns.a.mask.with: expected 1 to 32 bytes");
        expect_error(
                "    columns:\n      a: {mask: {with: \"0123456789abcdef0123456789abcdefX\"}}\n",
                "views.v.columns.a.mask.with: expected 1 to 32 bytes");
        expect_error("    columns:\n      a: {generalize: {date: day}}\n",
                     "views.v.columns.a.generalize.date: found 'day', expected year or month");
        expect_error("    columns:\n      a: {generalize: {date: year, prefix: 3}}\n",
                     "found 2 rules, expected exactly one");
        expect_error("    columns:\n      a: {generalize: {bands: [0, 18, 18]}}\n",
                     "views.v.columns.a.generalize.bands[2]: found 18 after 18, expected "
                     "strictly increasing");
        expect_error("    columns:\n      a: {generalize: {bands: [5]}}\n", "expected at least 2");
        expect_error("    columns:\n      a: {generalize: {number: 0}}\n",
                     "expected a bucket width above 0");
        expect_error("    columns:\n      a: {generalize: {prefix: x}}\n",
                     "views.v.columns.a.generalize.prefix: found 'x'");
        expect_error("    columns:\n      a: {encrypt: {}}\n",
                     "views.v.columns.a.encrypt: unknown transform 'encrypt'");
        expect_error("    columns:\n      a: {mask: {}, drop: 1}\n", "one-key mapping");
        expect_error("    colums: {}\n", "access.yaml:3:5: views.v.colums: unknown key 'colums'");
        expect_error("    labels:\n      a: drop\n      a: raw\n", "found the key 'a' twice");
        expect_error("    labels:\n      a:\n", "access.yaml:4:9: views.v.labels.a: found nothing");
}

/* ---- resolve */

static struct aidp_schema_file file_of(struct aidp_schema *s)
{
        const char *yaml = "apiVersion: aidp/v1\nkind: Schema\nfiles:\n"
                           "  - pattern: \"*.csv\"\n    format: csv\n    columns:\n"
                           "      name: [pii.direct]\n"
                           "      birth_date: [pii.quasi]\n"
                           "      diagnosis: [phi]\n"
                           "      email: [contact, pii.direct]\n"
                           "      note: []\n"
                           "      key: [secret.api]\n"
                           "      site: [site.local]\n";
        aidp_error err = {0};
        cr_assert_eq(aidp_schema_parse_yaml(yaml, strlen(yaml), "s", s, &err), 0, "%s", err.msg);
        return s->files[0];
}

static void expect_view(const struct aidp_file_view *fv, const char *const *want)
{
        char buf[128];
        for (size_t i = 0; i < fv->n_columns; i++) {
                aidp_xform_describe(&fv->columns[i].x, buf, sizeof buf);
                cr_assert_str_eq(buf, want[i], "column %s: %s, want %s", fv->columns[i].column, buf,
                                 want[i]);
        }
}

Test(view, resolve_follows_the_rules)
{
        struct aidp_schema s;
        struct aidp_schema_file f = file_of(&s);
        struct aidp_view v;
        aidp_error err = {0};
        cr_assert_eq(parse(research, "research", &v, &err), 0, "%s", err.msg);
        struct aidp_file_view fv;
        const struct aidp_view *one[] = {&v};
        cr_assert_eq(aidp_view_resolve(one, 1, &f, &fv, &err), 0);
        cr_assert_eq(fv.n_columns, 7);
        cr_assert_str_eq(fv.columns[0].column, "name");
        /* name: label rule; birth_date: the column rule beats pii.quasi: drop;
         * email: contact has no rule, so DROP beats the tokenize of pii.direct;
         * note: no labels, raw; key: glob secret* -> null; site: no rule -> drop */
        expect_view(&fv, (const char *const[]){"tokenize(hmac, domain=patient, key=tok-1)",
                                               "generalize(date:year)", "raw", "drop", "raw",
                                               "null", "drop"});
        cr_assert(!aidp_file_view_is_raw(&fv));
        aidp_file_view_free(&fv);

        /* No view: labelled columns dropped, the rest raw. */
        cr_assert_eq(aidp_view_resolve(NULL, 0, &f, &fv, &err), 0);
        expect_view(&fv,
                    (const char *const[]){"drop", "drop", "drop", "drop", "raw", "drop", "drop"});
        aidp_file_view_free(&fv);

        /* Two views: the least restrictive result per column wins. */
        struct aidp_view w;
        const char *wide = "views:\n  wide:\n    labels:\n      \"*\": {mask: {keep_last: 2}}\n"
                           "      phi: drop\n";
        cr_assert_eq(parse(wide, "wide", &w, &err), 0, "%s", err.msg);
        const struct aidp_view *two[] = {&v, &w};
        cr_assert_eq(aidp_view_resolve(two, 2, &f, &fv, &err), 0);
        expect_view(&fv, (const char *const[]){"mask(keep_first=0, keep_last=2, char='*')",
                                               "generalize(date:year)", "raw",
                                               "mask(keep_first=0, keep_last=2, char='*')", "raw",
                                               "mask(keep_first=0, keep_last=2, char='*')",
                                               "mask(keep_first=0, keep_last=2, char='*')"});
        aidp_file_view_free(&fv);

        /* Within one view, several globs on one label: the most restrictive. */
        const char *all_raw = "views:\n  r:\n    labels:\n      \"*\": raw\n";
        struct aidp_view r;
        cr_assert_eq(parse(all_raw, "r", &r, &err), 0, "%s", err.msg);
        const struct aidp_view *rv[] = {&r};
        cr_assert_eq(aidp_view_resolve(rv, 1, &f, &fv, &err), 0);
        cr_assert(aidp_file_view_is_raw(&fv));
        aidp_file_view_free(&fv);
        const struct aidp_view *ww[] = {&w};
        cr_assert_eq(aidp_view_resolve(ww, 1, &f, &fv, &err), 0);
        aidp_xform_describe(&fv.columns[2].x, (char[64]){0}, 64);
        cr_assert_eq(fv.columns[2].x.kind, AIDP_XF_DROP); /* phi: drop beats "*": mask */
        aidp_file_view_free(&fv);

        aidp_view_free(&v);
        aidp_view_free(&w);
        aidp_view_free(&r);
        aidp_schema_free(&s);
}
