/* Lineage records of the run lifecycle; see run_lineage.h for when each is written. */
#define _GNU_SOURCE
#include "supervisor/run/run_lineage.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/hex.h"
#include "supervisor/run/caller.h"
#include "supervisor/lineage/lineage.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

/* An event for the supervisor's run id: runId is that id as a UUID (mapped when it is
 * not one), and aidp_run.runName keeps the id as the journal, cgroups and summary
 * name it. */
static json_object *new_event(enum aidp_lineage_event_type t, const char *run_name, const char *job)
{
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_for(run_name, id);
        json_object *ev = aidp_lineage_event_new(t, id, NULL, job);
        if (ev)
                json_object_object_add(aidp_lineage_run_facet(ev, "aidp_run"), "runName",
                                       json_object_new_string(run_name));
        return ev;
}

/* A sealed dataset as lineage knows it: name, content digest, classification and
 * tags (residency and regulation), all from its authenticated header. */
static void add_dataset(json_object *ev, bool output, const struct aidp_run_dataset *d)
{
        json_object *ds =
                output ? aidp_lineage_add_output(ev, "aidp", d->name[0] ? d->name : d->path)
                       : aidp_lineage_add_input(ev, "aidp", d->name[0] ? d->name : d->path);
        if (!strncmp(d->digest, "sha256:", 7))
                aidp_lineage_dataset_set_digest(ds, "sha256", d->digest + 7);
        char tagbuf[sizeof d->residency + sizeof d->regulation + 2];
        snprintf(tagbuf, sizeof tagbuf, "%s%s%s", d->residency,
                 d->residency[0] && d->regulation[0] ? "," : "", d->regulation);
        const char *tags[2 * AIDP_SEALED_MAX_TAGS];
        size_t n = 0;
        for (char *save = NULL, *t = strtok_r(tagbuf, ",", &save); t && n < ARRAY_SIZE(tags);
             t = strtok_r(NULL, ",", &save))
                tags[n++] = t;
        aidp_lineage_dataset_set_classification(ds, d->classification[0] ? d->classification : NULL,
                                                tags, n);
        json_object *facets, *c;
        if (json_object_object_get_ex(ds, "facets", &facets) &&
            json_object_object_get_ex(facets, "aidp_classification", &c)) {
                json_object_object_add(c, "residency", json_object_new_string(d->residency));
                json_object_object_add(c, "regulation", json_object_new_string(d->regulation));
        }
        json_object *dg;
        if (json_object_object_get_ex(facets, "aidp_digest", &dg)) {
                json_object_object_add(dg, "bytes", json_object_new_uint64(d->bytes));
                if (d->version[0])
                        json_object_object_add(dg, "datasetVersion",
                                               json_object_new_string(d->version));
                if (d->key_id[0])
                        json_object_object_add(dg, "keyId", json_object_new_string(d->key_id));
                json_object_object_add(dg, "path", json_object_new_string(d->path));
        }
}

static void set_host(json_object *ev)
{
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) < 0)
                host[0] = '\0';
        /* The region comes from the host identity once the residency decision is made
         * in resolve; until then the facet names the node only. */
        aidp_lineage_set_host(ev, host[0] ? host : NULL, NULL);
}

void aidp_run_lineage_job_name(const struct aidp_run_opts *o, char *out, size_t size)
{
        char buf[PATH_MAX];
        snprintf(buf, sizeof buf, "%s", o->argv && o->argv[0] ? o->argv[0] : "job");
        snprintf(out, size, "%s", basename(buf));
}

