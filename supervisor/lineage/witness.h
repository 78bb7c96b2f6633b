#pragma once
/* Publishing chain heads to witnesses (docs/lineage.md, "Witnesses"): the
 * admin's /etc/aidp/witnesses.yaml, and one bounded publish per durable record. */
#include "common/error.h"
#include "supervisor/lineage/codec/lineage_witness.h"

#define AIDP_WITNESS_DEFAULT_CONFIG "/etc/aidp/witnesses.yaml"
#define AIDP_WITNESS_ENV_CONFIG     "AIDP_WITNESS_CONFIG"
#define AIDP_WITNESS_TIMEOUT_MS     200 /* default bound on one publish */

enum aidp_witness_kind { AIDP_WITNESS_SYSLOG, AIDP_WITNESS_FILE };

struct aidp_witness {
        enum aidp_witness_kind kind;
        char *target; /* the syslog socket or the witness file */
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

/* Send h to every witness, waiting at most s->timeout_ms in all. A witness that
 * fails or is late is reported on stderr and remembered in s->missed. */
void aidp_witness_publish(struct aidp_witness_set *s, const struct aidp_lineage_head *h);
