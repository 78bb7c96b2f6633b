/* A permissive policy for root tests that run sealed data (policy_util.h). */
#include "policy_util.h"
#include "runner.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static void put(const char *dir, const char *name, const char *text)
{
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f, "%s", path);
        fputs(text, f);
        cr_assert_eq(fclose(f), 0);
        cr_assert_eq(chmod(path, 0644), 0);
}

void aidp_test_policy_allow(const char *dir, const char *user, const char *const *residency,
                            const char *const *regulations)
{
        cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST, "%s", dir);
        cr_assert_eq(chmod(dir, 0755), 0);
        char buf[8192];
        snprintf(buf, sizeof buf,
                 "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n  tests:\n"
                 "    operations: [run]\n    profiles: [\"*\"]\n    datasets: [\"*\"]\n"
                 "    max_classification: regulated\nusers:\n  %s: {roles: [tests]}\n",
                 user);
        put(dir, "access.yaml", buf);
        size_t off = (size_t)snprintf(buf, sizeof buf,
                                      "apiVersion: aidp/v1\nkind: ResidencyPolicy\nresidency:%s\n",
                                      residency && residency[0] ? "" : " {}");
        for (size_t i = 0; residency && residency[i]; i++)
                off += (size_t)snprintf(buf + off, sizeof buf - off, "  %s: {regions: [\"*\"]}\n",
                                        residency[i]);
        off += (size_t)snprintf(buf + off, sizeof buf - off, "regulations:%s\n",
                                regulations && regulations[0] ? "" : " {}");
        for (size_t i = 0; regulations && regulations[i]; i++)
                off += (size_t)snprintf(buf + off, sizeof buf - off, "  %s: {zones: []}\n",
                                        regulations[i]);
        put(dir, "residency.yaml", buf);
        /* Residency rules are checked against the host's region. */
        put(dir, "host.yaml",
            "apiVersion: aidp/v1\nkind: HostIdentity\nnode: test\nregion: test-1\n");
        setenv("AIDP_POLICY_DIR", dir, 1);
}

void aidp_test_policy_done(const char *run_dir)
{
        unsetenv("AIDP_POLICY_DIR");
        if (run_dir)
                aidp_test_gc(run_dir);
}

void aidp_test_policy_access(const char *dir, const char *access_yaml)
{
        put(dir, "access.yaml", access_yaml);
}
