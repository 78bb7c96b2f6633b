/* Witnesses: witness.h. The config is read with the shared YAML walker; a
 * publish runs each file witness on its own thread so that a hung share (an
 * NFS mount gone away) costs the run at most the timeout, never its end. */
#define _GNU_SOURCE
#include "supervisor/lineage/witness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "common/yaml.h"
#include "supervisor/lineage/seclog.h"

void aidp_witness_set_free(struct aidp_witness_set *s)
{
        for (size_t i = 0; i < s->n; i++) {
                free(s->w[i].target);
                free(s->w[i].tcti);
        }
        free(s->w);
        free(s->source);
        memset(s, 0, sizeof *s);
}

static int add_witness(struct aidp_yaml *y, struct aidp_witness_set *s, struct aidp_witness w)
{
        struct aidp_witness *a = realloc(s->w, (s->n + 1) * sizeof *a);
        if (!a) {
                free(w.target);
                free(w.tcti);
                return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        s->w = a;
        s->w[s->n++] = w;
        return 0;
}

/* tpm: {nvIndex: 0x1500016, tcti: "swtpm:path=/run/swtpm.sock"} */
static int wf_tpm(struct aidp_yaml *y, yaml_node_t *v, const char *path, struct aidp_witness_set *s)
{
        static const char *const keys[] = {"nvIndex", "tcti", NULL};
        char p[256];
        aidp_yaml_path_key(p, path, "tpm");
        int r = aidp_yaml_expect(y, v, YAML_MAPPING_NODE, p,
                                 "a mapping {nvIndex: 0x01XXXXXX, tcti: NAME:CONF}", y->err);
        if (r < 0 || (r = aidp_yaml_check_keys(y, v, p, keys, y->err)) < 0)
                return r;
        yaml_node_t *ix = aidp_yaml_get(y, v, "nvIndex", NULL),
                    *tc = aidp_yaml_get(y, v, "tcti", NULL);
        if (!ix)
                return aidp_yaml_fail(y, v, p, "nvIndex is required");
        const char *t;
        if ((r = aidp_yaml_string(y, ix, p, &t)) < 0)
                return r;
        char *end;
        errno = 0;
        unsigned long idx = strtoul(t, &end, 0);
        /* TPM2_HT_NV_INDEX: the handle's top byte is 0x01. */
        if (errno || *end || (idx >> 24) != 0x01)
                return aidp_yaml_fail(
                        y, ix, p, "nvIndex: found '%s', expected an NV index 0x01000000-0x01ffffff",
                        t);
        if (aidp_witness_tpm(s))
                return aidp_yaml_fail(y, v, p, "only one tpm witness");
        struct aidp_witness w = {.kind = AIDP_WITNESS_TPM, .nv_index = (uint32_t)idx};
        if (tc && (r = aidp_yaml_strdup(y, tc, p, &w.tcti)) < 0)
                return r;
        if (!w.tcti)
                w.tcti = strdup(AIDP_WITNESS_TPM_DEFAULT_TCTI);
        if (!w.tcti || asprintf(&w.target, "tpm 0x%08x", w.nv_index) < 0) {
                free(w.tcti);
                return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        return add_witness(y, s, w);
}

static int wf_item(struct aidp_yaml *y, yaml_node_t *item, const char *path, size_t i, void *ctx)
{
        (void)i;
        struct aidp_witness_set *s = ctx;
        static const char *const keys[] = {"syslog", "file", "tpm", NULL};
        int r = aidp_yaml_expect(y, item, YAML_MAPPING_NODE, path,
                                 "a mapping {syslog: SOCKET}, {file: PATH} or {tpm: {...}}",
                                 y->err);
        if (r < 0 || (r = aidp_yaml_check_keys(y, item, path, keys, y->err)) < 0)
                return r;
        size_t nkeys = (size_t)(item->data.mapping.pairs.top - item->data.mapping.pairs.start);
        if (nkeys != 1)
                return aidp_yaml_fail(y, item, path, "expected exactly one of syslog, file or tpm");
        yaml_node_t *v = aidp_yaml_get(y, item, "tpm", NULL);
        if (v)
                return wf_tpm(y, v, path, s);
        v = aidp_yaml_get(y, item, "syslog", NULL);
        enum aidp_witness_kind kind = v ? AIDP_WITNESS_SYSLOG : AIDP_WITNESS_FILE;
        if (!v)
                v = aidp_yaml_get(y, item, "file", NULL);
        char *target = NULL;
        if ((r = aidp_yaml_strdup(y, v, path, &target)) < 0)
                return r;
        if (target[0] != '/') {
                free(target);
                return aidp_yaml_fail(y, v, path, "expected an absolute path");
        }
        return add_witness(y, s, (struct aidp_witness){.kind = kind, .target = target});
}

static int wf_witnesses(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        return aidp_yaml_seq(y, v, path, wf_item, ctx);
}

static int wf_timeout(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_witness_set *s = ctx;
        const char *t;
        int r = aidp_yaml_string(y, v, path, &t);
        if (r < 0)
                return r;
        char *end;
        errno = 0;
        long ms = strtol(t, &end, 10);
        if (errno || *end || ms < 1 || ms > 5000)
                return aidp_yaml_fail(y, v, path,
                                      "found '%s', expected milliseconds from 1 to 5000", t);
        s->timeout_ms = (unsigned)ms;
        return 0;
}

static int wf_const(struct aidp_yaml *y, yaml_node_t *v, const char *path, const char *want)
{
        const char *t;
        int r = aidp_yaml_string(y, v, path, &t);
        if (r < 0)
                return r;
        return strcmp(t, want) ? aidp_yaml_fail(y, v, path, "found '%s', expected %s", t, want) : 0;
}
static int wf_api(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        (void)ctx;
        return wf_const(y, v, path, "aidp/v1");
}
static int wf_kind(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        (void)ctx;
        return wf_const(y, v, path, "Witnesses");
}

int aidp_witness_parse(const char *file, const char *buf, size_t len, struct aidp_witness_set *ret,
                       aidp_error *err)
{
        static const struct aidp_yaml_field fields[] = {
                {"apiVersion", wf_api, true},
                {"kind", wf_kind, true},
                {"timeoutMs", wf_timeout, false},
                {"witnesses", wf_witnesses, true},
        };
        struct aidp_yaml y = {0};
        struct aidp_witness_set s = {.timeout_ms = AIDP_WITNESS_TIMEOUT_MS};
        int r = aidp_yaml_load(&y, file, "witness configuration", buf, len, 0, err);
        if (r >= 0)
                r = aidp_yaml_fields(&y, aidp_yaml_root(&y), "", fields, ARRAY_SIZE(fields), &s);
        if (r >= 0 && !(s.source = strdup(file)))
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        aidp_yaml_free(&y);
        if (r < 0) {
                if (err->status != AIDP_EXIT_INTERNAL)
                        err->status = AIDP_EXIT_CONFIG;
                aidp_witness_set_free(&s);
                return r;
        }
        *ret = s;
        return 0;
}

int aidp_witness_load(const char *path, struct aidp_witness_set *ret, aidp_error *err)
{
        if (!path)
                path = getenv(AIDP_WITNESS_ENV_CONFIG);
        if (!path || !*path)
                path = AIDP_WITNESS_DEFAULT_CONFIG;
        memset(ret, 0, sizeof *ret);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "witness configuration %s",
                                        path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "%s", path);
        /* Whoever may write this file may switch the witnesses off. */
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EPERM,
                                      "witness configuration %s must be a regular file owned by "
                                      "root and not writable by group or others",
                                      path);
        if (st.st_size > 65536)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG, "%s is too large", path);
        _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        ssize_t n = aidp_read_all(fd, buf, (size_t)st.st_size);
        if (n < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, (int)-n, "reading %s", path);
        return aidp_witness_parse(path, buf, (size_t)n, ret, err);
}

