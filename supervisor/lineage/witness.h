#pragma once
/* Publishing chain heads to witnesses (docs/lineage.md, "Witnesses"): the
 * admin's /etc/aidp/witnesses.yaml, and one bounded publish per durable record. */
#include "common/error.h"
#include "supervisor/lineage/codec/lineage_witness.h"

#define AIDP_WITNESS_DEFAULT_CONFIG "/etc/aidp/witnesses.yaml"
#define AIDP_WITNESS_ENV_CONFIG     "AIDP_WITNESS_CONFIG"
#define AIDP_WITNESS_TIMEOUT_MS     200 /* default bound on one publish */

enum aidp_witness_kind { AIDP_WITNESS_SYSLOG, AIDP_WITNESS_FILE, AIDP_WITNESS_TPM };

#define AIDP_WITNESS_TPM_DEFAULT_TCTI "device:/dev/tpmrm0"

struct aidp_witness {
        enum aidp_witness_kind kind;
        char *target;      /* the syslog socket, the witness file, or "tpm 0x<index>" */
        char *tcti;        /* tpm: the TCTI configuration (tss2 "name:conf") */
        uint32_t nv_index; /* tpm: the NV counter's index */
};

struct aidp_witness_set {
        struct aidp_witness *w;
        size_t n;
        unsigned timeout_ms;
        char *source; /* the config file */
        /* heads that some witness did not take, for the next record's facet */
        char missed[8][160];
        size_t nmissed;
};

/* Parse a witnesses.yaml document (pure). */
int aidp_witness_parse(const char *file, const char *buf, size_t len, struct aidp_witness_set *ret,
                       aidp_error *err);
/* Load path (NULL: $AIDP_WITNESS_CONFIG, else the default). A missing file is an
 * empty set; a file that is not root-owned or is group/other-writable, or does not
 * parse, is an error (AIDP_EXIT_CONFIG). */
int aidp_witness_load(const char *path, struct aidp_witness_set *ret, aidp_error *err);
void aidp_witness_set_free(struct aidp_witness_set *s);

/* The set's TPM witness (docs/lineage.md, "TPM counter"), or NULL. */
const struct aidp_witness *aidp_witness_tpm(const struct aidp_witness_set *s);
/* Under the log's lock, before record `seq` is written: read the TPM counter
 * (initialising it on first use) and return the value the record binds,
 * counter + 1, in *bound. A TPM that fails or is late (s->timeout_ms) is a
 * missed head (0 in *bound, no binding). */
void aidp_witness_tpm_bind(struct aidp_witness_set *s, uint64_t seq, uint64_t *bound);
/* After record `seq` (which bound `bound`) is durable: increment the counter,
 * bounded the same way; a miss is recorded. */
void aidp_witness_tpm_commit(struct aidp_witness_set *s, uint64_t seq, uint64_t bound);

/* The TPM operations themselves, bounded by timeout_ms (the TSS runs on its own
 * thread: a hung TPM costs at most that). 0, -ENODATA (read: the counter was
 * never incremented), -ETIMEDOUT, -ENOSYS (no TSS library), -EIO; why says more. */
int aidp_tpm_counter_read(const char *tcti, uint32_t index, unsigned timeout_ms, uint64_t *value,
                          char *why, size_t whylen);
int aidp_tpm_counter_increment(const char *tcti, uint32_t index, unsigned timeout_ms, char *why,
                               size_t whylen);

/* Report on stderr that witness w did not take record seq, and remember it for
 * the next record's aidp_witness facet. */
void aidp_witness_missed(struct aidp_witness_set *s, const struct aidp_witness *w, uint64_t seq,
                         const char *why);

/* Send h to every witness, waiting at most s->timeout_ms in all. A witness that
 * fails or is late is reported on stderr and remembered in s->missed. */
void aidp_witness_publish(struct aidp_witness_set *s, const struct aidp_lineage_head *h);
