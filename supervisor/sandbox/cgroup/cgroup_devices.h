#pragma once
/* cgroup v2 device allowlist: a BPF_PROG_TYPE_CGROUP_DEVICE program generated
 * from v1-style rules ("c 1:3 rwm", '*' wildcards) and attached to the cgroup
 * directory given as an fd. Everything not allowed is denied (EPERM). */
#include "common/error.h"

int aidp_cgroup_devices_attach(int cgroup_fd, const char *const *allow, aidp_error *err);
