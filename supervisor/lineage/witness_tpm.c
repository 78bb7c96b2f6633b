/* The TPM 2.0 NV counter witness (docs/lineage.md, "TPM counter").
 *
 * Each record binds the value the counter will have once the record is durable
 * (read + 1, in its aidp_tpm facet, under the record's MAC); after the commit
 * the counter is incremented. The counter lives in the TPM, which root cannot
 * wind back: a log and anchor restored from an older copy end with a binding
 * below the counter, which `aidp lineage verify --witness tpm:INDEX` names
 * without any network. All of it under the log's lock, so appends of
 * concurrent runs take turns.
 *
 * The TSS (tpm2-tss: libtss2-esys, libtss2-tctildr) is loaded with dlopen only
 * when a TPM witness is configured: linking it would cost every run its shared
 * libraries (and a second libcrypto) at exec time. Each operation runs on its
 * own detached thread with a fresh ESYS context, so a hung TPM costs the run
 * at most the timeout and the late thread cleans up after itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "supervisor/lineage/witness.h"

#define TPM2_RC_NV_UNINIT 0x14a /* TPM2_RC_NV_UNINITIALIZED, format zero */

struct tss {
        TSS2_RC (*ldr_init)(const char *, TSS2_TCTI_CONTEXT **);
        void (*ldr_fini)(TSS2_TCTI_CONTEXT **);
        TSS2_RC (*init)(ESYS_CONTEXT **, TSS2_TCTI_CONTEXT *, TSS2_ABI_VERSION *);
        void (*fini)(ESYS_CONTEXT **);
        TSS2_RC (*from_public)(ESYS_CONTEXT *, TPM2_HANDLE, ESYS_TR, ESYS_TR, ESYS_TR, ESYS_TR *);
        TSS2_RC (*increment)(ESYS_CONTEXT *, ESYS_TR, ESYS_TR, ESYS_TR, ESYS_TR, ESYS_TR);
        TSS2_RC(*read)
        (ESYS_CONTEXT *, ESYS_TR, ESYS_TR, ESYS_TR, ESYS_TR, ESYS_TR, UINT16, UINT16,
         TPM2B_MAX_NV_BUFFER **);
        void (*free)(void *);
        bool ok;
        char why[160];
};

static struct tss tss;
static pthread_once_t tss_once = PTHREAD_ONCE_INIT;

/* The libraries by their sonames, from the system's library path only. */
static void tss_load(void)
{
        void *e = dlopen("libtss2-esys.so.0", RTLD_NOW | RTLD_LOCAL);
        void *l = dlopen("libtss2-tctildr.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!e || !l) {
                snprintf(tss.why, sizeof tss.why,
                         "no TPM software stack (%s); install libtss2-esys", dlerror());
                return;
        }
        *(void **)&tss.ldr_init = dlsym(l, "Tss2_TctiLdr_Initialize");
        *(void **)&tss.ldr_fini = dlsym(l, "Tss2_TctiLdr_Finalize");
        *(void **)&tss.init = dlsym(e, "Esys_Initialize");
        *(void **)&tss.fini = dlsym(e, "Esys_Finalize");
        *(void **)&tss.from_public = dlsym(e, "Esys_TR_FromTPMPublic");
        *(void **)&tss.increment = dlsym(e, "Esys_NV_Increment");
        *(void **)&tss.read = dlsym(e, "Esys_NV_Read");
        *(void **)&tss.free = dlsym(e, "Esys_Free");
        tss.ok = tss.ldr_init && tss.ldr_fini && tss.init && tss.fini && tss.from_public &&
                 tss.increment && tss.read && tss.free;
        if (!tss.ok)
                snprintf(tss.why, sizeof tss.why, "the TPM software stack lacks a function");
}

enum tpm_op { TPM_READ, TPM_INCREMENT };

struct tpm_job {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int refs; /* the caller and the thread */
        bool done;
        enum tpm_op op;
        char tcti[512];
        uint32_t index;
        uint64_t value;
        int result;
        char why[160];
};

static void job_unref(struct tpm_job *j)
{
        pthread_mutex_lock(&j->mu);
        bool last = --j->refs == 0;
        pthread_mutex_unlock(&j->mu);
        if (!last)
                return;
        pthread_cond_destroy(&j->cv);
        pthread_mutex_destroy(&j->mu);
        free(j);
}

static int tss_fail(struct tpm_job *j, const char *what, TSS2_RC rc)
{
        snprintf(j->why, sizeof j->why, "TPM %s: TSS2 error 0x%" PRIx32, what, (uint32_t)rc);
        return -EIO;
}

/* The operation itself, with a context of its own. The NV index's own auth
 * (empty) authorises both: it is defined with authread|authwrite. */
