/* Caller trust (issue 13, docs/security.md): every attack a caller confirmed
 * on the supervisor, tried as a real unprivileged user through a real sudo
 * (the sudoers line README gives) and through the scheduler path (root with
 * the job's environment). Each must be refused with a usage (120) or policy
 * (121) status and a clear message, and the host shows that nothing happened:
 * the target files are unchanged, the victim process is alive, the victim
 * cgroup is still there, no log was written where the caller pointed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/exitcodes.h"
#include "priv.h"
#include "runner.h"
#include "testusers.h"

static struct aidp_test_user A, V; /* the attacker and another user */
static struct aidp_proc P;
static char victim[128], victim_cg[160], prod_lineage[160];
static const char victim_text[] = "ROOT-SECRET-FIRST-LINE\nsecond\n";
static pid_t sleeper;
static bool ready;

static void setup(void)
{
        if (geteuid() != 0)
                return;
        if (aidp_test_user_create("a", &A) < 0 || aidp_test_user_create("v", &V) < 0 ||
            aidp_test_sudoers_allow(&A, AIDP_SUPERVISOR_PROD) < 0 ||
            aidp_test_sudoers_allow(&A, AIDP_BINARY_DIR "/aidp") < 0)
                return;
        /* root's own secret: 0600, in a root-only directory */
        snprintf(victim, sizeof victim, "/var/tmp/aidpt%d-victim", (int)getpid());
        int fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, victim_text, strlen(victim_text)) < 0)
                return;
        close(fd);
        /* An empty cgroup nobody gave the caller. */
        snprintf(victim_cg, sizeof victim_cg, "/sys/fs/cgroup/pids/aidpt%d-victim", (int)getpid());
        mkdir(victim_cg, 0755);
        snprintf(prod_lineage, sizeof prod_lineage, "%s", AIDP_PROD_LINEAGE);
        /* An unrelated process the caller must not be able to have killed. */
        sleeper = fork();
        if (sleeper == 0) {
                execl("/bin/sleep", "sleep", "300", (char *)NULL);
                _exit(127);
        }
        ready = true;
}

static void teardown(void)
{
        if (sleeper > 0) {
                kill(sleeper, SIGKILL);
                waitpid(sleeper, NULL, 0);
        }
        if (victim[0])
                unlink(victim);
        if (victim_cg[0])
                rmdir(victim_cg);
        aidp_test_users_cleanup();
}

TestSuite(trust, .init = setup, .fini = teardown, .timeout = 180);

#define NEED()                                                                                     \
        do {                                                                                       \
                AIDP_REQUIRE_ROOT();                                                               \
                cr_assert(ready, "test users, sudoers drop-in or victims could not be made (%s)",  \
                          aidp_test_users_why());                                                  \
        } while (0)

