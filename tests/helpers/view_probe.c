/* Runs inside the sandbox for tests/priv/test_views.c: looks for a canary
 * everywhere the job can reach, without ever holding the canary itself (it
 * would then find its own copy):
 *   view_probe MASK-HEX MASKED-HEX [COUNT-PREFIX]
 * The canary is MASKED xor MASK, compared a byte at a time as it is scanned.
 * Every regular file under /data, /scratch, /out, /tmp and /dev/shm is read
 * and KEPT in memory; then the environment and the probe's whole memory
 * (/proc/self/maps and /proc/self/mem: everything the job holds, including
 * what it read from /data) are scanned. Prints one line per place it found
 * the canary ("FOUND file /data/x", "FOUND env", "FOUND mem 7f..-7f.."), then
 * "SCANNED files=N bytes=B mem=M" and, with COUNT-PREFIX, "PREFIX n" (how many
 * times that string, e.g. a token domain "patient:", occurs in /data).
 * Only libc. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static uint8_t mask[256], masked[256];
static size_t clen;
static unsigned long long n_files, n_bytes, n_mem, n_prefix, n_skipped;
static const char *prefix;

struct kept {
        uint8_t *p;
        size_t n;
        struct kept *next;
};
static struct kept *kept;

static int hex(const char *s, uint8_t *out, size_t cap)
{
        size_t n = strlen(s) / 2;
        if (n > cap)
                return -1;
        for (size_t i = 0; i < n; i++)
                if (sscanf(s + 2 * i, "%2hhx", &out[i]) != 1)
                        return -1;
        return (int)n;
}

static bool found_in(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i + clen <= n; i++) {
                if ((uint8_t)(p[i] ^ mask[0]) != masked[0])
                        continue;
                size_t k = 1;
                while (k < clen && (uint8_t)(p[i + k] ^ mask[k]) == masked[k])
                        k++;
                if (k == clen)
                        return true;
        }
        return false;
}

static void count_prefix(const uint8_t *p, size_t n)
{
        size_t pl = strlen(prefix);
        for (size_t i = 0; i + pl <= n; i++)
                if (!memcmp(p + i, prefix, pl))
                        n_prefix++;
}

static void scan_file(const char *path, bool is_data)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        struct kept *k = calloc(1, sizeof *k);
        k->p = malloc((size_t)st.st_size + 1);
        ssize_t got = read(fd, k->p, (size_t)st.st_size);
        close(fd);
        k->n = got > 0 ? (size_t)got : 0;
        k->next = kept; /* kept: the job's heap holds every byte it read */
        kept = k;
        n_files++;
        n_bytes += k->n;
        if (found_in(k->p, k->n))
                printf("FOUND file %s\n", path);
        if (is_data && prefix)
                count_prefix(k->p, k->n);
}

static void walk(const char *dir, bool is_data)
{
        DIR *d = opendir(dir);
        if (!d)
                return;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                char p[4096];
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                struct stat st;
                if (lstat(p, &st) < 0)
                        continue;
                if (S_ISDIR(st.st_mode))
                        walk(p, is_data);
                else if (S_ISREG(st.st_mode))
                        scan_file(p, is_data);
        }
        closedir(d);
}

static void scan_memory(void)
{
        FILE *maps = fopen("/proc/self/maps", "re");
        int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        if (!maps || mem < 0) {
                printf("ERROR cannot read /proc/self/mem\n");
                return;
        }
        char line[512];
        size_t cap = 1 << 20;
        uint8_t *buf = malloc(cap);
        while (fgets(line, sizeof line, maps)) {
                unsigned long a, b;
                char perms[8];
                if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) != 3 || perms[0] != 'r' ||
                    strstr(line, "[vvar") || strstr(line, "[vsyscall]"))
                        continue;
                /* A sanitizer's shadow reserves terabytes: reading it would
                 * build page tables for all of it. The helpers are built
                 * without sanitizers (tests/CMakeLists.txt), so this never
                 * happens; the count is printed and test_views.c checks it
                 * is 0, so the scan is never silently partial. */
                if (b - a > (1ul << 30)) {
                        n_skipped++;
                        continue;
                }
                for (unsigned long o = a; o < b;) {
                        /* overlap by clen so a canary across chunks is found */
                        size_t n = b - o < cap ? b - o : cap;
                        ssize_t got = pread(mem, buf, n, (off_t)o);
                        if (got <= 0)
                                break;
                        /* our own read buffer holds what it just read, no more */
                        if ((uint8_t *)o != buf && found_in(buf, (size_t)got))
                                printf("FOUND mem %lx-%lx\n", a, b);
                        n_mem += (unsigned long long)got;
                        if ((size_t)got <= clen || o + (size_t)got >= b)
                                break;
                        o += (size_t)got - clen;
                }
        }
        free(buf);
        close(mem);
        fclose(maps);
}

int main(int argc, char **argv)
{
        if (argc < 3)
                return 2;
        int a = hex(argv[1], mask, sizeof mask), b = hex(argv[2], masked, sizeof masked);
        if (a <= 0 || a != b)
                return 2;
        clen = (size_t)a;
        prefix = argc > 3 ? argv[3] : NULL;
        walk("/data", true);
        walk("/scratch", false);
        walk("/out", false);
        walk("/tmp", false);
        walk("/dev/shm", false);
        for (char **e = environ; *e; e++)
                if (found_in((const uint8_t *)*e, strlen(*e)))
                        printf("FOUND env\n");
        scan_memory();
        printf("SCANNED files=%llu bytes=%llu mem=%llu skipped-regions=%llu\n", n_files, n_bytes,
               n_mem, n_skipped);
        if (prefix)
                printf("PREFIX %llu\n", n_prefix);
        fflush(stdout);
        return 0;
}
