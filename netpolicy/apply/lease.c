/* Address leases: one file per lease index under lease_dir (by default
 * /run/aidp/net), created with O_EXCL so that two concurrent runs can never
 * hold the same block, holding the run id so that release and gc remove only
 * that run's leases. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "netpolicy/apply/apply.h"

/* The lease directory, made if missing; it must be ours (the euid's, not a
 * symlink, not writable by others), since leases decide which addresses a
 * run may use. */
static int open_dir(const char *dir, aidp_error *err)
{
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "creating %s", dir);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "opening %s", dir);
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 0022)) {
                close(fd);
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EPERM,
                                      "%s: not a directory owned by uid %u and closed to others",
                                      dir, (unsigned)geteuid());
        }
        return fd;
}

static bool holds(int dfd, const char *name, const char *run_id)
{
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        char buf[256] = "";
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return strcmp(buf, run_id) == 0;
}

static unsigned start_of(const char *run_id, unsigned slots)
{
        /* spread runs over the pool so that a fresh lease is rarely one just
         * released (its conntrack entries may still be around) */
        unsigned h = 2166136261u;
        for (const char *p = run_id; *p; p++)
                h = (h ^ (unsigned char)*p) * 16777619u;
        return h % slots;
}

int aidp_np_lease_acquire(const char *lease_dir, const char *run_id, unsigned slots, unsigned *ret,
                          aidp_error *err)
{
        _cleanup_close_ int dfd = open_dir(lease_dir, err);
        if (dfd < 0)
                return dfd;
        if (slots == 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOSPC, "the address pool is empty");
        unsigned start = start_of(run_id, slots);
        for (unsigned k = 0; k < slots; k++) {
                unsigned i = (start + k) % slots;
                char name[16];
                snprintf(name, sizeof name, "%u", i);
                _cleanup_close_ int fd = openat(
                        dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0 && errno == EEXIST)
                        continue;
                if (fd < 0)
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "leasing %s/%s",
                                                lease_dir, name);
                char line[256];
                int n = snprintf(line, sizeof line, "%s\n", run_id);
                /* No fsync: the lease directory lives on /run, a tmpfs, and a
                 * lease must not outlive a reboot anyway. */
                int wrc = aidp_write_all(fd, line, (size_t)n);
                if (wrc < 0) {
                        int e = -wrc;
                        unlinkat(dfd, name, 0);
                        return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "writing lease %s/%s",
                                                lease_dir, name);
                }
                *ret = i;
                return 0;
        }
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOSPC,
                              "all %u address leases in %s are taken", slots, lease_dir);
}

int aidp_np_lease_release(const char *lease_dir, const char *run_id, unsigned index)
{
        _cleanup_close_ int dfd = open_dir(lease_dir, NULL);
        if (dfd < 0)
                return dfd;
        char name[16];
        snprintf(name, sizeof name, "%u", index);
        if (!holds(dfd, name, run_id))
                return 0;
        return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
}

int aidp_np_lease_release_run(const char *lease_dir, const char *run_id,
                              void (*before)(unsigned index, const char *run_id), aidp_error *err)
{
        _cleanup_close_ int dfd = open_dir(lease_dir, err);
        if (dfd < 0)
                return dfd;
        int dup_fd = dup(dfd);
        DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
        if (!d) {
                if (dup_fd >= 0)
                        close(dup_fd);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "reading %s", lease_dir);
        }
        int rc = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.' || !holds(dfd, e->d_name, run_id))
                        continue;
                if (before)
                        before((unsigned)strtoul(e->d_name, NULL, 10), run_id);
                if (unlinkat(dfd, e->d_name, 0) < 0 && errno != ENOENT)
                        rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "releasing %s/%s",
                                              lease_dir, e->d_name);
        }
        closedir(d);
        return rc;
}
