/* Caller trust beyond `run` (issue 13; issue 21's unseal item; docs/security.md):
 * `aidp unseal`/`inspect` through sudo decide by the access policy and act
 * with the user's credentials, `unseal -o` writes nothing unauthenticated into
 * DIR whatever stops it, `aidp-supervisor learn` checks its caller like run,
 * and a user's --output-dir gets the sealed output owned by that user.
 *
 * Real unprivileged users and a real sudo, as test_trust.c. A user's run and
 * tools use the installed configuration (/etc/aidp, /var/lib/aidp), so each
 * test runs in its own mount namespace with a fresh tmpfs over both: the
 * machine's own policy, keys and lineage log are never seen nor touched. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "common/fsdir.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"

#define AIDP     AIDP_BINARY_DIR "/aidp"
#define KEY_DIR  "/etc/aidp/keys"
#define LEARN_AS AIDP_SUPERVISOR_PROD " learn *"

static struct aidp_test_user A, V; /* the caller and another user */
static struct aidp_proc P;
static bool ready;

static int put(const char *path, const char *text, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return -1;
        ssize_t n = write(fd, text, strlen(text));
        close(fd);
        return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* A private view of aidp's installed configuration: tmpfs over /etc/aidp and
 * /var/lib/aidp in a mount namespace of our own (children inherit it). */
static int private_config(void)
{
        /* The mount points, as aidp itself would create them on a fresh host. */
        if (aidp_mkdir_p("/etc/aidp", 0755, 0755) < 0 ||
            aidp_mkdir_p("/var/lib/aidp", 0750, 0755) < 0)
                return -1;
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                return -1;
        if (mount("aidpt", "/etc/aidp", "tmpfs", 0, "mode=0755") < 0 ||
            mount("aidpt", "/var/lib/aidp", "tmpfs", 0, "mode=0750") < 0 ||
            mkdir(KEY_DIR, 0700) < 0)
                return -1;
        char policy[1024];
        snprintf(policy, sizeof policy,
                 "apiVersion: aidp/v1\nkind: AccessPolicy\nroles:\n"
                 "  reader: {operations: [unseal, inspect], datasets: [\"*\"], "
                 "max_classification: internal}\n"
                 "  peeker: {operations: [inspect], datasets: [\"*\"], "
                 "max_classification: confidential}\n"
                 "  trainer: {operations: [run], profiles: [\"*\"], datasets: [\"*\"], "
                 "max_classification: internal}\n"
                 "users:\n  %s: {roles: [reader, peeker, trainer]}\n",
                 A.name);
        if (put("/etc/aidp/access.yaml", policy, 0644) < 0 ||
            put("/etc/aidp/keys.yaml", "keys:\n  quarantine: {purpose: quarantine}\n", 0644) < 0 ||
            aidp_test_sh(AIDP " keygen quarantine --key-dir " KEY_DIR " >/dev/null") != 0)
                return -1;
        return aidp_test_sh(AIDP " keygen k1 --key-dir " KEY_DIR " >/dev/null") == 0 ? 0 : -1;
}

static void setup(void)
{
        if (geteuid() != 0)
                return;
        if (aidp_test_user_create("a", &A) < 0 || aidp_test_user_create("v", &V) < 0 ||
            aidp_test_sudoers_allow(&A, AIDP_SUPERVISOR_PROD) < 0 ||
            aidp_test_sudoers_allow(&A, LEARN_AS) < 0 || aidp_test_sudoers_allow(&A, AIDP) < 0 ||
            private_config() < 0)
                return;
        ready = true;
}

static void teardown(void)
{
        aidp_test_users_cleanup();
}

TestSuite(trust_tools, .init = setup, .fini = teardown, .timeout = 240);

#define NEED()                                                                                     \
        do {                                                                                       \
                AIDP_REQUIRE_ROOT();                                                               \
                cr_assert(ready,                                                                   \
                          "test users, sudoers drop-in or private configuration failed (%s)",      \
                          aidp_test_users_why());                                                  \
        } while (0)

/* Seal `bytes` bytes (or `text`) as dataset `name` of class `cls` into
 * OWNER's home as NAME.sealed, owned by OWNER, mode 0600. */
static void seal_for(const struct aidp_test_user *owner, const char *name, const char *cls,
                     const char *text, unsigned mib, char *out, size_t n)
{
        char src[256];
        snprintf(src, sizeof src, "%s/%s.src", owner->home, name);
        snprintf(out, n, "%s/%s.sealed", owner->home, name);
        if (text)
                cr_assert_eq(put(src, text, 0600), 0);
        else
                cr_assert_eq(aidp_test_sh("head -c %uM /dev/urandom > %s", mib, src), 0);
        cr_assert_eq(aidp_test_sh(AIDP " seal %s -o %s -n %s -k k1 -c %s -q --key-dir " KEY_DIR,
                                  src, out, name, cls),
                     0, "sealing %s", name);
        cr_assert_eq(chown(out, owner->uid, owner->gid), 0);
        cr_assert_eq(chmod(out, 0600), 0);
        unlink(src);
}

static int as_a(const char *const *args)
{
        char *a[32] = {AIDP};
        size_t n = 1;
        for (size_t i = 0; args[i]; i++)
                a[n++] = (char *)args[i];
        a[n] = NULL;
        return aidp_test_run_as(&P, &A, true, a);
}

static void refused(int st, int want, const char *needle)
{
        cr_expect_eq(st, want, "status %d, expected %d: %s", st, want, P.err);
        cr_expect(strstr(P.err, needle) != NULL, "no '%s' in: %s", needle, P.err);
}

static bool exists(const char *p)
{
        struct stat st;
        return lstat(p, &st) == 0;
}

/* Entries below dir (recursively) and the bytes in them. */
static long g_entries, g_bytes;
static int count_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)p;
        (void)flag;
        if (f->level > 0) {
                g_entries++;
                if (S_ISREG(st->st_mode))
                        g_bytes += st->st_size;
        }
        return 0;
}

