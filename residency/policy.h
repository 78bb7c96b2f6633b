#pragma once
/* Host identity, residency rules and access rules: the models and their YAML
 * parsers. Pure: buffers in, structs out; no syscalls, no printing, no globals.
 * The file formats are documented in docs/policy.md.
 *
 * Every file starts with `apiVersion: aidp/v1` and a `kind:` naming what it
 * holds; aidp_residency_parse() dispatches on it. Errors carry
 * file:line:col and the key path; unknown keys are errors. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "residency/tags.h"
#include "views/view.h"

#define AIDP_RESIDENCY_API_VERSION "aidp/v1"
#define AIDP_RESIDENCY_INPUT_MAX   (4u << 20) /* bytes of one policy file */

/* Residency's own view of a profile's network mode (the profile model's
 * enum aidp_net_mode is converted by the caller: residency does not include
 * the profile model). */
enum aidp_residency_net {
        AIDP_RESIDENCY_NET_NONE,   /* loopback only */
        AIDP_RESIDENCY_NET_EGRESS, /* an egress allowlist */
        AIDP_RESIDENCY_NET_MAX
};

/* /etc/aidp/host.yaml: where this node is and what it is certified for. */
struct aidp_host_identity {
        char *source;       /* file it came from */
        char *node;         /* node name; NULL when not given */
        char *region;       /* e.g. "eu-west-1" */
        char *jurisdiction; /* e.g. "EU"; NULL when not given */
        char **zones;       /* compliance zones, e.g. "hipaa", "gdpr" */
        size_t n_zones;
};

/* Where a rule was written, for decision reasons. */
struct aidp_rule_loc {
        const char *file; /* points into the owning policy's source */
        unsigned line;
};

/* residency: TAG -> the regions (and optionally jurisdictions) data tagged
 * TAG may be processed in. A region pattern is a region name or a prefix
 * ending in '*' ("eu-*"), so two patterns' overlap is decidable. */
struct aidp_residency_rule {
        char *tag;
        char **regions;
        size_t n_regions;
        char **jurisdictions; /* empty: any jurisdiction */
        size_t n_jurisdictions;
        struct aidp_rule_loc loc;
};

/* regulations: TAG -> compliance zones the host must hold. */
struct aidp_regulation_rule {
        char *tag;
        char **zones;
        size_t n_zones;
        struct aidp_rule_loc loc;
};

/* classifications: LEVEL -> host zones and profile properties required for
 * data at LEVEL or above (a rule for `restricted` also binds `regulated`). */
struct aidp_classification_rule {
        enum aidp_classification level;
        char **zones;
        size_t n_zones;
        bool require_network;
        enum aidp_residency_net network;
        bool forbid_writable_binds; /* profile.writableBinds: false */
        struct aidp_rule_loc loc;
};

struct aidp_jurisdiction_rule {
        char *name; /* e.g. "EU" */
        char **regions;
        size_t n_regions;
        struct aidp_rule_loc loc;
};

struct aidp_output_key_rule {
        char *regulation;               /* NULL: a classification rule */
        enum aidp_classification level; /* for a classification rule */
        char *key_id;
        struct aidp_rule_loc loc;
};

/* The default of require_residency_from (docs/policy.md). */
#define AIDP_RESIDENCY_REQUIRE_DEFAULT AIDP_CLASS_RESTRICTED

enum aidp_egress_untagged {
        AIDP_EGRESS_UNTAGGED_DROP, /* default: a rule of unknown location leaves */
        AIDP_EGRESS_UNTAGGED_KEEP,
        AIDP_EGRESS_UNTAGGED_MAX
};

enum aidp_egress_out_of_region {
        AIDP_EGRESS_OOR_DROP, /* default: the rule is removed, the run goes on */
        AIDP_EGRESS_OOR_DENY, /* the run is refused */
        AIDP_EGRESS_OOR_MAX
};

struct aidp_residency_policy {
        char *source;
        char *name; /* metadata.name, NULL when not given */
        struct aidp_residency_rule *residency;
        size_t n_residency;
        struct aidp_regulation_rule *regulations;
        size_t n_regulations;
        struct aidp_classification_rule *classifications;
        size_t n_classifications;
        enum aidp_egress_untagged egress_untagged;
        enum aidp_egress_out_of_region egress_out_of_region;
        struct aidp_rule_loc egress_loc;
        /* require_residency_from: data at this level or above must carry a
         * residency tag (untagged is refused); AIDP_CLASS_MAX: never. The
         * default, also without residency.yaml, is restricted. */
        enum aidp_classification require_residency_from;
        struct aidp_rule_loc require_loc;
        /* jurisdictions: NAME -> region patterns, for egress destinations
         * (an egress rule's region has the jurisdiction whose patterns match it) */
        struct aidp_jurisdiction_rule *jurisdictions;
        size_t n_jurisdictions;
        /* output_keys: which key seals a run's outputs: by a regulation tag they
         * carry, else by their classification (that level and above); without
         * a match, the key of the most restricted input */
        struct aidp_output_key_rule *output_keys;
        size_t n_output_keys;
};

