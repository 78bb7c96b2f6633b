#pragma once
/* The schema of a sealed dataset on the command line (issue 18): `aidp seal
 * --schema FILE` reads and encodes it, `aidp inspect` shows it, and the
 * produced-by record of an output (cli_produced.c). */
#include <json-c/json.h>
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
/* "produced-by:" and per run, input, file pattern and column the view, or
 * "produced-by: (none)". */
void aidp_cli_produced_text(const struct aidp_sealed_header *h);
