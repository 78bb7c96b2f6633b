#pragma once
/* Creating aidp's own directories (/etc/aidp, /etc/aidp/keys, /var/lib/aidp,
 * /run/aidp) on a host where they do not exist yet. */
#include <sys/types.h>

/* mkdir -p: creates `dir` with `mode` and each missing ancestor with
 * `parent_mode`, exactly (the umask does not apply), owned by the caller (root
 * for the supervisor). Existing directories are left as they are (the admin's
 * choice); a component that exists but is not a directory fails with ENOTDIR,
 * a symlink with ELOOP or ENOTDIR (never followed). A relative `dir` starts at
 * the working directory. 0 or -errno. */
int aidp_mkdir_p(const char *dir, mode_t mode, mode_t parent_mode);