static void count_tree(const char *dir, long *entries, long *bytes)
{
        g_entries = g_bytes = 0;
        nftw(dir, count_one, 16, FTW_PHYS);
        *entries = g_entries;
        *bytes = g_bytes;
}

Test(trust_tools, unseal_and_inspect_through_sudo_are_decided_by_the_policy)
{
        NEED();
        char ok[256], peek[256], secret[256], out[200], file[300];
        seal_for(&A, "granted", "internal", "GRANTED-PLAINTEXT\n", 0, ok, sizeof ok);
        seal_for(&A, "peek", "confidential", "PEEK-PLAINTEXT\n", 0, peek, sizeof peek);
        seal_for(&A, "secret", "restricted", "SECRET-PLAINTEXT\n", 0, secret, sizeof secret);
        snprintf(out, sizeof out, "%s/out", A.home);
        /* Granted: unsealed by the user, into files the user owns. */
        cr_assert_eq(as_a((const char *[]){"unseal", ok, "-o", out, "-q", NULL}), 0, "%s", P.err);
        snprintf(file, sizeof file, "%s/granted.src", out);
        struct stat st;
        cr_assert_eq(stat(file, &st), 0, "no %s", file);
        cr_expect(st.st_uid == A.uid && st.st_gid == A.gid, "owned by %u:%u", st.st_uid, st.st_gid);
        cr_assert_eq(stat(out, &st), 0);
        cr_expect(st.st_uid == A.uid, "the output directory is owned by %u", st.st_uid);
        long entries, bytes;
        count_tree(out, &entries, &bytes);
        cr_expect_eq(entries, 1, "%ld entries in %s (a temporary directory left?)", entries, out);
        /* Confidential: the policy's reader role stops at internal. */
        char out2[256];
        snprintf(out2, sizeof out2, "%s/out2", A.home);
        refused(as_a((const char *[]){"unseal", peek, "-o", out2, NULL}), AIDP_EXIT_DENIED,
                "unseal");
        cr_expect(!exists(out2), "a denied unseal created %s", out2);
        /* inspect: the header, authenticated; its content digest only for a
         * caller who may unseal the data. */
        cr_expect_eq(as_a((const char *[]){"inspect", ok, NULL}), 0, "%s", P.err);
        cr_expect(strstr(P.out, "granted") && strstr(P.out, "content-digest: hmac-sha256:"), "%s",
                  P.out);
        cr_expect_eq(as_a((const char *[]){"inspect", peek, NULL}), 0, "%s", P.err);
        cr_expect(strstr(P.out, "peek") && strstr(P.out, "withheld") &&
                          !strstr(P.out, "content-digest: hmac-sha256:"),
                  "%s", P.out);
        refused(as_a((const char *[]){"inspect", secret, NULL}), AIDP_EXIT_DENIED, "inspect");
        cr_expect(!strstr(P.out, "secret"), "a denied inspect printed the header: %s", P.out);
        refused(as_a((const char *[]){"unseal", secret, "--verify-only", NULL}), AIDP_EXIT_DENIED,
                "unseal");
}

