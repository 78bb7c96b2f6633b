/* The exec key provider: a site program that wraps and unwraps data keys (see
 * keys.h for the contract). It runs as root, so it runs in a state nobody but
 * the admin chose: from /, with a fixed minimal environment, default signal
 * dispositions and an empty mask, no inherited fds but its three pipes, in its
 * own process group that is killed when it exits (nothing it started outlives
 * it as root), within the configured timeout. Its wrap output is checked before
 * anyone stores it: a wrap that contains the data key, or that does not unwrap
 * back to it, is refused, so a broken provider fails the seal instead of
 * writing the key in clear or an output nobody can decrypt. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/hex.h"
#include "supervisor/sealed/keys_internal.h"

#define PROVIDER_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Keep the printable start of the provider's stderr for the error message. */
static void sanitize(char *s)
{
        for (char *p = s; *p; p++)
                if (*p == '\n' || *p == '\r' || *p == '\t')
                        *p = ' ';
                else if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                        *p = '?';
        size_t n = strlen(s);
        while (n && s[n - 1] == ' ')
                s[--n] = '\0';
}

struct child_io {
        const uint8_t *in;
        size_t in_len;
        uint8_t *out; /* locked */
        size_t out_cap, out_len;
        char errbuf[512];
        size_t err_len;
};

/* The provider's whole environment: nothing of the caller's (PYTHONPATH,
 * LD_PRELOAD, PATH...) reaches a program running as root. HOME is that of the
 * user aidp runs as, from the password database. */
struct provider_env {
        char home[512];
        char *envp[4];
};

static void provider_env_init(struct provider_env *e)
{
        struct passwd pw, *res = NULL;
        char buf[4096];
        const char *dir = "/";
        if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) == 0 && res && res->pw_dir &&
            res->pw_dir[0] == '/')
                dir = res->pw_dir;
        snprintf(e->home, sizeof e->home, "HOME=%s", dir);
        e->envp[0] = (char *)"PATH=" PROVIDER_PATH;
        e->envp[1] = e->home;
        e->envp[2] = (char *)"LANG=C";
        e->envp[3] = NULL;
}

/* Spawn attributes: own process group (so what it leaves behind can be
 * killed), default dispositions for every signal and an empty mask (the
 * supervisor blocks and ignores some; a provider inheriting that could not be
 * stopped, or would misbehave). */
static int provider_attr(posix_spawnattr_t *a)
{
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        if (posix_spawnattr_init(a))
                return -ENOMEM;
        if (posix_spawnattr_setflags(a, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETSIGMASK) ||
            posix_spawnattr_setpgroup(a, 0) || posix_spawnattr_setsigdefault(a, &all) ||
            posix_spawnattr_setsigmask(a, &none)) {
                posix_spawnattr_destroy(a);
                return -EINVAL;
        }
        return 0;
}

static void close_pair(int p[2])
{
        for (int i = 0; i < 2; i++)
                if (p[i] >= 0)
                        close(p[i]);
}

/* Start the provider with its stdin, stdout and stderr on pipes; the parent's
 * ends are returned (close-on-exec, like everything aidp opens). */
static int spawn_provider(const char *prog, char *const argv[], pid_t *pid, int fds[3],
                          aidp_error *err)
{
        int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
        if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
                int e = errno;
                close_pair(pin);
                close_pair(pout);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "key provider pipes");
        }
        struct provider_env env;
        provider_env_init(&env);
        posix_spawnattr_t attr;
        posix_spawn_file_actions_t fa;
        int se = provider_attr(&attr);
        if (se == 0) {
                posix_spawn_file_actions_init(&fa);
                posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
                posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
                posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
                /* From /, not the caller's directory: a `python3 -m` (or any
                 * relative lookup) must not find what the caller planted. */
                posix_spawn_file_actions_addchdir_np(&fa, "/");
                posix_spawn_file_actions_addclosefrom_np(&fa, 3);
                se = posix_spawn(pid, prog, &fa, &attr, argv, env.envp);
                posix_spawn_file_actions_destroy(&fa);
                posix_spawnattr_destroy(&attr);
        } else {
                se = -se;
        }
        close(pin[0]);
        close(pout[1]);
        close(perr[1]);
        if (se != 0) {
                close(pin[1]);
                close(pout[0]);
                close(perr[0]);
                return aidp_error_errno(err, AIDP_EXIT_DATA, se, "key provider %s: cannot run",
                                        prog);
        }
        fds[0] = pin[1];
        fds[1] = pout[0];
        fds[2] = perr[0];
        return 0;
}

/* The input is at most 512 bytes, below PIPE_BUF: this write never blocks. A
 * provider that exits without reading gives EPIPE, which is fine; block SIGPIPE
 * around the write so it cannot kill us. */
