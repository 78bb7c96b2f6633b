/* aidp policy check FILE...        validate host identity and policy files
 * aidp policy explain --user U ... print the decision trail, run nothing */
#define _GNU_SOURCE /* strptime, timegm */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "profiles/profile.h"
#include "profiles/profile_load.h"
#include "residency/decide.h"
#include "residency/policy.h"
#include "common/strv.h"
#include "supervisor/run/run.h"
#include "supervisor/run/run_policy.h"
#include "supervisor/run/caller.h"
#include "supervisor/run/profile_env.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/cli_policy.h"
#include "supervisor/run/policy_clock.h"
#include "supervisor/run/policy_decide.h"
#include "supervisor/run/policy_load.h"

#define PROG "aidp policy"

/* A one-line summary for people: a very long zone list is cut short. */
static void summarize(const struct aidp_residency_doc *doc, char *buf, size_t size)
{
        char zones[256] = "";
        size_t off = 0;
        for (size_t i = 0; doc->kind == AIDP_RESIDENCY_KIND_HOST && i < doc->host.n_zones; i++)
                if (off < sizeof zones)
                        off += (size_t)snprintf(zones + off, sizeof zones - off, "%s%s",
                                                i ? ", " : "", doc->host.zones[i]);
        switch (doc->kind) {
        case AIDP_RESIDENCY_KIND_HOST:
                aidp_text_printf(buf, size, "node %s, region %s, zones [%s]",
                                 doc->host.node ? doc->host.node : "(unnamed)", doc->host.region,
                                 zones);
                break;
        case AIDP_RESIDENCY_KIND_RESIDENCY:
                aidp_text_printf(buf, size,
                                 "%zu residency, %zu regulation, %zu classification rules",
                                 doc->residency.n_residency, doc->residency.n_regulations,
                                 doc->residency.n_classifications);
                break;
        case AIDP_RESIDENCY_KIND_ACCESS:
                aidp_text_printf(buf, size, "%zu roles, %zu users, %zu groups, %zu deny rules",
                                 doc->access.n_roles, doc->access.n_users, doc->access.n_groups,
                                 doc->access.n_deny);
                if (doc->access.n_views)
                        aidp_text_printf(buf + strlen(buf), size - strlen(buf), ", %zu views",
                                         doc->access.n_views);
                break;
        case AIDP_RESIDENCY_KIND_DATASET:
                aidp_text_printf(
                        buf, size, "dataset %s, %s", doc->dataset.name,
                        aidp_residency_classification_name(doc->dataset.tags.classification));
                break;
        case AIDP_RESIDENCY_KIND_MAX: aidp_text_printf(buf, size, "?"); break;
        }
}

/* Whether PATH is one of the installed files the supervisor reads (its directory is
 * the policy directory), which it refuses unless root alone can write them. */
static bool is_installed(const char *path, const char *policy_dir)
{
        _cleanup_free_ char *copy = strdup(path), *real_dir = NULL, *real_pol = NULL;
        if (!copy)
                return false;
        real_dir = realpath(dirname(copy), NULL);
        real_pol = realpath(policy_dir, NULL);
        return real_dir && real_pol && !strcmp(real_dir, real_pol);
}

/* Check one file as the supervisor would load it: its owner and mode when installed
 * (a draft elsewhere gets a warning), its syntax, and every time zone it names. */
static int check_one(const char *path, const char *policy_dir, const char *keys_config)
{
        aidp_error err = {0};
        _cleanup_free_ char *buf = NULL;
        size_t len;
        struct aidp_residency_doc doc;
        bool installed = is_installed(path, policy_dir);
        if (aidp_policy_read_file(path, installed, &buf, &len, &err) < 0 ||
            aidp_residency_parse(buf, len, path, &doc, &err) < 0) {
                fprintf(stderr, PROG " check: error: %s\n", err.msg);
                return -1;
        }
        if (doc.kind == AIDP_RESIDENCY_KIND_ACCESS &&
            aidp_policy_clock_check_zones(&doc.access, &err) < 0) {
                fprintf(stderr, PROG " check: error: %s\n", err.msg);
                aidp_residency_doc_free(&doc);
                return -1;
        }
        if (doc.kind == AIDP_RESIDENCY_KIND_ACCESS &&
            aidp_cli_policy_check_views(&doc.access, path, keys_config) > 0) {
                aidp_residency_doc_free(&doc);
                return -1;
        }
        if (!installed) {
                _cleanup_free_ char *b2 = NULL;
                size_t l2;
                if (aidp_policy_read_file(path, true, &b2, &l2, &err) < 0)
                        fprintf(stderr,
                                PROG " check: warning: %s (the supervisor refuses it once "
                                     "installed in %s as is)\n",
                                err.msg, policy_dir);
        }
        char sum[256];
        summarize(&doc, sum, sizeof sum);
        printf("%s: ok: %s (%s)\n", path, aidp_residency_kind_name(doc.kind), sum);
        aidp_residency_doc_free(&doc);
        return 0;
}

