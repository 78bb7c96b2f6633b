#pragma once
/* The schema of a sealed dataset on the command line (issue 18): `aidp seal
 * --schema FILE` reads and encodes it, `aidp inspect` shows it, and the
 * produced-by record of an output (cli_produced.c). */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "supervisor/sealed/codec/sealed_format.h"

/* Read schema.yaml at path as the caller (the process's own credentials, as
 * seal reads SRC), parse it strictly and encode it for the header. */
int aidp_cli_read_schema(const char *path, uint8_t **ret, size_t *ret_len, aidp_error *err);
/* The header's schema as JSON ({"files": [...]}) or NULL (JSON null) when none. */
json_object *aidp_cli_schema_json(const struct aidp_sealed_header *h);
/* "schema:" and one line per file pattern and column, or "schema: (none)". */
void aidp_cli_schema_text(const struct aidp_sealed_header *h);
/* The header's produced-by record: its steps as JSON, or NULL (JSON null). */
json_object *aidp_cli_produced_json(const struct aidp_sealed_header *h);
/* aidp seal --derived-from FILE... (cli_derived.c): open and authenticate
 * each sealed file as `aidp unseal` would for this caller, raise p->meta
 * (the new dataset's, name set) to their classification and tags (a lower
 * classification given on the command line, cls_given, is refused: exit
 * 120), keep their schema's labels (p->schema: theirs, in *ret_schema
 * (malloc), when none is given; a given one that drops a label is refused),
 * and set p->produced_by to the produced-by record (*ret_produced, malloc)
 * whose first step is this re-seal and whose later steps are the files' own
 * chains. */
struct aidp_cli_spec;
struct aidp_cli_parsed;
struct aidp_cli_list;
struct aidp_seal_params;
int aidp_cli_derived_from(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *pa,
                          const struct aidp_cli_list *files, const char *keys_config,
                          const char *key_dir, bool cls_given, struct aidp_seal_params *p,
                          uint8_t **ret_produced, uint8_t **ret_schema, aidp_error *err);
/* "produced-by:" and per run, input, file pattern and column the view, or
 * "produced-by: (none)". */
void aidp_cli_produced_text(const struct aidp_sealed_header *h);