static void host_unchanged(void)
{
        char buf[256] = "";
        int fd = open(victim, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        ssize_t n = read(fd, buf, sizeof buf - 1);
        struct stat st;
        fstat(fd, &st);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        cr_expect_str_eq(buf, victim_text, "the victim file changed");
        cr_expect(st.st_uid == 0 && (st.st_mode & 07777) == 0600, "victim owner/mode changed");
        cr_expect_eq(kill(sleeper, 0), 0, "the unrelated process was killed");
        struct stat cs;
        cr_expect_eq(stat(victim_cg, &cs), 0, "the victim cgroup was removed");
}

static void refused(int st, int want, const char *needle)
{
        cr_expect_eq(st, want, "status %d, expected %d: %s", st, want, P.err);
        cr_expect(strstr(P.err, needle) != NULL, "no '%s' in: %s", needle, P.err);
        cr_expect(!strstr(P.out, "JOB-RAN"), "the job ran: %s", P.out);
        cr_expect(!strstr(P.err, "ROOT-SECRET") && !strstr(P.out, "ROOT-SECRET"),
                  "a root-only file's content leaked: %s", P.err);
        cr_expect(!strstr(P.err, "root:$") && !strstr(P.err, "root:*") && !strstr(P.err, "root:!"),
                  "a shadow line leaked: %s", P.err);
}

/* `sudo aidp-supervisor run ARGS... -- /bin/echo JOB-RAN` as A. */
static int as_user(const char *const *args)
{
        char *a[64] = {AIDP_SUPERVISOR_PROD, "run", "-q"};
        size_t n = 3;
        for (size_t i = 0; args[i]; i++)
                a[n++] = (char *)args[i];
        a[n++] = "--";
        a[n++] = "/bin/echo";
        a[n++] = "JOB-RAN";
        a[n] = NULL;
        return aidp_test_run_as(&P, &A, true, a);
}

static void home_path(char *out, size_t n, const struct aidp_test_user *u, const char *name)
{
        snprintf(out, n, "%s/%s", u->home, name);
}

/* The baseline: a user runs a job as themselves, through sudo. */
Test(trust, user_runs_a_job_as_themselves_through_sudo)
{
        NEED();
        char *a[] = {AIDP_SUPERVISOR_PROD,
                     "run",
                     "-q",
                     "--no-cwd",
                     "--memory",
                     "256Mi",
                     "--",
                     "/bin/sh",
                     "-c",
                     "id -u; id -g",
                     NULL};
        int st = aidp_test_run_as(&P, &A, true, a);
        char want[64];
        snprintf(want, sizeof want, "%u\n%u\n", (unsigned)A.uid, (unsigned)A.gid);
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect_str_eq(P.out, want, "%s", P.err);
}

/* The caller picked the profile: a file of their own asking for uid 0,
 * capabilities, no seccomp and a writable bind of /etc. */
Test(trust, user_profile_file_is_refused)
{
        NEED();
        char prof[256], named[256];
        home_path(prof, sizeof prof, &A, "mine.yaml");
        home_path(named, sizeof named, &A, "strict-cpu-train.yaml");
        const char *y = "apiVersion: aidp/v1\nkind: Profile\nmetadata: {name: strict-cpu-train}\n"
                        "user: {mode: fixed, uid: 0, gid: 0, allowRoot: true}\n"
                        "capabilities: [CAP_SYS_ADMIN, CAP_SETUID]\n"
                        "seccomp: {defaultAction: allow}\n"
                        "filesystem: {binds: [{source: /etc, target: /hostetc, writable: true}]}\n";
        cr_assert_eq(aidp_test_write_as(&A, prof, y, 0644), 0);
        cr_assert_eq(aidp_test_write_as(&A, named, y, 0644), 0);
        const char *a1[] = {"--no-cwd", "--profile", prof, NULL};
        refused(as_user(a1), AIDP_EXIT_USAGE, "give --profile NAME");
        /* Named after a library profile: still a file, still refused. */
        const char *a2[] = {"--no-cwd", "--profile", named, NULL};
        refused(as_user(a2), AIDP_EXIT_USAGE, "give --profile NAME");
        const char *a3[] = {"--no-cwd", "--profile", "../../../var/tmp/x", NULL};
        refused(as_user(a3), AIDP_EXIT_USAGE, "give --profile NAME");
        /* A root-only file named as a profile: refused without its content. */
        const char *a4[] = {"--no-cwd", "--profile", "/etc/shadow", NULL};
        refused(as_user(a4), AIDP_EXIT_USAGE, "give --profile NAME");
        /* The library itself works. */
        const char *a5[] = {"--no-cwd", "--profile", "baseline", NULL};
        cr_expect_eq(as_user(a5), 0, "%s", P.err);
        cr_expect(strstr(P.out, "JOB-RAN") != NULL);
        host_unchanged();
}

/* --summary followed a symlink and truncated a root file. */
Test(trust, summary_is_created_by_the_user_never_through_a_symlink)
{
        NEED();
        char link[256], mine[256];
        home_path(link, sizeof link, &A, "s.json");
        home_path(mine, sizeof mine, &A, "mine.json");
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_symlink, victim, link), 0);
        const char *a1[] = {"--no-cwd", "--summary", link, NULL};
        refused(as_user(a1), AIDP_EXIT_USAGE, "--summary");
        /* Also for a run that is refused anyway (the original: a bad option). */
        const char *a2[] = {"--no-cwd", "--summary", link, "--memory", "1", NULL};
        cr_expect_eq(as_user(a2), AIDP_EXIT_USAGE);
        const char *a3[] = {"--no-cwd", "--summary", "/etc/passwd", NULL};
        refused(as_user(a3), AIDP_EXIT_USAGE, "exists already");
        const char *a4[] = {"--no-cwd", "--summary", "/etc/aidpt-new.json", NULL};
        refused(as_user(a4), AIDP_EXIT_USAGE, "permission denied");
        struct stat st;
        cr_expect_neq(stat("/etc/aidpt-new.json", &st), 0, "root created a file for the user");
        /* The user's own new file: created, owned by the user. */
        const char *a5[] = {"--no-cwd", "--summary", mine, NULL};
        cr_expect_eq(as_user(a5), 0, "%s", P.err);
        cr_assert_eq(lstat(mine, &st), 0);
        cr_expect_eq(st.st_uid, A.uid, "the summary is not the user's");
        host_unchanged();
}

