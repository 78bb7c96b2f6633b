/* aidp seal --schema, and the schema in aidp inspect (cli_schema.h). */
#include "supervisor/cli/cli_schema.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "views/view.h"

#define SCHEMA_FILE_MAX (1u << 20)

int aidp_cli_read_schema(const char *path, uint8_t **ret, size_t *ret_len, aidp_error *err)
{
        /* aidp is the caller's own process: open() is the caller's authority,
         * like SRC and the output directory of seal. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "schema %s", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, errno, "schema %s", path);
        if (!S_ISREG(st.st_mode) || st.st_size > SCHEMA_FILE_MAX)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "schema %s: not a regular file of at most %u bytes", path,
                                      SCHEMA_FILE_MAX);
        _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "out of memory");
        ssize_t n = aidp_read_all(fd, buf, (size_t)st.st_size + 1);
        if (n < 0)
                return aidp_error_errno(err, AIDP_EXIT_CONFIG, (int)-n, "reading schema %s", path);
        if ((size_t)n > (size_t)st.st_size)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "schema %s: changed while read", path);
        struct aidp_schema s;
        int r = aidp_schema_parse_yaml(buf, (size_t)n, path, &s, err);
        if (r < 0)
                return r;
        r = aidp_schema_encode(&s, ret, ret_len, err);
        aidp_schema_free(&s);
        return r < 0 ? aidp_error_wrap(err, "%s", path) : 0;
}

json_object *aidp_cli_schema_json(const struct aidp_sealed_header *h)
{
        if (!h->schema_len)
                return NULL;
        /* The canonical bytes are JSON already; decode checked them. */
        json_object *o =
                json_tokener_parse_verbose((const char *)h->schema, &(enum json_tokener_error){0});
        return o;
}

void aidp_cli_schema_text(const struct aidp_sealed_header *h)
{
        struct aidp_schema s;
        aidp_error err = {0};
        int r = aidp_sealed_header_schema(h, &s, &err);
        if (r <= 0) {
                printf("%-16s%s\n", "schema:", r < 0 ? err.msg : "(none)");
                return;
        }
        printf("%-16s%zu file pattern%s\n", "schema:", s.n_files, s.n_files == 1 ? "" : "s");
        for (size_t i = 0; i < s.n_files; i++) {
                const struct aidp_schema_file *f = &s.files[i];
                printf("  %s (%s)\n", f->pattern, f->format == AIDP_VIEW_CSV ? "csv" : "jsonl");
                for (size_t c = 0; c < f->n_columns; c++) {
                        printf("    %s:", f->columns[c].name);
                        for (size_t l = 0; l < f->columns[c].n_labels; l++)
                                printf("%s%s", l ? ", " : " ", f->columns[c].labels[l]);
                        printf("%s\n", f->columns[c].n_labels ? "" : " (no labels)");
                }
        }
        aidp_schema_free(&s);
}
