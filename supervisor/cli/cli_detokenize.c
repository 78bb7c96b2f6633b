/* aidp detokenize: siv tokens of a dataset's view back into values, for a
 * caller the access policy grants `detokenize` on that dataset, each use
 * recorded in lineage (allowed or denied) before any value is printed.
 * docs/sealed-data.md, "Detokenize". */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/tool_access.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/sealed/keys.h"
#include "views/view.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

#define MAX_TOKENS  100000
#define MAX_DOMAINS 16

struct detok_cli {
        const char *data, *key, *keys_config, *key_dir, *user, *policy_dir;
        bool json;
};

#define DC(f) offsetof(struct detok_cli, f)

static const struct aidp_cli_opt detok_opts[] = {
        AIDP_CLI_OPT("data", 'd', AIDP_CLI_STRING, DC(data), "FILE.sealed",
                     "the dataset the tokens came from: the policy decides on it", AIDP_TRUST_USER),
        AIDP_CLI_OPT("key", 'k', AIDP_CLI_STRING, DC(key), "KEY-ID",
                     "the tokenize key of the view (keys.yaml purpose tokenize)", AIDP_TRUST_USER),
        AIDP_CLI_OPT("json", 0, AIDP_CLI_FLAG, DC(json), NULL,
                     "print [{token, value}] as JSON (values with newlines)", AIDP_TRUST_USER),
        AIDP_CLI_OPT("user", 'u', AIDP_CLI_STRING, DC(user), "USER",
                     "root deciding for USER (name or uid): the policy decides and\n"
                     "lineage records USER, as for a sudo user",
                     AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("policy-dir", 0, AIDP_CLI_STRING, DC(policy_dir), "DIR",
                     "the policy that decides for --user (default /etc/aidp)", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("keys-config", 0, AIDP_CLI_STRING, DC(keys_config), "FILE",
                     "key provider config (default /etc/aidp/keys.yaml)", AIDP_TRUST_ADMIN),
        AIDP_CLI_OPT("key-dir", 0, AIDP_CLI_STRING, DC(key_dir), "DIR",
                     "file provider key directory (default /etc/aidp/keys)", AIDP_TRUST_ADMIN),
        {0}};

static const struct aidp_cli_spec detok_spec = {
        .prog = "aidp detokenize",
        .synopsis = "--data FILE.sealed --key KEY-ID [--user USER] [TOKEN...]",
        .about = "Turns reversible (siv) tokens back into the values they replaced, one per\n"
                 "line in order (TOKENs, or stdin one per line). Root, or a user through sudo\n"
                 "(or named by root with --user) whom the access policy grants the operation\n"
                 "`detokenize` on the dataset, for that dataset's own tokens only (a domain\n"
                 "some view of the policy gives a column of its schema under KEY-ID);\n"
                 "every use is recorded in lineage (user, key, domains, count, allowed or\n"
                 "denied) before a value is printed. Denied: exit 121.",
        .opts = detok_opts,
        .min_args = 0,
        .max_args = -1,
        .args = "TOKEN",
};

struct detok {
        char **tokens;
        size_t n;
        char **plain;
        size_t *plain_len;
        char domains[MAX_DOMAINS][AIDP_VIEW_DOMAIN_MAX + 1];
        size_t n_domains;
};

static void detok_free(struct detok *t)
{
        for (size_t i = 0; i < t->n; i++) {
                free(t->tokens[i]);
                if (t->plain && t->plain[i]) {
                        explicit_bzero(t->plain[i], t->plain_len[i]);
                        free(t->plain[i]);
                }
        }
        free(t->tokens);
        free(t->plain);
        free(t->plain_len);
}

static int add_token(struct detok *t, const char *s, size_t len, aidp_error *err)
{
        if (t->n >= MAX_TOKENS)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG, "at most %d tokens", MAX_TOKENS);
        char **n = realloc(t->tokens, (t->n + 1) * sizeof *n);
        if (!n)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        t->tokens = n;
        if (!(t->tokens[t->n] = strndup(s, len)))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        t->n++;
        /* "<domain>~<base64url>": the domain for the record */
        const char *tilde = memchr(s, '~', len);
        size_t dl = tilde ? (size_t)(tilde - s) : 0;
        if (!tilde || dl == 0 || dl > AIDP_VIEW_DOMAIN_MAX)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "token %zu: not a reversible (siv) token "
                                      "(DOMAIN~...)",
                                      t->n);
        for (size_t i = 0; i < t->n_domains; i++)
                if (strlen(t->domains[i]) == dl && !memcmp(t->domains[i], s, dl))
                        return 0;
        if (t->n_domains < MAX_DOMAINS)
                snprintf(t->domains[t->n_domains++], sizeof t->domains[0], "%.*s", (int)dl, s);
        return 0;
}

