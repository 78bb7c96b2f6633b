/* The registry of runs in progress (registry.h). */
#define _GNU_SOURCE
#include "supervisor/daemon/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"

int aidp_registry_private_dir(const char *dir, aidp_error *err)
{
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", dir);
        struct stat st;
        if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 077))
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EPERM,
                                      "%s: not a root-owned 0700 directory", dir);
        return 0;
}

int aidp_registry_init(const char *dir, aidp_error *err)
{
        if (aidp_registry_private_dir(dir, err) < 0)
                return -1;
        /* Entries of a previous instance name workers this one never started
         * (and cannot reap): they are not ours to signal. */
        DIR *d = opendir(dir);
        if (!d)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", dir);
        /* and their files made ahead (".PID", aidp_registry_ahead) */
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.' || (e->d_name[1] >= '0' && e->d_name[1] <= '9'))
                        unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
        return 0;
}

static int entry_paths(const char *dir, pid_t pid, char path[4096], char tmp[4096])
{
        if (snprintf(path, 4096, "%s/%d", dir, (int)pid) >= 4096 ||
            snprintf(tmp, 4096, "%s/.%d", dir, (int)pid) >= 4096)
                return -ENAMETOOLONG;
        return 0;
}

static int open_tmp(const char *tmp)
{
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        return fd < 0 ? -errno : fd;
}

int aidp_registry_ahead(const char *dir, pid_t pid)
{
        char path[4096], tmp[4096];
        int r = entry_paths(dir, pid, path, tmp);
        return r < 0 ? r : open_tmp(tmp);
}

int aidp_registry_add(const char *dir, pid_t pid, int ahead, uid_t uid, const char *run_id,
                      const char *command, bool detached)
{
        char path[4096], tmp[4096];
        int r = entry_paths(dir, pid, path, tmp);
        if (r < 0) {
                if (ahead >= 0)
                        close(ahead);
                return r;
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "run_id", json_object_new_string(run_id));
        json_object_object_add(o, "uid", json_object_new_int64(uid));
        json_object_object_add(o, "pid", json_object_new_int(pid));
        json_object_object_add(o, "started", json_object_new_int64(time(NULL)));
        json_object_object_add(o, "command", json_object_new_string(command ? command : ""));
        json_object_object_add(o, "detached", json_object_new_boolean(detached));
        int fd = ahead >= 0 ? ahead : open_tmp(tmp);
        r = fd < 0 ? fd : json_object_to_fd(fd, o, JSON_C_TO_STRING_PLAIN) < 0 ? -EIO : 0;
        json_object_put(o);
        if (fd >= 0)
                close(fd);
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

void aidp_registry_remove(const char *dir, pid_t pid)
{
        char path[4096], tmp[4096];
        if (entry_paths(dir, pid, path, tmp) < 0)
                return;
        unlink(path);
        unlink(tmp); /* made ahead and never used (a worker that served no run) */
}

static json_object *read_entry(int dfd, const char *name)
{
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        char buf[8192];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return NULL;
        buf[n] = '\0';
        json_object *o = json_tokener_parse(buf);
        if (o && !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                o = NULL;
        }
        return o;
}

static int64_t field_int(json_object *o, const char *k)
{
        json_object *v;
        return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

json_object *aidp_registry_list(const char *dir, uid_t uid, bool all)
{
        json_object *a = json_object_new_array();
        DIR *d = opendir(dir);
        if (!d)
                return a;
        for (struct dirent *e; (e = readdir(d));) {
                if (e->d_name[0] == '.')
                        continue;
                json_object *o = read_entry(dirfd(d), e->d_name);
                if (!o)
                        continue;
                if (all || field_int(o, "uid") == (int64_t)uid)
                        json_object_array_add(a, o);
                else
                        json_object_put(o);
        }
        closedir(d);
        return a;
}

int aidp_registry_find(const char *dir, const char *run_id, pid_t *pid, uid_t *uid)
{
        DIR *d = opendir(dir);
        if (!d)
                return -errno;
        int r = -ENOENT;
        for (struct dirent *e; r == -ENOENT && (e = readdir(d));) {
                if (e->d_name[0] == '.')
                        continue;
                json_object *o = read_entry(dirfd(d), e->d_name);
                json_object *v;
                if (o && json_object_object_get_ex(o, "run_id", &v) &&
                    !strcmp(json_object_get_string(v), run_id) &&
                    field_int(o, "pid") == strtol(e->d_name, NULL, 10)) {
                        *pid = (pid_t)field_int(o, "pid");
                        *uid = (uid_t)field_int(o, "uid");
                        r = 0;
                }
                json_object_put(o);
        }
        closedir(d);
        return r;
}