static void feed_provider(int in_fd, const struct child_io *io)
{
        sigset_t pipe_set, old;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        ssize_t w = write(in_fd, io->in, io->in_len);
        (void)w;
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
                ;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* One read from the provider's stdout (into locked memory, wiped on the way) or
 * stderr (kept for the error message); the fd is closed at its end. */
static void read_provider(int *fd, bool is_out, struct child_io *io, bool *overflow)
{
        uint8_t tmp[512];
        size_t cap = is_out ? sizeof tmp : 256;
        ssize_t m = read(*fd, tmp, cap);
        if (m <= 0) {
                if (m == 0 || errno != EINTR)
                        close(TAKE_FD(*fd));
        } else if (is_out) {
                if (io->out_len + (size_t)m > io->out_cap)
                        *overflow = true;
                else
                        memcpy(io->out + io->out_len, tmp, (size_t)m);
                if (!*overflow)
                        io->out_len += (size_t)m;
        } else {
                size_t room = sizeof io->errbuf - 1 - io->err_len;
                size_t c = (size_t)m < room ? (size_t)m : room;
                memcpy(io->errbuf + io->err_len, tmp, c);
                io->err_len += c;
        }
        OPENSSL_cleanse(tmp, sizeof tmp);
}

/* Has the provider exited? Without reaping it: its pid, and so its process
 * group id, stays ours until waitpid, so killing the group cannot hit a
 * process that reused the number. */
static bool provider_exited(pid_t pid, int pidfd)
{
        if (pidfd >= 0) {
                struct pollfd p = {pidfd, POLLIN, 0};
                return poll(&p, 1, 0) > 0;
        }
        siginfo_t si = {0};
        return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Drain stdout and stderr until both close and the provider has exited, all
 * within one deadline. When it exits, its process group is killed: anything it
 * left behind dies (and lets go of the pipes). At the deadline the whole group
 * is killed. */
static void drain_provider(const struct aidp_keys *k, pid_t pid, int pidfd, int *out_fd,
                           int *err_fd, struct child_io *io, int *status, bool *timed_out,
                           bool *overflow)
{
        uint64_t deadline = now_ms() + k->timeout_ms;
        bool exited = false;
        for (;;) {
                if (!exited && provider_exited(pid, pidfd)) {
                        exited = true;
                        kill(-pid, SIGKILL);
                }
                if (exited && *out_fd < 0 && *err_fd < 0)
                        break;
                uint64_t now = now_ms();
                if (now >= deadline) {
                        *timed_out = true;
                        break;
                }
                /* Without a pidfd, wake up every 50 ms to look for the exit. */
                int wait = (int)(deadline - now);
                if (pidfd < 0 && wait > 50)
                        wait = 50;
                struct pollfd p[3] = {{*out_fd, POLLIN, 0},
                                      {*err_fd, POLLIN, 0},
                                      {exited ? -1 : pidfd, POLLIN, 0}};
                int pr = poll(p, 3, wait);
                if (pr < 0 && errno != EINTR)
                        break;
                if (pr > 0 && p[0].revents)
                        read_provider(out_fd, true, io, overflow);
                if (pr > 0 && p[1].revents)
                        read_provider(err_fd, false, io, overflow);
        }
        kill(-pid, SIGKILL); /* still unreaped: the group id is still ours */
        waitpid(pid, status, 0);
}

static int run_provider(const struct aidp_keys *k, const char *op, const char *key_id,
                        struct child_io *io, aidp_error *err)
{
        const char *prog = k->argv[0];
        char *argv[AIDP_KEYS_EXEC_ARGS_MAX + 3];
        unsigned n = 0;
        while (k->argv[n] && n < AIDP_KEYS_EXEC_ARGS_MAX)
                argv[n] = k->argv[n], n++;
        argv[n++] = (char *)op;
        argv[n++] = (char *)key_id;
        argv[n] = NULL;

        struct stat st;
        if (stat(prog, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key provider %s", prog);
        int r = aidp_keys_check_trusted(&st, prog, "key provider", err);
        if (r < 0)
                return r;
        pid_t pid = -1;
        int fds[3] = {-1, -1, -1};
        if ((r = spawn_provider(prog, argv, &pid, fds, err)) < 0)
                return r;
        _cleanup_close_ int in_fd = fds[0], out_fd = fds[1], err_fd = fds[2];
        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        feed_provider(in_fd, io);
        close(TAKE_FD(in_fd));
        int status = 0;
        bool timed_out = false, overflow = false;
        drain_provider(k, pid, pidfd, &out_fd, &err_fd, io, &status, &timed_out, &overflow);
        io->errbuf[io->err_len] = '\0';
        sanitize(io->errbuf);
        const char *sep = io->errbuf[0] ? ": " : "";
        if (timed_out)
                return aidp_error_set(err, AIDP_EXIT_DATA, ETIMEDOUT,
                                      "key provider %s %s %s timed out after %u ms%s%s", prog, op,
                                      key_id, k->timeout_ms, sep, io->errbuf);
        if (WIFSIGNALED(status))
                return aidp_error_set(err, AIDP_EXIT_DATA, EIO,
                                      "key provider %s %s %s killed by signal %d%s%s", prog, op,
                                      key_id, WTERMSIG(status), sep, io->errbuf);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EIO,
                                      "key provider %s %s %s failed with exit status %d%s%s", prog,
                                      op, key_id, WEXITSTATUS(status), sep, io->errbuf);
        if (overflow)
                return aidp_error_set(err, AIDP_EXIT_DATA, EIO,
                                      "key provider %s %s %s printed more than %zu bytes", prog, op,
                                      key_id, io->out_cap);
        return 0;
}

int aidp_keys_exec_unwrap(const struct aidp_keys *k, const char *key_id, const uint8_t *wrapped,
                          size_t len, struct aidp_secret *ret, aidp_error *err)
{
        struct aidp_secret s = {0};
        int r = aidp_secret_alloc(&s, 4096, err);
        if (r < 0)
                return r;
        struct child_io io = {.in = wrapped, .in_len = len, .out = s.p, .out_cap = 4096};
        r = run_provider(k, "unwrap", key_id, &io, err);
        if (r < 0) {
                aidp_secret_free(&s);
                return r;
        }
        if (io.out_len != AIDP_SEALED_KEY_LEN) {
                aidp_secret_free(&s);
                return aidp_error_set(err, AIDP_EXIT_DATA, EIO,
                                      "key provider %s unwrap %s printed %zu bytes, want a %d-byte "
                                      "data key",
                                      k->argv[0], key_id, io.out_len, AIDP_SEALED_KEY_LEN);
        }
        s.len = AIDP_SEALED_KEY_LEN;
        *ret = s;
        return 0;
}

/* Does the wrap hold the data key in clear: raw, or as hex in either case? */
static bool holds_key(const uint8_t *w, size_t wlen, const struct aidp_secret *dk)
{
        if (memmem(w, wlen, dk->p, dk->len))
                return true;
        char hex[2 * AIDP_SEALED_KEY_LEN + 1];
        bool found = false;
        if (dk->len == AIDP_SEALED_KEY_LEN) {
                aidp_hex_encode(dk->p, dk->len, hex);
                found = memmem(w, wlen, hex, 2 * dk->len) != NULL;
                for (size_t i = 0; i < 2 * dk->len; i++)
                        if (hex[i] >= 'a')
                                hex[i] = (char)(hex[i] - 'a' + 'A');
                found = found || memmem(w, wlen, hex, 2 * dk->len) != NULL;
        }
        OPENSSL_cleanse(hex, sizeof hex);
        return found;
}

int aidp_keys_exec_wrap(const struct aidp_keys *k, const char *key_id, const struct aidp_secret *dk,
                        uint8_t *out, size_t *ret_len, aidp_error *err)
{
        const char *prog = k->argv[0];
        struct child_io io = {
                .in = dk->p, .in_len = dk->len, .out = out, .out_cap = AIDP_SEALED_WRAPPED_MAX};
        int r = run_provider(k, "wrap", key_id, &io, err);
        if (r < 0)
                return r;
        if (io.out_len == 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EIO,
                                      "key provider %s wrap %s printed nothing", prog, key_id);
        if (holds_key(out, io.out_len, dk)) {
                OPENSSL_cleanse(out, io.out_len);
                return aidp_error_set(err, AIDP_EXIT_DATA, EIO,
                                      "key provider %s wrap %s printed the data key itself: "
                                      "refused, nothing was stored",
                                      prog, key_id);
        }
        /* Unwrap back now, while nothing depends on it: a provider that prints
         * an error text with exit status 0 would otherwise produce an output
         * nobody can ever decrypt. */
        _cleanup_secret_ struct aidp_secret back = {0};
        r = aidp_keys_exec_unwrap(k, key_id, out, io.out_len, &back, err);
        if (r < 0)
                return aidp_error_wrap(err,
                                       "key provider %s wrap %s: its output does not unwrap back "
                                       "(refused, nothing was stored)",
                                       prog, key_id);
        if (CRYPTO_memcmp(back.p, dk->p, AIDP_SEALED_KEY_LEN) != 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EIO,
                                      "key provider %s wrap %s: its output unwraps to another key "
                                      "(refused, nothing was stored)",
                                      prog, key_id);
        *ret_len = io.out_len;
        return 0;
}
