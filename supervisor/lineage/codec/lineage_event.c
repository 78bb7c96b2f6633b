/* OpenLineage RunEvent builder. Pure: json-c objects in and out; the clock and the
 * UUID generator are the only outside inputs. */
#define _GNU_SOURCE /* strptime */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "common/cleanup.h"
#include "supervisor/lineage/codec/lineage_codec.h"

static const char *const event_names[AIDP_LINEAGE_EVENT_MAX] = {
        [AIDP_LINEAGE_START] = "START", [AIDP_LINEAGE_COMPLETE] = "COMPLETE",
        [AIDP_LINEAGE_FAIL] = "FAIL",   [AIDP_LINEAGE_ABORT] = "ABORT",
        [AIDP_LINEAGE_OTHER] = "OTHER",
};

const char *aidp_lineage_event_type_name(enum aidp_lineage_event_type t)
{
        return (unsigned)t < AIDP_LINEAGE_EVENT_MAX ? event_names[t] : "OTHER";
}

int aidp_lineage_event_type_from_name(const char *name)
{
        for (int i = 0; name && i < AIDP_LINEAGE_EVENT_MAX; i++)
                if (!strcmp(name, event_names[i]))
                        return i;
        return -1;
}

void aidp_lineage_run_id_new(char out[AIDP_LINEAGE_RUN_ID_LEN + 1])
{
        uuid_t u;
        /* v4: random, so run ids leak neither the host's MAC nor the start time. */
        uuid_generate_random(u);
        uuid_unparse_lower(u, out);
}

void aidp_lineage_run_id_for(const char *run_name, char out[AIDP_LINEAGE_RUN_ID_LEN + 1])
{
        uuid_t u;
        if (uuid_parse(run_name, u) == 0) {
                uuid_unparse_lower(u, out);
                return;
        }
        /* A fixed namespace UUID for aidp run names (itself a v5 of "aidp" in the URL
         * namespace), so the mapping is stable across hosts and versions. */
        static const char ns_text[] = "6f0c1f3e-5b1d-5a43-9d35-8a2f6c1b7e90";
        uuid_t ns;
        uuid_parse(ns_text, ns);
        uuid_generate_sha1(u, ns, run_name, strlen(run_name));
        uuid_unparse_lower(u, out);
}

void aidp_lineage_format_time(char out[32], int64_t epoch_ns)
{
        time_t s = (time_t)(epoch_ns / 1000000000);
        long ms = (long)((epoch_ns % 1000000000) / 1000000);
        if (ms < 0) {
                s -= 1;
                ms += 1000;
        }
        struct tm tm;
        if (!gmtime_r(&s, &tm)) {
                snprintf(out, 32, "1970-01-01T00:00:00.000Z");
                return;
        }
        char base[24];
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out, 32, "%.20s.%03ldZ", base, ms);
}

static int64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put_str(json_object *o, const char *k, const char *v)
{
        if (v)
                json_object_object_add(o, k, json_object_new_string(v));
}

static void put_u64(json_object *o, const char *k, uint64_t v)
{
        json_object_object_add(o, k, json_object_new_uint64(v));
}

static json_object *child(json_object *o, const char *k, json_type type)
{
        json_object *c;
        if (json_object_object_get_ex(o, k, &c) && json_object_is_type(c, type))
                return c;
        c = type == json_type_array ? json_object_new_array() : json_object_new_object();
        json_object_object_add(o, k, c);
        return c;
}

/* Every facet carries _producer and _schemaURL (OpenLineage BaseFacet). */
static json_object *facet(json_object *facets, const char *name, const char *schema)
{
        json_object *f;
        if (json_object_object_get_ex(facets, name, &f) && json_object_is_type(f, json_type_object))
                return f;
        f = json_object_new_object();
        put_str(f, "_producer", AIDP_LINEAGE_PRODUCER);
        if (schema) {
                put_str(f, "_schemaURL", schema);
        } else {
                char url[256];
                snprintf(url, sizeof url, "%s%s", AIDP_LINEAGE_FACET_SCHEMA_BASE, name);
                put_str(f, "_schemaURL", url);
        }
        json_object_object_add(facets, name, f);
        return f;
}

