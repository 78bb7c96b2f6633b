#define _GNU_SOURCE
/* Steps 3 (prepare) and 6 (inject) of docs/run-core.md: the run's detached
 * tmpfs mounts, and the sealed inputs decrypted into /data once pid 1 holds them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "supervisor/run/run_internal.h"

#define MiB (1024ULL * 1024)

static int add_tmpfs(struct run *r, const char *label, uint64_t size, unsigned mode, uid_t uid,
                     gid_t gid, aidp_error *err)
{
        /* size=0 would make the tmpfs unlimited: refused, never defaulted */
        if (!size)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL, "tmpfs %s: no size", label);
        struct aidp_tmpfs *t = &r->tmpfs[r->n_tmpfs];
        int rc = aidp_tmpfs_create(label, size, mode, uid, gid, t, err);
        if (rc < 0)
                return rc;
        r->n_tmpfs++;
        if (!t->noswap)
                r->res->noswap = false;
        return 0;
}

const char *aidp_run_tmpfs_target(const struct run *r, const struct aidp_tmpfs *t)
{
        const struct aidp_data_paths *p = &r->profile.paths;
        return !strcmp(t->label, "scratch") ? p->scratch
               : !strcmp(t->label, "out")   ? p->out
               : !strcmp(t->label, "data")  ? p->data
               : !strcmp(t->label, "shm")   ? "/dev/shm"
                                            : "/tmp";
}

/* What the decrypted inputs will take in /data: their plaintext, plus 1/64
 * and 1 MiB for the file system's own blocks and directories. */
static uint64_t data_footprint(uint64_t plain)
{
        return plain + plain / 64 + MiB;
}

/* /data's tmpfs size, from the plaintext the manifests need: the profile's,
 * or the footprint with room for the views. A view can make a file longer
 * than sealed (a token is often longer than the value): room for that, or
 * the injection fails with "destination too small". Pages are charged as
 * used, so the larger cap costs nothing. */
static uint64_t data_size(const struct run *r, uint64_t need)
{
        uint64_t size = r->profile.limits.data_bytes;
        if (size)
                return size;
        size = data_footprint(need);
        if (aidp_inject_views_apply(&r->inject))
                size += need / 2;
        return size;
}

/* The most /data's pages can be charged to the run: its tmpfs size, which
 * a view's output may fill; without a view, no more than the footprint. */
static uint64_t data_charge_max(const struct run *r, uint64_t need)
{
        uint64_t size = data_size(r, need);
        uint64_t foot = data_footprint(need);
        return aidp_inject_views_apply(&r->inject) || size < foot ? size : foot;
}

/* Memory kept for the job's own processes when checking that the data fits. */
#define PROCESS_RESERVE (16 * MiB)
/* The supervisor's own pages while it decrypts in the run's cgroup besides
 * its buffers: heap, thread stacks, page tables, OpenSSL's contexts. */
#define SUPERVISOR_RESERVE (8 * MiB)

static uint64_t mib_up(uint64_t n)
{
        return (n + MiB - 1) / MiB;
}

int aidp_run_check_data_fits(struct run *r, aidp_error *err)
{
        uint64_t limit = r->profile.limits.memory_bytes;
        if (!r->inject.n || !limit)
                return 0;
        uint64_t need = 0;
        int rc = aidp_inject_required_bytes(&r->inject, &need, err);
        if (rc < 0)
                return rc;
        uint64_t data = data_charge_max(r, need);
        /* The pages of /data are the run's memory (charged to its cgroup):
         * refused now, before a byte is decrypted, rather than OOM-killed
         * half-way through the injection. */
        if (data + PROCESS_RESERVE > limit)
                return aidp_error_set(
                        err, AIDP_EXIT_USAGE, ENOMEM,
                        "the sealed inputs need %llu MiB of memory once decrypted (they count "
                        "against the run's memory), and the run's memory limit is %llu MiB (%llu "
                        "MiB are kept for the job's processes): give the run more memory with "
                        "--memory (up to the profile's limit) or the profile's limits.memory, or "
                        "use less data",
                        (unsigned long long)mib_up(data), (unsigned long long)(limit / MiB),
                        (unsigned long long)(PROCESS_RESERVE / MiB));
        /* The supervisor decrypts from inside the run's cgroup (aidp_run_inject):
         * its buffers count against the limit too while /data fills. As many
         * workers as fit; none fitting is refused now, not OOM-killed later. */
        uint64_t base = 0, per = 0;
        if ((rc = aidp_inject_work_bytes(&r->inject, &base, &per, err)) < 0)
                return rc;
        uint64_t fixed = data + SUPERVISOR_RESERVE + base;
        if (fixed + per > limit)
                return aidp_error_set(
                        err, AIDP_EXIT_USAGE, ENOMEM,
                        "decrypting the sealed inputs needs %llu MiB of the run's memory (%llu "
                        "MiB for /data once decrypted%s, %llu MiB for the supervisor's buffers "
                        "with one worker), and the run's memory limit is %llu MiB: give the run "
                        "more memory with --memory (up to the profile's limit) or the profile's "
                        "limits.memory, or use less data",
                        (unsigned long long)mib_up(fixed + per), (unsigned long long)mib_up(data),
                        aidp_inject_views_apply(&r->inject) ? " through its views" : "",
                        (unsigned long long)mib_up(SUPERVISOR_RESERVE + base + per),
                        (unsigned long long)(limit / MiB));
        uint64_t n = (limit - fixed) / per;
        r->inject.max_threads = n < 64 ? (unsigned)n : 64;
        return 0;
}