#define EXIT_HELP                                                                                  \
        "exit status: 0 allowed / valid, 121 denied, 1 a file is invalid (check),\n"               \
        "  119 bad policy or input (explain), 120 bad usage\n"

struct check_opts {
        const char *keys_config;
};

static const struct aidp_cli_opt check_table[] = {
        AIDP_CLI_OPT("keys-config", 0, AIDP_CLI_STRING, offsetof(struct check_opts, keys_config),
                     "FILE", "keys.yaml the views' token keys must be declared in",
                     AIDP_TRUST_ADMIN),
        {0},
};

const struct aidp_cli_spec aidp_cli_policy_check_spec = {
        .prog = PROG " check",
        .synopsis = "[FILE...]",
        .about = "Validate host identity (kind: HostIdentity), residency (ResidencyPolicy),\n"
                 "access (AccessPolicy) and dataset facts (DatasetFacts) files. Without FILE,\n"
                 "checks the installed files under $AIDP_POLICY_DIR or /etc/aidp. As the\n"
                 "supervisor does, installed files must be owned by root and not writable\n"
                 "by group or others (nor their directory), and every time_zone must exist\n"
                 "under /usr/share/zoneinfo. An access policy's views must name token keys\n"
                 "declared in keys.yaml with purpose tokenize.",
        .opts = check_table,
        .footer = EXIT_HELP,
        .max_args = -1,
};

static int cmd_check(int argc, char **argv)
{
        struct aidp_cli_parsed pa;
        struct check_opts co = {0};
        int failed = 0;
        if (!aidp_cli_options(&aidp_cli_policy_check_spec, argc, argv, &co, &pa, &failed))
                return failed;
        const char *dir = getenv(AIDP_POLICY_DIR_ENV);
        if (!dir || !*dir)
                dir = AIDP_POLICY_DIR_DEFAULT;
        if (pa.n_args == 0) {
                static const char *const names[] = {"host.yaml", "residency.yaml", "access.yaml"};
                int found = 0;
                for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                        char path[4096];
                        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                        if (access(path, F_OK) < 0)
                                continue;
                        found++;
                        failed += check_one(path, dir, co.keys_config) < 0;
                }
                if (!found) {
                        fprintf(stderr, PROG " check: error: no policy files in %s\n", dir);
                        return AIDP_EXIT_FAILED;
                }
        }
        for (int i = pa.first_arg; i < argc; i++)
                failed += check_one(argv[i], dir, co.keys_config) < 0;
        return failed ? AIDP_EXIT_FAILED : 0;
}