/* Admin-only options: each refused before gc or anything else runs. */
Test(trust, admin_only_options_are_refused_for_users)
{
        NEED();
        char rundir[256], runsub[300], journal[360], lin[256], lin2[256], j[1024];
        home_path(rundir, sizeof rundir, &A, "rundir");
        home_path(lin, sizeof lin, &A, "l.jsonl");
        home_path(lin2, sizeof lin2, &A, "l2.jsonl");
        snprintf(runsub, sizeof runsub, "%s/evil", rundir);
        snprintf(journal, sizeof journal, "%s/journal.json", runsub);
        /* The journal the original attack planted: a dead supervisor, the
         * unrelated process as "pid 1", the victim cgroup, another log. */
        char stat_path[64], statbuf[1024];
        snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", (int)sleeper);
        FILE *f = fopen(stat_path, "re");
        cr_assert(f && fgets(statbuf, sizeof statbuf, f));
        fclose(f);
        unsigned long long start = 0;
        char *p = strrchr(statbuf, ')');
        for (int field = 2; p && *p && field < 22; p++)
                if (*p == ' ' && ++field == 22)
                        start = strtoull(p + 1, NULL, 10);
        snprintf(j, sizeof j,
                 "{\"run_id\":\"evil\",\"supervisor_pid\":1,\"supervisor_start\":1,"
                 "\"pid1\":%d,\"pid1_start\":%llu,\"cgroups\":[\"%s\"],\"tmpfs\":[],"
                 "\"lineages\":[\"%s\"]}",
                 (int)sleeper, start, victim_cg, lin2);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_mkdir, rundir, NULL), 0);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_mkdir, runsub, NULL), 0);
        cr_assert_eq(aidp_test_write_as(&A, journal, j, 0600), 0);
        const char *cases[][4] = {
                {"--run-dir", rundir, "--run-dir is admin-only"},
                {"--lineage", lin, "--lineage is admin-only"},
                {"--cgroup-parent", "/", "--cgroup-parent is admin-only"},
                {"--cgroup-parent", victim_cg + strlen("/sys/fs/cgroup/pids"),
                 "--cgroup-parent is admin-only"},
                {"--run-id", "evil", "--run-id is admin-only"},
                {"--keys-config", "/etc/shadow", "--keys-config is admin-only"},
                {"--key-dir", "/etc", "--key-dir is admin-only"},
                {"--user", "0", "--user is admin-only"},
                {"--keep-env", NULL, "--keep-env is admin-only"},
                {"--env", "HOME", "--env with this value is admin-only"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const char *a[] = {"--no-cwd", cases[i][0], cases[i][1], NULL};
                refused(as_user(a), AIDP_EXIT_USAGE, cases[i][2]);
        }
        struct stat st;
        cr_expect_neq(stat(lin, &st), 0, "a log was written where the user pointed");
        cr_expect_neq(stat(lin2, &st), 0, "gc wrote an ABORT into the user's log");
        cr_expect_eq(stat(journal, &st), 0, "gc acted on the user's journal");
        host_unchanged();
}

static void make_fifo_as(const struct aidp_test_user *u, const char *path)
{
        cr_assert_eq(aidp_test_as_user(u, aidp_test_do_mkfifo, path, NULL), 0);
}