static int read_tokens(struct detok *t, int argc, char **argv, int first, aidp_error *err)
{
        int r = 0;
        for (int i = first; i < argc && r == 0; i++)
                r = add_token(t, argv[i], strlen(argv[i]), err);
        if (first < argc || r < 0)
                return r;
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (r == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        n--;
                if (n > 0)
                        r = add_token(t, line, (size_t)n, err);
        }
        free(line);
        return r;
}

/* The lineage record of one use, written before any value is printed: an
 * OTHER event with the aidp_detokenize run facet. */
static int record(uid_t uid, const struct detok_cli *c, const struct aidp_sealed_header *h,
                  const struct detok *t, bool allowed, const char *why, aidp_error *err)
{
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        _cleanup_(json_object_putp) json_object *ev =
                aidp_lineage_event_new(AIDP_LINEAGE_OTHER, id, NULL, "detokenize");
        if (!ev)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        struct passwd *pw = getpwuid(uid);
        aidp_lineage_set_caller(ev, uid, pw ? pw->pw_gid : 0, pw ? pw->pw_name : NULL, NULL);
        json_object *f = aidp_lineage_run_facet(ev, "aidp_detokenize");
        json_object_object_add(f, "user", pw ? json_object_new_string(pw->pw_name) : NULL);
        json_object_object_add(f, "uid", json_object_new_int64(uid));
        json_object_object_add(f, "keyId", json_object_new_string(c->key));
        json_object *d = json_object_new_array();
        for (size_t i = 0; i < t->n_domains; i++)
                json_object_array_add(d, json_object_new_string(t->domains[i]));
        json_object_object_add(f, "domains", d);
        json_object_object_add(f, "count", json_object_new_uint64(t->n));
        json_object_object_add(f, "decision", json_object_new_string(allowed ? "allow" : "deny"));
        json_object_object_add(f, "dataset", json_object_new_string(h ? h->meta.name : c->data));
        json_object_object_add(f, "path", json_object_new_string(c->data));
        if (why)
                json_object_object_add(f, "reason", json_object_new_string(why));
        aidp_lineage_add_decision(ev, h ? h->meta.name : c->data, allowed ? "allow" : "deny",
                                  "detokenize", why ? why : "granted");
        struct aidp_lineage *lg = NULL;
        struct aidp_lineage_options lo = {.create_key = true, .publish_heads = true};
        int r = aidp_lineage_open(&lg, &lo, err);
        if (r == 0)
                r = aidp_lineage_append(lg, ev, err);
        aidp_lineage_free(lg);
        return r < 0 ? aidp_error_wrap(err, "recording detokenize in lineage") : 0;
}

static void print_values(const struct detok_cli *c, const struct detok *t)
{
        if (!c->json) {
                for (size_t i = 0; i < t->n; i++) {
                        fwrite(t->plain[i], 1, t->plain_len[i], stdout);
                        fputc('\n', stdout);
                }
                return;
        }
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < t->n; i++) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "token", json_object_new_string(t->tokens[i]));
                json_object_object_add(
                        o, "value", json_object_new_string_len(t->plain[i], (int)t->plain_len[i]));
                json_object_array_add(a, o);
        }
        puts(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY));
        json_object_put(a);
}

/* Every token reversed (into memory) before anything is printed: one bad
 * token prints nothing. */
static int reverse_all(const struct aidp_token_keys *k, const char *key_id, struct detok *t,
                       aidp_error *err)
{
        t->plain = calloc(t->n ? t->n : 1, sizeof *t->plain);
        t->plain_len = calloc(t->n ? t->n : 1, sizeof *t->plain_len);
        if (!t->plain || !t->plain_len)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        for (size_t i = 0; i < t->n; i++) {
                int r = aidp_token_reverse(k, key_id, t->tokens[i], &t->plain[i], &t->plain_len[i],
                                           err);
                if (r < 0)
                        return aidp_error_wrap(err, "token %zu", i + 1);
        }
        return 0;
}

