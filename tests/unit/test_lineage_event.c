/* Lineage events against the OpenLineage RunEvent required fields, and the stored
 * record format (chain members, tag). */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/lineage/lineage.h"

static const unsigned char key[AIDP_LINEAGE_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const char zero[] = "0000000000000000000000000000000000000000000000000000000000000000";

static json_object *get(json_object *o, const char *path)
{
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
                if (!json_object_object_get_ex(o, k, &o))
                        return NULL;
        return o;
}

static void assert_matches(const char *s, const char *re)
{
        regex_t r;
        cr_assert_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
        int m = regexec(&r, s, 0, NULL, 0);
        regfree(&r);
        cr_assert_eq(m, 0, "'%s' does not match /%s/", s, re);
}

/* The RunEvent's required members, checked independently of aidp_lineage_event_check:
 * types and shapes as the OpenLineage 2-0-2 schema gives them. */
static void assert_openlineage_run_event(json_object *ev, const char *type)
{
        cr_assert(json_object_is_type(ev, json_type_object));
        json_object *v = get(ev, "eventType");
        cr_assert(v && json_object_is_type(v, json_type_string));
        cr_assert_str_eq(json_object_get_string(v), type);
        v = get(ev, "eventTime");
        cr_assert(v && json_object_is_type(v, json_type_string));
        assert_matches(json_object_get_string(v),
                       "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$");
        v = get(ev, "run.runId");
        cr_assert(v && json_object_is_type(v, json_type_string));
        assert_matches(json_object_get_string(v),
                       "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
        v = get(ev, "job.namespace");
        cr_assert(v && json_object_is_type(v, json_type_string) &&
                  json_object_get_string_len(v) > 0);
        v = get(ev, "job.name");
        cr_assert(v && json_object_is_type(v, json_type_string) &&
                  json_object_get_string_len(v) > 0);
        v = get(ev, "producer");
        cr_assert(v && json_object_is_type(v, json_type_string));
        assert_matches(json_object_get_string(v), "^https://");
        v = get(ev, "schemaURL");
        cr_assert(v && json_object_is_type(v, json_type_string));
        assert_matches(json_object_get_string(v),
                       "^https://openlineage.io/spec/.*#/\\$defs/RunEvent$");
        cr_assert(json_object_is_type(get(ev, "inputs"), json_type_array));
        cr_assert(json_object_is_type(get(ev, "outputs"), json_type_array));
}

/* Every facet, run or dataset, carries _producer and _schemaURL (BaseFacet). */
static void assert_facets_well_formed(json_object *facets)
{
        json_object_object_foreach(facets, name, f)
        {
                json_object *v;
                cr_assert(json_object_object_get_ex(f, "_producer", &v), "facet %s: no _producer",
                          name);
                cr_assert(json_object_object_get_ex(f, "_schemaURL", &v), "facet %s: no _schemaURL",
                          name);
                assert_matches(json_object_get_string(v), "^https://");
        }
}

static json_object *full_event(enum aidp_lineage_event_type t)
{
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        json_object *ev = aidp_lineage_event_new(t, id, NULL, "train-resnet");
        json_object *in = aidp_lineage_add_input(ev, "aidp", "imagenet");
        aidp_lineage_dataset_set_digest(in, "sha256", zero);
        const char *tags[] = {"pii", "eu"};
        aidp_lineage_dataset_set_classification(in, "confidential", tags, 2);
        json_object *out = aidp_lineage_add_output(ev, "aidp", "model.sealed");
        aidp_lineage_dataset_set_digest(out, "sha256", zero);
        aidp_lineage_set_caller(ev, 1000, 1000, "alice", "slurm-42");
        aidp_lineage_set_host(ev, "node1", "eu-west");
        aidp_lineage_set_profile(ev, "gpu-train", "sha256:abcd");
        aidp_lineage_add_decision(ev, "dataset imagenet", "allow", "eu-only",
                                  "host region eu-west");
        aidp_lineage_add_network_denial(ev, "tcp", "203.0.113.7", 443, 3);
        aidp_lineage_add_network_denial(ev, "udp", "198.51.100.1", 53, 2);
        struct aidp_lineage_resources r = {.peak_memory_bytes = 1 << 30,
                                           .cpu_usec = 5,
                                           .wall_usec = 7,
                                           .peak_memory_known = true,
                                           .cpu_known = true};
        aidp_lineage_set_resources(ev, &r);
        aidp_lineage_set_exit(ev, 0, 0, 0, "exited");
        const char *removed[] = {"cgroup aidp/x", "netns aidp-x"};
        struct aidp_lineage_shred s = {.files = 3,
                                       .bytes = 4096,
                                       .verified = true,
                                       .duration_usec = 9,
                                       .removed = removed,
                                       .nremoved = 2};
        aidp_lineage_set_shred(ev, &s);
        return ev;
}

Test(lineage_event, new_event_has_every_required_run_event_field)
{
        static const enum aidp_lineage_event_type types[] = {
                AIDP_LINEAGE_START, AIDP_LINEAGE_COMPLETE, AIDP_LINEAGE_FAIL, AIDP_LINEAGE_ABORT,
                AIDP_LINEAGE_OTHER};
        static const char *const names[] = {"START", "COMPLETE", "FAIL", "ABORT", "OTHER"};
        for (size_t i = 0; i < 5; i++) {
                char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
                aidp_lineage_run_id_new(id);
                json_object *ev = aidp_lineage_event_new(types[i], id, NULL, "job");
                assert_openlineage_run_event(ev, names[i]);
                cr_assert_str_eq(json_object_get_string(get(ev, "job.namespace")), "aidp");
                aidp_error e = {0};
                cr_assert_eq(aidp_lineage_event_check(ev, &e), 0, "%s", e.msg);
                json_object_put(ev);
        }
}

Test(lineage_event, all_facets_round_trip_through_json_text)
{
        json_object *ev = full_event(AIDP_LINEAGE_COMPLETE);
        /* Through text and back, as a consumer would see it. */
        json_object *back =
                json_tokener_parse(json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
        cr_assert_not_null(back);
        assert_openlineage_run_event(back, "COMPLETE");
        json_object *facets = get(back, "run.facets");
        assert_facets_well_formed(facets);
        static const char *const want[] = {"aidp_caller", "aidp_host",    "aidp_profile",
                                           "aidp_policy", "aidp_network", "aidp_resources",
                                           "aidp_exit",   "aidp_shred"};
        for (size_t i = 0; i < 8; i++)
                cr_assert_not_null(get(facets, want[i]), "missing run facet %s", want[i]);
        cr_assert_str_eq(json_object_get_string(get(facets, "aidp_caller.user")), "alice");
        cr_assert_eq(json_object_get_int(get(facets, "aidp_caller.uid")), 1000);
        cr_assert_str_eq(json_object_get_string(get(facets, "aidp_host.region")), "eu-west");
        cr_assert_eq(json_object_get_int(get(facets, "aidp_network.denied")), 5);
        cr_assert_eq(json_object_array_length(get(facets, "aidp_network.denials")), 2);
        cr_assert_eq(json_object_get_int64(get(facets, "aidp_resources.peakMemoryBytes")), 1 << 30);
        cr_assert_eq(json_object_get_int64(get(facets, "aidp_resources.cpuUsec")), 5);
        cr_assert_eq(json_object_get_int64(get(facets, "aidp_resources.wallUsec")), 7);
        cr_assert_eq(json_object_get_boolean(get(facets, "aidp_shred.verified")), 1);
        cr_assert_eq(json_object_array_length(get(facets, "aidp_shred.removed")), 2);
        json_object *decision = json_object_array_get_idx(get(facets, "aidp_policy.decisions"), 0);
        cr_assert_str_eq(json_object_get_string(get(decision, "reason")), "host region eu-west");

        json_object *in = json_object_array_get_idx(get(back, "inputs"), 0);
        cr_assert_str_eq(json_object_get_string(get(in, "name")), "imagenet");
        assert_facets_well_formed(get(in, "facets"));
        cr_assert_str_eq(json_object_get_string(get(in, "facets.version.datasetVersion")),
                         "sha256:0000000000000000000000000000000000000000000000000000000000000000");
        cr_assert_str_eq(
                json_object_get_string(get(in, "facets.aidp_classification.classification")),
                "confidential");
        cr_assert_eq(json_object_array_length(get(in, "facets.aidp_classification.tags")), 2);
        json_object *out = json_object_array_get_idx(get(back, "outputs"), 0);
        cr_assert_str_eq(json_object_get_string(get(out, "facets.aidp_digest.algorithm")),
                         "sha256");
        json_object_put(back);
        json_object_put(ev);
}

/* A value the cgroup could not tell is null with the reason, never 0. */
Test(lineage_event, unknown_resources_are_null_with_the_reason)
{
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_COMPLETE, id, NULL, "job");
        struct aidp_lineage_resources r = {.cpu_usec = 5,
                                           .wall_usec = 7,
                                           .cpu_known = true,
                                           .error = "cgroup v2: reading memory.peak: gone"};
        aidp_lineage_set_resources(ev, &r);
        json_object *f = get(ev, "run.facets.aidp_resources");
        json_object *v = (json_object *)1;
        cr_assert(json_object_object_get_ex(f, "peakMemoryBytes", &v));
        cr_assert_null(v, "an unknown peak must be null, not %s", json_object_to_json_string(v));
        cr_assert_eq(json_object_get_int64(get(f, "cpuUsec")), 5);
        cr_assert_str_eq(json_object_get_string(get(f, "error")),
                         "cgroup v2: reading memory.peak: gone");
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_event_check(ev, &e), 0, "%s", e.msg);
        json_object_put(ev);
}

Test(lineage_event, run_ids_are_distinct_v4_uuids)
{
        char a[AIDP_LINEAGE_RUN_ID_LEN + 1], b[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(a);
        aidp_lineage_run_id_new(b);
        cr_assert_str_neq(a, b);
        assert_matches(a, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
}

Test(lineage_event, time_is_rfc3339_utc_with_milliseconds)
{
        char t[32];
        aidp_lineage_format_time(t, 0);
        cr_assert_str_eq(t, "1970-01-01T00:00:00.000Z");
        aidp_lineage_format_time(t, 1714566896789123456LL);
        cr_assert_str_eq(t, "2024-05-01T12:34:56.789Z");
        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START,
                                                 "3f1c2b1e-8f0a-4c1d-9e2f-0123456789ab", NULL, "j");
        aidp_lineage_event_set_time(ev, 1714566896001000000LL);
        cr_assert_str_eq(json_object_get_string(get(ev, "eventTime")), "2024-05-01T12:34:56.001Z");
        json_object_put(ev);
}

Test(lineage_event, check_names_the_missing_or_bad_member)
{
        static const struct {
                const char *drop; /* top-level member to delete, or a "run.x"/"job.x" path */
                const char *msg;
        } cases[] = {
                {"eventType", "missing eventType"}, {"eventTime", "missing eventTime"},
                {"run", "missing object run"},      {"run.runId", "missing run.runId"},
                {"job", "missing object job"},      {"job.namespace", "missing job.namespace"},
                {"job.name", "missing job.name"},   {"producer", "missing producer"},
                {"schemaURL", "missing schemaURL"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                json_object *ev = full_event(AIDP_LINEAGE_START);
                char path[64];
                snprintf(path, sizeof path, "%s", cases[i].drop);
                char *dot = strchr(path, '.');
                if (dot) {
                        *dot = '\0';
                        json_object_object_del(get(ev, path), dot + 1);
                } else {
                        json_object_object_del(ev, path);
                }
                aidp_error e = {0};
                cr_assert_lt(aidp_lineage_event_check(ev, &e), 0, "dropping %s passed",
                             cases[i].drop);
                cr_assert_str_eq(e.msg, cases[i].msg);
                json_object_put(ev);
        }
        json_object *ev = full_event(AIDP_LINEAGE_START);
        json_object_object_add(ev, "eventType", json_object_new_string("RUNNING_LATE"));
        aidp_error e = {0};
        cr_assert_lt(aidp_lineage_event_check(ev, &e), 0);
        cr_assert(strstr(e.msg, "eventType: unknown value 'RUNNING_LATE'"), "%s", e.msg);
        json_object_object_add(ev, "eventType", json_object_new_string("START"));
        json_object_object_add(get(ev, "run"), "runId", json_object_new_string("not-a-uuid"));
        cr_assert_lt(aidp_lineage_event_check(ev, &e), 0);
        cr_assert(strstr(e.msg, "run.runId: not a UUID"), "%s", e.msg);
        json_object_put(ev);
}

Test(lineage_record, format_then_parse_round_trips_and_tag_is_last)
{
        json_object *ev = full_event(AIDP_LINEAGE_START);
        size_t len = 0;
        aidp_error e = {0};
        char *line = aidp_lineage_record_format(ev, 1, zero, key, &len, &e);
        cr_assert_not_null(line, "%s", e.msg);
        cr_assert_eq(line[len - 1], '\n');
        cr_assert_null(memchr(line, '\n', len - 1), "a record is one line");
        assert_matches(
                line, ",\"aidp_seq\":1,\"aidp_prev\":\"0{64}\",\"aidp_hmac\":\"[0-9a-f]{64}\"}\n$");
        struct aidp_lineage_record rec;
        json_object *back = NULL;
        cr_assert_eq(aidp_lineage_record_parse(line, len - 1, key, &rec, &back, &e), 0, "%s",
                     e.msg);
        cr_assert_eq(rec.seq, 1);
        cr_assert_str_eq(rec.prev, zero);
        char h[AIDP_LINEAGE_HASH_HEX + 1];
        aidp_lineage_hash_line(line, len - 1, h);
        cr_assert_str_eq(rec.hash, h);
        assert_openlineage_run_event(back, "START");
        aidp_lineage_strip_chain(back);
        cr_assert_null(get(back, "aidp_seq"));
        cr_assert_null(get(back, "aidp_hmac"));
        json_object_put(back);
        free(line);
        json_object_put(ev);
}

Test(lineage_record, any_changed_byte_fails_the_tag)
{
        json_object *ev = full_event(AIDP_LINEAGE_COMPLETE);
        size_t len = 0;
        aidp_error e = {0};
        char *line = aidp_lineage_record_format(ev, 7, zero, key, &len, &e);
        cr_assert_not_null(line);
        len--; /* without '\n' */
        struct aidp_lineage_record rec;
        unsigned tested = 0;
        /* Every position, a harmless-looking change where JSON stays valid: a digit or a
         * letter changed to another of its kind. Each must fail. */
        for (size_t i = 0; i < len; i++) {
                char c = line[i];
                char n = c >= '0' && c <= '8' ? c + 1 : c >= 'a' && c <= 'y' ? c + 1 : 0;
                if (!n)
                        continue;
                line[i] = n;
                cr_assert_lt(aidp_lineage_record_parse(line, len, key, &rec, NULL, &e), 0,
                             "change at byte %zu went unnoticed", i);
                line[i] = c;
                tested++;
        }
        cr_assert_gt(tested, 500);
        cr_assert_eq(aidp_lineage_record_parse(line, len, key, &rec, NULL, &e), 0);
        unsigned char other[AIDP_LINEAGE_KEY_LEN] = {1};
        cr_assert_lt(aidp_lineage_record_parse(line, len, other, &rec, NULL, &e), 0);
        cr_assert(strstr(e.msg, "authentication tag does not match"), "%s", e.msg);
        free(line);
        json_object_put(ev);
}

Test(lineage_record, malformed_lines_get_clear_reasons)
{
        static const struct {
                const char *line, *msg;
        } cases[] = {
                {"", "empty line"},
                {"{\"a\":1", "record is not valid JSON"},
                {"[1,2]", "record is not a JSON object"},
                {"{\"a\":1} x", "record is not valid JSON"},
                {"{\"a\":1}{}", "record is not valid JSON"},
                {"{\"eventType\":\"START\"}", "record does not end with its aidp_hmac tag"},
                {"{\"aidp_seq\":1,\"aidp_prev\":\"00\",\"aidp_hmac\":"
                 "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
                 "record has no valid aidp_prev"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct aidp_lineage_record rec;
                aidp_error e = {0};
                cr_assert_lt(aidp_lineage_record_parse(cases[i].line, strlen(cases[i].line), key,
                                                       &rec, NULL, &e),
                             0);
                cr_assert_str_eq(e.msg, cases[i].msg);
                cr_assert_eq(e.status, AIDP_EXIT_FAILED);
        }
}

Test(lineage_record, anchor_round_trips_and_detects_edits)
{
        struct aidp_lineage_anchor a = {.seq = 42}, b;
        memcpy(a.hash, zero, sizeof a.hash);
        a.hash[0] = 'f';
        size_t len = 0;
        char *s = aidp_lineage_anchor_format(&a, key, &len);
        cr_assert_not_null(s);
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_anchor_parse(s, len, key, &b, &e), 0, "%s", e.msg);
        cr_assert_eq(b.seq, 42);
        cr_assert_str_eq(b.hash, a.hash);
        char *p = strstr(s, "42");
        p[1] = '3'; /* seq 43: as if records were added */
        cr_assert_lt(aidp_lineage_anchor_parse(s, len, key, &b, &e), 0);
        cr_assert(strstr(e.msg, "anchor's authentication tag does not match"), "%s", e.msg);
        free(s);
}

/* The standard parent facet of a scheduler-started run (exec-hook mode):
 * parent = the step, root = the job, stable name-based run ids, and the raw ids
 * in aidp_scheduler; the whole event passes the OpenLineage 2-0-2 schemas. */
Test(lineage_event, parent_facet_names_the_scheduler_job_and_step)
{
        json_object *ev = aidp_lineage_event_new(
                AIDP_LINEAGE_START, "0b5c7d0e-1111-4222-8333-944445555666", NULL, "python3");
        aidp_lineage_set_parent(ev, "slurm", "4242", "0");
        cr_assert_str_eq(json_object_get_string(get(ev, "run.facets.parent.job.namespace")),
                         "slurm");
        cr_assert_str_eq(json_object_get_string(get(ev, "run.facets.parent.job.name")), "4242.0");
        cr_assert_str_eq(json_object_get_string(get(ev, "run.facets.parent.root.job.name")),
                         "4242");
        cr_assert_str_eq(json_object_get_string(get(ev, "run.facets.parent._schemaURL")),
                         AIDP_LINEAGE_PARENT_SCHEMA_URL);
        cr_assert_str_eq(json_object_get_string(get(ev, "run.facets.aidp_scheduler.jobId")),
                         "4242");
        cr_assert_str_eq(json_object_get_string(get(ev, "run.facets.aidp_scheduler.stepId")), "0");
        const char *parent = json_object_get_string(get(ev, "run.facets.parent.run.runId"));
        const char *root = json_object_get_string(get(ev, "run.facets.parent.root.run.runId"));
        assert_matches(parent,
                       "^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
        assert_matches(root,
                       "^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
        cr_assert_str_neq(parent, root);
        /* Every step of the job points at the same root run. */
        json_object *other = aidp_lineage_event_new(
                AIDP_LINEAGE_START, "0b5c7d0e-1111-4222-8333-944445555667", NULL, "python3");
        aidp_lineage_set_parent(other, "slurm", "4242", "batch");
        cr_assert_str_eq(json_object_get_string(get(other, "run.facets.parent.root.run.runId")),
                         root);
        cr_assert_str_neq(json_object_get_string(get(other, "run.facets.parent.run.runId")),
                          parent);
        /* A job without steps: no root, the job itself is the parent. */
        json_object *flat = aidp_lineage_event_new(
                AIDP_LINEAGE_START, "0b5c7d0e-1111-4222-8333-944445555668", NULL, "python3");
        aidp_lineage_set_parent(flat, "kubernetes", "ns-pod", NULL);
        cr_assert_str_eq(json_object_get_string(get(flat, "run.facets.parent.job.name")), "ns-pod");
        cr_assert_null(get(flat, "run.facets.parent.root"));
        cr_assert_null(get(flat, "run.facets.aidp_scheduler.stepId"));

        /* And the published schemas agree (tests/data/check_openlineage.py). */
        char path[] = "/tmp/aidp-parent-XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        FILE *f = fdopen(fd, "w");
        for (json_object **e = (json_object *[]){ev, other, flat, NULL}; *e; e++)
                fprintf(f, "%s\n", json_object_to_json_string_ext(*e, JSON_C_TO_STRING_PLAIN));
        fclose(f);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "python3 %s/tests/data/check_openlineage.py %s >/dev/null",
                 AIDP_SOURCE_DIR, path);
        int rc = system(cmd);
        unlink(path);
        cr_assert_eq(rc, 0, "the events fail the OpenLineage 2-0-2 schemas (%s)", cmd);
        json_object_put(ev);
        json_object_put(other);
        json_object_put(flat);
}