json_object *aidp_lineage_event_new(enum aidp_lineage_event_type type, const char *run_id,
                                    const char *job_ns, const char *job_name)
{
        if (!run_id || !job_name)
                return NULL;
        json_object *ev = json_object_new_object();
        if (!ev)
                return NULL;
        put_str(ev, "eventType", aidp_lineage_event_type_name(type));
        char t[32];
        aidp_lineage_format_time(t, now_ns());
        put_str(ev, "eventTime", t);
        json_object *run = child(ev, "run", json_type_object);
        put_str(run, "runId", run_id);
        child(run, "facets", json_type_object);
        json_object *job = child(ev, "job", json_type_object);
        put_str(job, "namespace", job_ns ? job_ns : AIDP_LINEAGE_JOB_NAMESPACE);
        put_str(job, "name", job_name);
        child(ev, "inputs", json_type_array);
        child(ev, "outputs", json_type_array);
        put_str(ev, "producer", AIDP_LINEAGE_PRODUCER);
        put_str(ev, "schemaURL", AIDP_LINEAGE_SCHEMA_URL);
        return ev;
}

void aidp_lineage_event_set_time(json_object *ev, int64_t epoch_ns)
{
        char t[32];
        aidp_lineage_format_time(t, epoch_ns);
        put_str(ev, "eventTime", t);
}

static json_object *add_dataset(json_object *ev, const char *list, const char *ns, const char *name)
{
        json_object *ds = json_object_new_object();
        put_str(ds, "namespace", ns ? ns : AIDP_LINEAGE_JOB_NAMESPACE);
        put_str(ds, "name", name ? name : "");
        child(ds, "facets", json_type_object);
        json_object_array_add(child(ev, list, json_type_array), ds);
        return ds;
}

json_object *aidp_lineage_add_input(json_object *ev, const char *ns, const char *name)
{
        return add_dataset(ev, "inputs", ns, name);
}

json_object *aidp_lineage_add_output(json_object *ev, const char *ns, const char *name)
{
        return add_dataset(ev, "outputs", ns, name);
}

void aidp_lineage_dataset_set_digest(json_object *ds, const char *algorithm, const char *hex)
{
        json_object *facets = child(ds, "facets", json_type_object);
        char v[160];
        snprintf(v, sizeof v, "%s:%s", algorithm, hex);
        /* The standard facet lets any OpenLineage consumer tell versions apart. */
        json_object *ver =
                facet(facets, "version",
                      "https://openlineage.io/spec/facets/1-0-1/"
                      "DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet");
        put_str(ver, "datasetVersion", v);
        json_object *d = facet(facets, "aidp_digest", NULL);
        put_str(d, "algorithm", algorithm);
        put_str(d, "value", hex);
}

void aidp_lineage_dataset_set_classification(json_object *ds, const char *classification,
                                             const char *const *tags, size_t ntags)
{
        json_object *facets = child(ds, "facets", json_type_object);
        json_object *c = facet(facets, "aidp_classification", NULL);
        put_str(c, "classification", classification);
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < ntags; i++)
                if (tags[i])
                        json_object_array_add(arr, json_object_new_string(tags[i]));
        json_object_object_add(c, "tags", arr);
}

json_object *aidp_lineage_run_facet(json_object *ev, const char *name)
{
        json_object *run = child(ev, "run", json_type_object);
        return facet(child(run, "facets", json_type_object), name, NULL);
}

json_object *aidp_lineage_dataset_facet(json_object *ds, const char *name)
{
        return facet(child(ds, "facets", json_type_object), name, NULL);
}

