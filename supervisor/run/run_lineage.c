/* Lineage records of the run lifecycle; see run_lineage.h for when each is written. */
#define _GNU_SOURCE
#include "supervisor/run/run_lineage.h"

#include <errno.h>
#include <libgen.h>
#include <openssl/evp.h>
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

/* Who started the run, as the root component that did says (exec-hook mode);
 * schedulerJob falls back to the supervisor's own environment otherwise. */
static void set_caller(json_object *ev, const struct aidp_run_opts *o,
                       const struct aidp_caller_identity *caller)
{
        const char *sched_job = o && o->scheduler_job ? o->scheduler_job : getenv("SLURM_JOB_ID");
        if (caller)
                aidp_lineage_set_caller(ev, caller->uid, caller->gid, caller->user, sched_job);
        else
                aidp_lineage_set_caller(ev, getuid(), getgid(), NULL, sched_job);
}

static void set_parent(json_object *ev, const struct aidp_run_opts *o)
{
        if (o && o->scheduler && o->scheduler_job)
                aidp_lineage_set_parent(ev, o->scheduler, o->scheduler_job, o->scheduler_step);
}

/* A sealed dataset as lineage knows it: name, content digest, classification and
 * tags (residency and regulation), all from its authenticated header. */
static void add_dataset(json_object *ev, bool output, const struct aidp_run_dataset *d)
{
        json_object *ds =
                output ? aidp_lineage_add_output(ev, "aidp", d->name[0] ? d->name : d->path)
                       : aidp_lineage_add_input(ev, "aidp", d->name[0] ? d->name : d->path);
        /* "hmac-sha256:" (format 2, keyed) or "sha256:" (format 1). */
        const char *colon = strchr(d->digest, ':');
        if (colon && colon - d->digest < 16) {
                char alg[16];
                snprintf(alg, sizeof alg, "%.*s", (int)(colon - d->digest), d->digest);
                aidp_lineage_dataset_set_digest(ds, alg, colon + 1);
        }
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
        /* Column views (docs/lineage.md, "Views"): known at START; what the
         * job received only once /data is filled, so in the end record. */
        if (!output && d->view[0]) {
                json_object *v = aidp_lineage_dataset_facet(ds, "aidp_view");
                json_object_object_add(v, "view", json_object_new_string(d->view));
                if (d->received_digest[0]) {
                        json_object_object_add(v, "receivedDigest",
                                               json_object_new_string(d->received_digest));
                        json_object_object_add(v, "viewedFiles",
                                               json_object_new_uint64(d->viewed_files));
                }
        }
}

/* An output keeps its inputs' tags (the sealed header) and names the views
 * they reached the job through. */
