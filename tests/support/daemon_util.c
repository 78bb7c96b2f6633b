/* What the daemon tests check after a run (daemon_util.h). */
#define _GNU_SOURCE
#include "daemon_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>

#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lineage_util.h"
#include "supervisor/daemon/proto.h"
#include "runner.h"
#include "testusers.h"
#include "tests/sealed_util.h"

char *aidp_test_wait_lineage(const char *logp, const char *run_id, const char *type, int timeout_ms)
{
        char needle[96];
        snprintf(needle, sizeof needle, "\"eventType\":\"%s\"", type);
        for (int t = 0; t < timeout_ms; t += 100) {
                size_t len = 0;
                char *all = aidp_test_slurp(logp, &len);
                char *sv = NULL;
                for (char *line = all ? strtok_r(all, "\n", &sv) : NULL; line;
                     line = strtok_r(NULL, "\n", &sv))
                        if (strstr(line, run_id) && strstr(line, needle)) {
                                char *r = strdup(line);
                                free(all);
                                return r;
                        }
                free(all);
                usleep(100000);
        }
        return NULL;
}

void aidp_test_expect_run_gone(const char *rundir, const char *run_id)
{
        char j[4200];
        snprintf(j, sizeof j, "%s/%s", rundir, run_id);
        struct stat st;
        /* The journal goes right after the end record (docs/run-core.md,
         * step 10): the end record may be read a moment before. */
        for (int t = 0; t < 100 && stat(j, &st) == 0; t++)
                usleep(50000);
        cr_expect_neq(stat(j, &st), 0, "the run's journal %s is left", j);
        cr_expect(!aidp_test_cgroup_exists(run_id), "the run's cgroup is left");
}

pid_t aidp_test_daemon_spawn(const char *sock, gid_t gid, const char *run_dir,
                             const char *const *args, const char *const *env, bool wait)
{
        struct group *g = getgrgid(gid);
        cr_assert_not_null(g);
        char group[256];
        snprintf(group, sizeof group, "%s", g->gr_name);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                /* a crashed test takes its daemon with it */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                for (size_t i = 0; env && env[i]; i++)
                        putenv((char *)env[i]);
                int null = open("/dev/null", O_RDWR);
                dup2(null, 0);
                const char *a[64] = {AIDP_SUPERVISOR, "serve", "--socket",  sock,
                                     "--group",       group,   "--run-dir", run_dir};
                size_t n = 8;
                for (size_t i = 0; args && args[i] && n < 63; i++)
                        a[n++] = args[i];
                a[n] = NULL;
                execv(AIDP_SUPERVISOR, (char **)a);
                _exit(127);
        }
        /* Without wait: looked for as fast as can be, so that a client
         * connects at the first moment the path is there. */
        for (time_t end = time(NULL) + 20; time(NULL) < end;) {
                struct stat st;
                if (stat(sock, &st) == 0 && (!wait || st.st_gid == gid))
                        return pid;
                if (wait)
                        usleep(10000);
                else
                        sched_yield();
        }
        cr_assert_fail("the daemon did not listen on %s", sock);
        return -1;
}

size_t aidp_test_daemon_children(pid_t daemon, struct aidp_test_kid *k, size_t max)
{
        size_t n = 0;
        DIR *d = opendir("/proc");
        cr_assert_not_null(d);
        for (struct dirent *e; (e = readdir(d)) && n < max;) {
                if (e->d_name[0] < '1' || e->d_name[0] > '9')
                        continue;
                char p[300], buf[1024];
                snprintf(p, sizeof p, "/proc/%s/stat", e->d_name);
                FILE *f = fopen(p, "re");
                if (!f)
                        continue;
                size_t len = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                buf[len] = '\0';
                char *c = strrchr(buf, ')');
                int ppid = 0;
                unsigned long long st = 0;
                /* after comm: state ppid ... field 22 is starttime */
                if (!c || sscanf(c + 2,
                                 "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d "
                                 "%*d %*d %*d %*d %*d %llu",
                                 &ppid, &st) != 2)
                        continue;
                if (ppid == daemon)
                        k[n++] = (struct aidp_test_kid){.pid = atoi(e->d_name), .start = st};
        }
        closedir(d);
        return n;
}

void aidp_test_daemon_stop(pid_t pid, const char *sock)
{
        if (pid <= 0)
                return;
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        unlink(sock);
}

void aidp_test_become(const struct aidp_test_user *u)
{
        gid_t g = u->gid;
        if (setgroups(1, &g) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
            setresuid(u->uid, u->uid, u->uid) < 0)
                _exit(99);
}

int aidp_test_daemon_connect(const char *sock)
{
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        if (strlen(sock) >= sizeof a.sun_path)
                _exit(98);
        memcpy(a.sun_path, sock, strlen(sock));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
                _exit(98);
        return fd;
}

static void first_answer(json_object *r, char *line, size_t size)
{
        json_object *t = NULL, *st = NULL, *msg = NULL;
        json_object_object_get_ex(r, "type", &t);
        json_object_object_get_ex(r, "status", &st);
        json_object_object_get_ex(r, "message", &msg);
        snprintf(line, size, "%s %d %.1000s", json_object_get_string(t), json_object_get_int(st),
                 msg ? json_object_get_string(msg) : "");
}

