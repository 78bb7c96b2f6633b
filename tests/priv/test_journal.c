/* The run journal's rewrite (supervisor/run/journal.c): journal.json is
 * swapped with a fresh file rather than renamed over (ext4 writes a file
 * renamed over another out before the rename returns). What gc relies on must
 * hold all the same: at every instant journal.json is one whole version, the
 * newest after each sync, and nothing else is left beside it. Runs on the
 * host's file system (the run directory's), as a run's journal does. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "priv.h"
#include "runner.h"
#include "supervisor/run/journal.h"

static char dir[64] = "";

static void setup(void)
{
        /* Under /var/tmp: a disk file system, like /run/aidp on hosts whose
         * /run is not a tmpfs (this one's /tmp may be either). */
        snprintf(dir, sizeof dir, "/var/tmp/aidp-journal.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
        if (dir[0])
                aidp_test_rm_tree(dir);
}

TestSuite(journal, .init = setup, .fini = teardown, .timeout = 60);

/* The step journal.json says it reached, or -1 when it is missing or torn. */
static long journal_step(const char *jdir)
{
        char p[PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/journal.json", jdir);
        json_object *o = json_object_from_file(p);
        if (!o)
                return -1;
        json_object *a, *v;
        long step = -1;
        if (json_object_object_get_ex(o, "jobs", &a) && json_object_array_length(a) > 0) {
                v = json_object_array_get_idx(a, json_object_array_length(a) - 1);
                step = strtol(json_object_get_string(v), NULL, 10);
        }
        json_object_put(o);
        return step;
}

static size_t entries(const char *jdir)
{
        size_t n = 0;
        DIR *d = opendir(jdir);
        cr_assert_not_null(d);
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

struct reader {
        const char *jdir;
        atomic_bool stop;
        atomic_long reads, torn;
};

/* gc's view while the run rewrites: journal.json opened and parsed in a loop. */
static void *read_loop(void *arg)
{
        struct reader *rd = arg;
        while (!atomic_load(&rd->stop)) {
                if (journal_step(rd->jdir) < 0)
                        atomic_fetch_add(&rd->torn, 1);
                atomic_fetch_add(&rd->reads, 1);
        }
        return NULL;
}

Test(journal, every_sync_leaves_the_newest_whole_version_and_nothing_beside_it)
{
        struct aidp_journal j;
        aidp_error err = {0};
        cr_assert_eq(aidp_journal_create(dir, "run-a", NULL, "0", &j, &err), 0, "%s", err.msg);
        char jdir[PATH_MAX];
        snprintf(jdir, sizeof jdir, "%s", j.dir);
        cr_assert_eq(journal_step(jdir), 0);
        struct reader rd = {.jdir = jdir};
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, read_loop, &rd), 0);
        for (int i = 1; i <= 300; i++) {
                char v[16];
                snprintf(v, sizeof v, "%d", i);
                aidp_journal_add(&j, "job", v);
                cr_assert_eq(aidp_journal_sync(&j, &err), 0, "sync %d: %s", i, err.msg);
                cr_assert_eq(journal_step(jdir), i, "journal.json is not version %d", i);
                cr_assert_eq(entries(jdir), 1, "sync %d left a file beside journal.json", i);
        }
        atomic_store(&rd.stop, true);
        pthread_join(t, NULL);
        cr_expect_gt(atomic_load(&rd.reads), 0);
        cr_expect_eq(atomic_load(&rd.torn), 0,
                     "a reader found journal.json missing or torn %ld times in %ld reads",
                     atomic_load(&rd.torn), atomic_load(&rd.reads));
        aidp_journal_remove(&j);
        cr_expect_neq(access(jdir, F_OK), 0, "the journal's directory is left");
}

/* A supervisor killed between writing the new version and swapping it in
 * leaves journal.json.tmp: the next sync starts from a fresh file. */
Test(journal, a_version_left_half_done_by_a_crash_is_replaced)
{
        struct aidp_journal j;
        aidp_error err = {0};
        cr_assert_eq(aidp_journal_create(dir, "run-b", NULL, "0", &j, &err), 0, "%s", err.msg);
        char tmp[PATH_MAX + 32];
        snprintf(tmp, sizeof tmp, "%s/journal.json.tmp", j.dir);
        FILE *f = fopen(tmp, "we");
        cr_assert_not_null(f);
        fputs("{\"run_id\": \"stale, and longer than the version that follows it\"", f);
        fclose(f);
        aidp_journal_add(&j, "job", "1");
        cr_assert_eq(aidp_journal_sync(&j, &err), 0, "%s", err.msg);
        cr_expect_eq(journal_step(j.dir), 1);
        cr_expect_neq(access(tmp, F_OK), 0, "the stale version is still there");
        cr_expect_eq(entries(j.dir), 1);
        aidp_journal_remove(&j);
}
