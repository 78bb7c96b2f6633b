/* Phase 2 of loading a profile, the plain sections: limits, filesystem,
 * devices, user, capabilities and data.
 *
 * Each apply function overlays one layer's section on the profile built so
 * far: scalars replace, lists add (without duplicates), binds and devices are
 * keyed by their target path so that a child can change one of its parent's.
 * Values are checked here, where the YAML position is still known, so that
 * every error names file, line, column and key. The checks guard root's later
 * use of the values: paths must be clean absolute paths (the sandbox mounts
 * them as root), and nothing may be placed over the mounts the sandbox builds
 * itself (/proc, /dev, /sys, /run/aidp, the data directories). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/path.h"
#include "profiles/load_internal.h"

static int size_value(struct loader *ld, ytree *t, ynode *n, const char *path, bool unlimited_ok,
                      uint64_t unlimited, uint64_t *out)
{
        const char *s = NULL;
        int rc = aidp_yaml_scalar(t, n, path, "a size such as 8Gi, 512Mi or 1G", &s, ld->err);
        if (rc < 0)
                return rc;
        if (unlimited_ok && !strcmp(s, "unlimited")) {
                *out = unlimited;
                return 0;
        }
        if (aidp_profiles_parse_size(s, out) < 0)
                return YERR(t, n, path,
                            "found '%s', expected a size such as 8Gi, 512Mi, 1G or a byte count%s",
                            s, unlimited_ok ? ", or unlimited" : "");
        return 0;
}

static int apply_rlimits(struct loader *ld, ytree *t, ynode *map, struct aidp_profile *p)
{
        int rc = aidp_yaml_expect(t, map, YAML_MAPPING_NODE, "limits.rlimits",
                                  "a mapping of rlimit name to value", ld->err);
        if (rc < 0)
                return rc;
        {
                ynode *k, *v;
                FOREACH_PAIR(t, map, k, v)
                {
                        const char *name = aidp_yaml_str(k);
                        char path[128];
                        PATHF(path, "limits.rlimits.%s", name ? name : "?");
                        int r = name ? aidp_profiles_rlimit_parse(name) : -1;
                        if (r < 0)
                                return YERR(t, k, path,
                                            "unknown rlimit '%s', expected one of: cpu, fsize, "
                                            "data, stack, core, rss, nproc, nofile, memlock, as, "
                                            "locks, sigpending, msgqueue, nice, rtprio, rttime",
                                            name ? name : "?");
                        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < _p; q++) {
                                const char *qs = aidp_yaml_str(aidp_yaml_node(t, q->key));
                                if (qs && aidp_profiles_rlimit_parse(qs) == r)
                                        return YERR(t, k, path,
                                                    "found rlimit '%s' twice, expected it once",
                                                    name);
                        }
                        struct aidp_rlimit rl = {.set = true};
                        if (v && v->type == YAML_MAPPING_NODE) {
                                static const char *const keys[] = {"soft", "hard", NULL};
                                if ((rc = aidp_yaml_check_keys(t, v, path, keys, ld->err)) < 0)
                                        return rc;
                                ynode *sn = aidp_yaml_get(t, v, "soft", NULL);
                                ynode *hn = aidp_yaml_get(t, v, "hard", NULL);
                                char sp[160], hp[160];
                                PATHF(sp, "%s.soft", path);
                                PATHF(hp, "%s.hard", path);
                                if (!sn || !hn)
                                        return YERR(t, v, path,
                                                    "found %s, expected both soft and hard",
                                                    sn   ? "only soft"
                                                    : hn ? "only hard"
                                                         : "neither");
                                if ((rc = size_value(ld, t, sn, sp, true, UINT64_MAX, &rl.soft)) <
                                            0 ||
                                    (rc = size_value(ld, t, hn, hp, true, UINT64_MAX, &rl.hard)) <
                                            0)
                                        return rc;
                                if (rl.soft > rl.hard)
                                        return YERR(t, sn, sp,
                                                    "found a soft limit above the hard limit, "
                                                    "expected soft <= hard");
                        } else {
                                if ((rc = size_value(ld, t, v, path, true, UINT64_MAX, &rl.soft)) <
                                    0)
                                        return rc;
                                rl.hard = rl.soft;
                        }
                        p->limits.rlimits[r] = rl;
                        aidp_ld_origin_set(ld, t, k, "rlimit:%d", r);
                }
        }
        return 0;
}

int aidp_ld_apply_limits(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"memory", "cpus",    "pids", "wallTime",
                                           "tmpfs",  "rlimits", NULL};
        int rc = aidp_yaml_check_keys(t, n, "limits", keys, ld->err);
        if (rc < 0)
                return rc;
        ynode *v;
        const char *s = NULL;
        if ((v = aidp_yaml_get(t, n, "memory", NULL))) {
                if ((rc = size_value(ld, t, v, "limits.memory", true, 0, &p->limits.memory_bytes)) <
                    0)
                        return rc;
                if (p->limits.memory_bytes && p->limits.memory_bytes < (4u << 20))
                        return YERR(t, v, "limits.memory",
                                    "found %" PRIu64 " bytes, expected at least 4Mi (a smaller "
                                    "cgroup limit only produces OOM kills)",
                                    p->limits.memory_bytes);
                aidp_ld_origin_set(ld, t, v, "limits.memory");
        }
        if ((v = aidp_yaml_get(t, n, "cpus", NULL))) {
                if ((rc = aidp_yaml_scalar(t, v, "limits.cpus",
                                           "a cpu count such as 2, 1.5 or 500m", &s, ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "unlimited"))
                        p->limits.cpu_millis = 0;
                else if (aidp_profiles_parse_cpu(s, &p->limits.cpu_millis) < 0 ||
                         p->limits.cpu_millis == 0 || p->limits.cpu_millis > 1000000)
                        return YERR(t, v, "limits.cpus",
                                    "found '%s', expected a cpu count such as 2, 1.5 or 500m "
                                    "(1m..1000), or unlimited",
                                    s);
                aidp_ld_origin_set(ld, t, v, "limits.cpus");
        }
        if ((v = aidp_yaml_get(t, n, "pids", NULL))) {
                if ((rc = aidp_yaml_scalar(t, v, "limits.pids", "a number of processes", &s,
                                           ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "unlimited"))
                        p->limits.pids = 0;
                else if (aidp_profiles_parse_uint(s, false, &p->limits.pids) < 0 ||
                         p->limits.pids == 0 || p->limits.pids > 4194304)
                        return YERR(t, v, "limits.pids",
                                    "found '%s', expected a number of processes 1..4194304, or "
                                    "unlimited",
                                    s);
                aidp_ld_origin_set(ld, t, v, "limits.pids");
        }
        if ((v = aidp_yaml_get(t, n, "wallTime", NULL))) {
                if ((rc = aidp_yaml_scalar(t, v, "limits.wallTime",
                                           "a duration such as 2h, 90m or 1h30m", &s, ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "unlimited"))
                        p->limits.wall_seconds = 0;
                else if (aidp_profiles_parse_duration(s, &p->limits.wall_seconds) < 0 ||
                         p->limits.wall_seconds == 0)
                        return YERR(t, v, "limits.wallTime",
                                    "found '%s', expected a duration such as 2h, 90m, 1h30m, 45s "
                                    "or 1d, or unlimited",
                                    s);
                aidp_ld_origin_set(ld, t, v, "limits.wallTime");
        }
        if ((v = aidp_yaml_get(t, n, "tmpfs", NULL))) {
                static const char *const tkeys[] = {"/tmp",  "/scratch", "/out",
                                                    "/data", "/dev/shm", NULL};
                if ((rc = aidp_yaml_check_keys(t, v, "limits.tmpfs", tkeys, ld->err)) < 0)
                        return rc;
                uint64_t *dst[] = {&p->limits.tmp_bytes, &p->limits.scratch_bytes,
                                   &p->limits.out_bytes, &p->limits.data_bytes,
                                   &p->limits.shm_bytes};
                for (size_t i = 0; i < 5; i++) {
                        ynode *sv = aidp_yaml_get(t, v, tkeys[i], NULL);
                        if (!sv)
                                continue;
                        char path[64];
                        PATHF(path, "limits.tmpfs.%s", tkeys[i]);
                        if (i == 3 && aidp_yaml_str(sv) && !strcmp(aidp_yaml_str(sv), "auto")) {
                                *dst[i] = 0;
                                continue;
                        }
                        if ((rc = size_value(ld, t, sv, path, false, 0, dst[i])) < 0)
                                return rc;
                        if (*dst[i] < 4096)
                                return YERR(t, sv, path,
                                            "found %" PRIu64 " bytes, expected at least 4Ki%s",
                                            *dst[i],
                                            i == 3 ? " (or auto: sized from the inputs)" : "");
                }
        }
        if ((v = aidp_yaml_get(t, n, "rlimits", NULL)))
                if ((rc = apply_rlimits(ld, t, v, p)) < 0)
                        return rc;
        return 0;
}

static int abs_path_value(struct loader *ld, ytree *t, ynode *n, const char *path, const char **out)
{
        const char *s = NULL;
        int rc = aidp_yaml_scalar(t, n, path, "an absolute path", &s, ld->err);
        if (rc < 0)
                return rc;
        if (!aidp_path_is_clean_abs(s))
                return YERR(t, n, path,
                            "found '%s', expected an absolute path without '.', '..' or '//'", s);
        *out = s;
        return 0;
}

/* One filesystem.binds item. A bind is keyed by its target: a child that
 * names a parent's target changes that bind instead of adding a second mount
 * on the same place. */
