#define _GNU_SOURCE
/* lineage_find.h */
#include "supervisor/lineage/lineage_find.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/lineage/codec/lineage_witness.h"

#define CHUNK (64 * 1024)

struct find {
        const char *run_id;
        int64_t not_before;
        char end[16]; /* the latest end record's type seen so far, or "" */
        int verdict;  /* -1: go on; 0 or 1 */
};

/* eventTime ("2026-12-07T05:44:22.123Z") in epoch seconds; -1 unparsed. */
static int64_t event_seconds(const char *s)
{
        struct tm tm = {0};
        if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
                return -1;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t)timegm(&tm);
}

static const char *get_str(json_object *o, const char *k)
{
        json_object *v;
        return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

/* One complete line, newest first. */
static void one_line(struct find *f, const char *line, size_t n)
{
        if (!memmem(line, n, f->run_id, strlen(f->run_id)))
                return;
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return;
        json_object *ev = json_tokener_parse_ex(tok, line, (int)n);
        json_tokener_free(tok);
        json_object *run;
        const char *type = get_str(ev, "eventType");
        if (ev && type && json_object_object_get_ex(ev, "run", &run) &&
            !strcmp(get_str(run, "runId") ? get_str(run, "runId") : "", f->run_id)) {
                if (!strcmp(type, "START")) {
                        int64_t t = event_seconds(get_str(ev, "eventTime"));
                        f->verdict = f->end[0] && (f->not_before <= 0 || t >= f->not_before);
                } else if (!f->end[0] && (!strcmp(type, "COMPLETE") || !strcmp(type, "FAIL") ||
                                          !strcmp(type, "ABORT")))
                        snprintf(f->end, sizeof f->end, "%s", type);
        }
        json_object_put(ev);
}

/* The complete lines of buf[0, len) newest first; returns how many bytes at the
 * start of buf are left (the head of a line that began in an earlier chunk),
 * unless at_start (the file's start: that head is a whole line). */
static size_t lines_back(struct find *f, const char *buf, size_t len, bool at_start)
{
        size_t end = len;
        while (end > 0 && f->verdict < 0) {
                const char *nl = memrchr(buf, '\n', end - (buf[end - 1] == '\n'));
                size_t start = nl ? (size_t)(nl - buf) + 1 : 0;
                if (!nl && !at_start)
                        return end;
                size_t stop = buf[end - 1] == '\n' ? end - 1 : end;
                if (stop > start)
                        one_line(f, buf + start, stop - start);
                end = start;
        }
        return 0;
}

/* Read the log at path backwards into f (whose end may be set already, from
 * the log that followed this one). */
static int find_in(const char *path, struct find *f)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        /* buf holds one chunk and, after it, the head of the line that the
         * previous (later) chunk began with. */
        size_t cap = 2 * CHUNK, carry = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        off_t pos = st.st_size;
        bool first = true;
        while (pos > 0 && f->verdict < 0) {
                size_t want = pos > CHUNK ? CHUNK : (size_t)pos;
                if (want + carry > cap) {
                        char *nb = realloc(buf, want + carry);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap = want + carry;
                }
                memmove(buf + want, buf, carry);
                pos -= (off_t)want;
                if (pread(fd, buf, want, pos) != (ssize_t)want)
                        return -EIO;
                size_t len = want + carry;
                /* A last line without its '\n' is an append cut short. */
                if (first) {
                        const char *nl = memrchr(buf, '\n', len);
                        len = nl ? (size_t)(nl - buf) + 1 : 0;
                        first = nl == NULL;
                        if (!nl && pos == 0)
                                break;
                        if (!nl) {
                                carry = 0;
                                continue;
                        }
                }
                carry = lines_back(f, buf, len, pos == 0);
        }
        return 0;
}

/* The archive the log at path continues (its first record, the link that
 * `aidp lineage rotate` wrote), in out; false when it names none, or when the
 * rotation was before not_before: a run whose journal is younger than the
 * rotation has its START in this log or nowhere. */
static bool archive_of(const char *path, int64_t not_before, char *out, size_t len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return false;
        _cleanup_free_ char *buf = malloc(CHUNK);
        ssize_t n = buf ? pread(fd, buf, CHUNK, 0) : -1;
        const char *nl = n > 0 ? memchr(buf, '\n', (size_t)n) : NULL;
        if (!nl)
                return false;
        json_tokener *tok = json_tokener_new();
        json_object *ev = tok ? json_tokener_parse_ex(tok, buf, (int)(nl - buf)) : NULL;
        json_tokener_free(tok);
        struct aidp_lineage_link l;
        const char *type = get_str(ev, "eventType");
        bool ok = type && !strcmp(type, "OTHER") && aidp_lineage_rotation_of(ev, &l) == 1 &&
                  (not_before <= 0 || event_seconds(get_str(ev, "eventTime")) + 1 >= not_before);
        json_object_put(ev);
        if (!ok)
                return false;
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path) + 1 : 0;
        int w = snprintf(out, len, "%.*s%s", dl, path, l.file);
        return w > 0 && (size_t)w < len;
}

/* How many archives a look-up follows back (a run spanning more rotations
 * than this gets its ABORT, as before). */
#define MAX_ARCHIVES 4

int aidp_lineage_find_end(const char *path, const char *run_id, int64_t not_before, char *type,
                          size_t type_len)
{
        struct find f = {.run_id = run_id, .not_before = not_before, .verdict = -1};
        char cur[PATH_MAX], next[PATH_MAX];
        if (snprintf(cur, sizeof cur, "%s", path) >= (int)sizeof cur)
                return -ENAMETOOLONG;
        for (int hop = 0;; hop++) {
                int r = find_in(cur, &f);
                if (r < 0 && hop == 0)
                        return r;
                /* The run's START is not in this log: it may be in the archive
                 * the log continues (a run under way while the log rotated). */
                if (r < 0 || f.verdict >= 0 || hop == MAX_ARCHIVES ||
                    !archive_of(cur, not_before, next, sizeof next))
                        break;
                memcpy(cur, next, sizeof cur);
        }
        if (f.verdict == 1)
                snprintf(type, type_len, "%s", f.end);
        return f.verdict == 1;
}