int aidp_run_prepare(struct run *r, aidp_error *err)
{
        const struct aidp_limits *l = &r->profile.limits;
        /* The cgroup2 directory made so far (cgroup_begin); its v1 hierarchies
         * follow once the helper is done (cgroups.log has them all already). */
        aidp_run_journal_cgroups(r);

        r->res->noswap = true;
        /* The sizes are the profile's (its defaults: profiles/profile_defaults.c). */
        int rc = add_tmpfs(r, "tmp", l->tmp_bytes, 01777, 0, 0, err);
        if (rc == 0)
                rc = add_tmpfs(r, "scratch", l->scratch_bytes, 0755, r->uid, r->gid, err);
        if (rc == 0)
                rc = add_tmpfs(r, "out", l->out_bytes, 0755, r->uid, r->gid, err);
        /* /dev/shm is one of ours too (PyTorch's DataLoader puts batches
         * there): noswap, held by our fd, shredded and reported like /tmp. */
        if (rc == 0)
                rc = add_tmpfs(r, "shm", aidp_profile_shm_bytes(&r->profile), 01777, 0, 0, err);
        if (rc < 0)
                return rc;
        char hint[1024];
        if (!r->o->quiet && aidp_run_hidden_scan(r, false, hint, sizeof hint))
                fprintf(stderr, "aidp-supervisor: warning: %s\n", hint);
        if (!r->o->output_dir && !r->o->quiet)
                fprintf(stderr,
                        "aidp-supervisor: warning: no %s: whatever the job writes to /out is "
                        "shredded when it ends; keep it with %s DIR\n",
                        aidp_run_output_dir_label(r->o), aidp_run_output_dir_label(r->o));
        if (r->inject.n) {
                /* /data: sized from the manifests unless the profile says,
                 * filled and authenticated completely before the job exists. */
                uint64_t need = 0;
                rc = aidp_inject_required_bytes(&r->inject, &need, err);
                if (rc < 0)
                        return rc;
                rc = add_tmpfs(r, "data", data_size(r, need), 0755, 0, 0, err);
                if (rc < 0)
                        return rc;
        }
        /* Not rewritten here: this version would add only the cgroup
         * directories, which cgroups.log named before each was made, and a
         * run whose log cannot be opened or written makes none (startup.c,
         * cgroup_fs.c); pid 1's record (spawn.c) writes them. 0.17 ms of
         * the request's path on a daemon (docs/run-core.md, "The worker
         * segment"; "cgroups.log, opened or not"). */
        return 0;
}

/* The supervisor's oom_score_adj while it decrypts in the run's cgroup:
 * -1000, so that a memory cgroup OOM (the limit lowered under the run, or a
 * buffer the estimate missed) never picks or group-kills it (cgroup v2's
 * memory.oom.group spares tasks at -1000). The job's pid 1 is still killed;
 * with nothing left to kill the charge fails instead: the supervisor's
 * locked buffers (mlock), the leak set's and /data's writes fail with
 * ENOMEM and the injection ends with an error and an END record. Only a
 * fault on an ordinary heap or stack page is retried by the kernel until
 * memory is freed: docs/run-core.md, "Memory while injecting". Restored as
 * soon as the supervisor is back in its own cgroup. Returns the old value's
 * fd (-1: could not be set; the run goes on as before). */