/* --dataset-facts name=N,classification=C,...: getsubopt() does the splitting. */
static int parse_facts_spec(const char *spec, struct aidp_dataset_facts *ret, aidp_error *err)
{
        enum { K_NAME, K_VERSION, K_CLASS, K_RESIDENCY, K_REGULATION };
        char *const keys[] = {"name", "version", "classification", "residency", "regulation", NULL};
        _cleanup_free_ char *copy = strdup(spec);
        struct aidp_dataset_facts f = {0};
        bool have_class = false;
        int r = 0;
        if (!copy)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        char *p = copy, *value;
        while (*p && r >= 0) {
                int k = getsubopt(&p, keys, &value);
                if (k < 0 || !value || !*value) {
                        r = aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                           "--dataset-facts '%s': expected KEY=VALUE with KEY one "
                                           "of name, version, classification, residency, "
                                           "regulation",
                                           spec);
                        break;
                }
                switch (k) {
                case K_NAME:
                case K_VERSION: {
                        char **slot = k == K_NAME ? &f.name : &f.version;
                        free(*slot);
                        if (!(*slot = strdup(value)))
                                r = -ENOMEM;
                        break;
                }
                case K_CLASS:
                        if (aidp_residency_classification_parse(value, &f.tags.classification) < 0)
                                r = aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                                   "--dataset-facts: unknown classification '%s'",
                                                   value);
                        have_class = true;
                        break;
                case K_RESIDENCY:
                case K_REGULATION:
                        if (!aidp_residency_tag_valid(value)) {
                                r = aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                                   "--dataset-facts: invalid tag '%s'", value);
                                break;
                        }
                        if (k == K_RESIDENCY)
                                r = aidp_strv_push(&f.tags.residency, &f.tags.n_residency, value);
                        else
                                r = aidp_strv_push(&f.tags.regulations, &f.tags.n_regulations,
                                                   value);
                        break;
                }
        }
        if (r == -ENOMEM)
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (r >= 0 && (!f.name || !have_class))
                r = aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                   "--dataset-facts '%s': name and classification are required",
                                   spec);
        struct aidp_data_tags sorted;
        if (r >= 0 && aidp_residency_tags_inherit(&f.tags, 1, &sorted) < 0)
                r = aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        if (r < 0) {
                aidp_residency_facts_free(&f);
                return r;
        }
        aidp_residency_tags_free(&f.tags);
        f.tags = sorted;
        *ret = f;
        return 0;
}

struct explain_opts {
        const char *user;
        struct aidp_cli_list groups;
        enum aidp_residency_op op;
        const char *profile; /* NULL: the built-in defaults */
        enum aidp_net_mode network;
        bool network_set;
        struct aidp_cli_list egress, data, facts;
        const char *host;
        struct aidp_cli_list policies;
        const char *dir;
        const char *keys_config;
        const char *key_dir;
        int64_t at;
        bool json;
};

static void explain_opts_free(struct explain_opts *o)
{
        aidp_cli_list_free(&o->groups);
        aidp_cli_list_free(&o->egress);
        aidp_cli_list_free(&o->data);
        aidp_cli_list_free(&o->facts);
        aidp_cli_list_free(&o->policies);
}

/* The profile the decision looks at: the named profile from the library (or
 * a path), with --network/--egress as what-if overrides, named as the run
 * names it (library name, or file:PATH). A name the library does not know
 * fails as the run would (119), unless --network describes the profile to
 * come: then the built-in defaults' properties with the overrides, and a note. */
static int explain_profile(const struct explain_opts *o, struct aidp_profile *ret, bool *found,
                           aidp_error *err)
{
        *found = true;
        /* As a run: without --profile, the library's baseline. */
        const char *name = o->profile ? o->profile : AIDP_DEFAULT_PROFILE;
        {
                int r = aidp_profile_host_load(name, false, ret, NULL, err);
                if (r == -ENOENT && o->network_set) {
                        *found = false;
                } else if (r < 0) {
                        size_t len = strlen(err->msg);
                        if (r == -ENOENT)
                                aidp_text_printf(err->msg + len, sizeof err->msg - len,
                                                 " (a run with it fails the same way; to ask "
                                                 "about a profile before it exists, describe it "
                                                 "with --network and --egress)");
                        return r;
                } else {
                        free(ret->name);
                        if (asprintf(&ret->name, "%s%s",
                                     aidp_profile_ref_is_path(name) ? "file:" : "", name) < 0) {
                                ret->name = NULL;
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                                      "out of memory");
                        }
                }
        }
        if (!*found) {
                if (aidp_profile_init_defaults(ret) < 0)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                free(ret->name);
                if (!(ret->name = strdup(name)))
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        if (o->network_set)
                ret->network.mode = o->network;
        if (o->egress.n == 0)
                return 0;
        for (size_t i = 0; i < ret->network.n_rules; i++) {
                free(ret->network.rules[i].cidr);
                free(ret->network.rules[i].fqdn);
                free(ret->network.rules[i].region);
        }
        free(ret->network.rules);
        ret->network.n_rules = 0;
        ret->network.rules = calloc(o->egress.n, sizeof *ret->network.rules);
        if (!ret->network.rules)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t i = 0; i < o->egress.n; i++) {
                struct aidp_egress_rule *e = &ret->network.rules[i];
                ret->network.n_rules++;
                _cleanup_free_ char *dest = strdup(o->egress.v[i]);
                if (!dest)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                char *eq = strrchr(dest, '=');
                if (eq) {
                        *eq = '\0';
                        if (!aidp_residency_name_valid(eq + 1))
                                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                                      "--egress %s: invalid region",
                                                      o->egress.v[i]);
                        if (!(e->region = strdup(eq + 1)))
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                                      "out of memory");
                }
                unsigned char addr[16];
                bool is_ip = strchr(dest, '/') || inet_pton(AF_INET, dest, addr) == 1 ||
                             inet_pton(AF_INET6, dest, addr) == 1;
                if (!(*(is_ip ? &e->cidr : &e->fqdn) = strdup(dest)))
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        }
        return 0;
}