/* ---- publishing ----------------------------------------------------------------- */

struct file_job {
        struct publish *pub;
        const char *path; /* in pub */
        int result;
        bool done;
};

struct publish {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int refs;    /* the publisher and each running thread */
        size_t left; /* file jobs not done */
        char line[256];
        size_t len;
        size_t njobs;
        char **paths;
        struct file_job jobs[];
};

static void publish_unref(struct publish *p)
{
        pthread_mutex_lock(&p->mu);
        bool last = --p->refs == 0;
        pthread_mutex_unlock(&p->mu);
        if (!last)
                return;
        for (size_t i = 0; i < p->njobs; i++)
                free(p->paths[i]);
        free(p->paths);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
}

/* One line appended with O_APPEND and made durable. No stdio, no locks but the
 * publish's own: the run may clone while a late write still hangs here. */
static void *file_thread(void *arg)
{
        struct file_job *j = arg;
        struct publish *p = j->pub;
        int r = 0;
        int fd = open(j->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                      0640);
        if (fd < 0)
                r = -errno;
        else {
                ssize_t n = write(fd, p->line, p->len);
                if (n != (ssize_t)p->len)
                        r = n < 0 ? -errno : -EIO;
                else if (fdatasync(fd) < 0)
                        r = -errno;
                close(fd);
        }
        pthread_mutex_lock(&p->mu);
        j->result = r;
        j->done = true;
        p->left--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        publish_unref(p);
        return NULL;
}

