/* Golden tests of the compiled seccomp filter of every shipped profile
 * (every profiles/NAME.yaml), without root and without the kernel: the effective
 * policy goes through the same libseccomp context as the filter the sandbox
 * loads (profiles/seccomp_compile.c) and is exported as PFC text, which is
 * compared with tests/data/seccomp-pfc/<arch>/<profile>.pfc.
 *
 * AIDP_UPDATE_GOLDEN=1 rewrites the goldens (review the diff before
 * committing). The text depends on the libseccomp version: the goldens are
 * made with Debian 12's (2.5.4), the version CI installs. */
#include <criterion/criterion.h>
#include <glob.h>
#include <libgen.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profiles/internal.h"
#include "profiles/seccomp_compile.h"
#include "tests/unit/profile_testenv.h"

static void init(void)
{
        cr_assert_eq(chdir(AIDP_SOURCE_DIR), 0);
}

static char *read_all(const char *path)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        char *b = calloc(1, 4 << 20);
        size_t n = fread(b, 1, (4 << 20) - 1, f);
        b[n] = '\0';
        fclose(f);
        return b;
}

static void golden_dir(char *buf, size_t n)
{
        const char *arch = aidp_profiles_arch_name(seccomp_arch_native());
        snprintf(buf, n, "tests/data/seccomp-pfc/%s", arch);
}

/* The profile's PFC text, loaded from the source tree's library. */
static char *pfc_of(const char *name)
{
        static const char *const search[] = {"profiles"};
        struct memfs fs = {.real_dir = "."};
        struct aidp_profile_env env = memfs_env(&fs, search, 1);
        struct aidp_profile p;
        aidp_error err = {0};
        cr_assert_eq(aidp_profile_load(name, &env, &p, NULL, &err), 0, "%s: %s", name, err.msg);
        char *text = NULL;
        cr_assert_eq(aidp_seccomp_export_pfc(&p.seccomp, &text, &err), 0, "%s: %s", name, err.msg);
        aidp_profile_free(&p);
        return text;
}

Test(seccomp_pfc, every_shipped_profile_matches_its_golden, .init = init)
{
        char dir[256];
        golden_dir(dir, sizeof dir);
        bool update = getenv("AIDP_UPDATE_GOLDEN") != NULL;
        if (update) {
                mkdir("tests/data/seccomp-pfc", 0755);
                mkdir(dir, 0755);
        }
        glob_t g;
        cr_assert_eq(glob("profiles/*.yaml", 0, NULL, &g), 0, "no shipped profiles found");
        cr_assert_geq(g.gl_pathc, 4);
        for (size_t i = 0; i < g.gl_pathc; i++) {
                char name[128];
                snprintf(name, sizeof name, "%s", basename(g.gl_pathv[i]));
                name[strlen(name) - strlen(".yaml")] = '\0';
                char *text = pfc_of(name);
                /* A real filter: the architecture check and the default. */
                cr_assert(strstr(text, "if ($arch =="), "%s: no arch check in\n%s", name, text);
                cr_assert(strstr(text, "action"), "%s: no action in\n%s", name, text);
                char path[512];
                snprintf(path, sizeof path, "%s/%s.pfc", dir, name);
                if (update) {
                        FILE *f = fopen(path, "w");
                        cr_assert_not_null(f, "cannot write %s", path);
                        fputs(text, f);
                        cr_assert_eq(fclose(f), 0);
                }
                char *want = read_all(path);
                cr_assert_not_null(want, "missing golden file %s (run with AIDP_UPDATE_GOLDEN=1)",
                                   path);
                cr_assert_str_eq(text, want, "profiles/%s.yaml: filter differs from %s", name,
                                 path);
                free(want);
                free(text);
        }
        globfree(&g);
}

/* A golden whose profile was removed or renamed would silently stop being
 * checked: every golden must belong to a shipped profile. */
Test(seccomp_pfc, no_golden_without_a_profile, .init = init)
{
        char dir[256], pat[300];
        golden_dir(dir, sizeof dir);
        snprintf(pat, sizeof pat, "%s/*.pfc", dir);
        glob_t g;
        if (glob(pat, 0, NULL, &g) != 0)
                cr_assert_fail("no goldens in %s (run with AIDP_UPDATE_GOLDEN=1)", dir);
        for (size_t i = 0; i < g.gl_pathc; i++) {
                char yaml[512];
                char *base = basename(g.gl_pathv[i]);
                snprintf(yaml, sizeof yaml, "profiles/%.*s.yaml", (int)(strlen(base) - 4), base);
                cr_assert_eq(access(yaml, R_OK), 0, "%s has no profile %s", g.gl_pathv[i], yaml);
        }
        globfree(&g);
}

/* The golden is the filter that is loaded: a policy change shows in the PFC. */
Test(seccomp_pfc, export_follows_the_policy, .init = init)
{
        char *rule_name = strdup("ptrace");
        struct aidp_sc_rule r = {.names = &rule_name, .n_names = 1, .action = AIDP_SC_ALLOW};
        struct aidp_sc_policy p = {
                .default_action = AIDP_SC_ERRNO, .default_errno = 1, .rules = &r, .n_rules = 1};
        aidp_error err = {0};
        char *with = NULL, *without = NULL;
        cr_assert_eq(aidp_seccomp_export_pfc(&p, &with, &err), 0, "%s", err.msg);
        p.n_rules = 0;
        cr_assert_eq(aidp_seccomp_export_pfc(&p, &without, &err), 0, "%s", err.msg);
        char want[64];
        snprintf(want, sizeof want, "if ($syscall == %d)", seccomp_syscall_resolve_name("ptrace"));
        cr_assert(strstr(with, want), "no ptrace rule in\n%s", with);
        cr_assert_null(strstr(without, want), "ptrace rule without a policy rule in\n%s", without);
        cr_assert(strstr(without, "action ERRNO(1)"), "default not ERRNO(1) in\n%s", without);
        free(with);
        free(without);
        free(rule_name);
}