static int parse_op(const char *arg, void *dest, aidp_error *err)
{
        if (aidp_residency_op_parse(arg, &((struct explain_opts *)dest)->op) < 0)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--operation: unknown operation '%s'", arg);
        return 0;
}

static int parse_network(const char *arg, void *dest, aidp_error *err)
{
        struct explain_opts *o = dest;
        o->network_set = true;
        if (!strcmp(arg, "none"))
                o->network = AIDP_NET_NONE;
        else if (!strcmp(arg, "egress"))
                o->network = AIDP_NET_EGRESS;
        else
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--network: expected none or egress");
        return 0;
}

static int parse_at(const char *arg, void *dest, aidp_error *err)
{
        (void)err;
        return aidp_cli_parse_time(arg, &((struct explain_opts *)dest)->at);
}

#define EO(f) offsetof(struct explain_opts, f)
#define U     AIDP_TRUST_USER
#define A     AIDP_TRUST_ADMIN

static const struct aidp_cli_opt explain_table[] = {
        AIDP_CLI_OPT("user", 0, AIDP_CLI_STRING, EO(user), "USER",
                     "the caller; groups come from the user database", U),
        AIDP_CLI_OPT("group", 0, AIDP_CLI_LIST, EO(groups), "GROUP", "add a group (repeatable)", U),
        AIDP_CLI_OPT("operation", 0, AIDP_CLI_CUSTOM, 0, "OP",
                     "run (default), seal, unseal, inspect, lineage-read,\ndetokenize", U,
                     .parse = parse_op),
        AIDP_CLI_OPT("profile", 0, AIDP_CLI_STRING, EO(profile), "NAME|PATH",
                     "the profile to run with (default: the built-in one)", U),
        AIDP_CLI_OPT("network", 0, AIDP_CLI_CUSTOM, 0, "MODE",
                     "override the profile's network mode: none or egress", U,
                     .parse = parse_network),
        AIDP_CLI_OPT("egress", 0, AIDP_CLI_LIST, EO(egress), "DEST[=REGION]",
                     "replace the profile's egress rules (repeatable)", U),
        AIDP_CLI_OPT("data", 0, AIDP_CLI_LIST, EO(data), "FILE",
                     "an input: a sealed file (header authenticated, nothing\n"
                     "decrypted) or a DatasetFacts YAML file (repeatable)",
                     U),
        AIDP_CLI_OPT("keys-config", 0, AIDP_CLI_STRING, EO(keys_config), "FILE",
                     "key providers for sealed inputs (as aidp inspect)", A),
        AIDP_CLI_OPT("key-dir", 0, AIDP_CLI_STRING, EO(key_dir), "DIR",
                     "key directory of the file provider", A),
        AIDP_CLI_OPT("dataset-facts", 0, AIDP_CLI_LIST, EO(facts), "SPEC",
                     "an input inline: name=N,classification=C[,version=V]\n"
                     "[,residency=T]...[,regulation=T]... (repeatable)",
                     U),
        AIDP_CLI_OPT("host", 0, AIDP_CLI_STRING, EO(host), "FILE",
                     "host identity (default: DIR/host.yaml)", A),
        AIDP_CLI_OPT("policy", 0, AIDP_CLI_LIST, EO(policies), "FILE",
                     "a policy file, replacing the default of its kind", A),
        AIDP_CLI_OPT("policy-dir", 0, AIDP_CLI_STRING, EO(dir), "DIR",
                     "where the defaults live (default: $AIDP_POLICY_DIR\nor /etc/aidp)", A),
        AIDP_CLI_OPT("at", 0, AIDP_CLI_CUSTOM, 0, "TIME",
                     "now (default), @EPOCH or YYYY-MM-DDTHH:MM:SS(Z|+HH:MM)", U, .parse = parse_at,
                     .expect = "now, @EPOCH or YYYY-MM-DDTHH:MM:SS followed by Z or +HH:MM"),
        AIDP_CLI_OPT("json", 0, AIDP_CLI_FLAG, EO(json), NULL,
                     "print the decision as lineage records it", U),
        {0},
};