static int tpm_do(struct tpm_job *j)
{
        TSS2_TCTI_CONTEXT *tcti = NULL;
        ESYS_CONTEXT *ctx = NULL;
        ESYS_TR nv = ESYS_TR_NONE;
        TSS2_RC rc = tss.ldr_init(j->tcti, &tcti);
        int r = 0;
        if (rc != TSS2_RC_SUCCESS)
                return tss_fail(j, "connection", rc);
        if ((rc = tss.init(&ctx, tcti, NULL)) != TSS2_RC_SUCCESS) {
                r = tss_fail(j, "context", rc);
                goto out;
        }
        rc = tss.from_public(ctx, j->index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
        if (rc != TSS2_RC_SUCCESS) {
                r = tss_fail(j, "NV index lookup", rc);
                goto out;
        }
        if (j->op == TPM_INCREMENT) {
                rc = tss.increment(ctx, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
                if (rc != TSS2_RC_SUCCESS)
                        r = tss_fail(j, "NV increment", rc);
                goto out;
        }
        TPM2B_MAX_NV_BUFFER *data = NULL;
        rc = tss.read(ctx, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &data);
        if ((rc & ~TSS2_RC_LAYER_MASK) == TPM2_RC_NV_UNINIT) {
                r = -ENODATA;
        } else if (rc != TSS2_RC_SUCCESS || !data || data->size != 8) {
                r = tss_fail(j, "NV read", rc);
        } else {
                j->value = 0;
                for (int i = 0; i < 8; i++) /* big-endian */
                        j->value = j->value << 8 | data->buffer[i];
        }
        tss.free(data);
out:
        if (ctx)
                tss.fini(&ctx);
        tss.ldr_fini(&tcti);
        return r;
}

static void *tpm_thread(void *arg)
{
        struct tpm_job *j = arg;
        int r = tpm_do(j);
        pthread_mutex_lock(&j->mu);
        j->result = r;
        j->done = true;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
        job_unref(j);
        return NULL;
}

static void deadline_in(struct timespec *t, unsigned ms)
{
        clock_gettime(CLOCK_MONOTONIC, t);
        t->tv_sec += ms / 1000;
        t->tv_nsec += (long)(ms % 1000) * 1000000L;
        if (t->tv_nsec >= 1000000000L) {
                t->tv_sec++;
                t->tv_nsec -= 1000000000L;
        }
}

static int tpm_run(enum tpm_op op, const char *tcti, uint32_t index, unsigned timeout_ms,
                   uint64_t *value, char *why, size_t whylen)
{
        pthread_once(&tss_once, tss_load);
        if (!tss.ok) {
                snprintf(why, whylen, "%s", tss.why);
                return -ENOSYS;
        }
        struct tpm_job *j = calloc(1, sizeof *j);
        if (!j || strlen(tcti) >= sizeof j->tcti) {
                free(j);
                snprintf(why, whylen, "out of memory or TCTI too long");
                return -ENOMEM;
        }
        *j = (struct tpm_job){.refs = 2, .op = op, .index = index, .result = -EIO};
        memcpy(j->tcti, tcti, strlen(tcti) + 1);
        pthread_mutex_init(&j->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->cv, &ca);
        pthread_condattr_destroy(&ca);
        struct timespec deadline;
        deadline_in(&deadline, timeout_ms);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* Signals stay with the caller's threads. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t t;
        bool started = pthread_create(&t, &attr, tpm_thread, j) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (!started) {
                j->refs = 1;
                job_unref(j);
                snprintf(why, whylen, "cannot start a thread");
                return -EAGAIN;
        }
        pthread_mutex_lock(&j->mu);
        while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &deadline) != ETIMEDOUT)
                ;
        int r = j->done ? j->result : -ETIMEDOUT;
        if (j->done && value)
                *value = j->value;
        if (!j->done)
                snprintf(why, whylen, "no answer within %u ms", timeout_ms);
        else if (r < 0)
                snprintf(why, whylen, "%s", j->why);
        pthread_mutex_unlock(&j->mu);
        job_unref(j);
        return r;
}

int aidp_tpm_counter_read(const char *tcti, uint32_t index, unsigned timeout_ms, uint64_t *value,
                          char *why, size_t whylen)
{
        return tpm_run(TPM_READ, tcti, index, timeout_ms, value, why, whylen);
}

int aidp_tpm_counter_increment(const char *tcti, uint32_t index, unsigned timeout_ms, char *why,
                               size_t whylen)
{
        return tpm_run(TPM_INCREMENT, tcti, index, timeout_ms, NULL, why, whylen);
}

const struct aidp_witness *aidp_witness_tpm(const struct aidp_witness_set *s)
{
        for (size_t i = 0; s && i < s->n; i++)
                if (s->w[i].kind == AIDP_WITNESS_TPM)
                        return &s->w[i];
        return NULL;
}

void aidp_witness_tpm_bind(struct aidp_witness_set *s, uint64_t seq, uint64_t *bound)
{
        *bound = 0;
        const struct aidp_witness *w = aidp_witness_tpm(s);
        if (!w)
                return;
        char why[200] = "";
        uint64_t v = 0;
        int r = aidp_tpm_counter_read(w->tcti, w->nv_index, s->timeout_ms, &v, why, sizeof why);
        /* A counter never incremented cannot be read: its first increment sets it
         * (to the highest count the TPM ever had), then it is read again. */
        if (r == -ENODATA && (r = aidp_tpm_counter_increment(w->tcti, w->nv_index, s->timeout_ms,
                                                             why, sizeof why)) == 0)
                r = aidp_tpm_counter_read(w->tcti, w->nv_index, s->timeout_ms, &v, why, sizeof why);
        if (r < 0 || v == UINT64_MAX) {
                aidp_witness_missed(s, w, seq, r < 0 ? why : "counter exhausted");
                return;
        }
        *bound = v + 1;
}

void aidp_witness_tpm_commit(struct aidp_witness_set *s, uint64_t seq, uint64_t bound)
{
        const struct aidp_witness *w = aidp_witness_tpm(s);
        if (!w || !bound)
                return;
        char why[200] = "";
        if (aidp_tpm_counter_increment(w->tcti, w->nv_index, s->timeout_ms, why, sizeof why) < 0)
                aidp_witness_missed(s, w, seq, why);
}
