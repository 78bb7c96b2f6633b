#pragma once
/* The access and residency decision: every input in, allow/deny and an
 * ordered trail of reasons out. Pure: the caller resolves identity, reads the
 * files and the clock, looks up time zone offsets, and authenticates the
 * dataset headers; this code only decides.
 *
 * Order of the trail: caller and roles, explicit denies, role grants per
 * dataset, then per dataset residency, regulation and classification rules,
 * then the mix of inputs, then the egress allowlist. The run is allowed iff no
 * reason has result FAIL. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "residency/policy.h"
#include "residency/tags.h"

struct json_object;

struct aidp_caller {
        const char *user; /* NULL when the uid has no name: denied */
        int64_t uid;      /* -1 when unknown; informational */
        const char *const *groups;
        size_t n_groups;
        /* Trusted attributes from the caller of the API (e.g. a scheduler
         * plugin); they override the access policy's users.NAME.attributes. */
        const struct aidp_attr *attributes;
        size_t n_attributes;
};

/* A zone's offset from UTC at the decision instant (seconds east). */
struct aidp_zone_offset {
        const char *zone;
        long utc_offset;
};

struct aidp_residency_time {
        int64_t epoch; /* seconds since 1970-01-01T00:00:00Z */
        /* Every zone of aidp_residency_access_time_zones() resolved for epoch;
         * a missing zone fails its window (UTC needs no entry). */
        const struct aidp_zone_offset *zones;
        size_t n_zones;
};

/* One egress rule of the profile, as the policy sees it (the caller converts
 * the profile model's rules; the strings are borrowed). */
struct aidp_residency_egress {
        const char *cidr;            /* "10.0.0.0/8"; NULL if fqdn */
        const char *fqdn;            /* NULL if cidr */
        const char *region;          /* region tag of the destination; may be NULL */
        uint16_t port_min, port_max; /* 0,0 = any port */
        int protocol;                /* IPPROTO_TCP, IPPROTO_UDP, 0 = both */
};

/* The profile properties the policy looks at. */
struct aidp_residency_profile {
        const char *name;
        enum aidp_residency_net network;
        const struct aidp_residency_egress *egress;
        size_t n_egress;
        /* Host paths the run binds writable (--bind, a profile's writable
         * binds): data written there leaves the shredded tmpfs. */
        const char *const *writable_binds;
        size_t n_writable_binds;
};

struct aidp_decision_request {
        struct aidp_caller caller;
        enum aidp_residency_op op;
        const struct aidp_residency_profile *profile; /* NULL for seal/unseal/inspect/... */
        const struct aidp_dataset_facts *datasets;    /* authenticated header facts */
        size_t n_datasets;
        const struct aidp_host_identity *host;         /* NULL: none installed */
        const struct aidp_residency_policy *residency; /* NULL: none installed */
        const struct aidp_access_policy *access;       /* NULL: none installed -> deny */
        struct aidp_residency_time time;
};

enum aidp_reason_result {
        AIDP_REASON_PASS, /* a rule was checked and holds */
        AIDP_REASON_FAIL, /* a rule was checked and fails: the run is denied */
        AIDP_REASON_INFO, /* context, or an egress rule dropped */
        AIDP_REASON_RESULT_MAX
};

enum aidp_reason_check {
        AIDP_CHECK_ACCESS,         /* caller, roles, grants */
        AIDP_CHECK_DENY,           /* explicit deny rules */
        AIDP_CHECK_RESIDENCY,      /* residency tag vs host region/jurisdiction */
        AIDP_CHECK_REGULATION,     /* regulation tag vs host zones */
        AIDP_CHECK_CLASSIFICATION, /* classification vs host zones / profile */
        AIDP_CHECK_MIX,            /* do the inputs' residency sets intersect */
        AIDP_CHECK_EGRESS,         /* egress allowlist restricted to allowed regions */
        AIDP_CHECK_MAX
};

struct aidp_reason {
        enum aidp_reason_result result;
        enum aidp_reason_check check;
        char *rule;      /* "roles.trainer", "deny.freeze", "residency.eu", "default" */
        char *source;    /* "access.yaml:12"; NULL when not from a file */
        char *dataset;   /* NULL when not about one dataset */
        char *attribute; /* "operation", "region", "clearance", ...; may be NULL */
        char *message;   /* one human sentence */
};

/* One held role that grants a dataset, and its view (issue 18). */
struct aidp_view_grant {
        char *role;   /* "researcher" */
        char *view;   /* its view's name; NULL: the role has none (labelled columns dropped) */
        char *source; /* where the view is defined ("access.yaml:12"); NULL without one */
};

/* What the caller may see of one dataset's columns: the views of every held
 * role that grants the dataset (docs/policy.md, "Views"). */