void aidp_test_daemon_raw(const struct aidp_test_user *u, const char *sock, const char *request,
                          int (*files)(int *fds, size_t max, void *arg),
                          void (*answer)(void *r, const int *fds, size_t n, char *line, size_t size,
                                         void *arg),
                          void *arg, char *res, size_t size)
{
        int rp[2];
        cr_assert_eq(pipe(rp), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(rp[0]);
                aidp_test_become(u);
                int s = aidp_test_daemon_connect(sock);
                int fds[8];
                int n = files ? files(fds, 8, arg) : 0;
                char line[1200] = "cannot open";
                json_object *m = aidp_proto_msg("request"), *q = json_tokener_parse(request);
                json_object_object_foreach(q, k, v)
                        json_object_object_add(m, k, json_object_get(v));
                json_object_put(q);
                if (n >= 0 && aidp_proto_send(s, m, fds, (size_t)n) == 0) {
                        for (;;) {
                                json_object *r = NULL, *t = NULL;
                                int rf[4];
                                size_t nf = 0;
                                aidp_error err = {0};
                                if (aidp_proto_recv(s, 60000, &r, rf, 4, &nf, &err) <= 0) {
                                        snprintf(line, sizeof line, "EOF %.1000s", err.msg);
                                        break;
                                }
                                json_object_object_get_ex(r, "type", &t);
                                if (!strcmp(json_object_get_string(t), "started"))
                                        continue;
                                if (answer)
                                        answer(r, rf, nf, line, sizeof line, arg);
                                else
                                        first_answer(r, line, sizeof line);
                                break;
                        }
                }
                _exit(write(rp[1], line, strlen(line)) > 0 ? 0 : 1);
        }
        close(rp[1]);
        ssize_t got = read(rp[0], res, size - 1);
        res[got > 0 ? got : 0] = '\0';
        close(rp[0]);
        waitpid(pid, NULL, 0);
}

void aidp_test_daemon_client(struct aidp_proc *p, const struct aidp_test_user *u, const char *sock,
                             const char *const *args)
{
        char ruid[32], rgid[32];
        snprintf(ruid, sizeof ruid, "--reuid=%u", (unsigned)u->uid);
        snprintf(rgid, sizeof rgid, "--regid=%u", (unsigned)u->gid);
        char *a[64] = {"/usr/bin/setpriv",          ruid,       rgid,        "--init-groups", "--",
                       AIDP_BINARY_DIR "/aidp-run", "--socket", (char *)sock};
        size_t n = 8;
        for (size_t i = 0; args[i] && n < 63; i++)
                a[n++] = (char *)args[i];
        a[n] = NULL;
        cr_assert_eq(aidp_test_spawn(p, a), 0);
}

int aidp_test_client_as(struct aidp_proc *p, const struct aidp_test_user *u, const char *sock,
                        bool wait, const char *const *args)
{
        char ruid[32], rgid[32];
        snprintf(ruid, sizeof ruid, "--reuid=%u", (unsigned)u->uid);
        snprintf(rgid, sizeof rgid, "--regid=%u", (unsigned)u->gid);
        char *a[64] = {"/usr/bin/setpriv", ruid, rgid, "--init-groups", "--", (char *)args[0]};
        size_t n = 6, i = 1;
        if (strcmp(args[0], AIDP_BINARY_DIR "/aidp-run"))
                a[n++] = (char *)args[i++]; /* aidp's command */
        a[n++] = "--socket";
        a[n++] = (char *)sock;
        for (; args[i] && n < 63; i++)
                a[n++] = (char *)args[i];
        a[n] = NULL;
        if (wait)
                return aidp_test_run(p, a);
        cr_assert_eq(aidp_test_spawn(p, a), 0);
        return 0;
}

bool aidp_test_daemon_fixture(char **dir, const char *tag, struct aidp_test_user *u, char *sock,
                              char *rundir, char *logp, char *keyp, char *policy)
{
        *dir = tmpdir_new();
        chmod(*dir, 0755);
        if (aidp_test_user_create(tag, u) < 0)
                return false;
        snprintf(sock, 100, "%s/aidp.sock", *dir);
        snprintf(rundir, 1024, "%s/run", *dir);
        if (!logp)
                return true;
        snprintf(logp, 1024, "%s/lineage.jsonl", *dir);
        snprintf(keyp, 1024, "%s/lineage.key", *dir);
        snprintf(policy, 1024, "%s/policy", *dir);
        return mkdir(policy, 0755) == 0;
}

void aidp_test_daemon_fixture_end(pid_t *daemon, const char *sock, const char *rundir, char **dir)
{
        aidp_test_daemon_stop(*daemon, sock);
        *daemon = 0;
        aidp_test_gc(rundir);
        aidp_test_users_cleanup();
        tmpdir_rm(*dir);
        *dir = NULL;
}

pid_t aidp_test_daemon_pid1_under(pid_t parent)
{
        struct aidp_test_kid k[8];
        size_t nk = aidp_test_daemon_children(parent, k, 8);
        for (size_t j = 0; j < nk; j++) {
                char p[64], line[256];
                snprintf(p, sizeof p, "/proc/%d/status", (int)k[j].pid);
                FILE *f = fopen(p, "re");
                bool one = false;
                while (f && fgets(line, sizeof line, f))
                        if (!strncmp(line, "NSpid:", 6)) {
                                char *last = strrchr(line, '\t');
                                one = last && atoi(last + 1) == 1 && strchr(line, '\t') != last;
                        }
                if (f)
                        fclose(f);
                if (one)
                        return k[j].pid;
        }
        return 0;
}

pid_t aidp_test_child_in_state(pid_t pid, char state)
{
        struct aidp_test_kid k[16];
        size_t n = aidp_test_daemon_children(pid, k, 16);
        for (size_t i = 0; i < n; i++)
                if (aidp_test_proc_state(k[i].pid) == state)
                        return k[i].pid;
        return 0;
}
