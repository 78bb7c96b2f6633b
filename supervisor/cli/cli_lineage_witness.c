/* aidp lineage verify --witness: the log against what its witnesses saw
 * (docs/lineage.md, "Witnesses"). The comparison itself is pure code in
 * supervisor/lineage/codec/lineage_witness.c; this file reads the files. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_lineage.h"
#include "supervisor/lineage/codec/lineage_witness.h"
#include "supervisor/lineage/seclog.h"

/* The heads a witness file or syslog archive holds. */
static int read_heads(const char *path, struct aidp_lineage_head **ret, size_t *n,
                      size_t *malformed, aidp_error *err)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "witness %s", path);
        setvbuf(f, NULL, _IOFBF, 1 << 20);
        char *line = NULL;
        size_t cap = 0, alloc = 0;
        ssize_t len;
        int r = 0;
        *ret = NULL;
        *n = *malformed = 0;
        while ((len = getline(&line, &cap, f)) > 0) {
                struct aidp_lineage_head h;
                int k = aidp_lineage_head_parse(line, (size_t)len, &h);
                if (k < 0)
                        (*malformed)++;
                if (k <= 0)
                        continue;
                if (*n == alloc) {
                        alloc = alloc ? 2 * alloc : 1024;
                        struct aidp_lineage_head *a = realloc(*ret, alloc * sizeof *a);
                        if (!a) {
                                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                                   "out of memory");
                                break;
                        }
                        *ret = a;
                }
                (*ret)[(*n)++] = h;
        }
        free(line);
        fclose(f);
        return r;
}

static void alarm_syslog(const char *path, const char *witness, const char *reason)
{
        struct aidp_seclog_param p[] = {{"file", path}, {"witness", witness}, {"reason", reason}};
        struct aidp_seclog_msg m = {.severity = LOG_CRIT,
                                    .msgid = "TAMPER",
                                    .params = p,
                                    .nparams = ARRAY_SIZE(p),
                                    .text = "lineage log disagrees with its witness"};
        aidp_seclog_send(NULL, &m);
}

static void report_gaps(const char *path, const char *witness,
                        const struct aidp_lineage_witness_result *r)
{
        if (!r->unseen)
                return;
        printf("%s: note: witness %s has no head for %" PRIu64 " record(s), first %" PRIu64
               "-%" PRIu64 ": it was down or unreachable then (not a sign of tampering; a "
               "rollback within that stretch would not show)\n",
               path, witness, r->unseen, r->gap_from, r->gap_to);
}

int aidp_cli_lineage_witnesses(const char *path, const struct aidp_lineage_verify *v,
                               const struct aidp_cli_list *w, const unsigned char *key, bool quiet)
{
        aidp_error err = {0};
        int status = 0;
        char(*prior)[AIDP_LINEAGE_LOG_ID_HEX + 1] = NULL;
        size_t nprior = 0;
        aidp_cli_lineage_prior_logs(path, key, &prior, &nprior);
        struct aidp_lineage_log_view lv = {.log = v->log,
                                           .n = v->records,
                                           .hashes = (const void *)v->hashes,
                                           .prior = (const void *)prior,
                                           .nprior = nprior};
        for (size_t i = 0; i < w->n && status != AIDP_EXIT_LINEAGE; i++) {
                struct aidp_lineage_head *heads = NULL;
                size_t nh = 0, malformed = 0;
                if (read_heads(w->v[i], &heads, &nh, &malformed, &err) < 0) {
                        status = aidp_cli_fail(PROG, &err);
                        break;
                }
                struct aidp_lineage_witness_result r;
                aidp_lineage_witness_compare(&lv, heads, nh, key, &r);
                free(heads);
                if (aidp_lineage_witness_alarm(r.verdict)) {
                        fprintf(stderr,
                                "%s: TAMPERED (witness %s): %s; first record affected: %" PRIu64
                                "\n",
                                path, w->v[i], r.reason, r.first_affected);
                        alarm_syslog(path, w->v[i], r.reason);
                        status = AIDP_EXIT_FAILED;
                        continue;
                }
                if (quiet)
                        continue;
                printf("%s: witness %s: %s\n", path, w->v[i], r.reason);
                report_gaps(path, w->v[i], &r);
                if (r.forged || malformed)
                        printf("%s: note: witness %s holds %" PRIu64 " head(s) with a wrong MAC "
                               "and %zu malformed line(s), ignored\n",
                               path, w->v[i], r.forged, malformed);
        }
        free(prior);
        return status;
}