/* DIR (A.home/OUT) holds NAME already: unsealing SEALED there is refused and
 * leaves exactly that entry. */
static void expect_clash(const char *sealed, const char *out_name, const char *name)
{
        char out[256], clash[300], needle[64];
        snprintf(out, sizeof out, "%s/%s", A.home, out_name);
        snprintf(clash, sizeof clash, "%s/%s", out, name);
        snprintf(needle, sizeof needle, "%s exists already", name);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_mkdir, out, NULL), 0);
        cr_assert_eq(aidp_test_write_as(&A, clash, "KEEP\n", 0600), 0);
        refused(as_a((const char *[]){"unseal", sealed, "-o", out, NULL}), AIDP_EXIT_USAGE, needle);
        long entries, bytes;
        count_tree(out, &entries, &bytes);
        cr_expect(entries == 1 && bytes == 5, "%ld entries, %ld bytes in %s", entries, bytes, out);
}

Test(trust_tools, unseal_opens_and_writes_only_as_the_user)
{
        NEED();
        char mine[256], theirs[256], out[256], link[256];
        seal_for(&A, "granted", "internal", "GRANTED\n", 0, mine, sizeof mine);
        seal_for(&V, "granted", "internal", "OTHER-USERS-DATA\n", 0, theirs, sizeof theirs);
        /* Another user's 0600 file in their 0700 home: opened as A, refused. */
        snprintf(out, sizeof out, "%s/o1", A.home);
        refused(as_a((const char *[]){"unseal", theirs, "-o", out, NULL}), AIDP_EXIT_USAGE,
                "permission denied");
        cr_expect(!exists(out));
        /* Root's directory: A cannot create anything there, so nothing is
         * (only our own names are checked: other tests use sudoers.d too). */
        refused(as_a((const char *[]){"unseal", mine, "-o", "/etc/sudoers.d", NULL}),
                AIDP_EXIT_USAGE, "Permission denied");
        cr_expect(!exists("/etc/sudoers.d/granted.src"), "written into /etc/sudoers.d");
        DIR *d = opendir("/etc/sudoers.d");
        for (struct dirent *e; d && (e = readdir(d));)
                cr_expect(strncmp(e->d_name, ".aidp-unseal-", 13) != 0, "%s in /etc/sudoers.d",
                          e->d_name);
        if (d)
                closedir(d);
        /* A symlink as DIR: never followed. */
        snprintf(link, sizeof link, "%s/ln", A.home);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_symlink, "/etc/cron.d", link), 0);
        refused(as_a((const char *[]){"unseal", mine, "-o", link, NULL}), AIDP_EXIT_USAGE,
                "opening");
        /* An existing entry is never replaced, and nothing else is left. */
        expect_clash(mine, "o2", "granted.src");
        /* A tree whose second entry clashes: what moved first goes back. */
        char tree[256], tsealed[256];
        snprintf(tree, sizeof tree, "%s/tree", A.home);
        snprintf(tsealed, sizeof tsealed, "%s/tree.sealed", A.home);
        cr_assert_eq(aidp_test_sh("mkdir %s && for f in a b c; do echo $f > %s/$f; done && " AIDP
                                  " seal %s -o %s -n tree -k k1 -c internal -q --key-dir " KEY_DIR
                                  " && chown %u %s",
                                  tree, tree, tree, tsealed, (unsigned)A.uid, tsealed),
                     0);
        expect_clash(tsealed, "o3", "b");
        /* The user's word on keys counts for nothing. */
        refused(as_a((const char *[]){"unseal", mine, "--verify-only", "--key-dir", "/tmp", NULL}),
                AIDP_EXIT_USAGE, "admin-only");
}

