/* The learn-mode rewrite of a seccomp policy (aidp profile learn). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/seccomp_policy.h"

static bool notifies(enum aidp_sc_action a)
{
        return a == AIDP_SC_ALLOW || a == AIDP_SC_LOG;
}

/* Take "sendmsg" out of rule i (which notifies) and add it back as a rule of its
 * own that notifies only when arg 0 is not the hand-over socket. libseccomp lets
 * a rule without conditions override every conditional rule of the same syscall,
 * so a plain "sendmsg" in the profile's allowlist would otherwise swallow the
 * exception and the hand-over would wait for a listener nobody has yet. */
static int split_sendmsg(struct aidp_sc_policy *p, size_t i, int sock)
{
        struct aidp_sc_rule *r = &p->rules[i];
        size_t k = 0;
        while (k < r->n_names && strcmp(r->names[k], "sendmsg"))
                k++;
        if (k == r->n_names)
                return 0;
        bool on_arg0 = false;
        for (size_t a = 0; a < r->n_args; a++)
                on_arg0 = on_arg0 || r->args[a].index == 0;
        /* A rule already conditional on the fd keeps its own test; one with six
         * conditions cannot take a seventh (the compiler refuses more). */
        if (on_arg0 || r->n_args >= 6)
                return 0;
        struct aidp_sc_arg args[6];
        if (r->n_args)
                memcpy(args, r->args, r->n_args * sizeof *args);
        args[r->n_args] =
                (struct aidp_sc_arg){.index = 0, .op = AIDP_SC_OP_NE, .value = (uint64_t)sock};
        char *name = r->names[k];
        struct aidp_sc_rule own = {.names = &name,
                                   .n_names = 1,
                                   .action = AIDP_SC_NOTIFY,
                                   .args = args,
                                   .n_args = r->n_args + 1};
        int rc = aidp_sc_policy_add(p, &own); /* may move p->rules */
        if (rc < 0)
                return rc;
        r = &p->rules[i];
        free(r->names[k]);
        memmove(r->names + k, r->names + k + 1, (r->n_names - k - 1) * sizeof *r->names);
        r->n_names--;
        return 0;
}

int aidp_sc_policy_learn(struct aidp_sc_policy *p, int sock)
{
        if (notifies(p->default_action))
                p->default_action = AIDP_SC_NOTIFY;
        size_t n = p->n_rules; /* not the rules split_sendmsg adds */
        for (size_t i = 0; i < n; i++) {
                if (!notifies(p->rules[i].action))
                        continue;
                p->rules[i].action = AIDP_SC_NOTIFY;
                int rc = split_sendmsg(p, i, sock);
                if (rc < 0)
                        return rc;
        }
        static const char *const sendmsg_name[] = {"sendmsg"};
        struct aidp_sc_arg a = {.index = 0, .op = AIDP_SC_OP_EQ, .value = (uint64_t)sock};
        struct aidp_sc_rule rule = {.names = (char **)sendmsg_name,
                                    .n_names = 1,
                                    .action = AIDP_SC_ALLOW,
                                    .args = &a,
                                    .n_args = 1};
        return aidp_sc_policy_add(p, &rule);
}
