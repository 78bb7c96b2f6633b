/* Workers forked ahead of their connection (pool.h). */
#define _GNU_SOURCE
#include "supervisor/daemon/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/exitcodes.h"
#include "common/smaps.h"
#include "supervisor/daemon/proto.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Runs of present pages in [lo, hi) (pagemap bit 63), each made this
 * process's own. A page not present would be a fresh zero page, not a copy:
 * populating it would only cost memory. */
static void populate_present(int pagemap, unsigned long lo, unsigned long hi, long page)
{
        uint64_t ent[512];
        unsigned long run = 0; /* start of the current run of present pages, 0: none */
        for (unsigned long a = lo; a < hi;) {
                size_t n = (hi - a) / (unsigned long)page;
                if (n > 512)
                        n = 512;
                ssize_t r = pread(pagemap, ent, n * sizeof ent[0],
                                  (off_t)(a / (unsigned long)page * sizeof ent[0]));
                if (r <= 0)
                        break;
                n = (size_t)r / sizeof ent[0];
                for (size_t i = 0; i < n; i++, a += (unsigned long)page) {
                        bool present = ent[i] >> 63;
                        if (present && !run)
                                run = a;
                        if (!present && run) {
                                madvise((void *)run, a - run, MADV_POPULATE_WRITE);
                                run = 0;
                        }
                }
        }
        if (run)
                madvise((void *)run, hi - run, MADV_POPULATE_WRITE);
}

/* Whether a mapping may be made the worker's own: private and writable, and
 * none of the server's secrets. Key material lives in pages the server
 * mlock'ed and marked MADV_DONTDUMP (keymem.h, secret.h): a fork does not
 * pass mlock on, so a copy made here would be an unlocked one that could be
 * swapped out. Those pages stay shared with the server (locked there), as
 * they were. */
static bool may_populate(const char *perms, const char *vmflags)
{
        if (strcmp(perms, "rw-p"))
                return false;
        /* Not " lo": a fork passes no lock on, so what is locked here was
         * locked by this worker (cli_serve.c locks all its mappings on
         * fault, the key pages among them), and " dd" keeps those out. */
        static const char *const keep[] = {" dd", " wf", " io", " pf"};
        for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
                if (strstr(vmflags, keep[i]))
                        return false;
        return true;
}

/* Whether a connection waits on the worker's line: the prefault then stops,
 * and the pages not copied yet are copied on write during the run, as
 * without it. */
static bool wanted(int stop_fd)
{
        struct pollfd p = {.fd = stop_fd, .events = POLLIN};
        return stop_fd >= 0 && poll(&p, 1, 0) > 0;
}

/* Each of this process's mappings, with its pagemap open, to fn; the walk
 * ends early when stop_fd (when >= 0) has something to read. */
static void walk_maps(int stop_fd,
                      void (*fn)(const struct aidp_smaps_map *m, int pagemap, long page))
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/smaps", "re");
        _cleanup_close_ int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        long page = sysconf(_SC_PAGESIZE);
        if (!f || pagemap < 0 || page <= 0)
                return;
        char line[512];
        struct aidp_smaps_map m = {0};
        while (fgets(line, sizeof line, f)) {
                if (!aidp_smaps_line(&m, line))
                        continue;
                if (wanted(stop_fd))
                        return;
                fn(&m, pagemap, page);
        }
}

static void populate_one(const struct aidp_smaps_map *m, int pagemap, long page)
{
        if (may_populate(m->perms, m->vmflags))
                populate_present(pagemap, m->lo, m->hi, page);
}

void aidp_daemon_prefault(int stop_fd)
{
        /* The pages this process shares with the server, made its own now:
         * the copies that copy-on-write would make page by page during the
         * run (each a fault, and once the worker has a second thread a TLB
         * shootdown of the other CPUs) are made here, while the worker waits
         * for its connection. A kernel without MADV_POPULATE_WRITE (5.14)
         * refuses it: the faults then happen as before. */
        walk_maps(stop_fd, populate_one);
}

/* Whether the page at p holds only zeros. */
static bool zero_page(const unsigned char *p, long page)
{
        static const unsigned char zeros[256];
        for (long off = 0; off < page; off += (long)sizeof zeros)
                if (memcmp(p + off, zeros, sizeof zeros))
                        return false;
        return true;
}

