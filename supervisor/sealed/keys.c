/* Key providers (file, exec) and keys.yaml. See keys.h for the contract. */
#define _GNU_SOURCE
#include "supervisor/sealed/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
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
#include "common/fsdir.h"
#include "common/yaml.h"

extern char **environ;

void aidp_keys_init(struct aidp_keys *k)
{
        memset(k, 0, sizeof *k);
        k->kind = AIDP_KEYS_FILE;
        snprintf(k->dir, sizeof k->dir, "%s", AIDP_KEYS_DEFAULT_DIR);
        k->timeout_ms = AIDP_KEYS_DEFAULT_TIMEOUT_MS;
}

static void free_argv(struct aidp_keys *k)
{
        for (unsigned i = 0; i < AIDP_KEYS_EXEC_ARGS_MAX + 1; i++) {
                free(k->argv[i]);
                k->argv[i] = NULL;
        }
}

void aidp_keys_free(struct aidp_keys *k)
{
        if (!k)
                return;
        free_argv(k);
        aidp_secret_free(&k->static_kek);
}

int aidp_keys_set_static(struct aidp_keys *k, const uint8_t kek[AIDP_SEALED_KEY_LEN],
                         aidp_error *err)
{
        aidp_secret_free(&k->static_kek);
        int r = aidp_secret_alloc(&k->static_kek, AIDP_SEALED_KEY_LEN, err);
        if (r < 0)
                return r;
        memcpy(k->static_kek.p, kek, AIDP_SEALED_KEY_LEN);
        k->kind = AIDP_KEYS_STATIC;
        return 0;
}

/* ---- keys.yaml (read with the common YAML walker: one error format) ---- */

static int parse_provider(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (!strcmp(s, "file"))
                k->kind = AIDP_KEYS_FILE;
        else if (!strcmp(s, "exec"))
                k->kind = AIDP_KEYS_EXEC;
        else
                return aidp_yaml_fail(y, v, path, "found '%s', expected file or exec", s);
        return 0;
}

static int parse_key_dir(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (s[0] != '/' || strlen(s) >= sizeof k->dir)
                return aidp_yaml_fail(y, v, path, "found '%s', expected an absolute path", s);
        snprintf(k->dir, sizeof k->dir, "%s", s);
        return 0;
}

static int parse_command_item(struct aidp_yaml *y, yaml_node_t *v, const char *path, size_t i,
                              void *ctx)
{
        struct aidp_keys *k = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        if (i >= AIDP_KEYS_EXEC_ARGS_MAX - 2)
                return aidp_yaml_fail(y, v, path, "found more than %d arguments, expected fewer",
                                      AIDP_KEYS_EXEC_ARGS_MAX - 2);
        if (i == 0 && s[0] != '/')
                return aidp_yaml_fail(y, v, path, "found '%s', expected an absolute path", s);
        k->argv[i] = strdup(s);
        if (!k->argv[i])
                return aidp_error_set(y->err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        return 0;
}

static int parse_command(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        int r = aidp_yaml_expect(y, v, YAML_SEQUENCE_NODE, path, "a list [PROGRAM, ARGS...]",
                                 y->err);
        if (r < 0)
                return r;
        free_argv(k);
        r = aidp_yaml_seq(y, v, path, parse_command_item, k);
        if (r < 0)
                return r;
        if (!k->argv[0])
                return aidp_yaml_fail(y, v, path,
                                      "found an empty list, expected [PROGRAM, ARGS...]");
        return 0;
}

static int parse_timeout(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_keys *k = ctx;
        const char *s;
        int r = aidp_yaml_string(y, v, path, &s);
        if (r < 0)
                return r;
        char *end = NULL;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (errno || end == s || *end || n < 1 || n > 600)
                return aidp_yaml_fail(y, v, path,
                                      "found '%s', expected a number of seconds in [1, 600]", s);
        k->timeout_ms = (unsigned)n * 1000u;
        return 0;
}

static int parse_exec(struct aidp_yaml *y, yaml_node_t *v, const char *path, void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"command", parse_command, false},
                {"timeout", parse_timeout, false},
        };
        return aidp_yaml_fields(y, v, path, fields, sizeof fields / sizeof *fields, ctx);
}