/* Paths are opened with the user's credentials: nothing the user could not
 * reach, no symlink, no FIFO, no reserved path. */
Test(trust, caller_paths_are_opened_as_the_caller)
{
        NEED();
        char vfile[256], fifo[256], link[256];
        home_path(vfile, sizeof vfile, &V, "private.txt");
        home_path(fifo, sizeof fifo, &A, "fifo");
        home_path(link, sizeof link, &A, "link.sealed");
        cr_assert_eq(aidp_test_write_as(&V, vfile, "V-PRIVATE\n", 0644), 0);
        make_fifo_as(&A, fifo);
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_symlink, victim, link), 0);
        char bind_v[300];
        snprintf(bind_v, sizeof bind_v, "%s:/mnt/v", vfile);
        char bind_h[300];
        snprintf(bind_h, sizeof bind_h, "%s:/proc", A.home);
        /* A source or working directory that only its real path shows to be
         * reserved: /proc (the host's processes) through the user's own
         * symlink to / on the way. */
        char rlink[256], plink[300], bind_pl[320];
        home_path(rlink, sizeof rlink, &A, "root-link");
        cr_assert_eq(aidp_test_as_user(&A, aidp_test_do_symlink, "/", rlink), 0);
        snprintf(plink, sizeof plink, "%s/proc", rlink);
        snprintf(bind_pl, sizeof bind_pl, "%s:/mnt/pl", plink);
        const char *cases[][4] = {
                {"--data", victim, "permission denied for the calling user"},
                {"--data", "/etc/shadow", "permission denied for the calling user"},
                {"--data", link, "symlink"},
                {"--data", fifo, "not a regular file"},
                {"--ro-bind", bind_v, "permission denied for the calling user"},
                {"--ro-bind", "/proc:/mnt/p", "reserved"},
                {"--ro-bind", "/proc/1/root:/mnt/r", "reserved"},
                {"--bind", "/sys:/mnt/s", "reserved"},
                {"--ro-bind", "/etc/aidp:/mnt/k", "reserved"},
                {"--ro-bind", "/var/lib/aidp:/mnt/l", "reserved"},
                {"--ro-bind", bind_h, "reserved"},
                {"--ro-bind", bind_pl, "the file passed is /proc, which is reserved"},
                {"--cwd", plink, "the file passed is /proc, which is reserved"},
                {"--cwd", V.home, "permission denied for the calling user"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                bool cwd = !strcmp(cases[i][0], "--cwd");
                const char *a[] = {cwd ? cases[i][0] : "--no-cwd", cwd ? cases[i][1] : cases[i][0],
                                   cwd ? NULL : cases[i][1], NULL};
                refused(as_user(a), AIDP_EXIT_USAGE, cases[i][2]);
                cr_expect(!strstr(P.err, "V-PRIVATE") && !strstr(P.out, "V-PRIVATE"));
        }
        /* --output-dir into root's sudoers.d: the user cannot write there. */
        const char *o[] = {"--no-cwd", "--output-dir", "/etc/sudoers.d", "--output-key-id", "k",
                           NULL};
        refused(as_user(o), AIDP_EXIT_USAGE, "permission denied for the calling user");
        /* The user's own directory binds fine, and the job sees it. */
        char own[300];
        snprintf(own, sizeof own, "%s:/mnt/h", A.home);
        char *b[] = {AIDP_SUPERVISOR_PROD,
                     "run",
                     "-q",
                     "--no-cwd",
                     "--ro-bind",
                     own,
                     "--",
                     "/bin/ls",
                     "/mnt/h",
                     NULL};
        cr_expect_eq(aidp_test_run_as(&P, &A, true, b), 0, "%s", P.err);
        cr_expect(strstr(P.out, "fifo") != NULL, "%s", P.out);
        host_unchanged();
}