/* Anonymous memory only: a page of a file's private mapping dropped would
 * read as the file's bytes again, not as zeros. Not the stack (the caller's
 * own frames), not what may_populate keeps (the key pages, locked or not),
 * nor a mapping userfaultfd watches (a missing page there is a message). */
static void drop_zeros_in(const struct aidp_smaps_map *m, int pagemap, long page)
{
        if (m->inode || !strcmp(m->name, "[stack]") || !may_populate(m->perms, m->vmflags) ||
            strstr(m->vmflags, " lo") || strstr(m->vmflags, " um") || strstr(m->vmflags, " uw"))
                return;
        unsigned long run = 0; /* start of a run of present zero pages, 0: none */
        uint64_t ent[512];
        size_t n = 0, i = 0;
        for (unsigned long a = m->lo; a <= m->hi; a += (unsigned long)page, i++) {
                if (a < m->hi && i == n) {
                        size_t want = (m->hi - a) / (unsigned long)page;
                        ssize_t r = pread(pagemap, ent, (want < 512 ? want : 512) * sizeof ent[0],
                                          (off_t)(a / (unsigned long)page * sizeof ent[0]));
                        n = r > 0 ? (size_t)r / sizeof ent[0] : 0;
                        i = 0;
                }
                bool zero = a < m->hi && i < n && ent[i] >> 63 &&
                            zero_page((const unsigned char *)a, page);
                if (zero && !run)
                        run = a;
                if (!zero && run) {
                        madvise((void *)run, a - run, MADV_DONTNEED);
                        run = 0;
                }
        }
}

/* The number of this process's threads (Threads: in its status), 0 when
 * it cannot be read. */
static unsigned threads(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[128];
        unsigned n = 0;
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "Threads: %u", &n) == 1)
                        break;
        return n;
}

void aidp_daemon_drop_zero_pages(void)
{
        /* A write by another thread between a page's check and its drop
         * would be lost: only in a process with one thread (a thread that
         * gc's lineage commit left, a witness's, skips it). */
        if (threads() == 1)
                walk_maps(-1, drop_zeros_in);
}

bool aidp_daemon_peer_gone(int conn)
{
        /* Hung up with nothing sent: a request followed by a close or a
         * shutdown of the writing side (socat, nc -N, a fire-and-forget
         * `stop`) is still served. */
        struct pollfd p = {.fd = conn, .events = POLLIN | POLLRDHUP};
        if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLHUP | POLLRDHUP | POLLERR)))
                return false;
        int queued = 0;
        return ioctl(conn, FIONREAD, &queued) < 0 || queued == 0;
}

static int send_type(int line, const char *type, json_object *extra_uid)
{
        json_object *m = aidp_proto_msg(type);
        if (extra_uid)
                json_object_object_add(m, "uid", extra_uid);
        int r = aidp_proto_send(line, m, NULL, 0);
        json_object_put(m);
        return r;
}

/* A connection taken on the listening socket: the server is told whose
 * (SO_PEERCRED's uid, for its limits) and answers on the line whether this
 * worker may serve it (session.c waits for that before anything of a run).
 * -1: not ours after all (another worker took it, or its peer is gone). */
static int take_connection(int ctl, int lfd)
{
        int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
                return -1;
        /* A peer that hung up already asks nothing: this worker goes on
         * waiting (a flood of connect-and-close must not use up the pool). */
        if (aidp_daemon_peer_gone(conn)) {
                close(conn);
                return -1;
        }
        struct ucred cr = {0};
        socklen_t len = sizeof cr;
        if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
            send_type(ctl, "taken", json_object_new_int64((int64_t)cr.uid)) < 0) {
                close(conn);
                return -1;
        }
        return conn;
}

/* The connection this idle worker serves: handed over on its line, or, once
 * the server has acknowledged that this worker is ready ("accept"), taken on
 * the listening socket itself, so that the server is not on the request's
 * path (*own is then true). -1 when the server closed the line. */
