#pragma once
/* The host side of profile loading: a real file reader, the library search
 * path, device globbing and the running kernel, for profiles/profile_load.h. */
#include "common/error.h"
#include "profiles/profile_load.h"

#define AIDP_PROFILE_PATH_MAX_DIRS 16

struct aidp_profile_host {
        struct aidp_profile_env env;
        const char *dirs[AIDP_PROFILE_PATH_MAX_DIRS];
        char *path_copy; /* $AIDP_PROFILE_PATH, split in place */
};

/* Library search order: each directory of $AIDP_PROFILE_PATH (colon list),
 * then the installed share/aidp/profiles, then the source tree's profiles/.
 * check_devices=false leaves device paths unchecked (explaining a profile
 * written for another host). */
int aidp_profile_host_init(struct aidp_profile_host *h, bool check_devices, aidp_error *err);
void aidp_profile_host_free(struct aidp_profile_host *h);

/* Load a profile by name or path with the host environment. */
int aidp_profile_host_load(const char *name_or_path, bool check_devices, struct aidp_profile *out,
                           struct aidp_lint_list *lints, aidp_error *err);
/* The same, gathering every error it can (up to AIDP_PROFILE_ERRORS_MAX) in
 * *errors when that is not NULL (aidp profile check). */
int aidp_profile_host_check(const char *name_or_path, bool check_devices, struct aidp_profile *out,
                            struct aidp_lint_list *lints, struct aidp_profile_errors *errors,
                            aidp_error *err);
/* A user's profile: a library name only (a path is refused with
 * AIDP_EXIT_USAGE), every file of its extends/import chain checked to be an
 * installed library file (root-owned, not group/other-writable,
 * world-readable, in a directory only root can write). */
int aidp_profile_host_load_library(const char *name, bool check_devices, struct aidp_profile *out,
                                   aidp_error *err);

/* Every file a library load asked for, in order (found or not: a file that
 * appears later in an earlier library directory would be read instead), and
 * whether it expanded devices (what /dev holds may change). */
#define AIDP_PROFILE_TRACE_MAX 32
struct aidp_profile_trace {
        char paths[AIDP_PROFILE_TRACE_MAX][1024];
        size_t n;
        bool overflow; /* more files or longer paths than fit: not cacheable */
        bool devices;
};
/* aidp_profile_host_load_library(name, true, ...), recording what it read
 * (supervisor/run/warm_profile.c). */
int aidp_profile_host_load_library_traced(const char *name, struct aidp_profile *out,
                                          struct aidp_profile_trace *trace, aidp_error *err);
