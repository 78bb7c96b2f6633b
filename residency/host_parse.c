/* kind: HostIdentity (/etc/aidp/host.yaml). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "residency/parse_internal.h"
#include "common/strv.h"

static bool is_region(const char *s)
{
        return aidp_residency_name_valid(s);
}

static int hf_metadata(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        _cleanup_free_ char *name = NULL;
        return aidp_residency_parse_metadata(w, v, path, &name);
}

static int hf_node(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_host_identity *h = ctx;
        int r = aidp_yaml_strdup(w, v, path, &h->node);
        if (r >= 0 && !aidp_residency_is_pattern(h->node))
                return aidp_yaml_fail(w, v, path, "invalid node name '%s'", h->node);
        return r;
}

static int hf_region(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_host_identity *h = ctx;
        int r = aidp_yaml_strdup(w, v, path, &h->region);
        if (r >= 0 && !is_region(h->region))
                return aidp_yaml_fail(w, v, path,
                                      "invalid region '%s' (letters, digits, '.', '_', "
                                      "'-'; no patterns)",
                                      h->region);
        return r;
}

static int hf_jurisdiction(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_host_identity *h = ctx;
        int r = aidp_yaml_strdup(w, v, path, &h->jurisdiction);
        if (r >= 0 && !aidp_residency_name_valid(h->jurisdiction))
                return aidp_yaml_fail(w, v, path, "invalid jurisdiction '%s'", h->jurisdiction);
        return r;
}

static int hf_zones(struct aidp_yaml *w, yaml_node_t *v, const char *path, void *ctx)
{
        struct aidp_host_identity *h = ctx;
        return aidp_yaml_strlist(w, v, path, aidp_residency_is_name, "zone", &h->zones,
                                 &h->n_zones);
}

int aidp_residency_parse_host_doc(struct aidp_yaml *w, yaml_node_t *root,
                                  struct aidp_host_identity *ret)
{
        static const struct aidp_yaml_field fields[] = {
                {"apiVersion", aidp_residency_pf_api_version, true},
                {"kind", aidp_residency_pf_kind, true},
                {"metadata", hf_metadata, false},
                {"node", hf_node, false},
                {"region", hf_region, true},
                {"jurisdiction", hf_jurisdiction, false},
                {"zones", hf_zones, false},
        };
        struct aidp_host_identity h = {0};
        int r = aidp_yaml_fields(w, root, "", fields, ARRAY_SIZE(fields), &h);
        if (r >= 0 && !h.zones && !(h.zones = calloc(1, sizeof *h.zones)))
                r = aidp_residency_oom(w);
        if (r >= 0 && !(h.source = strdup(w->file)))
                r = aidp_residency_oom(w);
        if (r < 0) {
                aidp_residency_host_free(&h);
                return r;
        }
        *ret = h;
        return 0;
}

void aidp_residency_host_free(struct aidp_host_identity *h)
{
        if (!h)
                return;
        free(h->source);
        free(h->node);
        free(h->region);
        free(h->jurisdiction);
        aidp_strv_free(h->zones);
        memset(h, 0, sizeof *h);
}