int aidp_keys_parse(const char *buf, size_t len, const char *fname, struct aidp_keys *k,
                    aidp_error *err)
{
        static const struct aidp_yaml_field fields[] = {
                {"provider", parse_provider, false},
                {"key_dir", parse_key_dir, false},
                {"exec", parse_exec, false},
        };
        struct aidp_yaml y;
        int r = aidp_yaml_load(&y, fname, "key provider config", buf, len, AIDP_YAML_EMPTY_OK, err);
        yaml_node_t *root = r < 0 ? NULL : aidp_yaml_root(&y);
        if (r < 0 || !root) /* an empty file keeps the defaults */
                goto out;
        r = aidp_yaml_expect(&y, root, YAML_MAPPING_NODE, "", "a mapping", err);
        if (r >= 0)
                r = aidp_yaml_fields(&y, root, "", fields, sizeof fields / sizeof *fields, k);
        if (r >= 0 && k->kind == AIDP_KEYS_EXEC && !k->argv[0])
                r = aidp_yaml_fail(&y, root, "provider", "exec needs exec.command");
out:
        aidp_yaml_free(&y);
        return r;
}

/* Owned by root (or by us when not root) and not writable by group/other:
 * otherwise someone else could redirect key operations. */
static int check_trusted(const struct stat *st, const char *path, const char *what, aidp_error *err)
{
        if (st->st_uid != 0 && st->st_uid != geteuid())
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EPERM,
                                      "%s %s is owned by uid %u, not root", what, path,
                                      (unsigned)st->st_uid);
        if (st->st_mode & (S_IWGRP | S_IWOTH))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EPERM,
                                      "%s %s is writable by group or other (mode %04o)", what, path,
                                      (unsigned)(st->st_mode & 07777));
        return 0;
}

static int load_config(const char *path, bool must_exist, struct aidp_keys *k, aidp_error *err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno == ENOENT && !must_exist)
                        return 0;
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key config %s", path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key config %s", path);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "key config %s is not a regular file", path);
        int r = check_trusted(&st, path, "key config", err);
        if (r < 0)
                return r;
        if (st.st_size > 65536)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EFBIG, "key config %s is too large",
                                      path);
        _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        ssize_t n = read(fd, buf, (size_t)st.st_size);
        if (n < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "reading key config %s",
                                        path);
        r = aidp_keys_parse(buf, (size_t)n, path, k, err);
        if (r < 0)
                return r;
        snprintf(k->config, sizeof k->config, "%s", path);
        return 0;
}

int aidp_keys_setup(const char *config_path, const char *dir_override, struct aidp_keys *k,
                    aidp_error *err)
{
        const char *env_cfg = getenv("AIDP_KEYS_CONFIG");
        const char *cfg = config_path && *config_path ? config_path
                          : env_cfg && *env_cfg       ? env_cfg
                                                      : NULL;
        int r = load_config(cfg ? cfg : AIDP_KEYS_DEFAULT_CONFIG, cfg != NULL, k, err);
        if (r < 0)
                return r;
        const char *env_dir = getenv("AIDP_KEY_DIR");
        const char *dir = dir_override && *dir_override ? dir_override
                          : env_dir && *env_dir         ? env_dir
                                                        : NULL;
        if (dir) {
                if (strlen(dir) >= sizeof k->dir)
                        return aidp_error_set(err, AIDP_EXIT_USAGE, ENAMETOOLONG,
                                              "key directory path too long");
                snprintf(k->dir, sizeof k->dir, "%s", dir);
                /* An explicit key directory means the file provider. */
                k->kind = AIDP_KEYS_FILE;
        }
        return 0;
}

/* ---- file provider ---- */