static void add_output_views(json_object *ev, const struct aidp_run_result *res)
{
        json_object *outs, *ds;
        if (!json_object_object_get_ex(ev, "outputs", &outs) ||
            !(ds = json_object_array_get_idx(outs, 0)))
                return;
        json_object *from = json_object_new_array();
        for (size_t i = 0; i < res->n_inputs; i++) {
                const struct aidp_run_dataset *d = &res->inputs[i];
                json_object *o = json_object_new_object();
                json_object_object_add(o, "dataset", json_object_new_string(d->name));
                json_object_object_add(o, "view",
                                       json_object_new_string(d->view[0] ? d->view : "sealed"));
                if (d->received_digest[0])
                        json_object_object_add(o, "receivedDigest",
                                               json_object_new_string(d->received_digest));
                json_object_array_add(from, o);
        }
        /* A dataset facet like the others: _producer and _schemaURL, so the
         * event stays valid OpenLineage 2-0-2 (test-slurm checks it). */
        json_object *v = aidp_lineage_dataset_facet(ds, "aidp_view");
        json_object_object_add(v, "inputs", from);
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

/* The job as lineage names it: --job-name, else the profile (a path's file name without
 * .yaml; baseline when none was named), never the command, which names the interpreter (python3) rather than the job. */
void aidp_run_lineage_job_name(const struct aidp_run_opts *o, char *out, size_t size)
{
        char buf[PATH_MAX];
        if (o->job_name && o->job_name[0]) {
                snprintf(out, size, "%s", o->job_name);
                return;
        }
        snprintf(buf, sizeof buf, "%s",
                 o->profile && o->profile[0] ? o->profile : AIDP_DEFAULT_PROFILE);
        char *name = basename(buf), *dot = strrchr(name, '.');
        if (dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml")))
                *dot = '\0';
        snprintf(out, size, "%s", name);
}

/* aidp_egress on START: the allowlist the run is given, after extends and
 * after the residency decision dropped out-of-region rules (the profile
 * digest covers the rules as written), one line per rule, and the SHA-256 of
 * those lines, each ending in a newline. */
/* The host paths the job sees beyond the system's read-only view, in the
 * aidp_binds facet: each bind (source, target, writable) and the working
 * directory when it is bound. A writable one is where data can leave the
 * shredded tmpfs; the residency policy can forbid it (docs/policy.md). */
static void set_binds(json_object *ev, const struct aidp_profile *p, const char *cwd)
{
        json_object *f = aidp_lineage_run_facet(ev, "aidp_binds");
        json_object *a = json_object_new_array();
        size_t writable = 0;
        for (size_t i = 0; i < p->n_binds; i++) {
                const struct aidp_bind *b = &p->binds[i];
                json_object *o = json_object_new_object();
                json_object_object_add(o, "source", json_object_new_string(b->source));
                json_object_object_add(o, "target",
                                       json_object_new_string(b->target ? b->target : b->source));
                json_object_object_add(o, "writable", json_object_new_boolean(b->writable));
                json_object_array_add(a, o);
                writable += b->writable;
        }
        json_object_object_add(f, "binds", a);
        json_object_object_add(f, "writable", json_object_new_int64((int64_t)writable));
        if (p->bind_cwd && cwd && strcmp(cwd, "/"))
                json_object_object_add(f, "cwd", json_object_new_string(cwd));
}

static void set_allowlist(json_object *ev, const struct aidp_network *net)
{
        if (net->mode != AIDP_NET_EGRESS)
                return;
        json_object *f = aidp_lineage_run_facet(ev, "aidp_egress");
        json_object *arr = json_object_new_array();
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
        for (size_t i = 0; i < net->n_rules; i++) {
                const struct aidp_egress_rule *r = &net->rules[i];
                char line[512];
                snprintf(line, sizeof line, "%s %s %u-%u", r->cidr ? r->cidr : r->fqdn,
                         r->protocol == 6    ? "tcp"
                         : r->protocol == 17 ? "udp"
                                             : "tcp+udp",
                         r->port_min, r->port_min || r->port_max ? r->port_max : 65535);
                json_object_array_add(arr, json_object_new_string(line));
                ok = ok && EVP_DigestUpdate(md, line, strlen(line)) == 1 &&
                     EVP_DigestUpdate(md, "\n", 1) == 1;
        }
        json_object_object_add(f, "allowlist", arr);
        uint8_t d[AIDP_SHA256_LEN];
        unsigned int dl = 0;
        if (ok && EVP_DigestFinal_ex(md, d, &dl) == 1 && dl == sizeof d) {
                char text[AIDP_SHA256_REF_LEN + 1];
                aidp_sha256_ref(d, text);
                json_object_object_add(f, "digest", json_object_new_string(text));
        }
        EVP_MD_CTX_free(md);
}

json_object *aidp_run_lineage_start_event(const struct aidp_run_opts *o,
                                          const struct aidp_run_result *res,
                                          const struct aidp_profile *profile, const char *cwd,
                                          const struct aidp_caller_identity *caller, uid_t job_uid,
                                          gid_t job_gid,
                                          void (*annotate)(const void *arg, json_object *ev),
                                          const void *annotate_arg)
{
        char job[128];
        aidp_run_lineage_job_name(o, job, sizeof job);
        json_object *ev = new_event(AIDP_LINEAGE_START, res->run_id, job);
        if (!ev)
                return NULL;
        /* Who asked: the identity behind sudo or the scheduler, as the access policy
         * sees it; the job's own uid/gid go alongside. */
        set_caller(ev, o, caller);
        set_parent(ev, o);
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
        set_allowlist(ev, &profile->network);
        set_binds(ev, profile, cwd);
        for (size_t i = 0; i < res->n_inputs; i++)
                add_dataset(ev, false, &res->inputs[i]);
        if (annotate)
                annotate(annotate_arg, ev);
        return ev;
}

int aidp_run_lineage_open(struct aidp_run_lineage *rl, const struct aidp_run_opts *o,
                          aidp_error *err)
{
        memset(rl, 0, sizeof *rl);
        rl->o = o;
        aidp_run_lineage_job_name(o, rl->job, sizeof rl->job);
        struct aidp_lineage_options lo = {
                .path = o->lineage_path, .create_key = true, .publish_heads = true};
        if (aidp_lineage_open(&rl->lg, &lo, err) < 0)
                return aidp_error_wrap(err,
                                       "lineage: the run cannot be recorded, so it does not start");
        return 0;
}

int aidp_run_lineage_start(struct aidp_run_lineage *rl, const struct aidp_run_result *res,
                           const struct aidp_profile *profile, const char *cwd,
                           const struct aidp_caller_identity *caller, uid_t job_uid, gid_t job_gid,
                           void (*annotate)(const void *arg, json_object *ev),
                           const void *annotate_arg, bool background, aidp_error *err)
{
        const char *run_id = res->run_id;
        /* Failed unless written: no end record follows a START that is not
         * on record. */
        rl->start_failed = true;
        if (!rl->lg)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EBADF,
                                      "lineage is not open; the run does not start");
        _cleanup_(json_object_putp) json_object *ev = aidp_run_lineage_start_event(
                rl->o, res, profile, cwd, caller, job_uid, job_gid, annotate, annotate_arg);
        if (!ev)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        /* In the background, committed by aidp_run_lineage_start_commit(); or,
         * in a serial start-up (supervisor/run/startup.c), durable right here. */
        int r = background ? aidp_lineage_append_begin(rl->lg, ev, &rl->start, err)
                           : aidp_lineage_append(rl->lg, ev, err);
        if (r < 0)
                return aidp_error_wrap(err, "recording the START of run %s; the run does not start",
                                       run_id);
        rl->start_written = true;
        rl->start_failed = false;
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
        if (res->access_expired) {
                *reason = "access window closed";
                return AIDP_LINEAGE_FAIL;
        }
        if (res->leak_quarantined) {
                *reason = res->leak_reason;
                return AIDP_LINEAGE_FAIL;
        }
        if (res->stop_signal && res->job_status != 0 && !res->timed_out) {
                /* Cancelled from outside (scancel, Ctrl-C, a stop of the node). */
                *reason = "stopped by a signal to the supervisor";
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

/* Per tmpfs: where the job saw it, its limit, what it held, what shred did. */
static void set_mounts(json_object *f, const struct aidp_run_result *res)
{
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < res->n_mounts; i++) {
                const struct aidp_run_mount *m = &res->mounts[i];
                json_object *o = json_object_new_object();
                json_object_object_add(o, "mount", json_object_new_string(m->target));
                json_object_object_add(o, "sizeBytes", json_object_new_uint64(m->size_bytes));
                json_object_object_add(o, "usedBytes", json_object_new_uint64(m->used_bytes));
                json_object_object_add(o, "files", json_object_new_uint64(m->files));
                json_object_object_add(o, "bytes", json_object_new_uint64(m->bytes));
                json_object_object_add(o, "verified", json_object_new_boolean(m->verified));
                json_object_object_add(o, "noswap", json_object_new_boolean(m->noswap));
                json_object_object_add(o, "full", json_object_new_boolean(m->full));
                json_object_array_add(arr, o);
        }
        json_object_object_add(f, "mounts", arr);
}

static void set_shred(json_object *ev, const struct aidp_shred_report *s, bool shredded,
                      const char *by, const char *const *removed, size_t nremoved)
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
        /* Who overwrote the pages: the supervisor through its own mount fds,
         * or gc (through pid 1's fds, or the run's pinned mount namespace). */
        json_object_object_add(f, "shreddedBy", json_object_new_string(by ? by : "nobody"));
        if (s->first_failure[0])
                json_object_object_add(f, "firstFailure", json_object_new_string(s->first_failure));
}

/* aidp_network: what the run's egress rules refused, per destination, with
 * the first few packets as examples (docs/egress.md). */
static void set_network(json_object *ev, const struct aidp_run_result *res)
{
        if (!res->egress)
                return;
        const struct aidp_np_denials *d = &res->denials;
        json_object *f = aidp_lineage_run_facet(ev, "aidp_network");
        json_object_object_add(f, "denied", json_object_new_uint64(0));
        for (size_t i = 0; i < d->n_keys; i++) {
                static const struct {
                        unsigned nr;
                        const char *name;
                } names[] = {{1, "icmp"}, {6, "tcp"}, {17, "udp"}, {58, "icmpv6"}};
                char proto[16];
                snprintf(proto, sizeof proto, "proto-%u", d->keys[i].proto);
                for (size_t k = 0; k < ARRAY_SIZE(names); k++)
                        if (names[k].nr == d->keys[i].proto)
                                snprintf(proto, sizeof proto, "%s", names[k].name);
                aidp_lineage_add_network_denial(ev, proto, d->keys[i].dst, d->keys[i].port,
                                                d->keys[i].count);
        }
        if (d->other)
                aidp_lineage_add_network_denial(ev, "other", "*", 0, d->other);
        json_object *ex = json_object_new_array();
        for (size_t i = 0; i < d->n_examples; i++)
                json_object_array_add(ex, json_object_new_string(d->examples[i]));
        json_object_object_add(f, "examples", ex);
        /* Names the run's DNS proxy refused, or answered without an address
         * the plan does not cover. */
        json_object_object_add(f, "dnsDenied", json_object_new_uint64(d->dns_total));
        json_object *dns = json_object_new_array();
        for (size_t i = 0; i < d->n_dns; i++) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(d->dns[i].name));
                json_object_object_add(o, "reason", json_object_new_string(d->dns[i].why));
                json_object_object_add(o, "count", json_object_new_uint64(d->dns[i].count));
                json_object_array_add(dns, o);
        }
        json_object_object_add(f, "dnsDenials", dns);
}

