/* Whether a new schema keeps every column label of an old one, judged the
 * way a run uses a schema: aidp_schema_match gives each file the FIRST
 * entry whose pattern matches it. So for each labelled entry of the old
 * schema, every entry of the new one that may match one of its files and
 * comes no later than an entry that surely matches all of them must keep
 * its labels; an entry that repeats or widens the pattern further down
 * does not count when an unlabelled one shadows it (a re-seal, aidp seal
 * --derived-from, never unlabels a column: such a column reaches every run
 * raw). Globs are compared per '/' component (FNM_PATHNAME: no wildcard
 * matches '/'); where that cannot decide (brackets, escapes, very long
 * components), "may match" and "covers only the same pattern" are assumed. */
#include <fnmatch.h>
#include <stdbool.h>
#include <string.h>

#include "views/views_internal.h"

#define COMPONENT_MAX 256

static bool is_literal(const char *c)
{
        return !strpbrk(c, "*?");
}

static size_t n_components(const char *p)
{
        size_t n = 1;
        for (; *p; p++)
                n += *p == '/';
        return n;
}

/* Whether no component is longer than COMPONENT_MAX - 1 and no bracket or
 * escape needs fnmatch's own reading of the whole pattern. */
static bool simple(const char *p)
{
        for (const char *q = p; *q;) {
                size_t n = strcspn(q, "/");
                if (n >= COMPONENT_MAX)
                        return false;
                q += n + (q[n] == '/');
        }
        return !strpbrk(p, "[\\");
}

/* The component of p after *pos (up to '/' or the end) into buf. */
static void next_component(const char *p, size_t *pos, char buf[COMPONENT_MAX])
{
        size_t n = strcspn(p + *pos, "/");
        memcpy(buf, p + *pos, n);
        buf[n] = '\0';
        *pos += n + (p[*pos + n] == '/');
}

/* Per component: both literal and different, or one literal that the
 * other does not match, makes the patterns disjoint; anything else may
 * overlap. covers: every name b matches, a matches too. */
static void compare(const char *a, const char *b, bool *overlap, bool *covers)
{
        if (!simple(a) || !simple(b)) {
                *overlap = true;
                *covers = !strcmp(a, b);
                return;
        }
        *overlap = *covers = n_components(a) == n_components(b);
        size_t pa = 0, pb = 0;
        char ca[COMPONENT_MAX], cb[COMPONENT_MAX];
        while (*overlap && a[pa] && b[pb]) {
                next_component(a, &pa, ca);
                next_component(b, &pb, cb);
                bool la = is_literal(ca), lb = is_literal(cb);
                bool eq = !strcmp(ca, cb);
                if (la && lb)
                        *overlap = eq;
                else if (lb)
                        *overlap = fnmatch(ca, cb, 0) == 0;
                else if (la)
                        *overlap = fnmatch(cb, ca, 0) == 0;
                *covers = *covers && *overlap && (eq || !strcmp(ca, "*") || (lb && !la));
        }
        *covers = *covers && *overlap;
}

static bool labelled(const struct aidp_schema_file *f)
{
        for (size_t c = 0; c < f->n_columns; c++)
                if (f->columns[c].n_labels)
                        return true;
        return false;
}

/* nf keeps every label of of's columns (same format, same column name,
 * a superset of labels); else the first one it drops into msg. */
static bool keeps(const struct aidp_schema_file *nf, const struct aidp_schema_file *of, char *msg,
                  size_t len)
{
        for (size_t c = 0; c < of->n_columns; c++) {
                const struct aidp_schema_column *oc = &of->columns[c], *nc = NULL;
                for (size_t k = 0; nf->format == of->format && k < nf->n_columns; k++)
                        if (!strcmp(nf->columns[k].name, oc->name))
                                nc = &nf->columns[k];
                for (size_t l = 0; l < oc->n_labels; l++) {
                        bool found = false;
                        for (size_t k = 0; nc && k < nc->n_labels; k++)
                                found = found || !strcmp(nc->labels[k], oc->labels[l]);
                        if (!found)
                                return aidp_text_printf(msg, len,
                                                        "drops label %s of column %s (entry "
                                                        "%s, for files of pattern %s)",
                                                        oc->labels[l], oc->name, nf->pattern,
                                                        of->pattern),
                                       false;
                }
        }
        return true;
}

int aidp_schema_keeps_labels(const struct aidp_schema *old, const struct aidp_schema *mine,
                             char *msg, size_t len)
{
        for (size_t f = 0; f < old->n_files; f++) {
                const struct aidp_schema_file *of = &old->files[f];
                if (!labelled(of))
                        continue;
                bool covered = false;
                for (size_t i = 0; !covered && i < mine->n_files; i++) {
                        const struct aidp_schema_file *nf = &mine->files[i];
                        bool overlap;
                        compare(nf->pattern, of->pattern, &overlap, &covered);
                        if (overlap && !keeps(nf, of, msg, len))
                                return -1;
                }
                if (!covered)
                        return aidp_text_printf(msg, len,
                                                "has no entry that covers every file of "
                                                "pattern %s (labelled columns)",
                                                of->pattern),
                               -1;
        }
        return 0;
}