int aidp_keys_read_kek(const char *dir, const char *key_id, struct aidp_secret *ret,
                       aidp_error *err)
{
        if (!aidp_sealed_valid_key_id(key_id))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "invalid key id '%s'", key_id);
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "key directory %s", dir);
        struct stat st;
        if (fstat(dfd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "key directory %s", dir);
        if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key directory %s refused: must be owned by root and not "
                                      "writable by group or other (uid %u, mode %04o)",
                                      dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        _cleanup_close_ int fd = openat(dfd, key_id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return aidp_error_set(err, AIDP_EXIT_DATA, ENOKEY,
                                              "key '%s' not found in %s", key_id, dir);
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "key file %s/%s", dir, key_id);
        }
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_DATA, errno, "key file %s/%s", dir, key_id);
        if (!S_ISREG(st.st_mode))
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key file %s/%s refused: not a regular file", dir, key_id);
        if (st.st_uid != 0)
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key file %s/%s refused: owned by uid %u, must be owned by "
                                      "root",
                                      dir, key_id, (unsigned)st.st_uid);
        if (st.st_mode & (S_IRWXG | S_IRWXO))
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "key file %s/%s refused: mode %04o gives group/other "
                                      "access (want 0400 or 0600)",
                                      dir, key_id, (unsigned)(st.st_mode & 07777));
        if (st.st_size != AIDP_SEALED_KEY_LEN)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "key file %s/%s refused: %lld bytes, want %d raw bytes", dir,
                                      key_id, (long long)st.st_size, AIDP_SEALED_KEY_LEN);
        struct aidp_secret s = {0};
        int r = aidp_secret_alloc(&s, AIDP_SEALED_KEY_LEN, err);
        if (r < 0)
                return r;
        ssize_t n = pread(fd, s.p, AIDP_SEALED_KEY_LEN, 0);
        if (n != AIDP_SEALED_KEY_LEN) {
                int e = n < 0 ? errno : EIO;
                aidp_secret_free(&s);
                return aidp_error_errno(err, AIDP_EXIT_DATA, e, "reading key file %s/%s", dir,
                                        key_id);
        }
        *ret = s;
        return 0;
}

int aidp_keys_generate(const char *dir, const char *key_id, aidp_error *err)
{
        if (!aidp_sealed_valid_key_id(key_id))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "invalid key id '%s' (want [A-Za-z0-9][A-Za-z0-9._-]*, at "
                                      "most %d bytes)",
                                      key_id, AIDP_SEALED_KEY_ID_MAX);
        /* On a fresh host nothing exists yet: /etc/aidp (0755, policies are
         * readable) and the key directory itself (0700). */
        int mk = aidp_mkdir_p(dir, 0700, 0755);
        if (mk < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, -mk, "creating key directory %s",
                                        dir);
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "key directory %s", dir);
        _cleanup_secret_ struct aidp_secret s = {0};
        int r = aidp_sealed_new_data_key(&s, err);
        if (r < 0)
                return r;
        /* O_EXCL: never overwrite a KEK, that would orphan every dataset sealed
         * under it. Mode 0400 from the start, so it is never readable by others. */
        _cleanup_close_ int fd =
                openat(dfd, key_id, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "creating key file %s/%s",
                                        dir, key_id);
        if (fchmod(fd, 0400) < 0 || write(fd, s.p, AIDP_SEALED_KEY_LEN) != AIDP_SEALED_KEY_LEN ||
            fsync(fd) < 0) {
                int e = errno ? errno : EIO;
                unlinkat(dfd, key_id, 0);
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, e, "writing key file %s/%s", dir,
                                        key_id);
        }
        return 0;
}

/* ---- exec provider ---- */

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

/* Start the provider with its stdin, stdout and stderr on pipes; the parent's
 * ends are returned (close-on-exec, like everything aidp opens). */