static int parse_bind(struct loader *ld, ytree *t, ynode *item, size_t i, struct aidp_profile *p)
{
        int rc;
        char path[64], sp[96];
        PATHF(path, "filesystem.binds[%zu]", i);
        static const char *const bkeys[] = {"source", "target", "writable", NULL};
        const char *src = NULL, *dst = NULL;
        bool writable = false;
        if ((rc = aidp_yaml_check_keys(t, item, path, bkeys, ld->err)) < 0)
                return rc;
        ynode *sn = aidp_yaml_get(t, item, "source", NULL);
        PATHF(sp, "%s.source", path);
        if (!sn)
                return YERR(t, item, sp, "found nothing, expected the host path to bind");
        if ((rc = abs_path_value(ld, t, sn, sp, &src)) < 0)
                return rc;
        dst = src;
        ynode *tn = aidp_yaml_get(t, item, "target", NULL);
        if (tn) {
                PATHF(sp, "%s.target", path);
                if ((rc = abs_path_value(ld, t, tn, sp, &dst)) < 0)
                        return rc;
        }
        if (aidp_profile_bind_path_reserved(dst))
                return YERR(t, tn ? tn : sn, path,
                            "found target '%s', expected a path outside /, /proc, "
                            "/dev, /sys and /run/aidp (the sandbox builds those itself)",
                            dst);
        ynode *wn = aidp_yaml_get(t, item, "writable", NULL);
        if (wn) {
                PATHF(sp, "%s.writable", path);
                if ((rc = aidp_yaml_bool(t, wn, sp, &writable, ld->err)) < 0)
                        return rc;
        }
        struct aidp_bind *b = NULL;
        for (size_t j = 0; j < p->n_binds; j++)
                if (!strcmp(p->binds[j].target, dst))
                        b = &p->binds[j];
        if (!b) {
                struct aidp_bind *nb = realloc(p->binds, (p->n_binds + 1) * sizeof *nb);
                if (!nb)
                        return aidp_ld_oom(ld->err);
                p->binds = nb;
                b = &nb[p->n_binds++];
                memset(b, 0, sizeof *b);
        }
        if (aidp_ld_replace_str(&b->source, src) < 0 || aidp_ld_replace_str(&b->target, dst) < 0)
                return aidp_ld_oom(ld->err);
        b->writable = writable;
        aidp_ld_origin_set(ld, t, item, "bind:%s", dst);
        return 0;
}

