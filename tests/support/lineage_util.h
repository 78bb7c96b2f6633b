#pragma once
/* Reading lineage logs and OpenLineage events in tests. */
#include <json-c/json.h>
#include <stddef.h>

/* The object at a dotted path ("run.facets.aidp_policy.decisions"), or NULL. */
json_object *aidp_test_json_at(json_object *o, const char *path);
/* Its string value, or "" (so a missing field fails a string comparison, not the test). */
const char *aidp_test_json_str(json_object *o, const char *path);
/* Its string value, or NULL. */
const char *aidp_test_json_str_or_null(json_object *o, const char *path);
/* The records of a lineage log, after verifying the chain, tags and anchor with the key
 * at keyp (a Criterion assertion fails otherwise). The caller puts each event. */
size_t aidp_test_lineage_records(const char *logp, const char *keyp, json_object **ev, size_t max);
/* A whole file, NUL-terminated (len without the NUL), or NULL. The caller frees. */
char *aidp_test_slurp(const char *path, size_t *len);
/* How many records of the log at logp have eventType type (0 without a log). */
int aidp_test_count_events(const char *logp, const char *type);
