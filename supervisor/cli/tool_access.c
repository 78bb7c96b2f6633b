/* `aidp unseal` and `aidp inspect` for their caller (tool_access.h). */
#define _GNU_SOURCE
#include "supervisor/cli/tool_access.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "residency/decide.h"
#include "supervisor/cli/trust.h"
#include "supervisor/run/caller.h"
#include "supervisor/run/policy_clock.h"
#include "supervisor/run/policy_load.h"

extern char **environ;

static int no_policy(const char *user, aidp_error *err)
{
        return aidp_error_set(err, AIDP_EXIT_DENIED, EACCES,
                              "sealed data needs an access policy, and none is installed: "
                              "install " AIDP_POLICY_DIR_DEFAULT "/access.yaml (root-owned), "
                              "for example\n"
                              "  apiVersion: aidp/v1\n"
                              "  kind: AccessPolicy\n"
                              "  roles:\n"
                              "    reader: {operations: [unseal, inspect], datasets: [\"*\"], "
                              "max_classification: internal}\n"
                              "  users:\n"
                              "    %s: {roles: [reader]}\n"
                              "(docs/policy.md)",
                              user ? user : "USER");
}

/* The installed policy's decision for uid on one authenticated header: the
 * same files, caller identity and decision as a run's (run_policy.c), with
 * the tool's operation and no profile. *ret_allow, and err set on a denial. */
static int decide(const struct aidp_policy_set *set, struct aidp_caller_identity *who,
                  enum aidp_residency_op op, const struct aidp_sealed_header *h, bool *ret_allow,
                  aidp_error *err)
{
        struct aidp_dataset_facts facts;
        int r = aidp_policy_facts_from_header(h, &facts, err);
        if (r < 0)
                return r;
        struct aidp_policy_clock clock = {0};
        int64_t now = (int64_t)time(NULL);
        struct aidp_decision d = {0};
        if ((r = aidp_policy_clock_resolve(set->access, now, &clock, err)) >= 0) {
                struct aidp_decision_request req = {
                        .op = op,
                        .datasets = &facts,
                        .n_datasets = 1,
                        .host = set->host,
                        .residency = set->residency,
                        .access = set->access,
                };
                aidp_caller_view(who, &req.caller);
                aidp_policy_clock_view(&clock, now, &req.time);
                r = aidp_residency_decide(&req, &d, err);
        }
        if (r >= 0) {
                *ret_allow = d.allow;
                aidp_residency_decision_to_error(&d, err);
        }
        aidp_residency_decision_free(&d);
        aidp_policy_clock_free(&clock);
        aidp_residency_facts_free(&facts);
        return r;
}

/* The policy of dir for uid: its files, the user's identity and groups. */
static int load_for(uid_t uid, const char *dir, struct aidp_policy_set *set,
                    struct aidp_caller_identity *who, aidp_error *err)
{
        struct aidp_policy_sources src = {.dir = dir, .require_root_owned = true};
        int r = aidp_policy_set_load(&src, set, err);
        if (r < 0)
                return aidp_error_wrap(err, "loading the access and residency policy");
        /* Identity from the uid sudo proved (or root named), groups from the
         * user database. */
        if ((r = aidp_caller_resolve(NULL, uid, environ, who, err)) < 0)
                return r;
        if (!set->host && !set->residency && !set->access)
                return no_policy(who->user, err);
        return 0;
}

int aidp_tool_decide(uid_t uid, enum aidp_residency_op op, const struct aidp_sealed_header *h,
                     const char *policy_dir, aidp_error *err)
{
        struct aidp_policy_set set = {0};
        struct aidp_caller_identity who = {0};
        bool ok = false;
        int r = load_for(uid, policy_dir ? policy_dir : AIDP_POLICY_DIR_DEFAULT, &set, &who, err);
        if (r >= 0 && (r = decide(&set, &who, op, h, &ok, err)) >= 0 && !ok)
                r = -EACCES;
        aidp_caller_free(&who);
        aidp_policy_set_free(&set);
        return r;
}