json_object *aidp_run_leak_json(const struct aidp_run_result *res, bool camel)
{
        const struct aidp_leak_report *l = &res->leak;
        json_object *f = json_object_new_object();
        if (!camel && res->leak_private) {
                /* The summary of a user's run: whether /out was quarantined,
                 * never where or how often (run.h, leak_private). */
                json_object_object_add(f, "action", json_object_new_string(res->leak_action));
                json_object_object_add(f, "quarantined",
                                       json_object_new_boolean(res->leak_quarantined));
                json_object_object_add(f, "quarantine_key",
                                       res->leak_quarantined ? json_object_new_string(res->leak_key)
                                                             : NULL);
                json_object_object_add(f, "details", json_object_new_string("lineage"));
                return f;
        }
        json_object_object_add(f, "values", json_object_new_uint64(res->leak_values));
        json_object_object_add(f, camel ? "valuesDropped" : "values_dropped",
                               json_object_new_uint64(res->leak_dropped));
        json_object_object_add(f, "files", json_object_new_uint64(l->files));
        json_object_object_add(f, "bytes", json_object_new_uint64(l->bytes));
        json_object_object_add(f, "hits", json_object_new_uint64(l->hits));
        json_object *pl = json_object_new_object();
        for (size_t i = 0; i < l->n_labels; i++)
                json_object_object_add(pl, l->per_label[i].label,
                                       json_object_new_uint64(l->per_label[i].hits));
        json_object_object_add(f, camel ? "hitsPerLabel" : "hits_per_label", pl);
        json_object *ex = json_object_new_array();
        for (size_t i = 0; i < l->n_examples; i++) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(l->examples[i].file));
                json_object_object_add(o, "offset", json_object_new_uint64(l->examples[i].offset));
                json_object_object_add(o, "label", json_object_new_string(l->examples[i].label));
                json_object_object_add(o, "column", json_object_new_string(l->examples[i].column));
                json_object_array_add(ex, o);
        }
        json_object_object_add(f, "examples", ex);
        json_object_object_add(f, "action", json_object_new_string(res->leak_action));
        json_object_object_add(f, "quarantined", json_object_new_boolean(res->leak_quarantined));
        json_object_object_add(f, camel ? "quarantineKey" : "quarantine_key",
                               res->leak_quarantined ? json_object_new_string(res->leak_key)
                                                     : NULL);
        return f;
}

