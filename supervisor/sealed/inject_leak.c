/* The output leak scan in a run (views/leakscan.h, docs/sealed-data.md
 * "Output leak scan"): the value set lives in locked memory the core never
 * holds; before /out is sealed every regular file of it is read through the
 * seal's own fd walk (beneath the /out mount fd, never by a path) and
 * matched; a hit under a quarantine policy seals /out under the admin-only
 * quarantine key instead of the user's. */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/io.h"
#include "supervisor/sealed/inject.h"

#define SCAN_CHUNK (1u << 20)

/* The raw values a view hid are the most sensitive bytes the supervisor
 * holds after the data keys: never in a core (MADV_DONTDUMP), never swapped
 * (mlock; without RLIMIT_MEMLOCK room they stay usable, unlocked, as the
 * key memory does: keymem.c), wiped by the set before munmap. */
static void *locked_alloc(void *opaque, size_t len)
{
        (void)opaque;
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;
        madvise(p, len, MADV_DONTDUMP);
        /* Root is never short of RLIMIT_MEMLOCK: a failing mlock is the
         * run's memory cgroup out of room (the supervisor fills the set
         * from inside it, aidp_run_inject). NULL then, and the value is
         * counted as dropped, rather than an unlocked page whose first
         * touch the kernel could only retry. */
        if (mlock(p, len) < 0 && geteuid() == 0) {
                munmap(p, len);
                return NULL;
        }
        return p;
}

static void locked_free(void *opaque, void *p, size_t len)
{
        (void)opaque;
        munlock(p, len);
        munmap(p, len);
}

int aidp_inject_leaks_new(struct aidp_inject *d, aidp_error *err)
{
        if (d->leaks)
                return 0;
        int r = aidp_leakset_new(0, &d->leaks, err);
        if (r < 0)
                return r;
        struct aidp_leak_alloc a = {.alloc = locked_alloc, .free = locked_free};
        aidp_leakset_set_alloc(d->leaks, &a);
        return 0;
}

void aidp_inject_leak_hidden(void *opaque, const char *column, const char *label, const void *value,
                             size_t len)
{
        /* A value the set cannot hold is counted (aidp_leakset_dropped) and
         * reported with the scan. */
        (void)aidp_leakset_add(opaque, column, label, value, len);
}

void aidp_inject_leak_hidden_many(void *opaque, const struct aidp_view_hidden *v, size_t n)
{
        (void)aidp_leakset_add_many(opaque, v, n); /* as above: failures are counted */
}

struct scan_ctx {
        const struct aidp_leakset *set;
        struct aidp_leak_report *rep;
        uint8_t *buf;
};

static int scan_file(void *opaque, const char *path, int fd, uint64_t size, aidp_error *err)
{
        struct scan_ctx *c = opaque;
        struct aidp_leakscan *sc = NULL;
        int r = aidp_leakscan_begin(c->set, path, c->rep, &sc, err);
        if (r < 0)
                return r;
        uint64_t off = 0;
        while (off < size) {
                size_t want = size - off < SCAN_CHUNK ? (size_t)(size - off) : SCAN_CHUNK;
                ssize_t got = aidp_pread_all(fd, c->buf, want, (off_t)off);
                if (got < 0) {
                        r = aidp_error_errno(err, AIDP_EXIT_DATA, (int)-got, "reading %s", path);
                        break;
                }
                if (got == 0)
                        break; /* shrank: the seal refuses it */
                aidp_leakscan_feed(sc, c->buf, (size_t)got);
                off += (uint64_t)got;
        }
        aidp_leakscan_end(sc);
        return r;
}

static int leak_scan(struct aidp_inject *d, int dir_fd, aidp_error *err)
{
        memset(&d->leak, 0, sizeof d->leak);
        d->leak_scanned = d->quarantined = false;
        if (!d->leaks || aidp_leakset_count(d->leaks) == 0)
                return 0;
        int r = aidp_leakset_seal(d->leaks, err);
        if (r < 0)
                return r;
        struct scan_ctx c = {.set = d->leaks, .rep = &d->leak, .buf = malloc(SCAN_CHUNK)};
        if (!c.buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        r = aidp_sealed_walk_files(dir_fd, scan_file, &c, err);
        OPENSSL_cleanse(c.buf, SCAN_CHUNK);
        free(c.buf);
        if (r < 0)
                return aidp_error_wrap(err, "output leak scan of /out");
        d->leak_scanned = true;
        d->leak_values = aidp_leakset_count(d->leaks);
        d->leak_dropped = aidp_leakset_dropped(d->leaks);
        if (d->leak.hits == 0 || !d->leak_quarantine)
                return 0;
        const char *q = aidp_keys_quarantine_key(&d->keys);
        if (!q)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOKEY,
                                      "output leak scan: %llu hits and the access policy "
                                      "quarantines this output, but %s declares no key with "
                                      "purpose quarantine; /out is not sealed",
                                      (unsigned long long)d->leak.hits,
                                      d->keys.config[0] ? d->keys.config : "keys.yaml");
        snprintf(d->quarantine_key, sizeof d->quarantine_key, "%s", q);
        d->quarantined = true;
        return 0;
}

int aidp_inject_check_quarantine(struct aidp_inject *d, aidp_error *err)
{
        if (!d->leak_quarantine || !d->keys_ready || aidp_keys_quarantine_key(&d->keys))
                return 0;
        return aidp_error_set(err, AIDP_EXIT_CONFIG, ENOKEY,
                              "the access policy quarantines this run's output on a leak scan "
                              "hit (leak_scan), but %s declares no key with purpose quarantine",
                              d->keys.config[0] ? d->keys.config : "keys.yaml");
}

void aidp_inject_leaks_free(struct aidp_inject *d)
{
        aidp_leakset_free(d->leaks);
        d->leaks = NULL;
}

int aidp_inject_leak_scan(struct aidp_inject *d, int dir_fd, aidp_error *err)
{
        int r = leak_scan(d, dir_fd, err);
        /* The values are needed no longer: wiped now, not at the run's end. */
        aidp_inject_leaks_free(d);
        return r;
}