void aidp_witness_missed(struct aidp_witness_set *s, const struct aidp_witness *w, uint64_t seq,
                         const char *why)
{
        fprintf(stderr,
                "aidp: warning: lineage witness %s did not take record %" PRIu64
                " (%s); `aidp lineage verify --witness` will show the gap\n",
                w->target, seq, why);
        if (s->nmissed < ARRAY_SIZE(s->missed))
                snprintf(s->missed[s->nmissed++], sizeof s->missed[0], "%s %" PRIu64 ": %s",
                         w->target, seq, why);
}

static void publish_syslog(struct aidp_witness_set *s, const struct aidp_witness *w,
                           const struct aidp_lineage_head *h)
{
        char seq[24];
        snprintf(seq, sizeof seq, "%" PRIu64, h->seq);
        struct aidp_seclog_param params[] = {
                {"log", h->log}, {"seq", seq}, {"hash", h->hash}, {"mac", h->mac}};
        struct aidp_seclog_msg m = {
                .severity = LOG_NOTICE,
                .msgid = AIDP_LINEAGE_HEAD_MSGID,
                .params = params,
                .nparams = ARRAY_SIZE(params),
                .text = "lineage chain head",
        };
        int r = aidp_seclog_send(w->target, &m);
        if (r < 0)
                aidp_witness_missed(s, w, h->seq, strerror(-r));
}

static struct publish *publish_new(const struct aidp_witness_set *s,
                                   const struct aidp_lineage_head *h, size_t nfiles)
{
        struct publish *p = calloc(1, sizeof *p + nfiles * sizeof p->jobs[0]);
        if (!p)
                return NULL;
        int n = aidp_lineage_head_json(h, p->line, sizeof p->line);
        if (n < 0 || !(p->paths = calloc(nfiles ? nfiles : 1, sizeof *p->paths))) {
                free(p);
                return NULL;
        }
        p->len = (size_t)n;
        pthread_mutex_init(&p->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->cv, &ca);
        pthread_condattr_destroy(&ca);
        p->refs = 1;
        for (size_t i = 0; i < s->n; i++)
                if (s->w[i].kind == AIDP_WITNESS_FILE)
                        p->paths[p->njobs++] = strdup(s->w[i].target);
        return p;
}

void aidp_witness_publish(struct aidp_witness_set *s, const struct aidp_lineage_head *h)
{
        if (!s || s->n == 0)
                return;
        size_t nfiles = 0;
        for (size_t i = 0; i < s->n; i++)
                nfiles += s->w[i].kind == AIDP_WITNESS_FILE;
        struct publish *p = publish_new(s, h, nfiles);
        if (!p) {
                for (size_t i = 0; i < s->n; i++)
                        aidp_witness_missed(s, &s->w[i], h->seq, "out of memory");
                return;
        }
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += s->timeout_ms / 1000;
        deadline.tv_nsec += (long)(s->timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
        }
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (size_t i = 0; i < p->njobs; i++) {
                p->jobs[i] = (struct file_job){.pub = p, .path = p->paths[i], .result = -ENOMEM};
                pthread_t t;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                pthread_attr_setstacksize(&attr, 128 * 1024);
                pthread_mutex_lock(&p->mu);
                p->refs++;
                p->left++;
                pthread_mutex_unlock(&p->mu);
                if (pthread_create(&t, &attr, file_thread, &p->jobs[i]) != 0) {
                        pthread_mutex_lock(&p->mu);
                        p->refs--;
                        p->left--;
                        p->jobs[i].done = true;
                        pthread_mutex_unlock(&p->mu);
                }
                pthread_attr_destroy(&attr);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        /* Syslog is one non-blocking datagram: done while the files are written. */
        for (size_t i = 0; i < s->n; i++)
                if (s->w[i].kind == AIDP_WITNESS_SYSLOG)
                        publish_syslog(s, &s->w[i], h);
        pthread_mutex_lock(&p->mu);
        while (p->left > 0 && pthread_cond_timedwait(&p->cv, &p->mu, &deadline) != ETIMEDOUT)
                ;
        int results[64];
        bool done[64];
        size_t nj = p->njobs < 64 ? p->njobs : 64;
        for (size_t i = 0; i < nj; i++) {
                results[i] = p->jobs[i].result;
                done[i] = p->jobs[i].done;
        }
        pthread_mutex_unlock(&p->mu);
        size_t j = 0;
        for (size_t i = 0; i < s->n && j < nj; i++) {
                if (s->w[i].kind != AIDP_WITNESS_FILE)
                        continue;
                if (!done[j]) {
                        char why[64];
                        snprintf(why, sizeof why, "no answer within %u ms", s->timeout_ms);
                        aidp_witness_missed(s, &s->w[i], h->seq, why);
                } else if (results[j] < 0) {
                        aidp_witness_missed(s, &s->w[i], h->seq, strerror(-results[j]));
                }
                j++;
        }
        publish_unref(p);
}