Test(trust, users_may_only_lower_limits)
{
        NEED();
        const char *cases[][3] = {
                /* in the units a user writes, with the profile and where to look */
                {"--memory", "64Gi",
                 "--memory 64 GiB is above profile baseline's 4 GiB: users may only lower a "
                 "profile's limits (a profile that allows more: 'aidp profile list'"},
                {"--cpus", "16", "--cpus 16 CPUs is above profile baseline's 2 CPUs"},
                {"--cpus", "2.5", "--cpus 2.5 CPUs is above profile baseline's 2 CPUs"},
                {"--pids", "1000000", "users may only lower"},
                {"--tmp-size", "64Gi", "--tmp-size 64 GiB is above profile baseline's 256 MiB"},
                {"--rlimit", "nofile=4194304", "users may only lower"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const char *a[] = {"--no-cwd", cases[i][0], cases[i][1], NULL};
                refused(as_user(a), AIDP_EXIT_USAGE, cases[i][2]);
        }
        const char *ok[] = {"--no-cwd", "--memory", "128Mi", "--rlimit", "nofile=256", NULL};
        cr_expect_eq(as_user(ok), 0, "%s", P.err);
}

/* ---- the scheduler path: root runs the supervisor with the job's environment ---- */

static int as_scheduler(const char *const *args)
{
        char *a[64] = {AIDP_SUPERVISOR_PROD, "run", "-q", "--lineage", prod_lineage, "--no-cwd"};
        size_t n = 6;
        for (size_t i = 0; args[i]; i++)
                a[n++] = (char *)args[i];
        a[n++] = "--";
        a[n++] = "/bin/sh";
        a[n++] = "-c";
        a[n++] = "echo JOB-RAN; id -u";
        a[n] = NULL;
        return aidp_test_run(&P, a);
}

Test(trust, scheduler_job_environment_picks_no_identity)
{
        NEED();
        char vu[16], au[16];
        snprintf(vu, sizeof vu, "%u", (unsigned)V.uid);
        snprintf(au, sizeof au, "%u", (unsigned)A.uid);
        /* SUDO_UID set by the job beat SLURM_JOB_UID: now refused. */
        setenv("SUDO_UID", vu, 1);
        setenv("SLURM_JOB_UID", au, 1);
        const char *a[] = {"--user", au, NULL};
        int st = as_scheduler(a);
        unsetenv("SUDO_UID");
        refused(st, AIDP_EXIT_USAGE, "not started by sudo");
        /* SLURM_JOB_UID/USER are never an identity: with --user the job runs
         * as that user, without it as the profile's default. */
        setenv("SLURM_JOB_USER", V.name, 1);
        setenv("SLURM_JOB_UID", vu, 1);
        st = as_scheduler(a);
        char want[64];
        snprintf(want, sizeof want, "JOB-RAN\n%u\n", (unsigned)A.uid);
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect_str_eq(P.out, want);
        const char *none[] = {NULL};
        st = as_scheduler(none);
        unsetenv("SLURM_JOB_UID");
        unsetenv("SLURM_JOB_USER");
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect_str_eq(P.out, "JOB-RAN\n65534\n", "ran as the job's chosen user");
        host_unchanged();
}

Test(trust, scheduler_job_environment_configures_nothing)
{
        NEED();
        char lin[256], empty[256];
        home_path(lin, sizeof lin, &A, "hidden.jsonl");
        home_path(empty, sizeof empty, &A, "emptydir");
        const char *vars[][2] = {
                {"AIDP_POLICY_DIR", empty},        {"AIDP_PROFILE_PATH", A.home},
                {"AIDP_LINEAGE_FILE", lin},        {"AIDP_LINEAGE_KEY", lin},
                {"AIDP_RUN_DIR", A.home},          {"AIDP_KEYS_CONFIG", "/etc/shadow"},
                {"AIDP_KEY_DIR", A.home},          {"AIDP_FAULT_STOP_AT", "start"},
                {"AIDP_FAULT_SYNC_DELAY_MS", "1"}, {"AIDP_SYSLOG_SOCKET", lin},
        };
        char au[16];
        snprintf(au, sizeof au, "%u", (unsigned)A.uid);
        for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
                setenv(vars[i][0], vars[i][1], 1);
                const char *a[] = {"--user", au, NULL};
                int st = as_scheduler(a);
                unsetenv(vars[i][0]);
                refused(st, AIDP_EXIT_USAGE, vars[i][0]);
                cr_expect(strstr(P.err, "is a test hook") != NULL, "%s", P.err);
        }
        struct stat st;
        cr_expect_neq(stat(lin, &st), 0, "a log was written where the job pointed");
        host_unchanged();
}

