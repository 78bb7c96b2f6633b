/* Masks hold for the whole run (docs/security.md, "Masked paths"): what the
 * host does to a masked file while a sandbox runs never shows it to the job.
 * The host side is a throwaway tree this test makes as a stand-in for /etc
 * (the real /etc is never touched), exposed by a profile bind and, a second
 * time, through the host's own /var as every sandbox sees it (with a bind
 * into it, which must survive the masking). Before masks lived in an overlay
 * (mask.c), every one of the eight reads below showed the host's new file. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "priv.h"
#include "runner.h"

static char T[64], etc[200], var_etc[200], sig[200], yaml[200];

/* A stand-in for /etc: files world-readable, so that only the mask (not the
 * file's mode) keeps them from the job. */
static void make_etc(const char *dir)
{
        cr_assert_eq(
                aidp_test_sh("mkdir -p %s/ssl/private %s/sudoers.d && "
                             "echo OLD-SECRET > %s/shadow && echo OLD-KEY > %s/ssl/private/key && "
                             "echo OLD-SUDO > %s/sudoers.d/x && echo root:x:0:0 > %s/passwd && "
                             "chmod -R a+rX %s",
                             dir, dir, dir, dir, dir, dir, dir),
                0);
}

/* What the host does while the job runs, the ways tools replace files. */
static void host_changes(const char *dir)
{
        /* useradd/passwd: write FILE+, rename it over FILE */
        cr_assert_eq(aidp_test_sh("cd %s && echo NEW-SECRET > shadow+ && chmod 644 shadow+ && "
                                  "mv -f shadow+ shadow",
                                  dir),
                     0);
        /* a masked directory's parent moved away and made anew */
        cr_assert_eq(aidp_test_sh("cd %s && mv ssl ssl.old && mkdir -p ssl/private && "
                                  "echo NEW-KEY > ssl/private/key && chmod -R a+rX ssl",
                                  dir),
                     0);
        /* a masked directory removed and made again */
        cr_assert_eq(aidp_test_sh("cd %s && rm -rf sudoers.d && mkdir sudoers.d && "
                                  "echo NEW-SUDO > sudoers.d/x && chmod -R a+rX sudoers.d",
                                  dir),
                     0);
        /* a masked name that was not there when the run started */
        cr_assert_eq(
                aidp_test_sh("echo NEW-GSHADOW > %s/gshadow && chmod 644 %s/gshadow", dir, dir), 0);
}

static void setup(void)
{
        if (geteuid() != 0)
                return;
        /* under /var/tmp: the host's /var is in every sandbox's view, /tmp is not */
        snprintf(T, sizeof T, "/var/tmp/aidp-maskgap.XXXXXX");
        cr_assert_not_null(aidp_test_mkdtemp(T));
        chmod(T, 0755);
        snprintf(etc, sizeof etc, "%s/etc", T);
        snprintf(var_etc, sizeof var_etc, "%s/var-etc", T);
        snprintf(sig, sizeof sig, "%s/sig", T);
        snprintf(yaml, sizeof yaml, "%s/p.yaml", T);
        make_etc(etc);
        make_etc(var_etc);
        cr_assert_eq(mkdir(sig, 0755), 0);
        char bound[220];
        snprintf(bound, sizeof bound, "%s/bound", var_etc);
        cr_assert_eq(mkdir(bound, 0755), 0);
        FILE *f = fopen(yaml, "w");
        cr_assert_not_null(f);
        fprintf(f,
                "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: maskgap}\n"
                "extends: " AIDP_SOURCE_DIR "/profiles/baseline.yaml\n"
                "filesystem:\n"
                "  binds:\n    - {source: %s, target: /fakeetc}\n    - {source: %s, target: /sig}\n"
                /* a bind into a masked tree: it must stay there */
                "    - {source: %s, target: %s/bound}\n"
                "  masked:\n",
                etc, sig, sig, var_etc);
        static const char *const names[] = {"shadow", "gshadow", "sudoers.d", "ssl/private", NULL};
        for (const char *const *n = names; *n; n++)
                fprintf(f, "    - /fakeetc/%s\n    - %s/%s\n", *n, var_etc, *n);
        cr_assert_eq(fclose(f), 0);
}

TestSuite(mask, .init = setup, .timeout = 120);

/* The job waits until the host has changed both trees, then tries to read
 * every masked path: each must stay hidden, and the rest of the tree must
 * still be there. */
Test(mask, a_mask_holds_while_the_host_replaces_the_masked_files)
{
        AIDP_REQUIRE_ROOT();
        char script[2048];
        snprintf(script, sizeof script,
                 "echo READY\n"
                 "i=0; until [ -e /sig/go ]; do sleep 0.05; i=$((i+1)); [ $i -gt 1200 ] && exit 3; "
                 "done\n"
                 "for d in /fakeetc %s; do\n"
                 "  for f in shadow ssl/private/key sudoers.d/x gshadow; do\n"
                 "    if c=$(cat $d/$f 2>/dev/null); then echo \"LEAK $d/$f: $c\"; "
                 "else echo \"HIDDEN $d/$f\"; fi\n"
                 "  done\n"
                 "  grep -q root: $d/passwd && echo \"PASSWD $d\"\n"
                 "done\n"
                 "[ -e %s/bound/go ] && echo BOUND\n",
                 var_etc, var_etc);
        char *argv[] = {
                AIDP_SUPERVISOR, "run", "-q", "--user",  "65534", "--no-cwd", "--timeout", "90",
                "--profile",     yaml,  "--", "/bin/sh", "-c",    script,     NULL};
        struct aidp_proc p;
        cr_assert_eq(aidp_test_spawn(&p, argv), 0);
        bool ready = aidp_test_wait_output(&p, "READY", 60000);
        if (ready) {
                host_changes(etc);
                host_changes(var_etc);
                char go[220];
                snprintf(go, sizeof go, "%s/go", sig);
                FILE *g = fopen(go, "w");
                cr_assert_not_null(g);
                fclose(g);
        }
        int st = aidp_test_finish(&p);
        cr_assert(ready, "the job never started: %s", p.err);
        cr_expect_eq(st, 0, "exit %d\n%s\n%s", st, p.out, p.err);
        cr_expect(strstr(p.out, "LEAK") == NULL, "a mask let the host's new file through:\n%s",
                  p.out);
        const char *dirs[] = {"/fakeetc", var_etc};
        static const char *const files[] = {"shadow", "ssl/private/key", "sudoers.d/x", "gshadow"};
        for (size_t d = 0; d < 2; d++) {
                char line[400];
                for (size_t i = 0; i < 4; i++) {
                        snprintf(line, sizeof line, "HIDDEN %s/%s\n", dirs[d], files[i]);
                        cr_expect(strstr(p.out, line), "want %sgot:\n%s", line, p.out);
                }
                snprintf(line, sizeof line, "PASSWD %s\n", dirs[d]);
                cr_expect(strstr(p.out, line), "the rest of %s is gone:\n%s", dirs[d], p.out);
        }
        cr_expect(strstr(p.out, "BOUND\n"), "the bind into the masked tree is gone:\n%s", p.out);
}