/* The pid of pid's only child (the unseal worker), or 0. */
static pid_t child_of(pid_t pid)
{
        char path[64], buf[64] = "";
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
        FILE *f = fopen(path, "re");
        if (f) {
                if (!fgets(buf, sizeof buf, f))
                        buf[0] = '\0';
                fclose(f);
        }
        return (pid_t)atoi(buf);
}

static void wait_empty(const char *dir, int ms)
{
        long e = 0, b = 0;
        for (int i = 0; i < ms / 10; i++) {
                count_tree(dir, &e, &b);
                if (e == 0)
                        return;
                usleep(10000);
        }
}

/* Start unsealing big into dir; once plaintext is being written, send sig
 * to the parent (worker false) or the worker; nothing may be left in dir. */
static void interrupt_case(const char *big, const char *dir, bool as_user, bool worker, int sig)
{
        char *adm[] = {AIDP, "unseal", (char *)big, "-o", (char *)dir, "-q", "-j", "1", NULL};
        char ruid[32], rgid[32];
        snprintf(ruid, sizeof ruid, "--reuid=%u", (unsigned)A.uid);
        snprintf(rgid, sizeof rgid, "--regid=%u", (unsigned)A.gid);
        char *viasudo[] = {"/usr/bin/setpriv",
                           ruid,
                           rgid,
                           "--init-groups",
                           "/usr/bin/sudo",
                           "-n",
                           "--",
                           AIDP,
                           "unseal",
                           (char *)big,
                           "-o",
                           (char *)dir,
                           "-q",
                           "-j",
                           "1",
                           NULL};
        cr_assert_eq(aidp_test_spawn(&P, as_user ? viasudo : adm), 0);
        long e = 0, b = 0;
        for (int i = 0; i < 20000 && b == 0; i++) {
                count_tree(dir, &e, &b);
                if (b == 0)
                        usleep(500);
        }
        cr_assert_gt(b, 0, "no plaintext was ever written (%s)", P.err);
        pid_t target = P.pid;
        if (worker) {
                target = child_of(P.pid);
                cr_assert_gt(target, 0, "no worker process");
        }
        cr_assert_eq(kill(target, sig), 0);
        int st = aidp_test_finish(&P);
        cr_expect_neq(st, 0, "the interrupted unseal succeeded");
        wait_empty(dir, 10000); /* SIGKILL of the parent: the worker cleans up */
        count_tree(dir, &e, &b);
        cr_expect(e == 0 && b == 0, "signal %d to the %s left %ld entries, %ld bytes in %s: %s",
                  sig, worker ? "worker" : "parent", e, b, dir, P.err);
}

Test(trust_tools, interrupted_unseal_leaves_no_plaintext_in_dir)
{
        NEED();
        char big[256], dir[256];
        seal_for(&A, "granted", "internal", NULL, 256, big, sizeof big);
        snprintf(dir, sizeof dir, "%s/out", A.home);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_mkdir, dir, NULL), 0);
        interrupt_case(big, dir, false, false, SIGKILL);
        interrupt_case(big, dir, false, true, SIGKILL);
        interrupt_case(big, dir, false, false, SIGINT);
        interrupt_case(big, dir, true, false, SIGTERM); /* to sudo, which relays it */
        interrupt_case(big, dir, true, true, SIGKILL);  /* the user kills their worker */
}

