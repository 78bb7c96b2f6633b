/* Sealed dataset format v1: the descriptive fields (name, version, owner,
 * classification, residency and regulation tags, key id), their validation and
 * what outputs inherit from their inputs. Pure: no syscalls. */
#include "supervisor/sealed/codec/sealed_format.h"

#include <errno.h>
#include <string.h>

/* One classification name table: residency's (the policy module owns the type). */
const char *aidp_sealed_class_name(enum aidp_classification c)
{
        return aidp_residency_classification_name(c);
}

int aidp_sealed_class_parse(const char *s, enum aidp_classification *ret)
{
        return aidp_residency_classification_parse(s, ret);
}

/* ---- field validation ---- */

static bool is_alnum(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool charset_ok(const char *s, size_t max, bool lower_only, const char *extra)
{
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                bool ok = lower_only ? ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                                     : is_alnum(c);
                if (!ok && (i == 0 || !strchr(extra, c)))
                        return false;
        }
        return true;
}

bool aidp_sealed_valid_name(const char *s)
{
        /* Names may become directory names under /data: no '/', no leading dot. */
        return charset_ok(s, AIDP_SEALED_NAME_MAX, false, "._+-");
}

bool aidp_sealed_valid_owner(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > AIDP_SEALED_OWNER_MAX || s[0] == ' ' || s[n - 1] == ' ')
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
                        return false;
        return true;
}

bool aidp_sealed_valid_tag(const char *s)
{
        return charset_ok(s, AIDP_SEALED_TAG_MAX, true, "._-");
}

bool aidp_sealed_valid_key_id(const char *s)
{
        /* Also a file name in the key directory: no '/', no leading dot. */
        return charset_ok(s, AIDP_SEALED_KEY_ID_MAX, false, "._-");
}

static int check_tags(const char (*tags)[AIDP_SEALED_TAG_MAX + 1], unsigned n, const char *what,
                      aidp_error *err)
{
        if (n > AIDP_SEALED_MAX_TAGS)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "too many %s tags (%u > %d)",
                                      what, n, AIDP_SEALED_MAX_TAGS);
        for (unsigned i = 0; i < n; i++) {
                if (!aidp_sealed_valid_tag(tags[i]))
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "invalid %s tag '%s' (want [a-z0-9][a-z0-9._-]*, "
                                              "at most %d bytes)",
                                              what, tags[i], AIDP_SEALED_TAG_MAX);
                if (i > 0 && strcmp(tags[i - 1], tags[i]) >= 0)
                        return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                              "%s tags not sorted and unique at '%s'", what,
                                              tags[i]);
        }
        return 0;
}

int aidp_sealed_meta_check(const struct aidp_sealed_meta *m, aidp_error *err)
{
        if (!aidp_sealed_valid_name(m->name))
                return aidp_error_set(
                        err, AIDP_EXIT_DATA, EINVAL,
                        "invalid dataset name '%s' (want [A-Za-z0-9][A-Za-z0-9._+-]*, "
                        "at most %d bytes)",
                        m->name, AIDP_SEALED_NAME_MAX);
        if (!aidp_sealed_valid_name(m->version) || strlen(m->version) > AIDP_SEALED_VERSION_MAX)
                return aidp_error_set(
                        err, AIDP_EXIT_DATA, EINVAL,
                        "invalid dataset version '%s' (want [A-Za-z0-9][A-Za-z0-9._+-]*, "
                        "at most %d bytes)",
                        m->version, AIDP_SEALED_VERSION_MAX);
        if (!aidp_sealed_valid_owner(m->owner))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "invalid owner '%s' (printable ASCII, 1-%d bytes)", m->owner,
                                      AIDP_SEALED_OWNER_MAX);
        if ((unsigned)m->classification >= AIDP_CLASS_MAX)
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL, "invalid classification %d",
                                      (int)m->classification);
        if (!aidp_sealed_valid_key_id(m->key_id))
                return aidp_error_set(err, AIDP_EXIT_DATA, EINVAL,
                                      "invalid key id '%s' (want [A-Za-z0-9][A-Za-z0-9._-]*, at "
                                      "most %d bytes)",
                                      m->key_id, AIDP_SEALED_KEY_ID_MAX);
        int r = check_tags(m->residency, m->n_residency, "residency", err);
        if (r < 0)
                return r;
        return check_tags(m->regulation, m->n_regulation, "regulation", err);
}

int aidp_sealed_meta_add_tag(struct aidp_sealed_meta *m, enum aidp_sealed_field which,
                             const char *tag, aidp_error *err)
{
        char(*tags)[AIDP_SEALED_TAG_MAX + 1];
        unsigned *n;
        const char *what;
        if (which == AIDP_F_RESIDENCY) {
                tags = m->residency, n = &m->n_residency, what = "residency";
        } else if (which == AIDP_F_REGULATION) {
                tags = m->regulation, n = &m->n_regulation, what = "regulation";
        } else {
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "not a tag field: %d",
                                      (int)which);
        }
        if (!aidp_sealed_valid_tag(tag))
                return aidp_error_set(err, AIDP_EXIT_USAGE, EINVAL,
                                      "invalid %s tag '%s' (want [a-z0-9][a-z0-9._-]*, at most %d "
                                      "bytes)",
                                      what, tag, AIDP_SEALED_TAG_MAX);
        unsigned pos = 0;
        while (pos < *n && strcmp(tags[pos], tag) < 0)
                pos++;
        if (pos < *n && !strcmp(tags[pos], tag))
                return 0;
        if (*n >= AIDP_SEALED_MAX_TAGS)
                return aidp_error_set(err, AIDP_EXIT_USAGE, E2BIG, "too many %s tags (max %d)",
                                      what, AIDP_SEALED_MAX_TAGS);
        memmove(tags[pos + 1], tags[pos], (size_t)(*n - pos) * sizeof tags[0]);
        memcpy(tags[pos], tag, strlen(tag) + 1);
        (*n)++;
        return 0;
}

int aidp_sealed_meta_inherit(const struct aidp_sealed_meta *const *inputs, size_t n,
                             struct aidp_sealed_meta *out, aidp_error *err)
{
        struct aidp_sealed_meta tmp = *out;
        tmp.n_residency = tmp.n_regulation = 0;
        tmp.classification = AIDP_CLASS_PUBLIC;
        for (size_t i = 0; i < n; i++) {
                const struct aidp_sealed_meta *in = inputs[i];
                if (in->classification > tmp.classification)
                        tmp.classification = in->classification;
                for (unsigned j = 0; j < in->n_residency; j++) {
                        int r = aidp_sealed_meta_add_tag(&tmp, AIDP_F_RESIDENCY, in->residency[j],
                                                         err);
                        if (r < 0)
                                return aidp_error_wrap(err, "inheriting from dataset %s", in->name);
                }
                for (unsigned j = 0; j < in->n_regulation; j++) {
                        int r = aidp_sealed_meta_add_tag(&tmp, AIDP_F_REGULATION, in->regulation[j],
                                                         err);
                        if (r < 0)
                                return aidp_error_wrap(err, "inheriting from dataset %s", in->name);
                }
        }
        *out = tmp;
        return 0;
}
