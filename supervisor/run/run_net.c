/* A run's egress network (run_net.h). */
#define _GNU_SOURCE
#include "supervisor/run/run_net.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/run/policy_load.h"

int aidp_run_net_resolve(struct aidp_run_net *n, const struct aidp_profile *p,
                         const char *hostnet_path, aidp_error *err)
{
        memset(n, 0, sizeof *n);
        if (p->network.mode != AIDP_NET_EGRESS)
                return 0;
        n->egress = true;
        const char *path = hostnet_path ? hostnet_path : AIDP_HOSTNET_PATH;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        /* The pools decide which addresses root puts on links: only root's file. */
        int rc = aidp_policy_read_file(path, true, &buf, &len, err);
        if (rc < 0)
                return aidp_error_wrap(err, "profile %s asks for egress; network configuration",
                                       p->name);
        if ((rc = aidp_hostnet_parse(path, buf, len, &n->host, err)) < 0)
                return rc;
        if ((rc = aidp_netpolicy_compile(&p->network, &n->plan, err)) < 0)
                return aidp_error_wrap(err, "profile %s", p->name);
        /* Names need the DNS proxy, and the proxy an upstream: refused here,
         * before anything of the run exists. */
        if (n->plan->n_fqdns && n->host.n_resolvers == 0)
                return aidp_error_set(err, AIDP_EXIT_CONFIG, EINVAL,
                                      "profile %s allows egress by name (fqdn: %s), and %s names "
                                      "no resolvers for the run's DNS proxy (docs/egress.md)",
                                      p->name, n->plan->fqdns[0].name, path);
        return 0;
}

/* The job's only resolver is the run's DNS proxy; without resolvers in the
 * host configuration it has none at all. */
static int write_resolv(struct aidp_run_net *n, aidp_error *err)
{
        if (!n->staged)
                return 0;
        const char *ns = aidp_netpolicy_run_resolver(n->applied);
        char text[160];
        int len = ns ? snprintf(text, sizeof text,
                                "# the run's DNS proxy (aidp, docs/egress.md)\n"
                                "nameserver %s\noptions edns0\n",
                                ns)
                     : snprintf(text, sizeof text, "# no resolver in this run (docs/egress.md)\n");
        if (pwrite(n->resolv_fd, text, (size_t)len, 0) != len)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "writing resolv.conf");
        return 0;
}

int aidp_run_net_prepare(struct aidp_run_net *n, struct aidp_journal *j, const char *run_base,
                         const char *run_id, pid_t pid, aidp_error *err)
{
        if (!n->egress)
                return 0;
        aidp_journal_add(j, "network", "egress");
        int rc = aidp_journal_sync(j, err);
        if (rc < 0)
                return rc;
        char lease_dir[PATH_MAX], ns[64];
        snprintf(lease_dir, sizeof lease_dir, "%s/" AIDP_RUN_LEASE_DIR, run_base);
        snprintf(ns, sizeof ns, "/proc/%d/ns/net", (int)pid);
        /* pid is our own unreaped child, blocked on its sync socket: the path
         * cannot name another process's namespace. */
        _cleanup_close_ int fd = open(ns, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", ns);
        rc = aidp_netpolicy_apply(n->plan, &n->host, lease_dir, run_id, fd, &n->applied, err);
        return rc < 0 ? rc : write_resolv(n, err);
}

int aidp_run_net_stage(struct aidp_run_net *n, const char *run_base, const char *run_id,
                       aidp_error *err)
{
        if (!n->egress)
                return 0;
        char path[PATH_MAX];
        /* In a 0700 directory of its own: the run directory is 0711 (the
         * daemon's socket group searches it), and this file is 0644 for the
         * job, whose mount of it does not pass through the directory. */
        snprintf(path, sizeof path, "%s/" AIDP_RUN_RESOLV_DIR, run_base);
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", path);
        snprintf(path, sizeof path, "%s/" AIDP_RUN_RESOLV_DIR "/%s", run_base, run_id);
        /* A fresh file in root's run directory, never one that was there. */
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", path);
        int tree = open_tree(AT_FDCWD, path,
                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
        int e = errno;
        if (tree < 0 || fchmod(fd, 0644) < 0) {
                unlink(path);
                close(fd);
                if (tree >= 0)
                        close(tree);
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, tree < 0 ? e : errno, "cloning %s",
                                        path);
        }
        /* The kernel moves no mount of an unlinked file: the name stays until
         * the run ends (or gc, by the run id). */
        snprintf(n->resolv_path, sizeof n->resolv_path, "%s", path);
        n->staged = true;
        n->resolv_fd = fd;
        n->resolv_tree = tree;
        return 0;
}

int aidp_run_net_resolv_tree(const struct aidp_run_net *n)
{
        return n->staged ? n->resolv_tree : -1;
}

int aidp_run_net_fd(const struct aidp_run_net *n)
{
        return n->applied ? aidp_netpolicy_nflog_fd(n->applied) : -1;
}

void aidp_run_net_drain(struct aidp_run_net *n)
{
        if (n->applied)
                aidp_netpolicy_drain(n->applied);
}

int aidp_run_net_teardown(struct aidp_run_net *n, aidp_error *err)
{
        if (!n->applied)
                return 0;
        aidp_netpolicy_dns_stop(n->applied);
        aidp_netpolicy_drain(n->applied);
        n->denials = *aidp_netpolicy_denials(n->applied);
        int rc = aidp_netpolicy_teardown(n->applied, err);
        n->applied = NULL;
        return rc;
}

void aidp_run_net_free(struct aidp_run_net *n)
{
        if (n->staged) {
                close(n->resolv_fd);
                close(n->resolv_tree);
                unlink(n->resolv_path);
        }
        if (n->applied)
                aidp_run_net_teardown(n, NULL);
        aidp_netpolicy_free(n->plan);
        aidp_hostnet_free(&n->host);
        memset(n, 0, sizeof *n);
}

int aidp_run_net_gc(const char *run_base, const char *run_id, aidp_error *err)
{
        char lease_dir[PATH_MAX];
        snprintf(lease_dir, sizeof lease_dir, "%s/" AIDP_RUN_LEASE_DIR, run_base);
        char resolv[PATH_MAX];
        if (aidp_netpolicy_name_ok(run_id, 200) &&
            (size_t)snprintf(resolv, sizeof resolv, "%s/" AIDP_RUN_RESOLV_DIR "/%s", run_base,
                             run_id) < sizeof resolv)
                unlink(resolv);
        /* where an earlier aidp kept it */
        if (aidp_netpolicy_name_ok(run_id, 200) &&
            (size_t)snprintf(resolv, sizeof resolv, "%s/.resolv-%s", run_base, run_id) <
                    sizeof resolv)
                unlink(resolv);
        return aidp_netpolicy_gc(lease_dir, run_id, err);
}