int aidp_run_lineage_start(struct aidp_run_lineage *rl, const struct aidp_run_opts *o,
                           const struct aidp_run_result *res, const struct aidp_profile *profile,
                           const struct aidp_caller_identity *caller, uid_t job_uid, gid_t job_gid,
                           void (*annotate)(const void *arg, json_object *ev),
                           const void *annotate_arg, bool background, aidp_error *err)
{
        memset(rl, 0, sizeof *rl);
        aidp_run_lineage_job_name(o, rl->job, sizeof rl->job);
        struct aidp_lineage_options lo = {.path = o->lineage_path, .create_key = true};
        int r = aidp_lineage_open(&rl->lg, &lo, err);
        if (r < 0)
                return aidp_error_wrap(err,
                                       "lineage: the run cannot be recorded, so it does not start");
        const char *run_id = res->run_id;
        _cleanup_(json_object_putp) json_object *ev =
                new_event(AIDP_LINEAGE_START, run_id, rl->job);
        if (!ev)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        /* Who asked: the identity behind sudo or the scheduler, as the access policy
         * sees it; the job's own uid/gid go alongside. */
        if (caller)
                aidp_lineage_set_caller(ev, caller->uid, caller->gid, caller->user,
                                        getenv("SLURM_JOB_ID"));
        else
                aidp_lineage_set_caller(ev, getuid(), getgid(), NULL, getenv("SLURM_JOB_ID"));
        json_object *facet = aidp_lineage_run_facet(ev, "aidp_caller");
        json_object_object_add(facet, "jobUid", json_object_new_int64(job_uid));
        json_object_object_add(facet, "jobGid", json_object_new_int64(job_gid));
        set_host(ev);
        static const unsigned char zero[32];
        char digest[80] = "";
        if (memcmp(profile->digest, zero, sizeof zero))
                aidp_sha256_ref(profile->digest, digest);
        aidp_lineage_set_profile(ev, profile->name ? profile->name : "default",
                                 digest[0] ? digest : NULL);
        for (size_t i = 0; i < res->n_inputs; i++)
                add_dataset(ev, false, &res->inputs[i]);
        if (annotate)
                annotate(annotate_arg, ev);
        /* In the background, committed by aidp_run_lineage_start_commit(); or,
         * in a serial start-up (supervisor/run/startup.c), durable right here. */
        r = background ? aidp_lineage_append_begin(rl->lg, ev, &rl->start, err)
                       : aidp_lineage_append(rl->lg, ev, err);
        if (r < 0)
                return aidp_error_wrap(err, "recording the START of run %s; the run does not start",
                                       run_id);
        return 0;
}

int aidp_run_lineage_start_commit(struct aidp_run_lineage *rl, const char *run_id, aidp_error *err)
{
        if (!rl->start)
                return 0;
        int r = aidp_lineage_append_commit(TAKE_PTR(rl->start), err);
        if (r < 0) {
                rl->start_failed = true;
                return aidp_error_wrap(err, "recording the START of run %s; the run does not start",
                                       run_id);
        }
        return 0;
}

/* What kind of end, and why, from the run's outcome. */
static enum aidp_lineage_event_type end_type(const struct aidp_run_result *res, int rc,
                                             const aidp_error *run_err, const char **reason)
{
        if (rc < 0 && run_err && run_err->errnum == EINTR) {
                *reason = "interrupted before the job started";
                return AIDP_LINEAGE_ABORT;
        }
        if (res->timed_out) {
                *reason = "timeout";
                return AIDP_LINEAGE_FAIL;
        }
        if (res->oom_killed && res->job_status != 0) {
                *reason = "oom";
                return AIDP_LINEAGE_FAIL;
        }
        if (rc < 0) {
                *reason = run_err && run_err->msg[0] ? run_err->msg : "supervisor error";
                return AIDP_LINEAGE_FAIL;
        }
        if (res->job_status == 0) {
                *reason = "exited";
                return AIDP_LINEAGE_COMPLETE;
        }
        *reason = res->job_status > 128 ? "signal" : "exited";
        return AIDP_LINEAGE_FAIL;
}

static void set_shred(json_object *ev, const struct aidp_shred_report *s, bool shredded,
                      const char *const *removed, size_t nremoved)
{
        struct aidp_lineage_shred ls = {
                .files = s->files,
                .bytes = s->bytes,
                .verified = shredded && s->verified,
                .duration_usec = (uint64_t)(s->seconds * 1e6),
                .removed = removed,
                .nremoved = nremoved,
        };
        aidp_lineage_set_shred(ev, &ls);
        json_object *f = aidp_lineage_run_facet(ev, "aidp_shred");
        json_object_object_add(f, "failures", json_object_new_uint64(s->failures));
        if (s->first_failure[0])
                json_object_object_add(f, "firstFailure", json_object_new_string(s->first_failure));
}