Test(trust_tools, tampered_last_segment_leaves_nothing)
{
        NEED();
        char f[256], dir[256];
        seal_for(&A, "granted", "internal", NULL, 8, f, sizeof f);
        /* The last segment's ciphertext, a little before its tag. */
        int fd = open(f, O_RDWR | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        off_t end = lseek(fd, 0, SEEK_END);
        unsigned char c;
        cr_assert_eq(pread(fd, &c, 1, end - 100), 1);
        c ^= 0x5a;
        cr_assert_eq(pwrite(fd, &c, 1, end - 100), 1);
        close(fd);
        snprintf(dir, sizeof dir, "%s/out", A.home);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_mkdir, dir, NULL), 0);
        char *a[] = {AIDP, "unseal", f, "-o", dir, "-q", NULL};
        int st = aidp_test_run(&P, a);
        cr_expect_eq(st, AIDP_EXIT_DATA, "%s", P.err);
        cr_expect(strstr(P.err, "authentication") != NULL, "%s", P.err);
        long e, b;
        count_tree(dir, &e, &b);
        cr_expect(e == 0, "%ld entries (%ld bytes) left in %s", e, b, dir);
        cr_expect_eq(as_a((const char *[]){"unseal", f, "-o", dir, "-q", NULL}), AIDP_EXIT_DATA,
                     "%s", P.err);
        count_tree(dir, &e, &b);
        cr_expect(e == 0, "through sudo: %ld entries (%ld bytes) left in %s", e, b, dir);
}

/* `sudo -C N aidp-supervisor learn --notify-fd=FD ARGS -- /bin/true` as A,
 * with a real socket on FD (sudo passes it on: closefrom_override). */
static int learn_as_a(const char *const *args)
{
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
        /* Only the supervisor's end crosses exec: once ours closes, a
         * listener sent to it is gone, and a job that got that far fails
         * instead of waiting for answers. */
        cr_assert_eq(fcntl(sv[0], F_SETFD, FD_CLOEXEC), 0);
        char ruid[32], rgid[32], fdarg[32], keep[32];
        snprintf(ruid, sizeof ruid, "--reuid=%u", (unsigned)A.uid);
        snprintf(rgid, sizeof rgid, "--regid=%u", (unsigned)A.gid);
        snprintf(fdarg, sizeof fdarg, "--notify-fd=%d", sv[1]);
        snprintf(keep, sizeof keep, "-C%d", (sv[0] > sv[1] ? sv[0] : sv[1]) + 1);
        char *a[32] = {"/usr/bin/setpriv",   ruid,    rgid, "--init-groups",
                       "/usr/bin/sudo",      "-n",    keep, "--",
                       AIDP_SUPERVISOR_PROD, "learn", fdarg};
        size_t n = 11;
        for (size_t i = 0; args[i]; i++)
                a[n++] = (char *)args[i];
        a[n++] = "--";
        a[n++] = "/bin/true";
        a[n] = NULL;
        int st = aidp_test_spawn(&P, a);
        close(sv[0]);
        close(sv[1]);
        cr_assert_eq(st, 0);
        return aidp_test_finish(&P);
}

Test(trust_tools, learn_checks_its_caller_like_run)
{
        NEED();
        refused(learn_as_a((const char *[]){"--user", "0", NULL}), AIDP_EXIT_USAGE, "--user");
        char prof[256];
        snprintf(prof, sizeof prof, "%s/mine.yaml", A.home);
        cr_assert_eq(aidp_test_write_as(&A, prof,
                                        "apiVersion: aidp/v1\nkind: Profile\n"
                                        "metadata: {name: baseline}\n"
                                        "user: {mode: fixed, uid: 0, gid: 0, allowRoot: true}\n",
                                        0644),
                     0);
        refused(learn_as_a((const char *[]){"--profile", prof, NULL}), AIDP_EXIT_USAGE,
                "installed library profiles only");
        /* The scheduler path: root handed a job's environment with a SUDO_UID
         * that sudo did not set is refused, not made that user or an admin. */
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "SUDO_UID=%u AIDP_PROFILE_PATH=/tmp " AIDP_SUPERVISOR_PROD
                 " learn --notify-fd=%d -- /bin/true 2>/dev/null",
                 (unsigned)A.uid, sv[1]);
        close(sv[0]);
        int st = aidp_test_sh("%s", cmd);
        close(sv[1]);
        cr_expect_eq(st, AIDP_EXIT_USAGE, "learn with a job's SUDO_UID: status %d", st);
}

/* The whole supported path: a user's run through sudo with --output-dir in a
 * directory of their own; the sealed output lands there, theirs, and opens
 * with their unseal. A directory they cannot write is refused, and root
 * writes nothing into it. */