static int await_connection(const struct aidp_daemon_config *c, const struct aidp_daemon_pool *p,
                            int ctl, int lfd, bool *own)
{
        /* Ready: the copies are made (or cut short). The run's scheduling
         * first, so that a connection is picked up as soon as the server
         * would have handed it over, then the server is told. Until it
         * answers, connections still come over the line: the server never
         * hands one to a worker it has let accept, so no worker gets two. */
        if (!wanted(ctl) && sched_setscheduler(0, p->policy, &p->param) == 0) {
                /* at the run's scheduling, which their threads inherit */
                if (c->when_ready)
                        c->when_ready(c->arg);
                aidp_daemon_session_ahead(c);
                (void)send_type(ctl, "ready", NULL);
        }
        bool accepting = false;
        for (;;) {
                struct pollfd f[2] = {{.fd = ctl, .events = POLLIN},
                                      {.fd = accepting ? lfd : -1, .events = POLLIN}};
                if (poll(f, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                if (f[0].revents) {
                        json_object *m = NULL;
                        int fd = -1;
                        size_t n = 0;
                        aidp_error err = {0};
                        int r = aidp_proto_recv(ctl, -1, &m, &fd, 1, &n, &err);
                        const char *type = NULL;
                        if (r > 0)
                                aidp_proto_get_str(m, "type", false, &type, &err);
                        accepting |= r > 0 && type && !strcmp(type, "accept");
                        json_object_put(m);
                        if (r > 0 && n == 1)
                                return fd; /* handed over: "connection" */
                        if (r <= 0)
                                return -1; /* the server closed the pool */
                        continue;
                }
                if (accepting && (f[1].revents & POLLIN)) {
                        int conn = take_connection(ctl, lfd);
                        if (conn >= 0) {
                                *own = true;
                                return conn;
                        }
                }
        }
}

/* The stack a run reaches, made this worker's now: a run's state lives on
 * the main thread's stack (struct run, its result: about 170 KiB below
 * this frame), pages the server never reached, each a fault on a run's
 * first write (about 30 per run). Zeros only: nothing of the server's.
 * Populated in one call rather than written page by page: on this VM a
 * fresh page costs 12.5 us of CPU to fault in and 0.75 us to populate
 * (docs/run-core.md, "32 concurrent clients"). The lowest byte is written
 * first, so that the stack's mapping reaches down to it (populate does not
 * grow a stack); a kernel without MADV_POPULATE_WRITE gets the writes. */
#define AIDP_DAEMON_STACK_AHEAD (256 * 1024)

__attribute__((noinline)) void aidp_daemon_stack_ahead(void)
{
        char buf[AIDP_DAEMON_STACK_AHEAD];
        *(volatile char *)buf = 0;
        long page = sysconf(_SC_PAGESIZE);
        uintptr_t lo = (uintptr_t)buf, hi = lo + sizeof buf;
        if (page <= 0 || madvise((void *)(lo & ~((uintptr_t)page - 1)),
                                 (hi & ~((uintptr_t)page - 1)) - (lo & ~((uintptr_t)page - 1)),
                                 MADV_POPULATE_WRITE) < 0)
                memset(buf, 0, sizeof buf);
        __asm__ volatile("" : : "r"(buf) : "memory");
}

/* In the idle worker: wait for the connection (or the server's end). */
static _Noreturn void idle_main(const struct aidp_daemon_config *c,
                                const struct aidp_daemon_pool *p, int ctl, int lfd)
{
        /* The copies are made on CPU time nobody else wants (SCHED_IDLE):
         * a run under way, its client and the job's own processes come
         * first. Done, or cut short by the connection, they cost the next
         * run nothing. They come before what is made ahead for the run
         * (while_idle: the ready cgroup, the namespaces, the zygote, the
         * lineage key's warm thread), which then writes pages already this
         * worker's: made the other way round, each page those write was a
         * copy-on-write fault (about 12.5 us on this VM, against a few us
         * copied here), and once the warm thread had run on the other CPU,
         * every copy here took the cross-CPU TLB flush path. About 2-3 ms
         * of CPU per run back to back (docs/run-core.md, "Where a run's CPU
         * goes"). A connection that comes meanwhile still waits for
         * while_idle, as it waited for it before. */
        const struct sched_param idle = {0};
        sched_setscheduler(0, SCHED_IDLE, &idle);
        aidp_daemon_stack_ahead();
        aidp_daemon_prefault(ctl);
        if (c->while_idle)
                c->while_idle(c->arg);
        bool own = false;
        int conn = await_connection(c, p, ctl, lfd, &own);
        /* Not kept while serving: a run holds no way to take connections. */
        close(lfd);
        if (conn < 0) {
                aidp_daemon_session_ahead_drop(c);
                _exit(0); /* the server closed the pool: never served anyone */
        }
        if (!own)
                close(ctl);
        /* The server's scheduling again, before anything of the run: its
         * processes (pid 1, the job) inherit it. The server restored it at
         * dispatch already, unless this process made itself idle only
         * after that; then this is what restores it. A worker that cannot
         * have it does not serve at idle priority. */
        if (sched_setscheduler(0, p->policy, &p->param) < 0) {
                aidp_proto_send_error(conn, AIDP_EXIT_INTERNAL,
                                      "the daemon's worker cannot take the daemon's scheduling");
                _exit(AIDP_EXIT_INTERNAL);
        }
        aidp_daemon_worker(c, conn, own ? ctl : -1);
}

int aidp_daemon_pool_refill_wait(unsigned busy, int64_t since_accept, int64_t waited, int quiet_ms)
{
        if (!busy || since_accept >= quiet_ms || waited >= quiet_ms)
                return 0;
        return (int)(quiet_ms - (since_accept > waited ? since_accept : waited));
}

void aidp_daemon_pool_init(struct aidp_daemon_pool *p, size_t want)
{
        *p = (struct aidp_daemon_pool){.want = want};
        /* The scheduling a worker serves with: the server's own (a unit's
         * Nice= or CPUSchedulingPolicy= apply to runs as before). */
        int pol = sched_getscheduler(0);
        p->policy = pol < 0 ? SCHED_OTHER : pol;
        if (pol < 0 || sched_getparam(0, &p->param) < 0)
                p->param = (struct sched_param){0};
}

int aidp_daemon_pool_fill(struct aidp_daemon_pool *p, const struct aidp_daemon_config *c,
                          const int *close_fds, size_t n_close, int lfd, const sigset_t *old)
{
        /* Idle workers that keep dying (killed, out of memory) would make
         * this a fork loop: after a few the pool is given up, and workers
         * are forked at accept, as without it. */
        if (p->idle_deaths > AIDP_DAEMON_POOL_MAX_DEATHS) {
                if (p->want) {
                        fprintf(stderr,
                                "aidp-supervisor serve: %u idle workers died; "
                                "forking workers at accept from now on\n",
                                p->idle_deaths);
                        p->want = 0;
                }
                return 0;
        }
        if (p->n < p->want && p->n < AIDP_DAEMON_POOL_MAX) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                        return -errno;
                if (c->before_fork)
                        c->before_fork(c->arg);
                pid_t pid = fork();
                if (pid < 0) {
                        int e = errno;
                        close(sv[0]);
                        close(sv[1]);
                        return -e;
                }
                if (pid == 0) {
                        /* Nothing of the server's, nor another worker's line:
                         * the pool's workers learn of the server's end by
                         * their own line alone. */
                        for (size_t i = 0; i < n_close; i++)
                                if (close_fds[i] >= 0)
                                        close(close_fds[i]);
                        aidp_daemon_pool_close_lines(p);
                        close(sv[0]);
                        sigprocmask(SIG_SETMASK, old, NULL);
                        idle_main(c, p, sv[1], lfd);
                }
                close(sv[1]);
                p->idle[p->n++] = (struct aidp_daemon_idle){.pid = pid, .ctl = sv[0]};
        }
        return p->n < p->want && p->n < AIDP_DAEMON_POOL_MAX;
}

pid_t aidp_daemon_pool_dispatch(struct aidp_daemon_pool *p, int conn)
{
        /* The newest first: the oldest may have been forked before a warm
         * cache changed (it still checks, it is only slower). Never one that
         * was let accept: it may hold a connection of its own by now. */
        for (size_t i = p->n; i-- > 0;) {
                if (p->idle[i].ready || p->idle[i].ctl < 0)
                        continue;
                struct aidp_daemon_idle w = p->idle[i];
                p->idle[i] = p->idle[--p->n];
                /* Its scheduling back first (it may be starved of CPU in
                 * its prefault, which it cuts short when it sees the
                 * connection): an unreaped child, so the pid is still its. */
                sched_setscheduler(w.pid, p->policy, &p->param);
                json_object *m = aidp_proto_msg("connection");
                int r = aidp_proto_send(w.ctl, m, &conn, 1);
                json_object_put(m);
                close(w.ctl);
                if (r == 0)
                        return w.pid;
                /* That worker died meanwhile (reaped as idle); try the next. */
                kill(w.pid, SIGKILL);
                p->dead[p->n_dead < AIDP_DAEMON_POOL_MAX ? p->n_dead++ : 0] = w.pid;
                i = p->n;
        }
        return -1;
}

size_t aidp_daemon_pool_ready(const struct aidp_daemon_pool *p)
{
        size_t n = 0;
        for (size_t i = 0; i < p->n; i++)
                n += p->idle[i].ready;
        return n;
}

int aidp_daemon_pool_message(struct aidp_daemon_pool *p, size_t i, pid_t *pid, uid_t *uid,
                             int *line)
{
        struct aidp_daemon_idle *w = &p->idle[i];
        json_object *m = NULL;
        aidp_error err = {0};
        /* An idle worker writes whole small frames: never a wait here. */
        int r = aidp_proto_recv_msg(w->ctl, 1000, &m, &err);
        const char *type = NULL;
        int64_t u = -1;
        if (r > 0)
                aidp_proto_get_str(m, "type", false, &type, &err);
        if (r > 0 && type && !strcmp(type, "taken") &&
            aidp_proto_get_int(m, "uid", true, 0, UINT32_MAX - 1, &u, &err) == 0) {
                json_object_put(m);
                *pid = w->pid;
                *uid = (uid_t)u;
                *line = w->ctl;
                *w = p->idle[--p->n];
                return 1;
        }
        bool ready = r > 0 && type && !strcmp(type, "ready");
        json_object_put(m);
        if (ready) {
                /* From now on only its own accept gives it a connection. */
                w->ready = true;
                json_object *a = aidp_proto_msg("accept");
                r = aidp_proto_send(w->ctl, a, NULL, 0) < 0 ? 0 : 1;
                json_object_put(a);
        }
        if (r <= 0) {
                /* Its line ended (it died, reaped soon) or spoke nonsense:
                 * no connection goes to it any more. */
                close(w->ctl);
                w->ctl = -1;
                w->ready = false;
        }
        return 0;
}

void aidp_daemon_pool_verdict(int line, const char *refusal)
{
        json_object *m = aidp_proto_msg("verdict");
        json_object_object_add(m, "ok", json_object_new_boolean(refusal == NULL));
        if (refusal)
                json_object_object_add(m, "message", json_object_new_string(refusal));
        (void)aidp_proto_send(line, m, NULL, 0);
        json_object_put(m);
        close(line);
}

bool aidp_daemon_pool_reaped(struct aidp_daemon_pool *p, pid_t pid)
{
        for (size_t i = 0; i < p->n; i++)
                if (p->idle[i].pid == pid) {
                        p->idle_deaths++;
                        if (p->idle[i].ctl >= 0)
                                close(p->idle[i].ctl);
                        p->idle[i] = p->idle[--p->n];
                        return true;
                }
        for (size_t i = 0; i < p->n_dead; i++)
                if (p->dead[i] == pid) {
                        p->dead[i] = p->dead[--p->n_dead];
                        return true;
                }
        return false;
}

void aidp_daemon_pool_close_lines(struct aidp_daemon_pool *p)
{
        for (size_t i = 0; i < p->n; i++)
                if (p->idle[i].ctl >= 0)
                        close(p->idle[i].ctl);
        p->n = 0;
}

void aidp_daemon_pool_stop(struct aidp_daemon_pool *p)
{
        pid_t pids[AIDP_DAEMON_POOL_MAX];
        size_t n = p->n;
        for (size_t i = 0; i < n; i++)
                pids[i] = p->idle[i].pid;
        aidp_daemon_pool_close_lines(p);
        /* Each sees its line end and exits: none outlives the server. */
        for (size_t i = 0; i < n; i++)
                while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
                        ;
}
