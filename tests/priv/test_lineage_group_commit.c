/* A failed fdatasync under group commit (docs/lineage.md, "Group commit"): the
 * log lives on an ext4 (no journal) on a loop device whose backing file is sparse
 * on a small tmpfs. Filling that tmpfs makes the ext4's writeback fail: writes
 * still land in the page cache, and fdatasync fails with ENOSPC. Every record not
 * yet committed must then be cut away, each of its appenders must fail, and the log
 * must be byte for byte as at its last commit and still verify. Everything is
 * mounted in a private mount namespace of this test's worker; the loop device
 * clears itself when the ext4 goes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lineage_util.h"
#include "runner.h"
#include "supervisor/lineage/lineage.h"
#include "tests/priv/priv.h"

static char top[64] = "/tmp/aidp-groupcommit.XXXXXX", fsdir[128], keyp[128], logp[160],
            anchorp[176], fill[128];
static bool tmpfs_on, ext4_on;

static void teardown(void)
{
        if (ext4_on)
                umount2(fsdir, MNT_DETACH); /* the loop device clears itself */
        if (tmpfs_on)
                umount2(top, MNT_DETACH);
}

TestSuite(lineage_group_commit, .fini = teardown, .timeout = 120);

/* A free loop device bound to backing (autoclear); its path in dev. */
static int attach_loop(const char *backing, char *dev, size_t len)
{
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
                return -1;
        int bfd = open(backing, O_RDWR | O_CLOEXEC);
        int lfd = -1;
        for (int tries = 0; bfd >= 0 && tries < 20 && lfd < 0; tries++) {
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0)
                        break;
                snprintf(dev, len, "/dev/loop%d", n);
                lfd = open(dev, O_RDWR | O_CLOEXEC);
                struct loop_config cfg = {.fd = (unsigned)bfd,
                                          .info = {.lo_flags = LO_FLAGS_AUTOCLEAR}};
                /* Another process may take the same free device first: EBUSY. */
                if (lfd >= 0 && ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
                        close(lfd);
                        lfd = -1;
                }
        }
        close(ctl);
        if (bfd >= 0)
                close(bfd);
        return lfd;
}