int aidp_run_lineage_end(struct aidp_run_lineage *rl, const char *run_id,
                         const struct aidp_run_result *res, int rc, const aidp_error *run_err,
                         const char *const *removed, size_t nremoved, aidp_error *err)
{
        /* A START that was not written, or never became durable and was cut
         * back: the run is not on record (nothing of the job ran), and an end
         * record without its START would only confuse. */
        if (rl->start_failed)
                return 0;
        if (!rl->lg || !rl->start_written)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, EBADF, "lineage is not open");
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
        json_object *mf = aidp_lineage_run_facet(ev, "aidp_resources");
        json_object_object_add(mf, "dataMemoryBytes",
                               json_object_new_uint64(res->data_memory_bytes));
        json_object_object_add(mf, "tmpfsMemoryBytes",
                               json_object_new_uint64(res->tmpfs_memory_bytes));
        json_object_object_add(mf, "jobSwap",
                               res->job_swap ? json_object_new_string(res->job_swap) : NULL);
        json_object_object_add(mf, "processMemoryPeakBytes",
                               res->memory_peak_known
                                       ? json_object_new_uint64(res->process_memory_peak_bytes)
                                       : NULL);
        set_shred(ev, &res->shred, true, res->shredded_by, removed, nremoved);
        set_mounts(aidp_lineage_run_facet(ev, "aidp_shred"), res);
        set_host(ev);
        set_parent(ev, rl->o);
        set_network(ev, res);
        if (res->leak_scanned) {
                json_object *lf = aidp_lineage_run_facet(ev, "aidp_leakscan");
                _cleanup_(json_object_putp) json_object *l = aidp_run_leak_json(res, true);
                json_object_object_foreach(l, k, v)
                        json_object_object_add(lf, k, json_object_get(v));
        }
        for (size_t i = 0; i < res->n_inputs; i++)
                add_dataset(ev, false, &res->inputs[i]);
        if (res->has_output) {
                add_dataset(ev, true, &res->output);
                add_output_views(ev, res);
        }
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
                           const struct aidp_shred_report *shred, bool shredded, const char *by,
                           const char *what, json_object *mounts, aidp_error *err)
{
        struct aidp_lineage *lg = NULL;
        struct aidp_lineage_options lo = {
                .path = lineage_path, .create_key = true, .publish_heads = true};
        int r = aidp_lineage_open(&lg, &lo, err);
        if (r < 0)
                return r;
        json_object *ev = new_event(AIDP_LINEAGE_ABORT, run_id, job && job[0] ? job : "job");
        if (!ev) {
                aidp_lineage_free(lg);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        aidp_lineage_set_exit(ev, -1, 0, AIDP_EXIT_INTERNAL, "supervisor died; cleaned up by gc");
        set_shred(ev, shred, shredded, shredded ? by : NULL, NULL, 0);
        json_object_object_add(aidp_lineage_run_facet(ev, "aidp_shred"), "gcReport",
                               json_object_new_string(what ? what : ""));
        /* gc's own per-mount report (what it overwrote, mount by mount) */
        if (mounts)
                json_object_object_add(aidp_lineage_run_facet(ev, "aidp_shred"), "mounts",
                                       json_object_get(mounts));
        set_host(ev);
        r = aidp_lineage_append(lg, ev, err);
        json_object_put(ev);
        aidp_lineage_free(lg);
        return r;
}

/* A run that does not start (a denial, a refusal of its inputs): an OTHER
 * event with who asked, the host, and the first n inputs of res, whose headers
 * authenticated. NULL: out of memory. */
static json_object *not_started_event(const struct aidp_run_opts *o,
                                      const struct aidp_run_result *res, size_t n,
                                      const struct aidp_caller_identity *caller,
                                      const char *outcome)
{
        char job[128];
        aidp_run_lineage_job_name(o, job, sizeof job);
        json_object *ev = new_event(AIDP_LINEAGE_OTHER, res->run_id, job);
        if (!ev)
                return NULL;
        json_object_object_add(aidp_lineage_run_facet(ev, "aidp_run"), "outcome",
                               json_object_new_string(outcome));
        if (caller)
                set_caller(ev, o, caller);
        set_parent(ev, o);
        set_host(ev);
        for (size_t i = 0; i < n; i++)
                add_dataset(ev, false, &res->inputs[i]);
        /* It read nothing: the datasets it asked for go in a run facet, not in
         * inputs, so a lineage graph (and Marquez) shows no data flowing into it. */
        json_object *requested = NULL;
        if (json_object_object_get_ex(ev, "inputs", &requested)) {
                json_object_object_add(aidp_lineage_run_facet(ev, "aidp_requested"), "inputs",
                                       json_object_get(requested));
                json_object_object_add(ev, "inputs", json_object_new_array());
        }
        return ev;
}

/* Append ev (taking it) to the run's log, in a store opened for this record. */
static int append_not_started(const struct aidp_run_opts *o, json_object *ev, const char *what,
                              const char *run_id, aidp_error *err)
{
        _cleanup_(json_object_putp) json_object *e = ev;
        if (!e)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        struct aidp_lineage *lg = NULL;
        struct aidp_lineage_options lo = {
                .path = o->lineage_path, .create_key = true, .publish_heads = true};
        int r = aidp_lineage_open(&lg, &lo, err);
        if (r == 0) {
                r = aidp_lineage_append(lg, e, err);
                aidp_lineage_free(lg);
        }
        if (r < 0)
                return aidp_error_wrap(err, "recording the %s of run %s", what, run_id);
        return 0;
}

int aidp_run_lineage_denied(const struct aidp_run_opts *o, const struct aidp_run_result *res,
                            const struct aidp_caller_identity *caller,
                            void (*annotate)(const void *arg, json_object *ev),
                            const void *annotate_arg, aidp_error *err)
{
        json_object *ev = not_started_event(o, res, res->n_inputs, caller, "denied by policy");
        if (ev && annotate)
                annotate(annotate_arg, ev);
        if (ev)
                aidp_lineage_set_exit(ev, -1, 0, AIDP_EXIT_DENIED, "denied by policy");
        return append_not_started(o, ev, "denial", res->run_id, err);
}

/* aidp_refusal.datasets: per --data, its path as the caller named it and its
 * header's state: "authenticated" (with its name), "refused" (the one that
 * failed: its header, key or size) or "not read" (after it). A manifest that
 * failed leaves every header authenticated; the reason names the dataset. */
static json_object *refusal_datasets(const struct aidp_run_opts *o,
                                     const struct aidp_run_result *res, size_t n_auth)
{
        json_object *arr = json_object_new_array();
        for (size_t i = 0; arr && i < o->n_data; i++) {
                json_object *d = json_object_new_object();
                json_object_object_add(d, "path", json_object_new_string(o->data[i]));
                const char *state = i < n_auth    ? "authenticated"
                                    : i == n_auth ? "refused"
                                                  : "not read";
                json_object_object_add(d, "header", json_object_new_string(state));
                if (i < n_auth)
                        json_object_object_add(d, "name",
                                               json_object_new_string(res->inputs[i].name));
                json_object_array_add(arr, d);
        }
        return arr;
}

int aidp_run_lineage_refused(const struct aidp_run_opts *o, const struct aidp_run_result *res,
                             size_t n_authenticated, const struct aidp_caller_identity *caller,
                             void (*annotate)(const void *arg, json_object *ev),
                             const void *annotate_arg, const aidp_error *refusal, aidp_error *err)
{
        size_t n = n_authenticated < o->n_data ? n_authenticated : o->n_data;
        json_object *ev = not_started_event(o, res, n, caller, "refused for its sealed inputs");
        if (ev) {
                json_object *f = aidp_lineage_run_facet(ev, "aidp_refusal");
                json_object_object_add(f, "reason", json_object_new_string(refusal->msg));
                json_object_object_add(f, "datasets", refusal_datasets(o, res, n));
                if (annotate)
                        annotate(annotate_arg, ev);
                aidp_lineage_set_exit(ev, -1, 0, refusal->status, refusal->msg);
        }
        return append_not_started(o, ev, "refusal", res->run_id, err);
}