int aidp_ld_apply_filesystem(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"binds", "masked", "bindCwd", NULL};
        int rc = aidp_yaml_check_keys(t, n, "filesystem", keys, ld->err);
        if (rc < 0)
                return rc;
        ynode *v;
        if ((v = aidp_yaml_get(t, n, "bindCwd", NULL)))
                if ((rc = aidp_yaml_bool(t, v, "filesystem.bindCwd", &p->bind_cwd, ld->err)) < 0)
                        return rc;
        if ((v = aidp_yaml_get(t, n, "masked", NULL))) {
                if ((rc = aidp_ld_expect_list(ld, t, v, "filesystem.masked",
                                              "a list of absolute paths")) < 0)
                        return rc;
                {
                        ynode *item;
                        FOREACH_ITEM(t, v, i, item)
                        {
                                char path[64];
                                const char *s = NULL;
                                PATHF(path, "filesystem.masked[%zu]", i);
                                if ((rc = abs_path_value(ld, t, item, path, &s)) < 0)
                                        ITEM_FAIL(rc);
                                if (!strcmp(s, "/"))
                                        ITEM_FAIL(
                                                YERR(t, item, path,
                                                     "found '/', expected a path below the root"));
                                if (!aidp_strv_contains(p->masked, p->n_masked, s) &&
                                    aidp_strv_push(&p->masked, &p->n_masked, s) < 0)
                                        return aidp_ld_oom(ld->err);
                        }
                }
        }
        if ((v = aidp_yaml_get(t, n, "binds", NULL))) {
                if ((rc = aidp_ld_expect_list(ld, t, v, "filesystem.binds",
                                              "a list of {source, target, writable}")) < 0)
                        return rc;
                {
                        ynode *item;
                        FOREACH_ITEM(t, v, i, item)
                        {
                                if ((rc = parse_bind(ld, t, item, i, p)) < 0)
                                        ITEM_FAIL(rc);
                        }
                }
        }
        return 0;
}