/* A FIFO named as a profile (by an admin) must not hang root. */
Test(trust, fifo_profile_does_not_hang_an_admin_run, .timeout = 30)
{
        NEED();
        char fifo[256];
        home_path(fifo, sizeof fifo, &A, "p.yaml");
        make_fifo_as(&A, fifo);
        const char *a[] = {"--profile", fifo, NULL};
        int st = as_scheduler(a);
        cr_expect_eq(st, AIDP_EXIT_CONFIG, "%s", P.err);
        cr_expect(strstr(P.err, "other than a regular file") != NULL, "%s", P.err);
}

/* ---- process state the caller cannot cripple ---- */

static bool file_has(const char *path, const char *needle)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return false;
        char line[65536];
        bool found = false;
        while (!found && fgets(line, sizeof line, f))
                found = strstr(line, needle) != NULL;
        fclose(f);
        return found;
}

static bool has_cap_sys_resource(void)
{
        FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        unsigned long long eff = 0;
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "CapEff: %llx", &eff) == 1)
                        break;
        if (f)
                fclose(f);
        return eff & (1ULL << 24); /* CAP_SYS_RESOURCE */
}

/* `ulimit -f` and blocked/ignored signals in the caller's shell: the
 * supervisor resets them, finishes its writes and the job starts clean. */
Test(trust, callers_rlimits_and_signals_do_not_reach_the_supervisor)
{
        NEED();
        char au[16], summary[128];
        snprintf(au, sizeof au, "%u", (unsigned)A.uid);
        snprintf(summary, sizeof summary, "/var/tmp/aidpt%d-fsize.json", (int)getpid());
        unlink(summary);
        char *a[] = {"/usr/bin/prlimit",
                     "--fsize=1",
                     "--nofile=16",
                     "--",
                     "/usr/bin/env",
                     "--block-signal=TERM,CHLD",
                     "--ignore-signal=TERM",
                     AIDP_SUPERVISOR,
                     "run",
                     "-q",
                     "--user",
                     au,
                     "--no-cwd",
                     "--summary",
                     summary,
                     "--",
                     "/bin/sh",
                     "-c",
                     "ulimit -f; head -c 100000 /dev/zero > /scratch/x && echo done",
                     NULL};
        int st = aidp_test_run(&P, a);
        if (!has_cap_sys_resource()) {
                /* Root without CAP_SYS_RESOURCE (a container) cannot raise the
                 * hard limit back: the run is refused, nothing started. */
                cr_expect_eq(st, AIDP_EXIT_USAGE, "%s", P.err);
                cr_expect(strstr(P.err, "RLIMIT_FSIZE is limited to 1") != NULL, "%s", P.err);
                cr_expect_str_eq(P.out, "");
                struct stat sst;
                cr_expect_neq(stat(summary, &sst), 0, "a refused run wrote a summary");
                /* Only the soft limits lowered: reset, and the run works. */
                a[1] = "--fsize=1:";
                a[2] = "--nofile=16:";
                st = aidp_test_run(&P, a);
        }
        cr_expect_eq(st, 0, "%s", P.err);
        cr_expect_str_eq(P.out, "unlimited\ndone\n", "%s", P.err);
        cr_expect(file_has(summary, "\"verified\":true"), "no verified shred in the summary");
        unlink(summary);
}

static pid_t child_of(pid_t parent)
{
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)parent, (int)parent);
        FILE *f = fopen(p, "re");
        int c = 0;
        if (f) {
                if (fscanf(f, "%d", &c) != 1)
                        c = 0;
                fclose(f);
        }
        return (pid_t)c;
}

/* The caller kills the sandbox's pid 1 (it runs with the job's uid): the
 * supervisor still overwrites every tmpfs byte through its own mount fds and
 * writes the end record. */
