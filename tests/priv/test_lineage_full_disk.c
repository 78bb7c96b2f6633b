/* A full disk under the lineage log: the append fails with a clear lineage error
 * and leaves the log and its anchor byte for byte as they were. The log lives on a
 * small tmpfs mounted in a private mount namespace of this test process only, so the
 * host never sees it and it disappears with the process. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/lineage/lineage.h"
#include "tests/priv/priv.h"

static char mnt[64] = "", keydir[64] = "", logp[128], keyp[128], fill[128];
static bool mounted;

static void teardown(void)
{
        if (mounted)
                umount2(mnt, MNT_DETACH);
        if (mnt[0])
                rmdir(mnt);
        if (keydir[0]) {
                unlink(keyp);
                rmdir(keydir);
        }
}

TestSuite(lineage_full_disk, .fini = teardown, .timeout = 60);

static char *slurp(const char *path, size_t *len)
{
        FILE *f = fopen(path, "re");
        cr_assert_not_null(f, "%s", path);
        static char buf[256 * 1024];
        *len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        char *copy = malloc(*len + 1);
        memcpy(copy, buf, *len);
        return copy;
}

static int append(struct aidp_lineage *lg, size_t pad, aidp_error *e)
{
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START, id, NULL, "train");
        if (pad) {
                /* A record larger than a page, so the write itself runs out of space
                 * part-way instead of failing on the anchor. */
                char *big = malloc(pad + 1);
                memset(big, 'x', pad);
                big[pad] = '\0';
                aidp_lineage_set_profile(ev, big, NULL);
                free(big);
        }
        int r = aidp_lineage_append(lg, ev, e);
        json_object_put(ev);
        return r;
}

Test(lineage_full_disk, append_on_a_full_disk_fails_and_changes_nothing)
{
        AIDP_REQUIRE_ROOT();
        cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare: %s", strerror(errno));
        /* Nothing we mount may propagate back to the host. */
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        snprintf(mnt, sizeof mnt, "/tmp/aidp-fulldisk.XXXXXX");
        cr_assert_not_null(mkdtemp(mnt));
        snprintf(keydir, sizeof keydir, "/tmp/aidp-fulldisk-key.XXXXXX");
        cr_assert_not_null(mkdtemp(keydir));
        cr_assert_eq(mount("aidp-test", mnt, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           "size=64k,mode=0700"),
                     0, "mount tmpfs: %s", strerror(errno));
        mounted = true;
        snprintf(logp, sizeof logp, "%s/lineage/lineage.jsonl", mnt);
        snprintf(keyp, sizeof keyp, "%s/lineage.key", keydir);
        snprintf(fill, sizeof fill, "%s/filler", mnt);

        struct aidp_lineage_options o = {.path = logp,
                                         .key_path = keyp,
                                         .create_key = true,
                                         .syslog_socket = "/nonexistent/aidp-test"};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(append(lg, 0, &e), 0, "%s", e.msg);

        /* Fill the file system to the last byte. */
        int fd = open(fill, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        char chunk[512];
        memset(chunk, 0xa5, sizeof chunk);
        while (write(fd, chunk, sizeof chunk) > 0)
                ;
        cr_assert_eq(errno, ENOSPC);
        while (write(fd, chunk, 1) > 0)
                ;
        close(fd);

        char anchor[160];
        snprintf(anchor, sizeof anchor, "%s.anchor", logp);
        size_t len0, alen0;
        char *log0 = slurp(logp, &len0), *anchor0 = slurp(anchor, &alen0);

        /* Records that need a new block: one that still fits in the log's last
         * block is written (the anchor is rewritten in place, needing no block). */
        static const size_t pads[] = {4200, 9000};
        for (size_t i = 0; i < 2; i++) {
                aidp_error_clear(&e);
                cr_assert_lt(append(lg, pads[i], &e), 0, "append succeeded on a full disk");
                cr_assert_eq(e.status, AIDP_EXIT_LINEAGE);
                cr_assert_eq(e.errnum, ENOSPC, "%s", e.msg);
                cr_assert(strstr(e.msg, "No space left on device"), "%s", e.msg);
                cr_assert(strstr(e.msg, "(the log is unchanged)"), "%s", e.msg);
                size_t len1, alen1;
                char *log1 = slurp(logp, &len1), *anchor1 = slurp(anchor, &alen1);
                cr_assert_eq(len1, len0, "log grew from %zu to %zu bytes", len0, len1);
                cr_assert_eq(memcmp(log1, log0, len0), 0);
                cr_assert_eq(alen1, alen0);
                cr_assert_eq(memcmp(anchor1, anchor0, alen0), 0);
                char tmp[200];
                snprintf(tmp, sizeof tmp, "%s.tmp", anchor);
                cr_assert_eq(access(tmp, F_OK), -1, "anchor temporary left behind");
                free(log1);
                free(anchor1);
        }
        struct aidp_lineage_verify v;
        cr_assert_eq(aidp_lineage_verify_file(logp, NULL, true, aidp_lineage_key(lg), &v, &e), 0);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 3);

        /* Space again: appends resume on the same chain. */
        cr_assert_eq(unlink(fill), 0);
        cr_assert_eq(append(lg, 0, &e), 0, "%s", e.msg);
        cr_assert_eq(aidp_lineage_verify_file(logp, NULL, true, aidp_lineage_key(lg), &v, &e), 0);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 4);
        aidp_lineage_free(lg);
        free(log0);
        free(anchor0);
}