static json_object *run_job_ref(const char *scheduler, const char *name)
{
        char key[256], id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        snprintf(key, sizeof key, "%s:%s", scheduler, name);
        aidp_lineage_run_id_for(key, id);
        json_object *ref = json_object_new_object();
        json_object *run = child(ref, "run", json_type_object);
        put_str(run, "runId", id);
        json_object *job = child(ref, "job", json_type_object);
        put_str(job, "namespace", scheduler);
        put_str(job, "name", name);
        return ref;
}

void aidp_lineage_set_parent(json_object *ev, const char *scheduler, const char *job,
                             const char *step)
{
        if (!scheduler || !job)
                return;
        json_object *facets = child(child(ev, "run", json_type_object), "facets", json_type_object);
        json_object *f = facet(facets, "parent", AIDP_LINEAGE_PARENT_SCHEMA_URL);
        char name[256];
        snprintf(name, sizeof name, "%s%s%s", job, step ? "." : "", step ? step : "");
        json_object *ref = run_job_ref(scheduler, name);
        json_object *v;
        if (json_object_object_get_ex(ref, "run", &v))
                json_object_object_add(f, "run", json_object_get(v));
        if (json_object_object_get_ex(ref, "job", &v))
                json_object_object_add(f, "job", json_object_get(v));
        json_object_put(ref);
        if (step)
                json_object_object_add(f, "root", run_job_ref(scheduler, job));
        json_object *s = aidp_lineage_run_facet(ev, "aidp_scheduler");
        put_str(s, "scheduler", scheduler);
        put_str(s, "jobId", job);
        put_str(s, "stepId", step);
}

void aidp_lineage_set_caller(json_object *ev, uint32_t uid, uint32_t gid, const char *user,
                             const char *scheduler_job)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_caller");
        put_u64(f, "uid", uid);
        put_u64(f, "gid", gid);
        put_str(f, "user", user);
        put_str(f, "schedulerJob", scheduler_job);
}

void aidp_lineage_set_host(json_object *ev, const char *hostname, const char *region)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_host");
        put_str(f, "hostname", hostname);
        put_str(f, "region", region);
}

void aidp_lineage_set_profile(json_object *ev, const char *name, const char *digest)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_profile");
        put_str(f, "name", name);
        put_str(f, "digest", digest);
}

void aidp_lineage_add_decision(json_object *ev, const char *subject, const char *decision,
                               const char *rule, const char *reason)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_policy");
        json_object *d = json_object_new_object();
        put_str(d, "subject", subject);
        put_str(d, "decision", decision);
        put_str(d, "rule", rule);
        put_str(d, "reason", reason);
        json_object_array_add(child(f, "decisions", json_type_array), d);
}

void aidp_lineage_add_network_denial(json_object *ev, const char *protocol, const char *dst,
                                     unsigned port, uint64_t count)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_network");
        json_object *d = json_object_new_object();
        put_str(d, "protocol", protocol);
        put_str(d, "destination", dst);
        put_u64(d, "port", port);
        put_u64(d, "count", count);
        json_object_array_add(child(f, "denials", json_type_array), d);
        json_object *n;
        uint64_t total = count;
        if (json_object_object_get_ex(f, "denied", &n))
                total += json_object_get_uint64(n);
        put_u64(f, "denied", total);
}

void aidp_lineage_set_resources(json_object *ev, const struct aidp_lineage_resources *r)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_resources");
        if (r->peak_memory_known)
                put_u64(f, "peakMemoryBytes", r->peak_memory_bytes);
        else
                json_object_object_add(f, "peakMemoryBytes", NULL);
        if (r->cpu_known)
                put_u64(f, "cpuUsec", r->cpu_usec);
        else
                json_object_object_add(f, "cpuUsec", NULL);
        put_u64(f, "wallUsec", r->wall_usec);
        put_str(f, "error", r->error);
}

void aidp_lineage_set_exit(json_object *ev, int exit_code, int term_signal, int status,
                           const char *reason)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_exit");
        json_object_object_add(f, "exitCode", json_object_new_int(exit_code));
        json_object_object_add(f, "signal", json_object_new_int(term_signal));
        json_object_object_add(f, "status", json_object_new_int(status));
        put_str(f, "reason", reason);
}

