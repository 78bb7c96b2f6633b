#pragma once
/* An access and residency policy for root tests that run sealed data: since a
 * run decrypts sealed data only under an installed policy (docs/policy.md,
 * "When"), such tests install one in a directory of their own and point the
 * test build at it with AIDP_POLICY_DIR. */

/* Write DIR/access.yaml granting `run` on every profile and dataset up to
 * `regulated` to `user`, and DIR/residency.yaml with a rule allowing any
 * region for each residency tag in `residency` and no zone for each regulation
 * tag in `regulations` (NULL-terminated lists, may be NULL), and DIR/host.yaml
 * (region test-1); root-owned, 0644, DIR created 0755. Then set
 * AIDP_POLICY_DIR=DIR (the caller unsets it in its teardown). */
void aidp_test_policy_allow(const char *dir, const char *user, const char *const *residency,
                            const char *const *regulations);
/* The end of such a test: AIDP_POLICY_DIR unset and, with run_dir, gc of a
 * run a failed assertion left there (cleaned the way production does). */
void aidp_test_policy_done(const char *run_dir);

/* Replace DIR/access.yaml (after aidp_test_policy_allow made the rest) with
 * access_yaml, root-owned 0644: a policy with views (issue 18), several roles,
 * other operations (detokenize). */
void aidp_test_policy_access(const char *dir, const char *access_yaml);