static int run_mkfs(const char *dev)
{
        pid_t pid = fork();
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 1);
                execlp("mkfs.ext4", "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^has_journal",
                       "-E", "nodiscard,lazy_itable_init=0", dev, (char *)NULL);
                _exit(127);
        }
        int st = 0;
        return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void make_fs(void)
{
        cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare: %s", strerror(errno));
        /* Nothing we mount may propagate back to the host. */
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        cr_assert_not_null(aidp_test_mkdtemp(top));
        cr_assert_eq(mount("aidp-test", top, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           "size=8m,mode=0700"),
                     0, "mount tmpfs: %s", strerror(errno));
        tmpfs_on = true;
        char backing[128], dev[32];
        snprintf(backing, sizeof backing, "%s/backing", top);
        snprintf(fsdir, sizeof fsdir, "%s/fs", top);
        snprintf(fill, sizeof fill, "%s/fill", top);
        snprintf(keyp, sizeof keyp, "%s/lineage.key", top);
        snprintf(logp, sizeof logp, "%s/lineage.jsonl", fsdir);
        snprintf(anchorp, sizeof anchorp, "%s.anchor", logp);
        int bfd = open(backing, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(bfd, 0);
        cr_assert_eq(ftruncate(bfd, 32 << 20), 0); /* sparse: pages only where written */
        close(bfd);
        cr_assert_eq(mkdir(fsdir, 0700), 0);
        int lfd = attach_loop(backing, dev, sizeof dev);
        cr_assert_geq(lfd, 0, "no loop device: %s", strerror(errno));
        cr_assert_eq(run_mkfs(dev), 0, "mkfs.ext4 %s failed", dev);
        cr_assert_eq(mount(dev, fsdir, "ext4", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), 0,
                     "mount ext4: %s", strerror(errno));
        ext4_on = true;
        close(lfd); /* the mount holds the device now */
}

/* Fill the tmpfs under the loop device to its last byte: the ext4 above still
 * takes writes into its page cache, but its writeback now fails. */
static void fill_backing(void)
{
        int fd = open(fill, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        static char chunk[65536];
        while (write(fd, chunk, sizeof chunk) > 0)
                ;
        while (write(fd, chunk, 1) > 0)
                ;
        cr_assert_eq(errno, ENOSPC);
        close(fd);
}

static struct aidp_lineage *open_store(void)
{
        struct aidp_lineage_options o = {.path = logp,
                                         .key_path = keyp,
                                         .create_key = true,
                                         .syslog_socket = "/nonexistent/aidp-test"};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        return aidp_lineage_open(&lg, &o, &e) == 0 ? lg : NULL;
}

/* A record of about 9 KiB: its bytes need blocks of their own, so pages of the
 * backing file that were never written. */
static int append_id(struct aidp_lineage *lg, aidp_error *e, char id[AIDP_LINEAGE_RUN_ID_LEN + 1])
{
        aidp_lineage_run_id_new(id);
        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START, id, NULL, "train");
        static char big[9001];
        memset(big, 'x', sizeof big - 1);
        aidp_lineage_set_profile(ev, big, NULL);
        int r = aidp_lineage_append(lg, ev, e);
        json_object_put(ev);
        return r;
}

static int append(struct aidp_lineage *lg, aidp_error *e)
{
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        return append_id(lg, e, id);
}

/* Whether s reached the loop device: it is in the backing file. */
static bool on_device(const char *s)
{
        char backing[160];
        snprintf(backing, sizeof backing, "%s/backing", top);
        size_t len = 0;
        char *buf = aidp_test_slurp(backing, &len);
        bool found = buf && memmem(buf, len, s, strlen(s));
        free(buf);
        return found;
}

static void expect_verifies(uint64_t records)
{
        struct aidp_lineage *lg = open_store();
        cr_assert_not_null(lg);
        struct aidp_lineage_verify v;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_verify_file(logp, NULL, true, aidp_lineage_key(lg), &v, &e), 0,
                     "%s", e.msg);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, records);
        cr_assert_eq(v.anchor_lag, 0);
        aidp_lineage_free(lg);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s -q --key %s %s", AIDP_BINARY_DIR "/aidp lineage verify", keyp,
                 logp);
        cr_assert_eq(system(cmd), 0, "aidp lineage verify failed");
}

#define APPENDERS 8

