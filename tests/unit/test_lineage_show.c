/* `aidp lineage show` (text) names, per input, how it reached the job: the
 * column views of START's aidp_view facet, or how it was injected whole
 * (docs/lineage.md, "Views"). The built binary on a log written through the
 * library. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/lineage/lineage.h"

#define AIDP AIDP_BINARY_DIR "/aidp"

static char dir[128], logp[200], keyp[200];

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-lineage-show.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(logp, sizeof logp, "%s/l.jsonl", dir);
        snprintf(keyp, sizeof keyp, "%s/l.key", dir);
        setenv(AIDP_LINEAGE_ENV_KEY, keyp, 1);
        setenv("AIDP_SYSLOG_SOCKET", "/nonexistent/aidp-test", 1);
}

static void teardown(void)
{
        unlink(logp);
        unlink(keyp);
        char anchor[220];
        snprintf(anchor, sizeof anchor, "%s.anchor", logp);
        unlink(anchor);
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        cr_expect_eq(system(cmd), 0);
}

TestSuite(lineage_show, .init = setup, .fini = teardown, .timeout = 30);

/* One entry of the aidp_view facet, as the run core writes it
 * (aidp_inject_view_json). */
static json_object *entry(const char *name, const char *how, const char *const *views)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "dataset", json_object_new_string(name));
        json_object_object_add(o, "digest", json_object_new_string("hmac-sha256:00"));
        json_object_object_add(o, "injected", json_object_new_string(how));
        if (views) {
                json_object *a = json_object_new_array();
                for (size_t i = 0; views[i]; i++)
                        json_object_array_add(a, json_object_new_string(views[i]));
                json_object_object_add(o, "views", a);
        }
        return o;
}

static char *show(void)
{
        char cmd[300];
        snprintf(cmd, sizeof cmd, "%s lineage show --file %s", AIDP, logp);
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        static char out[8192];
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        cr_assert_eq(pclose(p), 0, "%s", out);
        return out;
}

Test(lineage_show, each_input_names_the_views_it_reached_the_job_through)
{
        struct aidp_lineage_options o = {.path = logp, .key_path = keyp, .create_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        char run[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(run);
        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START, run, NULL, "train");
        static const char *const names[] = {"patients", "claims", "events", "labels", "notes"};
        for (size_t i = 0; i < 5; i++)
                aidp_lineage_add_input(ev, "aidp", names[i]);
        static const char *const two[] = {"research", "billing", NULL}, *const none[] = {NULL};
        json_object *ds = json_object_new_array();
        json_object_array_add(ds, entry("patients", "viewed", two));
        json_object_array_add(ds, entry("claims", "viewed", none));
        json_object_array_add(ds, entry("events", "raw (every column's view is raw)", two));
        json_object_array_add(ds, entry("labels", "sealed (no schema)", NULL));
        /* notes: in no entry (START of a run without the facet's dataset) */
        json_object_object_add(aidp_lineage_run_facet(ev, "aidp_view"), "datasets", ds);
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
        json_object_put(ev);
        aidp_lineage_free(lg);

        char *out = show();
        cr_expect(strstr(out, "  input     aidp/patients  view: research+billing\n"), "%s", out);
        cr_expect(strstr(out, "  input     aidp/claims  view: none (labelled columns dropped)\n"),
                  "%s", out);
        cr_expect(strstr(out, "  input     aidp/events  view: raw (every column's view is raw)\n"),
                  "%s", out);
        cr_expect(strstr(out, "  input     aidp/labels  view: sealed (no schema)\n"), "%s", out);
        cr_expect(strstr(out, "  input     aidp/notes\n"), "%s", out);
}