/* Does view v give a column of schema s reversible tokens of domain dom
 * (dl bytes) under key_id? */
static bool view_gives(const struct aidp_view *v, const struct aidp_schema *s, const char *key_id,
                       const char *dom, size_t dl)
{
        const struct aidp_view *vs[1] = {v};
        for (size_t f = 0; f < s->n_files; f++) {
                struct aidp_file_view fv = {0};
                aidp_error e = {0};
                if (aidp_view_resolve(vs, 1, &s->files[f], &fv, &e) < 0)
                        continue;
                bool hit = false;
                for (size_t c = 0; c < fv.n_columns && !hit; c++) {
                        const struct aidp_xform *x = &fv.columns[c].x;
                        hit = x->kind == AIDP_XF_TOKENIZE && x->mode == AIDP_TOK_SIV &&
                              !strcmp(x->key_id, key_id) && strlen(x->domain) == dl &&
                              !memcmp(x->domain, dom, dl);
                }
                aidp_file_view_free(&fv);
                if (hit)
                        return true;
        }
        return false;
}

int aidp_tool_check_token_domains(const struct aidp_sealed_header *h, const char *policy_dir,
                                  const char *key_id, char *const *tokens, size_t n,
                                  aidp_error *err)
{
        struct aidp_policy_sources src = {.dir = policy_dir ? policy_dir : AIDP_POLICY_DIR_DEFAULT,
                                          .require_root_owned = true};
        struct aidp_policy_set set = {0};
        struct aidp_schema schema = {0};
        int r = aidp_policy_set_load(&src, &set, err);
        if (r < 0)
                return aidp_error_wrap(err, "loading the access policy");
        if ((r = aidp_sealed_header_schema(h, &schema, err)) < 0)
                goto out;
        for (size_t i = 0; i < n; i++) {
                const char *tilde = strchr(tokens[i], '~');
                size_t dl = tilde ? (size_t)(tilde - tokens[i]) : 0;
                bool ok = false;
                for (size_t v = 0; set.access && v < set.access->n_views && !ok; v++)
                        ok = view_gives(&set.access->views[v].view, &schema, key_id, tokens[i], dl);
                if (!ok) {
                        r = aidp_error_set(err, AIDP_EXIT_DENIED, EACCES,
                                           "token %zu: domain '%.*s' under key %s is not a "
                                           "reversible token domain of any view of dataset %s's "
                                           "columns: a detokenize grant on %s reverses its own "
                                           "tokens only",
                                           i + 1, (int)dl, tokens[i], key_id, h->meta.name,
                                           h->meta.name);
                        goto out;
                }
        }
out:
        aidp_schema_free(&schema);
        aidp_policy_set_free(&set);
        return r;
}

/* Root acting for a sudo user: the policy installed in /etc/aidp decides,
 * for op (inspect: an unseal grant also lets the header be seen; any other
 * operation, detokenize, only by its own grant). */
static int user_policy(struct aidp_tool_access *acc, enum aidp_residency_op op,
                       const struct aidp_sealed_header *h, aidp_error *err)
{
        if (op != AIDP_OP_UNSEAL && op != AIDP_OP_INSPECT)
                return aidp_tool_decide(acc->uid, op, h, NULL, err);
        struct aidp_policy_set set = {0};
        struct aidp_caller_identity who = {0};
        int r = load_for(acc->uid, AIDP_POLICY_DIR_DEFAULT, &set, &who, err);
        if (r < 0)
                goto out;
        bool unseal = false, inspect = false;
        aidp_error e2 = {0};
        if ((r = decide(&set, &who, AIDP_OP_UNSEAL, h, &unseal, &e2)) < 0) {
                *err = e2;
                goto out;
        }
        acc->may_unseal = unseal;
        if (op == AIDP_OP_UNSEAL) {
                if (!unseal) {
                        *err = e2;
                        r = -EACCES;
                }
                goto out;
        }
        if ((r = decide(&set, &who, AIDP_OP_INSPECT, h, &inspect, err)) >= 0 && !inspect && !unseal)
                r = -EACCES;
        if (r >= 0)
                aidp_error_clear(err);
out:
        aidp_caller_free(&who);
        aidp_policy_set_free(&set);
        return r;
}