int aidp_ld_apply_devices(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        int rc = aidp_ld_expect_list(ld, t, n, "devices",
                                     "a list of device paths or {path, optional}");
        if (rc < 0)
                return rc;
        {
                ynode *item;
                FOREACH_ITEM(t, n, i, item)
                {
                        char path[64], pp[80];
                        PATHF(path, "devices[%zu]", i);
                        const char *dev;
                        bool optional = false;
                        ynode *pn = item;
                        if (item->type == YAML_MAPPING_NODE) {
                                static const char *const keys[] = {"path", "optional", NULL};
                                if ((rc = aidp_yaml_check_keys(t, item, path, keys, ld->err)) < 0)
                                        ITEM_FAIL(rc);
                                pn = aidp_yaml_get(t, item, "path", NULL);
                                if (!pn)
                                        ITEM_FAIL(YERR(t, item, path,
                                                       "found no path, expected path: /dev/..."));
                                ynode *on = aidp_yaml_get(t, item, "optional", NULL);
                                PATHF(pp, "%s.optional", path);
                                if (on && (rc = aidp_yaml_bool(t, on, pp, &optional, ld->err)) < 0)
                                        ITEM_FAIL(rc);
                                PATHF(pp, "%s.path", path);
                        } else {
                                PATHF(pp, "%s", path);
                        }
                        if ((rc = aidp_yaml_scalar(t, pn, pp, "a device path such as /dev/nvidia0",
                                                   &dev, ld->err)) < 0)
                                ITEM_FAIL(rc);
                        if (strncmp(dev, "/dev/", 5) || !aidp_path_is_clean_abs(dev) ||
                            strlen(dev) <= 5)
                                ITEM_FAIL(YERR(t, pn, pp,
                                               "found '%s', expected a character device path "
                                               "under /dev/ (globs * ? [..] allowed)",
                                               dev));
                        struct aidp_device *d = NULL;
                        for (size_t j = 0; j < p->n_devices; j++)
                                if (!strcmp(p->devices[j].path, dev))
                                        d = &p->devices[j];
                        if (!d) {
                                struct aidp_device *nd =
                                        realloc(p->devices, (p->n_devices + 1) * sizeof *nd);
                                if (!nd)
                                        return aidp_ld_oom(ld->err);
                                p->devices = nd;
                                d = &nd[p->n_devices++];
                                memset(d, 0, sizeof *d);
                                if (!(d->path = strdup(dev)))
                                        return aidp_ld_oom(ld->err);
                        }
                        d->optional = optional;
                        aidp_ld_origin_set(ld, t, pn, "device:%s", dev);
                }
        }
        return 0;
}

static int id_value(struct loader *ld, ytree *t, ynode *n, const char *path, uint32_t *out)
{
        const char *s = NULL;
        uint64_t v;
        int rc = aidp_yaml_scalar(t, n, path, "a numeric id", &s, ld->err);
        if (rc < 0)
                return rc;
        if (aidp_profiles_parse_uint(s, false, &v) < 0 || v >= UINT32_MAX)
                return YERR(t, n, path, "found '%s', expected a numeric id 0..4294967294", s);
        *out = (uint32_t)v;
        return 0;
}

