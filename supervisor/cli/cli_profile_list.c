/* aidp profile list: the library's profiles, with their limits (cli.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/exitcodes.h"
#include "profiles/profile_load.h"
#include "profiles/units.h"
#include "supervisor/cli/cli.h"
#include "supervisor/run/profile_env.h"

#define PROG "aidp profile list"

struct list_cli {
        bool json;
};

static const struct aidp_cli_opt list_opts[] = {
        AIDP_CLI_OPT("json", 0, AIDP_CLI_FLAG, offsetof(struct list_cli, json), NULL,
                     "one JSON array", AIDP_TRUST_USER),
        {0},
};

static const struct aidp_cli_spec list_spec = {
        .prog = PROG,
        .synopsis = "[--json]",
        .about = "The profiles a run can name with --profile: each library profile with its\n"
                 "memory and CPU limits, its network and the file it comes from. One that\n"
                 "cannot be used on this host (a device it needs is missing) says why.",
        .opts = list_opts,
        .footer = "Names are looked up in $AIDP_PROFILE_PATH, then the installed profile "
                  "library;\nthrough the daemon (aidp-run) only the installed library counts.\n",
        .min_args = 0,
        .max_args = 0,
        .args = "no operands",
};

/* A library name, as a run names it: [A-Za-z0-9._-], from NAME.yaml. */
static bool library_name(const char *file, char *out, size_t len)
{
        size_t l = strlen(file);
        if (file[0] == '.' || l <= 5 || strcmp(file + l - 5, ".yaml") || l - 5 >= len)
                return false;
        for (size_t i = 0; i < l - 5; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                            file[i]))
                        return false;
        memcpy(out, file, l - 5);
        out[l - 5] = '\0';
        return true;
}

static int by_name(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every name in the search path, each once (the first directory that has it
 * is the one a run loads it from), sorted. */
static char **names(const struct aidp_profile_host *h, size_t *n)
{
        char **v = NULL;
        *n = 0;
        for (size_t i = 0; i < AIDP_PROFILE_PATH_MAX_DIRS && h->dirs[i]; i++) {
                DIR *d = opendir(h->dirs[i]);
                for (struct dirent *e; d && (e = readdir(d));) {
                        char name[256];
                        if (!library_name(e->d_name, name, sizeof name))
                                continue;
                        bool seen = false;
                        for (size_t k = 0; k < *n && !seen; k++)
                                seen = !strcmp(v[k], name);
                        char **nv = seen ? v : realloc(v, (*n + 2) * sizeof *v);
                        if (!nv)
                                break;
                        v = nv;
                        if (!seen && (v[*n] = strdup(name)))
                                v[++*n] = NULL;
                }
                if (d)
                        closedir(d);
        }
        if (v)
                qsort(v, *n, sizeof *v, by_name);
        return v;
}

static void fmt_bytes(uint64_t b, char *out, size_t len)
{
        if (b)
                aidp_profiles_fmt_size(out, len, b);
        else
                snprintf(out, len, "none");
}

static void fmt_cpus(uint64_t millis, char *out, size_t len)
{
        if (!millis)
                snprintf(out, len, "none");
        else if (millis % 1000 == 0)
                snprintf(out, len, "%" PRIu64, millis / 1000);
        else {
                int n = snprintf(out, len, "%" PRIu64 ".%03" PRIu64, millis / 1000, millis % 1000);
                while (n > 0 && (size_t)n < len && out[n - 1] == '0')
                        out[--n] = '\0'; /* 1.500 -> 1.5 */
        }
}

static json_object *entry_json(const char *name, const struct aidp_profile *p, const char *error)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(name));
        if (error) {
                json_object_object_add(o, "error", json_object_new_string(error));
                return o;
        }
        json_object_object_add(o, "memory_bytes", json_object_new_uint64(p->limits.memory_bytes));
        json_object_object_add(o, "cpu_millis", json_object_new_uint64(p->limits.cpu_millis));
        json_object_object_add(
                o, "network",
                json_object_new_string(p->network.mode == AIDP_NET_EGRESS ? "egress" : "none"));
        json_object_object_add(o, "source", p->source ? json_object_new_string(p->source) : NULL);
        json_object_object_add(o, "description",
                               p->description ? json_object_new_string(p->description) : NULL);
        return o;
}

int aidp_cli_profile_list(int argc, char **argv)
{
        struct list_cli c = {0};
        struct aidp_cli_parsed pa;
        int rc;
        if (!aidp_cli_options(&list_spec, argc, argv, &c, &pa, &rc))
                return rc;
        struct aidp_profile_host h;
        aidp_error err = {0};
        if (aidp_profile_host_init(&h, true, &err) < 0)
                return aidp_cli_fail(PROG, &err);
        size_t n = 0;
        char **v = names(&h, &n);
        json_object *arr = c.json ? json_object_new_array() : NULL;
        if (!c.json)
                printf("%-24s %-9s %-5s %-7s %s\n", "NAME", "MEMORY", "CPUS", "NETWORK", "FILE");
        for (size_t i = 0; i < n; i++) {
                struct aidp_profile p;
                aidp_error perr = {0};
                bool ok = aidp_profile_load(v[i], &h.env, &p, NULL, &perr) == 0;
                if (arr) {
                        json_object_array_add(arr, entry_json(v[i], &p, ok ? NULL : perr.msg));
                } else if (ok) {
                        char mem[32], cpus[32];
                        fmt_bytes(p.limits.memory_bytes, mem, sizeof mem);
                        fmt_cpus(p.limits.cpu_millis, cpus, sizeof cpus);
                        printf("%-24s %-9s %-5s %-7s %s\n", v[i], mem, cpus,
                               p.network.mode == AIDP_NET_EGRESS ? "egress" : "none",
                               p.source ? p.source : "(built in)");
                } else {
                        printf("%-24s not usable here: %s\n", v[i], perr.msg);
                }
                if (ok)
                        aidp_profile_free(&p);
                free(v[i]);
        }
        free(v);
        aidp_profile_host_free(&h);
        if (arr) {
                puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(arr);
        } else if (!n) {
                fprintf(stderr, PROG ": no profiles in the library (see aidp profile explain "
                                     "--help for where they are looked up)\n");
        }
        return 0;
}
