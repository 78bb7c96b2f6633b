/* Time windows: parsing `time_windows:` items and testing an instant. The
 * conversion from an instant to local wall time needs the zone's UTC offset
 * at that instant, which only the tz database knows; the caller looks it up
 * (supervisor/run/policy_clock.c) and passes it in, so this file stays pure. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "residency/parse_internal.h"
#include "common/strv.h"

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

bool aidp_residency_zone_name_valid(const char *tz)
{
        size_t n = strlen(tz);
        if (n == 0 || n > 64 || tz[0] == '/' || tz[n - 1] == '/')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = tz[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-' || c == '/';
                if (!ok || (c == '/' && tz[i + 1] == '/'))
                        return false;
        }
        return true;
}

/* "HH:MM" at s (exactly five bytes); 24:00 only as an end. */
static int hhmm(const char *s, bool end, uint16_t *ret)
{
        for (int i = 0; i < 5; i++)
                if (i == 2 ? s[i] != ':' : (s[i] < '0' || s[i] > '9'))
                        return -EINVAL;
        unsigned h = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
        unsigned m = (unsigned)(s[3] - '0') * 10 + (unsigned)(s[4] - '0');
        if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end)))
                return -EINVAL;
        *ret = (uint16_t)(h * 60 + m);
        return 0;
}

struct window_ctx {
        struct aidp_time_window win;
};

static int day_item(struct aidp_yaml *w, yaml_node_t *item, const char *path, size_t i, void *ctx)
{
        uint8_t *days = ctx;
        const char *s;
        int r = aidp_yaml_string(w, item, path, &s);
        if (r < 0)
                return r;
        for (unsigned d = 0; d < 7; d++)
                if (!strcmp(s, day_names[d])) {
                        if (*days & (1u << d))
                                return aidp_yaml_fail(w, item, path, "duplicate day '%s'", s);
                        *days |= (uint8_t)(1u << d);
                        return 0;
                }
        return aidp_yaml_fail(w, item, path,
                              "unknown day '%s' (expected mon, tue, wed, thu, fri, sat, sun)", s);
}

static int wf_days(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct window_ctx *c = ctx;
        uint8_t days = 0;
        int r = aidp_yaml_seq(w, v, path, day_item, &days);
        if (r < 0)
                return r;
        if (days == 0)
                return aidp_yaml_fail(w, v, path,
                                      "empty list of days (omit the key for every day)");
        c->win.days = days;
        return 0;
}

static int wf_hours(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct window_ctx *c = ctx;
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        if (strlen(s) != 11 || s[5] != '-' || hhmm(s, false, &c->win.start) < 0 ||
            hhmm(s + 6, true, &c->win.end) < 0)
                return aidp_yaml_fail(w, v, path,
                                      "invalid hours '%s' (expected HH:MM-HH:MM, e.g. "
                                      "08:00-18:00 or 22:00-06:00)",
                                      s);
        if (c->win.start == c->win.end)
                return aidp_yaml_fail(w, v, path,
                                      "empty window '%s' (use 00:00-24:00 for a whole day)", s);
        return 0;
}

static int wf_zone(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct window_ctx *c = ctx;
        const char *s;
        int r = aidp_yaml_string(w, v, path, &s);
        if (r < 0)
                return r;
        if (!aidp_residency_zone_name_valid(s))
                return aidp_yaml_fail(w, v, path,
                                      "invalid time zone '%s' (expected an IANA name "
                                      "such as Europe/Berlin or UTC)",
                                      s);
        c->win.zone_line = (unsigned)v->start_mark.line + 1;
        c->win.zone_col = (unsigned)v->start_mark.column + 1;
        return aidp_yaml_strdup(w, v, path, &c->win.zone);
}

struct windows_ctx {
        struct aidp_time_window *v;
        size_t n;
};

static int window_item(struct aidp_yaml *w, yaml_node_t *item, const char *path, size_t i,
                       void *ctx)
{
        static const struct aidp_yaml_field fields[] = {
                {"days", wf_days, false},
                {"hours", wf_hours, false},
                {"time_zone", wf_zone, false},
        };
        struct windows_ctx *ws = ctx;
        struct window_ctx c = {.win = {.days = 0x7f, .start = 0, .end = 1440}};
        int r = aidp_yaml_fields(w, item, path, fields, ARRAY_SIZE(fields), &c);
        if (r >= 0 && !c.win.zone && !(c.win.zone = strdup("UTC")))
                r = aidp_residency_oom(w);
        if (r < 0) {
                free(c.win.zone);
                return r;
        }
        struct aidp_time_window *nv = realloc(ws->v, (ws->n + 1) * sizeof *nv);
        if (!nv) {
                free(c.win.zone);
                return aidp_residency_oom(w);
        }
        nv[ws->n++] = c.win;
        ws->v = nv;
        return 0;
}

int aidp_residency_parse_windows(struct aidp_yaml *w, yaml_node_t *v, const char *path,
                                 struct aidp_time_window **ret, size_t *ret_n)
{
        struct windows_ctx ws = {0};
        int r = aidp_yaml_seq(w, v, path, window_item, &ws);
        if (r < 0) {
                aidp_residency_windows_free(ws.v, ws.n);
                return r;
        }
        aidp_residency_windows_free(*ret, *ret_n);
        *ret = ws.v;
        *ret_n = ws.n;
        return 0;
}

void aidp_residency_windows_free(struct aidp_time_window *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i].zone);
        free(v);
}

void aidp_residency_local_time(int64_t epoch, long utc_offset, int *wday, int *minute)
{
        int64_t t = epoch + utc_offset;
        int64_t days = t / 86400, secs = t % 86400;
        if (secs < 0) { /* floor division for instants before 1970 */
                secs += 86400;
                days--;
        }
        /* 1970-01-01 was a Thursday (4). */
        *wday = (int)(((days % 7) + 7 + 4) % 7);
        *minute = (int)(secs / 60);
}

bool aidp_residency_window_contains(const struct aidp_time_window *win, int wday, int minute)
{
        int prev = (wday + 6) % 7;
        if (win->start < win->end)
                return (win->days & (1u << wday)) && minute >= win->start && minute < win->end;
        /* Across midnight: the evening part belongs to today, the morning part
         * to the window that started yesterday. */
        return ((win->days & (1u << wday)) && minute >= win->start) ||
               ((win->days & (1u << prev)) && minute < win->end);
}

const char *aidp_residency_day_name(int wday)
{
        return wday >= 0 && wday < 7 ? day_names[wday] : "?";
}