static int oom_protect(char *old, size_t n)
{
        int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t k = pread(fd, old, n - 1, 0);
        if (k <= 0 || pwrite(fd, "-1000", 5, 0) != 5) {
                close(fd);
                return -1;
        }
        old[k] = 0;
        return fd;
}

static void oom_restore(int fd, const char *old)
{
        if (fd < 0)
                return;
        (void)!pwrite(fd, old, strlen(old), 0);
        close(fd);
}

/* Plaintext passes through the supervisor's own memory while it decrypts
 * and views: the view workers' heaps, json-c's strings, libcsv's field
 * buffer, the leak scan's values (its slots and buffers are locked
 * already). Their pages are wiped before reuse, but swap would keep a copy:
 * every page the supervisor touches from now on is locked (MCL_ONFAULT:
 * nothing is read in now), as are its threads'; the sandbox's pid 1 was
 * cloned before and the job is exec'd, so neither inherits it. Whatever the
 * run's cgroup allows (job_swap), and for heap pages charged to the
 * supervisor's own cgroup before it joined the run's. Not undone: the key
 * pages are locked on their own too (keymem.h), and the run ends soon. */
static void lock_memory(void)
{
        if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
                fprintf(stderr,
                        "aidp-supervisor: warning: cannot lock the supervisor's memory while it "
                        "decrypts (%s): its heap could reach swap\n",
                        strerror(errno));
}

/* The output leak scan's value set, before anything is decrypted, when there
 * is an output to scan: the inputs' viewers add what their views hide. */
static int leaks_prepare(struct run *r, aidp_error *err)
{
        if (!r->o->output_dir || !r->inject.n)
                return 0;
        return aidp_inject_leaks_new(&r->inject, err);
}

/* Decrypt every input into /data, authenticating every segment, after the
 * sandbox's pid 1 exists: it holds the tmpfs too, so if this supervisor dies
 * half-way, gc can still reach the plaintext and overwrite it. */
int aidp_run_inject(struct run *r, aidp_error *err)
{
        int lrc = leaks_prepare(r, err);
        if (lrc < 0)
                return lrc;
        for (size_t i = 0; i < r->n_tmpfs; i++) {
                if (strcmp(r->tmpfs[i].label, "data"))
                        continue;
                /* Pages are charged to the cgroup of the process that writes
                 * them: the supervisor decrypts from inside the run's memory
                 * cgroup, so /data counts against the run's limit, not
                 * against nobody's (/work/shared/notes/kernel-facts.md). */
                int back = -1;
                char adj[32] = "";
                if (r->inject.n)
                        lock_memory();
                int adj_fd = r->cg ? oom_protect(adj, sizeof adj) : -1;
                int rc = r->cg ? aidp_cgroup_charge_begin(r->cg, &back, err) : 0;
                if (rc == 0)
                        aidp_run_fault_point("charged"); /* a test lowers the limit here */
                if (rc == 0)
                        rc = aidp_inject_decrypt(&r->inject, r->tmpfs[i].fd, r->uid, r->gid,
                                                 !r->o->quiet, r->res->inputs, err);
                int brc = aidp_cgroup_charge_end(&back);
                oom_restore(adj_fd, adj);
                /* The charge failed (mlock says EAGAIN): the run's memory ran
                 * out under the supervisor, which was not killed for it. */
                if (rc < 0 && r->cg && (err->errnum == ENOMEM || err->errnum == EAGAIN)) {
                        err->status = AIDP_EXIT_USAGE; /* as the refusal before START */
                        aidp_error_wrap(err,
                                        "the run's memory (%llu MiB) ran out while decrypting "
                                        "into /data: give the run more memory with --memory",
                                        (unsigned long long)(r->profile.limits.memory_bytes / MiB));
                }
                if (rc == 0 && brc < 0)
                        rc = aidp_error_errno(err, AIDP_EXIT_INTERNAL, -brc,
                                              "moving the supervisor back out of the run's "
                                              "cgroup");
                if (rc < 0)
                        return rc;
        }
        aidp_run_fault_point("inject");
        return 0;
}