int aidp_ld_apply_user(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"mode",       "uid",       "gid", "defaultUid",
                                           "defaultGid", "allowRoot", NULL};
        int rc = aidp_yaml_check_keys(t, n, "user", keys, ld->err);
        if (rc < 0)
                return rc;
        ynode *v;
        const char *s = NULL;
        uint32_t id = 0;
        if ((v = aidp_yaml_get(t, n, "mode", NULL))) {
                if ((rc = aidp_yaml_scalar(t, v, "user.mode", "caller or fixed", &s, ld->err)) < 0)
                        return rc;
                if (!strcmp(s, "caller"))
                        p->user.mode = AIDP_USER_CALLER;
                else if (!strcmp(s, "fixed"))
                        p->user.mode = AIDP_USER_FIXED;
                else
                        return YERR(t, v, "user.mode", "found '%s', expected caller or fixed", s);
        }
        struct {
                const char *key;
                void *dst;
                bool gid;
        } ids[] = {{"uid", &p->user.uid, false},
                   {"gid", &p->user.gid, true},
                   {"defaultUid", &p->user.default_uid, false},
                   {"defaultGid", &p->user.default_gid, true}};
        for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
                if (!(v = aidp_yaml_get(t, n, ids[i].key, NULL)))
                        continue;
                char path[64];
                PATHF(path, "user.%s", ids[i].key);
                if ((rc = id_value(ld, t, v, path, &id)) < 0)
                        return rc;
                if (ids[i].gid)
                        *(gid_t *)ids[i].dst = id;
                else
                        *(uid_t *)ids[i].dst = id;
                aidp_ld_origin_set(ld, t, v, "user.%s", ids[i].key);
        }
        if ((v = aidp_yaml_get(t, n, "allowRoot", NULL))) {
                if ((rc = aidp_yaml_bool(t, v, "user.allowRoot", &p->user.allow_root, ld->err)) < 0)
                        return rc;
                aidp_ld_origin_set(ld, t, v, "user.allowRoot");
        }
        return 0;
}

int aidp_ld_apply_caps(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        int rc = aidp_ld_expect_list(ld, t, n, "capabilities",
                                     "a list of capability names such as CAP_NET_BIND_SERVICE");
        if (rc < 0)
                return rc;
        {
                ynode *item;
                FOREACH_ITEM(t, n, i, item)
                {
                        char path[64], canon[64];
                        const char *s = NULL;
                        PATHF(path, "capabilities[%zu]", i);
                        if ((rc = aidp_yaml_scalar(t, item, path, "a capability name", &s,
                                                   ld->err)) < 0)
                                ITEM_FAIL(rc);
                        if (aidp_profiles_cap_canon(s, canon, sizeof canon) < 0) {
                                char dym[AIDP_SUGGEST_MAX + 32];
                                ITEM_FAIL(YERR(t, item, path,
                                               "found '%s', expected a capability name such as "
                                               "CAP_NET_BIND_SERVICE%s",
                                               s, aidp_profiles_cap_suggest(s, dym, sizeof dym)));
                        }
                        if (!aidp_strv_contains(p->capabilities, p->n_capabilities, canon) &&
                            aidp_strv_push(&p->capabilities, &p->n_capabilities, canon) < 0)
                                return aidp_ld_oom(ld->err);
                        aidp_ld_origin_set(ld, t, item, "cap:%s", canon);
                }
        }
        return 0;
}

int aidp_ld_apply_data(struct loader *ld, ytree *t, ynode *n, struct aidp_profile *p)
{
        static const char *const keys[] = {"data", "scratch", "out", NULL};
        int rc = aidp_yaml_check_keys(t, n, "data", keys, ld->err);
        if (rc < 0)
                return rc;
        char **dst[] = {&p->paths.data, &p->paths.scratch, &p->paths.out};
        for (size_t i = 0; i < 3; i++) {
                ynode *v = aidp_yaml_get(t, n, keys[i], NULL);
                if (!v)
                        continue;
                char path[32];
                const char *s = NULL;
                PATHF(path, "data.%s", keys[i]);
                if ((rc = abs_path_value(ld, t, v, path, &s)) < 0)
                        return rc;
                static const char *const reserved[] = {"/proc", "/dev", "/sys",  "/run", "/etc",
                                                       "/usr",  "/bin", "/sbin", "/lib", "/lib64"};
                for (size_t r = 0; r < ARRAY_SIZE(reserved); r++)
                        if (aidp_ld_path_within(s, reserved[r]) || !strcmp(s, "/"))
                                return YERR(t, v, path,
                                            "found '%s', expected a path outside /, /proc, /dev, "
                                            "/sys, /run, /etc, /usr and the library directories",
                                            s);
                if (aidp_ld_replace_str(dst[i], s) < 0)
                        return aidp_ld_oom(ld->err);
                aidp_ld_origin_set(ld, t, v, "data.%s", keys[i]);
        }
        return 0;
}