struct aidp_dataset_views {
        /* The views of the granting roles that have one, in the access
         * policy's role order, for aidp_view_resolve(views, n_views, ...):
         * per column the least restrictive of them wins. A granting role
         * without a view adds nothing (it would drop every labelled column,
         * which no view is more restrictive than); n_views == 0 (no view, or
         * no role grants) drops every labelled column. Borrowed from the
         * request's access policy: valid while that policy lives. */
        const struct aidp_view **views;
        size_t n_views;
        /* Every granting role, with or without a view (for the trail). */
        struct aidp_view_grant *grants;
        size_t n_grants;
};

struct aidp_decision {
        bool allow;
        /* false: no policy file is installed, so nothing was decided (a run
         * without sealed data, or root's own run, goes on; the trail says so) */
        bool decided;
        /* access.yaml says enforcement: audit: the verdict is recorded and
         * reported, but callers do not enforce it (docs/policy.md) */
        bool audit;
        /* The instant (epoch) the time windows that grant this request close:
         * a run must end then (docs/policy.md, "Time windows"). 0: no window
         * limits it. until_rule names the role whose window closes first. */
        int64_t until;
        char *until_rule;
        /* A summary of the request, so the decision stands alone in lineage. */
        enum aidp_residency_op op;
        char *user;
        int64_t uid;
        char **groups;
        size_t n_groups;
        char *profile;
        char *host_node;
        char *host_region;
        int64_t epoch;
        struct aidp_dataset_facts *datasets;
        size_t n_datasets;
        /* Parallel to datasets[]: their column-level views. */
        struct aidp_dataset_views *views;

        struct aidp_reason *reasons;
        size_t n_reasons;
        /* Parallel to request.profile->egress: false = dropped from the allowlist. */
        bool *egress_keep;
        size_t n_egress;
        /* What the run's outputs inherit from its inputs. */
        struct aidp_data_tags outputs;
        /* The key the outputs are sealed under (docs/policy.md, "Output key"),
         * and why ("output_keys.regulations.phi", "input NAME (most restricted)");
         * NULL when no input's key is known and no rule names one. */
        char *output_key;
        char *output_key_rule;
        /* What a hit of the output leak scan does for these outputs, and the
         * rule ("leak_scan.restricted", "leak_scan.default"; "" when the
         * policy has no leak_scan: report). */
        enum aidp_leak_action leak_action;
        char leak_rule[48];
};

/* Decide. Returns 0 with *ret filled (allow or deny), or < 0 only when memory
 * runs out (err says so; nothing is allocated). */
int aidp_residency_decide(const struct aidp_decision_request *req, struct aidp_decision *ret,
                          aidp_error *err);
void aidp_residency_decision_free(struct aidp_decision *d);

/* Dataset i's view of one of its schema's files (views/view.h): the views of
 * its granting roles resolved with aidp_view_resolve(). What the run calls per
 * file before it streams the file through the viewer. */
int aidp_residency_decision_file_view(const struct aidp_decision *d, size_t i,
                                      const struct aidp_schema_file *file,
                                      struct aidp_file_view *ret, aidp_error *err);

/* Dataset i's per-column view (`aidp policy explain`): for every file pattern
 * of its schema (NULL or empty: "the dataset has no schema", every column
 * raw), each column's labels, transform and the role/view rule that decided
 * it. Text for people (*ret to free) and JSON. */
int aidp_residency_columns_to_text(const struct aidp_decision *d, size_t i,
                                   const struct aidp_schema *schema, char **ret, aidp_error *err);
int aidp_residency_columns_to_json(const struct aidp_decision *d, size_t i,
                                   const struct aidp_schema *schema, struct json_object **ret,
                                   aidp_error *err);

/* A refusal that is not the policy's to waive, added to a decision already
 * made (the run's own checks on what the decision cannot see, such as an
 * input sealed under the quarantine key): a FAIL reason, and the decision
 * denies even under `enforcement: audit`. Returns 0, or -ENOMEM with the
 * decision left as it was. */
int aidp_residency_decision_refuse(struct aidp_decision *d, enum aidp_reason_check check,
                                   const char *rule, const char *dataset, const char *attribute,
                                   const char *message);
/* The first FAIL reason, or NULL when the decision allows. */
const struct aidp_reason *aidp_residency_decision_first_failure(const struct aidp_decision *d);
/* For a denial: fill err (status AIDP_EXIT_DENIED) with a message naming the
 * rule, the dataset and the attribute of the first failure; returns -EACCES.
 * Returns 0 and leaves err alone when the decision allows. */
int aidp_residency_decision_to_error(const struct aidp_decision *d, aidp_error *err);
/* The decision for lineage; NULL on allocation failure. */
struct json_object *aidp_residency_decision_to_json(const struct aidp_decision *d);
/* The decision for a human, one reason per line; NULL on allocation failure. */
char *aidp_residency_decision_to_text(const struct aidp_decision *d);

const char *aidp_residency_check_name(enum aidp_reason_check c);
const char *aidp_residency_result_name(enum aidp_reason_result r);
