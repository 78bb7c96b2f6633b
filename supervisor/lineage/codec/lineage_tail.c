/* The pure rules of the lineage store: lineage_tail.h. */
#define _GNU_SOURCE /* memrchr */
#include "supervisor/lineage/codec/lineage_tail.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void aidp_lineage_anchor_genesis(struct aidp_lineage_anchor *a)
{
        a->seq = 0;
        memcpy(a->hash, AIDP_LINEAGE_ZERO_HASH, sizeof a->hash);
}

int aidp_lineage_anchor_block(const struct aidp_lineage_anchor *a,
                              const unsigned char key[AIDP_LINEAGE_KEY_LEN],
                              char out[AIDP_LINEAGE_ANCHOR_SIZE])
{
        size_t len = 0;
        char *line = aidp_lineage_anchor_format(a, key, &len);
        if (!line)
                return -ENOMEM;
        if (len > AIDP_LINEAGE_ANCHOR_SIZE) {
                free(line);
                return -E2BIG;
        }
        /* The line, padded with spaces before its '\n' to the fixed size. */
        memset(out, ' ', AIDP_LINEAGE_ANCHOR_SIZE);
        memcpy(out, line, len - 1);
        out[AIDP_LINEAGE_ANCHOR_SIZE - 1] = '\n';
        free(line);
        return 0;
}

int aidp_lineage_last_line(const char *buf, size_t len, bool whole, size_t *start, size_t *n,
                           size_t *end)
{
        const char *nl = len ? memrchr(buf, '\n', len) : NULL;
        if (!nl)
                return whole ? 0 : -EAGAIN; /* one torn line and nothing before it */
        const char *prev = memrchr(buf, '\n', (size_t)(nl - buf));
        if (!prev && !whole)
                return -EAGAIN; /* the line may begin before buf */
        const char *s = prev ? prev + 1 : buf;
        *start = (size_t)(s - buf);
        *n = (size_t)(nl - s);
        *end = (size_t)(nl - buf) + 1;
        return 1;
}

int aidp_lineage_tail_line(const char *buf, size_t len, bool whole, uint64_t k, size_t *start,
                           size_t *n)
{
        if (k == 0 || len == 0 || buf[len - 1] != '\n')
                return whole && len == 0 ? 0 : -EINVAL;
        size_t end = len - 1; /* the '\n' of the line being looked at */
        for (uint64_t i = 1;; i++) {
                const char *prev = end ? memrchr(buf, '\n', end) : NULL;
                if (!prev && !whole)
                        return -EAGAIN; /* the line may begin before buf */
                size_t s = prev ? (size_t)(prev - buf) + 1 : 0;
                if (i == k) {
                        *start = s;
                        *n = end - s;
                        return 1;
                }
                if (!prev)
                        return 0;
                end = (size_t)(prev - buf);
        }
}

const char *aidp_lineage_tail_check(const struct aidp_lineage_record *last, bool torn,
                                    const struct aidp_lineage_anchor *anchor,
                                    const struct aidp_lineage_record *next)
{
        if (!anchor)
                return last->seq > 0 || torn
                               ? "it has records but no anchor (the anchor was deleted?)"
                               : NULL;
        if (last->seq > 0 && anchor->log[0] && strcmp(last->log, anchor->log))
                return "its anchor belongs to another log (the log or its anchor was replaced)";
        if (last->seq < anchor->seq)
                return "it ends before the record its anchor names (records were cut from the "
                       "end)";
        if (last->seq == anchor->seq)
                return strcmp(last->hash, anchor->hash)
                               ? "its last record differs from the anchored one"
                               : NULL;
        if (last->seq - anchor->seq > AIDP_LINEAGE_UNCOMMITTED_MAX)
                return "its anchor is further behind than appends awaiting their commit can "
                       "leave it (an older anchor was put back?)";
        /* Records past the anchor: appends whose group commit is under way, or ones
         * a crash interrupted (with, perhaps, a torn line after them). The first
         * must follow the anchored record. */
        if (!next || next->seq != anchor->seq + 1 || strcmp(next->prev, anchor->hash))
                return last->seq == anchor->seq + 1
                               ? "its last record does not follow the anchored one"
                               : "its records past the anchor do not follow the anchored one";
        return NULL;
}

static json_object *member(json_object *o, const char *k)
{
        json_object *v = NULL;
        return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static const char *str_or_empty(json_object *o)
{
        const char *s = o ? json_object_get_string(o) : NULL;
        return s ? s : "";
}

/* The reason of the first "deny" decision, else the exit facet's reason. */
static const char *alert_reason(json_object *facets)
{
        json_object *decisions = member(member(facets, "aidp_policy"), "decisions");
        size_t n = decisions && json_object_is_type(decisions, json_type_array)
                           ? json_object_array_length(decisions)
                           : 0;
        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(decisions, i);
                json_object *r = member(d, "reason");
                if (!strcmp(str_or_empty(member(d, "decision")), "deny") && r)
                        return str_or_empty(r);
        }
        return str_or_empty(member(member(facets, "aidp_exit"), "reason"));
}

bool aidp_lineage_alert_of(json_object *ev, struct aidp_lineage_alert *ret)
{
        json_object *run = member(ev, "run"), *facets = member(run, "facets");
        json_object *denied = member(member(facets, "aidp_network"), "denied");
        struct aidp_lineage_alert a = {
                .event_type = str_or_empty(member(ev, "eventType")),
                .egress_denied = denied ? json_object_get_uint64(denied) : 0,
        };
        if (!strcmp(a.event_type, "OTHER"))
                a.kind = AIDP_ALERT_DENIED;
        else if (!strcmp(a.event_type, "ABORT"))
                a.kind = AIDP_ALERT_ABORT;
        else if (a.egress_denied > 0)
                a.kind = AIDP_ALERT_EGRESS_DENIED;
        else
                return false;
        a.reason = alert_reason(facets);
        a.run_id = str_or_empty(member(run, "runId"));
        a.job = str_or_empty(member(member(ev, "job"), "name"));
        *ret = a;
        return true;
}

const char *aidp_lineage_alert_msgid(enum aidp_lineage_alert_kind k)
{
        static const char *const ids[AIDP_ALERT_MAX] = {
                [AIDP_ALERT_DENIED] = "DENIED",
                [AIDP_ALERT_ABORT] = "ABORT",
                [AIDP_ALERT_EGRESS_DENIED] = "EGRESS_DENIED",
        };
        return (unsigned)k < AIDP_ALERT_MAX ? ids[k] : "?";
}

const char *aidp_lineage_alert_text(enum aidp_lineage_alert_kind k)
{
        static const char *const texts[AIDP_ALERT_MAX] = {
                [AIDP_ALERT_DENIED] = "run denied by policy",
                [AIDP_ALERT_ABORT] = "run aborted",
                [AIDP_ALERT_EGRESS_DENIED] = "egress denied during run",
        };
        return (unsigned)k < AIDP_ALERT_MAX ? texts[k] : "?";
}
