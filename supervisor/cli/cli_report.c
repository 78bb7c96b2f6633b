#define _GNU_SOURCE
/* What `aidp-supervisor run` tells about a finished run: the summary file
 * (--summary, JSON) and the lines on stderr. */
#include "supervisor/cli/cli_report.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "supervisor/run/run_lineage.h"

static json_object *tag_list(const char *joined)
{
        json_object *a = json_object_new_array();
        char buf[sizeof((struct aidp_run_dataset *)0)->residency];
        snprintf(buf, sizeof buf, "%s", joined);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
                json_object_array_add(a, json_object_new_string(t));
        return a;
}

static json_object *dataset_json(const struct aidp_run_dataset *d)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(d->path));
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "version", json_object_new_string(d->version));
        json_object_object_add(o, "classification", json_object_new_string(d->classification));
        json_object_object_add(o, "residency", tag_list(d->residency));
        json_object_object_add(o, "regulation", tag_list(d->regulation));
        json_object_object_add(o, "key_id", json_object_new_string(d->key_id));
        /* The plaintext's digest is for callers who may unseal (docs/security.md);
         * a job given a view has what it received instead (received_digest). */
        if (!d->view[0])
                json_object_object_add(o, "content_digest", json_object_new_string(d->digest));
        json_object_object_add(o, "payload_bytes", json_object_new_uint64(d->bytes));
        json_object_object_add(o, "files", json_object_new_uint64(d->files));
        /* a column view: what the job saw it through, and what it received */
        if (d->view[0])
                json_object_object_add(o, "view", json_object_new_string(d->view));
        if (d->received_digest[0]) {
                json_object_object_add(o, "received_digest",
                                       json_object_new_string(d->received_digest));
                json_object_object_add(o, "viewed_files", json_object_new_uint64(d->viewed_files));
        }
        return o;
}

/* The run's network and what it refused (docs/egress.md). */
static json_object *egress_json(const struct aidp_run_result *r)
{
        json_object *e = json_object_new_object(), *arr = json_object_new_array();
        json_object_object_add(e, "address", json_object_new_string(r->egress_addr));
        json_object_object_add(e, "denied", json_object_new_uint64(r->denials.total));
        for (size_t i = 0; i < r->denials.n_keys; i++) {
                char s[96];
                aidp_netpolicy_denial_str(&r->denials.keys[i], s, sizeof s);
                json_object *d = json_object_new_object();
                json_object_object_add(d, "flow", json_object_new_string(s));
                json_object_object_add(d, "count",
                                       json_object_new_uint64(r->denials.keys[i].count));
                json_object_array_add(arr, d);
        }
        json_object_object_add(e, "denials", arr);
        json_object_object_add(e, "dns_denied", json_object_new_uint64(r->denials.dns_total));
        json_object *dns = json_object_new_array();
        for (size_t i = 0; i < r->denials.n_dns; i++) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(r->denials.dns[i].name));
                json_object_object_add(o, "reason", json_object_new_string(r->denials.dns[i].why));
                json_object_object_add(o, "count", json_object_new_uint64(r->denials.dns[i].count));
                json_object_array_add(dns, o);
        }
        json_object_object_add(e, "dns_denials", dns);
        return e;
}