enum aidp_residency_op {
        AIDP_OP_RUN,
        AIDP_OP_SEAL,
        AIDP_OP_UNSEAL,
        AIDP_OP_INSPECT,
        AIDP_OP_LINEAGE_READ,
        AIDP_OP_DETOKENIZE, /* aidp detokenize: reverse siv tokens (issue 18) */
        AIDP_OP_MAX
};

struct aidp_attr {
        char *name;
        char *value;
};

/* A time window: on `days` (bit 0 = Sunday ... bit 6 = Saturday), from
 * `start` to `end` minutes after local midnight in `zone` (end exclusive).
 * start > end crosses midnight and belongs to the day it starts on. */
struct aidp_time_window {
        uint8_t days;
        uint16_t start, end;          /* 0..1440 */
        char *zone;                   /* IANA name, "UTC" by default */
        unsigned zone_line, zone_col; /* where `time_zone:` is; 0 when defaulted */
};

/* The user must hold `name` with one of `values`. */
struct aidp_attr_req {
        char *name;
        char **values;
        size_t n_values;
};

/* residency:, regulations: and key_ids: of a role or a deny rule. A role
 * grants a dataset only if every residency (regulation) tag it carries is
 * listed, and its key id matches a key_ids pattern; a deny rule matches a
 * dataset that carries any listed tag or whose key id matches. */
struct aidp_tag_match {
        bool has_residency, has_regulations, has_key_ids;
        char **residency; /* tags */
        size_t n_residency;
        char **regulations; /* tags */
        size_t n_regulations;
        char **key_ids; /* glob patterns */
        size_t n_key_ids;
};

struct aidp_role {
        /* first: the parser hands a role to the tag fields' handlers as a
         * struct aidp_tag_match * (docs/policy.md, "Rules on tags and keys") */
        struct aidp_tag_match tags;
        char *name;
        unsigned ops;    /* bit (1u << aidp_residency_op) */
        char **profiles; /* fnmatch patterns; empty grants no profile */
        size_t n_profiles;
        char **datasets; /* fnmatch patterns on NAME or NAME@VERSION */
        size_t n_datasets;
        enum aidp_classification max_classification; /* default public */
        struct aidp_time_window *windows;            /* empty: any time */
        size_t n_windows;
        struct aidp_attr_req *require;
        size_t n_require;
        /* view: NAME (issue 18): what the role sees of labelled columns. NULL
         * (no view:): labelled columns are dropped, unlabelled ones pass. The
         * pointer is into the policy's views[]. */
        const struct aidp_policy_view *view;
        struct aidp_rule_loc loc;
};

/* views.NAME: a column-level view (views/view.h), where it was written. */
struct aidp_policy_view {
        struct aidp_view view; /* view.name is NAME */
        struct aidp_rule_loc loc;
};

/* users.NAME / groups.NAME: roles held and (users only) attributes. */
struct aidp_subject {
        char *name;
        char **roles;
        size_t n_roles;
        struct aidp_attr *attrs;
        size_t n_attrs;
        struct aidp_rule_loc loc;
};

/* An explicit deny: matches when every condition given matches; it overrides
 * any role. Empty conditions match everything. */
struct aidp_deny_rule {
        struct aidp_tag_match tags; /* first, as in struct aidp_role */
        char *name;
        char **users; /* fnmatch patterns on the user name */
        size_t n_users;
        char **groups; /* fnmatch patterns on the caller's group names */
        size_t n_groups;
        unsigned ops; /* 0: every operation */
        char **profiles;
        size_t n_profiles;
        char **datasets;
        size_t n_datasets;
        bool has_min_classification;
        enum aidp_classification min_classification;
        struct aidp_time_window *windows;
        size_t n_windows;
        struct aidp_rule_loc loc;
};

/* What a hit of the output leak scan does (access.yaml `leak_scan:`,
 * docs/policy.md "Output leak scan"): report records it; quarantine also
 * seals the output under the admin-only quarantine key and fails the run. */
enum aidp_leak_action { AIDP_LEAK_REPORT = 0, AIDP_LEAK_QUARANTINE, AIDP_LEAK_ACTION_MAX };
const char *aidp_residency_leak_action_name(enum aidp_leak_action a);

