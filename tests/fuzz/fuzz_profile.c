/* libFuzzer harness: the profile parser, with a parent and a seccomp JSON
 * file reachable through `extends`/`import`, and everything run on success
 * (lint, explain, diff, canonical form). Must never crash, leak or hang. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/profile_load.h"

static const struct {
        const char *path, *text;
} files[] = {
        {"lib/parent.yaml",
         "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: parent}\n"
         "limits: {memory: 2Gi}\ncapabilities: [CAP_CHOWN]\n"
         "seccomp:\n  syscalls:\n    - {names: [ptrace], action: kill-process}\n"},
        {"lib/loop.yaml",
         "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: loop}\nextends: loop.yaml\n"},
        {"lib/d.json", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
                       "[\"read\", \"chown32\"], "
                       "\"action\": \"SCMP_ACT_ALLOW\"}, {\"names\": [\"mount\"], \"action\": "
                       "\"SCMP_ACT_ALLOW\", "
                       "\"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}}]}"},
};

static int read_file(void *ctx, const char *path, char **buf, size_t *len, aidp_error *err)
{
        (void)ctx;
        (void)err;
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
                if (!strcmp(files[i].path, path)) {
                        *buf = strdup(files[i].text);
                        *len = strlen(files[i].text);
                        return *buf ? 0 : -ENOMEM;
                }
        return -ENOENT;
}

static int devices(void *ctx, const char *pattern, char ***paths, aidp_error *err)
{
        (void)ctx;
        (void)err;
        *paths = NULL;
        if (strncmp(pattern, "/dev/null", 9))
                return 0;
        *paths = calloc(1, sizeof(char *));
        if (!*paths || !((*paths)[0] = strdup("/dev/null"))) {
                free(*paths);
                return -ENOMEM;
        }
        return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const search[] = {"lib"};
        struct aidp_profile_env env = {
                .read_file = read_file,
                .expand_devices = devices,
                .search_path = search,
                .n_search_path = 1,
                .kernel_major = 6,
                .kernel_minor = 1,
        };
        struct aidp_profile p, q;
        struct aidp_lint_list lints = {0};
        aidp_error err = {0};
        if (aidp_profile_load_buffer("lib/fuzz.yaml", (const char *)data, size, &env, &p, &lints,
                                     &err) == 0) {
                char *text = NULL;
                size_t loosen = 0;
                if (aidp_profile_explain(&p, &env, &text, &err) == 0)
                        free(text);
                if (aidp_profile_load("parent", &env, &q, NULL, &err) == 0) {
                        if (aidp_profile_diff(&q, &p, &env, &text, &loosen, &err) == 0)
                                free(text);
                        aidp_profile_free(&q);
                }
                aidp_profile_free(&p);
        }
        aidp_lint_list_free(&lints);
        /* The same input as profile check loads it: going on after each error
         * (the recovery paths) must be as safe as stopping. */
        static struct aidp_profile_errors all;
        memset(&all, 0, sizeof all);
        env.errors = &all;
        if (aidp_profile_load_buffer("lib/fuzz.yaml", (const char *)data, size, &env, &p, NULL,
                                     &err) == 0)
                aidp_profile_free(&p);
        return 0;
}