json_object *aidp_cli_summary_json(const struct aidp_run_result *r)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "run_id", json_object_new_string(r->run_id));
        json_object_object_add(o, "exit_status", json_object_new_int(r->exit_status));
        json_object_object_add(o, "job_status", json_object_new_int(r->job_status));
        json_object_object_add(o, "started", json_object_new_boolean(r->started));
        json_object_object_add(o, "timed_out", json_object_new_boolean(r->timed_out));
        json_object_object_add(o, "access_expired", json_object_new_boolean(r->access_expired));
        /* enforcement: audit: the decision that was not enforced */
        json_object_object_add(o, "policy_audit",
                               r->policy_audit[0] ? json_object_new_string(r->policy_audit) : NULL);
        json_object_object_add(o, "stop_signal", json_object_new_int(r->stop_signal));
        json_object_object_add(o, "oom_killed", json_object_new_boolean(r->oom_killed));
        json_object_object_add(o, "oom_kills", json_object_new_uint64(r->oom_kills));
        /* /out without --output-dir: shredded, never kept */
        json_object_object_add(o, "out_kept", json_object_new_boolean(!r->out_discarded));
        json_object_object_add(o, "out_discarded_bytes",
                               json_object_new_uint64(r->out_discarded_bytes));
        json_object_object_add(o, "wall_seconds", json_object_new_double(r->wall_seconds));
        /* null: the cgroup could not tell (resources_error says why) */
        json_object_object_add(o, "cpu_seconds",
                               r->cpu_known ? json_object_new_double((double)r->cpu_usec / 1e6)
                                            : NULL);
        json_object_object_add(o, "memory_peak_bytes",
                               r->memory_peak_known ? json_object_new_uint64(r->memory_peak_bytes)
                                                    : NULL);
        if (r->resources_error[0])
                json_object_object_add(o, "resources_error",
                                       json_object_new_string(r->resources_error));
        json_object_object_add(o, "cgroup", json_object_new_string(r->cgroup_version));
        json_object_object_add(o, "tmpfs_noswap", json_object_new_boolean(r->noswap));
        json_object_object_add(o, "job_swap",
                               r->job_swap ? json_object_new_string(r->job_swap) : NULL);
        json_object *s = json_object_new_object();
        json_object_object_add(s, "files", json_object_new_uint64(r->shred.files));
        json_object_object_add(s, "bytes", json_object_new_uint64(r->shred.bytes));
        json_object_object_add(s, "verified", json_object_new_boolean(r->shred.verified));
        json_object_object_add(s, "seconds", json_object_new_double(r->shred.seconds));
        json_object_object_add(s, "shredded_by",
                               json_object_new_string(r->shredded_by ? r->shredded_by : "nobody"));
        json_object *ms = json_object_new_array();
        for (size_t i = 0; i < r->n_mounts; i++) {
                const struct aidp_run_mount *m = &r->mounts[i];
                json_object *mo = json_object_new_object();
                json_object_object_add(mo, "mount", json_object_new_string(m->target));
                json_object_object_add(mo, "size_bytes", json_object_new_uint64(m->size_bytes));
                json_object_object_add(mo, "used_bytes", json_object_new_uint64(m->used_bytes));
                json_object_object_add(mo, "files", json_object_new_uint64(m->files));
                json_object_object_add(mo, "bytes", json_object_new_uint64(m->bytes));
                json_object_object_add(mo, "verified", json_object_new_boolean(m->verified));
                json_object_object_add(mo, "noswap", json_object_new_boolean(m->noswap));
                json_object_object_add(mo, "full", json_object_new_boolean(m->full));
                json_object_array_add(ms, mo);
        }
        json_object_object_add(s, "mounts", ms);
        json_object_object_add(o, "shred", s);
        json_object *mem = json_object_new_object();
        json_object_object_add(mem, "peak_bytes",
                               r->memory_peak_known ? json_object_new_uint64(r->memory_peak_bytes)
                                                    : NULL);
        json_object_object_add(mem, "data_bytes", json_object_new_uint64(r->data_memory_bytes));
        json_object_object_add(mem, "tmpfs_bytes", json_object_new_uint64(r->tmpfs_memory_bytes));
        json_object_object_add(
                mem, "process_peak_bytes",
                r->memory_peak_known ? json_object_new_uint64(r->process_memory_peak_bytes) : NULL);
        json_object_object_add(o, "memory", mem);
        json_object *in = json_object_new_array();
        for (size_t i = 0; i < r->n_inputs; i++)
                json_object_array_add(in, dataset_json(&r->inputs[i]));
        json_object_object_add(o, "inputs", in);
        if (r->has_output)
                json_object_object_add(o, "output", dataset_json(&r->output));
        if (r->egress)
                json_object_object_add(o, "egress", egress_json(r));
        if (r->leak_scanned)
                json_object_object_add(o, "leak_scan", aidp_run_leak_json(r, false));
        return o;
}

/* The summary goes to the file the caller created (fd from the trust check). */
int aidp_cli_write_summary(int fd, const char *path, const struct aidp_run_result *r)
{
        json_object *o = aidp_cli_summary_json(r);
        int rc = json_object_to_fd(fd, o, JSON_C_TO_STRING_PRETTY);
        json_object_put(o);
        if (rc < 0) {
                fprintf(stderr, "aidp-supervisor: error: writing summary %s: %s\n", path,
                        strerror(errno));
                return -1;
        }
        return 0;
}