int aidp_run_lineage_end(struct aidp_run_lineage *rl, const char *run_id,
                         const struct aidp_run_result *res, int rc, const aidp_error *run_err,
                         const char *const *removed, size_t nremoved, aidp_error *err)
{
        if (!rl->lg)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EBADF, "lineage is not open");
        /* A START that never became durable was cut back: the run is not on record,
         * and an end record without its START would only confuse. */
        if (rl->start_failed)
                return 0;
        int r = aidp_run_lineage_start_commit(rl, run_id, err);
        if (r < 0)
                return r;
        const char *reason = NULL;
        enum aidp_lineage_event_type t = end_type(res, rc, run_err, &reason);
        _cleanup_(json_object_putp) json_object *ev = new_event(t, run_id, rl->job);
        if (!ev)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        int code = -1, sig = 0;
        if (res->job_status >= 0 && res->job_status <= 128)
                code = res->job_status;
        else if (res->job_status > 128)
                sig = res->job_status - 128;
        aidp_lineage_set_exit(ev, code, sig, res->exit_status, reason);
        json_object *xf = aidp_lineage_run_facet(ev, "aidp_exit");
        json_object_object_add(xf, "started", json_object_new_boolean(res->started));
        /* Also when the job itself survived: a child killed by the memory
         * limit may have lost work the exit status does not show. */
        json_object_object_add(xf, "oomKills", json_object_new_uint64(res->oom_kills));
        if (res->out_discarded) {
                json_object *of = aidp_lineage_run_facet(ev, "aidp_out");
                json_object_object_add(of, "kept", json_object_new_boolean(false));
                json_object_object_add(of, "discardedBytes",
                                       json_object_new_uint64(res->out_discarded_bytes));
                json_object_object_add(of, "discardedFiles",
                                       json_object_new_uint64(res->out_discarded_files));
        }
        struct aidp_lineage_resources rs = {
                .peak_memory_bytes = res->memory_peak_bytes,
                .cpu_usec = res->cpu_usec,
                .wall_usec = (uint64_t)(res->wall_seconds * 1e6),
                .peak_memory_known = res->memory_peak_known,
                .cpu_known = res->cpu_known,
                .error = res->resources_error[0] ? res->resources_error : NULL,
        };
        aidp_lineage_set_resources(ev, &rs);
        set_shred(ev, &res->shred, true, removed, nremoved);
        set_host(ev);
        for (size_t i = 0; i < res->n_inputs; i++)
                add_dataset(ev, false, &res->inputs[i]);
        if (res->has_output)
                add_dataset(ev, true, &res->output);
        r = aidp_lineage_append(rl->lg, ev, err);
        if (r < 0)
                return aidp_error_wrap(err, "recording the end of run %s", run_id);
        return 0;
}

void aidp_run_lineage_close(struct aidp_run_lineage *rl)
{
        if (rl->start) {
                /* Not reached by a run (its end record commits START); keep the
                 * record rather than lose it. */
                aidp_error e = {0};
                aidp_lineage_append_commit(TAKE_PTR(rl->start), &e);
        }
        aidp_lineage_free(rl->lg);
        rl->lg = NULL;
}

const char *aidp_run_lineage_path(const struct aidp_run_lineage *rl)
{
        return rl->lg ? aidp_lineage_path(rl->lg) : NULL;
}

int aidp_run_lineage_abort(const char *lineage_path, const char *run_id, const char *job,
                           const struct aidp_shred_report *shred, bool shredded, const char *what,
                           aidp_error *err)
{
        struct aidp_lineage *lg = NULL;
        struct aidp_lineage_options lo = {.path = lineage_path, .create_key = true};
        int r = aidp_lineage_open(&lg, &lo, err);
        if (r < 0)
                return r;
        json_object *ev = new_event(AIDP_LINEAGE_ABORT, run_id, job && job[0] ? job : "job");
        if (!ev) {
                aidp_lineage_free(lg);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        aidp_lineage_set_exit(ev, -1, 0, AIDP_EXIT_INTERNAL, "supervisor died; cleaned up by gc");
        set_shred(ev, shred, shredded, NULL, 0);
        json_object_object_add(aidp_lineage_run_facet(ev, "aidp_shred"), "gcReport",
                               json_object_new_string(what ? what : ""));
        set_host(ev);
        r = aidp_lineage_append(lg, ev, err);
        json_object_put(ev);
        aidp_lineage_free(lg);
        return r;
}

int aidp_run_lineage_denied(const struct aidp_run_opts *o, const struct aidp_run_result *res,
                            const struct aidp_caller_identity *caller,
                            void (*annotate)(const void *arg, json_object *ev),
                            const void *annotate_arg, aidp_error *err)
{
        _cleanup_free_ char *argv0 = strdup(o->argv && o->argv[0] ? o->argv[0] : "job");
        if (!argv0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        struct aidp_lineage *lg = NULL;
        struct aidp_lineage_options lo = {.path = o->lineage_path, .create_key = true};
        int r = aidp_lineage_open(&lg, &lo, err);
        if (r < 0)
                return r;
        json_object *ev = new_event(AIDP_LINEAGE_OTHER, res->run_id, basename(argv0));
        if (!ev) {
                aidp_lineage_free(lg);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        json_object_object_add(aidp_lineage_run_facet(ev, "aidp_run"), "outcome",
                               json_object_new_string("denied by policy"));
        if (caller)
                aidp_lineage_set_caller(ev, caller->uid, caller->gid, caller->user,
                                        getenv("SLURM_JOB_ID"));
        set_host(ev);
        for (size_t i = 0; i < res->n_inputs; i++)
                add_dataset(ev, false, &res->inputs[i]);
        if (annotate)
                annotate(annotate_arg, ev);
        aidp_lineage_set_exit(ev, -1, 0, AIDP_EXIT_DENIED, "denied by policy");
        r = aidp_lineage_append(lg, ev, err);
        json_object_put(ev);
        aidp_lineage_free(lg);
        if (r < 0)
                return aidp_error_wrap(err, "recording the denial of run %s", res->run_id);
        return 0;
}