static int spawn_provider(const char *prog, char *const argv[], pid_t *pid, int fds[3],
                          aidp_error *err)
{
        int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
        if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
                int e = errno;
                for (int i = 0; i < 2; i++) {
                        if (pin[i] >= 0)
                                close(pin[i]);
                        if (pout[i] >= 0)
                                close(pout[i]);
                }
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, e, "key provider pipes");
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
        posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
        posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
        int se = posix_spawn(pid, prog, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
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

/* Drain stdout and stderr until both close, then wait for the exit; all within
 * one deadline. A provider still running at the deadline is killed. */
static void drain_provider(const struct aidp_keys *k, pid_t pid, int pidfd, int *out_fd,
                           int *err_fd, struct child_io *io, int *status, bool *timed_out,
                           bool *overflow)
{
        uint64_t deadline = now_ms() + k->timeout_ms;
        bool reaped = false;
        while (!reaped) {
                uint64_t now = now_ms();
                if (now >= deadline) {
                        *timed_out = true;
                        break;
                }
                if (*out_fd < 0 && *err_fd < 0) {
                        struct pollfd pp = {pidfd, POLLIN, 0};
                        if (pidfd < 0 || poll(&pp, 1, (int)(deadline - now)) > 0)
                                reaped = waitpid(pid, status, 0) == pid;
                        continue;
                }
                struct pollfd p[2] = {{*out_fd, POLLIN, 0}, {*err_fd, POLLIN, 0}};
                int pr = poll(p, 2, (int)(deadline - now));
                if (pr < 0 && errno != EINTR)
                        break;
                if (p[0].revents)
                        read_provider(out_fd, true, io, overflow);
                if (p[1].revents)
                        read_provider(err_fd, false, io, overflow);
        }
        if (!reaped) {
                kill(pid, SIGKILL);
                waitpid(pid, status, 0);
        }
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
        int r = check_trusted(&st, prog, "key provider", err);
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

int aidp_keys_wrap(const struct aidp_keys *k, const char *key_id, const struct aidp_secret *dk,
                   enum aidp_key_wrap *ret_alg, uint8_t *out, size_t *ret_len, aidp_error *err)
{
        _cleanup_secret_ struct aidp_secret kek = {0};
        int r;
        switch (k->kind) {
        case AIDP_KEYS_FILE:
                r = aidp_keys_read_kek(k->dir, key_id, &kek, err);
                if (r < 0)
                        return r;
                r = aidp_sealed_kwp_wrap(kek.p, dk->p, dk->len, out, ret_len, err);
                if (r < 0)
                        return r;
                *ret_alg = AIDP_WRAP_AES256_KWP;
                return 0;
        case AIDP_KEYS_STATIC:
                r = aidp_sealed_kwp_wrap(k->static_kek.p, dk->p, dk->len, out, ret_len, err);
                if (r < 0)
                        return r;
                *ret_alg = AIDP_WRAP_AES256_KWP;
                return 0;
        case AIDP_KEYS_EXEC: {
                struct child_io io = {.in = dk->p,
                                      .in_len = dk->len,
                                      .out = out,
                                      .out_cap = AIDP_SEALED_WRAPPED_MAX};
                r = run_provider(k, "wrap", key_id, &io, err);
                if (r < 0)
                        return r;
                if (io.out_len == 0)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EIO,
                                              "key provider %s wrap %s printed nothing", k->argv[0],
                                              key_id);
                *ret_len = io.out_len;
                *ret_alg = AIDP_WRAP_EXTERNAL;
                return 0;
        }
        case AIDP_KEYS_MAX: break;
        }
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "no key provider configured");
}

int aidp_keys_unwrap(const struct aidp_keys *k, const char *key_id, enum aidp_key_wrap alg,
                     const uint8_t *wrapped, size_t len, struct aidp_secret *ret, aidp_error *err)
{
        _cleanup_secret_ struct aidp_secret kek = {0};
        int r;
        switch (k->kind) {
        case AIDP_KEYS_FILE:
        case AIDP_KEYS_STATIC:
                if (alg != AIDP_WRAP_AES256_KWP)
                        return aidp_error_set(err, AIDP_EXIT_DATA, ENOKEY,
                                              "key '%s' was wrapped by an exec key provider; "
                                              "configure it in %s",
                                              key_id, AIDP_KEYS_DEFAULT_CONFIG);
                if (k->kind == AIDP_KEYS_FILE) {
                        r = aidp_keys_read_kek(k->dir, key_id, &kek, err);
                        if (r < 0)
                                return r;
                }
                r = aidp_sealed_kwp_unwrap(k->kind == AIDP_KEYS_FILE ? kek.p : k->static_kek.p,
                                           wrapped, len, ret, err);
                if (r < 0)
                        return aidp_error_wrap(err, "key '%s'", key_id);
                return 0;
        case AIDP_KEYS_EXEC: {
                struct aidp_secret s = {0};
                r = aidp_secret_alloc(&s, 4096, err);
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
                                              "key provider %s unwrap %s printed %zu bytes, want "
                                              "a %d-byte data key",
                                              k->argv[0], key_id, io.out_len, AIDP_SEALED_KEY_LEN);
                }
                s.len = AIDP_SEALED_KEY_LEN;
                *ret = s;
                return 0;
        }
        case AIDP_KEYS_MAX: break;
        }
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "no key provider configured");
}