static void print_egress(const struct aidp_run_result *res)
{
        fprintf(stderr, "aidp-supervisor: egress from %s: %llu packet(s) denied", res->egress_addr,
                (unsigned long long)res->denials.total);
        for (size_t i = 0; i < res->denials.n_keys && i < 8; i++) {
                char s[96];
                aidp_netpolicy_denial_str(&res->denials.keys[i], s, sizeof s);
                fprintf(stderr, "%s%s x%llu", i ? ", " : " (", s,
                        (unsigned long long)res->denials.keys[i].count);
        }
        fprintf(stderr, "%s\n", res->denials.n_keys ? ")" : "");
        const struct aidp_np_denials *d = &res->denials;
        if (!d->dns_total)
                return;
        fprintf(stderr, "aidp-supervisor: DNS proxy: %llu name lookup(s) denied",
                (unsigned long long)d->dns_total);
        for (size_t i = 0; i < d->n_dns && i < 8; i++)
                fprintf(stderr, "%s%s (%s) x%llu", i ? ", " : " (", d->dns[i].name, d->dns[i].why,
                        (unsigned long long)d->dns[i].count);
        fprintf(stderr, "%s\n", d->n_dns ? ")" : "");
}

/* The option and profile key that size a tmpfs, by its label. */
static void size_knobs(const struct aidp_run_mount *m, const char **opt, const char **key)
{
        static const struct {
                const char *label, *opt, *key;
        } k[] = {{"tmp", "--tmp-size", "/tmp"},
                 {"scratch", "--scratch-size", "/scratch"},
                 {"out", "--out-size", "/out"},
                 {"shm", "--shm-size", "/dev/shm"},
                 {"data", NULL, "/data"}};
        *opt = *key = NULL;
        for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
                if (!strcmp(m->label, k[i].label)) {
                        *opt = k[i].opt;
                        *key = k[i].key;
                }
}

/* Per mount: what shred did; the memory in parts. */
static void print_mounts(const struct aidp_run_result *res)
{
        char line[2048];
        size_t n = 0;
        for (size_t i = 0; i < res->n_mounts && n < sizeof line; i++) {
                const struct aidp_run_mount *m = &res->mounts[i];
                int w = snprintf(line + n, sizeof line - n, "%s%s %llu files %llu bytes%s",
                                 i ? ", " : "", m->target, (unsigned long long)m->files,
                                 (unsigned long long)m->bytes, m->verified ? "" : " NOT VERIFIED");
                if (w < 0)
                        break;
                n += (size_t)w;
        }
        if (res->n_mounts)
                fprintf(stderr, "aidp-supervisor: shred by %s: %s\n",
                        res->shredded_by ? res->shredded_by : "nobody", line);
        fprintf(stderr,
                "aidp-supervisor: memory: data %llu MiB, tmpfs %llu MiB, processes (peak) %s%llu "
                "MiB\n",
                (unsigned long long)(res->data_memory_bytes >> 20),
                (unsigned long long)(res->tmpfs_memory_bytes >> 20),
                res->memory_peak_known ? "" : "unknown, taken as ",
                (unsigned long long)(res->process_memory_peak_bytes >> 20));
}

/* Every mount that filled up, with how to make it larger (also with -q: the
 * job's own error rarely says which mount it was). */
static void print_full(const struct aidp_run_result *res)
{
        for (size_t i = 0; i < res->n_mounts; i++) {
                const struct aidp_run_mount *m = &res->mounts[i];
                const char *opt, *key;
                size_knobs(m, &opt, &key);
                if (!m->full || !opt)
                        continue;
                fprintf(stderr,
                        "aidp-supervisor: %s filled up (%llu MiB): a write there failed with "
                        "'No space left on device'; give it more with %s SIZE (up to the "
                        "profile's limit) or the profile's limits.tmpfs.%s\n",
                        m->target, (unsigned long long)(m->size_bytes >> 20), opt, key);
        }
}

/* A run stopped from outside, or killed at the end of a grace: why its
 * status is what it is (137 alone says nothing of a Ctrl-C). */
