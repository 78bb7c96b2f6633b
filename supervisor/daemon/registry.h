#pragma once
/* The daemon's registry of runs in progress, for `aidp ps` and `aidp stop`:
 * one file per worker, STATE_DIR/<worker pid>, a JSON object {run_id, uid,
 * pid, started, command, detached}, written by the worker once its run is accepted and
 * removed by the server before it reaps the worker (so an entry always names
 * a worker that is alive or not yet reaped: never a reused pid). The
 * directory is root's alone (0700); nothing in it comes from a client but the
 * command's name, which is only shown. */
#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"

/* dir made (0700) or checked: a directory, root's, no group or other bits.
 * 0 or < 0 with err. Also the detached runs' log directory's (runlog.h). */
int aidp_registry_private_dir(const char *dir, aidp_error *err);
int aidp_registry_init(const char *dir, aidp_error *err);
/* The entry's file for worker pid, made ahead (an idle worker, before its
 * connection): STATE_DIR/.PID, empty, which ps and stop never read. Its fd,
 * or -errno. */
int aidp_registry_ahead(const char *dir, pid_t pid);
/* The entry of worker pid, written (into ahead, the fd _ahead gave, or a new
 * file when -1; taken either way) and renamed into place. 0 or -errno. */
int aidp_registry_add(const char *dir, pid_t pid, int ahead, uid_t uid, const char *run_id,
                      const char *command, bool detached);
/* The entry of worker pid, and its file made ahead. */
void aidp_registry_remove(const char *dir, pid_t pid);
/* The entries whose uid is `uid` (every entry when all), as a JSON array. */
json_object *aidp_registry_list(const char *dir, uid_t uid, bool all);
/* The worker of run_id: 0 with *pid and *uid, or -ENOENT. */
int aidp_registry_find(const char *dir, const char *run_id, pid_t *pid, uid_t *uid);