Test(trust_tools, user_output_dir_gets_a_sealed_output_owned_by_the_user)
{
        NEED();
        char res[256], back[256], file[300], rootdir[128];
        snprintf(res, sizeof res, "%s/results", A.home);
        snprintf(back, sizeof back, "%s/back", A.home);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_mkdir, res, NULL), 0);
        char *a[] = {AIDP_SUPERVISOR_PROD,
                     "run",
                     "-q",
                     "--no-cwd",
                     "--output-dir",
                     res,
                     "--output-key-id",
                     "k1",
                     "--",
                     "/bin/sh",
                     "-c",
                     "echo RESULT-OF-A > /out/r.txt",
                     NULL};
        int st = aidp_test_run_as(&P, &A, true, a);
        cr_assert_eq(st, 0, "exit %d: %s", st, P.err);
        char sealed[512] = "";
        DIR *d = opendir(res);
        cr_assert_not_null(d);
        int n = 0;
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.') {
                        n++;
                        snprintf(sealed, sizeof sealed, "%s/%s", res, e->d_name);
                }
        closedir(d);
        cr_assert_eq(n, 1, "%d entries in %s", n, res);
        cr_expect(strstr(sealed, ".sealed") != NULL, "%s", sealed);
        struct stat st2;
        cr_assert_eq(stat(sealed, &st2), 0);
        cr_expect(st2.st_uid == A.uid && st2.st_gid == A.gid, "%s is owned by %u:%u", sealed,
                  st2.st_uid, st2.st_gid);
        cr_assert_eq(as_a((const char *[]){"unseal", sealed, "-o", back, "-q", NULL}), 0, "%s",
                     P.err);
        snprintf(file, sizeof file, "%s/r.txt", back);
        char buf[64] = "";
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "no %s", file);
        cr_expect_gt(read(fd, buf, sizeof buf - 1), 0);
        close(fd);
        cr_expect_str_eq(buf, "RESULT-OF-A\n");
        /* Root's directory, world-readable but not writable by A. */
        snprintf(rootdir, sizeof rootdir, "/var/tmp/aidpt%d-rootout", (int)getpid());
        cr_assert_eq(mkdir(rootdir, 0755), 0);
        char *b[] = {AIDP_SUPERVISOR_PROD,
                     "run",
                     "-q",
                     "--no-cwd",
                     "--output-dir",
                     rootdir,
                     "--output-key-id",
                     "k1",
                     "--",
                     "/bin/sh",
                     "-c",
                     "echo X > /out/r.txt",
                     NULL};
        st = aidp_test_run_as(&P, &A, true, b);
        long e, by;
        count_tree(rootdir, &e, &by);
        rmdir(rootdir);
        refused(st, AIDP_EXIT_USAGE, "--output-dir");
        cr_expect_eq(e, 0, "root wrote %ld entries into %s", e, rootdir);
}

/* A quarantined output (the output leak scan sealed it under the key of
 * purpose quarantine, docs/sealed-data.md) is the admins': a user whom the
 * policy lets unseal data of its tags is refused; an admin unseals it. */
Test(trust_tools, a_quarantined_output_is_unsealed_by_admins_only)
{
        NEED();
        char src[256], q[256], out[256], adm[256];
        snprintf(src, sizeof src, "%s/q.src", A.home);
        snprintf(q, sizeof q, "%s/q.sealed", A.home);
        snprintf(out, sizeof out, "%s/q-out", A.home);
        snprintf(adm, sizeof adm, "%s/q-admin", A.home);
        cr_assert_eq(put(src, "alice.leak@example.org\n", 0600), 0);
        cr_assert_eq(aidp_test_sh(AIDP " seal %s -o %s -n run1-out -k quarantine -c internal -q "
                                       "--key-dir " KEY_DIR,
                                  src, q),
                     0);
        unlink(src);
        cr_assert_eq(chown(q, A.uid, A.gid), 0);
        refused(as_a((const char *[]){"unseal", q, "-o", out, NULL}), AIDP_EXIT_DENIED,
                "is a quarantined output");
        cr_expect(!exists(out), "a refused unseal created %s", out);
        cr_expect_eq(aidp_test_sh(AIDP " unseal %s -o %s -q --key-dir " KEY_DIR, q, adm), 0);
        aidp_test_rm_tree(adm);
}