struct aidp_access_policy {
        char *source;
        char *name;
        /* views: parsed before roles, which name them; never reallocated
         * after parsing, so roles point into it. */
        struct aidp_policy_view *views;
        size_t n_views;
        struct aidp_subject *users;
        size_t n_users;
        struct aidp_subject *groups;
        size_t n_groups;
        struct aidp_role *roles;
        size_t n_roles;
        struct aidp_deny_rule *deny;
        size_t n_deny;
        /* enforcement: audit: decisions are made, recorded and reported, not
         * enforced (for rolling a policy out); default enforce. */
        bool audit;
        struct aidp_rule_loc enforcement_loc;
        /* leak_scan: {default: ACTION, LEVEL: ACTION, ...}: a level's action
         * binds the levels above it until the next one given; levels below
         * every given one take default (report when not given). */
        bool has_leak_scan;
        bool leak_scan_set[AIDP_CLASS_MAX];
        enum aidp_leak_action leak_scan[AIDP_CLASS_MAX];
        enum aidp_leak_action leak_scan_default;
};

enum aidp_residency_kind {
        AIDP_RESIDENCY_KIND_HOST,      /* kind: HostIdentity */
        AIDP_RESIDENCY_KIND_RESIDENCY, /* kind: ResidencyPolicy */
        AIDP_RESIDENCY_KIND_ACCESS,    /* kind: AccessPolicy */
        AIDP_RESIDENCY_KIND_DATASET,   /* kind: DatasetFacts (explain, tests) */
        AIDP_RESIDENCY_KIND_MAX
};

struct aidp_residency_doc {
        enum aidp_residency_kind kind;
        union {
                struct aidp_host_identity host;
                struct aidp_residency_policy residency;
                struct aidp_access_policy access;
                struct aidp_dataset_facts dataset;
        };
};

/* Parse one file's contents; `file` names it in errors and reasons. On error
 * nothing is allocated and err->status is AIDP_EXIT_CONFIG (or
 * AIDP_EXIT_INTERNAL on allocation failure). */
int aidp_residency_parse(const char *buf, size_t len, const char *file,
                         struct aidp_residency_doc *ret, aidp_error *err);
void aidp_residency_doc_free(struct aidp_residency_doc *doc);
/* Like aidp_residency_parse(), but a different kind is an error. */
int aidp_residency_parse_host(const char *buf, size_t len, const char *file,
                              struct aidp_host_identity *ret, aidp_error *err);
int aidp_residency_parse_residency(const char *buf, size_t len, const char *file,
                                   struct aidp_residency_policy *ret, aidp_error *err);
int aidp_residency_parse_access(const char *buf, size_t len, const char *file,
                                struct aidp_access_policy *ret, aidp_error *err);
int aidp_residency_parse_dataset(const char *buf, size_t len, const char *file,
                                 struct aidp_dataset_facts *ret, aidp_error *err);

void aidp_residency_host_free(struct aidp_host_identity *h);
void aidp_residency_policy_free(struct aidp_residency_policy *p);
void aidp_residency_access_free(struct aidp_access_policy *p);

const char *aidp_residency_kind_name(enum aidp_residency_kind k);
const char *aidp_residency_op_name(enum aidp_residency_op op);
int aidp_residency_op_parse(const char *name, enum aidp_residency_op *ret);

/* The IANA time zones the access policy's windows use (borrowed strings,
 * unique, "UTC" excluded since it needs no conversion). The caller resolves
 * their UTC offsets; see supervisor/run/policy_clock.c. */
int aidp_residency_access_time_zones(const struct aidp_access_policy *p, const char ***ret,
                                     size_t *ret_n);

/* The one glob matcher of every pattern field (fnmatch(3); dataset names are
 * matched case-insensitively, casefold). */
bool aidp_residency_glob_match(const char *pattern, const char *s, bool casefold);
bool aidp_residency_glob_any(char *const *patterns, size_t n, const char *s, bool casefold);
/* Whether s holds a glob character (refused where a field takes no pattern). */
bool aidp_residency_has_glob(const char *s);

/* Syntax checks shared by the parsers and the decision (pure). */
bool aidp_residency_region_pattern_valid(const char *pattern);
bool aidp_residency_region_match(const char *pattern, const char *region);
bool aidp_residency_zone_name_valid(const char *tz);

/* Local weekday (0 = Sunday) and minute of the day of an instant, given the
 * zone's UTC offset at that instant (seconds east of UTC). */
void aidp_residency_local_time(int64_t epoch, long utc_offset, int *wday, int *minute);
/* Whether local (wday, minute) lies in the window (its zone already applied). */
bool aidp_residency_window_contains(const struct aidp_time_window *win, int wday, int minute);
const char *aidp_residency_day_name(int wday);
