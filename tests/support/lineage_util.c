#define _GNU_SOURCE
#include "lineage_util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "supervisor/lineage/lineage.h"

json_object *aidp_test_json_at(json_object *o, const char *path)
{
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
                if (!json_object_object_get_ex(o, k, &o))
                        return NULL;
        return o;
}

const char *aidp_test_json_str_or_null(json_object *o, const char *path)
{
        json_object *v = aidp_test_json_at(o, path);
        return v ? json_object_get_string(v) : NULL;
}

const char *aidp_test_json_str(json_object *o, const char *path)
{
        const char *s = aidp_test_json_str_or_null(o, path);
        return s ? s : "";
}

size_t aidp_test_lineage_records(const char *logp, const char *keyp, json_object **ev, size_t max)
{
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_key_load(keyp, false, key, &e), 0, "%s", e.msg);
        struct aidp_lineage_verify v;
        cr_assert_eq(aidp_lineage_verify_file(logp, NULL, true, key, &v, &e), 0, "%s", e.msg);
        cr_assert_eq(v.bad_line, 0, "lineage does not verify: %s", v.reason);
        FILE *f = fopen(logp, "re");
        cr_assert_not_null(f, "%s", logp);
        char *line = NULL;
        size_t cap = 0, n = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, f)) > 0 && n < max) {
                struct aidp_lineage_record rec;
                cr_assert_eq(
                        aidp_lineage_record_parse(line, (size_t)len - 1, key, &rec, &ev[n], &e), 0,
                        "%s", e.msg);
                n++;
        }
        free(line);
        fclose(f);
        return n;
}

char *aidp_test_slurp(const char *path, size_t *len)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        char *buf = NULL;
        size_t cap = 0;
        FILE *m = open_memstream(&buf, &cap);
        if (!m) {
                fclose(f);
                return NULL;
        }
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
                fwrite(chunk, 1, n, m);
        fclose(f);
        fclose(m);
        *len = cap;
        return buf;
}

int aidp_test_count_events(const char *logp, const char *type)
{
        size_t len = 0;
        char *s = aidp_test_slurp(logp, &len);
        if (!s)
                return 0;
        char needle[64];
        snprintf(needle, sizeof needle, "\"eventType\":\"%s\"", type);
        int n = 0;
        for (char *p = s; (p = strstr(p, needle)); p++)
                n++;
        free(s);
        return n;
}
