/* `aidp policy check`: what an access policy's views need beyond their
 * syntax (views/view_parse.c checks that): the token keys they name and
 * whether any role uses them. */
#include <stdio.h>
#include <string.h>

#include "supervisor/cli/cli_policy.h"
#include "supervisor/sealed/keys.h"

#define PROG "aidp policy check"

/* One tokenize rule's key against keys.yaml; 1 when it is an error. */
static int check_key(const struct aidp_keys *k, const char *path, const struct aidp_policy_view *pv,
                     const char *where, const struct aidp_view_rule *rule)
{
        if (rule->x.kind != AIDP_XF_TOKENIZE)
                return 0;
        const struct aidp_key_decl *d = aidp_keys_find(k, rule->x.key_id);
        if (d && d->purpose == AIDP_KEY_PURPOSE_TOKENIZE)
                return 0;
        if (d)
                fprintf(stderr,
                        PROG ": error: %s:%u: views.%s.%s.%s: key '%s' has purpose %s in %s, "
                             "expected tokenize (every run through this view would be refused)\n",
                        path, pv->loc.line, pv->view.name, where, rule->match, rule->x.key_id,
                        aidp_key_purpose_name(d->purpose), k->config);
        else
                fprintf(stderr,
                        PROG ": error: %s:%u: views.%s.%s.%s: key '%s' is not declared in %s "
                             "(add it with: aidp keygen %s --purpose tokenize)\n",
                        path, pv->loc.line, pv->view.name, where, rule->match, rule->x.key_id,
                        k->config, rule->x.key_id);
        return 1;
}

static bool uses_tokens(const struct aidp_access_policy *p)
{
        for (size_t i = 0; i < p->n_views; i++) {
                const struct aidp_view *v = &p->views[i].view;
                for (size_t k = 0; k < v->n_labels; k++)
                        if (v->labels[k].x.kind == AIDP_XF_TOKENIZE)
                                return true;
                for (size_t k = 0; k < v->n_columns; k++)
                        if (v->columns[k].x.kind == AIDP_XF_TOKENIZE)
                                return true;
        }
        return false;
}

int aidp_cli_policy_check_views(const struct aidp_access_policy *p, const char *path,
                                const char *keys_config)
{
        int errors = 0;
        for (size_t i = 0; i < p->n_views; i++) {
                bool used = false;
                for (size_t r = 0; r < p->n_roles && !used; r++)
                        used = p->roles[r].view == &p->views[i];
                if (!used)
                        fprintf(stderr, PROG ": warning: %s:%u: views.%s: no role uses this view\n",
                                path, p->views[i].loc.line, p->views[i].view.name);
        }
        if (!uses_tokens(p))
                return 0;
        struct aidp_keys k;
        aidp_error err = {0};
        aidp_keys_init(&k);
        if (aidp_keys_setup(keys_config, NULL, &k, &err) < 0) {
                fprintf(stderr, PROG ": error: %s: checking the views' token keys: %s\n", path,
                        err.msg);
                aidp_keys_free(&k);
                return 1;
        }
        if (!k.config[0]) {
                fprintf(stderr,
                        PROG ": warning: %s: token keys not checked: no keys.yaml (%s; "
                             "--keys-config FILE)\n",
                        path, aidp_keys_config_path(keys_config));
                aidp_keys_free(&k);
                return 0;
        }
        for (size_t i = 0; i < p->n_views; i++) {
                const struct aidp_view *v = &p->views[i].view;
                for (size_t r = 0; r < v->n_labels; r++)
                        errors += check_key(&k, path, &p->views[i], "labels", &v->labels[r]);
                for (size_t r = 0; r < v->n_columns; r++)
                        errors += check_key(&k, path, &p->views[i], "columns", &v->columns[r]);
        }
        aidp_keys_free(&k);
        return errors;
}