static void print_stop(const struct aidp_run_result *res)
{
        const char *abbrev = res->stop_signal ? sigabbrev_np(res->stop_signal) : NULL;
        char sig[32];
        snprintf(sig, sizeof sig, "SIG%s", abbrev ? abbrev : "?");
        const char *why = res->killed_why;
        unsigned long long g = (unsigned long long)res->kill_after_seconds;
        if (res->stop_signal && why && !strcmp(why, "kill-after"))
                fprintf(stderr,
                        "aidp-supervisor: run %s was stopped by %s (forwarded to the job); the job "
                        "did not end within the %llus grace (--kill-after) and was killed\n",
                        res->run_id, sig, g);
        else if (res->stop_signal && why)
                fprintf(stderr,
                        "aidp-supervisor: run %s was stopped by %s (forwarded to the job); a "
                        "second stop request killed the job at once\n",
                        res->run_id, sig);
        else if (res->stop_signal)
                fprintf(stderr,
                        "aidp-supervisor: run %s was stopped by %s (forwarded to the job, which "
                        "then ended)\n",
                        res->run_id, sig);
        else if (why && res->timed_out)
                fprintf(stderr,
                        "aidp-supervisor: run %s: the job did not end within the %llus grace "
                        "(--kill-after) after its wall time and was killed\n",
                        res->run_id, g);
}

void aidp_cli_print_result(const struct aidp_run_result *res, const struct aidp_run_opts *o)
{
        if (res->started)
                print_full(res);
        if (o->quiet)
                return;
        char cpu[32] = "unknown", mem[32] = "unknown";
        if (res->cpu_known)
                snprintf(cpu, sizeof cpu, "%.2fs", (double)res->cpu_usec / 1e6);
        if (res->memory_peak_known)
                snprintf(mem, sizeof mem, "%llu MiB",
                         (unsigned long long)(res->memory_peak_bytes >> 20));
        if (res->started && res->resources_error[0])
                fprintf(stderr, "aidp-supervisor: warning: run usage unknown: %s\n",
                        res->resources_error);
        char oom[96] = "", out[160] = "";
        if (res->oom_kills)
                snprintf(oom, sizeof oom, ", OOM kills %llu (killed by the memory limit)",
                         (unsigned long long)res->oom_kills);
        if (res->out_discarded && res->out_discarded_files)
                snprintf(out, sizeof out, "; /out: %llu bytes in %llu files discarded (no %s)",
                         (unsigned long long)res->out_discarded_bytes,
                         (unsigned long long)res->out_discarded_files,
                         aidp_run_output_dir_label(o));
        if (res->started)
                fprintf(stderr,
                        "aidp-supervisor: run %s: exit %d, wall %.2fs, cpu %s, peak memory %s%s, "
                        "cgroup %s; shred: %llu files, %llu bytes, verified %s%s%s%s\n",
                        res->run_id, res->exit_status, res->wall_seconds, cpu, mem, oom,
                        res->cgroup_version, (unsigned long long)res->shred.files,
                        (unsigned long long)res->shred.bytes, res->shred.verified ? "yes" : "NO",
                        out,
                        res->noswap ? ""
                                    : "; tmpfs noswap unsupported by this kernel (data could reach "
                                      "swap)",
                        res->job_swap && !strcmp(res->job_swap, "possible")
                                ? "; the job's own memory could reach swap (its cgroup bounds no "
                                  "swap: give it a memory limit, or turn on swap accounting)"
                                : "");
        if (res->started)
                print_stop(res);
        if (res->started)
                print_mounts(res);
        if (res->started && res->egress)
                print_egress(res);
        for (size_t i = 0; i < res->n_inputs && res->started; i++) {
                const struct aidp_run_dataset *d = &res->inputs[i];
                fprintf(stderr, "aidp-supervisor: input %s %s (%s%s%s%s%s): %s\n", d->name,
                        d->version, d->classification, d->residency[0] ? "; " : "", d->residency,
                        d->regulation[0] ? "; " : "", d->regulation,
                        d->view[0] ? "through a view" : d->digest);
                if (d->received_digest[0])
                        fprintf(stderr,
                                "aidp-supervisor: input %s seen through view %s (%llu files "
                                "viewed): received %s\n",
                                d->name, d->view, (unsigned long long)d->viewed_files,
                                d->received_digest);
        }
        if (res->has_output) {
                const struct aidp_run_dataset *d = &res->output;
                fprintf(stderr, "aidp-supervisor: output %s (%s%s%s%s%s): %s\n", d->path,
                        d->classification, d->residency[0] ? "; " : "", d->residency,
                        d->regulation[0] ? "; " : "", d->regulation, d->digest);
        }
}
