/* The learn-mode rewrite of a seccomp policy: what was allowed notifies, what was
 * denied stays denied, and the listener hand-over (sendmsg on the hand-over
 * socket) is allowed even when the base allows sendmsg without conditions,
 * which in libseccomp would otherwise override the exception. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/seccomp_compile.h"
#include "profiles/seccomp_policy.h"

#define SOCK 9

static char *pfc_of(struct aidp_sc_policy *p)
{
        char *text = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_seccomp_export_pfc(p, &text, &e), 0, "%s", e.msg);
        return text;
}

/* The PFC block of one syscall: from its "filter for syscall" line to the next. */
static char *block_of(const char *pfc, const char *name)
{
        char head[64];
        snprintf(head, sizeof head, "# filter for syscall \"%s\"", name);
        const char *b = strstr(pfc, head);
        cr_assert_not_null(b, "no filter for %s in\n%s", name, pfc);
        const char *e = strstr(b + 1, "# filter for syscall");
        if (!e)
                e = strstr(b, "# default action");
        return strndup(b, e ? (size_t)(e - b) : strlen(b));
}

/* "if ($a0.lo32 == 9)" directly followed by "action ALLOW;" (indentation varies). */
static bool allows_sock(const char *block)
{
        const char *p = strstr(block, "if ($a0.lo32 == 9)");
        if (!p)
                return false;
        p += strlen("if ($a0.lo32 == 9)");
        p += strspn(p, " \n");
        return !strncmp(p, "action ALLOW;", 13);
}

static void allowlist(struct aidp_sc_policy *p, const char *const *names, size_t n)
{
        memset(p, 0, sizeof *p);
        p->default_action = AIDP_SC_ERRNO;
        p->default_errno = 1;
        struct aidp_sc_rule r = {.names = (char **)names, .n_names = n, .action = AIDP_SC_ALLOW};
        cr_assert_eq(aidp_sc_policy_add(p, &r), 0);
        static const char *const denied[] = {"ptrace"};
        struct aidp_sc_rule d = {
                .names = (char **)denied, .n_names = 1, .action = AIDP_SC_ERRNO, .errno_ret = 13};
        cr_assert_eq(aidp_sc_policy_add(p, &d), 0);
}

Test(seccomp_learn, an_unconditional_sendmsg_keeps_the_handover_allowed)
{
        static const char *const names[] = {"read", "sendmsg", "write"};
        struct aidp_sc_policy p;
        allowlist(&p, names, 3);
        cr_assert_eq(aidp_sc_policy_learn(&p, SOCK), 0);
        char *pfc = pfc_of(&p);
        char *sm = block_of(pfc, "sendmsg");
        cr_assert(allows_sock(sm), "%s", sm);
        cr_assert(strstr(sm, "action 0x7fc00000;"), "other sendmsg calls notify:\n%s", sm);
        char *rd = block_of(pfc, "read");
        cr_assert(strstr(rd, "action 0x7fc00000;"), "an allowed call notifies:\n%s", rd);
        char *pt = block_of(pfc, "ptrace");
        cr_assert(strstr(pt, "action ERRNO(13);"), "a denial stays:\n%s", pt);
        cr_assert(strstr(pfc, "# default action\n  action ERRNO(1);"), "%s", pfc);
        free(sm);
        free(rd);
        free(pt);
        free(pfc);
        aidp_sc_policy_free(&p);
}

Test(seccomp_learn, a_default_allow_policy_notifies_by_default)
{
        struct aidp_sc_policy p;
        cr_assert_eq(aidp_sc_policy_baseline(&p), 0);
        cr_assert_eq(aidp_sc_policy_learn(&p, SOCK), 0);
        cr_assert_eq(p.default_action, AIDP_SC_NOTIFY);
        char *pfc = pfc_of(&p);
        char *sm = block_of(pfc, "sendmsg");
        cr_assert(allows_sock(sm), "%s", sm);
        free(sm);
        free(pfc);
        aidp_sc_policy_free(&p);
}

Test(seccomp_learn, a_policy_that_denies_sendmsg_still_hands_over)
{
        static const char *const names[] = {"read", "write"};
        struct aidp_sc_policy p;
        allowlist(&p, names, 2);
        cr_assert_eq(aidp_sc_policy_learn(&p, SOCK), 0);
        char *pfc = pfc_of(&p);
        char *sm = block_of(pfc, "sendmsg");
        cr_assert(allows_sock(sm), "%s", sm);
        cr_assert_null(strstr(sm, "0x7fc00000"), "a denied sendmsg must not notify:\n%s", sm);
        free(sm);
        free(pfc);
        aidp_sc_policy_free(&p);
}
