#pragma once
/* Pieces of `aidp policy` shared between its files. */
#include "residency/policy.h"

/* `policy check` of an access policy's views (docs/policy.md, "Views"):
 * every tokenize key must be declared in keys.yaml (keys_config, else
 * $AIDP_KEYS_CONFIG, else /etc/aidp/keys.yaml) with purpose tokenize, an
 * error since every run through the view would be refused; without any
 * keys.yaml the keys are not checked (a warning). A view no role names is a
 * warning. Prints each finding on stderr; returns the number of errors. */
int aidp_cli_policy_check_views(const struct aidp_access_policy *p, const char *path,
                                const char *keys_config);
