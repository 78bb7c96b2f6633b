#pragma once
/* Shared by the `aidp lineage` commands (cli_lineage.c: verify and reading the
 * log; cli_lineage_show.c; cli_lineage_graph.c: graph and export). */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "supervisor/cli/options.h"
#include "supervisor/lineage/codec/lineage_witness.h"
#include "supervisor/lineage/lineage.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

#define PROG "aidp lineage"

struct events {
        json_object **ev; /* stripped of the chain members */
        uint64_t *line;
        struct aidp_lineage_head *head; /* each record's head, without its mac */
        size_t n, cap;
        size_t skipped;
};
/* Runs in order of first appearance, each with the indices of its events. */
struct run {
        const char *id;
        size_t *idx;
        size_t n;
        bool selected;
};
struct runs {
        struct run *r;
        size_t n;
};

/* The options of show, graph and export. */
struct lineage_cli {
        const char *file, *run, *dataset, *out, *url, *user;
        const char *key;      /* export: the host key that signs the heads */
        int64_t since, until; /* epoch seconds; valid when has_since/has_until */
        bool has_since, has_until;
        bool json, incremental;
};

int aidp_cli_lineage_parse_since(const char *arg, void *dest, aidp_error *err);
int aidp_cli_lineage_parse_until(const char *arg, void *dest, aidp_error *err);

#define LC(f) offsetof(struct lineage_cli, f)
/* The log's location is configuration: admin-only (docs/security.md). */
#define AIDP_CLI_LINEAGE_FILE_OPT                                                                  \
        AIDP_CLI_OPT("file", 'f', AIDP_CLI_STRING, LC(file), "FILE", "the lineage log",            \
                     AIDP_TRUST_ADMIN)
#define AIDP_CLI_LINEAGE_RUN_OPT                                                                   \
        AIDP_CLI_OPT("run", 'r', AIDP_CLI_STRING, LC(run), "ID",                                   \
                     "only this run (a prefix of its id, or its run name)", AIDP_TRUST_USER)
#define AIDP_CLI_LINEAGE_DATASET_OPT                                                               \
        AIDP_CLI_OPT("dataset", 'd', AIDP_CLI_STRING, LC(dataset), "NAME",                         \
                     "only runs touching this dataset (NAME or NAMESPACE/NAME)", AIDP_TRUST_USER)
#define AIDP_CLI_LINEAGE_USER_OPT                                                                  \
        AIDP_CLI_OPT("user", 'U', AIDP_CLI_STRING, LC(user), "NAME",                               \
                     "only runs this user asked for", AIDP_TRUST_USER)
#define AIDP_CLI_LINEAGE_TIME_EXPECT "YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS(Z|+HH:MM), @EPOCH or now"
#define AIDP_CLI_LINEAGE_SINCE_OPT                                                                 \
        AIDP_CLI_OPT("since", 0, AIDP_CLI_CUSTOM, 0, "TIME",                                       \
                     "only runs with an event at or after TIME (YYYY-MM-DD is\n"                   \
                     "midnight UTC)",                                                              \
                     AIDP_TRUST_USER, .parse = aidp_cli_lineage_parse_since,                       \
                     .expect = AIDP_CLI_LINEAGE_TIME_EXPECT)
#define AIDP_CLI_LINEAGE_UNTIL_OPT                                                                 \
        AIDP_CLI_OPT("until", 0, AIDP_CLI_CUSTOM, 0, "TIME",                                       \
                     "only runs with an event before TIME", AIDP_TRUST_USER,                       \
                     .parse = aidp_cli_lineage_parse_until,                                        \
                     .expect = AIDP_CLI_LINEAGE_TIME_EXPECT)
#define AIDP_CLI_LINEAGE_FILTER_SYNOPSIS                                                           \
        "[--run ID] [--dataset NAME] [--user NAME] [--since TIME] [--until TIME]"
#define AIDP_CLI_LINEAGE_FILE_HELP                                                                 \
        "FILE defaults to $" AIDP_LINEAGE_ENV_PATH " or " AIDP_LINEAGE_DEFAULT_PATH ".\n"

/* FILE, or $AIDP_LINEAGE_FILE, or the default. */
const char *aidp_cli_lineage_path(const char *given);

void aidp_cli_events_free(struct events *e);
/* Every record of the log; lines that are not records are reported and skipped. */
int aidp_cli_events_load(const char *path, struct events *e, aidp_error *err);
/* The string at o.a.b.c (b, c may be NULL), or NULL. */
const char *aidp_cli_json_str(json_object *o, const char *a, const char *b, const char *c);
json_object *aidp_cli_run_facet(json_object *ev, const char *name);
const char *aidp_cli_run_id(json_object *ev);
bool aidp_cli_dataset_matches(json_object *ds, const char *name);
bool aidp_cli_touches_dataset(json_object *ev, const char *name);
void aidp_cli_runs_free(struct runs *rs);
int aidp_cli_runs_group(const struct events *e, struct runs *rs);
/* events_load + runs_group: the log's records, grouped by run. */
int aidp_cli_lineage_read(const char *path, struct events *e, struct runs *rs, aidp_error *err);
/* Mark the runs every given filter of c keeps (run, dataset, user, since, until). */
void aidp_cli_runs_select(const struct events *e, struct runs *rs, const struct lineage_cli *c);

int aidp_cli_lineage_show(int argc, char **argv);
int aidp_cli_lineage_graph(int argc, char **argv);
int aidp_cli_lineage_export(int argc, char **argv);
extern const struct aidp_cli_spec aidp_cli_lineage_show_spec;

/* rotate, and verify following the rotation links (cli_lineage_rotate.c):
 * 0 when every link and archive holds, AIDP_EXIT_FAILED naming a broken one. */
int aidp_cli_lineage_rotate(int argc, char **argv);
int aidp_cli_lineage_follow(const char *path, const unsigned char *key, bool use_anchor,
                            bool quiet);
/* The ids of the logs path follows by rotation, newest first (best effort: the
 * links are checked by _follow). */
int aidp_cli_lineage_prior_logs(const char *path, const unsigned char *key,
                                char (**ids)[AIDP_LINEAGE_LOG_ID_HEX + 1], size_t *n);

/* verify --witness (cli_lineage_witness.c): 0 when every witness agrees with the
 * log, AIDP_EXIT_FAILED when one shows tampering, else the status of an error. */
int aidp_cli_lineage_witnesses(const char *path, const struct aidp_lineage_verify *v,
                               const struct aidp_cli_list *witnesses, const unsigned char *key,
                               bool quiet);