/* Who is asking, and the credentials their files are opened with. */
static int identify(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *p,
                    struct aidp_tool_access *acc, aidp_error *err)
{
        memset(acc, 0, sizeof *acc);
        acc->may_unseal = true;
        if (geteuid() != 0) {
                /* No authority but the caller's own: nothing to decide. */
                acc->kind = AIDP_CALLER_USER;
                acc->uid = getuid();
                return aidp_ascaller_for_uid(acc->uid, getgid(), &acc->who, err);
        }
        /* Root (or setuid root): an admin, or a user sudo proved. */
        int r = aidp_trust_caller(environ, &acc->kind, &acc->uid, err);
        if (r < 0)
                return r;
        if (acc->kind == AIDP_CALLER_ADMIN)
                return aidp_ascaller_for_uid(0, 0, &acc->who, err);
        /* Root for a sudo user: the user's word on keys and configuration
         * counts for nothing (the option and environment tables). */
        acc->for_user = true;
        if ((r = aidp_cli_check_trust(spec, p, AIDP_CALLER_USER, false, err)) < 0 ||
            (r = aidp_cli_check_env(environ, AIDP_CLI_BIN_AIDP, AIDP_CALLER_USER, false, err)) < 0)
                return r;
        return aidp_ascaller_for_uid(acc->uid, (gid_t)-1, &acc->who, err);
}

int aidp_tool_open_sealed(const struct aidp_cli_spec *spec, const struct aidp_cli_parsed *p,
                          const char *file, enum aidp_residency_op op, const char *keys_config,
                          const char *key_dir, struct aidp_tool_access *acc,
                          struct aidp_sealed **ret, aidp_error *err)
{
        int r = identify(spec, p, acc, err);
        if (r < 0)
                return r;
        int fd = -1;
        if (acc->for_user) {
                /* The user's file, opened as the user: never another user's
                 * 0600 dataset, never through a symlink or a FIFO. */
                struct aidp_ascaller_req q = {.path = file, .how = AIDP_ASCALLER_READ};
                int e = 0;
                if ((r = aidp_ascaller_open(&acc->who, &q, 1, &fd, &e, err)) < 0)
                        return r;
                if (fd < 0)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, e, "%s: %s (as uid %u)", file,
                                              aidp_ascaller_strerror(q.how, e), (unsigned)acc->uid);
        }
        struct aidp_keys keys;
        aidp_keys_init(&keys);
        r = aidp_keys_setup(keys_config, key_dir, &keys, err);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
        } else if (fd >= 0) {
                r = aidp_sealed_open_fd(fd, file, &keys, ret, err);
        } else {
                r = aidp_sealed_open(file, &keys, ret, err);
        }
        char key_id[AIDP_SEALED_KEY_ID_MAX + 1] = "";
        bool quarantined = r >= 0 && acc->for_user &&
                           aidp_keys_is_quarantine(&keys, aidp_sealed_header_of(*ret)->meta.key_id);
        if (quarantined)
                snprintf(key_id, sizeof key_id, "%s", aidp_sealed_header_of(*ret)->meta.key_id);
        aidp_keys_free(&keys);
        if (r < 0 || !acc->for_user)
                return r;
        /* Decided on the authenticated header, before any payload byte. A
         * quarantined output (the leak scan found hidden values in it) is
         * for admins only, whatever the policy grants on its tags. */
        if (quarantined && op == AIDP_OP_UNSEAL)
                r = aidp_error_set(err, AIDP_EXIT_DENIED, EACCES,
                                   "%s is a quarantined output (an output leak scan found hidden "
                                   "values in it; sealed under the quarantine key %s): only an "
                                   "admin can unseal it",
                                   file, key_id);
        else
                r = user_policy(acc, op, aidp_sealed_header_of(*ret), err);
        if (quarantined)
                acc->may_unseal = false;
        if (r < 0) {
                aidp_sealed_close(*ret);
                *ret = NULL;
        }
        return r;
}
