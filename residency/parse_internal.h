#pragma once
/* Shared pieces of the residency/ parsers (internal). */
#include "residency/policy.h"
#include "common/yaml.h"

/* Field handlers every kind accepts at the top level. apiVersion must be
 * aidp/v1; kind was checked by the dispatcher; metadata holds name and
 * description. */
int aidp_residency_pf_api_version(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx);
int aidp_residency_pf_kind(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx);
int aidp_residency_parse_metadata(struct aidp_yaml *w, yaml_node_t *v, const char *path,
                                  char **name);

/* `operations: [run, seal, ...]` into a bit set. */
int aidp_residency_parse_ops(struct aidp_yaml *w, yaml_node_t *v, const char *path, unsigned *ops);
/* `time_windows: [{days, hours, time_zone}, ...]`. */
int aidp_residency_parse_windows(struct aidp_yaml *w, yaml_node_t *v, const char *path,
                                 struct aidp_time_window **ret, size_t *ret_n);
void aidp_residency_windows_free(struct aidp_time_window *v, size_t n);
int aidp_residency_parse_classification(struct aidp_yaml *w, yaml_node_t *v, const char *path,
                                        enum aidp_classification *ret);

/* Top-level walkers, one per kind. On failure they free what they filled. */
int aidp_residency_parse_host_doc(struct aidp_yaml *w, yaml_node_t *root,
                                  struct aidp_host_identity *ret);
int aidp_residency_parse_residency_doc(struct aidp_yaml *w, yaml_node_t *root,
                                       struct aidp_residency_policy *ret);
int aidp_residency_parse_access_doc(struct aidp_yaml *w, yaml_node_t *root,
                                    struct aidp_access_policy *ret);
int aidp_residency_parse_dataset_doc(struct aidp_yaml *w, yaml_node_t *root,
                                     struct aidp_dataset_facts *ret);

int aidp_residency_oom(struct aidp_yaml *w);

/* Predicates for aidp_yaml_strlist(). */
bool aidp_residency_is_tag(const char *s);  /* residency/regulation tags */
bool aidp_residency_is_name(const char *s); /* zones, jurisdictions, ... */
bool aidp_residency_is_pattern(const char *s);
bool aidp_residency_is_literal(const char *s);