void aidp_lineage_set_shred(json_object *ev, const struct aidp_lineage_shred *s)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_shred");
        put_u64(f, "files", s->files);
        put_u64(f, "bytes", s->bytes);
        json_object_object_add(f, "verified", json_object_new_boolean(s->verified));
        put_u64(f, "durationUsec", s->duration_usec);
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < s->nremoved; i++)
                if (s->removed[i])
                        json_object_array_add(arr, json_object_new_string(s->removed[i]));
        json_object_object_add(f, "removed", arr);
}

/* ---- checking ------------------------------------------------------------------- */

static int need_string(json_object *o, const char *path, const char *k, json_object **out,
                       aidp_error *err)
{
        json_object *v;
        if (!json_object_object_get_ex(o, k, &v))
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL, "missing %s%s", path, k);
        if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "%s%s: expected a non-empty string", path, k);
        if (out)
                *out = v;
        return 0;
}

static int need_object(json_object *o, const char *k, json_object **out, aidp_error *err)
{
        if (!json_object_object_get_ex(o, k, out) || !json_object_is_type(*out, json_type_object))
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL, "missing object %s", k);
        return 0;
}

int aidp_lineage_event_check(json_object *ev, aidp_error *err)
{
        json_object *v, *run, *job;
        int r;
        if (!json_object_is_type(ev, json_type_object))
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL, "event is not a JSON object");
        if ((r = need_string(ev, "", "eventType", &v, err)) < 0)
                return r;
        if (aidp_lineage_event_type_from_name(json_object_get_string(v)) < 0)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "eventType: unknown value '%.40s'",
                                      json_object_get_string(v));
        if ((r = need_string(ev, "", "eventTime", &v, err)) < 0)
                return r;
        /* RFC 3339 with a zone; strptime would accept too much, so check the shape. */
        const char *t = json_object_get_string(v);
        struct tm tm = {0};
        const char *rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!rest || strlen(t) < 20)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "eventTime: not an RFC 3339 date-time '%.40s'", t);
        if ((r = need_object(ev, "run", &run, err)) < 0)
                return r;
        if ((r = need_string(run, "run.", "runId", &v, err)) < 0)
                return r;
        uuid_t u;
        if (uuid_parse(json_object_get_string(v), u) != 0)
                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                      "run.runId: not a UUID '%.40s'", json_object_get_string(v));
        if ((r = need_object(ev, "job", &job, err)) < 0)
                return r;
        if ((r = need_string(job, "job.", "namespace", NULL, err)) < 0)
                return r;
        if ((r = need_string(job, "job.", "name", NULL, err)) < 0)
                return r;
        if ((r = need_string(ev, "", "producer", NULL, err)) < 0)
                return r;
        if ((r = need_string(ev, "", "schemaURL", NULL, err)) < 0)
                return r;
        static const char *const lists[] = {"inputs", "outputs"};
        for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
                json_object *arr;
                if (!json_object_object_get_ex(ev, lists[i], &arr))
                        continue;
                if (!json_object_is_type(arr, json_type_array))
                        return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                              "%s: expected an array", lists[i]);
                for (size_t j = 0; j < json_object_array_length(arr); j++) {
                        json_object *ds = json_object_array_get_idx(arr, j);
                        char p[32];
                        snprintf(p, sizeof p, "%s[%zu].", lists[i], j);
                        if (!json_object_is_type(ds, json_type_object))
                                return aidp_error_set(err, AIDP_EXIT_FAILED, EINVAL,
                                                      "%s[%zu]: expected an object", lists[i], j);
                        if ((r = need_string(ds, p, "namespace", NULL, err)) < 0 ||
                            (r = need_string(ds, p, "name", NULL, err)) < 0)
                                return r;
                }
        }
        return 0;
}
