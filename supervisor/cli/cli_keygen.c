/* aidp keygen: a new key file and its purpose in keys.yaml, all or nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "supervisor/cli/cli.h"
#include "supervisor/sealed/keys.h"

struct keygen_cli {
        const char *keys_config, *key_dir, *purpose;
        struct aidp_cli_list datasets;
};

#define KC(f) offsetof(struct keygen_cli, f)

static const struct aidp_cli_opt keygen_opts[] = {
        AIDP_CLI_OPT("purpose", 0, AIDP_CLI_STRING, KC(purpose), "PURPOSE",
                     "kek (default), lineage, tokenize or quarantine", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("datasets", 0, AIDP_CLI_LIST, KC(datasets), "PATTERNS",
                     "limit a kek to these dataset names (globs; repeatable or a,b)",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("keys-config", 0, AIDP_CLI_STRING, KC(keys_config), "FILE",
                     "key provider config (default /etc/aidp/keys.yaml)", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("key-dir", 0, AIDP_CLI_STRING, KC(key_dir), "DIR",
                     "file provider key directory (default /etc/aidp/keys)", AIDP_TRUST_ADMIN),
        {0}};

static const struct aidp_cli_spec keygen_spec = {
        .prog = "aidp keygen",
        .synopsis = "KEY-ID [--purpose kek|lineage|tokenize|quarantine] [--datasets PATTERNS] "
                    "[--key-dir DIR]",
        .about = "Creates DIR/KEY-ID (default /etc/aidp/keys) holding a random 32-byte key,\n"
                 "mode 0400, and declares its purpose in keys.yaml (keys: {KEY-ID: {purpose:\n"
                 "...}}); never overwrites. Only a kek wraps data keys. With the exec\n"
                 "provider a tokenize key is wrapped by it (COMMAND wrap KEY-ID) and kept\n"
                 "as DIR/KEY-ID.wrapped. Run as root: key files must be root's.",
        .opts = keygen_opts,
        .min_args = 1,
        .max_args = 1,
        .args = "KEY-ID",
};

/* --purpose and --datasets into a declaration (usage errors, exit 120). */
static int keygen_decl(const struct keygen_cli *c, const char *id, struct aidp_key_decl *d,
                       aidp_error *err)
{
        memset(d, 0, sizeof *d);
        snprintf(d->id, sizeof d->id, "%s", id);
        const char *p = c->purpose ? c->purpose : "kek";
        for (unsigned i = 1; i < AIDP_KEY_PURPOSE_MAX; i++)
                if (!strcmp(p, aidp_key_purpose_name((enum aidp_key_purpose)i)))
                        d->purpose = (enum aidp_key_purpose)i;
        if (d->purpose == AIDP_KEY_PURPOSE_NONE)
                return aidp_error_set(
                        err, AIDP_EXIT_USAGE, EINVAL,
                        "--purpose: found '%s', expected kek, lineage, tokenize or quarantine", p);
        if (c->datasets.n && d->purpose != AIDP_KEY_PURPOSE_KEK)
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "--datasets: only a kek can be limited to datasets");
        d->datasets = calloc(c->datasets.n + 1, sizeof *d->datasets);
        if (!d->datasets)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t i = 0; i < c->datasets.n; i++) {
                char *copy = strdup(c->datasets.v[i]);
                for (char *save = NULL, *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
                     t = strtok_r(NULL, ",", &save)) {
                        char **n = realloc(d->datasets, (d->n_datasets + 2) * sizeof *n);
                        if (!n)
                                break;
                        d->datasets = n;
                        d->datasets[d->n_datasets++] = strdup(t);
                }
                free(copy);
        }
        return 0;
}

static void decl_free(struct aidp_key_decl *d)
{
        for (size_t i = 0; i < d->n_datasets; i++)
                free(d->datasets[i]);
        free(d->datasets);
}

static int keygen(const struct keygen_cli *c, const char *id, aidp_error *err)
{
        struct aidp_key_decl d;
        int r = keygen_decl(c, id, &d, err);
        struct aidp_keys keys;
        aidp_keys_init(&keys);
        const char *cfg = aidp_keys_config_path(c->keys_config);
        /* Check the declaration can be written before the key exists, and
         * remove the key if writing it fails after all: all or nothing. */
        if (r == 0)
                r = aidp_keys_setup(c->keys_config, c->key_dir, &keys, err);
        /* The declaration goes into the config that governs this key
         * directory: not into the host's when only --key-dir was given. */
        const char *env_dir = getenv("AIDP_KEY_DIR");
        bool declare = c->keys_config || !((c->key_dir && *c->key_dir) || (env_dir && *env_dir));
        if (r == 0 && declare)
                r = aidp_keys_declare(cfg, &d, true, err);
        /* A token key comes from the configured provider (an exec provider
         * wraps it: KEY_DIR/ID.wrapped); every other key is a key file. */
        char kp[4200];
        snprintf(kp, sizeof kp, "%s/%s", keys.dir, id);
        if (r == 0 && d.purpose == AIDP_KEY_PURPOSE_TOKENIZE)
                r = aidp_keys_generate_token(&keys, id, kp, sizeof kp, err);
        else if (r == 0)
                r = aidp_keys_generate(keys.dir, id, err);
        if (r == 0 && !declare) {
                printf("created key %s as %s (mode 0400); not declared in any keys.yaml (a key "
                       "directory was given without --keys-config): it is a kek until declared\n",
                       id, kp);
                goto out;
        }
        if (r == 0 && (r = aidp_keys_declare(cfg, &d, false, err)) < 0)
                unlink(kp);
        if (r == 0)
                printf("created key %s as %s (mode 0400), purpose %s in %s\n", id, kp,
                       aidp_key_purpose_name(d.purpose), cfg);
out:
        decl_free(&d);
        aidp_keys_free(&keys);
        return r;
}

int aidp_cli_keygen(int argc, char **argv)
{
        struct keygen_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&keygen_spec, argc, argv, &c, &pa, &st))
                return st;
        aidp_error err = {0};
        int r = keygen(&c, argv[pa.first_arg], &err);
        aidp_cli_list_free(&c.datasets);
        if (r < 0)
                return aidp_cli_fail("aidp keygen", &err);
        if (geteuid() != 0)
                fprintf(stderr, "aidp keygen: warning: not root: the file provider refuses "
                                "keys not owned by root\n");
        return 0;
}