Test(trust, killed_pid1_still_ends_in_shred_and_an_end_record)
{
        NEED();
        char au[16], summary[128];
        snprintf(au, sizeof au, "%u", (unsigned)A.uid);
        snprintf(summary, sizeof summary, "/var/tmp/aidpt%d-kill.json", (int)getpid());
        unlink(summary);
        char *a[] = {AIDP_SUPERVISOR,
                     "run",
                     "-q",
                     "--user",
                     au,
                     "--no-cwd",
                     "--summary",
                     summary,
                     "--",
                     "/bin/sh",
                     "-c",
                     "head -c 100000 /dev/urandom > /scratch/x; echo READY; sleep 60",
                     NULL};
        cr_assert_eq(aidp_test_spawn(&P, a), 0);
        cr_assert(aidp_test_wait_output(&P, "READY", 10000), "the job never started");
        pid_t pid1 = 0;
        for (int i = 0; i < 50 && !pid1; i++) {
                pid1 = child_of(P.pid);
                if (!pid1)
                        usleep(10000);
        }
        cr_assert_gt(pid1, 0, "no pid 1 under the supervisor");
        pid_t k = fork();
        if (k == 0) {
                if (setgid(A.gid) || setuid(A.uid))
                        _exit(2);
                _exit(kill(pid1, SIGKILL) == 0 ? 0 : 1);
        }
        int ks;
        waitpid(k, &ks, 0);
        int st = aidp_test_finish(&P);
        cr_expect_eq(st, AIDP_EXIT_INTERNAL, "%s", P.err);
        cr_expect(file_has(summary, "\"verified\":true"), "no verified shred: %s", P.err);
        /* the total (the per-mount report has mounts the job left empty) */
        json_object *sj = json_object_from_file(summary), *sh = NULL, *nf = NULL;
        cr_expect(sj && json_object_object_get_ex(sj, "shred", &sh) &&
                          json_object_object_get_ex(sh, "files", &nf) &&
                          json_object_get_int64(nf) > 0,
                  "nothing was shredded");
        json_object_put(sj);
        char run_id[64] = "";
        FILE *f = fopen(summary, "re");
        if (f) {
                char line[256];
                while (fgets(line, sizeof line, f))
                        if (sscanf(line, " \"run_id\":\"%63[^\"]\"", run_id) == 1)
                                break;
                fclose(f);
        }
        cr_assert(run_id[0], "no run id in the summary");
        char lin[256];
        snprintf(lin, sizeof lin, "%s/test-lineage/lineage.jsonl", AIDP_BINARY_DIR);
        char needle[128];
        snprintf(needle, sizeof needle, "\"eventType\":\"FAIL\",\"eventTime\"");
        bool found = false;
        FILE *l = fopen(lin, "re");
        static char line[1 << 20];
        while (l && fgets(line, sizeof line, l))
                if (strstr(line, run_id) && strstr(line, needle))
                        found = true;
        if (l)
                fclose(l);
        cr_expect(found, "no end record for run %s in %s", run_id, lin);
        cr_expect_neq(kill(pid1, 0), 0, "pid 1 is still there");
        unlink(summary);
}

/* Secure default: no access policy installed, a user may run jobs but no
 * sealed data is decrypted for them; the refusal names the file to install. */
Test(trust, sealed_data_for_users_needs_a_policy)
{
        NEED();
        struct stat st;
        bool installed = stat("/etc/aidp/access.yaml", &st) == 0 ||
                         stat("/etc/aidp/residency.yaml", &st) == 0 ||
                         stat("/etc/aidp/host.yaml", &st) == 0;
        if (installed)
                cr_skip_test("this host has an access policy installed");
        char data[256];
        home_path(data, sizeof data, &A, "mine.sealed");
        cr_assert_eq(aidp_test_write_as(&A, data, "not yet looked at\n", 0600), 0);
        const char *a[] = {"--no-cwd", "--data", data, NULL};
        refused(as_user(a), AIDP_EXIT_DENIED,
                "none is installed in /etc/aidp: ask this host's admin to install one");
        cr_expect(strstr(P.err, "kind: AccessPolicy") != NULL, "%s", P.err);
        cr_expect(strstr(P.err, A.name) != NULL, "%s", P.err);
        /* Without data the same user runs. */
        const char *b[] = {"--no-cwd", NULL};
        cr_expect_eq(as_user(b), 0, "%s", P.err);
}

