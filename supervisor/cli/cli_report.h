#pragma once
/* The summary file and the stderr report of a finished run (cli_report.c). */
#include <json-c/json.h>
#include <stdbool.h>

#include "supervisor/run/run.h"

/* The summary as JSON (also the exec-hook result). */
json_object *aidp_cli_summary_json(const struct aidp_run_result *r);
/* Write the JSON summary to fd (the file the caller created). 0 or -1. */
int aidp_cli_write_summary(int fd, const char *path, const struct aidp_run_result *r);
/* The lines on stderr: result, per-mount shred, full mounts, inputs, output
 * (only the full mounts' with o->quiet); options named as o's caller named
 * them (aidp_run_output_dir_label). */
void aidp_cli_print_result(const struct aidp_run_result *res, const struct aidp_run_opts *o);
