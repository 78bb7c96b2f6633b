/* aidp lineage verify --witness: the log against what its witnesses saw
 * (docs/lineage.md, "Witnesses"). The comparison itself is pure code in
 * supervisor/lineage/codec/lineage_witness.c; this file reads the files. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_lineage.h"
#include "supervisor/lineage/codec/lineage_witness.h"
#include "supervisor/lineage/seclog.h"
#include "supervisor/lineage/witness.h"

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

/* ---- the TPM counter (docs/lineage.md, "TPM counter") -------------------------------- */

struct tpm_src {
        uint32_t index;
        char tcti[512];
};

/* "tpm" (the TPM witness of witnesses.yaml) or "tpm:INDEX[:TCTI]". 1: a TPM
 * source; 0: not one; < 0: bad (err). */
static int tpm_source(const char *w, struct tpm_src *t, aidp_error *err)
{
        if (strcmp(w, "tpm") && strncmp(w, "tpm:", 4))
                return 0;
        if (!strcmp(w, "tpm")) {
                struct aidp_witness_set s;
                if (aidp_witness_load(NULL, &s, err) < 0)
                        return -1;
                const struct aidp_witness *tw = aidp_witness_tpm(&s);
                if (tw) {
                        t->index = tw->nv_index;
                        snprintf(t->tcti, sizeof t->tcti, "%s", tw->tcti);
                }
                aidp_witness_set_free(&s);
                return tw ? 1
                          : aidp_error_set(err, AIDP_EXIT_USAGE, ENOENT,
                                           "--witness tpm: the witness configuration names no "
                                           "tpm witness (give tpm:INDEX[:TCTI])");
        }
        char *end;
        errno = 0;
        unsigned long ix = strtoul(w + 4, &end, 0);
        if (errno || (*end && *end != ':') || (ix >> 24) != 0x01)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--witness %s: expected tpm:INDEX[:TCTI] with an NV index "
                                      "0x01000000-0x01ffffff",
                                      w);
        t->index = (uint32_t)ix;
        snprintf(t->tcti, sizeof t->tcti, "%s", *end ? end + 1 : AIDP_WITNESS_TPM_DEFAULT_TCTI);
        return 1;
}

/* The last record of the (verified) log that binds the counter `index`: read
 * backwards, so only the log's end is parsed. */
static int last_binding(const char *path, uint32_t index, uint64_t *seq, uint64_t *counter,
                        aidp_error *err)
{
        *seq = *counter = 0;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0 || fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "lineage %s", path);
        if (st.st_size == 0)
                return 0;
        const char *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
                return aidp_error_errno(err, AIDP_EXIT_LINEAGE, errno, "reading %s", path);
        static const char mark[] = AIDP_LINEAGE_TPM_MARK;
        size_t end = (size_t)st.st_size;
        while (end > 0 && !*seq) {
                size_t e = end - (m[end - 1] == '\n'), b = e;
                while (b > 0 && m[b - 1] != '\n')
                        b--;
                struct aidp_lineage_record rec;
                json_object *ev = NULL;
                aidp_error perr = {0};
                uint32_t ix = 0;
                uint64_t c = 0;
                if (memmem(m + b, e - b, mark, sizeof mark - 1) &&
                    aidp_lineage_record_parse(m + b, e - b, NULL, &rec, &ev, &perr) == 0 &&
                    aidp_lineage_tpm_binding_of(ev, &ix, &c) == 1 && ix == index) {
                        *seq = rec.seq;
                        *counter = c;
                }
                json_object_put(ev);
                end = b;
        }
        munmap((void *)m, (size_t)st.st_size);
        return 0;
}

static int compare_tpm(const char *path, const struct aidp_lineage_verify *v,
                       const struct tpm_src *t, struct aidp_lineage_witness_result *r,
                       aidp_error *err)
{
        uint64_t seq = 0, bound = 0, value = 0;
        if (last_binding(path, t->index, &seq, &bound, err) < 0)
                return -1;
        char why[200] = "";
        int k = aidp_tpm_counter_read(t->tcti, t->index, 5000, &value, why, sizeof why);
        if (k < 0 && k != -ENODATA)
                return aidp_error_set(err, AIDP_EXIT_LINEAGE, -k,
                                      "reading the TPM counter 0x%08" PRIx32 " (%s): %s", t->index,
                                      t->tcti, why);
        aidp_lineage_tpm_compare(v->records, seq, bound, k == 0, value, r);
        return 0;
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
                struct aidp_lineage_witness_result r;
                struct tpm_src tpm;
                int k = tpm_source(w->v[i], &tpm, &err);
                if (k < 0 || (k > 0 && compare_tpm(path, v, &tpm, &r, &err) < 0) ||
                    (k == 0 && read_heads(w->v[i], &heads, &nh, &malformed, &err) < 0)) {
                        status = aidp_cli_fail(PROG, &err);
                        break;
                }
                if (k == 0)
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