const struct aidp_cli_spec aidp_cli_policy_explain_spec = {
        .prog = PROG " explain",
        .synopsis = "--user USER [OPTIONS]",
        .about = "Decide as the supervisor would, print every reason, run nothing.",
        .opts = explain_table,
        .footer = EXIT_HELP,
};

/* The caller as the supervisor would see it under root with --user; a name
 * the local database does not know still gets a decision (*known = false). */
static int explain_caller(const struct explain_opts *o, struct aidp_caller_identity *id,
                          bool *known, aidp_error *err)
{
        int r = aidp_caller_resolve(o->user, 0, NULL, id, err);
        if (r == -ENOENT) {
                *known = false;
                memset(id, 0, sizeof *id);
                id->uid = (uid_t)-1;
                if (!(id->user = strdup(o->user)) || !(id->groups = calloc(1, sizeof *id->groups)))
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        } else if (r < 0) {
                return r;
        }
        for (size_t i = 0; i < o->groups.n; i++)
                if (!aidp_strv_contains(id->groups, id->n_groups, o->groups.v[i]) &&
                    aidp_strv_push(&id->groups, &id->n_groups, o->groups.v[i]) < 0)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

/* The inputs of the decision; a sealed input's schema (issue 18) for the
 * per-column view. */
struct explain_inputs {
        struct aidp_dataset_facts *facts;
        size_t n; /* filled, also on failure */
        bool *sealed;
        struct aidp_schema *schemas;
};

static void explain_inputs_free(struct explain_inputs *in)
{
        for (size_t i = 0; i < in->n; i++) {
                aidp_residency_facts_free(&in->facts[i]);
                aidp_schema_free(&in->schemas[i]);
        }
        free(in->facts);
        free(in->sealed);
        free(in->schemas);
}

/* The inputs: --data files (sealed headers or DatasetFacts YAML), then
 * --dataset-facts specs. */
static int explain_facts(const struct explain_opts *o, struct explain_inputs *in, aidp_error *err)
{
        size_t n = o->data.n + o->facts.n + 1;
        in->facts = calloc(n, sizeof *in->facts);
        in->sealed = calloc(n, sizeof *in->sealed);
        in->schemas = calloc(n, sizeof *in->schemas);
        if (!in->facts || !in->sealed || !in->schemas)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        int r;
        for (size_t i = 0; i < o->data.n; i++, in->n++)
                if ((r = aidp_policy_dataset_facts_load(o->data.v[i], o->keys_config, o->key_dir,
                                                        &in->facts[in->n], &in->sealed[in->n],
                                                        &in->schemas[in->n], err)) < 0)
                        return r;
        for (size_t i = 0; i < o->facts.n; i++, in->n++)
                if ((r = parse_facts_spec(o->facts.v[i], &in->facts[in->n], err)) < 0)
                        return r;
        return 0;
}

/* The per-column view of every sealed input (what-if facts have no schema
 * to show), as text or as the JSON decision's "columns". */
static int explain_columns(const struct explain_inputs *in, const struct aidp_decision *d,
                           struct json_object *j, aidp_error *err)
{
        struct json_object *cols = NULL;
        if (j && json_object_object_add(j, "columns", cols = json_object_new_array()) < 0)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t i = 0; i < in->n && i < d->n_datasets; i++) {
                if (!in->sealed[i])
                        continue;
                int r;
                if (j) {
                        struct json_object *c = NULL;
                        if ((r = aidp_residency_columns_to_json(d, i, &in->schemas[i], &c, err)) <
                            0)
                                return r;
                        if (json_object_array_add(cols, c) < 0) {
                                json_object_put(c);
                                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM,
                                                      "out of memory");
                        }
                        continue;
                }
                _cleanup_free_ char *text = NULL;
                if ((r = aidp_residency_columns_to_text(d, i, &in->schemas[i], &text, err)) < 0)
                        return r;
                fputs(text, stdout);
        }
        return 0;
}

