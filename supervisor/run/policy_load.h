#pragma once
/* Reading the policy files: host identity, residency and access policies.
 *
 * Default locations (docs/policy.md): /etc/aidp/host.yaml,
 * /etc/aidp/residency.yaml, /etc/aidp/access.yaml. The directory can be
 * changed with `dir` or, where trusted, the AIDP_POLICY_DIR environment
 * variable; explicit files replace the default of their kind. A default file
 * that does not exist is not loaded, and the decision then denies what it
 * would have had to allow (default deny); one that exists but cannot be read
 * (a dangling symlink, no permission, not a regular file, not root's when
 * that is required) is an error, never "no policy". */
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "residency/policy.h"
#include "views/view.h"

#define AIDP_POLICY_DIR_DEFAULT "/etc/aidp"
#define AIDP_POLICY_DIR_ENV     "AIDP_POLICY_DIR"

struct aidp_policy_sources {
        const char *dir;          /* NULL: $AIDP_POLICY_DIR when trust_env, else /etc/aidp */
        const char *host;         /* NULL: DIR/host.yaml when it exists */
        const char *const *files; /* more files; each one's `kind:` says what it is */
        size_t n_files;
        bool trust_env; /* honour AIDP_POLICY_DIR */
        /* Refuse files (and their directory) that someone other than root could
         * write: the supervisor must not take policy from the caller. */
        bool require_root_owned;
        /* The same for the files found in the policy directory only (`aidp
         * policy explain` reading the installed files: it must refuse what the
         * supervisor refuses, while --policy FILE drafts are anyone's). */
        bool require_root_owned_defaults;
};

struct aidp_policy_set {
        struct aidp_host_identity *host;         /* NULL when none */
        struct aidp_residency_policy *residency; /* NULL when none */
        struct aidp_access_policy *access;       /* NULL when none */
};

int aidp_policy_set_load(const struct aidp_policy_sources *src, struct aidp_policy_set *ret,
                         aidp_error *err);
void aidp_policy_set_free(struct aidp_policy_set *s);

/* Read a whole policy-sized file (at most AIDP_RESIDENCY_INPUT_MAX bytes). */
int aidp_policy_read_file(const char *path, bool require_root_owned, char **ret_buf,
                          size_t *ret_len, aidp_error *err);

struct aidp_sealed_header;

/* The decision's facts from an authenticated sealed header. */
int aidp_policy_facts_from_header(const struct aidp_sealed_header *h,
                                  struct aidp_dataset_facts *ret, aidp_error *err);

/* The facts of one `explain --data` argument: a sealed file (its header is
 * authenticated with the key providers of keys_config/key_dir, as `aidp
 * inspect` does; no payload byte is decrypted), or a DatasetFacts YAML file
 * for what-if questions. For a sealed file *sealed (may be NULL) is set and
 * *schema (may be NULL) gets the schema its header carries (zeroed: none),
 * to be freed with aidp_schema_free(). */
int aidp_policy_dataset_facts_load(const char *path, const char *keys_config, const char *key_dir,
                                   struct aidp_dataset_facts *ret, bool *sealed,
                                   struct aidp_schema *schema, aidp_error *err);