static int resolve_user(const char *name, uid_t *ret, aidp_error *err)
{
        struct passwd *pw = getpwnam(name);
        char *end = NULL;
        unsigned long n = strtoul(name, &end, 10);
        if (!pw && end && end != name && !*end)
                pw = getpwuid((uid_t)n);
        if (!pw)
                return aidp_error_set(err, AIDP_EXIT_USAGE, ENOENT, "--user %s: no such user",
                                      name);
        *ret = pw->pw_uid;
        return 0;
}

static int detokenize(const struct detok_cli *c, const struct aidp_cli_parsed *pa, int argc,
                      char **argv, aidp_error *err)
{
        struct detok t = {0};
        struct aidp_tool_access acc = {0};
        _cleanup_(aidp_sealed_closep) struct aidp_sealed *s = NULL;
        _cleanup_secret_ struct aidp_secret km = {0};
        struct aidp_keys keys;
        aidp_keys_init(&keys);
        int r = read_tokens(&t, argc, argv, pa->first_arg, err);
        if (r < 0)
                goto out;
        if (geteuid() != 0) {
                r = aidp_error_set(err, AIDP_EXIT_DENIED, EPERM,
                                   "detokenize runs as root or through sudo (token keys are "
                                   "root's, and every use is recorded in lineage)");
                goto out;
        }
        r = aidp_tool_open_sealed(&detok_spec, pa, c->data, AIDP_OP_DETOKENIZE, c->keys_config,
                                  c->key_dir, &acc, &s, err);
        uid_t uid = acc.uid;
        /* Root for another user (the options are admin-only): the policy
         * decides for that user, as for a sudo user. */
        if (r == 0 && c->user && (r = resolve_user(c->user, &uid, err)) == 0)
                r = aidp_tool_decide(uid, AIDP_OP_DETOKENIZE, aidp_sealed_header_of(s),
                                     c->policy_dir, err);
        /* Decided by the policy (a sudo user or root's --user): only this
         * dataset's own token domains. */
        if (r == 0 && (acc.for_user || c->user))
                r = aidp_tool_check_token_domains(aidp_sealed_header_of(s),
                                                  c->user ? c->policy_dir : NULL, c->key, t.tokens,
                                                  t.n, err);
        if (r < 0 && err->status == AIDP_EXIT_DENIED) {
                aidp_error rec = {0};
                if (record(uid, c, s ? aidp_sealed_header_of(s) : NULL, &t, false, err->msg, &rec) <
                    0)
                        fprintf(stderr, "aidp detokenize: error: %s\n", rec.msg);
                goto out;
        }
        if (r < 0)
                goto out;
        if ((r = aidp_keys_setup(c->keys_config, c->key_dir, &keys, err)) < 0 ||
            (r = aidp_secret_alloc(&km, sizeof(struct aidp_token_key), err)) < 0)
                goto out;
        struct aidp_token_key *tk = (struct aidp_token_key *)km.p;
        if ((r = aidp_keys_read_token(&keys, c->key, tk, err)) < 0)
                goto out;
        struct aidp_token_keys tks = {.keys = tk, .n = 1};
        if ((r = reverse_all(&tks, c->key, &t, err)) < 0)
                goto out;
        /* No un-audited reversal: the record is durable before a value is out. */
        if ((r = record(uid, c, aidp_sealed_header_of(s), &t, true, NULL, err)) < 0)
                goto out;
        print_values(c, &t);
out:
        aidp_keys_free(&keys);
        detok_free(&t);
        return r;
}

int aidp_cli_detokenize(int argc, char **argv)
{
        struct detok_cli c = {0};
        struct aidp_cli_parsed pa;
        int st;
        if (!aidp_cli_options(&detok_spec, argc, argv, &c, &pa, &st))
                return st;
        if (c.policy_dir && !c.user)
                return aidp_cli_usage_error("aidp detokenize", "%s",
                                            "--policy-dir decides for --user: give both");
        if (!c.data || !c.key)
                return aidp_cli_usage_error("aidp detokenize", "%s",
                                            "--data FILE.sealed and --key KEY-ID are required");
        aidp_error err = {0};
        if (detokenize(&c, &pa, argc, argv, &err) < 0)
                return aidp_cli_fail("aidp detokenize", &err);
        return 0;
}