Test(lineage_group_commit, failed_fdatasync_drops_every_uncommitted_record_and_fails_each_appender)
{
        AIDP_REQUIRE_ROOT();
        make_fs();
        struct aidp_lineage *lg = open_store();
        cr_assert_not_null(lg);
        aidp_error e = {0};
        for (int i = 0; i < 3; i++)
                cr_assert_eq(append(lg, &e), 0, "%s", e.msg);
        fill_backing();
        /* tmpfs may have handed the backing file a large folio that still has room
         * for the next blocks: appends commit until the log reaches blocks with no
         * page behind them, and the first one that does fails alone. */
        int committed = 3, r = 0;
        for (int i = 0; i < 16 && (r = append(lg, &e)) == 0; i++)
                committed++;
        cr_assert_lt(r, 0, "no fdatasync failed");
        cr_assert_eq(e.status, AIDP_EXIT_LINEAGE, "%s", e.msg);
        cr_assert(e.errnum == ENOSPC || e.errnum == EIO, "%s", e.msg);
        cr_assert(strstr(e.msg, "back at its last commit"), "%s", e.msg);
        expect_verifies((uint64_t)committed);
        aidp_lineage_free(lg);
        size_t len0, alen0;
        char *log0 = aidp_test_slurp(logp, &len0), *anchor0 = aidp_test_slurp(anchorp, &alen0);
        cr_assert_not_null(log0);

        /* Now many at once. Whoever syncs fails, and so does everyone whose record
         * that sync covered. (An append may still succeed where its blocks lie in
         * room tmpfs had left: then its bytes must truly be on the device.) */
        int go[2], res[2];
        cr_assert_eq(pipe(go), 0);
        cr_assert_eq(pipe(res), 0);
        pid_t pids[APPENDERS];
        for (int i = 0; i < APPENDERS; i++) {
                pids[i] = fork();
                cr_assert_geq(pids[i], 0);
                if (pids[i] == 0) {
                        close(go[1]);
                        char c, id[AIDP_LINEAGE_RUN_ID_LEN + 1];
                        if (read(go[0], &c, 1) < 0)
                                _exit(4);
                        struct aidp_lineage *l = open_store();
                        aidp_error ce = {0};
                        if (!l)
                                _exit(2);
                        int ar = append_id(l, &ce, id);
                        /* one line per appender: status errno run-id message */
                        dprintf(res[1], "%d %d %s %.400s\n", ar < 0 ? ce.status : 0, ce.errnum, id,
                                ce.msg);
                        _exit(0);
                }
        }
        close(go[0]);
        close(go[1]); /* all at once */
        close(res[1]);
        for (int i = 0; i < APPENDERS; i++) {
                int st;
                cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
                cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "appender %d died (%d)", i, st);
        }
        size_t len1, alen1;
        char *log1 = aidp_test_slurp(logp, &len1), *anchor1 = aidp_test_slurp(anchorp, &alen1);
        FILE *f = fdopen(res[0], "r");
        char line[600];
        int n = 0, failed = 0;
        while (fgets(line, sizeof line, f)) {
                int status = 0, errnum = 0;
                char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
                cr_assert_eq(sscanf(line, "%d %d %36s", &status, &errnum, id), 3, "%s", line);
                n++;
                if (status == 0) {
                        cr_assert(memmem(log1, len1, id, strlen(id)), "%s: not in the log", id);
                        cr_assert(on_device(id), "%s: reported committed, but not on the device",
                                  id);
                        continue;
                }
                failed++;
                cr_assert_eq(status, AIDP_EXIT_LINEAGE, "%s", line);
                cr_assert(errnum == ENOSPC || errnum == EIO, "%s", line);
                cr_assert(strstr(line, "back at its last commit"), "%s", line);
                cr_assert_null(memmem(log1, len1, id, strlen(id)), "%s failed but is in the log",
                               id);
        }
        fclose(f);
        cr_assert_eq(n, APPENDERS);
        cr_assert_gt(failed, 0, "no append failed");
        cr_log_info("%d of %d concurrent appends failed", failed, APPENDERS);

        /* Nothing of the failed ones is left: the log is the last commit's, and the
         * records that did commit (if any) after it. */
        cr_assert_geq(len1, len0);
        cr_assert_eq(memcmp(log1, log0, len0), 0);
        if (failed == APPENDERS) {
                cr_assert_eq(len1, len0, "the log is %zu bytes, was %zu", len1, len0);
                cr_assert_eq(alen1, alen0);
                cr_assert_eq(memcmp(anchor1, anchor0, alen0), 0);
        }
        committed += APPENDERS - failed;
        expect_verifies((uint64_t)committed);

        /* Space again: appends go on, on the same chain. */
        cr_assert_eq(unlink(fill), 0);
        lg = open_store();
        cr_assert_eq(append(lg, &e), 0, "%s", e.msg);
        aidp_lineage_free(lg);
        expect_verifies((uint64_t)committed + 1);
        free(log0);
        free(anchor0);
        free(log1);
        free(anchor1);
}

/* Why a failed fdatasync must cut the log back (lineage_commit.c): on this kernel
 * the pages whose writeback failed are clean afterwards, so a second fdatasync
 * reports success although the bytes never reached the device. */
Test(lineage_group_commit, a_second_fdatasync_reports_success_for_bytes_a_failed_one_lost)
{
        AIDP_REQUIRE_ROOT();
        make_fs();
        fill_backing();
        char scratch[160];
        snprintf(scratch, sizeof scratch, "%s/scratch", fsdir);
        int fd = open(scratch, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        static char buf[256 * 1024];
        for (size_t i = 0; i < sizeof buf; i += 32) {
                char chunk[33];
                snprintf(chunk, sizeof chunk, "aidp-lost-bytes-%015zu", i);
                memcpy(buf + i, chunk, 32);
        }
        cr_assert_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
        cr_assert_eq(fdatasync(fd), -1, "the first fdatasync succeeded on a full device");
        cr_assert(errno == ENOSPC || errno == EIO, "%s", strerror(errno));
        cr_assert_eq(fdatasync(fd), 0, "the second fdatasync failed too: %s", strerror(errno));
        char last[33];
        memcpy(last, buf + sizeof buf - 32, 32);
        last[32] = '\0';
        cr_assert_not(on_device(last), "the bytes reached the device after all");
        close(fd);
}