/* Lineage names a profile by how it was chosen, never by the metadata.name
 * its author wrote: a file calling itself after a library profile is
 * recorded (and decided on) as that file. */
Test(trust, lineage_names_a_profile_by_library_name_or_file)
{
        NEED();
        char prof[256], id1[64], id2[64];
        home_path(prof, sizeof prof, &A, "named.yaml");
        cr_assert_eq(aidp_test_write_as(&A, prof,
                                        "apiVersion: aidp/v1\nkind: Profile\n"
                                        "metadata: {name: strict-cpu-train}\n",
                                        0644),
                     0);
        snprintf(id1, sizeof id1, "aidpt%d-file", (int)getpid());
        snprintf(id2, sizeof id2, "aidpt%d-lib", (int)getpid());
        const char *a[] = {"--run-id", id1, "--profile", prof, NULL};
        cr_assert_eq(as_scheduler(a), 0, "%s", P.err);
        const char *b[] = {"--run-id", id2, "--profile", "baseline", NULL};
        cr_assert_eq(as_scheduler(b), 0, "%s", P.err);
        char want2[300];
        snprintf(want2, sizeof want2, "\"name\":\"file:%s\"", prof);
        bool file_named = false, lib_named = false, metadata_named = false;
        FILE *l = fopen(prod_lineage, "re");
        static char line[1 << 20];
        while (l && fgets(line, sizeof line, l)) {
                const char *f = strstr(line, "\"aidp_profile\"");
                if (!f)
                        continue;
                if (strstr(line, id1)) {
                        file_named |= strstr(f, want2) != NULL;
                        metadata_named |= strstr(f, "\"name\":\"strict-cpu-train\"") != NULL;
                }
                if (strstr(line, id2))
                        lib_named |= strstr(f, "\"name\":\"baseline\"") != NULL;
        }
        if (l)
                fclose(l);
        cr_expect(file_named, "run %s not recorded as file:%s", id1, prof);
        cr_expect(!metadata_named, "run %s recorded under the file's own metadata.name", id1);
        cr_expect(lib_named, "run %s not recorded as baseline", id2);
}

/* Even where a site granted `aidp` through sudo, root does not act on the
 * user's paths for them: a profile check that would quote /etc/shadow, learn
 * with the user's base profile (unseal and inspect act as the user:
 * test_trust_tools.c). */
Test(trust, aidp_tool_through_sudo_acts_on_no_user_path)
{
        NEED();
        char base[256];
        home_path(base, sizeof base, &A, "base.yaml");
        const char *cases[][8] = {
                {"profile", "check", "/etc/shadow", NULL},
                {"profile", "learn", "--base", base, "-o", "/etc/aidpt.yaml", "--", "/bin/true"},
                {"keygen", "evil", "--key-dir", "/etc/sudoers.d", NULL},
                {"lineage", "graph", "-o", "/etc/aidpt.svg", NULL},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *a[10] = {AIDP_BINARY_DIR "/aidp"};
                size_t n = 1;
                for (size_t k = 0; k < 8 && cases[i][k]; k++)
                        a[n++] = (char *)cases[i][k];
                a[n] = NULL;
                refused(aidp_test_run_as(&P, &A, true, a), AIDP_EXIT_USAGE,
                        "not available through sudo");
        }
        /* Only the names these commands would create: other tests (and
         * other runs of the suite) add and remove their own drop-ins. */
        struct stat st;
        cr_expect_neq(stat("/etc/sudoers.d/evil", &st), 0, "/etc/sudoers.d/evil was created");
        cr_expect_neq(stat("/etc/aidpt.yaml", &st), 0);
        cr_expect_neq(stat("/etc/aidpt.svg", &st), 0);
        /* Reading root's own log stays possible. */
        char *v[] = {AIDP_BINARY_DIR "/aidp", "lineage", "verify", NULL};
        int st2 = aidp_test_run_as(&P, &A, true, v);
        cr_expect_neq(st2, AIDP_EXIT_USAGE, "%s", P.err);
}