static int explain_print(const struct explain_opts *o, const struct explain_inputs *in,
                         const struct aidp_decision *d, bool known, bool profile_found,
                         aidp_error *err)
{
        if (o->json) {
                struct json_object *j = aidp_residency_decision_to_json(d);
                if (!j)
                        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                int r = explain_columns(in, d, j, err);
                if (r < 0) {
                        json_object_put(j);
                        return r;
                }
                printf("%s\n",
                       json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(j);
                return 0;
        }
        _cleanup_free_ char *text = aidp_residency_decision_to_text(d);
        if (!text)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        char when[64];
        time_t t = (time_t)o->at;
        struct tm tm;
        if (gmtime_r(&t, &tm))
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        else
                snprintf(when, sizeof when, "@%lld", (long long)o->at);
        if (!known)
                printf("note: user '%s' is not in the local user database; groups come "
                       "from --group only\n",
                       o->user);
        if (!profile_found)
                printf("note: profile '%s' is not in the profile library; deciding with "
                       "the built-in defaults' properties\n",
                       o->profile);
        printf("at %s\n%s", when, text);
        return explain_columns(in, d, NULL, err);
}

static int cmd_explain(int argc, char **argv)
{
        aidp_error err = {0};
        struct explain_opts o = {0};
        struct aidp_caller_identity id = {0};
        struct aidp_policy_set set = {0};
        struct aidp_profile profile;
        struct aidp_decision d = {0};
        struct explain_inputs in = {0};
        int status;

        memset(&profile, 0, sizeof profile);
        struct aidp_residency_profile pv = {0};
        o.op = AIDP_OP_RUN;
        o.network = AIDP_NET_NONE;
        o.at = (int64_t)time(NULL);
        struct aidp_cli_parsed pa;
        if (!aidp_cli_options(&aidp_cli_policy_explain_spec, argc, argv, &o, &pa, &status))
                goto out;
        int r;
        if (!o.user) {
                status = aidp_cli_usage_error(PROG " explain", "--user is required");
                goto out;
        }

        bool known = true;
        if ((r = explain_caller(&o, &id, &known, &err)) < 0)
                goto fail;

        /* The installed files (no --policy-dir) are read as the supervisor reads
         * them: root's alone, or an error. */
        struct aidp_policy_sources src = {
                .dir = o.dir,
                .host = o.host,
                .files = o.policies.v,
                .n_files = o.policies.n,
                .trust_env = true,
                .require_root_owned_defaults = !o.dir,
        };
        if ((r = aidp_policy_set_load(&src, &set, &err)) < 0)
                goto fail;

        if ((r = explain_facts(&o, &in, &err)) < 0)
                goto fail;

        bool profile_found;
        if ((r = explain_profile(&o, &profile, &profile_found, &err)) < 0)
                goto fail;
        if ((r = aidp_run_policy_profile_view(&profile, &pv)) < 0) {
                aidp_error_set(&err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
                goto fail;
        }
        struct aidp_policy_query q = {
                .op = o.op,
                .profile = &pv,
                .datasets = in.facts,
                .n_datasets = in.n,
                .at = o.at,
        };
        aidp_caller_view(&id, &q.caller);
        if (!known)
                q.caller.uid = -1;
        if ((r = aidp_policy_decide_with(&set, &q, &d, &err)) < 0)
                goto fail;

        if ((r = explain_print(&o, &in, &d, known, profile_found, &err)) < 0)
                goto fail;
        /* enforcement: audit: a run goes on whatever the verdict, so explain too */
        status = d.allow || d.audit ? 0 : AIDP_EXIT_DENIED;
        goto out;
fail:
        status = aidp_cli_fail(PROG " explain", &err);
out:
        aidp_run_policy_profile_view_free(&pv);
        aidp_residency_decision_free(&d);
        aidp_profile_free(&profile);
        explain_inputs_free(&in);
        aidp_policy_set_free(&set);
        aidp_caller_free(&id);
        explain_opts_free(&o);
        return status;
}

int aidp_cli_policy(int argc, char **argv)
{
        static const struct aidp_cli_cmd cmds[] = {
                {"check", cmd_check, "validate host identity and policy files"},
                {"explain", cmd_explain, "decide as the supervisor would, print every reason"},
                {NULL, NULL, NULL},
        };
        static const struct aidp_cli_group g = {.prog = PROG, .cmds = cmds};
        return aidp_cli_dispatch(&g, argc, argv);
}
